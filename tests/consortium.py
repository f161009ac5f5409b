"""A consortium for fault tests: anvil, an IPFS daemon, and one agent OS process per learner.

Agents are started exactly as stakeholders start them (``colearn agent`` with an
encrypted keystore, a learner factory and the shared URLs), so the tests exercise the
real command, its logs and its exit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account

from agents.chain.client import CollectiveLearningClient
from agents.chain.network import connect, derive_accounts, fund_accounts
from agents.chain.types import ExperimentOptions, RoundState
from agents.experiment.launch import launch_experiment
from agents.experiment.spec import ExperimentTerms, LearnerFactory
from agents.storage.store import open_store
from colearn_core.codec import encode_weights

ROOT = Path(__file__).resolve().parent.parent
DIGITS = "colearn_core.tasks.factories:digits_learner"
PASSWORD = "consortium-test-password"


class Consortium:
    """One experiment on a shared chain and store, with agent processes per learner."""

    def __init__(self, chain_url: str, store_url: str, workdir: Path, *, n: int, rounds: int,
                 proposal_timeout: int = 30, voting_timeout: int = 30, seed: int = 0,
                 factory: str = DIGITS, threshold: float = 0.5, join_timeout: int = 86_400,
                 options: ExperimentOptions | None = None):
        self.chain_url, self.store_url, self.workdir = chain_url, store_url, workdir
        self.n, self.seed = n, seed
        self.w3 = connect(chain_url)
        label = f"consortium-{workdir.name}"
        self.accounts = derive_accounts(n, seed, label=label)
        fund_accounts(self.w3, [a.address for a in self.accounts])
        self.client, _ = CollectiveLearningClient.deploy(self.w3, self.accounts[0])
        self.store = open_store(store_url)
        self.factory = factory
        learner0 = LearnerFactory(target=factory,
                                  args={"index": 0, "n_learners": n, "seed": seed}).build()
        self.experiment_id = launch_experiment(self.client, self.store, ExperimentTerms(
            learners=[a.address for a in self.accounts], threshold=threshold, rounds=rounds,
            proposal_timeout=proposal_timeout, voting_timeout=voting_timeout,
            join_timeout=join_timeout, options=options or ExperimentOptions()),
            encode_weights(learner0.mli_get_current_weights().weights)).experiment_id
        (workdir / "password").write_text(PASSWORD)
        self.keystores = []
        for i, account in enumerate(self.accounts):
            path = workdir / f"learner{i}.json"
            path.write_text(json.dumps(Account.encrypt(account.key, PASSWORD, kdf="pbkdf2",
                                                       iterations=1024)))
            self.keystores.append(path)
        self.processes: dict[int, subprocess.Popen] = {}
        self.starts: dict[int, int] = {}

    def join(self, *indices: int) -> None:
        """Learners ``indices`` join by hand (learners whose agent never runs, or that a
        test drives itself: agents join by themselves)."""
        for i in indices:
            self.client.with_account(self.accounts[i]).join(self.experiment_id)

    def joined(self) -> int:
        return self.client.experiment(self.experiment_id).joined

    def state_dir(self, i: int) -> Path:
        """Where learner ``i``'s agent keeps its sealed votes' openings (``--state-dir``)."""
        return self.workdir / f"state{i}"

    def command(self, i: int, factory: str | None = None, **factory_args: Any) -> list[str]:
        factory = factory or self.factory
        args = {"index": i, "n_learners": self.n, "seed": self.seed, **factory_args}
        return [sys.executable, "-m", "agents.cli", "-v", "agent", "--rpc", self.chain_url,
                "--contract", self.client.address, "--experiment", str(self.experiment_id),
                "--keystore", str(self.keystores[i]),
                "--password-file", str(self.workdir / "password"),
                "--learner", factory, *[f"--learner-arg={k}={v}" for k, v in args.items()],
                "--store", self.store_url, "--poll", "0.1",
                "--state-dir", str(self.state_dir(i))]

    def log_path(self, i: int) -> Path:
        return self.workdir / f"learner{i}-{self.starts.get(i, 0)}.log"

    def start(self, i: int, factory: str | None = None, **factory_args: Any) -> None:
        self.starts[i] = self.starts.get(i, -1) + 1
        env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="200",
                   PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
        self.processes[i] = subprocess.Popen(
            self.command(i, factory, **factory_args), cwd=ROOT, env=env,
            stdout=self.log_path(i).open("w"), stderr=subprocess.STDOUT)

    def kill(self, i: int) -> None:
        self.processes[i].send_signal(signal.SIGKILL)
        self.processes[i].wait()

    def log(self, i: int, start: int | None = None) -> str:
        run = self.starts[i] if start is None else start
        return (self.workdir / f"learner{i}-{run}.log").read_text()

    def result(self, i: int) -> dict[str, Any]:
        """The final JSON line ``colearn agent`` prints when the experiment completes."""
        lines = [ln for ln in self.log(i).splitlines() if ln.startswith('{"experiment"')]
        assert lines, f"agent {i} printed no result:\n{self.log(i)}"
        return json.loads(lines[-1])

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")
            for i, p in self.processes.items():
                if p.poll() not in (None, 0, -signal.SIGKILL):
                    raise AssertionError(f"agent {i} failed:\n{self.log(i)}")
            time.sleep(0.2)

    def wait_round(self, round_index: int, state: RoundState | None = None,
                   timeout: float = 120) -> None:
        def reached() -> bool:
            info = self.client.experiment(self.experiment_id)
            if info.round != round_index:
                return info.round > round_index and state is None
            return state is None or self.client.state(self.experiment_id) == state

        self.wait_until(reached, timeout, f"round {round_index} {state or ''}")

    def wait_all(self, timeout: float = 180) -> None:
        self.wait_until(lambda: all(p.poll() is not None for p in self.processes.values()),
                        timeout, "every agent to finish")
        for i, p in self.processes.items():
            assert p.returncode == 0, f"agent {i} exited {p.returncode}:\n{self.log(i)}"

    def logs(self) -> str:
        return "\n".join(f"--- learner {i}\n{self.log(i)[-3000:]}" for i in self.processes)

    def stop(self) -> None:
        for p in self.processes.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        self.store.close()

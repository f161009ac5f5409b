"""``colearn demo --processes``: one OS process per stakeholder, as a consortium runs it.

Starts anvil (unless ``--chain`` names one) and a js-ipfs daemon when one is installed
(else the file store), writes one encrypted keystore per learner, deploys, creates the
experiment and starts ``colearn agent`` N times. Each agent knows only its keystore, its
learner factory and the shared URLs. The demo itself only watches the chain.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from eth_account import Account
from rich.console import Console

from agents._utils.shutdown import ChildProcesses
from agents.agent.learner_agent import AgentError
from agents.chain.network import connect
from agents.demo.embedded import DemoConfig, finish, follow, prepare
from agents.storage.store import open_store

FACTORY = "colearn_core.tasks.factories:digits_learner"


@contextlib.contextmanager
def _services(config: DemoConfig,
              console: Console) -> Iterator[tuple[str, str | None, str]]:
    """The chain URL, its WebSocket URL for events (known only for an anvil started here:
    it serves both on one port; agents poll a given chain) and the store URL: given ones,
    or local services started here."""
    with contextlib.ExitStack() as stack:
        chain_url, events_url = config.chain_url, None
        if chain_url is None:
            from agents.devtools.anvil import AnvilProcess

            chain_url = stack.enter_context(AnvilProcess(block_time=1, mixed_mining=True)).url
            events_url = "ws://" + chain_url.removeprefix("http://")
            console.print(f"started anvil at {chain_url}")
        store_url = config.store_url
        if store_url is None:
            store_url = _start_ipfs(stack, console) or f"file:{config.out.resolve() / 'store'}"
        yield chain_url, events_url, store_url


def _start_ipfs(stack: contextlib.ExitStack, console: Console) -> str | None:
    from agents.devtools.ipfs import DevIpfsError, JsIpfsDaemon

    try:
        daemon = stack.enter_context(JsIpfsDaemon())
    except DevIpfsError as exc:
        console.print(f"no IPFS daemon ({exc}); using the file store")
        return None
    console.print(f"started an IPFS daemon (js-ipfs) at {daemon.api_url}")
    return daemon.api_url


def _write_keystores(accounts: list[Any], directory: Path) -> tuple[list[Path], Path]:
    directory.mkdir(parents=True, exist_ok=True)
    password_file = directory / "password"
    password_file.write_text(secrets.token_hex(16))
    password_file.chmod(0o600)
    paths = []
    for i, account in enumerate(accounts):
        path = directory / f"learner{i}.json"
        # Light KDF: these are throwaway demo keys; real keystores keep eth-account's scrypt.
        keystore = Account.encrypt(account.key, password_file.read_text(), kdf="pbkdf2",
                                   iterations=1024)
        path.write_text(json.dumps(keystore))
        path.chmod(0o600)
        paths.append(path)
    return paths, password_file


def _agent_failure(processes: list[subprocess.Popen[Any]], logs: Path) -> AgentError | None:
    """An error naming the agents that exited with an error, if any did."""
    failed = [i for i, p in enumerate(processes) if p.poll() not in (None, 0)]
    if not failed:
        return None
    return AgentError(f"agents {failed} exited with an error (codes "
                      f"{[processes[i].returncode for i in failed]}); see {logs}")


def run_process_demo(config: DemoConfig, console: Console | None = None) -> dict[str, Any]:
    """Runs the demo with one agent process per learner. Everything started here (anvil,
    the IPFS daemon, the agents) is stopped when it returns, fails (an agent that exits
    with an error stops the others at once) or is interrupted (see :mod:`agents._utils.shutdown`)."""
    from colearn_core.tasks.factories import digits_learner

    console = console or Console()
    config.out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        chain_url, events_url, store_url = stack.enter_context(_services(config, console))
        store = stack.enter_context(open_store(store_url))
        initial = digits_learner(0, config.n_learners, config.seed).mli_get_current_weights()
        experiment = prepare(config, console, connect(chain_url), store, initial.weights)
        keystores, password_file = _write_keystores(experiment.accounts, config.out / "keys")
        logs = config.out / "logs"
        logs.mkdir(exist_ok=True)
        env = dict(os.environ, OMP_NUM_THREADS="1")  # N agents share the cores
        children = stack.enter_context(ChildProcesses())  # stopped before the services
        processes = []
        for i, keystore in enumerate(keystores):
            command = [
                sys.executable, "-m", "agents.cli", "-v", "agent",
                "--rpc", chain_url, "--contract", experiment.client.address,
                "--experiment", str(experiment.experiment_id),
                "--keystore", str(keystore), "--password-file", str(password_file),
                "--learner", FACTORY, "--learner-arg", f"index={i}",
                "--learner-arg", f"n_learners={config.n_learners}",
                "--learner-arg", f"seed={config.seed}", "--store", store_url,
                *(["--events", events_url] if events_url else []),
                "--state-dir", str(config.out / "state" / f"learner{i}"),
            ]
            log_file = stack.enter_context((logs / f"learner{i}.log").open("w"))
            processes.append(children.start(command, name=f"agent {i}", stdout=log_file,
                                            stderr=subprocess.STDOUT, env=env))
        console.print(f"started {len(processes)} agent processes; logs in {logs}")

        def drive(report: Callable[[], None]) -> None:
            while any(p.poll() is None for p in processes):
                failure = _agent_failure(processes, logs)
                if failure is not None:
                    raise failure
                report()
                time.sleep(0.2)

        rows, accuracy = follow(experiment, console, drive)
        failure = _agent_failure(processes, logs)
        if failure is not None:
            raise failure
        return finish(experiment, console, rows, accuracy)

"""``colearn bench overhead``: what running on a chain costs a round, next to the
in-memory driver.

The same seeded learners (:mod:`colearn_core.tasks.bench`: a small CNN whose proposal
trains for about a second) run twice:

- **in memory**: :func:`colearn_core.training.run_experiment` in this process, one learner
  after another (the proposer trains, every learner tests, every learner adopts an
  accepted proposal);
- **on chain**: anvil (a block a second, transactions mined at once), a file weight
  store, and one ``colearn agent`` process per learner (``OMP_NUM_THREADS=1``, told of
  the contract's events over anvil's WebSocket, or with ``follow="poll"`` polling its
  HTTP RPC every ``poll_interval`` seconds). Voters fetch, test and vote in parallel, as
  separate stakeholders would.

What is timed, and why:

- in memory: the ``run_experiment`` call, after the learners are built and given equal
  weights; seconds per round = its time / rounds.
- on chain: from the moment all agents are ready to the moment the last agent reports
  that it holds the final model (its final JSON line), divided by the rounds. "Ready"
  excludes process start-up (Python, torch, data, model): the agents' learner factory
  waits at a start barrier (``start_barrier``, a directory where each agent creates
  ``ready-<i>``) once its learner is built, and the benchmark creates ``go`` when all are
  there. The agents need the experiment id when they start, so the experiment exists
  before ``go``; no agent can act on it before ``go``, because the factory has not
  returned. Both windows therefore hold the same work: every proposal, test and
  adoption of every round, the last round's included. (Block timestamps are whole
  seconds on anvil, too coarse for rounds of a few seconds; and timing between
  consecutive ``RoundDecided`` events would leave out the first round and move each
  round's adoptions into the next.)
- the protocol's own time: each agent reports ``seconds`` = ``step`` (all the time it
  spent acting), ``learner`` (training, testing, loading weights; part of step),
  ``store`` (part of step) and ``follow`` (between steps, following the chain's events:
  subscribing, polling, decoding; idle waits excluded). ``step - learner + follow`` is
  what the protocol itself costs that agent (chain calls, transactions and event
  following, the weight store, encoding, decoding and hashing weights). The protocol's
  time a round is that sum over the agents divided by the rounds; "chain" is its part
  outside the store, "follow" the part of that spent following events. It is
  wall-clock time: when the agents and anvil outnumber the cores, it includes waiting
  for a core, so summed over n agents on a fixed number of cores it grows as n^2. The
  agents also report the CPU time of the same spans: the protocol's CPU time a round is
  what scales with the learner count.

Both runs must give the same accept/reject sequence and bitwise the same final model;
the report says whether they did.

Real model sizes (``preset="big"``: 25M parameters, 100 MB of weights, trained on two
batches a proposal, so that moving weights dominates a round): the report puts the
agents' CPU time moving weights a round (``store``: encoding and hashing a proposal,
the store, verifying and decoding; the CPU time, since four voters on two cores wait
for a core in wall-clock time) beside its physical floor (:mod:`agents.bench.floor`: one
copy, the digest and the CID, one store write for the proposer; one read and the digest
for each voter, timed on this machine for the payload's size), and gives each agent's
peak RSS during the run beside its baseline (the RSS with its learner built, at the
start barrier; both written by the factory at exit, see
:func:`colearn_core.tasks.bench.record_rss`), in model sizes. ``store="ipfs"`` runs a
js-ipfs node (``npm ci`` installs it) as the agents' store instead of a directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from agents._utils.shutdown import ChildProcesses
from agents.bench.floor import measure_floor
from agents.bench.output import emit
from agents.bench.overhead_report import print_overhead_report
from agents.chain.logs import RoundDecided, RoundExpired, WeightsProposed
from colearn_core.ml_interface import (
    ColearnModel,
    MachineLearningInterface,
    ProposedWeights,
    Weights,
)

FACTORY = "colearn_core.tasks.bench:bench_learner"
# What each agent reports it spent its time on (see agents.agent.records.Timings).
_AGENT_TIMINGS = ("step", "learner", "store", "status", "transactions", "follow")
#: On-chain rounds should be no slower than in-memory ones...
TARGET_RATIO = 1.0
#: ...and the protocol's own time (all agents together) at most this many seconds a round.
TARGET_PROTOCOL_SECONDS = 0.3
ACCOUNT_LABEL = "colearn-bench"
STORES = ("file", "ipfs")


class BenchError(Exception):
    """The benchmark could not run to the end (an agent failed, a timeout...)."""


# ----------------------------------------------------------------------- in memory


class _TimedLearner(MachineLearningInterface):
    """Passes every call to a learner and adds up the seconds spent per MLI call."""

    def __init__(self, learner: MachineLearningInterface, totals: dict[str, list[float]]):
        self.learner = learner
        self.totals = totals

    def _timed(self, name: str, call, *args):
        started = time.perf_counter()
        try:
            return call(*args)
        finally:
            entry = self.totals.setdefault(name, [0, 0.0])
            entry[0] += 1
            entry[1] += time.perf_counter() - started

    def mli_propose_weights(self) -> Weights:
        return self._timed("propose", self.learner.mli_propose_weights)

    def mli_test_weights(self, weights: Weights) -> ProposedWeights:
        return self._timed("test", self.learner.mli_test_weights, weights)

    def mli_accept_weights(self, weights: Weights) -> None:
        return self._timed("accept", self.learner.mli_accept_weights, weights)

    def mli_get_current_weights(self) -> Weights:
        return self.learner.mli_get_current_weights()

    def mli_get_current_model(self) -> ColearnModel:
        return self.learner.mli_get_current_model()


def run_in_memory(n_learners: int, n_rounds: int, seed: int, preset: str,
                  vote_threshold: float) -> tuple[dict[str, Any], Any]:
    """The in-memory run's report, and the learners' (equal) initial weights."""
    from colearn_core.codec import encode_weights
    from colearn_core.tasks.bench import make_bench_learners
    from colearn_core.training import run_experiment, set_equal_weights

    learners = make_bench_learners(n_learners, seed, preset)
    set_equal_weights(learners)
    initial = learners[0].mli_get_current_weights().weights
    totals: dict[str, list[float]] = {}
    timed = [_TimedLearner(learner, totals) for learner in learners]
    started = time.perf_counter()
    results = run_experiment(timed, n_rounds, vote_threshold)
    seconds = time.perf_counter() - started
    final = encode_weights(learners[0].mli_get_current_weights().weights)
    report = {
        "seconds": seconds,
        "seconds_per_round": seconds / n_rounds,
        "decisions": results.decisions(),
        "model_digest": "0x" + hashlib.sha256(final).hexdigest(),
        "learner_calls": {name: {"calls": int(calls), "seconds": total,
                                 "seconds_per_call": total / calls}
                          for name, (calls, total) in totals.items()},
    }
    return report, initial


# ------------------------------------------------------------------------ on chain


def _close_all(agents: list[_AgentProcess]) -> None:
    for agent in agents:
        agent.close()


class _AgentProcess:
    """One ``colearn agent`` process, started among ``children`` (which stop it); a thread
    reads its stdout and notes when its final JSON line arrives."""

    def __init__(self, index: int, command: list[str], env: dict[str, str], log_path: Path,
                 children: ChildProcesses):
        self.index = index
        self.log_path = log_path
        self._log = log_path.open("w")
        try:
            self.process = children.start(command, name=f"agent {index}",
                                          stdout=subprocess.PIPE, stderr=self._log, env=env,
                                          text=True)
        except BaseException:
            self._log.close()
            raise
        self.final: dict[str, Any] | None = None
        self.final_at: float | None = None
        self._started_at = 0.0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        # The agent prints its final JSON with rich, which wraps long lines at the
        # console's width: the JSON is every line from the one starting with "{" on,
        # joined (its strings hold no spaces, so a break never falls inside one).
        assert self.process.stdout is not None
        json_lines: list[str] = []
        for line in self.process.stdout:
            now = time.perf_counter()
            if not json_lines and not line.startswith("{"):
                continue
            if not json_lines:
                self._started_at = now
            json_lines.append(line.rstrip("\n"))
            try:
                final = json.loads("".join(json_lines))
            except ValueError:
                continue
            if isinstance(final, dict) and "seconds" in final:
                self.final, self.final_at = final, self._started_at
            json_lines = []

    @property
    def exited(self) -> bool:
        return self.process.poll() is not None

    def failure(self) -> str:
        """What went wrong, from the end of its log."""
        self._log.flush()
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-15:]
        return (f"agent {self.index} exited with code {self.process.returncode}; "
                f"end of {self.log_path}:\n" + "\n".join(tail))

    def close(self) -> None:
        """Once the process has stopped: its reader thread, pipe and log."""
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


def _wait_until(condition, agents: list[_AgentProcess], deadline: float, what: str,
                interval: float = 0.01) -> None:
    while not condition():
        for agent in agents:
            if agent.exited and agent.final is None:
                agent._reader.join(timeout=2)
                if agent.final is None:
                    raise BenchError(agent.failure())
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(interval)


def _rss(path: Path, model_bytes: int) -> dict[str, Any] | None:
    """What the factory recorded of an agent's memory (None if it recorded nothing)."""
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    baseline, peak = recorded["baseline_bytes"], recorded["peak_bytes"]
    return {"baseline_bytes": baseline, "peak_bytes": peak,
            "peak_over_baseline_models": (peak - baseline) / model_bytes}


def run_on_chain(n_learners: int, n_rounds: int, seed: int, preset: str, vote_threshold: float,
                 poll_interval: float, initial_weights: Any, workdir: Path, console: Console,
                 timeout: float, factory: str = FACTORY, profile_dir: Path | None = None,
                 follow: str = "ws", store_kind: str = "file",
                 model_bytes: int = 1) -> dict[str, Any]:
    """The on-chain run's report (see the module's docstring for what is timed)."""
    from agents.chain.client import CollectiveLearningClient
    from agents.chain.keys import PRIVATE_KEY_ENV
    from agents.chain.network import connect, derive_accounts, fund_accounts
    from agents.devtools.anvil import AnvilProcess
    from agents.experiment.launch import launch_experiment
    from agents.experiment.spec import ExperimentTerms
    from agents.storage.store import FileWeightStore, WeightStore

    deadline = time.monotonic() + timeout
    store_dir, barrier, logs = workdir / "store", workdir / "barrier", workdir / "logs"
    for directory in (store_dir, barrier, logs):
        directory.mkdir(parents=True, exist_ok=True)
    agents: list[_AgentProcess] = []
    with AnvilProcess(block_time=1, mixed_mining=True) as anvil, contextlib.ExitStack() as stack:
        stack.callback(_close_all, agents)  # once they have stopped
        children = stack.enter_context(ChildProcesses())  # stopped on leaving, however
        w3 = connect(anvil.url)
        store: WeightStore = FileWeightStore(store_dir)
        store_url = f"file:{store_dir}"
        if store_kind == "ipfs":
            from agents.devtools.ipfs import JsIpfsDaemon
            from agents.storage.ipfs import IpfsRpcStore

            ipfs = stack.enter_context(JsIpfsDaemon())
            store_url = ipfs.api_url
            store = stack.enter_context(IpfsRpcStore(store_url))
        accounts = derive_accounts(n_learners, seed, label=ACCOUNT_LABEL)
        fund_accounts(w3, [a.address for a in accounts])
        client, _ = CollectiveLearningClient.deploy(w3, accounts[0])
        # Deadlines far off: no round should ever close by timing out here.
        experiment_id = launch_experiment(client, store, ExperimentTerms(
            learners=[a.address for a in accounts], threshold=vote_threshold, rounds=n_rounds,
            proposal_timeout=3600, voting_timeout=3600,
            metadata={"task": "bench", "preset": preset, "seed": seed}),
            initial_weights).experiment_id
        console.print(f"on chain: anvil at {anvil.url}, experiment {experiment_id}; starting "
                      f"{n_learners} agent processes (logs in {logs})")
        started_processes = time.perf_counter()
        for i, account in enumerate(accounts):
            python = [sys.executable]
            if profile_dir is not None:
                python += ["-m", "cProfile", "-o", str(Path(profile_dir) / f"agent{i}.prof")]
            command = [
                *python, "-m", "agents.cli", "-v", "agent",
                "--rpc", anvil.url, "--contract", client.address,
                "--experiment", str(experiment_id), "--store", store_url,
                "--learner", factory, "--learner-arg", f"index={i}",
                "--learner-arg", f"n_learners={n_learners}", "--learner-arg", f"seed={seed}",
                "--learner-arg", f"preset={preset}",
                "--learner-arg", f"start_barrier={barrier}",
                "--poll", str(poll_interval),
                *(["--events", "ws://" + anvil.url.removeprefix("http://")]
                  if follow == "ws" else []),
            ]
            env = dict(os.environ, OMP_NUM_THREADS="1",
                       **{PRIVATE_KEY_ENV: account.key.hex()})
            agents.append(_AgentProcess(i, command, env, logs / f"agent{i}.log", children))
        _wait_until(lambda: all((barrier / f"ready-{i}").exists() for i in range(n_learners)),
                    agents, deadline, "the agents to start")
        ready = time.perf_counter()
        console.print(f"on chain: agents ready after {ready - started_processes:.1f} s; go")
        (barrier / "go").touch()
        _wait_until(lambda: all(agent.final is not None for agent in agents),
                    agents, deadline, "the experiment to complete", interval=0.05)
        seconds = max(agent.final_at or ready for agent in agents) - ready  # all set here
        for agent in agents:
            agent.process.wait(timeout=30)

        outcome: dict[int, bool | None] = {e.round: None for e in client.events(RoundExpired, experiment_id)}
        outcome.update({d.round: d.accepted for d in client.events(RoundDecided, experiment_id)})
        decisions = [outcome.get(r) for r in range(n_rounds)]
        final_digest, _ = client.current_model(experiment_id)
        n_proposals = len(client.events(WeightsProposed, experiment_id))
    # The store holds the initial weights, the metadata, every proposal, and any weights
    # an agent trained and stored but could not propose (its round had moved on).
    discarded = None if store_kind != "file" else \
        sum(1 for path in store_dir.iterdir() if not path.name.startswith(".")) - 2 - n_proposals

    per_agent: list[dict[str, Any]] = []
    for agent, account in zip(agents, accounts):
        final = agent.final or {}  # every agent printed its final line by now
        s = final["seconds"]
        spent = {key: s.get(key, 0.0) for key in _AGENT_TIMINGS}
        spent["protocol"] = spent["step"] - spent["learner"] + spent["follow"]
        cpu = {key: final.get("cpu_seconds", {}).get(key, 0.0) for key in _AGENT_TIMINGS}
        cpu["protocol"] = cpu["step"] - cpu["learner"] + cpu["follow"]
        per_agent.append({
            "index": agent.index,
            "address": account.address,
            "model_digest": final.get("model_digest"),
            "seconds": spent,
            "cpu_seconds": cpu,
            "seconds_per_round": {key: value / n_rounds for key, value in spent.items()},
            "rss": _rss(barrier / f"rss-{agent.index}.json", model_bytes),
        })
    protocol = sum(a["seconds"]["protocol"] for a in per_agent)
    acting = sum(a["seconds"]["step"] + a["seconds"]["follow"] for a in per_agent)
    total = {key: sum(a["seconds"][key] for a in per_agent) for key in _AGENT_TIMINGS}
    store_total = total["store"]
    store_cpu = sum(a["cpu_seconds"]["store"] for a in per_agent)
    protocol_cpu = sum(a["cpu_seconds"]["protocol"] for a in per_agent)
    return {
        "seconds": seconds,
        "seconds_per_round": seconds / n_rounds,
        "startup_seconds": ready - started_processes,
        "decisions": decisions,
        "model_digest": "0x" + final_digest.hex(),
        "proposals": n_proposals,
        "discarded_proposals": discarded,
        "protocol_seconds": protocol,
        "protocol_seconds_per_round": protocol / n_rounds,
        # the same in CPU time: it does not grow while agents wait for a core, so it is
        # what compares across learner counts on a machine of few cores
        "protocol_cpu_seconds_per_round": protocol_cpu / n_rounds,
        # of all the time the agents spent acting (training and testing included)
        "protocol_share": protocol / acting if acting else 0.0,
        "store_seconds_per_round": store_total / n_rounds,
        # moving weights (encoding, hashing, the store, verifying, decoding), CPU time
        "store_cpu_seconds_per_round": store_cpu / n_rounds,
        "chain_seconds_per_round": (protocol - store_total) / n_rounds,
        # the parts of the protocol's time (all agents); "other": encoding, decoding and
        # hashing weights, logging, the agent's own code
        "protocol_parts_per_round": {
            "status": total["status"] / n_rounds,
            "transactions": total["transactions"] / n_rounds,
            "follow": total["follow"] / n_rounds,
            "store": store_total / n_rounds,
            "other": (protocol - store_total - total["status"] - total["transactions"]
                      - total["follow"]) / n_rounds,
        },
        "follow_seconds_per_round": total["follow"] / n_rounds,
        "agents": per_agent,
    }


# --------------------------------------------------------------------------- both


def run_overhead_bench(n_learners: int = 5, n_rounds: int = 10, seed: int = 0,
                       poll_interval: float = 0.05, *, follow: str = "ws",
                       preset: str = "full",
                       vote_threshold: float = 0.5, store: str = "file",
                       workdir: Path | None = None,
                       timeout: float | None = None, factory: str = FACTORY,
                       profile_dir: Path | None = None,
                       console: Console | None = None) -> dict[str, Any]:
    """Runs the benchmark (see the module's docstring) and returns its report.

    ``workdir`` keeps the store and the agents' logs (default: a temporary directory,
    removed afterwards). ``timeout`` bounds the on-chain run (default: 300 s + 60 s a
    round). ``factory`` is the agents' learner factory: it must build the same learners
    as :func:`colearn_core.tasks.bench.bench_learner`, with its arguments (e.g. a wrapper
    that traces calls). ``follow``: ``"ws"`` (agents subscribe to events over anvil's
    WebSocket) or ``"poll"`` (they poll its HTTP RPC every ``poll_interval`` seconds).
    ``profile_dir``: run each agent under cProfile, writing ``agent<i>.prof`` there (it
    slows the agents down). Raises :class:`BenchError` if an agent fails or the run times
    out; anvil and every agent process are stopped in any case. ``store``: ``"file"`` (a
    directory) or ``"ipfs"`` (a js-ipfs node started for the run)."""
    from colearn_core.tasks.bench import bench_config

    bench_config(preset, n_learners, seed)  # bad arguments fail before any work
    if n_rounds < 1:
        raise ValueError("at least one round")
    if follow not in ("ws", "poll"):
        raise ValueError(f"follow must be 'ws' or 'poll', not {follow!r}")
    if store not in STORES:
        raise ValueError(f"store must be one of {', '.join(STORES)}, not {store!r}")
    console = console or Console(stderr=True)
    timeout = timeout if timeout is not None else 300.0 + 60.0 * n_rounds

    console.print(f"in memory: {n_learners} learners, {n_rounds} rounds (preset {preset})...")
    load = {"before_in_memory": os.getloadavg()[0]}
    in_memory, initial = run_in_memory(n_learners, n_rounds, seed, preset, vote_threshold)
    load["before_on_chain"] = os.getloadavg()[0]
    console.print(f"in memory: {in_memory['seconds_per_round']:.3f} s a round")

    from colearn_core.codec import encode_weights

    payload = encode_weights(initial)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="colearn-bench-")))
        Path(workdir).mkdir(parents=True, exist_ok=True)
        floor = measure_floor(payload, n_learners, Path(workdir))
        model_bytes = len(payload)
        del payload
        on_chain = run_on_chain(n_learners, n_rounds, seed, preset, vote_threshold,
                                poll_interval, initial, Path(workdir), console, timeout,
                                factory, profile_dir, follow, store, model_bytes)
    console.print(f"on chain: {on_chain['seconds_per_round']:.3f} s a round")

    ratio = on_chain["seconds_per_round"] / in_memory["seconds_per_round"]
    protocol = on_chain["protocol_seconds_per_round"]
    stale = [a["index"] for a in on_chain["agents"]
             if a["model_digest"] != on_chain["model_digest"]]
    return {
        "benchmark": "overhead",
        "n_learners": n_learners,
        "n_rounds": n_rounds,
        "seed": seed,
        "preset": preset,
        "vote_threshold": vote_threshold,
        "poll_interval": poll_interval,
        "follow": follow,
        "store": store,
        "cpus": os.cpu_count(),
        # 1-minute load averages: other work on the machine skews the timings
        "load_average": load,
        "in_memory": in_memory,
        "on_chain": on_chain,
        "ratio": ratio,
        "protocol_seconds_per_round": protocol,
        # the physical floor of moving the weights (agents.bench.floor); "model" bytes:
        # the encoded weights, the unit of the agents' RSS over their baseline
        "floor": floor,
        "protocol_over_floor": protocol / floor["seconds_per_round"],
        # the agents' CPU time moving weights over the floor of that work
        "weights_over_floor": on_chain["store_cpu_seconds_per_round"]
                              / floor["seconds_per_round"],
        "model_bytes": model_bytes,
        "decisions_match": in_memory["decisions"] == on_chain["decisions"],
        "models_match": in_memory["model_digest"] == on_chain["model_digest"],
        # agents that stopped without the chain's final model (they should hold it)
        "agents_without_final_model": stale,
        "targets": {
            "ratio_max": TARGET_RATIO,
            "protocol_seconds_per_round_max": TARGET_PROTOCOL_SECONDS,
            "ratio_met": ratio <= TARGET_RATIO,
            "protocol_met": protocol <= TARGET_PROTOCOL_SECONDS,
        },
    }


def bench_overhead(as_json: bool = False, **kwargs: Any) -> dict[str, Any]:
    """``colearn bench overhead [--json]``: runs the benchmark, prints the report (JSON on
    stdout when asked; progress goes to stderr) and returns it."""
    report = run_overhead_bench(console=Console(stderr=True), **kwargs)
    emit(report, as_json, print_overhead_report)
    return report

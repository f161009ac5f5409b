"""Reading logs through providers that cap ``eth_getLogs``, and reading a history while
rounds close.

* :class:`agents.chain.logs.RangedLogs` against a fake node: chunks, halving on the providers'
  refusals, the limit remembered, the first log found by bisection.
* The race (anvil, through :class:`capped_rpc.CappedRpc`): transactions that close rounds
  are mined between every two requests of a history read; no read ever shows a round
  decided without its proposal.
* The cap (anvil, slow): an experiment spanning hundreds of blocks, run by agents (two
  through the relay) through a proxy that refuses ranges over 100 blocks; the audit, the
  history and the explorer then read it through the same proxy.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from capped_rpc import CappedRpc
from conftest import started
from experiments import INITIAL_CID, Exp, digest
from rich.console import Console

from agents.agent.learner_agent import LearnerAgent
from agents.agent.settings import AgentSettings
from agents.audit.checks import audit_history
from agents.audit.explorer import Explorer
from agents.audit.reader import HistoryReader
from agents.audit.report import run_audit
from agents.audit.rows import read_history
from agents.chain.client import CollectiveLearningClient
from agents.chain.errors import ChainError
from agents.chain.logs import RangedLogs, RawLog, refuses_range
from agents.chain.network import connect, derive_accounts, fund_accounts
from agents.chain.types import RoundState
from agents.devtools.anvil import AnvilProcess
from agents.experiment.launch import launch_experiment
from agents.experiment.spec import ExperimentTerms
from agents.relay import Relay, RelayClient, RelayServer
from agents.storage.store import FileWeightStore

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ RangedLogs alone


class _Refusal(Exception):
    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class _FakeNode:
    """Logs at given blocks; refuses ranges over ``cap`` blocks."""

    def __init__(self, blocks: list[int], cap: int | None, refusal: _Refusal | None = None):
        self.blocks, self.cap = blocks, cap
        self.refusal = refusal or _Refusal("block range too large", -32000)
        self.asked: list[tuple[int, int]] = []

    def fetch(self, topics: Any, lo: int, hi: int) -> list[RawLog]:
        self.asked.append((lo, hi))
        if self.cap is not None and hi - lo + 1 > self.cap:
            raise self.refusal
        return [RawLog((b"t",), b"", b, f"0x{b:x}", 0, False) for b in self.blocks
                if lo <= b <= hi]


@pytest.mark.parametrize("message, code", [
    ("query returned more than 10000 results", -32005),  # geth, Infura
    ("Log response size exceeded. You can make eth_getLogs requests with up to a 2K range",
     -32602),  # Alchemy
    ("eth_getLogs is limited to a 10,000 range", -32600),
    ("block range is too wide", None),
    ("exceed maximum block range: 5000", -32000),
    ("the node answered HTTP 413: b'Request Entity Too Large'", None),
])
def test_the_common_provider_refusals_are_recognised(message: str, code: int | None) -> None:
    assert refuses_range(_Refusal(message, code))


@pytest.mark.parametrize("message", ["cannot reach the chain: connection refused",
                                     "execution reverted", "header not found"])
def test_other_failures_are_not_refusals(message: str) -> None:
    assert not refuses_range(_Refusal(message, -32000))


def test_a_capped_node_is_read_in_halved_chunks_and_the_limit_is_remembered() -> None:
    node = _FakeNode([5, 150, 151, 999, 5000], cap=100)
    ranges = RangedLogs(node.fetch)
    assert [e.block_number for e in ranges.read([], 0, 5000)] == [5, 150, 151, 999, 5000]
    assert all(hi - lo + 1 <= 100 for lo, hi in node.asked[ranges.refusals:])
    assert ranges.max_blocks is not None and ranges.max_blocks <= 100
    refusals = ranges.refusals
    assert refusals <= 8  # whole range, 10000 and halvings down to under 100
    node.asked.clear()
    assert [e.block_number for e in ranges.read([], 100, 400)] == [150, 151]
    assert ranges.refusals == refusals, "the limit learned is not asked again"
    assert len(node.asked) == -(-301 // ranges.max_blocks)


def test_a_node_refusing_even_one_block_and_other_errors_are_raised() -> None:
    node = _FakeNode([1], cap=0)
    with pytest.raises(_Refusal):
        RangedLogs(node.fetch).read([], 0, 10)
    broken = _FakeNode([1], cap=1, refusal=_Refusal("internal error", -32603))
    with pytest.raises(_Refusal):
        RangedLogs(broken.fetch).read([], 0, 10)
    assert len(broken.asked) == 1, "an error that is not a refusal is not retried"


def test_the_first_log_is_found_by_bisection_not_by_scanning() -> None:
    created = 7_654_321
    node = _FakeNode([created, created + 5], cap=100)
    ranges = RangedLogs(node.fetch)
    probes: list[int] = []

    def reached(block: int) -> bool:
        probes.append(block)
        return block >= created

    found = ranges.first([], 0, 10_000_000, reached)
    assert found is not None and found.block_number == created
    assert len(node.asked) == 2 and len(probes) <= 25  # one refused query, one exact one
    # Without a way to bisect (or a lying one), it is a chunked scan from the start.
    near = _FakeNode([950], cap=100)
    assert RangedLogs(near.fetch).first([], 0, 2000, lambda b: False).block_number == 950


def test_the_first_log_of_a_range_the_node_takes_is_one_query() -> None:
    node = _FakeNode([40, 60], cap=None)
    assert RangedLogs(node.fetch).first([], 0, 100).block_number == 40
    assert node.asked == [(0, 100)]


# ----------------------------------------------------------- anvil, through a proxy

N_LEARNERS = 3


def _experiment(url: str, label: str, rounds: int) -> tuple[Exp, list[Any]]:
    """A fresh contract with one experiment (3 learners, threshold 50 %), on anvil."""
    w3 = connect(url)
    deployer, *members = derive_accounts(N_LEARNERS + 1, seed=3, label=label)
    fund_accounts(w3, [a.address for a in (deployer, *members)])
    client, _ = CollectiveLearningClient.deploy(w3, deployer)
    initial = digest(f"{label}-initial")
    eid, tx = client.create_experiment([a.address for a in members], 5000, rounds, 3600, 3600,
                                       INITIAL_CID, initial)
    e = Exp(eid, client, members, initial, tx)
    e.join_all()
    return e, members


@pytest.mark.anvil
def test_a_history_read_while_rounds_close_never_shows_half_a_round(
        anvil_process: AnvilProcess) -> None:
    e, _ = _experiment(anvil_process.url, "history-race", rounds=4)
    e.propose(0)
    e.cast(0, [True, True])
    e.propose(1)
    # Between every two requests of a reader, the next step of the experiment is mined:
    # votes that close round 1, then round 2 proposed and closed, then round 3.
    steps = [lambda: e.vote(1, e.voters(1)[0], True), lambda: e.vote(1, e.voters(1)[1], False)]
    for r in (2, 3):
        steps += [lambda r=r: e.propose(r), lambda r=r: e.vote(r, e.voters(r)[0], True),
                  lambda r=r: e.vote(r, e.voters(r)[1], True)]
    pending = list(steps)
    lock = threading.Lock()

    def before(method: str, params: list[Any]) -> None:
        with lock:
            step = pending.pop(0) if pending else None
        if step is not None:
            step()

    with CappedRpc(anvil_process.url, max_blocks=None, before=before) as proxy:
        client = CollectiveLearningClient(connect(proxy.url), e.contract.address)
        reads = 0
        mined_during_reads: list[int] = []
        incremental = HistoryReader(client, e.id)
        while True:
            left = len(pending)
            rows = read_history(client, e.id)
            mined_during_reads.append(left - len(pending))
            for row in rows:  # a round shows from its proposal on, and whole
                assert row.cid == e.proposal(row.round)[0], f"round {row.round}: no CID"
                if row.accepted is not None:
                    assert row.approvals + row.rejections == len(row.votes) == 2
            incremental.update()
            for r in incremental.history().rounds:
                assert r.proposal is not None, f"round {r.round} without its proposal"
                assert r.decision is None or len(r.votes) == 2
            reads += 1
            with lock:
                if not pending:
                    break
        final = read_history(client, e.id)
    assert reads >= 1 and mined_during_reads[0] > 2, "transactions mined between its calls"
    assert [(r.round, r.accepted, r.cid) for r in final] == [
        (r, True, e.proposal(r)[0]) for r in range(4)]
    assert e.state() == RoundState.COMPLETED


@pytest.fixture(scope="module")
def anvil() -> Iterator[AnvilProcess]:
    with started(AnvilProcess, "anvil", "anvil") as process:
        yield process


@pytest.mark.anvil
@pytest.mark.slow
def test_agents_relay_audit_and_explorer_work_through_a_provider_capping_ranges(
        anvil: AnvilProcess, tmp_path) -> None:
    from colearn_core.tasks.digits import DigitsConfig
    from colearn_core.tasks.digits_torch import make_digits_learners
    from colearn_core.training import set_equal_weights

    cap, gap = 100, 150  # empty blocks mined after the creation and after every round
    w3 = connect(anvil.url)
    deployer, *accounts = derive_accounts(N_LEARNERS + 1, seed=4, label="capped-provider")
    fund_accounts(w3, [a.address for a in (deployer, *accounts)])
    creator, _ = CollectiveLearningClient.deploy(w3, deployer)
    store = FileWeightStore(tmp_path / "store")
    learners = make_digits_learners(config=DigitsConfig(n_learners=N_LEARNERS, seed=5))
    set_equal_weights(learners)
    rounds = 3
    eid = launch_experiment(creator, store, ExperimentTerms(
        learners=[a.address for a in accounts], rounds=rounds, proposal_timeout=3600,
        voting_timeout=3600), learners[0].mli_get_current_weights().weights).experiment_id

    with CappedRpc(anvil.url, max_blocks=cap) as proxy:
        proxy.mine(gap)  # the creation is now more than a capped range back
        relay = Relay(CollectiveLearningClient(connect(proxy.url), creator.address, deployer),
                      experiments=[eid], batch_delay=0.2)
        with RelayServer(relay, "127.0.0.1", 0) as server:
            agents = [LearnerAgent(
                CollectiveLearningClient(connect(proxy.url), creator.address, account), store,
                learner, eid, relay=RelayClient(server.url) if i else None,
                settings=AgentSettings(name=f"learner{i}"))
                for i, (account, learner) in enumerate(zip(accounts, learners))]
            stop = threading.Event()
            threads = [threading.Thread(target=a.run, kwargs={"poll_interval": 0.1,
                                                              "stop": stop}) for a in agents]
            for thread in threads:
                thread.start()
            try:
                # Each time a round closes, a long stretch of empty blocks: the agents'
                # polls and proposal lookups then span more than the cap.
                seen = 0
                while not all(a.done for a in agents) and any(t.is_alive() for t in threads):
                    now = creator.round_status(eid).round
                    if now > seen:
                        proxy.mine(gap)
                        seen = now
                    stop.wait(0.05)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(60)
        assert all(a.done for a in agents), "the experiment did not complete"
        assert relay.votes_relayed > 0
        assert proxy.refused > 0 and proxy.largest_range <= cap

        reader_client = CollectiveLearningClient(connect(proxy.url), creator.address)
        queries_before, refused_before = proxy.requests["eth_getLogs"], proxy.refused
        started_at = time.perf_counter()
        reader = HistoryReader(reader_client, eid)
        reader.update()
        h = reader.history()
        seconds = time.perf_counter() - started_at
        report = audit_history(h)
        assert report.ok, report.violations
        assert h.stats.to_block - h.config.block_number > rounds * gap
        assert [r.outcome for r in h.rounds].count("accepted") + \
            [r.outcome for r in h.rounds].count("rejected") == rounds
        log.info("history read through a %d-block cap: %d blocks, %d eth_getLogs (%d refused), "
                 "%d batches, %.2f s", cap, h.stats.to_block - h.stats.from_block,
                 proxy.requests["eth_getLogs"] - queries_before, proxy.refused - refused_before,
                 h.stats.batches, seconds)

        rows = read_history(CollectiveLearningClient(connect(proxy.url), creator.address), eid)
        assert [r.cid for r in rows] == [r.proposal.cid for r in h.rounds if r.proposal]
        explorer = Explorer(CollectiveLearningClient(connect(proxy.url), creator.address))
        try:
            shown = explorer.experiment(eid)
            assert shown["ok"] and shown["closed_rounds"] == rounds
        finally:
            explorer.close()
        # And the command line's audit, through the same proxy.
        out = io.StringIO()
        audited = run_audit(proxy.url, creator.address, eid, console=Console(file=out))
        assert audited.ok, out.getvalue()
        gone = proxy.url
    with pytest.raises(ChainError):  # the proxy is gone: a clear error, not a hang
        CollectiveLearningClient(connect(gone), creator.address).raw_logs([None], 0, 1)

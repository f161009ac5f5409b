"""``colearn audit``: an experiment rebuilt from the chain alone and checked (v2: sealed
  votes and stake too).

* The checker on doctored histories (plain Python objects: the contract can never log
  them): every violation is caught and named.
* Relayed rounds (proposeBySig, castVotesBySig batches), expiries and late decisions on
  both dev chains: the history and gas (each transaction once), audited clean; logs read in
  small or refused block ranges give the same history.
* The demo on anvil: the audit reproduces every chain number of its results.json, clean
  in the terminal, JSON and HTML forms; a replaced or deleted weight blob, a final model
  that does not load and a doctored results.json are caught and named.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import Clock, started
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from experiments import INITIAL_CID, PROPOSAL_TIMEOUT, VOTING_TIMEOUT, Exp, Make, digest
from rich.console import Console
from signed_calls import signed_join, signed_proposal, signed_vote
from web3 import Web3

from agents.audit.checks import (
    CODES,
    audit_history,
    check_history,
    expected_model,
)
from agents.audit.history import (
    ChainView,
    Completion,
    Decision,
    EventRef,
    ExperimentConfig,
    Expiry,
    History,
    Join,
    PenaltyRecord,
    Proposal,
    RoundHistory,
    Transfer,
    TxRecord,
    Vote,
)
from agents.audit.ledger import ledger
from agents.audit.reader import HistoryReader, read_history
from agents.audit.report import print_report, report_json
from agents.audit.report_html import render_html
from agents.chain.client import CollectiveLearningClient
from agents.chain.errors import ChainError
from agents.chain.signing import VoteOpening, sign_commit, vote_commitment
from agents.chain.types import NO_SCORE, ExperimentOptions, score_to_fixed
from agents.cli.main import main
from agents.devtools.anvil import AnvilProcess
from agents.storage.store import FileWeightStore
from colearn_core.codec import encode_weights
from colearn_core.decision import is_accepted

#: Checks that only sealed or staked experiments (test_audit_v2.py) give something to check.
V2_ONLY = {"sealed-votes", "reveal-opening", "vote-skipped", "penalty", "deposit", "withdrawal"}

# ------------------------------------------------------------- doctored histories


def _hash(label: Any) -> str:
    return "0x" + hashlib.sha256(str(label).encode()).hexdigest()


def synthetic_history(n: int = 4, num_rounds: int = 6, threshold: int = 5000,
                      expired: tuple[int, ...] = (2,)) -> History:
    """A consistent history as the contract would log it: every learner joins in turn
    (the last join starts round 0), every round proposed on time by its scheduled proposer
    and decided by its last vote, but the ``expired`` rounds."""
    learners = [to_checksum_address(f"0x{i + 1:040x}") for i in range(n)]
    block, t = 10, 1_000
    config = ExperimentConfig(
        tx_hash=_hash("create"), block_number=block, log_index=0, timestamp=t, experiment_id=1,
        creator=learners[0], learners=learners, threshold_bps=threshold, num_rounds=num_rounds,
        proposal_timeout=PROPOSAL_TIMEOUT, voting_timeout=VOTING_TIMEOUT, join_timeout=600,
        initial_cid="bafk-initial", initial_digest=_hash("initial"), metadata_cid="")
    joins = []
    for j, learner in enumerate(learners):
        block, t = block + 1, t + 1
        joins.append(Join(tx_hash=_hash(f"join{j}"), block_number=block, log_index=0,
                          timestamp=t, learner=learner, learner_index=j, sender=learner,
                          gas_used=35_000))
    start = EventRef(tx_hash=joins[-1].tx_hash, block_number=block, log_index=1, timestamp=t)
    rounds = []
    for r in range(num_rounds):
        proposer = r % n
        row = RoundHistory(round=r, proposer=learners[proposer], proposer_index=proposer)
        if r in expired:
            block, t = block + 1, t + PROPOSAL_TIMEOUT
            row.expiry = Expiry(tx_hash=_hash(f"expire{r}"), block_number=block, log_index=0,
                                timestamp=t)
            row.txs = [TxRecord(hash=row.expiry.tx_hash, role="expire", sender=learners[0],
                                block_number=block, timestamp=t, gas_used=30_000, events=1)]
            rounds.append(row)
            continue
        block, t = block + 1, t + 1
        row.proposal = Proposal(tx_hash=_hash(f"p{r}"), block_number=block, log_index=0,
                                timestamp=t, proposer=learners[proposer], cid=f"bafk-{r}",
                                digest=_hash(f"weights{r}"))
        row.txs = [TxRecord(hash=row.proposal.tx_hash, role="propose", sender=learners[proposer],
                            block_number=block, timestamp=t, gas_used=50_000, events=1)]
        voters = [j for j in range(n) if j != proposer]
        for k, j in enumerate(voters):
            block, t = block + 1, t + 1
            tx = _hash(f"v{r}-{j}")
            row.votes.append(Vote(tx_hash=tx, block_number=block, log_index=0, timestamp=t,
                                  voter=learners[j], learner_index=j,
                                  approve=r % 2 == 0 or (r + j) % 3 == 0,
                                  score=score_to_fixed(0.5 + j / 10)))
            row.txs.append(TxRecord(hash=tx, role="vote", sender=learners[j], block_number=block,
                                    timestamp=t, gas_used=40_000, events=1,
                                    decides=k == len(voters) - 1))
        approvals = sum(v.approve for v in row.votes)
        row.decision = Decision(tx_hash=row.votes[-1].tx_hash, block_number=block, log_index=1,
                                timestamp=t, accepted=is_accepted(approvals, n, threshold),
                                approvals=approvals, rejections=len(row.votes) - approvals)
        rounds.append(row)
    history = History(chain_id=31337, contract=to_checksum_address("0x" + "c1" * 20),
                      config=config, rounds=rounds, joins=joins, start=start)
    digest, model_round, _ = expected_model(history)
    last = rounds[-1].closing
    assert last is not None
    history.completion = Completion(tx_hash=last.tx_hash, block_number=last.block_number,
                                    log_index=last.log_index + 1, timestamp=last.timestamp,
                                    model_digest=digest, model_round=model_round)
    history.view = ChainView(block_number=block, round=num_rounds, model_digest=digest,
                             model_round=model_round, joined=n)
    return history


def codes(history: History) -> set[str]:
    return {v.code for v in check_history(history)}


def messages(history: History, code: str) -> list[str]:
    """The messages of the violations ``code`` the checks find."""
    return [v.message for v in check_history(history) if v.code == code]


def test_an_honest_history_passes_every_check() -> None:
    h = synthetic_history()
    assert {r.outcome for r in h.rounds} >= {"accepted", "rejected", "expired"}
    report = audit_history(h)
    assert report.ok, report.violations
    assert {c.code for c in report.checks} == set(CODES) - {
        "weights-missing", "weights-digest", "final-model-unloadable", "results-mismatch",
        *V2_ONLY}
    assert all(c.checked > 0 for c in report.checks)


def test_a_proposal_by_the_wrong_learner_breaks_the_schedule() -> None:
    h = synthetic_history()
    assert h.rounds[1].proposal is not None
    h.rounds[1].proposal.proposer = h.config.learners[3]
    (v,) = check_history(h)
    assert (v.code, v.round) == ("proposer-schedule", 1)
    assert h.config.learners[3] in v.message and h.config.learners[1] in v.message


def test_tallies_that_differ_from_the_votes_are_named() -> None:
    h = synthetic_history()
    d = h.rounds[3].decision
    assert d is not None
    d.approvals += 1
    (v,) = check_history(h)
    assert (v.code, v.round) == ("tally-mismatch", 3)


def test_a_decision_against_the_rule_is_named() -> None:
    h = synthetic_history(threshold=10_000)  # every voter must approve
    r = next(r for r in h.rounds if r.decision is not None and not r.decision.accepted)
    assert r.decision is not None
    r.decision.accepted = True
    violations = check_history(h)
    rule = [v for v in violations if v.code == "decision-rule"]
    assert [v.round for v in rule] == [r.round]
    assert "10000 bps" in rule[0].message and "says reject" in rule[0].message


def test_a_final_model_that_is_not_the_last_accepted_breaks_the_model_chain() -> None:
    h = synthetic_history()
    assert h.completion is not None and h.view is not None
    h.completion.model_digest = _hash("some other model")
    assert codes(h) == {"model-chain"}
    h = synthetic_history()
    assert h.view is not None
    h.view.model_round = 0  # the contract's view says: the initial model
    assert codes(h) == {"model-chain"}


def test_ineligible_votes_are_named() -> None:
    h = synthetic_history(n=5)
    r = h.rounds[0]
    learners = h.config.learners
    proposer_vote = r.votes[0].model_copy(update={"voter": learners[0], "learner_index": 0})
    duplicate = r.votes[1].model_copy()
    stranger = r.votes[2].model_copy(update={"voter": to_checksum_address("0x" + "ee" * 20),
                                             "learner_index": -1})
    r.votes[:0] = [proposer_vote]
    r.votes += [duplicate, stranger]
    found = messages(h, "vote-eligibility")
    assert len(found) == 3
    assert any("proposer" in m for m in found)
    assert any("twice" in m for m in found)
    assert any("not a learner" in m for m in found)


def test_a_vote_before_the_proposal_or_after_the_close_is_named() -> None:
    h = synthetic_history()
    r = h.rounds[0]
    assert r.proposal is not None and r.decision is not None
    r.votes[0].block_number = r.proposal.block_number - 1
    r.votes[-1].block_number = r.decision.block_number + 1
    found = messages(h, "vote-eligibility")
    assert any("before any proposal" in m for m in found)
    assert any("after the round closed" in m for m in found)


def test_deadlines_are_checked() -> None:
    h = synthetic_history()
    r = h.rounds[0]
    assert r.proposal is not None and r.decision is not None
    r.votes[0].timestamp = r.proposal.timestamp + VOTING_TIMEOUT  # at the deadline: too late
    assert codes(h) == {"timing"}

    h = synthetic_history()
    r = h.rounds[1]
    r.votes.pop()  # an incomplete ballot, decided at once
    assert r.decision is not None
    r.decision.rejections = sum(not v.approve for v in r.votes)
    r.decision.approvals = sum(v.approve for v in r.votes)
    r.decision.accepted = is_accepted(r.decision.approvals, 4, 5000)
    found = check_history(h)
    assert "timing" in {v.code for v in found}
    assert any("before the voting deadline" in v.message for v in found)

    h = synthetic_history()
    expiry = h.rounds[2].expiry
    assert expiry is not None
    expiry.timestamp -= 1  # one second before the proposal deadline
    assert codes(h) == {"timing"}


def test_gaps_duplicates_and_extra_rounds_break_the_sequence() -> None:
    h = synthetic_history()
    del h.rounds[3]
    found = check_history(h)
    assert any(v.code == "round-sequence" and "never closed" in v.message for v in found)

    h = synthetic_history()
    h.rounds[1].duplicates.append("RoundDecided")
    assert codes(h) == {"round-sequence"}

    h = synthetic_history()
    h.config.num_rounds = 5  # the sixth round's events are beyond the experiment
    found = check_history(h)
    assert any("beyond the experiment's 5 rounds" in v.message for v in found)

    h = synthetic_history()
    assert h.view is not None
    h.view.round = 4
    assert codes(h) == {"round-sequence"}


def test_the_completion_is_checked() -> None:
    h = synthetic_history()
    h.completion = None
    assert codes(h) == {"completion"}
    h = synthetic_history()
    h.rounds.pop()
    assert h.view is not None
    h.view.round = len(h.rounds)
    assert "completion" in codes(h)  # completed one round early


def test_an_expiry_after_a_proposal_or_a_decision_without_one_is_against_the_rule() -> None:
    h = synthetic_history()
    r = h.rounds[2]
    r.proposal = h.rounds[1].proposal
    assert "decision-rule" in codes(h)
    h = synthetic_history()
    h.rounds[0].proposal = None
    h.rounds[0].votes = []
    found = check_history(h)
    assert any(v.code == "decision-rule" and "without a proposal" in v.message for v in found)


def test_joins_and_the_start_are_checked() -> None:
    h = synthetic_history(n=3)
    h.joins[1] = h.joins[1].model_copy(update={"learner": h.joins[0].learner})  # twice
    found = check_history(h)
    assert any(v.code == "join" and "joined twice" in v.message for v in found)
    assert any(v.code == "start" and "after 2 of 3 learners joined" in v.message for v in found)
    h = synthetic_history(n=3)
    h.joins.append(h.joins[0].model_copy(update={  # after the deadline, by an outsider
        "learner": "0x" + "ee" * 20, "learner_index": -1,
        "timestamp": h.config.join_deadline, "block_number": 10_000}))
    found = check_history(h)
    assert any(v.code == "join" and "not a learner" in v.message for v in found)
    h = synthetic_history(n=3)
    h.joins[2] = h.joins[2].model_copy(update={"timestamp": h.config.join_deadline})
    assert any(v.code == "join" and "not before the join deadline" in v.message
               for v in check_history(h))
    h = synthetic_history(n=3)
    h.start = h.start.model_copy(update={"tx_hash": h.joins[0].tx_hash})  # not the last join
    assert any(v.code == "start" and "not in the last join" in v.message
               for v in check_history(h))
    h = synthetic_history(n=3)
    h.start = None  # rounds without a start
    found = check_history(h)
    assert any(v.code == "start" and "no ExperimentStarted" in v.message for v in found)
    assert "timing" not in {v.code for v in found}  # round 0's start is unknown: not judged
    h = synthetic_history(n=3)
    assert h.start is not None
    h.start = h.start.model_copy(update={"block_number": 10_000})  # after round events
    assert any(v.code == "start" and "before the experiment started" in v.message
               for v in check_history(h))


def test_a_cancellation_is_checked() -> None:
    h = synthetic_history(n=3, num_rounds=1, expired=())
    deadline = h.config.join_deadline
    unfilled = h.model_copy(update={"joins": h.joins[:2], "start": None, "rounds": [],
                                    "completion": None, "view": None})
    unfilled.cancellation = EventRef(tx_hash=_hash("cancel"), block_number=500, log_index=0,
                                     timestamp=deadline)
    assert codes(unfilled) == set()
    early = unfilled.model_copy(update={"cancellation": unfilled.cancellation.model_copy(
        update={"timestamp": deadline - 1})})
    assert any(v.code == "cancellation" and "before the join deadline" in v.message
               for v in check_history(early))
    full = h.model_copy(update={"cancellation": unfilled.cancellation})
    found = check_history(full)
    assert any(v.code == "cancellation" and "although the experiment started" in v.message
               for v in found)
    assert any(v.code == "cancellation" and "after the cancellation" not in v.message
               for v in found)
    late_round = unfilled.model_copy(update={"rounds": h.rounds})
    late_round.cancellation = unfilled.cancellation.model_copy(update={"block_number": 1})
    assert "cancellation" in codes(late_round)


def test_store_checks_on_a_synthetic_history(tmp_path: Path) -> None:
    h = synthetic_history(num_rounds=3, expired=())
    store = FileWeightStore(tmp_path / "store")
    blobs = {None: encode_weights({"w": np.zeros(3, np.float32)})}
    for r in h.rounds:
        blobs[r.round] = encode_weights({"w": np.full(3, r.round, np.float32)})
    # The chain names what the store holds: CIDs and digests of real blobs.
    h.config.initial_cid = store.put(blobs[None])
    h.config.initial_digest = "0x" + hashlib.sha256(blobs[None]).hexdigest()
    for r in h.rounds:
        assert r.proposal is not None
        r.proposal.cid = store.put(blobs[r.round])
        r.proposal.digest = "0x" + hashlib.sha256(blobs[r.round]).hexdigest()
    digest, model_round, _ = expected_model(h)
    assert h.completion is not None and h.view is not None
    h.completion.model_digest = h.view.model_digest = digest
    assert audit_history(h, store=store).ok

    # NaN in the final model: present and intact, but it does not load.
    nan = encode_weights({"w": np.array([np.nan, 0, 0], np.float32)})
    final = next(r for r in h.rounds if r.round + 1 == model_round)
    assert final.proposal is not None
    final.proposal.cid = store.put(nan)
    final.proposal.digest = h.completion.model_digest = h.view.model_digest = \
        "0x" + hashlib.sha256(nan).hexdigest()
    report = audit_history(h, store=store)
    assert {v.code for v in report.violations} == {"final-model-unloadable"}
    assert "NaN" in report.violations[0].message

    # A proposal whose bytes are intact but whose on-chain digest is another's.
    h.rounds[0].proposal.digest = _hash("not these bytes")  # type: ignore[union-attr]
    report = audit_history(h, store=store)
    assert ("weights-digest", 0) in {(v.code, v.round) for v in report.violations}


# ------------------------------------------------------- relayed rounds, on both chains


def run_mixed_experiment(e: Exp, relayer: LocalAccount, clock: Clock) -> None:
    """Five rounds of four learners: direct, relayed (proposeBySig and one castVotesBySig
    batch), expired, decided after the voting deadline, and a batch plus a direct vote."""
    learners = [a.address for a in e.learners]
    relay = e.by(relayer)
    # round 0: direct, all approve
    e.propose(0)
    e.cast(0, [True, True, True])
    # round 1: relayed proposal, one batch of three signed votes (one approves, one could
    # not test the proposal: NO_SCORE)
    _, digest = e.proposal(1)
    relay.propose_by_sig(signed_proposal(e, e.proposer(1), 1))
    v = e.voters(1)
    relay.cast_votes_by_sig(e.id, 1, digest, learners, [
        signed_vote(e, v[0], 1, True, score_to_fixed(0.7)),
        signed_vote(e, v[1], 1, False, NO_SCORE),
        signed_vote(e, v[2], 1, False, score_to_fixed(0.2))])
    # round 2: no proposal; expired after the deadline
    clock.mine_at(clock.latest() + PROPOSAL_TIMEOUT)
    relay.expire(e.id, 2)
    # round 3: a proposal, one vote, decided after the voting deadline
    e.propose(3)
    e.vote(3, e.voters(3)[0], True, score_to_fixed(0.9))
    clock.mine_at(clock.latest() + VOTING_TIMEOUT)
    relay.decide(e.id, 3)
    # round 4: a batch of two signed votes, then the deciding direct vote
    e.propose(4)
    v = e.voters(4)
    relay.cast_votes_by_sig(e.id, 4, e.proposal(4)[1], learners, [
        signed_vote(e, v[0], 4, True, score_to_fixed(0.6)),
        signed_vote(e, v[2], 4, True, score_to_fixed(0.5))])
    e.vote(4, v[1], False, score_to_fixed(0.4))


def test_relayed_rounds_expiries_and_late_decisions_audit_clean(
        chain: Web3, make: Make, outsider: LocalAccount, clock: Clock) -> None:
    e = make(n=4, threshold=5000, rounds=5)
    make(n=3)  # another experiment beside it: its events are not this one's
    run_mixed_experiment(e, outsider, clock)
    h = read_history(CollectiveLearningClient(chain, e.contract.address), e.id)
    report = audit_history(h)
    assert report.ok, report.violations

    assert [r.outcome for r in h.rounds] == ["accepted", "rejected", "expired", "rejected",
                                             "accepted"]
    roles = [[(t.role, t.decides) for t in r.txs] for r in h.rounds]
    assert roles == [
        [("propose", False), ("vote", False), ("vote", False), ("vote", True)],
        [("proposeBySig", False), ("castVotesBySig", True)],
        [("expire", False)],
        [("propose", False), ("vote", False), ("decide", False)],
        [("propose", False), ("castVotesBySig", False), ("vote", True)],
    ]
    r1 = h.rounds[1]
    assert {t.sender for t in r1.txs} == {outsider.address}  # the relayer paid, not the voters
    assert [v.voter for v in r1.votes] == [a.address for a in e.voters(1)]
    assert [v.vote_score for v in r1.votes] == [0.7, None, 0.2]
    batch = r1.txs[1]
    assert batch.events == 4  # three VoteCast and the RoundDecided
    receipts = [chain.eth.get_transaction_receipt(t.hash)["gasUsed"] for t in r1.txs]
    assert r1.gas == sum(receipts)  # the batch counted once, not once per vote
    assert [t.gas_used for t in r1.txs] == receipts
    assert h.completion is not None and h.completion.model_round == 5
    assert h.completion.model_digest == "0x" + e.proposal(4)[1].hex()
    times = [chain.eth.get_block(t.block_number)["timestamp"] for r in h.rounds for t in r.txs]
    assert times == [t.timestamp for r in h.rounds for t in r.txs]

    # Logs read two blocks at a time, or from a node that refuses more than three blocks a
    # query (the reader halves its range), give the same history.
    small = read_history(CollectiveLearningClient(chain, e.contract.address), e.id,
                         chunk_blocks=2)
    assert small.rounds == h.rounds and small.stats.log_queries > h.stats.log_queries
    refusing = _RefusingClient(chain, e.contract.address, max_blocks=3)
    reader = HistoryReader(refusing, e.id, chunk_blocks=10_000)
    reader.update()
    assert reader.history().rounds == h.rounds
    assert refusing.refused > 0


def test_joins_start_and_cancellation_read_from_the_chain_audit_clean(
        chain: Web3, make: Make, outsider: LocalAccount, clock: Clock) -> None:
    e = make(n=3, rounds=1, join=False)
    e.join(e.learners[2])
    relayed = e.by(outsider).join_by_sig(signed_join(e, e.learners[0]))
    last = e.join(e.learners[1])
    client = CollectiveLearningClient(chain, e.contract.address)
    h = read_history(client, e.id)
    assert audit_history(h).ok
    assert [j.learner for j in h.joins] == [e.learners[i].address for i in (2, 0, 1)]
    assert [j.relayed for j in h.joins] == [False, True, False]
    assert h.joins[1].sender == outsider.address and h.joins[1].gas_used == relayed.gas_used
    assert h.start is not None and h.start.tx_hash == last.tx_hash
    assert h.cancellation is None and h.view is not None and h.view.joined == 3

    c = make(n=3, join=False)
    c.join(c.learners[0])
    clock.mine_at(c.deadline())
    cancel = c.by(outsider).cancel(c.id)
    h = read_history(client, c.id)
    assert audit_history(h).ok
    assert h.cancellation is not None and h.cancellation.tx_hash == cancel.tx_hash
    assert h.start is None and h.rounds == [] and len(h.joins) == 1


class _RefusingClient(CollectiveLearningClient):
    """A node that refuses eth_getLogs over more than ``max_blocks`` blocks, like many
    hosted RPCs."""

    def __init__(self, w3: Web3, address: str, max_blocks: int):
        super().__init__(w3, address)
        self.max_blocks = max_blocks
        self.refused = 0

    def logs_once(self, topics: Any, from_block: int, to_block: int) -> Any:
        if to_block - from_block + 1 > self.max_blocks:
            self.refused += 1
            raise ChainError(f"query exceeds the maximum block range of {self.max_blocks}")
        return super().logs_once(topics, from_block, to_block)


def test_an_unknown_experiment_is_one_clear_error(chain: Web3, make: Make) -> None:
    make(n=3)
    client = CollectiveLearningClient(chain, make(n=3).contract.address)
    with pytest.raises(ChainError, match="experiment 7 does not exist .* has 2 experiments"):
        read_history(client, 7)


def test_the_history_grows_as_rounds_land(chain: Web3, make: Make) -> None:
    e = make(n=3, rounds=3)
    reader = HistoryReader(CollectiveLearningClient(chain, e.contract.address), e.id)
    reader.update()
    assert reader.history().rounds == [] and reader.version == 1
    assert not reader.update()  # nothing new
    e.propose(0)
    e.cast(0, [True, None])
    assert reader.update()
    (r0,) = reader.history().rounds
    assert r0.outcome == "voting" and len(r0.votes) == 1
    e.cast(0, [None, False])
    reader.update()
    assert reader.history().rounds[0].outcome == "accepted"
    assert audit_history(reader.history()).ok


# -------------------------------------------------------------- the demo, on anvil


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``colearn demo --chain URL`` on its own anvil (3 learners, 4 rounds)."""
    out = tmp_path_factory.mktemp("demo")
    with started(AnvilProcess, "anvil", "anvil") as anvil:
        assert main(["demo", "--chain", anvil.url, "--learners", "3", "--rounds", "4",
                     "--out", str(out)]) == 0
        results = json.loads((out / "results.json").read_text())
        yield {"url": anvil.url, "out": out, "results": results,
               "contract": results["contract"], "store": out / "store"}


def audit_cli(demo: dict[str, Any], *extra: str) -> list[str]:
    return ["audit", "--rpc", demo["url"], "--contract", demo["contract"], "--experiment",
            str(demo["results"]["experiment_id"]), *extra]


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.anvil
def test_the_audit_reproduces_every_chain_number_of_the_demo(
        demo_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    html = tmp_path / "audit.html"
    code, out, _ = run_main(audit_cli(demo_run, "--json", "--store",
                                      f"file:{demo_run['store']}", "--compare",
                                      str(demo_run["out"] / "results.json"), "--html",
                                      str(html)), capsys)
    assert code == 0
    report = json.loads(out)
    assert report["ok"] and report["violations"] == []
    assert {c["code"] for c in report["checks"]} == set(CODES) - V2_ONLY
    # Every number of results.json that is on chain, rebuilt from the chain alone.
    claimed = demo_run["results"]
    rebuilt = report["results"]
    off_chain = {"test_accuracy", "final_test_accuracy", "solo_test_accuracy", "seconds"}
    assert set(report["off_chain_fields"]) == off_chain
    assert set(claimed) - off_chain == set(rebuilt)
    for key in rebuilt:
        if key != "rounds":
            assert rebuilt[key] == claimed[key], key
    assert rebuilt["rounds"] == [{k: v for k, v in row.items() if k != "test_accuracy"}
                                 for row in claimed["rounds"]]
    # The HTML report: one file, plots inline, nothing fetched from elsewhere.
    page = html.read_text()
    assert "Audit passed" in page and page.count("data:image/png;base64,") == 2
    assert "src=\"http" not in page and "href=\"http" not in page
    assert page.count("<tr class='round'>") == 4


@pytest.mark.anvil
def test_the_terminal_report_of_an_honest_experiment(
        demo_run: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(audit_cli(demo_run, "--store", f"file:{demo_run['store']}"),
                              capsys)
    assert code == 0, err
    assert "audit passed" in out
    for word in ("rounds (from the chain's events", "votes (VoteCast", "transactions",
                 "proposer-schedule", "final-model-unloadable", demo_run["contract"]):
        assert word in out
    for row in demo_run["results"]["rounds"]:
        assert f"{row['approvals']}/{row['rejections']}" in out
        assert f"{row['gas']['total']:,}" in out


@pytest.fixture
def tampered(demo_run: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The demo with a copy of its store and results file, to tamper with."""
    store = tmp_path / "store"
    shutil.copytree(demo_run["store"], store)
    results = tmp_path / "results.json"
    shutil.copy(demo_run["out"] / "results.json", results)
    return {**demo_run, "store": store, "results_file": results}


def _violations(args: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    code, out, _ = run_main([*args, "--json"], capsys)
    report = json.loads(out)
    assert code == 3 and not report["ok"]
    return report["violations"]


def _store_violations(tampered: dict[str, Any],
                      capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """What an audit that reads the weights again from the tampered store finds."""
    return _violations(audit_cli(tampered, "--store", f"file:{tampered['store']}"), capsys)


def _found_in_store(tampered: dict[str, Any],
                   capsys: pytest.CaptureFixture[str]) -> set[tuple[str, int | None]]:
    """(code, round) of each violation :func:`_store_violations` finds."""
    return {(v["code"], v["round"]) for v in _store_violations(tampered, capsys)}


def _final_and_other(tampered: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The round whose proposal is the final model, and a round whose proposal is another
    blob."""
    final = tampered["results"]["final_model"]
    assert final["model_round"] > 0, "the demo accepted no round"
    rounds = tampered["results"]["rounds"]
    final_row = rounds[final["model_round"] - 1]
    return final_row, next(r for r in rounds if r["cid"] != final_row["cid"])


@pytest.mark.anvil
def test_a_replaced_weight_blob_is_caught(tampered: dict[str, Any],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    final_row, row = _final_and_other(tampered)
    (tampered["store"] / row["cid"]).write_bytes(encode_weights({"w": np.ones(2, np.float32)}))
    found = _store_violations(tampered, capsys)
    assert [(v["code"], v["round"]) for v in found] == [("weights-digest", row["round"])]
    assert row["cid"] in found[0]["message"]
    # The final model's blob replaced: its digest, and the final model, fail.
    (tampered["store"] / final_row["cid"]).write_bytes(b"not weights")
    assert _found_in_store(tampered, capsys) == {
        ("weights-digest", row["round"]), ("weights-digest", final_row["round"]),
        ("final-model-unloadable", None)}


@pytest.mark.anvil
def test_a_deleted_weight_blob_and_an_unloadable_final_model_are_caught(
        tampered: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    final_row, other = _final_and_other(tampered)
    (tampered["store"] / other["cid"]).unlink()
    (tampered["store"] / final_row["cid"]).unlink()
    assert _found_in_store(tampered, capsys) == {
        ("weights-missing", other["round"]), ("weights-missing", final_row["round"]),
        ("final-model-unloadable", None)}


@pytest.mark.anvil
def test_a_results_file_that_disagrees_with_the_chain_is_named_row_by_row(
        tampered: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    doctored = json.loads(tampered["results_file"].read_text())
    doctored["rounds"][0]["accepted"] = not doctored["rounds"][0]["accepted"]
    doctored["rounds"][2]["votes"][1]["vote_score"] = 0.99
    doctored["rounds"][3]["test_accuracy"] = 1.0  # off chain: not compared
    doctored["total_gas"] += 1
    tampered["results_file"].write_text(json.dumps(doctored))
    found = _violations(audit_cli(tampered, "--compare", str(tampered["results_file"])), capsys)
    assert all(v["code"] == "results-mismatch" for v in found)
    assert sorted(v["round"] for v in found if v["round"] is not None) == [0, 2]
    messages = " | ".join(v["message"] for v in found)
    assert "rounds[0].accepted" in messages and "rounds[2].votes[1].vote_score" in messages
    assert "total_gas" in messages

    # The terminal form names them too, and the exit code says the audit failed.
    code, out, _ = run_main(audit_cli(tampered, "--compare", str(tampered["results_file"])),
                            capsys)
    assert code == 3 and "audit failed" in out and "results-mismatch round 0" in out


@pytest.mark.anvil
def test_bad_input_is_one_line_without_traceback(demo_run: dict[str, Any]) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agents.cli", "audit", *args],
                              capture_output=True, text=True, timeout=120, check=False)

    contract = demo_run["contract"]
    cases = [
        (["--rpc", "http://127.0.0.1:9", "--contract", contract, "--experiment", "1"],
         "cannot reach the chain"),
        (["--rpc", demo_run["url"], "--contract", "0x" + "12" * 20, "--experiment", "1"],
         "no contract code"),
        (["--rpc", demo_run["url"], "--contract", contract, "--experiment", "9"],
         "experiment 9 does not exist"),
        (["--rpc", demo_run["url"], "--contract", contract, "--experiment", "1", "--compare",
          "/nonexistent/results.json"], "no such file"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_the_report_renders_in_all_three_forms() -> None:
    h = synthetic_history()
    h.rounds[1].votes[0].score = NO_SCORE
    report = audit_history(h)
    console = Console(record=True, width=200)
    print_report(report, console)
    text = console.export_text()
    assert "audit passed" in text and "no score" in text and "expired" in text
    data = report_json(report)
    assert data["ok"] and data["history"]["config"]["learners"] == h.config.learners
    json.dumps(data)
    page = render_html(report)
    assert page.count("data:image/png;base64,") == 2 and "Audit passed" in page


@pytest.mark.anvil
@pytest.mark.slow
def test_the_audit_benchmark_runs_small() -> None:
    """scripts/bench_audit.py on 60 rounds of 3 learners: relayed proposals and batches,
    an expiry (round 49) and a late decision (round 24), audited clean."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_audit.py"
    result = subprocess.run([sys.executable, str(script), "--rounds", "60", "--learners", "3",
                             "--json"], capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["ok"] and figures["rounds"] == 60
    assert figures["audit_seconds"] < 10 and figures["logs"] > 60 * 3


# ------------------------------------------------------ sealed votes and stake (v2)
#
# A sealed, staked experiment of four learners on both dev chains (direct and relayed
# commitments, direct and batched reveals, an expiry, a rejection by every voter, a vote left
# unrevealed, every withdrawal) audits clean and its ledger is the contract's; the history
# read from the chain, doctored one thing at a time, is one named violation each.

REVEAL_TIMEOUT = 150
OPTIONS = ExperimentOptions(
    reveal_timeout=REVEAL_TIMEOUT, stake=10**15, reward_pool=10**16 + 7,
    missed_proposal_penalty=3 * 10**14, unrevealed_vote_penalty=2 * 10**14,
    rejected_proposal_penalty=5 * 10**14, rejection_share_bps=7500, proposer_share_bps=3000)


def _opening(label: str, approve: bool, score: float) -> VoteOpening:
    return VoteOpening(approve=approve, score=score_to_fixed(score), salt=digest(label))


def run_sealed_staked(contract: CollectiveLearningClient, learners: list[LocalAccount],
                      outsider: LocalAccount, clock: Clock) -> tuple[int, list[str]]:
    """Four rounds of a sealed, staked experiment of four learners, then every
    withdrawal; returns its id and the learners' addresses."""
    members = learners[:4]
    addresses = [a.address for a in members]
    by = [contract.with_account(a) for a in members]
    relay = contract.with_account(outsider)
    eid, _ = by[0].create_experiment(addresses, 5000, 4, PROPOSAL_TIMEOUT, VOTING_TIMEOUT,
                                     INITIAL_CID, digest("initial-v2"), "", 1_000,
                                     options=OPTIONS)
    for client in by:
        client.join(eid)

    def commit(r: int, j: int, opening: VoteOpening, relayed: bool = False) -> None:
        proposal = digest(f"v2-{r}")
        c = vote_commitment(eid, r, addresses[j], proposal, opening)
        if relayed:
            relay.commit_votes_by_sig(eid, r, addresses, [sign_commit(
                members[j], chain_id=contract.chain_id, contract=contract.address,
                experiment_id=eid, round_index=r, learner_index=j, commitment=c)])
        else:
            by[j].commit_vote(eid, r, c)

    # round 0: three direct commitments (CommitsComplete), two direct reveals, one relayed
    by[0].propose(eid, 0, "bafy-v2-0", digest("v2-0"))
    o0 = {j: _opening(f"salt0-{j}", True, 0.6 + j / 10) for j in (1, 2, 3)}
    for j, o in o0.items():
        commit(0, j, o)
    by[1].reveal_vote(eid, 0, o0[1])
    by[2].reveal_vote(eid, 0, o0[2])
    relay.reveal_votes(eid, 0, addresses, [(3, o0[3])])  # the last reveal decides: accepted
    # round 1: no proposal, expired: the missed-proposal penalty
    clock.mine_at(clock.latest() + PROPOSAL_TIMEOUT)
    relay.expire(eid, 1)
    # round 2: every voter rejects (relayed commitments, one batch of reveals): penalised
    by[2].propose(eid, 2, "bafy-v2-2", digest("v2-2"))
    o2 = {j: _opening(f"salt2-{j}", False, 0.1) for j in (0, 1, 3)}
    for j, o in o2.items():
        commit(2, j, o, relayed=True)
    relay.reveal_votes(eid, 2, addresses, [(j, o) for j, o in o2.items()])
    # round 3: two commit, one reveals; decided after the reveal deadline
    by[3].propose(eid, 3, "bafy-v2-3", digest("v2-3"))
    o3 = {j: _opening(f"salt3-{j}", True, 0.7) for j in (0, 1)}
    for j, o in o3.items():
        commit(3, j, o)
    proposed = clock.latest()
    clock.mine_at(proposed + VOTING_TIMEOUT + 1)
    by[0].reveal_vote(eid, 3, o3[0])
    clock.mine_at(proposed + VOTING_TIMEOUT + REVEAL_TIMEOUT + 2)
    relay.decide(eid, 3)
    for client in by:
        client.withdraw(eid)
    return eid, addresses


@pytest.fixture
def sealed_history(chain: Web3, contract: CollectiveLearningClient,
                   learners: list[LocalAccount], outsider: LocalAccount,
                   clock: Clock) -> History:
    eid, _ = run_sealed_staked(contract, learners, outsider, clock)
    return read_history(CollectiveLearningClient(chain, contract.address), eid)


def _codes(h: History) -> list[str]:
    return [v.code for v in check_history(h)]


def test_a_sealed_staked_experiment_audits_clean(
        sealed_history: History, chain: Web3, contract: CollectiveLearningClient) -> None:
    h = sealed_history
    report = audit_history(h)
    assert report.ok, report.violations
    checked = {c.code: c.checked for c in report.checks}
    for code in ("sealed-votes", "reveal-opening", "penalty", "deposit", "withdrawal"):
        assert checked.get(code, 0) > 0, code
    assert [r.outcome for r in h.rounds] == ["accepted", "expired", "rejected", "rejected"]
    assert [len(r.commits) for r in h.rounds] == [3, 0, 3, 2]
    assert h.rounds[0].commits_complete is not None and h.rounds[3].commits_complete is None
    assert all(v.call is not None and v.call.salt is not None for r in h.rounds for v in r.votes)
    assert [t.role for t in h.rounds[0].txs] == [
        "propose", "commitVote", "commitVote", "commitVote", "revealVote", "revealVote",
        "revealVotes"]
    assert [(p.round, p.reason) for r in h.rounds for p in r.penalties] == [
        (1, "missed_proposal"), (2, "rejected_proposal"), (3, "unrevealed_vote")]
    assert len(h.deposits) == 5 and len(h.withdrawals) == 4
    # The ledger rebuilt from the events is the contract's.
    book = ledger(h)
    assert book.finished == "completed"
    for account in book.accounts:
        view = contract.account_of(h.experiment_id, account.address)
        assert (account.penalties, account.proposer_shares, account.voter_shares) == (
            view.penalties, view.proposer_shares, view.voter_shares)
        assert view.withdrawn and account.withdrawn == account.owed
        balance_paid = sum(w.amount for w in h.withdrawals if w.account == account.address)
        assert balance_paid == account.owed
    assert 0 <= book.deposited - book.withdrawn <= book.dust_bound
    # The report's three forms show the terms and the money.
    console = Console(record=True, width=400)
    print_report(report, console)
    text = console.export_text()
    assert "sealed votes (150 s to reveal)" in text and f"stake {OPTIONS.stake}" in text
    assert f"withdrawn {book.withdrawn}" in text
    assert report_json(report)["ledger"]["pool"] == book.pool
    assert "share 3000 bps" in render_html(report)


def test_a_wrong_opening_is_named(sealed_history: History) -> None:
    h = sealed_history.model_copy(deep=True)
    call = h.rounds[0].votes[0].call
    assert call is not None
    call.salt = "0x" + "ab" * 32
    assert _codes(h) == ["reveal-opening"]
    h = sealed_history.model_copy(deep=True)
    h.rounds[2].commits[1].commitment = "0x" + "cd" * 32
    assert _codes(h) == ["reveal-opening"]
    h = sealed_history.model_copy(deep=True)
    vote = h.rounds[0].votes[1]
    vote.call, vote.call_problem = None, "transaction 0x.. holds no vote of it"
    assert _codes(h) == ["reveal-opening"]
    vote.call_direct = False  # through a wallet contract: not readable, not a violation
    assert _codes(h) == []


def test_reveals_and_commitments_out_of_their_windows_are_named(sealed_history: History) -> None:
    h = sealed_history.model_copy(deep=True)
    r3 = h.rounds[3]
    assert r3.proposal is not None
    r3.votes[0].timestamp = r3.proposal.timestamp + VOTING_TIMEOUT - 1  # window not open
    found = check_history(h)
    assert [v.code for v in found] == ["sealed-votes"] and "reveal window" in found[0].message
    h = sealed_history.model_copy(deep=True)
    r3 = h.rounds[3]
    assert r3.proposal is not None and r3.decision is not None
    r3.decision.timestamp = r3.proposal.timestamp + VOTING_TIMEOUT + REVEAL_TIMEOUT - 1
    found = check_history(h)
    assert [v.code for v in found] == ["sealed-votes"] and "1 of 2" in found[0].message
    h = sealed_history.model_copy(deep=True)
    h.rounds[0].commits_complete = None  # and the reveals came before the window opened
    found = check_history(h)
    assert {v.code for v in found} == {"sealed-votes"}
    assert any("no CommitsComplete" in v.message for v in found)
    h = sealed_history.model_copy(deep=True)
    h.rounds[3].commits[1].timestamp += VOTING_TIMEOUT * 2
    assert "sealed-votes" in _codes(h)
    h = sealed_history.model_copy(deep=True)
    h.config.options = h.config.options.model_copy(update={"reveal_timeout": 0})  # public
    assert "sealed-votes" in _codes(h)


def test_penalties_deposits_and_withdrawals_are_checked(sealed_history: History) -> None:
    h = sealed_history.model_copy(deep=True)
    h.rounds[3].penalties.clear()  # unrevealed vote unpunished
    assert set(_codes(h)) == {"penalty", "withdrawal"}  # and the payouts no longer add up
    h = sealed_history.model_copy(deep=True)
    h.rounds[1].penalties[0].amount += 1
    assert "penalty" in _codes(h)
    h = sealed_history.model_copy(deep=True)
    stray = h.rounds[0].penalties
    stray.append(PenaltyRecord(**h.rounds[0].votes[0].model_dump(
        include={"tx_hash", "block_number", "log_index", "timestamp"}),
        learner=h.config.learners[1], learner_index=1, round=0, reason="unrevealed_vote",
        amount=1))
    assert "penalty" in _codes(h)
    h = sealed_history.model_copy(deep=True)
    h.deposits.pop(1)  # and more is then paid out than was deposited
    assert _codes(h) == ["deposit", "withdrawal"]
    h = sealed_history.model_copy(deep=True)
    h.withdrawals[2].amount += 1
    assert _codes(h) == ["withdrawal"]
    h = sealed_history.model_copy(deep=True)
    h.withdrawals.append(h.withdrawals[0].model_copy(update={"log_index": 99}))  # twice
    found = check_history(h)
    assert {v.code for v in found} == {"withdrawal"}
    assert any("second time" in v.message for v in found)
    h = sealed_history.model_copy(deep=True)
    early = h.rounds[0].proposal
    assert early is not None
    h.withdrawals.insert(0, Transfer(account=h.config.learners[2], amount=1,
                                     **EventRef(**early.model_dump(include={
                                         "tx_hash", "block_number", "log_index",
                                         "timestamp"})).model_dump()))
    assert any("before the experiment completed" in v.message for v in check_history(h))


def test_terms_the_contract_refuses_are_a_configuration_violation(
        sealed_history: History) -> None:
    h = sealed_history.model_copy(deep=True)
    h.config.options = ExperimentOptions.model_construct(
        **{**h.config.options.__dict__, "proposer_share_bps": 10_001, "stake": 2**200})
    found = check_history(h)
    assert "configuration" in {v.code for v in found}
    h = sealed_history.model_copy(deep=True)
    h.config.options = ExperimentOptions.model_construct(
        **{**ExperimentOptions().__dict__, "rejection_share_bps": 5})
    assert "configuration" in _codes(h)



# ----------------------------------------- the spec's [options], as the audit reads them

_SPEC = """
learners = {learners}
rounds = 2

[initial]
weights = "initial.safetensors"

[options]
{options}
"""


def _spec(tmp_path: Path, learners: list[str], options: str) -> Path:
    (tmp_path / "initial.safetensors").write_bytes(encode_weights({"w": np.zeros(3, np.float32)}))
    path = tmp_path / "spec.toml"
    path.write_text(_SPEC.format(learners=json.dumps(learners), options=options))
    return path


def test_a_specs_options_reach_the_chain_and_the_audit(
        tmp_path: Path, chain: Web3, contract: CollectiveLearningClient,
        learners: list[LocalAccount]) -> None:
    from agents.experiment.launch import launch_experiment
    from agents.experiment.spec import ExperimentSpec

    path = _spec(tmp_path, [a.address for a in learners[:3]], """
reveal_timeout = 300
stake = 1000000000000000000
reward_pool = 5
missed_proposal_penalty = 7
unrevealed_vote_penalty = 8
rejected_proposal_penalty = 9
rejection_share_bps = 6000
proposer_share_bps = 2500
""")
    spec = ExperimentSpec.load(path)
    assert spec.options.sealed and spec.options.staked and spec.options.in_eth
    creator = contract.with_account(learners[0])
    launched = launch_experiment(creator, FileWeightStore(tmp_path / "store"), spec,
                                 spec.initial_weights())
    h = read_history(CollectiveLearningClient(chain, contract.address), launched.experiment_id)
    assert h.config.options == spec.options
    assert [(d.account, d.amount) for d in h.deposits] == [(learners[0].address, 5)]
    assert audit_history(h).ok


@pytest.mark.parametrize("options, message", [
    ("stake = 1.5", "options.stake: Input should be a valid integer"),
    ('stake = "1000"', "options.stake: Input should be a valid integer"),
    (f"stake = {2**96}", "options.stake: Input should be less than or equal to"),
    ("reveal_timeout = -1", "options.reveal_timeout: Input should be greater than"),
    (f"reveal_timeout = {30 * 86_400 + 1}", "options.reveal_timeout"),
    ('stake = 1\ntoken = "ETH"', "is not an ERC-20 address"),
    ('stake = 1\ntoken = "0x0000000000000000000000000000000000000000"', "zero address"),
    ("proposer_share_bps = 5000", "proposer_share_bps need a stake or a reward pool"),
    ("stake = 1\nrejection_share_bps = 10001", "options.rejection_share_bps"),
    ("sealed = true", "options.sealed: Extra inputs are not permitted"),
])
def test_bad_options_in_a_spec_are_one_line(tmp_path: Path, options: str, message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = _spec(tmp_path, ["0x" + "11" * 20, "0x" + "22" * 20], options)
    code, out, err = run_main(["experiment", "create", "--rpc", "http://127.0.0.1:9",
                               "--contract", "0x" + "33" * 20, "--spec", str(path),
                               "--store", f"file:{tmp_path}"], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert message in err, err


def test_the_create_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["experiment", "create", "--help"], capsys)
    assert code == 0
    for field in ExperimentOptions.model_fields:
        assert field in out, field

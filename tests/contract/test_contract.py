"""The CollectiveLearning contract's whole behaviour, through CollectiveLearningClient, on
both dev chains (eth-tester and anvil): lifecycle, views, events, every custom error,
deadlines to the second, the decision rule's edge cases and the gas of a round."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from experiments import (
    FIRST_ROUND_GAS_BUDGET,
    INITIAL_CID,
    JOIN_TIMEOUT,
    MAX_LEARNERS,
    MAX_ROUNDS,
    MAX_TIMEOUT,
    PROPOSAL_TIMEOUT,
    ROUND_GAS_BUDGET,
    TX_GAS_CAP,
    UINT32_MAX,
    VOTE_GAS_BUDGET,
    VOTING_TIMEOUT,
    ZERO,
    ZERO_ADDRESS,
    Make,
    block_time,
    digest,
    reverts,
    same_address,
)
from web3 import Web3

from agents.chain.client import PLAIN, CollectiveLearningClient
from agents.chain.logs import RoundDecided, RoundExpired, VoteCast, WeightsProposed
from agents.chain.network import advance_time
from agents.chain.types import (
    NO_SCORE,
    ExperimentOptions,
    RoundState,
    TxResult,
    score_to_fixed,
)
from colearn_core.decision import is_accepted

# ------------------------------------------------------------------- lifecycle


def test_create_records_the_configuration(chain: Web3, contract: CollectiveLearningClient,
                                          make: Make, learners: list[LocalAccount],
                                          outsider: LocalAccount) -> None:
    assert contract.experiment_count() == 0
    e = make(n=4, threshold=6000, rounds=7, metadata="bafy-task")
    assert e.id == 1 and contract.experiment_count() == 1
    assert e.started is not None
    started_at = block_time(chain, e.started)  # round 0 starts with the last join

    info = e.info()
    assert (info.num_learners, info.threshold_bps, info.num_rounds) == (4, 6000, 7)
    assert (info.proposal_timeout, info.voting_timeout) == (PROPOSAL_TIMEOUT, VOTING_TIMEOUT)
    assert (info.join_timeout, info.joined) == (JOIN_TIMEOUT, 4)
    assert (info.round, info.phase_start, info.proposed) == (0, started_at, False)
    assert (info.approvals, info.rejections, info.model_round) == (0, 0, 0)
    assert e.state() is RoundState.PROPOSING
    assert e.deadline() == started_at + PROPOSAL_TIMEOUT
    assert e.model() == (e.initial, 0)
    assert contract.proposal_digest(e.id) == ZERO
    for i, learner in enumerate(learners[:4]):
        assert contract.learner_index(e.id, learner.address) == i
        assert contract.vote_of(e.id, learner.address) == (False, False)
    assert contract.learner_index(e.id, learners[4].address) is None
    assert contract.learner_index(e.id, outsider.address) is None

    event = contract.experiment_created(e.id)
    assert event.experiment_id == e.id
    assert same_address(event.creator, contract.account.address)
    assert [a.lower() for a in event.learners] == [a.address.lower() for a in learners[:4]]
    assert (event.threshold_bps, event.num_rounds) == (6000, 7)
    assert (event.proposal_timeout, event.voting_timeout) == (PROPOSAL_TIMEOUT, VOTING_TIMEOUT)
    assert event.join_timeout == JOIN_TIMEOUT
    assert (event.initial_cid, event.initial_digest) == (INITIAL_CID, e.initial)
    assert event.metadata_cid == "bafy-task"
    assert (event.tx_hash, event.block_number) == (e.created.tx_hash, e.created.block_number)
    assert same_address(event.proposer(5), learners[1].address)


def test_create_accepts_the_boundary_values(chain: Web3, make: Make,
                                            learners: list[LocalAccount]) -> None:
    e = make(n=2, threshold=10_000, rounds=MAX_ROUNDS, proposal_timeout=MAX_TIMEOUT,
             voting_timeout=MAX_TIMEOUT, metadata="", join_timeout=MAX_TIMEOUT, join=False)
    assert e.deadline() == block_time(chain, e.created) + MAX_TIMEOUT  # the join deadline
    e.join_all()
    info = e.info()
    assert (info.num_learners, info.threshold_bps, info.num_rounds) == (2, 10_000, MAX_ROUNDS)
    assert (info.proposal_timeout, info.voting_timeout) == (MAX_TIMEOUT, MAX_TIMEOUT)
    assert info.join_timeout == MAX_TIMEOUT
    assert e.started is not None
    assert e.deadline() == block_time(chain, e.started) + MAX_TIMEOUT
    assert e.contract.experiment_created(e.id).metadata_cid == ""
    zero = make(n=2, threshold=0, rounds=1, proposal_timeout=1, voting_timeout=1,
                join_timeout=1, join=False)
    assert zero.state() in (RoundState.JOINING, RoundState.JOIN_TIMED_OUT)
    assert zero.info().threshold_bps == 0


def test_create_accepts_the_maximum_number_of_learners(
        chain: Web3, chain_kind: str, contract: CollectiveLearningClient,
        gas_figures: dict[str, dict[str, int]]) -> None:
    addresses = [Web3.to_checksum_address(f"0x{i + 1:040x}") for i in range(MAX_LEARNERS)]
    eid, tx = contract.create_experiment(addresses, 5000, 1, PROPOSAL_TIMEOUT, VOTING_TIMEOUT,
                                         INITIAL_CID, digest("initial"))
    assert contract.experiment(eid).num_learners == MAX_LEARNERS
    assert contract.learner_index(eid, addresses[-1]) == MAX_LEARNERS - 1
    assert tx.gas_used < TX_GAS_CAP, "creating the largest experiment must fit in one transaction"
    gas_figures.setdefault(chain_kind, {})[f"create ({MAX_LEARNERS} learners)"] = tx.gas_used


def test_accepted_round(chain: Web3, make: Make, outsider: LocalAccount) -> None:
    e = make(n=4, threshold=5000, rounds=3)
    l0, l1, l2, l3 = e.learners
    cid, dig = e.proposal(0)

    proposed = e.propose(0)
    proposed_at = block_time(chain, proposed)
    assert e.state() is RoundState.VOTING
    assert e.deadline() == proposed_at + VOTING_TIMEOUT
    assert e.contract.proposal_digest(e.id) == dig
    info = e.info()
    assert (info.round, info.proposed, info.phase_start) == (0, True, proposed_at)

    scores = [score_to_fixed(0.9731), NO_SCORE, -(5 * 10**17)]
    v1 = e.vote(0, l1, True, scores[0])
    v2 = e.vote(0, l2, False, scores[1])
    assert e.contract.vote_of(e.id, l1.address) == (True, True)
    assert e.contract.vote_of(e.id, l2.address) == (True, False)
    assert e.contract.vote_of(e.id, l3.address) == (False, False)
    assert e.contract.vote_of(e.id, l0.address) == (False, False)
    assert e.contract.vote_of(e.id, outsider.address) == (False, False)
    info = e.info()
    assert (info.approvals, info.rejections) == (1, 1)
    assert e.model() == (e.initial, 0), "the model changes only when a round is accepted"
    assert e.state() is RoundState.VOTING

    v3 = e.vote(0, l3, True, scores[2])  # the last vote decides
    decided_at = block_time(chain, v3)
    assert e.model() == (dig, 1)
    info = e.info()
    assert (info.round, info.proposed, info.phase_start) == (1, False, decided_at)
    assert (info.approvals, info.rejections, info.model_round) == (0, 0, 1)
    assert e.state() is RoundState.PROPOSING
    assert e.deadline() == decided_at + PROPOSAL_TIMEOUT
    for voter in (l1, l2, l3):
        assert e.contract.vote_of(e.id, voter.address) == (False, False), "a new round"

    (p,) = e.contract.events(WeightsProposed, e.id)
    assert (p.experiment_id, p.round, p.cid, p.digest) == (e.id, 0, cid, dig)
    assert same_address(p.proposer, l0.address)
    assert (p.tx_hash, p.block_number) == (proposed.tx_hash, proposed.block_number)
    votes = e.contract.events(VoteCast, e.id, 0)
    assert [(v.voter.lower(), v.approve, v.score) for v in votes] == [
        (l1.address.lower(), True, scores[0]),
        (l2.address.lower(), False, NO_SCORE),
        (l3.address.lower(), True, scores[2]),
    ]
    assert [v.tx_hash for v in votes] == [v1.tx_hash, v2.tx_hash, v3.tx_hash]
    (d,) = e.contract.events(RoundDecided, e.id)
    assert (d.round, d.accepted, d.approvals, d.rejections) == (0, True, 2, 1)
    assert d.tx_hash == v3.tx_hash and d.log_index > votes[-1].log_index
    assert e.contract.events(RoundExpired, e.id) == []
    assert e.completed_events() == []

    # round 1 belongs to the next learner
    with reverts("NotProposer", experimentId=e.id, round=1, account=l0.address):
        e.by(l0).propose(e.id, 1, *e.proposal(1))
    e.propose(1)
    assert e.contract.events(WeightsProposed, e.id, 1)[0].proposer.lower() == l1.address.lower()


def test_rejected_round_keeps_the_model(chain: Web3, make: Make) -> None:
    e = make(n=3, threshold=5000, rounds=2)
    e.propose(0)
    e.cast(0, [False, False])
    assert e.tally(0) == (False, 0, 2)
    assert e.model() == (e.initial, 0)
    assert (e.info().round, e.info().model_round) == (1, 0)
    assert e.state() is RoundState.PROPOSING


def test_expire_after_the_proposal_timeout(chain: Web3, make: Make,
                                           outsider: LocalAccount) -> None:
    e = make(n=3, rounds=3)
    advance_time(chain, PROPOSAL_TIMEOUT)
    assert e.state() is RoundState.PROPOSAL_TIMED_OUT
    with reverts("UnexpectedRoundState", current="PROPOSAL_TIMED_OUT", expected="PROPOSING"):
        e.propose(0)

    tx = e.by(outsider).expire(e.id, 0)  # anyone may expire
    expired_at = block_time(chain, tx)
    (x,) = e.contract.events(RoundExpired, e.id)
    assert (x.experiment_id, x.round, x.tx_hash) == (e.id, 0, tx.tx_hash)
    assert e.contract.events(RoundDecided, e.id) == []
    assert e.model() == (e.initial, 0)
    info = e.info()
    assert (info.round, info.phase_start, info.proposed) == (1, expired_at, False)
    assert e.state() is RoundState.PROPOSING
    assert e.deadline() == expired_at + PROPOSAL_TIMEOUT
    e.propose(1)  # the next proposer carries on
    assert e.state() is RoundState.VOTING


def test_decide_after_the_voting_timeout_counts_missing_votes_as_not_approving(
        chain: Web3, make: Make, outsider: LocalAccount) -> None:
    e = make(n=4, threshold=5000, rounds=3)
    l0, l1, l2, l3 = e.learners

    e.propose(0)
    e.vote(0, l1, True)
    advance_time(chain, VOTING_TIMEOUT)
    assert e.state() is RoundState.VOTING_TIMED_OUT
    with reverts("UnexpectedRoundState", current="VOTING_TIMED_OUT", expected="VOTING"):
        e.vote(0, l2, True)
    tx = e.by(outsider).decide(e.id, 0)  # anyone may decide
    (d,) = e.contract.events(RoundDecided, e.id, 0)
    # 1 of 3 approves, 2 missing: 1 * 10000 < 5000 * 3
    assert (d.accepted, d.approvals, d.rejections, d.tx_hash) == (False, 1, 0, tx.tx_hash)
    assert e.model() == (e.initial, 0)
    assert e.contract.vote_of(e.id, l1.address) == (False, False)

    e.propose(1)
    e.vote(1, l2, True)
    e.vote(1, l3, True)
    advance_time(chain, VOTING_TIMEOUT)
    e.by(l0).decide(e.id, 1)  # l0's vote is missing: 2 * 10000 >= 5000 * 3
    assert e.tally(1) == (True, 2, 0)
    assert e.model() == (e.proposal(1)[1], 2)


def test_full_experiment_round_robin_until_completion(chain: Web3, make: Make,
                                                      outsider: LocalAccount) -> None:
    e = make(n=3, threshold=5000, rounds=4)
    l0, l1, l2 = e.learners
    txs: dict[str, TxResult] = {}

    def only_the_scheduled_proposer(round_index: int) -> None:
        for account in [*e.learners, outsider]:
            if account is not e.proposer(round_index):
                with reverts("NotProposer", experimentId=e.id, round=round_index,
                             account=account.address):
                    e.by(account).propose(e.id, round_index, *e.proposal(round_index))

    # round 0: l0 proposes, accepted
    only_the_scheduled_proposer(0)
    txs["p0"] = e.propose(0)
    e.cast(0, [True, True])
    assert e.model() == (e.proposal(0)[1], 1)
    # round 1: l1 proposes, rejected
    only_the_scheduled_proposer(1)
    txs["p1"] = e.propose(1)
    e.cast(1, [False, False])
    assert e.model() == (e.proposal(0)[1], 1)
    # round 2: l2 stays silent, the round expires
    advance_time(chain, PROPOSAL_TIMEOUT)
    e.by(l0).expire(e.id, 2)
    assert e.model() == (e.proposal(0)[1], 1)
    # round 3: back to l0; one vote of two, decided after the deadline: 1 * 10000 >= 5000 * 2
    only_the_scheduled_proposer(3)
    txs["p3"] = e.propose(3)
    e.vote(3, l1, True)
    assert e.state() is RoundState.VOTING
    advance_time(chain, VOTING_TIMEOUT)
    last = e.by(outsider).decide(e.id, 3)

    final = e.proposal(3)[1]
    assert e.model() == (final, 4)
    assert e.state() is RoundState.COMPLETED
    assert e.deadline() == 0
    info = e.info()
    assert (info.round, info.model_round, info.proposed) == (4, 4, False)
    assert e.contract.vote_of(e.id, l1.address) == (False, False)
    (done,) = e.completed_events()
    assert done["args"]["modelDigest"] == final and done["args"]["modelRound"] == 4
    assert done["transactionHash"].to_0x_hex() == last.tx_hash

    # the whole history from the events alone
    proposals = e.contract.events(WeightsProposed, e.id)
    assert [(p.round, p.proposer.lower(), p.cid, p.digest) for p in proposals] == [
        (r, e.proposer(r).address.lower(), *e.proposal(r)) for r in (0, 1, 3)]
    assert [p.tx_hash for p in proposals] == [txs["p0"].tx_hash, txs["p1"].tx_hash,
                                              txs["p3"].tx_hash]
    assert [(v.round, v.voter.lower(), v.approve) for v in e.contract.events(VoteCast, e.id)] == [
        (0, l1.address.lower(), True), (0, l2.address.lower(), True),
        (1, l0.address.lower(), False), (1, l2.address.lower(), False),
        (3, l1.address.lower(), True)]
    assert [(d.round, d.accepted, d.approvals, d.rejections)
            for d in e.contract.events(RoundDecided, e.id)] == [(0, True, 2, 0), (1, False, 0, 2),
                                                     (3, True, 1, 0)]
    assert [x.round for x in e.contract.events(RoundExpired, e.id)] == [2]
    assert len(e.contract.events(VoteCast, e.id, 1)) == 2


def test_completion_without_an_accepted_round_keeps_the_initial_model(
        chain: Web3, make: Make) -> None:
    e = make(n=2, threshold=5000, rounds=2)
    advance_time(chain, PROPOSAL_TIMEOUT)
    e.by(e.learners[1]).expire(e.id, 0)
    e.propose(1)
    e.cast(1, [False])  # n = 2: the single vote decides
    assert e.state() is RoundState.COMPLETED
    assert e.model() == (e.initial, 0)
    (done,) = e.completed_events()
    assert (done["args"]["modelDigest"], done["args"]["modelRound"]) == (e.initial, 0)


def test_experiments_live_side_by_side(chain: Web3, make: Make, learners: list[LocalAccount],
                                       deployer: LocalAccount) -> None:
    l0, l1, l2, l3, l4, _ = learners
    a = make(members=[l0, l1, l2], threshold=5000, rounds=2)
    b = make(members=[l3, l1, l4, l0], threshold=10_000, rounds=1,
             creator=a.contract.with_account(l1))  # a learner creates this one
    assert (a.id, b.id) == (1, 2) and a.contract.experiment_count() == 2
    assert same_address(a.contract.experiment_created(a.id).creator, deployer.address)
    assert same_address(a.contract.experiment_created(b.id).creator, l1.address)
    assert a.contract.learner_index(a.id, l0.address) == 0
    assert a.contract.learner_index(b.id, l0.address) == 3
    assert a.contract.learner_index(a.id, l3.address) is None

    a.propose(0)
    b.propose(0)
    a.vote(0, l1, True)
    assert a.contract.vote_of(a.id, l1.address) == (True, True)
    assert a.contract.vote_of(b.id, l1.address) == (False, False)
    b.vote(0, l1, False)
    assert a.contract.vote_of(b.id, l1.address) == (True, False)
    with reverts("NotLearner", experimentId=a.id, account=l3.address):
        a.vote(0, l3, True)
    a.vote(0, l2, True)  # decides a's round 0
    assert (a.info().round, a.state()) == (1, RoundState.PROPOSING)
    assert (b.info().round, b.state()) == (0, RoundState.VOTING)
    assert (b.info().approvals, b.info().rejections) == (0, 1)
    b.vote(0, l4, True)
    b.vote(0, l0, True)  # 2 of 3 approve, threshold 10000: rejected

    assert a.model() == (a.proposal(0)[1], 1)
    assert b.model() == (b.initial, 0)
    assert b.state() is RoundState.COMPLETED and a.state() is RoundState.PROPOSING
    assert [p.experiment_id for p in a.contract.events(WeightsProposed, a.id)] == [a.id]
    assert [v.voter.lower() for v in a.contract.events(VoteCast, b.id)] == [
        x.address.lower() for x in (l1, l4, l0)]
    assert [(d.experiment_id, d.accepted) for d in a.contract.events(RoundDecided, a.id)] == [(a.id, True)]
    assert [(d.experiment_id, d.accepted) for d in a.contract.events(RoundDecided, b.id)] == [(b.id, False)]
    assert a.completed_events() == [] and len(b.completed_events()) == 1


# -------------------------------------------------------------- decision rule

# (n, threshold_bps, ballot of the n - 1 voters: True/False, None = no vote, accepted)
DECISIONS = {
    "tie-n5-5000-2of4": (5, 5000, [True, True, False, False], True),
    "n5-5001-2of4": (5, 5001, [True, True, False, False], False),
    "n4-5000-1of3": (4, 5000, [True, False, False], False),
    "n4-5000-2of3": (4, 5000, [True, True, False], True),
    "threshold0-all-reject": (3, 0, [False, False], True),
    "threshold0-no-votes": (3, 0, [None, None], True),
    "threshold10000-3of4": (5, 10_000, [True, True, True, False], False),
    "threshold10000-4of4": (5, 10_000, [True, True, True, True], True),
    "threshold10000-one-missing": (5, 10_000, [True, True, True, None], False),
    "n2-approve": (2, 5000, [True], True),
    "n2-reject": (2, 5000, [False], False),
    "n2-missing": (2, 5000, [None], False),
    "missing-tie-n5-2of4": (5, 5000, [True, True, None, None], True),
    "missing-n5-1of4": (5, 5000, [True, None, None, None], False),
}


@pytest.mark.parametrize("case", DECISIONS.values(), ids=DECISIONS.keys())
def test_decision_rule(chain: Web3, make: Make, outsider: LocalAccount,
                       case: tuple[int, int, list[bool | None], bool]) -> None:
    n, threshold, ballot, accepted = case
    approvals, rejections = ballot.count(True), ballot.count(False)
    assert is_accepted(approvals, n, threshold) is accepted, "in-memory rule disagrees"

    e = make(n=n, threshold=threshold, rounds=1)
    e.propose(0)
    e.cast(0, ballot)
    if None in ballot:
        assert e.state() is RoundState.VOTING
        advance_time(chain, VOTING_TIMEOUT)
        e.by(outsider).decide(e.id, 0)
    (d,) = e.contract.events(RoundDecided, e.id)
    assert (d.accepted, d.approvals, d.rejections) == (accepted, approvals, rejections)
    expected_model = (e.proposal(0)[1], 1) if accepted else (e.initial, 0)
    assert e.model() == expected_model
    assert e.state() is RoundState.COMPLETED
    (done,) = e.completed_events()
    assert (done["args"]["modelDigest"], done["args"]["modelRound"]) == expected_model


# ------------------------------------------------------------------ deadlines
# Calls are accepted strictly before a deadline; at or after it the round is timed out.


def test_propose_is_accepted_one_second_before_the_deadline(chain: Web3, make: Make,
                                                            clock: Any) -> None:
    e = make()
    dl = e.deadline()
    assert e.started is not None
    assert dl == block_time(chain, e.started) + PROPOSAL_TIMEOUT
    clock.mine_at(dl - 2)
    assert e.state() is RoundState.PROPOSING
    clock.next_at(dl - 1)
    tx = e.propose(0)
    assert block_time(chain, tx) == dl - 1
    assert e.state() is RoundState.VOTING
    assert e.deadline() == dl - 1 + VOTING_TIMEOUT


def test_propose_is_refused_at_the_deadline_then_expire_is_allowed(
        chain: Web3, make: Make, clock: Any, outsider: LocalAccount) -> None:
    e = make()
    dl = e.deadline()
    clock.last_second_before(dl)
    with reverts("UnexpectedRoundState", experimentId=e.id, round=0, current="PROPOSING",
                 expected="PROPOSAL_TIMED_OUT"):
        e.by(outsider).expire(e.id, 0)
    clock.mine_at(dl - 1)
    assert e.state() is RoundState.PROPOSING
    clock.next_at(dl)
    with reverts("UnexpectedRoundState", experimentId=e.id, round=0,
                 current="PROPOSAL_TIMED_OUT", expected="PROPOSING"):
        e.propose(0)
    if clock.latest() < dl:  # anvil mined the refused transaction at dl already
        clock.mine_at(dl)
    assert e.state() is RoundState.PROPOSAL_TIMED_OUT
    clock.next_at(clock.latest() + 1)
    e.by(outsider).expire(e.id, 0)
    assert e.info().round == 1


def test_vote_is_accepted_one_second_before_the_voting_deadline_and_refused_at_it(
        chain: Web3, make: Make, clock: Any) -> None:
    e = make(n=3)
    e.propose(0)
    vdl = e.deadline()
    clock.last_second_before(vdl)
    tx = e.vote(0, e.learners[1], True)
    assert block_time(chain, tx) == vdl - 1
    assert e.state() is RoundState.VOTING
    clock.next_at(vdl)
    with reverts("UnexpectedRoundState", experimentId=e.id, round=0,
                 current="VOTING_TIMED_OUT", expected="VOTING"):
        e.vote(0, e.learners[2], True)
    assert e.contract.vote_of(e.id, e.learners[2].address) == (False, False)


def test_decide_is_refused_before_the_voting_deadline_and_allowed_at_it(
        chain: Web3, make: Make, clock: Any, outsider: LocalAccount) -> None:
    e = make(n=3)
    e.propose(0)
    e.vote(0, e.learners[1], True)
    vdl = e.deadline()
    clock.last_second_before(vdl)
    with reverts("UnexpectedRoundState", experimentId=e.id, round=0, current="VOTING",
                 expected="VOTING_TIMED_OUT"):
        e.by(outsider).decide(e.id, 0)
    clock.mine_at(vdl)
    assert e.state() is RoundState.VOTING_TIMED_OUT
    e.by(outsider).decide(e.id, 0)
    (d,) = e.contract.events(RoundDecided, e.id)
    assert (d.accepted, d.approvals, d.rejections) == (True, 1, 0)


# --------------------------------------------------------------------- errors


def _addr(i: int) -> str:
    return Web3.to_checksum_address(f"0x{i:040x}")


MAX_CID = 128  # bytes, of every CID (PROTOCOL v2)
MAX_AMOUNT = 2**96 - 1  # of a stake, reward pool or penalty


# name -> (createExperiment overrides, error name, error args)
CREATE_ERRORS: dict[str, tuple[dict[str, Any], str, dict[str, Any]]] = {
    "no-learners": ({"learners": []}, "TooFewLearners", {"given": 0, "minimum": 2}),
    "one-learner": ({"learners": [_addr(1)]}, "TooFewLearners", {"given": 1, "minimum": 2}),
    "too-many-learners": ({"learners": [_addr(i + 1) for i in range(MAX_LEARNERS + 1)]},
                          "TooManyLearners", {"given": MAX_LEARNERS + 1, "maximum": MAX_LEARNERS}),
    "zero-address": ({"learners": [_addr(1), ZERO_ADDRESS]}, "InvalidLearner",
                     {"learner": ZERO_ADDRESS}),
    "duplicate": ({"learners": [_addr(1), _addr(2), _addr(1)]}, "DuplicateLearner",
                  {"learner": _addr(1)}),
    "threshold-above-10000": ({"threshold": 10_001}, "InvalidThreshold",
                              {"thresholdBps": 10_001}),
    "zero-rounds": ({"rounds": 0}, "InvalidRoundCount", {"numRounds": 0}),
    "too-many-rounds": ({"rounds": MAX_ROUNDS + 1}, "InvalidRoundCount",
                        {"numRounds": MAX_ROUNDS + 1}),
    "zero-proposal-timeout": ({"pt": 0}, "InvalidTimeout",
                              {"proposalTimeout": 0, "votingTimeout": VOTING_TIMEOUT,
                               "maximum": MAX_TIMEOUT}),
    "zero-voting-timeout": ({"vt": 0}, "InvalidTimeout",
                            {"proposalTimeout": PROPOSAL_TIMEOUT, "votingTimeout": 0,
                             "maximum": MAX_TIMEOUT}),
    "proposal-timeout-over-30-days": ({"pt": MAX_TIMEOUT + 1}, "InvalidTimeout",
                                      {"proposalTimeout": MAX_TIMEOUT + 1,
                                       "maximum": MAX_TIMEOUT}),
    "voting-timeout-over-30-days": ({"vt": MAX_TIMEOUT + 1}, "InvalidTimeout",
                                    {"votingTimeout": MAX_TIMEOUT + 1, "maximum": MAX_TIMEOUT}),
    "voting-timeout-over-uint32": ({"vt": UINT32_MAX + 1}, "InvalidTimeout",
                                   {"votingTimeout": UINT32_MAX + 1, "maximum": MAX_TIMEOUT}),
    "zero-join-timeout": ({"jt": 0}, "InvalidJoinTimeout",
                          {"joinTimeout": 0, "maximum": MAX_TIMEOUT}),
    "join-timeout-over-30-days": ({"jt": MAX_TIMEOUT + 1}, "InvalidJoinTimeout",
                                  {"joinTimeout": MAX_TIMEOUT + 1, "maximum": MAX_TIMEOUT}),
    "empty-cid": ({"cid": ""}, "EmptyCid", {}),
    "cid-too-long": ({"cid": "b" * (MAX_CID + 1)}, "CidTooLong",
                     {"length": MAX_CID + 1, "maximum": MAX_CID}),
    "metadata-too-long": ({"metadata": "m" * (MAX_CID + 1)}, "CidTooLong",
                          {"length": MAX_CID + 1, "maximum": MAX_CID}),
    "zero-digest": ({"digest": ZERO}, "EmptyDigest", {}),
    "reveal-timeout-over-30-days": ({"options": ExperimentOptions.model_construct(
        **{**PLAIN.model_dump(), "reveal_timeout": MAX_TIMEOUT + 1})}, "InvalidRevealTimeout",
        {"revealTimeout": MAX_TIMEOUT + 1, "maximum": MAX_TIMEOUT}),
    "penalty-without-stake": ({"options": ExperimentOptions(missed_proposal_penalty=1)},
                              "InvalidStakeTerms", {"maximum": MAX_AMOUNT}),
    "token-without-stake": ({"options": ExperimentOptions(token=_addr(7))},
                            "InvalidStakeTerms", {"maximum": MAX_AMOUNT}),
    "share-over-10000": ({"options": ExperimentOptions.model_construct(
        **{**ExperimentOptions(stake=1).model_dump(), "proposer_share_bps": 10_001})},
        "InvalidStakeTerms", {"maximum": MAX_AMOUNT}),
    "stake-over-uint96": ({"options": ExperimentOptions.model_construct(
        **{**PLAIN.model_dump(), "stake": MAX_AMOUNT + 1})},
        "InvalidStakeTerms", {"maximum": MAX_AMOUNT}),
}


@pytest.mark.parametrize("case", CREATE_ERRORS.values(), ids=CREATE_ERRORS.keys())
def test_create_errors(chain: Web3, contract: CollectiveLearningClient,
                       learners: list[LocalAccount],
                       case: tuple[dict[str, Any], str, dict[str, Any]]) -> None:
    overrides, name, args = case
    params: dict[str, Any] = {
        "learners": [a.address for a in learners[:3]], "threshold": 5000, "rounds": 3,
        "pt": PROPOSAL_TIMEOUT, "vt": VOTING_TIMEOUT, "cid": INITIAL_CID,
        "digest": digest("initial"), "jt": JOIN_TIMEOUT, "metadata": "bafy-metadata",
        "options": PLAIN, **overrides}
    with reverts(name, **args):
        contract.create_experiment(params["learners"], params["threshold"], params["rounds"],
                                   params["pt"], params["vt"], params["cid"],
                                   params["digest"], params["metadata"], params["jt"],
                                   options=params["options"])
    assert contract.experiment_count() == 0


def test_unknown_experiment(chain: Web3, make: Make, learners: list[LocalAccount]) -> None:
    e = make()
    c = e.by(learners[0])
    calls: dict[str, Callable[[int], Any]] = {
        "propose": lambda eid: c.propose(eid, 0, "bafy", digest("x")),
        "vote": lambda eid: c.vote(eid, 0, digest("x"), True, 0),
        "decide": lambda eid: c.decide(eid, 0),
        "expire": lambda eid: c.expire(eid, 0),
        "experiment": c.experiment,
        "state": c.state,
        "deadline": c.deadline,
        "current_model": c.current_model,
        "proposal_digest": c.proposal_digest,
        "learner_index": lambda eid: c.learner_index(eid, learners[0].address),
        "vote_of": lambda eid: c.vote_of(eid, learners[0].address),
        "experiment_created": c.experiment_created,
    }
    for eid in (0, e.id + 1):
        for name, call in calls.items():
            with reverts("UnknownExperiment", experimentId=eid):
                call(eid)
                pytest.fail(f"{name}({eid}) did not revert")


def test_wrong_round(chain: Web3, make: Make, outsider: LocalAccount) -> None:
    e = make(n=3, rounds=3)
    l0, l1, _ = e.learners
    with reverts("WrongRound", experimentId=e.id, currentRound=0, givenRound=1):
        e.by(l1).propose(e.id, 1, *e.proposal(1))  # too early
    e.propose(0)
    with reverts("WrongRound", experimentId=e.id, currentRound=0, givenRound=1):
        e.vote(1, l1, True)
    e.cast(0, [True, True])
    # stale transactions for round 0, now that round 1 runs
    with reverts("WrongRound", experimentId=e.id, currentRound=1, givenRound=0):
        e.by(l0).propose(e.id, 0, *e.proposal(0))
    with reverts("WrongRound", experimentId=e.id, currentRound=1, givenRound=0):
        e.vote(0, l1, True)
    advance_time(chain, PROPOSAL_TIMEOUT)
    with reverts("WrongRound", experimentId=e.id, currentRound=1, givenRound=0):
        e.by(outsider).expire(e.id, 0)
    with reverts("WrongRound", experimentId=e.id, currentRound=1, givenRound=2):
        e.by(outsider).decide(e.id, 2)


def test_calls_outside_their_round_state_are_refused(chain: Web3, make: Make,
                                                     outsider: LocalAccount) -> None:
    e = make(n=3, rounds=2)
    anyone = e.by(outsider)

    def all_refused_but(round_index: int, current: str) -> None:
        """In round ``round_index``, state ``current``: every round call but the one the
        state allows is refused with ``UnexpectedRoundState``, naming the state it needs."""
        voter = e.voters(round_index)[0]
        calls: dict[str, Callable[[], Any]] = {
            "PROPOSING": lambda: e.propose(round_index),
            "VOTING": lambda: e.vote(round_index, voter, True),
            "VOTING_TIMED_OUT": lambda: anyone.decide(e.id, round_index),
            "PROPOSAL_TIMED_OUT": lambda: anyone.expire(e.id, round_index)}
        for expected, call in calls.items():
            if expected != current:
                with reverts("UnexpectedRoundState", experimentId=e.id, round=round_index,
                             current=current, expected=expected):
                    call()

    all_refused_but(0, "PROPOSING")
    advance_time(chain, PROPOSAL_TIMEOUT)
    all_refused_but(0, "PROPOSAL_TIMED_OUT")
    anyone.expire(e.id, 0)
    e.propose(1)
    all_refused_but(1, "VOTING")
    advance_time(chain, VOTING_TIMEOUT)
    all_refused_but(1, "VOTING_TIMED_OUT")
    anyone.decide(e.id, 1)
    # COMPLETED: the current round is numRounds, and nothing is allowed any more
    assert e.state() is RoundState.COMPLETED
    all_refused_but(2, "COMPLETED")
    with reverts("WrongRound", experimentId=e.id, currentRound=2, givenRound=1):
        anyone.decide(e.id, 1)
    advance_time(chain, PROPOSAL_TIMEOUT + VOTING_TIMEOUT)
    assert e.state() is RoundState.COMPLETED  # time no longer matters
    all_refused_but(2, "COMPLETED")


def test_who_may_propose_and_vote(chain: Web3, make: Make, outsider: LocalAccount,
                                  learners: list[LocalAccount]) -> None:
    e = make(n=3, rounds=2)
    l0, l1, l2 = e.learners
    cid, dig = e.proposal(0)

    with reverts("NotProposer", experimentId=e.id, round=0, account=l1.address):
        e.by(l1).propose(e.id, 0, cid, dig)
    with reverts("NotProposer", experimentId=e.id, round=0, account=outsider.address):
        e.by(outsider).propose(e.id, 0, cid, dig)
    with reverts("EmptyCid"):
        e.by(l0).propose(e.id, 0, "", dig)
    with reverts("EmptyDigest"):
        e.by(l0).propose(e.id, 0, cid, ZERO)
    assert e.state() is RoundState.PROPOSING
    e.propose(0)

    with reverts("NotLearner", experimentId=e.id, account=outsider.address):
        e.vote(0, outsider, True)
    with reverts("NotLearner", experimentId=e.id, account=learners[3].address):
        e.vote(0, learners[3], True)
    with reverts("ProposerCannotVote", experimentId=e.id, round=0, proposer=l0.address):
        e.vote(0, l0, True)
    e.vote(0, l1, True)
    for again in (True, False):
        with reverts("AlreadyVoted", experimentId=e.id, round=0, voter=l1.address):
            e.vote(0, l1, again)
    assert e.contract.vote_of(e.id, l1.address) == (True, True)
    assert (e.info().approvals, e.info().rejections) == (1, 0)
    e.vote(0, l2, False)  # decides
    assert e.info().round == 1

    # round 1: l1 proposes and cannot vote; l0 now may vote (once)
    e.propose(1)
    with reverts("ProposerCannotVote", experimentId=e.id, round=1, proposer=l1.address):
        e.vote(1, l1, True)
    e.vote(1, l0, False)
    with reverts("AlreadyVoted", experimentId=e.id, round=1, voter=l0.address):
        e.vote(1, l0, False)


# ------------------------------------------------------------------------ gas


def test_gas_of_a_round_with_five_learners(chain: Web3, chain_kind: str, make: Make,
                                           outsider: LocalAccount,
                                           gas_figures: dict[str, dict[str, int]]) -> None:
    e = make(n=5, threshold=5000, rounds=5)
    first_proposal = e.propose(0)
    first_votes = e.cast(0, [True, False, True, True])
    first_round = first_proposal.gas_used + sum(v.gas_used for v in first_votes)
    assert e.info().round == 1 and e.contract.events(RoundDecided, e.id, 0)[0].accepted
    # Round 1 is a steady round: every slot a round writes was written before.
    proposal = e.propose(1)
    votes = e.cast(1, [True, False, True, True])
    round_total = proposal.gas_used + sum(v.gas_used for v in votes)

    advance_time(chain, PROPOSAL_TIMEOUT)
    expire = e.by(outsider).expire(e.id, 2)
    e.propose(3)
    e.cast(3, [True, None, None, None])
    advance_time(chain, VOTING_TIMEOUT)
    decide = e.by(outsider).decide(e.id, 3)
    e.propose(4)
    last = e.cast(4, [False, False, False, False])[-1]  # decides and completes
    assert e.state() is RoundState.COMPLETED

    figures = {
        "create (5 learners)": e.created.gas_used,
        "propose": proposal.gas_used,
        "vote (first)": votes[0].gas_used,
        "vote (2nd)": votes[1].gas_used,
        "vote (3rd)": votes[2].gas_used,
        "deciding vote": votes[3].gas_used,
        "expire": expire.gas_used,
        "decide": decide.gas_used,
        "completing vote": last.gas_used,
        "round total (propose + 4 votes)": round_total,
        "first round total": first_round,
    }
    gas_figures.setdefault(chain_kind, {}).update(figures)
    print(f"\ngas on {chain_kind}: {figures}")
    assert round_total <= ROUND_GAS_BUDGET, figures
    assert first_round <= FIRST_ROUND_GAS_BUDGET, figures
    assert max(v.gas_used for v in votes[:-1]) <= VOTE_GAS_BUDGET, figures
    for other, recorded in gas_figures.items():  # gas is deterministic: same on every chain
        if other != chain_kind:
            common = figures.keys() & recorded.keys()
            assert {k: figures[k] for k in common} == {k: recorded[k] for k in common}, other

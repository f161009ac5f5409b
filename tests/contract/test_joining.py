"""Joining (PROTOCOL v2): nobody is enrolled without consent, round 0 starts with the last
join, and after the join deadline with a learner missing anyone may cancel. Direct and
signed joins, on both dev chains; a join's gas is bounded."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from experiments import (
    JOIN_GAS_BUDGET,
    JOIN_TIMEOUT,
    PROPOSAL_TIMEOUT,
    Exp,
    Make,
    block_time,
    reverts,
)
from web3 import Web3

from agents.chain.logs import LearnerJoined
from agents.chain.signing import SignedJoin, sign_join
from agents.chain.types import RoundState

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def signed_join(e: Exp, learner: LocalAccount, *, index: int | None = None,
                experiment_id: int | None = None, contract: str | None = None,
                chain_id: int | None = None) -> SignedJoin:
    return sign_join(learner, chain_id=chain_id or e.contract.chain_id,
                     contract=contract or e.contract.address,
                     experiment_id=e.id if experiment_id is None else experiment_id,
                     learner_index=e.learners.index(learner) if index is None else index)


def test_no_round_before_every_learner_joined(chain: Web3, make: Make,
                                              outsider: LocalAccount) -> None:
    e = make(n=3, join=False)
    created_at = block_time(chain, e.created)
    assert e.state() is RoundState.JOINING
    assert e.deadline() == created_at + JOIN_TIMEOUT
    l0, l1, l2 = e.learners
    for account in (l0, l1):
        e.join(account)
        assert e.state() is RoundState.JOINING
        # nothing of a round can happen: not even the proposer proposing
        with reverts("UnexpectedRoundState", current="JOINING", expected="PROPOSING"):
            e.propose(0)
        with reverts("UnexpectedRoundState", current="JOINING"):
            e.by(outsider).expire(e.id, 0)
    info = e.info()
    assert (info.joined, info.join_timeout, info.round) == (2, JOIN_TIMEOUT, 0)
    status = e.contract.round_status(e.id, l1.address)
    assert (status.state, status.deadline, status.joined) == (
        RoundState.JOINING, created_at + JOIN_TIMEOUT, True)
    assert not e.contract.round_status(e.id, l2.address).joined
    assert [j.learner for j in e.contract.events(LearnerJoined, e.id)] == [l0.address, l1.address]
    assert e.contract.start(e.id) is None


def test_the_last_join_starts_round_0(chain: Web3, make: Make, clock) -> None:
    e = make(n=3, join=False)
    l0, l1, l2 = e.learners
    e.join(l1)
    e.join(l0)
    clock.next_at(clock.latest() + 500)  # a late learner: round 0 waits for it
    last = e.join(l2)
    started_at = block_time(chain, last)
    assert e.state() is RoundState.PROPOSING
    assert e.deadline() == started_at + PROPOSAL_TIMEOUT  # counted from the last join
    assert e.info().phase_start == started_at
    start = e.contract.start(e.id)
    assert start is not None and type(start).__name__ == "ExperimentStarted"
    assert (start.tx_hash, start.block_number) == (last.tx_hash, last.block_number)
    joins = e.contract.events(LearnerJoined, e.id)
    assert [j.learner for j in joins] == [l1.address, l0.address, l2.address]
    assert joins[-1].tx_hash == last.tx_hash and joins[-1].log_index < start.log_index
    assert e.contract.round_status(e.id, l2.address).joined
    e.propose(0)
    assert e.state() is RoundState.VOTING


def test_join_refusals(chain: Web3, make: Make, outsider: LocalAccount, clock) -> None:
    e = make(n=3, join=False)
    l0, l1, _ = e.learners
    with reverts("NotLearner", experimentId=e.id, account=outsider.address):
        e.by(outsider).join(e.id)
    e.join(l0)
    with reverts("AlreadyJoined", experimentId=e.id, learner=l0.address):
        e.by(l0).join(e.id)
    with reverts("UnknownExperiment", experimentId=e.id + 1):
        e.by(l1).join(e.id + 1)
    deadline = e.deadline()
    clock.next_at(deadline - 1)
    e.join(l1)  # accepted strictly before the deadline
    clock.mine_at(deadline)
    assert e.state() is RoundState.JOIN_TIMED_OUT
    assert e.contract.round_status(e.id, l1.address).deadline == deadline
    with reverts("JoinClosed", experimentId=e.id, joinDeadline=deadline):
        e.by(e.learners[2]).join(e.id)


def test_joins_after_the_start_are_already_joined(chain: Web3, make: Make) -> None:
    e = make(n=2)
    with reverts("AlreadyJoined", learner=e.learners[0].address):
        e.by(e.learners[0]).join(e.id)


def test_cancel_only_after_the_deadline_with_a_learner_missing(
        chain: Web3, make: Make, outsider: LocalAccount, clock) -> None:
    e = make(n=3, join=False)
    e.join(e.learners[0])
    deadline = e.deadline()
    with reverts("JoinStillOpen", experimentId=e.id, joinDeadline=deadline):
        e.by(outsider).cancel(e.id)
    clock.next_at(deadline - 1)
    with reverts("JoinStillOpen"):
        e.by(outsider).cancel(e.id)
    clock.mine_at(deadline)
    tx = e.by(outsider).cancel(e.id)  # anyone may
    assert e.state() is RoundState.CANCELLED and e.deadline() == 0
    cancelled = e.contract.start(e.id)
    assert cancelled is not None and type(cancelled).__name__ == "ExperimentCancelled"
    assert cancelled.tx_hash == tx.tx_hash
    with reverts("UnexpectedRoundState", current="CANCELLED", expected="JOIN_TIMED_OUT"):
        e.by(outsider).cancel(e.id)
    with reverts("JoinClosed"):
        e.by(e.learners[1]).join(e.id)
    with reverts("UnexpectedRoundState", current="CANCELLED"):
        e.propose(0)
    status = e.contract.round_status(e.id, e.learners[0].address)
    assert (status.state, status.round, status.joined) == (RoundState.CANCELLED, 0, True)


def test_a_started_experiment_cannot_be_cancelled(chain: Web3, make: Make,
                                                  outsider: LocalAccount, clock) -> None:
    e = make(n=2)
    clock.mine_at(clock.latest() + JOIN_TIMEOUT + 1)  # past the join deadline, and round 0's
    with reverts("UnexpectedRoundState", current="PROPOSAL_TIMED_OUT",
                 expected="JOIN_TIMED_OUT"):
        e.by(outsider).cancel(e.id)


def test_signed_joins_count_as_the_learners_own(chain: Web3, make: Make,
                                                outsider: LocalAccount) -> None:
    e = make(n=3, join=False)
    l0, l1, l2 = e.learners
    relayer = e.by(outsider)
    relayer.join_by_sig(signed_join(e, l1))
    assert e.contract.round_status(e.id, l1.address).joined
    assert [j.learner for j in e.contract.events(LearnerJoined, e.id)] == [l1.address]
    with reverts("AlreadyJoined", learner=l1.address):  # a replay
        relayer.join_by_sig(signed_join(e, l1))
    e.join(l0)
    last = relayer.join_by_sig(signed_join(e, l2))  # a relayed last join starts round 0
    assert e.state() is RoundState.PROPOSING
    assert e.deadline() == block_time(chain, last) + PROPOSAL_TIMEOUT


def test_signed_join_refusals(chain: Web3, make: Make, outsider: LocalAccount,
                              deploy) -> None:
    e = make(n=3, join=False)
    other = make(n=3, join=False)
    l0, l1, _ = e.learners
    relayer = e.by(outsider)
    with reverts("InvalidLearnerIndex", learnerIndex=3):
        relayer.join_by_sig(signed_join(e, l0, index=3))
    with reverts("SignerMismatch", learnerIndex=1, signer=l0.address):  # not learner 1
        relayer.join_by_sig(signed_join(e, l0, index=1))
    with reverts("SignerMismatch", learnerIndex=1):  # signed for another experiment
        relayer.join_by_sig(signed_join(e, l1, experiment_id=other.id)
                            .model_copy(update={"experiment_id": e.id}))
    with reverts("SignerMismatch", learnerIndex=1):  # for another contract
        relayer.join_by_sig(signed_join(e, l1, contract=deploy().address))
    with reverts("SignerMismatch", learnerIndex=1):  # for another chain
        relayer.join_by_sig(signed_join(e, l1, chain_id=e.contract.chain_id + 1))
    with reverts("SignerMismatch", learnerIndex=0, signer=outsider.address):  # not a learner
        relayer.join_by_sig(sign_join(outsider, chain_id=e.contract.chain_id,
                                      contract=e.contract.address, experiment_id=e.id,
                                      learner_index=0))
    good = signed_join(e, l1)
    s_and_parity = int.from_bytes(good.vs, "big")
    s_value, parity = s_and_parity & ((1 << 255) - 1), s_and_parity >> 255
    high_s = (SECP256K1_N // 2 + 1 + s_value % 1000) | (parity << 255)
    with reverts("ECDSAInvalidSignatureS"):
        relayer.join_by_sig(good.model_copy(update={"vs": high_s.to_bytes(32, "big")}))
    flipped = (s_value | ((1 - parity) << 255)).to_bytes(32, "big")
    with reverts("SignerMismatch", learnerIndex=1):  # the other parity: someone else
        relayer.join_by_sig(good.model_copy(update={"vs": flipped}))
    with reverts("ECDSAInvalidSignature"):
        relayer.join_by_sig(good.model_copy(update={"r": bytes(32)}))
    assert e.info().joined == 0 and other.info().joined == 0
    relayer.join_by_sig(good)
    assert e.info().joined == 1


def test_experiments_join_independently(chain: Web3, make: Make) -> None:
    a = make(n=2, join=False)
    b = make(n=2, join=False)
    a.join_all()
    assert a.state() is RoundState.PROPOSING and b.state() is RoundState.JOINING
    assert b.info().joined == 0


def test_join_gas(chain: Web3, chain_kind: str, make: Make, outsider: LocalAccount,
                  gas_figures: dict[str, dict[str, int]]) -> None:
    e = make(n=5, join=False)
    direct = [e.join(a) for a in e.learners[:3]]
    relayed = e.by(outsider).join_by_sig(signed_join(e, e.learners[3]))
    last = e.join(e.learners[4])  # starts round 0
    figures = {"join": direct[1].gas_used, "join (first)": direct[0].gas_used,
               "join by signature": relayed.gas_used, "join (last, starts round 0)":
               last.gas_used, "create (5 learners)": e.created.gas_used}
    gas_figures.setdefault(chain_kind, {}).update(figures)
    print(f"\njoin gas on {chain_kind}: {figures}")
    assert max(t.gas_used for t in (*direct, relayed, last)) <= JOIN_GAS_BUDGET, figures


@pytest.mark.parametrize("timeout", [1, 30 * 86_400])
def test_join_timeout_bounds(chain: Web3, make: Make, timeout: int) -> None:
    e = make(n=2, join=False, join_timeout=timeout)
    assert e.contract.experiment_created(e.id).join_timeout == timeout
    assert e.deadline() == block_time(chain, e.created) + timeout
    assert e.info().phase_start == block_time(chain, e.created)

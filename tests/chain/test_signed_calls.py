"""Signed (relayed) proposals and votes: each counts exactly as the learner's own call,
once; replays across rounds, experiments, contracts and chains, malleable and invalid
signatures are refused by name. On both dev chains."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_account.signers.local import LocalAccount
from experiments import PROPOSAL_TIMEOUT, VOTING_TIMEOUT, Exp, Make, reverts, web3_contract
from web3 import Web3
from web3.logs import DISCARD

from agents.chain.client import CollectiveLearningClient
from agents.chain.logs import RoundDecided, VoteCast, WeightsProposed
from agents.chain.network import advance_time
from agents.chain.signing import SignedVote, sign_proposal, sign_vote
from agents.chain.types import RoundState, TxResult, score_to_fixed

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def signed(e: Exp, voter: LocalAccount, round_index: int, approve: bool = True,
           score: float = 0.9, *, chain_id: int | None = None,
           contract: str | None = None, experiment_id: int | None = None,
           digest: bytes | None = None) -> SignedVote:
    """``voter``'s signed vote on the proposal of ``round_index`` (by default, the one
    ``e.propose`` makes)."""
    return sign_vote(voter, chain_id=chain_id or e.contract.chain_id,
                     contract=contract or e.contract.address,
                     experiment_id=experiment_id if experiment_id is not None else e.id,
                     round_index=round_index, learner_index=e.learners.index(voter),
                     digest=e.proposal(round_index)[1] if digest is None else digest,
                     approve=approve, score=score_to_fixed(score))


def relay(e: Exp, relayer: LocalAccount, round_index: int, votes: list[SignedVote],
          learners: list[str] | None = None, digest: bytes | None = None) -> TxResult:
    return e.by(relayer).cast_votes_by_sig(
        e.id, round_index, e.proposal(round_index)[1] if digest is None else digest,
        learners or [a.address for a in e.learners], votes)


def skipped(e: Exp, tx: TxResult) -> list[str]:
    """The voters whose votes the batch ``tx`` skipped (``VoteSkipped``), in order."""
    receipt = e.contract.w3.eth.get_transaction_receipt(tx.tx_hash)
    return [event["args"]["voter"] for event in
            web3_contract(e.contract).events.VoteSkipped().process_receipt(
                receipt, errors=DISCARD)]


def test_a_batch_of_signed_votes_counts_as_the_voters_own(
        chain: Web3, make: Make, outsider: LocalAccount) -> None:
    e = make(n=4, threshold=5000, rounds=2)
    e.propose(0)
    l1, l2, l3 = e.voters(0)
    tx = relay(e, outsider, 0, [signed(e, l1, 0, True, 0.91), signed(e, l3, 0, False, 0.42)])
    assert e.contract.vote_of(e.id, l1.address) == (True, True)
    assert e.contract.vote_of(e.id, l3.address) == (True, False)
    assert e.contract.vote_of(e.id, l2.address) == (False, False)
    info = e.info()
    assert (info.approvals, info.rejections, info.round) == (1, 1, 0)
    votes = e.contract.events(VoteCast, e.id, 0)
    assert [(v.voter, v.approve, v.score) for v in votes] == [
        (l1.address, True, score_to_fixed(0.91)), (l3.address, False, score_to_fixed(0.42))]
    assert {v.tx_hash for v in votes} == {tx.tx_hash}

    e.vote(0, l2, True)  # the last vote, direct, decides: 2 of 3 approve
    assert e.tally(0) == (True, 2, 1)
    assert e.model() == (e.proposal(0)[1], 1)


def test_the_batch_that_completes_the_ballot_decides(chain: Web3, make: Make,
                                                      outsider: LocalAccount) -> None:
    e = make(n=3, threshold=10_000, rounds=1)
    e.propose(0)
    relay(e, outsider, 0, [signed(e, v, 0, approve=True) for v in e.voters(0)])
    (decided,) = e.contract.events(RoundDecided, e.id, 0)
    assert decided.accepted and (decided.approvals, decided.rejections) == (2, 0)
    assert e.state() is RoundState.COMPLETED


def test_each_vote_counts_once(chain: Web3, make: Make, outsider: LocalAccount) -> None:
    """(v2) A relayed vote already on chain is skipped (``VoteSkipped``), not fatal to
    its batch; a direct vote cast twice is refused."""
    e = make(n=5, rounds=2)
    e.propose(0)
    l1, l2, l3, _ = e.voters(0)
    tx = relay(e, outsider, 0, [signed(e, l1, 0), signed(e, l1, 0)])
    assert skipped(e, tx) == [l1.address]
    assert (e.info().approvals, e.info().rejections) == (1, 0)
    e.vote(0, l2, False)
    tx = relay(e, outsider, 0, [signed(e, l2, 0), signed(e, l1, 0)])  # both on chain
    assert skipped(e, tx) == [l2.address, l1.address]
    assert (e.info().approvals, e.info().rejections) == (1, 1), "skipped votes count nothing"
    tx = relay(e, outsider, 0, [signed(e, l1, 0, False), signed(e, l3, 0, False)])
    assert skipped(e, tx) == [l1.address]
    assert e.contract.vote_of(e.id, l1.address) == (True, True), "the first vote stands"
    assert (e.info().approvals, e.info().rejections) == (1, 2)
    with reverts("AlreadyVoted", experimentId=e.id, round=0, voter=l1.address):
        e.vote(0, l1, True)
    assert [v.voter for v in e.contract.events(VoteCast, e.id, 0)] == [
        l1.address, l2.address, l3.address]


def test_replays_fail_across_rounds_experiments_contracts_and_chains(
        chain: Web3, make: Make, outsider: LocalAccount,
        deploy: Callable[..., CollectiveLearningClient]) -> None:
    e = make(n=3, threshold=0, rounds=3)
    other = make(n=3, rounds=3)
    e.propose(0)
    other.propose(0)
    l1, l2 = e.voters(0)
    first = signed(e, l1, 0)
    relay(e, outsider, 0, [first, signed(e, l2, 0)])  # decides round 0
    e.propose(1)
    voter = e.voters(1)[0]
    replay = signed(e, voter, 0)  # a genuine signature, for round 0
    replay_in_round_1 = replay.model_copy(update={"round": 1})
    with reverts("SignerMismatch", experimentId=e.id, learnerIndex=e.learners.index(voter)):
        relay(e, outsider, 1, [replay_in_round_1])
    # (v2) a vote signed for another proposal does not count for this one
    with reverts("SignerMismatch", experimentId=e.id, learnerIndex=e.learners.index(voter)):
        relay(e, outsider, 1, [signed(e, voter, 1, digest=e.proposal(0)[1])])
    for wrong in (signed(e, voter, 1, experiment_id=other.id),
                  signed(e, voter, 1, contract=deploy().address),
                  signed(e, voter, 1, chain_id=e.contract.chain_id + 1)):
        with reverts("SignerMismatch", learnerIndex=e.learners.index(voter)):
            relay(e, outsider, 1, [wrong])
    # and a round-1 signature of experiment `e` does not count in `other`
    with reverts("WrongRound", currentRound=0, givenRound=1):
        relay(other, outsider, 1, [signed(e, voter, 1)])
    relay(e, outsider, 1, [signed(e, voter, 1)])


def test_malleable_and_invalid_signatures_are_refused(chain: Web3, make: Make,
                                                      outsider: LocalAccount) -> None:
    e = make(n=3, rounds=1)
    e.propose(0)
    l1, _ = e.voters(0)
    good = signed(e, l1, 0)
    s_and_parity = int.from_bytes(good.vs, "big")
    s, parity = s_and_parity & ((1 << 255) - 1), s_and_parity >> 255
    # ERC-2098 keeps the parity in the top bit of s, so the malleable twin (r, n - s) of a
    # low-s signature does not fit; any high s that does fit is refused by name...
    assert SECP256K1_N - s >= 1 << 255
    high_s = (SECP256K1_N // 2 + 1 + s % 1000) | (parity << 255)
    with reverts("ECDSAInvalidSignatureS"):
        relay(e, outsider, 0, [good.model_copy(update={"vs": high_s.to_bytes(32, "big")})])
    # ...and the other parity recovers someone else
    flipped = (s | ((1 - parity) << 255)).to_bytes(32, "big")
    with reverts("SignerMismatch", learnerIndex=e.learners.index(l1)):
        relay(e, outsider, 0, [good.model_copy(update={"vs": flipped})])
    with reverts("ECDSAInvalidSignature"):
        relay(e, outsider, 0, [good.model_copy(update={"r": bytes(32)})])
    with reverts("SignerMismatch", learnerIndex=e.learners.index(l1)):
        relay(e, outsider, 0, [good.model_copy(update={"score": good.score + 1})])
    relay(e, outsider, 0, [good])


def test_signed_votes_follow_the_same_rules_as_direct_ones(
        chain: Web3, make: Make, outsider: LocalAccount, learners: list[LocalAccount]) -> None:
    e = make(n=3, rounds=1)
    proposer, l1, l2 = e.learners
    with reverts("UnexpectedRoundState", current="PROPOSING", expected="VOTING"):
        relay(e, outsider, 0, [signed(e, l1, 0)])
    e.propose(0)
    with reverts("ProposerCannotVote", experimentId=e.id, round=0, proposer=proposer.address):
        relay(e, outsider, 0, [signed(e, proposer, 0)])
    with reverts("EmptyBatch"):
        relay(e, outsider, 0, [])
    with reverts("LearnerListMismatch", experimentId=e.id):
        relay(e, outsider, 0, [signed(e, l1, 0)], [l1.address, proposer.address, l2.address])
    with reverts("InvalidLearnerIndex", experimentId=e.id, learnerIndex=3):
        relay(e, outsider, 0, [signed(e, l1, 0).model_copy(update={"learner_index": 3})])
    stranger = learners[4]  # not in this experiment: signs as if it were learner 1
    forged = sign_vote(stranger, chain_id=e.contract.chain_id, contract=e.contract.address,
                       experiment_id=e.id, round_index=0, learner_index=1,
                       digest=e.proposal(0)[1], approve=True, score=0)
    with reverts("SignerMismatch", learnerIndex=1, signer=stranger.address):
        relay(e, outsider, 0, [forged])
    with reverts("WrongRound", currentRound=0, givenRound=1):
        relay(e, outsider, 1, [signed(e, l1, 1)])
    advance_time(chain, VOTING_TIMEOUT)
    with reverts("UnexpectedRoundState", current="VOTING_TIMED_OUT", expected="VOTING"):
        relay(e, outsider, 0, [signed(e, l1, 0)])


def test_a_signed_proposal_counts_as_the_proposers_own(chain: Web3, make: Make,
                                                        outsider: LocalAccount) -> None:
    e = make(n=3, rounds=2)
    proposer, l1, _ = e.learners
    cid, dig = e.proposal(0)
    chain_id, address = e.contract.chain_id, e.contract.address

    def sign(account: LocalAccount, round_index: int = 0, **changes: object):
        proposal = sign_proposal(account, chain_id=chain_id, contract=address,
                                 experiment_id=e.id, round_index=round_index, cid=cid,
                                 digest=dig)
        return proposal.model_copy(update=changes)

    with reverts("NotProposer", experimentId=e.id, round=0, account=l1.address):
        e.by(outsider).propose_by_sig(sign(l1))
    with reverts("NotProposer"):  # other contents than signed: another signer recovered
        e.by(outsider).propose_by_sig(sign(proposer, cid="bafy-something-else"))
    tx = e.by(outsider).propose_by_sig(sign(proposer))
    (event,) = e.contract.events(WeightsProposed, e.id, 0)
    assert (event.proposer, event.cid, event.digest, event.tx_hash) == (
        proposer.address, cid, dig, tx.tx_hash)
    assert e.state() is RoundState.VOTING
    assert e.contract.proposal_digest(e.id) == dig
    with reverts("UnexpectedRoundState", current="VOTING", expected="PROPOSING"):
        e.by(outsider).propose_by_sig(sign(proposer))  # replayed in the same round


def test_a_signed_proposal_is_refused_after_its_deadline(chain: Web3, make: Make,
                                                         outsider: LocalAccount) -> None:
    e = make(n=2, rounds=1)
    cid, dig = e.proposal(0)
    proposal = sign_proposal(e.learners[0], chain_id=e.contract.chain_id,
                             contract=e.contract.address, experiment_id=e.id, round_index=0,
                             cid=cid, digest=dig)
    advance_time(chain, PROPOSAL_TIMEOUT)
    with reverts("UnexpectedRoundState", current="PROPOSAL_TIMED_OUT", expected="PROPOSING"):
        e.by(outsider).propose_by_sig(proposal)


@pytest.mark.parametrize("n", [2, 5])
def test_the_signer_recovered_off_chain_is_the_voter(chain: Web3, make: Make, n: int) -> None:
    e = make(n=n, rounds=1)
    vote = signed(e, e.learners[1], 0)
    assert vote.signer() == e.learners[1].address

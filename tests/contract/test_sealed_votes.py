"""Version 2 voting, through CollectiveLearningClient, on both dev chains: votes bound to
the proposal's digest, relayed batches that skip a vote already on chain (the
copied-signature grief), and sealed votes (commit, reveal, batched and signed), with
their gas."""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount
from experiments import (
    VOTING_TIMEOUT,
    Exp,
    Make,
    digest,
    reverts,
    web3_contract,
)
from web3 import Web3

from agents.chain.logs import VoteCast
from agents.chain.network import advance_time
from agents.chain.signing import (
    SignedCommit,
    SignedVote,
    VoteOpening,
    sign_commit,
    sign_vote,
    vote_commitment,
)
from agents.chain.types import ExperimentOptions, RoundState, TxResult, score_to_fixed

REVEAL_TIMEOUT = 150
SEALED = ExperimentOptions(reveal_timeout=REVEAL_TIMEOUT)


def signed_vote(e: Exp, voter: LocalAccount, round_index: int, approve: bool = True,
                score: int = 7, named: bytes | None = None) -> SignedVote:
    return sign_vote(voter, chain_id=e.contract.chain_id, contract=e.contract.address,
                     experiment_id=e.id, round_index=round_index,
                     learner_index=e.learners.index(voter),
                     digest=e.proposal(round_index)[1] if named is None else named,
                     approve=approve, score=score)


def signed_commit(e: Exp, voter: LocalAccount, round_index: int, approve: bool,
                  score: int = 0) -> SignedCommit:
    return sign_commit(voter, chain_id=e.contract.chain_id, contract=e.contract.address,
                       experiment_id=e.id, round_index=round_index,
                       learner_index=e.learners.index(voter),
                       commitment=e.commitment(round_index, voter, approve, score))


def addresses(e: Exp) -> list[str]:
    return [a.address for a in e.learners]


def voters_of(e: Exp, tx: TxResult, event: str) -> list[str]:
    return [args["voter"] for args in e.logged(tx, event)]


# ------------------------------------------------------------ votes name the digest


def test_a_vote_naming_another_digest_is_refused(chain: Web3, make: Make,
                                                 outsider: LocalAccount) -> None:
    e = make(n=3, rounds=2)
    e.propose(0)
    l1, l2 = e.voters(0)
    right, wrong = e.proposal(0)[1], digest("another proposal")
    for named in (wrong, bytes(32), e.initial):
        with reverts("WrongProposal", experimentId=e.id, round=0, expected=right, given=named):
            e.vote(0, l1, True, digest=named)
    # signed: the batch names the digest every vote in it was signed over
    with reverts("WrongProposal", experimentId=e.id, round=0, expected=right, given=wrong):
        e.by(outsider).cast_votes_by_sig(e.id, 0, wrong, addresses(e),
                                         [signed_vote(e, l1, 0, named=wrong)])
    # a vote signed over another digest, relayed in a batch naming the right one
    with reverts("SignerMismatch", experimentId=e.id, learnerIndex=1):
        e.by(outsider).cast_votes_by_sig(e.id, 0, right, addresses(e),
                                         [signed_vote(e, l1, 0, named=wrong)])
    assert (e.info().approvals, e.info().rejections) == (0, 0)
    e.vote(0, l1, True)
    e.by(outsider).cast_votes_by_sig(e.id, 0, right, addresses(e), [signed_vote(e, l2, 0)])
    assert e.model() == (right, 1)
    # round 1's proposal: a vote still naming round 0's is refused
    e.propose(1)
    with reverts("WrongProposal", round=1, expected=e.proposal(1)[1], given=right):
        e.vote(1, e.voters(1)[0], True, digest=right)


def test_a_copied_signature_submitted_first_does_not_cancel_its_batch(
        chain: Web3, make: Make, outsider: LocalAccount, learners: list[LocalAccount]) -> None:
    """The grief of PROTOCOL.md (v2): someone copies one signed vote out of a pending
    batch and gets it mined first. The batch still lands: the copied vote is skipped
    (``VoteSkipped``, counted once), the others count."""
    e = make(n=5, threshold=5000, rounds=1)
    e.propose(0)
    l1, l2, l3, l4 = e.voters(0)
    batch = [signed_vote(e, v, 0, approve=v is not l3, score=i) for i, v in
             enumerate((l1, l2, l3))]
    griefer = e.by(learners[5])  # not even a learner of this experiment
    copied = griefer.cast_votes_by_sig(e.id, 0, e.proposal(0)[1], addresses(e), [batch[1]])
    assert voters_of(e, copied, "VoteCast") == [l2.address]
    landed = e.by(outsider).cast_votes_by_sig(e.id, 0, e.proposal(0)[1], addresses(e), batch)
    assert voters_of(e, landed, "VoteSkipped") == [l2.address]
    assert voters_of(e, landed, "VoteCast") == [l1.address, l3.address]
    assert (e.info().approvals, e.info().rejections) == (2, 1)
    assert [v.voter for v in e.contract.events(VoteCast, e.id, 0)] == [l2.address, l1.address, l3.address]
    # a batch of nothing but votes already cast still lands (and counts nothing)
    again = e.by(outsider).cast_votes_by_sig(e.id, 0, e.proposal(0)[1], addresses(e), batch)
    assert voters_of(e, again, "VoteSkipped") == [l1.address, l2.address, l3.address]
    assert (e.info().approvals, e.info().rejections) == (2, 1)
    e.vote(0, l4, True)  # decides: 3 of 4 approve
    assert e.tally(0) == (True, 3, 1)


# ------------------------------------------------------------------ sealed votes


def test_the_commitment_is_the_contracts(chain: Web3, make: Make) -> None:
    e = make(n=3, rounds=1, options=SEALED)
    contract = web3_contract(e.contract)
    for approve, score, salt in ((True, 0, bytes(32)), (False, -(2**255), b"\xff" * 32),
                                 (True, 2**255 - 1, digest("salt")),
                                 (False, score_to_fixed(0.9731), digest("another"))):
        opening = VoteOpening(approve=approve, score=score, salt=salt)
        voter = e.learners[1].address
        ours = vote_commitment(e.id, 4, voter, digest("p"), opening)
        theirs = contract.functions.commitmentOf(e.id, 4, voter, digest("p"), approve, score,
                                                 salt).call()
        assert ours == theirs


def test_sealed_votes_commit_then_reveal_and_the_last_reveal_decides(
        chain: Web3, make: Make, outsider: LocalAccount) -> None:
    e = make(n=4, threshold=5000, rounds=2, options=SEALED)
    l0, l1, l2, l3 = e.learners
    info = e.info()
    assert (info.reveal_timeout, info.commitments, info.staked) == (REVEAL_TIMEOUT, 0, False)
    e.propose(0)
    commit_deadline = e.deadline()
    with reverts("WrongVoteKind", experimentId=e.id, sealedVotes=True):
        e.vote(0, l1, True)
    with reverts("UnexpectedRoundState", current="VOTING", expected="REVEALING"):
        e.reveal(0, l1, True)
    with reverts("ProposerCannotVote", experimentId=e.id, round=0, proposer=l0.address):
        e.commit(0, l0, True)
    with reverts("NotLearner", account=outsider.address):
        e.commit(0, outsider, True)

    first = e.commit(0, l1, True, 11)
    (committed,) = e.logged(first, "VoteCommitted")
    assert (committed["voter"], committed["round"]) == (l1.address, 0)
    assert committed["commitment"] == e.commitment(0, l1, True, 11)
    assert e.contract.vote_of(e.id, l1.address) == (False, False), "nothing is visible"
    status = e.by(l1).round_status(e.id)
    assert (status.committed, status.voted, status.proposal_digest) == (
        True, False, e.proposal(0)[1])
    with reverts("AlreadyCommitted", experimentId=e.id, round=0, voter=l1.address):
        e.commit(0, l1, False)
    e.commit(0, l2, False, 22)
    assert e.state() is RoundState.VOTING and e.info().commitments == 2
    last = e.commit(0, l3, True, 33, digest=digest("not the proposal"))  # cannot open later
    assert e.logged(last, "CommitsComplete") == [{"experimentId": e.id, "round": 0}]
    assert e.state() is RoundState.REVEALING, "every voter committed: reveals open early"
    assert e.deadline() == commit_deadline + REVEAL_TIMEOUT
    assert e.info().proposed

    with reverts("CommitmentMismatch", experimentId=e.id, round=0, voter=l1.address):
        e.reveal(0, l1, False, 11)  # another vote than committed
    with reverts("CommitmentMismatch", voter=l1.address):
        e.reveal(0, l1, True, 12)  # another score
    with reverts("CommitmentMismatch", voter=l1.address):
        e.by(l1).reveal_vote(e.id, 0, e.opening(0, l1, True, 11).model_copy(
            update={"salt": digest("another salt")}))
    with reverts("CommitmentMismatch", voter=l3.address):
        e.reveal(0, l3, True, 33)  # committed over another digest: it never opens
    with reverts("NotCommitted", experimentId=e.id, round=0, voter=l0.address):
        e.reveal(0, l0, True)
    with reverts("NotLearner", account=outsider.address):
        e.reveal(0, outsider, True)
    with reverts("WrongVoteKind", sealedVotes=True):
        e.vote(0, l1, True)
    with reverts("UnexpectedRoundState", current="REVEALING", expected="VOTING"):
        e.commit(0, l1, True)

    revealed = e.reveal(0, l1, True, 11)
    assert e.logged(revealed, "VoteCast") == [{"experimentId": e.id, "round": 0,
                                               "voter": l1.address, "approve": True,
                                               "score": 11}]
    assert e.contract.vote_of(e.id, l1.address) == (True, True)
    with reverts("AlreadyVoted", experimentId=e.id, round=0, voter=l1.address):
        e.reveal(0, l1, True, 11)
    assert e.state() is RoundState.REVEALING
    e.reveal(0, l2, False, 22)
    assert (e.info().approvals, e.info().rejections) == (1, 1)
    # l3 cannot open its commitment: the round waits for the reveal deadline
    advance_time(chain, REVEAL_TIMEOUT + VOTING_TIMEOUT)
    assert e.state() is RoundState.REVEAL_TIMED_OUT
    with reverts("UnexpectedRoundState", current="REVEAL_TIMED_OUT", expected="REVEALING"):
        e.reveal(0, l3, True, 33)
    decided = e.by(outsider).decide(e.id, 0)
    (d,) = e.logged(decided, "RoundDecided")
    # 1 of 3 approves, l3's unrevealed vote counts as not approving
    assert (d["accepted"], d["approvals"], d["rejections"]) == (False, 1, 1)

    # round 1: the last reveal decides at once
    e.propose(1)
    v0, v2, v3 = e.voters(1)
    for v in (v0, v2, v3):
        e.commit(1, v, True, 5)
    e.reveal(1, v0, True, 5)
    e.reveal(1, v2, True, 5)
    deciding = e.reveal(1, v3, True, 5)
    (d,) = e.logged(deciding, "RoundDecided")
    assert (d["accepted"], d["approvals"], d["rejections"]) == (True, 3, 0)
    assert e.state() is RoundState.COMPLETED and e.model() == (e.proposal(1)[1], 2)


def test_the_commit_deadline_opens_the_reveals_of_those_who_committed(
        chain: Web3, make: Make, clock: Any, outsider: LocalAccount) -> None:
    e = make(n=5, threshold=5000, rounds=1, options=SEALED)
    e.propose(0)
    l1, l2, l3, l4 = e.voters(0)
    proposed_at = e.info().phase_start
    e.commit(0, l1, True)
    e.commit(0, l2, True)
    e.commit(0, l3, False)
    commit_deadline = proposed_at + VOTING_TIMEOUT
    assert e.deadline() == commit_deadline
    clock.mine_at(commit_deadline)
    assert e.state() is RoundState.REVEALING
    assert e.deadline() == commit_deadline + REVEAL_TIMEOUT
    with reverts("UnexpectedRoundState", current="REVEALING", expected="VOTING"):
        e.commit(0, l4, True)  # too late to commit
    with reverts("NotCommitted", voter=l4.address):
        e.reveal(0, l4, True)
    e.reveal(0, l1, True)
    e.reveal(0, l3, False)
    with reverts("UnexpectedRoundState", current="REVEALING", expected="REVEAL_TIMED_OUT"):
        e.by(outsider).decide(e.id, 0)
    deciding = e.reveal(0, l2, True)  # the last commitment opened decides: 2 of 4 approve
    (d,) = e.logged(deciding, "RoundDecided")
    assert (d["accepted"], d["approvals"], d["rejections"]) == (True, 2, 1)


def test_unrevealed_votes_count_as_not_approving_after_the_reveal_deadline(
        chain: Web3, make: Make, clock: Any, outsider: LocalAccount) -> None:
    e = make(n=4, threshold=6000, rounds=1, options=SEALED)
    e.propose(0)
    l1, l2, l3 = e.voters(0)
    for v in (l1, l2, l3):
        e.commit(0, v, True)
    e.reveal(0, l1, True)
    reveal_deadline = e.deadline()
    clock.mine_at(reveal_deadline - 1)
    assert e.state() is RoundState.REVEALING
    clock.next_at(reveal_deadline)
    with reverts("UnexpectedRoundState", current="REVEAL_TIMED_OUT", expected="REVEALING"):
        e.reveal(0, l2, True)
    if clock.latest() < reveal_deadline:
        clock.mine_at(reveal_deadline)
    assert e.state() is RoundState.REVEAL_TIMED_OUT
    tx = e.by(outsider).decide(e.id, 0)
    (d,) = e.logged(tx, "RoundDecided")
    # all three committed to approve, one revealed: 1 * 10000 < 6000 * 3
    assert (d["accepted"], d["approvals"], d["rejections"]) == (False, 1, 0)
    assert e.model() == (e.initial, 0)


def test_public_calls_and_sealed_calls_do_not_mix(chain: Web3, make: Make,
                                                  outsider: LocalAccount) -> None:
    e = make(n=3, rounds=1)
    e.propose(0)
    l1, _ = e.voters(0)
    with reverts("WrongVoteKind", experimentId=e.id, sealedVotes=False):
        e.commit(0, l1, True)
    with reverts("WrongVoteKind", sealedVotes=False):
        e.by(outsider).commit_votes_by_sig(e.id, 0, addresses(e), [signed_commit(e, l1, 0, True)])
    with reverts("WrongVoteKind", sealedVotes=False):
        e.by(outsider).reveal_votes(e.id, 0, addresses(e),
                                    [(1, e.opening(0, l1, True))])
    with reverts("WrongVoteKind", sealedVotes=False):
        e.reveal(0, l1, True)
    sealed = make(n=3, rounds=1, options=SEALED)
    sealed.propose(0)
    with reverts("WrongVoteKind", experimentId=sealed.id, sealedVotes=True):
        sealed.by(outsider).cast_votes_by_sig(sealed.id, 0, sealed.proposal(0)[1],
                                              addresses(sealed),
                                              [signed_vote(sealed, sealed.learners[1], 0)])


def test_signed_commitments_and_relayed_reveals_skip_what_is_on_chain(
        chain: Web3, make: Make, outsider: LocalAccount, learners: list[LocalAccount]) -> None:
    e = make(n=5, threshold=5000, rounds=1, options=SEALED)
    e.propose(0)
    l1, l2, l3, l4 = e.voters(0)
    relayer = e.by(outsider)
    commits = [signed_commit(e, v, 0, v is not l3, 10 + i) for i, v in enumerate((l1, l2, l3))]
    # the copied-signature grief, on commitments
    e.by(learners[5]).commit_votes_by_sig(e.id, 0, addresses(e), [commits[2]])
    tx = relayer.commit_votes_by_sig(e.id, 0, addresses(e), commits)
    assert voters_of(e, tx, "VoteSkipped") == [l3.address]
    assert voters_of(e, tx, "VoteCommitted") == [l1.address, l2.address]
    with reverts("ProposerCannotVote", experimentId=e.id, round=0, proposer=e.learners[0].address):
        relayer.commit_votes_by_sig(e.id, 0, addresses(e), [sign_commit(
            e.learners[0], chain_id=e.contract.chain_id, contract=e.contract.address,
            experiment_id=e.id, round_index=0, learner_index=0,
            commitment=e.commitment(0, e.learners[0], True))])
    with reverts("SignerMismatch", experimentId=e.id, learnerIndex=4):
        relayer.commit_votes_by_sig(e.id, 0, addresses(e), [
            commits[0].model_copy(update={"learner_index": 4})])
    with reverts("EmptyBatch"):
        relayer.commit_votes_by_sig(e.id, 0, addresses(e), [])
    last = relayer.commit_votes_by_sig(e.id, 0, addresses(e), [signed_commit(e, l4, 0, False)])
    assert e.logged(last, "CommitsComplete") == [{"experimentId": e.id, "round": 0}]
    assert e.state() is RoundState.REVEALING

    def opening(v: LocalAccount) -> tuple[int, VoteOpening]:
        i = (l1, l2, l3).index(v) if v is not l4 else None
        return (e.learners.index(v), e.opening(0, v, False) if i is None
                else e.opening(0, v, v is not l3, 10 + i))

    with reverts("CommitmentMismatch", experimentId=e.id, round=0, voter=l2.address):
        relayer.reveal_votes(e.id, 0, addresses(e), [
            (2, e.opening(0, l2, False, 11))])
    with reverts("NotCommitted", experimentId=e.id, round=0, voter=e.learners[0].address):
        relayer.reveal_votes(e.id, 0, addresses(e), [(0, e.opening(0, e.learners[0], True))])
    with reverts("LearnerListMismatch", experimentId=e.id):
        relayer.reveal_votes(e.id, 0, addresses(e)[::-1], [opening(l1)])
    e.reveal(0, l2, True, 11)  # revealed directly first: the batch skips it
    tx = relayer.reveal_votes(e.id, 0, addresses(e), [opening(l1), opening(l2), opening(l3)])
    assert voters_of(e, tx, "VoteSkipped") == [l2.address]
    assert voters_of(e, tx, "VoteCast") == [l1.address, l3.address]
    deciding = relayer.reveal_votes(e.id, 0, addresses(e), [opening(l4)])
    (d,) = e.logged(deciding, "RoundDecided")
    assert (d["accepted"], d["approvals"], d["rejections"]) == (True, 2, 2)


def test_gas_of_sealed_and_relayed_votes(chain: Web3, chain_kind: str, make: Make,
                                         outsider: LocalAccount,
                                         gas_figures: dict[str, dict[str, int]]) -> None:
    plain = make(n=5, rounds=2)
    for r in range(2):  # round 1 is steady
        plain.propose(r)
        voters = plain.voters(r)
        batch = [signed_vote(plain, v, r) for v in voters]
        one = plain.by(outsider).cast_votes_by_sig(plain.id, r, plain.proposal(r)[1],
                                                   addresses(plain), batch[:1])
        skip = plain.by(outsider).cast_votes_by_sig(plain.id, r, plain.proposal(r)[1],
                                                    addresses(plain), batch[:1])
        rest = plain.by(outsider).cast_votes_by_sig(plain.id, r, plain.proposal(r)[1],
                                                    addresses(plain), batch[1:])
    sealed = make(n=5, rounds=2, options=SEALED)
    for r in range(2):
        sealed.propose(r)
        voters = sealed.voters(r)
        commits = [sealed.commit(r, v, True, 1) for v in voters]
        reveals = [sealed.reveal(r, v, True, 1) for v in voters]
    relayed = make(n=5, rounds=2, options=SEALED)
    for r in range(2):
        relayed.propose(r)
        voters = relayed.voters(r)
        batch_commit = relayed.by(outsider).commit_votes_by_sig(
            relayed.id, r, addresses(relayed), [signed_commit(relayed, v, r, True) for v in voters])
        batch_reveal = relayed.by(outsider).reveal_votes(
            relayed.id, r, addresses(relayed),
            [(relayed.learners.index(v), relayed.opening(r, v, True)) for v in voters])
    assert relayed.state() is RoundState.COMPLETED
    figures = {
        "signed vote (batch of 1)": one.gas_used,
        "signed vote skipped (batch of 1)": skip.gas_used,
        "signed votes (batch of 3, deciding)": rest.gas_used,
        "commit (first)": commits[0].gas_used,
        "commit (last, opens reveals)": commits[-1].gas_used,
        "reveal (first)": reveals[0].gas_used,
        "reveal (last, decides)": reveals[-1].gas_used,
        "sealed ballot total (4 commits + 4 reveals)": (
            sum(t.gas_used for t in (*commits, *reveals))),
        "signed commits (batch of 4)": batch_commit.gas_used,
        "reveals (batch of 4, deciding)": batch_reveal.gas_used,
    }
    gas_figures.setdefault(chain_kind, {}).update(figures)
    print(f"\nsealed gas on {chain_kind}: {figures}")
    # Deterministic, and the same on every chain, except where signatures are in the
    # calldata: they depend on the chain id, and so does their count of zero bytes.
    for other, recorded in gas_figures.items():
        if other != chain_kind:
            common = {k for k in figures.keys() & recorded.keys() if "signed" not in k}
            assert {k: figures[k] for k in common} == {k: recorded[k] for k in common}, other

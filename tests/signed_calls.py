"""Signed calls of an experiment's learners, as agents hand them to a relay: votes,
proposals, joins, sealed votes' commitments and their reveals, each signed for the
experiment's chain and contract (the learner's index and the round's proposal read from
the :class:`Exp`)."""

from __future__ import annotations

import os

from eth_account.signers.local import LocalAccount
from experiments import Exp

from agents.chain.signing import (
    SignedCommit,
    SignedJoin,
    SignedProposal,
    SignedVote,
    VoteOpening,
    sign_commit,
    sign_join,
    sign_proposal,
    sign_vote,
    vote_commitment,
)
from agents.chain.types import score_to_fixed
from agents.relay import RevealRequest


def signed_vote(e: Exp, voter: LocalAccount, round_index: int = 0, approve: bool = True,
         score: int = score_to_fixed(0.7), *, index: int | None = None,
         experiment_id: int | None = None) -> SignedVote:
    """``voter``'s signed vote on the round's proposal (``index`` and ``experiment_id``:
    other than the true ones)."""
    return sign_vote(voter, chain_id=e.contract.chain_id, contract=e.contract.address,
                     experiment_id=e.id if experiment_id is None else experiment_id,
                     round_index=round_index,
                     learner_index=e.learners.index(voter) if index is None else index,
                     digest=e.proposal(round_index)[1], approve=approve, score=score)


def signed_proposal(e: Exp, proposer: LocalAccount, round_index: int = 0) -> SignedProposal:
    """``proposer``'s signed proposal of the round's weights (``e.proposal(round_index)``)."""
    cid, digest = e.proposal(round_index)
    return sign_proposal(proposer, chain_id=e.contract.chain_id, contract=e.contract.address,
                         experiment_id=e.id, round_index=round_index, cid=cid, digest=digest)


def signed_join(e: Exp, account: LocalAccount, index: int | None = None) -> SignedJoin:
    """``account``'s signed join (as learner ``index``, if given)."""
    return sign_join(account, chain_id=e.contract.chain_id, contract=e.contract.address,
                     experiment_id=e.id,
                     learner_index=e.learners.index(account) if index is None else index)


def opening(approve: bool, score: float = 0.8, salt: bytes | None = None) -> VoteOpening:
    """A sealed vote's opening (a random salt unless given)."""
    return VoteOpening(approve=approve, score=score_to_fixed(score),
                       salt=os.urandom(32) if salt is None else salt)


def signed_commit(e: Exp, voter: LocalAccount, round_index: int, opened: VoteOpening) -> SignedCommit:
    """``voter``'s signed commitment to ``opened`` on the round's proposal."""
    return sign_commit(voter, chain_id=e.contract.chain_id, contract=e.contract.address,
                       experiment_id=e.id, round_index=round_index,
                       learner_index=e.learners.index(voter),
                       commitment=vote_commitment(e.id, round_index, voter.address,
                                                  e.proposal(round_index)[1], opened))


def reveal_request(e: Exp, voter: LocalAccount, round_index: int, opened: VoteOpening) -> RevealRequest:
    """The request that reveals ``voter``'s sealed vote ``opened``."""
    return RevealRequest(chain_id=e.contract.chain_id, contract=e.contract.address,
                         experiment_id=e.id, round=round_index, voter=voter.address,
                         learner_index=e.learners.index(voter), opening=opened)

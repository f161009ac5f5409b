"""Checks the learners' tests make alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from colearn_core.codec import decode_weights, encode_weights
from colearn_core.learners._base import Learner
from colearn_core.ml_interface import ProposedWeights, Weights

#: Whether two sets of a learner's raw weights are the same, bitwise.
SameWeights = Callable[[Any, Any], bool]


def accept_own_proposals(learner: Learner, rounds: int) -> None:
    """``rounds`` proposals of ``learner``, each tested (its vote must be "the vote loss
    is lower") then accepted."""
    for _ in range(rounds):
        proposal = learner.mli_propose_weights()
        tested = learner.mli_test_weights(proposal)
        assert tested.vote == (tested.vote_score < learner.vote_score)
        learner.mli_accept_weights(proposal)


def propose_leaves_the_learner_unchanged(learner: Learner, same: SameWeights) -> None:
    """A proposal differs from the current weights and changes neither them nor the vote
    score."""
    before = learner.mli_get_current_weights().weights
    vote_score = learner.vote_score
    proposal = learner.mli_propose_weights()
    assert same(before, learner.mli_get_current_weights().weights)
    assert learner.vote_score == vote_score
    assert not same(before, proposal.weights)
    assert proposal.training_summary is not None


def a_tested_proposal_votes_and_changes_nothing(learner: Learner, proposal: Weights,
                                                same: SameWeights) -> None:
    """Testing ``proposal`` votes "the vote loss is lower" and leaves the current weights
    alone; the current weights are never strictly better than themselves."""
    before = learner.mli_get_current_weights().weights
    result = learner.mli_test_weights(proposal)
    assert isinstance(result, ProposedWeights)
    assert result.weights is proposal
    assert same(before, learner.mli_get_current_weights().weights)
    assert result.vote == (result.vote_score < learner.vote_score)
    itself = learner.mli_test_weights(learner.mli_get_current_weights())
    assert itself.vote is False
    assert itself.vote_score == pytest.approx(learner.vote_score)


def codec_round_trip(learner: Learner, other: Learner, same: SameWeights) -> Any:
    """``learner``'s weights after one accepted proposal, through the codec bitwise and
    into ``other`` (decoded arrays are read-only); the decoded weights."""
    learner.mli_accept_weights(learner.mli_propose_weights())
    weights = learner.mli_get_current_weights().weights
    decoded = decode_weights(encode_weights(weights))
    assert same(weights, decoded)
    other.mli_accept_weights(Weights(weights=decoded))
    assert same(weights, other.mli_get_current_weights().weights)
    return decoded

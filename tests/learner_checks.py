"""Checks the learners' tests make alike."""

from __future__ import annotations

from colearn_core.learners._base import Learner


def accept_own_proposals(learner: Learner, rounds: int) -> None:
    """``rounds`` proposals of ``learner``, each tested (its vote must be "the vote loss
    is lower") then accepted."""
    for _ in range(rounds):
        proposal = learner.mli_propose_weights()
        tested = learner.mli_test_weights(proposal)
        assert tested.vote == (tested.vote_score < learner.vote_score)
        learner.mli_accept_weights(proposal)

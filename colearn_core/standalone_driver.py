"""colearn's standalone driver: rounds in memory, without networking or a chain.

It applies exactly PROTOCOL.md's decision rule (:mod:`colearn_core.decision`), so a
learner set gives the same accept/reject sequence here and on chain. Unlike colearn's,
every learner is handed its own copy of the weights (see :func:`own_copy`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

from colearn_core.decision import is_accepted, threshold_to_bps
from colearn_core.ml_interface import (
    ErrorCodes,
    MachineLearningInterface,
    ProposedWeights,
    Weights,
)

log = logging.getLogger(__name__)


def run(n_rounds: int, learners: Sequence[MachineLearningInterface]) -> None:
    """colearn's helper: ``n_rounds`` rounds at the default threshold, results dropped."""
    for round_index in range(n_rounds):
        run_one_round(round_index, learners)


def run_one_round(
    round_index: int,
    learners: Sequence[MachineLearningInterface],
    vote_threshold: float = 0.5,
) -> tuple[list[ProposedWeights], bool | None]:
    """Runs one round: ``learners[round_index % n]`` proposes, every learner tests (its own
    copy of) the proposal, the proposer's vote is discarded (``None``), and the proposal is
    accepted iff ``approvals * 10000 >= threshold_bps * (n - 1)``; then every learner
    adopts it.

    Returns the list of ``ProposedWeights`` (one per learner) and the decision. A proposer
    whose privacy budget is spent (``ErrorCodes.DP_BUDGET_EXCEEDED``) proposes nothing:
    the round has no decision (``([], None)``), as on chain it expires.
    """
    proposed, vote, _ = play_round(round_index, learners, vote_threshold)
    return proposed, vote


def play_round(
    round_index: int, learners: Sequence[MachineLearningInterface], vote_threshold: float
) -> tuple[list[ProposedWeights], bool | None, Weights]:
    """:func:`run_one_round`, also returning the proposal (for its training summary)."""
    n = len(learners)
    threshold_bps = threshold_to_bps(vote_threshold)
    proposer = round_index % n
    new_weights = learners[proposer].mli_propose_weights()
    if budget_spent(new_weights):
        log.info("round %d: proposer %d's privacy budget is spent; no proposal",
                 round_index, proposer)
        return [], None, new_weights
    proposed = [learner.mli_test_weights(own_copy(new_weights)) for learner in learners]
    proposed[proposer] = proposed[proposer].model_copy(update={"vote": None})
    approvals = sum(1 for j, p in enumerate(proposed) if j != proposer and p.vote)
    vote = is_accepted(approvals, n, threshold_bps)
    if vote:
        for learner in learners:
            learner.mli_accept_weights(own_copy(new_weights))
    log.debug("round %d: proposer %d, %d/%d approve, accepted=%s",
              round_index, proposer, approvals, n - 1, vote)
    return proposed, vote, new_weights


def budget_spent(weights: Weights) -> bool:
    """Whether a proposal says its learner's privacy budget is spent (nothing trained)."""
    summary = weights.training_summary
    return summary is not None and summary.error_code == ErrorCodes.DP_BUDGET_EXCEEDED


def own_copy(weights: Weights) -> Weights:
    """A deep copy for each learner, as each agent on chain decodes its own: a learner
    that keeps (and later trains in place) the arrays it was given cannot change what
    another learner holds. colearn handed every learner the same object."""
    return weights.model_copy(update={"weights": copy.deepcopy(weights.weights)})

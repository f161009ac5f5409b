"""The in-memory driver: colearn's round without networking or a chain.

It applies exactly PROTOCOL.md's decision rule (:mod:`colearn_core.decision`), so a
learner set gives the same accept/reject sequence here and on chain.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence

from colearn_core.decision import is_accepted, threshold_to_bps
from colearn_core.ml_interface import (
    ErrorCodes,
    MachineLearningInterface,
    ProposedWeights,
    Weights,
)
from colearn_core.results import Result, Results

log = logging.getLogger(__name__)


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
    proposed, vote, _ = _play_round(round_index, learners, vote_threshold)
    return proposed, vote


def collective_learning_round(
    learners: Sequence[MachineLearningInterface], vote_threshold: float, round_index: int
) -> Result:
    """colearn's helper: one round, returned as a :class:`Result` (``vote`` ``None``, with
    the proposer's training summary, when it proposed nothing)."""
    n = len(learners)
    proposer = round_index % n
    proposed, vote, weights = _play_round(round_index, learners, vote_threshold)
    if vote is None:
        return Result(vote=None, votes=[None] * n, test_scores=[None] * n,
                      vote_scores=[None] * n, block_proposer=proposer,
                      training_summaries=[weights.training_summary if j == proposer else None
                                          for j in range(n)])
    return Result.from_round(proposer, proposed, vote)


def _play_round(
    round_index: int, learners: Sequence[MachineLearningInterface], vote_threshold: float
) -> tuple[list[ProposedWeights], bool | None, Weights]:
    n = len(learners)
    threshold_bps = threshold_to_bps(vote_threshold)
    proposer = round_index % n
    new_weights = learners[proposer].mli_propose_weights()
    summary = new_weights.training_summary
    if summary is not None and summary.error_code == ErrorCodes.DP_BUDGET_EXCEEDED:
        log.info("round %d: proposer %d's privacy budget is spent; no proposal",
                 round_index, proposer)
        return [], None, new_weights
    proposed = [learner.mli_test_weights(_own_copy(new_weights)) for learner in learners]
    proposed[proposer] = proposed[proposer].model_copy(update={"vote": None})
    approvals = sum(1 for j, p in enumerate(proposed) if j != proposer and p.vote)
    vote = is_accepted(approvals, n, threshold_bps)
    if vote:
        for learner in learners:
            learner.mli_accept_weights(_own_copy(new_weights))
    log.debug("round %d: proposer %d, %d/%d approve, accepted=%s",
              round_index, proposer, approvals, n - 1, vote)
    return proposed, vote, new_weights


def run_experiment(
    learners: Sequence[MachineLearningInterface],
    n_rounds: int,
    vote_threshold: float = 0.5,
    on_round: Callable[[int, Result], None] | None = None,
) -> Results:
    """Runs ``n_rounds`` rounds and collects their results."""
    results = Results()
    for round_index in range(n_rounds):
        result = collective_learning_round(learners, vote_threshold, round_index)
        results.append(result)
        if on_round is not None:
            on_round(round_index, result)
    return results


def set_equal_weights(learners: Sequence[MachineLearningInterface]) -> None:
    """Gives every learner learner 0's weights, as colearn's helper does."""
    weights = learners[0].mli_get_current_weights()
    for learner in learners[1:]:
        learner.mli_accept_weights(_own_copy(weights))


def _own_copy(weights: Weights) -> Weights:
    """A deep copy for each learner, as each agent on chain decodes its own: a learner
    that keeps (and later trains in place) the arrays it was given cannot change what
    another learner holds."""
    return weights.model_copy(update={"weights": copy.deepcopy(weights.weights)})

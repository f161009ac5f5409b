"""colearn's training helpers: equal starting weights, the initial scores, a collective
round and an individual (no sharing) round, each as a :class:`Result`; and
:func:`run_experiment`, our loop of collective rounds.

``agents.experiment.training`` has the same functions with the same signatures, run on
chain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from colearn_core.ml_interface import MachineLearningInterface, TrainingSummary
from colearn_core.results import Result, Results
from colearn_core.standalone_driver import budget_spent, own_copy, play_round

log = logging.getLogger(__name__)


def set_equal_weights(learners: Sequence[MachineLearningInterface]) -> None:
    """Gives every learner (its own copy of) learner 0's weights."""
    weights = learners[0].mli_get_current_weights()
    for learner in learners[1:]:
        learner.mli_accept_weights(own_copy(weights))


def initial_result(learners: Sequence[MachineLearningInterface]) -> Result:
    """Round "-1" as colearn records it: every learner tests its current weights and
    votes ``True``; no proposer."""
    result = Result(training_summaries=[None] * len(learners))
    for learner in learners:
        tested = learner.mli_test_weights(learner.mli_get_current_weights())
        result.votes.append(True)
        result.test_scores.append(tested.test_score)
        result.vote_scores.append(tested.vote_score)
    return result


def collective_learning_round(
    learners: Sequence[MachineLearningInterface], vote_threshold: float, round_index: int
) -> Result:
    """One round (:func:`colearn_core.standalone_driver.run_one_round`) as a
    :class:`Result`; a round whose proposer proposed nothing is :meth:`Result.expired`."""
    log.info("collective learning round %d", round_index)
    proposer = round_index % len(learners)
    proposed, vote, weights = play_round(round_index, learners, vote_threshold)
    if vote is None:
        return Result.expired(proposer, len(learners), weights.training_summary)
    return Result.from_round(proposer, proposed, vote)


def individual_training_round(
    learners: Sequence[MachineLearningInterface], round_index: int
) -> Result:
    """Every learner trains alone: it proposes, tests and adopts its own weights (vote
    ``True``); no proposer. A learner whose privacy budget is spent keeps its weights and
    is recorded as not voting (``None``), with the scores of what it holds."""
    log.info("individual training round %d", round_index)
    result = Result()
    for learner in learners:
        weights = learner.mli_propose_weights()
        summary: TrainingSummary | None = weights.training_summary
        if budget_spent(weights):
            tested = learner.mli_test_weights(learner.mli_get_current_weights())
            result.votes.append(None)
        else:
            tested = learner.mli_test_weights(weights)
            learner.mli_accept_weights(weights)
            result.votes.append(True)
        result.test_scores.append(tested.test_score)
        result.vote_scores.append(tested.vote_score)
        result.training_summaries.append(summary)
    return result


def run_experiment(
    learners: Sequence[MachineLearningInterface],
    n_rounds: int,
    vote_threshold: float = 0.5,
    on_round: Callable[[int, Result], None] | None = None,
) -> Results:
    """Runs ``n_rounds`` collective rounds and collects their results (no initial
    result: ``data[r]`` is round ``r``)."""
    results = Results()
    for round_index in range(n_rounds):
        result = collective_learning_round(learners, vote_threshold, round_index)
        results.data.append(result)
        if on_round is not None:
            on_round(round_index, result)
    return results

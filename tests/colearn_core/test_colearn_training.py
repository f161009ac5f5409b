"""colearn's training helpers and standalone driver: names, signatures, semantics."""

from __future__ import annotations

import inspect

import numpy as np

import colearn_core
from colearn_core import standalone_driver, training
from colearn_core.ml_interface import (
    DiffPrivBudget,
    ErrorCodes,
    MachineLearningInterface,
    ProposedWeights,
    TrainingSummary,
    Weights,
)


def _params(function) -> list[tuple[str, object]]:
    return [(p.name, p.default) for p in inspect.signature(function).parameters.values()]


def test_colearns_signatures() -> None:
    empty = inspect.Parameter.empty
    assert _params(training.set_equal_weights) == [("learners", empty)]
    assert _params(training.initial_result) == [("learners", empty)]
    assert _params(training.collective_learning_round) == [
        ("learners", empty), ("vote_threshold", empty), ("round_index", empty)]
    assert _params(training.individual_training_round) == [
        ("learners", empty), ("round_index", empty)]
    assert _params(standalone_driver.run) == [("n_rounds", empty), ("learners", empty)]
    assert _params(standalone_driver.run_one_round) == [
        ("round_index", empty), ("learners", empty), ("vote_threshold", 0.5)]


def test_one_home_each() -> None:
    assert colearn_core.run_one_round is standalone_driver.run_one_round
    assert colearn_core.collective_learning_round is training.collective_learning_round
    assert training.run_experiment is colearn_core.run_experiment
    assert not hasattr(training, "run_one_round")


class Counter(MachineLearningInterface):
    """Weights are one array ``[x]``; proposing adds 1 in place of a copy it keeps (the
    hazard of colearn's shared weights); the vote is scripted."""

    def __init__(self, votes: list[bool] | None = None, spent: bool = False) -> None:
        self.w = np.zeros(1)
        self.votes = list(votes or [])
        self.spent = spent
        self.tested: list[float] = []

    def mli_propose_weights(self) -> Weights:
        summary = None
        if self.spent:
            budget = DiffPrivBudget(target_epsilon=1, target_delta=0, consumed_epsilon=1,
                                    consumed_delta=0)
            summary = TrainingSummary(dp_budget=budget,
                                      error_code=ErrorCodes.DP_BUDGET_EXCEEDED)
        return Weights(weights=self.w + 1, training_summary=summary)

    def mli_test_weights(self, weights: Weights) -> ProposedWeights:
        value = float(weights.weights[0])
        self.tested.append(value)
        vote = self.votes.pop(0) if self.votes else True
        return ProposedWeights(weights=weights, vote_score=value, test_score=-value, vote=vote)

    def mli_accept_weights(self, weights: Weights) -> None:
        self.w = weights.weights  # keeps the object it is given

    def mli_get_current_weights(self) -> Weights:
        return Weights(weights=self.w)


def test_set_equal_weights_gives_each_learner_its_own_copy() -> None:
    learners = [Counter() for _ in range(3)]
    learners[0].w = np.array([5.0])
    training.set_equal_weights(learners)
    assert [float(lr.w[0]) for lr in learners] == [5.0] * 3
    learners[1].w += 1  # in place: the others must not change (colearn shared one object)
    assert [float(lr.w[0]) for lr in learners] == [5.0, 6.0, 5.0]


def test_initial_result_tests_current_weights_and_votes_true() -> None:
    learners = [Counter(votes=[False]) for _ in range(2)]
    learners[1].w = np.array([2.0])
    result = training.initial_result(learners)
    assert result.votes == [True, True]  # colearn records True whatever the learner says
    assert result.vote_scores == [0.0, 2.0] and result.test_scores == [-0.0, -2.0]
    assert result.block_proposer is None and result.vote is False


def test_collective_learning_round_is_run_one_round_as_a_result() -> None:
    learners = [Counter(votes=[True, True]) for _ in range(3)]
    proposed, vote = standalone_driver.run_one_round(4, learners, 0.5)
    assert vote is True and [p.vote for p in proposed] == [True, None, True]
    result = training.collective_learning_round(learners, 0.5, 2)
    assert result.block_proposer == 2 and result.vote is True
    assert result.votes == [True, True, None]
    assert result.vote_scores == [2.0, 2.0, 2.0] and result.test_scores == [-2.0] * 3
    assert len(result.training_summaries) == 3


def test_rejected_and_expired_rounds() -> None:
    learners = [Counter(votes=[False]) for _ in range(3)]
    result = training.collective_learning_round(learners, 0.5, 0)
    assert result.vote is False and all(float(lr.w[0]) == 0 for lr in learners)
    spent = [Counter(spent=True), Counter(), Counter()]
    result = training.collective_learning_round(spent, 0.5, 0)
    assert result.is_expired and result.block_proposer == 0
    assert result.training_summaries[0].error_code is ErrorCodes.DP_BUDGET_EXCEEDED
    assert all(lr.tested == [] for lr in spent)  # nothing was proposed, nothing tested


def test_individual_training_round_trains_each_alone() -> None:
    learners = [Counter(), Counter(spent=True)]
    learners[0].w = np.array([3.0])
    result = training.individual_training_round(learners, 7)
    assert [float(lr.w[0]) for lr in learners] == [4.0, 0.0]
    assert result.votes == [True, None]  # the spent learner did not train
    assert result.vote_scores == [4.0, 0.0] and result.block_proposer is None


def test_run_plays_rounds_at_the_default_threshold() -> None:
    # 2 of 4 voters approve: a tie passes at colearn's default 0.5
    learners = [Counter(votes=[v] * 3) for v in (True, True, True, False, False)]
    assert standalone_driver.run(3, learners) is None
    assert float(learners[0].w[0]) == 3.0

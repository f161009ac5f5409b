"""The decision rule and the standalone (in-memory) driver on edge cases."""

from __future__ import annotations

import subprocess
import sys

import pytest

from colearn_core import (
    ColearnModel,
    MachineLearningInterface,
    ModelFormat,
    ProposedWeights,
    Weights,
    collective_learning_round,
    is_accepted,
    run_experiment,
    run_one_round,
    threshold_to_bps,
)


class ScriptedLearner(MachineLearningInterface):
    """A complete MLI learner whose weights are a counter and whose votes are scripted."""

    def __init__(self, votes: list[bool]):
        self.votes = list(votes)
        self.current = 0
        self.accepted: list[int] = []
        self.tested = 0

    def mli_propose_weights(self) -> Weights:
        return Weights(weights=self.current + 1)

    def mli_test_weights(self, weights: Weights) -> ProposedWeights:
        self.tested += 1
        return ProposedWeights(weights=weights, vote_score=float(weights.weights),
                               test_score=float(weights.weights), vote=self.votes.pop(0))

    def mli_accept_weights(self, weights: Weights) -> None:
        self.current = weights.weights
        self.accepted.append(weights.weights)

    def mli_get_current_weights(self) -> Weights:
        return Weights(weights=self.current)

    def mli_get_current_model(self) -> ColearnModel:
        return ColearnModel(model_format=ModelFormat.PICKLE_WEIGHTS_ONLY, model=self.current)


@pytest.mark.parametrize("approvals, n, bps, accepted", [
    (2, 5, 5000, True),      # a tie (2 of 4 at 50 %) passes
    (1, 5, 5000, False),
    (0, 5, 0, True),         # threshold 0 always accepts
    (0, 2, 0, True),
    (3, 5, 10_000, False),   # 10000: every voter must approve
    (4, 5, 10_000, True),
    (1, 2, 10_000, True),    # n = 2: the one voter decides
    (0, 2, 5000, False),
    (1, 2, 5000, True),
    (2, 4, 6667, False),     # 2 of 3 is 66.66 % < 66.67 %
    (2, 4, 6666, True),
])
def test_decision_rule(approvals, n, bps, accepted):
    assert is_accepted(approvals, n, bps) is accepted


@pytest.mark.parametrize("args", [(0, 1, 5000), (0, 3, -1), (0, 3, 10_001), (3, 3, 5000),
                                  (-1, 3, 5000)])
def test_decision_rule_refuses_impossible_inputs(args):
    with pytest.raises(ValueError):
        is_accepted(*args)


def test_threshold_conversion():
    assert [threshold_to_bps(t) for t in (0, 0.5, 2 / 3, 1)] == [0, 5000, 6667, 10_000]
    with pytest.raises(ValueError):
        threshold_to_bps(1.01)


def test_run_one_round_discards_the_proposers_vote_and_everyone_adopts():
    # learner 1 proposes (round 1 of 3); its own "approve" must not count
    learners = [ScriptedLearner([False]), ScriptedLearner([True]), ScriptedLearner([True])]
    proposed, vote = run_one_round(1, learners, vote_threshold=1.0)
    assert [p.vote for p in proposed] == [False, None, True]
    assert vote is False  # 1 of 2 voters < 100 %
    assert all(lr.accepted == [] for lr in learners)
    assert all(lr.tested == 1 for lr in learners)  # everyone tests, as in colearn

    learners = [ScriptedLearner([True]), ScriptedLearner([False]), ScriptedLearner([True])]
    proposed, vote = run_one_round(1, learners, vote_threshold=1.0)
    assert vote is True
    assert all(lr.accepted == [1] for lr in learners)  # the proposer too


def test_ties_pass_and_threshold_zero_accepts_unanimous_rejection():
    tie = [ScriptedLearner([v]) for v in (True, True, True, False, False)]  # learner 0 proposes
    assert run_one_round(0, tie, 0.5)[1] is True  # 2 of 4 voters approve
    nobody = [ScriptedLearner([False]) for _ in range(3)]
    assert run_one_round(0, nobody, 0.0)[1] is True


def test_run_experiment_records_colearn_results():
    learners = [ScriptedLearner([True] * 4) for _ in range(2)]
    results = run_experiment(learners, 4, 0.5)
    assert [r.block_proposer for r in results.data] == [0, 1, 0, 1]
    assert results.decisions() == [True] * 4
    assert results.data[0].votes == [None, True]
    assert learners[0].current == 4
    single = collective_learning_round([ScriptedLearner([False]), ScriptedLearner([False])], 0.5, 3)
    assert single.block_proposer == 1 and single.vote is False


def test_importing_the_core_imports_no_ml_framework():
    code = ("import sys, colearn_core, colearn_core.codec, colearn_core.plots;"
            "bad = [m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules];"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)

"""colearn 0.2.8's machine learning interface: a learner implementing only its four
methods instantiates and runs in memory, through agents on chain and in the audit; only
asking for its model says the model is unavailable."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from colearn_core import ModelUnavailableError
from colearn_core.ml_interface import MachineLearningInterface, ProposedWeights, Weights
from colearn_core.standalone_driver import run
from colearn_core.training import (
    collective_learning_round,
    individual_training_round,
    initial_result,
    run_experiment,
    set_equal_weights,
)


class OldLearner(MachineLearningInterface):
    """Written for colearn 0.2.8: no ``mli_get_current_model``. It moves its weights a
    step towards its target each round and approves what is closer to its target."""

    def __init__(self, target: float, step: float = 0.5) -> None:
        self.target, self.step = target, step
        self.w = np.zeros(3)

    def _score(self, w: np.ndarray) -> float:
        return -float(np.abs(w - self.target).mean())

    def mli_propose_weights(self) -> Weights:
        return Weights(weights={"w": self.w + self.step * np.sign(self.target - self.w)})

    def mli_test_weights(self, weights: Weights) -> ProposedWeights:
        score = self._score(weights.weights["w"])
        return ProposedWeights(weights=weights, vote_score=score, test_score=score,
                               vote=score > self._score(self.w))

    def mli_accept_weights(self, weights: Weights) -> None:
        self.w = np.array(weights.weights["w"])

    def mli_get_current_weights(self) -> Weights:
        return Weights(weights={"w": self.w.copy()})


def test_only_colearns_four_methods_are_abstract() -> None:
    assert MachineLearningInterface.__abstractmethods__ == {
        "mli_propose_weights", "mli_test_weights", "mli_accept_weights",
        "mli_get_current_weights"}
    for name in MachineLearningInterface.__abstractmethods__:
        params = list(inspect.signature(getattr(MachineLearningInterface, name)).parameters)
        assert params == (["self", "weights"] if name in ("mli_test_weights",
                                                          "mli_accept_weights") else ["self"])


def test_a_learner_without_the_model_says_so_by_name() -> None:
    learner = OldLearner(1.0)
    with pytest.raises(ModelUnavailableError, match="OldLearner"):
        learner.mli_get_current_model()
    assert issubclass(ModelUnavailableError, NotImplementedError)


def test_field_defaults_are_colearns() -> None:
    assert Weights().weights is None  # pydantic 1 made colearn's ``weights: Any`` optional
    proposed = ProposedWeights(weights=Weights(weights=1), vote_score=0.5, test_score=0.25)
    assert proposed.vote is None
    assert list(inspect.signature(ProposedWeights).parameters)[:4] == [
        "weights", "vote_score", "test_score", "vote"]


def test_every_in_memory_helper_runs_without_the_model() -> None:
    learners = [OldLearner(t) for t in (1.0, 2.0, 3.0)]
    set_equal_weights(learners)
    assert initial_result(learners).votes == [True] * 3
    assert collective_learning_round(learners, 0.5, 0).vote is True
    assert individual_training_round(learners, 1).votes == [True] * 3
    run(2, learners)
    assert None not in run_experiment(learners, 3, 0.5).decisions()


def test_on_chain_with_agents_and_audit_without_the_model() -> None:
    from agents.experiment.onchain import run_on_chain

    in_memory = [OldLearner(t) for t in (1.0, 2.0, 3.0)]
    expected = run_experiment(in_memory, 3, 0.5)
    outcome = run_on_chain([OldLearner(t) for t in (1.0, 2.0, 3.0)], 3, 0.5)
    assert outcome.decisions() == expected.decisions() == [True] * 3
    audited = outcome.results()  # the audit's reading of the chain
    assert [r.vote for r in audited.data] == [True] * 3
    np.testing.assert_array_equal(outcome.final_weights["w"],
                                  in_memory[0].mli_get_current_weights().weights["w"])

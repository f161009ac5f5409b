"""Learners whose weights are not arrays, for the opaque-weights and MLI-factory tests
(agents started as processes import this module: tests/ is on their path).

- :class:`BytesLearner`: a linear regression whose weights are its coefficients' raw
  float64 bytes; it validates peers' bytes itself (length, finite values).
- :func:`hostile_learner`: proposes bytes that are not a model at all.
- :class:`OpaqueFactory`: a colearn MLI factory (registered with ``FactoryRegistry``
  decorators) offering the XGBoost learner and the bytes learner over the diabetes data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from colearn_core.grpc.example_mli_factory import ExampleMliFactory
from colearn_core.grpc.factory_registry import FactoryRegistry
from colearn_core.ml_interface import (
    ColearnModel,
    MachineLearningInterface,
    ModelFormat,
    ProposedWeights,
    Weights,
)

Parts = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray],
              tuple[np.ndarray, np.ndarray]]


def diabetes_parts(index: int, n_learners: int, seed: int) -> Parts:
    from colearn_core.examples.xgb_reg_boston import make_split

    part = make_split(n_learners, seed).learners[index]
    return (part.x_train, part.y_train), (part.x_vote, part.y_vote), (part.x_test, part.y_test)


class BytesLearner(MachineLearningInterface):
    """Least squares by gradient steps; weights: ``n_features + 1`` float64 as bytes."""

    def __init__(self, parts: Parts, learning_rate: float = 0.5, steps: int = 20) -> None:
        (self.x, self.y), (self.xv, self.yv), (self.xt, self.yt) = parts
        self.learning_rate, self.steps = learning_rate, steps
        self.coef = np.zeros(self.x.shape[1] + 1)
        self.vote_score = self._mse(self.coef, self.xv, self.yv)

    def decode(self, raw: Any) -> np.ndarray:
        if not isinstance(raw, bytes) or len(raw) != 8 * self.coef.size:
            raise ValueError(f"expected {8 * self.coef.size} bytes of coefficients")
        coef = np.frombuffer(raw, np.float64)
        if not np.isfinite(coef).all():
            raise ValueError("coefficients are not finite")
        return coef.copy()

    @staticmethod
    def _mse(coef: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean((x @ coef[1:] + coef[0] - y) ** 2))

    def mli_propose_weights(self) -> Weights:
        coef = self.coef.copy()
        for _ in range(self.steps):
            error = self.x @ coef[1:] + coef[0] - self.y
            coef -= self.learning_rate * np.concatenate(
                [[error.mean()], self.x.T @ error / len(error)])
        return Weights(weights=coef.tobytes())

    def mli_test_weights(self, weights: Weights) -> ProposedWeights:
        coef = self.decode(weights.weights)
        vote_score = self._mse(coef, self.xv, self.yv)
        return ProposedWeights(weights=weights, vote_score=vote_score,
                               test_score=self._mse(coef, self.xt, self.yt),
                               vote=vote_score < self.vote_score)

    def mli_accept_weights(self, weights: Weights) -> None:
        self.coef = self.decode(weights.weights)
        self.vote_score = self._mse(self.coef, self.xv, self.yv)

    def mli_get_current_weights(self) -> Weights:
        return Weights(weights=self.coef.tobytes())

    def mli_get_current_model(self) -> ColearnModel:
        return ColearnModel(model_format=ModelFormat.PICKLE_WEIGHTS_ONLY, model=self.coef)


def bytes_learner(index: int, n_learners: int = 3, seed: int = 0) -> BytesLearner:
    return BytesLearner(diabetes_parts(index, n_learners, seed))


class _Hostile(BytesLearner):
    def mli_propose_weights(self) -> Weights:
        return Weights(weights=b"\x80\x04 not coefficients")

    def mli_test_weights(self, weights: Weights) -> ProposedWeights:
        if weights.weights == b"\x80\x04 not coefficients":  # its own: it likes them
            return ProposedWeights(weights=weights, vote_score=0.0, test_score=0.0, vote=True)
        return super().mli_test_weights(weights)


def hostile_learner(index: int, n_learners: int = 3, seed: int = 0) -> BytesLearner:
    return _Hostile(diabetes_parts(index, n_learners, seed))


# ------------------------------------------------------------------ a colearn MLI factory

@FactoryRegistry.register_dataloader("DIABETES")
def prepare_diabetes(location: str = "", index: int = 0, n_learners: int = 3,
                     seed: int = 0) -> Parts:
    """``location`` is unused: the data set is bundled with scikit-learn."""
    return diabetes_parts(index, n_learners, seed)


@FactoryRegistry.register_model_architecture("XGBOOST", ["DIABETES"])
def prepare_xgboost(data_loaders: Parts, n_steps_per_round: int = 2,
                    seed: int = 0) -> MachineLearningInterface:
    from colearn_core.learners.xgboost import XGBoostLearner

    (train, vote, test) = data_loaders
    return XGBoostLearner(*train, *vote, *test, n_steps_per_round=n_steps_per_round,
                          seed=seed)


@FactoryRegistry.register_model_architecture("BYTES_LINEAR", ["DIABETES"])
def prepare_bytes_linear(data_loaders: Parts, learning_rate: float = 0.5,
                         steps: int = 20) -> MachineLearningInterface:
    return BytesLearner(data_loaders, learning_rate=learning_rate, steps=steps)


class OpaqueFactory(ExampleMliFactory):
    """colearn's example factory over what this module registered."""


FACTORY = OpaqueFactory()  # an importable instance


def xgb_learner(index: int, n_learners: int = 3, seed: int = 0) -> MachineLearningInterface:
    """What ``--mli-factory opaque_learners:OpaqueFactory --model XGBOOST`` builds for
    learner ``index`` with ``--dataset-params '{"index": index, ...}'``."""
    return FACTORY.get_mli("XGBOOST", "{}", "DIABETES",
                           f'{{"index": {index}, "n_learners": {n_learners}, "seed": {seed}}}')

"""What every learner here shares: the vote, the test result and the current model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from colearn_core.ml_interface import (
    ColearnModel,
    DiffPrivConfig,
    MachineLearningInterface,
    ModelFormat,
    ProposedWeights,
    Weights,
)


def raw_weights(weights: Any) -> Any:
    """The learner's own weights, whether given as :class:`Weights` or as they are."""
    return weights.weights if isinstance(weights, Weights) else weights


def current_model(onnx_model: Any | None, weights: Callable[[], Any]) -> ColearnModel:
    """``onnx_model`` as ``ONNX``; without one, ``weights()`` as ``PICKLE_WEIGHTS_ONLY``
    (nothing is pickled)."""
    if onnx_model is None:
        return ColearnModel(model_format=ModelFormat.PICKLE_WEIGHTS_ONLY, model=weights())
    return ColearnModel(model_format=ModelFormat.ONNX, model=onnx_model)


def _flag(name: str, value: object) -> bool:
    """A bool parameter, refused when colearn's positional order put something else there."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__} (the parameter "
                        f"after test_loader, as in colearn)")
    return value


class Learner(MachineLearningInterface):
    """A learner whose vote is "strictly better than the current weights' vote score"."""

    vote_score: float
    minimise_criterion: bool

    def __init__(self, train_loader: Any, vote_loader: Any, test_loader: Any | None,
                 minimise_criterion: bool, diff_priv_config: DiffPrivConfig | None, *,
                 need_reset_optimizer: bool = False) -> None:
        """What the learners fed by loaders (Keras, PyTorch) keep alike; the scikit-learn
        ones, fed arrays, keep their own."""
        self.need_reset_optimizer = _flag("need_reset_optimizer", need_reset_optimizer)
        self.train_loader = train_loader
        self.vote_loader = vote_loader
        self.test_loader = test_loader
        self.minimise_criterion = minimise_criterion
        self.diff_priv_config = diff_priv_config

    def vote(self, new_score: float) -> bool:
        """Approve iff ``new_score`` is strictly better than the current vote score
        (``NaN`` never approves)."""
        if self.minimise_criterion:
            return bool(new_score < self.vote_score)
        return bool(new_score > self.vote_score)

    def _tested(self, weights: Weights, vote_score: float, test_score: float) -> ProposedWeights:
        """The result of testing ``weights``, with this learner's vote."""
        return ProposedWeights(
            weights=weights if isinstance(weights, Weights) else Weights(weights=weights),
            vote_score=vote_score, test_score=test_score, vote=self.vote(vote_score))

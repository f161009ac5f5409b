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


def check_vote_tolerance(vote_tolerance: float) -> float:
    """``vote_tolerance`` if it is a finite number in [0, 1), else ``ValueError``."""
    if isinstance(vote_tolerance, bool) or not isinstance(vote_tolerance, (int, float)) \
            or not 0.0 <= vote_tolerance < 1.0:
        raise ValueError(f"vote_tolerance must be a number in [0, 1), not {vote_tolerance!r}")
    return float(vote_tolerance)


def approves(new_score: float, current_score: float, minimise_criterion: bool,
             vote_tolerance: float = 0.0) -> bool:
    """The vote rule. ``vote_tolerance == 0`` (colearn's rule): approve iff ``new_score``
    is strictly better than ``current_score``. ``vote_tolerance > 0`` (non-inferiority):
    approve iff ``new_score`` is no worse than ``current_score`` by more than
    ``vote_tolerance * |current_score|``. ``NaN`` never approves."""
    if vote_tolerance == 0.0:
        if minimise_criterion:
            return bool(new_score < current_score)
        return bool(new_score > current_score)
    margin = vote_tolerance * abs(current_score)
    if minimise_criterion:
        return bool(new_score <= current_score + margin)
    return bool(new_score >= current_score - margin)


class Learner(MachineLearningInterface):
    """A learner whose vote is "strictly better than the current weights' vote score"
    (colearn's rule) or, with ``vote_tolerance`` > 0, "no worse than it by more than
    ``vote_tolerance`` of it" (:func:`approves`)."""

    vote_score: float
    minimise_criterion: bool
    #: relative non-inferiority margin of the vote; 0: colearn's strict rule
    vote_tolerance: float = 0.0

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
        """Approve iff ``new_score`` is strictly better than the current vote score, or,
        with ``vote_tolerance`` > 0, no worse than it by more than that fraction of it
        (``NaN`` never approves)."""
        return approves(new_score, self.vote_score, self.minimise_criterion,
                        self.vote_tolerance)

    def _tested(self, weights: Weights, vote_score: float, test_score: float) -> ProposedWeights:
        """The result of testing ``weights``, with this learner's vote."""
        return ProposedWeights(
            weights=weights if isinstance(weights, Weights) else Weights(weights=weights),
            vote_score=vote_score, test_score=test_score, vote=self.vote(vote_score))

"""The machine learning interface (MLI), with colearn's names, fields and meaning.

A learner written for colearn implements :class:`MachineLearningInterface` and runs
here with only its imports changed. Nothing in this module imports an ML framework.
"""

from __future__ import annotations

import abc
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict


class DiffPrivBudget(BaseModel):
    target_epsilon: float
    target_delta: float
    consumed_epsilon: float
    consumed_delta: float


class ErrorCodes(Enum):
    DP_BUDGET_EXCEEDED = 1


class TrainingSummary(BaseModel):
    dp_budget: DiffPrivBudget | None = None
    error_code: ErrorCodes | None = None


class Weights(BaseModel):
    """A learner's weights. ``weights`` is whatever the learner understands; to travel
    between agents it must be encodable by :mod:`colearn_core.codec` (a mapping or a
    sequence of arrays). Optional, as in colearn 0.2.8 (pydantic 1 made an ``Any`` field
    default to ``None``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    weights: Any = None
    training_summary: TrainingSummary | None = None


class DiffPrivConfig(BaseModel):
    target_epsilon: float
    target_delta: float
    max_grad_norm: float
    noise_multiplier: float


class ProposedWeights(BaseModel):
    """The result of testing proposed weights: scores on the learner's vote set and test
    set, and its vote (``None`` for the proposer, whose vote does not count)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    weights: Weights
    vote_score: float
    test_score: float
    vote: bool | None = None


class ModelFormat(Enum):
    PICKLE_WEIGHTS_ONLY = 1
    ONNX = 2


class ColearnModel(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_format: ModelFormat
    model_file: str | None = None
    model: Any | None = None


def convert_model_to_onnx(model: Any) -> Any:
    """colearn's helper: a scikit-learn estimator or a Keras model as an ``onnx.ModelProto``.

    Frameworks are imported only when called (skl2onnx, or Keras' exporter, which needs
    tf2onnx). PyTorch models need an example input to trace: use
    ``PytorchLearner.mli_get_current_model()``."""
    module = type(model).__module__
    if module.startswith("sklearn.") or hasattr(model, "n_features_in_"):
        import numpy as np
        from skl2onnx import to_onnx

        return to_onnx(model, np.zeros((1, model.n_features_in_), dtype=np.float32),
                       target_opset=None)
    if module.startswith(("keras", "tensorflow", "tf_keras")):
        import tempfile
        from pathlib import Path

        import onnx

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            model.export(str(path), format="onnx", verbose=False)
            return onnx.load(str(path))
    if module.startswith("torch"):
        raise TypeError("a PyTorch model needs an example input to export: use "
                        "PytorchLearner.mli_get_current_model()")
    raise TypeError(f"cannot convert a {type(model).__name__} to ONNX: scikit-learn and "
                    "Keras models are supported")


def deser_model(model: bytes) -> Any:
    """colearn's helper: an ONNX model back from its serialized bytes."""
    import onnx

    return onnx.load_model_from_string(model)


class ModelUnavailableError(NotImplementedError):
    """The learner does not give its current model (it implements colearn 0.2.8's
    interface, which had no :meth:`MachineLearningInterface.mli_get_current_model`)."""


class MachineLearningInterface(abc.ABC):
    @abc.abstractmethod
    def mli_propose_weights(self) -> Weights:
        """Trains the model and returns new weights. Does not change the current weights."""

    @abc.abstractmethod
    def mli_test_weights(self, weights: Weights) -> ProposedWeights:
        """Scores ``weights`` on the vote and test sets and votes. Does not change the
        current weights."""

    @abc.abstractmethod
    def mli_accept_weights(self, weights: Weights) -> None:
        """Replaces the current weights with ``weights`` (an accepted proposal)."""

    @abc.abstractmethod
    def mli_get_current_weights(self) -> Weights:
        """Returns the current weights."""

    def mli_get_current_model(self) -> ColearnModel:
        """Returns the current model (an extension: colearn 0.2.8's interface had no such
        method, so a learner written for it does not implement it). Only what needs the
        model (export) calls it; rounds, agents and audits never do."""
        raise ModelUnavailableError(
            f"{type(self).__name__} does not implement mli_get_current_model(): its model "
            "cannot be exported (colearn 0.2.8's interface had no such method)")

"""A Keras 3 learner for the machine learning interface, with colearn's parameters.

This module imports Keras (TensorFlow backend unless ``KERAS_BACKEND`` says otherwise);
import it explicitly. It is colearn's ``KerasLearner`` for Keras 3:

- Loaders are anything ``model.fit`` / ``model.evaluate`` take as their data, typically a
  batched ``tf.data.Dataset`` of ``(x, y)``. Each training call is one ``model.fit``
  (``verbose=0``) with ``model_fit_kwargs`` (e.g. ``{"steps_per_epoch": k}``), so each
  call starts a fresh pass over the train loader, as in colearn.
- Weights are ``model.get_weights()``: a list of numpy arrays, which travels through
  :mod:`colearn_core.codec` as a list. Incoming weights are checked against the model
  (count, shapes, dtypes; finite values on accept) before ``set_weights``, with
  :class:`~colearn_core.codec.WeightsFormatError` or
  :class:`~colearn_core.codec.WeightsMismatchError`.
- ``criterion`` names the entry of ``model.evaluate(..., return_dict=True)`` used as the
  vote score (``"loss"`` or a compiled metric such as ``"accuracy"``); the test score is
  the same entry on the test loader (0.0 without one, as :class:`PytorchLearner` does),
  or the keyword-only extra ``test_criterion``'s.

Guarantees (PROTOCOL.md, "What an agent guarantees"): proposing trains, returns the new
weights and restores the current ones bitwise; testing restores them too; the vote is
"strictly better than the cached vote score", refreshed on accept. With
``keras.utils.set_random_seed`` (or seeded initializers) and seeded ``tf.data``
shuffles, one sequence of calls gives identical weights within one process.

``need_reset_optimizer`` restores the optimizer's variables (step count, moments) to
their freshly built values before each training call, so a proposal does not carry
momentum from weights that were never accepted. Differential privacy would need
tensorflow-privacy, which does not work with Keras 3: ``diff_priv_config`` raises
:class:`NotImplementedError`.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TF's C++ INFO and WARNING lines (errors still show). The oneDNN notice at start-up is
# printed before TF reads this; only TF_ENABLE_ONEDNN_OPTS=0 hides it, and that changes
# numerics, so it is left to the user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from colearn_core.codec import WeightsFormatError, check_compatible
from colearn_core.learners._base import Learner, current_model, raw_weights
from colearn_core.ml_interface import (
    ColearnModel,
    DiffPrivConfig,
    ProposedWeights,
    TrainingSummary,
    Weights,
)
from colearn_core.utils.rss import trim_heap

log = logging.getLogger(__name__)

WeightsLike = Weights | Sequence[Any]


# --------------------------------------------------------------------------- helpers

def check_keras_weights(
    weights: WeightsLike, model: keras.Model, *, require_finite: bool = True
) -> list[np.ndarray]:
    """Checks ``weights`` against ``model`` (same count, shapes and dtypes as
    ``model.get_weights()``; finite if ``require_finite``) and returns them as a list of
    numpy arrays, views of the given ones (read-only ones too): ``set_weights`` copies
    them into the model's variables, so the model never aliases them.

    Raises :class:`~colearn_core.codec.WeightsFormatError` for something that is not a
    sequence of arrays, :class:`~colearn_core.codec.WeightsMismatchError` for weights
    that do not fit the model.
    """
    raw = raw_weights(weights)
    if isinstance(raw, (Mapping, str, bytes)) or not isinstance(raw, Sequence):
        raise WeightsFormatError(
            f"Keras weights are a list of arrays (model.get_weights()), not {type(raw).__name__}"
        )
    template = [np.empty(tuple(v.shape), keras.backend.standardize_dtype(v.dtype))
                for v in model.weights]  # shapes and dtypes only: never touched
    checked = check_compatible(list(raw), template, require_finite=require_finite)
    assert isinstance(checked, list)
    return checked


def onnx_export_available() -> bool:
    """Whether ``model.export(..., format="onnx")`` can run here (needs onnx and tf2onnx)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "tf2onnx"))


class ModelExportError(RuntimeError):
    """The model could not be exported to ONNX although the exporter is installed."""


# --------------------------------------------------------------------------- learner

class KerasLearner(Learner):
    """A learner wrapping a compiled Keras model, with colearn's constructor parameters.

    - ``train_loader``, ``vote_loader``, ``test_loader``: data for ``model.fit`` and
      ``model.evaluate`` (e.g. batched ``tf.data.Dataset`` of ``(x, y)``); no test loader
      gives a test score of 0.0.
    - ``need_reset_optimizer``: reset the optimizer's state before each training call.
    - ``minimise_criterion``: lower vote scores are better (``True``, for losses) or
      higher ones (``False``, for accuracies).
    - ``criterion``: the key of ``model.evaluate(return_dict=True)`` scored.
    - ``model_fit_kwargs``: extra ``model.fit`` arguments (default one epoch), e.g.
      ``{"steps_per_epoch": 4}``; ``model_evaluate_kwargs``: extra ``model.evaluate``
      arguments, e.g. ``{"steps": 2}``.
    - ``diff_priv_config``: not supported with Keras 3 (:class:`NotImplementedError`).
    - ``test_criterion`` (keyword-only, not in colearn): the key scored on the test loader
      when it should differ from the vote's (e.g. vote on loss, report accuracy);
      ``None``: ``criterion``.
    """

    def __init__(
        self,
        model: keras.Model,
        train_loader: Any,
        vote_loader: Any,
        test_loader: Any | None = None,
        need_reset_optimizer: bool = True,
        minimise_criterion: bool = True,
        criterion: str = "loss",
        model_fit_kwargs: dict[str, Any] | None = None,
        model_evaluate_kwargs: dict[str, Any] | None = None,
        *,
        diff_priv_config: DiffPrivConfig | None = None,
        test_criterion: str | None = None,
    ) -> None:
        if diff_priv_config is not None:
            raise NotImplementedError(
                "differential privacy for Keras needs tensorflow-privacy, which does not "
                "work with Keras 3; use PytorchLearner with diff_priv_config (opacus) instead"
            )
        if getattr(model, "optimizer", None) is None:
            raise ValueError("the model must be compiled (model.compile(optimizer, loss, ...))")
        super().__init__(train_loader, vote_loader, test_loader, minimise_criterion,
                         diff_priv_config, need_reset_optimizer=need_reset_optimizer)
        self.model = model
        self.criterion = criterion
        self.test_criterion = test_criterion if test_criterion is not None else criterion
        self.model_fit_kwargs = self._kwargs(model_fit_kwargs, "model_fit_kwargs",
                                             model.fit, ("x", "y"))
        self.model_evaluate_kwargs = self._kwargs(
            model_evaluate_kwargs, "model_evaluate_kwargs", model.evaluate,
            ("x", "y", "return_dict"))
        if not model.built:
            raise ValueError("the model must be built (give it a keras.Input or call build())")
        # Build the optimizer now so that its freshly built state can be restored later.
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self._fresh_optimizer_state = [np.array(v.numpy(), copy=True)
                                       for v in self.model.optimizer.variables]
        self.vote_score: float = self._score(self.vote_loader)

    @staticmethod
    def _kwargs(given: dict[str, Any] | None, label: str, method: Any,
                reserved: tuple[str, ...]) -> dict[str, Any]:
        """``given`` checked as keyword arguments of ``method`` (as colearn did, at
        construction rather than at the first call), with ``verbose=0`` by default."""
        kwargs = dict(given or {})
        clash = sorted(set(kwargs) & set(reserved))
        if clash:
            raise ValueError(f"{label} may not set {clash}: the learner passes them")
        try:
            inspect.signature(method).bind_partial(**kwargs)
        except TypeError as exc:
            raise ValueError(f"{label} are not arguments of {method.__name__}: {exc}") from None
        kwargs.setdefault("verbose", 0)
        return kwargs

    # ------------------------------------------------------------------ scoring

    def _score(self, loader: Any, criterion: str | None = None) -> float:
        criterion = self.criterion if criterion is None else criterion
        scores = self.model.evaluate(loader, return_dict=True, **self.model_evaluate_kwargs)
        if criterion not in scores:
            raise ValueError(
                f"criterion {criterion!r} is not among model.evaluate's results "
                f"{sorted(scores)}; compile the model with that metric or name another"
            )
        return float(scores[criterion])

    def test(self, loader: Any) -> float:
        """colearn's score of the current model on ``loader``: the ``criterion`` entry
        of ``model.evaluate``."""
        return self._score(loader)

    def evaluate(self, weights: WeightsLike, loader: Any) -> dict[str, float]:
        """All of ``model.evaluate``'s results for ``weights`` on any ``loader`` (e.g. a
        held-out set), leaving the current weights as they were."""
        checked = check_keras_weights(weights, self.model, require_finite=False)
        saved = self.model.get_weights()
        try:
            self.model.set_weights(checked)
            scores = self.model.evaluate(loader, return_dict=True, **self.model_evaluate_kwargs)
            return {name: float(value) for name, value in scores.items()}
        finally:
            self.model.set_weights(saved)

    # ------------------------------------------------------------------ training

    def set_weights(self, weights: WeightsLike) -> None:
        """Loads ``weights`` (``Weights``, or the list itself) into the model after
        checking they fit it; the vote score is left as it was (as in colearn:
        :meth:`mli_accept_weights` also rescores)."""
        self.model.set_weights(check_keras_weights(weights, self.model, require_finite=False))

    def reset_optimizer(self) -> None:
        """Restores the optimizer's variables (step count, moments, learning rate) to
        their values when the learner was made."""
        variables = self.model.optimizer.variables
        if len(variables) != len(self._fresh_optimizer_state):
            raise RuntimeError("the optimizer's variables changed since the learner was made")
        for variable, value in zip(variables, self._fresh_optimizer_state):
            variable.assign(value)

    def train(self) -> TrainingSummary:
        """Trains the model in place: one ``model.fit`` with ``model_fit_kwargs``."""
        if self.need_reset_optimizer:
            self.reset_optimizer()
        with warnings.catch_warnings():
            # fit's default shuffle=True does not apply to datasets, which shuffle themselves
            warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed")
            self.model.fit(self.train_loader, **self.model_fit_kwargs)
        return TrainingSummary()

    # ------------------------------------------------------------------ the MLI

    def mli_propose_weights(self) -> Weights:
        saved = self.model.get_weights()
        try:
            summary = self.train()
            new_weights = self.model.get_weights()
        finally:
            self.model.set_weights(saved)
        return Weights(weights=new_weights, training_summary=summary)

    def mli_test_weights(self, weights: Weights) -> ProposedWeights:
        checked = check_keras_weights(weights, self.model, require_finite=False)
        saved = self.model.get_weights()
        try:
            self.model.set_weights(checked)
            vote_score = self._score(self.vote_loader)
            test_score = (self._score(self.test_loader, self.test_criterion)
                          if self.test_loader is not None else 0.0)
        finally:
            self.model.set_weights(saved)
            del saved
            # measured: without it the snapshot's freed layers stay resident (glibc), and
            # the process stays a model size above its baseline after every vote
            trim_heap()
        return self._tested(weights, vote_score, test_score)

    def mli_accept_weights(self, weights: Weights) -> None:
        self.model.set_weights(check_keras_weights(weights, self.model))
        self.vote_score = self._score(self.vote_loader)

    def mli_get_current_weights(self) -> Weights:
        return Weights(weights=self.model.get_weights())

    def mli_get_current_model(self) -> ColearnModel:
        """The current model as an ``onnx.ModelProto`` (``ModelFormat.ONNX``) when onnx and
        tf2onnx are installed; otherwise ``PICKLE_WEIGHTS_ONLY`` with ``model`` the weights
        list (nothing is pickled). :class:`ModelExportError` if the export itself fails."""
        if not onnx_export_available():
            log.info("onnx or tf2onnx is not installed: returning the weights only")
            return current_model(None, self.model.get_weights)
        import onnx

        with tempfile.TemporaryDirectory(prefix="colearn-keras-onnx-") as tmp:
            path = os.path.join(tmp, "model.onnx")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # tf2onnx's numpy deprecation notices
                    self.model.export(path, format="onnx", verbose=False)
            except Exception as exc:  # the exporter raises many kinds of errors
                raise ModelExportError(f"ONNX export of the Keras model failed: {exc}") from exc
            return current_model(onnx.load(path), self.model.get_weights)

"""The scikit-learn learner for any estimator with ``partial_fit`` (colearn's fraud
example used ``SGDClassifier``)."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import clone, is_classifier

from colearn_core.codec import WeightsMismatchError
from colearn_core.learners._base import Learner, current_model, raw_weights
from colearn_core.learners.sklearn._common import (
    OutputMethod,
    ScoreError,
    ScoreFn,
    WeightsLike,
    _check_sets,
    _check_structure,
    _Criterion,
    _direction,
    _resolve,
    _threads,
)
from colearn_core.ml_interface import ColearnModel, ProposedWeights, TrainingSummary, Weights

log = logging.getLogger(__name__)


def _glorot(rng: np.random.Generator, fan_in: int, fan_out: int, activation: str,
            coef_dtype: np.dtype, intercept_dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's MLP initialisation (Glorot uniform), drawn from ``rng``."""
    factor = 2.0 if activation == "logistic" else 6.0
    bound = math.sqrt(factor / (fan_in + fan_out))
    coef = rng.uniform(-bound, bound, (fan_in, fan_out)).astype(coef_dtype)
    intercept = rng.uniform(-bound, bound, fan_out).astype(intercept_dtype)
    return coef, intercept


class SklearnPartialFitLearner(Learner):
    """A learner around any scikit-learn estimator with ``partial_fit``.

    - ``estimator``: an UNFITTED estimator; it is cloned (its parameters, never fitted
      state), so one template can serve several learners. ``random_state`` ``None`` is
      set to ``seed`` (an int ``random_state`` is kept); averaged SGD (``average``) is
      refused because its averaging state would have to travel too.
    - ``x_train, y_train, x_vote, y_vote, x_test, y_test``: numpy arrays (test optional).
    - ``classes``: every class label, required for classifiers (a learner's own data may
      lack some).
    - ``batch_size``, ``batches_per_round``: each proposal is ``batches_per_round`` calls
      of ``partial_fit`` on batches of ``batch_size`` rows, read on from where the
      previous proposal stopped through seeded per-epoch permutations.
    - ``vote_criterion``: a name from :data:`NAMED_SCORES` (``"accuracy"``, ``"roc_auc"``,
      ``"log_loss"``, ``"mse"``, ...) or ``f(y_true, output) -> float`` with ``output``
      the estimator's ``vote_output`` method's result (default ``predict``). Default:
      ``"accuracy"`` for classifiers, ``"mse"`` for regressors.
    - ``minimise_criterion``: lower is better; derived from a named score (and checked
      against it if given), required for a function.
    - ``seed``: initial weights and batch order.
    - ``test_criterion`` (keyword): the test score, like ``vote_criterion``; default the
      same as the vote.
    - ``weight_attributes`` (keyword): the fitted attributes that are the weights.
      Default: ``coefs_`` and ``intercepts_`` for an MLP; ``coef_``, ``intercept_`` and,
      if the estimator has it, ``t_`` for linear models. Array attributes travel as they
      are, list attributes as ``NAME.0``, ``NAME.1``, ..., and scalars as 1-element
      arrays (float64 or int64).
    - ``initial_weights`` (keyword): the starting weights (same structure); default:
      zeros for ``coef_`` / ``intercept_``, ``t_`` = 1 (SGD's own start value),
      Glorot-uniform from ``seed`` for an MLP's layers. Other attributes need them given.
    - ``num_threads`` (keyword): BLAS threads while the learner works (default 1, for
      bitwise-reproducible matrix products; ``None``: leave as is).

    Why ``t_`` is a weight for the SGD models: it sets their learning rate schedule
    (``"optimal"``, ``"invscaling"``) and counts samples seen, so sharing it makes the
    collective model continue exactly as one model trained on the accepted proposals in
    turn would, instead of each learner restarting with large early steps.

    Structure: names and shapes are fixed by one ``partial_fit`` call at construction on
    the learner's first training batch (it allocates the arrays); the trained values are
    then replaced by the initial weights and the MLP's optimizer state is dropped, so
    training starts fresh from the initial weights. As in colearn, the estimator's own
    training state outside the weights (an MLP's Adam moments) advances with proposals.
    """

    def __init__(
        self,
        estimator: Any,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_vote: np.ndarray,
        y_vote: np.ndarray,
        x_test: np.ndarray | None = None,
        y_test: np.ndarray | None = None,
        classes: Sequence[Any] | np.ndarray | None = None,
        batch_size: int = 32,
        batches_per_round: int = 10,
        vote_criterion: str | ScoreFn | None = None,
        minimise_criterion: bool | None = None,
        seed: int = 0,
        *,
        test_criterion: str | ScoreFn | None = None,
        vote_output: OutputMethod = "predict",
        weight_attributes: Sequence[str] | None = None,
        initial_weights: Mapping[str, np.ndarray] | None = None,
        num_threads: int | None = 1,
    ) -> None:
        if not hasattr(estimator, "partial_fit"):
            raise ValueError(f"{type(estimator).__name__} has no partial_fit")
        if batch_size < 1 or batches_per_round < 1:
            raise ValueError("batch_size and batches_per_round must be at least 1")
        if num_threads is not None and num_threads < 1:
            raise ValueError("num_threads must be at least 1 (or None: unchanged)")
        if vote_output not in ("predict", "predict_proba", "decision_function"):
            raise ValueError(f"vote_output must be a prediction method name, not {vote_output!r}")
        self.estimator = clone(estimator)
        params = self.estimator.get_params(deep=False)
        if params.get("average"):
            raise ValueError("averaged SGD (average != False) is not supported: its "
                             "averaging state is not part of the weights")
        if "random_state" in params:
            if params["random_state"] is None:
                self.estimator.set_params(random_state=int(seed))
            elif not isinstance(params["random_state"], (int, np.integer)):
                raise ValueError("random_state must be an int or None (set to seed) for "
                                 "reproducible training")
        self.is_classifier = is_classifier(self.estimator)
        if self.is_classifier:
            if classes is None:
                raise ValueError("classes (every class label) is required for a classifier")
            self.classes: np.ndarray | None = np.asarray(classes)
        else:
            self.classes = None
        self.x_train, self.y_train, self.x_vote, self.y_vote, self.x_test, self.y_test = \
            _check_sets(x_train, y_train, x_vote, y_vote, x_test, y_test)
        self.batch_size = int(batch_size)
        self.batches_per_round = int(batches_per_round)
        self.num_threads = num_threads
        self.vote_output = vote_output
        self.seed = int(seed)
        if vote_criterion is None:
            vote_criterion = "accuracy" if self.is_classifier else "mse"
        self._vote_criterion = _resolve(vote_criterion, vote_output)
        self._test_criterion = self._vote_criterion if test_criterion is None \
            else _resolve(test_criterion, vote_output)
        self.minimise_criterion = _direction(self._vote_criterion, minimise_criterion)
        self._batch_rng = np.random.default_rng([self.seed, 2])
        self._order = self._batch_rng.permutation(len(self.y_train))
        self._position = 0

        with _threads(self.num_threads):
            # one partial_fit allocates the fitted arrays: it fixes names and shapes
            self._partial_fit(self._next_batch())
            self._attributes = list(weight_attributes) if weight_attributes is not None \
                else self._default_attributes()
            self._kinds = self._attribute_kinds()
            self._template = {k: np.empty(v.shape, v.dtype)
                              for k, v in self._read_weights().items()}
            if initial_weights is None:
                initial = self._default_initial_weights(np.random.default_rng([self.seed, 1]))
            else:
                initial = _check_structure(initial_weights, self._template, require_finite=True)
            self._write_weights(initial)
            self._reset_training_state()
            self._order = self._batch_rng.permutation(len(self.y_train))
            self._position = 0
            self.vote_score: float = self._score(self.x_vote, self.y_vote, self._vote_criterion)

    # ------------------------------------------------------------------ weights

    def _default_attributes(self) -> list[str]:
        est = self.estimator
        if hasattr(est, "coefs_") and hasattr(est, "intercepts_"):
            return ["coefs_", "intercepts_"]
        if hasattr(est, "coef_") and hasattr(est, "intercept_"):
            return ["coef_", "intercept_"] + (["t_"] if hasattr(est, "t_") else [])
        raise ValueError(f"give weight_attributes: no default for {type(est).__name__}")

    def _attribute_kinds(self) -> dict[str, tuple[str, int]]:
        kinds: dict[str, tuple[str, int]] = {}
        for attr in self._attributes:
            if not hasattr(self.estimator, attr):
                raise ValueError(f"{type(self.estimator).__name__} has no attribute {attr!r} "
                                 "after partial_fit")
            value = getattr(self.estimator, attr)
            if isinstance(value, np.ndarray):
                kinds[attr] = ("array", 0)
            elif isinstance(value, (list, tuple)) and all(isinstance(v, np.ndarray)
                                                          for v in value):
                kinds[attr] = ("list", len(value))
            elif isinstance(value, (float, np.floating)):
                kinds[attr] = ("float", 0)
            elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                kinds[attr] = ("int", 0)
            else:
                raise ValueError(f"attribute {attr!r} is a {type(value).__name__}: weights "
                                 "are arrays, lists of arrays or numbers")
        return kinds

    def _read_weights(self) -> dict[str, np.ndarray]:
        """The estimator's weights as copies."""
        out: dict[str, np.ndarray] = {}
        for attr, (kind, _) in self._kinds.items():
            value = getattr(self.estimator, attr)
            if kind == "array":
                out[attr] = np.array(value, copy=True, order="C")
            elif kind == "list":
                for i, item in enumerate(value):
                    out[f"{attr}.{i}"] = np.array(item, copy=True, order="C")
            elif kind == "float":
                out[attr] = np.array([value], dtype=np.float64)
            else:
                out[attr] = np.array([value], dtype=np.int64)
        return out

    def _write_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Sets the estimator's attributes to copies of ``weights`` (already checked):
        partial_fit updates arrays in place, so the caller's must never be aliased."""
        for attr, (kind, length) in self._kinds.items():
            if kind == "array":
                setattr(self.estimator, attr, np.array(weights[attr], copy=True, order="C"))
            elif kind == "list":
                setattr(self.estimator, attr, [np.array(weights[f"{attr}.{i}"], copy=True,
                                                        order="C") for i in range(length)])
            elif kind == "float":
                setattr(self.estimator, attr, float(weights[attr][0]))
            else:
                setattr(self.estimator, attr, int(weights[attr][0]))

    def _default_initial_weights(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        est = self.estimator
        template = self._template
        initial: dict[str, np.ndarray] = {}
        for name, array in template.items():
            attr, _, index = name.partition(".")
            if attr in ("coef_", "intercept_"):
                initial[name] = np.zeros(array.shape, array.dtype)
            elif attr == "t_" and hasattr(est, "coef_"):
                initial[name] = np.ones(array.shape, array.dtype)  # BaseSGD starts at 1
            elif attr == "coefs_":
                fan_in, fan_out = array.shape
                bias = template[f"intercepts_.{index}"]
                initial[name], initial[f"intercepts_.{index}"] = _glorot(
                    rng, fan_in, fan_out, getattr(est, "activation", "relu"),
                    array.dtype, bias.dtype)
            elif attr == "intercepts_":
                continue  # drawn with its layer's coefs_
            else:
                raise ValueError(f"no default initial value for {name!r}: give initial_weights")
        return {name: initial[name] for name in template}

    def _reset_training_state(self) -> None:
        # Forget what the structure-fixing partial_fit did besides the weights: an MLP
        # builds a fresh optimizer (Adam/SGD state) on its next partial_fit.
        est = self.estimator
        if hasattr(est, "_optimizer"):
            del est._optimizer
        if hasattr(est, "coefs_"):
            if "t_" not in self._kinds:
                est.t_ = 0
            est.n_iter_ = 0
            est.loss_curve_ = []
            est.best_loss_ = np.inf
            est._no_improvement_count = 0

    def _check(self, weights: WeightsLike, *, require_finite: bool) -> dict[str, np.ndarray]:
        return _check_structure(raw_weights(weights), self._template, require_finite=require_finite)

    @contextlib.contextmanager
    def _holding(self, weights: Mapping[str, np.ndarray] | None) -> Iterator[None]:
        """Runs the block with ``weights`` loaded (``None``: the current ones), then puts
        the current weights back bitwise."""
        saved = self._read_weights()
        try:
            if weights is not None:
                self._write_weights(weights)
            yield
        finally:
            self._write_weights(saved)

    # ------------------------------------------------------------------ data and scores

    def _next_batch(self) -> np.ndarray:
        if self._position >= len(self._order):
            self._order = self._batch_rng.permutation(len(self.y_train))
            self._position = 0
        batch = self._order[self._position:self._position + self.batch_size]
        self._position += len(batch)
        return batch

    def _partial_fit(self, rows: np.ndarray) -> None:
        x, y = self.x_train[rows], self.y_train[rows]
        if self.is_classifier:
            self.estimator.partial_fit(x, y, classes=self.classes)
        else:
            self.estimator.partial_fit(x, y)

    def _output(self, x: np.ndarray, kind: str) -> np.ndarray:
        est = self.estimator
        if kind == "proba_or_decision":
            kind = "predict_proba" if hasattr(est, "predict_proba") else "decision_function"
        elif kind == "proba":
            if not hasattr(est, "predict_proba"):
                raise ScoreError(f"{type(est).__name__} (loss "
                                 f"{getattr(est, 'loss', '?')!r}) has no predict_proba")
            kind = "predict_proba"
        method = getattr(est, kind, None)
        if method is None:
            raise ScoreError(f"{type(est).__name__} has no {kind}")
        return np.asarray(method(x))

    def _score(self, x: np.ndarray, y: np.ndarray, criterion: _Criterion) -> float:
        return float(criterion.fn(y, self._output(x, criterion.output), self.classes))

    def evaluate(self, weights: WeightsLike, x: np.ndarray, y: np.ndarray,
                 criterion: str | ScoreFn | None = None) -> float:
        """Scores ``weights`` on any ``(x, y)`` (e.g. a global held-out set) with
        ``criterion`` (default: the vote criterion), leaving the current weights as
        they were."""
        resolved = self._vote_criterion if criterion is None \
            else _resolve(criterion, self.vote_output)
        checked = self._check(weights, require_finite=False)
        with _threads(self.num_threads), self._holding(checked):
            return self._score(np.asarray(x), np.asarray(y), resolved)

    # ------------------------------------------------------------------ training

    def train(self) -> TrainingSummary:
        """Trains the estimator in place: ``batches_per_round`` partial_fit calls."""
        for _ in range(self.batches_per_round):
            self._partial_fit(self._next_batch())
        return TrainingSummary()

    # ------------------------------------------------------------------ the MLI

    def mli_propose_weights(self) -> Weights:
        with _threads(self.num_threads), self._holding(None):
            summary = self.train()
            new_weights = self._read_weights()
        try:
            self._check(new_weights, require_finite=False)
        except WeightsMismatchError as exc:
            raise RuntimeError(f"training changed the weights' structure: {exc}") from None
        return Weights(weights=new_weights, training_summary=summary)

    def mli_test_weights(self, weights: Weights) -> ProposedWeights:
        """Scores ``weights`` on the vote and test sets. Weights with NaN or Inf score
        NaN (and are never approved) without being run: sklearn's metrics refuse NaN."""
        checked = self._check(weights, require_finite=False)
        if not all(np.isfinite(a).all() for a in checked.values() if a.dtype.kind == "f"):
            vote_score = test_score = float("nan")
        else:
            with _threads(self.num_threads), self._holding(checked):
                vote_score = self._score(self.x_vote, self.y_vote, self._vote_criterion)
                test_score = 0.0 if self.x_test is None or self.y_test is None \
                    or len(self.y_test) == 0 else \
                    self._score(self.x_test, self.y_test, self._test_criterion)
        return self._tested(weights, vote_score, test_score)

    def mli_accept_weights(self, weights: Weights) -> None:
        checked = self._check(weights, require_finite=True)
        self._write_weights(checked)
        with _threads(self.num_threads):
            self.vote_score = self._score(self.x_vote, self.y_vote, self._vote_criterion)

    def mli_get_current_weights(self) -> Weights:
        return Weights(weights=self._read_weights())

    def mli_get_current_model(self) -> ColearnModel:
        """The current model as ONNX (``skl2onnx``; classifiers output ``label`` and, if
        the model has probabilities, ``probabilities`` as a tensor, input ``input``
        float32). If skl2onnx is missing or cannot convert this estimator, the weights
        dict as ``PICKLE_WEIGHTS_ONLY`` (nothing is pickled) and a logged warning."""
        try:
            from skl2onnx import convert_sklearn
            from skl2onnx.common.data_types import FloatTensorType

            options = {id(self.estimator): {"zipmap": False}} if self.is_classifier else None
            model = convert_sklearn(
                self.estimator,
                initial_types=[("input", FloatTensorType([None, self.x_vote.shape[1]]))],
                options=options)
            return current_model(model, self._read_weights)
        except Exception as exc:  # noqa: BLE001  converter coverage varies by estimator
            log.warning("ONNX export of %s failed (%s): returning the weights only",
                        type(self.estimator).__name__, exc)
            return current_model(None, self._read_weights)

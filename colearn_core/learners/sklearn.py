"""scikit-learn learners for the machine learning interface: colearn's two kinds.

This module imports scikit-learn; import it explicitly (``colearn_core`` does not).

* :class:`SklearnPartialFitLearner` wraps any estimator with ``partial_fit``
  (``SGDClassifier`` as in colearn's fraud example, ``SGDRegressor``, ``MLPClassifier``,
  ...). Its weights are the estimator's fitted arrays, e.g. ``coef_``, ``intercept_``
  and ``t_`` for the SGD models, or ``coefs_.0``, ``intercepts_.0``, ... for an MLP.
* :class:`RandomForestLearner` grows a random forest as colearn's iris example did: each
  proposal adds ``trees_per_round`` trees trained on the learner's own data. colearn
  pickled the whole sklearn model; here the forest IS its weights: fixed-capacity arrays
  (see :class:`ForestLayout`), validated before use and evaluated in pure numpy, so no
  sklearn object is ever deserialised.

Both keep the reference learner's guarantees (:mod:`colearn_core.learners.pytorch`):
proposing and testing never change the current weights (they are restored bitwise),
weights are copied in and out (never aliased), the vote is "strictly better than the
cached vote score of the current weights" (refreshed on accept), and one sequence of
calls gives bitwise identical weights for a fixed seed. Weights have a fixed structure
(names, shapes, dtypes), as the agent requires. Nothing here pickles anything.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sklearn.base import clone, is_classifier
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import ThreadpoolController

from colearn_core.codec import WeightsFormatError, WeightsMismatchError, check_compatible
from colearn_core.ml_interface import (
    ColearnModel,
    MachineLearningInterface,
    ModelFormat,
    ProposedWeights,
    TrainingSummary,
    Weights,
)

log = logging.getLogger(__name__)

#: ``f(y_true, output) -> float`` on a whole data set, numpy arrays.
ScoreFn = Callable[[np.ndarray, np.ndarray], float]
WeightsLike = Weights | Mapping[str, Any]
OutputMethod = Literal["predict", "predict_proba", "decision_function"]


class ScoreError(ValueError):
    """A score that cannot be computed (unknown name, unsuitable model or data)."""


def _raw(weights: WeightsLike) -> Any:
    return weights.weights if isinstance(weights, Weights) else weights


def _copy_weights(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.array(array, copy=True, order="C") for name, array in weights.items()}


def _check_structure(raw: Any, template: Mapping[str, np.ndarray], *,
                     require_finite: bool) -> dict[str, np.ndarray]:
    """``raw`` as a dict of arrays if it has ``template``'s names, shapes and dtypes
    (and, if ``require_finite``, only finite values); else a named error."""
    if not isinstance(raw, Mapping):
        raise WeightsFormatError(
            f"scikit-learn weights are a mapping {{name: array}}, not {type(raw).__name__}")
    if require_finite:
        check_compatible(raw, template)
        return {str(k): np.asarray(v) for k, v in raw.items()}
    got = {str(k): v for k, v in raw.items()}
    if set(got) != set(template):
        missing = sorted(set(template) - set(got))
        extra = sorted(set(got) - set(template))
        raise WeightsMismatchError(f"weight names differ: missing {missing}, unexpected {extra}")
    out: dict[str, np.ndarray] = {}
    for name, expected in template.items():
        value = got[name]
        if not isinstance(value, (np.ndarray, np.generic)):
            raise WeightsFormatError(f"weight {name!r} is a {type(value).__name__}, not an array")
        array = np.asarray(value)
        if array.shape != expected.shape:
            raise WeightsMismatchError(
                f"weight {name!r} has shape {array.shape}, the model expects {expected.shape}")
        if array.dtype != expected.dtype:
            raise WeightsMismatchError(
                f"weight {name!r} has dtype {array.dtype}, the model expects {expected.dtype}")
        out[name] = array
    return out


def _vote(new_score: float, current: float, minimise: bool) -> bool:
    """Strictly better (``NaN`` never approves)."""
    return bool(new_score < current) if minimise else bool(new_score > current)


@functools.lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    # Scanning the loaded BLAS/OpenMP libraries takes milliseconds; scan once (numpy's,
    # scipy's and scikit-learn's are loaded by this module's imports).
    return ThreadpoolController()


@contextlib.contextmanager
def _threads(num_threads: int | None) -> Iterator[None]:
    """BLAS/OpenMP threads limited to ``num_threads`` (``None``: unchanged): results of
    matrix products can differ in the last bits between thread counts."""
    if num_threads is None:
        yield
    else:
        with _controller().limit(limits=num_threads):
            yield


def _check_xy(name: str, x: Any, y: Any, *,
              allow_empty: bool = False) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2:
        raise ValueError(f"{name}: x must be 2-D (samples, features), got shape {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"{name}: y must be 1-D with one label per row of x")
    if not allow_empty and len(y) == 0:
        raise ValueError(f"{name} is empty")
    return x, y


# --------------------------------------------------------------------------- scores

class NamedScore(NamedTuple):
    """A score by name: what it needs from the model and which direction is better."""

    output: Literal["predict", "proba", "proba_or_decision"]
    minimise: bool
    fn: Callable[[np.ndarray, np.ndarray, np.ndarray | None], float]  # (y, out, classes)


def _binary_column(out: np.ndarray, classes: np.ndarray | None, what: str) -> np.ndarray:
    if out.ndim == 1:
        return out
    if out.shape[1] != 2:
        raise ScoreError(f"{what} is for binary classification; the model has "
                         f"{out.shape[1]} classes")
    return out[:, 1]


def _roc_auc(y: np.ndarray, out: np.ndarray, classes: np.ndarray | None) -> float:
    if len(np.unique(y)) < 2:
        raise ScoreError("roc_auc needs both classes in the scored set; it has only one")
    if out.ndim == 1 or out.shape[1] == 2:
        return float(roc_auc_score(y, _binary_column(out, classes, "roc_auc")))
    return float(roc_auc_score(y, out, multi_class="ovr", labels=classes))


def _average_precision(y: np.ndarray, out: np.ndarray, classes: np.ndarray | None) -> float:
    if classes is None or len(classes) != 2:
        raise ScoreError("average_precision is for binary classification")
    return float(average_precision_score(y == classes[1],
                                         _binary_column(out, classes, "average_precision")))


def brier_score(y: np.ndarray, proba: np.ndarray, classes: np.ndarray | None = None) -> float:
    """Multi-class Brier score: mean over samples of the squared distance between the
    predicted distribution and the one-hot label (0 is perfect; bounded, unlike the log
    loss, so it stays usable for forests whose leaves predict 0 and 1)."""
    labels = np.arange(proba.shape[1]) if classes is None else np.asarray(classes)
    onehot = (np.asarray(y)[:, None] == labels[None, :]).astype(np.float64)
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


#: Scores by name, for ``vote_criterion`` / ``test_criterion``.
NAMED_SCORES: dict[str, NamedScore] = {
    "accuracy": NamedScore("predict", False, lambda y, out, c: float(np.mean(out == y))),
    "balanced_accuracy": NamedScore(
        "predict", False, lambda y, out, c: float(balanced_accuracy_score(y, out))),
    "log_loss": NamedScore(
        "proba", True, lambda y, out, c: float(log_loss(y, out, labels=c))),
    "brier": NamedScore("proba", True, brier_score),
    "roc_auc": NamedScore("proba_or_decision", False, _roc_auc),
    "average_precision": NamedScore("proba_or_decision", False, _average_precision),
    "mse": NamedScore("predict", True, lambda y, out, c: float(mean_squared_error(y, out))),
    "mae": NamedScore("predict", True, lambda y, out, c: float(mean_absolute_error(y, out))),
    "r2": NamedScore("predict", False, lambda y, out, c: float(r2_score(y, out))),
}


@dataclass(frozen=True)
class _Criterion:
    """A resolved score: a named one, or a user function of ``(y_true, output)``."""

    name: str
    output: str  # "predict" | "proba" | "proba_or_decision" | a method name
    fn: Callable[[np.ndarray, np.ndarray, np.ndarray | None], float]
    minimise: bool | None  # None: the user's function, direction from minimise_criterion


def _resolve(criterion: str | ScoreFn, user_output: str) -> _Criterion:
    if isinstance(criterion, str):
        if criterion not in NAMED_SCORES:
            raise ScoreError(f"unknown score {criterion!r}: one of {', '.join(NAMED_SCORES)}")
        named = NAMED_SCORES[criterion]
        return _Criterion(criterion, named.output, named.fn, named.minimise)
    if not callable(criterion):
        raise ScoreError(f"a criterion is a score name or a function, not {criterion!r}")
    fn = criterion
    return _Criterion(getattr(fn, "__name__", "custom"), user_output,
                      lambda y, out, c: float(fn(y, out)), None)


def _direction(vote: _Criterion, minimise_criterion: bool | None) -> bool:
    if minimise_criterion is not None:
        if vote.minimise is not None and vote.minimise != minimise_criterion:
            raise ValueError(
                f"minimise_criterion={minimise_criterion} contradicts the score "
                f"{vote.name!r} ({'lower' if vote.minimise else 'higher'} is better)")
        return bool(minimise_criterion)
    if vote.minimise is None:
        raise ValueError("give minimise_criterion (True: lower is better) for a custom "
                         "vote_criterion function")
    return vote.minimise


# --------------------------------------------------------------------------- partial_fit

def _glorot(rng: np.random.Generator, fan_in: int, fan_out: int, activation: str,
            coef_dtype: np.dtype, intercept_dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's MLP initialisation (Glorot uniform), drawn from ``rng``."""
    factor = 2.0 if activation == "logistic" else 6.0
    bound = math.sqrt(factor / (fan_in + fan_out))
    coef = rng.uniform(-bound, bound, (fan_in, fan_out)).astype(coef_dtype)
    intercept = rng.uniform(-bound, bound, fan_out).astype(intercept_dtype)
    return coef, intercept


class SklearnPartialFitLearner(MachineLearningInterface):
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
        self.x_train, self.y_train = _check_xy("train set", x_train, y_train)
        self.x_vote, self.y_vote = _check_xy("vote set", x_vote, y_vote)
        if (x_test is None) != (y_test is None):
            raise ValueError("give both x_test and y_test, or neither")
        self.x_test, self.y_test = (None, None) if x_test is None else \
            _check_xy("test set", x_test, y_test)
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
        return _check_structure(_raw(weights), self._template, require_finite=require_finite)

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

    def vote(self, new_score: float) -> bool:
        """Approve iff ``new_score`` is strictly better than the current vote score."""
        return _vote(new_score, self.vote_score, self.minimise_criterion)

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
                test_score = 0.0 if self.x_test is None or len(self.y_test) == 0 else \
                    self._score(self.x_test, self.y_test, self._test_criterion)
        return ProposedWeights(
            weights=weights if isinstance(weights, Weights) else Weights(weights=weights),
            vote_score=vote_score, test_score=test_score, vote=self.vote(vote_score))

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
            return ColearnModel(model_format=ModelFormat.ONNX, model=model)
        except Exception as exc:  # noqa: BLE001  converter coverage varies by estimator
            log.warning("ONNX export of %s failed (%s): returning the weights only",
                        type(self.estimator).__name__, exc)
            return ColearnModel(model_format=ModelFormat.PICKLE_WEIGHTS_ONLY,
                                model=self._read_weights())


# --------------------------------------------------------------------------- forest

TREE_LEAF = -1  # children of a leaf (scikit-learn's TREE_LEAF)
TREE_UNDEFINED = -2  # feature and threshold of a leaf (scikit-learn's TREE_UNDEFINED)
FOREST_NAMES = ("n_trees", "node_count", "children_left", "children_right", "feature",
                "threshold", "value")


def _round_down_float32(values: np.ndarray) -> np.ndarray:
    """The largest float32 <= each float64 value. For a float32 feature ``x``,
    ``x <= t`` and ``x <= round_down(t)`` then agree exactly, so thresholds stored as
    float32 split exactly as scikit-learn's float64 ones do (sklearn compares float32
    features with float64 thresholds), in numpy and in ONNX alike."""
    down = values.astype(np.float32)
    above = down.astype(np.float64) > values
    down[above] = np.nextafter(down[above], np.float32(-np.inf))
    return down


@dataclass(frozen=True)
class ForestLayout:
    """The fixed array structure of a forest of at most ``max_trees`` trees of at most
    ``max_nodes`` nodes each, over ``n_features`` features and ``n_classes`` classes.

    Arrays (trees in slots ``0 .. n_trees - 1``, oldest first; nodes in scikit-learn's
    depth-first order, so children always have larger indices than their parent):

    - ``n_trees`` int32 (1,); ``node_count`` int32 (max_trees,)
    - ``children_left``, ``children_right`` int32 (max_trees, max_nodes): -1 for leaves
    - ``feature`` int32 (max_trees, max_nodes): -2 for leaves
    - ``threshold`` float32 (max_trees, max_nodes): go left iff ``x[feature] <= threshold``
      (sklearn's float64 threshold rounded down, which splits float32 data identically);
      -2 for leaves
    - ``value`` float64 (max_trees, max_nodes, n_classes): a leaf's class probabilities
      (sum 1); zero for internal nodes.

    Unused slots and nodes hold the canonical empty values (children -1, feature -2,
    threshold -2, value 0, node_count 0), so equal forests have equal bytes.
    """

    max_trees: int
    max_nodes: int
    n_features: int
    n_classes: int

    def empty(self) -> dict[str, np.ndarray]:
        t, n = self.max_trees, self.max_nodes
        return {
            "n_trees": np.zeros(1, np.int32),
            "node_count": np.zeros(t, np.int32),
            "children_left": np.full((t, n), TREE_LEAF, np.int32),
            "children_right": np.full((t, n), TREE_LEAF, np.int32),
            "feature": np.full((t, n), TREE_UNDEFINED, np.int32),
            "threshold": np.full((t, n), TREE_UNDEFINED, np.float32),
            "value": np.zeros((t, n, self.n_classes), np.float64),
        }

    def validate(self, weights: Any) -> dict[str, np.ndarray]:
        """``weights`` as a dict of arrays if they are a well-formed forest of this
        layout; else :class:`WeightsMismatchError` (or :class:`WeightsFormatError` for
        something that is not a mapping of arrays) saying what is wrong.

        Checked: names, shapes, dtypes, finite values; tree count and node counts within
        capacity; every child index larger than its parent's and below the node count
        (so traversal ends: no cycles); features in range; leaves' distributions
        non-negative and summing to 1; unused entries canonical."""
        w = _check_structure(_raw(weights), self.empty(), require_finite=True)
        n = int(w["n_trees"][0])
        if not 0 <= n <= self.max_trees:
            raise WeightsMismatchError(f"n_trees is {n}, outside 0..{self.max_trees}")
        counts = w["node_count"].astype(np.int64)
        bad = np.flatnonzero((counts[:n] < 1) | (counts[:n] > self.max_nodes))
        if bad.size:
            raise WeightsMismatchError(
                f"tree {bad[0]} has node_count {counts[bad[0]]}, outside 1..{self.max_nodes}")
        if np.any(counts[n:] != 0):
            raise WeightsMismatchError("node_count of an unused tree slot is not 0")
        index = np.arange(self.max_nodes)
        used = (np.arange(self.max_trees)[:, None] < n) & (index[None, :] < counts[:, None])
        left = w["children_left"].astype(np.int64)
        right = w["children_right"].astype(np.int64)
        feature = w["feature"].astype(np.int64)
        threshold, value = w["threshold"], w["value"]
        empty = self.empty()

        def fail(mask: np.ndarray, what: str) -> None:
            where = np.argwhere(mask)
            if where.size:
                tree, node = where[0][:2]
                raise WeightsMismatchError(f"tree {tree} node {node}: {what}")

        for name in ("children_left", "children_right", "feature", "threshold"):
            fail(~used & (w[name] != empty[name]), f"{name} of an unused node is not canonical")
        fail(~used & np.any(value != 0, axis=2), "value of an unused node is not 0")
        leaf = used & (left == TREE_LEAF)
        internal = used & ~leaf
        fail(leaf & (right != TREE_LEAF), "a leaf (left child -1) has a right child")
        fail(leaf & ((feature != TREE_UNDEFINED) | (threshold != TREE_UNDEFINED)),
             "a leaf's feature and threshold must be -2")
        fail(internal & ((left <= index) | (right <= index)),
             "a child index is not larger than its parent's (cycles are refused)")
        fail(internal & ((left >= counts[:, None]) | (right >= counts[:, None])),
             "a child index is beyond the tree's node_count")
        fail(internal & (left == right), "both children are the same node")
        fail(internal & ((feature < 0) | (feature >= self.n_features)),
             f"feature index outside 0..{self.n_features - 1}")
        fail(internal & np.any(value != 0, axis=2), "an internal node's value is not 0")
        fail(leaf & np.any(value < 0, axis=2), "a leaf has a negative class probability")
        fail(leaf & (np.abs(value.sum(axis=2) - 1.0) > 1e-6),
             "a leaf's class probabilities do not sum to 1")
        return w

    def predict_proba(self, weights: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        """Class probabilities of validated forest ``weights`` on ``x`` (n, n_features):
        the mean of the trees' leaf distributions; uniform for an empty forest. Pure
        numpy, all trees and samples at once, one tree level per step."""
        x32 = np.asarray(x, dtype=np.float32)
        if x32.ndim != 2 or x32.shape[1] != self.n_features:
            raise ValueError(f"x must have shape (n, {self.n_features}), got {x32.shape}")
        n = int(weights["n_trees"][0])
        if n == 0:
            return np.full((len(x32), self.n_classes), 1.0 / self.n_classes)
        left = weights["children_left"][:n]
        right = weights["children_right"][:n]
        feature = weights["feature"][:n]
        threshold = weights["threshold"][:n]
        trees = np.arange(n)[:, None]
        samples = np.arange(len(x32))[None, :]
        node = np.zeros((n, len(x32)), dtype=np.intp)
        for _ in range(self.max_nodes):  # validated: every step goes to a larger index
            child = left[trees, node]
            internal = child != TREE_LEAF
            if not internal.any():
                break
            feat = np.where(internal, feature[trees, node], 0)
            go_left = x32[samples, feat] <= threshold[trees, node]
            node = np.where(internal, np.where(go_left, child, right[trees, node]), node)
        return weights["value"][:n][trees, node].mean(axis=0)

    def to_onnx(self, weights: Mapping[str, np.ndarray]) -> Any:
        """An ONNX model (ai.onnx.ml TreeEnsembleClassifier, then ArgMax) equal to
        :meth:`predict_proba`: input ``input`` float32 (n, n_features), outputs ``label``
        int64 and ``probabilities`` float32 (n, n_classes). Leaf weights are divided by
        the tree count so the ensemble's sum is the mean; an empty forest is one leaf
        with the uniform distribution."""
        import onnx
        from onnx import TensorProto, helper

        attrs: dict[str, list] = {k: [] for k in (
            "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values",
            "nodes_modes", "nodes_truenodeids", "nodes_falsenodeids",
            "class_treeids", "class_nodeids", "class_ids", "class_weights")}
        n = int(weights["n_trees"][0])

        def leaf(tree: int, node: int, distribution: np.ndarray) -> None:
            attrs["nodes_modes"].append("LEAF")
            attrs["nodes_featureids"].append(0)
            attrs["nodes_values"].append(0.0)
            attrs["nodes_truenodeids"].append(0)
            attrs["nodes_falsenodeids"].append(0)
            for k, p in enumerate(distribution):
                attrs["class_treeids"].append(tree)
                attrs["class_nodeids"].append(node)
                attrs["class_ids"].append(k)
                attrs["class_weights"].append(float(p))

        if n == 0:
            attrs["nodes_treeids"].append(0)
            attrs["nodes_nodeids"].append(0)
            leaf(0, 0, np.full(self.n_classes, 1.0 / self.n_classes))
        for t in range(n):
            for i in range(int(weights["node_count"][t])):
                attrs["nodes_treeids"].append(t)
                attrs["nodes_nodeids"].append(i)
                left = int(weights["children_left"][t, i])
                if left == TREE_LEAF:
                    leaf(t, i, weights["value"][t, i] / n)
                else:
                    attrs["nodes_modes"].append("BRANCH_LEQ")
                    attrs["nodes_featureids"].append(int(weights["feature"][t, i]))
                    attrs["nodes_values"].append(float(weights["threshold"][t, i]))
                    attrs["nodes_truenodeids"].append(left)
                    attrs["nodes_falsenodeids"].append(int(weights["children_right"][t, i]))
        ensemble = helper.make_node(
            "TreeEnsembleClassifier", ["input"], ["ensemble_label", "probabilities"],
            domain="ai.onnx.ml", classlabels_int64s=list(range(self.n_classes)),
            post_transform="NONE", **attrs)
        # The label is the argmax of the probabilities (first on ties, as numpy's):
        # onnxruntime's own label rule for two classes thresholds class 1's score instead.
        argmax = helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0)
        graph = helper.make_graph(
            [ensemble, argmax], "colearn_random_forest",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, self.n_features])],
            [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
             helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                           [None, self.n_classes])])
        # IR version 8 (opset 17's): onnx's newest IR is ahead of onnxruntime's
        model = helper.make_model(graph, ir_version=8, opset_imports=[
            helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
        onnx.checker.check_model(model)
        return model


def tree_to_arrays(tree: DecisionTreeClassifier,
                   layout: ForestLayout) -> tuple[dict[str, np.ndarray], int]:
    """A fitted scikit-learn tree as one slot of ``layout``'s arrays (leading axis
    dropped) and its node count: node arrays padded to ``max_nodes``, leaf distributions
    over all ``n_classes`` (a tree trained without some class gives it probability 0)."""
    t = tree.tree_
    count = int(t.node_count)
    if count > layout.max_nodes:
        raise ValueError(f"the tree has {count} nodes, more than max_nodes {layout.max_nodes}")
    empty = {k: v[0] for k, v in layout.empty().items() if k not in ("n_trees", "node_count")}
    out = {k: v.copy() for k, v in empty.items()}
    left = t.children_left[:count]
    is_leaf = left == TREE_LEAF
    out["children_left"][:count] = left
    out["children_right"][:count] = t.children_right[:count]
    out["feature"][:count] = np.where(is_leaf, TREE_UNDEFINED, t.feature[:count])
    out["threshold"][:count] = np.where(
        is_leaf, np.float32(TREE_UNDEFINED), _round_down_float32(t.threshold[:count]))
    raw = np.asarray(t.value[:count, 0, :], dtype=np.float64)
    totals = raw.sum(axis=1, keepdims=True)
    distribution = np.zeros((count, layout.n_classes))
    distribution[:, np.asarray(tree.classes_, dtype=np.intp)] = raw / totals
    out["value"][:count] = np.where(is_leaf[:, None], distribution, 0.0)
    return out, count


class ForestConfig(BaseModel):
    """The forest learner's hyperparameters (checked at construction)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_classes: int = Field(ge=2)
    trees_per_round: int = Field(2, ge=1)
    max_trees: int = Field(20, ge=1)
    max_depth: int | None = Field(4, ge=1, le=16)
    max_leaf_nodes: int | None = Field(None, ge=2)
    # int: a number of features, float: a fraction (sklearn tells them apart)
    max_features: Literal["sqrt", "log2"] | int | float | None = "sqrt"
    min_samples_leaf: int = Field(1, ge=1)
    bootstrap: bool = True

    @model_validator(mode="after")
    def _bounded(self) -> ForestConfig:
        if self.max_depth is None and self.max_leaf_nodes is None:
            raise ValueError("give max_depth or max_leaf_nodes: they bound the node count")
        if self.trees_per_round > self.max_trees:
            raise ValueError("trees_per_round cannot exceed max_trees")
        return self

    @property
    def max_nodes(self) -> int:
        bounds = []
        if self.max_depth is not None:
            bounds.append(2 ** (self.max_depth + 1) - 1)
        if self.max_leaf_nodes is not None:
            bounds.append(2 * self.max_leaf_nodes - 1)
        return min(bounds)


class RandomForestLearner(MachineLearningInterface):
    """colearn's growing random forest, with the forest as fixed-structure arrays.

    Each proposal adds ``trees_per_round`` new decision trees, each trained on a
    bootstrap sample of the learner's own training data (``max_features`` features tried
    per split, as a random forest does), to the current forest. The forest holds at most
    ``max_trees`` trees: when it is full, the OLDEST trees are dropped to make room
    (the forest is a sliding window over the most recent trees). Trees are bounded by
    ``max_depth`` and/or ``max_leaf_nodes``, which fixes the node capacity.

    The initial weights are the EMPTY forest, which predicts the uniform distribution
    (chosen over "the majority class" because it needs no data, so every learner has the
    same initial weights by construction).

    Labels are ``0 .. n_classes - 1``. Scores are functions of the predicted class
    probabilities: a name (``"brier"``, the default vote score, bounded and sensitive to
    small changes; ``"accuracy"``; ``"log_loss"``) or ``f(y_true, proba) -> float``
    (then give ``minimise_criterion``). Incoming weights are validated
    (:meth:`ForestLayout.validate`); malformed ones raise :class:`WeightsMismatchError`.
    """

    def __init__(
        self,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_vote: np.ndarray,
        y_vote: np.ndarray,
        x_test: np.ndarray | None = None,
        y_test: np.ndarray | None = None,
        *,
        n_classes: int,
        trees_per_round: int = 2,
        max_trees: int = 20,
        max_depth: int | None = 4,
        max_leaf_nodes: int | None = None,
        max_features: Literal["sqrt", "log2"] | int | float | None = "sqrt",  # noqa: PYI041
        min_samples_leaf: int = 1,
        bootstrap: bool = True,
        vote_criterion: str | ScoreFn = "brier",
        minimise_criterion: bool | None = None,
        test_criterion: str | ScoreFn | None = None,
        seed: int = 0,
    ) -> None:
        self.config = ForestConfig(
            n_classes=n_classes, trees_per_round=trees_per_round, max_trees=max_trees,
            max_depth=max_depth, max_leaf_nodes=max_leaf_nodes, max_features=max_features,
            min_samples_leaf=min_samples_leaf, bootstrap=bootstrap)
        self.x_train, self.y_train = _check_xy("train set", x_train, y_train)
        self.x_vote, self.y_vote = _check_xy("vote set", x_vote, y_vote)
        if (x_test is None) != (y_test is None):
            raise ValueError("give both x_test and y_test, or neither")
        self.x_test, self.y_test = (None, None) if x_test is None else \
            _check_xy("test set", x_test, y_test, allow_empty=True)
        for name, y in (("train", self.y_train), ("vote", self.y_vote),
                        ("test", self.y_test if self.y_test is not None else np.zeros(0))):
            if y.size and (y.min() < 0 or y.max() >= n_classes):
                raise ValueError(f"{name} labels must lie in 0..{n_classes - 1}")
        self.layout = ForestLayout(max_trees, self.config.max_nodes,
                                   self.x_train.shape[1], n_classes)
        self.classes = np.arange(n_classes)
        for criterion in (vote_criterion, test_criterion):
            if isinstance(criterion, str) and criterion in ("mse", "mae", "r2"):
                raise ScoreError(f"{criterion!r} is not a classification score of probabilities")
        self._vote_criterion = _resolve(vote_criterion, "proba")
        self._test_criterion = self._vote_criterion if test_criterion is None \
            else _resolve(test_criterion, "proba")
        self.minimise_criterion = _direction(self._vote_criterion, minimise_criterion)
        self._rng = np.random.default_rng(int(seed))
        self._weights = self.layout.empty()
        self.vote_score: float = self._score(self._weights, self.x_vote, self.y_vote,
                                             self._vote_criterion)

    # ------------------------------------------------------------------ scoring

    def _score(self, weights: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray,
               criterion: _Criterion) -> float:
        proba = self.layout.predict_proba(weights, x)
        output = np.argmax(proba, axis=1) if criterion.output == "predict" else proba
        return float(criterion.fn(y, output, self.classes))

    def predict_proba(self, weights: WeightsLike, x: np.ndarray) -> np.ndarray:
        """Class probabilities of (validated) ``weights`` on ``x``."""
        return self.layout.predict_proba(self.layout.validate(weights), x)

    def evaluate(self, weights: WeightsLike, x: np.ndarray, y: np.ndarray,
                 criterion: str | ScoreFn | None = None) -> float:
        """Scores ``weights`` on any ``(x, y)`` with ``criterion`` (default: the vote
        criterion)."""
        resolved = self._vote_criterion if criterion is None else _resolve(criterion, "proba")
        return self._score(self.layout.validate(weights), np.asarray(x), np.asarray(y),
                           resolved)

    def vote(self, new_score: float) -> bool:
        """Approve iff ``new_score`` is strictly better than the current vote score."""
        return _vote(new_score, self.vote_score, self.minimise_criterion)

    # ------------------------------------------------------------------ training

    def _grow_tree(self) -> DecisionTreeClassifier:
        cfg = self.config
        n = len(self.y_train)
        rows = self._rng.integers(0, n, n) if cfg.bootstrap else np.arange(n)
        tree = DecisionTreeClassifier(
            max_depth=cfg.max_depth, max_leaf_nodes=cfg.max_leaf_nodes,
            max_features=cfg.max_features, min_samples_leaf=cfg.min_samples_leaf,
            random_state=int(self._rng.integers(0, 2**31 - 1)))
        return tree.fit(self.x_train[rows], self.y_train[rows])

    def grow(self, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A new forest: ``weights`` plus ``trees_per_round`` trees trained on this
        learner's data, the oldest dropped beyond ``max_trees``. ``weights`` is not
        changed."""
        forest = _copy_weights(weights)
        for _ in range(self.config.trees_per_round):
            slot, count = tree_to_arrays(self._grow_tree(), self.layout)
            n = int(forest["n_trees"][0])
            if n == self.layout.max_trees:  # full: shift out the oldest tree
                for name in FOREST_NAMES[1:]:
                    forest[name][:-1] = forest[name][1:]
                n -= 1
            for name, array in slot.items():
                forest[name][n] = array
            forest["node_count"][n] = count
            forest["n_trees"][0] = n + 1
        return forest

    # ------------------------------------------------------------------ the MLI

    def mli_propose_weights(self) -> Weights:
        return Weights(weights=self.grow(self._weights), training_summary=TrainingSummary())

    def mli_test_weights(self, weights: Weights) -> ProposedWeights:
        checked = self.layout.validate(weights)
        vote_score = self._score(checked, self.x_vote, self.y_vote, self._vote_criterion)
        test_score = 0.0 if self.x_test is None or len(self.y_test) == 0 else \
            self._score(checked, self.x_test, self.y_test, self._test_criterion)
        return ProposedWeights(
            weights=weights if isinstance(weights, Weights) else Weights(weights=weights),
            vote_score=vote_score, test_score=test_score, vote=self.vote(vote_score))

    def mli_accept_weights(self, weights: Weights) -> None:
        self._weights = _copy_weights(self.layout.validate(weights))
        self.vote_score = self._score(self._weights, self.x_vote, self.y_vote,
                                      self._vote_criterion)

    def mli_get_current_weights(self) -> Weights:
        return Weights(weights=_copy_weights(self._weights))

    def mli_get_current_model(self) -> ColearnModel:
        """The forest as an ONNX TreeEnsembleClassifier (:meth:`ForestLayout.to_onnx`)
        if the ``onnx`` package is installed; otherwise ``PICKLE_WEIGHTS_ONLY`` with the
        weights dict (nothing is pickled) and a logged warning."""
        try:
            model = self.layout.to_onnx(self._weights)
        except ImportError as exc:
            log.warning("onnx is not installed (%s): returning the forest's arrays only", exc)
            return ColearnModel(model_format=ModelFormat.PICKLE_WEIGHTS_ONLY,
                                model=_copy_weights(self._weights))
        return ColearnModel(model_format=ModelFormat.ONNX, model=model)


def forest_score_fn(layout: ForestLayout, x: np.ndarray, y: np.ndarray,
                    criterion: str = "accuracy") -> Callable[[Any], float]:
    """``weights -> score`` on ``(x, y)``, for an example's global test score."""
    resolved = _resolve(criterion, "proba")

    def score(weights: Any) -> float:
        proba = layout.predict_proba(layout.validate(weights), x)
        output = np.argmax(proba, axis=1) if resolved.output == "predict" else proba
        return float(resolved.fn(np.asarray(y), output, np.arange(layout.n_classes)))

    return score


__all__ = [
    "FOREST_NAMES",
    "NAMED_SCORES",
    "ForestConfig",
    "ForestLayout",
    "NamedScore",
    "RandomForestLearner",
    "ScoreError",
    "SklearnPartialFitLearner",
    "brier_score",
    "forest_score_fn",
    "tree_to_arrays",
]

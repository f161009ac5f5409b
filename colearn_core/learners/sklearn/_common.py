"""What both scikit-learn learners share: weights checks, thread limits and the named
vote and test scores."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from threadpoolctl import ThreadpoolController

from colearn_core.codec import WeightsFormatError, check_compatible
from colearn_core.ml_interface import Weights

#: ``f(y_true, output) -> float`` on a whole data set, numpy arrays.
ScoreFn = Callable[[np.ndarray, np.ndarray], float]
WeightsLike = Weights | Mapping[str, Any]
OutputMethod = Literal["predict", "predict_proba", "decision_function"]


class ScoreError(ValueError):
    """A score that cannot be computed (unknown name, unsuitable model or data)."""


def _copy_weights(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.array(array, copy=True, order="C") for name, array in weights.items()}


def _check_structure(raw: Any, template: Mapping[str, np.ndarray], *,
                     require_finite: bool) -> dict[str, np.ndarray]:
    """``raw`` as a dict of arrays if it has ``template``'s names, shapes and dtypes
    (and, if ``require_finite``, only finite values); else a named error."""
    if not isinstance(raw, Mapping):
        raise WeightsFormatError(
            f"scikit-learn weights are a mapping {{name: array}}, not {type(raw).__name__}")
    checked = check_compatible(raw, template, require_finite=require_finite)
    assert isinstance(checked, dict)
    return checked


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


class DataSets(NamedTuple):
    x_train: np.ndarray
    y_train: np.ndarray
    x_vote: np.ndarray
    y_vote: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None


def _check_sets(x_train: Any, y_train: Any, x_vote: Any, y_vote: Any, x_test: Any,
                y_test: Any, *, allow_empty_test: bool = False) -> DataSets:
    """The train, vote and (optional) test sets as arrays, checked by :func:`_check_xy`."""
    if (x_test is None) != (y_test is None):
        raise ValueError("give both x_test and y_test, or neither")
    test: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    if x_test is not None:
        test = _check_xy("test set", x_test, y_test, allow_empty=allow_empty_test)
    return DataSets(*_check_xy("train set", x_train, y_train),
                    *_check_xy("vote set", x_vote, y_vote), *test)


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

"""Splitting a :class:`~colearn_core.tasks.datasets.Dataset` among learners (numpy only).

:func:`split_dataset` first sets aside a stratified global test set that no learner sees
(it only measures the final model), then deals the rest to ``n_learners``:

* ``"iid"``: a seeded shuffle into near-equal parts;
* ``"dirichlet"``: label skew, the usual construction for non-IID federated benchmarks
  (Hsu et al. 2019; Yurochkin et al. 2019): for each class, the proportions of its
  samples going to each learner are drawn from Dirichlet(alpha, ..., alpha). Small alpha
  gives each learner few classes, large alpha approaches IID. Draws are repeated (from
  the same seeded generator) until every learner gets enough samples for a non-empty
  train and vote set.

Each learner's part is then shuffled into train / vote / test by the given fractions.
Everything is deterministic for a seed, the sets are disjoint and together cover the data
set. All arrays are read-only copies; ``*_index`` fields give the rows in the data set.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from colearn_core.tasks.datasets import Dataset

logger = logging.getLogger(__name__)

SCHEMES: tuple[str, ...] = ("iid", "dirichlet")
MAX_DIRICHLET_DRAWS = 1000


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class LearnerSplit:
    """One learner's private data. ``*_index`` are the rows in the data set."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_vote: np.ndarray
    y_vote: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray | None = None
    vote_index: np.ndarray | None = None
    test_index: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        """Train + vote + test size."""
        return len(self.y_train) + len(self.y_vote) + len(self.y_test)


@dataclass(frozen=True, eq=False)
class FederatedSplit:
    """The global held-out test set and every learner's private data."""

    x_global_test: np.ndarray
    y_global_test: np.ndarray
    learners: tuple[LearnerSplit, ...]
    n_classes: int | None = None
    global_test_index: np.ndarray | None = None

    @property
    def n_learners(self) -> int:
        return len(self.learners)

    def pooled_train(self) -> tuple[np.ndarray, np.ndarray]:
        """All learners' train sets concatenated in learner order (the pooled baseline);
        fresh arrays the caller may modify."""
        x = np.concatenate([learner.x_train for learner in self.learners])
        y = np.concatenate([learner.y_train for learner in self.learners])
        return x, y

    def train_sizes(self) -> list[int]:
        return [len(learner.y_train) for learner in self.learners]


def _check_fraction(name: str, value: float, low: float, *, low_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise ValueError(f"{name} must be a number, got {value!r}")  # noqa: TRY004
    value = float(value)
    if not math.isfinite(value) or value >= 1.0 or value < low or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must lie in {bracket}{low}, 1), got {value}")
    return value


def min_learner_size(vote_fraction: float, test_fraction: float) -> int:
    """The fewest samples a learner's part may have so that its vote and train sets are
    non-empty with these fractions (sizes are rounded as in :func:`split_dataset`)."""
    if not (0.0 < vote_fraction < 1.0 and 0.0 <= test_fraction < 1.0
            and vote_fraction + test_fraction < 1.0):
        raise ValueError(
            f"need 0 < vote_fraction, 0 <= test_fraction and vote_fraction + test_fraction "
            f"< 1, got {vote_fraction} and {test_fraction}"
        )
    for size in range(1, 100_000):
        n_vote, n_test = _part_sizes(size, vote_fraction, test_fraction)
        if n_vote >= 1 and size - n_vote - n_test >= 1:
            return size
    raise ValueError(
        f"vote_fraction {vote_fraction} and test_fraction {test_fraction} leave no room "
        "for both train and vote data"
    )


def _part_sizes(size: int, vote_fraction: float, test_fraction: float) -> tuple[int, int]:
    return round(vote_fraction * size), round(test_fraction * size)


def split_dataset(
    dataset: Dataset,
    n_learners: int,
    *,
    seed: int = 0,
    scheme: Literal["iid", "dirichlet"] = "iid",
    alpha: float = 0.5,
    global_test_fraction: float = 0.3,
    vote_fraction: float = 0.3,
    test_fraction: float = 0.2,
    min_samples: int | None = None,
) -> FederatedSplit:
    """Splits ``dataset`` into a stratified global test set and ``n_learners`` disjoint
    private parts (train / vote / test each); see the module docstring.

    ``min_samples`` is the fewest samples (train + vote + test) a learner may get; by
    default the fewest that give a non-empty train and vote set
    (:func:`min_learner_size`), which with a small ``alpha`` can be only 2 or 3 samples:
    ask for more (e.g. 10, as common Dirichlet-split code does) for meaningful votes.
    Raises ``ValueError`` for bad arguments or when the data cannot give every learner
    that many samples."""
    if not isinstance(dataset, Dataset):
        # ValueError like every other argument check here (callers catch one kind)
        raise ValueError(f"dataset must be a Dataset, got {type(dataset).__name__}")  # noqa: TRY004
    if isinstance(n_learners, bool) or not isinstance(n_learners, int | np.integer) \
            or n_learners < 1:
        raise ValueError(f"n_learners must be a positive int, got {n_learners!r}")
    n_learners = int(n_learners)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float | np.floating) \
            or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a positive finite number, got {alpha!r}")
    global_test_fraction = _check_fraction(
        "global_test_fraction", global_test_fraction, 0.0, low_open=True)
    vote_fraction = _check_fraction("vote_fraction", vote_fraction, 0.0, low_open=True)
    test_fraction = _check_fraction("test_fraction", test_fraction, 0.0, low_open=False)
    if vote_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"vote_fraction + test_fraction must be < 1 to leave training data, got "
            f"{vote_fraction} + {test_fraction}"
        )
    min_size = min_learner_size(vote_fraction, test_fraction)
    if min_samples is not None:
        if isinstance(min_samples, bool) or not isinstance(min_samples, int | np.integer) \
                or min_samples < 1:
            raise ValueError(f"min_samples must be a positive int, got {min_samples!r}")
        min_size = max(min_size, int(min_samples))

    rng = np.random.default_rng(int(seed))
    y = dataset.y
    global_index, rest = _stratified_holdout(y, dataset.n_classes, global_test_fraction, rng)
    if len(global_index) == 0:
        raise ValueError(
            f"global_test_fraction {global_test_fraction} of {len(y)} samples is an empty "
            "global test set"
        )
    if len(rest) < n_learners * min_size:
        raise ValueError(
            f"{len(rest)} samples left after the global test set cannot give {n_learners} "
            f"learners {min_size} samples each (min_samples, or the fewest for a non-empty "
            "train and vote set): use fewer learners or a smaller global_test_fraction"
        )
    if scheme == "iid":
        parts = np.array_split(rng.permutation(rest), n_learners)
    else:
        parts = _dirichlet_parts(y, rest, dataset.n_classes, n_learners, float(alpha),
                                 min_size, rng)

    learners = []
    for number, part in enumerate(parts):
        part = rng.permutation(part)
        n_vote, n_test = _part_sizes(len(part), vote_fraction, test_fraction)
        n_train = len(part) - n_vote - n_test
        if n_vote < 1 or n_train < 1:
            raise ValueError(
                f"learner {number} has {len(part)} samples: {n_train} train and {n_vote} "
                "vote, need at least 1 of each: use fewer learners"
            )
        vote_index = part[:n_vote]
        test_index = part[n_vote:n_vote + n_test]
        train_index = part[n_vote + n_test:]
        learners.append(LearnerSplit(
            *_take(dataset, train_index), *_take(dataset, vote_index),
            *_take(dataset, test_index),
            train_index=_frozen(train_index), vote_index=_frozen(vote_index),
            test_index=_frozen(test_index),
        ))
    split = FederatedSplit(
        *_take(dataset, global_index), learners=tuple(learners),
        n_classes=dataset.n_classes, global_test_index=_frozen(global_index),
    )
    logger.info(
        "split %s (%d samples) for %d learners, %s: global test %d, train sizes %s",
        dataset.name, len(y), n_learners, scheme, len(global_index), split.train_sizes(),
    )
    return split


def _take(dataset: Dataset, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _frozen(dataset.x[index]), _frozen(dataset.y[index])


def _stratified_holdout(
    y: np.ndarray, n_classes: int, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(held-out rows, remaining rows), the held-out count of each class within one of
    ``fraction`` times its count (largest remainders fill up to the rounded total)."""
    counts = np.bincount(y, minlength=n_classes)
    exact = fraction * counts
    take = np.floor(exact).astype(np.int64)
    short = round(fraction * len(y)) - int(take.sum())
    if short > 0:
        # stable sort so ties go to the lower class, deterministically
        order = np.argsort(-(exact - take), kind="stable")
        take[order[:short]] += 1
    held, rest = [], []
    for label in range(n_classes):
        rows = rng.permutation(np.flatnonzero(y == label))
        held.append(rows[:take[label]])
        rest.append(rows[take[label]:])
    return rng.permutation(np.concatenate(held)), rng.permutation(np.concatenate(rest))


def _dirichlet_parts(
    y: np.ndarray, rows: np.ndarray, n_classes: int, n_learners: int, alpha: float,
    min_size: int, rng: np.random.Generator,
) -> list[np.ndarray]:
    by_class = [rows[y[rows] == label] for label in range(n_classes)]
    for draw in range(1, MAX_DIRICHLET_DRAWS + 1):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_learners)]
        for class_rows in by_class:
            if len(class_rows) == 0:
                continue
            shuffled = rng.permutation(class_rows)
            proportions = rng.dirichlet(np.full(n_learners, alpha))
            cuts = (np.cumsum(proportions)[:-1] * len(shuffled)).astype(np.int64)
            for learner, chunk in enumerate(np.split(shuffled, cuts)):
                parts[learner].append(chunk)
        joined = [np.concatenate(chunks) for chunks in parts]
        if min(len(part) for part in joined) >= min_size:
            if draw > 1:
                logger.debug("dirichlet split needed %d draws", draw)
            return joined
    raise ValueError(
        f"no Dirichlet(alpha={alpha}) draw in {MAX_DIRICHLET_DRAWS} gave each of "
        f"{n_learners} learners at least {min_size} of the {len(rows)} samples: use a "
        "larger alpha or fewer learners"
    )


def label_histogram(split: FederatedSplit) -> np.ndarray:
    """Per-learner class counts over train + vote + test, shape (n_learners, n_classes)."""
    n_classes = split.n_classes
    if n_classes is None:
        labels = [split.y_global_test] + [
            part for learner in split.learners
            for part in (learner.y_train, learner.y_vote, learner.y_test)
        ]
        n_classes = int(max((int(p.max()) for p in labels if p.size), default=-1)) + 1
    histogram = np.zeros((len(split.learners), n_classes), dtype=np.int64)
    for number, learner in enumerate(split.learners):
        for part in (learner.y_train, learner.y_vote, learner.y_test):
            histogram[number] += np.bincount(part, minlength=n_classes)
    return histogram

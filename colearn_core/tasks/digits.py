"""The digits task: scikit-learn's bundled 8x8 handwritten digits (1797 images, 64
features, 10 classes), split among learners. Numpy only; the PyTorch part is in
:mod:`colearn_core.tasks.digits_torch`.

A seeded permutation first sets aside a global held-out test set that no learner sees
(used only to measure the final model), then deals the rest into ``n_learners`` private
parts of (almost) equal size, each split into its own train, vote and test sets.
Features are scaled to [0, 1] (pixel / 16) as float32; labels are int64.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

N_CLASSES = 10
N_FEATURES = 64


class DigitsConfig(BaseModel):
    """Everything that fixes a digits experiment: data split, model and training.

    The defaults are tuned so that 5 learners, 15 rounds and threshold 0.5 reach a
    global test accuracy of about 0.95-0.97, above every learner trained alone for the
    same number of training calls (about 0.90-0.94: digits are easy, so each learner's
    part is kept small, about 125 training images, for pooling to matter). Each
    proposal is 50 SGD steps on batches of 16 (a few tens of milliseconds); the learning
    rate shrinks by ``lr_decay`` after each of a learner's proposals, so late proposals
    refine the shared model rather than pull it towards one learner's data.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # experiment
    n_learners: int = Field(5, ge=2)
    seed: int = Field(0, ge=0)
    n_rounds: int = Field(15, ge=1)
    vote_threshold: float = Field(0.5, ge=0.0, le=1.0)
    # data split
    global_test_fraction: float = Field(0.3, gt=0.0, lt=1.0)
    vote_fraction: float = Field(0.3, gt=0.0, lt=1.0)  # of each learner's part
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)  # of each learner's part
    # model and training
    hidden_size: int = Field(128, ge=1)
    learning_rate: float = Field(0.2, gt=0.0)
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # SGD only
    weight_decay: float = Field(1e-3, ge=0.0)
    lr_decay: float = Field(0.6, gt=0.0, le=1.0)  # learning rate factor after each proposal
    batch_size: int = Field(16, ge=1)
    batches_per_round: int = Field(50, ge=1)  # num_train_batches of each proposal
    vote_on: Literal["loss", "accuracy"] = "loss"  # the vote score; test scores are accuracy
    # torch's thread count while learners work: results depend on it in the last bits
    # (even the accept sequence can change), and 1 is fastest for this small model
    torch_threads: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _check_fractions(self) -> DigitsConfig:
        if self.vote_fraction + self.test_fraction >= 1.0:
            raise ValueError("vote_fraction + test_fraction must leave data to train on")
        return self


@dataclass(frozen=True)
class LearnerData:
    """One learner's private data; ``*_index`` are row numbers in the full data set."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_vote: np.ndarray
    y_vote: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray
    vote_index: np.ndarray
    test_index: np.ndarray


@dataclass(frozen=True)
class DigitsSplit:
    """The global held-out test set and every learner's private data."""

    x_global_test: np.ndarray
    y_global_test: np.ndarray
    global_test_index: np.ndarray
    learners: tuple[LearnerData, ...]


@lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (np.asarray(bunch.data, dtype=np.float32) / np.float32(16.0)).astype(np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_digits_data() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits: features in [0, 1] (float32, shape (1797, 64)), labels (int64)."""
    return _load()


def _take(x: np.ndarray, y: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = x[index], y[index]
    xs.setflags(write=False)  # splits are cached and shared: keep them immutable
    ys.setflags(write=False)
    return xs, ys


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def split_digits(
    n_learners: int = 5,
    seed: int = 0,
    global_test_fraction: float = 0.3,
    vote_fraction: float = 0.3,
    test_fraction: float = 0.2,
) -> DigitsSplit:
    """Splits the digits, deterministically for a given seed, into a global test set and
    ``n_learners`` disjoint private parts, each with train / vote / test sets."""
    if n_learners < 1:
        raise ValueError("at least one learner")
    if not 0.0 < global_test_fraction < 1.0:
        raise ValueError("global_test_fraction must be within (0, 1)")
    if vote_fraction <= 0.0 or test_fraction < 0.0 or vote_fraction + test_fraction >= 1.0:
        raise ValueError("need 0 < vote_fraction, 0 <= test_fraction, and their sum < 1")
    x, y = _load()
    order = np.random.default_rng(seed).permutation(len(y))
    n_global = round(global_test_fraction * len(y))
    global_index = _frozen(np.sort(order[:n_global]))
    learners = []
    for part in np.array_split(order[n_global:], n_learners):
        n_vote = round(vote_fraction * len(part))
        n_test = round(test_fraction * len(part))
        if n_vote < 1 or len(part) - n_vote - n_test < 1:
            raise ValueError("too many learners for the data: a part has no vote or train data")
        vote_index = _frozen(np.sort(part[:n_vote]))
        test_index = _frozen(np.sort(part[n_vote:n_vote + n_test]))
        train_index = _frozen(np.sort(part[n_vote + n_test:]))
        learners.append(LearnerData(
            *_take(x, y, train_index), *_take(x, y, vote_index), *_take(x, y, test_index),
            train_index=train_index, vote_index=vote_index, test_index=test_index,
        ))
    return DigitsSplit(
        *_take(x, y, global_index), global_test_index=global_index, learners=tuple(learners)
    )


def split_for_config(config: DigitsConfig) -> DigitsSplit:
    """:func:`split_digits` with a config's parameters (cached: the split is pure)."""
    return _split_cached(
        config.n_learners, config.seed, config.global_test_fraction,
        config.vote_fraction, config.test_fraction,
    )


@lru_cache(maxsize=16)
def _split_cached(*args) -> DigitsSplit:
    return split_digits(*args)

"""The digits task: scikit-learn's bundled 8x8 handwritten digits (1797 images, 64
features, 10 classes), split among learners. Numpy only; the PyTorch part is in
:mod:`colearn_core.tasks.digits_torch`.

The data is :func:`~colearn_core.tasks.datasets.load_dataset` ``("digits")`` (features
scaled to [0, 1], float32; labels int64) and the split is
:func:`~colearn_core.tasks.splits.split_dataset`'s IID one, the same as
``colearn bench learning``'s: a stratified global held-out test set that no learner sees
(used only to measure the final model), then ``n_learners`` private parts of (almost)
equal size, each shuffled into its own train, vote and test sets.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator

from colearn_core.tasks.datasets import load_dataset
from colearn_core.tasks.mlp_config import MLPTaskConfig
from colearn_core.tasks.splits import FederatedSplit, split_dataset

N_CLASSES = 10
N_FEATURES = 64


class DigitsConfig(MLPTaskConfig):
    """Everything that fixes a digits experiment: learners, rounds, data split, and (from
    :class:`~colearn_core.tasks.mlp_config.MLPTaskConfig`) the seed, model and training.

    The defaults are tuned so that 5 learners, 15 rounds and threshold 0.5 reach a
    global test accuracy of about 0.95-0.96, above every learner trained alone for the
    same number of training calls (about 0.88-0.94: digits are easy, so each learner's
    part is kept small, about 125 training images, for pooling to matter); they still
    hold on :func:`~colearn_core.tasks.splits.split_dataset`'s IID split (seeds 0-3:
    0.948-0.961, 0.019-0.043 above the best solo learner), so they were not retuned. Each
    proposal is 50 SGD steps on batches of 16 (a few tens of milliseconds); the learning
    rate shrinks by ``lr_decay`` after each of a learner's proposals, so late proposals
    refine the shared model rather than pull it towards one learner's data.
    """

    # experiment
    n_learners: int = Field(5, ge=2)
    n_rounds: int = Field(15, ge=1)
    vote_threshold: float = Field(0.5, ge=0.0, le=1.0)
    # data split
    global_test_fraction: float = Field(0.3, gt=0.0, lt=1.0)
    vote_fraction: float = Field(0.3, gt=0.0, lt=1.0)  # of each learner's part
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)  # of each learner's part
    # model and training: MLPTaskConfig's, with digits' scores
    vote_on: Literal["loss", "accuracy"] = "loss"  # test scores are accuracy
    score: Literal["accuracy"] = "accuracy"

    @model_validator(mode="after")
    def _check_fractions(self) -> DigitsConfig:
        if self.vote_fraction + self.test_fraction >= 1.0:
            raise ValueError("vote_fraction + test_fraction must leave data to train on")
        return self


def split_for_config(config: DigitsConfig) -> FederatedSplit:
    """The IID :func:`~colearn_core.tasks.splits.split_dataset` of the digits with a
    config's learners, seed and fractions. Cached (the split is pure; its arrays are
    read-only), so every learner and the global test set of one config share it."""
    return _split_cached(
        config.n_learners, config.seed, config.global_test_fraction,
        config.vote_fraction, config.test_fraction,
    )


@lru_cache(maxsize=16)
def _split_cached(
    n_learners: int, seed: int, global_test_fraction: float, vote_fraction: float,
    test_fraction: float,
) -> FederatedSplit:
    return split_dataset(
        load_dataset("digits"), n_learners, seed=seed, scheme="iid",
        global_test_fraction=global_test_fraction, vote_fraction=vote_fraction,
        test_fraction=test_fraction,
    )

"""colearn's fraud example: a linear classifier trained with ``SGDClassifier.partial_fit``.

colearn's version read Kaggle's IEEE-CIS fraud data (``train_transaction.csv`` joined with
``train_identity.csv``, 431 features after ``fraud_preprocessing``; about 3.5 % fraudulent),
which needs a download and an account (``colearn_core.other.fraud_dataset`` reads it when
you have it). This port uses a seeded, offline, fraud-style stand-in:
``sklearn.datasets.make_classification`` with 30 features, about 2 % positives ("fraud")
and a little label noise, standardised per feature. Each learner runs
``SGDClassifier(loss="log_loss")`` on its private share (IID split), votes on the ROC
AUC of its vote set (accuracy is meaningless at 2 % positives: "never fraud" scores 98 %)
and reports the AUC on its test set. The global score is the AUC on the split's global
test set, which no learner sees. The initial model is all zeros (AUC 0.5).
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Any

import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import roc_auc_score

from colearn_core.examples import Example
from colearn_core.learners.sklearn import SklearnPartialFitLearner
from colearn_core.ml_interface import Weights
from colearn_core.tasks.datasets import Dataset
from colearn_core.tasks.splits import FederatedSplit, LearnerSplit, split_dataset

N_SAMPLES = 20_000
N_FEATURES = 30
POSITIVE_SHARE = 0.02
BATCH_SIZE = 64
BATCHES_PER_ROUND = 10
ALPHA = 1e-3  # L2 penalty; also sets the "optimal" learning rate schedule


@lru_cache(maxsize=4)
def fraud_dataset(seed: int = 0) -> Dataset:
    """The synthetic stand-in: 20,000 rows, 30 standardised features, ~2 % positives."""
    x, y = make_classification(
        n_samples=N_SAMPLES, n_features=N_FEATURES, n_informative=8, n_redundant=6,
        n_clusters_per_class=2, weights=[1 - POSITIVE_SHARE], flip_y=0.002, class_sep=1.0,
        random_state=seed)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    return Dataset("fraud-synthetic", x.astype(np.float32), y.astype(np.int64), 2,
                   f"make_classification(random_state={seed}): {N_SAMPLES} rows, "
                   f"{N_FEATURES} features, ~{POSITIVE_SHARE:.0%} positives")


@lru_cache(maxsize=4)
def make_split(n_learners: int, seed: int, data_dir: str | None = None) -> FederatedSplit:
    """``data_dir`` is ignored: the data are generated."""
    return split_dataset(fraud_dataset(seed), n_learners, seed=seed)


def make_learner(part: LearnerSplit, index: int, seed: int) -> SklearnPartialFitLearner:
    return SklearnPartialFitLearner(
        SGDClassifier(loss="log_loss", alpha=ALPHA, random_state=seed * 1000 + index),
        part.x_train, part.y_train, part.x_vote, part.y_vote, part.x_test, part.y_test,
        classes=[0, 1], batch_size=BATCH_SIZE, batches_per_round=BATCHES_PER_ROUND,
        vote_criterion="roc_auc", seed=seed * 1000 + index)


def global_auc(weights: Any, split: FederatedSplit) -> float:
    """ROC AUC of raw weights (``{coef_, intercept_, t_}``) on the global test set: the
    decision function ``x @ coef_ + intercept_`` ranks exactly as the probabilities do."""
    raw = weights.weights if isinstance(weights, Weights) else weights
    scores = split.x_global_test.astype(np.float64) @ np.asarray(raw["coef_"], np.float64)[0] \
        + float(np.asarray(raw["intercept_"])[0])
    return float(roc_auc_score(split.y_global_test, scores))


def describe(n_learners: int, seed: int, data_dir: str | None) -> str:
    return (f"colearn's fraud example: SGDClassifier(log_loss).partial_fit, "
            f"{BATCHES_PER_ROUND} batches of {BATCH_SIZE} per proposal, vote on ROC AUC; "
            f"offline stand-in for Kaggle's IEEE-CIS fraud data: "
            f"{fraud_dataset(seed).description}; IID split among {n_learners} learners")


EXAMPLE = Example(
    make_split=make_split,
    make_learner=make_learner,
    global_score=lambda split, _seed, _learners: partial(global_auc, split=split),
    score_name="AUC",
    describe=describe,
)
build = EXAMPLE.build
learner = EXAMPLE.learner

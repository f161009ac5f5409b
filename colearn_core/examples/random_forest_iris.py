"""colearn's iris example: a random forest that grows by a few trees each round.

Each learner holds a share of scikit-learn's iris flowers (150 samples, 4 z-scored
features, 3 classes; IID split with a stratified global test set of 45). A proposal adds
``TREES_PER_ROUND`` depth-limited trees, trained on bootstrap samples of the proposer's
own training rows, to the shared forest (at most ``MAX_TREES`` trees; beyond that the
oldest are replaced). Learners vote on the Brier score of their vote set (lower is
better; accuracy on six vote samples is too coarse to see a change) and report accuracy
on their test set. The global score is accuracy on the global test set.

colearn pickled the sklearn forest as its weights; here the forest is arrays
(:class:`~colearn_core.learners.sklearn.forest.ForestLayout`), validated on receipt and
evaluated in numpy. The initial model is the empty forest (uniform prediction).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from colearn_core.examples import Example
from colearn_core.learners.sklearn import ForestLayout, RandomForestLearner, forest_score_fn
from colearn_core.tasks.datasets import load_dataset
from colearn_core.tasks.splits import FederatedSplit, LearnerSplit, split_dataset

N_CLASSES = 3
TREES_PER_ROUND = 2
MAX_TREES = 20
MAX_DEPTH = 3


@lru_cache(maxsize=8)
def make_split(n_learners: int, seed: int, data_dir: str | None = None) -> FederatedSplit:
    """``data_dir`` is ignored: iris ships with scikit-learn."""
    return split_dataset(load_dataset("iris"), n_learners, seed=seed)


def make_learner(part: LearnerSplit, index: int, seed: int) -> RandomForestLearner:
    return RandomForestLearner(
        part.x_train, part.y_train, part.x_vote, part.y_vote, part.x_test, part.y_test,
        n_classes=N_CLASSES, trees_per_round=TREES_PER_ROUND, max_trees=MAX_TREES,
        max_depth=MAX_DEPTH, vote_criterion="brier", test_criterion="accuracy",
        seed=seed * 1000 + index)


def global_accuracy(split: FederatedSplit, seed: int,
                    learners: Sequence[RandomForestLearner]) -> Callable[[Any], float]:
    layout: ForestLayout = learners[0].layout
    return forest_score_fn(layout, split.x_global_test, split.y_global_test, "accuracy")


def describe(n_learners: int, seed: int, data_dir: str | None) -> str:
    return (f"colearn's iris random forest: {TREES_PER_ROUND} trees (depth <= {MAX_DEPTH}, "
            f"bootstrap, sqrt features) added per proposal, at most {MAX_TREES} (oldest "
            f"replaced), vote on Brier score, test accuracy; iris split IID among "
            f"{n_learners} learners")


EXAMPLE = Example(make_split=make_split, make_learner=make_learner,
                  global_score=global_accuracy, score_name="accuracy", describe=describe)
build = EXAMPLE.build
learner = EXAMPLE.learner

"""colearn's XGBoost regression example: boosted trees that grow by two rounds a proposal.

colearn trained on the Boston housing prices, which scikit-learn no longer ships (and
California housing is a download). The offline stand-in is scikit-learn's bundled
diabetes set (442 patients, 10 features, a continuous target): a seeded 20 % is the
global test set, the rest is dealt equally to the learners, each share split 60/20/20
into train, vote and test (colearn's 90/5/5 would leave three vote samples a learner).
The parameters are colearn's (depth 5, 10 % of columns per tree, learning rate 0.3,
two boosting rounds per proposal); learners vote on their vote set's mean squared
error, and the global score is the mean squared error on the global test set.

colearn's learner saved the model to a file under /tmp and used its path as the
weights; :class:`~colearn_core.learners.xgboost.XGBoostLearner` uses the model's UBJSON
bytes and checks peers' bytes before loading them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from colearn_core.examples import Example
from colearn_core.learners.xgboost import DEFAULT_PARAMS, XGBoostLearner, mean_squared_error
from colearn_core.ml_interface import Weights
from colearn_core.tasks.splits import FederatedSplit, LearnerSplit

N_STEPS_PER_ROUND = 2
GLOBAL_TEST_FRACTION = 0.2
VOTE_FRACTION = 0.2
TEST_FRACTION = 0.2


@lru_cache(maxsize=8)
def make_split(n_learners: int, seed: int, data_dir: str | None = None) -> FederatedSplit:
    """The global test set, and each learner's train, vote and test parts. ``data_dir`` is
    ignored: the data is bundled with scikit-learn."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order].astype(np.float32), y[order].astype(np.float32)
    n_global = round(GLOBAL_TEST_FRACTION * len(y))
    parts = []
    for share in np.array_split(np.arange(n_global, len(y)), n_learners):
        n_vote, n_test = int(VOTE_FRACTION * len(share)), int(TEST_FRACTION * len(share))
        if len(share) - n_vote - n_test < 1 or n_vote < 1 or n_test < 1:
            raise ValueError(f"{n_learners} learners leave too few samples each")
        train, vote, test = np.split(share, [len(share) - n_vote - n_test,
                                             len(share) - n_test])
        parts.append(LearnerSplit(x[train], y[train], x[vote], y[vote], x[test], y[test]))
    return FederatedSplit(x[:n_global], y[:n_global], tuple(parts))


def make_learner(part: LearnerSplit, index: int, seed: int) -> XGBoostLearner:
    return XGBoostLearner(part.x_train, part.y_train, part.x_vote, part.y_vote, part.x_test,
                          part.y_test, params=DEFAULT_PARAMS,
                          n_steps_per_round=N_STEPS_PER_ROUND, seed=seed * 1000 + index)


def global_mean_squared_error(split: FederatedSplit, seed: int,
                              learners: Sequence[XGBoostLearner]) -> Callable[[Any], float]:
    """The mean squared error of raw weights (or ``Weights``) on the global test set,
    loaded by learner 0 (which checks them as it checks a peer's)."""
    scorer = learners[0]

    def global_score(weights: Any) -> float:
        import xgboost as xgb

        booster = scorer.load_weights(weights.weights if isinstance(weights, Weights)
                                      else weights)
        return mean_squared_error(split.y_global_test,
                                  booster.predict(xgb.DMatrix(split.x_global_test)))

    return global_score


def describe(n_learners: int, seed: int, data_dir: str | None) -> str:
    return (f"colearn's XGBoost regression: {N_STEPS_PER_ROUND} boosting rounds per proposal "
            f"(depth {DEFAULT_PARAMS['max_depth']}, learning rate "
            f"{DEFAULT_PARAMS['learning_rate']}), vote on mean squared error; scikit-learn's "
            f"diabetes data (stand-in for Boston housing) split among {n_learners} learners")


EXAMPLE = Example(make_split=make_split, make_learner=make_learner,
                  global_score=global_mean_squared_error, score_name="mean squared error",
                  describe=describe)
build = EXAMPLE.build
learner = EXAMPLE.learner

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

from functools import lru_cache

import numpy as np

from colearn_core.driver import set_equal_weights
from colearn_core.examples import ExampleSetup, int_arg, learner_args
from colearn_core.learners.xgboost import DEFAULT_PARAMS, XGBoostLearner, mean_squared_error
from colearn_core.ml_interface import Weights

N_STEPS_PER_ROUND = 2
GLOBAL_TEST_FRACTION = 0.2
VOTE_FRACTION = 0.2
TEST_FRACTION = 0.2

Part = tuple[np.ndarray, np.ndarray]


@lru_cache(maxsize=8)
def make_split(n_learners: int, seed: int) -> tuple[Part, list[tuple[Part, Part, Part]]]:
    """The global test set, and each learner's (train, vote, test) parts."""
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
        parts.append(((x[train], y[train]), (x[vote], y[vote]), (x[test], y[test])))
    return (x[:n_global], y[:n_global]), parts


def make_learner(n_learners: int, seed: int, index: int) -> XGBoostLearner:
    (train, vote, test) = make_split(n_learners, seed)[1][index]
    return XGBoostLearner(*train, *vote, *test, params=DEFAULT_PARAMS,
                          n_steps_per_round=N_STEPS_PER_ROUND, seed=seed * 1000 + index)


def build(n_learners: int = 5, seed: int = 0, data_dir: str | None = None) -> ExampleSetup:
    """``n_learners`` learners, all starting from learner 0's first two rounds, and the
    global test mean squared error. ``data_dir`` is ignored (the data is bundled)."""
    n_learners, seed = int_arg("n_learners", n_learners), int_arg("seed", seed)
    learners = [make_learner(n_learners, seed, i) for i in range(n_learners)]
    set_equal_weights(learners)
    (x_global, y_global), _ = make_split(n_learners, seed)
    scorer = learners[0]

    def global_score(weights: object) -> float:
        import xgboost as xgb

        booster = scorer.load_weights(weights.weights if isinstance(weights, Weights)
                                      else weights)
        return mean_squared_error(y_global, booster.predict(xgb.DMatrix(x_global)))

    return ExampleSetup(
        learners=learners, global_score=global_score, score_name="mean squared error",
        description=(
            f"colearn's XGBoost regression: {N_STEPS_PER_ROUND} boosting rounds per proposal "
            f"(depth {DEFAULT_PARAMS['max_depth']}, learning rate "
            f"{DEFAULT_PARAMS['learning_rate']}), vote on mean squared error; scikit-learn's "
            f"diabetes data (stand-in for Boston housing) split among {n_learners} learners"),
    )


def learner(index: int, n_learners: int = 5, seed: int = 0,
            data_dir: str | None = None) -> XGBoostLearner:
    """Learner ``index`` of :func:`build` with the same arguments (the agent factory;
    arguments may be strings). Its own model is replaced by the experiment's initial one
    when its agent adopts it."""
    index, n_learners, seed = learner_args(index, n_learners, seed)
    return make_learner(n_learners, seed, index)

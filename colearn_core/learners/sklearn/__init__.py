"""scikit-learn learners for the machine learning interface: colearn's two kinds.

This package imports scikit-learn; import it explicitly (``colearn_core`` does not).

* :class:`SklearnPartialFitLearner` (:mod:`.partial_fit`) wraps any estimator with
  ``partial_fit`` (``SGDClassifier`` as in colearn's fraud example, ``SGDRegressor``,
  ``MLPClassifier``, ...). Its weights are the estimator's fitted arrays, e.g. ``coef_``,
  ``intercept_`` and ``t_`` for the SGD models, or ``coefs_.0``, ``intercepts_.0``, ...
  for an MLP.
* :class:`RandomForestLearner` (:mod:`.forest`) grows a random forest as colearn's iris
  example did: each proposal adds ``trees_per_round`` trees trained on the learner's own
  data. colearn pickled the whole sklearn model; here the forest IS its weights:
  fixed-capacity arrays (see :class:`ForestLayout`), validated before use and evaluated
  in pure numpy, so no sklearn object is ever deserialised.

Both keep the reference learner's guarantees (:mod:`colearn_core.learners.pytorch`):
proposing and testing never change the current weights (they are restored bitwise),
weights are copied in and out (never aliased), the vote is "strictly better than the
cached vote score of the current weights" (refreshed on accept), and one sequence of
calls gives bitwise identical weights for a fixed seed. Weights have a fixed structure
(names, shapes, dtypes), as the agent requires. Nothing here pickles anything.
"""

from colearn_core.learners.sklearn._common import NAMED_SCORES, NamedScore, ScoreError, brier_score
from colearn_core.learners.sklearn.forest import (
    FOREST_NAMES,
    ForestConfig,
    ForestLayout,
    RandomForestLearner,
    forest_score_fn,
    tree_to_arrays,
)
from colearn_core.learners.sklearn.partial_fit import SklearnPartialFitLearner

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

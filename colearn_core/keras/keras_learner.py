"""``colearn_keras.keras_learner``: the one :class:`KerasLearner`, which lives in
:mod:`colearn_core.learners.keras`."""

from colearn_core.learners.keras import KerasLearner

__all__ = ["KerasLearner"]

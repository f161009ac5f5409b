"""``colearn_pytorch.pytorch_learner``: the one :class:`PytorchLearner`, which lives in
:mod:`colearn_core.learners.pytorch`."""

from colearn_core.learners.pytorch import PytorchLearner

__all__ = ["PytorchLearner"]

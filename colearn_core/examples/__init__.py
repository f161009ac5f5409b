"""colearn's examples, ported: each builds a set of learners over a seeded split and a
global test score, runnable in memory (``colearn example NAME``) and on chain
(``colearn example NAME --on-chain``, or one agent per stakeholder with
``colearn agent --learner colearn_core.examples.MODULE:learner``).

An example module declares an :class:`Example` (its split, its learners, its global
score) and exports its methods: ``build(n_learners=5, seed=0, data_dir=None) ->
ExampleSetup`` and ``learner(index, n_learners=5, seed=0, data_dir=None)``, the agent
factory that returns learner ``index`` of the same ``build``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any, Generic, TypeVar

import numpy as np

from colearn_core.ml_interface import MachineLearningInterface
from colearn_core.tasks.datasets import Dataset, load_dataset
from colearn_core.tasks.splits import FederatedSplit, LearnerSplit
from colearn_core.training import set_equal_weights

L = TypeVar("L", bound=MachineLearningInterface)

#: name -> module, for ``colearn example NAME``.
EXAMPLES: dict[str, str] = {
    "pytorch-mnist": "colearn_core.examples.pytorch_mnist",
    "pytorch-cifar10": "colearn_core.examples.pytorch_cifar10",
    "keras-mnist": "colearn_core.examples.keras_mnist",
    "sgd-fraud": "colearn_core.examples.sgd_fraud",
    "random-forest-iris": "colearn_core.examples.random_forest_iris",
    "xgb-reg-boston": "colearn_core.examples.xgb_reg_boston",
}


@dataclass(frozen=True)
class ExampleSetup:
    """Learners ready for an experiment (same initial weights), how to score any weights
    on the global held-out test set, and the example's experiment defaults."""

    learners: Sequence[MachineLearningInterface]
    global_score: Callable[[Any], float]  # raw weights (Weights.weights) -> score
    score_name: str  # e.g. "accuracy", "AUC"
    n_rounds: int = 15
    vote_threshold: float = 0.5
    description: str = ""


def load_example(name: str) -> ModuleType:
    """The example module called ``name``; :class:`ValueError` names the known ones."""
    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r}: one of {', '.join(EXAMPLES)}")
    return importlib.import_module(EXAMPLES[name])


def int_arg(name: str, value: Any) -> int:
    """A non-negative integer argument of a factory (``colearn agent --learner-arg``
    values arrive parsed as JSON; a string of digits is accepted too); bools refused."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0:
        return int(value)
    raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def learner_args(index: Any, n_learners: Any, seed: Any) -> tuple[int, int, int]:
    """An agent factory's ``index``, ``n_learners`` and ``seed`` (see :func:`int_arg`),
    ``index`` one of the learners."""
    index, n_learners, seed = int_arg("index", index), int_arg("n_learners", n_learners), \
        int_arg("seed", seed)
    if not index < n_learners:
        raise ValueError(f"index must be within 0..{n_learners - 1}, got {index}")
    return index, n_learners, seed


@dataclass(frozen=True)
class Example(Generic[L]):
    """An example, declared: how it splits its data, makes a learner on its part and
    scores weights on the global test set. :meth:`build` and the agent factory
    :meth:`learner` follow from these, the same for every example."""

    #: ``(n_learners, seed, data_dir)`` -> the split (``data_dir`` ignored by examples
    #: whose data ships with a library or is generated).
    make_split: Callable[[int, int, str | None], FederatedSplit]
    #: ``(part, index, seed)`` -> learner ``index`` on its part of the split.
    make_learner: Callable[[LearnerSplit, int, int], L]
    #: ``(split, seed, learners)`` -> the score of raw weights on the global test set.
    global_score: Callable[[FederatedSplit, int, Sequence[L]], Callable[[Any], float]]
    score_name: str  # e.g. "accuracy", "AUC"
    #: ``(n_learners, seed, data_dir)`` -> :attr:`ExampleSetup.description`.
    describe: Callable[[int, int, str | None], str]

    def build(self, n_learners: int = 5, seed: int = 0,
              data_dir: str | None = None) -> ExampleSetup:
        """``n_learners`` learners, all given learner 0's initial weights (as colearn's
        examples do), and the global test score."""
        n_learners, seed = int_arg("n_learners", n_learners), int_arg("seed", seed)
        split = self.make_split(n_learners, seed, data_dir)
        learners = [self.make_learner(part, index, seed)
                    for index, part in enumerate(split.learners)]
        set_equal_weights(learners)
        return ExampleSetup(
            learners=learners,
            global_score=self.global_score(split, seed, learners),
            score_name=self.score_name,
            description=self.describe(n_learners, seed, data_dir),
        )

    def learner(self, index: int, n_learners: int = 5, seed: int = 0,
                data_dir: str | None = None) -> L:
        """Learner ``index`` of :meth:`build` with the same arguments, the agent factory
        (``colearn agent --learner colearn_core.examples.MODULE:learner``; arguments may
        be strings). Its agent adopts the experiment's initial model, so its own initial
        weights need not be learner 0's."""
        index, n_learners, seed = learner_args(index, n_learners, seed)
        split = self.make_split(n_learners, seed, data_dir)
        return self.make_learner(split.learners[index], index, seed)


@lru_cache(maxsize=4)
def mnist_images(data_dir: str | None = None, *, channels_last: bool = False) -> Dataset:
    """MNIST from ``data_dir`` (the idx files), as (n, 1, 28, 28), or (n, 28, 28, 1) with
    ``channels_last``. Without ``data_dir``, the offline stand-in for the MNIST examples:
    scikit-learn's 8x8 digits, each pixel repeated 3x3 (24x24) and zero-padded to 28x28."""
    if data_dir is not None:
        data = load_dataset("mnist", data_dir)
    else:
        digits = load_dataset("digits")
        images = np.repeat(np.repeat(digits.x.reshape(-1, 8, 8), 3, axis=1), 3, axis=2)
        images = np.pad(images, ((0, 0), (2, 2), (2, 2)))[:, None]
        data = Dataset(name="digits-28x28", x=np.ascontiguousarray(images, dtype=np.float32),
                       y=np.array(digits.y), n_classes=10,
                       description="scikit-learn's 8x8 digits, pixels repeated 3x3 and "
                                   "padded to 28x28 (an offline stand-in for MNIST)")
    if not channels_last:
        return data
    return Dataset(name=data.name, x=np.ascontiguousarray(np.transpose(data.x, (0, 2, 3, 1))),
                   y=np.array(data.y), n_classes=data.n_classes, description=data.description)


def mnist_source(data_dir: str | None) -> str:
    """Where :func:`mnist_images` takes the images from, as the MNIST examples describe it."""
    return (f"MNIST from {data_dir}" if data_dir is not None else
            "offline stand-in for MNIST: scikit-learn's 8x8 digits, each pixel repeated "
            "3x3 to 24x24 and padded to 28x28")

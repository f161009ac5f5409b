"""colearn's examples, ported: each builds a set of learners over a seeded split and a
global test score, runnable in memory (``colearn example NAME``) and on chain
(``colearn example NAME --on-chain``, or one agent per stakeholder with
``colearn agent --learner colearn_core.examples.MODULE:learner``).

An example module defines ``build(n_learners=5, seed=0, data_dir=None) -> ExampleSetup``
and ``learner(index, n_learners=5, seed=0, data_dir=None)``, the agent factory that
returns learner ``index`` of the same ``build``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from colearn_core.ml_interface import MachineLearningInterface

#: name -> module, for ``colearn example NAME``.
EXAMPLES: dict[str, str] = {
    "pytorch-mnist": "colearn_core.examples.pytorch_mnist",
    "keras-mnist": "colearn_core.examples.keras_mnist",
    "sgd-fraud": "colearn_core.examples.sgd_fraud",
    "random-forest-iris": "colearn_core.examples.random_forest_iris",
}


@dataclass(frozen=True)
class ExampleSetup:
    """Learners ready for an experiment (same initial weights), how to score any weights
    on the global held-out test set, and the example's experiment defaults."""

    learners: list[MachineLearningInterface]
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

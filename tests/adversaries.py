"""Dishonest learners for fault tests (factories for ``colearn agent --learner``)."""

from __future__ import annotations

import numpy as np

from colearn_core.ml_interface import Weights
from colearn_core.tasks.factories import digits_learner


def poisoned_learner(index: int, n_learners: int = 5, seed: int = 0, mode: str = "random"):
    """An honest digits learner that proposes poison every turn: random weights
    (``mode="random"``) or weights trained on flipped labels (``mode="label_flip"``).
    It tests and votes honestly."""
    learner = digits_learner(index, n_learners, seed)
    rng = np.random.default_rng(seed + 1000 * index)
    honest_propose = learner.mli_propose_weights
    honest_criterion = learner.criterion

    def propose() -> Weights:
        if mode == "random":
            current = learner.mli_get_current_weights().weights
            return Weights(weights={k: rng.standard_normal(v.shape).astype(v.dtype)
                                    for k, v in current.items()})
        learner.criterion = lambda outputs, labels: honest_criterion(outputs, 9 - labels)
        try:
            return honest_propose()
        finally:
            learner.criterion = honest_criterion

    learner.mli_propose_weights = propose
    return learner

"""The baselines collective learning is measured against, over any learners.

Framework-free: they use only the machine learning interface, and FedAvg averages
weights that are a mapping (or a sequence) of numpy arrays, as every learner here has.

- :func:`train_alone`: one learner on its own data, accepting each of its own proposals.
- :func:`fedavg`: federated averaging (McMahan et al. 2017) with full participation:
  every round each learner trains from the global weights (one training call, its
  ``mli_propose_weights``) and the global weights become the average of the results,
  weighted by each learner's number of training samples.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from colearn_core.ml_interface import MachineLearningInterface, Weights

#: Called with the raw weights after each training call (or FedAvg round).
OnRound = Callable[[Any], None]


def train_alone(learner: MachineLearningInterface, n_training_calls: int,
                on_round: OnRound | None = None) -> Any:
    """Proposes and accepts ``n_training_calls`` times; returns the final raw weights."""
    for _ in range(n_training_calls):
        learner.mli_accept_weights(learner.mli_propose_weights())
        if on_round is not None:
            on_round(learner.mli_get_current_weights().weights)
    return learner.mli_get_current_weights().weights


def average_weights(weights: Sequence[Any], sample_counts: Sequence[int]) -> Any:
    """The weighted average of float arrays (integer arrays, e.g. counters, come from the
    first set); every set has the same names, shapes and dtypes."""
    if len(weights) != len(sample_counts) or not weights:
        raise ValueError("one sample count per set of weights, and at least one set")
    total = float(sum(sample_counts))
    shares = [count / total for count in sample_counts]

    def mean(arrays: list[np.ndarray]) -> np.ndarray:
        first = np.asarray(arrays[0])
        if first.dtype.kind != "f":
            return first.copy()
        acc = sum(np.asarray(a, dtype=np.float64) * s for a, s in zip(arrays, shares))
        return np.asarray(acc, dtype=first.dtype)

    if isinstance(weights[0], Mapping):
        return {name: mean([w[name] for w in weights]) for name in weights[0]}
    return [mean([w[i] for w in weights]) for i in range(len(weights[0]))]


def fedavg(learners: Sequence[MachineLearningInterface], n_rounds: int,
           sample_counts: Sequence[int], on_round: OnRound | None = None) -> Any:
    """Runs FedAvg from learner 0's current weights; returns the final global weights."""
    global_weights = learners[0].mli_get_current_weights().weights
    for _ in range(n_rounds):
        local = []
        for learner in learners:
            learner.mli_accept_weights(Weights(weights=copy.deepcopy(global_weights)))
            local.append(learner.mli_propose_weights().weights)
        global_weights = average_weights(local, sample_counts)
        if on_round is not None:
            on_round(global_weights)
    return global_weights

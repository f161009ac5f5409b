"""The digits task with PyTorch: the benchmark's MLP (:mod:`colearn_core.tasks.mlp_torch`)
on the demo's digits split, the global test accuracy, the collective experiment and the
"solo" baseline.

Everything is seeded and uses no global random generator: the model is initialised
from its own ``torch.Generator`` and every train loader shuffles with its own, so a
config gives bitwise identical weights every time it is run (in one process, with the
same torch build and thread count).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from torch.utils.data import DataLoader

from colearn_core.learners.pytorch import (
    PytorchLearner,
    WeightsLike,
    evaluate_model,
    torch_threads,
    weights_to_state_dict,
)
from colearn_core.pytorch.utils import categorical_accuracy
from colearn_core.results import Result, Results
from colearn_core.tasks import mlp_torch
from colearn_core.tasks.digits import N_CLASSES, N_FEATURES, DigitsConfig, split_for_config
from colearn_core.tasks.mlp_torch import EVAL_BATCH_SIZE, MLP, MLPTaskConfig, make_loader
from colearn_core.tasks.splits import LearnerSplit
from colearn_core.training import run_experiment, set_equal_weights


def _mlp_config(config: DigitsConfig) -> MLPTaskConfig:
    return MLPTaskConfig(**config.model_dump(include=set(MLPTaskConfig.model_fields)))


def make_model(config: DigitsConfig) -> MLP:
    """The task's MLP (64 inputs, ``hidden_size`` ReLU units, 10 logits), initialised from
    the config's seed (every learner starts alike)."""
    return mlp_torch.make_model(N_FEATURES, N_CLASSES, _mlp_config(config))


def make_learner(data: LearnerSplit, config: DigitsConfig, learner_index: int) -> PytorchLearner:
    """One learner on its private data. It votes on its vote set's mean cross-entropy
    (``vote_on="loss"``) or accuracy; its test score is always accuracy."""
    return mlp_torch.make_learner(data, N_CLASSES, _mlp_config(config), learner_index)


def _config(config: DigitsConfig | None, **overrides) -> DigitsConfig:
    config = config if config is not None else DigitsConfig()
    changes = {k: v for k, v in overrides.items() if v is not None}
    return DigitsConfig(**{**config.model_dump(), **changes}) if changes else config


def make_digits_learners(
    n_learners: int | None = None,
    seed: int | None = None,
    config: DigitsConfig | None = None,
) -> list[PytorchLearner]:
    """``n_learners`` learners on their private parts of the digits (arguments given
    override ``config``; default :class:`DigitsConfig`)."""
    config = _config(config, n_learners=n_learners, seed=seed)
    split = split_for_config(config)
    return [make_learner(data, config, i) for i, data in enumerate(split.learners)]


def global_test_loader(config: DigitsConfig | None = None) -> DataLoader:
    """The held-out test set that no learner sees."""
    split = split_for_config(_config(config))
    return make_loader(split.x_global_test, split.y_global_test, EVAL_BATCH_SIZE)


def global_test_accuracy(weights: WeightsLike, config: DigitsConfig | None = None) -> float:
    """Accuracy of ``weights`` (a ``Weights`` or ``{name: array}``) on the global test set
    of ``config``'s split (the split depends on its seed, learners and fractions)."""
    config = _config(config)
    model = make_model(config)
    model.load_state_dict(weights_to_state_dict(weights, model, require_finite=False))
    with torch_threads(config.torch_threads):
        return evaluate_model(model, global_test_loader(config), categorical_accuracy)


@dataclass(frozen=True)
class DigitsOutcome:
    """A collective experiment's results and its final model's global test accuracy."""

    results: Results
    final_accuracy: float
    accuracy_per_round: list[float]  # global test accuracy of the current model after each round
    accepted_rounds: int
    seconds: float


def run_digits_experiment(
    config: DigitsConfig | None = None,
    on_round: Callable[[int, Result], None] | None = None,
) -> DigitsOutcome:
    """The collective experiment: ``set_equal_weights``, then ``config.n_rounds`` rounds
    of :func:`colearn_core.training.run_experiment`."""
    config = _config(config)
    start = time.perf_counter()
    learners = make_digits_learners(config=config)
    set_equal_weights(learners)
    per_round: list[float] = []

    def record(round_index: int, result: Result) -> None:
        per_round.append(global_test_accuracy(learners[0].mli_get_current_weights(), config))
        if on_round is not None:
            on_round(round_index, result)

    results = run_experiment(learners, config.n_rounds, config.vote_threshold, on_round=record)
    final = global_test_accuracy(learners[0].mli_get_current_weights(), config)
    return DigitsOutcome(
        results=results,
        final_accuracy=final,
        accuracy_per_round=per_round,
        accepted_rounds=sum(1 for d in results.decisions() if d),
        seconds=time.perf_counter() - start,
    )


def solo_accuracies(
    config: DigitsConfig | None = None, n_training_calls: int | None = None
) -> list[float]:
    """The baseline: each learner alone, from the same initial weights, proposes and
    accepts its own proposal ``n_training_calls`` times (default ``config.n_rounds``,
    the collective experiment's number of training calls); returns each one's global
    test accuracy."""
    config = _config(config)
    calls = config.n_rounds if n_training_calls is None else n_training_calls
    accuracies = []
    for learner in make_digits_learners(config=config):
        for _ in range(calls):
            learner.mli_accept_weights(learner.mli_propose_weights())
        accuracies.append(global_test_accuracy(learner.mli_get_current_weights(), config))
    return accuracies


def learners_identical(learners: Sequence[PytorchLearner]) -> bool:
    """Whether every learner holds bitwise the same current weights."""
    first = learners[0].mli_get_current_weights().weights
    return all(
        all(np.array_equal(first[k], w.mli_get_current_weights().weights[k]) for k in first)
        for w in learners[1:]
    )

"""The digits task with PyTorch: a small MLP, data loaders, learners, the global test
accuracy, the collective experiment and the "solo" baseline.

Everything is seeded and uses no global random generator: the model is initialised
from its own ``torch.Generator`` and every train loader shuffles with its own, so a
config gives bitwise identical weights every time it is run (in one process, with the
same torch build and thread count).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from colearn_core.driver import run_experiment, set_equal_weights
from colearn_core.learners.pytorch import (
    PytorchLearner,
    WeightsLike,
    accuracy_from_logits,
    evaluate_model,
    torch_threads,
    weights_to_state_dict,
)
from colearn_core.results import Result, Results
from colearn_core.tasks.digits import (
    N_CLASSES,
    N_FEATURES,
    DigitsConfig,
    LearnerData,
    split_for_config,
)

#: Batch size of the vote, test and global test loaders (scoring only).
EVAL_BATCH_SIZE = 512

#: Accuracy from labels and logits, for ``vote_criterion`` / ``test_criterion``.
accuracy_score = accuracy_from_logits


class DigitsMLP(nn.Module):
    """64 inputs -> ``hidden_size`` ReLU units -> 10 logits."""

    def __init__(self, hidden_size: int = 64) -> None:
        super().__init__()
        self.hidden = nn.Linear(N_FEATURES, hidden_size)
        self.out = nn.Linear(hidden_size, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


def _seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (independent streams per purpose)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0]) >> 1


def _init_linear(layer: nn.Linear, generator: torch.Generator) -> None:
    # torch's default Linear initialisation, drawn from our generator
    bound = 1.0 / math.sqrt(layer.in_features)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)


def make_model(config: DigitsConfig) -> DigitsMLP:
    """The task's model, initialised from the config's seed (every learner starts alike)."""
    model = DigitsMLP(config.hidden_size)
    generator = torch.Generator().manual_seed(_seed(config.seed, 0))
    for layer in (model.hidden, model.out):
        _init_linear(layer, generator)
    return model


def make_loader(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shuffle: bool = False,
    seed: int | None = None,
) -> DataLoader:
    """A DataLoader over copies of ``x`` (float32) and ``y`` (int64); shuffling uses its
    own generator seeded by ``seed``."""
    dataset = TensorDataset(
        torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)
    )
    generator = None
    if shuffle:
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


def make_optimizer(model: nn.Module, config: DigitsConfig) -> torch.optim.Optimizer:
    """The config's optimizer (each learner has its own; its state lives across rounds)."""
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.learning_rate,
                                weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.learning_rate,
                           momentum=config.momentum, weight_decay=config.weight_decay)


def make_learner(data: LearnerData, config: DigitsConfig, learner_index: int) -> PytorchLearner:
    """One learner on its private data. It votes on its vote set's mean cross-entropy
    (``vote_on="loss"``) or accuracy; its test score is always accuracy."""
    model = make_model(config)
    optimizer = make_optimizer(model, config)
    by_accuracy = config.vote_on == "accuracy"
    test_loader = None
    if len(data.y_test):
        test_loader = make_loader(data.x_test, data.y_test, EVAL_BATCH_SIZE)
    return PytorchLearner(
        model=model,
        optimizer=optimizer,
        train_loader=make_loader(data.x_train, data.y_train, config.batch_size, shuffle=True,
                                 seed=_seed(config.seed, 1, learner_index)),
        vote_loader=make_loader(data.x_vote, data.y_vote, EVAL_BATCH_SIZE),
        test_loader=test_loader,
        criterion=nn.CrossEntropyLoss(),
        minimise_criterion=not by_accuracy,
        vote_criterion=accuracy_score if by_accuracy else None,
        num_train_batches=config.batches_per_round,
        test_criterion=accuracy_score,
        num_threads=config.torch_threads,
        lr_scheduler=(torch.optim.lr_scheduler.ExponentialLR(optimizer, config.lr_decay)
                      if config.lr_decay != 1.0 else None),
    )


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
        return evaluate_model(model, global_test_loader(config), accuracy_score)


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
    of :func:`colearn_core.driver.run_experiment`."""
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

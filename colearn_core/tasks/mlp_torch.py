"""A PyTorch MLP for any tabular classification task split among learners: the model
of ``colearn bench learning`` (digits, breast cancer, wine, mnist1d).

Learners vote on their vote set's loss or accuracy, or on ROC AUC for binary tasks, and
report the same kind of score on their test set; the global test score uses
:attr:`MLPTaskConfig.score`. Everything is seeded as in
:mod:`colearn_core.tasks.digits_torch` (same model initialisation for every learner,
one generator per train loader), so a config gives identical runs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from colearn_core.learners.pytorch import PytorchLearner, score_weights
from colearn_core.pytorch.utils import categorical_accuracy
from colearn_core.tasks.mlp_config import MLPTaskConfig
from colearn_core.tasks.splits import FederatedSplit, LearnerSplit

#: Batch size of the vote, test and global test loaders (scoring only).
EVAL_BATCH_SIZE = 512


def derived_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (independent streams per purpose)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0]) >> 1


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


def _init_linear(layer: nn.Linear, generator: torch.Generator) -> None:
    # torch's default Linear initialisation, drawn from our generator
    bound = 1.0 / math.sqrt(layer.in_features)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)


def auc_from_two_logits(outputs: torch.Tensor, labels: torch.Tensor) -> float:
    """ROC AUC of a binary task from two-class logits (the score of class 1). Unlike
    :func:`colearn_core.pytorch.utils.auc_from_logits` (one logit per sample), labels of
    one class only score 0.5 instead of raising."""
    from sklearn.metrics import roc_auc_score

    y_true = labels.detach().cpu().numpy()
    if len(np.unique(y_true)) < 2:
        return 0.5  # undefined on one class: scores as chance, never "better"
    margin = (outputs[:, 1] - outputs[:, 0]).detach().cpu().numpy()
    return float(roc_auc_score(y_true, margin))


SCORES = {"accuracy": categorical_accuracy, "auc": auc_from_two_logits}


class MLP(nn.Module):
    def __init__(self, n_features: int, hidden_size: int, n_classes: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_features, hidden_size)
        self.out = nn.Linear(hidden_size, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


def make_model(n_features: int, n_classes: int, config: MLPTaskConfig) -> MLP:
    model = MLP(n_features, config.hidden_size, n_classes)
    generator = torch.Generator().manual_seed(derived_seed(config.seed, 0))
    for layer in (model.hidden, model.out):
        _init_linear(layer, generator)
    return model


def make_optimizer(model: nn.Module, config: MLPTaskConfig) -> torch.optim.Optimizer:
    """The config's optimizer (each learner has its own; its state lives across rounds)."""
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.learning_rate,
                                weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.learning_rate,
                           momentum=config.momentum, weight_decay=config.weight_decay)


def make_learner(data: LearnerSplit, n_classes: int, config: MLPTaskConfig, index: int,
                 *, batches_per_round: int | None = None) -> PytorchLearner:
    """Learner ``index`` over its part of a split (the pooled baseline passes more
    ``batches_per_round``)."""
    model = make_model(data.x_train.shape[1], n_classes, config)
    optimizer = make_optimizer(model, config)
    vote_fn = None if config.vote_on == "loss" else SCORES[config.vote_on]
    return PytorchLearner(
        model=model,
        optimizer=optimizer,
        train_loader=make_loader(data.x_train, data.y_train, config.batch_size, shuffle=True,
                                 seed=derived_seed(config.seed, 1, index)),
        vote_loader=make_loader(data.x_vote, data.y_vote, EVAL_BATCH_SIZE),
        test_loader=(make_loader(data.x_test, data.y_test, EVAL_BATCH_SIZE)
                     if len(data.y_test) else None),
        need_reset_optimizer=False,  # the optimizer's state lives across rounds
        criterion=nn.CrossEntropyLoss(),
        minimise_criterion=config.vote_on == "loss",
        vote_criterion=vote_fn,
        num_train_batches=batches_per_round or config.batches_per_round,
        test_criterion=SCORES[config.score],
        num_threads=config.torch_threads,
        lr_scheduler=(torch.optim.lr_scheduler.ExponentialLR(optimizer, config.lr_decay)
                      if config.lr_decay != 1.0 else None),
        vote_tolerance=config.vote_tolerance,
        proximal_mu=config.proximal_mu,
        update_fraction=config.update_fraction,
        update_momentum=config.update_momentum,
        logit_adjustment=config.logit_adjustment,
    )


def make_learners(split: FederatedSplit, config: MLPTaskConfig) -> list[PytorchLearner]:
    """One learner per part of ``split``, all with the same initial weights."""
    return [make_learner(part, _n_classes(split), config, i)
            for i, part in enumerate(split.learners)]


def make_pooled_learner(split: FederatedSplit, config: MLPTaskConfig) -> PytorchLearner:
    """One learner over every learner's train (and vote) data, training as many batches a
    call as all learners together."""
    x_train, y_train = split.pooled_train()
    pooled = LearnerSplit(
        x_train, y_train,
        np.concatenate([p.x_vote for p in split.learners]),
        np.concatenate([p.y_vote for p in split.learners]),
        x_train[:0], y_train[:0])
    return make_learner(pooled, _n_classes(split), config, len(split.learners),
                        batches_per_round=config.batches_per_round * len(split.learners))


def global_score(weights: Any, split: FederatedSplit, config: MLPTaskConfig) -> float:
    """The global test score of raw weights ``{name: array}``."""
    model = make_model(split.x_global_test.shape[1], _n_classes(split), config)
    loader = make_loader(split.x_global_test, split.y_global_test, EVAL_BATCH_SIZE)
    return score_weights(model, weights, loader, SCORES[config.score],
                         num_threads=config.torch_threads)


def _n_classes(split: FederatedSplit) -> int:
    if split.n_classes is None:
        raise ValueError("the split does not record its number of classes")
    return split.n_classes

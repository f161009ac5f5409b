"""What the PyTorch examples (MNIST, CIFAR-10) share: how a learner trains, votes and
tests, and the global score."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from colearn_core.learners.pytorch import PytorchLearner, score_weights
from colearn_core.ml_interface import DiffPrivConfig
from colearn_core.pytorch.utils import categorical_accuracy
from colearn_core.tasks.mlp_torch import EVAL_BATCH_SIZE, derived_seed, make_loader
from colearn_core.tasks.splits import FederatedSplit, LearnerSplit

TORCH_THREADS = 1


def cnn_learner(model: nn.Module, data: LearnerSplit, index: int, seed: int, *,
                learning_rate: float, batch_size: int, num_train_batches: int,
                diff_priv_config: DiffPrivConfig | None = None) -> PytorchLearner:
    """Learner ``index`` on its part of the split: Adam on ``num_train_batches`` shuffled
    batches a proposal (its state cleared before each, colearn's default), vote on the vote set's cross-entropy, test accuracy; with
    ``diff_priv_config``, DP-SGD (noise and sampling seeded)."""
    return PytorchLearner(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=learning_rate),
        train_loader=make_loader(data.x_train, data.y_train, batch_size, shuffle=True,
                                 seed=derived_seed(seed, 1, index)),
        vote_loader=make_loader(data.x_vote, data.y_vote, EVAL_BATCH_SIZE),
        test_loader=(make_loader(data.x_test, data.y_test, EVAL_BATCH_SIZE)
                     if len(data.y_test) else None),
        criterion=nn.CrossEntropyLoss(),
        minimise_criterion=True,
        vote_criterion=None,  # the mean cross-entropy on the vote set
        num_train_batches=num_train_batches,
        diff_priv_config=diff_priv_config,
        test_criterion=categorical_accuracy,
        num_threads=TORCH_THREADS,
        dp_seed=derived_seed(seed, 2, index) if diff_priv_config is not None else None,
    )


def global_test_accuracy(model: nn.Module, weights: Any, split: FederatedSplit) -> float:
    """Accuracy of raw weights (``{name: array}`` or ``Weights``) on the split's global
    test set, loaded into ``model`` (a fresh model of their architecture)."""
    loader = make_loader(split.x_global_test, split.y_global_test, EVAL_BATCH_SIZE)
    return score_weights(model, weights, loader, categorical_accuracy,
                         num_threads=TORCH_THREADS)

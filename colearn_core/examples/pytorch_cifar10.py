"""colearn's PyTorch CIFAR-10 example: a small CNN trained collectively on 32x32 colour
images, from CIFAR-10's files on the user's disk.

CIFAR-10 cannot be downloaded here and has no offline stand-in, so ``data_dir`` is
required: the directory holding CIFAR-10's *binary* version (``cifar-10-binary.tar.gz``
extracted; :func:`~colearn_core.tasks.datasets.load_dataset` refuses the pickled "python
version"). The 60,000 images are split IID among the learners. Each learner trains the
CNN (three conv - max-pool blocks, then linear) with Adam, votes on its vote set's loss
and reports accuracy on its test set; the global score is the accuracy on the split's
global test set. Seeded like the MNIST example: a ``(n_learners, seed)`` gives identical
runs.
"""

from __future__ import annotations

import math
from functools import lru_cache, partial
from typing import Any

import torch
from torch import nn

from colearn_core.examples import Example
from colearn_core.examples._pytorch import cnn_learner, global_test_accuracy
from colearn_core.learners.pytorch import PytorchLearner
from colearn_core.tasks.datasets import load_dataset
from colearn_core.tasks.mlp_torch import derived_seed
from colearn_core.tasks.splits import FederatedSplit, LearnerSplit, split_dataset

N_CLASSES = 10
BATCH_SIZE = 64
NUM_TRAIN_BATCHES = 20  # Adam steps per proposal
LEARNING_RATE = 1e-3


class CifarCNN(nn.Module):
    """3x32x32 -> [conv3 -> ReLU -> max-pool 2] x 3 (16, 32, 64 channels) -> linear 10."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3, 16, 3, padding=1),
                                    nn.Conv2d(16, 32, 3, padding=1),
                                    nn.Conv2d(32, 64, 3, padding=1)])
        self.fc = nn.Linear(64 * 4 * 4, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = torch.max_pool2d(torch.relu(conv(x)), 2)
        return self.fc(torch.flatten(x, 1))


def make_model(seed: int = 0) -> CifarCNN:
    """torch's default initialisation, drawn from a generator seeded by ``seed``."""
    model = CifarCNN()
    generator = torch.Generator().manual_seed(derived_seed(seed, 0))
    with torch.no_grad():
        for layer in (*model.convs, model.fc):
            bound = 1.0 / math.sqrt(layer.weight[0].numel())
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)
    return model


@lru_cache(maxsize=2)
def make_split(n_learners: int, seed: int, data_dir: str | None) -> FederatedSplit:
    if data_dir is None:
        raise ValueError("the CIFAR-10 example needs the data: pass --data-dir with "
                         "CIFAR-10's binary version (cifar-10-binary.tar.gz, extracted)")
    return split_dataset(load_dataset("cifar10", data_dir), n_learners, seed=seed,
                         scheme="iid")


def make_learner(data: LearnerSplit, index: int, seed: int = 0) -> PytorchLearner:
    return cnn_learner(make_model(seed), data, index, seed, learning_rate=LEARNING_RATE,
                       batch_size=BATCH_SIZE, num_train_batches=NUM_TRAIN_BATCHES)


def global_accuracy(weights: Any, split: FederatedSplit, seed: int = 0) -> float:
    """Accuracy of raw weights (``{name: array}`` or ``Weights``) on the global test set."""
    return global_test_accuracy(make_model(seed), weights, split)


def describe(n_learners: int, seed: int, data_dir: str | None) -> str:
    return (f"colearn's PyTorch CIFAR-10 example: CNN (3 conv-pool blocks, linear), Adam, "
            f"{NUM_TRAIN_BATCHES} batches of {BATCH_SIZE} per proposal, vote on the vote set's "
            f"cross-entropy; CIFAR-10 from {data_dir}, IID among {n_learners} learners")


EXAMPLE = Example(
    make_split=make_split,
    make_learner=make_learner,
    global_score=lambda split, seed, _learners: partial(global_accuracy, split=split,
                                                        seed=seed),
    score_name="accuracy",
    describe=describe,
)
build = EXAMPLE.build
learner = EXAMPLE.learner

"""colearn's PyTorch MNIST example: a small CNN trained collectively on handwritten digits.

As in colearn's ``pytorch_mnist`` example, each learner trains a convolutional network
(conv - max-pool - conv - max-pool - linear) with Adam on its private share of the
images, votes on its vote set's loss (lower is better) and reports accuracy on its test
set. The global score is the accuracy on the split's global test set, which no learner
sees. With ``dp_epsilon`` every learner trains with DP-SGD (opacus) and stops proposing
when its budget is spent.

Data: ``data_dir`` given, the real MNIST idx files in it
(:func:`~colearn_core.tasks.datasets.load_dataset` ``("mnist", data_dir)``). Without it,
an offline stand-in that needs no download: scikit-learn's 8x8 digits, each pixel
repeated 3x3 (``np.repeat``) to 24x24 and padded with 2 blank pixels per side to 28x28,
the way MNIST centres its 20x20 digits in a 28x28 frame. Either is split IID
(:func:`~colearn_core.tasks.splits.split_dataset`).

The model is seeded (every learner starts from the same weights) and each train loader
shuffles with its own generator, so a ``(n_learners, seed)`` gives identical runs.
"""

from __future__ import annotations

import math
from functools import lru_cache, partial
from typing import Any

import torch
from torch import nn

from colearn_core.examples import Example, ExampleSetup, mnist_images, mnist_source
from colearn_core.examples._pytorch import cnn_learner, global_test_accuracy
from colearn_core.learners.pytorch import PytorchLearner
from colearn_core.ml_interface import DiffPrivConfig
from colearn_core.tasks.mlp_torch import derived_seed
from colearn_core.tasks.splits import FederatedSplit, LearnerSplit, split_dataset

IMAGE_SIDE = 28
N_CLASSES = 10
BATCH_SIZE = 32
#: Adam steps per proposal: about 0.1-0.2 s on one core with this CNN.
NUM_TRAIN_BATCHES = 10
LEARNING_RATE = 3e-3
#: DP-SGD settings used with ``dp_epsilon`` (delta is fixed, as colearn's examples did).
DP_DELTA = 1e-5
DP_MAX_GRAD_NORM = 1.0
DP_NOISE_MULTIPLIER = 1.0


class MnistCNN(nn.Module):
    """1x28x28 -> conv5 (8) -> max-pool 2 -> conv5 (16) -> max-pool 2 -> linear 10.

    Only layers opacus supports (Conv2d, Linear; no BatchNorm), so DP works unchanged."""

    def __init__(self, channels: tuple[int, int] = (8, 16)) -> None:
        super().__init__()
        first, second = channels
        self.conv1 = nn.Conv2d(1, first, kernel_size=5)
        self.conv2 = nn.Conv2d(first, second, kernel_size=5)
        side = ((IMAGE_SIDE - 4) // 2 - 4) // 2  # 28 -> 24 -> 12 -> 8 -> 4
        self.fc = nn.Linear(second * side * side, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc(torch.flatten(x, 1))


def make_model(seed: int = 0) -> MnistCNN:
    """The CNN with torch's default initialisation (uniform within 1/sqrt(fan_in)),
    drawn from a generator seeded by ``seed``: every learner of a seed starts alike."""
    model = MnistCNN()
    generator = torch.Generator().manual_seed(derived_seed(seed, 0))
    with torch.no_grad():
        for layer in (model.conv1, model.conv2, model.fc):
            bound = 1.0 / math.sqrt(layer.weight[0].numel())
            layer.weight.uniform_(-bound, bound, generator=generator)
            assert layer.bias is not None
            layer.bias.uniform_(-bound, bound, generator=generator)
    return model


@lru_cache(maxsize=4)
def make_split(n_learners: int = 5, seed: int = 0, data_dir: str | None = None) -> FederatedSplit:
    """The IID split of the example's data among ``n_learners``."""
    return split_dataset(mnist_images(data_dir), n_learners, seed=seed, scheme="iid")


def make_learner(
    data: LearnerSplit,
    index: int,
    seed: int = 0,
    dp_epsilon: float | None = None,
) -> PytorchLearner:
    """Learner ``index`` on its part of the split: Adam, vote on loss, test accuracy;
    with ``dp_epsilon``, DP-SGD up to that budget (noise and sampling seeded)."""
    dp_config = None
    if dp_epsilon is not None:
        dp_config = DiffPrivConfig(
            target_epsilon=dp_epsilon, target_delta=DP_DELTA,
            max_grad_norm=DP_MAX_GRAD_NORM, noise_multiplier=DP_NOISE_MULTIPLIER)
    return cnn_learner(make_model(seed), data, index, seed, learning_rate=LEARNING_RATE,
                       batch_size=BATCH_SIZE, num_train_batches=NUM_TRAIN_BATCHES,
                       diff_priv_config=dp_config)


def global_accuracy(weights: Any, split: FederatedSplit, seed: int = 0) -> float:
    """Accuracy of raw weights (``{name: array}`` or ``Weights``) on the global test set."""
    return global_test_accuracy(make_model(seed), weights, split)


def _epsilon(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    try:
        epsilon = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"dp_epsilon must be a number, got {value!r}") from None
    if not epsilon > 0 or not math.isfinite(epsilon):
        raise ValueError(f"dp_epsilon must be positive and finite, got {value!r}")
    return epsilon


def describe(n_learners: int, seed: int, data_dir: str | None,
             dp_epsilon: float | None = None) -> str:
    privacy = (f"; DP-SGD (opacus) to epsilon {dp_epsilon}, delta {DP_DELTA}, noise "
               f"{DP_NOISE_MULTIPLIER}, clip {DP_MAX_GRAD_NORM}" if dp_epsilon else "")
    return (f"colearn's PyTorch MNIST example: CNN (conv-pool-conv-pool-linear), Adam, "
            f"{NUM_TRAIN_BATCHES} batches of {BATCH_SIZE} per proposal, vote on the vote "
            f"set's cross-entropy, test accuracy; {mnist_source(data_dir)}; IID split among "
            f"{n_learners} learners{privacy}")


def example(dp_epsilon: Any = None) -> Example[PytorchLearner]:
    """The example; with ``dp_epsilon``, every learner trains with DP-SGD to that budget."""
    epsilon = _epsilon(dp_epsilon)
    return Example(
        make_split=make_split,
        make_learner=partial(make_learner, dp_epsilon=epsilon),
        global_score=lambda split, seed, _learners: partial(global_accuracy, split=split,
                                                            seed=seed),
        score_name="accuracy",
        describe=partial(describe, dp_epsilon=epsilon),
    )


# Not ``EXAMPLE.build`` and ``EXAMPLE.learner`` as in the other examples: ``dp_epsilon``
# is one more argument, which the agent factory's signature must name.
def build(n_learners: int = 5, seed: int = 0, data_dir: str | None = None,
          dp_epsilon: float | None = None) -> ExampleSetup:
    """:meth:`Example.build` of :func:`example` ``(dp_epsilon)``."""
    return example(dp_epsilon).build(n_learners, seed, data_dir)


def learner(index: int, n_learners: int = 5, seed: int = 0, data_dir: str | None = None,
            dp_epsilon: float | None = None) -> PytorchLearner:
    """:meth:`Example.learner` of :func:`example` ``(dp_epsilon)``: the agent factory
    (``colearn agent --learner colearn_core.examples.pytorch_mnist:learner``)."""
    return example(dp_epsilon).learner(index, n_learners, seed, data_dir)

"""A heavier learner for benchmarks: a small CNN on upsampled, augmented digits.

The digits task's MLP trains a proposal in a few tens of milliseconds, so a benchmark
on it measures nothing but the protocol. This task keeps the same seeded split of
scikit-learn's bundled digits (offline) but blows each 8x8 image up to ``image_size``
pixels (nearest neighbour) and makes ``copies`` randomly shifted, noisy copies of it, and
learns them with a three-layer CNN (about 56k parameters, 220 KB of weights). With the
``"full"`` preset and one torch thread a proposal trains for about a second and a test
(vote set and test set) takes a few tenths of a second: the costs of a real collective
learning round, where a voter's test is worth running in parallel.

Everything is seeded and uses no global random generator (numpy ``default_rng`` streams
for the augmentation, a ``torch.Generator`` for the initial weights and each train
loader's shuffling), so a preset, ``n_learners`` and ``seed`` give bitwise the same
learners in every process (with the same torch build and one thread).

``bench_learner`` is a learner factory for ``colearn agent --learner
colearn_core.tasks.bench:bench_learner``; ``make_bench_learners`` builds all of them for
the in-memory driver.
"""

from __future__ import annotations

import atexit
import itertools
import json
import math
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from colearn_core.learners.pytorch import PytorchLearner
from colearn_core.pytorch.utils import categorical_accuracy
from colearn_core.tasks.datasets import load_dataset
from colearn_core.tasks.digits import N_CLASSES
from colearn_core.tasks.mlp_torch import derived_seed, make_loader
from colearn_core.tasks.splits import split_dataset


class BenchConfig(BaseModel):
    """Everything that fixes the benchmark task: split, augmentation, model, training."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_learners: int = Field(5, ge=2)
    seed: int = Field(0, ge=0)
    # data: the digits' IID split_dataset (as the digits task's), upsampled and augmented
    global_test_fraction: float = Field(0.3, gt=0.0, lt=1.0)
    vote_fraction: float = Field(0.3, gt=0.0, lt=1.0)
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    image_size: int = Field(32, ge=8)  # a multiple of 8
    copies: int = Field(3, ge=1)  # augmented copies of each image (every set)
    max_shift: int = Field(3, ge=0)  # pixels, in the upsampled image
    noise: float = Field(0.05, ge=0.0)
    # model and training
    channels: tuple[int, int] = (32, 64)
    # "big": square Linear layers of this width between the pooled features and the
    # logits (0: none), for a model of realistic size whose training stays cheap
    head_width: int = Field(0, ge=0)
    head_layers: int = Field(0, ge=0)
    learning_rate: float = Field(0.05, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    batch_size: int = Field(16, ge=1)
    batches_per_round: int = Field(48, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    torch_threads: int = Field(1, ge=1)


#: ``"full"``: a proposal trains for about a second; ``"small"``: a fast variant for tests;
#: ``"big"``: a 25M-parameter model (100 MB of weights: 4 layers 2500 wide after the small
#: CNN), trained on 2 batches a proposal, so weights dominate a round.
PRESETS: dict[str, dict] = {
    "full": {},
    "small": {"image_size": 16, "copies": 1, "max_shift": 1, "channels": (8, 16),
              "batches_per_round": 6},
    "big": {"image_size": 16, "copies": 1, "max_shift": 1, "channels": (8, 16),
            "batches_per_round": 2, "head_width": 2500, "head_layers": 5,
            "learning_rate": 0.0005},
}


def bench_config(preset: str = "full", n_learners: int = 5, seed: int = 0) -> BenchConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: one of {', '.join(PRESETS)}")
    return BenchConfig(n_learners=n_learners, seed=seed, **PRESETS[preset])


class BenchCNN(nn.Module):
    """conv 3x3 -> ReLU -> conv 3x3 -> ReLU -> max pool 2 -> conv 3x3 -> ReLU -> global
    average pool -> (``head_layers`` linear layers ``head_width`` wide, each with a ReLU)
    -> linear (10 logits)."""

    def __init__(self, channels: tuple[int, int] = (32, 64), head_width: int = 0,
                 head_layers: int = 0) -> None:
        super().__init__()
        c1, c2 = channels
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.conv3 = nn.Conv2d(c2, c2, 3, padding=1)
        widths = [c2] + [head_width] * head_layers
        self.head = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.out = nn.Linear(widths[-1], N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.conv3(x)).mean(dim=(2, 3))
        for layer in self.head:
            x = torch.relu(layer(x))
        return self.out(x)

    def layers(self) -> tuple[nn.Module, ...]:
        return self.conv1, self.conv2, self.conv3, *self.head, self.out


def make_model(config: BenchConfig) -> BenchCNN:
    """The model, He-uniform initialised from the config's seed (every learner alike)."""
    model = BenchCNN(config.channels, config.head_width, config.head_layers)
    generator = torch.Generator().manual_seed(derived_seed(config.seed, 100))
    with torch.no_grad():
        for layer in model.layers():
            assert isinstance(layer, (nn.Conv2d, nn.Linear)) and layer.bias is not None
            fan_in = layer.weight[0].numel()
            bound = math.sqrt(6.0 / fan_in)
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.zero_()
    return model


def _augment(x: np.ndarray, config: BenchConfig, rng: np.random.Generator) -> np.ndarray:
    """(n, 64) digits in [0, 1] -> (n * copies, 1, size, size) float32: upsampled, each
    copy shifted by up to ``max_shift`` pixels (zero fill) and with Gaussian noise."""
    scale = config.image_size // 8
    images = x.reshape(-1, 8, 8).repeat(scale, axis=1).repeat(scale, axis=2)
    n, size, pad = len(images), config.image_size, config.max_shift
    padded = np.zeros((n, size + 2 * pad, size + 2 * pad), dtype=np.float32)
    padded[:, pad:pad + size, pad:pad + size] = images
    out = np.empty((config.copies, n, size, size), dtype=np.float32)
    for c in range(config.copies):
        dy, dx = rng.integers(0, 2 * pad + 1, size=(2, n))
        for i in range(n):
            out[c, i] = padded[i, dy[i]:dy[i] + size, dx[i]:dx[i] + size]
    out += rng.normal(0.0, config.noise, size=out.shape).astype(np.float32)
    return out.reshape(config.copies * n, 1, size, size)


@lru_cache(maxsize=4)
def bench_data(config: BenchConfig) -> tuple[tuple[np.ndarray, ...], ...]:
    """Every learner's ``(x_train, y_train, x_vote, y_vote, x_test, y_test)``."""
    if config.image_size % 8:
        raise ValueError("image_size must be a multiple of 8")
    split = split_dataset(load_dataset("digits"), config.n_learners, seed=config.seed,
                          global_test_fraction=config.global_test_fraction,
                          vote_fraction=config.vote_fraction, test_fraction=config.test_fraction)
    parts = []
    for index, data in enumerate(split.learners):
        sets = []
        for purpose, (x, y) in enumerate(((data.x_train, data.y_train),
                                          (data.x_vote, data.y_vote),
                                          (data.x_test, data.y_test))):
            rng = np.random.default_rng([config.seed, 200, index, purpose])
            sets += [_augment(x, config, rng), np.tile(y, config.copies)]
        parts.append(tuple(sets))
    return tuple(parts)


def make_learner(config: BenchConfig, index: int) -> PytorchLearner:
    """Learner ``index``: votes on its vote set's mean cross-entropy; tests on accuracy."""
    x_train, y_train, x_vote, y_vote, x_test, y_test = bench_data(config)[index]
    model = make_model(config)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate,
                                momentum=config.momentum, weight_decay=config.weight_decay)
    return PytorchLearner(
        model=model,
        optimizer=optimizer,
        train_loader=make_loader(x_train, y_train, config.batch_size, shuffle=True,
                                 seed=derived_seed(config.seed, 101, index)),
        vote_loader=make_loader(x_vote, y_vote, config.eval_batch_size),
        test_loader=make_loader(x_test, y_test, config.eval_batch_size) if len(y_test) else None,
        need_reset_optimizer=False,  # SGD momentum carries across rounds
        criterion=nn.CrossEntropyLoss(),
        minimise_criterion=True,
        num_train_batches=config.batches_per_round,
        test_criterion=categorical_accuracy,
        num_threads=config.torch_threads,
    )


def make_bench_learners(n_learners: int = 5, seed: int = 0,
                        preset: str = "full") -> list[PytorchLearner]:
    """All ``n_learners`` learners, for the in-memory driver."""
    config = bench_config(preset, n_learners, seed)
    return [make_learner(config, i) for i in range(n_learners)]


def bench_learner(index: int, n_learners: int = 5, seed: int = 0, preset: str = "full",
                  start_barrier: str | None = None,
                  barrier_timeout: float = 600.0) -> PytorchLearner:
    """Learner ``index`` of ``n_learners`` (the same one :func:`make_bench_learners`
    builds), for ``colearn agent --learner colearn_core.tasks.bench:bench_learner``.

    ``start_barrier`` (benchmarks): a directory. Once the learner is built, the factory
    creates ``ready-<index>`` there and returns only when ``go`` appears, so a benchmark
    can start all agents at once, after their start-up (imports, data, model). At ``go``
    it also notes the process's RSS (its baseline) and restarts its peak, and at exit
    writes both to ``rss-<index>.json`` there (:func:`record_rss`)."""
    if not 0 <= index < n_learners:
        raise ValueError(f"learner index {index} is outside 0..{n_learners - 1}")
    learner = make_learner(bench_config(preset, n_learners, seed), index)
    if start_barrier is not None:
        wait_at_barrier(Path(start_barrier), index, barrier_timeout)
        record_rss(Path(start_barrier) / f"rss-{index}.json")
    return learner


def record_rss(path: Path) -> None:
    """Restarts this process's RSS peak now and, when the process exits, writes
    ``{"baseline_bytes": RSS now, "peak_bytes": peak since}`` to ``path`` (nothing where
    ``/proc/self`` cannot tell)."""
    from colearn_core.utils.rss import RssUnavailable, memory, reset_peak

    try:
        reset_peak()
        baseline, _ = memory()
    except RssUnavailable:
        return

    def write() -> None:
        path.write_text(json.dumps({"baseline_bytes": baseline, "peak_bytes": memory()[1]}))

    atexit.register(write)


def wait_at_barrier(directory: Path, index: int, timeout: float) -> None:
    (directory / f"ready-{index}").touch()
    deadline = time.monotonic() + timeout
    while not (directory / "go").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no 'go' in {directory} within {timeout:g} s")
        time.sleep(0.005)

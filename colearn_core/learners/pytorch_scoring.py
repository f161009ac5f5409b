"""Scoring a PyTorch model on a loader, as the PyTorch learner and the tasks' global
evaluations do (:class:`colearn_core.learners.pytorch.PytorchLearner`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from colearn_core.learners.pytorch_weights import WeightsLike, checked_arrays, load_into

#: A score of a whole data set, colearn's convention: ``score_fn(outputs, labels) -> float``
#: on tensors (``outputs`` are the model's raw outputs, e.g. logits, on the learner's
#: device), e.g. :func:`colearn_core.pytorch.utils.categorical_accuracy`.
ScoreFn = Callable[[torch.Tensor, torch.Tensor], float]


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Runs the block with torch's intra-op thread count set to ``num_threads`` (``None``:
    unchanged), restoring it afterwards. Results can differ in the last bits between
    thread counts, so a fixed count makes a learner reproducible across processes; one
    thread is also the fastest for small models on a busy machine."""
    if num_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def batches(loader: Iterable, num_batches: int | None) -> Iterator:
    for index, batch in enumerate(loader):
        if num_batches is not None and index >= num_batches:
            return
        yield batch


def split_batch(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, Mapping) or not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError("a loader must yield (data, labels) pairs")
    return batch[0], batch[1]


def to_device(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, torch.Tensor) else value


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    loader: Iterable,
    score_fn: ScoreFn | None = None,
    *,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
    num_batches: int | None = None,
) -> float:
    """Scores ``model`` as it is on ``loader`` (at most ``num_batches`` batches), in eval
    mode: ``score_fn(outputs, labels)`` on the whole set (tensors) if given, else the
    mean of ``criterion`` over samples (``criterion`` must return a batch mean, as torch
    losses do by default)."""
    if score_fn is None and criterion is None:
        raise ValueError("give a score_fn or a criterion")
    device = torch.device(device)
    was_training = model.training
    model.eval()
    try:
        total, count = 0.0, 0
        labels_seen: list[torch.Tensor] = []
        outputs_seen: list[torch.Tensor] = []
        for batch in batches(loader, num_batches):
            data, labels = split_batch(batch)
            data, labels = to_device(data, device), to_device(labels, device)
            output = model(data)
            size = len(labels)
            if score_fn is not None:
                labels_seen.append(torch.as_tensor(labels))
                outputs_seen.append(output)
            else:
                assert criterion is not None
                total += float(criterion(output, labels).item()) * size
            count += size
        if count == 0:
            raise ValueError("the loader gave no samples to score")
        if score_fn is not None:
            return float(score_fn(torch.cat(outputs_seen), torch.cat(labels_seen)))
        return total / count
    finally:
        model.train(was_training)


def score_weights(model: nn.Module, weights: WeightsLike, loader: Iterable, score_fn: ScoreFn,
                  *, num_threads: int | None = None) -> float:
    """``score_fn``'s score on ``loader`` of raw weights (``{name: array}`` or ``Weights``)
    loaded into ``model``, a model of their architecture that keeps them."""
    load_into(model, checked_arrays(weights, model, require_finite=False))
    with torch_threads(num_threads):
        return evaluate_model(model, loader, score_fn)

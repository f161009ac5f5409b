"""The tensor arithmetic of :class:`~colearn_core.learners.pytorch.PytorchLearner`'s
options for skewed data: partial updates, the momentum of accepted changes and the class
prior of logit adjustment."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping

import torch


def partial_update(current: Mapping[str, torch.Tensor], trained: Mapping[str, torch.Tensor],
                   fraction: float) -> OrderedDict[str, torch.Tensor]:
    """``current + fraction * (trained - current)`` for floating-point tensors; others
    (e.g. BatchNorm's step counter) as trained."""
    return OrderedDict(
        (name, current[name] + fraction * (tensor - current[name])
         if tensor.is_floating_point() else tensor)
        for name, tensor in trained.items())


def weight_change(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor]
                  ) -> OrderedDict[str, torch.Tensor]:
    """``after - before`` for the floating-point tensors (detached copies)."""
    return OrderedDict((name, (tensor - before[name]).detach().clone())
                       for name, tensor in after.items() if tensor.is_floating_point())


def add_scaled(weights: Mapping[str, torch.Tensor], change: Mapping[str, torch.Tensor],
               scale: float) -> OrderedDict[str, torch.Tensor]:
    """``weights + scale * change`` where ``change`` has the tensor; others as they are."""
    return OrderedDict((name, tensor + scale * change[name] if name in change else tensor)
                       for name, tensor in weights.items())


def label_log_prior(loader: Iterable, n_classes: int) -> torch.Tensor:
    """The log of each class's share of ``loader``'s labels, read from its dataset
    (``DataLoader`` over a map-style dataset: the loader's shuffling is not consumed); a
    class absent from it counts :data:`ABSENT_CLASS_COUNT`."""
    dataset = getattr(loader, "dataset", None)
    if dataset is None or not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError("logit_adjustment needs a DataLoader over a map-style dataset")
    tensors = getattr(dataset, "tensors", None)
    labels = (tensors[1] if tensors is not None and len(tensors) == 2
              else torch.as_tensor([int(dataset[i][1]) for i in range(len(dataset))]))
    labels = labels.to(torch.int64).reshape(-1)
    if len(labels) == 0 or int(labels.min()) < 0 or int(labels.max()) >= n_classes:
        raise ValueError(f"logit_adjustment: train labels must be within 0..{n_classes - 1}")
    counts = torch.bincount(labels, minlength=n_classes).to(torch.float64)
    counts[counts == 0] = ABSENT_CLASS_COUNT
    return torch.log(counts / counts.sum()).to(torch.float32)


#: The count a class absent from a learner's train set gets in :func:`label_log_prior`:
#: its logit is pushed down by about log(n_samples / 0.001), so training on that set
#: leaves the class's output nearly alone (instead of teaching "this class never occurs").
ABSENT_CLASS_COUNT = 1e-3

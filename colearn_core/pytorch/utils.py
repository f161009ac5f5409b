"""Scores and a split helper with colearn_pytorch.utils' names and signatures.

A score takes the model's outputs and the labels of a whole data set as tensors,
``score(outputs, labels) -> float``: the form ``PytorchLearner``'s ``vote_criterion``
(and ``test_criterion``) takes.
"""

from __future__ import annotations

from collections.abc import Sized

import torch


def categorical_accuracy(outputs: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of samples whose largest output (``outputs`` of shape ``(n, classes)``)
    is at the label's index."""
    return float((outputs.argmax(dim=1) == labels).sum().item()) / labels.shape[0]


def binary_accuracy_from_logits(outputs: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of samples whose logit falls on the label's side of 0 (probability 0.5):
    ``outputs`` and ``labels`` of the same shape, labels 0 or 1."""
    predicted = (torch.sigmoid(outputs) > 0.5).to(labels.dtype)
    return float((predicted == labels).sum().item()) / labels.shape[0]


def auc_from_logits(outputs: torch.Tensor, labels: torch.Tensor) -> float:
    """ROC AUC of one logit per sample against 0/1 labels (scikit-learn's
    ``roc_auc_score``: with labels of one class only it warns and gives NaN, a score
    that never wins a vote)."""
    from sklearn.metrics import roc_auc_score

    scores = torch.sigmoid(outputs).detach().cpu().numpy()
    return float(roc_auc_score(labels.detach().cpu().numpy().astype(int), scores))


def prepare_data_split_list(data: Sized, n: int) -> list[int]:
    """Sizes of ``n`` parts covering all of ``data`` (for ``torch.utils.data.random_split``):
    ``len(data) // n`` each, the remainder added to the last part."""
    size = len(data) // n
    return [size] * (n - 1) + [len(data) - size * (n - 1)]

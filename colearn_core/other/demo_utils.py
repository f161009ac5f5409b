"""colearn's demo helpers (``colearn_other.demo_utils``): which module splits a data set
into per-learner folders, and the name of a model's score, by colearn's dataloader and
model names."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# colearn's dataloader name -> the module (by the import rule: colearn_X -> colearn_core.X)
# that defines its ``split_to_folders``; imported only when asked for.
_SPLITTERS = {
    "PYTORCH_XRAY": "colearn_core.pytorch.pytorch_xray",
    "KERAS_MNIST": "colearn_core.keras.keras_mnist",
    "KERAS_CIFAR10": "colearn_core.keras.keras_cifar10",
    "PYTORCH_COVID_XRAY": "colearn_core.pytorch.pytorch_covid_xray",
    "FRAUD": "colearn_core.other.fraud_dataset",
}

_SCORE_NAMES = {
    "PYTORCH_XRAY": "auc",
    "KERAS_MNIST": "categorical_accuracy",
    "KERAS_MNIST_RESNET": "categorical_accuracy",
    "KERAS_CIFAR10": "categorical_accuracy",
    "PYTORCH_COVID_XRAY": "categorical_accuracy",
    "FRAUD": "accuracy",
}


def get_split_to_folders(dataloader_name: str) -> Callable[..., Any]:
    """The ``split_to_folders`` of the module behind ``dataloader_name``;
    :class:`NotImplementedError` for a name colearn had none for, :class:`ImportError`
    when that module is not here."""
    if dataloader_name not in _SPLITTERS:
        raise NotImplementedError(f"Split not defined for dataloader {dataloader_name}")
    split: Callable[..., Any] = importlib.import_module(
        _SPLITTERS[dataloader_name]).split_to_folders
    return split


def get_score_name(model_name: str) -> str:
    """The name of ``model_name``'s score (``"loss"`` for a model colearn did not name)."""
    return _SCORE_NAMES.get(model_name, "loss")

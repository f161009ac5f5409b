"""The interface of an MLI factory: what learners it can build, and a learner built from
a model name and a dataloader name with their parameters as JSON strings."""

from __future__ import annotations

import abc
from typing import Any

from colearn_core.ml_interface import MachineLearningInterface


class MliFactory(abc.ABC):
    """Builds :class:`MachineLearningInterface` learners by name (colearn's gRPC server
    served one; here ``colearn agent --mli-factory`` does)."""

    @abc.abstractmethod
    def get_models(self) -> dict[str, dict[str, Any]]:
        """Model name -> its default parameters."""

    @abc.abstractmethod
    def get_dataloaders(self) -> dict[str, dict[str, Any]]:
        """Dataloader name -> its default parameters."""

    @abc.abstractmethod
    def get_compatibilities(self) -> dict[str, set[str]]:
        """Model name -> the dataloaders it can be built with by :meth:`get_mli`."""

    @abc.abstractmethod
    def get_mli(self, model_name: str, model_params: str, dataloader_name: str,
                dataset_params: str) -> MachineLearningInterface:
        """A learner whose model is ``model_name`` (one of :meth:`get_models`) over the
        data ``dataloader_name`` loads (one of :meth:`get_dataloaders`, compatible with
        the model). ``model_params`` and ``dataset_params`` are JSON objects, as strings,
        overriding the defaults."""

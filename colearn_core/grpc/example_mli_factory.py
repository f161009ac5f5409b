"""An MLI factory over :class:`~colearn_core.grpc.factory_registry.FactoryRegistry`: what
was registered when it was made, built with the defaults that JSON parameters override."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

from colearn_core.grpc.factory_registry import FactoryRegistry
from colearn_core.grpc.mli_factory_interface import MliFactory
from colearn_core.ml_interface import MachineLearningInterface

_log = logging.getLogger(__name__)


class ExampleMliFactory(MliFactory):
    """The registry's dataloaders and model architectures (as registered when the factory
    was made)."""

    def __init__(self) -> None:
        self.models = {name: definition.default_parameters
                       for name, definition in FactoryRegistry.model_architectures.items()}
        self.dataloaders = {name: definition.default_parameters
                            for name, definition in FactoryRegistry.dataloaders.items()}
        self.compatibilities = {name: definition.compatibilities
                                for name, definition in FactoryRegistry.model_architectures.items()}

    def get_models(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self.models)

    def get_dataloaders(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self.dataloaders)

    def get_compatibilities(self) -> dict[str, set[str]]:
        # colearn's registry keeps each model's dataloaders as the list it was given.
        return self.compatibilities  # type: ignore[return-value]

    def get_mli(self, model_name: str, model_params: str, dataloader_name: str,
                dataset_params: str) -> MachineLearningInterface:
        """The dataloader called with its defaults updated by ``dataset_params`` (its
        ``location`` too), then the model with its defaults updated by ``model_params``
        and ``data_loaders``; keys neither has are dropped with a warning. Unknown or
        incompatible names, and parameters that are not JSON objects, raise
        :class:`ValueError`."""
        _log.info("get_mli: model %s %s, dataloader %s %s", model_name, model_params,
                  dataloader_name, dataset_params)
        if model_name not in self.models:
            raise ValueError(f"Model {model_name} is not a valid model. Available models "
                             f"are: {sorted(self.models)}")
        if dataloader_name not in self.dataloaders:
            raise ValueError(f"Dataloader {dataloader_name} is not a valid dataloader. "
                             f"Available dataloaders are: {sorted(self.dataloaders)}")
        if dataloader_name not in self.compatibilities[model_name]:
            raise ValueError(f"Dataloader {dataloader_name} is not compatible with "
                             f"{model_name}. Compatible dataloaders are: "
                             f"{list(self.compatibilities[model_name])}")
        dataloader_config = _merged(self.dataloaders[dataloader_name], dataset_params,
                                    f"dataloader {dataloader_name}", extra={"location"})
        data_loaders = FactoryRegistry.dataloaders[dataloader_name].callable(
            **dataloader_config)
        model_config = _merged(self.models[model_name], model_params, f"model {model_name}")
        return FactoryRegistry.model_architectures[model_name].callable(
            data_loaders=data_loaders, **model_config)


def _merged(defaults: dict[str, Any], params: str, what: str,
            extra: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """``defaults`` updated by the JSON object ``params`` where a key is known."""
    try:
        given = json.loads(params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the parameters of {what} are not JSON: {exc}") from None
    if not isinstance(given, dict):
        raise ValueError(  # noqa: TRY004 - bad input, like the JSON error above
            f"the parameters of {what} are a JSON {type(given).__name__}, not an object")
    config = copy.deepcopy(defaults)
    for key, value in given.items():
        if key in config or key in extra:
            config[key] = value
        else:
            _log.warning("Key %s was included in the parameters of %s, which does not "
                         "accept it.", key, what)
    return config

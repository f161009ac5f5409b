"""A registry of dataloaders and model architectures, filled by decorators where they are
defined (importing a module registers what it defines), read by
:class:`~colearn_core.grpc.example_mli_factory.ExampleMliFactory`.

A dataloader takes a ``location`` parameter and returns the data loaders; a model
architecture takes ``data_loaders`` (of the type its compatible dataloaders return) and
returns a learner. The parameters with defaults are what a factory reports and what
JSON parameters may override.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

_log = logging.getLogger(__name__)


class RegistryException(Exception):
    """A dataloader or model architecture that cannot be registered."""


def _signature(to_call: Callable[..., Any]) -> inspect.Signature:
    try:  # string annotations (``from __future__ import annotations``) compared as types
        return inspect.signature(to_call, eval_str=True)
    except Exception:  # noqa: BLE001 - an annotation that does not evaluate: compare as written
        return inspect.signature(to_call)


def _get_defaults(to_call: Callable[..., Any]) -> dict[str, Any]:
    """The parameters of ``to_call`` that have defaults, with them."""
    return {name: parameter.default
            for name, parameter in inspect.signature(to_call).parameters.items()
            if parameter.default is not parameter.empty}


def check_dataloader_callable(to_call: Callable[..., Any]) -> None:
    if "location" not in inspect.signature(to_call).parameters:
        raise RegistryException("dataloader must accept a 'location' parameter")


class FactoryRegistry:
    """Dataloaders and model architectures by name (class-level: one registry a
    process)."""

    class DataloaderDef(NamedTuple):
        callable: Callable[..., Any]
        default_parameters: dict[str, Any]

    class ModelArchitectureDef(NamedTuple):
        callable: Callable[..., Any]
        default_parameters: dict[str, Any]
        compatibilities: list[str]

    dataloaders: ClassVar[dict[str, DataloaderDef]] = {}
    model_architectures: ClassVar[dict[str, ModelArchitectureDef]] = {}

    @classmethod
    def register_dataloader(cls, name: str) -> Callable[[Callable[..., Any]],
                                                         Callable[..., Any]]:
        """A decorator registering a dataloader as ``name`` (replacing one of that name,
        with a warning)."""
        def wrap(dataloader: Callable[..., Any]) -> Callable[..., Any]:
            check_dataloader_callable(dataloader)
            if name in cls.dataloaders:
                _log.warning("%s already registered; replacing it with %s", name,
                             getattr(dataloader, "__name__", dataloader))
            cls.dataloaders[name] = cls.DataloaderDef(
                callable=dataloader, default_parameters=_get_defaults(dataloader))
            return dataloader

        return wrap

    @classmethod
    def register_model_architecture(cls, name: str, compatibilities: list[str]
                                    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """A decorator registering a model architecture as ``name``, usable with the
        dataloaders ``compatibilities`` (registered before it)."""
        def wrap(model_arch_creator: Callable[..., Any]) -> Callable[..., Any]:
            cls.check_model_callable(model_arch_creator, compatibilities)
            if name in cls.model_architectures:
                _log.warning("%s already registered; replacing it with %s", name,
                             getattr(model_arch_creator, "__name__", model_arch_creator))
            cls.model_architectures[name] = cls.ModelArchitectureDef(
                callable=model_arch_creator,
                default_parameters=_get_defaults(model_arch_creator),
                compatibilities=compatibilities)
            return model_arch_creator

        return wrap

    @classmethod
    def check_model_callable(cls, to_call: Callable[..., Any],
                             compatibilities: list[str]) -> None:
        """:class:`RegistryException` unless ``to_call`` takes ``data_loaders`` of the
        type every dataloader in ``compatibilities`` (each registered) returns."""
        parameters = _signature(to_call).parameters
        if "data_loaders" not in parameters:
            raise RegistryException("model must accept a 'data_loaders' parameter")
        wanted = parameters["data_loaders"].annotation
        for dataloader in compatibilities:
            if dataloader not in cls.dataloaders:
                raise RegistryException(
                    f"Compatible dataloader {dataloader} is not registered. The dataloader "
                    "needs to be registered before the model that references it.")
            returned = _signature(cls.dataloaders[dataloader].callable).return_annotation
            if returned != wanted:
                raise RegistryException(
                    f"Compatible dataloader {dataloader} has return type {returned} but "
                    f"model data_loaders expects type {wanted}")

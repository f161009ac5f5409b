"""A colearn MLI factory as a stakeholder's learner: ``module:Name`` naming an
:class:`~colearn_core.grpc.mli_factory_interface.MliFactory` class (made with no
arguments) or instance, a model and a dataloader it offers, and their parameters as JSON
strings, handed to ``get_mli`` exactly as given (as colearn's gRPC server did).

Every name and parameter is checked against what the factory offers before ``get_mli``
runs, so a typo is a one-line :class:`SpecError` listing the choices.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents.experiment.spec import (
    FACTORY_TARGET_PATTERN,
    MAX_ARG_NESTING,
    SpecError,
    _nesting,
    built_learner,
    describe_exception,
    import_target,
)
from colearn_core.ml_interface import MachineLearningInterface

_METHODS = ("get_models", "get_dataloaders", "get_compatibilities", "get_mli")


class MliFactorySpec(BaseModel):
    """Which learner to ask ``target``'s factory for. ``dataloader`` ``None``: the
    model's first compatible dataloader (as colearn's ``run_demo.py`` chose)."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(pattern=FACTORY_TARGET_PATTERN)
    model: str | None = None
    model_params: str = "{}"
    dataloader: str | None = None
    dataset_params: str = "{}"

    def factory(self) -> Any:
        """The factory: the instance ``target`` names, or an instance of the class it
        names; :class:`SpecError` if it cannot be had or lacks a method of the interface."""
        found = import_target(self.target, "MLI factory")
        if isinstance(found, type):
            try:
                found = found()
            except Exception as exc:  # noqa: BLE001 - the user's constructor
                raise SpecError(f"MLI factory {self.target}() failed: "
                                f"{describe_exception(exc)}") from None
        missing = [m for m in _METHODS if not callable(getattr(found, m, None))]
        if missing:
            raise SpecError(f"{self.target} is a {type(found).__name__}, not an MLI factory "
                            f"(it has no {', '.join(missing)})")
        return found

    def offer(self, factory: Any | None = None) -> dict[str, Any]:
        """What the factory offers: models and dataloaders with their default parameters,
        and each model's compatible dataloaders."""
        factory = factory if factory is not None else self.factory()
        offered = {}
        for what, method in (("models", "get_models"), ("dataloaders", "get_dataloaders"),
                             ("compatibilities", "get_compatibilities")):
            try:
                offered[what] = dict(getattr(factory, method)())
            except Exception as exc:  # noqa: BLE001 - the user's code
                raise SpecError(f"MLI factory {self.target}: {method}() failed: "
                                f"{describe_exception(exc)}") from None
        return offered

    def check(self) -> tuple[Any, str, str]:
        """The factory, the model and the dataloader, once the names are among what the
        factory offers and the parameters are JSON objects; else :class:`SpecError`."""
        factory = self.factory()
        model, dataloader = self._names(self.offer(factory))
        for what, params in (("--model-params", self.model_params),
                             ("--dataset-params", self.dataset_params)):
            _check_json_object(what, params)
        return factory, model, dataloader

    def build(self) -> MachineLearningInterface:
        """The learner ``get_mli`` returns for these names and parameters."""
        factory, model, dataloader = self.check()
        return built_learner(
            f"MLI factory {self.target}: get_mli({model!r}, ..., {dataloader!r}, ...)",
            lambda: factory.get_mli(model, self.model_params, dataloader, self.dataset_params))

    def _names(self, offered: dict[str, Any]) -> tuple[str, str]:
        models, dataloaders = offered["models"], offered["dataloaders"]
        if self.model is None:
            raise SpecError(f"--mli-factory needs --model: one of {_listed(models)}")
        if self.model not in models:
            raise SpecError(f"MLI factory {self.target} has no model {self.model!r}: one of "
                            f"{_listed(models)}")
        compatible = list(offered["compatibilities"].get(self.model) or [])
        dataloader = self.dataloader
        if dataloader is None:
            if not compatible:
                raise SpecError(f"model {self.model!r} has no compatible dataloader")
            dataloader = compatible[0]
        if dataloader not in dataloaders:
            raise SpecError(f"MLI factory {self.target} has no dataloader {dataloader!r}: "
                            f"one of {_listed(dataloaders)}")
        if dataloader not in compatible:
            raise SpecError(f"dataloader {dataloader!r} is not compatible with model "
                            f"{self.model!r}: use one of {_listed(compatible)}")
        return self.model, dataloader


def _check_json_object(what: str, text: str) -> None:
    if _nesting(text) > MAX_ARG_NESTING:  # json's C parser could overflow the stack
        raise SpecError(f"{what} is not valid JSON (it nests deeper than {MAX_ARG_NESTING} "
                        "brackets)")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SpecError(f"{what} is not valid JSON ({describe_exception(exc)})") from None
    if not isinstance(value, dict):
        raise SpecError(f"{what} must be a JSON object, not a JSON {type(value).__name__}")


def _listed(names: Any) -> str:
    shown = [str(n) for n in names]
    return ", ".join(shown) if shown else "(none)"

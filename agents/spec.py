"""Experiment specs (TOML) and learner factories (``module:function``)."""

from __future__ import annotations

import importlib
import json
import tomllib
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from colearn_core.ml_interface import MachineLearningInterface


class LearnerFactory(BaseModel):
    """A stakeholder's own code: ``module:function`` returning an MLI learner over its
    private data, called with ``args`` as keyword arguments."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(pattern=r"^[\w.]+:\w+$")
    args: dict[str, Any] = {}

    def build(self) -> MachineLearningInterface:
        module_name, _, name = self.target.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot load learner factory {self.target}: {exc}") from None
        learner = factory(**self.args)
        if not isinstance(learner, MachineLearningInterface):
            raise ValueError(f"{self.target} returned a {type(learner).__name__}, "
                             "not a MachineLearningInterface")
        return learner


def parse_factory_args(pairs: list[str]) -> dict[str, Any]:
    """``["index=2", "name=a"]`` -> ``{"index": 2, "name": "a"}`` (values parsed as JSON
    when they are JSON, else kept as strings)."""
    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"learner argument {pair!r} is not KEY=VALUE")
        try:
            args[key] = json.loads(value)
        except ValueError:
            args[key] = value
    return args


class InitialModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: Path | None = None  # a safetensors file made by colearn_core.codec
    factory: LearnerFactory | None = None  # or a learner whose current weights start

    @model_validator(mode="after")
    def _one_source(self) -> InitialModel:
        if (self.weights is None) == (self.factory is None):
            raise ValueError("give exactly one of initial.weights or initial.factory")
        return self


class ExperimentSpec(BaseModel):
    """What ``colearn experiment create`` reads from a TOML file."""

    model_config = ConfigDict(extra="forbid")

    learners: list[str] = Field(min_length=2)
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    rounds: int = Field(ge=1)
    proposal_timeout: int = Field(600, ge=1)
    voting_timeout: int = Field(600, ge=1)
    initial: InitialModel
    metadata: dict[str, Any] = {}

    @field_validator("learners")
    @classmethod
    def _addresses(cls, learners: list[str]) -> list[str]:
        for address in learners:
            if not is_address(address):
                raise ValueError(f"{address!r} is not an Ethereum address")
        return [to_checksum_address(a) for a in learners]

    @classmethod
    def load(cls, path: Path) -> ExperimentSpec:
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ValueError(f"cannot read spec {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"spec {path} is not valid TOML: {exc}") from None
        spec = cls.model_validate(data)
        if spec.initial.weights is not None and not spec.initial.weights.is_absolute():
            spec.initial.weights = path.parent / spec.initial.weights
        return spec

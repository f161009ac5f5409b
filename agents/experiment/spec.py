"""Experiment specs (TOML) and learner factories (``module:function``)."""

from __future__ import annotations

import importlib
import inspect
import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agents.chain.types import (
    DEFAULT_JOIN_TIMEOUT,
    MAX_TIMEOUT,
    ZERO_ADDRESS,
    ExperimentOptions,
)
from colearn_core.codec import encode_weights
from colearn_core.ml_interface import MachineLearningInterface

# ``module.path:function``, what ``--learner`` and a spec's ``initial.factory`` name.
FACTORY_TARGET_PATTERN = r"^[\w.]+:\w+$"
# A learner argument's JSON value may nest this deep at most.
MAX_ARG_NESTING = 100


class SpecError(ValueError):
    """An experiment spec, learner factory or factory argument that cannot be used."""


def describe_exception(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line (whitespace collapsed, cut at ``limit`` characters)."""
    message = " ".join(str(exc).split())
    if len(message) > limit:
        message = message[:limit - 1] + "…"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def import_target(target: str, what: str) -> Any:
    """What ``module:name`` names, ``what`` (e.g. "learner factory") for the
    :class:`SpecError` that says which of the two cannot be had."""
    module_name, _, name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - the user's module: whatever it raises
        raise SpecError(f"cannot import the {what}'s module {module_name!r}: "
                        f"{describe_exception(exc)}") from None
    try:
        return getattr(module, name)
    except Exception:  # noqa: BLE001 - AttributeError, or a module __getattr__'s error
        raise SpecError(f"{what} {target}: module {module_name!r} has no attribute "
                        f"{name!r}") from None


class LearnerFactory(BaseModel):
    """A stakeholder's own code: ``module:function`` returning an MLI learner over its
    private data, called with ``args`` as keyword arguments."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(pattern=FACTORY_TARGET_PATTERN)
    args: dict[str, Any] = {}

    def resolve(self) -> Callable[..., Any]:
        """The factory, imported and checked against ``args`` without calling it; raises
        :class:`SpecError` naming what is wrong (the module, the name, an argument)."""
        factory = import_target(self.target, "learner factory")
        if not callable(factory):
            raise SpecError(f"learner factory {self.target} is a {type(factory).__name__}, "
                            "not a function")
        _check_arguments(self.target, factory, self.args)
        return factory

    def build(self) -> MachineLearningInterface:
        factory = self.resolve()
        return built_learner(f"learner factory {self.target}", lambda: factory(**self.args))


def built_learner(call: str, build: Callable[[], Any]) -> MachineLearningInterface:
    """What ``build()``, a stakeholder's code (``call`` names it in errors), returns, once
    it is an MLI learner; :class:`SpecError` if it raises or returns something else."""
    try:
        learner = build()
    except Exception as exc:  # noqa: BLE001 - the user's code: whatever it raises
        raise SpecError(f"{call} failed: {describe_exception(exc)}") from None
    if not isinstance(learner, MachineLearningInterface):
        raise SpecError(f"{call} returned a {type(learner).__name__}, "
                        "not a MachineLearningInterface")
    return learner


def _check_arguments(target: str, factory: Callable[..., Any], args: dict[str, Any]) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # no signature to read (some builtins): the call itself will tell
    parameters = signature.parameters.values()
    accepted = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters)
    accepts = f"it accepts {', '.join(accepted)}" if accepted else "it accepts no arguments"
    unknown = [key for key in args if key not in accepted]
    if unknown and not takes_any:
        raise SpecError(f"learner factory {target} has no argument {', '.join(unknown)}; "
                        f"{accepts}")
    required = [p.name for p in parameters
                if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    try:
        signature.bind(**args)
    except TypeError as exc:  # a required argument missing, or a positional-only one named
        requires = f" and requires {', '.join(required)}" if required else ""
        raise SpecError(f"learner factory {target}: {exc}; {accepts}{requires}") from None


def parse_factory_arg(pair: str) -> tuple[str, Any]:
    """``"index=2"`` -> ``("index", 2)``: the value parsed as JSON when it is JSON, else
    kept as a string; a value that starts like a JSON string, list or object must be one."""
    key, sep, value = pair.partition("=")
    if not sep:
        raise SpecError(f"learner argument {pair!r} is not KEY=VALUE (no '=')")
    if not key.isidentifier():
        raise SpecError(f"learner argument {pair!r}: the key {key!r} is not a Python name"
                        if key else f"learner argument {pair!r} has an empty key")
    if _nesting(value) > MAX_ARG_NESTING:  # json's C parser could overflow the stack
        raise SpecError(f"learner argument {key}: the value nests deeper than "
                        f"{MAX_ARG_NESTING} brackets")
    try:
        return key, json.loads(value)
    except ValueError as exc:
        if value.lstrip().startswith(("[", "{", '"')):
            raise SpecError(f"learner argument {key}: the value is not valid JSON "
                            f"({describe_exception(exc)})") from None
        return key, value



def _nesting(text: str) -> int:
    """The deepest bracket nesting in ``text`` (brackets in JSON strings count too: it only
    bounds what ``json`` may recurse into)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(depth - 1, 0)
    return deepest


class InitialModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: Path | None = None  # a safetensors file made by colearn_core.codec
    factory: LearnerFactory | None = None  # or a learner whose current weights start

    @model_validator(mode="after")
    def _one_source(self) -> InitialModel:
        if (self.weights is None) == (self.factory is None):
            raise ValueError("give exactly one of initial.weights or initial.factory")
        return self


class SpecOptions(ExperimentOptions):
    """A spec's ``[options]`` table: :class:`ExperimentOptions`, strictly checked (the token
    an address, left out for ETH; amounts integers in wei; no unknown keys; penalties and
    shares only with a stake or a reward pool); ``colearn experiment create --help``
    documents it: :data:`agents.cli.experiment.OPTIONS_HELP`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("token")
    @classmethod
    def _token(cls, token: str) -> str:
        if not is_address(token):
            raise ValueError(f"{token!r} is not an ERC-20 address (leave token out for ETH)")
        if int(token, 16) == 0:
            raise ValueError("the zero address is not a token (leave token out for ETH)")
        return to_checksum_address(token)

    @model_validator(mode="after")
    def _stake_terms(self) -> SpecOptions:
        if not self.staked:
            needs = ["token"] if self.token != ZERO_ADDRESS else []
            needs += [f for f in ("missed_proposal_penalty", "unrevealed_vote_penalty",
                                  "rejected_proposal_penalty", "rejection_share_bps",
                                  "proposer_share_bps") if getattr(self, f)]
            if needs:
                raise ValueError(f"{', '.join(needs)} need a stake or a reward pool")
        return self

    def terms(self) -> ExperimentOptions:
        return ExperimentOptions(**self.model_dump())


class ExperimentTerms(BaseModel):
    """What an experiment fixes for its whole life, but its initial model."""

    model_config = ConfigDict(extra="forbid")

    learners: list[str] = Field(min_length=2)  # their order is the proposer schedule
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    rounds: int = Field(ge=1)
    proposal_timeout: int = Field(600, ge=1, le=MAX_TIMEOUT)
    voting_timeout: int = Field(600, ge=1, le=MAX_TIMEOUT)
    # Seconds from creation for every learner to join (round 0 starts with the last join;
    # after this, with a learner missing, anyone may cancel). Generous: agents that start
    # slowly delay the start, they do not lose it.
    join_timeout: int = Field(DEFAULT_JOIN_TIMEOUT, ge=1, le=MAX_TIMEOUT)
    metadata: dict[str, Any] = {}  # stored as canonical JSON; its CID goes on chain
    # Sealed votes and stake (PROTOCOL v2): all zero, public votes without stake.
    options: ExperimentOptions = ExperimentOptions()

    @field_validator("learners")
    @classmethod
    def _addresses(cls, learners: list[str]) -> list[str]:
        for address in learners:
            if not is_address(address):
                raise ValueError(f"{address!r} is not an Ethereum address")
        return [to_checksum_address(a) for a in learners]


class ExperimentSpec(ExperimentTerms):
    """What ``colearn experiment create`` reads from a TOML file: the terms, and where the
    initial model comes from; its ``[options]`` table is read strictly (:class:`SpecOptions`)."""

    initial: InitialModel

    @field_validator("options", mode="before")
    @classmethod
    def _options(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return SpecOptions.model_validate(value).terms()
        return value

    def initial_weights(self) -> bytes | Any:
        """The initial model: the bytes of ``initial.weights``, or the current weights of
        the learner ``initial.factory`` builds."""
        if self.initial.weights is not None:
            try:
                return self.initial.weights.read_bytes()
            except OSError as exc:
                raise SpecError(f"cannot read the initial weights {self.initial.weights}: "
                                f"{exc.strerror}") from None
        assert self.initial.factory is not None
        try:
            learner = self.initial.factory.build()
        except SpecError as exc:
            raise SpecError(f"spec [initial.factory]: {exc} (give them as args = "
                            "{ name = value, ... }; `colearn experiment init` writes an "
                            "example)") from None
        return encode_weights(learner.mli_get_current_weights().weights)

    @classmethod
    def load(cls, path: Path) -> ExperimentSpec:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SpecError(f"cannot read spec {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SpecError(f"spec {path} is not valid TOML: not UTF-8 text") from None
        except (tomllib.TOMLDecodeError, RecursionError) as exc:
            raise SpecError(f"spec {path} is not valid TOML: {describe_exception(exc)}") from None
        spec = cls.model_validate(data)
        if spec.initial.weights is not None and not spec.initial.weights.is_absolute():
            spec.initial.weights = path.parent / spec.initial.weights
        return spec

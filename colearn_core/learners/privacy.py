"""Differential privacy for :class:`~colearn_core.learners.pytorch.PytorchLearner`: DP-SGD
with opacus (imported only when a learner asks for privacy) and the budget's accounting.

opacus clips each sample's gradient to ``max_grad_norm``, adds Gaussian noise of
``noise_multiplier`` times it, samples the train set by Poisson sampling and tracks the
privacy spent with its RDP accountant. The learner keeps and exchanges the original
module; opacus' wrapper is used only to train, so DP and non-DP learners exchange the
same weight names.
"""

from __future__ import annotations

import functools
import secrets
import warnings
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from colearn_core.ml_interface import DiffPrivBudget, DiffPrivConfig


class DiffPrivError(ValueError):
    """Differential privacy cannot be set up for this learner (model, loader or config)."""


def _check_dp_config(config: DiffPrivConfig) -> None:
    if not config.target_epsilon > 0:
        raise DiffPrivError(f"target_epsilon must be positive, got {config.target_epsilon}")
    if not 0 < config.target_delta < 1:
        raise DiffPrivError(f"target_delta must be within (0, 1), got {config.target_delta}")
    if not config.max_grad_norm > 0:
        raise DiffPrivError(f"max_grad_norm must be positive, got {config.max_grad_norm}")
    if not config.noise_multiplier > 0:
        raise DiffPrivError(
            f"noise_multiplier must be positive (0 gives no privacy), got "
            f"{config.noise_multiplier}")


def _merged_history(
    history: Iterable[tuple[float, float, int]],
) -> tuple[tuple[float, float, int], ...]:
    # adjacent entries with the same mechanism add up (RDP is linear in the steps)
    merged: list[tuple[float, float, int]] = []
    for noise, rate, steps in history:
        if merged and merged[-1][:2] == (noise, rate):
            merged[-1] = (noise, rate, merged[-1][2] + steps)
        elif steps > 0:
            merged.append((float(noise), float(rate), int(steps)))
    return tuple(merged)


@functools.lru_cache(maxsize=256)
def _epsilon_of(history: tuple[tuple[float, float, int], ...], delta: float) -> float:
    # ~0.1 s each (RDP over opacus' 150 orders); a proposal's prediction and its
    # report after training are the same history, so the cache halves the cost
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = list(history)
    return float(accountant.get_epsilon(delta=delta))


def dp_epsilon_after(
    history: Iterable[tuple[float, float, int]],
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
) -> float:
    """The epsilon opacus' RDP accountant reports for ``history`` (its
    ``(noise_multiplier, sample_rate, steps)`` entries) followed by ``steps`` more
    DP-SGD steps, at ``delta``."""
    entries = list(history) + [(noise_multiplier, sample_rate, steps)]
    return _epsilon_of(_merged_history(entries), float(delta))


class PrivateTraining:
    """opacus' objects for one learner: the GradSampleModule (used only to train; the
    learner keeps and exchanges the original module, so weight names are unchanged), the
    DPOptimizer around the learner's optimizer, the Poisson-sampling loader and the RDP
    accountant. ``seed`` seeds the noise and the sampling (``None``: fresh OS entropy)."""

    def __init__(
        self,
        config: DiffPrivConfig,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        train_loader: Iterable,
        seed: int | None,
    ) -> None:
        _check_dp_config(config)
        try:
            from opacus import PrivacyEngine
            from opacus.data_loader import DPDataLoader
            from opacus.validators import ModuleValidator
        except ImportError as exc:  # pragma: no cover - opacus is a dependency of DP
            raise DiffPrivError("differential privacy for PyTorch needs opacus") from exc
        if not isinstance(train_loader, torch.utils.data.DataLoader):
            raise DiffPrivError(
                "differential privacy needs the train loader to be a torch DataLoader over a "
                f"map-style dataset (for Poisson sampling), not {type(train_loader).__name__}")
        errors = ModuleValidator.validate(model, strict=False)
        if errors:
            details = "; ".join(str(e) for e in errors)
            raise DiffPrivError(
                f"the model is not compatible with opacus DP-SGD ({details}); replace "
                "unsupported layers (e.g. BatchNorm by GroupNorm: "
                "opacus.validators.ModuleValidator.fix)")
        if seed is None:
            seed = secrets.randbits(63)
        noise_seed, sample_seed = np.random.SeedSequence(seed).generate_state(2, np.uint64)
        self.noise_generator = torch.Generator().manual_seed(int(noise_seed) >> 1)
        sample_generator = torch.Generator().manual_seed(int(sample_seed) >> 1)
        self.config = config
        with warnings.catch_warnings():
            # "Secure RNG turned off": on purpose, the seeded generators make runs
            # repeatable (the class docstring says what a known seed means)
            warnings.filterwarnings("ignore", message="Secure RNG turned off")
            self.engine = PrivacyEngine(accountant="rdp")
        # Poisson sampling as opacus does, but with our own generator (make_private would
        # take the original loader's, or torch's global one): the loader is built here
        # and make_private is told to leave it as it is.
        poisson_loader = DPDataLoader.from_data_loader(train_loader, generator=sample_generator)
        self.module, self.optimizer, self.train_loader = self.engine.make_private(
            module=model,
            optimizer=optimizer,
            data_loader=poisson_loader,
            noise_multiplier=config.noise_multiplier,
            max_grad_norm=config.max_grad_norm,
            poisson_sampling=False,
            noise_generator=self.noise_generator,
        )
        self.module.forbid_grad_accumulation()  # as make_private does with Poisson sampling
        self.sample_rate: float = poisson_loader.sample_rate

    @property
    def steps(self) -> int:
        return sum(entry[2] for entry in self.engine.accountant.history)

    def epsilon(self, extra_steps: int = 0) -> float:
        """The epsilon spent so far, or after ``extra_steps`` more steps."""
        return dp_epsilon_after(
            self.engine.accountant.history, self.config.noise_multiplier, self.sample_rate,
            extra_steps, self.config.target_delta)

    def budget(self, epsilon: float) -> DiffPrivBudget:
        return DiffPrivBudget(
            target_epsilon=self.config.target_epsilon,
            target_delta=self.config.target_delta,
            consumed_epsilon=epsilon,
            consumed_delta=self.config.target_delta if epsilon > 0 else 0.0,
        )


def discard_stale_per_sample_state(module: nn.Module) -> None:
    """Forgets what an opacus ``GradSampleModule`` captured in forward passes that had no
    backward pass (e.g. ``torchsummary.summary`` on the wrapped model in training mode,
    as colearn's DP example does before training): recent opacus versions add that stale
    state into the next per-sample gradients and fail. Any other module is left alone;
    opacus is not imported."""
    if not type(module).__module__.startswith("opacus.") or not hasattr(module, "_module"):
        return
    for submodule in module.modules():
        activations = getattr(submodule, "activations", None)
        if isinstance(activations, list):
            activations.clear()
    for parameter in module.parameters():
        if hasattr(parameter, "_forward_counter"):
            parameter._forward_counter = 0
        if hasattr(parameter, "_current_grad_sample"):
            del parameter._current_grad_sample

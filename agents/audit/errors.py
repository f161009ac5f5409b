"""The audit's errors, and what an experiment id may be."""

from __future__ import annotations

from agents.chain.errors import ChainError
from agents.chain.types import MAX_UINT256


class AuditError(ChainError):
    """The audit could not read what it needs from the chain (exit 1, one line)."""


class UnknownExperiment(AuditError):
    """The contract has no experiment with that id."""


def check_experiment_id(experiment_id: int) -> int:
    """``experiment_id`` if it can name an experiment (1..2^256-1), else ``ValueError``."""
    if not 1 <= experiment_id <= MAX_UINT256:
        shown = str(experiment_id) if experiment_id.bit_length() < 64 else "out of range"
        raise ValueError(f"experiment ids run from 1 to 2^256 - 1, not {shown}")
    return experiment_id

"""PROTOCOL.md's decision rule, shared by the in-memory driver, agents and audits."""

from __future__ import annotations

BPS_DENOMINATOR = 10_000


def threshold_to_bps(vote_threshold: float) -> int:
    """Converts a fraction (colearn's ``vote_threshold``) to basis points."""
    if not 0.0 <= vote_threshold <= 1.0:
        raise ValueError(f"vote threshold must be within [0, 1], got {vote_threshold}")
    return round(vote_threshold * BPS_DENOMINATOR)


def is_accepted(approvals: int, n_learners: int, threshold_bps: int) -> bool:
    """Accepted iff ``approvals * 10000 >= threshold_bps * (n - 1)``.

    ``n_learners`` counts the proposer; it does not vote, and a missing vote counts
    as not approving.
    """
    if n_learners < 2:
        raise ValueError("an experiment has at least 2 learners")
    if not 0 <= threshold_bps <= BPS_DENOMINATOR:
        raise ValueError(f"threshold must be within 0..10000 bps, got {threshold_bps}")
    if not 0 <= approvals <= n_learners - 1:
        raise ValueError(f"approvals must be within 0..{n_learners - 1}, got {approvals}")
    return approvals * BPS_DENOMINATOR >= threshold_bps * (n_learners - 1)

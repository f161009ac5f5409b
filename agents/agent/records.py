"""What an agent keeps for itself: the time it spent per activity, and what it did and saw
in each round (the chain holds the rest)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import BaseModel

from colearn_core.ml_interface import TrainingSummary


class Timings:
    """Seconds spent per activity: ``step`` (all of it), and within it ``learner``
    (training, testing, loading weights), ``store``, ``status`` (reading the round's status)
    and ``transactions`` (sending and confirming them); ``follow`` (following the chain's
    events between steps, idle waits excluded). The protocol's own time is
    step - learner + follow."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, key: str, seconds: float) -> None:
        self.seconds[key] = self.seconds.get(key, 0.0) + seconds

    @contextmanager
    def measure(self, key: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(key, time.perf_counter() - started)


class RoundRecord(BaseModel):
    """What this learner did and saw in one round (local; the chain holds the rest)."""

    round: int
    role: str  # "proposer" or "voter"
    vote_score: float | None = None
    test_score: float | None = None
    approve: bool | None = None
    reason: str | None = None  # why a proposal was rejected without testing, or not made
    training_summary: TrainingSummary | None = None  # the proposer's (e.g. its DP budget)

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
    (training, testing, loading weights), ``store`` (moving weights: encoding and hashing
    a proposal, the store's put and get, verifying and decoding), ``status`` (reading the
    round's status) and ``transactions`` (sending and confirming them); ``follow``
    (following the chain's events between steps, idle waits excluded). The protocol's own
    time is step - learner + follow.

    ``seconds`` is wall-clock time; ``cpu_seconds`` the process's CPU time (all its
    threads) over the same spans: unlike the wall clock, it does not grow while the
    process waits for a core on a busy machine."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    def add(self, key: str, seconds: float, cpu_seconds: float | None = None) -> None:
        self.seconds[key] = self.seconds.get(key, 0.0) + seconds
        if cpu_seconds is not None:
            self.cpu_seconds[key] = self.cpu_seconds.get(key, 0.0) + cpu_seconds

    @contextmanager
    def measure(self, key: str) -> Iterator[None]:
        started, started_cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.add(key, time.perf_counter() - started, time.process_time() - started_cpu)


class RoundRecord(BaseModel):
    """What this learner did and saw in one round (local; the chain holds the rest)."""

    round: int
    role: str  # "proposer" or "voter"
    vote_score: float | None = None
    test_score: float | None = None
    approve: bool | None = None
    reason: str | None = None  # why a proposal was rejected without testing, or not made
    training_summary: TrainingSummary | None = None  # the proposer's (e.g. its DP budget)

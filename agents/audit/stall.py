"""Whether an experiment is stalled: its current phase's deadline passed and nobody acted.

The contract never moves by itself: after a deadline someone must call ``cancel()``
(joining), ``expire()`` (no proposal) or ``decide()`` (an incomplete ballot). Until then
the experiment waits, and the events alone cannot tell a stalled experiment from a
finished one. :func:`find_stall` reads the phase from the events, with the deadlines the
contract applies, and compares it with a clock: a stall is no violation of the protocol
(the audit still passes), but the audit and the explorer show it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pydantic import BaseModel

from agents.audit.history import History
from agents.chain.client import CollectiveLearningClient


class Stall(BaseModel):
    """A phase whose deadline passed with nobody acting."""

    since: int  # the deadline that passed (unix seconds, the chain's clock)
    now: int  # the clock it was compared with
    phase: str  # joining, proposing, voting, revealing
    round: int | None = None
    reason: str  # "round 3's voting deadline passed and nobody called decide()"
    action: str  # the call that moves it on: cancel(), expire(), decide()

    @property
    def seconds(self) -> int:
        return max(0, self.now - self.since)

    def line(self) -> str:
        """``stalled since 2026-11-28 11:00:00 UTC (2 h 5 min ago): round 3's ...``"""
        when = datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%d %H:%M:%S")
        return f"stalled since {when} UTC ({duration(self.seconds)} ago): {self.reason}"


def duration(seconds: int) -> str:
    """``45 s``, ``12 min 5 s``, ``3 h 2 min``, ``4 d 1 h``."""
    days, rest = divmod(max(0, seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def find_stall(history: History, now: int) -> Stall | None:
    """The stall of ``history`` at time ``now``, or None (finished, cancelled, or its
    current phase still open)."""
    cfg = history.config
    if history.completion is not None or history.cancellation is not None:
        return None
    if history.start is None:
        if now < cfg.join_deadline:
            return None
        joined = len({j.learner for j in history.joins if j.learner_index >= 0})
        return Stall(since=cfg.join_deadline, now=now, phase="joining", action="cancel()",
                     reason=f"the join deadline passed with {joined} of {len(cfg.learners)} "
                            "learners joined and nobody called cancel()")
    by_round = {r.round: r for r in history.rounds}
    current = 0
    while current in by_round and by_round[current].closed:
        current += 1
    if current >= cfg.num_rounds:  # every round closed without ExperimentCompleted: the
        return None  # audit's checks name that
    if current == 0:
        start = history.start.timestamp
    else:
        closing = by_round[current - 1].closing
        if closing is None:
            return None
        start = closing.timestamp
    r = by_round.get(current)
    proposal = r.proposal if r is not None else None
    if proposal is None:
        deadline = start + cfg.proposal_timeout
        if now < deadline:
            return None
        proposer = cfg.learners.index(cfg.proposer(current)) if cfg.learners else 0
        return Stall(since=deadline, now=now, phase="proposing", round=current,
                     action="expire()",
                     reason=f"round {current}'s proposal deadline passed without a proposal "
                            f"from learner {proposer} and nobody called expire()")
    deadline = proposal.timestamp + cfg.voting_timeout
    phase, what = "voting", "voting deadline"
    if cfg.options.sealed:
        deadline += cfg.options.reveal_timeout
        phase, what = "revealing", "reveal deadline"
    if now < deadline:
        return None
    votes = len(r.votes) if r is not None else 0
    return Stall(since=deadline, now=now, phase=phase, round=current, action="decide()",
                 reason=f"round {current}'s {what} passed with {votes} of "
                        f"{len(cfg.learners) - 1} votes counted and nobody called decide()")


def clock(chain_time: int) -> int:
    """The time a transaction sent now would see: ``chain_time`` (a block's timestamp) or
    this machine's clock, whichever is later (a dev chain mines no block while nobody
    acts, so its latest block's time stands still during a stall)."""
    return max(int(chain_time), int(time.time()))


def audit_clock(client: CollectiveLearningClient, history: History) -> int:
    """:func:`clock` at the audited block (the last one the history was read to)."""
    block = history.stats.to_block
    return clock(client.block_timestamps([block]).get(block, 0))

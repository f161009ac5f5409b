"""How a learner agent works, apart from whom it acts for and what it talks to."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MAX_WEIGHT_BYTES = 512 * 1024 * 1024
# With a relay: seconds before the voting deadline at which a vote the relay has not put
# on chain is sent directly instead.
RELAY_FALLBACK_SECONDS = 10.0


class AgentSettings(BaseModel):
    """A :class:`~agents.agent.learner_agent.LearnerAgent`'s settings; the defaults suit
    most agents.

    - ``name``: in the agent's logger name (``None``: the start of its address).
    - ``max_weight_bytes``: the longest weights file fetched; longer ones are refused
      unread.
    - ``relay_fallback_seconds``: see :data:`RELAY_FALLBACK_SECONDS` (only with a relay).
    - ``notify``: told what the agent does, a line each, for the person who started it
      (``colearn agent`` prints them without -v): the ready line (experiment, learner, role
      schedule, store), joining and the start, one line per round (role, what it did, its
      scores, the decision), the end; without it, the same lines are logged at INFO (with
      it, at DEBUG). Warnings (late, refused, a rejected proposal) are logged only.
    - ``state_dir``: where the openings of sealed votes are kept between commit and reveal
      (:mod:`agents.agent.openings`), so that a restarted agent still reveals; ``None``:
      in memory only (a warning is logged in a sealed experiment).
    """

    model_config = ConfigDict(frozen=True)

    name: str | None = None
    max_weight_bytes: int = Field(DEFAULT_MAX_WEIGHT_BYTES, gt=0)
    relay_fallback_seconds: float = Field(RELAY_FALLBACK_SECONDS, ge=0)
    notify: Callable[[str], None] | None = None
    state_dir: Path | None = None

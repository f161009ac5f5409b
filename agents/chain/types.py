"""The contract's values as Python sees them: its constants and bounds, round states,
the views' typed results, a sent transaction's result, and vote scores in fixed point."""

from __future__ import annotations

from enum import IntEnum

from pydantic import BaseModel, ConfigDict

#: Vote scores are fixed-point integers with 18 decimals (the contract's ``SCORE_SCALE``).
SCORE_SCALE = 10**18
#: The score of a reject vote cast because the proposal could not be fetched, verified or
#: loaded (the contract's ``NO_SCORE``).
NO_SCORE = -(2**255)
#: The contract's bounds on an experiment (CollectiveLearning.sol's constants and types).
MIN_LEARNERS, MAX_LEARNERS = 2, 500
MAX_ROUNDS = 2**24 - 1  # numRounds, round and modelRound are uint24
MAX_TIMEOUT = 30 * 86_400  # every timeout (join, proposal, voting): 1 s to 30 days
#: A join timeout where none is given: a day for every learner to start its agent.
DEFAULT_JOIN_TIMEOUT = 86_400
MAX_THRESHOLD_BPS = 10_000
#: Largest uint256: experiment ids, and every number an event carries, fit it.
MAX_UINT256 = 2**256 - 1

class RoundState(IntEnum):
    PROPOSING = 0
    PROPOSAL_TIMED_OUT = 1
    VOTING = 2
    VOTING_TIMED_OUT = 3
    COMPLETED = 4
    JOINING = 5  # before round 0: waiting for learners to join, before the join deadline
    CANCELLED = 6  # cancelled after the join deadline with a learner missing: no round
    JOIN_TIMED_OUT = 7  # the join deadline passed with a learner missing: anyone may cancel

class ExperimentInfo(BaseModel):
    """The stored configuration and current round of an experiment."""

    num_learners: int
    threshold_bps: int
    num_rounds: int
    proposal_timeout: int
    voting_timeout: int
    round: int
    phase_start: int
    proposed: bool
    approvals: int
    rejections: int
    model_round: int  # 0: initial model; r + 1: proposal of round r
    join_timeout: int
    joined: int  # learners who joined

class RoundStatus(BaseModel):
    """The current round as one account needs it, read in one call at one block (the
    contract's ``roundStatus``)."""

    model_config = ConfigDict(frozen=True)

    round: int  # equals the number of rounds once complete
    state: RoundState
    deadline: int  # of the current phase (the join deadline while joining), on the chain's
    # clock; 0 once complete or cancelled
    model_digest: bytes
    model_round: int  # 0: initial model; r + 1: proposal of round r
    voted: bool  # whether the account voted in the current round
    joined: bool  # whether the account joined the experiment
    timestamp: int  # the block's timestamp: the clock every deadline is measured on
    base_fee: int  # the block's base fee (0 where a node leaves it out of calls)

    @property
    def seconds_left(self) -> int:
        """Chain seconds before the current phase's deadline (0 once it passed)."""
        return max(0, self.deadline - self.timestamp)

class TxResult(BaseModel):
    tx_hash: str
    gas_used: int
    block_number: int
    gas_limit: int

def score_to_fixed(score: float) -> int:
    """A vote score as the contract's fixed-point integer."""
    try:
        fixed = round(float(score) * SCORE_SCALE)
    except (TypeError, ValueError, OverflowError):  # not a number, NaN or infinite
        return NO_SCORE
    return max(NO_SCORE + 1, min(2**255 - 1, fixed))  # an int256, never NO_SCORE itself

def fixed_to_score(value: int) -> float | None:
    return None if value == NO_SCORE else value / SCORE_SCALE

"""The contract's values as Python sees them: its constants and bounds, round states,
the views' typed results, a sent transaction's result, and vote scores in fixed point."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: Vote scores are fixed-point integers with 18 decimals (the contract's ``SCORE_SCALE``).
SCORE_SCALE = 10**18
#: The score of a reject vote cast because the proposal could not be fetched, verified or
#: loaded (the contract's ``NO_SCORE``).
NO_SCORE = -(2**255)
#: The contract's bounds on an experiment (CollectiveLearning.sol's constants and types).
MIN_LEARNERS, MAX_LEARNERS = 2, 500
MAX_ROUNDS = 2**24 - 1  # numRounds, round and modelRound are uint24
MAX_TIMEOUT = 30 * 86_400  # every timeout (join, proposal, voting, reveal): at most 30 days
MAX_CID_LENGTH = 128  # bytes of any CID (initial, metadata, proposals)
MAX_AMOUNT = 2**96 - 1  # stakes, reward pools and penalties
ZERO_ADDRESS = "0x" + "00" * 20
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
    REVEALING = 8  # sealed votes: commitments closed, before the reveal deadline
    REVEAL_TIMED_OUT = 9  # sealed votes: reveal deadline passed with reveals missing


class Penalty(IntEnum):
    """Why a penalty was taken from a learner's stake."""

    MISSED_PROPOSAL = 0  # its proposal slot expired
    UNREVEALED_VOTE = 1  # it committed a sealed vote and did not reveal it
    REJECTED_PROPOSAL = 2  # its proposal was rejected by at least rejection_share_bps of voters


class ExperimentOptions(BaseModel):
    """An experiment's optional terms (the contract's ``ExperimentTerms`` struct), fixed at
    creation; all zero: public votes, no stake. Sealed votes: ``reveal_timeout`` > 0.
    Stake: ``stake`` or ``reward_pool`` > 0, in ``token`` (the zero address: ETH)."""

    model_config = ConfigDict(frozen=True)

    reveal_timeout: int = Field(0, ge=0, le=MAX_TIMEOUT)
    token: str = ZERO_ADDRESS
    stake: int = Field(0, ge=0, le=MAX_AMOUNT)
    reward_pool: int = Field(0, ge=0, le=MAX_AMOUNT)
    missed_proposal_penalty: int = Field(0, ge=0, le=MAX_AMOUNT)
    unrevealed_vote_penalty: int = Field(0, ge=0, le=MAX_AMOUNT)
    rejected_proposal_penalty: int = Field(0, ge=0, le=MAX_AMOUNT)
    rejection_share_bps: int = Field(0, ge=0, le=MAX_THRESHOLD_BPS)
    proposer_share_bps: int = Field(0, ge=0, le=MAX_THRESHOLD_BPS)

    @property
    def sealed(self) -> bool:
        return self.reveal_timeout > 0

    @property
    def staked(self) -> bool:
        return self.stake > 0 or self.reward_pool > 0

    @property
    def in_eth(self) -> bool:
        return int(self.token, 16) == 0

    def as_call_arg(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in type(self).model_fields)

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
    reveal_timeout: int  # 0: public votes
    commitments: int  # sealed votes: commitments in the current round
    staked: bool

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
    voted: bool  # whether the account's vote counts in the current round (sealed: revealed)
    joined: bool  # whether the account joined the experiment
    timestamp: int  # the block's timestamp: the clock every deadline is measured on
    base_fee: int  # the block's base fee (0 where a node leaves it out of calls)
    committed: bool  # sealed votes: whether the account committed in the current round
    proposal_digest: bytes  # the digest a vote must name (meaningful once proposed)

    @property
    def seconds_left(self) -> int:
        """Chain seconds before the current phase's deadline (0 once it passed)."""
        return max(0, self.deadline - self.timestamp)

class StakeInfo(BaseModel):
    """The money side of a staked experiment (the contract's ``stakeOf``)."""

    token: str  # the zero address: ETH
    stake: int
    reward_pool: int  # as deposited by the creator
    pool: int  # reward pool plus penalties taken so far
    missed_proposal_penalty: int
    unrevealed_vote_penalty: int
    rejected_proposal_penalty: int
    rejection_share_bps: int
    proposer_share_bps: int
    proposer_shares: int  # accepted rounds so far
    voter_shares: int  # counted votes so far
    creator: str


class AccountInfo(BaseModel):
    """One learner's account in a staked experiment (the contract's ``accountOf``)."""

    penalties: int  # taken from its stake so far
    proposer_shares: int  # its accepted proposals
    voter_shares: int  # its counted votes (sealed: revealed)
    withdrawn: bool
    owed: int  # what withdraw() pays it now (0 before the end, or once withdrawn)


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

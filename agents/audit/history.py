"""An experiment's history as plain data (pydantic): its configuration, joins, rounds
(proposal, votes, commitments, decision or expiry, penalties), money events, the
contract's views at the audited block, and what did not decode.

:class:`agents.audit.reader.HistoryReader` rebuilds one from the contract's events; the
checks of :mod:`agents.audit.checks` run as well on it as on one doctored by hand in a test.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from agents.chain.logs import ExperimentSetup
from agents.chain.types import ExperimentOptions, fixed_to_score

TxRole = Literal["propose", "proposeBySig", "vote", "castVotesBySig", "commitVote",
                 "commitVotesBySig", "revealVote", "revealVotes", "decide", "expire"]


class EventRef(BaseModel):
    """Where an event was logged: its transaction, block, block time and log index."""

    tx_hash: str
    block_number: int
    log_index: int
    timestamp: int = 0  # the block's timestamp (0 until known)

    @property
    def position(self) -> tuple[int, int]:
        return (self.block_number, self.log_index)


class Proposal(EventRef):
    proposer: str
    cid: str
    digest: str  # 0x-hex sha256 of the serialized weights


class VoteCall(BaseModel):
    """What a vote's transaction said for its voter, from the calldata (no event carries
    the digest a public vote names, nor a sealed vote's salt)."""

    function: str  # vote, castVotesBySig, revealVote, revealVotes
    experiment_id: int
    round: int
    approve: bool
    score: int
    digest: str | None = None  # public votes: the proposal digest the vote names
    salt: str | None = None  # sealed votes: the opening's salt


class Vote(EventRef):
    """A counted vote (VoteCast): a public vote, or the reveal of a sealed one."""

    voter: str
    learner_index: int  # -1: not a learner of the experiment
    approve: bool
    score: int  # fixed point, SCORE_SCALE; NO_SCORE: the voter could not test the proposal
    call: VoteCall | None = None  # from the transaction's calldata, when it is readable
    #: Why ``call`` is None: the transaction calls another contract (a wallet, a
    #: forwarder: not readable, not a violation) or it holds no such vote (a violation).
    call_problem: str | None = None
    call_direct: bool = True  # the transaction was sent to the audited contract itself

    @property
    def vote_score(self) -> float | None:
        return fixed_to_score(self.score)


class Commit(EventRef):
    """A sealed vote's commitment (VoteCommitted)."""

    voter: str
    learner_index: int  # -1: not a learner of the experiment
    commitment: str  # 0x-hex


class Skip(EventRef):
    """A relayed vote, commitment or reveal already on chain (VoteSkipped)."""

    voter: str


class PenaltyRecord(EventRef):
    """A penalty taken from a learner's stake (PenaltyTaken)."""

    learner: str
    learner_index: int  # -1: not a learner of the experiment
    round: int
    reason: str  # missed_proposal, unrevealed_vote, rejected_proposal
    amount: int


class Transfer(EventRef):
    """A deposit (Deposited) or a withdrawal (FundsWithdrawn)."""

    account: str
    amount: int


class Decision(EventRef):
    accepted: bool
    approvals: int
    rejections: int


class Expiry(EventRef):
    pass


class Join(EventRef):
    """A learner's consent (LearnerJoined), direct or signed and relayed."""

    learner: str
    learner_index: int  # -1: not a learner of the experiment
    sender: str  # who paid: the learner, or a relayer (joinBySig)
    gas_used: int

    @property
    def relayed(self) -> bool:
        return self.sender != self.learner


class Completion(EventRef):
    model_digest: str
    model_round: int  # 0: the initial model; r + 1: the proposal of round r


class TxRecord(BaseModel):
    """One transaction of a round, counted once however many events it logged."""

    hash: str
    role: TxRole
    sender: str  # who paid: a relayer for proposeBySig and castVotesBySig
    block_number: int
    timestamp: int
    gas_used: int
    events: int  # the experiment's events it logged
    decides: bool = False  # it also closed the round (the deciding vote)


class RoundHistory(BaseModel):
    round: int
    proposer: str  # the scheduled proposer, learners[round % n]
    proposer_index: int
    proposal: Proposal | None = None
    votes: list[Vote] = Field(default_factory=list)  # counted: public, or revealed
    commits: list[Commit] = Field(default_factory=list)  # sealed votes
    commits_complete: EventRef | None = None  # CommitsComplete: the reveal window opened
    skipped: list[Skip] = Field(default_factory=list)
    penalties: list[PenaltyRecord] = Field(default_factory=list)
    decision: Decision | None = None
    expiry: Expiry | None = None
    #: Events the contract can never log twice for a round that came again (names).
    duplicates: list[str] = Field(default_factory=list)
    txs: list[TxRecord] = Field(default_factory=list)

    @property
    def closed(self) -> bool:
        return self.decision is not None or self.expiry is not None

    @property
    def outcome(self) -> str:
        if self.expiry is not None:
            return "expired"
        if self.decision is not None:
            return "accepted" if self.decision.accepted else "rejected"
        return "voting" if self.proposal is not None else "open"

    @property
    def closing(self) -> EventRef | None:
        return self.decision or self.expiry

    @property
    def gas(self) -> int:
        return sum(tx.gas_used for tx in self.txs)


class ExperimentConfig(ExperimentSetup, EventRef):
    """The ExperimentCreated event: the experiment's configuration, fixed for its life."""

    initial_digest: str
    metadata_cid: str
    #: Sealed votes, stake (the event's ``terms``), as logged: not validated (a hostile
    #: contract may log any numbers; the configuration check names them).
    options: ExperimentOptions = Field(default_factory=ExperimentOptions)

    @property
    def join_deadline(self) -> int:
        """Joins are accepted strictly before it (creation time + join timeout)."""
        return self.timestamp + self.join_timeout

    def proposer(self, round_index: int) -> str:
        """``learners[round % n]``; "" when the event lists no learner at all."""
        return self.learners[round_index % len(self.learners)] if self.learners else ""


class ChainView(BaseModel):
    """The contract's views at the audited block (a cross-check of the events)."""

    block_number: int
    round: int
    model_digest: str
    model_round: int
    num_learners: int | None = None  # getExperiment's configuration, when read
    num_rounds: int | None = None
    joined: int | None = None  # learners who joined, by getExperiment
    staked: bool | None = None  # getExperiment's terms, when read
    reveal_timeout: int | None = None


class MalformedLog(EventRef):
    """A log of the experiment that does not decode as the contract's event."""

    event: str  # the event its first topic names, or "unknown"
    reason: str


class FetchStats(BaseModel):
    from_block: int = 0
    to_block: int = 0
    log_queries: int = 0
    logs: int = 0
    blocks: int = 0
    receipts: int = 0
    transactions: int = 0  # calldata read (vote and reveal transactions)
    batches: int = 0
    seconds: float = 0.0


class History(BaseModel):
    chain_id: int
    contract: str
    config: ExperimentConfig
    rounds: list[RoundHistory]
    #: Joins, in log order; round 0 starts with ExperimentStarted, logged by the last one.
    joins: list[Join] = Field(default_factory=list)
    start: EventRef | None = None
    cancellation: EventRef | None = None  # ExperimentCancelled: the experiment never started
    deposits: list[Transfer] = Field(default_factory=list)  # Deposited, in log order
    withdrawals: list[Transfer] = Field(default_factory=list)  # FundsWithdrawn, in log order
    completion: Completion | None = None
    view: ChainView | None = None
    #: Why the contract's views could not be read at the audited block (then view is None).
    view_error: str | None = None
    #: Logs of the experiment that do not decode as the contract's events.
    malformed: list[MalformedLog] = Field(default_factory=list)
    #: Experiment-level events logged more than once (ExperimentCreated, ...Started,
    #: ...Cancelled, ...Completed).
    duplicates: list[MalformedLog] = Field(default_factory=list)
    stats: FetchStats = Field(default_factory=FetchStats)

    @property
    def experiment_id(self) -> int:
        return self.config.experiment_id

    @property
    def closed_rounds(self) -> int:
        return sum(1 for r in self.rounds if r.closed)

    @property
    def total_gas(self) -> int:
        """Gas of the rounds' transactions and of the joins."""
        return sum(r.gas for r in self.rounds) + sum(j.gas_used for j in self.joins)

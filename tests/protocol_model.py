"""A reference model of the on-chain protocol (/work/shared/PROTOCOL.md), in plain Python.

For every contract call the model predicts either success, with the events it emits in
order, or the exact custom error (name and arguments) it reverts with; it also predicts
every view. The stateful test (test_contract_stateful.py) drives the contract and this
model side by side and compares them.

What comes from PROTOCOL.md: joining (v2: every learner joins, directly or signed,
before the join deadline; the last join starts round 0; after the deadline with a learner
missing anyone may cancel), experiments and rounds, the proposer schedule
``learners[r % n]``, deadlines (round start + proposal timeout, proposal time + voting
timeout; calls are accepted strictly before them), one vote per learner per round, no
vote by the proposer, the last vote deciding, the decision rule
``approvals * 10000 >= threshold_bps * (n - 1)``, expire/decide by anyone after the
deadlines, completion after the last round. What comes from the contract's interface
(NatSpec and ABI): error names and arguments, the order of its checks, the EIP-712 types
of signed votes, proposals and joins, and OpenZeppelin's ECDSA rules for ERC-2098 ``(r, vs)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi import encode as abi_encode
from eth_keys import keys
from eth_keys.exceptions import BadSignature
from eth_utils import keccak

from agents.chain.types import RoundState

BPS = 10_000
MIN_LEARNERS = 2
MAX_LEARNERS = 500
MAX_ROUNDS = 2**24 - 1
UINT32_MAX = 2**32 - 1
MAX_TIMEOUT = 30 * 86_400  # every timeout: 1 s .. 30 days (PROTOCOL v2)
MAX_CID_LENGTH = 128  # bytes (PROTOCOL v2)
MAX_AMOUNT = 2**96 - 1  # of a stake, reward pool or penalty
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ZERO_ADDRESS = "0x" + "00" * 20
ZERO_DIGEST = bytes(32)

DOMAIN_TYPEHASH = keccak(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
VOTE_TYPEHASH = keccak(
    b"Vote(uint256 experimentId,uint256 round,bytes32 digest,bool approve,int256 score)")
COMMIT_TYPEHASH = keccak(b"Commit(uint256 experimentId,uint256 round,bytes32 commitment)")
PROPOSAL_TYPEHASH = keccak(
    b"Proposal(uint256 experimentId,uint256 round,string cid,bytes32 digest)")
JOIN_TYPEHASH = keccak(b"Join(uint256 experimentId)")


@dataclass(frozen=True)
class Revert:
    """A refused call: the custom error's name and arguments (as ContractRevert has them)."""

    name: str
    args: dict[str, Any]


Event = tuple[str, dict[str, Any]]  # name and arguments, as decoded from a receipt's log
Outcome = Revert | list[Event]  # a call's revert, or the events of its success


class Refused(Exception):
    """Raised inside the model to abandon a call; carries the predicted revert."""

    def __init__(self, name: str, **args: Any):
        super().__init__(name)
        self.revert = Revert(name, args)


@dataclass(frozen=True)
class SignedVoteArg:
    """One entry of castVotesBySig's ``votes``."""

    learner_index: int
    approve: bool
    score: int
    r: bytes
    vs: bytes


@dataclass(frozen=True)
class SignedCommitArg:
    """One entry of commitVotesBySig's ``commits``."""

    learner_index: int
    commitment: bytes
    r: bytes
    vs: bytes


@dataclass(frozen=True)
class RevealArg:
    """One entry of revealVotes' ``reveals``."""

    learner_index: int
    approve: bool
    score: int
    salt: bytes


@dataclass(frozen=True)
class Terms:
    """The contract's ``ExperimentTerms`` (all zero: a plain experiment)."""

    reveal_timeout: int = 0
    token: str = ZERO_ADDRESS
    stake: int = 0
    reward_pool: int = 0
    missed_proposal_penalty: int = 0
    unrevealed_vote_penalty: int = 0
    rejected_proposal_penalty: int = 0
    rejection_share_bps: int = 0
    proposer_share_bps: int = 0

    def as_tuple(self) -> tuple[Any, ...]:
        return tuple(vars(self).values())

    @property
    def staked(self) -> bool:
        return self.stake != 0 or self.reward_pool != 0


def commitment_of(experiment_id: int, round_index: int, voter: str, digest: bytes,
                  approve: bool, score: int, salt: bytes) -> bytes:
    """PROTOCOL.md's commitment of a sealed vote (the contract's ``commitmentOf``)."""
    return keccak(abi_encode(
        ["uint256", "uint256", "address", "bytes32", "bool", "int256", "bytes32"],
        [experiment_id, round_index, voter, digest, approve, score, salt]))


def accepted(approvals: int, threshold_bps: int, num_learners: int) -> bool:
    """PROTOCOL.md's decision rule; a missing vote counts as not approving."""
    return approvals * BPS >= threshold_bps * (num_learners - 1)


# ------------------------------------------------------------------ signatures


@dataclass(frozen=True)
class Domain:
    """The EIP-712 domain of one deployment: signatures are good for it alone."""

    chain_id: int
    contract: str

    def separator(self) -> bytes:
        return keccak(abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [DOMAIN_TYPEHASH, keccak(b"CollectiveLearning"), keccak(b"2"), self.chain_id,
             self.contract]))

    def vote_digest(self, experiment_id: int, round_index: int, digest: bytes, approve: bool,
                    score: int) -> bytes:
        return self._typed(abi_encode(
            ["bytes32", "uint256", "uint256", "bytes32", "bool", "int256"],
            [VOTE_TYPEHASH, experiment_id, round_index, digest, approve, score]))

    def commit_digest(self, experiment_id: int, round_index: int, commitment: bytes) -> bytes:
        return self._typed(abi_encode(["bytes32", "uint256", "uint256", "bytes32"],
                                      [COMMIT_TYPEHASH, experiment_id, round_index, commitment]))

    def proposal_digest(self, experiment_id: int, round_index: int, cid: str,
                        digest: bytes) -> bytes:
        return self._typed(abi_encode(
            ["bytes32", "uint256", "uint256", "bytes32", "bytes32"],
            [PROPOSAL_TYPEHASH, experiment_id, round_index, keccak(cid.encode()), digest]))

    def join_digest(self, experiment_id: int) -> bytes:
        return self._typed(abi_encode(["bytes32", "uint256"], [JOIN_TYPEHASH, experiment_id]))

    def _typed(self, struct: bytes) -> bytes:
        return keccak(b"\x19\x01" + self.separator() + keccak(struct))


def recover(message: bytes, r: bytes, vs: bytes) -> str:
    """OpenZeppelin's ``ECDSA.recover(hash, r, vs)``: the signer, or the error it reverts
    with. ERC-2098 keeps the parity in the top bit of ``vs``, so ``s`` has 255 bits."""
    value = int.from_bytes(vs, "big")
    s, parity = value & ((1 << 255) - 1), value >> 255
    if s > SECP256K1_N // 2:
        raise Refused("ECDSAInvalidSignatureS", s=s.to_bytes(32, "big"))
    signer = _ecrecover(message, parity, int.from_bytes(r, "big"), s)
    if signer is None:
        raise Refused("ECDSAInvalidSignature")
    return signer


def _ecrecover(message: bytes, parity: int, r: int, s: int) -> str | None:
    """The ecrecover precompile: ``None`` where it returns the zero address."""
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        return None
    try:
        key = keys.Signature(vrs=(parity, r, s)).recover_public_key_from_msg_hash(message)
    except BadSignature:
        return None
    return key.to_checksum_address()


# ------------------------------------------------------------------ experiments


@dataclass
class Experiment:
    id: int
    learners: tuple[str, ...]
    threshold_bps: int
    num_rounds: int
    proposal_timeout: int
    voting_timeout: int
    join_timeout: int
    phase_start: int  # creation while joining, round start while awaiting a proposal,
    # proposal time while voting
    model_digest: bytes
    model_round: int = 0  # 0: the initial model; r + 1: the proposal of round r
    round: int = 0  # equals num_rounds once complete
    proposal: bytes | None = None  # the current round's proposed digest, once proposed
    votes: dict[str, bool] = field(default_factory=dict)  # the current round's: voter -> approve
    joined: list[str] = field(default_factory=list)  # in the order they joined
    stage: str = "joining"  # "joining", "running" (its rounds), "cancelled"
    terms: Terms = field(default_factory=Terms)
    creator: str = ZERO_ADDRESS
    # The digest slots: the model's is slots[model_slot], the proposal's the other one.
    slots: list[bytes] = field(default_factory=lambda: [ZERO_DIGEST, ZERO_DIGEST])
    model_slot: int = 0
    commits: dict[str, bytes] = field(default_factory=dict)  # sealed: voter -> commitment
    reveals_open: bool = False  # sealed: every voter committed before the commit deadline
    # stake: per learner, penalties taken and shares earned; the pool's totals
    penalties: dict[str, int] = field(default_factory=dict)
    proposer_shares: dict[str, int] = field(default_factory=dict)
    voter_shares: dict[str, int] = field(default_factory=dict)
    total_proposer_shares: int = 0
    total_voter_shares: int = 0  # of decided rounds
    penalty_total: int = 0
    withdrawn: set[str] = field(default_factory=set)
    creator_withdrawn: bool = False

    @property
    def sealed(self) -> bool:
        return self.terms.reveal_timeout > 0

    @property
    def n(self) -> int:
        return len(self.learners)

    @property
    def complete(self) -> bool:
        return self.round >= self.num_rounds

    @property
    def proposer(self) -> str:
        return self.learners[self.round % self.n]

    def deadline(self, now: int) -> int:
        if self.stage == "joining":
            return self.phase_start + self.join_timeout
        if self.stage == "cancelled" or self.complete:
            return 0
        if self.proposal is None:
            return self.phase_start + self.proposal_timeout
        commit_deadline = self.phase_start + self.voting_timeout
        if not self.sealed or (not self.reveals_open and now < commit_deadline):
            return commit_deadline
        return commit_deadline + self.terms.reveal_timeout

    def state(self, now: int) -> RoundState:
        if self.stage == "joining":
            return RoundState.JOIN_TIMED_OUT if now >= self.deadline(now) else RoundState.JOINING
        if self.stage == "cancelled":
            return RoundState.CANCELLED
        if self.complete:
            return RoundState.COMPLETED
        if self.proposal is None:
            late = now >= self.phase_start + self.proposal_timeout
            return RoundState.PROPOSAL_TIMED_OUT if late else RoundState.PROPOSING
        commit_deadline = self.phase_start + self.voting_timeout
        if not self.sealed:
            return RoundState.VOTING_TIMED_OUT if now >= commit_deadline else RoundState.VOTING
        if now >= commit_deadline + self.terms.reveal_timeout:
            return RoundState.REVEAL_TIMED_OUT
        if self.reveals_open or now >= commit_deadline:
            return RoundState.REVEALING
        return RoundState.VOTING

    def tallies(self) -> tuple[int, int]:
        approvals = sum(self.votes.values())
        return approvals, len(self.votes) - approvals

    def index_of(self, account: str) -> int | None:
        return self.learners.index(account) if account in self.learners else None


class ProtocolModel:
    """All experiments of one deployed contract. Each call method takes the sender and the
    timestamp of the block the transaction is mined in (and the wei sent with it), and
    returns its outcome; on success the model's state moves as the contract's must. ``held``
    is the ETH the contract holds: deposits less withdrawals, to the wei."""

    def __init__(self, domain: Domain):
        self.domain = domain
        self.experiments: dict[int, Experiment] = {}
        self.held = 0

    @property
    def count(self) -> int:
        return len(self.experiments)

    # ------------------------------------------------------------ transactions

    def create_experiment(self, sender: str, learners: list[str], threshold_bps: int,
                          num_rounds: int, proposal_timeout: int, voting_timeout: int,
                          initial_cid: str, initial_digest: bytes, metadata_cid: str,
                          join_timeout: int, now: int, terms: Terms = Terms(),
                          value: int = 0) -> Outcome:
        return self._attempt(lambda: self._create(
            sender, learners, threshold_bps, num_rounds, proposal_timeout, voting_timeout,
            initial_cid, initial_digest, metadata_cid, join_timeout, now, terms, value))

    def join(self, sender: str, experiment_id: int, now: int, value: int = 0) -> Outcome:
        return self._attempt(lambda: self._join(self._load(experiment_id), sender, now, value))

    def join_by_sig(self, sender: str, experiment_id: int, learner_index: int, r: bytes,
                    vs: bytes, now: int) -> Outcome:
        def run() -> list[Event]:
            e = self._load(experiment_id)
            if learner_index >= e.n:
                raise Refused("InvalidLearnerIndex", experimentId=experiment_id,
                              learnerIndex=learner_index)
            if e.terms.staked and e.terms.token == ZERO_ADDRESS and e.terms.stake != 0:
                raise Refused("SignedJoinNeedsToken", experimentId=experiment_id)
            signer = recover(self.domain.join_digest(experiment_id), r, vs)
            if signer != e.learners[learner_index]:
                raise Refused("SignerMismatch", experimentId=experiment_id,
                              learnerIndex=learner_index, signer=signer)
            return self._join(e, signer, now, 0)
        return self._attempt(run)

    def cancel(self, sender: str, experiment_id: int, now: int) -> Outcome:
        def run() -> list[Event]:
            e = self._load(experiment_id)
            current = e.state(now)
            if current == RoundState.JOINING:
                raise Refused("JoinStillOpen", experimentId=e.id, joinDeadline=e.deadline(now))
            self._expect(e, RoundState.JOIN_TIMED_OUT, now)
            e.stage = "cancelled"
            return [("ExperimentCancelled", {"experimentId": e.id})]
        return self._attempt(run)

    def propose(self, sender: str, experiment_id: int, round_index: int, cid: str,
                digest: bytes, now: int) -> Outcome:
        return self._attempt(
            lambda: self._propose(experiment_id, round_index, cid, digest, sender, now))

    def propose_by_sig(self, sender: str, experiment_id: int, round_index: int, cid: str,
                       digest: bytes, r: bytes, vs: bytes, now: int) -> Outcome:
        def run() -> list[Event]:
            # The signature is checked before anything else; it names the proposer.
            message = self.domain.proposal_digest(experiment_id, round_index, cid, digest)
            return self._propose(experiment_id, round_index, cid, digest,
                                 recover(message, r, vs), now)
        return self._attempt(run)

    def vote(self, sender: str, experiment_id: int, round_index: int, digest: bytes,
             approve: bool, score: int, now: int) -> Outcome:
        def run() -> list[Event]:
            e = self._open(experiment_id, round_index, False, RoundState.VOTING, now)
            self._check_digest(e, digest)
            self._voter(e, sender)
            if sender in e.votes:
                raise Refused("AlreadyVoted", experimentId=e.id, round=e.round, voter=sender)
            events = [self._count(e, sender, approve, score)]
            return events + (self._decide(e, now) if len(e.votes) == e.n - 1 else [])
        return self._attempt(run)

    def cast_votes_by_sig(self, sender: str, experiment_id: int, round_index: int,
                          digest: bytes, learners: list[str], votes: list[SignedVoteArg],
                          now: int) -> Outcome:
        def run() -> list[Event]:
            e = self._open(experiment_id, round_index, False, RoundState.VOTING, now)
            if not votes:
                raise Refused("EmptyBatch")
            self._check_digest(e, digest)
            self._check_learners(e, learners)
            events = []
            for v in votes:
                signer = self._signer(e, learners, v.learner_index, self.domain.vote_digest(
                    experiment_id, round_index, digest, v.approve, v.score), v.r, v.vs)
                if signer in e.votes:
                    events.append(self._skipped(e, signer))
                    continue
                events.append(self._count(e, signer, v.approve, v.score))
            return events + (self._decide(e, now) if len(e.votes) == e.n - 1 else [])
        return self._attempt(run)

    def commit_vote(self, sender: str, experiment_id: int, round_index: int,
                    commitment: bytes, now: int) -> Outcome:
        def run() -> list[Event]:
            e = self._open(experiment_id, round_index, True, RoundState.VOTING, now)
            self._voter(e, sender)
            if sender in e.commits:
                raise Refused("AlreadyCommitted", experimentId=e.id, round=e.round, voter=sender)
            return [self._commit(e, sender, commitment)] + self._reveals_open(e)
        return self._attempt(run)

    def commit_votes_by_sig(self, sender: str, experiment_id: int, round_index: int,
                            learners: list[str], commits: list[SignedCommitArg],
                            now: int) -> Outcome:
        def run() -> list[Event]:
            e = self._open_sealed_batch(experiment_id, round_index, RoundState.VOTING, now,
                                        commits, learners)
            events = []
            for c in commits:
                signer = self._signer(e, learners, c.learner_index, self.domain.commit_digest(
                    experiment_id, round_index, c.commitment), c.r, c.vs)
                if signer in e.commits:
                    events.append(self._skipped(e, signer))
                    continue
                events.append(self._commit(e, signer, c.commitment))
            return events + self._reveals_open(e)
        return self._attempt(run)

    def reveal_vote(self, sender: str, experiment_id: int, round_index: int, approve: bool,
                    score: int, salt: bytes, now: int) -> Outcome:
        def run() -> list[Event]:
            e = self._open(experiment_id, round_index, True, RoundState.REVEALING, now)
            if e.index_of(sender) is None:
                raise Refused("NotLearner", experimentId=e.id, account=sender)
            if sender not in e.commits:
                raise Refused("NotCommitted", experimentId=e.id, round=e.round, voter=sender)
            if sender in e.votes:
                raise Refused("AlreadyVoted", experimentId=e.id, round=e.round, voter=sender)
            events = [self._reveal(e, sender, approve, score, salt)]
            return events + (self._decide(e, now) if len(e.votes) == len(e.commits) else [])
        return self._attempt(run)

    def reveal_votes(self, sender: str, experiment_id: int, round_index: int,
                     learners: list[str], reveals: list[RevealArg], now: int) -> Outcome:
        def run() -> list[Event]:
            e = self._open_sealed_batch(experiment_id, round_index, RoundState.REVEALING, now,
                                        reveals, learners)
            events = []
            for v in reveals:
                if v.learner_index >= len(learners):
                    raise Refused("InvalidLearnerIndex", experimentId=e.id,
                                  learnerIndex=v.learner_index)
                voter = learners[v.learner_index]
                if voter not in e.commits:
                    raise Refused("NotCommitted", experimentId=e.id, round=e.round, voter=voter)
                if voter in e.votes:
                    events.append(self._skipped(e, voter))
                    continue
                events.append(self._reveal(e, voter, v.approve, v.score, v.salt))
            return events + (self._decide(e, now) if len(e.votes) == len(e.commits) else [])
        return self._attempt(run)

    def decide(self, sender: str, experiment_id: int, round_index: int, now: int) -> Outcome:
        def run() -> list[Event]:
            e = self._current(experiment_id, round_index)
            self._expect(e, RoundState.REVEAL_TIMED_OUT if e.sealed
                         else RoundState.VOTING_TIMED_OUT, now)
            events: list[Event] = []
            if e.terms.staked and e.sealed:
                for voter in e.learners:  # in learner order
                    if voter in e.commits and voter not in e.votes:
                        events += self._penalize(e, voter, 1,
                                                 e.terms.unrevealed_vote_penalty)
            return events + self._decide(e, now)
        return self._attempt(run)

    def expire(self, sender: str, experiment_id: int, round_index: int, now: int) -> Outcome:
        def run() -> list[Event]:
            e = self._current(experiment_id, round_index)
            self._expect(e, RoundState.PROPOSAL_TIMED_OUT, now)
            events: list[Event] = [("RoundExpired", {"experimentId": e.id, "round": e.round})]
            if e.terms.staked:
                events += self._penalize(e, e.proposer, 0, e.terms.missed_proposal_penalty)
            return events + self._advance(e, now)
        return self._attempt(run)

    def withdraw(self, sender: str, experiment_id: int, now: int) -> Outcome:
        def run() -> list[Event]:
            e = self._load(experiment_id)
            current = e.state(now)
            if current not in (RoundState.CANCELLED, RoundState.COMPLETED):
                raise Refused("NotFinished", experimentId=e.id, current=int(current))
            amount = 0
            if e.terms.staked:
                if sender in e.joined and sender not in e.withdrawn:
                    e.withdrawn.add(sender)
                    amount = self.owed(e, sender, now)
                if sender == e.creator and not e.creator_withdrawn:
                    e.creator_withdrawn = True
                    amount += self._creator_owed(e, now)
            if amount == 0:
                raise Refused("NothingToWithdraw", experimentId=e.id, account=sender)
            if e.terms.token == ZERO_ADDRESS:
                self.held -= amount
            return [("FundsWithdrawn", {"experimentId": e.id, "account": sender,
                                        "amount": amount})]
        return self._attempt(run)

    # ------------------------------------------------------------------- views

    def experiment(self, experiment_id: int) -> dict[str, Any]:
        """getExperiment, keyed as the client's ExperimentInfo."""
        e = self._load(experiment_id)
        approvals, rejections = e.tallies()
        return {"num_learners": e.n, "threshold_bps": e.threshold_bps,
                "num_rounds": e.num_rounds, "proposal_timeout": e.proposal_timeout,
                "voting_timeout": e.voting_timeout, "round": e.round,
                "phase_start": e.phase_start, "proposed": e.proposal is not None,
                "approvals": approvals, "rejections": rejections,
                "model_round": e.model_round, "join_timeout": e.join_timeout,
                "joined": len(e.joined), "reveal_timeout": e.terms.reveal_timeout,
                "commitments": len(e.commits), "staked": e.terms.staked}

    def state(self, experiment_id: int, now: int) -> RoundState:
        return self._load(experiment_id).state(now)

    def deadline(self, experiment_id: int, now: int) -> int:
        return self._load(experiment_id).deadline(now)

    def current_model(self, experiment_id: int) -> tuple[bytes, int]:
        e = self._load(experiment_id)
        return e.model_digest, e.model_round

    def proposal_digest(self, experiment_id: int) -> bytes:
        """The contract's view: the digest slot that does not hold the model (the current
        proposal while there is one)."""
        e = self._load(experiment_id)
        return e.slots[1 - e.model_slot]

    def vote_of(self, experiment_id: int, voter: str) -> tuple[bool, bool]:
        e = self._load(experiment_id)
        if voter not in e.votes:
            return False, False
        return True, e.votes[voter]

    def learner_index(self, experiment_id: int, account: str) -> int:
        index = self._load(experiment_id).index_of(account)
        return -1 if index is None else index

    def round_status(self, experiment_id: int, account: str, now: int) -> dict[str, Any]:
        """roundStatus, keyed as the client's RoundStatus (without the base fee)."""
        e = self._load(experiment_id)
        return {"round": e.round, "state": e.state(now), "deadline": e.deadline(now),
                "model_digest": e.model_digest, "model_round": e.model_round,
                "voted": account in e.votes, "joined": account in e.joined, "timestamp": now,
                "committed": account in e.votes or account in e.commits,
                "proposal_digest": self.proposal_digest(experiment_id)}

    def stake_of(self, experiment_id: int) -> dict[str, Any]:
        """stakeOf, keyed as the client's StakeInfo (all zero but the token unstaked)."""
        e = self._load(experiment_id)
        t, staked = e.terms, e.terms.staked
        return {"token": t.token, "stake": t.stake, "reward_pool": t.reward_pool,
                "pool": t.reward_pool + e.penalty_total,
                "missed_proposal_penalty": t.missed_proposal_penalty,
                "unrevealed_vote_penalty": t.unrevealed_vote_penalty,
                "rejected_proposal_penalty": t.rejected_proposal_penalty,
                "rejection_share_bps": t.rejection_share_bps,
                "proposer_share_bps": t.proposer_share_bps,
                "proposer_shares": e.total_proposer_shares,
                "voter_shares": e.total_voter_shares,
                "creator": e.creator if staked else ZERO_ADDRESS}

    def account_of(self, experiment_id: int, account: str, now: int) -> dict[str, Any]:
        """accountOf, keyed as the client's AccountInfo."""
        e = self._load(experiment_id)
        if not e.terms.staked or account not in e.joined:
            return {"penalties": 0, "proposer_shares": 0, "voter_shares": 0,
                    "withdrawn": False, "owed": 0}
        finished = e.state(now) in (RoundState.CANCELLED, RoundState.COMPLETED)
        return {"penalties": e.penalties.get(account, 0),
                "proposer_shares": e.proposer_shares.get(account, 0),
                "voter_shares": e.voter_shares.get(account, 0),
                "withdrawn": account in e.withdrawn,
                "owed": self.owed(e, account, now)
                if finished and account not in e.withdrawn else 0}

    def owed(self, e: Experiment, learner: str, now: int) -> int:
        """PROTOCOL.md's payout of a learner that joined: cancelled, its stake; completed, its
        stake less its penalties plus its shares of the pool's two parts (rounded down)."""
        if e.state(now) == RoundState.CANCELLED:
            return e.terms.stake
        proposer_part, voter_part = self._parts(e)
        owed = e.terms.stake - e.penalties.get(learner, 0)
        if e.total_proposer_shares:
            owed += proposer_part * e.proposer_shares.get(learner, 0) // e.total_proposer_shares
        if e.total_voter_shares:
            owed += voter_part * e.voter_shares.get(learner, 0) // e.total_voter_shares
        return owed

    # --------------------------------------------------------------- internals

    def _attempt(self, run: Callable[[], list[Event]]) -> Outcome:
        """Runs a call all or nothing, as a transaction: a revert leaves no trace (restored
        in place, so references to experiments stay valid)."""
        saved = {i: copy.deepcopy(e) for i, e in self.experiments.items()}
        held = self.held
        try:
            return run()
        except Refused as refused:
            for i in list(self.experiments):
                if i in saved:
                    vars(self.experiments[i]).update(vars(saved[i]))
                else:
                    del self.experiments[i]
            self.held = held
            return refused.revert

    def _load(self, experiment_id: int) -> Experiment:
        if experiment_id not in self.experiments:
            raise Refused("UnknownExperiment", experimentId=experiment_id)
        return self.experiments[experiment_id]

    def _current(self, experiment_id: int, round_index: int) -> Experiment:
        e = self._load(experiment_id)
        if round_index != e.round:
            raise Refused("WrongRound", experimentId=experiment_id, currentRound=e.round,
                          givenRound=round_index)
        return e

    def _expect(self, e: Experiment, expected: RoundState, now: int) -> None:
        current = e.state(now)
        if current != expected:
            raise Refused("UnexpectedRoundState", experimentId=e.id, round=e.round,
                          current=current.name, expected=expected.name)

    def _open_sealed_batch(self, experiment_id: int, round_index: int, expected: RoundState,
                           now: int, batch: Sequence[object], learners: list[str]) -> Experiment:
        """The current round of a sealed-vote experiment, in state ``expected``, for a
        batch of commitments or reveals: not empty, with the experiment's learner list."""
        e = self._open(experiment_id, round_index, True, expected, now)
        if not batch:
            raise Refused("EmptyBatch")
        self._check_learners(e, learners)
        return e

    def _open(self, experiment_id: int, round_index: int, sealed: bool,
              expected: RoundState, now: int) -> Experiment:
        """The current round, of the vote kind ``sealed``, in state ``expected``."""
        e = self._current(experiment_id, round_index)
        if e.sealed != sealed:
            raise Refused("WrongVoteKind", experimentId=e.id, sealedVotes=e.sealed)
        self._expect(e, expected, now)
        return e

    def _check_digest(self, e: Experiment, digest: bytes) -> None:
        expected = e.slots[1 - e.model_slot]
        if digest != expected:
            raise Refused("WrongProposal", experimentId=e.id, round=e.round, expected=expected,
                          given=digest)

    def _check_learners(self, e: Experiment, learners: list[str]) -> None:
        if tuple(learners) != e.learners:
            raise Refused("LearnerListMismatch", experimentId=e.id)

    def _voter(self, e: Experiment, account: str) -> None:
        if e.index_of(account) is None:
            raise Refused("NotLearner", experimentId=e.id, account=account)
        if account == e.proposer:
            raise Refused("ProposerCannotVote", experimentId=e.id, round=e.round,
                          proposer=account)

    def _signer(self, e: Experiment, learners: list[str], index: int, message: bytes,
                r: bytes, vs: bytes) -> str:
        """A relayed call's signer, checked as a batch checks it."""
        if index >= len(learners):
            raise Refused("InvalidLearnerIndex", experimentId=e.id, learnerIndex=index)
        signer = recover(message, r, vs)
        if signer != learners[index]:
            raise Refused("SignerMismatch", experimentId=e.id, learnerIndex=index, signer=signer)
        if signer == e.proposer:
            raise Refused("ProposerCannotVote", experimentId=e.id, round=e.round, proposer=signer)
        return signer

    def _skipped(self, e: Experiment, voter: str) -> Event:
        return ("VoteSkipped", {"experimentId": e.id, "round": e.round, "voter": voter})

    def _deposit(self, e: Experiment, account: str, amount: int, value: int) -> list[Event]:
        if e.terms.token == ZERO_ADDRESS:
            if value != amount:
                raise Refused("WrongValue", expected=amount, given=value)
            self.held += value
        elif value != 0:
            raise Refused("WrongValue", expected=0, given=value)
        return [("Deposited", {"experimentId": e.id, "account": account,
                               "amount": amount})] if amount else []

    def _create(self, sender: str, learners: list[str], threshold_bps: int, num_rounds: int,
                proposal_timeout: int, voting_timeout: int, initial_cid: str,
                initial_digest: bytes, metadata_cid: str, join_timeout: int,
                now: int, terms: Terms, value: int) -> list[Event]:
        n = len(learners)
        if n < MIN_LEARNERS:
            raise Refused("TooFewLearners", given=n, minimum=MIN_LEARNERS)
        if n > MAX_LEARNERS:
            raise Refused("TooManyLearners", given=n, maximum=MAX_LEARNERS)
        if threshold_bps > BPS:
            raise Refused("InvalidThreshold", thresholdBps=threshold_bps)
        if not 1 <= num_rounds <= MAX_ROUNDS:
            raise Refused("InvalidRoundCount", numRounds=num_rounds)
        if not (1 <= proposal_timeout <= MAX_TIMEOUT and 1 <= voting_timeout <= MAX_TIMEOUT):
            raise Refused("InvalidTimeout", proposalTimeout=proposal_timeout,
                          votingTimeout=voting_timeout, maximum=MAX_TIMEOUT)
        if not 1 <= join_timeout <= MAX_TIMEOUT:
            raise Refused("InvalidJoinTimeout", joinTimeout=join_timeout, maximum=MAX_TIMEOUT)
        if terms.reveal_timeout > MAX_TIMEOUT:
            raise Refused("InvalidRevealTimeout", revealTimeout=terms.reveal_timeout,
                          maximum=MAX_TIMEOUT)
        for cid, may_be_empty in ((initial_cid, False), (metadata_cid, True)):
            if not cid and not may_be_empty:
                raise Refused("EmptyCid")
            if len(cid.encode()) > MAX_CID_LENGTH:
                raise Refused("CidTooLong", length=len(cid.encode()), maximum=MAX_CID_LENGTH)
        if initial_digest == ZERO_DIGEST:
            raise Refused("EmptyDigest")
        amounts = (terms.stake, terms.reward_pool, terms.missed_proposal_penalty,
                   terms.unrevealed_vote_penalty, terms.rejected_proposal_penalty)
        shares = (terms.rejection_share_bps, terms.proposer_share_bps)
        if (not terms.staked and (terms.token != ZERO_ADDRESS or any(amounts) or any(shares))) \
                or max(amounts) > MAX_AMOUNT or max(shares) > BPS:
            raise Refused("InvalidStakeTerms", maximum=MAX_AMOUNT)
        for i, learner in enumerate(learners):
            if learner == ZERO_ADDRESS:
                raise Refused("InvalidLearner", learner=learner)
            if learner in learners[:i]:
                raise Refused("DuplicateLearner", learner=learner)
        e = Experiment(id=self.count + 1, learners=tuple(learners), threshold_bps=threshold_bps,
                       num_rounds=num_rounds, proposal_timeout=proposal_timeout,
                       voting_timeout=voting_timeout, join_timeout=join_timeout,
                       phase_start=now, model_digest=initial_digest, terms=terms,
                       creator=sender, slots=[initial_digest, ZERO_DIGEST])
        self.experiments[e.id] = e
        events: list[Event] = [("ExperimentCreated", {
            "experimentId": e.id, "creator": sender, "learners": list(learners),
            "thresholdBps": threshold_bps, "numRounds": num_rounds,
            "proposalTimeout": proposal_timeout, "votingTimeout": voting_timeout,
            "joinTimeout": join_timeout, "initialCid": initial_cid, "initialDigest": initial_digest,
            "metadataCid": metadata_cid, "terms": terms.as_tuple()})]
        if terms.staked:
            return events + self._deposit(e, sender, terms.reward_pool, value)
        if value:
            raise Refused("WrongValue", expected=0, given=value)
        return events

    def _join(self, e: Experiment, learner: str, now: int, value: int) -> list[Event]:
        """A learner's consent (and stake); the last one starts round 0 now."""
        if e.index_of(learner) is None:
            raise Refused("NotLearner", experimentId=e.id, account=learner)
        if learner in e.joined:
            raise Refused("AlreadyJoined", experimentId=e.id, learner=learner)
        if e.state(now) != RoundState.JOINING:
            raise Refused("JoinClosed", experimentId=e.id, joinDeadline=e.deadline(now))
        e.joined.append(learner)
        events: list[Event] = [("LearnerJoined", {"experimentId": e.id, "learner": learner})]
        if len(e.joined) == e.n:
            e.stage, e.phase_start = "running", now
            events.append(("ExperimentStarted", {"experimentId": e.id}))
        if e.terms.staked:
            return events + self._deposit(e, learner, e.terms.stake, value)
        if value:
            raise Refused("WrongValue", expected=0, given=value)
        return events

    def _propose(self, experiment_id: int, round_index: int, cid: str, digest: bytes,
                 proposer: str, now: int) -> list[Event]:
        e = self._current(experiment_id, round_index)
        self._expect(e, RoundState.PROPOSING, now)
        if proposer != e.proposer:
            raise Refused("NotProposer", experimentId=e.id, round=e.round, account=proposer)
        if not cid:
            raise Refused("EmptyCid")
        if len(cid.encode()) > MAX_CID_LENGTH:
            raise Refused("CidTooLong", length=len(cid.encode()), maximum=MAX_CID_LENGTH)
        if digest == ZERO_DIGEST:
            raise Refused("EmptyDigest")
        e.proposal = digest
        e.slots[1 - e.model_slot] = digest
        e.phase_start = now
        return [("WeightsProposed", {"experimentId": e.id, "round": e.round,
                                     "proposer": proposer, "cid": cid, "digest": digest})]

    def _count(self, e: Experiment, voter: str, approve: bool, score: int) -> Event:
        """A vote counts (public, or revealed)."""
        e.votes[voter] = approve
        if e.terms.staked:
            e.voter_shares[voter] = e.voter_shares.get(voter, 0) + 1
        return ("VoteCast", {"experimentId": e.id, "round": e.round, "voter": voter,
                             "approve": approve, "score": score})

    def _commit(self, e: Experiment, voter: str, commitment: bytes) -> Event:
        e.commits[voter] = commitment
        return ("VoteCommitted", {"experimentId": e.id, "voter": voter, "round": e.round,
                                  "commitment": commitment})

    def _reveals_open(self, e: Experiment) -> list[Event]:
        if len(e.commits) != e.n - 1:
            return []
        e.reveals_open = True
        return [("CommitsComplete", {"experimentId": e.id, "round": e.round})]

    def _reveal(self, e: Experiment, voter: str, approve: bool, score: int,
                salt: bytes) -> Event:
        assert e.proposal is not None
        opened = commitment_of(e.id, e.round, voter, e.proposal, approve, score, salt)
        if opened[:16] != e.commits[voter][:16]:  # the contract keeps the top 128 bits
            raise Refused("CommitmentMismatch", experimentId=e.id, round=e.round, voter=voter)
        return self._count(e, voter, approve, score)

    def _penalize(self, e: Experiment, learner: str, reason: int, amount: int) -> list[Event]:
        taken = min(amount, e.terms.stake - e.penalties.get(learner, 0))
        if taken == 0:
            return []
        e.penalties[learner] = e.penalties.get(learner, 0) + taken
        e.penalty_total += taken
        return [("PenaltyTaken", {"experimentId": e.id, "learner": learner, "round": e.round,
                                  "reason": reason, "amount": taken})]

    def _parts(self, e: Experiment) -> tuple[int, int]:
        pool = e.terms.reward_pool + e.penalty_total
        proposer_part = pool * e.terms.proposer_share_bps // BPS
        return proposer_part, pool - proposer_part

    def _creator_owed(self, e: Experiment, now: int) -> int:
        if e.state(now) == RoundState.CANCELLED:
            return e.terms.reward_pool
        proposer_part, voter_part = self._parts(e)
        return (0 if e.total_proposer_shares else proposer_part) + \
            (0 if e.total_voter_shares else voter_part)

    def _decide(self, e: Experiment, now: int) -> list[Event]:
        approvals, rejections = e.tallies()
        ok = accepted(approvals, e.threshold_bps, e.n)
        events: list[Event] = []
        if e.terms.staked:
            e.total_voter_shares += approvals + rejections
            if ok:
                e.total_proposer_shares += 1
                e.proposer_shares[e.proposer] = e.proposer_shares.get(e.proposer, 0) + 1
            elif rejections * BPS >= e.terms.rejection_share_bps * (e.n - 1):
                events += self._penalize(e, e.proposer, 2, e.terms.rejected_proposal_penalty)
        if ok:
            assert e.proposal is not None
            e.model_digest, e.model_round = e.proposal, e.round + 1
            e.model_slot = 1 - e.model_slot
        events.append(("RoundDecided", {"experimentId": e.id, "round": e.round, "accepted": ok,
                                        "approvals": approvals, "rejections": rejections}))
        return events + self._advance(e, now)

    def _advance(self, e: Experiment, now: int) -> list[Event]:
        e.round += 1
        e.phase_start = now
        e.proposal = None
        e.votes = {}
        e.commits = {}
        e.reveals_open = False
        if not e.complete:
            return []
        return [("ExperimentCompleted", {"experimentId": e.id, "modelDigest": e.model_digest,
                                         "modelRound": e.model_round})]

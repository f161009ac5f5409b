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
from collections.abc import Callable
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
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ZERO_ADDRESS = "0x" + "00" * 20
ZERO_DIGEST = bytes(32)

DOMAIN_TYPEHASH = keccak(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
VOTE_TYPEHASH = keccak(b"Vote(uint256 experimentId,uint256 round,bool approve,int256 score)")
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
            [DOMAIN_TYPEHASH, keccak(b"CollectiveLearning"), keccak(b"1"), self.chain_id,
             self.contract]))

    def vote_digest(self, experiment_id: int, round_index: int, approve: bool,
                    score: int) -> bytes:
        return self._typed(abi_encode(["bytes32", "uint256", "uint256", "bool", "int256"],
                                      [VOTE_TYPEHASH, experiment_id, round_index, approve, score]))

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

    @property
    def n(self) -> int:
        return len(self.learners)

    @property
    def complete(self) -> bool:
        return self.round >= self.num_rounds

    @property
    def proposer(self) -> str:
        return self.learners[self.round % self.n]

    def deadline(self) -> int:
        if self.stage == "joining":
            return self.phase_start + self.join_timeout
        if self.stage == "cancelled" or self.complete:
            return 0
        timeout = self.voting_timeout if self.proposal is not None else self.proposal_timeout
        return self.phase_start + timeout

    def state(self, now: int) -> RoundState:
        if self.stage == "joining":
            return RoundState.JOIN_TIMED_OUT if now >= self.deadline() else RoundState.JOINING
        if self.stage == "cancelled":
            return RoundState.CANCELLED
        if self.complete:
            return RoundState.COMPLETED
        late = now >= self.deadline()
        if self.proposal is None:
            return RoundState.PROPOSAL_TIMED_OUT if late else RoundState.PROPOSING
        return RoundState.VOTING_TIMED_OUT if late else RoundState.VOTING

    def tallies(self) -> tuple[int, int]:
        approvals = sum(self.votes.values())
        return approvals, len(self.votes) - approvals

    def index_of(self, account: str) -> int | None:
        return self.learners.index(account) if account in self.learners else None


class ProtocolModel:
    """All experiments of one deployed contract. Each call method takes the sender and the
    timestamp of the block the transaction is mined in, and returns its outcome; on
    success the model's state moves as the contract's must."""

    def __init__(self, domain: Domain):
        self.domain = domain
        self.experiments: dict[int, Experiment] = {}

    @property
    def count(self) -> int:
        return len(self.experiments)

    # ------------------------------------------------------------ transactions

    def create_experiment(self, sender: str, learners: list[str], threshold_bps: int,
                          num_rounds: int, proposal_timeout: int, voting_timeout: int,
                          initial_cid: str, initial_digest: bytes, metadata_cid: str,
                          join_timeout: int, now: int) -> Outcome:
        return self._attempt(lambda: self._create(
            sender, learners, threshold_bps, num_rounds, proposal_timeout, voting_timeout,
            initial_cid, initial_digest, metadata_cid, join_timeout, now))

    def join(self, sender: str, experiment_id: int, now: int) -> Outcome:
        return self._attempt(lambda: self._join(self._load(experiment_id), sender, now))

    def join_by_sig(self, sender: str, experiment_id: int, learner_index: int, r: bytes,
                    vs: bytes, now: int) -> Outcome:
        def run() -> list[Event]:
            e = self._load(experiment_id)
            if learner_index >= e.n:
                raise Refused("InvalidLearnerIndex", experimentId=experiment_id,
                              learnerIndex=learner_index)
            signer = recover(self.domain.join_digest(experiment_id), r, vs)
            if signer != e.learners[learner_index]:
                raise Refused("SignerMismatch", experimentId=experiment_id,
                              learnerIndex=learner_index, signer=signer)
            return self._join(e, signer, now)
        return self._attempt(run)

    def cancel(self, sender: str, experiment_id: int, now: int) -> Outcome:
        def run() -> list[Event]:
            e = self._load(experiment_id)
            current = e.state(now)
            if current == RoundState.JOINING:
                raise Refused("JoinStillOpen", experimentId=e.id, joinDeadline=e.deadline())
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

    def vote(self, sender: str, experiment_id: int, round_index: int, approve: bool,
             score: int, now: int) -> Outcome:
        def run() -> list[Event]:
            e = self._voting(experiment_id, round_index, now)
            if e.index_of(sender) is None:
                raise Refused("NotLearner", experimentId=experiment_id, account=sender)
            events = [self._count(e, sender, approve, score)]
            return events + self._close(e, now)
        return self._attempt(run)

    def cast_votes_by_sig(self, sender: str, experiment_id: int, round_index: int,
                          learners: list[str], votes: list[SignedVoteArg],
                          now: int) -> Outcome:
        def run() -> list[Event]:
            e = self._voting(experiment_id, round_index, now)
            if not votes:
                raise Refused("EmptyBatch")
            if tuple(learners) != e.learners:
                raise Refused("LearnerListMismatch", experimentId=experiment_id)
            events = []
            for v in votes:
                if v.learner_index >= len(learners):
                    raise Refused("InvalidLearnerIndex", experimentId=experiment_id,
                                  learnerIndex=v.learner_index)
                message = self.domain.vote_digest(experiment_id, round_index, v.approve,
                                                  v.score)
                signer = recover(message, v.r, v.vs)
                if signer != learners[v.learner_index]:
                    raise Refused("SignerMismatch", experimentId=experiment_id,
                                  learnerIndex=v.learner_index, signer=signer)
                events.append(self._count(e, signer, v.approve, v.score))
            return events + self._close(e, now)
        return self._attempt(run)

    def decide(self, sender: str, experiment_id: int, round_index: int, now: int) -> Outcome:
        def run() -> list[Event]:
            e = self._current(experiment_id, round_index)
            self._expect(e, RoundState.VOTING_TIMED_OUT, now)
            return self._decide(e, now)
        return self._attempt(run)

    def expire(self, sender: str, experiment_id: int, round_index: int, now: int) -> Outcome:
        def run() -> list[Event]:
            e = self._current(experiment_id, round_index)
            self._expect(e, RoundState.PROPOSAL_TIMED_OUT, now)
            expired = ("RoundExpired", {"experimentId": e.id, "round": e.round})
            return [expired] + self._advance(e, now)
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
                "joined": len(e.joined)}

    def state(self, experiment_id: int, now: int) -> RoundState:
        return self._load(experiment_id).state(now)

    def deadline(self, experiment_id: int) -> int:
        return self._load(experiment_id).deadline()

    def current_model(self, experiment_id: int) -> tuple[bytes, int]:
        e = self._load(experiment_id)
        return e.model_digest, e.model_round

    def proposal_digest(self, experiment_id: int) -> bytes | None:
        """The current proposal while there is one (the contract's view is meaningless
        otherwise, so the model does not predict it)."""
        return self._load(experiment_id).proposal

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
        return {"round": e.round, "state": e.state(now), "deadline": e.deadline(),
                "model_digest": e.model_digest, "model_round": e.model_round,
                "voted": account in e.votes, "joined": account in e.joined, "timestamp": now}

    # --------------------------------------------------------------- internals

    def _attempt(self, run: Callable[[], list[Event]]) -> Outcome:
        """Runs a call all or nothing, as a transaction: a revert leaves no trace (restored
        in place, so references to experiments stay valid)."""
        saved = {i: copy.deepcopy(e) for i, e in self.experiments.items()}
        try:
            return run()
        except Refused as refused:
            for i in list(self.experiments):
                if i in saved:
                    vars(self.experiments[i]).update(vars(saved[i]))
                else:
                    del self.experiments[i]
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

    def _voting(self, experiment_id: int, round_index: int, now: int) -> Experiment:
        e = self._current(experiment_id, round_index)
        self._expect(e, RoundState.VOTING, now)
        return e

    def _create(self, sender: str, learners: list[str], threshold_bps: int, num_rounds: int,
                proposal_timeout: int, voting_timeout: int, initial_cid: str,
                initial_digest: bytes, metadata_cid: str, join_timeout: int,
                now: int) -> list[Event]:
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
                          votingTimeout=voting_timeout)
        if not 1 <= join_timeout <= MAX_TIMEOUT:
            raise Refused("InvalidJoinTimeout", joinTimeout=join_timeout, maximum=MAX_TIMEOUT)
        if not initial_cid:
            raise Refused("EmptyCid")
        if initial_digest == ZERO_DIGEST:
            raise Refused("EmptyDigest")
        for i, learner in enumerate(learners):
            if learner == ZERO_ADDRESS:
                raise Refused("InvalidLearner", learner=learner)
            if learner in learners[:i]:
                raise Refused("DuplicateLearner", learner=learner)
        e = Experiment(id=self.count + 1, learners=tuple(learners), threshold_bps=threshold_bps,
                       num_rounds=num_rounds, proposal_timeout=proposal_timeout,
                       voting_timeout=voting_timeout, join_timeout=join_timeout,
                       phase_start=now, model_digest=initial_digest)
        self.experiments[e.id] = e
        return [("ExperimentCreated", {
            "experimentId": e.id, "creator": sender, "learners": list(learners),
            "thresholdBps": threshold_bps, "numRounds": num_rounds,
            "proposalTimeout": proposal_timeout, "votingTimeout": voting_timeout,
            "joinTimeout": join_timeout, "initialCid": initial_cid, "initialDigest": initial_digest,
            "metadataCid": metadata_cid})]

    def _join(self, e: Experiment, learner: str, now: int) -> list[Event]:
        """A learner's consent; the last one starts round 0 now."""
        if e.index_of(learner) is None:
            raise Refused("NotLearner", experimentId=e.id, account=learner)
        if learner in e.joined:
            raise Refused("AlreadyJoined", experimentId=e.id, learner=learner)
        if e.state(now) != RoundState.JOINING:
            raise Refused("JoinClosed", experimentId=e.id,
                          joinDeadline=e.phase_start + e.join_timeout)
        e.joined.append(learner)
        events: list[Event] = [("LearnerJoined", {"experimentId": e.id, "learner": learner})]
        if len(e.joined) == e.n:
            e.stage, e.phase_start = "running", now
            events.append(("ExperimentStarted", {"experimentId": e.id}))
        return events

    def _propose(self, experiment_id: int, round_index: int, cid: str, digest: bytes,
                 proposer: str, now: int) -> list[Event]:
        e = self._current(experiment_id, round_index)
        self._expect(e, RoundState.PROPOSING, now)
        if proposer != e.proposer:
            raise Refused("NotProposer", experimentId=e.id, round=e.round, account=proposer)
        if not cid:
            raise Refused("EmptyCid")
        if digest == ZERO_DIGEST:
            raise Refused("EmptyDigest")
        e.proposal = digest
        e.phase_start = now
        return [("WeightsProposed", {"experimentId": e.id, "round": e.round,
                                     "proposer": proposer, "cid": cid, "digest": digest})]

    def _count(self, e: Experiment, voter: str, approve: bool, score: int) -> Event:
        if voter == e.proposer:
            raise Refused("ProposerCannotVote", experimentId=e.id, round=e.round, proposer=voter)
        if voter in e.votes:
            raise Refused("AlreadyVoted", experimentId=e.id, round=e.round, voter=voter)
        e.votes[voter] = approve
        return ("VoteCast", {"experimentId": e.id, "round": e.round, "voter": voter,
                             "approve": approve, "score": score})

    def _close(self, e: Experiment, now: int) -> list[Event]:
        """The vote that completes the ballot decides the round."""
        return self._decide(e, now) if len(e.votes) == e.n - 1 else []

    def _decide(self, e: Experiment, now: int) -> list[Event]:
        approvals, rejections = e.tallies()
        ok = accepted(approvals, e.threshold_bps, e.n)
        if ok:
            assert e.proposal is not None
            e.model_digest, e.model_round = e.proposal, e.round + 1
        decided = ("RoundDecided", {"experimentId": e.id, "round": e.round, "accepted": ok,
                                    "approvals": approvals, "rejections": rejections})
        return [decided] + self._advance(e, now)

    def _advance(self, e: Experiment, now: int) -> list[Event]:
        e.round += 1
        e.phase_start = now
        e.proposal = None
        e.votes = {}
        if not e.complete:
            return []
        return [("ExperimentCompleted", {"experimentId": e.id, "modelDigest": e.model_digest,
                                         "modelRound": e.model_round})]

"""The learner agent: one per stakeholder, acting only through the contract.

Each :meth:`LearnerAgent.step` reads the chain and does what the current round asks of
this learner: adopt the current model if it changed, propose on its turn, test and vote
on others' proposals, and close rounds whose deadline passed. All state that matters is
read from the chain at every step, so an agent that restarts carries on where the chain
is; the in-process demo steps several agents in turn, a stakeholder's process steps one
in a loop (:meth:`LearnerAgent.run`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Optional

from pydantic import BaseModel

from agents.chain import (
    NO_SCORE,
    ChainError,
    CollectiveLearningClient,
    ContractRevert,
    ExperimentCreated,
    RoundState,
    WeightsProposed,
    score_to_fixed,
)
from agents.weight_store import WeightStore, WeightStoreError
from colearn_core.codec import (
    WeightsFormatError,
    WeightsMismatchError,
    check_compatible,
    decode_weights,
    encode_weights,
)
from colearn_core.ml_interface import ErrorCodes, MachineLearningInterface, Weights

DEFAULT_MAX_WEIGHT_BYTES = 512 * 1024 * 1024
# Time kept for testing and sending a vote when fetching a proposal near its deadline.
VOTE_MARGIN_SECONDS = 2.0

# Reverts that mean another participant moved the round on first: not an error.
_RACE_ERRORS = {"WrongRound", "UnexpectedRoundState", "AlreadyVoted"}


class AgentError(Exception):
    """The agent cannot act for this learner (wrong account, unknown experiment...)."""


class Timings:
    """Seconds spent per activity: ``step`` (all of it), ``learner`` (training, testing,
    loading weights) and ``store``; the protocol's own time is step - learner."""

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
    vote_score: Optional[float] = None
    test_score: Optional[float] = None
    approve: Optional[bool] = None
    reason: Optional[str] = None  # why a proposal was rejected without testing


class _Verdict(BaseModel):
    approve: bool
    score: int
    reason: Optional[str] = None


class LearnerAgent:
    """Acts for one learner in one experiment."""

    def __init__(
        self,
        client: CollectiveLearningClient,
        store: WeightStore,
        learner: MachineLearningInterface,
        experiment_id: int,
        *,
        name: Optional[str] = None,
        max_weight_bytes: int = DEFAULT_MAX_WEIGHT_BYTES,
    ):
        if client.account is None:
            raise AgentError("an agent needs a client with an account")
        self.client = client
        self.store = store
        self.learner = learner
        self.experiment_id = experiment_id
        self.address = client.account.address
        self.max_weight_bytes = max_weight_bytes
        self.log = logging.getLogger(f"agents.agent.{name or self.address[:10]}")
        self.records: dict[int, RoundRecord] = {}
        self.done = False
        self.budget_exhausted = False
        self._created: Optional[ExperimentCreated] = None
        self._index: Optional[int] = None
        self._verdicts: dict[int, _Verdict] = {}
        self._failed_model: Optional[bytes] = None
        self.timings = Timings()
        self._proposals: dict[int, WeightsProposed] = {}
        self._proposals_from = 0
        # The learner's weights at start: if they are the chain's model, nothing to fetch.
        self.model_digest = _digest(encode_weights(learner.mli_get_current_weights().weights))

    # --------------------------------------------------------------- the loop

    def run(self, *, poll_interval: float = 0.5, recheck: float = 2.0, max_backoff: float = 30.0,
            stop: Optional[threading.Event] = None) -> None:
        """Steps until the experiment completes (or ``stop`` is set): again at once after
        acting, otherwise when the contract logs an event for this experiment (followed
        from the last block seen) or every ``recheck`` seconds, for deadlines. RPC and
        store errors are retried with exponential backoff."""
        follower: Optional[EventFollower] = None
        backoff = poll_interval
        while not self.done and not (stop and stop.is_set()):
            try:
                if follower is None:
                    follower = EventFollower(self.client, self.experiment_id)
                started = time.perf_counter()
                acted = self.step()
                self.timings.add("step", time.perf_counter() - started)
                backoff = poll_interval
                if not acted:
                    follower.wait(timeout=recheck, poll_interval=poll_interval, stop=stop)
            except ContractRevert as exc:
                self.log.error("the contract refused: %s; retrying in %.1f s", exc, backoff)
            except (ChainError, WeightStoreError) as exc:
                self.log.warning("%s; retrying in %.1f s", exc, backoff)
            else:
                continue
            _sleep(backoff, stop)
            backoff = min(backoff * 2, max_backoff)
        if self.done:
            self.log.info("experiment %d complete; model 0x%s", self.experiment_id,
                          self.model_digest.hex())

    def step(self) -> bool:
        """Does what the chain asks of this learner now. Returns whether it acted."""
        created = self._experiment()
        snapshot = self.client.snapshot(self.experiment_id)
        acted = self._sync_model(snapshot.model_digest, snapshot.model_round)
        state, info = snapshot.state, snapshot.info
        if state == RoundState.COMPLETED:
            self.done = True
            return acted
        round_index = info.round
        is_proposer = self._index == round_index % len(created.learners)
        try:
            if state == RoundState.PROPOSING and is_proposer and not self.budget_exhausted:
                return self._propose(round_index) or acted
            if state == RoundState.VOTING and not is_proposer:
                return self._vote(round_index) or acted
            if state == RoundState.PROPOSAL_TIMED_OUT:
                self.client.expire(self.experiment_id, round_index)
                self.log.info("round %d: closed as expired (no proposal in time)", round_index)
                return True
            if state == RoundState.VOTING_TIMED_OUT:
                self.client.decide(self.experiment_id, round_index)
                self.log.info("round %d: decided after the voting deadline", round_index)
                return True
        except ContractRevert as exc:
            if exc.name not in _RACE_ERRORS:
                raise
            self.log.debug("round %d: %s (another participant moved first)", round_index, exc)
            return True
        return acted

    # --------------------------------------------------------------- actions

    def _experiment(self) -> ExperimentCreated:
        if self._created is None:
            created = self.client.experiment_created(self.experiment_id)
            index = self.client.learner_index(self.experiment_id, self.address)
            if index is None:
                raise AgentError(
                    f"account {self.address} is not a learner in experiment {self.experiment_id}")
            self._created, self._index = created, index
            self.log.info("acting for learner %d of experiment %d", index, self.experiment_id)
        return self._created

    def _proposal(self, round_index: int) -> WeightsProposed:
        """The proposal of a round, from the logs; each call reads only blocks it has not
        read yet (from the experiment's creation on)."""
        if round_index not in self._proposals:
            cursor = self._proposals_from or self._experiment().block_number
            for proposal in self.client.proposals(self.experiment_id, from_block=cursor):
                self._proposals[proposal.round] = proposal
                self._proposals_from = max(cursor, proposal.block_number)
        if round_index not in self._proposals:
            raise ChainError(f"round {round_index} has no proposal in the logs")
        return self._proposals[round_index]

    def _sync_model(self, digest: bytes, model_round: int) -> bool:
        """Adopts the chain's current model if the learner does not hold it yet."""
        if digest == self.model_digest:
            return False
        if model_round == 0:
            cid = self._experiment().initial_cid
        else:
            cid = self._proposal(model_round - 1).cid
        try:
            weights = self._fetch_verified(cid, digest)
        except _Rejected as exc:
            if self._failed_model != digest:
                self.log.error("cannot adopt the current model %s: %s", cid, exc)
                self._failed_model = digest
            return False
        with self.timings.measure("learner"):
            self.learner.mli_accept_weights(Weights(weights=weights))
        self.model_digest = digest
        self._failed_model = None
        self.log.info("adopted model of %s", "the experiment's start" if model_round == 0
                      else f"round {model_round - 1}")
        return True

    def _propose(self, round_index: int) -> bool:
        with self.timings.measure("learner"):
            weights = self.learner.mli_propose_weights()
        summary = weights.training_summary
        if summary is not None and summary.error_code == ErrorCodes.DP_BUDGET_EXCEEDED:
            self.log.warning("round %d: privacy budget exhausted; no more proposals", round_index)
            self.budget_exhausted = True
            return False
        data = encode_weights(weights.weights)
        with self.timings.measure("store"):
            cid = self.store.put(data)
        self.client.propose(self.experiment_id, round_index, cid, _digest(data))
        self.log.info("round %d: proposed %s", round_index, cid)
        with self.timings.measure("learner"):
            tested = self.learner.mli_test_weights(weights)
        self.records[round_index] = RoundRecord(
            round=round_index, role="proposer", vote_score=tested.vote_score,
            test_score=tested.test_score)
        return True

    def _vote(self, round_index: int) -> bool:
        voted, _ = self.client.vote_of(self.experiment_id, self.address)
        if voted:
            return False
        verdict = self._verdicts.get(round_index)
        if verdict is None:
            verdict = self._judge(round_index)
            self._verdicts = {round_index: verdict}
        self.client.vote(self.experiment_id, round_index, verdict.approve, verdict.score)
        self.log.info("round %d: voted %s", round_index, "approve" if verdict.approve else "reject")
        return True

    def _judge(self, round_index: int) -> _Verdict:
        proposal = self._proposal(round_index)
        try:
            weights = self._fetch_verified(proposal.cid, proposal.digest, self._time_to_vote())
        except _Rejected as exc:
            self.log.warning("round %d: rejecting proposal %s: %s", round_index, proposal.cid, exc)
            self.records[round_index] = RoundRecord(
                round=round_index, role="voter", approve=False, reason=str(exc))
            return _Verdict(approve=False, score=NO_SCORE, reason=str(exc))
        with self.timings.measure("learner"):
            tested = self.learner.mli_test_weights(Weights(weights=weights))
        approve = bool(tested.vote)
        self.records[round_index] = RoundRecord(
            round=round_index, role="voter", vote_score=tested.vote_score,
            test_score=tested.test_score, approve=approve)
        return _Verdict(approve=approve, score=score_to_fixed(tested.vote_score))

    def _time_to_vote(self) -> float:
        """Seconds a fetch may take so that the vote still lands before the deadline."""
        remaining = self.client.deadline(self.experiment_id) - self.client.chain_time()
        return max(1.0, remaining - VOTE_MARGIN_SECONDS)

    def _fetch_verified(self, cid: str, digest: bytes, timeout: Optional[float] = None):
        """Fetches, checks the sha256 digest, decodes safely and checks the weights fit the
        learner's model. Raises :class:`_Rejected` with the reason otherwise."""
        try:
            with self.timings.measure("store"):
                data = self.store.get(cid, max_bytes=self.max_weight_bytes, timeout=timeout)
        except WeightStoreError as exc:
            raise _Rejected(str(exc)) from None
        actual = _digest(data)
        if actual != digest:
            raise _Rejected(f"digest mismatch: content is {actual.hex()}, chain says {digest.hex()}")
        try:
            weights = decode_weights(data, max_bytes=self.max_weight_bytes)
            check_compatible(weights, self.learner.mli_get_current_weights().weights)
        except (WeightsFormatError, WeightsMismatchError) as exc:
            raise _Rejected(str(exc)) from None
        return weights


class _Rejected(Exception):
    """A proposal or model that cannot be fetched, verified or loaded."""


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _sleep(seconds: float, stop: Optional[threading.Event]) -> None:
    if stop is None:
        time.sleep(seconds)
    else:
        stop.wait(seconds)


class EventFollower:
    """Follows the contract's logs for one experiment from the last block seen."""

    def __init__(self, client: CollectiveLearningClient, experiment_id: int):
        self.client = client
        self.topic = "0x" + experiment_id.to_bytes(32, "big").hex()
        self.last_block = self._latest()

    def _latest(self) -> int:
        try:
            return self.client.w3.eth.block_number
        except Exception as exc:  # noqa: BLE001 - any transport failure
            raise ChainError(f"cannot reach the chain: {exc}") from None

    def poll(self) -> bool:
        """Whether the experiment logged anything since the last poll."""
        latest = self._latest()
        if latest <= self.last_block:
            return False
        try:
            logs = self.client.w3.eth.get_logs({
                "address": self.client.address, "fromBlock": self.last_block + 1,
                "toBlock": latest, "topics": [None, self.topic]})
        except Exception as exc:  # noqa: BLE001 - any transport failure
            raise ChainError(f"cannot follow the chain's logs: {exc}") from None
        self.last_block = latest
        return bool(logs)

    def wait(self, *, timeout: float, poll_interval: float,
             stop: Optional[threading.Event] = None) -> bool:
        """Waits up to ``timeout`` seconds for news; returns whether there was some."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            if self.poll():
                return True
            _sleep(min(poll_interval, max(0.0, deadline - time.monotonic())), stop)
        return False


def run_in_process(agents: list[LearnerAgent], *, idle_sleep: float = 0.05,
                   on_step: Optional[Callable[[], None]] = None) -> None:
    """Steps every agent in turn until all are done (one process, one chain connection)."""
    while not all(agent.done for agent in agents):
        acted = False
        for agent in agents:
            if not agent.done:
                acted = agent.step() or acted
        if on_step is not None:
            on_step()
        if not acted:
            time.sleep(idle_sleep)

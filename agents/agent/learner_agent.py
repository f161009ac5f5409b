"""The learner agent: one per stakeholder, acting only through the contract.

Each :meth:`LearnerAgent.step` reads the round's status from the chain (one call) and
does what the experiment asks of this learner: join it while it is joining (directly, or
as a signed join through the relay), cancel it if the join deadline passed with a learner
missing (an agent stops with :class:`ExperimentCancelled` once it is cancelled); then, round
by round, adopt the current model if it changed,
propose on its turn, test and vote on others' proposals, and close rounds whose deadline
passed. All state that matters is read from the chain at every step, so an agent that
restarts carries on where the chain is; the in-process demo steps several agents in turn,
a stakeholder's process steps one whenever an event or a deadline asks something of it
(:meth:`LearnerAgent.run`).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from eth_account.signers.local import LocalAccount
from pydantic import BaseModel

from agents.agent.openings import OpeningStore
from agents.agent.records import RoundRecord, Timings
from agents.agent.settings import AgentSettings
from agents.agent.verify import Rejected, WeightsVerifier, describe, one_line, sha256
from agents.chain.client import CollectiveLearningClient
from agents.chain.erc20 import Erc20
from agents.chain.errors import ChainError, ContractRevert
from agents.chain.follow import EventFollower, follow_events
from agents.chain.logs import ExperimentCreated, RawLog, WeightsProposed
from agents.chain.signing import (
    VoteOpening,
    sign_commit,
    sign_join,
    sign_proposal,
    sign_vote,
    vote_commitment,
)
from agents.chain.types import NO_SCORE, RoundState, RoundStatus, score_to_fixed
from agents.relay import RelayClient, RelayError
from agents.relay.requests import RevealRequest
from agents.storage.store import WeightStore, WeightStoreError
from colearn_core.codec import encode_weights
from colearn_core.ml_interface import (
    ErrorCodes,
    MachineLearningInterface,
    Weights,
)

# Shortest wait before retrying after an RPC or store error, whatever the poll interval.
MIN_BACKOFF_SECONDS = 0.5
# Time kept for testing and sending a vote when fetching a proposal near its deadline (at
# least; a tenth of the time left if that is more).
VOTE_MARGIN_SECONDS = 2.0
# Seconds past a phase's deadline (by the chain's clock) before looking again: the chain
# moves its clock only with new blocks.
DEADLINE_SLACK_SECONDS = 1.0

# Reverts that mean another participant moved the round on first: not an error.
_RACE_ERRORS = {"WrongRound", "UnexpectedRoundState", "AlreadyVoted", "AlreadyJoined",
                "JoinClosed", "JoinStillOpen", "AlreadyCommitted"}
# Each round state's phase, in order: an event announcing a later phase than the status
# read shows means the node read is lagging.
_PHASE = {RoundState.PROPOSING: 0, RoundState.PROPOSAL_TIMED_OUT: 0, RoundState.VOTING: 1,
          RoundState.VOTING_TIMED_OUT: 1, RoundState.REVEALING: 2,
          RoundState.REVEAL_TIMED_OUT: 2}
# States whose phase ends at a deadline this agent may have to act before.
_TIMED = (RoundState.PROPOSING, RoundState.VOTING, RoundState.REVEALING, RoundState.JOINING)


class AgentError(Exception):
    """The agent cannot act for this learner (wrong account, unknown experiment...)."""


class ExperimentCancelled(AgentError):
    """The experiment was cancelled before it started (a learner did not join in time)."""


class _Verdict(BaseModel):
    digest: bytes  # of the proposal judged: the vote names it
    approve: bool
    score: int
    reason: str | None = None


class LearnerAgent:
    """Acts for one learner in one experiment."""

    def __init__(
        self,
        client: CollectiveLearningClient,
        store: WeightStore,
        learner: MachineLearningInterface,
        experiment_id: int,
        *,
        relay: RelayClient | None = None,
        settings: AgentSettings | None = None,
    ):
        if client.account is None:
            raise AgentError("an agent needs a client with an account")
        self.client = client
        self.account: LocalAccount = client.account
        self.store = store
        self.learner = learner
        self.experiment_id = experiment_id
        # With a relay, proposals and votes go to it as signatures (this account may hold
        # no ETH); votes it has not delivered by the fallback time are sent directly.
        self.relay = relay
        self.settings = settings if settings is not None else AgentSettings()
        self._relayed_vote: int | None = None  # round whose vote the relay holds
        self._relayed_commit: int | None = None  # round whose commitment the relay holds
        self._relayed_reveal: int | None = None  # round whose reveal the relay holds
        self._openings: OpeningStore | None = None  # sealed votes' openings (see _opening_store)
        self._said: set[tuple[int, str]] = set()  # (round, what) errors logged once
        #: What the agent withdrew at the end of a staked experiment (None: not yet, or
        #: not staked); 0 when there was nothing to withdraw.
        self.withdrawn: int | None = None
        self.address = client.account.address
        name = self.settings.name or self.address[:10]
        self.log = logging.getLogger(f"agents.agent.learner_agent.{name}")
        self.records: dict[int, RoundRecord] = {}
        self.done = False
        self.budget_exhausted = False
        self.status: RoundStatus | None = None  # read by the latest step
        self._status_read_at = 0.0  # time.monotonic() when it was read
        self._step_again = False  # act again at once: another participant moved first
        # The furthest point events have announced, as (round, 1 once proposed): a status
        # behind it comes from a node lagging behind the one that sent the event.
        self._announced = (0, 0)
        self._start_announced = False  # an ExperimentStarted or ExperimentCancelled event came
        self._joined_count: int | None = None  # learners joined, as last reported
        self._created: ExperimentCreated | None = None
        self._index: int | None = None
        self._verdicts: dict[int, _Verdict] = {}
        self._failed_model: bytes | None = None  # a current model this agent cannot load
        self._unloadable: set[bytes] = set()  # digests whose content can never be loaded
        self.timings = Timings()
        self._proposals: dict[int, WeightsProposed] = {}
        self._proposals_from = 0
        # Weights this agent holds already verified (its own proposal, or the proposal it
        # tested) as (round, digest, weights): adopting them on acceptance needs no fetch.
        self._held: tuple[int, bytes, Any] | None = None
        weights = learner.mli_get_current_weights().weights
        # The learner's weights at start: if they are the chain's model, nothing to fetch.
        self.model_digest = sha256(encode_weights(weights))
        # Names, shapes and dtypes fetched weights must have (the model's never change),
        # hence the most bytes worth fetching: anything longer is refused unread.
        self.verifier = WeightsVerifier(store, weights, self.settings.max_weight_bytes)

    # --------------------------------------------------------------- the loop

    def run(self, *, poll_interval: float = 0.5, recheck: float = 30.0,
            max_backoff: float = 30.0, events_url: str | None = None,
            stop: threading.Event | None = None) -> None:
        """Steps until the experiment completes (or ``stop`` is set): again when an event
        asks something of this learner (pushed over a WebSocket at ``events_url``, else
        polled every ``poll_interval`` seconds), when the current phase's deadline passes,
        or after ``recheck`` seconds in any case. RPC and store errors are retried with
        exponential backoff (and a new subscription, to miss nothing)."""
        follower: EventFollower | None = None
        backoff = max(poll_interval, MIN_BACKOFF_SECONDS)
        try:
            while not self.done and not (stop and stop.is_set()):
                try:
                    if follower is None:  # before reading the chain: no event is missed
                        follower = follow_events(self.client, self.experiment_id,
                                                 events_url=events_url,
                                                 poll_interval=poll_interval, me=self.address)
                    started = time.perf_counter()
                    self.step()
                    self.timings.add("step", time.perf_counter() - started)
                    backoff = max(poll_interval, MIN_BACKOFF_SECONDS)
                    if not self.done and not self._step_again:
                        timeout = self._wake_in(recheck)
                        if self._lagging():  # look again soon: the node will catch up
                            timeout = min(timeout, poll_interval)
                        self._note(follower.wait(timeout, stop))
                except ContractRevert as exc:
                    self.log.error("the contract refused: %s; retrying in %.1f s", exc, backoff)
                except (ChainError, WeightStoreError) as exc:
                    self.log.warning("%s; retrying in %.1f s", exc, backoff)
                else:
                    continue
                if follower is not None:
                    self._close(follower)
                    follower = None
                _sleep(backoff, stop)
                backoff = min(backoff * 2, max_backoff)
        finally:
            if follower is not None:
                self._close(follower)
        if self.done:
            self.log.info("experiment %d complete; model 0x%s", self.experiment_id,
                          self.model_digest.hex())

    def _wake_in(self, recheck: float) -> float:
        """Seconds to wait for events before stepping anyway: until the current phase's
        deadline while it runs (plus slack), else ``recheck`` (what comes next, such as
        the closing of a round this agent just closed, is announced by an event)."""
        status = self.status
        if status is None or status.state not in _TIMED:
            return recheck
        until_deadline = self._seconds_left(status)
        relayed = {RoundState.VOTING: self._relayed_commit if self._sealed()
                   else self._relayed_vote, RoundState.REVEALING: self._relayed_reveal}
        done = status.committed if status.state == RoundState.VOTING and self._sealed() \
            else status.voted
        if relayed.get(status.state) == status.round and not done:
            # the relay holds this agent's call: check it landed before the fallback time
            return min(recheck, max(0.0, until_deadline - self.settings.relay_fallback_seconds))
        return min(recheck, max(0.0, until_deadline) + DEADLINE_SLACK_SECONDS)

    def _seconds_left(self, status: RoundStatus) -> float:
        """Seconds until the current phase's deadline, on the chain's clock."""
        return status.deadline - status.timestamp - (time.monotonic() - self._status_read_at)

    def _note(self, logs: list[RawLog]) -> None:
        """Notes how far the events that woke the agent go, and keeps the proposals among
        them: judging those needs no log query."""
        proposed = self.client.event_topic("WeightsProposed")
        committed = self.client.event_topic("CommitsComplete")
        closed = (self.client.event_topic("RoundDecided"),
                  self.client.event_topic("RoundExpired"))
        started = (self.client.event_topic("ExperimentStarted"),
                   self.client.event_topic("ExperimentCancelled"))
        for entry in logs:
            if entry.removed or not entry.topics:
                continue
            if entry.topics[0] in started:
                self._start_announced = True
                continue
            if entry.topics[0] not in (proposed, committed, *closed) or len(entry.topics) < 3:
                continue  # a join: the next status read shows it
            round_index = int.from_bytes(entry.topics[2], "big")
            if entry.topics[0] in closed:
                self._announced = max(self._announced, (round_index + 1, 0))
            elif entry.topics[0] == committed:
                self._announced = max(self._announced, (round_index, 2))
            elif entry.topics[0] == proposed:
                self._announced = max(self._announced, (round_index, 1))
                try:
                    proposal = self.client.proposal_from_log(entry)
                except ValueError:
                    continue  # not one this agent can use: the logs have it
                if proposal.experiment_id == self.experiment_id:
                    self._proposals[proposal.round] = proposal

    def _lagging(self) -> bool:
        """Whether the latest status is behind what events announced already."""
        status = self.status
        if status is None or status.state in (RoundState.COMPLETED, RoundState.CANCELLED):
            return False
        if status.state in (RoundState.JOINING, RoundState.JOIN_TIMED_OUT):
            return self._start_announced
        return (status.round, _PHASE.get(status.state, 0)) < self._announced

    def _close(self, follower: EventFollower) -> None:
        follower.close()
        self.timings.add("follow", follower.busy_seconds)

    def step(self) -> bool:
        """Does what the chain asks of this learner now. Returns whether it acted."""
        created = self._experiment()
        with self.timings.measure("status"):
            status = self.client.round_status(self.experiment_id, self.address)
        self.status, self._status_read_at = status, time.monotonic()
        self._step_again = False
        state, round_index = status.state, status.round
        if state in (RoundState.JOINING, RoundState.JOIN_TIMED_OUT, RoundState.CANCELLED):
            return self._joining(status)
        if self._joined_count is not None:
            self._report(f"experiment {self.experiment_id} started: every learner joined")
            self._joined_count = None
        acted = self._sync_model(status.model_digest, status.model_round)
        if state == RoundState.COMPLETED:
            self._settle()
            self.done = True
            return acted
        sealed = self._sealed()
        if sealed:
            self._opening_store().forget_before(round_index)
        if self._held is not None and self._held[0] < round_index:
            self._held = None  # its round was rejected (accepted, it was adopted above)
        is_proposer = self._index == round_index % len(created.learners)
        try:
            if state == RoundState.PROPOSING and is_proposer and not self.budget_exhausted:
                return self._propose(round_index) or acted
            if state == RoundState.VOTING and not is_proposer:
                if sealed:
                    return self._commit(round_index, status) or acted
                return self._vote(round_index, status.voted) or acted
            if state == RoundState.REVEALING and not is_proposer:
                return self._reveal(round_index, status) or acted
            if state in (RoundState.PROPOSAL_TIMED_OUT, RoundState.VOTING_TIMED_OUT,
                         RoundState.REVEAL_TIMED_OUT) and \
                    self.relay is not None and not self._can_pay():
                return acted  # the relay closes rounds for learners without ETH
            if state == RoundState.PROPOSAL_TIMED_OUT:
                with self.timings.measure("transactions"):
                    self.client.expire(self.experiment_id, round_index)
                self.log.info("round %d: closed as expired (no proposal in time)", round_index)
                return True
            if state in (RoundState.VOTING_TIMED_OUT, RoundState.REVEAL_TIMED_OUT):
                with self.timings.measure("transactions"):
                    self.client.decide(self.experiment_id, round_index)
                self.log.info("round %d: decided after the %s deadline", round_index,
                              "reveal" if state == RoundState.REVEAL_TIMED_OUT else "voting")
                return True
        except ContractRevert as exc:
            if exc.name not in _RACE_ERRORS:
                raise
            self.log.debug("round %d: %s (another participant moved first)", round_index, exc)
            self._step_again = True
            return True
        return acted

    # --------------------------------------------------------------- actions

    def _joining(self, status: RoundStatus) -> bool:
        """Before round 0: joins (once), reports how many learners the start waits for,
        and cancels the experiment once its join deadline passed with a learner missing.
        Raises :class:`ExperimentCancelled` once it is cancelled."""
        n = len(self._experiment().learners)
        if status.state == RoundState.CANCELLED:
            if status.joined:
                self._settle()  # a staked experiment refunds the stake
            joined = self.client.experiment(self.experiment_id).joined
            raise ExperimentCancelled(
                f"experiment {self.experiment_id} was cancelled: {n - joined} of {n} learners "
                f"did not join before the join deadline")
        acted = False
        try:
            if status.state == RoundState.JOINING and not status.joined:
                self._join()
                acted = True
            elif status.state == RoundState.JOIN_TIMED_OUT:
                if self.relay is not None and not self._can_pay():
                    return False  # the relay cancels for learners without ETH
                with self.timings.measure("transactions"):
                    self.client.cancel(self.experiment_id)
                self.log.warning("experiment %d: cancelled (the join deadline passed with a "
                                 "learner missing)", self.experiment_id)
                self._step_again = True
                return True
        except ContractRevert as exc:
            if exc.name not in _RACE_ERRORS:
                raise
            self.log.debug("joining: %s (another participant moved first)", exc)
            self._step_again = True
            return True
        joined = self.client.experiment(self.experiment_id).joined
        if joined != self._joined_count and joined < n:
            if acted:
                self._report(f"joined experiment {self.experiment_id}; waiting for "
                             f"{n - joined} learner{'s' if n - joined > 1 else ''}")
            else:
                self._report(f"experiment {self.experiment_id}: {joined} of {n} learners "
                             f"joined; waiting for {n - joined}")
            self._joined_count = joined
        elif acted:  # the last join: it started round 0
            self._report(f"joined experiment {self.experiment_id}; every learner has joined: "
                         f"experiment {self.experiment_id} started")
            self._step_again = True
        return acted

    def _report(self, message: str) -> None:
        self.log.info("%s", message)
        if self.settings.notify is not None:
            self.settings.notify(message)

    def _join(self) -> None:
        """Joins directly, or hands a signed join to the relay (directly if it refuses).
        A join that deposits a stake is always direct (a relayer cannot pay it)."""
        options = self._experiment().options
        if options.stake > 0:
            self._check_funds(options.stake, options.token if not options.in_eth else None)
        if self.relay is not None and options.stake == 0:
            signed = sign_join(self.account, chain_id=self.client.chain_id,
                               contract=self.client.address, experiment_id=self.experiment_id,
                               learner_index=self._learner_index())
            try:
                with self.timings.measure("transactions"):
                    self.relay.submit_join(signed)
                self.log.info("join handed to the relay")
                return
            except RelayError as exc:
                self.log.warning("join not relayed (%s); joining directly", exc)
        with self.timings.measure("transactions"):
            self.client.join(self.experiment_id)

    def _learner_index(self) -> int:
        """This learner's index in the experiment's list (its place in the schedule)."""
        self._experiment()
        assert self._index is not None
        return self._index

    def _experiment(self) -> ExperimentCreated:
        if self._created is None:
            created = self.client.experiment_created(self.experiment_id)
            if self.address not in created.learners:
                raise AgentError(
                    f"account {self.address} is not a learner in experiment {self.experiment_id}")
            index = created.learners.index(self.address)  # the contract's order: the schedule
            self._created, self._index = created, index
            self.log.info("acting for learner %d of experiment %d", index, self.experiment_id)
        return self._created

    def _proposal(self, round_index: int) -> WeightsProposed:
        """The proposal of a round: from the event that announced it, else from the logs
        (each query reads only blocks not read yet, from the experiment's creation on)."""
        if round_index not in self._proposals:
            cursor = self._proposals_from or self._experiment().block_number
            for proposal in self.client.proposals(self.experiment_id, from_block=cursor):
                self._proposals[proposal.round] = proposal
                self._proposals_from = max(cursor, proposal.block_number)
        if round_index not in self._proposals:
            raise ChainError(f"round {round_index} has no proposal in the logs")
        return self._proposals[round_index]

    def _sync_model(self, digest: bytes, model_round: int) -> bool:
        """Adopts the chain's current model if the learner does not hold it yet. A model it
        cannot load (a threshold-0 experiment accepts anything) is logged once and left:
        the learner keeps its last good weights and goes on proposing and voting."""
        if digest == self.model_digest or digest in self._unloadable:
            return False
        if self._held is not None and self._held[1] == digest:
            weights = self._held[2]  # verified when proposed or tested
        else:
            if model_round == 0:
                cid = self._experiment().initial_cid
            else:
                cid = self._proposal(model_round - 1).cid
            try:
                # Half the time left at most: this round's vote or proposal is still due.
                budget = self._time_to_act()
                weights = self._fetch(cid, digest, budget and max(1.0, budget / 2))
            except Rejected as exc:
                self._cannot_adopt(digest, f"{cid}: {exc}", permanent=exc.permanent)
                return False
        try:
            with self.timings.measure("learner"):
                self.learner.mli_accept_weights(Weights(weights=weights))
        except Exception as exc:  # noqa: BLE001 - peer data must not stop the agent
            self._cannot_adopt(digest, f"the learner refuses it: {describe(exc)}",
                               permanent=True)
            return False
        self.model_digest = digest
        self._failed_model = None
        self._held = None
        self.log.info("adopted model of %s", "the experiment's start" if model_round == 0
                      else f"round {model_round - 1}")
        return True

    def _cannot_adopt(self, digest: bytes, reason: str, *, permanent: bool) -> None:
        if permanent:  # content-addressed: the same digest can never load
            self._unloadable.add(digest)
        if self._failed_model != digest:
            self.log.error("cannot adopt the current model 0x%s (%s); keeping the last good "
                           "weights", digest.hex()[:16], reason)
            self._failed_model = digest

    def _propose(self, round_index: int) -> bool:
        with self.timings.measure("learner"):
            weights = self.learner.mli_propose_weights()
        summary = weights.training_summary
        if summary is not None and summary.error_code == ErrorCodes.DP_BUDGET_EXCEEDED:
            self.log.warning("round %d: privacy budget exhausted; no more proposals", round_index)
            self.budget_exhausted = True
            self.records[round_index] = RoundRecord(
                round=round_index, role="proposer", reason="privacy budget exhausted",
                training_summary=summary)
            return False
        data = encode_weights(weights.weights)
        digest = sha256(data)
        with self.timings.measure("store"):
            cid = self.store.put(data)
        if not self._relayed(round_index, "proposal", lambda relay: relay.submit_proposal(
                sign_proposal(self.account, chain_id=self.client.chain_id,
                              contract=self.client.address, experiment_id=self.experiment_id,
                              round_index=round_index, cid=cid, digest=digest))):
            with self.timings.measure("transactions"):
                self.client.propose(self.experiment_id, round_index, cid, digest)
        self._held = (round_index, digest, weights.weights)
        self.log.info("round %d: proposed %s", round_index, cid)
        with self.timings.measure("learner"):
            tested = self.learner.mli_test_weights(weights)
        self.records[round_index] = RoundRecord(
            round=round_index, role="proposer", vote_score=tested.vote_score,
            test_score=tested.test_score, training_summary=summary)
        return True

    def _verdict(self, round_index: int) -> _Verdict:
        """This learner's verdict on the round's proposal (tested once per proposal)."""
        verdict = self._verdicts.get(round_index)
        if verdict is None or (self.status is not None
                               and verdict.digest != self.status.proposal_digest):
            verdict = self._judge(round_index)
            self._verdicts = {round_index: verdict}
        return verdict

    def _relay_due(self, held: int | None, round_index: int, what: str) -> bool | None:
        """For a call the relay may hold: True while its batch is still due (wait), False
        once the fallback time came (act directly), None if the relay holds none."""
        if held != round_index:
            return None
        if self.status is not None and \
                self._seconds_left(self.status) > self.settings.relay_fallback_seconds:
            return True
        self.log.warning("round %d: the relay has not delivered this %s; sending it directly",
                         round_index, what)
        return False

    def _vote(self, round_index: int, voted: bool) -> bool:
        if voted:
            return False
        verdict = self._verdict(round_index)
        due = self._relay_due(self._relayed_vote, round_index, "vote")
        if due:
            return False  # the relay's batch is still due
        def relayed(relay: RelayClient) -> None:
            relay.submit_vote(sign_vote(
                self.account, chain_id=self.client.chain_id, contract=self.client.address,
                experiment_id=self.experiment_id, round_index=round_index,
                learner_index=self._learner_index(), digest=verdict.digest,
                approve=verdict.approve, score=verdict.score))

        if due is None and self._relayed(round_index, "vote", relayed):
            self._relayed_vote = round_index
            return True
        with self.timings.measure("transactions"):
            self.client.vote(self.experiment_id, round_index, verdict.digest, verdict.approve,
                             verdict.score)
        self.log.info("round %d: voted %s", round_index, "approve" if verdict.approve else "reject")
        return True

    # ----------------------------------------------------------- sealed votes

    def _sealed(self) -> bool:
        return self._experiment().options.sealed

    def _opening_store(self) -> OpeningStore:
        if self._openings is None:
            directory = self.settings.state_dir
            self._openings = OpeningStore(
                directory, chain_id=self.client.chain_id, contract=self.client.address,
                experiment_id=self.experiment_id, voter=self.address)
            if directory is None:
                self.log.warning("experiment %d has sealed votes and this agent keeps their "
                                 "openings in memory only (no state directory): if it "
                                 "restarts between commit and reveal, its vote is lost",
                                 self.experiment_id)
            elif self._openings.rounds:
                self.log.info("sealed-vote openings of round(s) %s read from %s",
                              self._openings.rounds, self._openings.path)
        return self._openings

    def _commit(self, round_index: int, status: RoundStatus) -> bool:
        """Sealed votes, commit window: tests the proposal, keeps the opening (on disk
        first), then commits to it (through the relay, or directly)."""
        if status.committed or status.voted:
            return False
        store = self._opening_store()
        opening = store.get(round_index, status.proposal_digest)
        if opening is None:
            verdict = self._verdict(round_index)
            if verdict.digest != status.proposal_digest:
                raise ChainError(f"round {round_index}: the proposal in the logs is not the "
                                 "round's (the node is lagging)")
            opening = VoteOpening(approve=verdict.approve, score=verdict.score,
                                  salt=secrets.token_bytes(32))
            store.put(round_index, verdict.digest, opening)  # before the commitment goes
        commitment = vote_commitment(self.experiment_id, round_index, self.address,
                                     status.proposal_digest, opening)
        due = self._relay_due(self._relayed_commit, round_index, "commitment")
        if due:
            return False
        def relayed(relay: RelayClient) -> None:
            relay.submit_commit(sign_commit(
                self.account, chain_id=self.client.chain_id, contract=self.client.address,
                experiment_id=self.experiment_id, round_index=round_index,
                learner_index=self._learner_index(), commitment=commitment))

        if due is None and self._relayed(round_index, "commitment", relayed):
            self._relayed_commit = round_index
            return True
        with self.timings.measure("transactions"):
            self.client.commit_vote(self.experiment_id, round_index, commitment)
        self.log.info("round %d: committed a sealed vote", round_index)
        return True

    def _reveal(self, round_index: int, status: RoundStatus) -> bool:
        """Sealed votes, reveal window: opens this learner's commitment."""
        if status.voted:
            return False
        if not status.committed:
            self._once(round_index, "uncommitted", logging.WARNING,
                       "this learner committed no vote in time: nothing to reveal")
            return False
        opening = self._opening_store().get(round_index, status.proposal_digest)
        if opening is None:
            self._once(round_index, "lost", logging.ERROR,
                       "the opening of this learner's sealed vote is lost (kept in "
                       "memory only, or its state file is gone): the vote cannot be revealed")
            return False
        due = self._relay_due(self._relayed_reveal, round_index, "reveal")
        if due:
            return False
        request = RevealRequest(chain_id=self.client.chain_id, contract=self.client.address,
                                experiment_id=self.experiment_id, round=round_index,
                                voter=self.address, learner_index=self._learner_index(),
                                opening=opening)
        if due is None and self._relayed(round_index, "reveal",
                                         lambda relay: relay.submit_reveal(request)):
            self._relayed_reveal = round_index
            return True
        try:
            with self.timings.measure("transactions"):
                self.client.reveal_vote(self.experiment_id, round_index, opening)
        except ContractRevert as exc:
            if exc.name != "CommitmentMismatch":
                raise
            self._once(round_index, "mismatch", logging.ERROR,
                       f"the kept opening does not match the commitment on chain "
                       f"({exc}): the vote cannot be revealed")
            return False
        self.log.info("round %d: revealed its vote (%s)", round_index,
                      "approve" if opening.approve else "reject")
        return True

    def _once(self, round_index: int, what: str, level: int, message: str) -> None:
        if (round_index, what) not in self._said:
            self._said.add((round_index, what))
            self.log.log(level, "round %d: %s", round_index, message)

    # ------------------------------------------------------------------ stake

    def _check_funds(self, stake: int, token: str | None) -> None:
        """Raises :class:`AgentError` (one line) if the account cannot pay the stake."""
        held: int
        try:
            if token is None:
                held, unit = int(self.client.w3.eth.get_balance(self.address)), "wei"
            else:
                held = Erc20(self.client._rpc, token).balance_of(self.address)
                unit = f"units of token {token}"
        except Exception as exc:  # noqa: BLE001 - any transport failure
            raise ChainError(f"cannot read the balance: {exc}") from None
        if held < stake:
            raise AgentError(
                f"account {self.address} cannot pay the stake of experiment "
                f"{self.experiment_id}: it holds {held} {unit}, the stake is {stake} {unit}"
                + (" (plus gas)" if token is None else ""))

    def _settle(self) -> None:
        """At the end (completed or cancelled) of a staked experiment: withdraws what it
        owes this learner (once; nothing owed, or withdrawn already, is no error)."""
        options = self._experiment().options
        if not options.staked or self.withdrawn is not None:
            return
        unit = "wei" if options.in_eth else f"units of token {options.token}"
        try:
            owed = self.client.account_of(self.experiment_id, self.address).owed
            with self.timings.measure("transactions"):
                tx = self.client.withdraw(self.experiment_id)
        except ContractRevert as exc:
            if exc.name != "NothingToWithdraw":
                raise
            self.withdrawn = 0
            self._report(f"experiment {self.experiment_id}: nothing to withdraw (withdrawn "
                         "already, or nothing owed)")
            return
        self.withdrawn = self._withdrawn_amount(tx.block_number, owed)
        self._report(f"experiment {self.experiment_id}: withdrew {self.withdrawn} {unit}")

    def _withdrawn_amount(self, block: int, owed: int) -> int:
        """The amount of this account's FundsWithdrawn event in ``block`` (``owed``, as
        read before, if the event cannot be read)."""
        topic = self.client.event_topic("FundsWithdrawn")
        me = bytes.fromhex(self.address[2:]).rjust(32, b"\0")
        try:
            logs = self.client.raw_logs([topic, self.experiment_id.to_bytes(32, "big"), me],
                                        block, block)
        except ChainError:
            return owed
        amounts = [int.from_bytes(e.data[:32], "big") for e in logs if not e.removed]
        return amounts[-1] if amounts else owed

    def _relayed(self, round_index: int, what: str,
                 submit: Callable[[RelayClient], object]) -> bool:
        """Hands a signed call to the relay, if there is one; False if there is none or it
        refused (then the agent acts directly)."""
        if self.relay is None:
            return False
        try:
            with self.timings.measure("transactions"):
                submit(self.relay)
        except RelayError as exc:
            self.log.warning("round %d: %s not relayed (%s); sending it directly", round_index,
                             what, exc)
            return False
        self.log.info("round %d: %s handed to the relay", round_index, what)
        return True

    def _can_pay(self) -> bool:
        try:
            return self.client.w3.eth.get_balance(self.address) > 0
        except Exception as exc:  # noqa: BLE001 - any transport failure
            raise ChainError(f"cannot read the balance: {exc}") from None

    def _judge(self, round_index: int) -> _Verdict:
        """Tests the round's proposal. Whatever goes wrong with the peer's weights (fetch,
        digest, format, fit, or the learner failing on them) is a reject vote with
        ``NO_SCORE`` and the reason logged."""
        proposal = self._proposal(round_index)
        try:
            weights = self._fetch(proposal.cid, proposal.digest, self._time_to_act())
            with self.timings.measure("learner"):
                try:
                    tested = self.learner.mli_test_weights(Weights(weights=weights))
                except Exception as exc:  # noqa: BLE001 - peer data must not stop the agent
                    raise Rejected(f"testing failed: {describe(exc)}") from None
        except Rejected as exc:
            reason = one_line(str(exc))
            self.log.warning("round %d: rejecting proposal %s: %s", round_index,
                             one_line(proposal.cid, 80), reason)
            self.records[round_index] = RoundRecord(
                round=round_index, role="voter", approve=False, reason=reason)
            return _Verdict(digest=proposal.digest, approve=False, score=NO_SCORE,
                            reason=reason)
        self._held = (round_index, proposal.digest, weights)
        approve = bool(tested.vote)
        self.records[round_index] = RoundRecord(
            round=round_index, role="voter", vote_score=tested.vote_score,
            test_score=tested.test_score, approve=approve)
        return _Verdict(digest=proposal.digest, approve=approve,
                        score=score_to_fixed(tested.vote_score))

    def _time_to_act(self) -> float | None:
        """Seconds a fetch may take so that this agent's vote (or proposal) still lands
        before the current phase's deadline; None (the store's own limit) when no phase
        with a deadline is running."""
        status = self.status
        if status is None or status.state not in (RoundState.PROPOSING, RoundState.VOTING,
                                                  RoundState.REVEALING):
            return None
        left = self._seconds_left(status)
        return max(1.0, left - max(VOTE_MARGIN_SECONDS, 0.1 * left))

    def _fetch(self, cid: str, digest: bytes, timeout: float | None) -> Any:
        with self.timings.measure("store"):
            return self.verifier.fetch(cid, digest, timeout)


def _sleep(seconds: float, stop: threading.Event | None) -> None:
    if stop is None:
        time.sleep(seconds)
    else:
        stop.wait(seconds)


def run_in_process(agents: list[LearnerAgent], *, idle_sleep: float = 0.05,
                   on_step: Callable[[], None] | None = None,
                   on_idle: Callable[[], None] | None = None) -> None:
    """Steps every agent in turn until all are done (one process, one chain connection).
    After a pass in which no agent acted: ``on_idle()`` if given, else a sleep."""
    while not all(agent.done for agent in agents):
        acted = False
        for agent in agents:
            if not agent.done:
                acted = agent.step() or acted
        if on_step is not None:
            on_step()
        if not acted:
            if on_idle is not None:
                on_idle()
            else:
                time.sleep(idle_sleep)

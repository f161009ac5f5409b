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

import threading
import time
from collections.abc import Callable

from agents.agent.base import AgentError, ExperimentCancelled
from agents.agent.funds import Funds
from agents.agent.progress import Progress
from agents.agent.records import RoundRecord
from agents.agent.verify import Rejected, describe
from agents.agent.voting import Voter
from agents.chain.errors import ChainError, ContractRevert
from agents.chain.follow import EventFollower, follow_events
from agents.chain.logs import RawLog
from agents.chain.signing import sign_proposal
from agents.chain.types import RoundState, RoundStatus
from agents.storage.cid import content_digests
from agents.storage.store import WeightStoreError
from colearn_core.codec import encode_weights
from colearn_core.ml_interface import ErrorCodes, Weights

__all__ = ["AgentError", "ExperimentCancelled", "LearnerAgent", "run_in_process"]

# Shortest wait before retrying after an RPC or store error, whatever the poll interval.
MIN_BACKOFF_SECONDS = 0.5
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


class LearnerAgent(Voter, Funds, Progress):
    """Acts for one learner in one experiment (the constructor is :class:`AgentCore`'s:
    ``client``, ``store``, ``learner``, ``experiment_id``, ``relay``, ``settings``); its
    votes are :class:`Voter`'s, its join and stake :class:`Funds`', what it tells the
    person who started it :class:`Progress`'."""

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
                    with self.timings.measure("step"):
                        self.step()
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
                self._note_closing(entry)
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
        self.timings.add("follow", follower.busy_seconds, follower.busy_cpu_seconds)

    def step(self) -> bool:
        """Does what the chain asks of this learner now. Returns whether it acted."""
        created = self._experiment()
        self._ready()
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
        if self._held is not None and self._held[0] < round_index:
            self._held = None  # its round was rejected (accepted, it was adopted above)
        self._report_rounds(status)
        if state == RoundState.COMPLETED:
            self._settle()
            if not self.done:
                self._report(f"experiment {self.experiment_id} complete; final model "
                             f"0x{self.model_digest.hex()}")
            self.done = True
            return acted
        sealed = self._sealed()
        if sealed:
            self._opening_store().forget_before(round_index)
        is_proposer = self._index == round_index % len(created.learners)
        self._check_late(status, is_proposer)
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
        self._check_late(status, proposer=False)
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

    def adopt_current_model(self) -> bool:
        """Adopts the chain's current model now if the learner does not hold it yet (as
        every :meth:`step` does first), and does nothing else. Returns whether it did."""
        status = self.client.round_status(self.experiment_id, self.address)
        self.status, self._status_read_at = status, time.monotonic()
        if status.state in (RoundState.JOINING, RoundState.JOIN_TIMED_OUT,
                            RoundState.CANCELLED):
            return False
        return self._sync_model(status.model_digest, status.model_round)

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
        with self.timings.measure("store"):
            data = encode_weights(weights.weights)
            digests = content_digests(data)  # the digest on chain and the CID, in one pass
            cid = self.store.put(data, digests=digests)
        digest = digests.sha256
        del data  # not held while the learner tests: the proposal is its weights
        if not self._relayed(round_index, "proposal", lambda relay: relay.submit_proposal(
                sign_proposal(self.account, chain_id=self.client.chain_id,
                              contract=self.client.address, experiment_id=self.experiment_id,
                              round_index=round_index, cid=cid, digest=digest))):
            with self.timings.measure("transactions"):
                self.client.propose(self.experiment_id, round_index, cid, digest)
        self._held = (round_index, digest, weights.weights)
        self._acts[round_index] = f"proposed {cid}"
        self.log.info("round %d: proposed %s", round_index, cid)
        with self.timings.measure("learner"):
            tested = self.learner.mli_test_weights(weights)
        self.records[round_index] = RoundRecord(
            round=round_index, role="proposer", vote_score=tested.vote_score,
            test_score=tested.test_score, training_summary=summary)
        return True


def _sleep(seconds: float, stop: threading.Event | None) -> None:
    if stop is None:
        time.sleep(seconds)
    else:
        stop.wait(seconds)


def run_in_process(agents: list[LearnerAgent], *, idle_sleep: float = 0.05,
                   on_step: Callable[[], None] | None = None,
                   on_idle: Callable[[], None] | None = None,
                   until: Callable[[], bool] | None = None) -> None:
    """Steps every agent in turn until all are done, or until ``until()`` (asked before
    each agent's step) is true (one process, one chain connection). After a pass in which
    no agent acted: ``on_idle()`` if given, else a sleep."""
    while not all(agent.done for agent in agents):
        acted = False
        for agent in agents:
            if until is not None and until():
                return
            if not agent.done:
                acted = agent.step() or acted
        if on_step is not None:
            on_step()
        if not acted:
            if on_idle is not None:
                on_idle()
            else:
                time.sleep(idle_sleep)

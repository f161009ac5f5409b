"""The relay's service: checks signed calls, submits joins and proposals, queues each
round's votes (sealed votes: signed commitments, then openings checked against the
commitments on chain) and sends them in batches, and closes the timed-out rounds of the
experiments it watches (and cancels those whose join deadline passed unfilled).

What it spends gas on is bounded by what it was started for: the experiments it serves
(named at start), or, only when asked for ``any_experiment``, an experiment for which a
learner handed it a genuine signature for an open round. Every check that needs no chain
(domain, served experiment, the signature's signer) comes first; the chain is read only
for what the check needs (the signer's learner index, the round's status) and an
experiment is cached and watched only once a request passed them all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus

from agents.chain.client import CollectiveLearningClient
from agents.chain.errors import ChainError, ContractRevert
from agents.chain.logs import ExperimentCreated
from agents.chain.signing import (
    InvalidSignature,
    SignedCommit,
    SignedJoin,
    SignedProposal,
    SignedVote,
    vote_commitment,
)
from agents.chain.types import RoundState, RoundStatus, TxResult
from agents.relay.errors import Refused, RelayError
from agents.relay.queue import COMMIT, RETRY_BACKOFF_MAX, REVEAL, ROUND_GONE, VOTE, BatchQueue
from agents.relay.requests import RevealRequest

log = logging.getLogger(__name__)

# Contract errors meaning a join or proposal is on chain already (sent by someone else).
_DONE_ALREADY = {"AlreadyJoined"}


class Relay(BatchQueue):
    """Checks, queues and submits signed calls for one deployed contract. Thread-safe:
    HTTP handlers call :meth:`submit_vote` / :meth:`submit_commit` / :meth:`submit_reveal`
    / :meth:`submit_proposal` / :meth:`submit_join`, one loop calls
    :meth:`tick`. Chain reads run unlocked; one transaction is sent at a time."""

    def __init__(self, client: CollectiveLearningClient, *, experiments: Iterable[int] = (),
                 any_experiment: bool = False, batch_delay: float = 0.5):
        if client.account is None:
            raise RelayError("a relay needs an account to pay for transactions")
        served = list(dict.fromkeys(experiments))
        if not served and not any_experiment:
            raise RelayError("a relay serves the experiments it is started for "
                             "(--experiment ID), or any experiment if asked (--any-experiment)")
        super().__init__(client, batch_delay)
        self.any_experiment = any_experiment
        self.served = frozenset(served)
        self._watched: set[int] = set()
        self.proposals_relayed = 0
        self.joins_relayed = 0
        for experiment_id in served:
            try:
                self._remember(client.experiment_created(experiment_id))
            except ContractRevert as exc:
                raise RelayError(f"cannot serve experiment {experiment_id}: {exc}") from None

    @property
    def watched(self) -> frozenset[int]:
        """The experiments whose timed-out rounds this relay closes."""
        with self._lock:
            return frozenset(self._watched)

    # ------------------------------------------------------------ submissions

    def submit_vote(self, vote: SignedVote) -> bool:
        """Checks a signed vote and queues it (``False``: it is on chain already); raises
        :class:`Refused` with the reason."""
        experiment_id = vote.experiment_id
        signer, status = self._check_call(vote, vote.voter, vote.learner_index, vote.round,
                                          RoundState.VOTING, "votes")
        if vote.digest != status.proposal_digest:
            raise Refused(f"the vote names proposal 0x{vote.digest.hex()}, round {vote.round}'s "
                          f"is 0x{status.proposal_digest.hex()}")
        return self._queue_vote(vote, signer, self._created(experiment_id), status.voted, VOTE)

    def submit_commit(self, commit: SignedCommit) -> bool:
        """Checks a signed commitment (sealed votes) and queues it (``False``: this voter
        committed already); raises :class:`Refused` with the reason."""
        experiment_id = commit.experiment_id
        signer, status = self._check_call(commit, commit.voter, commit.learner_index,
                                          commit.round, RoundState.VOTING, "commitments")
        created = self._created(experiment_id)
        if not created.options.sealed:
            raise Refused(f"experiment {experiment_id} has public votes: send a vote, not a "
                          "commitment")
        return self._queue_vote(commit, signer, created, status.committed, COMMIT)

    def _queue_vote(self, call: SignedVote | SignedCommit, signer: str,
                    created: ExperimentCreated, done: bool, kind: str) -> bool:
        """Queues a checked vote or commitment unless its signer proposes the round
        (:class:`Refused`); ``False`` if it is on chain already (``done``)."""
        if created.proposer(call.round) == signer:
            raise Refused(f"learner {call.learner_index} ({signer}) proposes round "
                          f"{call.round}: the round's proposer cannot vote")
        self._remember(created)
        if done:
            return False
        self._enqueue(call, len(created.learners) - 1, kind)
        return True

    def submit_reveal(self, reveal: RevealRequest) -> bool:
        """Checks a sealed vote's opening against the voter's commitment on chain and
        queues it (``False``: the vote is revealed already); raises :class:`Refused`."""
        experiment_id, round_index, voter = reveal.experiment_id, reveal.round, reveal.voter
        _, status = self._check_call(reveal, voter, reveal.learner_index, round_index,
                                     RoundState.REVEALING, "reveals")
        if status.voted:
            return False
        if not status.committed:
            raise Refused(f"learner {reveal.learner_index} ({voter}) has no commitment in "
                          f"round {round_index}")
        created = self._created(experiment_id)
        on_chain = self._commitment(created, round_index, voter)
        opened = vote_commitment(experiment_id, round_index, voter, status.proposal_digest,
                                 reveal.opening)
        if on_chain != opened:
            raise Refused(f"the opening does not match the commitment of learner "
                          f"{reveal.learner_index} ({voter}) in round {round_index}")
        self._remember(created)
        committers = self.client.experiment(experiment_id).commitments
        self._enqueue(reveal, committers, REVEAL)
        return True

    def _commitment(self, created: ExperimentCreated, round_index: int,
                    voter: str) -> bytes | None:
        """The voter's commitment of the round, from its VoteCommitted logs."""
        topics = [self.client.event_topic("VoteCommitted"),
                  created.experiment_id.to_bytes(32, "big"),
                  bytes.fromhex(voter[2:]).rjust(32, b"\0")]
        found = None
        for entry in self.client.raw_logs(topics, created.block_number):
            if not entry.removed and len(entry.data) >= 64 and \
                    int.from_bytes(entry.data[:32], "big") == round_index:
                found = bytes(entry.data[32:64])
        return found

    def submit_proposal(self, proposal: SignedProposal) -> str:
        """Checks a signed proposal and submits it now; returns the transaction hash."""
        experiment_id = proposal.experiment_id
        signer, _ = self._check_call(proposal, proposal.proposer, None, proposal.round,
                                     RoundState.PROPOSING, "proposals")
        created = self._created(experiment_id)
        if created.proposer(proposal.round) != signer:
            raise Refused(f"{signer} is not the proposer of round {proposal.round} "
                          f"({created.proposer(proposal.round)} is)")
        self._remember(created)
        tx = self._send_now(lambda: self.client.propose_by_sig(proposal),
                            f"experiment {experiment_id} round {proposal.round}: "
                            f"proposal of {signer}")
        with self._lock:
            self.proposals_relayed += 1
        return tx.tx_hash

    def submit_join(self, join: SignedJoin) -> str | bool:
        """Checks a signed join and submits it now; returns the transaction hash
        (``False``: the learner has joined already)."""
        experiment_id = join.experiment_id
        signer, status = self._check_call(join, join.learner, join.learner_index)
        if status.joined:
            return False
        if status.state != RoundState.JOINING:
            raise Refused(f"experiment {experiment_id} is not open for joining (it is "
                          f"{status.state.name})")
        self._remember(self._created(experiment_id))
        try:
            tx = self._send_now(lambda: self.client.join_by_sig(join),
                                f"experiment {experiment_id}: join of learner "
                                f"{join.learner_index} ({signer})")
        except ContractRevert:  # AlreadyJoined: it joined meanwhile
            return False
        with self._lock:
            self.joins_relayed += 1
        return tx.tx_hash

    def _send_now(self, send: Callable[[], TxResult], what: str) -> TxResult:
        """Sends one checked call now (one transaction at a time: the payer's nonce) and logs
        it. The contract's refusal is :class:`Refused`, but for a revert that says the call
        is done already (:data:`_DONE_ALREADY`), raised as it is."""
        with self._send_lock:
            try:
                tx = send()
            except ContractRevert as exc:
                if exc.name in _DONE_ALREADY:
                    raise
                raise Refused(f"the contract refuses it: {exc}") from None
        log.info("%s submitted (%d gas of %d)", what, tx.gas_used, tx.gas_limit)
        return tx

    # ------------------------------------------------------------------ loop

    def tick(self) -> None:
        """Sends the batches that are due and closes the watched experiments' timed-out
        rounds; a chain failure is logged (one line) and tried again on a later tick."""
        self._send_due()
        with self._lock:
            watched = sorted(self._watched)
        for experiment_id in watched:
            try:
                self._close_if_timed_out(experiment_id)
            except ChainError as exc:
                log.warning("experiment %d: cannot close its round now: %s", experiment_id, exc)

    def run(self, stop: threading.Event, interval: float = 0.2) -> None:
        """Ticks until ``stop`` is set; whatever fails is one log line and a later try."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the loop outlives any one failure
                log.error("relay loop: %s: %s; retrying", type(exc).__name__, exc)
                stop.wait(min(RETRY_BACKOFF_MAX, interval * 10))
            stop.wait(interval)

    # ---------------------------------------------------------------- checks

    def _check_call(self, call: SignedVote | SignedCommit | SignedProposal | SignedJoin
                    | RevealRequest, claimed: str, learner_index: int | None,
                    round_index: int | None = None, state: RoundState | None = None,
                    what: str = "") -> tuple[str, RoundStatus]:
        """The checks every call passes, cheapest first: its domain and experiment, its
        signature (a reveal has none: the opening is checked against the commitment),
        the signer's place among the learners, then the round it names open for ``what``
        (``state``, if given). Returns the signer and its round status."""
        experiment_id = call.experiment_id
        self._check_target(call.chain_id, call.contract, experiment_id)
        signer = claimed if isinstance(call, RevealRequest) else self._signer(call, claimed)
        self._check_learner(experiment_id, signer, learner_index)
        status = self.client.round_status(experiment_id, signer)
        if state is not None and (status.round != round_index or status.state != state):
            raise Refused(f"round {round_index} is not open for {what} (round "
                          f"{status.round} is {status.state.name})")
        return signer, status

    def _check_target(self, chain_id: int, contract: str, experiment_id: int) -> None:
        if chain_id != self.client.chain_id or contract != self.client.address:
            raise Refused(f"signed for chain {chain_id} contract {contract}; this relay serves "
                          f"chain {self.client.chain_id} contract {self.client.address}")
        if not self.any_experiment and experiment_id not in self.served:
            raise Refused(f"this relay serves experiments {sorted(self.served)}, not "
                          f"experiment {experiment_id}", status=HTTPStatus.FORBIDDEN)

    @staticmethod
    def _signer(signed: SignedVote | SignedCommit | SignedProposal | SignedJoin,
                claimed: str) -> str:
        try:
            signer = signed.signer()
        except InvalidSignature as exc:
            raise Refused(f"invalid signature: {exc}", status=HTTPStatus.BAD_REQUEST) from None
        if signer != claimed:
            raise Refused(f"the signature is {signer}'s, not {claimed}'s")
        return signer

    def _check_learner(self, experiment_id: int, signer: str, claimed_index: int | None) -> None:
        """Refuses a signer who is not a learner of the experiment (or not the learner
        at ``claimed_index``), from the cache or with one call."""
        with self._lock:
            created = self._experiments.get(experiment_id)
        if created is not None:
            index = created.learners.index(signer) if signer in created.learners else None
        else:
            try:
                index = self.client.learner_index(experiment_id, signer)
            except ContractRevert as exc:
                raise Refused(f"experiment {experiment_id}: {exc}") from None
        if index is None:
            raise Refused(f"{signer} is not a learner of experiment {experiment_id}")
        if claimed_index is not None and index != claimed_index:
            raise Refused(f"{signer} is learner {index} of experiment {experiment_id}, "
                          f"not learner {claimed_index}")

    def _created(self, experiment_id: int) -> ExperimentCreated:
        """The experiment's creation event, from the cache or the chain (not cached here:
        see :meth:`_remember`)."""
        with self._lock:
            created = self._experiments.get(experiment_id)
        return created if created is not None else self.client.experiment_created(experiment_id)

    def _remember(self, created: ExperimentCreated) -> None:
        """Caches an experiment and watches it (until it completes)."""
        with self._lock:
            if created.experiment_id not in self._experiments:
                self._experiments[created.experiment_id] = created
                self._watched.add(created.experiment_id)
                log.info("experiment %d: watched from now on", created.experiment_id)

    def _close_if_timed_out(self, experiment_id: int) -> None:
        """Closes the experiment's current round if its deadline passed (cancels it if its
        join deadline passed with a learner missing), then drops the votes queued for
        rounds now closed; stops watching a complete or cancelled experiment."""
        status = self.client.round_status(experiment_id)
        over = status.state in (RoundState.COMPLETED, RoundState.CANCELLED)
        if over:
            with self._lock:
                self._watched.discard(experiment_id)
            log.info("experiment %d: %s, no longer watched", experiment_id,
                     status.state.name.lower())
        with self._send_lock:
            try:
                if status.state == RoundState.PROPOSAL_TIMED_OUT:
                    self.client.expire(experiment_id, status.round)
                    log.info("experiment %d round %d: expired", experiment_id, status.round)
                elif status.state == RoundState.JOIN_TIMED_OUT:
                    self.client.cancel(experiment_id)
                    log.info("experiment %d: cancelled (the join deadline passed with a "
                             "learner missing)", experiment_id)
                elif status.state in (RoundState.VOTING_TIMED_OUT,
                                      RoundState.REVEAL_TIMED_OUT):
                    self.client.decide(experiment_id, status.round)
                    log.info("experiment %d round %d: decided after the deadline",
                             experiment_id, status.round)
            except ContractRevert as exc:
                if exc.name not in ROUND_GONE and exc.name != "JoinStillOpen":
                    raise
        self._drop_closed(experiment_id, status)
        if over and experiment_id not in self.served:
            with self._lock:
                self._experiments.pop(experiment_id, None)

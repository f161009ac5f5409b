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
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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
from agents.chain.types import RoundState, TxResult
from agents.relay.errors import Refused, RelayError
from agents.relay.requests import RevealRequest

log = logging.getLogger(__name__)

# Contract errors meaning the round moved on: the queued votes of that round are moot.
_ROUND_GONE = {"WrongRound", "UnexpectedRoundState"}
# Contract errors naming the one vote of a batch at fault: the argument that names it.
_OFFENDER_ARG = {"ProposerCannotVote": "proposer", "AlreadyVoted": "voter",
                 "AlreadyCommitted": "voter", "NotCommitted": "voter",
                 "CommitmentMismatch": "voter",
                 "SignerMismatch": "learnerIndex", "InvalidLearnerIndex": "learnerIndex",
                 "ECDSAInvalidSignatureS": "s"}
# Contract errors meaning a join or proposal is on chain already (sent by someone else).
_DONE_ALREADY = {"AlreadyJoined"}
# Longest wait before a batch that failed in transit is tried again (seconds).
RETRY_BACKOFF_MAX = 5.0


# What a relay batches per round: public votes, sealed votes' commitments, their reveals.
_Item = SignedVote | SignedCommit | RevealRequest
VOTE, COMMIT, REVEAL = "vote", "commit", "reveal"
# The round state each kind of call needs.
_OPEN_IN = {VOTE: RoundState.VOTING, COMMIT: RoundState.VOTING, REVEAL: RoundState.REVEALING}
_Key = tuple[int, int, str]  # experiment, round, kind


class _RoundClosed(Exception):
    """The round of a queued batch is no longer open for its kind of call."""


@dataclass
class _Pending:
    """A round's queued calls of one kind, by voter address."""

    first_at: float
    votes: dict[str, _Item] = field(default_factory=dict)
    retry_at: float = 0.0
    failures: int = 0


class Relay:
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
        self.client = client
        self.any_experiment = any_experiment
        self.batch_delay = batch_delay
        self.served = frozenset(served)
        self._lock = threading.Lock()  # the state below
        self._send_lock = threading.Lock()  # one transaction at a time (the account's nonce)
        self._experiments: dict[int, ExperimentCreated] = {}
        self._watched: set[int] = set()
        self._pending: dict[_Key, _Pending] = {}
        self.batches_sent = 0
        self.votes_relayed = 0
        self.commits_relayed = 0
        self.reveals_relayed = 0
        self.votes_discarded = 0
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

    @property
    def votes_queued(self) -> int:
        with self._lock:
            return sum(len(p.votes) for k, p in self._pending.items() if k[2] == VOTE)

    @property
    def queued(self) -> dict[str, int]:
        """Calls waiting for their batch, per kind."""
        with self._lock:
            counts = dict.fromkeys((VOTE, COMMIT, REVEAL), 0)
            for key, pending in self._pending.items():
                counts[key[2]] += len(pending.votes)
            return counts

    # ------------------------------------------------------------ submissions

    def submit_vote(self, vote: SignedVote) -> bool:
        """Checks a signed vote and queues it (``False``: it is on chain already); raises
        :class:`Refused` with the reason."""
        experiment_id = vote.experiment_id
        self._check_target(vote.chain_id, vote.contract, experiment_id)
        signer = self._signer(vote, vote.voter)
        self._check_learner(experiment_id, signer, vote.learner_index)
        status = self.client.round_status(experiment_id, signer)
        if status.round != vote.round or status.state != RoundState.VOTING:
            raise Refused(f"round {vote.round} is not open for votes (round {status.round} "
                          f"is {status.state.name})")
        if vote.digest != status.proposal_digest:
            raise Refused(f"the vote names proposal 0x{vote.digest.hex()}, round {vote.round}'s "
                          f"is 0x{status.proposal_digest.hex()}")
        created = self._created(experiment_id)
        if created.proposer(vote.round) == signer:
            raise Refused(f"learner {vote.learner_index} ({signer}) proposes round "
                          f"{vote.round}: the round's proposer cannot vote")
        self._remember(created)
        if status.voted:
            return False
        self._enqueue(vote, len(created.learners) - 1)
        return True

    def submit_commit(self, commit: SignedCommit) -> bool:
        """Checks a signed commitment (sealed votes) and queues it (``False``: this voter
        committed already); raises :class:`Refused` with the reason."""
        experiment_id = commit.experiment_id
        self._check_target(commit.chain_id, commit.contract, experiment_id)
        signer = self._signer(commit, commit.voter)
        self._check_learner(experiment_id, signer, commit.learner_index)
        status = self.client.round_status(experiment_id, signer)
        if status.round != commit.round or status.state != RoundState.VOTING:
            raise Refused(f"round {commit.round} is not open for commitments (round "
                          f"{status.round} is {status.state.name})")
        created = self._created(experiment_id)
        if not created.options.sealed:
            raise Refused(f"experiment {experiment_id} has public votes: send a vote, not a "
                          "commitment")
        if created.proposer(commit.round) == signer:
            raise Refused(f"learner {commit.learner_index} ({signer}) proposes round "
                          f"{commit.round}: the round's proposer cannot vote")
        self._remember(created)
        if status.committed:
            return False
        self._enqueue(commit, len(created.learners) - 1, COMMIT)
        return True

    def submit_reveal(self, reveal: RevealRequest) -> bool:
        """Checks a sealed vote's opening against the voter's commitment on chain and
        queues it (``False``: the vote is revealed already); raises :class:`Refused`."""
        experiment_id, round_index, voter = reveal.experiment_id, reveal.round, reveal.voter
        self._check_target(reveal.chain_id, reveal.contract, experiment_id)
        self._check_learner(experiment_id, voter, reveal.learner_index)
        status = self.client.round_status(experiment_id, voter)
        if status.round != round_index or status.state != RoundState.REVEALING:
            raise Refused(f"round {round_index} is not open for reveals (round "
                          f"{status.round} is {status.state.name})")
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
        self._check_target(proposal.chain_id, proposal.contract, experiment_id)
        signer = self._signer(proposal, proposal.proposer)
        self._check_learner(experiment_id, signer, None)
        status = self.client.round_status(experiment_id, signer)
        if status.round != proposal.round or status.state != RoundState.PROPOSING:
            raise Refused(f"round {proposal.round} is not open for proposals (round "
                          f"{status.round} is {status.state.name})")
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
        self._check_target(join.chain_id, join.contract, experiment_id)
        signer = self._signer(join, join.learner)
        self._check_learner(experiment_id, signer, join.learner_index)
        status = self.client.round_status(experiment_id, signer)
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
        now = time.monotonic()
        with self._lock:
            due = [key for key, p in self._pending.items()
                   if now - p.first_at >= self.batch_delay and now >= p.retry_at]
            watched = sorted(self._watched)
        for key in due:
            self._send_batch(key)
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

    # --------------------------------------------------------------- batches

    def _enqueue(self, vote: _Item, voters: int, kind: str = VOTE) -> None:
        """Queues a checked call; the batch goes at once when the ballot is complete."""
        key = (vote.experiment_id, vote.round, kind)
        with self._lock:
            pending = self._pending.setdefault(key, _Pending(first_at=time.monotonic()))
            pending.votes[vote.voter] = vote
            waiting = len(pending.votes)
        log.info("experiment %d round %d: %s of learner %d queued (%d waiting)",
                 vote.experiment_id, vote.round, kind, vote.learner_index, waiting)
        if waiting >= voters:
            self._send_batch(key)

    def _send_batch(self, key: _Key) -> None:
        """Sends a round's queued calls of one kind; they stay queued if the batch fails in
        transit, and are discarded (logged) only once the round is closed for them."""
        experiment_id, round_index, kind = key
        with self._send_lock:
            with self._lock:
                pending = self._pending.get(key)
                votes = list(pending.votes.values()) if pending is not None else []
            if pending is None or not votes:
                return
            try:
                done = self._submit(kind, experiment_id, round_index, votes)
            except _RoundClosed as exc:
                with self._lock:
                    discarded = self._pending.pop(key, _Pending(0.0)).votes
                    self.votes_discarded += len(discarded)
                log.warning("experiment %d round %d: %s; %d queued %ss discarded (learners "
                            "%s)", experiment_id, round_index, exc, len(discarded), kind,
                            sorted(v.learner_index for v in discarded.values()))
                return
            except ChainError as exc:
                with self._lock:
                    pending.failures += 1
                    delay = min(RETRY_BACKOFF_MAX, self.batch_delay * 2 ** pending.failures)
                    pending.retry_at = time.monotonic() + delay
                log.warning("experiment %d round %d: batch of %d %ss failed (%s); they stay "
                            "queued, next try in %.1f s", experiment_id, round_index,
                            len(votes), kind, exc, delay)
                return
            with self._lock:
                for vote in done:
                    if pending.votes.get(vote.voter) is vote:
                        del pending.votes[vote.voter]
                if not pending.votes:
                    self._pending.pop(key, None)

    def _submit(self, kind: str, experiment_id: int, round_index: int,
                votes: list[_Item]) -> list[_Item]:
        """Puts ``votes`` (calls of one kind) on chain, leaving out each one the contract
        refuses; returns those done with (landed, on chain already, or refused)."""
        status = self.client.round_status(experiment_id)
        if status.round != round_index or status.state != _OPEN_IN[kind]:
            raise _RoundClosed(f"the round closed for {kind}s (round {status.round} is "
                               f"{status.state.name})")
        learners = self._experiments[experiment_id].learners
        # Calls on chain already would be skipped by the contract; votes for another
        # proposal (a reorganization swapped it) would be refused: neither is sent.
        done = [v for v in votes if self._landed(kind, experiment_id, status.proposal_digest, v)]
        todo = [v for v in votes if v not in done]
        while todo:
            try:
                tx = self._send(kind, experiment_id, round_index, status.proposal_digest,
                                learners, todo)
            except ContractRevert as exc:
                if exc.name in _ROUND_GONE:
                    raise _RoundClosed(f"the round closed ({exc})") from None
                bad = self._offenders(exc, todo)
                if bad is None and len(todo) > 1:
                    log.warning("experiment %d round %d: the batch reverts with %s, which names "
                                "no %s: sending them one by one", experiment_id,
                                round_index, exc, kind)
                    for vote in todo:
                        done += self._submit(kind, experiment_id, round_index, [vote])
                    return done
                bad = bad or todo
                log.warning("experiment %d round %d: the batch reverts with %s; sending it "
                            "without learner(s) %s", experiment_id, round_index, exc,
                            [v.learner_index for v in bad])
                done += bad
                todo = [v for v in todo if v not in bad]
                continue
            with self._lock:
                self.batches_sent += 1
                if kind == VOTE:
                    self.votes_relayed += len(todo)
                elif kind == COMMIT:
                    self.commits_relayed += len(todo)
                else:
                    self.reveals_relayed += len(todo)
            log.info("experiment %d round %d: %d %ss in one batch (%d gas of %d)",
                     experiment_id, round_index, len(todo), kind, tx.gas_used, tx.gas_limit)
            return done + todo
        return done

    def _landed(self, kind: str, experiment_id: int, digest: bytes, item: _Item) -> bool:
        """Whether a queued call need not be sent: on chain already (or, a vote, for
        another proposal than the round's)."""
        if isinstance(item, SignedVote):
            return item.digest != digest or self.client.vote_of(experiment_id, item.voter)[0]
        status = self.client.round_status(experiment_id, item.voter)
        return status.committed if kind == COMMIT else status.voted

    def _send(self, kind: str, experiment_id: int, round_index: int, digest: bytes,
              learners: list[str], items: list[_Item]) -> TxResult:
        if kind == VOTE:
            return self.client.cast_votes_by_sig(
                experiment_id, round_index, digest, learners,
                [v for v in items if isinstance(v, SignedVote)])
        if kind == COMMIT:
            return self.client.commit_votes_by_sig(
                experiment_id, round_index, learners,
                [c for c in items if isinstance(c, SignedCommit)])
        return self.client.reveal_votes(
            experiment_id, round_index, learners,
            [(r.learner_index, r.opening) for r in items if isinstance(r, RevealRequest)])

    @staticmethod
    def _offenders(exc: ContractRevert, votes: list[_Item]) -> list[_Item] | None:
        """The one call a batch's revert names (``None`` if it names none, or several)."""
        arg = _OFFENDER_ARG.get(exc.name)
        if arg is None or arg not in exc.error_args:
            return None
        value = exc.error_args[arg]
        named = [v for v in votes if value in (v.voter, v.learner_index) or (
            not isinstance(v, RevealRequest) and value == _low_bits(v.vs))]
        return named if len(named) == 1 else None

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
                if exc.name not in _ROUND_GONE and exc.name != "JoinStillOpen":
                    raise
        with self._lock:
            closed = [k for k in self._pending if k[0] == experiment_id and (
                k[1] < status.round or status.state != _OPEN_IN[k[2]])]
        for key in closed:
            self._send_batch(key)  # finds the round closed: discards its votes, logged
        if over and experiment_id not in self.served:
            with self._lock:
                self._experiments.pop(experiment_id, None)


def _low_bits(vs: bytes) -> bytes:
    """The ``s`` of an ERC-2098 ``vs`` (as the contract's ``ECDSAInvalidSignatureS``
    names it)."""
    return (int.from_bytes(vs, "big") & ((1 << 255) - 1)).to_bytes(32, "big")

"""The relay's batching queue: signed votes, sealed votes' commitments and their reveals,
queued per round and kind, sent in one transaction each when the ballot is complete or its
delay passed; a batch failing in transit stays queued (tried again with backoff), one the
contract refuses goes again without the call it names, one for a closed round is dropped."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from agents.chain.client import CollectiveLearningClient
from agents.chain.errors import ChainError, ContractRevert
from agents.chain.logs import ExperimentCreated
from agents.chain.signing import SignedCommit, SignedVote
from agents.chain.types import RoundState, RoundStatus, TxResult
from agents.relay.requests import RevealRequest

log = logging.getLogger(__name__)

# Contract errors meaning the round moved on: the queued votes of that round are moot.
ROUND_GONE = {"WrongRound", "UnexpectedRoundState"}
# Contract errors naming the one vote of a batch at fault: the argument that names it.
_OFFENDER_ARG = {"ProposerCannotVote": "proposer", "AlreadyVoted": "voter",
                 "AlreadyCommitted": "voter", "NotCommitted": "voter",
                 "CommitmentMismatch": "voter",
                 "SignerMismatch": "learnerIndex", "InvalidLearnerIndex": "learnerIndex",
                 "ECDSAInvalidSignatureS": "s"}
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


class BatchQueue:
    """Queues checked calls and sends them in batches for one deployed contract. Thread-safe:
    ``_lock`` guards the state, ``_send_lock`` keeps to one transaction at a time (the
    account's nonce)."""

    def __init__(self, client: CollectiveLearningClient, batch_delay: float):
        self.client = client
        self.batch_delay = batch_delay
        self._lock = threading.Lock()  # the state below
        self._send_lock = threading.Lock()  # one transaction at a time (the account's nonce)
        self._experiments: dict[int, ExperimentCreated] = {}
        self._pending: dict[_Key, _Pending] = {}
        self.batches_sent = 0
        self.votes_relayed = 0
        self.commits_relayed = 0
        self.reveals_relayed = 0
        self.votes_discarded = 0

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
                if exc.name in ROUND_GONE:
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


    def _send_due(self) -> None:
        """Sends the batches whose delay (and retry backoff) passed."""
        now = time.monotonic()
        with self._lock:
            due = [key for key, p in self._pending.items()
                   if now - p.first_at >= self.batch_delay and now >= p.retry_at]
        for key in due:
            self._send_batch(key)

    def _drop_closed(self, experiment_id: int, status: RoundStatus) -> None:
        """Drops (logged) the experiment's batches whose round ``status`` shows closed."""
        with self._lock:
            closed = [k for k in self._pending if k[0] == experiment_id and (
                k[1] < status.round or status.state != _OPEN_IN[k[2]])]
        for key in closed:
            self._send_batch(key)  # finds the round closed: discards its votes, logged


def _low_bits(vs: bytes) -> bytes:
    """The ``s`` of an ERC-2098 ``vs`` (as the contract's ``ECDSAInvalidSignatureS``
    names it)."""
    return (int.from_bytes(vs, "big") & ((1 << 255) - 1)).to_bytes(32, "big")

"""The contract's events (decoded types) and reading its logs through any provider:
ranged ``eth_getLogs`` queries.

Most hosted providers cap an ``eth_getLogs`` request (a range of 100, 2,000 or 10,000
blocks, or 10,000 results) and answer a larger one with an error. :class:`RangedLogs`
splits a block range into chunks, halves a chunk whenever the node refuses it as too large
(:func:`refuses_range` knows the common providers' codes and messages) and remembers the
largest range the node took, so the next read starts there. A chunked read always ends at
a block number, never at ``latest``: every chunk is then read at the same chain.

:meth:`RangedLogs.first` finds the first log of a kind (an experiment's creation) without
scanning a long chain chunk by chunk when it can: one query if the node takes the range,
else a bisection over the chain's state (``reached(block)``), else the chunked scan.

The client (:class:`agents.chain.client.CollectiveLearningClient`) owns one reader per
connection; the agent, the event follower, the relay, the history reader (audit, explorer,
demo, ``run_on_chain``) all read logs through it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict

from agents.chain.types import ExperimentOptions

log = logging.getLogger(__name__)

#: The first chunk tried after a node refused a range (then halved while refused).
DEFAULT_CHUNK_BLOCKS = 10_000
#: JSON-RPC error codes providers give a too large ``eth_getLogs``: -32005 limit exceeded
#: (Infura, geth's "query returned more than 10000 results"), -32600/-32602 invalid
#: request/params (Alchemy, Ankr, QuickNode, Cloudflare), -32614 (QuickNode), -32701.
RANGE_REFUSAL_CODES = frozenset({-32005, -32600, -32602, -32614, -32701})
_RANGE_REFUSAL = re.compile(
    r"block range|range (is )?too (large|wide|big)|too (large|wide|many blocks)"
    r"|more than \d[\d,]* (results|logs|blocks)|too many (results|logs|blocks)"
    r"|limit(ed)? (exceeded|to)|exceed(s|ed)? (the )?(max|limit)|response size"
    r"|exceeds? \d[\d,]* blocks|range limit|max(imum)? (block )?range|query timeout|HTTP 413",
    re.IGNORECASE)


class ExperimentSetup(BaseModel):
    """An experiment's configuration, as its ExperimentCreated event gives it, up to the
    initial digest: the typed event holds digests as bytes, the audit as 0x-hex text, so
    each declares ``initial_digest`` and, to keep the event's field order, what follows."""

    experiment_id: int
    creator: str
    learners: list[str]
    threshold_bps: int
    num_rounds: int
    proposal_timeout: int
    voting_timeout: int
    join_timeout: int  # seconds from creation for every learner to join
    initial_cid: str


class ExperimentCreated(ExperimentSetup):
    initial_digest: bytes
    metadata_cid: str
    options: ExperimentOptions  # sealed votes, stake (the event's `terms`)
    tx_hash: str
    block_number: int

    def proposer(self, round_index: int) -> str:
        return self.learners[round_index % len(self.learners)]


class LoggedEvent(BaseModel):
    """Fields common to every decoded event."""

    model_config = ConfigDict(frozen=True)

    experiment_id: int
    round: int
    tx_hash: str
    block_number: int
    log_index: int


class WeightsProposed(LoggedEvent):
    proposer: str
    cid: str
    digest: bytes


class VoteCast(LoggedEvent):
    voter: str
    approve: bool
    score: int  # scaled by SCORE_SCALE; NO_SCORE when the proposal could not be tested


class RoundDecided(LoggedEvent):
    accepted: bool
    approvals: int
    rejections: int


class RoundExpired(LoggedEvent):
    pass


class LearnerJoined(BaseModel):
    """A learner consented to the experiment's terms (``join``, or its signed join)."""

    model_config = ConfigDict(frozen=True)

    experiment_id: int
    learner: str
    tx_hash: str
    block_number: int
    log_index: int


class ExperimentStarted(BaseModel):
    """Every learner joined: round 0 starts at this block's time (the last join's)."""

    model_config = ConfigDict(frozen=True)

    experiment_id: int
    tx_hash: str
    block_number: int
    log_index: int


class ExperimentCancelled(ExperimentStarted):
    """The join deadline passed with a learner missing: the experiment ends, no round."""


class ExperimentCompleted(BaseModel):
    experiment_id: int
    model_digest: bytes
    model_round: int
    tx_hash: str
    block_number: int


class RawLog(NamedTuple):
    """A log as the node sent it (topics and data not decoded), for event followers."""

    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    tx_hash: str
    log_index: int
    removed: bool  # dropped by a reorganization of the chain


Topics = Sequence[None | bytes | Sequence[bytes]]
#: One ``eth_getLogs`` over [first, last]: no splitting.
Fetch = Callable[[Topics, int, int], list[RawLog]]


def refuses_range(exc: BaseException) -> bool:
    """Whether a failed ``eth_getLogs`` is a node refusing the range as too large (a
    smaller range may pass), rather than the node being unreachable or broken."""
    text = str(exc)
    if text.startswith("cannot reach") or "cannot reach the chain" in text:
        return False
    return getattr(exc, "code", None) in RANGE_REFUSAL_CODES or bool(_RANGE_REFUSAL.search(text))


class RangedLogs:
    """One connection's ranged log queries: ``fetch`` asks the node once; this splits,
    halves on refusal and remembers the node's limit (``max_blocks``; ``None`` until a
    refusal: the whole range in one query)."""

    def __init__(self, fetch: Fetch):
        self.fetch = fetch
        self.max_blocks: int | None = None
        self.queries = 0  # eth_getLogs requests sent, refused ones included
        self.refusals = 0

    def read(self, topics: Topics, first: int, last: int, *,
             chunk_blocks: int | None = None) -> list[RawLog]:
        """Every log matching ``topics`` in blocks ``first``..``last`` (both numbers)."""
        return [entry for chunk in self.chunks(topics, first, last, chunk_blocks=chunk_blocks)
                for entry in chunk]

    def chunks(self, topics: Topics, first: int, last: int, *,
               chunk_blocks: int | None = None) -> Iterator[list[RawLog]]:
        """The logs of ``first``..``last``, one list per query, in block order; a chunk
        the node refuses is halved (down to one block: then the node's error is raised)."""
        lo = first
        while lo <= last:
            size = min(x for x in (self.max_blocks, chunk_blocks, last - lo + 1) if x)
            hi = lo + size - 1
            try:
                entries = self._query(topics, lo, hi)
            except Exception as exc:
                if size == 1 or not refuses_range(exc):
                    raise
                self._refused(size, lo, hi, exc)
                continue
            yield entries
            lo = hi + 1

    def first(self, topics: Topics, first: int, last: int,
              reached: Callable[[int], bool] | None = None) -> RawLog | None:
        """The first log matching ``topics`` in ``first``..``last``: one query if the node
        takes the range; else, with ``reached`` (whether the log exists at a block: false,
        then true from its block on), a bisection to its block; else a chunked scan."""
        if first > last:
            return None
        if self.max_blocks is None or last - first + 1 <= self.max_blocks:
            try:
                return _first(self._query(topics, first, last))
            except Exception as exc:
                if not refuses_range(exc):
                    raise
                self._refused(last - first + 1, first, last, exc)
        if reached is not None:
            block = _bisect(first, last, reached)
            if block is not None:
                found = _first(self._query(topics, block, block))
                if found is not None:
                    return found
                log.info("no log at block %d, where the chain's state says it is: scanning",
                         block)
        for entries in self.chunks(topics, first, last):
            found = _first(entries)
            if found is not None:
                return found
        return None

    def _query(self, topics: Topics, lo: int, hi: int) -> list[RawLog]:
        self.queries += 1
        return self.fetch(topics, lo, hi)

    def _refused(self, size: int, lo: int, hi: int, exc: BaseException) -> None:
        self.refusals += 1
        limit = DEFAULT_CHUNK_BLOCKS if size > DEFAULT_CHUNK_BLOCKS else max(1, size // 2)
        if self.max_blocks is None or limit < self.max_blocks:
            self.max_blocks = limit
        log.info("eth_getLogs over blocks %d-%d refused (%s): %d blocks a query from now on",
                 lo, hi, str(exc)[:200], self.max_blocks)


def _first(entries: list[RawLog]) -> RawLog | None:
    return next((e for e in entries if not e.removed), None)


def _bisect(first: int, last: int, reached: Callable[[int], bool]) -> int | None:
    """The first block of ``first``..``last`` where ``reached`` holds, or ``None`` (it
    never does, or the node cannot answer for past blocks: not an archive node)."""
    try:
        if not reached(last):
            return None
        lo, hi = first, last
        while lo < hi:
            mid = (lo + hi) // 2
            if reached(mid):
                hi = mid
            else:
                lo = mid + 1
        return lo
    except Exception as exc:  # noqa: BLE001 - any failure: fall back to scanning
        log.info("cannot bisect blocks %d-%d by the chain's state (%s): scanning logs",
                 first, last, str(exc)[:200])
        return None


def raw_log_from_json(entry: dict[str, Any]) -> RawLog:
    """A log from its JSON-RPC form (``eth_getLogs`` entries, ``eth_subscribe`` results)."""
    return RawLog(tuple(bytes.fromhex(t[2:]) for t in entry["topics"]),
                  bytes.fromhex(entry["data"][2:]), int(entry["blockNumber"], 16),
                  entry["transactionHash"], int(entry["logIndex"], 16),
                  bool(entry.get("removed", False)))


def hex_topics(topics: Topics) -> list[Any]:
    """Topics as JSON-RPC wants them (``0x`` hex; ``None`` matches anything)."""
    def one(topic: Any) -> Any:
        if topic is None:
            return None
        if isinstance(topic, (bytes, bytearray)):
            return "0x" + bytes(topic).hex()
        return [one(t) for t in topic]

    return [one(t) for t in topics]

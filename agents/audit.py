"""An experiment's whole history rebuilt from the contract's events alone, for audits.

:class:`HistoryReader` asks the node for the contract's logs of one experiment in block
ranges (all six event types in one ``eth_getLogs`` per range, filtered by the contract and
the experiment-id topic; the range halves when a node refuses it as too large), decodes
them locally, and fetches each distinct block's header once (timestamps) and each distinct
transaction's receipt once (sender, gas), in JSON-RPC batches. It reads incrementally:
:meth:`HistoryReader.update` fetches only what landed since the last call (the explorer
relies on it).

:class:`History` is plain data (pydantic), so the checks of :mod:`agents.audit_checks`
run as well on a history read from a chain as on one doctored by hand in a test.

Nothing here trusts an agent or a results file; the contract's views are read once, at
the audited block, only to cross-check what the events say.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Self

import httpx
from eth_abi import decode as abi_decode
from eth_utils import event_abi_to_log_topic, to_checksum_address
from pydantic import BaseModel, Field
from web3 import Web3
from web3.providers import HTTPProvider

from agents.chain import (
    ChainError,
    CollectiveLearningClient,
    ContractRevert,
    RawLog,
    fixed_to_score,
    load_artifact,
)

log = logging.getLogger(__name__)

#: Blocks asked for in one ``eth_getLogs`` at first (halved while the node refuses).
DEFAULT_CHUNK_BLOCKS = 10_000
#: Requests in one JSON-RPC batch (block headers, receipts).
BATCH_SIZE = 500
EVENTS = ("ExperimentCreated", "WeightsProposed", "VoteCast", "RoundDecided", "RoundExpired",
          "ExperimentCompleted")

class UnknownExperiment(ChainError):
    """The contract has no experiment with that id."""


TxRole = Literal["propose", "proposeBySig", "vote", "castVotesBySig", "decide", "expire"]


# ------------------------------------------------------------------------ the history


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


class Vote(EventRef):
    voter: str
    learner_index: int  # -1: not a learner of the experiment
    approve: bool
    score: int  # fixed point, SCORE_SCALE; NO_SCORE: the voter could not test the proposal

    @property
    def vote_score(self) -> float | None:
        return fixed_to_score(self.score)


class Decision(EventRef):
    accepted: bool
    approvals: int
    rejections: int


class Expiry(EventRef):
    pass


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
    votes: list[Vote] = Field(default_factory=list)
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


class ExperimentConfig(EventRef):
    """The ExperimentCreated event: the experiment's configuration, fixed for its life."""

    experiment_id: int
    creator: str
    learners: list[str]
    threshold_bps: int
    num_rounds: int
    proposal_timeout: int
    voting_timeout: int
    initial_cid: str
    initial_digest: str
    metadata_cid: str

    def proposer(self, round_index: int) -> str:
        return self.learners[round_index % len(self.learners)]


class ChainView(BaseModel):
    """The contract's views at the audited block (a cross-check of the events)."""

    block_number: int
    round: int
    model_digest: str
    model_round: int


class FetchStats(BaseModel):
    from_block: int = 0
    to_block: int = 0
    log_queries: int = 0
    logs: int = 0
    blocks: int = 0
    receipts: int = 0
    batches: int = 0
    seconds: float = 0.0


class History(BaseModel):
    chain_id: int
    contract: str
    config: ExperimentConfig
    rounds: list[RoundHistory]
    completion: Completion | None = None
    view: ChainView | None = None
    stats: FetchStats = Field(default_factory=FetchStats)

    @property
    def experiment_id(self) -> int:
        return self.config.experiment_id

    @property
    def closed_rounds(self) -> int:
        return sum(1 for r in self.rounds if r.closed)

    @property
    def total_gas(self) -> int:
        return sum(r.gas for r in self.rounds)


# ------------------------------------------------------------------------- transport


class _Batch:
    """Block timestamps and receipts, many per request: JSON-RPC batches over HTTP, or
    one call at a time through web3 for the in-process chain."""

    def __init__(self, w3: Web3):
        self.w3 = w3
        self.requests = 0
        self._http: httpx.Client | None = None
        self._url = ""
        provider = w3.provider
        if isinstance(provider, HTTPProvider):
            self._url = str(provider.endpoint_uri)
            self._http = httpx.Client(timeout=120.0)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def _post(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        assert self._http is not None
        results: list[Any] = []
        for start in range(0, len(calls), BATCH_SIZE):
            chunk = calls[start:start + BATCH_SIZE]
            body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                    for i, (m, p) in enumerate(chunk)]
            self.requests += 1
            try:
                response = self._http.post(self._url, json=body)
            except httpx.HTTPError as exc:
                raise ChainError(f"cannot reach the chain at {self._url}: {exc}") from None
            if response.status_code != 200:
                raise ChainError(f"the node answered HTTP {response.status_code} to a batch")
            answers = response.json()
            if isinstance(answers, dict):  # a node that refuses batches answers one error
                raise ChainError(f"the node refused a batch request: "
                                 f"{answers.get('error', answers)}")
            by_id = {a.get("id"): a for a in answers}
            for i, (method, _) in enumerate(chunk):
                answer = by_id.get(i)
                if answer is None or "error" in answer:
                    problem = None if answer is None else answer["error"]
                    raise ChainError(f"{method} failed in a batch: {problem}")
                results.append(answer["result"])
        return results

    def timestamps(self, blocks: Sequence[int]) -> dict[int, int]:
        if not blocks:
            return {}
        if self._http is None:
            return {b: int(self.w3.eth.get_block(b)["timestamp"]) for b in blocks}
        headers = self._post([("eth_getBlockByNumber", [hex(b), False]) for b in blocks])
        out = {}
        for b, header in zip(blocks, headers):
            if header is None:
                raise ChainError(f"the node has no block {b}")
            out[b] = int(header["timestamp"], 16)
        return out

    def receipts(self, tx_hashes: Sequence[str]) -> dict[str, tuple[str, int]]:
        """(sender, gas used) per transaction."""
        if not tx_hashes:
            return {}
        if self._http is None:
            out = {}
            for h in tx_hashes:
                r = self.w3.eth.get_transaction_receipt(h)  # type: ignore[arg-type]
                out[h] = (to_checksum_address(r["from"]), int(r["gasUsed"]))
            return out
        receipts = self._post([("eth_getTransactionReceipt", [h]) for h in tx_hashes])
        out = {}
        for h, r in zip(tx_hashes, receipts):
            if r is None:
                raise ChainError(f"the node has no receipt for {h}")
            out[h] = (to_checksum_address(r["from"]), int(r["gasUsed"], 16))
        return out


# --------------------------------------------------------------------------- decoding


class EventDecoder:
    """Decodes the contract's events from raw logs."""

    def __init__(self) -> None:
        abi = [i for i in load_artifact()["abi"] if i.get("type") == "event"]
        self.topic = {i["name"]: event_abi_to_log_topic(i) for i in abi}
        self.name = {t: n for n, t in self.topic.items()}
        self.types = {i["name"]: [p["type"] for p in i["inputs"] if not p["indexed"]]
                      for i in abi}

    def topics(self, experiment_id: int) -> list[Any]:
        return [[self.topic[e] for e in EVENTS], experiment_id.to_bytes(32, "big")]

    def decode(self, entry: RawLog) -> tuple[str, dict[str, Any]]:
        """The event's name and fields (fixed-size ones decoded by hand: fast)."""
        name = self.name.get(entry.topics[0], "")
        t, d = entry.topics, entry.data
        if name == "VoteCast":
            return name, {"round": _uint(t[2]), "voter": _address(t[3]), "approve": d[31] == 1,
                          "score": int.from_bytes(d[32:64], "big", signed=True)}
        if name == "RoundDecided":
            return name, {"round": _uint(t[2]), "accepted": d[31] == 1,
                          "approvals": _uint(d[32:64]), "rejections": _uint(d[64:96])}
        if name == "RoundExpired":
            return name, {"round": _uint(t[2])}
        if name == "WeightsProposed":
            cid, digest = abi_decode(self.types[name], d)
            return name, {"round": _uint(t[2]), "proposer": _address(t[3]), "cid": cid,
                          "digest": "0x" + bytes(digest).hex()}
        if name == "ExperimentCompleted":
            return name, {"model_digest": "0x" + d[:32].hex(), "model_round": _uint(d[32:64])}
        if name == "ExperimentCreated":
            (learners, threshold, rounds, p_timeout, v_timeout, initial_cid, initial_digest,
             metadata_cid) = abi_decode(self.types[name], d)
            return name, {
                "experiment_id": _uint(t[1]), "creator": _address(t[2]),
                "learners": [to_checksum_address(a) for a in learners],
                "threshold_bps": threshold, "num_rounds": rounds, "proposal_timeout": p_timeout,
                "voting_timeout": v_timeout, "initial_cid": initial_cid,
                "initial_digest": "0x" + bytes(initial_digest).hex(),
                "metadata_cid": metadata_cid}
        raise ValueError(f"unknown event topic 0x{entry.topics[0].hex()}")


def _uint(word: bytes) -> int:
    return int.from_bytes(word, "big")


def _address(word: bytes) -> str:
    return to_checksum_address(word[-20:])


# ----------------------------------------------------------------------------- reader


class HistoryReader:
    """Reads one experiment's events, incrementally, and assembles its :class:`History`."""

    def __init__(self, client: CollectiveLearningClient, experiment_id: int, *,
                 from_block: int = 0, chunk_blocks: int = DEFAULT_CHUNK_BLOCKS):
        if experiment_id < 1:
            raise ValueError(f"experiment ids start at 1, not {experiment_id}")
        self.client = client
        self.experiment_id = experiment_id
        self.chunk_blocks = max(1, chunk_blocks)
        self.stats = FetchStats(from_block=from_block)
        self._decoder = EventDecoder()
        self._batch = _Batch(client.w3)
        self._first_block = from_block
        self._next_block = from_block
        self._events: list[tuple[str, dict[str, Any], RawLog]] = []
        self._timestamps: dict[int, int] = {}
        self._receipts: dict[str, tuple[str, int]] = {}
        self._view: ChainView | None = None
        self._located = False
        self.version = 0  # bumped whenever new events arrive

    def close(self) -> None:
        self._batch.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, to_block: int | None = None) -> bool:
        """Fetches the events logged since the last update, up to ``to_block`` (default:
        the latest block); returns whether any arrived."""
        started = time.perf_counter()
        latest = self.client.block_number() if to_block is None else to_block
        if latest < self._next_block - 1:  # the chain went back (a reorg, a dev snapshot)
            log.info("the chain is at block %d, behind block %d already read: reading again",
                     latest, self._next_block - 1)
            self._reset()
        if not self._located:
            self._locate(latest)
        before = len(self._events)
        if self._next_block <= latest:
            self._scan(self._next_block, latest)
            self._next_block = latest + 1
        new = self._events[before:]
        self._fetch_details(new)
        self._view = self._read_view(latest)
        self.stats.to_block = latest
        self.stats.blocks, self.stats.receipts = len(self._timestamps), len(self._receipts)
        self.stats.batches = self._batch.requests
        self.stats.seconds += time.perf_counter() - started
        if new:
            self.version += 1
        return bool(new)

    @property
    def view(self) -> ChainView | None:
        """The contract's views at the last update's block."""
        return self._view

    def history(self) -> History:
        """The experiment as read so far (call :meth:`update` first)."""
        created = [(f, e) for name, f, e in self._events if name == "ExperimentCreated"]
        if not created:
            raise self._unknown()
        fields, entry = created[0]
        config = ExperimentConfig(**fields, **self._ref(entry))
        return History(chain_id=self.client.chain_id, contract=self.client.address,
                       config=config, view=self._view, stats=self.stats.model_copy(),
                       **_assemble(config, self._events, self._ref, self._receipts))

    # ------------------------------------------------------------------ internals

    def _unknown(self) -> ChainError:
        count = self.client.experiment_count()
        return UnknownExperiment(f"experiment {self.experiment_id} does not exist in contract "
                          f"{self.client.address} (it has {count} experiment"
                          f"{'' if count == 1 else 's'})")

    def _reset(self) -> None:
        self._next_block = self._first_block
        self._events.clear()
        self._timestamps.clear()
        self._receipts.clear()
        self._located = False
        self.version += 1

    def _locate(self, latest: int) -> None:
        """Starts the scan at the experiment's creation block, found with one query for
        its creation event over the whole range; a node that refuses so wide a range gets
        the chunked scan from ``from_block`` instead."""
        self._located = True
        topics = [self._decoder.topic["ExperimentCreated"], self.experiment_id.to_bytes(32, "big")]
        try:
            self.stats.log_queries += 1
            found = self.client.raw_logs(topics, self._next_block, latest)
        except ContractRevert:
            raise
        except ChainError as exc:
            if "cannot reach" in str(exc):
                raise
            log.info("the node refused one query over blocks %d-%d (%s): scanning in chunks",
                     self._next_block, latest, exc)
            return
        found = [e for e in found if not e.removed]
        if not found:
            raise self._unknown()
        self._next_block = max(self._next_block, found[0].block_number)
        self.stats.from_block = self._next_block

    def _scan(self, first: int, last: int) -> None:
        topics = self._decoder.topics(self.experiment_id)
        size = self.chunk_blocks
        lo = first
        while lo <= last:
            hi = min(last, lo + size - 1)
            try:
                self.stats.log_queries += 1
                entries = self.client.raw_logs(topics, lo, hi)
            except ContractRevert:
                raise
            except ChainError as exc:
                if "cannot reach" in str(exc) or size == 1:
                    raise
                size = max(1, size // 2)
                log.info("eth_getLogs over %d-%d refused (%s): %d blocks a query", lo, hi, exc,
                         size)
                continue
            for entry in entries:
                if entry.removed:
                    continue
                name, fields = self._decoder.decode(entry)
                self._events.append((name, fields, entry))
            self.stats.logs += len(entries)
            lo = hi + 1

    def _fetch_details(self, events: Iterable[tuple[str, dict[str, Any], RawLog]]) -> None:
        blocks = sorted({e.block_number for _, _, e in events} - set(self._timestamps))
        txs = sorted({e.tx_hash for _, _, e in events} - set(self._receipts))
        self._timestamps.update(self._batch.timestamps(blocks))
        self._receipts.update(self._batch.receipts(txs))

    def _read_view(self, block: int) -> ChainView | None:
        try:
            info = self.client.experiment(self.experiment_id, block)
            digest, model_round = self.client.current_model(self.experiment_id, block)
        except ContractRevert:
            return None  # not created yet at that block
        return ChainView(block_number=block, round=info.round, model_digest="0x" + digest.hex(),
                         model_round=model_round)

    def _ref(self, entry: RawLog) -> dict[str, Any]:
        return {"tx_hash": entry.tx_hash, "block_number": entry.block_number,
                "log_index": entry.log_index,
                "timestamp": self._timestamps.get(entry.block_number, 0)}


def _assemble(config: ExperimentConfig, events: list[tuple[str, dict[str, Any], RawLog]],
              ref: Any, receipts: dict[str, tuple[str, int]]) -> dict[str, Any]:
    """Rounds (and the completion) from the decoded events, in log order."""
    index = {a: i for i, a in enumerate(config.learners)}
    rounds: dict[int, RoundHistory] = {}
    completion: Completion | None = None

    def row(r: int) -> RoundHistory:
        if r not in rounds:
            proposer = config.proposer(r)
            rounds[r] = RoundHistory(round=r, proposer=proposer, proposer_index=index[proposer])
        return rounds[r]

    tx_events: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    tx_round: dict[str, int] = {}
    for name, f, entry in events:
        if name == "ExperimentCreated":
            continue
        if name == "ExperimentCompleted":
            if completion is None:
                completion = Completion(**f, **ref(entry))
            continue
        rr = row(f["round"])
        tx_events.setdefault(entry.tx_hash, []).append((name, f))
        tx_round.setdefault(entry.tx_hash, rr.round)
        if name == "WeightsProposed":
            if rr.proposal is not None:
                rr.duplicates.append(name)
            else:
                rr.proposal = Proposal(proposer=f["proposer"], cid=f["cid"], digest=f["digest"],
                                       **ref(entry))
        elif name == "VoteCast":
            rr.votes.append(Vote(voter=f["voter"], learner_index=index.get(f["voter"], -1),
                                 approve=f["approve"], score=f["score"], **ref(entry)))
        elif name == "RoundDecided":
            if rr.decision is not None:
                rr.duplicates.append(name)
            else:
                rr.decision = Decision(accepted=f["accepted"], approvals=f["approvals"],
                                       rejections=f["rejections"], **ref(entry))
        elif name == "RoundExpired":
            if rr.expiry is not None:
                rr.duplicates.append(name)
            else:
                rr.expiry = Expiry(**ref(entry))

    first_ref: dict[str, dict[str, Any]] = {}
    for _, _, entry in events:
        first_ref.setdefault(entry.tx_hash, ref(entry))
    for tx_hash, logged in tx_events.items():
        sender, gas = receipts.get(tx_hash, ("", 0))
        names = [n for n, _ in logged]
        at = first_ref[tx_hash]
        rounds[tx_round[tx_hash]].txs.append(TxRecord(
            hash=tx_hash, role=_role(logged, sender), sender=sender,
            block_number=at["block_number"], timestamp=at["timestamp"], gas_used=gas,
            events=len(logged), decides="VoteCast" in names and "RoundDecided" in names))
    return {"rounds": [rounds[r] for r in sorted(rounds)], "completion": completion}


def _role(logged: list[tuple[str, dict[str, Any]]], sender: str) -> TxRole:
    names = [n for n, _ in logged]
    if "WeightsProposed" in names:
        proposer = next(f["proposer"] for n, f in logged if n == "WeightsProposed")
        return "propose" if proposer == sender else "proposeBySig"
    votes = [f for n, f in logged if n == "VoteCast"]
    if votes:
        return "vote" if len(votes) == 1 and votes[0]["voter"] == sender else "castVotesBySig"
    return "expire" if "RoundExpired" in names else "decide"


def read_history(client: CollectiveLearningClient, experiment_id: int, *, from_block: int = 0,
                 chunk_blocks: int = DEFAULT_CHUNK_BLOCKS) -> History:
    """The experiment's whole history up to the latest block, from its events."""
    with HistoryReader(client, experiment_id, from_block=from_block,
                       chunk_blocks=chunk_blocks) as reader:
        reader.update()
        return reader.history()

"""Reading the contract's logs for an audit: the audit's errors, the one defensive decoder
of the contract's events, and JSON-RPC batches of block headers and receipts.

The audit may be pointed at any address, so nothing a contract there can emit is trusted:
:meth:`EventDecoder.decode` checks every log against the event's ABI (topic count, word
sizes, address padding, exact data length of static events, booleans that are 0 or 1,
well-formed dynamic data) and raises :class:`MalformedEvent`, and only that, for anything
else. Whether the decoded values make sense (round numbers, learner lists) is for the
checks (:mod:`agents.audit.checks`) to say.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import httpx
from eth_abi import decode as abi_decode
from eth_utils import event_abi_to_log_topic, to_checksum_address
from web3 import Web3
from web3.providers import HTTPProvider

from agents.chain.client import ChainError, RawLog, load_artifact

log = logging.getLogger(__name__)

#: Requests in one JSON-RPC batch (block headers, receipts).
BATCH_SIZE = 500
EVENTS = ("ExperimentCreated", "WeightsProposed", "VoteCast", "RoundDecided", "RoundExpired",
          "ExperimentCompleted", "LearnerJoined", "ExperimentStarted", "ExperimentCancelled")
#: The contract's bounds on an experiment (CollectiveLearning.sol's constants and types).
MIN_LEARNERS, MAX_LEARNERS = 2, 500
MAX_ROUNDS = 2**24 - 1  # numRounds, round and modelRound are uint24
MAX_TIMEOUT = 30 * 86_400  # every timeout (join, proposal, voting): 1 s to 30 days
MAX_THRESHOLD_BPS = 10_000
#: Largest uint256: experiment ids, and every number an event carries, fit it.
MAX_UINT256 = 2**256 - 1


class AuditError(ChainError):
    """The audit could not read what it needs from the chain (exit 1, one line)."""


class UnknownExperiment(AuditError):
    """The contract has no experiment with that id."""


class MalformedEvent(AuditError):
    """A log that does not decode as the contract's event (a hostile or broken contract)."""

    def __init__(self, event: str, reason: str):
        self.event = event
        self.reason = reason
        super().__init__(f"malformed {event} log: {reason}")


def check_experiment_id(experiment_id: int) -> int:
    """``experiment_id`` if it can name an experiment (1..2^256-1), else ``ValueError``."""
    if not 1 <= experiment_id <= MAX_UINT256:
        shown = str(experiment_id) if experiment_id.bit_length() < 64 else "out of range"
        raise ValueError(f"experiment ids run from 1 to 2^256 - 1, not {shown}")
    return experiment_id


# --------------------------------------------------------------------------- decoding


class EventDecoder:
    """Decodes the contract's nine events from raw logs; anything else is a
    :class:`MalformedEvent`. Fixed-size events are decoded by hand (fast), the two with
    strings and arrays by eth-abi, strictly."""

    def __init__(self) -> None:
        abi = [i for i in load_artifact()["abi"]
               if i.get("type") == "event" and i["name"] in EVENTS]  # not EIP712DomainChanged
        self.topic = {i["name"]: event_abi_to_log_topic(i) for i in abi}
        self.name = {t: n for n, t in self.topic.items()}
        self.types = {i["name"]: [p["type"] for p in i["inputs"] if not p["indexed"]]
                      for i in abi}
        #: Topics of each event: its signature's hash and one per indexed parameter.
        self.topic_count = {i["name"]: 1 + sum(1 for p in i["inputs"] if p["indexed"])
                            for i in abi}

    def topics(self, experiment_id: int) -> list[Any]:
        """The ``eth_getLogs`` topic filter: any of the nine events, of this experiment."""
        return [[self.topic[e] for e in EVENTS], experiment_id.to_bytes(32, "big")]

    def decode(self, entry: RawLog, experiment_id: int | None = None
               ) -> tuple[str, dict[str, Any]]:
        """The event's name and fields; :class:`MalformedEvent` for any log that the
        contract's ABI cannot have produced (or, with ``experiment_id``, that is another
        experiment's)."""
        topics, data = entry.topics, bytes(entry.data)
        if not topics or len(topics[0]) != 32:
            raise MalformedEvent("unknown", "no event signature topic")
        name = self.name.get(bytes(topics[0]))
        if name is None:
            raise MalformedEvent("unknown", f"unknown event topic 0x{bytes(topics[0]).hex()}")
        if len(topics) != self.topic_count[name]:
            raise MalformedEvent(name, f"{len(topics)} topics, not {self.topic_count[name]}")
        if any(len(t) != 32 for t in topics):
            raise MalformedEvent(name, "a topic is not 32 bytes")
        logged_for = _uint(topics[1])
        if experiment_id is not None and logged_for != experiment_id:
            raise MalformedEvent(name, f"logged for experiment {logged_for}, not {experiment_id}")
        return name, getattr(self, f"_{name}")(name, topics, data)

    # One method per event: topics are checked for count and size already.

    def _VoteCast(self, name: str, t: Sequence[bytes], d: bytes) -> dict[str, Any]:
        _static(name, d, 2)
        return {"round": _uint(t[2]), "voter": _address(name, t[3]),
                "approve": _bool(name, d[0:32]),
                "score": int.from_bytes(d[32:64], "big", signed=True)}

    def _RoundDecided(self, name: str, t: Sequence[bytes], d: bytes) -> dict[str, Any]:
        _static(name, d, 3)
        return {"round": _uint(t[2]), "accepted": _bool(name, d[0:32]),
                "approvals": _uint(d[32:64]), "rejections": _uint(d[64:96])}

    def _RoundExpired(self, name: str, t: Sequence[bytes], d: bytes) -> dict[str, Any]:
        _static(name, d, 0)
        return {"round": _uint(t[2])}

    def _ExperimentCompleted(self, name: str, t: Sequence[bytes], d: bytes) -> dict[str, Any]:
        _static(name, d, 2)
        return {"model_digest": "0x" + d[:32].hex(), "model_round": _uint(d[32:64])}

    def _LearnerJoined(self, name: str, t: Sequence[bytes], d: bytes) -> dict[str, Any]:
        _static(name, d, 0)
        return {"learner": _address(name, t[2])}

    def _ExperimentStarted(self, name: str, t: Sequence[bytes], d: bytes) -> dict[str, Any]:
        _static(name, d, 0)
        return {}

    def _ExperimentCancelled(self, name: str, t: Sequence[bytes], d: bytes) -> dict[str, Any]:
        _static(name, d, 0)
        return {}

    def _WeightsProposed(self, name: str, t: Sequence[bytes], d: bytes) -> dict[str, Any]:
        cid, digest = self._abi(name, d)
        return {"round": _uint(t[2]), "proposer": _address(name, t[3]), "cid": cid,
                "digest": "0x" + bytes(digest).hex()}

    def _ExperimentCreated(self, name: str, t: Sequence[bytes], d: bytes) -> dict[str, Any]:
        (learners, threshold, rounds, p_timeout, v_timeout, j_timeout, initial_cid,
         initial_digest, metadata_cid) = self._abi(name, d)
        return {
            "experiment_id": _uint(t[1]), "creator": _address(name, t[2]),
            "learners": [to_checksum_address(a) for a in learners],
            "threshold_bps": threshold, "num_rounds": rounds, "proposal_timeout": p_timeout,
            "voting_timeout": v_timeout, "join_timeout": j_timeout, "initial_cid": initial_cid,
            "initial_digest": "0x" + bytes(initial_digest).hex(), "metadata_cid": metadata_cid}

    def _abi(self, name: str, data: bytes) -> tuple[Any, ...]:
        try:
            return tuple(abi_decode(self.types[name], data, strict=True))
        except Exception as exc:  # noqa: BLE001 - eth-abi's DecodingError, UnicodeDecodeError
            # (strings), ValueError...: for hostile bytes, every one means the same thing.
            raise MalformedEvent(name, f"data does not decode: {brief(exc)}") from None


def _static(name: str, data: bytes, words: int) -> None:
    if len(data) != 32 * words:
        raise MalformedEvent(name, f"{len(data)} bytes of data, not {32 * words}")


def _uint(word: bytes) -> int:
    return int.from_bytes(word, "big")


def _bool(name: str, word: bytes) -> bool:
    value = _uint(word)
    if value > 1:
        raise MalformedEvent(name, "a boolean word is neither 0 nor 1")
    return value == 1


def _address(name: str, word: bytes) -> str:
    if any(word[:12]):
        raise MalformedEvent(name, "an address topic has non-zero padding")
    return to_checksum_address(word[-20:])


def brief(exc: BaseException, limit: int = 160) -> str:
    """An exception as one short line."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit - 1] + "…"


# ------------------------------------------------------------------------- transport


class Batch:
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
            out: dict[str, tuple[str, int]] = {}
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

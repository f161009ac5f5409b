"""The contract's ABI, decoded in one place: the shipped artifact, calls encoded and
results decoded with eth-abi alone (web3's contract machinery is slow on hot paths), and
the one decoder of the contract's events.

Nothing a contract can emit is trusted (the audit may be pointed at any address):
:meth:`EventDecoder.decode` checks every log against the event's ABI (topic count, word
sizes, address padding, exact data length of static events, booleans that are 0 or 1,
well-formed dynamic data) and raises :class:`~agents.chain.errors.MalformedEvent`, and only
that, for anything else. Whether the decoded values make sense (round numbers, learner
lists) is for the audit's checks to say.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import (
    event_abi_to_log_topic,
    function_signature_to_4byte_selector,
    to_checksum_address,
)

from agents.chain.errors import MalformedEvent, brief, node_answer
from agents.chain.logs import RawLog

CONTRACT_NAME = "CollectiveLearning"
#: The contract's ``Penalty`` enum, by value.
PENALTIES = ("missed_proposal", "unrevealed_vote", "rejected_proposal")

EVENTS = ("ExperimentCreated", "WeightsProposed", "VoteCast", "RoundDecided", "RoundExpired",
          "ExperimentCompleted", "LearnerJoined", "ExperimentStarted", "ExperimentCancelled",
          "Deposited", "VoteSkipped", "VoteCommitted", "CommitsComplete", "PenaltyTaken",
          "FundsWithdrawn")

def load_artifact(name: str = CONTRACT_NAME) -> dict[str, Any]:
    """The compiled contract shipped with the package (ABI, bytecode, solc input)."""
    text = resources.files("agents").joinpath("artifacts", f"{name}.json").read_text()
    return json.loads(text)

class AbiFunction:
    """One contract function's selector and types, from the ABI: encodes calls and decodes
    results with eth-abi alone (web3's contract-call machinery is slow on hot paths)."""

    def __init__(self, item: dict[str, Any]):
        name = item["name"]
        self.inputs = [abi_type(i) for i in item["inputs"]]
        self.outputs = [abi_type(o) for o in item["outputs"]]
        self.selector = function_signature_to_4byte_selector(f"{name}({','.join(self.inputs)})")

    @classmethod
    def all(cls, abi: list[dict[str, Any]]) -> dict[str, AbiFunction]:
        """Every function of the ABI by name (the contract overloads none)."""
        return {item["name"]: cls(item) for item in abi if item.get("type") == "function"}

    def encode(self, *args: Any) -> bytes:
        return self.selector + abi_encode(self.inputs, args)

    def decode(self, data: bytes) -> tuple[Any, ...]:
        with node_answer("eth_call"):
            return abi_decode(self.outputs, data)

def abi_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){param['type'][len('tuple'):]}"
    return param["type"]

def word(value: int) -> bytes:
    """An indexed uint256 as its topic."""
    return value.to_bytes(32, "big")

class EventDecoder:
    """Decodes the contract's events (:data:`EVENTS`) from raw logs; anything else is a
    :class:`MalformedEvent`. Fixed-size events are decoded by hand (fast), the two with
    strings and arrays by eth-abi, strictly."""

    def __init__(self, abi: list[dict[str, Any]] | None = None) -> None:
        abi = [i for i in (load_artifact()["abi"] if abi is None else abi)
               if i.get("type") == "event" and i["name"] in EVENTS]  # not EIP712DomainChanged
        self.topic = {i["name"]: event_abi_to_log_topic(i) for i in abi}  # type: ignore[arg-type]
        self.name = {t: n for n, t in self.topic.items()}
        self.types = {i["name"]: [abi_type(p) for p in i["inputs"] if not p["indexed"]]
                      for i in abi}
        #: Topics of each event: its signature's hash and one per indexed parameter.
        self.topic_count = {i["name"]: 1 + sum(1 for p in i["inputs"] if p["indexed"])
                            for i in abi}

    def topics(self, experiment_id: int) -> list[Any]:
        """The ``eth_getLogs`` topic filter: any of the contract's events, of this experiment."""
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
         initial_digest, metadata_cid, terms) = self._abi(name, d)
        (reveal_timeout, token, stake, reward_pool, missed, unrevealed, rejected,
         rejection_share, proposer_share) = terms
        return {
            "experiment_id": _uint(t[1]), "creator": _address(name, t[2]),
            "learners": [to_checksum_address(a) for a in learners],
            "threshold_bps": threshold, "num_rounds": rounds, "proposal_timeout": p_timeout,
            "voting_timeout": v_timeout, "join_timeout": j_timeout, "initial_cid": initial_cid,
            "initial_digest": "0x" + bytes(initial_digest).hex(), "metadata_cid": metadata_cid,
            "options": {"reveal_timeout": reveal_timeout, "token": to_checksum_address(token),
                      "stake": stake, "reward_pool": reward_pool,
                      "missed_proposal_penalty": missed, "unrevealed_vote_penalty": unrevealed,
                      "rejected_proposal_penalty": rejected,
                      "rejection_share_bps": rejection_share,
                      "proposer_share_bps": proposer_share}}

    def _Deposited(self, name: str, t: Sequence[bytes], d: bytes) -> dict[str, Any]:
        _static(name, d, 1)
        return {"account": _address(name, t[2]), "amount": _uint(d)}

    def _FundsWithdrawn(self, name: str, t: Sequence[bytes], d: bytes) -> dict[str, Any]:
        _static(name, d, 1)
        return {"account": _address(name, t[2]), "amount": _uint(d)}

    def _VoteSkipped(self, name: str, t: Sequence[bytes], d: bytes) -> dict[str, Any]:
        _static(name, d, 0)
        return {"round": _uint(t[2]), "voter": _address(name, t[3])}

    def _VoteCommitted(self, name: str, t: Sequence[bytes], d: bytes) -> dict[str, Any]:
        _static(name, d, 2)
        return {"voter": _address(name, t[2]), "round": _uint(d[0:32]),
                "commitment": "0x" + d[32:64].hex()}

    def _CommitsComplete(self, name: str, t: Sequence[bytes], d: bytes) -> dict[str, Any]:
        _static(name, d, 0)
        return {"round": _uint(t[2])}

    def _PenaltyTaken(self, name: str, t: Sequence[bytes], d: bytes) -> dict[str, Any]:
        _static(name, d, 2)
        reason = _uint(d[0:32])
        if reason >= len(PENALTIES):
            raise MalformedEvent(name, f"penalty reason {reason} is not one of the contract's")
        return {"learner": _address(name, t[2]), "round": _uint(t[3]),
                "reason": PENALTIES[reason], "amount": _uint(d[32:64])}

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

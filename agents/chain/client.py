"""Typed client for the CollectiveLearning contract.

Transactions are signed locally with an eth-account key and sent raw, so the same
code works on the in-process chain (eth-tester / py-evm), anvil, Hardhat or any
JSON-RPC node. Reverts come back as :class:`ContractRevert` carrying the contract's
custom error name and arguments.

What an agent does every round (:meth:`CollectiveLearningClient.round_status`, the round
transactions, raw log reads) skips web3's contract machinery: calls are encoded and
results decoded with eth-abi, JSON-RPC requests go out raw over one kept-alive
connection, and transactions are built, priced and signed here with the nonce kept
between them.
"""

from __future__ import annotations

import ast
import http.client
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import IntEnum
from functools import cached_property
from importlib import resources
from typing import Any, NamedTuple, Union
from urllib.parse import urlsplit

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import (
    event_abi_to_log_topic,
    function_signature_to_4byte_selector,
    to_checksum_address,
)
from pydantic import BaseModel, ConfigDict
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TransactionNotFound,
    Web3Exception,
)
from web3.providers import HTTPProvider, JSONBaseProvider
from web3.types import BlockIdentifier

from agents.chain.logs import (  # the event types, re-exported
    ExperimentCancelled,
    ExperimentCompleted,
    ExperimentCreated,
    ExperimentStarted,
    LearnerJoined,
    LoggedEvent,  # noqa: F401
    RangedLogs,
    RawLog,
    RoundDecided,
    RoundExpired,
    Topics,
    VoteCast,
    WeightsProposed,
    hex_topics,
    raw_log_from_json,
)
from agents.chain.signing import SignedJoin, SignedProposal, SignedVote
from agents.experiment.spec import DEFAULT_JOIN_TIMEOUT, MAX_TIMEOUT  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

SCORE_SCALE = 10**18
# Gas limit of the per-round calls (no loops: their cost is bounded and far below this).
# Setting it skips a gas estimate per transaction; an eth_call first still surfaces reverts.
ROUND_CALL_GAS = 300_000
# Gas limit added per vote in a batch of signed votes (each costs about 10,000).
BATCH_GAS_PER_VOTE = 20_000
# Margin over eth_estimateGas for transactions whose cost grows with their input (signed
# calls: batches of votes, proposals with their CID).
GAS_ESTIMATE_MARGIN = 0.2
# EIP-7623 (Prague): a transaction pays at least 21000 + 10 gas per calldata token (a zero
# byte is one token, any other byte four), so its gas limit must reach that floor.
TX_BASE_GAS = 21_000
CALLDATA_FLOOR_PER_TOKEN = 10
# Seconds to wait for a round transaction's receipt before giving up (the agent retries).
RECEIPT_TIMEOUT = 120.0
# Priority fee when the node cannot suggest one (eth_maxPriorityFeePerGas unsupported).
DEFAULT_TIP = 10**9
NO_SCORE = -(2**255)
CONTRACT_NAME = "CollectiveLearning"


class ChainError(Exception):
    """A chain operation failed: unreachable node, missing contract, failed transaction."""


class ContractRevert(ChainError):
    """The contract refused a call with one of its custom errors."""

    def __init__(self, name: str, args: dict[str, Any]):
        self.name = name
        self.error_args = args
        rendered = ", ".join(f"{k}={_render(v)}" for k, v in args.items())
        super().__init__(f"{name}({rendered})")


class RoundState(IntEnum):
    PROPOSING = 0
    PROPOSAL_TIMED_OUT = 1
    VOTING = 2
    VOTING_TIMED_OUT = 3
    COMPLETED = 4
    JOINING = 5  # before round 0: waiting for learners to join, before the join deadline
    CANCELLED = 6  # cancelled after the join deadline with a learner missing: no round
    JOIN_TIMED_OUT = 7  # the join deadline passed with a learner missing: anyone may cancel


class ExperimentInfo(BaseModel):
    """The stored configuration and current round of an experiment."""

    num_learners: int
    threshold_bps: int
    num_rounds: int
    proposal_timeout: int
    voting_timeout: int
    round: int
    phase_start: int
    proposed: bool
    approvals: int
    rejections: int
    model_round: int  # 0: initial model; r + 1: proposal of round r
    join_timeout: int
    joined: int  # learners who joined


class RoundStatus(BaseModel):
    """The current round as one account needs it, read in one call at one block (the
    contract's ``roundStatus``)."""

    model_config = ConfigDict(frozen=True)

    round: int  # equals the number of rounds once complete
    state: RoundState
    deadline: int  # of the current phase (the join deadline while joining), on the chain's
    # clock; 0 once complete or cancelled
    model_digest: bytes
    model_round: int  # 0: initial model; r + 1: proposal of round r
    voted: bool  # whether the account voted in the current round
    joined: bool  # whether the account joined the experiment
    timestamp: int  # the block's timestamp: the clock every deadline is measured on
    base_fee: int  # the block's base fee (0 where a node leaves it out of calls)

    @property
    def seconds_left(self) -> int:
        """Chain seconds before the current phase's deadline (0 once it passed)."""
        return max(0, self.deadline - self.timestamp)


class TxResult(BaseModel):
    tx_hash: str
    gas_used: int
    block_number: int
    gas_limit: int = 0  # 0: not known (transactions sent through web3)


def load_artifact(name: str = CONTRACT_NAME) -> dict[str, Any]:
    """The compiled contract shipped with the package (ABI, bytecode, solc input)."""
    text = resources.files("agents").joinpath("artifacts", f"{name}.json").read_text()
    return json.loads(text)


def calldata_floor(data: bytes) -> int:
    """EIP-7623's floor: the least gas a transaction with this calldata may be given."""
    zeros = data.count(0)
    return TX_BASE_GAS + CALLDATA_FLOOR_PER_TOKEN * (zeros + 4 * (len(data) - zeros))


def estimated_gas_limit(estimate: int, data: bytes) -> int:
    """A gas limit from a node's estimate: the margin added, never below the calldata
    floor (a node may estimate without it: py-evm does)."""
    return max(estimate + int(estimate * GAS_ESTIMATE_MARGIN), calldata_floor(data))


def score_to_fixed(score: float) -> int:
    """A vote score as the contract's fixed-point integer."""
    try:
        fixed = round(float(score) * SCORE_SCALE)
    except (TypeError, ValueError, OverflowError):  # not a number, NaN or infinite
        return NO_SCORE
    return max(NO_SCORE + 1, min(2**255 - 1, fixed))  # an int256, never NO_SCORE itself


def fixed_to_score(value: int) -> float | None:
    return None if value == NO_SCORE else value / SCORE_SCALE


class CollectiveLearningClient:
    """One account's view of one deployed CollectiveLearning contract."""

    def __init__(self, w3: Web3, address: str, account: LocalAccount | None = None):
        self.w3 = w3
        self.account = account
        abi = load_artifact()["abi"]
        self.address = to_checksum_address(address)
        self.contract: Contract = w3.eth.contract(address=self.address, abi=abi)
        self._errors = _error_table(abi)
        # The hot path (status reads, round transactions, log polls) skips web3's contract
        # machinery: calls encoded and results decoded here, requests sent raw where the
        # provider speaks JSON-RPC.
        self._rpc = _rpc_for(w3, self._errors)
        self._functions = {name: _AbiFunction(abi, name, arity) for name, arity in (
            ("roundStatus", 2), ("propose", 4), ("vote", 4), ("decide", 2), ("expire", 2),
            ("castVotesBySig", 4), ("proposeBySig", 6), ("join", 1), ("joinBySig", 4),
            ("cancel", 1))}
        events = [item for item in abi if item.get("type") == "event"]
        self._topics = {item["name"]: event_abi_to_log_topic(item) for item in events}
        self._data_types = {item["name"]: [_abi_type(i) for i in item["inputs"]
                                           if not i["indexed"]] for item in events}
        self._status_calls: dict[tuple[int, str], dict[str, str]] = {}
        self._sender = None if account is None else _TxSender(
            self._rpc, account, lambda: self.chain_id)
        self._base_fee: int | None = None  # of the latest status read
        # Log reads: ranged, halved when the node refuses (the limit learned is shared by
        # the clients of other accounts made from this one, as are the creations found).
        self._ranges = RangedLogs(self.logs_once)
        self._created: dict[int, ExperimentCreated] = {}
        #: Where to start looking for an experiment's creation (a block at or before it).
        self.first_block = 0

    # ------------------------------------------------------------------ set-up

    @classmethod
    def deploy(cls, w3: Web3, account: LocalAccount) -> tuple[CollectiveLearningClient, TxResult]:
        artifact = load_artifact()
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        result, receipt = _send(w3, account, factory.constructor(), _error_table(artifact["abi"]))
        return cls(w3, receipt["contractAddress"], account), result

    def with_account(self, account: LocalAccount) -> CollectiveLearningClient:
        other = CollectiveLearningClient(self.w3, self.address, account)
        other._ranges.max_blocks = self._ranges.max_blocks
        other._created, other.first_block = self._created, self.first_block
        return other

    def check_deployed(self) -> None:
        """Raises :class:`ChainError` unless contract code is at the address."""
        try:
            code = self.w3.eth.get_code(self.address)
        except Exception as exc:  # noqa: BLE001 - any transport error means unreachable
            raise ChainError(f"cannot reach the chain: {exc}") from None
        if len(code) == 0:
            raise ChainError(f"no contract code at {self.address}")

    @cached_property
    def chain_id(self) -> int:
        return self.w3.eth.chain_id

    # ------------------------------------------------------------- transactions

    def create_experiment(
        self,
        learners: list[str],
        threshold_bps: int,
        num_rounds: int,
        proposal_timeout: int,
        voting_timeout: int,
        initial_cid: str,
        initial_digest: bytes,
        metadata_cid: str = "",
        join_timeout: int = DEFAULT_JOIN_TIMEOUT,
    ) -> tuple[int, TxResult]:
        """Creates an experiment (``Joining`` until every learner joins); returns its id
        and the transaction."""
        fn = self.contract.functions.createExperiment(
            [to_checksum_address(a) for a in learners],
            threshold_bps,
            num_rounds,
            proposal_timeout,
            voting_timeout,
            initial_cid,
            initial_digest,
            metadata_cid,
            join_timeout,
        )
        result, receipt = self._transact(fn)
        (event,) = self.contract.events.ExperimentCreated().process_receipt(receipt)
        return int(event["args"]["experimentId"]), result

    def join(self, experiment_id: int) -> TxResult:
        """Joins the experiment as this client's account (a listed learner consenting)."""
        return self._round_call("join", experiment_id)

    def join_by_sig(self, signed: SignedJoin) -> TxResult:
        """Submits a learner's signed join (this client pays the gas)."""
        return self._round_call("joinBySig", signed.experiment_id, signed.learner_index,
                                signed.r, signed.vs)

    def cancel(self, experiment_id: int) -> TxResult:
        """Cancels an experiment whose join deadline passed with a learner missing."""
        return self._round_call("cancel", experiment_id)

    def propose(self, experiment_id: int, round_index: int, cid: str, digest: bytes) -> TxResult:
        return self._round_call("propose", experiment_id, round_index, cid, digest)

    def vote(self, experiment_id: int, round_index: int, approve: bool, score: int) -> TxResult:
        return self._round_call("vote", experiment_id, round_index, approve, score)

    def decide(self, experiment_id: int, round_index: int) -> TxResult:
        return self._round_call("decide", experiment_id, round_index)

    def expire(self, experiment_id: int, round_index: int) -> TxResult:
        return self._round_call("expire", experiment_id, round_index)

    def cast_votes_by_sig(self, experiment_id: int, round_index: int, learners: list[str],
                          votes: list[SignedVote]) -> TxResult:
        """Submits learners' signed votes in one transaction (this client pays the gas,
        as estimated: see :func:`estimated_gas_limit`). ``learners`` is the experiment's
        learner list (the contract checks its hash)."""
        return self._round_call("castVotesBySig", experiment_id, round_index,
                                [to_checksum_address(a) for a in learners],
                                [v.as_call_arg() for v in votes], gas=None)

    def propose_by_sig(self, proposal: SignedProposal) -> TxResult:
        """Submits a proposer's signed proposal (this client pays the gas, as estimated)."""
        return self._round_call("proposeBySig", proposal.experiment_id, proposal.round,
                                proposal.cid, proposal.digest, proposal.r, proposal.vs,
                                gas=None)

    def _round_call(self, name: str, *args: Any, gas: int | None = ROUND_CALL_GAS) -> TxResult:
        """A per-round transaction, priced from the base fee of the latest status read
        (``gas=None``: its limit from the node's estimate)."""
        if self._sender is None:
            raise ChainError("this client has no account to send transactions from")
        data = self._functions[name].encode(*args)
        return self._sender.send(self.address, data, gas, self._base_fee)

    def _transact(self, fn: Any, gas: int | None = None) -> tuple[TxResult, Any]:
        if self.account is None or self._sender is None:
            raise ChainError("this client has no account to send transactions from")
        try:
            return _send(self.w3, self.account, fn, self._errors, gas)
        finally:
            self._sender.forget_nonce()  # _send read and used the account's nonce itself

    # -------------------------------------------------------------------- views

    def experiment(self, experiment_id: int, block: BlockIdentifier = "latest") -> ExperimentInfo:
        values = self._call(self.contract.functions.getExperiment(experiment_id), block)
        return ExperimentInfo(**dict(zip(ExperimentInfo.model_fields, values)))

    def state(self, experiment_id: int, block: BlockIdentifier = "latest") -> RoundState:
        return RoundState(self._call(self.contract.functions.state(experiment_id), block))

    def round_status(self, experiment_id: int, account: str | None = None) -> RoundStatus:
        """Round, state, deadline, current model, whether ``account`` (default: this
        client's) voted, and the block's time and base fee: one call, so all from one block
        (separate reads at "latest" could straddle a transaction that moves the round)."""
        if account is None:
            account = self.account.address if self.account is not None else _ZERO_ADDRESS
        key = (experiment_id, account)
        call = self._status_calls.get(key)
        if call is None:
            data = self._functions["roundStatus"].encode(experiment_id, account)
            call = self._status_calls[key] = {"to": self.address, "data": "0x" + data.hex()}
        ((round_index, state, deadline, digest, model_round, voted, joined, timestamp,
          base_fee),) = self._functions["roundStatus"].decode(self._rpc.call(call))
        self._base_fee = base_fee
        with _node_answer("roundStatus"):
            state = RoundState(state)
        # Values typed by the ABI decoder: no validation needed on this hot path.
        return RoundStatus.model_construct(
            round=round_index, state=state, deadline=deadline, model_digest=digest,
            model_round=model_round, voted=voted, joined=joined, timestamp=timestamp,
            base_fee=base_fee)

    def deadline(self, experiment_id: int) -> int:
        return self._call(self.contract.functions.deadline(experiment_id))

    def current_model(self, experiment_id: int,
                      block: BlockIdentifier = "latest") -> tuple[bytes, int]:
        """The current model's digest and round (0: initial; r + 1: proposal of round r)."""
        digest, model_round = self._call(self.contract.functions.currentModel(experiment_id),
                                         block)
        return bytes(digest), int(model_round)

    def proposal_digest(self, experiment_id: int) -> bytes:
        return bytes(self._call(self.contract.functions.proposalDigest(experiment_id)))

    def learner_index(self, experiment_id: int, account: str) -> int | None:
        index = self._call(self.contract.functions.learnerIndex(experiment_id, account))
        return None if index < 0 else int(index)

    def vote_of(self, experiment_id: int, voter: str) -> tuple[bool, bool]:
        voted, approved = self._call(self.contract.functions.voteOf(experiment_id, voter))
        return bool(voted), bool(approved)

    def chain_time(self) -> int:
        """The latest block's timestamp: the clock deadlines are measured on."""
        try:
            return int(self.w3.eth.get_block("latest")["timestamp"])
        except Exception as exc:  # noqa: BLE001
            raise _classify(exc, self._errors) from None

    def experiment_count(self, block: BlockIdentifier = "latest") -> int:
        return self._call(self.contract.functions.experimentCount(), block)

    def _call(self, fn: Any, block: BlockIdentifier = "latest") -> Any:
        try:
            return fn.call(block_identifier=block)
        except Exception as exc:  # noqa: BLE001 - classified below
            raise _classify(exc, self._errors) from None

    # ------------------------------------------------------------------- events

    def experiment_created(self, experiment_id: int,
                           from_block: int | None = None) -> ExperimentCreated:
        """The experiment's creation event, searched from ``from_block`` (default: the
        client's :attr:`first_block`) and remembered once found. Through a provider that
        caps ``eth_getLogs`` ranges, its block is found by bisecting ``experimentCount()``
        over past blocks where the node can (not by scanning the whole chain)."""
        known = self._created.get(experiment_id)
        if known is not None:
            return known
        first = self.first_block if from_block is None else from_block
        entry = self.first_log(
            [self._topics["ExperimentCreated"], _word(experiment_id)], first,
            self.block_number(), lambda block: self.experiment_count(block) >= experiment_id)
        if entry is None:
            raise ContractRevert("UnknownExperiment", {"experimentId": experiment_id})
        with _node_answer("ExperimentCreated log"):
            (learners, threshold_bps, num_rounds, proposal_timeout, voting_timeout, join_timeout,
             initial_cid, initial_digest, metadata_cid) = abi_decode(self._data_types["ExperimentCreated"],
                                                        entry.data)
            if len(entry.topics) != 3:
                raise ValueError(f"{len(entry.topics)} topics")
        created = self._created[experiment_id] = ExperimentCreated(
            experiment_id=int.from_bytes(entry.topics[1], "big"),
            creator=to_checksum_address(entry.topics[2][-20:]),
            learners=[to_checksum_address(a) for a in learners],
            threshold_bps=threshold_bps, num_rounds=num_rounds,
            proposal_timeout=proposal_timeout, voting_timeout=voting_timeout,
            join_timeout=join_timeout, initial_cid=initial_cid, initial_digest=initial_digest, metadata_cid=metadata_cid,
            tx_hash=entry.tx_hash, block_number=entry.block_number)
        return created

    def proposals(self, experiment_id: int, round_index: int | None = None,
                  from_block: int = 0) -> list[WeightsProposed]:
        return [WeightsProposed(**common, proposer=_topic_address(e), cid=cid,
                                digest=bytes(digest))
                for e, common, (cid, digest) in self._logs("WeightsProposed", experiment_id,
                                                           round_index, from_block)]

    def votes(self, experiment_id: int, round_index: int | None = None,
              from_block: int = 0) -> list[VoteCast]:
        return [VoteCast(**common, voter=_topic_address(e), approve=approve, score=score)
                for e, common, (approve, score) in self._logs("VoteCast", experiment_id,
                                                              round_index, from_block)]

    def decisions(self, experiment_id: int, round_index: int | None = None,
                  from_block: int = 0) -> list[RoundDecided]:
        return [RoundDecided(**common, accepted=accepted, approvals=approvals,
                             rejections=rejections)
                for _, common, (accepted, approvals, rejections) in self._logs(
                    "RoundDecided", experiment_id, round_index, from_block)]

    def expiries(self, experiment_id: int, round_index: int | None = None,
                 from_block: int = 0) -> list[RoundExpired]:
        return [RoundExpired(**common)
                for _, common, _ in self._logs("RoundExpired", experiment_id, round_index,
                                               from_block)]

    def joins(self, experiment_id: int, from_block: int = 0) -> list[LearnerJoined]:
        """The experiment's joins so far, in order."""
        return [LearnerJoined(**common, learner=_topic_address(e, 2))
                for e, common, _ in self._logs("LearnerJoined", experiment_id, None, from_block,
                                               round_topic=False)]

    def start(self, experiment_id: int, from_block: int = 0
              ) -> ExperimentStarted | ExperimentCancelled | None:
        """How joining ended: the experiment's start, its cancellation, or ``None`` while
        it is joining."""
        for event, kind in (("ExperimentStarted", ExperimentStarted),
                            ("ExperimentCancelled", ExperimentCancelled)):
            for _, common, _ in self._logs(event, experiment_id, None, from_block,
                                           round_topic=False):
                return kind(**common)
        return None

    def completion(self, experiment_id: int) -> ExperimentCompleted | None:
        """The experiment's completion, or ``None`` while it runs."""
        start = self.experiment_created(experiment_id).block_number
        for entry, _, (digest, model_round) in self._logs(
                "ExperimentCompleted", experiment_id, None, start, round_topic=False):
            return ExperimentCompleted(
                experiment_id=experiment_id, model_digest=bytes(digest),
                model_round=model_round, tx_hash=entry.tx_hash,
                block_number=entry.block_number)
        return None

    def block_number(self) -> int:
        return self._rpc.block_number()

    def event_topic(self, event: str) -> bytes:
        """An event's first topic (the hash of its signature)."""
        return self._topics[event]

    @property
    def log_queries(self) -> int:
        """``eth_getLogs`` requests this client's connection sent (refused ones too)."""
        return self._ranges.queries

    def raw_logs(self, topics: Topics, from_block: int, to_block: int | None = None, *,
                 chunk_blocks: int | None = None) -> list[RawLog]:
        """The contract's logs in blocks ``from_block``..``to_block`` matching ``topics``
        (per position: ``None`` for any, a topic, or a list of alternatives), undecoded.
        Without ``to_block``, the latest block's number is read first: the read is pinned
        to it, however many queries it takes. Ranges go out in chunks of at most
        ``chunk_blocks``, halved while the node refuses them (:mod:`agents.chain.logs`)."""
        last = self.block_number() if to_block is None else to_block
        return self._ranges.read(topics, from_block, last, chunk_blocks=chunk_blocks)

    def first_log(self, topics: Topics, from_block: int, to_block: int,
                  reached: Callable[[int], bool] | None = None) -> RawLog | None:
        """The first log matching ``topics`` in the range, found without scanning it chunk
        by chunk where possible (see :meth:`agents.chain.logs.RangedLogs.first`)."""
        return self._ranges.first(topics, from_block, to_block, reached)

    def logs_once(self, topics: Topics, from_block: int, to_block: int) -> list[RawLog]:
        """One ``eth_getLogs`` request, not split: :meth:`raw_logs` is what to call."""
        return self._rpc.logs(self.address, topics, from_block, to_block)

    def proposal_from_log(self, entry: RawLog) -> WeightsProposed:
        """Decodes a WeightsProposed log (as followers receive them)."""
        if entry.topics[0] != self.event_topic("WeightsProposed") or len(entry.topics) != 4:
            raise ValueError("not a WeightsProposed log")
        try:
            cid, digest = abi_decode(self._data_types["WeightsProposed"], entry.data)
        except Exception as exc:  # noqa: BLE001 - eth-abi's decoding errors
            raise ValueError(f"malformed WeightsProposed log: {exc}") from None
        return WeightsProposed(
            experiment_id=int.from_bytes(entry.topics[1], "big"),
            round=int.from_bytes(entry.topics[2], "big"),
            proposer=to_checksum_address(entry.topics[3][-20:]), cid=cid, digest=digest,
            tx_hash=entry.tx_hash, block_number=entry.block_number, log_index=entry.log_index)

    def _logs(self, event: str, experiment_id: int, round_index: int | None, from_block: int,
              *, round_topic: bool = True
              ) -> list[tuple[RawLog, dict[str, Any], tuple[Any, ...]]]:
        """One event's logs of an experiment (and round): each log, its common fields and
        its decoded data."""
        topics: list[Any] = [self._topics[event], _word(experiment_id)]
        if round_index is not None:
            topics.append(_word(round_index))
        out = []
        with _node_answer(f"{event} logs"):
            for e in self.raw_logs(topics, from_block):
                if e.removed:
                    continue
                common = {"experiment_id": int.from_bytes(e.topics[1], "big"),
                          "tx_hash": e.tx_hash, "block_number": e.block_number,
                          "log_index": e.log_index}
                if round_topic:
                    common["round"] = int.from_bytes(e.topics[2], "big")
                out.append((e, common, tuple(abi_decode(self._data_types[event], e.data))))
        return out


# ---------------------------------------------------------------------- helpers


def _send(w3: Web3, account: LocalAccount, fn: Any,
          errors: dict[bytes, tuple[str, list[str], list[str]]],
          gas: int | None = None) -> tuple[TxResult, Any]:
    """Signs locally and sends. Without ``gas`` the node estimates it (which also
    surfaces reverts); with it, an ``eth_call`` checks for a revert first."""
    try:
        params: dict[str, Any] = {
            "from": account.address,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "chainId": w3.eth.chain_id,
        }
        if gas is not None:
            fn.call({"from": account.address})
            params["gas"] = gas
        tx = fn.build_transaction(params)
        signed = account.sign_transaction(tx)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    except Exception as exc:  # noqa: BLE001 - classified below
        raise _classify(exc, errors) from None
    if receipt["status"] != 1:
        # Mined but reverted (state changed between estimate and inclusion): replay
        # the call to learn the contract's reason.
        try:
            fn.call({"from": account.address})
        except Exception as exc:  # noqa: BLE001
            raise _classify(exc, errors) from None
        raise ChainError(f"transaction {tx_hash.to_0x_hex()} reverted")
    result = TxResult(tx_hash=tx_hash.to_0x_hex(), gas_used=receipt["gasUsed"],
                      block_number=receipt["blockNumber"])
    return result, receipt


_ZERO_ADDRESS = "0x" + "00" * 20


class _AbiFunction:
    """One contract function's selector and types, from the ABI: encodes calls and decodes
    results with eth-abi alone (web3's contract-call machinery is slow on hot paths)."""

    def __init__(self, abi: list[dict[str, Any]], name: str, arity: int):
        (item,) = [i for i in abi if i.get("type") == "function" and i["name"] == name
                   and len(i["inputs"]) == arity]
        self.inputs = [_abi_type(i) for i in item["inputs"]]
        self.outputs = [_abi_type(o) for o in item["outputs"]]
        self.selector = function_signature_to_4byte_selector(f"{name}({','.join(self.inputs)})")

    def encode(self, *args: Any) -> bytes:
        return self.selector + abi_encode(self.inputs, args)

    def decode(self, data: bytes) -> tuple[Any, ...]:
        with _node_answer("eth_call"):
            return abi_decode(self.outputs, data)


def _abi_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){param['type'][len('tuple'):]}"
    return param["type"]


class _Receipt(NamedTuple):
    status: int
    gas_used: int
    block_number: int


class _HttpJson:
    """JSON-RPC over one kept-alive HTTP(S) connection, with the standard library: about a
    sixth of the CPU time ``requests`` takes a call, which counts while learners train on
    the same cores. Used for plain ``HTTPProvider`` set-ups (see :meth:`usable`)."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float | None):
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname or "localhost", parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/json", **headers}
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._id = 0

    @staticmethod
    def usable(provider: Any) -> bool:
        if type(provider) is not HTTPProvider:  # subclasses may change requests
            return False
        parts = urlsplit(str(provider.endpoint_uri))
        return (parts.scheme in ("http", "https") and parts.username is None
                and set(provider.get_request_kwargs()) <= {"headers", "timeout"})

    def __call__(self, method: str, params: list[Any]) -> Any:
        with self._lock:
            self._id += 1
            body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method,
                               "params": params}).encode()
            for attempt in range(2):
                reused = self._connection is not None
                if self._connection is None:
                    cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                    self._connection = cls(self._host, self._port, timeout=self._timeout)
                try:
                    self._connection.request("POST", self._path, body, self._headers)
                    response = self._connection.getresponse()
                    data = response.read()
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    self._close()
                    if reused and attempt == 0:
                        continue  # the node closed the idle connection: open a new one
                    raise
                except BaseException:
                    self._close()
                    raise
                if response.will_close:
                    self._close()
                if response.status != 200:
                    raise ChainError(f"the node answered HTTP {response.status}: {data[:200]!r}")
                return json.loads(data)
        raise AssertionError("unreachable")

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __del__(self) -> None:
        self._close()


# One kept-alive connection per provider, shared by its clients (thread-safe: a lock).
_HTTP_TRANSPORTS: weakref.WeakKeyDictionary[Any, _HttpJson] = weakref.WeakKeyDictionary()


class _RpcError(ChainError):
    """A JSON-RPC error answer that is not a contract revert."""

    def __init__(self, message: str, code: Any):
        super().__init__(message)
        self.code = code


class _JsonRpc:
    """The hot path's requests, sent raw over a JSON-RPC provider (HTTP, IPC) and parsed
    here: web3's formatting middleware costs more than the request itself."""

    def __init__(self, w3: Web3, errors: dict[bytes, tuple[str, list[str], list[str]]]):
        provider = w3.provider
        if _HttpJson.usable(provider):
            transport = _HTTP_TRANSPORTS.get(provider)
            if transport is None:
                kwargs = provider.get_request_kwargs()  # type: ignore[attr-defined]
                transport = _HTTP_TRANSPORTS[provider] = _HttpJson(
                    str(provider.endpoint_uri),  # type: ignore[attr-defined]
                    kwargs.get("headers", {}),
                    kwargs.get("timeout"))
            self._post: Callable[[str, list[Any]], Any] = transport
        else:
            self._post = provider.make_request  # type: ignore[assignment]
        self.errors = errors
        self._sync_send: bool | None = None  # eth_sendRawTransactionSync: works?

    def request(self, method: str, params: list[Any]) -> Any:
        try:
            response = self._post(method, params)
        except ChainError:
            raise
        except Exception as exc:  # noqa: BLE001 - transport failures, classified
            raise _classify(exc, self.errors) from None
        if not isinstance(response, dict):
            raise ChainError(f"the node's answer to {method} is not a JSON-RPC response: "
                             f"{str(response)[:100]}")
        if "error" in response:
            raise _rpc_error(response["error"], self.errors)
        return response.get("result")

    def call(self, tx: dict[str, str]) -> bytes:
        with _node_answer("eth_call"):
            return _hex_bytes(self.request("eth_call", [tx, "latest"]))

    def estimate_gas(self, tx: dict[str, str]) -> int:
        return self._quantity("eth_estimateGas", [tx])

    def block_number(self) -> int:
        return self._quantity("eth_blockNumber", [])

    def nonce(self, address: str) -> int:
        return self._quantity("eth_getTransactionCount", [address, "pending"])

    def max_priority_fee(self) -> int:
        return self._quantity("eth_maxPriorityFeePerGas", [])

    def latest_base_fee(self) -> int | None:
        with _node_answer("eth_getBlockByNumber"):
            fee = self.request("eth_getBlockByNumber", ["latest", False]).get("baseFeePerGas")
            return None if fee is None else _quantity(fee)

    def gas_price(self) -> int:
        return self._quantity("eth_gasPrice", [])

    def _quantity(self, method: str, params: list[Any]) -> int:
        with _node_answer(method):
            return _quantity(self.request(method, params))

    def send_raw(self, raw: bytes) -> tuple[str, _Receipt | None]:
        """Sends a signed transaction: its hash, and its receipt where the node can wait
        for it in the same request (``eth_sendRawTransactionSync``, EIP-7966: anvil has
        it). Nodes without it get ``eth_sendRawTransaction`` (and the receipt is polled)."""
        if self._sync_send is not False:
            try:
                r = self.request("eth_sendRawTransactionSync", ["0x" + raw.hex()])
            except _RpcError as exc:
                if self._sync_send is None:  # not (or not quite) supported here
                    log.debug("no eth_sendRawTransactionSync (%s): sending, then polling", exc)
                    self._sync_send = False
                elif exc.code != 4:  # 4: sent but not mined in the node's time; poll
                    raise
            else:
                self._sync_send = True
                with _node_answer("eth_sendRawTransactionSync"):
                    return str(r["transactionHash"]), _json_receipt(r)
        with _node_answer("eth_sendRawTransaction"):
            tx_hash = self.request("eth_sendRawTransaction", ["0x" + raw.hex()])
            if not isinstance(tx_hash, str):
                raise TypeError("no transaction hash")
            return tx_hash, None

    def receipt(self, tx_hash: str) -> _Receipt | None:
        with _node_answer("eth_getTransactionReceipt"):
            r = self.request("eth_getTransactionReceipt", [tx_hash])
            return None if r is None else _json_receipt(r)

    def logs(self, address: str, topics: Sequence[Any], from_block: int,
             to_block: int | None) -> list[RawLog]:
        entries = self.request("eth_getLogs", [{
            "address": address, "fromBlock": hex(from_block),
            "toBlock": "latest" if to_block is None else hex(to_block),
            "topics": hex_topics(topics)}])
        with _node_answer("eth_getLogs"):
            return [raw_log_from_json(e) for e in entries]


class _Web3Rpc:
    """The same requests through web3's typed API: for providers that are not JSON-RPC
    (the in-process chain takes Python values, not JSON-RPC's hex strings)."""

    def __init__(self, w3: Web3, errors: dict[bytes, tuple[str, list[str], list[str]]]):
        self.eth = w3.eth
        self.errors = errors

    def _do(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - classified
            raise _classify(exc, self.errors) from None

    def call(self, tx: dict[str, str]) -> bytes:
        return bytes(self._do(self.eth.call, tx, "latest"))

    def estimate_gas(self, tx: dict[str, str]) -> int:
        return int(self._do(self.eth.estimate_gas, tx))

    def block_number(self) -> int:
        return int(self._do(lambda: self.eth.block_number))

    def nonce(self, address: str) -> int:
        return int(self._do(self.eth.get_transaction_count, address, "pending"))

    def max_priority_fee(self) -> int:
        return int(self._do(lambda: self.eth.max_priority_fee))

    def latest_base_fee(self) -> int | None:
        return self._do(self.eth.get_block, "latest").get("baseFeePerGas")

    def gas_price(self) -> int:
        return int(self._do(lambda: self.eth.gas_price))

    def send_raw(self, raw: bytes) -> tuple[str, _Receipt | None]:
        return self._do(self.eth.send_raw_transaction, raw).to_0x_hex(), None

    def receipt(self, tx_hash: str) -> _Receipt | None:
        try:
            r = self.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        except Exception as exc:  # noqa: BLE001
            raise _classify(exc, self.errors) from None
        return _Receipt(int(r["status"]), int(r["gasUsed"]), int(r["blockNumber"]))

    def logs(self, address: str, topics: Sequence[Any], from_block: int,
             to_block: int | None) -> list[RawLog]:
        entries = self._do(self.eth.get_logs, {
            "address": address, "fromBlock": from_block,
            "toBlock": "latest" if to_block is None else to_block,
            "topics": hex_topics(topics)})
        return [RawLog(tuple(bytes(t) for t in e["topics"]), bytes(e["data"]),
                       int(e["blockNumber"]), e["transactionHash"].to_0x_hex(),
                       int(e["logIndex"]), bool(e.get("removed", False))) for e in entries]


_Rpc = Union[_JsonRpc, _Web3Rpc]


def _rpc_for(w3: Web3, errors: dict[bytes, tuple[str, list[str], list[str]]]) -> _Rpc:
    if isinstance(w3.provider, JSONBaseProvider):
        return _JsonRpc(w3, errors)
    return _Web3Rpc(w3, errors)


def _json_receipt(r: dict[str, Any]) -> _Receipt:
    return _Receipt(int(r["status"], 16), int(r["gasUsed"], 16), int(r["blockNumber"], 16))


@contextmanager
def _node_answer(what: str) -> Iterator[None]:
    """Turns an answer the node should not have given (wrong type, missing field, bad hex,
    undecodable ABI data) into a :class:`ChainError`: a provider cannot crash a caller."""
    try:
        yield
    except ChainError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything parsing the answer raised
        raise ChainError(f"malformed answer from the node ({what}): {type(exc).__name__}: "
                         f"{str(exc)[:200]}") from None


def _quantity(value: Any) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"not a hex quantity: {str(value)[:66]}")
    return int(value, 16)


def _hex_bytes(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"not hex data: {str(value)[:66]}")
    return bytes.fromhex(value[2:])


class _TxSender:
    """Sends one account's transactions to the contract with as few requests as possible:
    the nonce is kept here after the first read (read again after any failure), fees are
    priced from a known base fee (``2 * base fee + tip``, the tip asked once) and the
    transaction is built and signed here. An ``eth_call`` first (or ``eth_estimateGas``,
    when the gas limit is estimated) still surfaces a revert by the contract's error name,
    without spending gas."""

    def __init__(self, rpc: _Rpc, account: LocalAccount, chain_id: Callable[[], int]):
        self.rpc = rpc
        self.account = account
        self.chain_id = chain_id
        self._nonce: int | None = None
        self._tip: int | None = None

    def forget_nonce(self) -> None:
        self._nonce = None

    def send(self, to: str, data: bytes, gas: int | None, base_fee: int | None) -> TxResult:
        """Sends ``data`` to ``to`` with a gas limit of ``gas``, or (``None``) the node's
        estimate plus a margin, never below the calldata floor (:func:`estimated_gas_limit`)."""
        call = {"from": self.account.address, "to": to, "data": "0x" + data.hex()}
        if gas is None:  # both raise ContractRevert with the contract's reason
            estimate = self.rpc.estimate_gas(call)
            gas = estimated_gas_limit(estimate, data)
            log.debug("gas: estimate %d, limit %d (calldata floor %d)", estimate, gas,
                      calldata_floor(data))
        else:
            self.rpc.call(call)
        try:
            tx_hash, receipt = self._submit(call, gas, base_fee)
            if receipt is None:
                receipt = self._receipt(tx_hash)
        except BaseException:
            self._nonce = None
            raise
        if receipt.status != 1:
            # Mined but reverted (the state changed since the check): replay the call to
            # learn the contract's reason.
            self._nonce = None
            self.rpc.call(call)
            raise ChainError(f"transaction {tx_hash} reverted")
        return TxResult(tx_hash=tx_hash, gas_used=receipt.gas_used,
                        block_number=receipt.block_number, gas_limit=gas)

    def _submit(self, call: dict[str, str], gas: int,
                base_fee: int | None) -> tuple[str, _Receipt | None]:
        fees = self._fees(base_fee)
        for attempt in range(2):
            if self._nonce is None:
                self._nonce = self.rpc.nonce(self.account.address)
            tx: dict[str, Any] = {"chainId": self.chain_id(), "nonce": self._nonce,
                                  "to": call["to"],
                  "data": call["data"], "value": 0, "gas": gas, **fees}
            raw = self.account.sign_transaction(tx).raw_transaction
            try:
                sent = self.rpc.send_raw(raw)
            except ChainError as exc:
                if attempt or "nonce" not in str(exc).lower():
                    raise
                # Another client of this account sent a transaction: read the nonce again.
                self._nonce = None
                continue
            self._nonce += 1
            return sent
        raise AssertionError("unreachable")

    def _fees(self, base_fee: int | None) -> dict[str, int]:
        if not base_fee:  # unknown, or a node that leaves it out of calls
            base_fee = self.rpc.latest_base_fee()
            if base_fee is None:  # a chain without EIP-1559
                return {"gasPrice": self.rpc.gas_price()}
        if self._tip is None:
            try:
                self._tip = self.rpc.max_priority_fee()
            except ContractRevert:
                raise
            except ChainError:
                log.debug("no eth_maxPriorityFeePerGas; tipping %d wei", DEFAULT_TIP)
                self._tip = DEFAULT_TIP
        return {"type": 2, "maxFeePerGas": 2 * base_fee + self._tip,
                "maxPriorityFeePerGas": self._tip}

    def _receipt(self, tx_hash: str) -> _Receipt:
        deadline = time.monotonic() + RECEIPT_TIMEOUT
        delay = 0.01
        while (receipt := self.rpc.receipt(tx_hash)) is None:
            if time.monotonic() > deadline:
                raise ChainError(f"transaction {tx_hash} not mined after {RECEIPT_TIMEOUT:g} s")
            time.sleep(delay)
            delay = min(2 * delay, 1.0)
        return receipt


def _error_table(abi: list[dict[str, Any]]) -> dict[bytes, tuple[str, list[str], list[str]]]:
    table = {}
    for item in abi:
        if item.get("type") != "error":
            continue
        types = [i["type"] for i in item["inputs"]]
        names = [i["name"] for i in item["inputs"]]
        selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
        table[selector] = (item["name"], types, names)
    return table


def _revert_data(exc: BaseException) -> bytes | None:
    """Finds the raw revert data in web3's or eth-tester's exception chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ContractCustomError) and isinstance(seen.data, str):
            return bytes.fromhex(seen.data.removeprefix("0x"))
        if isinstance(seen, ContractLogicError) and isinstance(seen.data, dict):
            # Hardhat's node: error.data = {"message": ..., "data": "0x<revert data>"}
            inner = seen.data.get("data")
            if isinstance(inner, str) and inner.startswith("0x"):
                return bytes.fromhex(inner[2:])
        if seen.args and isinstance(seen.args[0], (bytes, bytearray)):
            return bytes(seen.args[0])
        if seen.args and isinstance(seen.args[0], str) and seen.args[0].startswith(
                "execution reverted: b"):
            try:
                return ast.literal_eval(seen.args[0].removeprefix("execution reverted: "))
            except (ValueError, SyntaxError):
                return None
        seen = seen.__cause__ or seen.__context__
    return None


def _decode_revert(data: bytes | None, errors: dict[bytes, tuple[str, list[str], list[str]]]
                   ) -> ContractRevert | None:
    if not data or data[:4] not in errors:
        return None
    name, types, names = errors[data[:4]]
    try:
        values = [to_checksum_address(v) if t == "address" else v
                  for t, v in zip(types, abi_decode(types, data[4:]))]
        args = dict(zip(names, values))
        if name == "UnexpectedRoundState":
            for key in ("current", "expected"):
                args[key] = RoundState(int(args[key])).name
    except Exception:  # noqa: BLE001 - malformed revert data: not one of the contract's
        return None
    return ContractRevert(name, args)


def _rpc_error(error: Any, errors: dict[bytes, tuple[str, list[str], list[str]]]
               ) -> ChainError:
    """A JSON-RPC error answer: the contract's revert if it carries one."""
    if not isinstance(error, dict):
        return ChainError(f"the node answered with an error: {error}")
    data = error.get("data")
    if isinstance(data, dict):  # Hardhat: {"message": ..., "data": "0x<revert data>"}
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            revert = _decode_revert(bytes.fromhex(data[2:]), errors)
        except Exception:  # noqa: BLE001 - malformed revert data: report the message
            revert = None
        if revert is not None:
            return revert
    return _RpcError(str(error.get("message", error)), error.get("code"))


def _classify(exc: BaseException, errors: dict[bytes, tuple[str, list[str], list[str]]]
              ) -> ChainError:
    revert = _decode_revert(_revert_data(exc), errors)
    if revert is not None:
        return revert
    if isinstance(exc, (ContractLogicError, Web3Exception)):
        return ChainError(str(exc))
    if isinstance(exc, (ConnectionError, OSError)) or "Connection" in type(exc).__name__:
        return ChainError(f"cannot reach the chain: {exc}")
    return ChainError(f"{type(exc).__name__}: {exc}")


def _word(value: int) -> bytes:
    """An indexed uint256 as its topic."""
    return value.to_bytes(32, "big")


def _topic_address(entry: RawLog, position: int = 3) -> str:
    """The address in a log's topic ``position`` (the proposer, the voter: the fourth;
    the learner who joined: the third)."""
    return to_checksum_address(entry.topics[position][-20:])


def _render(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)

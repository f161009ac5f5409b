"""Typed client for the CollectiveLearning contract.

Transactions are signed locally with an eth-account key and sent raw, so the same
code works on the in-process chain (eth-tester / py-evm), anvil, Hardhat or any
JSON-RPC node. Reverts come back as :class:`ContractRevert` carrying the contract's
custom error name and arguments.
"""

from __future__ import annotations

import ast
import json
import logging
from enum import IntEnum
from functools import cached_property
from importlib import resources
from typing import Any, Optional

from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from pydantic import BaseModel, ConfigDict
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError, Web3Exception
from web3.types import BlockIdentifier

log = logging.getLogger(__name__)

SCORE_SCALE = 10**18
# Gas limit of the per-round calls (no loops: their cost is bounded and far below this).
# Setting it skips a gas estimate per transaction; an eth_call first still surfaces reverts.
ROUND_CALL_GAS = 300_000
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


class ExperimentCreated(BaseModel):
    experiment_id: int
    creator: str
    learners: list[str]
    threshold_bps: int
    num_rounds: int
    proposal_timeout: int
    voting_timeout: int
    initial_cid: str
    initial_digest: bytes
    metadata_cid: str
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


class ExperimentCompleted(BaseModel):
    experiment_id: int
    model_digest: bytes
    model_round: int
    tx_hash: str
    block_number: int


class Snapshot(BaseModel):
    """An experiment's round, state and current model, all read at one block."""

    block: int
    info: ExperimentInfo
    state: RoundState
    model_digest: bytes
    model_round: int


class TxResult(BaseModel):
    tx_hash: str
    gas_used: int
    block_number: int


def load_artifact(name: str = CONTRACT_NAME) -> dict[str, Any]:
    """The compiled contract shipped with the package (ABI, bytecode, solc input)."""
    text = resources.files("agents").joinpath("artifacts", f"{name}.json").read_text()
    return json.loads(text)


def score_to_fixed(score: float) -> int:
    """A vote score as the contract's fixed-point integer."""
    if score != score or score in (float("inf"), float("-inf")):
        return NO_SCORE
    return int(round(score * SCORE_SCALE))


def fixed_to_score(value: int) -> Optional[float]:
    return None if value == NO_SCORE else value / SCORE_SCALE


class CollectiveLearningClient:
    """One account's view of one deployed CollectiveLearning contract."""

    def __init__(self, w3: Web3, address: str, account: Optional[LocalAccount] = None):
        self.w3 = w3
        self.account = account
        artifact = load_artifact()
        self.address = to_checksum_address(address)
        self.contract: Contract = w3.eth.contract(address=self.address, abi=artifact["abi"])
        self._errors = _error_table(artifact["abi"])

    # ------------------------------------------------------------------ set-up

    @classmethod
    def deploy(cls, w3: Web3, account: LocalAccount) -> tuple["CollectiveLearningClient", TxResult]:
        artifact = load_artifact()
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        result, receipt = _send(w3, account, factory.constructor(), _error_table(artifact["abi"]))
        return cls(w3, receipt["contractAddress"], account), result

    def with_account(self, account: LocalAccount) -> "CollectiveLearningClient":
        return CollectiveLearningClient(self.w3, self.address, account)

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
    ) -> tuple[int, TxResult]:
        """Creates an experiment; returns its id and the transaction."""
        fn = self.contract.functions.createExperiment(
            [to_checksum_address(a) for a in learners],
            threshold_bps,
            num_rounds,
            proposal_timeout,
            voting_timeout,
            initial_cid,
            initial_digest,
            metadata_cid,
        )
        result, receipt = self._transact(fn)
        (event,) = self.contract.events.ExperimentCreated().process_receipt(receipt)
        return int(event["args"]["experimentId"]), result

    def propose(self, experiment_id: int, round_index: int, cid: str, digest: bytes) -> TxResult:
        fn = self.contract.functions.propose(experiment_id, round_index, cid, digest)
        return self._transact(fn, gas=ROUND_CALL_GAS)[0]

    def vote(self, experiment_id: int, round_index: int, approve: bool, score: int) -> TxResult:
        fn = self.contract.functions.vote(experiment_id, round_index, approve, score)
        return self._transact(fn, gas=ROUND_CALL_GAS)[0]

    def decide(self, experiment_id: int, round_index: int) -> TxResult:
        fn = self.contract.functions.decide(experiment_id, round_index)
        return self._transact(fn, gas=ROUND_CALL_GAS)[0]

    def expire(self, experiment_id: int, round_index: int) -> TxResult:
        fn = self.contract.functions.expire(experiment_id, round_index)
        return self._transact(fn, gas=ROUND_CALL_GAS)[0]

    def _transact(self, fn: Any, gas: Optional[int] = None) -> tuple[TxResult, Any]:
        if self.account is None:
            raise ChainError("this client has no account to send transactions from")
        return _send(self.w3, self.account, fn, self._errors, gas)

    # -------------------------------------------------------------------- views

    def experiment(self, experiment_id: int, block: BlockIdentifier = "latest") -> ExperimentInfo:
        values = self._call(self.contract.functions.getExperiment(experiment_id), block)
        return ExperimentInfo(**dict(zip(ExperimentInfo.model_fields, values)))

    def state(self, experiment_id: int, block: BlockIdentifier = "latest") -> RoundState:
        return RoundState(self._call(self.contract.functions.state(experiment_id), block))

    def snapshot(self, experiment_id: int) -> Snapshot:
        """Round, state and current model at the latest block, consistent with each other
        (separate reads at "latest" could straddle a transaction that moves the round)."""
        try:
            block = self.w3.eth.block_number
        except Exception as exc:  # noqa: BLE001
            raise _classify(exc, self._errors) from None
        digest, model_round = self.current_model(experiment_id, block)
        return Snapshot(block=block, info=self.experiment(experiment_id, block),
                        state=self.state(experiment_id, block), model_digest=digest,
                        model_round=model_round)

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

    def learner_index(self, experiment_id: int, account: str) -> Optional[int]:
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

    def experiment_count(self) -> int:
        return self._call(self.contract.functions.experimentCount())

    def _call(self, fn: Any, block: BlockIdentifier = "latest") -> Any:
        try:
            return fn.call(block_identifier=block)
        except Exception as exc:  # noqa: BLE001 - classified below
            raise _classify(exc, self._errors) from None

    # ------------------------------------------------------------------- events

    def experiment_created(self, experiment_id: int) -> ExperimentCreated:
        logs = self._logs("ExperimentCreated", experiment_id)
        if not logs:
            raise ContractRevert("UnknownExperiment", {"experimentId": experiment_id})
        entry = logs[0]
        a = entry["args"]
        return ExperimentCreated(
            experiment_id=a["experimentId"],
            creator=a["creator"],
            learners=list(a["learners"]),
            threshold_bps=a["thresholdBps"],
            num_rounds=a["numRounds"],
            proposal_timeout=a["proposalTimeout"],
            voting_timeout=a["votingTimeout"],
            initial_cid=a["initialCid"],
            initial_digest=bytes(a["initialDigest"]),
            metadata_cid=a["metadataCid"],
            tx_hash=entry["transactionHash"].to_0x_hex(),
            block_number=entry["blockNumber"],
        )

    def proposals(self, experiment_id: int, round_index: Optional[int] = None,
                  from_block: int = 0) -> list[WeightsProposed]:
        return [
            WeightsProposed(**_common(e), proposer=e["args"]["proposer"], cid=e["args"]["cid"],
                            digest=bytes(e["args"]["digest"]))
            for e in self._logs("WeightsProposed", experiment_id, round_index, from_block)
        ]

    def votes(self, experiment_id: int, round_index: Optional[int] = None,
              from_block: int = 0) -> list[VoteCast]:
        return [
            VoteCast(**_common(e), voter=e["args"]["voter"], approve=e["args"]["approve"],
                     score=e["args"]["score"])
            for e in self._logs("VoteCast", experiment_id, round_index, from_block)
        ]

    def decisions(self, experiment_id: int, round_index: Optional[int] = None,
                  from_block: int = 0) -> list[RoundDecided]:
        return [
            RoundDecided(**_common(e), accepted=e["args"]["accepted"],
                         approvals=e["args"]["approvals"], rejections=e["args"]["rejections"])
            for e in self._logs("RoundDecided", experiment_id, round_index, from_block)
        ]

    def expiries(self, experiment_id: int, round_index: Optional[int] = None,
                 from_block: int = 0) -> list[RoundExpired]:
        return [RoundExpired(**_common(e))
                for e in self._logs("RoundExpired", experiment_id, round_index, from_block)]

    def completion(self, experiment_id: int) -> Optional[ExperimentCompleted]:
        """The experiment's completion, or ``None`` while it runs."""
        logs = self._logs("ExperimentCompleted", experiment_id)
        if not logs:
            return None
        a = logs[0]["args"]
        return ExperimentCompleted(
            experiment_id=a["experimentId"], model_digest=bytes(a["modelDigest"]),
            model_round=a["modelRound"], tx_hash=logs[0]["transactionHash"].to_0x_hex(),
            block_number=logs[0]["blockNumber"])

    def _logs(self, event: str, experiment_id: int, round_index: Optional[int] = None,
              from_block: int = 0) -> list[Any]:
        filters: dict[str, Any] = {"experimentId": experiment_id}
        if round_index is not None:
            filters["round"] = round_index
        try:
            return list(getattr(self.contract.events, event)().get_logs(
                from_block=from_block, to_block="latest", argument_filters=filters))
        except Exception as exc:  # noqa: BLE001
            raise _classify(exc, self._errors) from None


# ---------------------------------------------------------------------- helpers


def _send(w3: Web3, account: LocalAccount, fn: Any,
          errors: dict[bytes, tuple[str, list[str], list[str]]],
          gas: Optional[int] = None) -> tuple[TxResult, Any]:
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


def _common(entry: Any) -> dict[str, Any]:
    return {
        "experiment_id": entry["args"]["experimentId"],
        "round": entry["args"]["round"],
        "tx_hash": entry["transactionHash"].to_0x_hex(),
        "block_number": entry["blockNumber"],
        "log_index": entry["logIndex"],
    }


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


def _revert_data(exc: BaseException) -> Optional[bytes]:
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


def _classify(exc: BaseException, errors: dict[bytes, tuple[str, list[str], list[str]]]
              ) -> ChainError:
    data = _revert_data(exc)
    if data and data[:4] in errors:
        name, types, names = errors[data[:4]]
        values = [to_checksum_address(v) if t == "address" else v
                  for t, v in zip(types, abi_decode(types, data[4:]))]
        args = dict(zip(names, values))
        if name == "UnexpectedRoundState":
            for key in ("current", "expected"):
                args[key] = RoundState(args[key]).name
        return ContractRevert(name, args)
    if isinstance(exc, (ContractLogicError, Web3Exception)):
        return ChainError(str(exc))
    if isinstance(exc, (ConnectionError, OSError)) or "Connection" in type(exc).__name__:
        return ChainError(f"cannot reach the chain: {exc}")
    return ChainError(f"{type(exc).__name__}: {exc}")


def _render(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)

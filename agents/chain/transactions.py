"""Sending transactions: the one way the package sends one (deployment, creation, round
calls, relayed batches), signed locally with an eth-account key."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from eth_account.signers.local import LocalAccount

from agents.chain.errors import ChainError, ContractRevert, InsufficientFunds
from agents.chain.rpc import Receipt, Rpc
from agents.chain.types import TxResult

log = logging.getLogger(__name__)

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

def calldata_floor(data: bytes) -> int:
    """EIP-7623's floor: the least gas a transaction with this calldata may be given."""
    zeros = data.count(0)
    return TX_BASE_GAS + CALLDATA_FLOOR_PER_TOKEN * (zeros + 4 * (len(data) - zeros))

def estimated_gas_limit(estimate: int, data: bytes) -> int:
    """A gas limit from a node's estimate: the margin added, never below the calldata
    floor (a node may estimate without it: py-evm does)."""
    return max(estimate + int(estimate * GAS_ESTIMATE_MARGIN), calldata_floor(data))

class TxSender:
    """Sends one account's transactions to the contract with as few requests as possible:
    the nonce is kept here after the first read (read again after any failure), fees are
    priced from a known base fee (``2 * base fee + tip``, the tip asked once) and the
    transaction is built and signed here. An ``eth_call`` first (or ``eth_estimateGas``,
    when the gas limit is estimated) still surfaces a revert by the contract's error name,
    without spending gas."""

    def __init__(self, rpc: Rpc, account: LocalAccount, chain_id: Callable[[], int]):
        self.rpc = rpc
        self.account = account
        self.chain_id = chain_id
        self._nonce: int | None = None
        self._tip: int | None = None

    def forget_nonce(self) -> None:
        self._nonce = None

    def send(self, to: str, data: bytes, gas: int | None, base_fee: int | None,
             value: int = 0) -> TxResult:
        """Sends ``data`` (and ``value`` wei) to ``to`` with a gas limit of ``gas``, or
        (``None``) the node's estimate plus a margin, never below the calldata floor
        (:func:`estimated_gas_limit`)."""
        return self.transact(to, data, gas, base_fee, value)[0]

    def transact(self, to: str | None, data: bytes, gas: int | None = None,
                 base_fee: int | None = None, value: int = 0) -> tuple[TxResult, Receipt]:
        """:meth:`send`, also returning the receipt (its logs; the address a deployment,
        ``to=None``, created). A sender that cannot pay raises :class:`InsufficientFunds`
        naming ``colearn account fund``."""
        try:
            return self._transact(to, data, gas, base_fee, value)
        except InsufficientFunds as exc:
            raise self._unfunded(exc) from None

    def _transact(self, to: str | None, data: bytes, gas: int | None,
                  base_fee: int | None, value: int) -> tuple[TxResult, Receipt]:
        call = {"from": self.account.address, "data": "0x" + data.hex()}
        if to is not None:
            call["to"] = to
        if value:
            call["value"] = hex(value)
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
                        block_number=receipt.block_number, gas_limit=gas), receipt

    def _submit(self, call: dict[str, str], gas: int,
                base_fee: int | None) -> tuple[str, Receipt | None]:
        fees = self._fees(base_fee)
        for attempt in range(2):
            if self._nonce is None:
                self._nonce = self.rpc.nonce(self.account.address)
            tx: dict[str, Any] = {"chainId": self.chain_id(), "nonce": self._nonce,
                                  "data": call["data"], "value": int(call.get("value", "0x0"), 16),
                                  "gas": gas, **fees}
            if "to" in call:
                tx["to"] = call["to"]
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

    def _unfunded(self, exc: InsufficientFunds) -> InsufficientFunds:
        """The node's refusal as one line that says what to do about it."""
        address = self.account.address
        return InsufficientFunds(
            f"account {address} has too little ETH for this transaction's gas (the node "
            f"says: {exc}); on a dev chain run `colearn account fund --rpc URL --to {address}`, "
            "elsewhere send it ETH", exc.code)

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

    def _receipt(self, tx_hash: str) -> Receipt:
        deadline = time.monotonic() + RECEIPT_TIMEOUT
        delay = 0.01
        while (receipt := self.rpc.receipt(tx_hash)) is None:
            if time.monotonic() > deadline:
                raise ChainError(f"transaction {tx_hash} not mined after {RECEIPT_TIMEOUT:g} s")
            time.sleep(delay)
            delay = min(2 * delay, 1.0)
        return receipt

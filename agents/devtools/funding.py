"""Funding an account on a dev chain (``colearn account fund``): anvil's ``anvil_setBalance``
(Hardhat's ``hardhat_setBalance``), else a transfer from the node's first unlocked account.
Refused on any chain whose id is not a dev chain's: there, ETH comes from someone who has it.
"""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel
from web3 import Web3
from web3.types import RPCEndpoint, Wei

from agents.devtools.anvil import DEFAULT_CHAIN_ID, DevChainError

log = logging.getLogger(__name__)

#: Chain ids of the dev chains this funds: anvil's and Hardhat's default.
DEV_CHAIN_IDS = frozenset({DEFAULT_CHAIN_ID})
WEI_PER_ETH = 10**18
DEFAULT_FUNDING_ETH = Decimal(100)
MAX_FUNDING_ETH = Decimal(10**9)
#: JSON-RPC "method not found" (and what nodes answer for a method they do not have).
_METHOD_NOT_FOUND = -32601


class Funding(BaseModel):
    """What :func:`fund_dev_account` did."""

    address: str
    amount_wei: int
    balance_wei: int
    method: str  # anvil_setBalance, hardhat_setBalance or eth_sendTransaction


def parse_eth(text: str) -> int:
    """``"1.5"`` (ETH) -> wei; positive, at most :data:`MAX_FUNDING_ETH`, at most 18 decimals.
    Raises ``ValueError`` with a one-line reason."""
    try:
        eth = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"expected an amount of ETH (e.g. 100 or 0.5), not {text[:40]!r}") from None
    if not eth.is_finite() or not Decimal(0) < eth <= MAX_FUNDING_ETH:
        raise ValueError(f"an amount of ETH is above 0 and at most {MAX_FUNDING_ETH:,}, "
                         f"not {text[:40]!r}")
    wei = eth * WEI_PER_ETH
    if wei != wei.to_integral_value():
        raise ValueError(f"{text[:40]!r} ETH is not a whole number of wei (18 decimals at most)")
    return int(wei)


def format_eth(wei: int) -> str:
    """``1500000000000000000`` -> ``"1.5 ETH"``."""
    eth = (Decimal(wei) / WEI_PER_ETH).normalize()
    return f"{eth:f} ETH"


def _request(w3: Web3, method: str, params: list[Any]) -> tuple[Any, dict[str, Any] | None]:
    response = w3.provider.make_request(RPCEndpoint(method), params)
    error: Any = response.get("error")
    return response.get("result"), dict(error) if isinstance(error, dict) else None


def fund_dev_account(w3: Web3, address: str, amount_wei: int) -> Funding:
    """Adds ``amount_wei`` to ``address``'s balance on the dev chain ``w3`` is connected to.
    Raises :class:`DevChainError` (one line) on a chain that is not a dev chain or has no
    way to mint or send dev ETH."""
    address = Web3.to_checksum_address(address)
    chain_id = w3.eth.chain_id
    if chain_id not in DEV_CHAIN_IDS:
        raise DevChainError(
            f"chain id {chain_id} is not a dev chain (anvil's and Hardhat's is "
            f"{DEFAULT_CHAIN_ID}): colearn account fund only mints test ETH; on this chain "
            f"send ETH to {address} from an account that has some")
    before = w3.eth.get_balance(address)
    target = before + amount_wei
    problems = []
    for method in ("anvil_setBalance", "hardhat_setBalance"):
        _, error = _request(w3, method, [address, hex(target)])
        if error is None:
            log.info("%s(%s, %d)", method, address, target)
            return Funding(address=address, amount_wei=amount_wei,
                           balance_wei=w3.eth.get_balance(address), method=method)
        problems.append(f"{method}: {error.get('message', error)}")
        if error.get("code") != _METHOD_NOT_FOUND:
            log.debug("%s failed: %s", method, error)
    accounts = w3.eth.accounts
    if not accounts:
        raise DevChainError(f"the node at chain id {chain_id} cannot set balances "
                            f"({'; '.join(problems)}) and has no unlocked account to send "
                            "from: is it a dev chain?")
    funder = accounts[0]
    if w3.eth.get_balance(funder) <= amount_wei:
        raise DevChainError(f"the node's unlocked account {funder} has less than "
                            f"{format_eth(amount_wei)} to send")
    tx_hash = w3.eth.send_transaction({"from": funder, "to": address, "value": Wei(amount_wei)})
    w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    return Funding(address=address, amount_wei=amount_wei,
                   balance_wei=w3.eth.get_balance(address), method="eth_sendTransaction")

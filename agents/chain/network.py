"""Connecting to a chain: the in-process EVM or a JSON-RPC node, and dev-chain helpers."""

from __future__ import annotations

import hashlib
import logging

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import RPCEndpoint, Wei

from agents.chain.errors import ChainError

log = logging.getLogger(__name__)


def connect(url: str | None = None, *, timeout: float = 30.0) -> Web3:
    """``None`` starts an in-process chain (eth-tester on py-evm); an ``http(s)://`` URL
    connects to a JSON-RPC node. Raises :class:`ChainError` if it cannot be reached."""
    if url is None:
        from web3 import EthereumTesterProvider

        return Web3(EthereumTesterProvider())
    if not url.startswith(("http://", "https://")):
        raise ChainError(f"unsupported RPC URL {url!r}: expected http:// or https://")
    # Cache eth_chainId: web3 asks for it before every call and transaction.
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout},
                                cache_allowed_requests=True,
                                cacheable_requests={RPCEndpoint("eth_chainId")}))
    try:
        w3.eth.chain_id  # noqa: B018 - the first request: fails if unreachable
    except Exception as exc:  # noqa: BLE001 - any transport failure means unreachable
        raise ChainError(f"cannot reach the chain at {url}: {type(exc).__name__}") from None
    return w3


def is_in_process(w3: Web3) -> bool:
    return hasattr(w3.provider, "ethereum_tester")


#: anvil's and Hardhat's default mnemonic: a dev chain's funded accounts (public test keys).
DEV_MNEMONIC = "test test test test test test test test test test test junk"


def dev_keys(count: int = 10) -> list[tuple[str, str]]:
    """(address, private key) of the dev chain's funded accounts (public test keys)."""
    from eth_account import Account
    from eth_account.hdaccount import key_from_seed, seed_from_mnemonic

    seed = seed_from_mnemonic(DEV_MNEMONIC, "")
    accounts = [Account.from_key(key_from_seed(seed, f"m/44'/60'/0'/0/{i}")) for i in range(count)]
    return [(a.address, a.key.hex()) for a in accounts]


def derive_accounts(n: int, seed: int, label: str = "colearn-demo") -> list[LocalAccount]:
    """Deterministic throwaway accounts for demos and tests on a local chain."""
    return [
        Account.from_key(hashlib.sha256(f"{label}:{seed}:{i}".encode()).digest())
        for i in range(n)
    ]


def fund_accounts(w3: Web3, addresses: list[str], amount_wei: int = 10**20) -> None:
    """Funds accounts from the dev chain's first unlocked account (eth-tester, anvil,
    Hardhat all have one)."""
    funder = w3.eth.accounts[0] if w3.eth.accounts else None
    if funder is None:
        raise ChainError("the node has no unlocked account to fund from; fund the accounts yourself")
    for address in addresses:
        tx_hash = w3.eth.send_transaction({"from": funder, "to": address,
                                           "value": Wei(amount_wei)})
        w3.eth.wait_for_transaction_receipt(tx_hash)


def advance_time(w3: Web3, seconds: int) -> None:
    """Moves a dev chain's clock forward and mines a block with the new time."""
    if is_in_process(w3):
        tester = w3.provider.ethereum_tester  # type: ignore[attr-defined]
        tester.time_travel(w3.eth.get_block("latest")["timestamp"] + seconds)
        tester.mine_blocks()
    else:
        w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [seconds])
        w3.provider.make_request(RPCEndpoint("evm_mine"), [])

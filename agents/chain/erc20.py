"""The ERC-20 calls a staked experiment needs: the allowance the contract may pull, an
approval, and a balance (the contract itself moves tokens with OpenZeppelin's SafeERC20)."""

from __future__ import annotations

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from agents.chain.errors import node_answer
from agents.chain.rpc import Rpc

_ALLOWANCE = function_signature_to_4byte_selector("allowance(address,address)")
_APPROVE = function_signature_to_4byte_selector("approve(address,uint256)")
_BALANCE_OF = function_signature_to_4byte_selector("balanceOf(address)")


class Erc20:
    """One ERC-20 token, read through the package's transport."""

    def __init__(self, rpc: Rpc, address: str):
        self.rpc = rpc
        self.address = to_checksum_address(address)

    def allowance(self, owner: str, spender: str) -> int:
        return self._uint(_ALLOWANCE + abi_encode(["address", "address"], [owner, spender]))

    def balance_of(self, account: str) -> int:
        return self._uint(_BALANCE_OF + abi_encode(["address"], [account]))

    def approve_data(self, spender: str, amount: int) -> bytes:
        """The calldata of ``approve(spender, amount)``."""
        return _APPROVE + abi_encode(["address", "uint256"], [spender, amount])

    def _uint(self, data: bytes) -> int:
        answer = self.rpc.call({"to": self.address, "data": "0x" + data.hex()})
        with node_answer("an ERC-20 view"):
            (value,) = abi_decode(["uint256"], answer)
            return int(value)

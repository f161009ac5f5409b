"""The chain layer's one exception tree, and what turns a node's answers into it: the
contract's custom errors decoded by name (:class:`ErrorDecoder`), JSON-RPC error answers,
transport failures, and answers a node should not have given (:func:`node_answer`)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3.exceptions import ContractCustomError, ContractLogicError, Web3Exception

from agents.chain.types import RoundState


class ChainError(Exception):
    """A chain operation failed: unreachable node, missing contract, failed transaction."""

class ContractRevert(ChainError):
    """The contract refused a call with one of its custom errors."""

    def __init__(self, name: str, args: dict[str, Any]):
        self.name = name
        self.error_args = args
        rendered = ", ".join(f"{k}={_render(v)}" for k, v in args.items())
        super().__init__(f"{name}({rendered})")

class RpcError(ChainError):
    """A JSON-RPC error answer that is not a contract revert."""

    def __init__(self, message: str, code: Any):
        super().__init__(message)
        self.code = code

class InsufficientFunds(RpcError):
    """The node refused a transaction its sender cannot pay for (JSON-RPC -32003, or a
    message saying "insufficient funds"). :class:`agents.chain.transactions.TxSender` turns
    it into one line naming the account and ``colearn account fund``."""

#: JSON-RPC's "transaction rejected" code, which anvil, geth and Hardhat use for it.
_TX_REJECTED = -32003

def is_insufficient_funds(message: str, code: Any) -> bool:
    return "insufficient funds" in message.lower() or (
        code == _TX_REJECTED and "fund" in message.lower())

class MalformedEvent(ChainError):
    """A log that does not decode as the contract's event (a hostile or broken contract)."""

    def __init__(self, event: str, reason: str):
        self.event = event
        self.reason = reason
        super().__init__(f"malformed {event} log: {reason}")

@contextmanager
def node_answer(what: str) -> Iterator[None]:
    """Turns an answer the node should not have given (wrong type, missing field, bad hex,
    undecodable ABI data) into a :class:`ChainError`: a provider cannot crash a caller."""
    try:
        yield
    except ChainError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything parsing the answer raised
        raise ChainError(f"malformed answer from the node ({what}): {type(exc).__name__}: "
                         f"{str(exc)[:200]}") from None

def brief(exc: BaseException, limit: int = 160) -> str:
    """An exception as one short line."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit - 1] + "…"

class ErrorDecoder:
    """Names the contract's refusals: its custom errors by selector, from the ABI."""

    def __init__(self, abi: list[dict[str, Any]]):
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for item in abi:
            if item.get("type") != "error":
                continue
            types = [i["type"] for i in item["inputs"]]
            names = [i["name"] for i in item["inputs"]]
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            self._errors[selector] = (item["name"], types, names)

    def revert(self, data: bytes | None) -> ContractRevert | None:
        """The contract's error in revert ``data``, or ``None`` if it holds none."""
        if not data or data[:4] not in self._errors:
            return None
        name, types, names = self._errors[data[:4]]
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

    def rpc_error(self, error: Any) -> ChainError:
        """A JSON-RPC error answer: the contract's revert if it carries one."""
        if not isinstance(error, dict):
            return ChainError(f"the node answered with an error: {error}")
        data = error.get("data")
        if isinstance(data, dict):  # Hardhat: {"message": ..., "data": "0x<revert data>"}
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x"):
            try:
                revert = self.revert(bytes.fromhex(data[2:]))
            except Exception:  # noqa: BLE001 - malformed revert data: report the message
                revert = None
            if revert is not None:
                return revert
        message, code = str(error.get("message", error)), error.get("code")
        if is_insufficient_funds(message, code):
            return InsufficientFunds(message, code)
        return RpcError(message, code)

    def classify(self, exc: BaseException) -> ChainError:
        """Any exception from web3, eth-tester or a transport, as a :class:`ChainError`."""
        revert = self.revert(_revert_data(exc))
        if revert is not None:
            return revert
        if isinstance(exc, (ContractLogicError, Web3Exception)):
            return ChainError(str(exc))
        if isinstance(exc, (ConnectionError, OSError)) or "Connection" in type(exc).__name__:
            return ChainError(f"cannot reach the chain: {exc}")
        return ChainError(f"{type(exc).__name__}: {exc}")


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

def _render(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)

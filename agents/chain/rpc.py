"""One JSON-RPC transport for the whole package: requests sent raw over one kept-alive
HTTP(S) connection per provider (:class:`HttpJson`), or through the provider's own
``make_request`` (IPC, WebSocket), or through web3's typed API for the in-process chain,
which takes Python values rather than JSON-RPC's hex strings (:class:`Web3Rpc`). Every
answer becomes a result or a :class:`~agents.chain.errors.ChainError`."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import TransactionNotFound
from web3.providers import HTTPProvider, JSONBaseProvider
from web3.types import BlockIdentifier

from agents.chain.errors import ChainError, ErrorDecoder, RpcError, node_answer
from agents.chain.logs import RawLog, hex_topics, raw_log_from_json

log = logging.getLogger(__name__)

#: Requests in one JSON-RPC batch (block headers, receipts).
BATCH_SIZE = 500

class Receipt(NamedTuple):
    status: int
    gas_used: int
    block_number: int
    logs: tuple[RawLog, ...] = ()
    contract_address: str | None = None  # of a deployment

class HttpJson:
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
            return self._exchange({"jsonrpc": "2.0", "id": self._id, "method": method,
                                   "params": params})

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """One JSON-RPC batch: the node's response to each call, in the calls' order
        (``None`` where it gave none)."""
        with self._lock:
            first = self._id + 1
            self._id += len(calls)
            answers = self._exchange([{"jsonrpc": "2.0", "id": first + i, "method": method,
                                       "params": params}
                                      for i, (method, params) in enumerate(calls)])
        if not isinstance(answers, list):  # a node that refuses batches answers one error
            shown = answers.get("error", answers) if isinstance(answers, dict) else answers
            raise ChainError(f"the node refused a batch request: {str(shown)[:200]}")
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
        return [by_id.get(first + i) for i in range(len(calls))]

    def _exchange(self, request: Any) -> Any:
        body = json.dumps(request).encode()
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
_HTTP_TRANSPORTS: weakref.WeakKeyDictionary[Any, HttpJson] = weakref.WeakKeyDictionary()

class JsonRpc:
    """The hot path's requests, sent raw over a JSON-RPC provider (HTTP, IPC) and parsed
    here: web3's formatting middleware costs more than the request itself."""

    def __init__(self, w3: Web3, errors: ErrorDecoder):
        provider = w3.provider
        if HttpJson.usable(provider):
            transport = _HTTP_TRANSPORTS.get(provider)
            if transport is None:
                kwargs = provider.get_request_kwargs()  # type: ignore[attr-defined]
                transport = _HTTP_TRANSPORTS[provider] = HttpJson(
                    str(provider.endpoint_uri),  # type: ignore[attr-defined]
                    kwargs.get("headers", {}),
                    kwargs.get("timeout"))
            self._post: Callable[[str, list[Any]], Any] = transport
            self._http: HttpJson | None = transport
        else:
            self._post = provider.make_request  # type: ignore[assignment]
            self._http = None
        self.errors = errors
        #: Requests sent as JSON-RPC batches (the audit reports them).
        self.batches = 0
        self._sync_send: bool | None = None  # eth_sendRawTransactionSync: works?

    def request(self, method: str, params: list[Any]) -> Any:
        try:
            response = self._post(method, params)
        except ChainError:
            raise
        except Exception as exc:  # noqa: BLE001 - transport failures, classified
            raise self.errors.classify(exc) from None
        if not isinstance(response, dict):
            raise ChainError(f"the node's answer to {method} is not a JSON-RPC response: "
                             f"{str(response)[:100]}")
        if "error" in response:
            raise self.errors.rpc_error(response["error"])
        return response.get("result")

    def call(self, tx: dict[str, str], block: BlockIdentifier = "latest") -> bytes:
        at = hex(block) if isinstance(block, int) else block
        with node_answer("eth_call"):
            return _hex_bytes(self.request("eth_call", [tx, at]))

    def estimate_gas(self, tx: dict[str, str]) -> int:
        return self._quantity("eth_estimateGas", [tx])

    def block_number(self) -> int:
        return self._quantity("eth_blockNumber", [])

    def nonce(self, address: str) -> int:
        return self._quantity("eth_getTransactionCount", [address, "pending"])

    def balance(self, address: str) -> int:
        return self._quantity("eth_getBalance", [address, "latest"])

    def max_priority_fee(self) -> int:
        return self._quantity("eth_maxPriorityFeePerGas", [])

    def latest_timestamp(self) -> int:
        with node_answer("eth_getBlockByNumber"):
            return _quantity(self.request("eth_getBlockByNumber", ["latest", False])["timestamp"])

    def latest_base_fee(self) -> int | None:
        with node_answer("eth_getBlockByNumber"):
            fee = self.request("eth_getBlockByNumber", ["latest", False]).get("baseFeePerGas")
            return None if fee is None else _quantity(fee)

    def gas_price(self) -> int:
        return self._quantity("eth_gasPrice", [])

    def _quantity(self, method: str, params: list[Any]) -> int:
        with node_answer(method):
            return _quantity(self.request(method, params))

    def timestamps(self, blocks: Sequence[int]) -> dict[int, int]:
        """Each block's timestamp (JSON-RPC batches where the transport allows)."""
        headers = self._many([("eth_getBlockByNumber", [hex(b), False]) for b in blocks])
        with node_answer("eth_getBlockByNumber"):
            return {b: _quantity(_present(h, f"block {b}")["timestamp"])
                    for b, h in zip(blocks, headers)}

    def senders_and_gas(self, tx_hashes: Sequence[str]) -> dict[str, tuple[str, int]]:
        """Each mined transaction's sender and gas used, from its receipt."""
        receipts = self._many([("eth_getTransactionReceipt", [h]) for h in tx_hashes])
        with node_answer("eth_getTransactionReceipt"):
            return {h: (to_checksum_address(_present(r, f"a receipt for {h}")["from"]),
                        _quantity(r["gasUsed"])) for h, r in zip(tx_hashes, receipts)}

    def transactions(self, tx_hashes: Sequence[str]) -> dict[str, tuple[str | None, bytes]]:
        """Each mined transaction's recipient (None: a deployment) and calldata."""
        txs = self._many([("eth_getTransactionByHash", [h]) for h in tx_hashes])
        with node_answer("eth_getTransactionByHash"):
            return {h: _to_and_input(_present(t, f"transaction {h}"))
                    for h, t in zip(tx_hashes, txs)}

    def _many(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """The results of ``calls``, in order: batches of :data:`BATCH_SIZE` over HTTP,
        one request each otherwise."""
        if self._http is None:
            return [self.request(method, params) for method, params in calls]
        results: list[Any] = []
        for start in range(0, len(calls), BATCH_SIZE):
            chunk = calls[start:start + BATCH_SIZE]
            self.batches += 1
            try:
                answers = self._http.batch(chunk)
            except ChainError:
                raise
            except Exception as exc:  # noqa: BLE001 - transport failures, classified
                raise self.errors.classify(exc) from None
            for (method, _), answer in zip(chunk, answers):
                if answer is None or "error" in answer:
                    problem = "no answer" if answer is None else str(answer["error"])[:200]
                    raise ChainError(f"{method} failed in a batch: {problem}")
                results.append(answer.get("result"))
        return results

    def send_raw(self, raw: bytes) -> tuple[str, Receipt | None]:
        """Sends a signed transaction: its hash, and its receipt where the node can wait
        for it in the same request (``eth_sendRawTransactionSync``, EIP-7966: anvil has
        it). Nodes without it get ``eth_sendRawTransaction`` (and the receipt is polled)."""
        if self._sync_send is not False:
            try:
                r = self.request("eth_sendRawTransactionSync", ["0x" + raw.hex()])
            except RpcError as exc:
                if self._sync_send is None:  # not (or not quite) supported here
                    log.debug("no eth_sendRawTransactionSync (%s): sending, then polling", exc)
                    self._sync_send = False
                elif exc.code != 4:  # 4: sent but not mined in the node's time; poll
                    raise
            else:
                self._sync_send = True
                with node_answer("eth_sendRawTransactionSync"):
                    return str(r["transactionHash"]), _json_receipt(r)
        with node_answer("eth_sendRawTransaction"):
            tx_hash = self.request("eth_sendRawTransaction", ["0x" + raw.hex()])
            if not isinstance(tx_hash, str):
                raise TypeError("no transaction hash")
            return tx_hash, None

    def receipt(self, tx_hash: str) -> Receipt | None:
        with node_answer("eth_getTransactionReceipt"):
            r = self.request("eth_getTransactionReceipt", [tx_hash])
            return None if r is None else _json_receipt(r)

    def logs(self, address: str, topics: Sequence[Any], from_block: int,
             to_block: int | None) -> list[RawLog]:
        entries = self.request("eth_getLogs", [{
            "address": address, "fromBlock": hex(from_block),
            "toBlock": "latest" if to_block is None else hex(to_block),
            "topics": hex_topics(topics)}])
        with node_answer("eth_getLogs"):
            return [raw_log_from_json(e) for e in entries]

class Web3Rpc:
    """The same requests through web3's typed API: for providers that are not JSON-RPC
    (the in-process chain takes Python values, not JSON-RPC's hex strings)."""

    def __init__(self, w3: Web3, errors: ErrorDecoder):
        self.eth = w3.eth
        self.errors = errors

    def _do(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - classified
            raise self.errors.classify(exc) from None

    def call(self, tx: dict[str, str], block: BlockIdentifier = "latest") -> bytes:
        return bytes(self._do(self.eth.call, tx, block))

    def latest_timestamp(self) -> int:
        return int(self._do(self.eth.get_block, "latest")["timestamp"])

    def estimate_gas(self, tx: dict[str, str]) -> int:
        return int(self._do(self.eth.estimate_gas, tx))

    def block_number(self) -> int:
        return int(self._do(lambda: self.eth.block_number))

    def nonce(self, address: str) -> int:
        return int(self._do(self.eth.get_transaction_count, address, "pending"))

    def balance(self, address: str) -> int:
        return int(self._do(self.eth.get_balance, address))

    def max_priority_fee(self) -> int:
        return int(self._do(lambda: self.eth.max_priority_fee))

    def latest_base_fee(self) -> int | None:
        return self._do(self.eth.get_block, "latest").get("baseFeePerGas")

    def gas_price(self) -> int:
        return int(self._do(lambda: self.eth.gas_price))

    batches = 0  # the in-process chain takes one request at a time

    def timestamps(self, blocks: Sequence[int]) -> dict[int, int]:
        return {b: int(self._do(self.eth.get_block, b)["timestamp"]) for b in blocks}

    def senders_and_gas(self, tx_hashes: Sequence[str]) -> dict[str, tuple[str, int]]:
        out: dict[str, tuple[str, int]] = {}
        for h in tx_hashes:
            r = self._do(self.eth.get_transaction_receipt, h)
            out[h] = (to_checksum_address(r["from"]), int(r["gasUsed"]))
        return out

    def transactions(self, tx_hashes: Sequence[str]) -> dict[str, tuple[str | None, bytes]]:
        return {h: _to_and_input(self._do(self.eth.get_transaction, h)) for h in tx_hashes}

    def send_raw(self, raw: bytes) -> tuple[str, Receipt | None]:
        return self._do(self.eth.send_raw_transaction, raw).to_0x_hex(), None

    def receipt(self, tx_hash: str) -> Receipt | None:
        try:
            r = self.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        except Exception as exc:  # noqa: BLE001
            raise self.errors.classify(exc) from None
        created = r.get("contractAddress")
        return Receipt(int(r["status"]), int(r["gasUsed"]), int(r["blockNumber"]),
                       tuple(_web3_log(e) for e in r["logs"]),
                       None if created is None else to_checksum_address(created))

    def logs(self, address: str, topics: Sequence[Any], from_block: int,
             to_block: int | None) -> list[RawLog]:
        entries = self._do(self.eth.get_logs, {
            "address": address, "fromBlock": from_block,
            "toBlock": "latest" if to_block is None else to_block,
            "topics": hex_topics(topics)})
        return [_web3_log(e) for e in entries]

Rpc = JsonRpc | Web3Rpc

def rpc_for(w3: Web3, errors: ErrorDecoder) -> Rpc:
    if isinstance(w3.provider, JSONBaseProvider):
        return JsonRpc(w3, errors)
    return Web3Rpc(w3, errors)

def _json_receipt(r: dict[str, Any]) -> Receipt:
    created = r.get("contractAddress")
    return Receipt(int(r["status"], 16), int(r["gasUsed"], 16), int(r["blockNumber"], 16),
                   tuple(raw_log_from_json(e) for e in r.get("logs") or ()),
                   None if created is None else to_checksum_address(created))



def _web3_log(e: Any) -> RawLog:
    return RawLog(tuple(bytes(t) for t in e["topics"]), bytes(e["data"]), int(e["blockNumber"]),
                  e["transactionHash"].to_0x_hex(), int(e["logIndex"]),
                  bool(e.get("removed", False)))


def _to_and_input(tx: Any) -> tuple[str | None, bytes]:
    to, data = tx.get("to"), tx.get("input", "0x")
    return ((None if to is None else to_checksum_address(to)),
            bytes(data) if isinstance(data, (bytes, bytearray)) else _hex_bytes(data))


def _present(value: Any, what: str) -> Any:
    if value is None:
        raise ChainError(f"the node has no {what}")
    return value


def _quantity(value: Any) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"not a hex quantity: {str(value)[:66]}")
    return int(value, 16)

def _hex_bytes(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"not hex data: {str(value)[:66]}")
    return bytes.fromhex(value[2:])

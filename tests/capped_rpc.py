"""A JSON-RPC proxy in front of a dev node, behaving like a hosted provider that caps
``eth_getLogs``: a range over ``max_blocks`` blocks gets the error such providers send
(code -32602, "eth_getLogs is limited to a 100 block range"). Everything else is
forwarded, batches included.

Tests also use it to interleave the chain with a reader: ``before(method, params)`` runs
before each request is forwarded, while the client waits for its answer, so a test can
mine a transaction exactly between two of a reader's calls.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
from fake_http import json_handler

from agents._utils.http import BackgroundHttpServer

#: The error a capped provider answers a too large range with (Alchemy's, QuickNode's).
REFUSAL_CODE = -32602


class CappedRpc(BackgroundHttpServer[ThreadingHTTPServer]):
    """Serves on a free 127.0.0.1 port from :meth:`start` (or ``with``) to :meth:`stop`."""

    def __init__(self, upstream: str, max_blocks: int | None = 100,
                 before: Callable[[str, list[Any]], None] | None = None):
        super().__init__(ThreadingHTTPServer, json_handler(self._answer_body),
                         name="capped-rpc")
        self.upstream = upstream
        self.max_blocks = max_blocks
        self.before = before
        self.requests: Counter[str] = Counter()
        self.refused = 0
        self.largest_range = 0  # of the eth_getLogs answered
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=60.0)

    def stop(self) -> None:
        super().stop()
        self._http.close()

    def call(self, method: str, *params: Any) -> Any:
        """One request to the node itself (not through the cap, nor ``before``)."""
        answer = self._forward({"jsonrpc": "2.0", "id": 1, "method": method,
                                "params": list(params)})
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def mine(self, blocks: int) -> None:
        """Mines ``blocks`` empty blocks on the node (anvil)."""
        self.call("anvil_mine", hex(blocks))

    # ---------------------------------------------------------------- internals

    def _answer_body(self, body: Any) -> Any:
        if isinstance(body, list):
            return [self._answer(request) for request in body]
        return self._answer(body)

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        method, params = request.get("method", ""), request.get("params") or []
        with self._lock:
            self.requests[method] += 1
        if self.before is not None:
            self.before(method, params)
        if method == "eth_getLogs" and self.max_blocks is not None and params:
            span = self._span(params[0])
            if span is not None and span > self.max_blocks:
                with self._lock:
                    self.refused += 1
                return {"jsonrpc": "2.0", "id": request.get("id"), "error": {
                    "code": REFUSAL_CODE,
                    "message": f"eth_getLogs is limited to a {self.max_blocks} block range"}}
            if span is not None:
                with self._lock:
                    self.largest_range = max(self.largest_range, span)
        return self._forward(request)

    def _span(self, query: dict[str, Any]) -> int | None:
        if "blockHash" in query:
            return None
        return self._block(query.get("toBlock")) - self._block(query.get("fromBlock")) + 1

    def _block(self, tag: Any) -> int:
        if tag in (None, "latest", "pending", "safe", "finalized"):
            return int(self.call("eth_blockNumber"), 16)
        return 0 if tag == "earliest" else int(tag, 16)

    def _forward(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._http.post(self.upstream, json=request).json()


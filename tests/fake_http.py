"""Request handlers for the tests' fake HTTP services (served with
:class:`agents._utils.http.BackgroundHttpServer`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 (keep-alive, as real nodes), no log lines, and :meth:`send_json`."""

    protocol_version = "HTTP/1.1"

    def send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def json_handler(answer: Callable[[Any], Any]) -> type[BaseHTTPRequestHandler]:
    """Answers each POST's JSON body with ``answer(body)``, as JSON (a JSON-RPC node's
    shape: a request or a batch in, its answer out)."""

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_json(200, answer(body))

    return Handler

"""A small in-memory stand-in for a Kubo node's RPC API (``add`` and ``cat``), for tests of
stores that misbehave: content listed in :attr:`FakeKubo.drip` is sent one byte at a time,
``drip_seconds`` apart, so that no single read ever times out.

    with FakeKubo() as node:
        store = IpfsRpcStore(node.url)
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from fake_http import QuietHandler

from agents._utils.http import BackgroundHttpServer
from agents.storage.cid import compute_cid, normalize_cid


class FakeKubo(BackgroundHttpServer[ThreadingHTTPServer]):
    """Serves ``POST /api/v0/add`` and ``/api/v0/cat`` on a free 127.0.0.1 port."""

    def __init__(self, drip_seconds: float = 0.5) -> None:
        super().__init__(ThreadingHTTPServer, _handler(self), name="fake-kubo")
        self.blocks: dict[str, bytes] = {}
        self.drip: set[str] = set()
        self.drip_seconds = drip_seconds
        self.dripping = 0  # cat answers being dripped right now
        self._lock = threading.Lock()

    def add(self, data: bytes, *, drip: bool = False) -> str:
        cid = compute_cid(data)
        with self._lock:
            self.blocks[cid] = data
            if drip:
                self.drip.add(cid)
        return cid


def _multipart_file(content_type: str, body: bytes) -> bytes:
    """The content of the first part of a ``multipart/form-data`` body."""
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    part = body.split(b"--" + boundary)[1]
    return part.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n")


def _handler(node: FakeKubo) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def do_POST(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if url.path == "/api/v0/add":
                data = _multipart_file(self.headers["Content-Type"], body)
                self.send_json(200, {"Name": "weights", "Hash": node.add(data),
                                 "Size": str(len(data))})
            elif url.path == "/api/v0/cat":
                self._cat(normalize_cid(query["arg"][0]))
            else:
                self.send_json(404, {"Message": f"no command {url.path}", "Code": 0})

        def _cat(self, cid: str) -> None:
            with node._lock:
                data, drip = node.blocks.get(cid), cid in node.drip
            if data is None:
                self.send_json(500, {"Message": "block was not found locally (offline)",
                                 "Code": 0})
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not drip:
                self.wfile.write(data)
                return
            with node._lock:
                node.dripping += 1
            try:
                for byte in data:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(node.drip_seconds)
            except OSError:
                pass  # the client gave up: what the test wants
            finally:
                with node._lock:
                    node.dripping -= 1

    return Handler

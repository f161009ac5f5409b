"""The relay's HTTP server, made for hostile clients.

Every request is read within one deadline (request line, headers and body together), its
body only when its ``Content-Length`` is present, numeric and small; each client address
draws from a token bucket (429 with ``Retry-After`` when it is empty); the number of open
connections is capped. Every refusal is a 4xx with ``{"error": ...}`` and one log line;
anything unexpected is a 500 and one log line: no bytes a client sends print a
traceback or drop a connection unanswered.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from pydantic import BaseModel, ValidationError

from agents._utils.http import LOCALHOST, BackgroundHttpServer
from agents.chain.errors import ChainError
from agents.chain.signing import SignedCommit, SignedJoin, SignedProposal, SignedVote
from agents.relay.errors import Refused
from agents.relay.requests import RevealRequest
from agents.relay.service import Relay

log = logging.getLogger(__name__)

_CONTENT_LENGTH = re.compile(r"[0-9]{1,12}")
# After refusing a request whose body was not read: how much of it to drain (bytes,
# seconds) so that closing the socket does not reset the connection before the client
# reads the answer.
_DRAIN_BYTES, _DRAIN_SECONDS = 64 * 1024, 0.5


@dataclass(frozen=True)
class HttpLimits:
    """What one client may ask of the relay's HTTP server."""

    max_body: int = 16 * 1024  # bytes (a signed vote is about 600)
    request_timeout: float = 10.0  # seconds to send a whole request
    rate: float = 5.0  # requests a second per client address, sustained
    burst: int = 20  # requests a client address may send at once
    max_connections: int = 64  # open at once, all clients together
    max_clients: int = 10_000  # client addresses remembered by the rate limiter


class TokenBuckets:
    """A token bucket per client address: ``burst`` tokens, refilled at ``rate`` a second."""

    def __init__(self, rate: float, burst: int, max_clients: int = 10_000):
        self.rate, self.burst, self.max_clients = rate, burst, max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # tokens, as of a time
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """Takes a token: 0 if there was one, else the seconds until there is."""
        with self._lock:
            now = time.monotonic()
            tokens, then = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            if len(self._buckets) >= self.max_clients and client not in self._buckets:
                self._forget_full(now)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drops the buckets that are full again (forgetting them changes nothing)."""
        full = [c for c, (tokens, then) in self._buckets.items()
                if tokens + (now - then) * self.rate >= self.burst]
        for client in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[client]


class _Server(ThreadingHTTPServer):
    """Caps the open connections; a connection's failure is one log line."""

    block_on_close = False  # closing the server waits for no client

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 limits: HttpLimits):
        self.max_connections = limits.max_connections
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self._open = 0
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    @property
    def open_connections(self) -> int:
        return self._open

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("relay http: %s: %d connections open already: refused",
                        client_address[0], self.max_connections)
            try:
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\n"
                                b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        with self._open_lock:
            self._open += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._open_lock:
            self._open -= 1
        self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        log.error("relay http: %s: connection failed: %s", client_address[0], _describe(exc))


class RelayServer(BackgroundHttpServer[_Server]):
    """Serves a :class:`Relay` over HTTP on ``host:port`` (port 0: a free one) and runs its
    loop; a context manager: everything stops on exit."""

    def __init__(self, relay: Relay, host: str = LOCALHOST, port: int = 0,
                 tick_interval: float | None = 0.2, limits: HttpLimits | None = None):
        self.relay = relay
        self.tick_interval = tick_interval  # None: the caller calls relay.tick() itself
        self.limits = limits or HttpLimits()
        super().__init__(partial(_Server, limits=self.limits), _handler(relay, self.limits),
                         port, host=host, name="relay-http")
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None

    @property
    def open_connections(self) -> int:
        return self.server.open_connections

    def start(self) -> Self:
        super().start()
        if self.tick_interval is not None:
            self._stop.clear()
            self._loop = threading.Thread(target=self.relay.run,
                                          args=(self._stop, self.tick_interval),
                                          name="relay-loop", daemon=True)
            self._loop.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        super().stop()
        if self._loop is not None:
            self._loop.join(timeout=10)
            self._loop = None


class _DeadlineReader(socket.SocketIO):
    """Reads a socket until one deadline: each read waits at most the time left."""

    def __init__(self, sock: socket.socket, deadline: float):
        super().__init__(sock, "rb")
        self._socket = sock
        self._deadline = deadline

    def readinto(self, b: Any) -> int | None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request took too long to arrive")
        self._socket.settimeout(left)
        return super().readinto(b)


def _handler(relay: Relay, limits: HttpLimits) -> type[BaseHTTPRequestHandler]:
    routes: dict[str, tuple[type[BaseModel], Any]] = {
        "/v1/votes": (SignedVote, relay.submit_vote),
        "/v1/proposals": (SignedProposal, relay.submit_proposal),
        "/v1/joins": (SignedJoin, relay.submit_join),
        "/v1/commits": (SignedCommit, relay.submit_commit),
        "/v1/reveals": (RevealRequest, relay.submit_reveal),
    }
    buckets = TokenBuckets(limits.rate, limits.burst, limits.max_clients)

    class Handler(BaseHTTPRequestHandler):
        timeout = limits.request_timeout  # also bounds writing the answer
        _replied = False
        _unread = False  # a body left unread: drain some before closing

        def setup(self) -> None:
            super().setup()
            self.rfile.close()
            self.rfile = io.BufferedReader(_DeadlineReader(
                self.connection, time.monotonic() + limits.request_timeout))

        def handle(self) -> None:
            try:
                super().handle()
            except Exception as exc:  # noqa: BLE001 - one line, never a traceback
                self.close_connection = True
                if isinstance(exc, OSError):  # the client went away
                    self.log_error("connection lost: %s", _describe(exc))
                else:
                    self._fail(exc)

        def finish(self) -> None:
            try:
                if self._unread:
                    self._drain()
                super().finish()
            except OSError:
                pass

        def do_GET(self) -> None:
            if not self._admit():
                return
            if self.path != "/v1/health":
                self._refuse(HTTPStatus.NOT_FOUND, f"no such endpoint {self.path}")
                return
            self._reply(HTTPStatus.OK, {
                "contract": relay.client.address, "chain_id": relay.client.chain_id,
                "experiments": sorted(relay.served), "any_experiment": relay.any_experiment,
                "watched": sorted(relay.watched), "votes_queued": relay.votes_queued,
                "votes_relayed": relay.votes_relayed, "votes_discarded": relay.votes_discarded,
                "commits_relayed": relay.commits_relayed,
                "reveals_relayed": relay.reveals_relayed, "queued": relay.queued,
                "batches_sent": relay.batches_sent,
                "proposals_relayed": relay.proposals_relayed,
                "joins_relayed": relay.joins_relayed})

        def do_POST(self) -> None:
            self._unread = True
            if not self._admit():
                return
            route = routes.get(self.path)
            if route is None:
                self._refuse(HTTPStatus.NOT_FOUND, f"no such endpoint {self.path}")
                return
            body = self._body()
            if body is None:
                return
            model, submit = route
            try:
                result = submit(model.model_validate_json(body))
            except ValidationError as exc:
                self._refuse(HTTPStatus.BAD_REQUEST, f"malformed request: {_summary(exc)}")
            except Refused as exc:
                self._refuse(HTTPStatus(exc.status), str(exc))
            except ChainError as exc:
                self._refuse(HTTPStatus.BAD_GATEWAY, f"chain: {exc}")
            except Exception as exc:  # noqa: BLE001 - a 500 and one line, not a dropped connection
                self._fail(exc)
            else:
                self._reply(HTTPStatus.ACCEPTED, {"tx_hash": result}
                            if isinstance(result, str) else {"queued": bool(result)})

        # ----------------------------------------------------------- helpers

        def _admit(self) -> bool:
            wait = buckets.take(self.client_address[0])
            if wait > 0:
                self._refuse(HTTPStatus.TOO_MANY_REQUESTS, "too many requests",
                             {"Retry-After": str(max(1, math.ceil(wait)))})
            return wait == 0

        def _body(self) -> bytes | None:
            """The request's body, or ``None`` once a refusal is sent."""
            lengths = self.headers.get_all("Content-Length") or []
            if self.headers.get("Transfer-Encoding") is not None or not lengths:
                self._refuse(HTTPStatus.LENGTH_REQUIRED, "a Content-Length is required")
                return None
            if len(lengths) > 1 or not _CONTENT_LENGTH.fullmatch(lengths[0].strip()):
                self._refuse(HTTPStatus.BAD_REQUEST,
                             "Content-Length must be one non-negative integer")
                return None
            length = int(lengths[0].strip())
            if length > limits.max_body:
                self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                             f"the body may have at most {limits.max_body} bytes")
                return None
            try:
                body = self.rfile.read(length)
            except TimeoutError:
                self._refuse(HTTPStatus.REQUEST_TIMEOUT, "the request took too long to arrive")
                return None
            if len(body) < length:
                self._refuse(HTTPStatus.BAD_REQUEST, "the body is shorter than its Content-Length")
                return None
            self._unread = False
            return body

        def _refuse(self, status: HTTPStatus, message: str,
                    headers: dict[str, str] | None = None) -> None:
            self.log_error("%d %s", status, message)
            self._reply(status, {"error": message}, headers)

        def _fail(self, exc: BaseException) -> None:
            log.error("relay http: %s %s from %s: internal error: %s", *self._what(),
                      _describe(exc))
            if not self._replied:
                self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

        def _reply(self, status: HTTPStatus, body: dict[str, Any],
                   headers: dict[str, str] | None = None) -> None:
            self._replied = True
            data = json.dumps(body).encode()
            try:
                self.connection.settimeout(limits.request_timeout)
                self.send_response(status)
                for name, value in {"Content-Type": "application/json",
                                    "Content-Length": str(len(data)), "Connection": "close",
                                    **(headers or {})}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                self.close_connection = True  # the client went away: nothing to answer

        def _drain(self) -> None:
            """Reads (and drops) a little of an unread body, so the answer reaches the
            client before the socket closes."""
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline, left = time.monotonic() + _DRAIN_SECONDS, _DRAIN_BYTES
            while left > 0 and (wait := deadline - time.monotonic()) > 0:
                self.connection.settimeout(wait)
                try:
                    chunk = self.connection.recv(min(left, 16 * 1024))
                except OSError:
                    return
                if not chunk:
                    return
                left -= len(chunk)

        def log_error(self, format: str, *args: Any) -> None:
            log.warning("relay http: %s %s from %s: %s", *self._what(), _clip(format % args))

        def _what(self) -> tuple[str, str, str]:
            """Method, path and client of the request, for a log line."""
            return (_clip(getattr(self, "command", None) or "-", 20),
                    _clip(getattr(self, "path", None) or "-"), self.client_address[0])

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass  # refusals are logged once by log_error; what is accepted, by the service

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("relay http: " + format, *args)

    return Handler


def _summary(exc: ValidationError) -> str:
    return _clip("; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
                           for e in exc.errors(include_url=False, include_input=False)))


def _describe(exc: BaseException | None) -> str:
    return "unknown error" if exc is None else _clip(f"{type(exc).__name__}: {exc}")


def _clip(text: str, limit: int = 300) -> str:
    """Client text fit for one log line: printable, one line, bounded."""
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text[:limit])
    return text if len(text) <= limit else text[:limit] + "..."

"""An HTTP server served from a background thread: the explorer, the relay and the tests'
fake nodes all start and stop theirs this way."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Generic, Self, TypeVar

LOCALHOST = "127.0.0.1"
# How often the serving loop checks for stop(): what stop() may wait at most.
_POLL_SECONDS = 0.1

S = TypeVar("S", bound=ThreadingHTTPServer)
#: Builds the server: ``ThreadingHTTPServer`` itself, or a subclass (extra arguments bound).
ServerFactory = Callable[[tuple[str, int], type[BaseHTTPRequestHandler]], S]


class BackgroundHttpServer(Generic[S]):
    """``server_class((host, port), handler)`` (port 0: a free one), served from a daemon
    thread between :meth:`start` and :meth:`stop`, or while the ``with`` block runs. Each
    request is handled in a daemon thread of its own."""

    def __init__(self, server_class: ServerFactory[S], handler: type[BaseHTTPRequestHandler],
                 port: int = 0, *, host: str = LOCALHOST, name: str = "http") -> None:
        self._server_class, self._handler = server_class, handler
        self._address = (host, port)
        self._name = name
        self._server: S | None = None
        self._thread: threading.Thread | None = None

    @property
    def server(self) -> S:
        assert self._server is not None, f"{self._name}: not started"
        return self._server

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    def start(self) -> Self:
        host, port = self._address
        try:
            self._server = self._server_class(self._address, self._handler)
        except OSError as exc:
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=self._name,
                                        args=(_POLL_SECONDS,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes the socket. Idempotent."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

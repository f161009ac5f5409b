"""What the dev services (anvil, js-ipfs, hardhat node) share: a child process in its own
process group that dies with its parent, started on free ports (retried when a port is
taken meanwhile), ready once its HTTP endpoint answers, and stopped with SIGTERM, then
SIGKILL, on the whole group (:mod:`agents._utils.shutdown`, as every process a command starts).
Subclasses say how to build the command and probe readiness.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar, Self

from agents._utils.shutdown import deferred_signals, spawn, stop_processes

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class DevProcessError(Exception):
    """A dev service could not be found, started or reached."""


class _ExitedEarly(DevProcessError):
    """The process exited during start-up (typically: one of its ports was taken meanwhile)."""


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def http_json(url: str, payload: Any = None) -> Any:
    """POSTs ``payload`` as JSON (or an empty body) to ``url``; the decoded JSON answer."""
    request = urllib.request.Request(url, data=b"", method="POST")
    if payload is not None:
        request.data = json.dumps(payload).encode()
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=1.0) as response:
        return json.loads(response.read())


class ManagedProcess:
    """A dev service run for the duration of a ``with`` block (or between :meth:`start` and
    :meth:`stop`). Subclasses implement :meth:`command`, :meth:`probe` and :meth:`accept`."""

    name: ClassVar[str] = "process"
    error: ClassVar[type[DevProcessError]] = DevProcessError
    capture_stdout: ClassVar[bool] = True  # else stdout goes to /dev/null, stderr is kept
    poll_interval: ClassVar[float] = 0.05

    def __init__(self, *, host: str, ports: Sequence[int | None], startup_timeout: float,
                 stop_timeout: float, cwd: Path | None = None):
        self.host = host
        self.requested_ports = tuple(ports)
        self.ports: tuple[int, ...] | None = None
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.cwd = cwd
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    # --- what subclasses say ----------------------------------------------------------

    def command(self) -> list[str]:
        """The command line, for the ports in :attr:`ports`."""
        raise NotImplementedError

    def probe(self) -> Any:
        """One readiness request; network errors, ValueError and KeyError mean not yet."""
        raise NotImplementedError

    def accept(self, answer: Any) -> None:
        """Raises :attr:`error` when ``answer`` is not from the expected kind of server."""

    def env(self) -> dict[str, str] | None:
        return None

    def prepare(self) -> None:
        """Once per :meth:`start`, before the first launch."""

    def configure(self) -> None:
        """Before each launch, once :attr:`ports` are chosen."""

    def cleanup(self) -> None:
        """After the process has stopped (undo :meth:`prepare`)."""

    # --- state --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.ports is None:
            raise self.error(f"{self.name} is not running")
        return f"http://{self.host}:{self.ports[0]}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def output(self) -> str:
        """The last 2000 characters the process printed (stderr only without capture_stdout)."""
        if self._output is None:
            return ""
        self._output.seek(0, os.SEEK_END)
        self._output.seek(max(0, self._output.tell() - 8000))
        return self._output.read().decode(errors="replace").strip()[-2000:]

    # --- start / stop -------------------------------------------------------------------

    def start(self) -> Self:
        if self.running:
            return self
        try:
            self.prepare()
            for port in self.requested_ports:
                if port is not None and not port_is_free(self.host, port):
                    raise self.error(f"port {port} on {self.host} is already in use")
            # A free port can be taken between the probe and the process's bind, which makes
            # it exit at once: then try other ports. A start-up timeout is not retried.
            attempts = 1 if any(p is not None for p in self.requested_ports) else 3
            for attempt in range(1, attempts + 1):
                try:
                    self._launch(self._choose_ports())
                    return self
                except _ExitedEarly as exc:
                    if attempt == attempts:
                        raise self.error(str(exc)) from None
                    log.warning("%s; retrying on other ports", exc)
            raise AssertionError("unreachable")
        except BaseException:
            self.stop()
            raise

    def _choose_ports(self) -> tuple[int, ...]:
        ports: list[int] = []
        for requested in self.requested_ports:
            port = requested or find_free_port(self.host)
            while port in ports:
                port = find_free_port(self.host)
            ports.append(port)
        return tuple(ports)

    def _launch(self, ports: tuple[int, ...]) -> None:
        self.ports = ports
        self.configure()
        cmd = self.command()
        log.info("starting %s on port(s) %s: %s", self.name, ports, " ".join(cmd))
        started = time.monotonic()
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - closed in _stop_process()
        with deferred_signals():  # recorded before a stop signal can unwind
            self._process = spawn(
                cmd, cwd=self.cwd, env=self.env(),
                stdout=self._output if self.capture_stdout else subprocess.DEVNULL,
                stderr=self._output)
        try:
            self._wait_until_ready()
        except BaseException:
            self._stop_process()
            raise
        self.startup_seconds = time.monotonic() - started
        log.info("%s (pid %d) answering at %s after %.2f s", self.name, self._process.pid,
                 self.url, self.startup_seconds)

    def _wait_until_ready(self) -> None:
        assert self._process is not None and self.ports is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._process.poll()
            if code is not None:
                ports = ", ".join(map(str, self.ports))
                raise _ExitedEarly(f"{self.name} exited with code {code} during start-up on "
                                   f"port(s) {ports}: {self.output() or '(no output)'}")
            try:
                answer = self.probe()
                if self._process.poll() is not None:
                    continue  # another process answered; ours exited: reported above
                self.accept(answer)
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, KeyError):
                pass
            if time.monotonic() >= deadline:
                raise self.error(f"{self.name} did not answer at {self.url} within "
                                 f"{self.startup_timeout:g} s: {self.output() or '(no output)'}")
            time.sleep(self.poll_interval)

    def _stop_process(self) -> None:
        process = self._process
        if process is not None:
            stop_processes([process], self.stop_timeout, [self.name])
            self._process = None
        if self._output is not None:
            self._output.close()
            self._output = None
        self.ports = None

    def stop(self) -> None:
        """Stops the process group (SIGTERM, then SIGKILL after ``stop_timeout`` seconds)
        and cleans up. Idempotent."""
        self._stop_process()
        self.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

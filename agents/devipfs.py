"""A local IPFS node for development and tests: js-ipfs (the npm package ``ipfs`` in
``node_modules``) as a child process.

    with JsIpfsDaemon() as ipfs:
        store = IpfsRpcStore(ipfs.api_url)

js-ipfs is a real IPFS implementation whose RPC API speaks Kubo's ``/api/v0/...``; it is
used here because no Kubo binary installs offline. The node gets a fresh repository in a
temporary directory (``jsipfs init --profile test``: no bootstrap peers, no mDNS), its RPC
API and gateway listen on 127.0.0.1 and free ports, it opens no swarm listener and runs
``--offline`` (no connection to the rest of the network, no preload requests). It is
stopped when the ``with`` block ends (SIGTERM to its process group, SIGKILL if it
lingers) and its repository is removed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from agents.devchain import (
    _DIE_WITH_PARENT,
    PROJECT_ROOT,
    _port_is_free,
    _signal_group,
    find_free_port,
)

log = logging.getLogger(__name__)

DEFAULT_JSIPFS = PROJECT_ROOT / "node_modules" / ".bin" / "jsipfs"


class DevIpfsError(Exception):
    """The local IPFS node could not be found, set up, started or reached."""


class _ExitedEarly(DevIpfsError):
    """jsipfs exited during start-up (typically: one of its ports was taken meanwhile)."""


def find_jsipfs(path: str | Path | None = None) -> Path:
    """The jsipfs launcher: ``path`` if given, else the one npm installs in ``node_modules``."""
    candidate = Path(path) if path is not None else DEFAULT_JSIPFS
    if not candidate.exists():
        hint = (
            "" if path is not None
            else f" Run `npm ci` in {PROJECT_ROOT} to install it (npm package ipfs)."
        )
        raise DevIpfsError(f"jsipfs not found at {candidate}.{hint}")
    if not os.access(candidate, os.X_OK):
        raise DevIpfsError(f"jsipfs at {candidate} is not executable")
    if shutil.which("node") is None:
        raise DevIpfsError(f"jsipfs at {candidate} needs Node.js, and `node` is not on PATH")
    return candidate


class JsIpfsDaemon:
    """Runs a js-ipfs daemon for the duration of a ``with`` block (or between :meth:`start`
    and :meth:`stop`), on a temporary repository that :meth:`stop` removes."""

    def __init__(
        self,
        jsipfs_path: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        api_port: int | None = None,
        gateway_port: int | None = None,
        extra_args: Sequence[str] = (),
        init_timeout: float = 60.0,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ):
        self.jsipfs_path = find_jsipfs(jsipfs_path)
        self.host = host
        self.requested_api_port = api_port
        self.requested_gateway_port = gateway_port
        self.api_port: int | None = None
        self.gateway_port: int | None = None
        self.extra_args = list(extra_args)
        self.init_timeout = init_timeout
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.version: str | None = None
        self._tmpdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    @property
    def api_url(self) -> str:
        """``http://HOST:PORT`` of the RPC API (``/api/v0/...`` below it)."""
        if self.api_port is None:
            raise DevIpfsError("the IPFS daemon is not running")
        return f"http://{self.host}:{self.api_port}"

    @property
    def gateway_url(self) -> str:
        """``http://HOST:PORT`` of the read-only gateway (``/ipfs/CID``)."""
        if self.gateway_port is None:
            raise DevIpfsError("the IPFS daemon is not running")
        return f"http://{self.host}:{self.gateway_port}"

    @property
    def repo_path(self) -> Path | None:
        """The node's repository (``IPFS_PATH``) while it exists."""
        return None if self._tmpdir is None else self._tmpdir / "repo"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ, IPFS_PATH=str(self.repo_path))
        env.pop("DEBUG", None)  # js-ipfs logs everything to stderr when DEBUG names it
        return env

    def command(self) -> list[str]:
        return [str(self.jsipfs_path), "daemon", "--offline", "--no-enable-preload",
                *self.extra_args]

    # --- set-up ---------------------------------------------------------------------

    def _init_repo(self) -> None:
        """``jsipfs init --profile test`` in a fresh temporary directory."""
        self._tmpdir = Path(tempfile.mkdtemp(prefix="colearn-ipfs-"))
        cmd = [str(self.jsipfs_path), "init", "--profile", "test", "--emptyRepo"]
        log.info("initialising IPFS repo %s: %s", self.repo_path, " ".join(cmd))
        try:
            result = subprocess.run(
                cmd, env=self._env(), stdin=subprocess.DEVNULL, capture_output=True,
                timeout=self.init_timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            raise DevIpfsError(f"`jsipfs init` did not finish within {self.init_timeout:g} s") from None
        if result.returncode != 0:
            output = (result.stderr or result.stdout).decode(errors="replace").strip()
            raise DevIpfsError(f"`jsipfs init` failed with code {result.returncode}: "
                               f"{output[-2000:] or '(no output)'}")

    def _configure(self, api_port: int, gateway_port: int) -> None:
        """API and gateway on ``host`` and the given ports; no swarm, no gRPC endpoint."""
        assert self.repo_path is not None
        path = self.repo_path / "config"
        config: dict[str, Any] = json.loads(path.read_text())
        addresses = config.setdefault("Addresses", {})
        addresses["API"] = f"/ip4/{self.host}/tcp/{api_port}"
        addresses["Gateway"] = f"/ip4/{self.host}/tcp/{gateway_port}"
        addresses["Swarm"] = []  # listen for no peers at all
        addresses["Announce"] = []
        addresses["Delegates"] = []
        addresses.pop("RPC", None)  # the test profile puts a gRPC server on fixed port 5003
        config["Bootstrap"] = []
        config.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
        path.write_text(json.dumps(config, indent=2))

    # --- start / stop ---------------------------------------------------------------

    def start(self) -> Self:
        if self.running:
            return self
        try:
            self._init_repo()
            fixed = self.requested_api_port is not None or self.requested_gateway_port is not None
            for host_port in (self.requested_api_port, self.requested_gateway_port):
                if host_port is not None and not _port_is_free(self.host, host_port):
                    raise DevIpfsError(f"port {host_port} on {self.host} is already in use")
            # A free port can be taken between the probe and the daemon's bind, which
            # makes it exit at once: then try other ports. A start-up timeout is not retried.
            attempts = 1 if fixed else 3
            for attempt in range(1, attempts + 1):
                api_port = self.requested_api_port or find_free_port(self.host)
                gateway_port = self.requested_gateway_port or find_free_port(self.host)
                while gateway_port == api_port:
                    gateway_port = find_free_port(self.host)
                try:
                    self._launch(api_port, gateway_port)
                    return self
                except _ExitedEarly as exc:
                    if attempt == attempts:
                        raise DevIpfsError(str(exc)) from None
                    log.warning("%s; retrying on other ports", exc)
            raise AssertionError("unreachable")
        except BaseException:
            self.stop()
            raise

    def _launch(self, api_port: int, gateway_port: int) -> None:
        self._configure(api_port, gateway_port)
        cmd = self.command()
        log.info("starting js-ipfs (API %s:%d, gateway %s:%d): %s",
                 self.host, api_port, self.host, gateway_port, " ".join(cmd))
        started = time.monotonic()
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - closed in _stop_process()
        self._process = subprocess.Popen(
            cmd,
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole
            preexec_fn=_DIE_WITH_PARENT,  # noqa: PLW1509 - one prctl call, no imports or locks
        )
        self.api_port, self.gateway_port = api_port, gateway_port
        try:
            self._wait_until_ready()
        except BaseException:
            self._stop_process()
            raise
        log.info("js-ipfs %s (pid %d) answering at %s after %.1f s", self.version,
                 self._process.pid, self.api_url, time.monotonic() - started)

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        request = urllib.request.Request(f"{self.api_url}/api/v0/version", data=b"",
                                         method="POST")
        while True:
            code = self._process.poll()
            if code is not None:
                raise _ExitedEarly(
                    f"jsipfs daemon exited with code {code} during start-up (API port "
                    f"{self.api_port}, gateway port {self.gateway_port}): "
                    f"{self._output_text() or '(no output)'}")
            try:
                with urllib.request.urlopen(request, timeout=1.0) as response:
                    answer = json.loads(response.read())
                if self._process.poll() is not None:
                    continue  # another process answered; ours exited: reported above
                if isinstance(answer, dict) and "Version" in answer:
                    self.version = str(answer["Version"])
                    return
                raise DevIpfsError(f"{self.api_url}/api/v0/version answered {answer!r}: "
                                   "is another server on that port?")
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                pass
            if time.monotonic() >= deadline:
                raise DevIpfsError(
                    f"the jsipfs daemon did not answer at {self.api_url} within "
                    f"{self.startup_timeout:g} s: {self._output_text() or '(no output)'}")
            time.sleep(0.1)

    def _output_text(self) -> str:
        if self._output is None:
            return ""
        self._output.seek(0)
        return self._output.read().decode(errors="replace").strip()[-2000:]

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            log.info("stopping js-ipfs (pid %d)", process.pid)
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("js-ipfs (pid %d) ignored SIGTERM; killing it", process.pid)
                _signal_group(process, signal.SIGKILL)
                process.wait()
        elif process is not None:
            process.wait()  # reap a daemon that exited by itself
        if self._output is not None:
            self._output.close()
            self._output = None
        self.api_port = self.gateway_port = None

    def stop(self) -> None:
        """Stops the daemon (SIGTERM, then SIGKILL after ``stop_timeout`` seconds) and
        removes its repository. Idempotent."""
        self._stop_process()
        tmpdir, self._tmpdir = self._tmpdir, None
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

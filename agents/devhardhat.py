"""Hardhat 2 (from ``node_modules``) as a child process: ``hardhat node`` as a local chain,
``hardhat compile`` as a second build of the contract.

    with HardhatNode() as node:
        w3 = connect(node.url)

The node listens on 127.0.0.1 and a free port (chain id 31337, one block per transaction,
20 unlocked dev accounts) and is stopped, with its whole process group, when the ``with``
block ends: SIGTERM first, SIGKILL if it lingers. ``hardhat.config.js`` at the project root
compiles with the npm solc and the settings of ``scripts/compile.js``; ``COLEARN_HARDHAT_OUT``
moves Hardhat's cache and artifacts out of the working tree.
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
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from agents.devchain import (
    _DIE_WITH_PARENT,
    DEFAULT_CHAIN_ID,
    PROJECT_ROOT,
    DevChainError,
    _signal_group,
    find_free_port,
)

log = logging.getLogger(__name__)

DEFAULT_HARDHAT = PROJECT_ROOT / "node_modules" / ".bin" / "hardhat"
#: Environment variable read by hardhat.config.js: a directory for ``cache/`` and ``artifacts/``.
OUT_DIR_ENV = "COLEARN_HARDHAT_OUT"


def hardhat_command(project_root: Path = PROJECT_ROOT) -> list[str]:
    """``node <node_modules/.bin/hardhat>``; raises :class:`DevChainError` naming the fix when
    Node.js or Hardhat is missing."""
    node = shutil.which("node")
    if node is None:
        raise DevChainError("Node.js (`node`) is not on PATH: Hardhat needs Node.js 20")
    hardhat = project_root / "node_modules" / ".bin" / "hardhat"
    if not hardhat.exists():
        raise DevChainError(f"hardhat not found at {hardhat}. Run `npm ci` in {project_root} "
                            "to install it.")
    return [node, str(hardhat), "--config", str(project_root / "hardhat.config.js")]


def hardhat_env(out_dir: str | Path | None = None) -> dict[str, str]:
    env = dict(os.environ, HARDHAT_DISABLE_TELEMETRY_PROMPT="true")
    if out_dir is not None:
        env[OUT_DIR_ENV] = str(out_dir)
    return env


class _ExitedEarly(DevChainError):
    """hardhat node exited during start-up (typically: its port was taken meanwhile)."""


class HardhatNode:
    """Runs ``hardhat node`` for the duration of a ``with`` block."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None,
                 project_root: Path = PROJECT_ROOT, startup_timeout: float = 60.0,
                 stop_timeout: float = 5.0):
        self.base_command = hardhat_command(project_root)
        self.project_root = project_root
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.chain_id = DEFAULT_CHAIN_ID
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._out_dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise DevChainError("hardhat node is not running")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        if self.running:
            return self
        if self.requested_port is not None:
            self._launch(self.requested_port)
            return self
        # A free port can be taken before hardhat binds it: then try another one.
        for attempt in range(1, 4):
            try:
                self._launch(find_free_port(self.host))
                return self
            except _ExitedEarly as exc:
                if attempt == 3:
                    raise DevChainError(str(exc)) from None
                log.warning("%s; retrying on another port", exc)
        raise AssertionError("unreachable")

    def _launch(self, port: int) -> None:
        cmd = [*self.base_command, "node", "--hostname", self.host, "--port", str(port)]
        log.info("starting hardhat node: %s", " ".join(cmd))
        # hardhat node writes nothing to cache/ or artifacts/, but keep the tree clean anyway.
        self._out_dir = tempfile.TemporaryDirectory(prefix="hardhat-")
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        started = time.monotonic()
        self._process = subprocess.Popen(
            cmd,
            cwd=self.project_root,
            env=hardhat_env(self._out_dir.name),
            stdin=subprocess.DEVNULL,
            stdout=self._output,  # it logs every RPC call: kept for error messages only
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole
            preexec_fn=_DIE_WITH_PARENT,  # noqa: PLW1509 - one prctl call, no imports or locks
        )
        self.port = port
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        log.info("hardhat node (pid %d) answering at %s after %.2f s", self._process.pid,
                 self.url, self.startup_seconds)

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId",
                              "params": []}).encode()
        while True:
            code = self._process.poll()
            if code is not None:
                raise _ExitedEarly(f"hardhat node exited with code {code} during start-up on "
                                   f"port {self.port}: {self.output() or '(no output)'}")
            request = urllib.request.Request(self.url, data=payload,
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=1.0) as response:
                    answer = json.loads(response.read())
                if self._process.poll() is not None:
                    continue  # another process answered; ours exited: reported above
                if int(answer["result"], 16) == self.chain_id:
                    return
                raise DevChainError(f"the node at {self.url} has chain id {answer['result']}, "
                                    f"not {self.chain_id}: is another node on that port?")
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, KeyError):
                pass
            if time.monotonic() >= deadline:
                raise DevChainError(f"hardhat node did not answer JSON-RPC at {self.url} within "
                                    f"{self.startup_timeout:g} s: {self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        """The last 2000 characters hardhat node printed."""
        if self._output is None:
            return ""
        self._output.seek(0, os.SEEK_END)
        size = self._output.tell()
        self._output.seek(max(0, size - 8000))
        return self._output.read().decode(errors="replace").strip()[-2000:]

    def stop(self) -> None:
        """Stops the node's process group: SIGTERM, then SIGKILL. Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                log.info("stopping hardhat node (pid %d)", process.pid)
            # Signal the group even if the leader is gone: a child may outlive it.
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("hardhat node (pid %d) ignored SIGTERM; killing it", process.pid)
                _signal_group(process, signal.SIGKILL)
                process.wait()
            try:
                os.killpg(process.pid, signal.SIGKILL)  # anything left in the group
            except (ProcessLookupError, PermissionError):
                pass
        if self._output is not None:
            self._output.close()
            self._output = None
        if self._out_dir is not None:
            self._out_dir.cleanup()
            self._out_dir = None
        self.port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

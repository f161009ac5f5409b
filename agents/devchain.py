"""A local development chain: anvil (from the npm package in ``node_modules``) as a child process.

    with AnvilProcess() as anvil:
        w3 = connect(anvil.url)

The chain listens on 127.0.0.1 and a free port, mines a block per transaction (no block
time), and is stopped when the ``with`` block ends: SIGTERM first, SIGKILL if it lingers.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ANVIL = PROJECT_ROOT / "node_modules" / ".bin" / "anvil"
DEFAULT_CHAIN_ID = 31337


class DevChainError(Exception):
    """The local chain could not be found, started or reached."""


class _ExitedEarly(DevChainError):
    """anvil exited during start-up (typically: its port was taken meanwhile)."""


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    """Signals anvil's process group (it leads its own session), or anvil alone."""
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            process.send_signal(sig)
        except ProcessLookupError:
            pass


def find_anvil(path: str | Path | None = None) -> Path:
    """The anvil binary: ``path`` if given, else the one npm installs in ``node_modules``."""
    candidate = Path(path) if path is not None else DEFAULT_ANVIL
    if not candidate.exists():
        hint = "" if path is not None else f" Run `npm ci` in {PROJECT_ROOT} to install it."
        raise DevChainError(f"anvil not found at {candidate}.{hint}")
    if not os.access(candidate, os.X_OK):
        raise DevChainError(f"anvil at {candidate} is not executable")
    return candidate


def _load_prctl() -> Callable[[], None] | None:
    """Linux: a function, run in the child before exec, that makes the kernel SIGTERM anvil
    when the process that started it dies without cleaning up (PR_SET_PDEATHSIG).

    libc is loaded here, in the parent, so the child only makes one foreign call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def _die_with_parent() -> None:  # pragma: no cover - runs in the child
        prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG

    return _die_with_parent


_DIE_WITH_PARENT = _load_prctl()


class AnvilProcess:
    """Runs anvil for the duration of a ``with`` block (or between :meth:`start` and :meth:`stop`)."""

    def __init__(
        self,
        anvil_path: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        chain_id: int = DEFAULT_CHAIN_ID,
        block_time: float | None = None,
        mixed_mining: bool = False,
        hardfork: str | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 15.0,
        stop_timeout: float = 5.0,
    ):
        self.anvil_path = find_anvil(anvil_path)
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.chain_id = chain_id
        self.block_time = block_time
        self.mixed_mining = mixed_mining
        self.hardfork = hardfork
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise DevChainError("anvil is not running")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self, port: int) -> list[str]:
        cmd = [str(self.anvil_path), "--host", self.host, "--port", str(port),
               "--chain-id", str(self.chain_id), "--silent"]
        if self.block_time is not None:
            cmd += ["--block-time", str(self.block_time)]
            if self.mixed_mining:  # transactions mine at once; empty blocks keep time moving
                cmd.append("--mixed-mining")
        if self.hardfork is not None:
            cmd += ["--hardfork", self.hardfork]
        return cmd + self.extra_args

    def start(self) -> Self:
        if self.running:
            return self
        if self.requested_port is not None:
            if not _port_is_free(self.host, self.requested_port):
                raise DevChainError(f"port {self.requested_port} on {self.host} is already in use")
            self._launch(self.requested_port)
            return self
        # A free port can be taken between the probe and anvil's bind, which makes anvil
        # exit at once: then try another port. A start-up timeout is not retried.
        for attempt in range(1, 4):
            port = find_free_port(self.host)
            try:
                self._launch(port)
                return self
            except _ExitedEarly as exc:
                if attempt == 3:
                    raise DevChainError(str(exc)) from None
                log.warning("%s; retrying on another port", exc)
        raise AssertionError("unreachable")

    def _launch(self, port: int) -> None:
        cmd = self.command(port)
        log.info("starting anvil: %s", " ".join(cmd))
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            start_new_session=True,  # its own process group, stopped as a whole
            preexec_fn=_DIE_WITH_PARENT,  # noqa: PLW1509 - one prctl call, no imports or locks
        )
        self.port = port
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        log.info("anvil (pid %d) answering at %s", self._process.pid, self.url)

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId",
                              "params": []}).encode()
        while True:
            code = self._process.poll()
            if code is not None:
                raise _ExitedEarly(f"anvil exited with code {code} during start-up on port "
                                   f"{self.port}: {self._stderr_text() or '(no output)'}")
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
                raise DevChainError(f"anvil did not answer JSON-RPC at {self.url} within "
                                    f"{self.startup_timeout:g} s")
            time.sleep(0.05)

    def _stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()[-2000:]

    def stop(self) -> None:
        """Stops anvil: SIGTERM, then SIGKILL after ``stop_timeout`` seconds. Idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            log.info("stopping anvil (pid %d)", process.pid)
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("anvil (pid %d) ignored SIGTERM; killing it", process.pid)
                _signal_group(process, signal.SIGKILL)
                process.wait()
        elif process is not None:
            process.wait()  # reap an anvil that exited by itself
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self.port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


#: anvil's (and Hardhat's) well-known development mnemonic: its keys are public.
DEV_MNEMONIC = "test test test test test test test test test test test junk"


def dev_keys(count: int = 10) -> list[tuple[str, str]]:
    """(address, private key) of the dev chain's funded accounts (public test keys)."""
    from eth_account import Account
    from eth_account.hdaccount import key_from_seed, seed_from_mnemonic

    seed = seed_from_mnemonic(DEV_MNEMONIC, "")
    accounts = [Account.from_key(key_from_seed(seed, f"m/44'/60'/0'/0/{i}")) for i in range(count)]
    return [(a.address, a.key.hex()) for a in accounts]


def run_chain_forever(port: int, block_time: float, console: Any) -> None:
    """``colearn chain``: anvil on 127.0.0.1 until Ctrl-C, with its URL and test keys."""
    with AnvilProcess(port=port, block_time=block_time, mixed_mining=True) as anvil:
        console.print(f"anvil listening on [bold]{anvil.url}[/] (chain id {anvil.chain_id})")
        console.print("funded test accounts (well-known keys: never use them on a real network):")
        for i, (address, key) in enumerate(dev_keys()):
            console.print(f"  ({i}) {address}  0x{key.removeprefix('0x')}")
        console.print("Ctrl-C stops it.")
        try:
            while anvil.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    console.print("anvil stopped")

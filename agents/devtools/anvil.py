"""A local development chain: anvil (given, from ``node_modules`` in a checkout, or on
``PATH``: :func:`find_anvil`) as a child process.

    with AnvilProcess() as anvil:
        w3 = connect(anvil.url)

The chain listens on 127.0.0.1 and a free port, mines a block per transaction (no block
time), and is stopped when the ``with`` block ends: SIGTERM first, SIGKILL if it lingers.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from agents.chain.network import dev_keys
from agents.devtools.process import (
    PROJECT_ROOT,
    DevProcessError,
    ManagedProcess,
    find_free_port,  # noqa: F401 - re-exported
    http_json,
)

DEFAULT_ANVIL = PROJECT_ROOT / "node_modules" / ".bin" / "anvil"
DEFAULT_CHAIN_ID = 31337
#: How to get anvil, for the error that says none was found.
INSTALL_HINT = ("`npm install @foundry-rs/anvil-linux-amd64` in a checkout (`npm ci` installs "
                "it), or Foundry's `curl -L https://foundry.paradigm.xyz | bash && foundryup`, "
                "or give --anvil PATH")


class DevChainError(DevProcessError):
    """The local chain could not be found, started or reached."""


def find_anvil(path: str | Path | None = None) -> Path:
    """The anvil binary: ``path`` if given (``--anvil``); else the one npm installs in the
    ``node_modules`` of the checkout this package runs from; else ``anvil`` on ``PATH``
    (Foundry's ``foundryup`` puts it there). Raises :class:`DevChainError` saying how to
    get one."""
    if path is not None:
        candidate = Path(path).expanduser()
        if candidate.is_dir():
            raise DevChainError(f"--anvil {candidate} is a directory, not the anvil binary")
        if not candidate.exists():
            raise DevChainError(f"--anvil {candidate}: no such file")
    elif DEFAULT_ANVIL.exists():
        candidate = DEFAULT_ANVIL
    else:
        found = shutil.which("anvil")
        if found is None:
            raise DevChainError(f"anvil not found (not in {DEFAULT_ANVIL.parent}, not on "
                                f"PATH): install it with {INSTALL_HINT}")
        candidate = Path(found)
    if not os.access(candidate, os.X_OK):
        raise DevChainError(f"anvil at {candidate} is not executable")
    return candidate


class ChainProcess(ManagedProcess):
    """A JSON-RPC dev chain on one port, ready once ``eth_chainId`` answers ``chain_id``."""

    error: ClassVar[type[DevProcessError]] = DevChainError
    chain_id: int = DEFAULT_CHAIN_ID

    @property
    def port(self) -> int | None:
        return None if self.ports is None else self.ports[0]

    def probe(self) -> Any:
        return http_json(self.url, {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId",
                                    "params": []})

    def accept(self, answer: Any) -> None:
        if int(answer["result"], 16) != self.chain_id:
            raise DevChainError(f"the node at {self.url} has chain id {answer['result']}, "
                                f"not {self.chain_id}: is another node on that port?")


class AnvilProcess(ChainProcess):
    """Runs anvil for the duration of a ``with`` block (or between :meth:`start` and :meth:`stop`)."""

    name = "anvil"
    capture_stdout = False

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
        super().__init__(host=host, ports=[port], startup_timeout=startup_timeout,
                         stop_timeout=stop_timeout)
        self.anvil_path = find_anvil(anvil_path)
        self.chain_id = chain_id
        self.block_time = block_time
        self.mixed_mining = mixed_mining
        self.hardfork = hardfork
        self.extra_args = list(extra_args)

    def command(self) -> list[str]:
        cmd = [str(self.anvil_path), "--host", self.host, "--port", str(self.port),
               "--chain-id", str(self.chain_id), "--silent"]
        if self.block_time is not None:
            cmd += ["--block-time", str(self.block_time)]
            if self.mixed_mining:  # transactions mine at once; empty blocks keep time moving
                cmd.append("--mixed-mining")
        if self.hardfork is not None:
            cmd += ["--hardfork", self.hardfork]
        return cmd + self.extra_args


#: anvil's (and Hardhat's) well-known development mnemonic: its keys are public.
def run_chain_forever(port: int, block_time: float, console: Any,
                      anvil_path: str | Path | None = None) -> None:
    """``colearn chain``: anvil on 127.0.0.1 until Ctrl-C (or SIGTERM, SIGHUP: the CLI
    turns them into :class:`agents._utils.shutdown.Interrupted`, which stops anvil on its way
    out), with its URL and test keys. Raises :class:`DevChainError` if anvil exits."""
    with AnvilProcess(anvil_path, port=port, block_time=block_time, mixed_mining=True) as anvil:
        console.print(f"anvil listening on [bold]{anvil.url}[/] (chain id {anvil.chain_id})")
        console.print("funded test accounts (well-known keys: never use them on a real network):")
        for i, (address, key) in enumerate(dev_keys()):
            console.print(f"  ({i}) {address}  0x{key.removeprefix('0x')}")
        console.print("Ctrl-C stops it.")
        while anvil.running:
            time.sleep(0.5)
        raise DevChainError(f"anvil exited by itself: {anvil.output() or '(no output)'}")

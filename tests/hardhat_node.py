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

import os
import shutil
import tempfile
from pathlib import Path

from agents.devtools.anvil import DEFAULT_CHAIN_ID, PROJECT_ROOT, ChainProcess, DevChainError

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


class HardhatNode(ChainProcess):
    """Runs ``hardhat node`` for the duration of a ``with`` block."""

    name = "hardhat node"

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None,
                 project_root: Path = PROJECT_ROOT, startup_timeout: float = 60.0,
                 stop_timeout: float = 5.0):
        super().__init__(host=host, ports=[port], startup_timeout=startup_timeout,
                         stop_timeout=stop_timeout, cwd=project_root)
        self.base_command = hardhat_command(project_root)
        self.project_root = project_root
        self.chain_id = DEFAULT_CHAIN_ID
        self._out_dir: tempfile.TemporaryDirectory[str] | None = None

    def command(self) -> list[str]:
        return [*self.base_command, "node", "--hostname", self.host, "--port", str(self.port)]

    def env(self) -> dict[str, str]:
        return hardhat_env(None if self._out_dir is None else self._out_dir.name)

    def prepare(self) -> None:
        # hardhat node writes nothing to cache/ or artifacts/, but keep the tree clean anyway.
        self._out_dir = tempfile.TemporaryDirectory(prefix="hardhat-")

    def cleanup(self) -> None:
        if self._out_dir is not None:
            self._out_dir.cleanup()
            self._out_dir = None

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
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from agents._utils.shutdown import ChildProcesses
from agents.devtools.process import PROJECT_ROOT, DevProcessError, ManagedProcess, http_json

log = logging.getLogger(__name__)

DEFAULT_JSIPFS = PROJECT_ROOT / "node_modules" / ".bin" / "jsipfs"


class DevIpfsError(DevProcessError):
    """The local IPFS node could not be found, set up, started or reached."""


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


class JsIpfsDaemon(ManagedProcess):
    """Runs a js-ipfs daemon for the duration of a ``with`` block (or between :meth:`start`
    and :meth:`stop`), on a temporary repository that :meth:`stop` removes."""

    name = "jsipfs daemon"
    error: ClassVar[type[DevProcessError]] = DevIpfsError
    poll_interval = 0.1

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
        super().__init__(host=host, ports=[api_port, gateway_port],
                         startup_timeout=startup_timeout, stop_timeout=stop_timeout)
        self.jsipfs_path = find_jsipfs(jsipfs_path)
        self.extra_args = list(extra_args)
        self.init_timeout = init_timeout
        self.version: str | None = None
        self._tmpdir: Path | None = None

    @property
    def api_port(self) -> int | None:
        return None if self.ports is None else self.ports[0]

    @property
    def gateway_port(self) -> int | None:
        return None if self.ports is None else self.ports[1]

    @property
    def api_url(self) -> str:
        """``http://HOST:PORT`` of the RPC API (``/api/v0/...`` below it)."""
        return self.url

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

    def env(self) -> dict[str, str]:
        env = dict(os.environ, IPFS_PATH=str(self.repo_path))
        env.pop("DEBUG", None)  # js-ipfs logs everything to stderr when DEBUG names it
        return env

    def command(self) -> list[str]:
        return [str(self.jsipfs_path), "daemon", "--offline", "--no-enable-preload",
                *self.extra_args]

    def probe(self) -> Any:
        return http_json(f"{self.api_url}/api/v0/version")

    def accept(self, answer: Any) -> None:
        if not (isinstance(answer, dict) and "Version" in answer):
            raise DevIpfsError(f"{self.api_url}/api/v0/version answered {answer!r}: "
                               "is another server on that port?")
        self.version = str(answer["Version"])

    def prepare(self) -> None:
        """``jsipfs init --profile test`` in a fresh temporary directory."""
        self._tmpdir = Path(tempfile.mkdtemp(prefix="colearn-ipfs-"))
        cmd = [str(self.jsipfs_path), "init", "--profile", "test", "--emptyRepo"]
        log.info("initialising IPFS repo %s: %s", self.repo_path, " ".join(cmd))
        with ChildProcesses(self.stop_timeout) as children:  # stopped however this ends
            process = children.start(cmd, name="jsipfs init", env=self.env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                stdout, stderr = process.communicate(timeout=self.init_timeout)
            except subprocess.TimeoutExpired:
                raise DevIpfsError(
                    f"`jsipfs init` did not finish within {self.init_timeout:g} s") from None
        if process.returncode != 0:
            output = (stderr or stdout).decode(errors="replace").strip()
            raise DevIpfsError(f"`jsipfs init` failed with code {process.returncode}: "
                               f"{output[-2000:] or '(no output)'}")

    def configure(self) -> None:
        """API and gateway on ``host`` and the chosen ports; no swarm, no gRPC endpoint."""
        assert self.repo_path is not None
        path = self.repo_path / "config"
        config: dict[str, Any] = json.loads(path.read_text())
        addresses = config.setdefault("Addresses", {})
        addresses["API"] = f"/ip4/{self.host}/tcp/{self.api_port}"
        addresses["Gateway"] = f"/ip4/{self.host}/tcp/{self.gateway_port}"
        addresses["Swarm"] = []  # listen for no peers at all
        addresses["Announce"] = []
        addresses["Delegates"] = []
        addresses.pop("RPC", None)  # the test profile puts a gRPC server on fixed port 5003
        config["Bootstrap"] = []
        config.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
        path.write_text(json.dumps(config, indent=2))

    def cleanup(self) -> None:
        """Removes the repository."""
        tmpdir, self._tmpdir = self._tmpdir, None
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)

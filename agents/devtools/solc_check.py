"""``colearn compile --check``: the shipped artifact's standard-JSON input recompiled with
py-solc-x, and its bytecode compared with the artifact's, so what ``colearn deploy`` sends
is shown to be what the sources build, without Node where a native solc is at hand.

The compiler, in order: ``--solc PATH``; the solc py-solc-x installed
(``solcx.install_solc(VERSION)``) in the artifact's version; a ``solc`` on ``PATH`` in that
version; else, in a checkout with Node, ``scripts/solc-forge.js``, which answers
``--version`` and ``--standard-json`` as a native solc does, with npm's solc (solcjs).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from pydantic import BaseModel
from web3 import Web3

from agents._utils.shutdown import ChildProcesses
from agents.devtools.process import PROJECT_ROOT, DevProcessError

log = logging.getLogger(__name__)

SHIPPED_ARTIFACT = Path(__file__).resolve().parents[1] / "artifacts" / "CollectiveLearning.json"
SOLC_BRIDGE = PROJECT_ROOT / "scripts" / "solc-forge.js"
NPM_SOLC = PROJECT_ROOT / "node_modules" / "solc"
_VERSION = re.compile(r"(\d+\.\d+\.\d+)")


class CompileCheckError(DevProcessError):
    """The artifact or the compiler cannot be used (not a mismatch: that is a result)."""


class Compiler(BaseModel):
    path: Path
    version: str
    kind: str  # "given", "py-solc-x", "PATH" or "npm solc bridge"


class Verdict(BaseModel):
    artifact: Path
    contract: str
    compiler: Compiler
    bytecode_matches: bool
    deployed_matches: bool
    bytecode_bytes: int
    bytecode_keccak: str
    first_difference: int | None = None  # byte offset in the creation bytecode

    @property
    def ok(self) -> bool:
        return self.bytecode_matches and self.deployed_matches

    def line(self) -> str:
        """The one-line verdict."""
        where = f"solc {self.compiler.version} ({self.compiler.kind}: {self.compiler.path})"
        if self.ok:
            return (f"match: {self.artifact.name} ({self.contract}, {self.bytecode_bytes:,} "
                    f"bytes, keccak256 {self.bytecode_keccak}) is what {where} builds from "
                    "its standard-JSON input")
        parts = []
        if not self.bytecode_matches:
            parts.append(f"creation bytecode differs from byte {self.first_difference}")
        if not self.deployed_matches:
            parts.append("runtime bytecode differs")
        return (f"MISMATCH: {self.artifact.name} ({self.contract}): {' and '.join(parts)} "
                f"from what {where} builds from its standard-JSON input: do not deploy it")


def load_artifact_file(path: Path) -> dict[str, Any]:
    try:
        artifact = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CompileCheckError(f"cannot read artifact {path}: {exc.strerror}") from None
    except (ValueError, RecursionError):
        raise CompileCheckError(f"artifact {path} is not JSON") from None
    missing = [k for k in ("contractName", "sourceName", "compiler", "bytecode",
                           "deployedBytecode", "standardJsonInput")
               if not isinstance(artifact, dict) or k not in artifact]
    if missing:
        raise CompileCheckError(f"artifact {path} has no {', '.join(missing)}: not an artifact "
                                "scripts/compile.js wrote")
    return dict(artifact)


def solc_version(path: Path) -> str | None:
    """The X.Y.Z ``path --version`` reports, or ``None`` if it does not run as a solc."""
    try:
        result = subprocess.run([str(path), "--version"], check=False, capture_output=True,
                                text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(result.stdout.partition("Version:")[2])
    return match.group(1) if result.returncode == 0 and match else None


def find_solc(version: str, given: Path | None = None) -> Compiler:
    """A solc in ``version`` (see the module's docstring for the order)."""
    if given is not None:
        found = solc_version(given)
        if found is None:
            raise CompileCheckError(f"--solc {given} does not run as solc (`--version` failed)")
        if found != version:
            raise CompileCheckError(f"--solc {given} is solc {found}; the artifact was built "
                                    f"with {version}")
        return Compiler(path=given, version=found, kind="given")
    try:
        import solcx
        from solcx.exceptions import SolcNotInstalled

        try:
            path = Path(solcx.install.get_executable(version))
            return Compiler(path=path, version=version, kind="py-solc-x")
        except SolcNotInstalled:
            pass
    except ImportError:  # pragma: no cover - a dependency of the package
        raise CompileCheckError("py-solc-x is not installed: pip install py-solc-x") from None
    on_path = shutil.which("solc")
    if on_path is not None and solc_version(Path(on_path)) == version:
        return Compiler(path=Path(on_path), version=version, kind="PATH")
    if SOLC_BRIDGE.exists() and NPM_SOLC.exists() and shutil.which("node") is not None:
        found = solc_version(SOLC_BRIDGE)
        if found == version:
            return Compiler(path=SOLC_BRIDGE, version=found, kind="npm solc bridge")
    raise CompileCheckError(
        f"no solc {version} found: install it with `python -c \"import solcx; "
        f"solcx.install_solc('{version}')\"`, or give --solc PATH (in a checkout, `npm ci` "
        "makes scripts/solc-forge.js one)")


class _RecordingSubprocess:
    """The ``subprocess`` module as py-solc-x's wrapper sees it during a compilation: its
    ``Popen`` starts solc as every child of a command is started (its own session, recorded),
    so that a Ctrl-C or SIGTERM stops it (:class:`agents._utils.shutdown.ChildProcesses`)."""

    def __init__(self, children: ChildProcesses):
        self._children = children

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    def Popen(self, command: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        return self._children.start([str(c) for c in command], name="solc", **kwargs)


@contextlib.contextmanager
def _solc_as_child() -> Iterator[ChildProcesses]:
    import solcx.wrapper

    with ChildProcesses() as children, \
            mock.patch.object(solcx.wrapper, "subprocess", _RecordingSubprocess(children)):
        yield children


def check_artifact(path: Path = SHIPPED_ARTIFACT, solc: Path | None = None) -> Verdict:
    """Recompiles ``path``'s standard-JSON input and compares the bytecode."""
    import solcx
    from solcx.exceptions import SolcError

    artifact = load_artifact_file(path)
    version_text = str(artifact["compiler"].get("version", ""))
    match = _VERSION.match(version_text)
    if match is None:
        raise CompileCheckError(f"artifact {path} names no compiler version ({version_text!r})")
    compiler = find_solc(match.group(1), solc)
    log.info("compiling %s with %s", path, compiler)
    try:
        with _solc_as_child():
            output = solcx.compile_standard(artifact["standardJsonInput"],
                                            solc_binary=compiler.path)
    except SolcError as exc:
        first = " ".join(str(exc).split())[:300]
        raise CompileCheckError(f"solc failed on {path.name}'s input: {first}") from None
    source, name = artifact["sourceName"], artifact["contractName"]
    try:
        built = output["contracts"][source][name]["evm"]
        bytecode = bytes.fromhex(built["bytecode"]["object"])
        deployed = bytes.fromhex(built["deployedBytecode"]["object"])
    except (KeyError, TypeError, ValueError):
        raise CompileCheckError(f"solc built no {source}:{name} from {path.name}'s input "
                                "(its outputSelection must ask for the bytecode)") from None
    try:
        shipped = bytes.fromhex(str(artifact["bytecode"]).removeprefix("0x"))
        shipped_deployed = bytes.fromhex(str(artifact["deployedBytecode"]).removeprefix("0x"))
    except ValueError:
        raise CompileCheckError(f"artifact {path}'s bytecode is not hex") from None
    difference = next((i for i, (a, b) in enumerate(zip(bytecode, shipped)) if a != b),
                      None if len(bytecode) == len(shipped) else min(len(bytecode), len(shipped)))
    return Verdict(artifact=path, contract=f"{source}:{name}", compiler=compiler,
                   bytecode_matches=bytecode == shipped,
                   deployed_matches=deployed == shipped_deployed,
                   bytecode_bytes=len(shipped), bytecode_keccak="0x" + Web3.keccak(shipped).hex().removeprefix("0x"),
                   first_difference=difference)

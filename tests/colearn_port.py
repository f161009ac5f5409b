"""colearn 0.2.8's own code, ported by the one documented rule: its wheel, fetched into a
cache outside the repository, and its files with their import lines rewritten (and
nothing else).

The rule (README, "colearn compatibility"): ``colearn.X`` -> ``colearn_core.X``,
``colearn_pytorch.X`` -> ``colearn_core.pytorch.X``, ``colearn_keras.X`` ->
``colearn_core.keras.X``, ``colearn_other.X`` -> ``colearn_core.other.X``,
``colearn_grpc.X`` -> ``colearn_core.grpc.X``; on chain, ``colearn.training`` ->
``agents.experiment.training``.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

VERSION = "0.2.8"
WHEEL = f"colearn-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "5957e110b4a5cc57be76f026e32be55fa7f4f8eec05565ef0c2d49a2bffa5f02"

_PACKAGES = {"colearn": "colearn_core", "colearn_pytorch": "colearn_core.pytorch",
             "colearn_keras": "colearn_core.keras", "colearn_other": "colearn_core.other",
             "colearn_grpc": "colearn_core.grpc"}
_IMPORT = re.compile(r"^(\s*(?:from|import)\s+)(colearn(?:_pytorch|_keras|_other|_grpc)?)"
                     r"((?:\.\w+)*)(?=[\s,;]|$)")


def rewrite_import(line: str, *, on_chain: bool = False) -> str:
    """One line with its colearn module renamed by the rule; any other line unchanged."""
    match = _IMPORT.match(line)
    if match is None:
        return line
    head, package, rest = match.groups()
    if on_chain and package == "colearn" and rest == ".training":
        module = "agents.experiment.training"
    else:
        module = _PACKAGES[package] + rest
    return head + module + line[match.end():]


def rewrite_imports(source: str, *, on_chain: bool = False) -> str:
    """``source`` with every colearn import line rewritten by the rule; no other line
    changes."""
    return "".join(rewrite_import(line, on_chain=on_chain)
                   for line in source.splitlines(keepends=True))


def cache_dir() -> Path:
    """Where the wheel is kept: ``$COLEARN_WHEEL_CACHE``, else ``$XDG_CACHE_HOME`` (or
    ``~/.cache``) ``/colearn-0.2.8``: outside the repository, reused when present."""
    if os.environ.get("COLEARN_WHEEL_CACHE"):
        return Path(os.environ["COLEARN_WHEEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / f"colearn-{VERSION}"


def fetch_wheel() -> Path:
    """colearn 0.2.8's wheel, downloaded with pip into :func:`cache_dir` unless it is
    there; checked against its sha256. Raises ``RuntimeError`` when it cannot be had."""
    folder = cache_dir()
    wheel = folder / WHEEL
    if not wheel.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        # colearn declares Python < 3.9 but is pure Python: fetch the 3.8 wheel, no deps.
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--python-version", "3.8",
             "--only-binary", ":all:", "--dest", str(folder), f"colearn=={VERSION}"],
            capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0 or not wheel.is_file():
            raise RuntimeError(f"cannot download colearn {VERSION} into {folder}: "
                               f"{(done.stderr or done.stdout).strip()[-2000:]}")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise RuntimeError(f"{wheel} has sha256 {digest}, not colearn {VERSION}'s "
                           f"{WHEEL_SHA256}: delete it to fetch it again")
    return wheel


def extract(wheel: Path, members: list[str], into: Path, *, on_chain: bool = False) -> None:
    """Writes each of the wheel's ``members`` (paths in the wheel) under ``into`` at the
    same relative path, its imports rewritten."""
    with zipfile.ZipFile(wheel) as archive:
        for member in members:
            target = into / member
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.read(member).decode()
            target.write_text(rewrite_imports(source, on_chain=on_chain))


def members(wheel: Path, pattern: str) -> list[str]:
    """The wheel's file paths matching the regular expression ``pattern`` (whole path)."""
    with zipfile.ZipFile(wheel) as archive:
        return sorted(n for n in archive.namelist() if re.fullmatch(pattern, n))

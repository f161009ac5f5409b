"""The wheel, built as ``pip install .`` builds it: the two packages and the contract
artifacts alone, and nothing written into the checkout (build_backend/colearn_build.py
builds on a temporary copy)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow]


def _files(package: str, pattern: str) -> set[str]:
    return {str(p.relative_to(ROOT)) for p in (ROOT / package).rglob(pattern)
            if "__pycache__" not in p.parts}


def _build_leftovers() -> set[str]:
    """What setuptools leaves where it builds: build/ and *.egg-info (ignored by git, so
    listed with --ignored), anywhere in the checkout."""
    status = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
                            cwd=ROOT, check=True, capture_output=True, text=True).stdout
    paths = {line[3:] for line in status.splitlines()}
    return {p for p in paths if p.startswith("build/") or ".egg-info" in p}


def test_the_wheel_ships_the_packages_alone_and_the_checkout_stays_clean(tmp_path):
    before = _build_leftovers()
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "--no-build-isolation", "--quiet", "-w", str(tmp_path)], check=True,
                   cwd=tmp_path)
    assert _build_leftovers() == before  # nothing new in the checkout

    (wheel,) = tmp_path.glob("colearn_chain-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    dist_info = {n for n in names if n.split("/")[0].endswith(".dist-info")}
    shipped = names - dist_info
    assert {n.split("/")[0] for n in shipped} == {"agents", "colearn_core"}
    sources = _files("agents", "*.py") | _files("colearn_core", "*.py")
    artifacts = {f"agents/artifacts/{p.name}" for p in (ROOT / "agents/artifacts").glob("*.json")}
    assert shipped == sources | artifacts
    assert "agents/artifacts/CollectiveLearning.json" in artifacts
    assert not any(part in ("tests", "scripts", "contracts", "build_backend")
                   for name in shipped for part in name.split("/"))
    entry_points = next(n for n in dist_info if n.endswith("entry_points.txt"))
    assert "colearn = agents.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

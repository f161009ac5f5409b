"""Where anvil comes from: ``--anvil``, else the checkout's ``node_modules``, else ``PATH``;
and the one line that says how to get it when there is none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agents.devtools import anvil as anvil_module
from agents.devtools.anvil import DevChainError, find_anvil
from agents.devtools.process import find_free_port

ROOT = Path(__file__).resolve().parents[2]


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def no_checkout_anvil(tmp_path, monkeypatch):
    """As an installed wheel sees it: no node_modules next to the package."""
    monkeypatch.setattr(anvil_module, "DEFAULT_ANVIL", tmp_path / "site" / "node_modules" /
                        ".bin" / "anvil")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))


def test_the_given_path_comes_first(tmp_path, monkeypatch):
    given = executable(tmp_path / "mine" / "anvil")
    monkeypatch.setenv("PATH", str(executable(tmp_path / "bin" / "anvil").parent))
    assert find_anvil(given) == given


def test_the_checkout_comes_before_path(tmp_path, monkeypatch):
    checkout = executable(tmp_path / "node_modules" / ".bin" / "anvil")
    monkeypatch.setattr(anvil_module, "DEFAULT_ANVIL", checkout)
    monkeypatch.setenv("PATH", str(executable(tmp_path / "bin" / "anvil").parent))
    assert find_anvil() == checkout


def test_an_installed_package_finds_anvil_on_path(tmp_path, no_checkout_anvil, monkeypatch):
    on_path = executable(tmp_path / "foundry" / "bin" / "anvil")
    monkeypatch.setenv("PATH", f"{tmp_path / 'empty-bin'}{os.pathsep}{on_path.parent}")
    assert find_anvil() == on_path


def test_no_anvil_anywhere_says_how_to_get_one(no_checkout_anvil):
    with pytest.raises(DevChainError) as raised:
        find_anvil()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("anvil not found (not in ")
    assert "npm install @foundry-rs/anvil-linux-amd64" in message
    assert "foundryup" in message and "--anvil PATH" in message


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "missing", "no such file"),
    (lambda tmp: tmp, "is a directory"),
    (lambda tmp: (tmp / "plain").touch() or tmp / "plain", "is not executable"),
])
def test_a_wrong_given_path_is_refused(tmp_path, make, message):
    with pytest.raises(DevChainError, match=message):
        find_anvil(make(tmp_path))


@pytest.mark.anvil
def test_colearn_chain_runs_the_given_anvil(tmp_path):
    """``colearn chain --anvil PATH`` with PATH a link to the real binary, nothing on PATH."""
    link = tmp_path / "tools" / "anvil"
    link.parent.mkdir()
    link.symlink_to(find_anvil())
    port = find_free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "agents.cli", "chain", "--port", str(port), "--anvil", str(link)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)})
    try:
        assert f"http://127.0.0.1:{port}" in process.stdout.readline()  # up and answering
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] for pid in children]
        assert str(link).encode() in commands
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130

"""``colearn compile --check``: the shipped artifact's bytecode rebuilt with py-solc-x (here
through scripts/solc-forge.js, npm's solc), a tampered copy caught, and one-line refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.devtools import solc_check
from agents.devtools.solc_check import SHIPPED_ARTIFACT, CompileCheckError, find_solc

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "COLUMNS": "300", "PYTHONPATH": str(ROOT)}


def colearn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agents.cli", *args], capture_output=True,
                          text=True, timeout=600, cwd=ROOT, env=ENV)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, result.stdout + result.stderr
    return lines[0]


@pytest.mark.slow
@pytest.mark.node
def test_the_shipped_artifact_is_what_its_sources_build():
    result = colearn("compile", "--check")
    assert result.returncode == 0, result.stderr
    line = one_line(result)
    assert line.startswith("match: CollectiveLearning.json "
                           "(contracts/CollectiveLearning.sol:CollectiveLearning, ")
    assert "solc 0.8.37 (npm solc bridge: " in line


@pytest.mark.slow
@pytest.mark.node
def test_a_tampered_artifact_is_a_mismatch(tmp_path):
    artifact = json.loads(SHIPPED_ARTIFACT.read_text())
    code = bytearray.fromhex(artifact["bytecode"][2:])
    code[1000] ^= 0x01  # one bit of the creation code
    artifact["bytecode"] = "0x" + code.hex()
    tampered = tmp_path / "CollectiveLearning.json"
    tampered.write_text(json.dumps(artifact))
    result = colearn("compile", "--check", "--artifact", str(tampered))
    assert result.returncode == 3, result.stderr
    line = one_line(result)
    assert line.startswith("MISMATCH: CollectiveLearning.json")
    assert "creation bytecode differs from byte 1000 " in line
    assert "runtime bytecode differs" not in line


@pytest.mark.slow
@pytest.mark.node
def test_sigterm_while_compiling_stops_the_compiler():
    process = subprocess.Popen([sys.executable, "-m", "agents.cli", "compile", "--check"],
                               cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        compiler = wait_for_child(process.pid, b"--standard-json")
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert not Path(f"/proc/{compiler}").exists() or \
        Path(f"/proc/{compiler}/stat").read_text().split()[2] == "Z"


def wait_for_child(parent: int, marker: bytes) -> int:
    """The pid of ``parent``'s child whose command line holds ``marker``, once it runs."""
    while True:
        if not Path(f"/proc/{parent}").exists():
            pytest.fail("colearn compile exited before starting the compiler")
        for task in Path(f"/proc/{parent}/task").iterdir():
            for pid in (task / "children").read_text().split():
                try:
                    if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                        return int(pid)
                except OSError:
                    continue
        time.sleep(0.05)


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "missing.json", "cannot read artifact"),
    (lambda tmp: (tmp / "a.json").write_text("{") and tmp / "a.json", "is not JSON"),
    (lambda tmp: (tmp / "a.json").write_text('{"abi": []}') and tmp / "a.json",
     "has no contractName, sourceName, compiler, bytecode, deployedBytecode, "
     "standardJsonInput"),
])
def test_unusable_artifacts_are_one_line(tmp_path, make, message):
    result = colearn("compile", "--check", "--artifact", str(make(tmp_path)))
    assert result.returncode == 1
    assert message in one_line(result) and "Traceback" not in result.stderr


def test_a_given_solc_that_is_not_one_is_refused(tmp_path):
    result = colearn("compile", "--check", "--solc", str(tmp_path / "nosolc"))
    assert result.returncode == 1
    assert f"--solc {tmp_path / 'nosolc'} does not run as solc" in one_line(result)


def test_a_given_solc_of_another_version_is_refused(tmp_path):
    fake = tmp_path / "solc"
    fake.write_text("#!/bin/sh\necho 'solc, the solidity compiler commandline interface'\n"
                    "echo 'Version: 0.8.20+commit.a1b79de6.Linux.g++'\n")
    fake.chmod(0o755)
    with pytest.raises(CompileCheckError, match="is solc 0.8.20; the artifact was built with"):
        find_solc("0.8.37", fake)


def test_a_native_solc_on_path_is_preferred_to_the_bridge(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "solc"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'Version: 0.8.37+commit.f401782d.Linux.g++'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    monkeypatch.setenv("SOLCX_BINARY_PATH", str(tmp_path / "solcx"))  # nothing installed
    found = find_solc("0.8.37")
    assert (found.path, found.kind) == (fake, "PATH")


def test_no_solc_anywhere_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("SOLCX_BINARY_PATH", str(tmp_path / "solcx"))
    monkeypatch.setattr(solc_check, "SOLC_BRIDGE", tmp_path / "no-bridge.js")
    with pytest.raises(CompileCheckError) as raised:
        find_solc("0.8.37")
    assert str(raised.value).startswith(
        "no solc 0.8.37 found: install it with `python -c \"import solcx; "
        "solcx.install_solc('0.8.37')\"`, or give --solc PATH")

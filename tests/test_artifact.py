"""The committed contract artifact matches the Solidity source and the pinned compiler.

``agents/artifacts/CollectiveLearning.json`` ships in the Python package; it must be
exactly what ``npm run compile`` produces from ``contracts/CollectiveLearning.sol``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACT = ROOT / "agents" / "artifacts" / "CollectiveLearning.json"
SOURCE = ROOT / "contracts" / "CollectiveLearning.sol"
SOURCE_NAME = "contracts/CollectiveLearning.sol"
COMPILER_VERSION = "0.8.37"
FIX = ("Run `npm run compile` and commit agents/artifacts/CollectiveLearning.json "
       "together with the contract change.")


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    return json.loads(ARTIFACT.read_text())


def test_committed_artifact_is_built_from_the_source_on_disk(committed: dict[str, Any]) -> None:
    source = committed["standardJsonInput"]["sources"][SOURCE_NAME]["content"]
    assert source == SOURCE.read_text(), (
        f"the committed artifact was compiled from another version of {SOURCE_NAME}. {FIX}")
    assert committed["sourceName"] == SOURCE_NAME
    assert committed["contractName"] == "CollectiveLearning"


def test_committed_artifact_uses_the_pinned_settings(committed: dict[str, Any]) -> None:
    json_input = committed["standardJsonInput"]
    assert json_input["language"] == "Solidity"
    settings = json_input["settings"]
    assert settings["evmVersion"] == "cancun", FIX
    assert settings["optimizer"]["enabled"] is True, FIX
    assert committed["compiler"]["name"] == "solc"
    assert committed["compiler"]["version"].startswith(COMPILER_VERSION + "+"), FIX
    metadata = json.loads(committed["metadata"])
    # solc-js reports "0.8.37+commit.f401782d.Emscripten.clang", the metadata the bare
    # "0.8.37+commit.f401782d" that verifiers (Sourcify, Etherscan) match on.
    assert committed["compiler"]["version"].startswith(metadata["compiler"]["version"])
    assert metadata["settings"]["evmVersion"] == "cancun"
    assert metadata["settings"]["optimizer"]["enabled"] is True
    for key in ("bytecode", "deployedBytecode"):
        assert committed[key].startswith("0x") and len(committed[key]) > 2


@pytest.mark.node
def test_compiling_reproduces_the_committed_artifact(committed: dict[str, Any],
                                                     tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: this test needs Node.js and `npm ci` "
                    "(deselect it locally with -m 'not node')", pytrace=False)
    if not (ROOT / "node_modules" / "solc").is_dir():
        pytest.fail("the npm solc compiler is missing: run `npm ci` "
                    "(deselect this test locally with -m 'not node')", pytrace=False)
    run = subprocess.run([node, str(ROOT / "scripts" / "compile.js"), str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, f"scripts/compile.js failed:\n{run.stderr}"
    fresh = json.loads((tmp_path / "CollectiveLearning.json").read_text())

    stale = [key for key in ("abi", "bytecode", "deployedBytecode", "standardJsonInput",
                             "compiler", "metadata")
             if fresh.get(key) != committed.get(key)]
    assert not stale, (f"agents/artifacts/CollectiveLearning.json is out of date "
                       f"({', '.join(stale)} differ from a fresh compile). {FIX}")
    assert fresh == committed, f"the artifact differs from a fresh compile. {FIX}"

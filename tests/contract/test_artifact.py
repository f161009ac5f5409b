"""The committed contract artifacts match the Solidity sources and the pinned compiler.

``agents/artifacts/CollectiveLearning.json`` ships in the Python package; it must be
exactly what ``npm run compile`` produces from ``contracts/CollectiveLearning.sol``. So
must each bench artifact (``agents/artifacts/GovernorBench.json``,
``BenchERC20.json``): the contracts of ``contracts/bench/`` that ``colearn bench gas``
deploys beside ours (compact: ABI, creation bytecode and the keccak256 of every source
unit), one artifact per source file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = ROOT / "agents" / "artifacts" / "CollectiveLearning.json"
SOURCE = ROOT / "contracts" / "CollectiveLearning.sol"
SOURCE_NAME = "contracts/CollectiveLearning.sol"
COMPILER_VERSION = "0.8.37"
FIX = ("Run `npm run compile` and commit agents/artifacts/CollectiveLearning.json "
       "together with the contract change.")
#: The bench contracts by source file, and the contracts each holds.
BENCH = {"GovernorBench": ["BenchGovernor", "BenchToken"], "BenchERC20": ["BenchERC20"]}
BENCH_FIX = ("Run `npm run compile` and commit agents/artifacts/ together with the change "
             "to contracts/bench/.")


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


@pytest.mark.parametrize("name", sorted(BENCH))
def test_committed_bench_artifact_is_built_from_the_sources_on_disk(name: str) -> None:
    bench = json.loads((ROOT / "agents" / "artifacts" / f"{name}.json").read_text())
    source_name = f"contracts/bench/{name}.sol"
    assert bench["sourceName"] == source_name
    assert bench["compiler"]["version"].startswith(COMPILER_VERSION + "+"), BENCH_FIX
    assert sorted(bench["contracts"]) == BENCH[name]
    # Every source unit it was compiled from, the OpenZeppelin files (by npm name) included.
    for unit, digest in bench["sources"].items():
        path = ROOT / unit if unit.startswith("contracts/") else ROOT / "node_modules" / unit
        if not unit.startswith("contracts/") and not path.exists():
            continue  # no node_modules here: the node test below covers them
        assert "0x" + keccak(path.read_bytes()).hex() == digest, (
            f"{unit} changed since the bench artifact was compiled. {BENCH_FIX}")
    assert source_name in bench["sources"]


def test_every_bench_source_has_its_artifact() -> None:
    on_disk = sorted(p.stem for p in (ROOT / "contracts" / "bench").glob("*.sol"))
    assert on_disk == sorted(BENCH), (
        "compile.js writes one artifact per contracts/bench/*.sol: ship and test the new one")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of freshly compiled artifacts (scripts/compile.js)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: this test needs Node.js and `npm ci` "
                    "(deselect it locally with -m 'not node')", pytrace=False)
    if not (ROOT / "node_modules" / "solc").is_dir():
        pytest.fail("the npm solc compiler is missing: run `npm ci` "
                    "(deselect this test locally with -m 'not node')", pytrace=False)
    out = tmp_path_factory.mktemp("artifacts")
    run = subprocess.run([node, str(ROOT / "scripts" / "compile.js"), str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, f"scripts/compile.js failed:\n{run.stderr}"
    return out


@pytest.mark.node
def test_compiling_reproduces_the_committed_artifact(committed: dict[str, Any],
                                                     fresh: Path) -> None:
    built = json.loads((fresh / "CollectiveLearning.json").read_text())

    stale = [key for key in ("abi", "bytecode", "deployedBytecode", "standardJsonInput",
                             "compiler", "metadata")
             if built.get(key) != committed.get(key)]
    assert not stale, (f"agents/artifacts/CollectiveLearning.json is out of date "
                       f"({', '.join(stale)} differ from a fresh compile). {FIX}")
    assert built == committed, f"the artifact differs from a fresh compile. {FIX}"


@pytest.mark.node
@pytest.mark.parametrize("name", sorted(BENCH))
def test_compiling_reproduces_the_committed_bench_artifact(fresh: Path, name: str) -> None:
    committed = ROOT / "agents" / "artifacts" / f"{name}.json"
    assert (fresh / committed.name).read_bytes() == committed.read_bytes(), (
        f"agents/artifacts/{name}.json differs from a fresh compile. {BENCH_FIX}")
    assert sorted(p.name for p in fresh.glob("*.json")) == sorted(
        p.name for p in committed.parent.glob("*.json")), (
        "compile.js and agents/artifacts/ disagree on which artifacts exist")

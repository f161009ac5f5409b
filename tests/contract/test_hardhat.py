"""Hardhat 2 as a second toolchain: ``hardhat compile`` reproduces the committed bytecode,
and ``hardhat node`` runs the contract through the Python client.

Needs Node.js and ``npm ci`` (Hardhat in ``node_modules``). Without them these tests fail,
they are never skipped: CI must run them. Deselect them locally with ``-m "not node"``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hardhat_node import HardhatNode, hardhat_command, hardhat_env
from web3 import Web3

from agents.chain.client import CollectiveLearningClient
from agents.chain.errors import ContractRevert
from agents.chain.logs import RoundDecided, VoteCast
from agents.chain.network import connect, derive_accounts, fund_accounts
from agents.chain.types import RoundState, score_to_fixed
from agents.devtools.anvil import DevChainError

pytestmark = pytest.mark.node

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = ROOT / "agents" / "artifacts" / "CollectiveLearning.json"
SOURCE_NAME = "contracts/CollectiveLearning.sol"
DESELECT = "They are required in CI; deselect them locally with -m 'not node'."


def _hardhat() -> list[str]:
    try:
        return hardhat_command()
    except DevChainError as exc:
        problem = str(exc)
    pytest.fail(f"cannot run the Hardhat tests: {problem}\n{DESELECT}", pytrace=False)


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    return json.loads(ARTIFACT.read_text())


def _git_status() -> str:
    run = subprocess.run(["git", "status", "--porcelain", "--ignored", "--", "cache", "artifacts"],
                         cwd=ROOT, capture_output=True, text=True, check=False)
    return run.stdout


def test_hardhat_compile_reproduces_the_committed_bytecode(committed: dict[str, Any],
                                                           tmp_path: Path) -> None:
    cmd = _hardhat()
    before = _git_status()
    started = time.monotonic()
    run = subprocess.run([*cmd, "compile", "--force"], cwd=ROOT, env=hardhat_env(tmp_path),
                         capture_output=True, text=True, timeout=300, check=False)
    elapsed = time.monotonic() - started
    assert run.returncode == 0, f"npx hardhat compile failed:\n{run.stdout}\n{run.stderr}"
    assert _git_status() == before, "hardhat compile wrote into the working tree"

    built = json.loads((tmp_path / "artifacts" / SOURCE_NAME / "CollectiveLearning.json")
                       .read_text())
    assert built["sourceName"] == SOURCE_NAME
    assert built["abi"] == committed["abi"]
    # The metadata hash at the end of both covers the source unit name and the settings.
    assert built["bytecode"] == committed["bytecode"], (
        "hardhat compile and scripts/compile.js disagree on the creation bytecode")
    assert built["deployedBytecode"] == committed["deployedBytecode"], (
        "hardhat compile and scripts/compile.js disagree on the runtime bytecode")

    (build_info,) = (tmp_path / "artifacts" / "build-info").glob("*.json")
    info = json.loads(build_info.read_text())
    assert info["solcLongVersion"] == committed["compiler"]["version"], "not the npm solc"
    # Same source units (the contract and the OpenZeppelin files it imports, by npm name)
    assert sorted(info["input"]["sources"]) == sorted(committed["standardJsonInput"]["sources"])
    print(f"hardhat compile --force: {elapsed:.1f} s")


@pytest.fixture(scope="module")
def hardhat_node() -> Iterator[HardhatNode]:
    _hardhat()
    try:
        node = HardhatNode().start()
    except DevChainError as exc:
        problem = str(exc)
    else:
        problem = ""
    if problem:  # fail (not skip) outside the except block, without the chained traceback
        pytest.fail(f"cannot start hardhat node: {problem}\n{DESELECT}", pytrace=False)
    try:
        yield node
    finally:
        node.stop()


def _without_immutables(code: bytes, artifact: dict[str, Any]) -> bytes:
    """Deployed code with the constructor-set immutables zeroed, as the compiler emits it."""
    masked = bytearray(code)
    for ranges in artifact["immutableReferences"].values():
        for r in ranges:
            masked[r["start"]:r["start"] + r["length"]] = bytes(r["length"])
    return bytes(masked)


def _digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def test_the_client_runs_a_round_on_hardhat_node(hardhat_node: HardhatNode,
                                                 committed: dict[str, Any]) -> None:
    print(f"hardhat node answered after {hardhat_node.startup_seconds:.2f} s")
    w3 = connect(hardhat_node.url)
    assert w3.eth.chain_id == 31337
    deployer, *learners = derive_accounts(5, seed=0, label="colearn-hardhat")
    fund_accounts(w3, [a.address for a in (deployer, *learners)])

    client, _ = CollectiveLearningClient.deploy(w3, deployer)
    assert _without_immutables(bytes(w3.eth.get_code(client.address)), committed) == bytes.fromhex(
        committed["deployedBytecode"][2:])

    eid, _ = client.create_experiment([a.address for a in learners], 5000, 2, 3600, 3600,
                                      "bafy-initial", _digest("initial"))
    for learner in learners:
        client.with_account(learner).join(eid)
    proposer, *voters = learners
    assert client.experiment_created(eid).proposer(0) == proposer.address

    with pytest.raises(ContractRevert) as refused:
        client.with_account(voters[0]).propose(eid, 0, "bafy-round-0", _digest("round 0"))
    assert refused.value.name == "NotProposer"
    assert refused.value.error_args == {"experimentId": eid, "round": 0,
                                        "account": voters[0].address}

    client.with_account(proposer).propose(eid, 0, "bafy-round-0", _digest("round 0"))
    assert client.state(eid) is RoundState.VOTING
    with pytest.raises(ContractRevert) as refused:
        client.with_account(proposer).vote(eid, 0, _digest("round 0"), True,
                                           score_to_fixed(0.9))
    assert refused.value.name == "ProposerCannotVote"

    for i, voter in enumerate(voters):
        client.with_account(voter).vote(eid, 0, _digest("round 0"), i != 0,
                                       score_to_fixed(0.9 + i / 100))

    (decided,) = client.events(RoundDecided, eid, 0)
    assert (decided.accepted, decided.approvals, decided.rejections) == (True, 2, 1)
    assert client.current_model(eid) == (_digest("round 0"), 1)
    info = client.experiment(eid)
    assert (info.round, info.proposed) == (1, False)
    assert client.state(eid) is RoundState.PROPOSING
    assert [v.voter for v in client.events(VoteCast, eid, 0)] == [Web3.to_checksum_address(v.address)
                                                       for v in voters]

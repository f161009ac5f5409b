"""``colearn demo`` end to end: in-process and on anvil; results.json, plots, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from rich.console import Console

from agents.demo.embedded import DemoConfig, run_demo
from agents.devtools.anvil import AnvilProcess

ROUND_GAS_LIMIT_5_LEARNERS = 300_000


def check_results(results: dict, n_learners: int, n_rounds: int) -> None:
    for key in ("chain_id", "contract", "experiment_id", "rounds", "final_test_accuracy",
                "solo_test_accuracy"):
        assert key in results
    assert len(results["rounds"]) == n_rounds
    assert len(results["solo_test_accuracy"]) == n_learners
    for r, row in enumerate(results["rounds"]):
        assert row["round"] == r and row["proposer_index"] == r % n_learners
        assert row["cid"].startswith("bafk") and row["digest"].startswith("0x")
        assert row["accepted"] in (True, False)
        assert row["approvals"] + row["rejections"] == n_learners - 1 == len(row["votes"])
        assert {v["learner_index"] for v in row["votes"]} == set(range(n_learners)) - {r % n_learners}
        for vote in row["votes"]:
            assert set(vote) >= {"learner", "approve", "vote_score", "tx_hash", "gas"}
        assert 0.0 <= row["test_accuracy"] <= 1.0
        assert row["gas"]["total"] == row["gas"]["propose"] + sum(row["gas"]["votes"])
        assert row["propose_tx"].startswith("0x")
    assert results["final_test_accuracy"] == results["rounds"][-1]["test_accuracy"]


def test_demo_in_process(tmp_path):
    out = tmp_path / "out"
    console = Console(record=True, width=160)
    results = run_demo(DemoConfig(n_learners=5, n_rounds=3, out=out), console)

    check_results(results, 5, 3)
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["rounds"] == results["rounds"]
    for row in results["rounds"]:
        assert row["gas"]["total"] <= ROUND_GAS_LIMIT_5_LEARNERS
    for plot in ("scores.png", "votes.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = console.export_text()
    assert "round   2" in text and "global test accuracy" in text


@pytest.mark.anvil
def test_demo_on_anvil(tmp_path):
    with AnvilProcess() as anvil:
        results = run_demo(DemoConfig(n_learners=3, n_rounds=3, chain_url=anvil.url,
                                      out=tmp_path), Console(quiet=True))
    assert results["chain_id"] == 31337
    check_results(results, 3, 3)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agents.cli", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["demo", "--chain", "http://127.0.0.1:9"], "cannot reach the chain"),
    (["demo", "--chain", "ftp://example"], "unsupported RPC URL"),
    (["demo", "--threshold", "1.5"], "vote_threshold"),
    (["demo", "--learners", "1"], "n_learners"),
    (["demo", "--rounds", "0"], "n_rounds"),
    (["demo", "--store", "s3://bucket"], "store"),
])
def test_bad_input_gives_one_line_and_no_traceback(tmp_path, args, message):
    result = run_cli(*args, "--out", str(tmp_path))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert message in result.stdout + result.stderr

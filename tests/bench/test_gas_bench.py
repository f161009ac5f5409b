"""``colearn bench gas``: its JSON report, and the gas bounds it checks, asserted here as
deterministic upper bounds on the measured gas (gas does not depend on timing).

The command runs once for the module (n = 5, 20 and 100 learners, plain, sealed and
staked experiments, OpenZeppelin's Governor beside them) on its own anvil: about 10 s
(the in-process chain takes minutes for n = 100; gas is the same on both, but for a few
gas of signatures, which depend on the chain id).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import started
from rich.console import Console

from agents.bench.gas.learning import LearningGas
from agents.bench.gas.openzeppelin import GovernorGas
from agents.bench.gas.report import (
    JOIN_MAX,
    ROUND_OF_FIVE_MAX,
    SEALED_ROUND_OF_FIVE_MAX,
    SIGNED_COMMIT_AT_100_MAX,
    SIGNED_VOTE_AT_100_MAX,
    VOTE_MAX,
    VOTE_SPREAD_MAX,
    GasReport,
    print_gas_report,
)
from agents.cli.main import main
from agents.devtools.anvil import AnvilProcess

pytestmark = pytest.mark.anvil

BOUND_NAMES = {"join_max", "direct_vote_max", "vote_vs_governor_cast_vote", "round_of_5_max",
               "signed_vote_in_batch_of_99_max", "vote_spread_5_to_100",
               "sealed_round_of_5_max", "signed_commit_in_batch_of_99_max"}


@pytest.fixture(scope="module")
def report() -> Iterator[dict[str, Any]]:
    """``colearn bench gas --json``'s output, parsed."""
    out = io.StringIO()
    with started(AnvilProcess, "anvil", "anvil") as anvil:
        began = time.perf_counter()
        with contextlib.redirect_stdout(out):
            code = main(["bench", "gas", "--rpc", anvil.url, "--json"])
    print(f"\ncolearn bench gas --json: {time.perf_counter() - began:.1f} s")
    assert code == 0
    yield json.loads(out.getvalue())


@pytest.fixture(scope="module")
def by_n(report: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {c["n_learners"]: c for c in report["columns"]}


def test_the_json_report_has_every_field(report: dict[str, Any],
                                         by_n: dict[int, dict[str, Any]]) -> None:
    assert report["benchmark"] == "gas"
    assert set(report) == {"benchmark", "chain", "score", "columns", "bounds",
                           "all_bounds_met", "seconds"}
    assert report["score"] == 973_100_000_000_000_000
    assert sorted(by_n) == [5, 20, 100]
    for column in report["columns"]:
        assert set(column["collective_learning"]) == set(LearningGas.model_fields)
        assert set(column["governor"]) == set(GovernorGas.model_fields)
        assert all(isinstance(v, int) and v > 0
                   for part in ("collective_learning", "governor")
                   for v in column[part].values())
    assert {b["name"] for b in report["bounds"]} == BOUND_NAMES
    assert all(isinstance(b["met"], bool) for b in report["bounds"])
    assert report["all_bounds_met"] == all(b["met"] for b in report["bounds"])
    GasReport.model_validate(report)


def test_a_direct_vote_costs_at_most_45k(by_n: dict[int, dict[str, Any]]) -> None:
    for n, column in by_n.items():
        gas = column["collective_learning"]
        assert gas["vote"] <= VOTE_MAX, f"vote with {n} learners"
        assert gas["deciding_vote"] <= VOTE_MAX, f"deciding vote with {n} learners"


def test_a_join_costs_at_most_50k(by_n: dict[int, dict[str, Any]]) -> None:
    assert JOIN_MAX == 50_000
    for n, column in by_n.items():
        gas = column["collective_learning"]
        assert gas["join"] <= JOIN_MAX, f"join with {n} learners"
        assert gas["last_join"] <= JOIN_MAX, f"last join (starts round 0) with {n} learners"


def test_a_round_of_five_costs_at_most_200k(by_n: dict[int, dict[str, Any]]) -> None:
    assert by_n[5]["collective_learning"]["round_direct"] <= ROUND_OF_FIVE_MAX


def test_a_signed_vote_in_a_batch_of_99_costs_at_most_10k(
        by_n: dict[int, dict[str, Any]]) -> None:
    gas = by_n[100]["collective_learning"]
    assert gas["signed_vote"] == math.ceil(gas["batch"] / 99)
    assert gas["signed_vote"] <= SIGNED_VOTE_AT_100_MAX


def test_a_sealed_round_of_five_costs_at_most_400k(by_n: dict[int, dict[str, Any]]) -> None:
    assert SEALED_ROUND_OF_FIVE_MAX == 400_000
    gas = by_n[5]["collective_learning"]
    assert gas["sealed_round_direct"] <= SEALED_ROUND_OF_FIVE_MAX
    assert gas["sealed_round_direct"] > gas["round_direct"]  # commitments cost extra


def test_a_signed_commitment_in_a_batch_of_99_costs_at_most_12k(
        by_n: dict[int, dict[str, Any]]) -> None:
    assert SIGNED_COMMIT_AT_100_MAX == 12_000
    gas = by_n[100]["collective_learning"]
    assert gas["signed_commit"] == math.ceil(gas["commit_batch"] / 99)
    assert gas["signed_commit"] <= SIGNED_COMMIT_AT_100_MAX
    assert gas["reveal_in_batch"] == math.ceil(gas["reveal_batch"] / 99)
    assert gas["reveal_in_batch"] < gas["reveal"]  # batching pays off
    assert gas["sealed_round_relayed"] < gas["sealed_round_direct"]


def test_staked_joins_cost_more_than_plain_ones_and_the_same_at_every_n(
        by_n: dict[int, dict[str, Any]]) -> None:
    for key in ("join_eth", "join_erc20"):
        figures = {column["collective_learning"][key] for column in by_n.values()}
        assert len(figures) == 1, key  # a join does not depend on n
    for column in by_n.values():
        gas = column["collective_learning"]
        assert gas["join"] < gas["join_eth"] < gas["join_erc20"]


def test_a_vote_costs_the_same_with_100_learners_as_with_5(
        by_n: dict[int, dict[str, Any]]) -> None:
    five, hundred = by_n[5]["collective_learning"], by_n[100]["collective_learning"]
    for key in ("vote", "propose", "commit", "reveal"):
        assert abs(hundred[key] - five[key]) <= VOTE_SPREAD_MAX * five[key], key
    # The deciding vote (and reveal) of the last learner also reads the ballot word that
    # holds its bits: at n = 100 that is a second word, one cold storage read more (2,100).
    for key in ("deciding_vote", "deciding_reveal"):
        assert abs(hundred[key] - five[key]) <= VOTE_SPREAD_MAX * five[key] + 2_100, key


def test_our_vote_is_cheaper_than_the_governors_cast_vote(
        by_n: dict[int, dict[str, Any]]) -> None:
    for n, column in by_n.items():
        governor = column["governor"]
        assert column["collective_learning"]["vote"] < governor["cast_vote"], n
        assert column["collective_learning"]["deciding_vote"] < governor["cast_vote"], n
        assert governor["cast_vote_first"] > governor["cast_vote"], "the first voter pays extra"


def test_steady_rounds_are_cheaper_than_the_first_and_batches_than_direct_votes(
        by_n: dict[int, dict[str, Any]], report: dict[str, Any]) -> None:
    for column in by_n.values():
        gas = column["collective_learning"]
        assert gas["round_direct"] < gas["first_round_direct"]
        assert gas["round_relayed"] < gas["round_direct"]
    assert report["all_bounds_met"]


def test_the_human_report_shows_every_figure_and_bound(report: dict[str, Any]) -> None:
    out = io.StringIO()
    print_gas_report(GasReport.model_validate(report), Console(file=out, width=200))
    text = out.getvalue()
    for n in (5, 20, 100):
        assert f"n = {n}" in text
    for figure in ("propose", "deciding vote", "signed vote in a batch of n - 1",
                   "Governor castVote (typical voter)", "all bounds met: yes",
                   "signed commitment in a batch of n - 1", "reveal in a batch of n - 1",
                   "join, stake in ETH", "join, stake in an ERC-20"):
        assert figure in text
    assert f"{report['columns'][0]['governor']['cast_vote']:,}" in text


@pytest.mark.parametrize("args, message", [
    (["--learners", "1"], "learner count 1 is outside 3..500"),
    (["--learners", "501"], "learner count 501 is outside 3..500"),
    (["--learners", "5", "5"], "repeated learner count"),
    (["--rpc", "ftp://example"], "unsupported RPC URL"),
])
def test_bad_arguments_give_a_one_line_error(args: list[str], message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "gas", *args]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("error:") and message in line


def test_a_malformed_learner_count_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "gas", "--learners", "five"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid int value: 'five'" in err and "Traceback" not in err

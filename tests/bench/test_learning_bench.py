"""``colearn bench learning``: the benchmark's rows, and the claim it exists to check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from agents.bench.learning import LearningReport, run_row
from colearn_core.tasks.datasets import load_dataset
from colearn_core.tasks.mlp_config import RULES
from colearn_core.tasks.mlp_torch import MLPTaskConfig, global_score, make_learners
from colearn_core.tasks.splits import split_dataset
from colearn_core.training import run_experiment, set_equal_weights


@pytest.mark.parametrize("rule", list(RULES))
def test_collective_on_chain_equals_the_in_memory_driver(rule) -> None:
    row = run_row("breast_cancer", "dirichlet", n_learners=3, n_rounds=4, vote_threshold=0.5,
                  alpha=0.5, seed=1, rules=[rule])
    config = MLPTaskConfig(seed=1, vote_on="auc", score="auc", **RULES[rule])
    split = split_dataset(load_dataset("breast_cancer"), 3, seed=1, scheme="dirichlet",
                          alpha=0.5)
    learners = make_learners(split, config)
    set_equal_weights(learners)
    results = run_experiment(learners, 4, 0.5)
    [collective] = row.collective
    assert collective.rule == rule
    assert collective.score == global_score(learners[0].mli_get_current_weights().weights,
                                            split, config)
    assert collective.accepted_rounds == sum(1 for d in results.decisions() if d)
    assert row.split == "dirichlet(0.5)" and row.score == "auc" and len(row.solo) == 3
    assert row.solo_best == max(row.solo) and collective.gas > 0
    assert all(0.0 <= s <= 1.0 for s in (row.initial, row.fedavg, row.pooled, *row.solo))
    # the score after each round, the last one the final model's
    assert len(collective.curve) == 4 and collective.curve[-1] == collective.score
    assert {name: len(c) for name, c in row.curves.items()} == {
        "solo best": 4, "FedAvg": 4, "pooled": 4}
    assert row.curves["FedAvg"][-1] == row.fedavg and row.curves["pooled"][-1] == row.pooled


def test_the_in_memory_driver_gives_the_chains_row() -> None:
    chain, memory = (run_row("digits", "dirichlet", n_learners=3, n_rounds=3,
                             vote_threshold=0.5, alpha=0.5, seed=0, driver=driver)
                     for driver in ("chain", "memory"))
    for a, b in zip(chain.collective, memory.collective, strict=True):
        assert (a.rule, a.score, a.curve, a.accepted_rounds) == \
            (b.rule, b.score, b.curve, b.accepted_rounds)


@pytest.mark.slow  # about 15 s: the benchmark's own digits IID configuration
@pytest.mark.parametrize("rule", ["colearn", "balanced"])
def test_collective_learning_pays_on_digits_iid(rule: str) -> None:
    row = run_row("digits", "iid", n_learners=5, n_rounds=15, vote_threshold=0.5, alpha=0.5,
                  seed=0, rules=[rule])
    [collective] = row.collective
    assert collective.score >= row.solo_mean + 0.03, row
    assert collective.score >= row.solo_best, row
    assert collective.score >= row.pooled - 0.02, row
    assert collective.accepted_rounds >= 5 and collective.expired_rounds == 0


def test_cli_prints_json_and_draws_the_plot(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    from agents.cli.main import main

    plot = tmp_path / "learning.png"
    main(["bench", "learning", "--task", "breast_cancer", "--learners", "3", "--rounds", "2",
          "--rule", "colearn", "--seed", "0", "--seed", "1", "--driver", "memory",
          "--plot", str(plot), "--json"])
    report = LearningReport.model_validate(json.loads(capsys.readouterr().out))
    assert [(r.task, r.split, r.seed) for r in report.rows] == [
        ("breast_cancer", "iid", 0), ("breast_cancer", "iid", 1),
        ("breast_cancer", "dirichlet(0.5)", 0), ("breast_cancer", "dirichlet(0.5)", 1)]
    assert report.n_rounds == 2 and report.rows[0].collective[0].accepted_rounds <= 2
    assert report.rules == ["colearn"] and report.driver == "memory"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

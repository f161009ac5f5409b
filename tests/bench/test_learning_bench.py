"""``colearn bench learning``: the benchmark's rows, and the claim it exists to check."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from agents.bench.learning import RULES, LearningReport, run_row
from colearn_core.tasks.datasets import load_dataset
from colearn_core.tasks.mlp_torch import MLPTaskConfig, global_score, make_learners
from colearn_core.tasks.splits import split_dataset
from colearn_core.training import run_experiment, set_equal_weights


@pytest.mark.parametrize("rule", ["colearn", "tolerant"])
def test_collective_on_chain_equals_the_in_memory_driver(rule) -> None:
    row = run_row("breast_cancer", "dirichlet", n_learners=3, n_rounds=4, vote_threshold=0.5,
                  alpha=0.5, seed=1, rule=rule)
    config = MLPTaskConfig(seed=1, vote_on="auc", score="auc", **RULES[rule])
    split = split_dataset(load_dataset("breast_cancer"), 3, seed=1, scheme="dirichlet",
                          alpha=0.5)
    learners = make_learners(split, config)
    set_equal_weights(learners)
    results = run_experiment(learners, 4, 0.5)
    assert row.collective == global_score(learners[0].mli_get_current_weights().weights,
                                          split, config)
    assert row.accepted_rounds == sum(1 for d in results.decisions() if d)
    assert row.split == "dirichlet(0.5)" and row.score == "auc" and len(row.solo) == 3
    assert row.solo_best == max(row.solo) and row.gas > 0
    assert all(0.0 <= s <= 1.0 for s in (row.initial, row.fedavg, row.pooled, *row.solo))


@pytest.mark.slow  # about 15 s: the benchmark's own digits IID configuration
def test_collective_learning_pays_on_digits_iid() -> None:
    row = run_row("digits", "iid", n_learners=5, n_rounds=15, vote_threshold=0.5, alpha=0.5,
                  seed=0)
    assert row.collective >= row.solo_mean + 0.03, row
    assert row.collective >= row.solo_best, row
    assert row.collective >= row.pooled - 0.02, row
    assert row.accepted_rounds >= 5 and row.expired_rounds == 0


def test_cli_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    from agents.cli.main import main

    main(["bench", "learning", "--task", "breast_cancer", "--learners", "3", "--rounds", "2",
          "--rule", "colearn", "--json"])
    report = LearningReport.model_validate(json.loads(capsys.readouterr().out))
    assert [(r.task, r.split) for r in report.rows] == [
        ("breast_cancer", "iid"), ("breast_cancer", "dirichlet(0.5)")]
    assert report.n_rounds == 2 and report.rows[0].accepted_rounds <= 2
    assert report.rule == "colearn"

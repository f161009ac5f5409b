"""``colearn bench learning``: does learning together pay, on real data?

For each task (digits: multi-class, scored on accuracy; breast cancer: binary, voted and
scored on ROC AUC) and each split (IID, and label-skewed with Dirichlet alpha = 0.5),
5 learners with the same seeded split and model (the PyTorch MLP of
:mod:`colearn_core.tasks.mlp_torch`) are scored on the global test set no learner sees:

- **solo**: each learner alone, 15 training calls on its own data (each one accepted);
- **collective learning on chain**: 15 rounds run by one agent per learner on the
  in-process EVM (:func:`agents.experiment.onchain.run_on_chain`): the model gets 15 training calls,
  3 by each learner, and only what a vote accepts;
- **FedAvg** (in memory, the usual federated baseline): 15 rounds in which every learner
  makes one training call from the global model and the results are averaged, weighted
  by training-set size: 15 training calls by each learner, 75 in all;
- **pooled**: one model on all learners' training data together, 15 training calls of
  5 times the batches (as many steps as FedAvg).

The learners of collective learning follow ``--rule``: ``tolerant`` (the default) votes
with a 10% non-inferiority margin and proposes 35% of each trained update; ``colearn``
is colearn's learners exactly (see :data:`RULES`).

A training call is the same everywhere: ``batches_per_round`` SGD steps (50 batches of
16) and the learning rate decays by ``lr_decay`` after each of a learner's calls.
Everything is seeded, so the table is the same on every run on the same machine.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from typing import Literal

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

log = logging.getLogger(__name__)

Scheme = Literal["iid", "dirichlet"]
Rule = Literal["colearn", "tolerant"]

#: The learners' options of each rule (MLPTaskConfig fields). ``colearn``: colearn's
#: learners exactly (approve iff strictly better on one's own vote set; propose the
#: trained weights). ``tolerant``, the default: approve iff no worse than the current
#: model by more than 10% of its vote score, and propose the current weights plus 35% of
#: the trained update. The contract's decision rule (approvals against the threshold) is
#: the same for both.
RULES: dict[str, dict[str, float]] = {
    "colearn": {"vote_tolerance": 0.0, "proximal_mu": 0.0, "update_fraction": 1.0},
    "tolerant": {"vote_tolerance": 0.1, "proximal_mu": 0.0, "update_fraction": 0.35},
}
DEFAULT_RULE: Rule = "tolerant"

#: (task name, dataset, vote on, score) of the benchmark's tasks.
TASKS: dict[str, dict[str, str]] = {
    "digits": {"dataset": "digits", "vote_on": "loss", "score": "accuracy"},
    "breast_cancer": {"dataset": "breast_cancer", "vote_on": "auc", "score": "auc"},
    "wine": {"dataset": "wine", "vote_on": "loss", "score": "accuracy"},
    "mnist1d": {"dataset": "mnist1d", "vote_on": "loss", "score": "accuracy"},
}
#: The tasks run by default (the README's table).
DEFAULT_TASKS: tuple[str, ...] = ("digits", "breast_cancer")
SCHEMES: tuple[Scheme, ...] = ("iid", "dirichlet")


class LearningRow(BaseModel):
    task: str
    split: str  # "iid" or "dirichlet(0.5)"
    score: str  # "accuracy" or "auc"
    initial: float  # the shared initial model
    solo: list[float]  # each learner alone
    solo_mean: float
    solo_best: float
    collective: float  # collective learning, on chain
    accepted_rounds: int
    expired_rounds: int
    gas: int
    fedavg: float
    pooled: float
    seconds: float


class LearningReport(BaseModel):
    rule: str = "colearn"
    n_learners: int
    n_rounds: int
    vote_threshold: float
    alpha: float
    seed: int
    rows: list[LearningRow]


def run_row(task: str, scheme: Scheme, *, n_learners: int, n_rounds: int,
            vote_threshold: float, alpha: float, seed: int,
            rule: Rule = DEFAULT_RULE) -> LearningRow:
    """One task and split: solo, collective learning on chain (learners with ``rule``'s
    options), FedAvg, pooled (plain learners: ``rule`` does not apply to them)."""
    import torch

    from agents.experiment.onchain import run_on_chain
    from colearn_core.baselines import fedavg, train_alone
    from colearn_core.tasks.datasets import load_dataset
    from colearn_core.tasks.mlp_torch import (
        MLPTaskConfig,
        global_score,
        make_learners,
        make_pooled_learner,
    )
    from colearn_core.tasks.splits import split_dataset

    torch.set_num_threads(1)
    started = time.perf_counter()
    spec = TASKS[task]
    config = MLPTaskConfig(seed=seed, vote_on=spec["vote_on"], score=spec["score"])
    collective_config = config.model_copy(update=RULES[rule])
    split = split_dataset(load_dataset(spec["dataset"]), n_learners, seed=seed, scheme=scheme,
                          alpha=alpha)

    def score(weights) -> float:
        return global_score(weights, split, config)

    learners = make_learners(split, collective_config)
    initial = score(learners[0].mli_get_current_weights().weights)
    run = run_on_chain(learners, n_rounds, vote_threshold, seed=seed)
    decisions = run.decisions()
    solo = [score(train_alone(learner, n_rounds)) for learner in make_learners(split, config)]
    averaged = fedavg(make_learners(split, config), n_rounds, split.train_sizes())
    pooled = train_alone(make_pooled_learner(split, config), n_rounds)
    row = LearningRow(
        task=task, split="iid" if scheme == "iid" else f"dirichlet({alpha:g})",
        score=spec["score"], initial=initial, solo=solo, solo_mean=statistics.fmean(solo),
        solo_best=max(solo), collective=score(run.final_weights),
        accepted_rounds=sum(1 for d in decisions if d),
        expired_rounds=sum(1 for d in decisions if d is None), gas=run.total_gas,
        fedavg=score(averaged), pooled=score(pooled), seconds=time.perf_counter() - started)
    log.info("%s %s: %s", task, scheme, row)
    return row


def bench_learning(*, as_json: bool = False, n_learners: int = 5, n_rounds: int = 15,
                   vote_threshold: float = 0.5, alpha: float = 0.5, seed: int = 0,
                   tasks: tuple[str, ...] = DEFAULT_TASKS, console: Console | None = None,
                   rule: Rule = DEFAULT_RULE) -> LearningReport:
    """Runs every task and split, prints the table (JSON on stdout with ``as_json``) and
    returns the report."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}: one of {', '.join(RULES)}")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task {unknown[0]!r}: one of {', '.join(TASKS)}")
    console = console or Console(stderr=as_json)
    rows = []
    for task in tasks:
        for scheme in SCHEMES:
            with console.status(f"{task}, {scheme}: solo, on chain, FedAvg, pooled..."):
                rows.append(run_row(task, scheme, n_learners=n_learners, n_rounds=n_rounds,
                                    vote_threshold=vote_threshold, alpha=alpha, seed=seed,
                                    rule=rule))
    report = LearningReport(rule=rule, n_learners=n_learners, n_rounds=n_rounds,
                            vote_threshold=vote_threshold, alpha=alpha, seed=seed, rows=rows)
    if as_json:
        sys.stdout.write(json.dumps(report.model_dump(), indent=2) + "\n")
    else:
        print_learning_report(report, console)
    return report


def print_learning_report(report: LearningReport, console: Console) -> None:
    table = Table(title=f"Global test score: {report.n_learners} learners, "
                        f"{report.n_rounds} rounds, threshold {report.vote_threshold:g}, "
                        f"rule {report.rule}, "
                        f"seed {report.seed}")
    for name in ("task", "split", "score", "solo mean", "solo best", f"{report.rule} (chain)",
                 "accepted", "FedAvg", "pooled"):
        table.add_column(name, justify="left" if name in ("task", "split", "score") else "right",
                         no_wrap=True)
    for row in report.rows:
        best = max(row.solo_best, row.collective, row.fedavg, row.pooled)

        def cell(value: float, best: float = best) -> str:
            return f"[bold]{value:.4f}[/]" if value == best else f"{value:.4f}"

        table.add_row(row.task, row.split, row.score, cell(row.solo_mean), cell(row.solo_best),
                      cell(row.collective), f"{row.accepted_rounds}/{report.n_rounds}",
                      cell(row.fedavg), cell(row.pooled))
    if not console.is_terminal:  # rich gives a pipe 80 columns: too few for the table
        console = Console(file=console.file, width=120)
    console.print(table)

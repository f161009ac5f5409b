"""``colearn bench learning``: does learning together pay, on real data?

For each task (digits and mnist1d: multi-class, scored on accuracy; breast cancer:
binary, voted and scored on ROC AUC), each split (IID, and label-skewed with Dirichlet
alpha, e.g. 0.5 and 0.1) and each seed, 5 learners with the same seeded split and model
(the PyTorch MLP of :mod:`colearn_core.tasks.mlp_torch`) are scored on the global test set
no learner sees, after each round:

- **solo**: each learner alone, 15 training calls on its own data (each one accepted);
- **collective learning**, once per rule
  (:data:`colearn_core.tasks.mlp_config.RULES`): 15 rounds run on chain by one
  agent per learner on the in-process EVM (:func:`agents.experiment.onchain.run_on_chain`;
  ``driver="memory"``: :func:`colearn_core.training.run_experiment`, the same decisions
  and weights): the model gets 15 training calls, 3 by each learner, and only what a
  vote accepts;
- **FedAvg** (in memory, the usual federated baseline): 15 rounds in which every learner
  makes one training call from the global model and the results are averaged, weighted
  by training-set size: 15 training calls by each learner, 75 in all;
- **pooled**: one model on all learners' training data together, 15 training calls of
  5 times the batches (as many steps as FedAvg).

A training call is the same everywhere: ``batches_per_round`` SGD steps (50 batches of
16) and the learning rate decays by ``lr_decay`` after each of a learner's calls. Solo,
FedAvg and pooled use plain learners (no rule applies to them). Everything is seeded, so
the table is the same on every run on the same machine.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from agents.bench.output import emit
from colearn_core.tasks.mlp_config import DEFAULT_RULE, rule_options

log = logging.getLogger(__name__)

Scheme = Literal["iid", "dirichlet"]
Driver = Literal["chain", "memory"]

#: The rules run by default: colearn's beside the default
#: (:data:`colearn_core.tasks.mlp_config.RULES`: the learners' options of each).
DEFAULT_RULES: tuple[str, ...] = ("colearn", DEFAULT_RULE)

#: (task name, dataset, vote on, score) of the benchmark's tasks.
TASKS: dict[str, dict[str, str]] = {
    "digits": {"dataset": "digits", "vote_on": "loss", "score": "accuracy"},
    "mnist1d": {"dataset": "mnist1d", "vote_on": "loss", "score": "accuracy"},
    "breast_cancer": {"dataset": "breast_cancer", "vote_on": "auc", "score": "auc"},
    "wine": {"dataset": "wine", "vote_on": "loss", "score": "accuracy"},
}
#: The tasks run by default (the README's table).
DEFAULT_TASKS: tuple[str, ...] = ("digits", "mnist1d", "breast_cancer")


class CollectiveResult(BaseModel):
    rule: str
    score: float  # the final model's global test score
    accepted_rounds: int
    expired_rounds: int
    gas: int  # 0 in memory
    curve: list[float]  # global test score after each round


class LearningRow(BaseModel):
    task: str
    split: str  # "iid" or "dirichlet(0.5)"
    seed: int
    score: str  # "accuracy" or "auc"
    initial: float  # the shared initial model
    solo: list[float]  # each learner alone
    solo_mean: float
    solo_best: float
    collective: list[CollectiveResult]  # one per rule
    fedavg: float
    pooled: float
    #: global test score after each round: "solo best" (the learner alone that ends
    #: best), "FedAvg", "pooled"
    curves: dict[str, list[float]]
    seconds: float


class LearningReport(BaseModel):
    rules: list[str]
    driver: str
    n_learners: int
    n_rounds: int
    vote_threshold: float
    alphas: list[float]
    seeds: list[int]
    rows: list[LearningRow]


def split_name(scheme: Scheme, alpha: float) -> str:
    return "iid" if scheme == "iid" else f"dirichlet({alpha:g})"


def run_row(task: str, scheme: Scheme, *, n_learners: int, n_rounds: int,
            vote_threshold: float, alpha: float, seed: int,
            rules: Sequence[str] = DEFAULT_RULES, driver: Driver = "chain") -> LearningRow:
    """One task, split and seed: solo, collective learning under each rule, FedAvg and
    pooled."""
    import torch

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
    split = split_dataset(load_dataset(spec["dataset"]), n_learners, seed=seed, scheme=scheme,
                          alpha=alpha)

    def score(weights: Any) -> float:
        return global_score(weights, split, config)

    def recorder(curve: list[float]) -> Callable[[Any], None]:
        return lambda weights: curve.append(score(weights))

    learners = make_learners(split, config)
    initial = score(learners[0].mli_get_current_weights().weights)
    collective = [run_collective(make_learners(split, config.model_copy(update=rule_options(rule))),
                                 rule, n_rounds, vote_threshold, seed, score, driver)
                  for rule in rules]
    solo_curves: list[list[float]] = [[] for _ in learners]
    solo = [score(train_alone(learner, n_rounds, recorder(curve)))
            for learner, curve in zip(learners, solo_curves)]
    fedavg_curve: list[float] = []
    averaged = fedavg(make_learners(split, config), n_rounds, split.train_sizes(),
                      recorder(fedavg_curve))
    pooled_curve: list[float] = []
    pooled = train_alone(make_pooled_learner(split, config), n_rounds, recorder(pooled_curve))
    best = max(range(len(solo)), key=solo.__getitem__)
    row = LearningRow(
        task=task, split=split_name(scheme, alpha), seed=seed, score=spec["score"],
        initial=initial, solo=solo, solo_mean=statistics.fmean(solo), solo_best=solo[best],
        collective=collective, fedavg=score(averaged), pooled=score(pooled),
        curves={"solo best": solo_curves[best], "FedAvg": fedavg_curve,
                "pooled": pooled_curve},
        seconds=time.perf_counter() - started)
    log.info("%s %s seed %d: %s", task, scheme, seed, row)
    return row


def run_collective(learners: Sequence[Any], rule: str, n_rounds: int, vote_threshold: float,
                   seed: int, score: Callable[[Any], float], driver: Driver
                   ) -> CollectiveResult:
    """Collective learning of ``learners`` (built with ``rule``'s options), the global
    test score after each round included."""
    if driver == "memory":
        from colearn_core.training import run_experiment, set_equal_weights

        set_equal_weights(learners)
        curve: list[float] = []
        results = run_experiment(learners, n_rounds, vote_threshold, on_round=lambda _r, _res:
                                 curve.append(score(learners[0].mli_get_current_weights()
                                                    .weights)))
        decisions = results.decisions()
        return CollectiveResult(rule=rule, score=curve[-1], gas=0, curve=curve,
                                accepted_rounds=sum(1 for d in decisions if d),
                                expired_rounds=sum(1 for d in decisions if d is None))
    from agents.experiment.onchain import OnChainSession
    from colearn_core.codec import decode_weights

    current = score(learners[0].mli_get_current_weights().weights)  # the initial model
    curve = []
    with OnChainSession(learners, n_rounds, vote_threshold, seed=seed) as session:
        session.step()
        run = session.outcome()
        for round_row in run.rounds:
            if round_row.accepted and round_row.cid is not None:
                current = score(decode_weights(session.store.get(round_row.cid).data))
            curve.append(current)
    decisions = run.decisions()
    return CollectiveResult(rule=rule, score=score(run.final_weights), gas=run.total_gas,
                            curve=curve, accepted_rounds=sum(1 for d in decisions if d),
                            expired_rounds=sum(1 for d in decisions if d is None))


def bench_learning(*, as_json: bool = False, n_learners: int = 5, n_rounds: int = 15,
                   vote_threshold: float = 0.5, alphas: Sequence[float] = (0.5,),
                   seeds: Sequence[int] = (0,), tasks: Sequence[str] = DEFAULT_TASKS,
                   rules: Sequence[str] = DEFAULT_RULES, driver: Driver = "chain",
                   plot: Path | None = None, console: Console | None = None
                   ) -> LearningReport:
    """Runs every task, split (IID, then Dirichlet with each of ``alphas``) and seed,
    prints the table (JSON on stdout with ``as_json``), draws the accuracy per round
    (``plot``: a PNG) and returns the report."""
    for rule in rules:
        rule_options(rule)  # known, or ValueError
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task {unknown[0]!r}: one of {', '.join(TASKS)}")
    console = console or Console(stderr=as_json)
    # (split_dataset checks alpha whatever the scheme; the IID split does not use it)
    splits: list[tuple[Scheme, float]] = [("iid", 1.0)]
    splits += [("dirichlet", a) for a in alphas]
    rows = []
    for task in tasks:
        for scheme, alpha in splits:
            for seed in seeds:
                with console.status(f"{task}, {split_name(scheme, alpha)}, seed {seed}: "
                                    f"solo, collective, FedAvg, pooled..."):
                    rows.append(run_row(task, scheme, n_learners=n_learners,
                                        n_rounds=n_rounds, vote_threshold=vote_threshold,
                                        alpha=alpha, seed=seed, rules=rules, driver=driver))
    report = LearningReport(rules=list(rules), driver=driver, n_learners=n_learners,
                            n_rounds=n_rounds, vote_threshold=vote_threshold,
                            alphas=list(alphas), seeds=list(seeds), rows=rows)
    emit(report, as_json, print_learning_report, console)
    if plot is not None:
        plot_learning(report, plot)
    return report


def groups(report: LearningReport) -> dict[tuple[str, str], list[LearningRow]]:
    """The rows by (task, split), seeds together, in the report's order."""
    grouped: dict[tuple[str, str], list[LearningRow]] = {}
    for row in report.rows:
        grouped.setdefault((row.task, row.split), []).append(row)
    return grouped


def spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half the range."""
    return statistics.fmean(values), (max(values) - min(values)) / 2


def print_learning_report(report: LearningReport, console: Console) -> None:
    seeds = ", ".join(str(s) for s in report.seeds)
    table = Table(title=f"Global test score: {report.n_learners} learners, "
                        f"{report.n_rounds} rounds, threshold {report.vote_threshold:g}, "
                        f"{report.driver}, seeds {seeds} (mean ± half the range; "
                        f"accepted rounds per seed)")
    columns = ["task", "split", "score", "solo best",
               *(f"{rule} ({report.driver})" for rule in report.rules), "FedAvg", "pooled"]
    for name in columns:
        table.add_column(name, justify="left" if name in ("task", "split", "score") else "right",
                         no_wrap=True)
    for (task, split), rows in groups(report).items():
        solo_best = spread([r.solo_best for r in rows])
        collective = [spread([r.collective[i].score for r in rows])
                      for i in range(len(report.rules))]
        fedavg = statistics.fmean(r.fedavg for r in rows)
        pooled = statistics.fmean(r.pooled for r in rows)
        best = max(solo_best[0], *(c[0] for c in collective), fedavg, pooled)

        def cell(value: float, half_range: float | None = None, best: float = best) -> str:
            text = f"[bold]{value:.4f}[/]" if value == best else f"{value:.4f}"
            return text if half_range is None else f"{text} ± {half_range:.3f}"

        accepted = ["/".join(str(r.collective[i].accepted_rounds) for r in rows)
                    for i in range(len(report.rules))]
        table.add_row(task, split, rows[0].score, cell(*solo_best),
                      *(f"{cell(*c)} ({a})" for c, a in zip(collective, accepted)),
                      cell(fedavg), cell(pooled))
    if not console.is_terminal:  # rich gives a pipe 80 columns: too few for the table
        console = Console(file=console.file, width=160)
    console.print(table)


def plot_learning(report: LearningReport, path: Path) -> None:
    """The global test score after each round, averaged over seeds: one panel per task and
    split, one line per method (:func:`colearn_core.plots.plot_curves`)."""
    from colearn_core.plots import plot_curves

    panels: dict[str, dict[str, list[float]]] = {}
    for (task, split), rows in groups(report).items():
        lines = {f"{rule} ({report.driver})": [r.collective[i].curve for r in rows]
                 for i, rule in enumerate(report.rules)}
        lines.update({name: [r.curves[name] for r in rows] for name in rows[0].curves})
        panels[f"{task}, {split} ({rows[0].score})"] = {
            name: [statistics.fmean(values) for values in zip(*curves)]
            for name, curves in lines.items()}
    plot_curves(panels, path, score_name="global test score", lower_is_better=False)

"""``colearn demo``: N learners, one contract, N agents, from start to final model.

The demo creates N local accounts, deploys the contract (in-process EVM by default,
or any RPC such as anvil), stores the initial weights, creates an experiment and runs
the agents to the end. The per-round table and ``results.json`` are rebuilt from the
chain's events (plus the weight store for accuracies), the way an auditor would.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agents.agent.learner_agent import LearnerAgent, run_in_process
from agents.agent.records import RoundRecord
from agents.agent.settings import AgentSettings
from agents.audit.checks import expected_model
from agents.audit.reader import HistoryReader
from agents.audit.rows import RoundRow, colearn_results, join_rows, round_rows
from agents.chain.client import CollectiveLearningClient
from agents.chain.network import connect, derive_accounts, fund_accounts
from agents.chain.types import ExperimentOptions
from agents.experiment.launch import launch_experiment
from agents.experiment.spec import ExperimentTerms
from agents.storage.store import WeightStore, open_store
from colearn_core.codec import decode_weights
from colearn_core.plots import plot_results, plot_votes

log = logging.getLogger(__name__)


class DemoConfig(BaseModel):
    n_learners: int = Field(5, ge=2, le=100)
    n_rounds: int = Field(15, ge=1)
    vote_threshold: float = Field(0.5, ge=0.0, le=1.0)
    model: str = Field("mlp", pattern="^mlp$")
    seed: int = Field(0, ge=0)
    chain_url: str | None = None
    store_url: str | None = None  # default: file:<out>/store
    out: Path = Path("demo-out")
    proposal_timeout: int = Field(600, ge=1)
    voting_timeout: int = Field(600, ge=1)
    sealed: bool = False  # sealed votes (commit, then reveal within the voting timeout again)


class Experiment(BaseModel):
    """A created demo experiment and what the demo needs to follow and score it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    config: DemoConfig
    task: Any  # DigitsConfig
    client: CollectiveLearningClient
    store: Any  # WeightStore
    accounts: list[Any]
    experiment_id: int
    initial_accuracy: float
    started: float


def prepare(config: DemoConfig, console: Console, w3: Any, store: WeightStore,
            initial_weights: Any) -> Experiment:
    """Funds N accounts, deploys the contract, stores the initial weights and creates the
    experiment."""
    from colearn_core.tasks.digits import DigitsConfig
    from colearn_core.tasks.digits_torch import global_test_accuracy

    started = time.perf_counter()
    task = DigitsConfig(n_learners=config.n_learners, seed=config.seed,
                        n_rounds=config.n_rounds, vote_threshold=config.vote_threshold)
    accounts = derive_accounts(config.n_learners, config.seed)
    fund_accounts(w3, [a.address for a in accounts])
    client, _ = CollectiveLearningClient.deploy(w3, accounts[0])
    experiment_id = launch_experiment(client, store, ExperimentTerms(
        learners=[a.address for a in accounts], threshold=config.vote_threshold,
        rounds=config.n_rounds, proposal_timeout=config.proposal_timeout,
        voting_timeout=config.voting_timeout, metadata=_metadata(config),
        options=ExperimentOptions(reveal_timeout=config.voting_timeout if config.sealed else 0)),
        initial_weights).experiment_id
    console.print(f"chain {client.chain_id} · contract {client.address} · "
                  f"experiment {experiment_id} · {config.n_learners} learners · "
                  f"{config.n_rounds} rounds · threshold {config.vote_threshold}")
    return Experiment(config=config, task=task, client=client, store=store, accounts=accounts,
                      experiment_id=experiment_id, started=started,
                      initial_accuracy=global_test_accuracy(initial_weights, task))


def follow(experiment: Experiment, console: Console,
           drive: Callable[[Callable[[], None]], None]) -> tuple[list[RoundRow], _AccuracyTracker]:
    """Runs ``drive(report)`` under a progress bar; ``report`` prints each round as it
    closes on chain, with the global test accuracy of the model after it."""
    from colearn_core.tasks.digits_torch import global_test_accuracy

    client, experiment_id = experiment.client, experiment.experiment_id
    n_learners = experiment.config.n_learners
    accuracy = _AccuracyTracker(experiment.store, global_test_accuracy, experiment.task,
                                experiment.initial_accuracy)
    rows: list[RoundRow] = []
    progress = Progress(TextColumn("[bold]rounds"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True)
    with progress:
        bar = progress.add_task("rounds", total=experiment.config.n_rounds)

        # One reader, read on incrementally: every read is of one block, so a round that
        # closes during it is seen whole or not at all.
        reader = HistoryReader(client, experiment_id)

        def report() -> None:
            if client.experiment(experiment_id).round == len(rows):
                return
            reader.update()
            for row in round_rows(reader.history())[len(rows):]:
                if row.closed and row.round == len(rows):
                    rows.append(row)
                    accuracy.after(row)
                    progress.console.print(_round_line(row, n_learners, accuracy.last),
                                           soft_wrap=True)
                    progress.advance(bar)

        drive(report)
        report()
    return rows, accuracy


def finish(experiment: Experiment, console: Console, rows: list[RoundRow],
           accuracy: _AccuracyTracker, records: list[dict[int, RoundRecord]] | None = None
           ) -> dict[str, Any]:
    """Scores the solo baseline and writes ``results.json`` and the two plots."""
    from colearn_core.tasks.digits_torch import solo_accuracies

    config, client = experiment.config, experiment.client
    final_digest, model_round = client.current_model(experiment.experiment_id)
    console.print("training each learner alone for the same number of training calls...")
    solo = solo_accuracies(experiment.task)
    reader = HistoryReader(client, experiment.experiment_id)
    reader.update()
    history = reader.history()
    join_gas = sum(j.gas for j in join_rows(history))
    final_cid = expected_model(history)[2]
    results = _results_json(client, experiment.experiment_id, rows, accuracy.per_round,
                            accuracy.last, solo, final_digest, final_cid, model_round,
                            time.perf_counter() - experiment.started, join_gas)
    (config.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    colearn = colearn_results(rows, config.n_learners, records or ())
    vote_loss = experiment.task.vote_on == "loss"
    plot_results(colearn, config.n_learners, config.out / "scores.png",
                 test_name="accuracy", vote_name="cross-entropy" if vote_loss else "accuracy",
                 vote_lower_is_better=vote_loss,
                 extra={"global test accuracy": accuracy.per_round},
                 baselines=solo, baseline_what="alone (global test accuracy)")
    plot_votes(colearn, config.n_learners, config.out / "votes.png")
    console.print(
        f"final global test accuracy [bold]{accuracy.last:.4f}[/] · solo "
        + ", ".join(f"{a:.4f}" for a in solo)
        + f" · {sum(1 for r in rows if r.accepted)}/{len(rows)} rounds accepted · "
        f"{results['total_gas']:,} gas · {results['seconds']:.1f} s")
    console.print(f"wrote {config.out / 'results.json'}, {config.out / 'scores.png'}, "
                  f"{config.out / 'votes.png'}")
    return results


def run_demo(config: DemoConfig, console: Console | None = None) -> dict[str, Any]:
    """The embedded demo: one process, the agents stepped in turn on one chain connection."""
    import torch

    from colearn_core.tasks.digits import DigitsConfig
    from colearn_core.tasks.digits_torch import make_digits_learners
    from colearn_core.tasks.mlp_config import DEFAULT_RULE, rule_options
    from colearn_core.training import set_equal_weights

    console = console or Console()
    # The learners are tiny and run one at a time: one thread each is fastest.
    torch.set_num_threads(1)
    # Services first, so bad URLs fail before any work is done.
    store = open_store(config.store_url or f"file:{config.out / 'store'}")
    w3 = connect(config.chain_url)
    config.out.mkdir(parents=True, exist_ok=True)
    learners = make_digits_learners(config=DigitsConfig(  # digits_learner's, per learner
        n_learners=config.n_learners, seed=config.seed, **rule_options(DEFAULT_RULE)))
    set_equal_weights(learners)
    experiment = prepare(config, console, w3, store,
                         learners[0].mli_get_current_weights().weights)
    agents = [LearnerAgent(experiment.client.with_account(account), store, learner,
                           experiment.experiment_id, settings=AgentSettings(
                               name=f"learner{i}", state_dir=config.out / "state" / f"learner{i}"))
              for i, (account, learner) in enumerate(zip(experiment.accounts, learners))]
    rows, accuracy = follow(experiment, console,
                            lambda report: run_in_process(agents, on_step=report))
    return finish(experiment, console, rows, accuracy, [a.records for a in agents])


class _AccuracyTracker:
    """Global test accuracy of the current model after each round, from the store."""

    def __init__(self, store: WeightStore, score, task, initial: float):
        self.store, self.score, self.task = store, score, task
        self.last = initial
        self.per_round: list[float] = []

    def after(self, row: RoundRow) -> None:
        if row.accepted and row.cid is not None:  # (one reader, one block: it has its CID)
            self.last = self.score(decode_weights(self.store.get(row.cid).data), self.task)
        self.per_round.append(self.last)


def _round_line(row: RoundRow, n_learners: int, accuracy: float) -> str:
    scores = [v.vote_score for v in row.votes if v.vote_score is not None]
    mean = f"{sum(scores) / len(scores):.4f}" if scores else "   -  "
    outcome = ("[yellow]expired [/]" if row.expired else
               "[green]accepted[/]" if row.accepted else "[red]rejected[/]")
    return (f"round {row.round:>3} · proposer {row.proposer_index} ({row.proposer[:10]}) · "
            f"{row.approvals}/{n_learners - 1} approve · {outcome} · "
            f"mean vote score {mean} · global test accuracy {accuracy:.4f}")


def _metadata(config: DemoConfig) -> dict[str, Any]:
    return {
        "task": "digits", "model": config.model, "seed": config.seed,
        "description": "scikit-learn digits split across learners; each learner votes on "
                       "its private vote set's cross-entropy",
        "weights_format": "safetensors (colearn-weights/1)",
        # what the vote scores on chain are: the audit and the explorer label their plot
        "vote_score": {"name": "cross-entropy", "lower_is_better": True},
    }


def _results_json(client: CollectiveLearningClient, experiment_id: int, rows: list[RoundRow],
                  per_round: list[float], final_accuracy: float, solo: list[float],
                  final_digest: bytes, final_cid: str, model_round: int, seconds: float,
                  join_gas: int) -> dict[str, Any]:
    rounds = []
    for row, accuracy in zip(rows, per_round):
        data = row.model_dump(exclude={"close_block"})
        data["test_accuracy"] = accuracy
        rounds.append(data)
    return {
        "chain_id": client.chain_id,
        "contract": client.address,
        "experiment_id": experiment_id,
        "rounds": rounds,
        "final_model": {"digest": "0x" + final_digest.hex(), "model_round": model_round,
                        "cid": final_cid},
        "final_test_accuracy": final_accuracy,
        "solo_test_accuracy": solo,
        "join_gas": join_gas,  # every learner's join (the last one started round 0)
        "total_gas": join_gas + sum(r.gas.total for r in rows),
        "seconds": seconds,
    }



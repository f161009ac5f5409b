"""``colearn example NAME``: one of colearn's examples, in memory or on chain.

In memory it runs :func:`colearn_core.training.run_experiment` and prints the global test
score after each round; with ``--on-chain`` one agent per learner runs it on the
in-process EVM (or ``--rpc``) through :func:`agents.experiment.onchain.run_on_chain`, and each round
is printed as the chain recorded it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console


class ExampleOutcome(BaseModel):
    example: str
    on_chain: bool
    score_name: str
    initial_score: float
    final_score: float
    decisions: list[bool | None]
    seconds: float
    total_gas: int | None = None


def run_example(name: str, *, n_learners: int = 5, seed: int = 0, n_rounds: int | None = None,
                on_chain: bool = False, rpc: str | None = None, data_dir: Path | None = None,
                console: Console | None = None) -> ExampleOutcome:
    from colearn_core.examples import load_example

    console = console or Console()
    module = load_example(name)
    started = time.perf_counter()
    setup = module.build(n_learners=n_learners, seed=seed,
                         data_dir=str(data_dir) if data_dir else None)
    rounds = n_rounds or setup.n_rounds
    initial = setup.global_score(setup.learners[0].mli_get_current_weights().weights)
    console.print(f"{name}: {setup.description}")
    console.print(f"{n_learners} learners · {rounds} rounds · threshold "
                  f"{setup.vote_threshold} · initial global test {setup.score_name} "
                  f"{initial:.4f}")
    if on_chain or rpc:
        outcome = _on_chain(name, setup, rounds, rpc, initial, console)
    else:
        outcome = _in_memory(name, setup, rounds, initial, console)
    outcome.seconds = time.perf_counter() - started
    accepted = sum(1 for d in outcome.decisions if d)
    console.print(f"final global test {setup.score_name} [bold]{outcome.final_score:.4f}[/] "
                  f"(initial {initial:.4f}) · {accepted}/{rounds} rounds accepted"
                  + (f" · {outcome.total_gas:,} gas" if outcome.total_gas else "")
                  + f" · {outcome.seconds:.1f} s")
    return outcome


def _in_memory(name: str, setup: Any, rounds: int, initial: float,
               console: Console) -> ExampleOutcome:
    from colearn_core.training import run_experiment

    def report(round_index: int, result: Any) -> None:
        score = setup.global_score(setup.learners[0].mli_get_current_weights().weights)
        outcome = "[green]accepted[/]" if result.vote else "[red]rejected[/]"
        approvals = sum(1 for v in result.votes if v)
        console.print(f"round {round_index:>3} · proposer {result.block_proposer} · "
                      f"{approvals}/{len(setup.learners) - 1} approve · {outcome} · "
                      f"global test {setup.score_name} {score:.4f}")

    results = run_experiment(setup.learners, rounds, setup.vote_threshold, on_round=report)
    final = setup.global_score(setup.learners[0].mli_get_current_weights().weights)
    return ExampleOutcome(example=name, on_chain=False, score_name=setup.score_name,
                          initial_score=initial, final_score=final,
                          decisions=results.decisions(), seconds=0.0)


def _on_chain(name: str, setup: Any, rounds: int, rpc: str | None, initial: float,
              console: Console) -> ExampleOutcome:
    from agents.experiment.onchain import run_on_chain

    with console.status("agents running on chain..."):
        run = run_on_chain(setup.learners, rounds, setup.vote_threshold, chain_url=rpc)
    console.print(f"chain {run.chain_id} · contract {run.contract} · experiment "
                  f"{run.experiment_id}")
    for row in run.rounds:
        outcome = ("[yellow]expired[/]" if row.expired else
                   "[green]accepted[/]" if row.accepted else "[red]rejected[/]")
        console.print(f"round {row.round:>3} · proposer {row.proposer_index} · "
                      f"{row.approvals}/{len(setup.learners) - 1} approve · {outcome} · "
                      f"{row.gas.total:,} gas")
    return ExampleOutcome(example=name, on_chain=True, score_name=setup.score_name,
                          initial_score=initial, final_score=setup.global_score(run.final_weights),
                          decisions=run.decisions(), seconds=0.0, total_gas=run.total_gas)

"""``colearn bench gas``'s run, bounds and report: every learner count measured on one
chain, the bounds checked, printed as rich tables or JSON (see :mod:`agents.bench.gas`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from web3 import Web3
from web3.types import Wei

from agents.bench.gas.learning import SCORE, LearningGas, measure_collective_learning
from agents.bench.gas.openzeppelin import GovernorGas, measure_governor
from agents.bench.output import emit
from agents.chain.network import connect, derive_accounts, fund_accounts, is_in_process

DEFAULT_LEARNER_COUNTS = (5, 20, 100)
#: The contract's bounds on a learner list (3: a steady round needs a vote that does not decide).
MIN_LEARNERS, MAX_LEARNERS = 3, 500
ACCOUNT_LABEL = "colearn-gas-bench"

# Bounds (upper bounds on gas; the report checks them, the tests assert them).
JOIN_MAX = 50_000
VOTE_MAX = 45_000
ROUND_OF_FIVE_MAX = 200_000
SIGNED_VOTE_AT_100_MAX = 10_000
SEALED_ROUND_OF_FIVE_MAX = 400_000
SIGNED_COMMIT_AT_100_MAX = 12_000
VOTE_SPREAD_MAX = 0.05


class GasColumn(BaseModel):
    n_learners: int
    collective_learning: LearningGas
    governor: GovernorGas


class Bound(BaseModel):
    name: str
    description: str
    measured: float
    limit: float
    met: bool


class GasReport(BaseModel):
    benchmark: Literal["gas"] = "gas"
    chain: str
    score: int
    columns: list[GasColumn]
    bounds: list[Bound]
    all_bounds_met: bool
    seconds: float


# ---------------------------------------------------------------------- bounds


def _bounds(columns: list[GasColumn]) -> list[Bound]:
    """The bounds that the measured learner counts allow checking."""
    by_n = {c.n_learners: c.collective_learning for c in columns}
    direct = max(max(g.vote, g.deciding_vote) for g in by_n.values())
    ratio = max(c.collective_learning.vote / c.governor.cast_vote for c in columns)
    join = max(max(g.join, g.last_join) for g in by_n.values())
    bounds = [
        Bound(name="join_max", measured=join, limit=JOIN_MAX, met=join <= JOIN_MAX,
              description="join (the last one, which starts round 0, included), every n"),
        Bound(name="direct_vote_max", measured=direct, limit=VOTE_MAX, met=direct <= VOTE_MAX,
              description="direct vote (deciding vote included), steady rounds, every n"),
        Bound(name="vote_vs_governor_cast_vote", measured=round(ratio, 4), limit=1.0,
              met=ratio < 1.0,
              description="our vote / Governor's typical castVote, the largest over n "
                          "(below 1: ours is cheaper)"),
    ]
    if 5 in by_n:
        total = by_n[5].round_direct
        bounds.append(Bound(name="round_of_5_max", measured=total, limit=ROUND_OF_FIVE_MAX,
                            met=total <= ROUND_OF_FIVE_MAX,
                            description="steady round of 5 learners: proposal + 4 direct votes"))
    if 5 in by_n:
        sealed = by_n[5].sealed_round_direct
        bounds.append(Bound(name="sealed_round_of_5_max", measured=sealed,
                            limit=SEALED_ROUND_OF_FIVE_MAX,
                            met=sealed <= SEALED_ROUND_OF_FIVE_MAX,
                            description="steady sealed round of 5 learners: proposal + 4 "
                                        "commitments + 4 reveals"))
    if 100 in by_n:
        commit = by_n[100].signed_commit
        bounds.append(Bound(name="signed_commit_in_batch_of_99_max", measured=commit,
                            limit=SIGNED_COMMIT_AT_100_MAX,
                            met=commit <= SIGNED_COMMIT_AT_100_MAX,
                            description="signed commitment inside a batch of 99 (n = 100)"))
    if 100 in by_n:
        signed = by_n[100].signed_vote
        bounds.append(Bound(name="signed_vote_in_batch_of_99_max", measured=signed,
                            limit=SIGNED_VOTE_AT_100_MAX, met=signed <= SIGNED_VOTE_AT_100_MAX,
                            description="signed vote inside a batch of 99 (n = 100)"))
    if 5 in by_n and 100 in by_n:
        spread = abs(by_n[100].vote - by_n[5].vote) / by_n[5].vote
        bounds.append(Bound(name="vote_spread_5_to_100", measured=round(spread, 4),
                            limit=VOTE_SPREAD_MAX, met=spread <= VOTE_SPREAD_MAX,
                            description="vote gas at n = 100 relative to n = 5"))
    return bounds


# ------------------------------------------------------------------------- run


def check_learner_counts(learner_counts: Sequence[int]) -> list[int]:
    """The learner counts, sorted; :class:`ValueError` for an empty, repeated or out of
    range one."""
    counts = sorted(learner_counts)
    if not counts:
        raise ValueError("give at least one learner count")
    if len(set(counts)) != len(counts):
        raise ValueError(f"repeated learner count in {list(learner_counts)}")
    for n in counts:
        if not MIN_LEARNERS <= n <= MAX_LEARNERS:
            raise ValueError(f"learner count {n} is outside {MIN_LEARNERS}..{MAX_LEARNERS}")
    return counts


def _fund(w3: Web3, addresses: list[str], amount_wei: int = 10**19) -> None:
    """:func:`agents.chain.network.fund_accounts` with the gas limit of a transfer given: the
    in-process chain's gas estimates are slow."""
    if not w3.eth.accounts:
        fund_accounts(w3, addresses, amount_wei)  # raises its explanation
    for address in addresses:
        tx_hash = w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "to": address, "value": Wei(amount_wei),
             "gas": 21_000})
        w3.eth.wait_for_transaction_receipt(tx_hash)


def _chain_name(w3: Web3, rpc: str | None) -> str:
    if rpc is not None:
        return rpc
    vm = w3.provider.ethereum_tester.backend.chain.get_vm()  # type: ignore[attr-defined]
    return f"in-process eth-tester (py-evm, {vm.fork})"


def run_gas_bench(learner_counts: Sequence[int] = DEFAULT_LEARNER_COUNTS,
                  rpc: str | None = None) -> GasReport:
    """Measures every learner count on one chain (in process unless ``rpc`` names a dev
    node with a funded unlocked account) and checks the bounds."""
    counts = check_learner_counts(learner_counts)
    started = time.perf_counter()
    w3 = connect(rpc)
    accounts = derive_accounts(counts[-1], 0, label=ACCOUNT_LABEL)
    _fund(w3, [a.address for a in accounts])
    columns = [GasColumn(n_learners=n,
                         collective_learning=measure_collective_learning(w3, accounts[:n]),
                         governor=measure_governor(w3, accounts[:n]))
               for n in counts]
    bounds = _bounds(columns)
    return GasReport(chain=_chain_name(w3, None if is_in_process(w3) else rpc), score=SCORE,
                     columns=columns, bounds=bounds, all_bounds_met=all(b.met for b in bounds),
                     seconds=round(time.perf_counter() - started, 2))


# ---------------------------------------------------------------------- report

_ROWS: list[tuple[str, str]] = [
    ("create", "create (n learners; first of a deployment)"),
    ("join", "join"),
    ("last_join", "last join (starts round 0)"),
    ("first_round_direct", "first round: proposal + n - 1 votes"),
    ("propose", "propose"),
    ("vote", "vote"),
    ("deciding_vote", "deciding vote"),
    ("expire", "expire (after the proposal deadline)"),
    ("decide", "decide (after the voting deadline)"),
    ("signed_vote", "signed vote in a batch of n - 1"),
    ("batch", "batch of n - 1 signed votes"),
    ("round_direct", "round: proposal + n - 1 votes"),
    ("round_relayed", "round: proposal + batch of n - 1"),
    ("commit", "commitVote"),
    ("last_commit", "last commitVote (opens the reveals)"),
    ("reveal", "revealVote"),
    ("deciding_reveal", "deciding revealVote"),
    ("sealed_round_direct", "sealed round: proposal + n - 1 commits + n - 1 reveals"),
    ("signed_commit", "signed commitment in a batch of n - 1"),
    ("commit_batch", "batch of n - 1 signed commitments"),
    ("reveal_in_batch", "reveal in a batch of n - 1"),
    ("reveal_batch", "batch of n - 1 reveals"),
    ("sealed_round_relayed", "sealed round: proposal + both batches"),
    ("create_staked_eth", "create, reward pool in ETH"),
    ("join_eth", "join, stake in ETH"),
    ("create_staked_erc20", "create, reward pool in an ERC-20"),
    ("join_erc20", "join, stake in an ERC-20 (approve apart)"),
]


def _marks(report: GasReport) -> dict[tuple[str, int], bool]:
    """Which cells a bound covers, and whether it is met there."""
    bounds = {b.name: b.met for b in report.bounds}
    marks: dict[tuple[str, int], bool] = {}
    for column in report.columns:
        n, ours = column.n_learners, column.collective_learning
        marks[("vote", n)] = ours.vote <= VOTE_MAX and ours.vote < column.governor.cast_vote
        marks[("deciding_vote", n)] = ours.deciding_vote <= VOTE_MAX
        marks[("join", n)] = ours.join <= JOIN_MAX
        marks[("last_join", n)] = ours.last_join <= JOIN_MAX
    if "round_of_5_max" in bounds:
        marks[("round_direct", 5)] = bounds["round_of_5_max"]
    if "signed_vote_in_batch_of_99_max" in bounds:
        marks[("signed_vote", 100)] = bounds["signed_vote_in_batch_of_99_max"]
    if "sealed_round_of_5_max" in bounds:
        marks[("sealed_round_direct", 5)] = bounds["sealed_round_of_5_max"]
    if "signed_commit_in_batch_of_99_max" in bounds:
        marks[("signed_commit", 100)] = bounds["signed_commit_in_batch_of_99_max"]
    return marks


def _cell(value: int, mark: bool | None) -> str:
    text = f"{value:,}"
    if mark is None:
        return text
    return f"{text} [green]✓[/]" if mark else f"[red]{text} ✗[/]"


def print_gas_report(report: GasReport, console: Console) -> None:
    """The report as rich tables: gas by operation and learner count, then the bounds."""
    table = Table(title=f"gas by learner count n, steady rounds (round >= 1)\n"
                        f"{report.chain}, vote scores {report.score / 10**18:g}")
    table.add_column("operation")
    for column in report.columns:
        table.add_column(f"n = {column.n_learners}", justify="right")
    marks = _marks(report)
    for key, label in _ROWS:
        table.add_row(label, *(_cell(getattr(c.collective_learning, key),
                                     marks.get((key, c.n_learners)))
                               for c in report.columns))
    table.add_section()
    table.add_row("Governor castVote (first voter)",
                  *(f"{c.governor.cast_vote_first:,}" for c in report.columns))
    table.add_row("Governor castVote (typical voter)",
                  *(f"{c.governor.cast_vote:,}" for c in report.columns))
    console.print(table)

    bounds = Table(title="bounds")
    for name, justify in (("bound", "left"), ("measured", "right"), ("limit", "right"),
                          ("met", "center")):
        bounds.add_column(name, justify=justify)  # type: ignore[arg-type]
    for b in report.bounds:
        fmt = "{:,.0f}" if b.limit >= 100 else "{:.4g}"
        bounds.add_row(b.description, fmt.format(b.measured), fmt.format(b.limit),
                       "[green]yes[/]" if b.met else "[red]no[/]")
    console.print(bounds)
    console.print(f"all bounds met: {'[green]yes[/]' if report.all_bounds_met else '[red]no[/]'}"
                  f" · {report.seconds:.1f} s")


def bench_gas(as_json: bool = False, learner_counts: Sequence[int] = DEFAULT_LEARNER_COUNTS,
              rpc: str | None = None) -> GasReport:
    """``colearn bench gas [--json]``: measures, prints the report (JSON on stdout when
    asked) and returns it. The bounds are reported, never enforced."""
    report = run_gas_bench(learner_counts, rpc)
    emit(report, as_json, print_gas_report)
    return report

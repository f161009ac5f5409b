"""``colearn bench overhead``'s report as rich tables (the report is the dict that
:func:`agents.bench.overhead.run_overhead_bench` returns)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _sequence(decisions: list[bool | None]) -> str:
    return "".join("A" if d else "-" if d is None else "R" for d in decisions)


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


def _check(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"


def print_overhead_report(report: dict[str, Any], console: Console | None = None) -> None:
    """The report as rich tables."""
    console = console or Console()
    memory, chain, targets = report["in_memory"], report["on_chain"], report["targets"]
    parts = chain["protocol_parts_per_round"]
    table = Table(title=f"overhead: {report['n_learners']} learners, {report['n_rounds']} "
                        f"rounds, preset {report['preset']}, {report['cpus']} CPUs")
    table.add_column("")
    table.add_column("in memory", justify="right")
    table.add_column("on chain", justify="right")
    table.add_row("seconds a round", f"{memory['seconds_per_round']:.3f}",
                  f"{chain['seconds_per_round']:.3f}")
    table.add_row("seconds in all", f"{memory['seconds']:.2f}", f"{chain['seconds']:.2f}")
    table.add_row("decisions (A accepted, R rejected)", _sequence(memory["decisions"]),
                  _sequence(chain["decisions"]))
    table.add_row("final model", memory["model_digest"][:18] + "…",
                  chain["model_digest"][:18] + "…")
    console.print(table)

    console.print(
        f"on chain / in memory: [bold]{report['ratio']:.3f}[/] "
        f"(target ≤ {targets['ratio_max']:g}: {_check(targets['ratio_met'])}) · "
        f"protocol's own time: [bold]{report['protocol_seconds_per_round']:.3f} s[/] a round "
        f"(status reads {parts['status']:.3f} s, transactions {parts['transactions']:.3f} s, "
        f"following events {parts['follow']:.3f} s ({report['follow']}), store "
        f"{parts['store']:.3f} s, encoding, hashing, logging and the rest "
        f"{parts['other']:.3f} s; {chain['protocol_share']:.0%} of the "
        f"agents' acting time; in CPU time {chain['protocol_cpu_seconds_per_round']:.3f} s; "
        f"target ≤ "
        f"{targets['protocol_seconds_per_round_max']:g} s: {_check(targets['protocol_met'])})",
        soft_wrap=True)
    floor = report["floor"]
    steps = floor["steps_seconds"]
    console.print(
        f"physical floor of moving {floor['payload_bytes'] / 1e6:.3g} MB of weights a round: "
        f"[bold]{floor['seconds_per_round']:.3f} s[/] (proposer: copy {steps['copy']:.3f} + "
        f"sha256 {steps['sha256']:.3f} + CID {steps['cid']:.3f} + write {steps['write']:.3f};"
        f" each voter: read {steps['read']:.3f} + sha256) · the agents' CPU time moving "
        f"weights: [bold]{chain['store_cpu_seconds_per_round']:.3f} s[/] a round, "
        f"[bold]{report['weights_over_floor']:.2f}[/]x the floor (wall clock "
        f"{chain['store_seconds_per_round']:.3f} s) · protocol / floor: "
        f"{report['protocol_over_floor']:.2f} ({report['store']} store)",
        soft_wrap=True)
    load = report["load_average"]
    console.print(
        f"same decisions: {_check(report['decisions_match'])} · same final model: "
        f"{_check(report['models_match'])} · agents that stopped without the final model: "
        f"{report['agents_without_final_model'] or 'none'} · proposals trained but refused "
        f"by the chain: {_or_dash(chain['discarded_proposals'])} · agents' start-up (not timed): "
        f"{chain['startup_seconds']:.1f} s · load average before the runs: "
        f"{load['before_in_memory']:.2f}, {load['before_on_chain']:.2f}", soft_wrap=True)

    calls = Table(title="in memory: learner calls")
    for column in ("call", "calls", "seconds", "seconds a call"):
        calls.add_column(column, justify="right" if column != "call" else "left")
    for name, entry in memory["learner_calls"].items():
        calls.add_row(name, str(entry["calls"]), f"{entry['seconds']:.2f}",
                      f"{entry['seconds_per_call']:.3f}")
    console.print(calls)

    agents = Table(title="on chain: each agent's seconds a round "
                         "(protocol = step - learner + follow; store is part of step)")
    for column in ("agent", "step", "learner", "store", "store CPU", "follow", "protocol",
                   "RSS MB", "peak MB", "peak − RSS"):
        agents.add_column(column, justify="right")
    mb = 1e6
    for agent in chain["agents"]:
        s, rss = agent["seconds_per_round"], agent.get("rss")
        memory = ("", "", "") if rss is None else (
            f"{rss['baseline_bytes'] / mb:.0f}", f"{rss['peak_bytes'] / mb:.0f}",
            f"{rss['peak_over_baseline_models']:.1f} models")
        cpu = agent["cpu_seconds"]["store"] / report["n_rounds"]
        agents.add_row(str(agent["index"]), f"{s['step']:.3f}", f"{s['learner']:.3f}",
                       f"{s['store']:.4f}", f"{cpu:.4f}", f"{s['follow']:.4f}",
                       f"{s['protocol']:.3f}", *memory)
    agents.add_row("all", "", "", f"{chain['store_seconds_per_round']:.4f}",
                   f"{chain['store_cpu_seconds_per_round']:.4f}",
                   f"{chain['follow_seconds_per_round']:.4f}",
                   f"{chain['protocol_seconds_per_round']:.3f}", "", "", "")
    agents.caption = ("RSS: at the start (learner built); peak: during the run, over the "
                      f"RSS in model sizes ({report['model_bytes'] / mb:.3g} MB)")
    console.print(agents)

"""An audit's three forms: a table in the terminal, JSON for machines, and one
self-contained HTML file (:mod:`agents.audit.report_html`).

The plots are colearn's two, drawn from the chain's vote scores: the vote score of each
learner per round (with their mean), and the learner x round vote grid. What the vote
score is (its name, and whether lower is better) is not on chain: the experiment's
metadata says it (``vote_score``), when a store to fetch it from is given.

Each form also says when the experiment is stalled (:mod:`agents.audit.stall`) and shows
its metadata's content (:mod:`agents.audit.metadata`).
"""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Span, Text

from agents.audit.checks import AuditReport
from agents.audit.history import History, RoundHistory
from agents.audit.ledger import ledger
from agents.audit.metadata import Metadata
from agents.audit.results import results_summary
from agents.audit.rows import colearn_results as rows_results
from agents.audit.rows import round_rows
from agents.audit.stall import Stall
from agents.chain.types import MAX_LEARNERS
from colearn_core.plots import draw_scores, draw_votes, vote_grid
from colearn_core.results import Results

#: Up to this many rounds the grid is colearn's own plot (one column per round, ticked).
COLEARN_GRID_MAX_ROUNDS = 60
_PLOT_LOCK = threading.Lock()  # pyplot's state is global: one figure at a time


# ---------------------------------------------------------------------------- plots


def _learners(history: History) -> int:
    """Learners drawn in the plots and the grid: the contract allows at most
    :data:`MAX_LEARNERS` (a longer list in a hostile event is drawn no further)."""
    return min(len(history.config.learners), MAX_LEARNERS)


def colearn_results(history: History) -> Results:
    """colearn's ``Results`` from the chain alone (votes and vote scores from VoteCast)."""
    return rows_results(round_rows(history), _learners(history))


def grid_values(history: History) -> list[list[int]]:
    """The vote grid, learner x closed round, as indices into :data:`GRID_LABELS`."""
    return vote_grid(colearn_results(history), _learners(history))


def scores_png(history: History, metadata: Metadata | None = None) -> bytes:
    """The vote score of each learner per round, and their mean (colearn's vote panel),
    named and oriented ("lower is better") as the experiment's metadata says."""
    plt = _pyplot()
    results = colearn_results(history)
    n = _learners(history)
    name, lower = metadata.vote_score() if metadata is not None else ("score", None)
    unit = "learner-defined; direction not on chain" if (name, lower) == ("score", None) \
        else None
    with _PLOT_LOCK:
        fig, ax = plt.subplots(figsize=(10, 4.2))
        draw_scores(ax, results, ("vote",), name, n, legend=False, lower_is_better=lower,
                    unit=unit)
        ax.set_title("vote score per learner per round (VoteCast events)")
        if n <= 20:
            ax.legend(fontsize=7, ncol=2 if n > 10 else 1, bbox_to_anchor=(1.01, 1),
                      loc="upper left")
        fig.tight_layout()
        return _png(fig, plt)


def votes_png(history: History) -> bytes:
    """The learner x round vote grid: colearn's plot (every round and learner ticked) up
    to :data:`COLEARN_GRID_MAX_ROUNDS` rounds, the same grid at a bounded size beyond."""
    results = colearn_results(history)
    n = _learners(history)
    plt = _pyplot()
    few = len(results.data) <= COLEARN_GRID_MAX_ROUNDS
    with _PLOT_LOCK:
        if few:
            fig, ax = plt.subplots(figsize=(max(6, len(results.data) * 0.45), 1.2 + n * 0.45))
        else:
            fig, ax = plt.subplots(figsize=(14, 1.2 + min(n, 40) * 0.3))
        draw_votes(ax, results, n, ticks=few)
        ax.set_title("votes")
        fig.tight_layout()
        return _png(fig, plt)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any, plt: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


# ------------------------------------------------------------------------- terminal


def _short(text: str | None, head: int = 10, tail: int = 4) -> str:
    if not text:
        return "-"
    return text if len(text) <= head + tail + 1 else f"{text[:head]}…{text[-tail:]}"


def utc_time(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def score_text(score: float | None) -> str:
    return "no score" if score is None else f"{score:.4f}"


def _outcome_style(r: RoundHistory) -> str:
    return {"accepted": "green", "rejected": "red", "expired": "yellow"}.get(r.outcome, "cyan")


class _PlainTable:
    """Columns padded to their widest cell, a few cells coloured: fast for any length."""

    def __init__(self, title: str, columns: list[tuple[str, str]]):
        self.title = title
        self.columns = columns
        self.rows: list[list[tuple[str, str]]] = []

    def add(self, *cells: str | tuple[str, str]) -> None:
        self.rows.append([c if isinstance(c, tuple) else (c, "") for c in cells])

    def render(self) -> Text:
        widths = [max([len(name)] + [len(row[i][0]) for row in self.rows])
                  for i, (name, _) in enumerate(self.columns)]
        parts: list[str] = []
        spans: list[Span] = []
        at = 0

        def line(cells: list[tuple[str, str]]) -> None:
            nonlocal at
            for i, ((value, style), width) in enumerate(zip(cells, widths)):
                cell = f"{value:{self.columns[i][1]}{width}}" + ("  " if i < len(widths) - 1
                                                                 else "\n")
                if style:
                    start = at + cell.index(value)
                    spans.append(Span(start, start + len(value), style))
                parts.append(cell)
                at += len(cell)

        title = f"{self.title}\n"
        parts.append(title)
        spans.append(Span(0, len(title) - 1, "italic"))
        at = len(title)
        line([(name, "bold") for name, _ in self.columns])
        rule = "─" * (sum(widths) + 2 * (len(widths) - 1)) + "\n"
        parts.append(rule)
        at += len(rule)
        for row in self.rows:
            line(row)
        return Text("".join(parts), spans=spans)

    def emit(self, console: Console) -> None:
        """Prints the table: through rich on a terminal (colours) or a recording console;
        written as it is elsewhere (a pipe, a file: rich would add nothing to it but time)."""
        text = self.render()
        if console.is_terminal or console.record:
            console.print(text, soft_wrap=True)
        else:
            console.file.write(text.plain)
            console.file.flush()


def joining_line(h: History) -> str:
    """How joining went: started (when, by whose join), cancelled, or still open."""
    cfg = h.config
    n, joined = len(cfg.learners), len(h.joins)
    deadline = f"join deadline {utc_time(cfg.join_deadline)} UTC"
    if h.cancellation is not None:
        return (f"cancelled in block {h.cancellation.block_number} "
                f"({utc_time(h.cancellation.timestamp)} UTC): {joined} of {n} learners joined "
                f"before the {deadline}")
    if h.start is not None:
        return (f"started in block {h.start.block_number} ({utc_time(h.start.timestamp)} UTC): "
                f"all {n} learners joined, the last in tx {h.start.tx_hash}")
    return f"joining: {joined} of {n} learners joined; {deadline}"


def terms_line(h: History) -> str:
    """The experiment's v2 terms: sealed or public votes, stake, pool, penalties, shares."""
    o = h.config.options
    votes = f"sealed votes ({o.reveal_timeout} s to reveal)" if o.sealed else "public votes"
    if not o.staked:
        return f"{votes} · no stake"
    token = "ETH (wei)" if o.in_eth else f"token {o.token}"
    return (f"{votes} · stake {o.stake} per learner in {token} · reward pool {o.reward_pool} · "
            f"penalties: missed proposal {o.missed_proposal_penalty}, unrevealed vote "
            f"{o.unrevealed_vote_penalty}, rejected proposal {o.rejected_proposal_penalty} "
            f"(at {o.rejection_share_bps} bps of the voters rejecting) · proposers' share "
            f"{o.proposer_share_bps} bps")


def money_line(h: History) -> str | None:
    """A staked experiment's pool and payouts so far, from the events (None: no stake)."""
    if not h.config.options.staked:
        return None
    book = ledger(h)
    state = f"{book.finished}: " if book.finished else "so far: "
    return (f"{state}pool {book.pool} (reward pool {book.reward_pool} + penalties "
            f"{book.penalties}); {book.proposer_part} to {book.proposer_shares} accepted "
            f"proposal(s), {book.voter_part} to {book.voter_shares} counted vote(s), "
            f"{book.creator_owed} back to the creator; deposited {book.deposited}, withdrawn "
            f"{book.withdrawn}")


def metadata_text(h: History, metadata: Metadata | None) -> str:
    """The metadata's content on one line, or its CID and why it is not shown."""
    if metadata is None:
        metadata = Metadata(cid=h.config.metadata_cid, note="not fetched: no --store")
    if not metadata.fetched or isinstance(metadata.content, str):
        return metadata.text()
    return json.dumps(metadata.content, sort_keys=True)


def print_report(report: AuditReport, console: Console, stall: Stall | None = None,
                 metadata: Metadata | None = None) -> None:
    """The audit as tables: configuration, rounds, checks, and the violations; the stall
    (if any) just above the verdict."""
    h = report.history
    cfg = h.config
    console.print(f"[bold]experiment {cfg.experiment_id}[/] · contract {h.contract} · chain "
                  f"{h.chain_id} · created in block {cfg.block_number} ({utc_time(cfg.timestamp)} "
                  f"UTC) by {cfg.creator}, tx {cfg.tx_hash}", soft_wrap=True, highlight=False)
    console.print(f"{len(cfg.learners)} learners · threshold {cfg.threshold_bps} bps · "
                  f"{h.closed_rounds}/{cfg.num_rounds} rounds closed · timeouts "
                  f"{cfg.join_timeout} s to join, {cfg.proposal_timeout} s to propose, "
                  f"{cfg.voting_timeout} s to vote · "
                  f"initial model {cfg.initial_cid} ({cfg.initial_digest})",
                  soft_wrap=True, highlight=False)
    console.print(f"metadata: {metadata_text(h, metadata)}", soft_wrap=True, highlight=False,
                  markup=False)
    console.print(terms_line(h), soft_wrap=True, highlight=False)
    money = money_line(h)
    if money is not None:
        console.print(money, soft_wrap=True, highlight=False)
    learners = Table(title="learners", title_justify="left")
    learners.add_column("#", justify="right")
    learners.add_column("address")
    for i, address in enumerate(cfg.learners[:MAX_LEARNERS]):
        learners.add_row(str(i), address)
    if len(cfg.learners) > MAX_LEARNERS:
        learners.add_row("…", f"and {len(cfg.learners) - MAX_LEARNERS:,} more")
    console.print(learners)
    console.print(joining_line(h), soft_wrap=True, highlight=False)
    if h.joins:
        joins = _PlainTable("joins (LearnerJoined)", [
            ("learner", ">"), ("address", "<"), ("block", ">"), ("time (UTC)", "<"),
            ("tx", "<"), ("paid by", "<"), ("gas", ">")])
        for j in h.joins[:MAX_LEARNERS]:
            joins.add(str(j.learner_index), j.learner, str(j.block_number), utc_time(j.timestamp),
                      j.tx_hash, "relayer " + _short(j.sender, 8) if j.relayed else "learner",
                      f"{j.gas_used:,}")
        joins.emit(console)

    # Plain aligned tables for the long parts: rich's Table measures every cell against the
    # terminal, which takes minutes for the ~20,000 votes of a 1,000-round experiment.
    rounds = _PlainTable("rounds (from the chain's events; tally: approve/reject)", [
        ("round", ">"), ("proposer", "<"), ("proposal CID", "<"), ("digest", "<"),
        ("outcome", "<"), ("tally", "<"), ("blocks", "<"), ("closed (UTC)", "<"), ("gas", ">")])
    votes = _PlainTable("votes (VoteCast events; score = fixed point / 1e18)", [
        ("round", ">"), ("learner", "<"), ("vote", "<"), ("score", ">"), ("block", ">"),
        ("tx", "<")])
    txs = _PlainTable("transactions (each counted once; a relayer's batch carries many votes)", [
        ("round", ">"), ("tx", "<"), ("role", "<"), ("sender", "<"), ("block", ">"),
        ("gas", ">")])
    for r in h.rounds:
        p = r.proposal
        blocks = sorted({t.block_number for t in r.txs})
        block_text = "-" if not blocks else str(blocks[0]) if len(blocks) == 1 \
            else f"{blocks[0]}–{blocks[-1]}"
        tally = f"{r.decision.approvals}/{r.decision.rejections}" if r.decision else "-"
        closing = r.closing
        proposer = f"{r.proposer_index} {_short(r.proposer, 8)}"
        if p is not None and p.proposer != r.proposer:
            proposer += f" (by {_short(p.proposer, 8)})"
        rounds.add(str(r.round), proposer, _short(p.cid if p else None, 12, 6),
                   _short(p.digest if p else None, 10, 6), (r.outcome, _outcome_style(r)),
                   tally, block_text, utc_time(closing.timestamp) if closing else "-", f"{r.gas:,}")
        for v in r.votes:
            votes.add(str(r.round), f"{v.learner_index} {_short(v.voter, 8)}",
                      ("approve", "green") if v.approve else ("reject", "red"),
                      score_text(v.vote_score), str(v.block_number), _short(v.tx_hash, 10, 6))
        for t in r.txs:
            txs.add(str(r.round), t.hash, t.role + (" (decides)" if t.decides else ""),
                    _short(t.sender, 8), str(t.block_number), f"{t.gas_used:,}")
    for table in (rounds, votes, txs):
        table.emit(console)

    if h.completion is not None:
        console.print(f"completed in block {h.completion.block_number}: final model "
                      f"{h.completion.model_digest} (model round {h.completion.model_round})",
                      soft_wrap=True, highlight=False)
    checks = Table(title="checks", title_justify="left")
    for name in ("check", "checked", "violations", "what it verifies"):
        checks.add_column(name)
    for s in report.checks:
        checks.add_row(s.code, str(s.checked),
                       "[green]0[/]" if not s.violations else f"[red]{s.violations}[/]",
                       escape(s.description))
    console.print(checks)
    if report.off_chain_fields:
        console.print(f"not on chain, not compared: {', '.join(report.off_chain_fields)}",
                      style="dim")
    for violation in report.violations:
        where = f" round {violation.round}" if violation.round is not None else ""
        console.print(f"[red]✗ {violation.code}[/]{where}: {escape(violation.message)}",
                      soft_wrap=True)
    stats = h.stats
    console.print(f"read {stats.logs:,} logs in {stats.log_queries} eth_getLogs (blocks "
                  f"{stats.from_block}–{stats.to_block}), {stats.blocks:,} block headers and "
                  f"{stats.receipts:,} receipts in {stats.batches} batches: "
                  f"{stats.seconds:.2f} s; checks {report.seconds:.2f} s",
                  style="dim", soft_wrap=True)
    if stall is not None:
        console.print(f"[bold yellow]{escape(stall.line())}[/] (anyone may call "
                      f"{stall.action} to move it on)", soft_wrap=True)
    if report.ok:
        console.print("[bold green]audit passed[/]: every check holds"
                      + ("; the experiment is stalled (above)" if stall else ""))
    else:
        names = sorted({v.code for v in report.violations})
        console.print(f"[bold red]audit failed[/]: {len(report.violations)} violation"
                      f"{'' if len(report.violations) == 1 else 's'} ({', '.join(names)})")


# ----------------------------------------------------------------------------- JSON


def stall_json(stall: Stall | None) -> dict[str, Any] | None:
    return None if stall is None else {**stall.model_dump(), "seconds": stall.seconds,
                                       "line": stall.line()}


def report_json(report: AuditReport, stall: Stall | None = None,
                metadata: Metadata | None = None) -> dict[str, Any]:
    """The report for machines: ``ok``, ``stalled`` (null, or since when and why), the
    violations, the checks, the full history, the metadata, and ``results`` (every chain
    number of the demo's results.json, rebuilt)."""
    data = report.model_dump(mode="json")
    money = ledger(report.history) if report.history.config.options.staked else None
    if metadata is None:
        metadata = Metadata(cid=report.history.config.metadata_cid,
                            note="not fetched: no --store")
    return {"ok": report.ok, "stalled": stall_json(stall),
            "metadata": metadata.model_dump(mode="json"),
            "violations": data.pop("violations"), "checks": data.pop("checks"),
            **data, "results": results_summary(report.history),
            "ledger": None if money is None else money.model_dump(mode="json")}


def dumps(report: AuditReport, stall: Stall | None = None,
          metadata: Metadata | None = None) -> str:
    return json.dumps(report_json(report, stall, metadata), indent=2)


def run_audit(rpc: str, contract: str, experiment_id: int, *, console: Console,
              store_url: str | None = None, as_json: bool = False,
              html_path: Path | None = None, compare: Path | None = None,
              from_block: int = 0, chunk_blocks: int | None = None) -> AuditReport:
    """``colearn audit``: reads the experiment from the chain, runs the checks, prints the
    table (or JSON on stdout) and writes the HTML report if asked."""
    import sys

    from agents.audit.checks import audit_history
    from agents.audit.metadata import fetch_metadata
    from agents.audit.reader import read_history
    from agents.audit.report_html import write_html
    from agents.audit.stall import audit_clock, find_stall
    from agents.chain.client import CollectiveLearningClient
    from agents.chain.logs import DEFAULT_CHUNK_BLOCKS
    from agents.chain.network import connect
    from agents.storage.store import open_store

    if compare is not None and not compare.is_file():
        raise ValueError(f"--compare {compare}: no such file")
    client = CollectiveLearningClient(connect(rpc), contract)
    client.check_deployed()
    store = open_store(store_url) if store_url else None
    try:
        history = read_history(client, experiment_id, from_block=from_block,
                               chunk_blocks=chunk_blocks or DEFAULT_CHUNK_BLOCKS)
        report = audit_history(history, store=store, store_url=store_url, compare=compare)
        metadata = fetch_metadata(history.config.metadata_cid, store)
    finally:
        if store is not None:
            store.close()
    stall = find_stall(history, audit_clock(client, history))
    if html_path is not None:
        write_html(report, html_path, stall, metadata)
    if as_json:
        sys.stdout.write(dumps(report, stall, metadata) + "\n")
    else:
        print_report(report, console, stall, metadata)
        if html_path is not None:
            console.print(f"wrote {html_path}")
    return report

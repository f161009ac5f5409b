"""An audit as one self-contained HTML file: styles inline, colearn's two plots embedded
as PNG data URIs (:mod:`agents.audit.report` draws them).

Read from the top: the verdict, a banner if the experiment is stalled, the plots, then the
configuration (with the metadata's content), the rounds and the checks."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from agents.audit.checks import AuditReport
from agents.audit.metadata import Metadata
from agents.audit.report import (
    joining_line,
    money_line,
    score_text,
    scores_png,
    terms_line,
    utc_time,
    votes_png,
)
from agents.audit.stall import Stall

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 7px;vertical-align:top;text-align:left}
th{background:#f4f4f4}code,.mono{font-family:ui-monospace,monospace;font-size:12px}
.ok{background:#e5f5e0;border:1px solid #76b041;padding:8px 12px}
.bad{background:#fde8e4;border:1px solid #e4572e;padding:8px 12px}
.stalled{background:#fff4d6;border:1px solid #c99a00;padding:8px 12px}
pre.metadata{margin:0;white-space:pre-wrap;max-width:60em}
.accepted{color:#1f6f3b;font-weight:600}.rejected{color:#8b1e3f;font-weight:600}
.expired{color:#8a6d00;font-weight:600}.plot{max-width:100%;border:1px solid #eee}
details summary{cursor:pointer}
.hash{word-break:break-all;display:inline-block;max-width:17em}
table.inner{margin:0;font-size:12px}table.inner td{border:0;border-bottom:1px solid #eee}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<img class="plot" alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def render_html(report: AuditReport, stall: Stall | None = None,
                metadata: Metadata | None = None) -> str:
    """One self-contained HTML page: verdict, stall, plots, configuration, rounds, checks."""
    h = report.history
    cfg = h.config
    out = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
           f"<title>Audit of experiment {cfg.experiment_id}</title><style>{_CSS}</style>",
           "</head><body>",
           (f"<h1>Audit of experiment {cfg.experiment_id} — contract <code>{_e(h.contract)}"
            f"</code>, chain {h.chain_id}</h1>")]
    if report.ok:
        out.append("<p class='ok' id='verdict'><b>Audit passed</b>: every check holds.</p>")
    else:
        out.append(f"<div class='bad' id='verdict'><b>Audit failed</b>: "
                   f"{len(report.violations)} violation(s)<ul>")
        out += [f"<li><code>{_e(v.code)}</code>"
                f"{'' if v.round is None else f' round {v.round}'}: {_e(v.message)}</li>"
                for v in report.violations]
        out.append("</ul></div>")
    if stall is not None:
        out.append(f"<p class='stalled' id='stalled'><b>Stalled</b>: {_e(stall.line())} "
                   f"(anyone may call <code>{_e(stall.action)}</code> to move it on; a stall "
                   "breaks no rule of the protocol).</p>")
    if h.closed_rounds:
        out.append("<section id='plots'><h2>Plots (from the chain's vote scores)</h2>")
        out.append(_img(scores_png(h, metadata), "vote score per learner per round"))
        out.append("<br>" + _img(votes_png(h), "vote grid") + "</section>")
    if metadata is None:
        metadata = Metadata(cid=cfg.metadata_cid, note="not fetched: no --store")
    out.append("<h2>Configuration (ExperimentCreated)</h2><table id='config'>")
    for label, value in (
            ("creator", cfg.creator),
            ("created", f"block {cfg.block_number}, {utc_time(cfg.timestamp)} UTC, tx {cfg.tx_hash}"),
            ("threshold", f"{cfg.threshold_bps} bps"), ("rounds", cfg.num_rounds),
            ("proposal timeout", f"{cfg.proposal_timeout} s"),
            ("voting timeout", f"{cfg.voting_timeout} s"),
            ("join timeout", f"{cfg.join_timeout} s"),
            ("joining", joining_line(h)),
            ("terms", terms_line(h)),
            ("stake and payouts", money_line(h) or "-"),
            ("initial model", f"{cfg.initial_cid} ({cfg.initial_digest})"),
            ("metadata", metadata),
            ("learners", "<br>".join(f"{i}: {a}" for i, a in enumerate(cfg.learners))),
            ("final model", "-" if h.completion is None else
             f"{h.completion.model_digest} (model round {h.completion.model_round}), block "
             f"{h.completion.block_number}")):
        rendered = (value if label == "learners" else _metadata_cell(value)
                    if isinstance(value, Metadata) else _e(value))
        out.append(f"<tr><th>{label}</th><td class='mono'>{rendered}</td></tr>")
    out.append("</table>")
    out.append("<h2>Rounds</h2><table id='rounds'><tr><th>round</th><th>proposer</th>"
               "<th>proposal (CID, digest)</th><th>outcome</th><th>approve / reject</th>"
               "<th>votes</th><th>transactions (block, time UTC, role, hash, sender, gas)</th>"
               "<th>gas</th></tr>")
    for r in h.rounds:
        p = r.proposal
        proposal = "-" if p is None else (f"<span class='hash'>{_e(p.cid)}</span><br>"
                                          f"<span class='hash'>{_e(p.digest)}</span>")
        votes = "".join(f"<tr><td>{v.learner_index}</td><td>{'approve' if v.approve else 'reject'}"
                        f"</td><td>{_e(score_text(v.vote_score))}</td><td>{_e(v.score)}</td>"
                        f"<td>{_e(v.tx_hash)}</td></tr>" for v in r.votes)
        votes_cell = "-" if not r.votes else (
            f"<details><summary>{len(r.votes)} votes</summary><table><tr><th>learner</th>"
            f"<th>vote</th><th>score</th><th>fixed point</th><th>tx</th></tr>{votes}</table>"
            "</details>")
        txs = "".join(f"<tr><td>{t.block_number}</td><td>{utc_time(t.timestamp)}</td><td>{t.role}"
                      f"{' (decides)' if t.decides else ''}</td><td><span class='hash'>{_e(t.hash)}"
                      f"</span></td><td><span class='hash'>{_e(t.sender)}</span></td><td>"
                      f"{t.gas_used:,}</td></tr>"
                      for t in r.txs)
        txs = f"<table class='inner'>{txs}</table>"
        tally = f"{r.decision.approvals} / {r.decision.rejections}" if r.decision else "-"
        out.append(f"<tr class='round'><td>{r.round}</td><td class='mono'><span class='hash'>"
                   f"{r.proposer_index}: {_e(r.proposer)}</span></td><td class='mono'>{proposal}</td><td class="
                   f"'{r.outcome}'>{r.outcome}</td><td>{tally}</td><td>{votes_cell}</td>"
                   f"<td class='mono'>{txs}</td><td>{r.gas:,}</td></tr>")
    out.append("</table><h2>Checks</h2><table id='checks'><tr><th>check</th><th>checked</th>"
               "<th>violations</th><th>what it verifies</th></tr>")
    out += [f"<tr><td><code>{s.code}</code></td><td>{s.checked}</td><td>{s.violations}</td>"
            f"<td>{_e(s.description)}</td></tr>" for s in report.checks]
    out.append("</table>")
    if report.off_chain_fields:
        out.append(f"<p>Not on chain, not compared: {_e(', '.join(report.off_chain_fields))}</p>")
    s = h.stats
    out.append(f"<p class='mono'>Read {s.logs:,} logs in {s.log_queries} eth_getLogs (blocks "
               f"{s.from_block}–{s.to_block}), {s.blocks:,} block headers and {s.receipts:,} "
               f"receipts; total gas {h.total_gas:,}.</p></body></html>")
    return "\n".join(out)


def _metadata_cell(metadata: Metadata) -> str:
    if metadata.fetched and metadata.cid:
        return (f"<pre class='metadata' id='metadata'>{_e(metadata.text())}</pre>"
                f"<span class='hash'>CID {_e(metadata.cid)}</span>")
    return f"<span id='metadata'>{_e(metadata.text())}</span>"


def write_html(report: AuditReport, path: Path, stall: Stall | None = None,
               metadata: Metadata | None = None) -> Path:
    path.write_text(render_html(report, stall, metadata), encoding="utf-8")
    return path

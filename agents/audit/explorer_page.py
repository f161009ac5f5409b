"""The explorer's one page: HTML, CSS and JavaScript inline, no external assets (the page
works offline). It polls the explorer's JSON and redraws what changed.

An experiment reads from the top: its verdict and, if it is stalled, since when and why;
the plots (scores, vote grid); then the configuration with the metadata's content, stake
and payouts, joining, and the long table of rounds and transactions."""

from __future__ import annotations

import html
import json

_PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>colearn explorer</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f3b57;color:#fff;padding:10px 20px}
header a{color:#fff}header code{color:#cfe3f7}
main{padding:12px 20px}
h2{font-size:17px;margin:18px 0 6px}
table{border-collapse:collapse;background:#fff;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f0f0f0}
code,.mono{font-family:ui-monospace,monospace;font-size:12px}
.accepted{color:#1f6f3b;font-weight:600}.rejected{color:#8b1e3f;font-weight:600}
.expired{color:#8a6d00;font-weight:600}.voting,.open{color:#1f5f9f;font-weight:600}
.ok{color:#1f6f3b;font-weight:600}.bad{color:#b0281a;font-weight:600}
#vote-grid td{width:18px;height:18px;padding:0;border:1px solid #ccc}
#vote-grid th{font-weight:normal;font-size:11px;padding:0 3px}
.legend span{display:inline-block;width:12px;height:12px;border:1px solid #999;
 margin:0 4px 0 12px;vertical-align:middle}
#status{font-size:12px;color:#cfe3f7}
.cols{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
img.plot{max-width:100%;border:1px solid #ddd;background:#fff}
#stalled{background:#fff4d6;border:1px solid #c99a00;padding:8px 12px;margin:8px 0}
.stalled{color:#8a6d00;font-weight:600}
pre.metadata{margin:0;white-space:pre-wrap;max-width:48em}
</style></head>
<body>
<header><b>colearn explorer</b> · contract <code id="contract">__CONTRACT__</code>
 · chain <span id="chain">?</span> · block <span id="latest">?</span>
 · <span id="status">loading…</span></header>
<main>
<section id="list-view">
<h2>Experiments</h2>
<table id="experiments"><thead><tr><th>id</th><th>learners</th><th>threshold</th>
<th>rounds closed</th><th>accepted</th><th>state</th><th>audit</th><th>created</th></tr></thead>
<tbody></tbody></table>
</section>
<section id="experiment-view" hidden>
<p><a href="#">← all experiments</a></p>
<h2 id="experiment-title">Experiment</h2>
<div id="audit"></div><ul id="violations"></ul>
<p id="stalled" hidden></p>
<section id="plots">
<h2>Scores</h2>
<p id="no-plot">No round closed yet: nothing to plot.</p>
<img id="scores-plot" class="plot" alt="vote score per learner per round" hidden>
<h2>Vote grid</h2>
<div id="grid-legend" class="legend"></div>
<table id="vote-grid"><tbody></tbody></table>
</section>
<h2>Configuration</h2>
<table id="config"><tbody></tbody></table>
<section id="money" hidden>
<h2>Stake and payouts</h2>
<p id="money-summary"></p>
<table id="accounts"><thead><tr><th>account</th><th>deposited</th><th>penalties</th>
<th>accepted proposals</th><th>counted votes</th><th>owed</th><th>withdrawn</th></tr></thead>
<tbody></tbody></table>
</section>
<h2>Joining</h2>
<p id="joining"></p>
<table id="joins"><thead><tr><th>learner</th><th>joined (UTC)</th><th>block</th>
<th>transaction</th><th>gas</th></tr></thead><tbody></tbody></table>
<h2>Rounds</h2>
<table id="rounds"><thead><tr><th>round</th><th>proposer</th><th>decision</th>
<th>approve / reject</th><th>proposal</th><th>penalties</th><th>transactions</th><th>closed in block</th>
<th>closed (UTC)</th><th>gas</th></tr></thead><tbody></tbody></table>
</section>
</main>
<script>
const POLL_MS = __POLL_MS__;
let info = null, shownVersion = null, shownId = null;

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c));
  return node;
};
const short = (s, head = 10, tail = 4) =>
  !s ? "-" : s.length <= head + tail + 1 ? s : s.slice(0, head) + "…" + s.slice(-tail);
const utc = ts => ts ? new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) : "-";
const txUrl = h => info && info.explorer_url ? `${info.explorer_url}/tx/${h}` : `/tx/${h}`;
const blockUrl = n => info && info.explorer_url ? `${info.explorer_url}/block/${n}` : `/block/${n}`;
const txLink = (h, label) => el("a", {href: txUrl(h), class: "mono tx-link", target: "_blank"},
                                label || short(h, 10, 6));
const blockLink = n => el("a", {href: blockUrl(n), class: "block-link", target: "_blank"},
                          String(n));
async function getJSON(path) {
  const response = await fetch(path, {cache: "no-store"});
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

let shownList = null;
function renderList(experiments) {
  const key = JSON.stringify(experiments);
  if (key === shownList) return;  // redraw only what changed
  shownList = key;
  const body = document.querySelector("#experiments tbody");
  body.replaceChildren(...experiments.map(e => el("tr", {class: "experiment", "data-id": e.id},
    el("td", {}, el("a", {href: `#experiment=${e.id}`}, `experiment ${e.id}`)),
    el("td", {}, String(e.learners)), el("td", {}, `${e.threshold_bps} bps`),
    el("td", {}, `${e.closed_rounds} / ${e.num_rounds}`), el("td", {}, String(e.accepted_rounds)),
    el("td", {class: e.stalled ? "stalled" : ""}, e.state.replaceAll("_", " ") +
      (e.stalled ? ` · stalled since ${utc(e.stalled.since)}` : "")),
    el("td", {class: e.ok ? "ok" : "bad"}, e.ok ? "passes" : `${e.violations} violation(s)`),
    el("td", {}, blockLink(e.created_block)))));
}

function renderExperiment(x) {
  document.getElementById("experiment-title").textContent =
    `Experiment ${x.id} · ${x.closed_rounds} of ${x.num_rounds} rounds closed · ${x.state.replaceAll("_", " ")}`;
  const c = x.config;
  const rows = [["creator", c.creator], ["created", [blockLink(c.block_number), " · ", txLink(c.tx_hash)]],
    ["learners", c.learners.map((a, i) => `${i}: ${a}`).join("\n")],
    ["threshold", `${c.threshold_bps} bps`], ["rounds", String(c.num_rounds)],
    ["timeouts", `${c.join_timeout} s to join, ${c.proposal_timeout} s to propose, ${c.voting_timeout} s to vote`],
    ["initial model", `${c.initial_cid}\n${c.initial_digest}`],
    ["metadata", x.metadata.note === null && x.metadata.cid
      ? [el("pre", {class: "metadata", id: "metadata"}, x.metadata.text), `CID ${x.metadata.cid}`]
      : [el("span", {id: "metadata"}, x.metadata.text)]],
    ["votes", c.sealed ? `sealed: commit within ${c.voting_timeout} s, reveal within ${c.options.reveal_timeout} s more` : "public"],
    ...(c.staked ? [
      ["stake", `${c.options.stake} per learner in ${BigInt(c.options.token) === 0n ? "ETH (wei)" : "token " + c.options.token}`],
      ["reward pool", c.options.reward_pool],
      ["penalties", `missed proposal ${c.options.missed_proposal_penalty}, unrevealed vote ${c.options.unrevealed_vote_penalty}, rejected proposal ${c.options.rejected_proposal_penalty} (when ${c.options.rejection_share_bps} bps of the voters reject)`],
      ["pool shares", `${c.options.proposer_share_bps} bps to proposers of accepted rounds, the rest to counted votes`]]
      : [["stake", "none"]]),
    ["current model", x.view ? `${x.view.model_digest} (model round ${x.view.model_round})` : "-"],
    ["total gas", x.total_gas.toLocaleString("en")]];
  document.querySelector("#config tbody").replaceChildren(...rows.map(([k, v]) =>
    el("tr", {}, el("th", {}, k), el("td", {class: "mono", style: "white-space:pre"},
                                     ...(Array.isArray(v) ? v : [v])))));
  const audit = document.getElementById("audit");
  audit.className = x.ok ? "ok" : "bad";
  audit.textContent = x.ok ? `Audit passes: ${x.checks.length} checks hold`
                           : `Audit: ${x.violations.length} violation(s)`;
  document.getElementById("violations").replaceChildren(...x.violations.map(v =>
    el("li", {}, el("code", {}, v.code), v.round === null ? ": " : ` round ${v.round}: `, v.message)));
  const stalled = document.getElementById("stalled");
  stalled.hidden = !x.stalled;
  if (x.stalled) stalled.replaceChildren(el("b", {}, "Stalled: "), x.stalled.line,
    ` (anyone may call ${x.stalled.action} to move it on)`);

  const m = x.money;
  document.getElementById("money").hidden = !m;
  if (m) {
    document.getElementById("money-summary").textContent =
      `pool ${m.pool} (reward pool ${m.reward_pool} + penalties ${m.penalties}): ` +
      `${m.proposer_part} to ${m.proposer_shares} accepted proposal(s), ${m.voter_part} to ${m.voter_shares} counted vote(s); ` +
      `deposited ${m.deposited}, withdrawn ${m.withdrawn}; ` +
      (m.finished ? `${m.finished}: withdrawals open` : "owed amounts so far (withdrawals open at the end)");
    document.querySelector("#accounts tbody").replaceChildren(...m.accounts.map(a => el("tr", {},
      el("td", {class: "mono"}, `${a.address}${a.creator ? " (creator)" : ""}${a.learner ? "" : " (not a learner)"}`),
      el("td", {}, a.deposited), el("td", {}, a.penalties), el("td", {}, String(a.proposer_shares)),
      el("td", {}, String(a.voter_shares)), el("td", {}, a.owed),
      el("td", {class: a.withdrawals ? "ok" : ""}, a.withdrawals ? a.withdrawn : "-"))));
  }

  const when = t => new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19);
  document.getElementById("joining").textContent = x.cancellation
    ? `Cancelled at ${when(x.cancellation.timestamp)} (block ${x.cancellation.block_number}): ${x.joins.length} of ${c.learners.length} learners joined before the join deadline ${when(c.timestamp + c.join_timeout)}`
    : x.start ? `Started at ${when(x.start.timestamp)} (block ${x.start.block_number}), when the last of ${c.learners.length} learners joined`
    : `Joining: ${x.joins.length} of ${c.learners.length} learners joined; join deadline ${when(c.timestamp + c.join_timeout)}`;
  document.querySelector("#joins tbody").replaceChildren(...x.joins.map(j => el("tr", {},
    el("td", {class: "mono"}, `${j.learner_index}: ${j.learner}${j.relayed ? " (signed, relayed)" : ""}${j.started ? " · started round 0" : ""}`),
    el("td", {}, when(j.timestamp)), el("td", {}, blockLink(j.block_number)),
    el("td", {}, txLink(j.tx_hash)), el("td", {}, j.gas.toLocaleString("en")))));

  document.querySelector("#rounds tbody").replaceChildren(...x.rounds.map(r => {
    const txs = el("td", {});
    r.txs.forEach((t, i) => {
      if (i) txs.append(el("br"));
      txs.append(txLink(t.hash), ` ${t.role}${t.decides ? " (decides)" : ""} · ${t.gas_used.toLocaleString("en")}`);
    });
    return el("tr", {class: "round", "data-round": r.round},
      el("td", {}, String(r.round)), el("td", {class: "mono"}, `${r.proposer_index} ${short(r.proposer)}`),
      el("td", {class: r.outcome}, r.outcome),
      el("td", {}, r.approvals === null ? "-" : `${r.approvals} / ${r.rejections}`),
      el("td", {class: "mono"}, ...(r.cid ? [short(r.cid, 12, 6), el("br"), short(r.digest, 10, 6)] : ["-"])),
      el("td", {}, r.penalties.length ? r.penalties.map(p => `${p.learner_index}: ${p.reason.replaceAll("_", " ")} ${p.amount}`).join("; ") : "-"),
      txs, el("td", {}, r.close_block === null ? "-" : blockLink(r.close_block)),
      el("td", {}, utc(r.closed_at)), el("td", {}, r.gas.toLocaleString("en")));
  }));

  const g = x.grid;
  document.getElementById("grid-legend").replaceChildren(...g.labels.flatMap((label, i) =>
    [el("span", {style: `background:${g.colours[i]}`}), label]));
  const head = el("tr", {}, el("th", {}, ""), ...g.rounds.map(r => el("th", {}, String(r))));
  const scoreOf = (round, learner) => {
    const row = x.rounds.find(rr => rr.round === round);
    const v = row && row.votes.find(vv => vv.learner_index === learner);
    return v ? `${v.approve ? "approve" : "reject"}, score ${v.score === null ? "none" : v.score.toFixed(4)}` : "";
  };
  const gridRows = g.values.map((values, learner) => el("tr", {},
    el("th", {}, `learner ${learner}`),
    ...values.map((value, col) => el("td", {class: `cell v${value}`,
      style: `background:${g.colours[value]}`,
      title: `round ${g.rounds[col]}, learner ${learner}: ${g.labels[value]} ${scoreOf(g.rounds[col], learner)}`}))));
  document.querySelector("#vote-grid tbody").replaceChildren(head, ...gridRows);
  const plot = document.getElementById("scores-plot");
  plot.hidden = g.rounds.length === 0;
  document.getElementById("no-plot").hidden = g.rounds.length > 0;
  if (g.rounds.length) plot.src = `/api/experiments/${x.id}/scores.png?v=${x.version}-${x.closed_rounds}`;
}

function route() {
  const match = location.hash.match(/experiment=(\d+)/);
  return match ? Number(match[1]) : null;
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    info = await getJSON("/api/info");
    document.getElementById("chain").textContent = info.chain_id;
    document.getElementById("latest").textContent = info.latest_block;
    const id = route();
    document.getElementById("list-view").hidden = id !== null;
    document.getElementById("experiment-view").hidden = id === null;
    if (id === null) {
      renderList(await getJSON("/api/experiments"));
      shownId = null;
    } else {
      const x = await getJSON(`/api/experiments/${id}`);
      const key = `${x.version}/${x.closed_rounds}/${x.state}/${x.rounds.length}/${x.joins.length}` +
        `/${x.stalled ? x.stalled.since : "-"}/${x.metadata.note}`;
      if (shownId !== id || shownVersion !== key) renderExperiment(x);
      shownId = id; shownVersion = key;
    }
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "1";
  } catch (err) {
    status.textContent = `error: ${err.message}`;
  }
}
window.addEventListener("hashchange", () => { shownVersion = shownList = null; refresh(); });
refresh();
setInterval(refresh, POLL_MS);
</script>
</body></html>
"""


def render_page(contract: str, poll_seconds: float) -> str:
    """The page, with the contract's address and the polling period filled in."""
    return (_PAGE.replace("__CONTRACT__", html.escape(contract))
            .replace("__POLL_MS__", json.dumps(max(200, int(poll_seconds * 1000)))))

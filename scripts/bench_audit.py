"""Benchmark of ``colearn audit``: build a long experiment on anvil, then time its audit.

    .venv/bin/python scripts/bench_audit.py                      # 1,000 rounds x 20 learners
    .venv/bin/python scripts/bench_audit.py --rounds 50 --learners 5 --json

The experiment is built quickly with relayed votes: each round is one proposal and one
``castVotesBySig`` batch of the n - 1 learners' signed votes (2 transactions), with some
variety: every 10th proposal is relayed (``proposeBySig``), every 50th round expires and
every 50th is decided after its voting deadline with half the votes. Every proposal's
weights are real (a tiny safetensors blob in a file store), so the audit with ``--store``
checks real digests and loads the final model.

The audit is timed as ``colearn audit`` runs it (a fresh client: logs in block ranges,
headers and receipts in batches, then the checks), without and with the store, and the
terminal and HTML renderings on their own. It starts (and stops) its own anvil unless
``--rpc`` names a dev chain whose first account can fund the learners.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from agents.audit.checks import audit_history
from agents.audit.reader import read_history
from agents.audit.report import print_report
from agents.audit.report_html import render_html
from agents.chain.client import CollectiveLearningClient
from agents.chain.network import advance_time, connect, derive_accounts, fund_accounts
from agents.chain.signing import sign_join, sign_proposal, sign_vote
from agents.chain.types import score_to_fixed
from agents.devtools.anvil import AnvilProcess
from agents.experiment.launch import launch_experiment
from agents.experiment.spec import ExperimentTerms
from agents.storage.store import FileWeightStore
from colearn_core.codec import encode_weights

TIMEOUT = 600  # proposal and voting timeouts (seconds)


def build(rpc: str, n_learners: int, n_rounds: int, store: FileWeightStore, seed: int,
          console: Console) -> dict[str, Any]:
    """Deploys the contract and runs the whole experiment; returns where it is."""
    rng = random.Random(seed)
    w3 = connect(rpc)
    *learners, relayer = derive_accounts(n_learners + 1, seed, label="colearn-bench-audit")
    fund_accounts(w3, [a.address for a in (*learners, relayer)])
    relay, _ = CollectiveLearningClient.deploy(w3, relayer)
    clients = [relay.with_account(a) for a in learners]
    addresses = [a.address for a in learners]

    def blob(label: int) -> tuple[str, bytes]:
        data = encode_weights({"w": np.full(4, label, np.float32)})
        return store.put(data), hashlib.sha256(data).digest()

    experiment_id = launch_experiment(relay, store, ExperimentTerms(
        learners=addresses, rounds=n_rounds, proposal_timeout=TIMEOUT, voting_timeout=TIMEOUT),
        {"w": np.full(4, -1, np.float32)}).experiment_id
    chain_id = relay.chain_id
    for i, (learner, client) in enumerate(zip(learners, clients)):  # the last join starts round 0
        if i % 2:
            relay.join_by_sig(sign_join(learner, chain_id=chain_id, contract=relay.address,
                                        experiment_id=experiment_id, learner_index=i))
        else:
            client.join(experiment_id)
    started = time.perf_counter()
    for r in range(n_rounds):
        if r and r % 100 == 0:
            console.print(f"  built {r}/{n_rounds} rounds ({time.perf_counter() - started:.0f} s)",
                          style="dim")
        proposer = r % n_learners
        if r % 50 == 49:  # no proposal: expired after the deadline
            advance_time(w3, TIMEOUT + 1)
            relay.expire(experiment_id, r)
            continue
        cid, digest = blob(r)
        if r % 10 == 3:
            relay.propose_by_sig(sign_proposal(
                learners[proposer], chain_id=chain_id, contract=relay.address,
                experiment_id=experiment_id, round_index=r, cid=cid, digest=digest))
        else:
            clients[proposer].propose(experiment_id, r, cid, digest)
        voters = [j for j in range(n_learners) if j != proposer]
        late = r % 50 == 24  # half the votes, decided after the voting deadline
        if late:
            voters = voters[: len(voters) // 2]
        votes = [sign_vote(learners[j], chain_id=chain_id, contract=relay.address,
                           experiment_id=experiment_id, round_index=r, learner_index=j,
                           digest=digest, approve=rng.random() < 0.6,
                           score=score_to_fixed(rng.uniform(0.1, 0.9)))
                 for j in voters]
        relay.cast_votes_by_sig(experiment_id, r, digest, addresses, votes)
        if late:
            advance_time(w3, TIMEOUT + 1)
            relay.decide(experiment_id, r)
    return {"contract": relay.address, "experiment_id": experiment_id,
            "build_seconds": time.perf_counter() - started,
            "blocks": w3.eth.block_number}


def time_audit(rpc: str, contract: str, experiment_id: int,
               store: FileWeightStore | None) -> dict[str, Any]:
    """One audit as ``colearn audit`` runs it, from a fresh connection."""
    started = time.perf_counter()
    client = CollectiveLearningClient(connect(rpc), contract)
    client.check_deployed()
    history = read_history(client, experiment_id)
    read = time.perf_counter()
    report = audit_history(history, store=store)
    done = time.perf_counter()
    return {"report": report, "read_seconds": read - started, "check_seconds": done - read,
            "seconds": done - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--learners", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rpc", default=None, help="a dev chain (default: start anvil)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.learners < 3 or args.rounds < 1:
        parser.error("--learners must be at least 3 and --rounds at least 1")
    console = Console(stderr=args.json)
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        store = FileWeightStore(Path(tmp) / "store")
        anvil = None if args.rpc else AnvilProcess().start()
        try:
            rpc = args.rpc or anvil.url  # type: ignore[union-attr]
            console.print(f"building {args.rounds} rounds x {args.learners} learners on {rpc}")
            built = build(rpc, args.learners, args.rounds, store, args.seed, console)
            chain_only = time_audit(rpc, built["contract"], built["experiment_id"], None)
            with_store = time_audit(rpc, built["contract"], built["experiment_id"], store)
        finally:
            if anvil is not None:
                anvil.stop()
        report = with_store["report"]
        started = time.perf_counter()
        print_report(report, Console(file=open("/dev/null", "w"), width=200))  # noqa: SIM115
        terminal_seconds = time.perf_counter() - started
        started = time.perf_counter()
        page = render_html(report)
        html_seconds = time.perf_counter() - started
    h = report.history
    figures = {
        "rounds": args.rounds, "learners": args.learners, "blocks": built["blocks"],
        "build_seconds": round(built["build_seconds"], 2),
        "logs": h.stats.logs, "log_queries": h.stats.log_queries, "block_headers": h.stats.blocks,
        "receipts": h.stats.receipts, "batches": h.stats.batches,
        "audit_seconds": round(chain_only["seconds"], 3),
        "audit_read_seconds": round(chain_only["read_seconds"], 3),
        "audit_check_seconds": round(chain_only["check_seconds"], 3),
        "audit_with_store_seconds": round(with_store["seconds"], 3),
        "terminal_render_seconds": round(terminal_seconds, 3),
        "html_render_seconds": round(html_seconds, 3), "html_bytes": len(page),
        "ok": chain_only["report"].ok and report.ok,
        "violations": [v.model_dump() for v in report.violations],
    }
    if args.json:
        sys.stdout.write(json.dumps(figures, indent=2) + "\n")
    else:
        console.print(
            f"audit of {args.rounds} rounds x {args.learners} learners ({h.stats.logs:,} logs, "
            f"{h.stats.receipts:,} receipts, {built['blocks']:,} blocks): "
            f"[bold]{figures['audit_seconds']} s[/] (read {figures['audit_read_seconds']} s, "
            f"checks {figures['audit_check_seconds']} s); with --store "
            f"{figures['audit_with_store_seconds']} s; terminal table "
            f"{figures['terminal_render_seconds']} s, HTML {figures['html_render_seconds']} s; "
            f"built in {figures['build_seconds']} s; "
            + ("[green]clean[/]" if figures["ok"] else "[red]violations[/]"))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

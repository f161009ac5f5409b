"""``colearn audit``: an experiment rebuilt from the chain alone, every rule checked."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from agents.cli import options
from agents.cli.options import Subcommands

#: The exit status of an audit that found violations.
EXIT_VIOLATIONS = 3


def register(subcommands: Subcommands) -> None:
    parser = options.add_command(
        subcommands, "audit", run,
        help="rebuild an experiment from the chain alone and check every rule "
             f"(exit 0 only if all hold, {EXIT_VIOLATIONS} on violations)")
    options.add_contract_options(parser, experiment=True)
    parser.add_argument("--store", metavar="URL", default=None,
                        help="weight store: also check every proposal's weights and the final "
                             "model (file:DIR or an IPFS RPC URL)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--html", type=Path, metavar="FILE", default=None,
                        help="also write a self-contained HTML report (plots embedded)")
    parser.add_argument("--compare", type=Path, metavar="RESULTS_JSON", default=None,
                        help="a results file to compare with the chain (the audit ignores it "
                             "otherwise; rows that differ are violations)")
    parser.add_argument("--from-block", type=options.block_number, default=0, metavar="N",
                        help="first block to read logs from (default 0)")
    parser.add_argument("--chunk-blocks", type=options.bounded_int("a block count", 1, 2**64 - 1),
                        default=None, metavar="N",
                        help="blocks per eth_getLogs (default 10000; halved when refused)")


def run(args: argparse.Namespace, console: Console) -> int:
    """Rebuild an experiment from the chain's logs alone (no agent's word taken) and check
    every rule: the schedule, each vote, each decision, the model chain; with --store, every
    proposal's weights and the final model too. Exits 0 only if all hold, 3 on violations;
    says when a running experiment is stalled.

    examples:
      colearn audit --rpc http://127.0.0.1:8545 --contract 0x5FbDB2315678afecb367f032d93F642f64180aa3 --experiment 1
      colearn audit --rpc http://127.0.0.1:8545 --contract 0x5FbDB2315678afecb367f032d93F642f64180aa3 --experiment 1 --store http://127.0.0.1:5001 --html audit.html
    """
    from agents.audit.report import run_audit

    report = run_audit(args.rpc, args.contract, args.experiment, console=console,
                       store_url=args.store, as_json=args.json, html_path=args.html,
                       compare=args.compare, from_block=args.from_block,
                       chunk_blocks=args.chunk_blocks)
    return 0 if report.ok else EXIT_VIOLATIONS

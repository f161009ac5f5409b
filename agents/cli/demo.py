"""``colearn demo``: a whole experiment locally with N agents."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from agents.cli import options
from agents.cli.options import Subcommands


def register(subcommands: Subcommands) -> None:
    parser = options.add_command(
        subcommands, "demo", run, help="run a whole experiment locally with N agents")
    parser.add_argument("--learners", type=int, default=5, help="number of learners (default 5)")
    parser.add_argument("--rounds", type=int, default=15, help="number of rounds (default 15)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="fraction of voters that must approve (default 0.5)")
    parser.add_argument("--model", default="mlp", choices=["mlp"], help="model (digits MLP)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data split and training")
    parser.add_argument("--chain", metavar="URL", default=None,
                        help="JSON-RPC URL of a dev chain such as anvil (default: in-process "
                             "EVM)")
    parser.add_argument("--store", metavar="URL", default=None,
                        help="weight store URL (default: file:OUT/store)")
    parser.add_argument("--out", type=Path, default=Path("demo-out"),
                        help="directory for results.json and plots (default demo-out)")
    parser.add_argument("--processes", action="store_true",
                        help="start anvil (and an IPFS daemon if installed) and run each agent "
                             "as its own OS process")
    parser.add_argument("--sealed", action="store_true",
                        help="sealed votes: each voter commits to its vote, then reveals it "
                             "(PROTOCOL v2), so no voter sees another's vote before its own")


def run(args: argparse.Namespace, console: Console) -> None:
    """Run a whole experiment locally: N digits learners, one agent each, the contract on an
    in-process EVM (or --chain, or anvil with --processes), weights in a file store (or
    --store). Writes results.json and plots to --out and prints each round's decision.

    examples:
      colearn demo                          # 5 learners, 15 rounds, in this process
      colearn demo --learners 3 --rounds 5 --sealed
      colearn demo --processes              # anvil, and one OS process per agent
      colearn demo --chain http://127.0.0.1:8545 --out demo-anvil
    """
    from agents.demo.embedded import DemoConfig, run_demo

    config = DemoConfig(
        n_learners=args.learners, n_rounds=args.rounds, vote_threshold=args.threshold,
        model=args.model, seed=args.seed, chain_url=args.chain, store_url=args.store,
        out=args.out, sealed=args.sealed)
    if args.processes:
        from agents.demo.processes import run_process_demo

        run_process_demo(config, console)
    else:
        run_demo(config, console)

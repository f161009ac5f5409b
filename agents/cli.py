"""The ``colearn`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler

from agents.agent import AgentError
from agents.chain import ChainError
from agents.weight_store import WeightStoreError

# Errors a user can cause (bad input, unreachable services): one line, non-zero exit.
_USER_ERRORS = (ChainError, WeightStoreError, AgentError, ValidationError, OSError, ValueError)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colearn", description="Collective learning on Ethereum.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log agent activity (-v) or everything (-vv)")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run a whole experiment locally with N agents")
    demo.add_argument("--learners", type=int, default=5, help="number of learners (default 5)")
    demo.add_argument("--rounds", type=int, default=15, help="number of rounds (default 15)")
    demo.add_argument("--threshold", type=float, default=0.5,
                      help="fraction of voters that must approve (default 0.5)")
    demo.add_argument("--model", default="mlp", choices=["mlp"], help="model (digits MLP)")
    demo.add_argument("--seed", type=int, default=0, help="seed of data split and training")
    demo.add_argument("--chain", metavar="URL", default=None,
                      help="JSON-RPC URL of a dev chain such as anvil (default: in-process EVM)")
    demo.add_argument("--store", metavar="URL", default=None,
                      help="weight store URL (default: file:OUT/store)")
    demo.add_argument("--out", type=Path, default=Path("demo-out"),
                      help="directory for results.json and plots (default demo-out)")
    return parser


def _configure_logging(verbosity: int, console: Console) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(name)s: %(message)s", datefmt="[%X]",
                        handlers=[RichHandler(console=console, show_path=False)])
    if verbosity < 2:
        for noisy in ("web3", "eth", "urllib3", "matplotlib", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    console = Console()
    _configure_logging(args.verbose, console)
    try:
        if args.command == "demo":
            from agents.demo import DemoConfig, run_demo

            run_demo(DemoConfig(
                n_learners=args.learners, n_rounds=args.rounds, vote_threshold=args.threshold,
                model=args.model, seed=args.seed, chain_url=args.chain, store_url=args.store,
                out=args.out), console)
        return 0
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        console.print(f"[red]error:[/] invalid options: {problems}")
        return 2
    except _USER_ERRORS as exc:
        console.print(f"[red]error:[/] {exc}")
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())

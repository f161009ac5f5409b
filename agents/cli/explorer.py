"""``colearn explorer``: a local read-only web page of the contract's experiments."""

from __future__ import annotations

import argparse

from rich.console import Console

from agents.cli import options
from agents.cli.options import Subcommands


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "explorer", help="a local read-only web page of the contract's experiments")
    options.add_contract_options(parser)
    parser.add_argument("--port", type=options.port, default=8700,
                        help="port on 127.0.0.1 (default 8700; 0: any free)")
    parser.add_argument("--explorer-url", metavar="URL", default=None,
                        help="link transactions and blocks to this block explorer (e.g. "
                             "https://etherscan.io); default: the page's own JSON views")
    parser.add_argument("--poll", type=options.seconds(options.MIN_POLL_SECONDS), default=2.0,
                        help="seconds between the page's refreshes (default 2)")
    options.add_from_block(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> None:
    from agents.audit.explorer import run_explorer

    run_explorer(args.rpc, args.contract, port=args.port, explorer_url=args.explorer_url,
                 poll=args.poll, console=console, from_block=args.from_block)

"""``colearn explorer``: a local read-only web page of the contract's experiments."""

from __future__ import annotations

import argparse

from rich.console import Console

from agents.cli import options
from agents.cli.options import Subcommands


def register(subcommands: Subcommands) -> None:
    parser = options.add_command(
        subcommands, "explorer", run,
        help="a local read-only web page of the contract's experiments")
    options.add_contract_options(parser)
    parser.add_argument("--port", type=options.port, default=8700,
                        help="port on 127.0.0.1 (default 8700; 0: any free)")
    parser.add_argument("--explorer-url", metavar="URL", default=None,
                        help="link transactions and blocks to this block explorer (e.g. "
                             "https://etherscan.io); default: the page's own JSON views")
    parser.add_argument("--poll", type=options.seconds(options.MIN_POLL_SECONDS), default=2.0,
                        help="seconds between the page's refreshes (default 2)")
    parser.add_argument("--store", metavar="URL", default=None,
                        help="weight store the experiments' metadata is fetched from and "
                             "shown (file:DIR or an IPFS RPC URL); default: its CID only")
    options.add_from_block(parser)


def run(args: argparse.Namespace, console: Console) -> None:
    """Serve a read-only web page on 127.0.0.1 of the contract's experiments (rounds, votes,
    plots, transactions), refreshed as the chain moves, until Ctrl-C. It reads the chain
    only: it needs no key.

    examples:
      colearn explorer --rpc http://127.0.0.1:8545 --contract 0x5FbDB2315678afecb367f032d93F642f64180aa3
      colearn explorer --rpc https://rpc.example.org --contract 0x5FbDB2315678afecb367f032d93F642f64180aa3 --explorer-url https://etherscan.io --port 0
    """
    from agents.audit.explorer import run_explorer

    run_explorer(args.rpc, args.contract, port=args.port, explorer_url=args.explorer_url,
                 poll=args.poll, console=console, from_block=args.from_block,
                 store_url=args.store)

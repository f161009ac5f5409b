"""``colearn chain`` and ``colearn deploy``: a local dev chain and the contract on it."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from agents.cli import options
from agents.cli.options import Subcommands


def add_anvil_option(parser: argparse.ArgumentParser) -> None:
    """``--anvil PATH``: the anvil binary to run."""
    parser.add_argument("--anvil", type=Path, default=None, metavar="PATH",
                        help="the anvil binary (default: node_modules/.bin/anvil in a "
                             "checkout, else anvil on PATH)")


def register(subcommands: Subcommands) -> None:
    chain = subcommands.add_parser("chain", help="run a local anvil chain until Ctrl-C")
    chain.add_argument("--port", type=options.port, default=8545)
    add_anvil_option(chain)
    chain.add_argument("--block-time", type=options.seconds(options.MIN_POLL_SECONDS),
                       default=1.0,
                       help="seconds between empty blocks, so deadlines pass (default 1)")
    chain.set_defaults(run=run_chain)

    deploy = subcommands.add_parser("deploy", help="deploy the contract; prints its address")
    deploy.add_argument("--rpc", required=True, metavar="URL")
    options.add_key_options(deploy)
    deploy.set_defaults(run=run_deploy)


def run_chain(args: argparse.Namespace, console: Console) -> None:
    from agents.devtools.anvil import run_chain_forever

    run_chain_forever(args.port, args.block_time, console, args.anvil)


def run_deploy(args: argparse.Namespace, console: Console) -> None:
    from agents.chain.client import CollectiveLearningClient
    from agents.chain.keys import load_account
    from agents.chain.network import connect

    account = load_account(args.keystore, args.password_file)
    client, _ = CollectiveLearningClient.deploy(connect(args.rpc), account)
    console.print(client.address)

"""``colearn chain`` and ``colearn deploy``: a local dev chain and the contract on it."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from agents.cli import options, texts
from agents.cli.options import Subcommands


def add_anvil_option(parser: argparse.ArgumentParser) -> None:
    """``--anvil PATH``: the anvil binary to run."""
    parser.add_argument("--anvil", type=Path, default=None, metavar="PATH",
                        help="the anvil binary (default: node_modules/.bin/anvil in a "
                             "checkout, else anvil on PATH)")


def register(subcommands: Subcommands) -> None:
    chain = options.add_command(
        subcommands, "chain", run_chain, help="run a local anvil chain until Ctrl-C")
    chain.add_argument("--port", type=options.port, default=8545,
                       help="port on 127.0.0.1 (default 8545)")
    add_anvil_option(chain)
    chain.add_argument("--block-time", type=options.seconds(options.MIN_POLL_SECONDS),
                       default=1.0,
                       help="seconds between empty blocks, so deadlines pass (default 1)")

    deploy = options.add_command(
        subcommands, "deploy", run_deploy, help="deploy the contract; prints its address")
    deploy.add_argument("--rpc", required=True, metavar="URL", help=texts.RPC)
    options.add_key_options(deploy)


def run_chain(args: argparse.Namespace, console: Console) -> None:
    """Run anvil (chain id 31337) on 127.0.0.1 until Ctrl-C, mining a block every --block-time
    seconds so deadlines pass; prints its URL and its funded dev accounts' keys (test keys:
    never use them elsewhere).

    examples:
      colearn chain                         # http://127.0.0.1:8545
      colearn chain --port 8546 --block-time 0.5
      colearn chain --anvil ~/.foundry/bin/anvil
    """
    from agents.devtools.anvil import run_chain_forever

    run_chain_forever(args.port, args.block_time, console, args.anvil)


def run_deploy(args: argparse.Namespace, console: Console) -> None:
    """Deploy the shipped CollectiveLearning contract (see `colearn --version` for its compiler
    and bytecode hash) from your account, and print its address. The account pays the gas:
    on a dev chain, `colearn account fund` gives it test ETH.

    examples:
      colearn deploy --rpc http://127.0.0.1:8545 --keystore alice.json
      COLEARN_PRIVATE_KEY=0x... colearn deploy --rpc http://127.0.0.1:8545
    """
    from agents.chain.client import CollectiveLearningClient
    from agents.chain.keys import load_account
    from agents.chain.network import connect

    account = load_account(args.keystore, args.password_file)
    client, _ = CollectiveLearningClient.deploy(connect(args.rpc), account)
    console.print(client.address)

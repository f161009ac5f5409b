"""``colearn account new``: a learner key in an encrypted keystore; ``colearn account fund``:
test ETH for an account on a dev chain."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from agents.cli import options, texts
from agents.cli.options import Subcommands
from agents.cli.texts import examples


def _eth(text: str) -> int:
    """An argparse type: an amount of ETH, returned in wei."""
    from agents.devtools.funding import parse_eth

    try:
        return parse_eth(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subcommands: Subcommands) -> None:
    account = options.add_group(
        subcommands, "account", help="manage learner keys",
        description="A learner's key: created in an encrypted keystore (new); test ETH for "
                    "it on a dev chain (fund).",
        examples=examples("colearn account new --keystore alice.json",
                        f"colearn account fund --rpc http://127.0.0.1:8545 --to "
                        f"{texts.DEV_ADDRESS}"))
    new = account.add_parser(
        "new", help="create an account in an encrypted keystore",
        description="Create a new key in an encrypted (scrypt) keystore file and print its "
                    "address; the key itself is never shown. Refuses to overwrite a file.",
        epilog=examples("colearn account new --keystore alice.json            # asks for a "
                        "password",
                        "colearn account new --keystore bob.json --password-file pw.txt"))
    new.add_argument("--keystore", type=Path, required=True, help="file to create")
    new.add_argument("--password-file", type=Path, default=None,
                     help="file holding the keystore's password (default: $COLEARN_PASSWORD, "
                          "or a prompt asked twice)")
    new.set_defaults(run=run_new)

    fund = account.add_parser(
        "fund", help="give an account test ETH on a dev chain (anvil, Hardhat)",
        description="Add test ETH to an account's balance on a dev chain (chain id 31337: "
                    "anvil, Hardhat, `colearn chain`, `colearn dev`), so it can pay for gas. "
                    "Refused on any other chain.",
        epilog=examples(f"colearn account fund --rpc http://127.0.0.1:8545 --to "
                        f"{texts.DEV_ADDRESS} --amount 10"))
    fund.add_argument("--rpc", required=True, metavar="URL", help="the dev chain's JSON-RPC URL")
    fund.add_argument("--to", required=True, type=options.address, metavar="ADDRESS",
                      help="the account to fund")
    fund.add_argument("--amount", type=_eth, default=None, metavar="ETH",
                      help="ETH to add to its balance (default 100)")
    fund.set_defaults(run=run_fund)


def run_new(args: argparse.Namespace, console: Console) -> None:
    from agents.chain.keys import create_keystore, read_password

    console.print(create_keystore(args.keystore, read_password(args.password_file, confirm=True)))


def run_fund(args: argparse.Namespace, console: Console) -> None:
    from agents.chain.network import connect
    from agents.devtools.funding import (
        DEFAULT_FUNDING_ETH,
        WEI_PER_ETH,
        format_eth,
        fund_dev_account,
    )

    amount = args.amount if args.amount is not None else int(DEFAULT_FUNDING_ETH * WEI_PER_ETH)
    funding = fund_dev_account(connect(args.rpc), args.to, amount)
    console.print(f"{funding.address}: +{format_eth(funding.amount_wei)}, balance "
                  f"{format_eth(funding.balance_wei)}", highlight=False)

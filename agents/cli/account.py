"""A learner's key: created in an encrypted keystore (new); test ETH for it on a dev chain
(fund).

examples:
  colearn account new --keystore alice.json
  colearn account fund --rpc http://127.0.0.1:8545 --to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from agents.cli import options
from agents.cli.options import Subcommands


def _eth(text: str) -> int:
    """An argparse type: an amount of ETH, returned in wei."""
    from agents.devtools.funding import parse_eth

    try:
        return parse_eth(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subcommands: Subcommands) -> None:
    account = options.add_group(
        subcommands, "account", __doc__, help="manage learner keys")
    new = options.add_command(
        account, "new", run_new, help="create an account in an encrypted keystore")
    new.add_argument("--keystore", type=Path, required=True, help="file to create")
    new.add_argument("--password-file", type=Path, default=None,
                     help="file holding the keystore's password (default: $COLEARN_PASSWORD, "
                          "or a prompt asked twice)")

    fund = options.add_command(
        account, "fund", run_fund, help="give an account test ETH on a dev chain (anvil, Hardhat)")
    fund.add_argument("--rpc", required=True, metavar="URL", help="the dev chain's JSON-RPC URL")
    fund.add_argument("--to", required=True, type=options.address, metavar="ADDRESS",
                      help="the account to fund")
    fund.add_argument("--amount", type=_eth, default=None, metavar="ETH",
                      help="ETH to add to its balance (default 100)")


def run_new(args: argparse.Namespace, console: Console) -> None:
    """Create a new key in an encrypted (scrypt) keystore file and print its address; the key
    itself is never shown. Refuses to overwrite a file.

    examples:
      colearn account new --keystore alice.json            # asks for a password
      colearn account new --keystore bob.json --password-file pw.txt
    """
    from agents.chain.keys import create_keystore, read_password

    console.print(create_keystore(args.keystore, read_password(args.password_file, confirm=True)))


def run_fund(args: argparse.Namespace, console: Console) -> None:
    """Add test ETH to an account's balance on a dev chain (chain id 31337: anvil, Hardhat,
    `colearn chain`, `colearn dev`), so it can pay for gas. Refused on any other chain.

    examples:
      colearn account fund --rpc http://127.0.0.1:8545 --to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 --amount 10
    """
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

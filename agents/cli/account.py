"""``colearn account new``: a learner key in an encrypted keystore."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from agents.cli.options import Subcommands


def register(subcommands: Subcommands) -> None:
    account = subcommands.add_parser("account", help="manage learner keys").add_subparsers(
        dest="account_command", required=True)
    new = account.add_parser("new", help="create an account in an encrypted keystore")
    new.add_argument("--keystore", type=Path, required=True, help="file to create")
    new.add_argument("--password-file", type=Path, default=None)
    new.set_defaults(run=run_new)


def run_new(args: argparse.Namespace, console: Console) -> None:
    from agents.chain.keys import create_keystore, read_password

    console.print(create_keystore(args.keystore, read_password(args.password_file, confirm=True)))

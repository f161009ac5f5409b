"""``colearn store add|get``: weights put and fetched by CID."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from agents.cli import options
from agents.cli.options import Subcommands


def register(subcommands: Subcommands) -> None:
    store = options.add_group(subcommands, "store", help="put and get weights by CID")
    add = store.add_parser("add", help="store a file; prints its CID")
    add.add_argument("file", type=Path)
    add.add_argument("--store", required=True, metavar="URL")
    add.set_defaults(run=run_add)
    get = store.add_parser("get", help="fetch and verify a CID")
    get.add_argument("cid")
    get.add_argument("--store", required=True, metavar="URL")
    get.add_argument("-o", "--output", type=Path, required=True)
    get.set_defaults(run=run_get)


def run_add(args: argparse.Namespace, console: Console) -> None:
    from agents.storage.store import open_store

    with open_store(args.store) as store:
        console.print(store.put(args.file.read_bytes()))


def run_get(args: argparse.Namespace, console: Console) -> None:
    from agents.storage.store import open_store

    with open_store(args.store) as store:
        args.output.write_bytes(store.get(args.cid))


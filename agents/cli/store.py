"""Put a file in a weight store and get it back by its CID (the IPFS content id, computed
locally and checked against what comes back).

examples:
  colearn store add model.safetensors --store file:shared
  colearn store get bafk... --store http://127.0.0.1:5001 -o model.bin
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from agents.cli import options, texts
from agents.cli.options import Subcommands


def register(subcommands: Subcommands) -> None:
    store = options.add_group(
        subcommands, "store", __doc__, help="put and get weights by CID")
    add = options.add_command(
        store, "add", run_add, help="store a file; prints its CID")
    add.add_argument("file", type=Path, help="the file to store")
    add.add_argument("--store", required=True, metavar="URL", help=texts.STORE)
    get = options.add_command(
        store, "get", run_get, help="fetch and verify a CID")
    get.add_argument("cid", help="the content id (CIDv1 base32 bafk..., or CIDv0 Qm...)")
    get.add_argument("--store", required=True, metavar="URL", help=texts.STORE)
    get.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                     help="where to write the verified bytes")


def run_add(args: argparse.Namespace, console: Console) -> None:
    """Store a file and print its CID.

    examples:
      colearn store add initial.safetensors --store file:shared
      colearn store add initial.safetensors --store http://127.0.0.1:5001
    """
    from agents.storage.store import open_store

    with open_store(args.store) as store:
        console.print(store.put(args.file.read_bytes()))


def run_get(args: argparse.Namespace, console: Console) -> None:
    """Fetch a CID, check that the bytes are the CID's, and write them to a file (a mismatch is
    an error and nothing is written).

    examples:
      colearn store get bafk... --store file:shared -o model.safetensors
    """
    from agents.storage.store import open_store

    with open_store(args.store) as store:
        args.output.write_bytes(store.get(args.cid).data)


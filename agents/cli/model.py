"""The model an experiment trained, fetched from the store and verified against the digest
on chain (get), optionally exported to ONNX.

examples:
  colearn model get --rpc http://127.0.0.1:8545 --contract 0x5FbDB2315678afecb367f032d93F642f64180aa3 --experiment 1 --store file:store --out model.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from agents.cli import options
from agents.cli.options import Subcommands


def register(subcommands: Subcommands) -> None:
    model = options.add_group(subcommands, "model", __doc__, help="get an experiment's model")
    get = options.add_command(
        model, "get", run_get,
        help="fetch an experiment's final model (or a round's proposal), verified")
    options.add_contract_options(get, experiment=True)
    get.add_argument("--round", type=options.bounded_int("a round", 0, 2**24 - 1),
                     default=None, metavar="N",
                     help="round N's proposal, accepted or not (default: the final model)")
    get.add_argument("--store", required=True, metavar="URL|DIR",
                     help="weight store: file:DIR, a directory, or an IPFS RPC URL")
    get.add_argument("--out", required=True, type=Path, metavar="FILE",
                     help="the weights file to write (safetensors)")
    get.add_argument("--onnx", type=Path, default=None, metavar="FILE",
                     help="also export the model to this ONNX file through --learner")
    get.add_argument("--learner", type=options.factory_target, default=None,
                     metavar="MODULE:FACTORY",
                     help="with --onnx: a learner factory of the experiment's model (e.g. "
                          "colearn_core.tasks.factories:digits_learner)")
    get.add_argument("--learner-arg", action="append", default=[], type=options.factory_arg,
                     metavar="KEY=VALUE",
                     help="keyword argument for the factory (repeatable; JSON values)")
    options.add_from_block(get)


def store_url(text: str) -> str:
    """A store URL; a bare directory means ``file:DIR``."""
    return text if text.startswith(("file:", "http://", "https://")) else f"file:{text}"


def run_get(args: argparse.Namespace, console: Console) -> None:
    r"""Fetch the experiment's final model (the last accepted proposal, or the initial model if
    none was accepted; the current one while the experiment runs) or round N's proposal from
    the store, check its digest against the chain, and write it.

    examples:
      colearn model get --rpc http://127.0.0.1:8545 --contract 0x... --experiment 1 \
          --store file:store --out model.safetensors
      colearn model get ... --round 2 --out round2.safetensors       # round 2's proposal
      colearn model get ... --out model.safetensors --onnx model.onnx \
          --learner colearn_core.tasks.factories:digits_learner --learner-arg index=0

    The weights file is safetensors, as stored (colearn_core.codec): one tensor per parameter,
    named as the learner names them. Load it with safetensors (numpy, torch), or give it to
    your learner (mli_accept_weights); --onnx writes a model any ONNX runtime runs.
    """
    from agents.experiment.model import export_onnx, fetch_model, locate_model
    from agents.experiment.spec import LearnerFactory
    from agents.storage.store import open_store

    factory = None
    if args.onnx is not None:
        if args.learner is None:
            raise ValueError("--onnx needs --learner MODULE:FACTORY (the learner that "
                             "exports it)")
        factory = LearnerFactory(target=args.learner, args=dict(args.learner_arg))
        factory.resolve()  # a wrong module, name or argument: said before any fetch
    elif args.learner is not None or args.learner_arg:
        raise ValueError("--learner and --learner-arg are for --onnx")
    client = options.contract_client(args.rpc, args.contract, from_block=args.from_block)
    ref = locate_model(client, args.experiment, args.round, from_block=args.from_block)
    with open_store(store_url(args.store)) as store:
        data = fetch_model(store, ref)
    args.out.write_bytes(data)
    console.print(f"wrote {args.out}: {ref.what} of experiment {ref.experiment_id}, "
                  f"{len(data):,} bytes, CID {ref.cid}, digest {ref.digest} (verified)",
                  highlight=False, soft_wrap=True)
    if not ref.complete and args.round is None:
        console.print("[yellow]the experiment is not complete: this is its current model, "
                      "not the final one[/]", soft_wrap=True)
    if factory is not None:
        export_onnx(data, factory, args.onnx)
        console.print(f"wrote {args.onnx} (ONNX, exported by {factory.target})",
                      highlight=False, soft_wrap=True)

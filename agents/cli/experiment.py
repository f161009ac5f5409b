"""``colearn experiment create``: an experiment from a spec; prints its id."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from agents.cli import options
from agents.cli.options import Subcommands


def register(subcommands: Subcommands) -> None:
    experiment = subcommands.add_parser(
        "experiment", help="manage experiments").add_subparsers(
        dest="experiment_command", required=True)
    create = experiment.add_parser("create", help="create an experiment; prints its id")
    create.add_argument("--rpc", required=True, metavar="URL")
    create.add_argument("--contract", required=True, type=options.address, metavar="ADDR")
    create.add_argument("--spec", required=True, type=Path, help="experiment spec (TOML)")
    create.add_argument("--store", required=True, metavar="URL",
                        help="store for the initial weights and metadata")
    options.add_key_options(create)
    create.set_defaults(run=run_create)


def run_create(args: argparse.Namespace, console: Console) -> None:
    from agents.chain.keys import load_account
    from agents.experiment.launch import launch_experiment
    from agents.experiment.spec import ExperimentSpec
    from agents.storage.store import open_store

    spec = ExperimentSpec.load(args.spec)
    client = options.contract_client(args.rpc, args.contract,
                                     load_account(args.keystore, args.password_file))
    with open_store(args.store) as store:
        experiment_id = launch_experiment(client, store, spec,
                                          spec.initial_weights()).experiment_id
    console.print(experiment_id)

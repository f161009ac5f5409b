"""``colearn experiment create``: an experiment from a spec; prints its id."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from agents.cli import options
from agents.cli.options import Subcommands

#: A spec's ``[options]`` table, as ``colearn experiment create --help`` documents it.
OPTIONS_HELP = """\
The spec's optional [options] table sets sealed votes and stake (PROTOCOL.md v2); left
out, votes are public and nothing is staked. Amounts are integers in the token's smallest
unit (wei for ETH); shares are basis points (0..10000).

  [options]
  reveal_timeout = 600            # seconds to reveal after the commit deadline; 0: public votes
  token = "0x..."                 # the ERC-20 of every deposit; omitted: ETH
  stake = 1000000000000000000     # deposited by each learner when it joins
  reward_pool = 0                 # deposited by the creator at creation
  missed_proposal_penalty = 0     # taken from a proposer whose round expired
  unrevealed_vote_penalty = 0     # taken from a voter that committed and did not reveal
  rejected_proposal_penalty = 0   # taken from a proposer rejected by enough voters:
  rejection_share_bps = 10000     #   rejections * 10000 >= rejection_share_bps * (n - 1)
  proposer_share_bps = 5000       # the pool's share for proposers of accepted rounds

Penalties and shares need a stake or a reward pool; each penalty is capped at what is left
of the learner's stake. At the end each learner withdraws stake - penalties + its share of
the pool (reward pool + penalties): proposer_share_bps of it split by accepted rounds, the
rest by counted votes; a part nobody earned goes back to the creator.
"""


def register(subcommands: Subcommands) -> None:
    experiment = subcommands.add_parser(
        "experiment", help="manage experiments").add_subparsers(
        dest="experiment_command", required=True)
    create = experiment.add_parser(
        "create", help="create an experiment; prints its id",
        description="Create an experiment from a TOML spec (learners, threshold, rounds, "
                    "timeouts, initial model, metadata, [options]); prints its id.",
        epilog=OPTIONS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
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

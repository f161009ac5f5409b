"""An experiment's life: a spec to start from (init), the experiment on chain (create), and
where it stands (status).

examples:
  colearn experiment init --out experiment.toml
  colearn experiment create --rpc http://127.0.0.1:8545 --contract 0x5FbDB2315678afecb367f032d93F642f64180aa3 --spec experiment.toml --store file:store
  colearn experiment status --rpc http://127.0.0.1:8545 --contract 0x5FbDB2315678afecb367f032d93F642f64180aa3 --experiment 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from agents.cli import options
from agents.cli.options import Subcommands

#: The spec format, as ``colearn experiment create --help`` documents it.
SPEC_HELP = """\
The spec is a TOML file; `colearn experiment init` writes one with every field commented,
that runs unedited on a dev chain (`colearn chain`). Its fields:

  learners = ["0x...", ...]       # addresses, in proposer order (round r: learners[r % n])
  threshold = 0.5                 # share of the other learners that must approve
  rounds = 3
  proposal_timeout = 600          # seconds (also voting_timeout; join_timeout: 86400)
  [metadata]                      # anything (stored as JSON, its CID on chain)
  [initial]                       # the initial model: exactly one of
  weights = "initial.safetensors" #   a weights file (relative to the spec), or
  [initial.factory]               #   a learner factory's current weights:
  target = "colearn_core.tasks.factories:digits_learner"
  args = { index = 0, n_learners = 3 }   # its keyword arguments

"""
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
    experiment = options.add_group(
        subcommands, "experiment", __doc__, help="manage experiments: init a spec, create, status")
    init = options.add_command(
        experiment, "init", run_init, help="write a commented experiment spec to start from")
    init.add_argument("--out", type=Path, default=Path("experiment.toml"), metavar="FILE",
                      help="the spec to write (default experiment.toml; never overwritten "
                           "without --force)")
    init.add_argument("--learner", action="append", default=None, type=options.address,
                      metavar="ADDR", dest="learners",
                      help="a learner's address, in proposer order (repeat for each, at "
                           "least 2; default the dev chain's accounts 1..3)")
    init.add_argument("--force", action="store_true", help="overwrite FILE if it exists")

    create = options.add_command(
        experiment, "create", run_create, help="create an experiment; prints its id",
        epilog_extra=SPEC_HELP + OPTIONS_HELP)
    options.add_contract_options(create)
    create.add_argument("--spec", required=True, type=Path,
                        help="experiment spec (TOML; `colearn experiment init` writes one)")
    create.add_argument("--store", required=True, metavar="URL",
                        help="store for the initial weights and metadata")
    options.add_key_options(create)

    status = options.add_command(
        experiment, "status", run_status,
        help="an experiment's phase, deadlines, who is late, balances")
    options.add_contract_options(status, experiment=True)
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    options.add_from_block(status)


def run_init(args: argparse.Namespace, console: Console) -> None:
    """Write a commented experiment spec (every field, the learner factories that ship) that
    `colearn experiment create` runs unedited on a dev chain: the learners are `colearn
    chain`'s funded accounts 1..3.

    examples:
      colearn experiment init --out experiment.toml
      colearn experiment init --learner 0xA... --learner 0xB... --out exp.toml
    """
    from agents.experiment.template import spec_template

    learners = args.learners
    if learners is not None and len(learners) < 2:
        raise ValueError("--learner: an experiment needs at least 2 learners")
    if args.out.exists() and not args.force:
        raise ValueError(f"{args.out} exists: refusing to overwrite it (--force does)")
    args.out.write_text(spec_template(learners), encoding="utf-8")
    console.print(f"wrote {args.out}: edit it, then `colearn experiment create --spec "
                  f"{args.out} ...`", highlight=False, soft_wrap=True)


def run_create(args: argparse.Namespace, console: Console) -> None:
    """Create an experiment from a TOML spec (learners, threshold, rounds, timeouts, initial
    model, metadata, [options]); prints its id.

    examples:
      colearn experiment init --out experiment.toml
      colearn experiment create --rpc http://127.0.0.1:8545 --contract 0x... --spec experiment.toml --store file:store
    """
    from agents.chain.keys import load_account
    from agents.experiment.launch import launch_experiment
    from agents.experiment.spec import ExperimentSpec
    from agents.storage.store import open_store

    spec = ExperimentSpec.load(args.spec)
    initial = spec.initial_weights()  # a spec's mistakes first, before any connection
    client = options.contract_client(args.rpc, args.contract,
                                     load_account(args.keystore, args.password_file))
    with open_store(args.store) as store:
        experiment_id = launch_experiment(client, store, spec, initial).experiment_id
    console.print(experiment_id)


def run_status(args: argparse.Namespace, console: Console) -> None:
    """An experiment's state now: its phase and round as the contract computes them, the
    deadline (on the chain's clock), who joined, who proposed and voted this round, who is
    late, each learner's balance and, where staked, its stake, penalties and what it is
    owed.

    examples:
      colearn experiment status --rpc http://127.0.0.1:8545 --contract 0x... --experiment 1
    """
    import sys

    from agents.experiment.status import experiment_status, render_status

    client = options.contract_client(args.rpc, args.contract, from_block=args.from_block)
    status = experiment_status(client, args.experiment, from_block=args.from_block)
    if args.json:
        sys.stdout.write(status.model_dump_json(indent=2) + "\n")
    else:
        render_status(status, console)

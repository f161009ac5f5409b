"""``colearn example NAME``: one of colearn's examples, in memory or on chain."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from agents.cli import options
from agents.cli.options import Subcommands


def register(subcommands: Subcommands) -> None:
    parser = options.add_command(
        subcommands, "example", run,
        help="one of colearn's examples (PyTorch and Keras CNNs, SGD fraud-style, random "
             "forest), in memory or on chain")
    parser.add_argument("name", choices=["pytorch-mnist", "keras-mnist", "pytorch-cifar10",
                                         "sgd-fraud", "random-forest-iris", "xgb-reg-boston"],
                        help="the example: %(choices)s")
    parser.add_argument("--learners", type=int, default=5, help="number of learners (default 5)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="number of rounds (default: the example's, 15)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the data split and training (default 0)")
    parser.add_argument("--on-chain", action="store_true",
                        help="one agent per learner on the in-process EVM")
    parser.add_argument("--rpc", metavar="URL", default=None,
                        help="run on this dev chain instead (implies --on-chain)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the MNIST examples' idx files (default: an offline stand-in "
                             "built from scikit-learn's digits); CIFAR-10's binary version "
                             "for pytorch-cifar10 (required)")


def run(args: argparse.Namespace, console: Console) -> None:
    """Run one of colearn 0.2.8's examples through this project: in memory with colearn's own
    driver, or (--on-chain, --rpc) with one agent per learner deciding every round on the
    contract. Each needs its framework (the torch, keras, sklearn or xgboost extra).

    examples:
      colearn example sgd-fraud                   # in memory
      colearn example random-forest-iris --on-chain --rounds 5
      colearn example pytorch-mnist --rpc http://127.0.0.1:8545 --learners 3
    """
    from agents.demo.examples import run_example

    run_example(args.name, n_learners=args.learners, seed=args.seed, n_rounds=args.rounds,
                on_chain=args.on_chain, rpc=args.rpc, data_dir=args.data_dir, console=console)

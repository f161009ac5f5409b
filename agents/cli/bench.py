"""Benchmarks: the protocol's time overhead (overhead), the contract's gas (gas), what
collective learning learns beside its alternatives (learning), and what moving a model's
weights costs (weights).

examples:
  colearn bench overhead --preset small
  colearn bench gas --learners 5 20
  colearn bench learning --task digits --json
  colearn bench weights --params 1000000 --store http://127.0.0.1:5001
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from agents.cli import options
from agents.cli.options import Subcommands


def register(subcommands: Subcommands) -> None:
    from agents.bench.learning import DEFAULT_TASKS, TASKS
    from colearn_core.tasks.mlp_config import DEFAULT_RULE, RULES

    bench = options.add_group(subcommands, "bench", __doc__, help="benchmarks")

    overhead = options.add_command(
        bench, "overhead", run_overhead,
        help="in-memory driver vs one agent process per learner on anvil")
    overhead.add_argument("--learners", type=int, default=5,
                          help="number of learners (default 5)")
    overhead.add_argument("--rounds", type=int, default=10, help="number of rounds (default 10)")
    overhead.add_argument("--seed", type=int, default=0,
                          help="seed of the data split and training (default 0)")
    overhead.add_argument("--poll", type=options.seconds(options.MIN_POLL_SECONDS), default=0.05,
                          help="agents' log poll interval (with --follow poll; default 0.05)")
    overhead.add_argument("--follow", choices=["ws", "poll"], default="ws",
                          help="how agents learn of events: anvil's WebSocket (default) or "
                               "polling its HTTP RPC")
    overhead.add_argument("--preset", default="full", choices=["full", "small", "big"],
                          help="benchmark model size (small: for quick checks; big: 25M "
                               "parameters, 100 MB of weights)")
    overhead.add_argument("--store", choices=["file", "ipfs"], default="file",
                          help="the agents' weight store: a directory (default) or a js-ipfs "
                               "node started for the run")
    overhead.add_argument("--workdir", type=Path, default=None, help="keep logs here")
    overhead.add_argument("--json", action="store_true", help="print the report as JSON")

    gas = options.add_command(
        bench, "gas", run_gas,
        help="gas of every call by learner count, beside OpenZeppelin's Governor")
    gas.add_argument("--learners", type=int, nargs="+", default=[5, 20, 100], metavar="N",
                     help="learner counts (default 5 20 100)")
    gas.add_argument("--rpc", metavar="URL", default=None,
                     help="dev chain with a funded unlocked account (default: in-process EVM)")
    gas.add_argument("--json", action="store_true", help="print the report as JSON")

    learning = options.add_command(
        bench, "learning", run_learning,
        help="solo vs collective learning vs FedAvg vs pooled, on digits, mnist1d and "
             "breast cancer, IID and label-skewed")
    learning.add_argument("--learners", type=int, default=5,
                          help="number of learners (default 5)")
    learning.add_argument("--rounds", type=int, default=15, help="number of rounds (default 15)")
    learning.add_argument("--seed", dest="seeds", type=int, action="append", default=None,
                          help="seed of the data splits and training (repeatable; default 0)")
    learning.add_argument("--threshold", type=float, default=0.5,
                          help="vote threshold of collective learning (default 0.5)")
    learning.add_argument("--rule", dest="rules", action="append", default=None,
                          choices=list(RULES),
                          help="the learners' rule (repeatable; default colearn and "
                               f"{DEFAULT_RULE}): {DEFAULT_RULE} (vote with a 20%% "
                               "non-inferiority margin; propose 35%% of each trained update "
                               "plus half the last accepted change; train on logits "
                               "adjusted by one's class shares), tolerant (10%% margin, 35%% "
                               "of each update) or colearn (strictly better, trained weights)")
    learning.add_argument("--alpha", dest="alphas", type=float, action="append", default=None,
                          help="Dirichlet alpha of a label-skewed split (repeatable; "
                               "default 0.5)")
    learning.add_argument("--task", dest="tasks", action="append", default=None,
                          choices=list(TASKS),
                          help="run this task (repeatable; default "
                               f"{', '.join(DEFAULT_TASKS)})")
    learning.add_argument("--driver", choices=["chain", "memory"], default="chain",
                          help="collective learning on the in-process chain (default) or "
                               "with the in-memory driver (the same decisions, faster)")
    learning.add_argument("--plot", type=Path, metavar="FILE", default=None,
                          help="draw the global test score per round of every method (PNG)")
    learning.add_argument("--json", action="store_true", help="print the report as JSON")

    weights = options.add_command(
        bench, "weights", run_weights,
        help="each step of moving weights (encode, hash, store put/get, decode) by model "
             "size, beside the machine's limits")
    weights.add_argument("--params", type=int, nargs="+", default=None, metavar="N",
                         help="float32 parameter counts (default 100000 1000000 10000000 "
                              "100000000)")
    weights.add_argument("--store", metavar="URL", default=None,
                         help="store to measure: file:DIR or an IPFS node's RPC URL "
                              "(default: a temporary file store)")
    weights.add_argument("--repeat", type=int, default=3,
                         help="repetitions of each step, the median is reported (default 3)")
    weights.add_argument("--learners", type=int, default=5,
                         help="learners in the round estimated beside its floor (default 5)")
    weights.add_argument("--json", action="store_true", help="print the report as JSON")
    memory = options.add_command(
        bench, "memory", run_memory,
        help="a voter's peak RSS while it tests a proposal, and after, in model sizes")
    memory.add_argument("--params", type=int, default=25_000_000, metavar="N",
                        help="the model's float32 parameters (default 25000000: 100 MB)")
    memory.add_argument("--json", action="store_true", help="print the report as JSON")


def run_overhead(args: argparse.Namespace, console: Console) -> None:
    """Run the same experiment twice, with the in-memory driver and with one `colearn agent`
    process per learner on anvil, and report the time the protocol adds (chain, store,
    events) beside the learners' own.

    examples:
      colearn bench overhead                    # 5 learners, 10 rounds
      colearn bench overhead --preset small --rounds 3 --follow poll
      colearn bench overhead --json --workdir bench-logs
      colearn bench overhead --preset big --rounds 5 --store ipfs
    """
    from agents.bench.overhead import bench_overhead

    bench_overhead(as_json=args.json, n_learners=args.learners, n_rounds=args.rounds,
                   seed=args.seed, poll_interval=args.poll, follow=args.follow,
                   preset=args.preset, store=args.store, workdir=args.workdir)


def run_gas(args: argparse.Namespace, console: Console) -> None:
    """Measure the gas of every contract call (create, join, propose, vote, decide...) for each
    learner count, beside OpenZeppelin's Governor doing the same votes.

    examples:
      colearn bench gas                         # 5, 20 and 100 learners
      colearn bench gas --learners 3 --rpc http://127.0.0.1:8545 --json
    """
    from agents.bench.gas.report import bench_gas

    bench_gas(as_json=args.json, learner_counts=args.learners, rpc=args.rpc)


def run_learning(args: argparse.Namespace, console: Console) -> None:
    """Compare what learners learn alone, with collective learning (colearn's rule and the
    default), with FedAvg and with their data pooled, per task, on IID and label-skewed
    (Dirichlet) splits; prints a table (or JSON) and, with --plot, the score per round.

    examples:
      colearn bench learning                    # digits, mnist1d, breast_cancer; seed 0
      colearn bench learning --task wine --learners 3 --rounds 5 --json
      colearn bench learning --alpha 0.5 --alpha 0.1 --seed 0 --seed 1 --seed 2 \\
          --plot learning.png
    """
    from agents.bench.learning import DEFAULT_RULES, DEFAULT_TASKS, bench_learning

    bench_learning(as_json=args.json, n_learners=args.learners, n_rounds=args.rounds,
                   vote_threshold=args.threshold, alphas=tuple(args.alphas or (0.5,)),
                   seeds=tuple(args.seeds or (0,)), tasks=tuple(args.tasks or DEFAULT_TASKS),
                   rules=tuple(args.rules or DEFAULT_RULES), driver=args.driver,
                   plot=args.plot, console=console)


def run_weights(args: argparse.Namespace, console: Console) -> None:
    """Time each step of a proposal (encode, sha256 and CID in one pass, store put) and of a
    vote (store get with verification, decode) for models of 0.1M to 100M float32
    parameters, beside what the machine allows (a memory copy, sha256 alone, a disk write
    with fsync, a loopback TCP transfer), the peak memory a get and decode add, and a
    round of --learners (the proposal and a vote by each other learner) beside its floor.

    examples:
      colearn bench weights                     # 0.1M, 1M, 10M, 100M parameters
      colearn bench weights --params 25600000 --learners 5 --json
      colearn bench weights --store http://127.0.0.1:5001   # an IPFS node (colearn dev)
    """
    from agents.bench.weights import PARAM_COUNTS, bench_weights

    bench_weights(param_counts=tuple(args.params or PARAM_COUNTS), store_url=args.store,
                  repeat=args.repeat, n_learners=args.learners, as_json=args.json)


def run_memory(args: argparse.Namespace, console: Console) -> None:
    """Measure a voter's resident memory (RSS) in a fresh process: a PyTorch learner with an
    MLP of N parameters fetches, decodes and tests a proposal, then drops it; prints the
    peak over the learner's baseline, and the RSS after, in model sizes.

    examples:
      colearn bench memory                      # 25M parameters (100 MB)
      colearn bench memory --params 1000000 --json
    """
    from agents.bench.memory import bench_memory

    bench_memory(params=args.params, as_json=args.json)

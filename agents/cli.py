"""The ``colearn`` command line."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler

from agents.agent import AgentError
from agents.bench import BenchError
from agents.chain import ChainError
from agents.devprocess import DevProcessError
from agents.keys import KeyLoadError
from agents.relay import RelayClient, RelayError
from agents.weight_store import WeightStoreError

# Errors a user can cause (bad input, unreachable services): one line, non-zero exit.
_USER_ERRORS = (ChainError, WeightStoreError, AgentError, KeyLoadError, DevProcessError,
                BenchError, RelayError, OSError, ValueError)


def _add_key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keystore", type=Path, default=None,
                        help="encrypted keystore (default: key from $COLEARN_PRIVATE_KEY)")
    parser.add_argument("--password-file", type=Path, default=None,
                        help="keystore password file (default: $COLEARN_PASSWORD, or a prompt)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colearn", description="Collective learning on Ethereum.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log agent activity (-v) or everything (-vv)")
    sub = parser.add_subparsers(dest="command", required=True)

    example = sub.add_parser(
        "example", help="one of colearn's examples (PyTorch and Keras CNNs, SGD fraud-style, "
                        "random forest), in memory or on chain")
    example.add_argument("name", choices=["pytorch-mnist", "keras-mnist", "pytorch-cifar10",
                                          "sgd-fraud", "random-forest-iris"])
    example.add_argument("--learners", type=int, default=5)
    example.add_argument("--rounds", type=int, default=None,
                         help="number of rounds (default: the example's, 15)")
    example.add_argument("--seed", type=int, default=0)
    example.add_argument("--on-chain", action="store_true",
                         help="one agent per learner on the in-process EVM")
    example.add_argument("--rpc", metavar="URL", default=None,
                         help="run on this dev chain instead (implies --on-chain)")
    example.add_argument("--data-dir", type=Path, default=None,
                         help="the MNIST examples' idx files (default: an offline stand-in "
                              "built from scikit-learn's digits); CIFAR-10's binary version "
                              "for pytorch-cifar10 (required)")

    demo = sub.add_parser("demo", help="run a whole experiment locally with N agents")
    demo.add_argument("--learners", type=int, default=5, help="number of learners (default 5)")
    demo.add_argument("--rounds", type=int, default=15, help="number of rounds (default 15)")
    demo.add_argument("--threshold", type=float, default=0.5,
                      help="fraction of voters that must approve (default 0.5)")
    demo.add_argument("--model", default="mlp", choices=["mlp"], help="model (digits MLP)")
    demo.add_argument("--seed", type=int, default=0, help="seed of data split and training")
    demo.add_argument("--chain", metavar="URL", default=None,
                      help="JSON-RPC URL of a dev chain such as anvil (default: in-process EVM)")
    demo.add_argument("--store", metavar="URL", default=None,
                      help="weight store URL (default: file:OUT/store)")
    demo.add_argument("--out", type=Path, default=Path("demo-out"),
                      help="directory for results.json and plots (default demo-out)")
    demo.add_argument("--processes", action="store_true",
                      help="start anvil (and an IPFS daemon if installed) and run each agent "
                           "as its own OS process")

    account = sub.add_parser("account", help="manage learner keys").add_subparsers(
        dest="account_command", required=True)
    new = account.add_parser("new", help="create an account in an encrypted keystore")
    new.add_argument("--keystore", type=Path, required=True, help="file to create")
    new.add_argument("--password-file", type=Path, default=None)

    chain = sub.add_parser("chain", help="run a local anvil chain until Ctrl-C")
    chain.add_argument("--port", type=int, default=8545)
    chain.add_argument("--block-time", type=float, default=1.0,
                       help="seconds between empty blocks, so deadlines pass (default 1)")

    deploy = sub.add_parser("deploy", help="deploy the contract; prints its address")
    deploy.add_argument("--rpc", required=True, metavar="URL")
    _add_key_options(deploy)

    experiment = sub.add_parser("experiment", help="manage experiments").add_subparsers(
        dest="experiment_command", required=True)
    create = experiment.add_parser("create", help="create an experiment; prints its id")
    create.add_argument("--rpc", required=True, metavar="URL")
    create.add_argument("--contract", required=True, metavar="ADDR")
    create.add_argument("--spec", required=True, type=Path, help="experiment spec (TOML)")
    create.add_argument("--store", required=True, metavar="URL",
                        help="store for the initial weights and metadata")
    _add_key_options(create)

    agent = sub.add_parser("agent", help="run one learner's agent until the experiment ends")
    agent.add_argument("--rpc", required=True, metavar="URL")
    agent.add_argument("--contract", required=True, metavar="ADDR")
    agent.add_argument("--experiment", required=True, type=int, metavar="ID")
    agent.add_argument("--learner", required=True, metavar="MODULE:FACTORY",
                       help="your code returning an MLI learner over your private data")
    agent.add_argument("--learner-arg", action="append", default=[], metavar="KEY=VALUE",
                       help="keyword argument for the factory (repeatable; JSON values)")
    agent.add_argument("--store", required=True, metavar="URL",
                       help="weight store: file:DIR or an IPFS RPC URL (http://127.0.0.1:5001)")
    agent.add_argument("--events", metavar="WS_URL", default=None,
                       help="WebSocket JSON-RPC URL (ws:// or wss://) of a node of the same "
                            "chain: it pushes the contract's events as they happen (anvil and "
                            "Hardhat serve it on their RPC port, geth with --ws). Without it "
                            "the agent polls --rpc for them")
    agent.add_argument("--relay", metavar="URL", default=None,
                       help="a `colearn relay` to hand signed proposals and votes to, so this "
                            "account needs no ETH; votes it has not put on chain by "
                            "--relay-fallback seconds before the deadline are sent directly")
    agent.add_argument("--relay-fallback", type=float, default=10.0, metavar="SECONDS",
                       help="see --relay (default 10)")
    agent.add_argument("--poll", type=float, default=0.25,
                       help="seconds between log polls without --events (default 0.25); "
                            "also the first retry delay after an error")
    _add_key_options(agent)

    relay = sub.add_parser(
        "relay", help="relay learners' signed proposals and votes, paying their gas")
    relay.add_argument("--rpc", required=True, metavar="URL")
    relay.add_argument("--contract", required=True, metavar="ADDR")
    relay.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1)")
    relay.add_argument("--port", type=int, default=8600, help="port (default 8600; 0: any free)")
    relay.add_argument("--batch-delay", type=float, default=1.0,
                       help="seconds a round's first vote waits for others before the batch "
                            "is sent (default 1); a complete ballot goes at once")
    relay.add_argument("--experiment", type=int, action="append", default=[], metavar="ID",
                       help="serve this experiment: relay its learners' signed calls and "
                            "close its timed-out rounds until it completes (repeatable)")
    relay.add_argument("--any-experiment", action="store_true",
                       help="serve any experiment of the contract, each once one of its "
                            "learners hands in a genuine signature for an open round (the "
                            "relay then pays for closing its rounds)")
    _add_key_options(relay)

    audit = sub.add_parser(
        "audit", help="rebuild an experiment from the chain alone and check every rule "
                      "(exit 0 only if all hold, 3 on violations)")
    audit.add_argument("--rpc", required=True, metavar="URL")
    audit.add_argument("--contract", required=True, metavar="ADDR")
    audit.add_argument("--experiment", required=True, type=int, metavar="ID")
    audit.add_argument("--store", metavar="URL", default=None,
                       help="weight store: also check every proposal's weights and the final "
                            "model (file:DIR or an IPFS RPC URL)")
    audit.add_argument("--json", action="store_true", help="print the report as JSON")
    audit.add_argument("--html", type=Path, metavar="FILE", default=None,
                       help="also write a self-contained HTML report (plots embedded)")
    audit.add_argument("--compare", type=Path, metavar="RESULTS_JSON", default=None,
                       help="a results file to compare with the chain (the audit ignores it "
                            "otherwise; rows that differ are violations)")
    audit.add_argument("--from-block", type=int, default=0, metavar="N",
                       help="first block to read logs from (default 0)")
    audit.add_argument("--chunk-blocks", type=int, default=None, metavar="N",
                       help="blocks per eth_getLogs (default 10000; halved when refused)")

    explorer = sub.add_parser(
        "explorer", help="a local read-only web page of the contract's experiments")
    explorer.add_argument("--rpc", required=True, metavar="URL")
    explorer.add_argument("--contract", required=True, metavar="ADDR")
    explorer.add_argument("--port", type=int, default=8700,
                          help="port on 127.0.0.1 (default 8700; 0: any free)")
    explorer.add_argument("--explorer-url", metavar="URL", default=None,
                          help="link transactions and blocks to this block explorer (e.g. "
                               "https://etherscan.io); default: the page's own JSON views")
    explorer.add_argument("--poll", type=float, default=2.0,
                          help="seconds between the page's refreshes (default 2)")

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(
        dest="bench_command", required=True)
    overhead = bench.add_parser(
        "overhead", help="in-memory driver vs one agent process per learner on anvil")
    overhead.add_argument("--learners", type=int, default=5)
    overhead.add_argument("--rounds", type=int, default=10)
    overhead.add_argument("--seed", type=int, default=0)
    overhead.add_argument("--poll", type=float, default=0.05,
                          help="agents' log poll interval (with --follow poll; default 0.05)")
    overhead.add_argument("--follow", choices=["ws", "poll"], default="ws",
                          help="how agents learn of events: anvil's WebSocket (default) or "
                               "polling its HTTP RPC")
    overhead.add_argument("--preset", default="full", choices=["full", "small"],
                          help="benchmark model size (small: for quick checks)")
    overhead.add_argument("--workdir", type=Path, default=None, help="keep logs here")
    overhead.add_argument("--json", action="store_true", help="print the report as JSON")
    gas = bench.add_parser(
        "gas", help="gas of every call by learner count, beside OpenZeppelin's Governor")
    gas.add_argument("--learners", type=int, nargs="+", default=[5, 20, 100], metavar="N",
                     help="learner counts (default 5 20 100)")
    gas.add_argument("--rpc", metavar="URL", default=None,
                     help="dev chain with a funded unlocked account (default: in-process EVM)")
    gas.add_argument("--json", action="store_true", help="print the report as JSON")
    learning = bench.add_parser(
        "learning", help="solo vs collective learning on chain vs FedAvg vs pooled, on "
                         "digits and breast cancer, IID and label-skewed")
    learning.add_argument("--learners", type=int, default=5)
    learning.add_argument("--rounds", type=int, default=15)
    learning.add_argument("--seed", type=int, default=0)
    learning.add_argument("--threshold", type=float, default=0.5,
                          help="vote threshold of collective learning (default 0.5)")
    learning.add_argument("--alpha", type=float, default=0.5,
                          help="Dirichlet alpha of the label-skewed split (default 0.5)")
    learning.add_argument("--task", dest="tasks", action="append", default=None,
                          choices=["digits", "breast_cancer", "wine", "mnist1d"],
                          help="run this task (repeatable; default digits and breast_cancer)")
    learning.add_argument("--json", action="store_true", help="print the report as JSON")

    store = sub.add_parser("store", help="put and get weights by CID").add_subparsers(
        dest="store_command", required=True)
    add = store.add_parser("add", help="store a file; prints its CID")
    add.add_argument("file", type=Path)
    add.add_argument("--store", required=True, metavar="URL")
    get = store.add_parser("get", help="fetch and verify a CID")
    get.add_argument("cid")
    get.add_argument("--store", required=True, metavar="URL")
    get.add_argument("-o", "--output", type=Path, required=True)
    return parser


def _configure_logging(verbosity: int, console: Console) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(name)s: %(message)s", datefmt="[%X]",
                        handlers=[RichHandler(console=console, show_path=False)])
    if verbosity < 2:
        for noisy in ("web3", "eth", "urllib3", "httpx", "httpcore", "matplotlib", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _client(rpc: str, contract: str, account=None):
    from agents.chain import CollectiveLearningClient
    from agents.network import connect

    client = CollectiveLearningClient(connect(rpc), contract, account)
    client.check_deployed()
    return client


def _run(args: argparse.Namespace, console: Console) -> None:
    from agents.keys import create_keystore, load_account, read_password
    from agents.weight_store import open_store

    if args.command == "example":
        from agents.examples import run_example

        run_example(args.name, n_learners=args.learners, seed=args.seed, n_rounds=args.rounds,
                    on_chain=args.on_chain, rpc=args.rpc, data_dir=args.data_dir,
                    console=console)
    elif args.command == "demo":
        from agents.demo import DemoConfig, run_demo

        config = DemoConfig(
            n_learners=args.learners, n_rounds=args.rounds, vote_threshold=args.threshold,
            model=args.model, seed=args.seed, chain_url=args.chain, store_url=args.store,
            out=args.out)
        if args.processes:
            from agents.processes import run_process_demo

            run_process_demo(config, console)
        else:
            run_demo(config, console)
    elif args.command == "account":
        address = create_keystore(args.keystore, read_password(args.password_file, confirm=True))
        console.print(address)
    elif args.command == "chain":
        from agents.devchain import run_chain_forever

        run_chain_forever(args.port, args.block_time, console)
    elif args.command == "deploy":
        from agents.chain import CollectiveLearningClient
        from agents.network import connect

        account = load_account(args.keystore, args.password_file)
        client, _ = CollectiveLearningClient.deploy(connect(args.rpc), account)
        console.print(client.address)
    elif args.command == "experiment":
        from agents.spec import ExperimentSpec

        spec = ExperimentSpec.load(args.spec)
        client = _client(args.rpc, args.contract, load_account(args.keystore, args.password_file))
        with open_store(args.store) as store:
            experiment_id = create_experiment(client, store, spec)
        console.print(experiment_id)
    elif args.command == "agent":
        from agents.agent import LearnerAgent
        from agents.spec import LearnerFactory, parse_factory_args

        if args.events is not None and not args.events.startswith(("ws://", "wss://")):
            raise ValueError(f"--events {args.events!r}: expected a ws:// or wss:// URL")
        account = load_account(args.keystore, args.password_file)
        client = _client(args.rpc, args.contract, account)
        client.experiment(args.experiment)  # UnknownExperiment before any training
        if args.events is not None:  # an unusable event stream: a one-line error, now
            from agents.events import follow_events

            with follow_events(client, args.experiment, events_url=args.events):
                pass
        learner = LearnerFactory(target=args.learner,
                                 args=parse_factory_args(args.learner_arg)).build()
        with open_store(args.store) as store, contextlib.ExitStack() as stack:
            relay = stack.enter_context(RelayClient(args.relay)) if args.relay else None
            agent = LearnerAgent(client, store, learner, args.experiment, relay=relay,
                                 relay_fallback_seconds=args.relay_fallback)
            agent.run(poll_interval=args.poll, events_url=args.events)
            # One machine-readable line (never wrapped) for whoever started the agent.
            sys.stdout.write(json.dumps({
                "experiment": args.experiment, "learner": account.address,
                "model_digest": "0x" + agent.model_digest.hex(),
                "seconds": agent.timings.seconds,
                "budget_exhausted": agent.budget_exhausted,
                # this learner's own view: scores, votes, each proposal's DP budget
                "rounds": [r.model_dump(mode="json", exclude_none=True)
                           for r in agent.records.values()]}) + "\n")
    elif args.command == "relay":
        from agents.relay import Relay, RelayServer

        if not args.experiment and not args.any_experiment:
            raise RelayError("name the experiments to serve (--experiment ID, repeatable), "
                             "or ask for --any-experiment")
        service = Relay(_client(args.rpc, args.contract,
                                load_account(args.keystore, args.password_file)),
                        experiments=args.experiment, any_experiment=args.any_experiment,
                        batch_delay=args.batch_delay)
        with RelayServer(service, args.host, args.port) as server:
            # The URL on stdout alone (for scripts); the rest is for the person watching.
            sys.stdout.write(server.url + "\n")
            sys.stdout.flush()
            console.print(f"relaying for {service.client.address} as "
                          f"{service.client.account.address}; Ctrl-C stops", style="dim")
            threading.Event().wait()
    elif args.command == "bench" and args.bench_command == "gas":
        from agents.gas_bench import bench_gas

        bench_gas(as_json=args.json, learner_counts=args.learners, rpc=args.rpc)
    elif args.command == "bench" and args.bench_command == "learning":
        from agents.learning_bench import DEFAULT_TASKS, bench_learning

        bench_learning(as_json=args.json, n_learners=args.learners, n_rounds=args.rounds,
                       vote_threshold=args.threshold, alpha=args.alpha, seed=args.seed,
                       tasks=tuple(args.tasks or DEFAULT_TASKS))
    elif args.command == "bench":
        from agents.bench import bench_overhead

        bench_overhead(as_json=args.json, n_learners=args.learners, n_rounds=args.rounds,
                       seed=args.seed, poll_interval=args.poll, follow=args.follow,
                       preset=args.preset, workdir=args.workdir)
    elif args.command == "audit":
        from agents.audit_report import run_audit

        report = run_audit(args.rpc, args.contract, args.experiment, console=console,
                           store_url=args.store, as_json=args.json, html_path=args.html,
                           compare=args.compare, from_block=args.from_block,
                           chunk_blocks=args.chunk_blocks)
        if not report.ok:
            raise SystemExit(3)
    elif args.command == "explorer":
        from agents.explorer import run_explorer

        run_explorer(args.rpc, args.contract, port=args.port, explorer_url=args.explorer_url,
                     poll=args.poll, console=console)
    elif args.command == "store":
        with open_store(args.store) as store:
            if args.store_command == "add":
                console.print(store.put(args.file.read_bytes()))
            else:
                args.output.write_bytes(store.get(args.cid))


def create_experiment(client, store, spec) -> int:
    """Stores the spec's initial weights and metadata, then creates the experiment."""
    from colearn_core.codec import decode_weights, encode_weights
    from colearn_core.decision import threshold_to_bps

    if spec.initial.weights is not None:
        initial = spec.initial.weights.read_bytes()
        decode_weights(initial)  # refuse anything that is not weights
    else:
        initial = encode_weights(spec.initial.factory.build().mli_get_current_weights().weights)
    metadata_cid = store.put(json.dumps(spec.metadata, sort_keys=True).encode()) \
        if spec.metadata else ""
    experiment_id, _ = client.create_experiment(
        spec.learners, threshold_to_bps(spec.threshold), spec.rounds, spec.proposal_timeout,
        spec.voting_timeout, store.put(initial), hashlib.sha256(initial).digest(), metadata_cid)
    return experiment_id


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console, errors = Console(), Console(stderr=True)
    _configure_logging(args.verbose, errors)
    try:
        _run(args, console)
        return 0
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        errors.print(f"[red]error:[/] invalid input: {problems}", soft_wrap=True)
        return 2
    except _USER_ERRORS as exc:
        errors.print(f"[red]error:[/] {exc}", soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        errors.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())

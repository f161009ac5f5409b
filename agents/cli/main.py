"""The ``colearn`` command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from eth_utils import is_address, to_checksum_address
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from web3.exceptions import Web3Exception

from agents._utils.shutdown import interrupt_status, signals_unwind
from agents.agent.learner_agent import AgentError
from agents.bench.overhead import BenchError
from agents.chain.errors import ChainError
from agents.chain.keys import KeyLoadError
from agents.devtools.process import DevProcessError
from agents.experiment.spec import describe_exception, FACTORY_TARGET_PATTERN, parse_factory_arg, SpecError
from agents.relay import RelayClient, RelayError
from agents.storage.store import WeightStoreError

# Errors a user can cause (bad input, unreachable or misbehaving services): one line, exit 1.
# Anything else is a bug: one line too, exit 70, and the traceback with -vv.
_USER_ERRORS = (ChainError, WeightStoreError, AgentError, KeyLoadError, SpecError,
                DevProcessError, BenchError, RelayError, Web3Exception, OSError, ValueError)
EXIT_INTERNAL_ERROR = 70  # sysexits' EX_SOFTWARE
MAX_UINT256 = 2**256 - 1
MIN_POLL_SECONDS = 0.05
MAX_WAIT_SECONDS = 86_400.0


def _shown(text: str, limit: int = 40) -> str:
    """``text`` quoted for an error message, cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _seconds(minimum: float, maximum: float = MAX_WAIT_SECONDS) -> Callable[[str], float]:
    """An argparse type: a number of seconds from ``minimum`` to ``maximum``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not minimum <= value <= maximum:  # NaN too
            raise argparse.ArgumentTypeError(
                f"expected seconds from {minimum:g} to {maximum:g}, not {_shown(text)}")
        return value

    parse.__name__ = "seconds"
    return parse


def _bounded_int(name: str, minimum: int, maximum: int,
                 shown_maximum: str | None = None) -> Callable[[str], int]:
    """An argparse type: an integer from ``minimum`` to ``maximum``."""

    def parse(text: str) -> int:
        try:  # a uint256 has 78 digits: longer text is refused without converting it
            value: int | None = int(text) if len(text) <= 100 else None
        except ValueError:
            value = None
        if value is None or not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"{name} is an integer from {minimum} to {shown_maximum or maximum}, "
                f"not {_shown(text)}")
        return value

    parse.__name__ = name
    return parse


_experiment_id = _bounded_int("an experiment id", 0, MAX_UINT256, "2**256 - 1")
_port = _bounded_int("a port", 0, 65_535)


def _address(text: str) -> str:
    if not is_address(text):
        raise argparse.ArgumentTypeError(
            f"expected an address (0x and 40 hex digits, checksummed if mixed-case), "
            f"not {_shown(text, 50)}")
    return to_checksum_address(text)


def _factory_target(text: str) -> str:
    if re.fullmatch(FACTORY_TARGET_PATTERN, text) is None:
        raise argparse.ArgumentTypeError(
            f"expected MODULE:FACTORY (e.g. mypackage.learners:make_learner), not {_shown(text)}")
    return text


def _factory_arg(text: str) -> tuple[str, object]:
    try:
        return parse_factory_arg(text)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_from_block(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from-block", type=_bounded_int("a block number", 0, 2**64 - 1),
                        default=0, metavar="N",
                        help="a block at or before the experiment's creation, to look for it "
                             "from (default 0; saves a long search through a provider that "
                             "caps eth_getLogs ranges)")


def _add_key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keystore", type=Path, default=None,
                        help="encrypted keystore (default: key from $COLEARN_PRIVATE_KEY)")
    parser.add_argument("--password-file", type=Path, default=None,
                        help="keystore password file (default: $COLEARN_PASSWORD, or a prompt)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colearn", description="Collective learning on Ethereum.",
        epilog="exit status: 0 done, 1 error, 2 bad input, 3 audit violations, "
               f"{EXIT_INTERNAL_ERROR} internal error (-vv shows its traceback), 128+N stopped by "
               "signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP); a command that starts "
               "processes stops them all however it ends")
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
    chain.add_argument("--port", type=_port, default=8545)
    chain.add_argument("--block-time", type=_seconds(MIN_POLL_SECONDS), default=1.0,
                       help="seconds between empty blocks, so deadlines pass (default 1)")

    deploy = sub.add_parser("deploy", help="deploy the contract; prints its address")
    deploy.add_argument("--rpc", required=True, metavar="URL")
    _add_key_options(deploy)

    experiment = sub.add_parser("experiment", help="manage experiments").add_subparsers(
        dest="experiment_command", required=True)
    create = experiment.add_parser("create", help="create an experiment; prints its id")
    create.add_argument("--rpc", required=True, metavar="URL")
    create.add_argument("--contract", required=True, type=_address, metavar="ADDR")
    create.add_argument("--spec", required=True, type=Path, help="experiment spec (TOML)")
    create.add_argument("--store", required=True, metavar="URL",
                        help="store for the initial weights and metadata")
    _add_key_options(create)

    agent = sub.add_parser("agent", help="run one learner's agent until the experiment ends")
    agent.add_argument("--rpc", required=True, metavar="URL")
    agent.add_argument("--contract", required=True, type=_address, metavar="ADDR")
    agent.add_argument("--experiment", required=True, type=_experiment_id, metavar="ID")
    agent.add_argument("--learner", required=True, type=_factory_target,
                       metavar="MODULE:FACTORY",
                       help="your code returning an MLI learner over your private data")
    agent.add_argument("--learner-arg", action="append", default=[], type=_factory_arg,
                       metavar="KEY=VALUE",
                       help="keyword argument for the factory (repeatable; JSON values)")
    agent.add_argument("--store", required=True, metavar="URL",
                       help="weight store: file:DIR or an IPFS RPC URL (http://127.0.0.1:5001)")
    agent.add_argument("--events", metavar="WS_URL", default=None,
                       help="WebSocket JSON-RPC URL (ws:// or wss://) of a node of the same "
                            "chain: it pushes the contract's events as they happen (anvil and "
                            "Hardhat serve it on their RPC port, geth with --ws). Without it "
                            "the agent polls --rpc for them")
    agent.add_argument("--relay", metavar="URL", default=None,
                       help="a `colearn relay` to hand the signed join, proposals and votes to, so this "
                            "account needs no ETH; votes it has not put on chain by "
                            "--relay-fallback seconds before the deadline are sent directly")
    agent.add_argument("--relay-fallback", type=_seconds(0.0), default=10.0, metavar="SECONDS",
                       help="see --relay (default 10)")
    agent.add_argument("--poll", type=_seconds(MIN_POLL_SECONDS), default=0.25,
                       help="seconds between log polls without --events (default 0.25, at "
                            f"least {MIN_POLL_SECONDS:g}); also the first retry delay after "
                            "an error")
    _add_from_block(agent)
    _add_key_options(agent)

    relay = sub.add_parser(
        "relay", help="relay learners' signed joins, proposals and votes, paying their gas")
    relay.add_argument("--rpc", required=True, metavar="URL")
    relay.add_argument("--contract", required=True, type=_address, metavar="ADDR")
    relay.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1)")
    relay.add_argument("--port", type=_port, default=8600, help="port (default 8600; 0: any free)")
    relay.add_argument("--batch-delay", type=_seconds(0.0), default=1.0,
                       help="seconds a round's first vote waits for others before the batch "
                            "is sent (default 1); a complete ballot goes at once")
    relay.add_argument("--experiment", type=_experiment_id, action="append", default=[],
                       metavar="ID",
                       help="serve this experiment: relay its learners' signed calls and "
                            "close its timed-out rounds until it completes (repeatable)")
    relay.add_argument("--any-experiment", action="store_true",
                       help="serve any experiment of the contract, each once one of its "
                            "learners hands in a genuine signature for an open round (the "
                            "relay then pays for closing its rounds)")
    _add_from_block(relay)
    _add_key_options(relay)

    audit = sub.add_parser(
        "audit", help="rebuild an experiment from the chain alone and check every rule "
                      "(exit 0 only if all hold, 3 on violations)")
    audit.add_argument("--rpc", required=True, metavar="URL")
    audit.add_argument("--contract", required=True, type=_address, metavar="ADDR")
    audit.add_argument("--experiment", required=True, type=_experiment_id, metavar="ID")
    audit.add_argument("--store", metavar="URL", default=None,
                       help="weight store: also check every proposal's weights and the final "
                            "model (file:DIR or an IPFS RPC URL)")
    audit.add_argument("--json", action="store_true", help="print the report as JSON")
    audit.add_argument("--html", type=Path, metavar="FILE", default=None,
                       help="also write a self-contained HTML report (plots embedded)")
    audit.add_argument("--compare", type=Path, metavar="RESULTS_JSON", default=None,
                       help="a results file to compare with the chain (the audit ignores it "
                            "otherwise; rows that differ are violations)")
    audit.add_argument("--from-block", type=_bounded_int("a block number", 0, 2**64 - 1),
                       default=0, metavar="N",
                       help="first block to read logs from (default 0)")
    audit.add_argument("--chunk-blocks", type=_bounded_int("a block count", 1, 2**64 - 1),
                       default=None, metavar="N",
                       help="blocks per eth_getLogs (default 10000; halved when refused)")

    explorer = sub.add_parser(
        "explorer", help="a local read-only web page of the contract's experiments")
    explorer.add_argument("--rpc", required=True, metavar="URL")
    explorer.add_argument("--contract", required=True, type=_address, metavar="ADDR")
    explorer.add_argument("--port", type=_port, default=8700,
                          help="port on 127.0.0.1 (default 8700; 0: any free)")
    explorer.add_argument("--explorer-url", metavar="URL", default=None,
                          help="link transactions and blocks to this block explorer (e.g. "
                               "https://etherscan.io); default: the page's own JSON views")
    explorer.add_argument("--poll", type=_seconds(MIN_POLL_SECONDS), default=2.0,
                          help="seconds between the page's refreshes (default 2)")

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(
        dest="bench_command", required=True)
    overhead = bench.add_parser(
        "overhead", help="in-memory driver vs one agent process per learner on anvil")
    overhead.add_argument("--learners", type=int, default=5)
    overhead.add_argument("--rounds", type=int, default=10)
    overhead.add_argument("--seed", type=int, default=0)
    overhead.add_argument("--poll", type=_seconds(MIN_POLL_SECONDS), default=0.05,
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


def _client(rpc: str, contract: str, account=None, from_block: int = 0):
    from agents.chain.client import CollectiveLearningClient
    from agents.chain.network import connect

    client = CollectiveLearningClient(connect(rpc), contract, account)
    client.check_deployed()
    client.first_block = from_block
    return client


def _run(args: argparse.Namespace, console: Console) -> None:
    from agents.chain.keys import create_keystore, load_account, read_password
    from agents.storage.store import open_store

    if args.command == "example":
        from agents.demo.examples import run_example

        run_example(args.name, n_learners=args.learners, seed=args.seed, n_rounds=args.rounds,
                    on_chain=args.on_chain, rpc=args.rpc, data_dir=args.data_dir,
                    console=console)
    elif args.command == "demo":
        from agents.demo.embedded import DemoConfig, run_demo

        config = DemoConfig(
            n_learners=args.learners, n_rounds=args.rounds, vote_threshold=args.threshold,
            model=args.model, seed=args.seed, chain_url=args.chain, store_url=args.store,
            out=args.out)
        if args.processes:
            from agents.demo.processes import run_process_demo

            run_process_demo(config, console)
        else:
            run_demo(config, console)
    elif args.command == "account":
        address = create_keystore(args.keystore, read_password(args.password_file, confirm=True))
        console.print(address)
    elif args.command == "chain":
        from agents.devtools.anvil import run_chain_forever

        run_chain_forever(args.port, args.block_time, console)
    elif args.command == "deploy":
        from agents.chain.client import CollectiveLearningClient
        from agents.chain.network import connect

        account = load_account(args.keystore, args.password_file)
        client, _ = CollectiveLearningClient.deploy(connect(args.rpc), account)
        console.print(client.address)
    elif args.command == "experiment":
        from agents.experiment.launch import launch_experiment
        from agents.experiment.spec import ExperimentSpec

        spec = ExperimentSpec.load(args.spec)
        client = _client(args.rpc, args.contract, load_account(args.keystore, args.password_file))
        with open_store(args.store) as store:
            experiment_id = launch_experiment(client, store, spec,
                                              spec.initial_weights()).experiment_id
        console.print(experiment_id)
    elif args.command == "agent":
        from agents.agent.learner_agent import LearnerAgent
        from agents.experiment.spec import LearnerFactory

        if args.events is not None and not args.events.startswith(("ws://", "wss://")):
            raise ValueError(f"--events {args.events!r}: expected a ws:// or wss:// URL")
        factory = LearnerFactory(target=args.learner, args=dict(args.learner_arg))
        factory.resolve()  # a wrong module, name or argument: said before anything else
        account = load_account(args.keystore, args.password_file)
        client = _client(args.rpc, args.contract, account, args.from_block)
        client.experiment(args.experiment)  # UnknownExperiment before any training
        if args.events is not None:  # an unusable event stream: a one-line error, now
            from agents.chain.follow import follow_events

            with follow_events(client, args.experiment, events_url=args.events):
                pass
        learner = factory.build()
        with open_store(args.store) as store, contextlib.ExitStack() as stack:
            relay = stack.enter_context(RelayClient(args.relay)) if args.relay else None
            agent = LearnerAgent(client, store, learner, args.experiment, relay=relay,
                                 relay_fallback_seconds=args.relay_fallback,
                                 notify=lambda line: print(line, file=sys.stderr, flush=True))
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
                                load_account(args.keystore, args.password_file),
                                args.from_block),
                        experiments=args.experiment, any_experiment=args.any_experiment,
                        batch_delay=args.batch_delay)
        with RelayServer(service, args.host, args.port) as server:
            # The URL on stdout alone (for scripts); the rest is for the person watching.
            sys.stdout.write(server.url + "\n")
            sys.stdout.flush()
            payer = service.client.account
            console.print(f"relaying for {service.client.address} as "
                          f"{payer.address if payer else '?'}; Ctrl-C stops", style="dim")
            threading.Event().wait()
    elif args.command == "bench" and args.bench_command == "gas":
        from agents.bench.gas import bench_gas

        bench_gas(as_json=args.json, learner_counts=args.learners, rpc=args.rpc)
    elif args.command == "bench" and args.bench_command == "learning":
        from agents.bench.learning import DEFAULT_TASKS, bench_learning

        bench_learning(as_json=args.json, n_learners=args.learners, n_rounds=args.rounds,
                       vote_threshold=args.threshold, alpha=args.alpha, seed=args.seed,
                       tasks=tuple(args.tasks or DEFAULT_TASKS))
    elif args.command == "bench":
        from agents.bench.overhead import bench_overhead

        bench_overhead(as_json=args.json, n_learners=args.learners, n_rounds=args.rounds,
                       seed=args.seed, poll_interval=args.poll, follow=args.follow,
                       preset=args.preset, workdir=args.workdir)
    elif args.command == "audit":
        from agents.audit.report import run_audit

        report = run_audit(args.rpc, args.contract, args.experiment, console=console,
                           store_url=args.store, as_json=args.json, html_path=args.html,
                           compare=args.compare, from_block=args.from_block,
                           chunk_blocks=args.chunk_blocks)
        if not report.ok:
            raise SystemExit(3)
    elif args.command == "explorer":
        from agents.audit.explorer import run_explorer

        run_explorer(args.rpc, args.contract, port=args.port, explorer_url=args.explorer_url,
                     poll=args.poll, console=console)
    elif args.command == "store":
        with open_store(args.store) as store:
            if args.store_command == "add":
                console.print(store.put(args.file.read_bytes()))
            else:
                args.output.write_bytes(store.get(args.cid))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console, errors = Console(), Console(stderr=True)
    _configure_logging(args.verbose, errors)
    try:
        # SIGINT, SIGTERM and SIGHUP unwind the command's `with` blocks, so every process
        # and service it started is stopped (agents._utils.shutdown).
        with signals_unwind():
            _run(args, console)
        return 0
    except KeyboardInterrupt as exc:
        status, name = interrupt_status(exc)
        errors.print(f"[yellow]interrupted[/] ({name})", highlight=False)
        return status
    except Exception as exc:  # noqa: BLE001 - every error ends as one line (-vv: traceback)
        if args.verbose >= 2:
            traceback.print_exc(file=sys.stderr)
        status, message = _explain(exc)
        errors.print(f"[red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
        return status


def _explain(exc: Exception) -> tuple[int, str]:
    """The exit status and the one-line message for an error out of a command."""
    if isinstance(exc, ValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return 2, " ".join(f"invalid input: {problems}".split())
    if isinstance(exc, _USER_ERRORS):
        return 1, " ".join(str(exc).split()) or type(exc).__name__
    return EXIT_INTERNAL_ERROR, (f"unexpected {describe_exception(exc)} "
                                 "(a bug: rerun with -vv for the traceback and report it)")


if __name__ == "__main__":
    sys.exit(main())

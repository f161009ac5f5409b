"""``colearn agent``: one learner's agent, run until its experiment ends."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from rich.console import Console

from agents.cli import options, texts
from agents.cli.options import Subcommands
from agents.experiment.mli_factory import MliFactorySpec
from agents.experiment.spec import LearnerFactory, SpecError


def register(subcommands: Subcommands) -> None:
    parser = options.add_command(
        subcommands, "agent", run, help="run one learner's agent until the experiment ends")
    options.add_contract_options(parser, experiment=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--learner", type=options.factory_target,
                        metavar="MODULE:FACTORY",
                        help="your code returning an MLI learner over your private data")
    source.add_argument("--mli-factory", type=options.factory_target, metavar="MODULE:NAME",
                        help="a colearn MLI factory (a class, made with no arguments, or an "
                             "instance) whose get_mli builds the learner from --model, "
                             "--model-params, --dataloader and --dataset-params; `colearn "
                             "mli-factory MODULE:NAME` lists what it offers")
    parser.add_argument("--learner-arg", action="append", default=[], type=options.factory_arg,
                        metavar="KEY=VALUE",
                        help="keyword argument for the --learner factory (repeatable; JSON "
                             "values)")
    factory = parser.add_argument_group("with --mli-factory")
    factory.add_argument("--model", metavar="NAME", help="one of the factory's models")
    factory.add_argument("--model-params", metavar="JSON", default=None,
                         help="a JSON object overriding the model's defaults, passed to "
                              "get_mli as this string (default {})")
    factory.add_argument("--dataloader", metavar="NAME",
                         help="one of the model's compatible dataloaders (default: its first)")
    factory.add_argument("--dataset-params", metavar="JSON", default=None,
                         help="a JSON object overriding the dataloader's defaults (its "
                              "location too), passed to get_mli as this string (default {})")
    parser.add_argument("--store", required=True, metavar="URL", help=texts.STORE)
    parser.add_argument("--events", metavar="WS_URL", default=None,
                        help="WebSocket JSON-RPC URL (ws:// or wss://) of a node of the same "
                             "chain: it pushes the contract's events as they happen (anvil and "
                             "Hardhat serve it on their RPC port, geth with --ws). Without it "
                             "the agent polls --rpc for them")
    parser.add_argument("--relay", metavar="URL", default=None,
                        help="a `colearn relay` to hand the signed join, proposals and votes "
                             "to, so this account needs no ETH; votes it has not put on chain "
                             "by --relay-fallback seconds before the deadline are sent directly")
    parser.add_argument("--relay-fallback", type=options.seconds(0.0), default=10.0,
                        metavar="SECONDS", help="see --relay (default 10)")
    parser.add_argument("--poll", type=options.seconds(options.MIN_POLL_SECONDS), default=0.25,
                        metavar="SECONDS",
                        help="seconds between log polls without --events (default 0.25, at "
                             f"least {options.MIN_POLL_SECONDS:g}); also the first retry delay "
                             "after an error")
    parser.add_argument("--state-dir", type=Path, default=None, metavar="DIR",
                        help="where the agent keeps the openings of its sealed votes between "
                             "commit and reveal (one small JSON file per chain, contract, "
                             "experiment and account; no key), so that a restarted agent "
                             "still reveals (default: $XDG_STATE_HOME/colearn, else "
                             "~/.local/state/colearn)")
    options.add_from_block(parser)
    options.add_key_options(parser)

    lister = options.add_command(
        subcommands, "mli-factory", run_list,
        help="list what a colearn MLI factory offers (models and dataloaders with their "
             "default parameters, compatibilities) as JSON")
    lister.add_argument("target", type=options.factory_target, metavar="MODULE:NAME",
                        help="an MLI factory class (made with no arguments) or instance")


_FACTORY_OPTIONS = ("model", "model_params", "dataloader", "dataset_params")


def _learner_source(args: argparse.Namespace) -> LearnerFactory | MliFactorySpec:
    """What builds the learner: ``--learner`` and its arguments, or ``--mli-factory`` and
    its names and JSON parameters (each refused with the other's options)."""
    given = [f"--{name.replace('_', '-')}" for name in _FACTORY_OPTIONS
             if getattr(args, name) is not None]
    if args.learner is not None:
        if given:
            raise SpecError(f"{', '.join(given)} go with --mli-factory, not --learner")
        return LearnerFactory(target=args.learner, args=dict(args.learner_arg))
    if args.learner_arg:
        raise SpecError("--learner-arg goes with --learner; with --mli-factory use "
                        "--model-params and --dataset-params (JSON objects)")
    return MliFactorySpec(target=args.mli_factory, model=args.model,
                          model_params=args.model_params or "{}", dataloader=args.dataloader,
                          dataset_params=args.dataset_params or "{}")


def run_list(args: argparse.Namespace, console: Console) -> None:
    """List what a colearn MLI factory offers, as JSON: its models and dataloaders with their
    default parameters, and which go together; what `colearn agent --mli-factory` takes in
    --model, --model-params, --dataloader and --dataset-params.

    examples:
      colearn mli-factory mypackage.factories:MyMLIFactory
      colearn mli-factory colearn_core.grpc.example_mli_factory:ExampleMliFactory
    """
    offered = MliFactorySpec(target=args.target).offer()
    sys.stdout.write(json.dumps(offered, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(value: object) -> object:
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value, key=str) if isinstance(value, (set, frozenset)) else list(value)
    return repr(value)


def _print_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/colearn``, else ``~/.local/state/colearn``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "colearn"


def run(args: argparse.Namespace, console: Console) -> None:
    r"""Act for one learner (your account, your learner over your private data) in one
    experiment until it ends: join it, propose on your turns, test and vote on the others'
    proposals, adopt each accepted model. It says what it does on stderr (a ready line, one
    line per round, warnings when late or refused; -v: the full log) and prints one JSON
    summary line on stdout at the end (the final model's digest and CID, each round's
    scores).

    examples:
      colearn agent --rpc http://127.0.0.1:8545 --contract 0x5FbDB2315678afecb367f032d93F642f64180aa3 --experiment 1 --keystore alice.json --store http://127.0.0.1:5001 \
          --learner colearn_core.tasks.factories:digits_learner --learner-arg index=0 --learner-arg n_learners=3
      colearn agent --rpc http://127.0.0.1:8545 --contract 0x5FbDB2315678afecb367f032d93F642f64180aa3 --experiment 1 --keystore bob.json --store file:shared \
          --mli-factory colearn_core.grpc.example_mli_factory:ExampleMliFactory --model MODEL --dataset-params '{"location": "data/bob"}'
    """
    from agents.agent.learner_agent import LearnerAgent
    from agents.agent.settings import AgentSettings
    from agents.chain.keys import load_account
    from agents.experiment.model import model_cid
    from agents.relay import RelayClient
    from agents.storage.store import open_store

    if args.events is not None and not args.events.startswith(("ws://", "wss://")):
        raise ValueError(f"--events {args.events!r}: expected a ws:// or wss:// URL")
    source = _learner_source(args)
    if isinstance(source, LearnerFactory):
        source.resolve()  # a wrong module, name or argument: said before anything else
    else:
        source.check()  # a wrong factory, name or parameter: said before anything else
    account = load_account(args.keystore, args.password_file)
    client = options.contract_client(args.rpc, args.contract, account, args.from_block)
    client.experiment(args.experiment)  # UnknownExperiment before any training
    if args.events is not None:  # an unusable event stream: a one-line error, now
        from agents.chain.follow import follow_events

        with follow_events(client, args.experiment, events_url=args.events):
            pass
    learner = source.build()
    with open_store(args.store) as store, contextlib.ExitStack() as stack:
        relay = stack.enter_context(RelayClient(args.relay)) if args.relay else None
        settings = AgentSettings(
            relay_fallback_seconds=args.relay_fallback,
            state_dir=args.state_dir if args.state_dir is not None else default_state_dir(),
            # What the agent does, a plain line each, for the person watching (with or
            # without -v; -v adds the log)
            notify=_print_line)
        agent = LearnerAgent(client, store, learner, args.experiment, relay=relay,
                             settings=settings)
        agent.run(poll_interval=args.poll, events_url=args.events)
        # One machine-readable line (never wrapped) for whoever started the agent.
        sys.stdout.write(json.dumps({
            "experiment": args.experiment, "learner": account.address,
            "model_digest": "0x" + agent.model_digest.hex(),
            "model_cid": model_cid(client, args.experiment, agent.model_digest),
            "seconds": agent.timings.seconds, "cpu_seconds": agent.timings.cpu_seconds,
            "budget_exhausted": agent.budget_exhausted,
            # a staked experiment: what the agent withdrew at the end (wei or token units)
            **({} if agent.withdrawn is None else {"withdrawn": agent.withdrawn}),
            # this learner's own view: scores, votes, each proposal's DP budget
            "rounds": [r.model_dump(mode="json", exclude_none=True)
                       for r in agent.records.values()]}) + "\n")

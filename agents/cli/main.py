"""``colearn``: the top-level parser, the dispatch to a command, exit statuses and logging."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from web3.exceptions import Web3Exception

from agents._utils.shutdown import interrupt_status, signals_unwind
from agents.agent.learner_agent import AgentError
from agents.bench.overhead import BenchError
from agents.chain.errors import ChainError
from agents.chain.keys import KeyLoadError
from agents.cli import (
    account,
    agent,
    audit,
    bench,
    chain,
    compile,
    demo,
    dev,
    example,
    experiment,
    explorer,
    model,
    relay,
    store,
)
from agents.cli.options import HelpFormatter, Run
from agents.devtools.process import DevProcessError
from agents.experiment.spec import SpecError, describe_exception
from agents.relay import RelayError
from agents.storage.store import WeightStoreError

# Errors a user can cause (bad input, unreachable or misbehaving services): one line, exit 1.
# Anything else is a bug: one line too, exit 70, and the traceback with -vv.
_USER_ERRORS = (ChainError, WeightStoreError, AgentError, KeyLoadError, SpecError,
                DevProcessError, BenchError, RelayError, Web3Exception, OSError, ValueError)
EXIT_INTERNAL_ERROR = 70  # sysexits' EX_SOFTWARE
#: The command modules, in the order ``colearn --help`` lists their commands.
_COMMANDS = (example, demo, dev, account, chain, experiment, agent, relay, audit, explorer, model,
             bench, store, compile)


_VERBOSE_HELP = "log agent activity (-v) or everything (-vv); before or after the command"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colearn", description="Collective learning on Ethereum: learners train one "
                                    "model, a contract decides every round.",
        epilog="examples:\n"
               "  colearn demo                 # a whole experiment in this process\n"
               "  colearn dev                  # a dev chain, IPFS and agents' commands\n"
               "  colearn agent --help         # one stakeholder's agent\n\n"
               f"exit status: 0 done, 1 error, 2 bad input, {audit.EXIT_VIOLATIONS} audit "
               f"violations, {EXIT_INTERNAL_ERROR} internal error (-vv shows its traceback), "
               "128+N stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP); a command "
               "that starts processes stops them all however it ends",
        formatter_class=HelpFormatter)
    parser.add_argument("-v", "--verbose", action="count", default=0, help=_VERBOSE_HELP)
    parser.add_argument("--version", action=_VersionAction,
                        help="print the package version, the contract's compiler and its "
                             "bytecode hash, then exit")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.register(subcommands)
    for sub in command_parsers(parser):
        # -v after the command too (counted with the ones before it: see main)
        sub.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                         dest="verbose_after", help=_VERBOSE_HELP)
        if sub.formatter_class is argparse.HelpFormatter:  # a command's own is kept
            sub.formatter_class = HelpFormatter
    return parser


def command_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every command's parser under ``parser`` (subcommands' too), each once."""
    for action in parser._actions:  # argparse has no public walk
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield sub
                yield from command_parsers(sub)


def version_text() -> str:
    """``colearn --version``: the package's version, and the shipped contract's compiler
    and creation-bytecode hash (what a deployment transaction's input starts with)."""
    from importlib.metadata import PackageNotFoundError, version

    from eth_utils import keccak

    from agents.chain.abi import CONTRACT_NAME, load_artifact

    try:
        package = version("colearn-chain")
    except PackageNotFoundError:
        package = "unknown (not installed)"
    artifact = load_artifact()
    bytecode = bytes.fromhex(str(artifact["bytecode"]).removeprefix("0x"))
    compiler = artifact["compiler"]
    return (f"colearn {package}\n"
            f"contract {CONTRACT_NAME}: {compiler['name']} {compiler['version']}, "
            f"bytecode keccak256 0x{keccak(bytecode).hex()}")


class _VersionAction(argparse.Action):
    """``--version``, computed only when asked for."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any):
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                         nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        sys.stdout.write(version_text() + "\n")
        parser.exit()


def _configure_logging(verbosity: int, console: Console) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(name)s: %(message)s", datefmt="[%X]",
                        handlers=[RichHandler(console=console, show_path=False)])
    if verbosity < 2:
        for noisy in ("web3", "eth", "urllib3", "httpx", "httpcore", "matplotlib", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``colearn`` with ``argv`` (default: the process's); returns the exit status."""
    args = _parser().parse_args(argv)
    args.verbose += getattr(args, "verbose_after", 0)
    # No emoji codes (":factory:" in a message would print one); markup only where a
    # command writes it, never in error lines (they echo user input: see below).
    console, errors = Console(emoji=False), Console(stderr=True, emoji=False)
    _configure_logging(args.verbose, errors)
    run: Run = args.run
    try:
        # SIGINT, SIGTERM and SIGHUP unwind the command's `with` blocks, so every process
        # and service it started is stopped (agents._utils.shutdown).
        with signals_unwind():
            status = run(args, console)
        return status or 0
    except KeyboardInterrupt as exc:
        status, name = interrupt_status(exc)
        errors.print(f"[yellow]interrupted[/] ({name})", highlight=False)
        return status
    except Exception as exc:  # noqa: BLE001 - every error ends as one line (-vv: traceback)
        if args.verbose >= 2:
            traceback.print_exc(file=sys.stderr)
        status, message = _explain(exc)
        errors.print("error:", style="red", end=" ", soft_wrap=True, highlight=False)
        errors.print(message, markup=False, emoji=False, soft_wrap=True, highlight=False)
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

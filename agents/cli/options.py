"""What the commands share: argument types, common options, the contract client."""

from __future__ import annotations

import argparse
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from eth_utils import is_address, to_checksum_address

from agents.cli import texts
from agents.experiment.spec import FACTORY_TARGET_PATTERN, SpecError, parse_factory_arg

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from rich.console import Console

    from agents.chain.client import CollectiveLearningClient

#: What ``main`` hands each command module's ``register``.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
#: A command: its parsed arguments and the console a person watches -> exit status (None: 0).
Run: TypeAlias = "Callable[[argparse.Namespace, Console], int | None]"

MAX_UINT256 = 2**256 - 1
MIN_POLL_SECONDS = 0.05
MAX_WAIT_SECONDS = 86_400.0


def _shown(text: str, limit: int = 40) -> str:
    """``text`` quoted for an error message, cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, except that indented lines of a description or epilog (examples, ready
    to paste) are kept as they are; the other lines, paragraph by paragraph, are wrapped
    to the terminal."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out: list[str] = []
        paragraph: list[str] = []
        for line in [*text.splitlines(), ""]:
            if line.strip() and not line.startswith("  "):
                paragraph.append(line.strip())
                continue
            if paragraph:
                out.append(super()._fill_text(" ".join(paragraph), width, indent))
                paragraph.clear()
            out.append(indent + line if line else "")
        return "\n".join(out[:-1])


def command_help(doc: str | None) -> tuple[str, str | None]:
    """A command's description and epilog from its documentation (a run function's or a
    group's docstring): the text before a line ``examples:``, and that line with what follows
    it (one command per indented line, shown as written). Without that line: all of it, and
    no epilog (tests/cli/test_help.py says so)."""
    text = inspect.cleandoc(doc or "")
    match = re.search(r"^examples:$", text, re.MULTILINE)
    if match is None:
        return text, None
    return text[:match.start()].strip(), text[match.start():].rstrip()


def _documented_parser(subcommands: Subcommands, name: str, help: str, doc: str | None,
                       epilog_extra: str = "") -> argparse.ArgumentParser:
    description, epilog = command_help(doc)
    if epilog_extra:
        epilog = "\n\n".join(filter(None, (epilog, epilog_extra.rstrip())))
    return subcommands.add_parser(name, help=help, description=description, epilog=epilog,
                                  formatter_class=HelpFormatter)


def add_group(subcommands: Subcommands, name: str, doc: str | None, *,
              help: str) -> Subcommands:
    """Command group ``name`` (``colearn NAME COMMAND``): where its commands are added;
    one of them is required. ``doc`` (e.g. the module's ``__doc__``) documents it as a run
    function's docstring does a command (:func:`add_command`)."""
    return _documented_parser(subcommands, name, help, doc).add_subparsers(
        dest=f"{name}_command", required=True, metavar="COMMAND")


def add_command(subcommands: Subcommands, name: str, run: Run, *, help: str,
                epilog_extra: str = "") -> argparse.ArgumentParser:
    """The parser of command ``name``, which ``run`` runs: ``help`` in its parent's list; in
    its own help, ``run``'s docstring: the text before its line ``examples:`` as the
    description (wrapped), then that line and the examples (shown as written), then
    ``epilog_extra``. The one way a command is declared: its documentation is its run
    function's."""
    parser = _documented_parser(subcommands, name, help, inspect.getdoc(run), epilog_extra)
    parser.set_defaults(run=run)
    return parser


def seconds(minimum: float, maximum: float = MAX_WAIT_SECONDS) -> Callable[[str], float]:
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


def bounded_int(name: str, minimum: int, maximum: int,
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


experiment_id = bounded_int("an experiment id", 0, MAX_UINT256, "2**256 - 1")
port = bounded_int("a port", 0, 65_535)
block_number = bounded_int("a block number", 0, 2**64 - 1)


def address(text: str) -> str:
    """An argparse type: an Ethereum address, returned checksummed."""
    if not is_address(text):
        raise argparse.ArgumentTypeError(
            f"expected an address (0x and 40 hex digits, checksummed if mixed-case), "
            f"not {_shown(text, 50)}")
    return to_checksum_address(text)


def factory_target(text: str) -> str:
    """An argparse type: ``MODULE:FACTORY``."""
    if re.fullmatch(FACTORY_TARGET_PATTERN, text) is None:
        raise argparse.ArgumentTypeError(
            f"expected MODULE:FACTORY (e.g. mypackage.learners:make_learner), not {_shown(text)}")
    return text


def factory_arg(text: str) -> tuple[str, object]:
    """An argparse type: a factory's ``KEY=VALUE`` keyword argument (JSON value)."""
    try:
        return parse_factory_arg(text)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_contract_options(parser: argparse.ArgumentParser, *, experiment: bool = False) -> None:
    """``--rpc`` and ``--contract``, the chain and the CollectiveLearning contract on it;
    with ``experiment``, ``--experiment`` too (all required)."""
    parser.add_argument("--rpc", required=True, metavar="URL", help=texts.RPC)
    parser.add_argument("--contract", required=True, type=address, metavar="ADDR",
                        help=texts.CONTRACT)
    if experiment:
        parser.add_argument("--experiment", required=True, type=experiment_id, metavar="ID",
                            help=texts.EXPERIMENT)


def add_from_block(parser: argparse.ArgumentParser) -> None:
    """``--from-block``: where to start looking for an experiment."""
    parser.add_argument("--from-block", type=block_number, default=0, metavar="N",
                        help="a block at or before the experiment's creation, to look for it "
                             "from (default 0; saves a long search through a provider that "
                             "caps eth_getLogs ranges)")


def add_key_options(parser: argparse.ArgumentParser) -> None:
    """``--keystore`` and ``--password-file``: the account that signs."""
    parser.add_argument("--keystore", type=Path, default=None,
                        help="encrypted keystore (default: key from $COLEARN_PRIVATE_KEY)")
    parser.add_argument("--password-file", type=Path, default=None,
                        help="keystore password file (default: $COLEARN_PASSWORD, or a prompt)")


def contract_client(rpc: str, contract: str, account: LocalAccount | None = None,
                    from_block: int = 0) -> CollectiveLearningClient:
    """A client of the contract at ``contract``, checked to be deployed there."""
    from agents.chain.client import CollectiveLearningClient
    from agents.chain.network import connect

    client = CollectiveLearningClient(connect(rpc), contract, account)
    client.check_deployed()
    client.first_block = from_block
    return client

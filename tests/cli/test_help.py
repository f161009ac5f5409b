"""Every command's ``--help``: a description, an epilog with an example, and help on every
option and argument, so that none can regress to a bare usage line."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from agents.cli import main as cli


def problems(parser: argparse.ArgumentParser) -> list[str]:
    found = []
    if not parser.description:
        found.append("no description")
    if not parser.epilog or "example" not in parser.epilog or "colearn " not in parser.epilog:
        found.append("no example in the epilog")
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if not action.help:
            found.append(f"no help on {'/'.join(action.option_strings) or action.dest}")
    return found


def command_problems() -> dict[str, list[str]]:
    return {sub.prog: problems(sub) for sub in cli.command_parsers(cli._parser())}


def test_every_command_has_a_description_an_example_and_help_on_every_option():
    found = command_problems()
    assert "colearn bench overhead" in found and "colearn account fund" in found
    assert problems(cli._parser()) == []
    assert {prog: p for prog, p in found.items() if p} == {}


def test_every_help_formats():
    """No stray ``%`` in a help text (argparse formats them when --help is asked for)."""
    for sub in cli.command_parsers(cli._parser()):
        assert sub.prog in sub.format_help()


@pytest.mark.parametrize("argv", [["--help"], ["agent", "--help"], ["account", "fund", "--help"]])
def test_help_keeps_the_examples_lines(argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli.main(argv)
    lines = out.getvalue().splitlines()
    assert any(line.startswith("  colearn ") for line in lines), out.getvalue()

"""``colearn compile --check``: the shipped contract's bytecode, rebuilt from its sources."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from agents.cli import options
from agents.cli.options import Subcommands

#: The exit status when the bytecode is not what the sources build.
EXIT_MISMATCH = 3


def register(subcommands: Subcommands) -> None:
    parser = options.add_command(
        subcommands, "compile", run,
        help="check that the shipped contract bytecode is what its sources build")
    parser.add_argument("--check", action="store_true", required=True,
                        help="recompile and compare (the only mode: building artifacts is "
                             "`npm run compile` in a checkout)")
    parser.add_argument("--artifact", type=Path, default=None, metavar="FILE",
                        help="the artifact to check (default: the one this package deploys)")
    parser.add_argument("--solc", type=Path, default=None, metavar="PATH",
                        help="the solc binary to compile with (its version must be the "
                             "artifact's)")


def run(args: argparse.Namespace, console: Console) -> int:
    """Recompile the contract artifact's standard-JSON input (its sources and settings, as
    scripts/compile.js wrote them) with py-solc-x and compare the creation and runtime
    bytecode with the artifact's. The compiler: --solc, else the solc py-solc-x installed in
    the artifact's version, else solc on PATH in that version, else (in a checkout with
    Node) scripts/solc-forge.js over npm's solc. Prints a one-line verdict; exit 0 on a
    match, 3 on a mismatch, 1 when it cannot check.

    examples:
      colearn compile --check                       # the artifact colearn deploys
      colearn compile --check --solc /usr/bin/solc  # with this compiler
      colearn compile --check --artifact other/CollectiveLearning.json
    """
    from agents.devtools.solc_check import SHIPPED_ARTIFACT, check_artifact

    with console.status("compiling (about 15 s)..."):
        verdict = check_artifact(args.artifact or SHIPPED_ARTIFACT, args.solc)
    style = "green" if verdict.ok else "red"
    console.print(verdict.line(), style=style, highlight=False, soft_wrap=True)
    return 0 if verdict.ok else EXIT_MISMATCH

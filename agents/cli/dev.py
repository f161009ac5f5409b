"""``colearn dev``: a whole dev environment in one command (anvil, js-ipfs, funded
stakeholder accounts, the contract, an experiment spec) and the commands to paste."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from agents.cli import options
from agents.cli.chain import add_anvil_option
from agents.cli.options import Subcommands

if TYPE_CHECKING:
    from agents.devtools.devenv import DevEnvironment


def register(subcommands: Subcommands) -> None:
    dev = options.add_command(
        subcommands, "dev", run,
        help="run a dev chain and IPFS node with funded accounts until Ctrl-C")
    dev.add_argument("--learners", type=options.bounded_int("a number of learners", 2, 20),
                     default=3, metavar="N", help="stakeholders (default 3)")
    dev.add_argument("--rounds", type=options.bounded_int("a number of rounds", 1, 1000),
                     default=3, metavar="N", help="rounds of the spec's experiment (default 3)")
    dev.add_argument("--out", type=Path, default=Path("colearn-dev"), metavar="DIR",
                     help="where the keystores, password file, spec and dev.json go "
                          "(default ./colearn-dev; keystores found there are reused)")
    dev.add_argument("--print-keys", action="store_true",
                     help="print the stakeholders' private keys (COLEARN_PRIVATE_KEY) "
                          "instead of writing keystores")
    dev.add_argument("--port", type=options.port, default=None,
                     help="anvil's port (default: a free one)")
    dev.add_argument("--ipfs-port", type=options.port, default=None, metavar="PORT",
                     help="js-ipfs's RPC API port (default: a free one)")
    dev.add_argument("--block-time", type=options.seconds(options.MIN_POLL_SECONDS),
                     default=1.0, metavar="SECONDS",
                     help="seconds between empty blocks, so deadlines pass (default 1)")
    add_anvil_option(dev)


def run(args: argparse.Namespace, console: Console) -> None:
    """Start anvil and a js-ipfs node on 127.0.0.1, fund one account per stakeholder (keystores
    and a password file in --out, or --print-keys), deploy the contract, write a
    ready-to-run experiment spec, and print the commands that create the experiment and run each
    stakeholder's agent. Runs until Ctrl-C (or SIGTERM), then stops anvil and IPFS.

    examples:
      colearn dev                      # 3 stakeholders, files in ./colearn-dev
      colearn dev --learners 4 --rounds 8 --out /tmp/exp
    Then paste the printed commands: `colearn experiment create ...` once, and one
    `colearn agent ...` per stakeholder, each in its own terminal.
    """
    from agents.devtools.devenv import DevEnvironment, DevSettings

    settings = DevSettings(out=args.out, learners=args.learners, rounds=args.rounds,
                           port=args.port or None, ipfs_port=args.ipfs_port or None,
                           block_time=args.block_time, anvil=args.anvil,
                           print_keys=args.print_keys)
    env = DevEnvironment(settings)
    try:  # stopped however this ends: Ctrl-C, SIGTERM, a service that exits, an error
        with console.status("starting anvil and js-ipfs, funding accounts, deploying..."):
            env.start()
        _print_guide(env, console)
        while True:
            env.check_running()
            time.sleep(0.5)
    finally:
        env.stop()


def _print_guide(env: DevEnvironment, console: Console) -> None:
    assert env.state is not None
    for name, value in env.describe().items():
        console.print(f"[bold]{name:>8}[/]  {escape(value)}", highlight=False)
    if env.settings.print_keys:
        console.print("[yellow]private keys of throwaway dev accounts (never use them "
                      "elsewhere):[/]")
        for learner in env.state.learners:
            console.print(f"  stakeholder {learner.index + 1}: {learner.address} "
                          f"{learner.private_key}", highlight=False, soft_wrap=True)
    console.print()
    console.print("[bold]1.[/] Create the experiment (prints its id: 1, the first on this "
                  "contract):")
    _command(console, env.create_command())
    console.print(f"[bold]2.[/] Run one agent per stakeholder, each in its own terminal "
                  f"({len(env.state.learners)} terminals):")
    for command in env.agent_commands():
        _command(console, command)
    console.print("[bold]3.[/] Each agent prints one JSON line when the experiment is "
                  "finished. Then audit it from the chain alone (weights checked in IPFS):")
    _command(console, env.audit_command())
    console.print()
    console.print("[bold green]ready[/]: Ctrl-C stops anvil and IPFS "
                  "(the chain and the stored weights are lost).", highlight=False)


def _command(console: Console, command: str) -> None:
    """A command on one line, exactly as it is to be pasted (never wrapped or styled)."""
    console.print(command, markup=False, highlight=False, soft_wrap=True)

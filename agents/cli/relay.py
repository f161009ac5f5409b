"""``colearn relay``: learners' signed calls put on chain, their gas paid."""

from __future__ import annotations

import argparse
import sys
import threading

from rich.console import Console

from agents.cli import options
from agents.cli.options import Subcommands
from agents.relay import RelayError


def register(subcommands: Subcommands) -> None:
    parser = options.add_command(
        subcommands, "relay", run,
        help="relay learners' signed joins, proposals and votes (sealed: commitments and "
             "reveals), paying their gas")
    options.add_contract_options(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=options.port, default=8600,
                        help="port (default 8600; 0: any free)")
    parser.add_argument("--batch-delay", type=options.seconds(0.0), default=1.0,
                        help="seconds a round's first vote waits for others before the batch "
                             "is sent (default 1); a complete ballot goes at once")
    parser.add_argument("--experiment", type=options.experiment_id, action="append", default=[],
                        metavar="ID",
                        help="serve this experiment: relay its learners' signed calls and "
                             "close its timed-out rounds until it completes (repeatable)")
    parser.add_argument("--any-experiment", action="store_true",
                        help="serve any experiment of the contract, each once one of its "
                             "learners hands in a genuine signature for an open round (the "
                             "relay then pays for closing its rounds)")
    options.add_from_block(parser)
    options.add_key_options(parser)


def run(args: argparse.Namespace, console: Console) -> None:
    """Serve learners whose accounts hold no ETH: their agents (`colearn agent --relay URL`)
    hand it signed joins, proposals and votes, which it puts on chain in batches, paying the
    gas from its own account; it also closes timed-out rounds of the experiments it serves.
    Prints its URL on stdout.

    examples:
      colearn relay --rpc http://127.0.0.1:8545 --contract 0x5FbDB2315678afecb367f032d93F642f64180aa3 --experiment 1 --keystore payer.json
      colearn relay --rpc http://127.0.0.1:8545 --contract 0x5FbDB2315678afecb367f032d93F642f64180aa3 --any-experiment --port 0
    """
    from agents.chain.keys import load_account
    from agents.relay import Relay, RelayServer

    if not args.experiment and not args.any_experiment:
        raise RelayError("name the experiments to serve (--experiment ID, repeatable), "
                         "or ask for --any-experiment")
    service = Relay(options.contract_client(args.rpc, args.contract,
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

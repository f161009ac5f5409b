"""Help texts several commands share (their options mean the same everywhere)."""

from __future__ import annotations

RPC = ("the chain's JSON-RPC URL (http:// or https://; e.g. http://127.0.0.1:8545 for "
       "`colearn chain` or `colearn dev`)")
CONTRACT = "the CollectiveLearning contract's address (what `colearn deploy` printed)"
EXPERIMENT = "the experiment's id (what `colearn experiment create` printed)"
STORE = ("weight store: file:DIR (a directory every participant reads) or an IPFS node's RPC "
         "URL (Kubo's default: http://127.0.0.1:5001; `colearn dev` prints its node's)")
# A dev chain's first funded account, as anvil and `colearn chain` print it (examples only).
DEV_ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
CONTRACT_EXAMPLE = "0x5FbDB2315678afecb367f032d93F642f64180aa3"  # the first deployment on anvil


def examples(*lines: str) -> str:
    """An epilog: ``examples:`` then one command (and its comment) per line."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)

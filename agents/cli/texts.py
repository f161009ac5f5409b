"""Help texts several commands share (their options mean the same everywhere)."""

from __future__ import annotations

RPC = ("the chain's JSON-RPC URL (http:// or https://; e.g. http://127.0.0.1:8545 for "
       "`colearn chain` or `colearn dev`)")
CONTRACT = "the CollectiveLearning contract's address (what `colearn deploy` printed)"
EXPERIMENT = "the experiment's id (what `colearn experiment create` printed)"
STORE = ("weight store: file:DIR (a directory every participant reads) or an IPFS node's RPC "
         "URL (Kubo's default: http://127.0.0.1:5001; `colearn dev` prints its node's)")

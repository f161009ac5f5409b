"""The physical floor of a round's protocol time: what moving one proposal's bytes
minimally costs on this machine, as issue 17 defines it.

A round moves one payload (the encoded proposal, ``size`` bytes) from the proposer to
every voter. At the least, the proposer writes it into one buffer (a memory copy),
hashes it twice (the sha256 digest on chain, and the CID, its address: sha256 over its
256 KiB chunks) and writes it to the store (a file write and fsync); each of the ``n - 1``
voters reads it (a read of a cached file) and hashes it once (the digest on chain, which
binds the bytes: the CID need not be recomputed). Each step is timed here on a payload
of that size, the fastest of a few repeats, and the floor a round is

    copy + sha256 + CID + write + (n - 1) * (read + sha256)

It is work, one step after another on one core: it compares with the CPU time the
agents spend moving weights (on a machine with fewer cores than voters, their wall-clock
time includes waiting for a core). It leaves out what the chain itself costs
(transactions, status reads, events), which does not grow with the model.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agents.storage.cid import compute_cid

_REPEATS = 3
_PIECE = 1024 * 1024


def _fastest(step: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - started)
    return best


def machine_limits(payload: bytes | memoryview, directory: Path,
                   repeat: int = _REPEATS) -> dict[str, float]:
    """The fastest of ``repeat`` runs of each thing moving ``payload`` can cost on this
    machine: ``copy`` (a memory copy), ``sha256``, ``cid``, ``write`` (a file write and
    fsync), ``read`` (a read of that file, cached) and ``loopback`` (a TCP transfer on
    127.0.0.1). A scratch file is written in ``directory`` and removed."""
    buffer = bytearray(len(payload))
    source, target = np.frombuffer(payload, np.uint8), np.frombuffer(buffer, np.uint8)
    path = directory / ".floor-scratch"

    def write() -> None:
        with path.open("wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())

    def read() -> None:
        with path.open("rb") as file:
            file.readinto(buffer)

    try:
        return {
            "copy": _fastest(lambda: np.copyto(target, source), repeat),
            "sha256": _fastest(lambda: hashlib.sha256(payload).digest(), repeat),
            "cid": _fastest(lambda: compute_cid(payload), repeat),
            "write": _fastest(write, repeat),
            "read": _fastest(read, repeat),
            "loopback": _fastest(lambda: _loopback(payload, buffer), repeat),
        }
    finally:
        path.unlink(missing_ok=True)


def round_floor(steps: dict[str, float], n_learners: int) -> dict[str, float]:
    """The floor of a round with ``n_learners`` from :func:`machine_limits`' ``steps``
    (see the module's docstring): the proposer's part, a voter's and the round's."""
    proposer = steps["copy"] + steps["sha256"] + steps["cid"] + steps["write"]
    voter = steps["read"] + steps["sha256"]
    return {"proposer_seconds": proposer, "voter_seconds": voter,
            "seconds_per_round": proposer + (n_learners - 1) * voter}


def measure_floor(payload: bytes | memoryview, n_learners: int,
                  directory: Path) -> dict[str, Any]:
    """Each step's seconds for ``payload`` (see the module's docstring) and the floor of a
    round with ``n_learners``."""
    steps = machine_limits(payload, directory)
    return {"payload_bytes": len(payload), "steps_seconds": steps,
            **round_floor(steps, n_learners)}


def _loopback(payload: bytes | memoryview, buffer: bytearray) -> None:
    """Sends ``payload`` through a TCP connection on 127.0.0.1 into ``buffer``."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        sender = socket.create_connection(server.getsockname())
        receiver, _ = server.accept()

    def send() -> None:
        with sender:
            sender.sendall(payload)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    with receiver:
        view, got = memoryview(buffer), 0
        while got < len(payload):
            n = receiver.recv_into(view[got:], min(len(payload) - got, _PIECE))
            if not n:
                raise ConnectionError("loopback transfer ended early")
            got += n
    thread.join()

"""`colearn bench weights`: what moving a model's weights costs, step by step, beside the
machine's limits.

For each model size (float32 parameters in a ResNet-like list of layers) it times what a
proposer does (encode, sha256 and CID in one pass, store put) and what a voter does (store
get, which checks the content against the digest on chain, then decode), the median of a few
repetitions, and the floor each step runs against on this machine:

* encode, decode: a fresh numpy copy of the payload (decode should cost far less: it makes
  views, no copy);
* hash: ``hashlib.sha256`` of the payload alone (the one pass computes the CID too, on a
  second thread);
* put: a disk write and fsync of the payload (file store) or a loopback TCP transfer of it
  (IPFS: what an upload to a local node cannot beat);
* get: a cached file read plus sha256 (file store), or the
  slower of sha256 and the loopback transfer (IPFS).

Each step's CPU time (this process, all threads) is reported beside its wall-clock time:
with an IPFS node, the client's own cost apart from the node's. It also reports the peak
memory a get and a decode add (the peak RSS over the RSS before, Linux's ``VmHWM``) as a
multiple of the payload.

A round of ``n_learners`` moves one proposal to ``n_learners - 1`` voters: its estimate
is the proposal's steps plus that many votes', beside the physical floor of the same
work (:func:`agents.bench.floor.round_floor`: one copy, the digest, the CID and a disk
write for the proposer; a cached read and the digest for each voter).
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from agents.bench.floor import machine_limits, round_floor
from agents.bench.output import emit
from agents.storage.cid import content_digests
from agents.storage.store import FileWeightStore, WeightStore, open_store
from colearn_core.codec import decode_weights, encode_weights
from colearn_core.utils import rss

log = logging.getLogger(__name__)

PARAM_COUNTS = (100_000, 1_000_000, 10_000_000, 100_000_000)
"""Model sizes measured by default (float32 parameters)."""

# Relative channel widths of a ResNet's convolutions, stage by stage.
_WIDTHS = [1] * 3 + [2] * 4 + [4] * 6 + [8] * 3


def _times(seconds: float, limit: float) -> float:
    """``seconds`` as a multiple of ``limit`` (infinite for a limit too small to time)."""
    return seconds / limit if limit > 0 else float("inf")


class Step(BaseModel):
    step: str
    seconds: float
    cpu_seconds: float
    """This process's CPU time (all its threads): with an IPFS node, the client's own cost
    beside the node's."""
    limit: str
    limit_seconds: float

    @property
    def ratio(self) -> float:
        return _times(self.seconds, self.limit_seconds)


class RoundEstimate(BaseModel):
    """A round's weights work: the proposal's steps and ``learners - 1`` votes'."""

    learners: int
    seconds: float
    cpu_seconds: float
    floor_seconds: float
    """:func:`agents.bench.floor.round_floor` on this machine for this payload."""

    @property
    def ratio(self) -> float:
        return _times(self.seconds, self.floor_seconds)

    @property
    def cpu_ratio(self) -> float:
        return _times(self.cpu_seconds, self.floor_seconds)


class SizeReport(BaseModel):
    params: int
    arrays: int
    payload_bytes: int
    repeat: int
    steps: list[Step]
    round: RoundEstimate
    get_decode_peak_bytes: int | None
    """How far a get and a decode raise the peak RSS; ``None`` where the system does not
    tell (:class:`~colearn_core.utils.rss.RssUnavailable`)."""


class WeightsReport(BaseModel):
    store: str
    sizes: list[SizeReport]


def model_weights(n_params: int, seed: int = 0) -> list[np.ndarray]:
    """About ``n_params`` float32 parameters as a ResNet-like list of arrays: 3x3
    convolution kernels whose channels double stage by stage, each followed by a batch
    norm's four vectors, then a dense layer taking up what is left."""
    rng = np.random.default_rng(seed)
    scale = max(1, int((0.9 * n_params / (9 * sum(w * w for w in _WIDTHS))) ** 0.5))
    shapes: list[tuple[int, ...]] = []
    for width in _WIDTHS:
        channels = scale * width
        shapes.append((channels, channels, 3, 3))
        shapes += [(channels,)] * 4
    used = sum(int(np.prod(s)) for s in shapes)
    outputs = max(1, (n_params - used) // (scale * _WIDTHS[-1]))
    shapes += [(scale * _WIDTHS[-1], outputs), (outputs,)]
    return [rng.standard_normal(shape, dtype=np.float32) for shape in shapes]


def _median(fn: Callable[[], Any], repeat: int, before: Callable[[], Any] | None = None,
            ) -> tuple[float, float]:
    """The median wall-clock and CPU seconds of ``repeat`` calls of ``fn``."""
    wall, cpu = [], []
    for _ in range(repeat):
        if before is not None:
            before()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def _step(name: str, timed: tuple[float, float], limit: tuple[str, float]) -> Step:
    return Step(step=name, seconds=timed[0], cpu_seconds=timed[1], limit=limit[0],
                limit_seconds=limit[1])


def measure_size(store: WeightStore, n_params: int, repeat: int, scratch: Path,
                 n_learners: int = 5) -> SizeReport:
    """Times every step for a model of ``n_params`` parameters (see the module's doc)."""
    weights = model_weights(n_params)
    data = encode_weights(weights)
    digests = content_digests(data)
    size = len(data)
    is_file = isinstance(store, FileWeightStore)

    def forget() -> None:  # a file store keeps what it has: each put must write
        if isinstance(store, FileWeightStore):
            (store.root / digests.cid).unlink(missing_ok=True)

    limits = machine_limits(data, scratch, repeat)
    copy = ("memory copy", limits["copy"])
    sha = ("sha256", limits["sha256"])
    disk = ("disk write+fsync", limits["write"])
    loop = ("loopback TCP", limits["loopback"])
    steps = [
        _step("encode", _median(lambda: encode_weights(weights), repeat), copy),
        _step("sha256+CID (one pass)", _median(lambda: content_digests(data), repeat), sha),
        _step("store put", _median(lambda: store.put(data, digests=digests), repeat,
                                   before=forget), disk if is_file else loop),
    ]
    store.put(data, digests=digests)
    steps.append(_step("store get (+verify)", _median(  # checked as a voter does
        lambda: store.get(digests.cid, max_bytes=size, sha256=digests.sha256), repeat),
        ("cached read + sha256", limits["read"] + sha[1]) if is_file
        else max(sha, loop, key=lambda f: f[1])))
    fetched = store.get(digests.cid, max_bytes=size)
    steps.append(_step("decode", _median(
        lambda: decode_weights(fetched.data, max_bytes=size), repeat), copy))
    for name, part in (("proposal: encode+hash+put", steps[:3]),
                       ("vote: get+verify+decode", steps[3:5])):
        steps.append(Step(step=name, seconds=sum(s.seconds for s in part),
                          cpu_seconds=sum(s.cpu_seconds for s in part), limit="their limits",
                          limit_seconds=sum(s.limit_seconds for s in part)))
    proposal, vote = steps[-2:]
    voters = n_learners - 1
    estimate = RoundEstimate(
        learners=n_learners, seconds=proposal.seconds + voters * vote.seconds,
        cpu_seconds=proposal.cpu_seconds + voters * vote.cpu_seconds,
        floor_seconds=round_floor(limits, n_learners)["seconds_per_round"])
    return SizeReport(params=sum(a.size for a in weights), arrays=len(weights),
                      payload_bytes=size, repeat=repeat, steps=steps, round=estimate,
                      get_decode_peak_bytes=_get_decode_peak(store, digests.cid, size))


def _get_decode_peak(store: WeightStore, cid: str, size: int) -> int | None:
    """How far a get and a decode take this process's resident memory above where it was
    (its peak RSS: the buffers a store reads into are not the heap's); ``None`` where the
    system cannot tell (not Linux, or no resetting the peak)."""
    rss.trim_heap()
    try:
        before = rss.memory()[0]
        rss.reset_peak()
    except rss.RssUnavailable as exc:
        log.warning("peak memory of a get and a decode not measured: %s", exc)
        return None
    fetched = store.get(cid, max_bytes=size)
    decoded = decode_weights(fetched.data, max_bytes=size)
    peak = rss.memory()[1]
    del decoded, fetched
    return max(0, peak - before)


@contextmanager
def _opened(store_url: str | None) -> Iterator[tuple[WeightStore, str, Path]]:
    """The store to measure, its description, and a scratch directory on its disk."""
    with tempfile.TemporaryDirectory(prefix="colearn-bench-weights-") as tmp:
        if store_url is None:
            with FileWeightStore(Path(tmp) / "store") as store:
                yield store, f"file store in {tmp}", Path(tmp)
        else:
            with open_store(store_url) as store:
                yield store, store_url, Path(tmp)


def bench_weights(*, param_counts: tuple[int, ...] = PARAM_COUNTS, store_url: str | None = None,
                  repeat: int = 3, n_learners: int = 5, as_json: bool = False,
                  console: Console | None = None) -> WeightsReport:
    """Measures every size, prints the table (JSON on stdout with ``as_json``) and returns
    the report; the round estimate is for ``n_learners``."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, not {repeat}")
    if n_learners < 2:
        raise ValueError(f"a round needs at least 2 learners, not {n_learners}")
    if any(n < 1 for n in param_counts):
        raise ValueError("parameter counts must be positive")
    console = console or Console(stderr=as_json)
    sizes = []
    with _opened(store_url) as (store, described, scratch):
        for n_params in param_counts:
            with console.status(f"{n_params:,} parameters on the {described}..."):
                sizes.append(measure_size(store, n_params, repeat, scratch, n_learners))
    report = WeightsReport(store=described, sizes=sizes)
    emit(report, as_json, print_weights_report, console)
    return report


def print_weights_report(report: WeightsReport, console: Console) -> None:
    if not console.is_terminal:  # rich gives a pipe 80 columns: too few for the table
        console = Console(file=console.file, width=120)
    for size in report.sizes:
        mb = size.payload_bytes / 1e6
        table = Table(title=f"{size.params:,} parameters in {size.arrays} arrays: "
                            f"{mb:,.1f} MB, {report.store} (median of {size.repeat})")
        for name in ("step", "seconds", "MB/s", "CPU s", "limit", "limit s", "x limit"):
            table.add_column(name, justify="left" if name in ("step", "limit") else "right",
                             no_wrap=True)
        for step in size.steps:
            table.add_row(step.step, f"{step.seconds:.4f}",
                          f"{mb / step.seconds:,.0f}" if step.seconds > 0 else "-",
                          f"{step.cpu_seconds:.4f}", step.limit, f"{step.limit_seconds:.4f}", f"{step.ratio:.2f}")
        console.print(table)
        estimate = size.round
        console.print(f"a round of {estimate.learners} learners (the proposal and "
                      f"{estimate.learners - 1} votes): {estimate.seconds:.3f} s "
                      f"({estimate.ratio:.2f}x the floor of {estimate.floor_seconds:.3f} s), "
                      f"CPU {estimate.cpu_seconds:.3f} s ({estimate.cpu_ratio:.2f}x)",
                      highlight=False)
        peak = size.get_decode_peak_bytes
        console.print("peak memory added by get + decode: " + (
            "not measured on this system" if peak is None else
            f"{peak / size.payload_bytes:.2f}x the payload ({peak / 1e6:,.1f} MB)"),
            highlight=False)

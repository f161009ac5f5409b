"""``colearn bench memory``: a voter's resident memory while it tests a proposal, and
after, in model sizes.

In a fresh child process (``spawn``: nothing of this process's memory in it), a
:class:`~colearn_core.learners.pytorch.PytorchLearner` gets an MLP of about ``params``
float32 parameters (a stack of square ``Linear`` layers; a few tiny batches of data).
The proposal (its weights, perturbed) is encoded and put in a file weight store before
anything is measured: encoding is the proposer's work, and a voter starts from the bytes
in the store. Then:

- **baseline**: the RSS with the learner built and its model loaded, and nothing else;
- **vote**: what a voter does (:class:`~agents.agent.verify.WeightsVerifier`: fetch the
  bytes, check their digest, decode them with the codec's ``decode_weights``, check they
  fit the model; then ``mli_test_weights``), then every reference to the proposal is
  dropped. The peak RSS during it (``VmHWM``, reset first) and the RSS after it;
- **adopt**: the same fetch, then ``mli_accept_weights`` (the proposal copied into the
  model), the proposal dropped: its peak and the RSS after.

Each figure is also given over the baseline, in model sizes (the model's bytes). The
target (issue 17) is a vote's peak at most the baseline plus 2 model sizes: the model is
in the baseline, the fetched bytes are one more, and everything else (decoded views,
the model's tensors swapped, scoring's activations) should be small beside them.
"""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
import tempfile
from multiprocessing.connection import Connection
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from agents.bench.output import emit

#: A vote's peak at most the baseline plus this many model sizes.
TARGET_PEAK_MODELS = 2.0
DEFAULT_PARAMS = 25_000_000
_HIDDEN_LAYERS = 4  # square width x width layers
_FEATURES, _CLASSES, _SAMPLES = 16, 10, 32


class Phase(BaseModel):
    """One phase's peak RSS and the RSS after it, in bytes and over the baseline in
    model sizes."""

    peak_bytes: int
    after_bytes: int
    peak_over_baseline_models: float
    after_over_baseline_models: float


class MemoryReport(BaseModel):
    benchmark: str = "memory"
    params: int  # the model's actual parameter count
    model_bytes: int
    payload_bytes: int  # the encoded proposal
    baseline_bytes: int
    vote: Phase
    adopt: Phase
    approve: bool  # the learner's vote (the proposal is perturbed: either way)
    target_peak_models: float = TARGET_PEAK_MODELS
    target_met: bool


def mlp_width(params: int) -> int:
    """The width of the square hidden layers giving about ``params`` parameters."""
    if params < 1000:
        raise ValueError("at least 1000 parameters")
    return max(8, int((params / _HIDDEN_LAYERS) ** 0.5))


def _learner(params: int) -> Any:
    import torch
    from torch import nn

    from colearn_core.learners.pytorch import PytorchLearner

    width = mlp_width(params)
    generator = torch.Generator().manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(_FEATURES, width)]
    for _ in range(_HIDDEN_LAYERS):
        layers += [nn.ReLU(), nn.Linear(width, width)]
    layers += [nn.ReLU(), nn.Linear(width, _CLASSES)]
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.uniform_(-0.01, 0.01, generator=generator)
    x = torch.randn(_SAMPLES, _FEATURES, generator=generator)
    y = torch.randint(0, _CLASSES, (_SAMPLES,), generator=generator)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    return PytorchLearner(model, torch.optim.SGD(model.parameters(), lr=0.01), loader, loader,
                          loader, num_threads=1)


def _phase(baseline: int, model_bytes: int, peak: int, after: int) -> Phase:
    return Phase(peak_bytes=peak, after_bytes=after,
                 peak_over_baseline_models=(peak - baseline) / model_bytes,
                 after_over_baseline_models=(after - baseline) / model_bytes)


def _measure(params: int) -> dict[str, Any]:
    """The measurement itself (in the child process)."""
    from agents.agent.verify import WeightsVerifier
    from agents.storage.store import FileWeightStore
    from colearn_core.codec import encode_weights
    from colearn_core.ml_interface import Weights
    from colearn_core.utils.rss import memory, reset_peak

    learner = _learner(params)
    template = learner.mli_get_current_weights().weights
    n_params = sum(t.numel() for t in template.values())
    model_bytes = sum(t.numel() * t.element_size() for t in template.values())
    with tempfile.TemporaryDirectory(prefix="colearn-bench-memory-") as directory:
        store = FileWeightStore(directory)
        for tensor in template.values():
            tensor.mul_(1.01)  # a proposal, not the current weights
        payload = encode_weights(template)
        digest, payload_bytes = hashlib.sha256(payload).digest(), len(payload)
        cid = store.put(payload)
        verifier = WeightsVerifier(store, template, 2 * payload_bytes)
        del template, payload
        gc.collect()

        baseline, _ = memory()
        reset_peak()
        weights = verifier.fetch(cid, digest, None)
        approve = learner.mli_test_weights(Weights(weights=weights)).vote
        del weights
        after_vote, vote_peak = memory()

        reset_peak()
        weights = verifier.fetch(cid, digest, None)
        learner.mli_accept_weights(Weights(weights=weights))
        del weights
        after_adopt, adopt_peak = memory()
    vote = _phase(baseline, model_bytes, vote_peak, after_vote)
    return MemoryReport(
        params=n_params, model_bytes=model_bytes, payload_bytes=payload_bytes,
        baseline_bytes=baseline, vote=vote,
        adopt=_phase(baseline, model_bytes, adopt_peak, after_adopt), approve=bool(approve),
        target_met=vote.peak_over_baseline_models <= TARGET_PEAK_MODELS,
    ).model_dump()


def _child(params: int, connection: Connection) -> None:
    try:
        connection.send(("ok", _measure(params)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        connection.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        connection.close()


def measure_vote_memory(params: int = DEFAULT_PARAMS, timeout: float = 600.0) -> MemoryReport:
    """Runs the measurement (see the module's docstring) in a fresh child process."""
    mlp_width(params)  # bad arguments fail here
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(params, sender), daemon=True)
    process.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            raise TimeoutError(f"the memory benchmark gave no result within {timeout:g} s")
        status, result = receiver.recv()
    except EOFError:
        raise RuntimeError(f"the memory benchmark's process died (exit code "
                           f"{process.exitcode})") from None
    finally:
        receiver.close()
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
            process.join()
    if status != "ok":
        raise RuntimeError(f"the memory benchmark failed: {result}")
    return MemoryReport.model_validate(result)


def print_memory_report(report: MemoryReport, console: Console) -> None:
    mb = 1024 * 1024
    table = Table(title=f"a voter's RSS: PytorchLearner, {report.params:,} float32 parameters "
                        f"({report.model_bytes / mb:.1f} MiB)")
    for column in ("", "peak MiB", "peak − baseline", "after MiB", "after − baseline"):
        table.add_column(column, justify="right" if column else "left")
    table.caption = ("baseline: the learner built; vote: fetch, decode, test, drop; "
                     "adopt: fetch, decode, accept, drop")
    table.add_row("baseline", f"{report.baseline_bytes / mb:.1f}", "", "", "")
    for name, phase in (("vote", report.vote), ("adopt", report.adopt)):
        table.add_row(name, f"{phase.peak_bytes / mb:.1f}",
                      f"{phase.peak_over_baseline_models:.2f} models",
                      f"{phase.after_bytes / mb:.1f}",
                      f"{phase.after_over_baseline_models:.2f} models")
    console.print(table)
    check = "[green]yes[/]" if report.target_met else "[red]no[/]"
    console.print(f"a vote's peak over the baseline: {report.vote.peak_over_baseline_models:.2f}"
                  f" model sizes (target ≤ {report.target_peak_models:g}: {check})")


def bench_memory(params: int = DEFAULT_PARAMS, as_json: bool = False) -> MemoryReport:
    """``colearn bench memory [--params N] [--json]``: measures and prints the report."""
    report = measure_vote_memory(params)
    emit(report, as_json, print_memory_report)
    return report

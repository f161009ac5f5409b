"""``colearn bench weights``: it runs and reports every step (no timing assertions)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from cli_runner import run_colearn

from agents.bench.weights import model_weights


def test_the_model_is_resnet_like_and_about_the_size_asked():
    for n in (100_000, 2_000_000):
        arrays = model_weights(n)
        assert abs(sum(a.size for a in arrays) - n) < 0.01 * n
        assert len(arrays) > 50 and all(a.dtype == np.float32 for a in arrays)
        assert arrays[0].ndim == 4


def test_the_command_prints_every_step_as_json():
    status, out, err = run_colearn("bench", "weights", "--params", "100000", "--repeat", "1",
                                   "--json")
    assert status == 0, err
    report = json.loads(out)
    assert report["store"].startswith("file store in ")
    (size,) = report["sizes"]
    assert abs(size["params"] - 100_000) < 1000 and size["payload_bytes"] > 4 * size["params"]
    steps = {s["step"]: s for s in size["steps"]}
    assert {"encode", "sha256+CID (one pass)", "store put", "store get (+verify)",
            "decode"} <= set(steps)
    assert all(s["seconds"] >= 0 and s["limit_seconds"] >= 0 for s in steps.values())
    # the buffer read into is the only copy: the peak RSS grows by about the payload
    assert 0.5 * size["payload_bytes"] <= size["get_decode_peak_bytes"] <= 3 * size["payload_bytes"]
    estimate = size["round"]  # the default round: the proposal and 4 votes
    proposal, vote = steps["proposal: encode+hash+put"], steps["vote: get+verify+decode"]
    assert estimate["learners"] == 5 and estimate["floor_seconds"] > 0
    assert estimate["seconds"] == pytest.approx(proposal["seconds"] + 4 * vote["seconds"])
    assert estimate["cpu_seconds"] == pytest.approx(
        proposal["cpu_seconds"] + 4 * vote["cpu_seconds"])


def test_the_round_has_the_learners_asked_and_at_least_two():
    status, out, err = run_colearn("bench", "weights", "--params", "100000", "--repeat", "1",
                                   "--learners", "3")
    assert status == 0, err
    assert "a round of 3 learners (the proposal and 2 votes)" in out + err
    status, out, err = run_colearn("bench", "weights", "--params", "1000", "--learners", "1")
    assert status != 0 and "at least 2 learners" in err and "Traceback" not in err


def test_the_table_names_the_steps_and_their_limits():
    status, out, err = run_colearn("bench", "weights", "--params", "100000", "--repeat", "1")
    assert status == 0, err
    text = out + err
    for word in ("encode", "store put", "disk write+fsync", "sha256", "x limit",
                 "peak memory added by get + decode"):
        assert word in text


def test_a_system_without_the_rss_peak_still_gets_every_step(monkeypatch, tmp_path):
    from rich.console import Console

    from agents.bench.weights import WeightsReport, measure_size, print_weights_report
    from agents.storage.store import FileWeightStore
    from colearn_core.utils import rss

    def unavailable() -> None:
        raise rss.RssUnavailable("no /proc/self/clear_refs here")

    monkeypatch.setattr(rss, "reset_peak", unavailable)
    size = measure_size(FileWeightStore(tmp_path / "store"), 10_000, 1, tmp_path)
    assert size.get_decode_peak_bytes is None and len(size.steps) == 7
    out = io.StringIO()
    print_weights_report(WeightsReport(store="file", sizes=[size]), Console(file=out))
    assert "peak memory added by get + decode: not measured" in out.getvalue()

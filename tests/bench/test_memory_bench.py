"""``colearn bench memory``: a voter's RSS during a vote, in model sizes."""

from __future__ import annotations

import json

from cli_runner import run_colearn

from agents.bench.memory import mlp_width


def test_a_vote_holds_the_model_and_the_proposal_no_more():
    status, out, err = run_colearn("bench", "memory", "--params", "1000000", "--json")
    assert status == 0, err
    report = json.loads(out)
    model = report["model_bytes"]
    assert 0.9e6 <= report["params"] <= 1.1e6 and model == 4 * report["params"]
    assert report["payload_bytes"] >= model
    # A memory bound, not a time one. Fetched bytes (one model size) are the only large
    # allocation a vote needs; 0.5 of slack covers the allocator's rounding and arenas,
    # and scoring's buffers, which at 4 MB of weights are not negligible beside them.
    assert report["vote"]["peak_over_baseline_models"] <= 2.5
    assert report["adopt"]["peak_over_baseline_models"] <= 2.5
    # the proposal is dropped: nowhere near the old copies' +2 model sizes kept after
    assert report["vote"]["after_over_baseline_models"] < 1.0


def test_the_mlp_has_about_the_parameters_asked_for():
    width = mlp_width(25_000_000)
    assert 0.98 < 4 * width * width / 25_000_000 <= 1.0

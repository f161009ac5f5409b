"""The benchmark task and ``colearn bench overhead``'s machinery (no timing assertions:
the speed targets are checked by the benchmark itself)."""

from __future__ import annotations

import io
import json
import threading
import time
from unittest import mock

import numpy as np
import pytest
from cli_runner import run_colearn
from rich.console import Console

from agents.bench.floor import measure_floor
from agents.bench.overhead import bench_overhead, run_overhead_bench
from agents.bench.overhead_report import print_overhead_report
from colearn_core.tasks.bench import bench_config, bench_learner, make_bench_learners, make_model


def test_the_factory_builds_the_same_learner_as_the_in_memory_set():
    alone = bench_learner(2, n_learners=3, seed=0, preset="small")
    in_set = make_bench_learners(3, 0, "small")[2]
    a, b = alone.mli_get_current_weights().weights, in_set.mli_get_current_weights().weights
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert alone.vote_score == in_set.vote_score
    proposal_a, proposal_b = alone.mli_propose_weights(), in_set.mli_propose_weights()
    assert all(np.array_equal(proposal_a.weights[k], proposal_b.weights[k]) for k in a)


def test_the_full_preset_is_the_heavier_one():
    full, small = bench_config("full"), bench_config("small")
    assert full.image_size > small.image_size and full.copies > small.copies
    assert full.batches_per_round > small.batches_per_round


def test_the_big_preset_has_25m_parameters():
    model = make_model(bench_config("big"))
    assert 25_000_000 <= sum(p.numel() for p in model.parameters()) <= 25_200_000


def test_the_overhead_command_takes_the_big_preset_and_a_store():
    with mock.patch("agents.bench.overhead.bench_overhead") as bench:
        status, _, err = run_colearn("bench", "overhead", "--preset", "big", "--store", "ipfs",
                                     "--rounds", "2")
    assert status == 0, err
    assert (bench.call_args.kwargs["preset"], bench.call_args.kwargs["store"],
            bench.call_args.kwargs["n_rounds"]) == ("big", "ipfs", 2)
    with pytest.raises(ValueError, match="store must be one of"):
        run_overhead_bench(store="s3")


def test_the_floor_adds_the_proposer_and_every_voter(tmp_path):
    floor = measure_floor(bytes(range(256)) * 4096, 5, tmp_path)
    steps = floor["steps_seconds"]
    assert floor["payload_bytes"] == 1 << 20 and all(s > 0 for s in steps.values())
    voter = steps["read"] + steps["sha256"]  # the digest on chain binds the bytes: no CID
    assert floor["voter_seconds"] == pytest.approx(voter)
    assert floor["proposer_seconds"] == pytest.approx(
        steps["copy"] + steps["sha256"] + steps["cid"] + steps["write"])
    assert floor["seconds_per_round"] == pytest.approx(floor["proposer_seconds"] + 4 * voter)
    assert list(tmp_path.iterdir()) == []  # the scratch file is gone


def test_bad_factory_arguments_are_refused():
    with pytest.raises(ValueError, match="outside"):
        bench_learner(3, n_learners=3, preset="small")
    with pytest.raises(ValueError, match="unknown preset"):
        bench_learner(0, preset="huge")


def test_the_start_barrier_holds_the_factory_until_go(tmp_path):
    built: list[float] = []

    def build() -> None:
        bench_learner(1, n_learners=2, preset="small", start_barrier=str(tmp_path))
        built.append(time.monotonic())

    thread = threading.Thread(target=build)
    thread.start()
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready-1").exists():
        assert time.monotonic() < deadline, "the factory never reported ready"
        time.sleep(0.01)
    time.sleep(0.1)
    assert not built, "the factory returned before go"
    go = time.monotonic()
    (tmp_path / "go").touch()
    thread.join(timeout=10)
    assert built and built[0] >= go


def test_the_start_barrier_times_out(tmp_path):
    with pytest.raises(TimeoutError):
        bench_learner(0, n_learners=2, preset="small", start_barrier=str(tmp_path),
                      barrier_timeout=0.05)


@pytest.mark.slow
@pytest.mark.anvil
def test_overhead_bench_end_to_end(tmp_path, capsys):
    # 3 learners, 3 rounds: each proposes once; seed 4 gives accepted and rejected rounds.
    report = bench_overhead(as_json=True, n_learners=3, n_rounds=3, seed=4, preset="small",
                            workdir=tmp_path)
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(report))

    memory, chain = report["in_memory"], report["on_chain"]
    assert memory["decisions"] == [True, True, False]
    assert chain["decisions"] == memory["decisions"] and report["decisions_match"]
    assert chain["model_digest"] == memory["model_digest"] and report["models_match"]
    assert chain["proposals"] == 3
    for key in ("seconds_per_round", "protocol_seconds_per_round", "store_seconds_per_round",
                "chain_seconds_per_round", "follow_seconds_per_round", "startup_seconds",
                "discarded_proposals"):
        assert chain[key] >= 0
    assert memory["seconds_per_round"] > 0
    assert report["ratio"] == pytest.approx(chain["seconds_per_round"]
                                            / memory["seconds_per_round"])
    assert set(memory["learner_calls"]) == {"propose", "test", "accept"}
    assert memory["learner_calls"]["propose"]["calls"] == 3
    assert memory["learner_calls"]["test"]["calls"] == 9

    assert [a["index"] for a in chain["agents"]] == [0, 1, 2]
    for agent in chain["agents"]:
        seconds = agent["seconds"]
        assert seconds["protocol"] == pytest.approx(
            seconds["step"] - seconds["learner"] + seconds["follow"])
        assert seconds["learner"] > 0 and seconds["store"] >= 0
        assert seconds["follow"] > 0  # subscribing at least
        cpu = agent["cpu_seconds"]  # the same spans in CPU time
        assert set(cpu) == set(seconds)
        assert cpu["store"] > 0 and cpu["follow"] > 0 and cpu["step"] >= cpu["learner"]
        assert cpu["protocol"] == pytest.approx(cpu["step"] - cpu["learner"] + cpu["follow"])
        rss = agent["rss"]  # recorded by the factory at exit
        assert 0 < rss["baseline_bytes"] <= rss["peak_bytes"]
        assert rss["peak_over_baseline_models"] == pytest.approx(
            (rss["peak_bytes"] - rss["baseline_bytes"]) / report["model_bytes"])
    assert report["store"] == "file" and report["model_bytes"] > 0
    assert report["protocol_over_floor"] == pytest.approx(
        report["protocol_seconds_per_round"] / report["floor"]["seconds_per_round"])
    assert chain["protocol_cpu_seconds_per_round"] == pytest.approx(
        sum(a["cpu_seconds"]["protocol"] for a in chain["agents"]) / 3)
    assert chain["store_cpu_seconds_per_round"] == pytest.approx(
        sum(a["cpu_seconds"]["store"] for a in chain["agents"]) / 3)
    assert report["weights_over_floor"] == pytest.approx(
        chain["store_cpu_seconds_per_round"] / report["floor"]["seconds_per_round"])
    assert report["protocol_seconds_per_round"] == pytest.approx(
        sum(a["seconds"]["protocol"] for a in chain["agents"]) / 3)
    parts = chain["protocol_parts_per_round"]
    assert set(parts) == {"status", "transactions", "follow", "store", "other"}
    assert sum(parts.values()) == pytest.approx(report["protocol_seconds_per_round"])
    assert parts["status"] > 0 and parts["transactions"] > 0
    assert set(report["targets"]) == {"ratio_max", "protocol_seconds_per_round_max",
                                      "ratio_met", "protocol_met"}
    assert (tmp_path / "logs" / "agent0.log").exists()

    out = io.StringIO()
    print_overhead_report(report, Console(file=out, width=120))
    assert "seconds a round" in out.getvalue() and "protocol" in out.getvalue()
    assert "following events" in out.getvalue() and "physical floor" in out.getvalue()
    assert "CPU time moving weights" in out.getvalue()

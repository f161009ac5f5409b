"""The XGBoost learner: its weights are the model's UBJSON bytes (opaque on chain), and
peers' bytes are checked (size, a first load in a child process, feature count) so that
hostile bytes become a clear :class:`WeightsMismatchError`, never a crash."""

from __future__ import annotations

import sys
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

xgb = pytest.importorskip("xgboost")
pytest.importorskip("sklearn")

from colearn_core.codec import WeightsMismatchError, decode_weights, encode_weights
from colearn_core.learners.xgboost import DEFAULT_PARAMS, Prober, XGBoostLearner, probe_model
from colearn_core.ml_interface import Weights
from colearn_core.training import run_experiment

# A valid model's bytes with a few mutations that make XGBoost 3.2's UBJSON parser crash
# the process (SIGSEGV) when loaded in it.
SEGFAULT = Path(__file__).parent / "data" / "xgboost_segfault.ubj"


def _learner(offset: int = 0, n_features: int = 10, **kwargs) -> XGBoostLearner:
    rng = np.random.default_rng(offset)
    x = rng.normal(size=(120, n_features)).astype(np.float32)
    y = (3 * x[:, 0] - x[:, 1] + 0.1 * rng.normal(size=120)).astype(np.float32)
    return XGBoostLearner(x[:80], y[:80], x[80:100], y[80:100], x[100:], y[100:], **kwargs)


@pytest.fixture(scope="module")
def pair() -> tuple[XGBoostLearner, XGBoostLearner]:
    return _learner(0), _learner(1, seed=1)


def test_weights_are_ubjson_bytes_that_travel_as_opaque_data(pair) -> None:
    a, b = pair
    before = a.mli_get_current_weights().weights
    proposal = a.mli_propose_weights()
    assert type(proposal.weights) is bytes and proposal.weights[:1] == b"{"
    assert a.mli_get_current_weights().weights == before  # proposing changes nothing
    carried = decode_weights(encode_weights(proposal.weights))
    assert carried == proposal.weights
    direct, via_codec = b.mli_test_weights(proposal), b.mli_test_weights(Weights(weights=carried))
    assert (direct.vote_score, direct.test_score) == (via_codec.vote_score, via_codec.test_score)
    b.mli_accept_weights(Weights(weights=carried))
    assert b.mli_get_current_weights().weights == proposal.weights
    assert b.vote_score == direct.vote_score
    assert isinstance(b.mli_get_current_model().model, xgb.Booster)


def test_boosting_lowers_the_error_the_learner_votes_on() -> None:
    a = _learner(7, params={**DEFAULT_PARAMS, "colsample_bytree": 1.0})
    initial = a.vote_score
    for _ in range(3):
        proposal = a.mli_propose_weights()
        tested = a.mli_test_weights(proposal)
        assert tested.vote is (tested.vote_score < a.vote_score)
        a.mli_accept_weights(proposal)
    assert a.vote_score < initial


def test_a_model_that_crashes_xgboost_is_rejected_and_this_process_lives(pair) -> None:
    _, b = pair
    with pytest.raises(WeightsMismatchError, match="crashed the process loading it"):
        b.mli_test_weights(Weights(weights=SEGFAULT.read_bytes()))
    assert b.mli_test_weights(b.mli_get_current_weights()).vote_score == b.vote_score


@pytest.mark.parametrize("weights, message", [
    ("model.json", "not a str"),
    ({"w": np.zeros(3)}, "not a dict"),
    (b"", "not a usable XGBoost model"),
    (b"{" + b"\x00" * 64, "not a usable XGBoost model"),
])
def test_other_weights_are_refused_by_name(pair, weights, message) -> None:
    _, b = pair
    with pytest.raises(WeightsMismatchError, match=message):
        b.mli_test_weights(Weights(weights=weights))


def test_size_cap_and_feature_count() -> None:
    small = _learner(2, max_model_bytes=100)
    with pytest.raises(WeightsMismatchError, match="larger than 100"):
        small.mli_test_weights(_learner(3).mli_get_current_weights())
    with pytest.raises(WeightsMismatchError, match="features"):
        _learner(4).mli_test_weights(_learner(5, n_features=4).mli_get_current_weights())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_models_are_scored_or_refused_never_a_crash(pair, data) -> None:
    _, b = pair
    raw = bytearray(b.mli_get_current_weights().weights)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        match data.draw(st.sampled_from(["set", "cut", "insert"])):
            case "set":
                raw[at] = data.draw(st.integers(0, 255))
            case "cut":
                del raw[at:at + data.draw(st.integers(1, 40))]
            case "insert":
                raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        if not raw:
            break
    try:
        tested = b.mli_test_weights(Weights(weights=bytes(raw)))
    except WeightsMismatchError:
        return
    assert np.isfinite(tested.vote_score)


def test_a_child_that_never_answers_is_reported_and_replaced() -> None:
    # The child reads its request and then hangs: the timeout is the only way out,
    # however busy the machine is.
    hanging = [sys.executable, "-c", "import sys, time; sys.stdin.buffer.read(9); time.sleep(600)"]
    prober = Prober(hanging)
    try:
        assert "took over 0.5 s" in prober.ask(b"x", timeout=0.5)
        assert "took over 0.5 s" in prober.ask(b"x", timeout=0.5)  # a new child each time
    finally:
        prober.close()
    model = _learner(6).mli_get_current_weights().weights
    probe_model(model, np.zeros((1, 10), np.float32))  # the shared prober still answers


def test_example_in_memory_improves_on_the_initial_model() -> None:
    from colearn_core.examples.xgb_reg_boston import build, learner

    setup = build(n_learners=3, seed=0)
    initial = setup.global_score(setup.learners[0].mli_get_current_weights().weights)
    results = run_experiment(setup.learners, 4, setup.vote_threshold)
    final = setup.global_score(setup.learners[0].mli_get_current_weights())
    assert any(results.decisions()) and final < initial
    assert learner("1", "3", "0").n_features == 10
    with pytest.raises(ValueError, match="index"):
        learner(3, 3, 0)

"""The safe weights codec: exact round trips, canonical bytes, clear refusals."""

import pickle

import numpy as np
import pytest

from colearn_core.codec import (
    WeightsFormatError,
    WeightsMismatchError,
    check_compatible,
    decode_weights,
    encode_weights,
)

RNG = np.random.default_rng(0)
WEIGHTS = {
    "hidden.weight": RNG.standard_normal((8, 4)).astype(np.float32),
    "hidden.bias": RNG.standard_normal(8).astype(np.float32),
    "steps": np.array(3, dtype=np.int64),
}


def test_dict_and_list_round_trip_bitwise():
    decoded = decode_weights(encode_weights(WEIGHTS))
    assert set(decoded) == set(WEIGHTS)
    for name, array in WEIGHTS.items():
        assert decoded[name].dtype == array.dtype and np.array_equal(decoded[name], array)
    as_list = decode_weights(encode_weights(list(WEIGHTS.values())))
    assert isinstance(as_list, list)
    assert all(np.array_equal(a, b) for a, b in zip(as_list, WEIGHTS.values()))


def test_the_same_weights_always_give_the_same_bytes():
    reordered = dict(reversed(list(WEIGHTS.items())))
    encodings = {encode_weights(WEIGHTS) for _ in range(50)} | {encode_weights(reordered)}
    assert len(encodings) == 1


@pytest.mark.parametrize("data", [
    b"",
    b"short",
    pickle.dumps(WEIGHTS),
    b"\xff" * 8 + b"{}",
    (2).to_bytes(8, "little") + b"{}",  # valid safetensors, but not tagged as weights
])
def test_anything_but_tagged_safetensors_is_refused(data):
    with pytest.raises(WeightsFormatError):
        decode_weights(data)


def test_size_limit():
    data = encode_weights(WEIGHTS)
    with pytest.raises(WeightsFormatError, match="limit"):
        decode_weights(data, max_bytes=len(data) - 1)


@pytest.mark.parametrize("value", [object(), "text", 3.0, {"a": [1, 2]}, {"a": np.array(["x"])}])
def test_unencodable_weights_are_refused(value):
    with pytest.raises(WeightsFormatError):
        encode_weights(value)


@pytest.mark.parametrize("change, message", [
    (lambda w: {k: v for k, v in w.items() if k != "steps"}, "names differ"),
    (lambda w: dict(w, **{"hidden.bias": np.zeros(9, np.float32)}), "shape"),
    (lambda w: dict(w, **{"hidden.bias": w["hidden.bias"].astype(np.float64)}), "dtype"),
    (lambda w: dict(w, **{"hidden.bias": np.full(8, np.nan, np.float32)}), "NaN"),
    (lambda w: dict(w, **{"hidden.bias": np.full(8, np.inf, np.float32)}), "Inf"),
    (lambda w: list(w.values()), "container"),
])
def test_check_compatible_names_the_mismatch(change, message):
    with pytest.raises(WeightsMismatchError, match=message):
        check_compatible(change(WEIGHTS), WEIGHTS)
    check_compatible(WEIGHTS, WEIGHTS)

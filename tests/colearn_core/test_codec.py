"""The safe weights codec: exact round trips, canonical bytes, clear refusals."""

import hashlib
import json
import pickle

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from colearn_core.codec import (
    FILE_TAG,
    MAX_HEADER_BYTES,
    OPAQUE_TAG,
    ModelFile,
    WeightsFormatError,
    WeightsMismatchError,
    check_compatible,
    decode_weights,
    encode_weights,
    encoded_size_limit,
    weights_kind,
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
    encodings = {bytes(encode_weights(WEIGHTS)) for _ in range(50)} | {bytes(encode_weights(reordered))}
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


# ------------------------------------------------------------------ hostile bytes
# Anything a peer can publish reaches decode_weights; only WeightsFormatError may come out.

def _safetensors(header: object, body: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + body


def _decode_or_refuse(data: bytes, **kwargs) -> None:
    try:
        decoded = decode_weights(data, **kwargs)
    except WeightsFormatError:
        return
    arrays = decoded.values() if isinstance(decoded, dict) else decoded
    assert all(isinstance(a, np.ndarray) for a in arrays)


TAG = {"__metadata__": {"format": "colearn-weights/1;dict"}}


@pytest.mark.parametrize("data", [
    _safetensors([1, 2, 3]),
    _safetensors(7),
    _safetensors("text"),
    _safetensors(None),
    _safetensors({**TAG, "w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4),
    _safetensors({**TAG, "w": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}},
                 b"\0" * 2),
    _safetensors(b"[" * 100_000 + b"]" * 100_000),
    _safetensors(b'{"a": ' * 50_000 + b"1" + b"}" * 50_000),
    _safetensors(b'{"__metadata__": {"format": "colearn-weights/1;dict"}, "w": 1, "w": 2}'),
    _safetensors(b'{"__metadata__": {"format": NaN}}'),
    _safetensors({"__metadata__": [1]}),
    _safetensors({**TAG, "w": [1, 2]}),
    _safetensors({**TAG, "w": {"dtype": "F32", "shape": [10**30], "data_offsets": [0, 4]}},
                 b"\0" * 4),
    _safetensors({**TAG, "w": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}},
                 b"\0" * 4),
    _safetensors({**TAG, "w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}},
                 b"\0" * 4),
    _safetensors({**TAG, "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}},
                 b"\0" * 4),
    _safetensors({**TAG, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                  "v": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
    _safetensors({**TAG, "w": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}},
                 b"\0\7"),
    _safetensors({**TAG, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                 b"\0" * 8),
    _safetensors({"__metadata__": {"format": "colearn-weights/1;list"},
                  "5": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
    _safetensors(b'{"__metadata__": {"format": "colearn-weights/1;dict"}, "w": {"dtype": "F32",'
                 b' "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 4]}}', b"\0" * 4),
    _safetensors(b"\xff\xfe{}"),
    (2**64 - 1).to_bytes(8, "little") + b"{}",
])
def test_crafted_headers_are_refused_by_name(data):
    with pytest.raises(WeightsFormatError):
        decode_weights(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_decode_or_raise_the_codecs_error(data):
    _decode_or_refuse(data)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.sampled_from(["F32", "I64", "BF16", "BOOL", "dtype", "shape", "data_offsets"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["dtype", "shape", "data_offsets", "w", "__metadata__",
                                       "format"]) | st.text(max_size=4), children, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(header=_JSON, body=st.binary(max_size=64))
def test_arbitrary_json_headers_decode_or_raise_the_codecs_error(header, body):
    _decode_or_refuse(_safetensors(header, body))
    _decode_or_refuse(_safetensors({**TAG, "w": header}, body))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_valid_files_decode_or_raise_the_codecs_error(data):
    valid = bytearray(encode_weights(WEIGHTS))
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        at = data.draw(st.integers(0, len(valid) - 1))
        if kind == "flip":
            valid[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set":
            valid[at] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del valid[at:at + data.draw(st.integers(1, 16))]
        else:
            valid[at:at] = data.draw(st.binary(min_size=1, max_size=16))
        if not valid:
            break
    _decode_or_refuse(bytes(valid))


_DTYPE_CHOICES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                  np.int64, np.uint64, np.float16, np.float32, np.float64]


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(
    st.text(min_size=1, max_size=40),
    st.sampled_from(_DTYPE_CHOICES).flatmap(
        lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0,
                                                         max_side=4))),
    max_size=6))
def test_any_weights_round_trip_within_their_size_limit(weights):
    data = encode_weights(weights)
    assert len(data) <= encoded_size_limit(weights)
    decoded = decode_weights(data, max_bytes=encoded_size_limit(weights))
    assert set(decoded) == set(weights)
    for name, array in weights.items():
        assert decoded[name].dtype == array.dtype and decoded[name].shape == array.shape
        assert decoded[name].tobytes() == array.tobytes()


_WEIGHTS_STRATEGY = st.dictionaries(
    st.text(min_size=1, max_size=40),
    st.sampled_from(_DTYPE_CHOICES).flatmap(
        lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0,
                                                         max_side=4))),
    max_size=6)


@settings(max_examples=200, deadline=None)
@given(_WEIGHTS_STRATEGY, st.booleans())
def test_encodings_are_byte_for_byte_those_of_safetensors(weights, as_list):
    """The codec writes safetensors' layout itself (one copy of the data): the bytes, hence
    the digests on chain, are those of safetensors' own writer."""
    from safetensors.numpy import save

    value = list(weights.values()) if as_list else weights
    named = {str(i): a for i, a in enumerate(weights.values())} if as_list else weights
    expected = save(dict(named),
                    metadata={"format": f"colearn-weights/1;{'list' if as_list else 'dict'}"})
    assert encode_weights(value) == expected


def _pinned_weights() -> dict[str, np.ndarray]:
    arrays = {f"layer.{np.dtype(d).name}": (np.arange(7 * (i + 1)) % 3).astype(d).reshape(7, i + 1)
              for i, d in enumerate(_DTYPE_CHOICES)}
    arrays['q"uote\\\n\té'] = np.arange(3, dtype=">f4")
    arrays["scalar"] = np.array(2.5, np.float64)
    arrays["empty"] = np.zeros((0, 4), np.float32)
    return arrays


# sha256 of these encodings as made by the safetensors-based codec (commit 462387c): the
# digests on chain of the same weights must never change.
PINNED = {
    "dict": "4dd6c40a14348595dd8ceefc596cb8a2c768accfedea316374f53f3e19fb44f3",
    "list": "a9bca88de84f6128aabc03610a5cad906de941f8ec79fd8f64e58b4e4ffc23ed",
    "bytes": "0cf96426e5784c7e985dc19725eea5c0509ede5a7a33ae6ca4c81dbd0b587f82",
    "file": "3be36d70fb8e007b768ae3f22cb3eba9470271ad484becec7308f6e1c26f8393",
}


@pytest.mark.parametrize("kind", sorted(PINNED))
def test_encodings_are_pinned(kind):
    weights = {"dict": _pinned_weights(), "list": list(_pinned_weights().values()),
               "bytes": b"\x00opaque", "file": ModelFile(b"{}", ".json")}[kind]
    assert hashlib.sha256(encode_weights(weights)).hexdigest() == PINNED[kind]


def test_decoded_arrays_are_views_of_the_buffer():
    data = encode_weights(WEIGHTS)
    decoded = decode_weights(memoryview(data))
    for array in decoded.values():
        assert np.shares_memory(array, np.frombuffer(data, np.uint8))
        assert not array.flags.writeable


def test_big_endian_and_unsupported_dtypes():
    big = np.arange(3, dtype=">f4")
    assert np.array_equal(decode_weights(encode_weights({"w": big}))["w"], big)
    for value in (np.zeros(2, np.complex64), np.zeros(2, np.longdouble), np.array(["x"])):
        with pytest.raises(WeightsFormatError):
            encode_weights({"w": value})


# --------------------------------------------------------------------------- tensors


def test_torch_state_dict_encodes_as_its_arrays_do():
    torch = pytest.importorskip("torch")
    from collections import OrderedDict

    tensors = OrderedDict((k, torch.from_numpy(v.copy()).requires_grad_(v.dtype.kind == "f"))
                          for k, v in WEIGHTS.items())
    encoded = encode_weights(tensors)
    assert encoded == encode_weights(WEIGHTS)
    decoded = decode_weights(encoded)  # numpy out, whatever went in
    assert all(isinstance(v, np.ndarray) for v in decoded.values())
    assert check_compatible(decoded, tensors)  # tensors are a template too


def test_objects_with_array_interface_encode_and_unreadable_tensors_are_refused():
    class ArrayLike:
        def __array__(self, dtype=None, copy=None):
            return np.arange(3, dtype=np.float32)

    assert np.array_equal(decode_weights(encode_weights({"a": ArrayLike()}))["a"],
                          np.arange(3, dtype=np.float32))
    torch = pytest.importorskip("torch")
    with pytest.raises(WeightsFormatError, match="cannot be read as an array"):
        encode_weights({"w": torch.zeros(2, dtype=torch.bfloat16)})  # no numpy bfloat16


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_mutated_tensor_encodings_decode_or_raise_the_codecs_error(data):
    torch = pytest.importorskip("torch")
    valid = bytearray(encode_weights({k: torch.from_numpy(v.copy()) for k, v in WEIGHTS.items()}))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(valid) - 1))
        valid[at] = data.draw(st.integers(0, 255))
    _decode_or_refuse(bytes(valid))


# ------------------------------------------------------------ opaque weights (bytes, files)

@given(st.binary(max_size=2048))
def test_any_bytes_weights_round_trip_as_opaque_data(data):
    encoded = encode_weights(data)
    assert bytes(encoded).startswith(OPAQUE_TAG)
    decoded = decode_weights(encoded)
    assert type(decoded) is bytes and decoded == data
    assert check_compatible(decoded, b"") == data


@given(st.sampled_from([OPAQUE_TAG, FILE_TAG, FILE_TAG + b" ", FILE_TAG + b" .ubj\n", b""]),
       st.binary(max_size=512))
def test_arbitrary_bytes_after_any_tag_decode_or_raise_the_codecs_error(tag, tail):
    try:
        decoded = decode_weights(tag + tail)
    except WeightsFormatError:
        return
    if tag == OPAQUE_TAG:
        assert decoded == tail
    if isinstance(decoded, ModelFile):
        assert tag.startswith(FILE_TAG) and decoded.content in tail


def test_a_model_file_travels_by_content_with_its_suffix(tmp_path):
    path = tmp_path / "model_0.json"
    path.write_bytes(b'{"learner": {}}')
    for weights in (str(path), path):
        decoded = decode_weights(encode_weights(weights))
        assert decoded == ModelFile(b'{"learner": {}}', ".json")
        assert weights_kind(weights) == "file" and weights_kind(decoded) == "file"
    no_suffix = tmp_path / "model_1"
    no_suffix.write_bytes(b"\x00\x01")
    assert decode_weights(encode_weights(str(no_suffix))) == ModelFile(b"\x00\x01", "")
    with pytest.raises(WeightsFormatError, match="cannot be read"):
        encode_weights(str(tmp_path / "missing"))
    with pytest.raises(WeightsFormatError, match="suffix"):
        encode_weights(ModelFile(b"", "/../x"))


@pytest.mark.parametrize("data", [
    FILE_TAG + b"\n",  # no space
    FILE_TAG + b" ../../etc/passwd\n",
    FILE_TAG + b" .a" + b"b" * 40 + b"\n",
    FILE_TAG + b" .json",  # no newline
])
def test_malformed_model_file_tags_are_refused(data):
    with pytest.raises(WeightsFormatError, match="tag line"):
        decode_weights(data)


def test_kinds_of_weights_never_fit_each_other(tmp_path):
    kinds = [WEIGHTS, b"\x00", ModelFile(b"{}", ".json")]
    for candidate in kinds:
        for template in kinds:
            if candidate is template:
                check_compatible(candidate, template)
            else:
                with pytest.raises(WeightsMismatchError, match="weights are"):
                    check_compatible(candidate, template)


def test_opaque_encodings_are_never_safetensors():
    for tag in (OPAQUE_TAG, FILE_TAG):
        assert int.from_bytes(tag[:8], "little") > MAX_HEADER_BYTES

"""A safe weights codec: named arrays with their shapes and dtypes, in safetensors format,
or opaque data a learner decodes itself.

Decoding never runs code: a safetensors file is a JSON header and raw little-endian
buffers. Weights are a mapping of names to arrays, or a sequence of arrays (Keras'
``get_weights()`` style). Two opaque kinds are carried as data, never interpreted:
``bytes`` (:data:`OPAQUE_TAG`), and a ``str`` or path naming a model file
(:data:`FILE_TAG`, colearn's XGBoost example), whose content travels and decodes to a
:class:`ModelFile`. Anything else is refused with :class:`WeightsFormatError`.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

FORMAT_TAG = "colearn-weights/1"
ArrayTree = dict[str, np.ndarray] | list[np.ndarray]

# Opaque encodings: a tag line, then the data as is. Read as safetensors, the first 8 bytes
# of a tag give a header length far past MAX_HEADER_BYTES: no encoding is two kinds.
OPAQUE_TAG = b"colearn-opaque/1\n"
FILE_TAG = b"colearn-file/1"  # then " SUFFIX" (may be empty) and a newline
_SUFFIX = re.compile(rb"\.[A-Za-z0-9_-]{1,16}|")
MAX_FILE_BYTES = 512 * 1024 * 1024
"""Largest model file read to be sent as weights."""


@dataclass(frozen=True)
class ModelFile:
    """The content of a model file a learner gave as its weights (a path), and the file
    name's suffix (``".json"``, ``".ubj"``; ``""`` if none): whoever hands it to a learner
    writes it to a file of its own and passes that path."""

    content: bytes
    suffix: str = ""


Decoded = ArrayTree | bytes | ModelFile
WeightsKind = Literal["arrays", "bytes", "file"]


def weights_kind(weights: Any) -> WeightsKind:
    """How ``weights`` travel: ``"bytes"`` (bytes-like, opaque), ``"file"`` (a ``str`` or
    path naming a model file, or a :class:`ModelFile`), else ``"arrays"``."""
    if isinstance(weights, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(weights, (str, os.PathLike, ModelFile)):
        return "file"
    return "arrays"


# safetensors dtypes this codec accepts (little-endian), and what they decode to. BF16 and
# the F8 formats have no numpy dtype: they are refused like any unknown name.
_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype("<u1"), "I8": np.dtype("<i1"),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"),
    "U32": np.dtype("<u4"), "I32": np.dtype("<i4"),
    "U64": np.dtype("<u8"), "I64": np.dtype("<i8"),
    "F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
}
_DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}


class WeightsFormatError(ValueError):
    """Bytes or objects that are not weights this codec accepts."""


class WeightsMismatchError(ValueError):
    """Decoded weights that do not fit the model that would load them."""


def _as_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a numpy array: an array, a framework tensor (PyTorch's ``detach()``,
    ``cpu()``, ``numpy()``; TensorFlow's ``numpy()``) or anything with ``__array__``;
    framework types are never imported here."""
    try:
        if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
            value = value.detach().cpu().numpy()
        elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):
            value = value.numpy()
        elif hasattr(value, "__array__") and not isinstance(value, (np.ndarray, np.generic)):
            value = np.asarray(value)
    except (TypeError, RuntimeError, ValueError) as exc:  # e.g. bfloat16 has no numpy dtype
        raise WeightsFormatError(f"weight {name!r} cannot be read as an array: "
                                 f"{_short(exc)}") from None
    if not isinstance(value, (np.ndarray, np.generic)):
        raise WeightsFormatError(f"weight {name!r} is a {type(value).__name__}, not an array")
    array = np.asarray(value)
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)  # (it would turn a 0-d array into 1-d)
    if array.dtype.kind not in "biuf" or array.dtype.newbyteorder("<") not in _DTYPE_NAMES:
        raise WeightsFormatError(f"weight {name!r} has unsupported dtype {array.dtype}")
    return array.astype(array.dtype.newbyteorder("<"), copy=False)  # big-endian: swapped


def encode_weights(weights: Any) -> memoryview:
    """Serializes a mapping ``{name: array}`` or a sequence of arrays to safetensors bytes;
    ``bytes`` as opaque data; a path's file (or a :class:`ModelFile`) as a model file.

    The result is a read-only buffer the size of the encoding, written once: each array's
    data is copied straight into place (the one copy of the weights encoding makes)."""
    kind = weights_kind(weights)
    if kind == "bytes":
        return _joined(OPAQUE_TAG, memoryview(weights).cast("B"))
    if kind == "file":
        model = weights if isinstance(weights, ModelFile) else _read_model_file(weights)
        if _SUFFIX.fullmatch(model.suffix.encode()) is None:
            raise WeightsFormatError(f"model file suffix {model.suffix[:32]!r} is not "
                                     "'.' and 1 to 16 letters, digits, '_' or '-'")
        return _joined(FILE_TAG + b" " + model.suffix.encode() + b"\n",
                       memoryview(model.content))
    if isinstance(weights, Mapping):
        container = "dict"
        named = {str(k): _as_array(str(k), v) for k, v in weights.items()}
    elif isinstance(weights, Sequence) and not isinstance(weights, (str, bytes)):
        container = "list"
        named = {str(i): _as_array(str(i), v) for i, v in enumerate(weights)}
    else:
        raise WeightsFormatError(
            f"weights must be a mapping or a sequence of arrays, not {type(weights).__name__}"
        )
    return _safetensors(named, f"{FORMAT_TAG};{container}")


# safetensors' layout, byte for byte (the digests on chain depend on it): tensors ordered by
# dtype, largest first in the order below, then by name (UTF-8 bytes); a compact JSON
# header, metadata first, padded with spaces to a multiple of 8 bytes.
_DTYPE_ORDER = ["BOOL", "U8", "I8", "I16", "U16", "F16", "I32", "U32", "F32", "F64", "I64",
                "U64"]
_DTYPE_RANK = {name: rank for rank, name in enumerate(_DTYPE_ORDER)}


def _safetensors(named: dict[str, np.ndarray], format_tag: str) -> memoryview:
    """The safetensors encoding of ``named`` with one metadata entry ``format`` (safetensors
    writes several in a random order: the same weights must always give the same bytes)."""
    try:
        order = sorted(named, key=lambda n: (-_DTYPE_RANK[_DTYPE_NAMES[named[n].dtype]],
                                             n.encode("utf-8")))
    except UnicodeEncodeError:
        raise WeightsFormatError("weight names must be valid Unicode text") from None
    header: dict[str, Any] = {"__metadata__": {"format": format_tag}}
    offset = 0
    for name in order:
        array = named[name]
        header[name] = {"dtype": _DTYPE_NAMES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    buffer = np.empty(8 + len(text) + offset, np.uint8)  # (pages untouched until written)
    buffer[:8] = np.frombuffer(len(text).to_bytes(8, "little"), np.uint8)
    buffer[8:8 + len(text)] = np.frombuffer(text, np.uint8)
    position = 8 + len(text)
    for name in order:
        array = named[name]
        buffer[position:position + array.nbytes] = array.reshape(-1).view(np.uint8)
        position += array.nbytes
    return buffer.data.toreadonly()


def _joined(head: bytes, tail: memoryview) -> memoryview:
    buffer = np.empty(len(head) + len(tail), np.uint8)
    buffer[:len(head)] = np.frombuffer(head, np.uint8)
    buffer[len(head):] = np.frombuffer(tail, np.uint8)
    return buffer.data.toreadonly()


def _read_model_file(path: str | os.PathLike[str]) -> ModelFile:
    try:
        with open(path, "rb") as file:
            content = file.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError) as exc:
        raise WeightsFormatError(f"weights name a model file that cannot be read: "
                                 f"{_short(exc)}") from None
    if len(content) > MAX_FILE_BYTES:
        raise WeightsFormatError(f"model file {os.fspath(path)!r} is larger than "
                                 f"{MAX_FILE_BYTES} bytes")
    suffix = os.path.splitext(os.fspath(path))[1]
    return ModelFile(content, suffix if _SUFFIX.fullmatch(suffix.encode()) else "")


MAX_HEADER_BYTES = 16 * 1024 * 1024
"""Largest safetensors header decoded (safetensors itself allows 100 MB)."""

_MAX_JSON_DEPTH = 3  # {"name": {"shape": [...]}}
_MAX_RANK = 32
_HEADER_SLACK = 4096  # bytes a header may exceed its estimate by (padding, metadata)
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}


def encoded_size_limit(template: Any) -> int:
    """The most bytes :func:`encode_weights` can make for weights with the names, shapes
    and dtypes of ``template``: a fetch of weights for that model can stop past it."""
    items = _items(template)
    header = sum(len(json.dumps(name)) + 96 + 21 * len(array.shape) for name, array in items)
    data = sum(array.nbytes for _, array in items)
    return 8 + 2 * header + _HEADER_SLACK + data


def decode_weights(data: bytes | bytearray | memoryview, *,
                   max_bytes: int | None = None) -> Decoded:
    """Parses bytes made by :func:`encode_weights`; never executes anything.

    Any bytes at all either decode to weights or raise :class:`WeightsFormatError`: the
    header's size, JSON depth, types and every entry are checked before anything is
    built. The arrays are read-only views of ``data`` (no copy). Opaque data comes back
    as ``bytes`` or a :class:`ModelFile`, as it was given: unchecked.
    """
    view = memoryview(data).cast("B")
    if max_bytes is not None and len(view) > max_bytes:
        raise WeightsFormatError(f"weights are {len(view)} bytes, more than the limit {max_bytes}")
    if view[:len(OPAQUE_TAG)] == OPAQUE_TAG:
        return bytes(view[len(OPAQUE_TAG):])
    if view[:len(FILE_TAG)] == FILE_TAG:
        return _model_file(view)
    return decode_arrays(view)


def _model_file(view: memoryview) -> ModelFile:
    head = bytes(view[:len(FILE_TAG) + 2 + 16 + 1])
    end = head.find(b"\n")
    if end < 0 or head[len(FILE_TAG):len(FILE_TAG) + 1] != b" " \
            or _SUFFIX.fullmatch(head[len(FILE_TAG) + 1:end]) is None:
        raise WeightsFormatError("model file weights have a malformed tag line")
    return ModelFile(bytes(view[end + 1:]), head[len(FILE_TAG) + 1:end].decode("ascii"))


def decode_arrays(data: bytes | bytearray | memoryview) -> ArrayTree:
    """Parses the safetensors bytes of array weights (see :func:`decode_weights`)."""
    view = memoryview(data).cast("B")
    if len(view) < 8:
        raise WeightsFormatError("weights are not in safetensors format (too short)")
    header_len = int.from_bytes(view[:8], "little")
    if header_len > len(view) - 8 or header_len > MAX_HEADER_BYTES:
        raise WeightsFormatError(
            f"weights are not in safetensors format (header of {header_len} bytes)")
    header = _parse_header(bytes(view[8 : 8 + header_len]))
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict):
        raise WeightsFormatError("safetensors metadata is not an object")
    tag, _, container = str(metadata.get("format", "")).partition(";")
    if tag != FORMAT_TAG:
        raise WeightsFormatError(f"weights are not tagged {FORMAT_TAG!r}")
    body = view[8 + header_len :]
    arrays = _arrays(header, body)
    if container == "list":
        if set(arrays) != {str(i) for i in range(len(arrays))}:
            raise WeightsFormatError("list weights must be named 0..n-1")
        return [arrays[str(i)] for i in range(len(arrays))]
    if container != "dict":
        raise WeightsFormatError(f"unknown container {container[:64]!r}")
    return arrays


def _parse_header(raw: bytes) -> dict[str, Any]:
    """The header's JSON object, after checking its nesting depth without recursing."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise WeightsFormatError("safetensors header is not UTF-8") from None
    if _json_depth(text) > _MAX_JSON_DEPTH:
        raise WeightsFormatError(f"safetensors header nests deeper than {_MAX_JSON_DEPTH}")
    try:
        header = json.loads(text, object_pairs_hook=_unique_keys,
                            parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise WeightsFormatError(f"safetensors header is not JSON: {_short(exc)}") from None
    if not isinstance(header, dict):
        raise WeightsFormatError(
            f"safetensors header is a JSON {type(header).__name__}, not an object")
    return header


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')


def _json_depth(text: str) -> int:
    """How deeply brackets nest in ``text`` outside strings (JSON validity aside)."""
    structure = _STRINGS.sub("", text).encode("utf-8", "replace")
    if not structure:
        return 0
    codes = np.frombuffer(structure, np.uint8)
    steps = (np.isin(codes, (ord("["), ord("{"))).astype(np.int64)
             - np.isin(codes, (ord("]"), ord("}"))))
    return int(np.cumsum(steps).max(initial=0))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise WeightsFormatError("safetensors header repeats a name")
    return result


def _no_constant(name: str) -> Any:
    raise WeightsFormatError(f"safetensors header holds {name}")


def _arrays(header: dict[str, Any], body: memoryview) -> dict[str, np.ndarray]:
    """Checks every entry against the body (dtype allowed, shape and offsets of the right
    types and sizes, buffers tiling the body exactly), then builds read-only views."""
    entries = []
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
            raise WeightsFormatError(
                f"tensor {name[:64]!r}: expected an object with keys {sorted(_ENTRY_KEYS)}")
        dtype = _DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
        if dtype is None:
            raise WeightsFormatError(
                f"tensor {name[:64]!r}: dtype {str(entry['dtype'])[:32]!r} is not one of "
                f"{sorted(_DTYPES)}")
        shape, offsets = entry["shape"], entry["data_offsets"]
        if not (_ints(shape) and len(shape) <= _MAX_RANK):
            raise WeightsFormatError(f"tensor {name[:64]!r}: shape is not a list of sizes")
        if not (_ints(offsets) and len(offsets) == 2 and offsets[0] <= offsets[1] <= len(body)):
            raise WeightsFormatError(f"tensor {name[:64]!r}: data offsets outside the buffer")
        count = math.prod(shape)
        if count * dtype.itemsize != offsets[1] - offsets[0]:
            raise WeightsFormatError(
                f"tensor {name[:64]!r}: shape {shape} of {entry['dtype']} needs "
                f"{count * dtype.itemsize} bytes, offsets give {offsets[1] - offsets[0]}")
        entries.append((offsets[0], offsets[1], name, dtype, tuple(shape), count))
    entries.sort(key=lambda e: (e[0], e[1]))
    position = 0
    for begin, end, name, *_ in entries:
        if begin != position:
            raise WeightsFormatError(f"tensor {name[:64]!r}: buffers overlap or leave gaps")
        position = end
    if position != len(body):
        raise WeightsFormatError(f"{len(body) - position} bytes after the last tensor")
    arrays = {}
    for begin, _, name, dtype, shape, count in entries:
        array = np.frombuffer(body, dtype, count, begin).reshape(shape)
        if dtype.kind == "b" and body[begin : begin + count].tobytes().translate(None, b"\0\1"):
            raise WeightsFormatError(f"tensor {name[:64]!r}: booleans other than 0 and 1")
        arrays[name] = array.astype(dtype.newbyteorder("="), copy=False)
    return arrays


def _ints(value: Any) -> bool:
    return isinstance(value, list) and all(type(v) is int and v >= 0 for v in value)


def _short(exc: BaseException, limit: int = 120) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _items(tree: Any) -> list[tuple[str, np.ndarray]]:
    if isinstance(tree, Mapping):
        return [(str(k), _as_array(str(k), v)) for k, v in tree.items()]
    return [(str(i), _as_array(str(i), v)) for i, v in enumerate(tree)]


_KIND_NAMES = {"arrays": "arrays", "bytes": "opaque bytes", "file": "a model file"}


def check_compatible(candidate: Any, template: Any, *,
                     require_finite: bool = True) -> ArrayTree:
    """``candidate``'s arrays (numpy views of any framework tensors, not copies), after
    checking it has the template's container, names (or count), shapes and dtypes, and
    only finite values if ``require_finite``; else :class:`WeightsMismatchError` (or
    :class:`WeightsFormatError` for values that are not arrays). The one weights-fit check:
    every learner and the agent use it. Opaque weights (see :func:`weights_kind`) fit
    opaque weights of the same kind, unchecked: the learner decodes them itself."""
    kind, expected_kind = weights_kind(candidate), weights_kind(template)
    if kind != expected_kind:
        raise WeightsMismatchError(f"weights are {_KIND_NAMES[kind]}, the model's are "
                                   f"{_KIND_NAMES[expected_kind]}")
    if kind != "arrays":
        return candidate  # as given: the learner checks it
    if isinstance(candidate, Mapping) != isinstance(template, Mapping):
        raise WeightsMismatchError("weights container differs from the model's")
    got = dict(_items(candidate))
    want = dict(_items(template))
    if not isinstance(template, Mapping) and len(got) != len(want):
        raise WeightsMismatchError(f"got {len(got)} weight arrays, the model has {len(want)}")
    if set(got) != set(want):
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        raise WeightsMismatchError(f"weight names differ: missing {missing}, unexpected {extra}")
    for name, expected in want.items():
        array = got[name]
        if array.shape != expected.shape:
            raise WeightsMismatchError(
                f"weight {name!r} has shape {array.shape}, the model expects {expected.shape}"
            )
        if array.dtype != expected.dtype:
            raise WeightsMismatchError(
                f"weight {name!r} has dtype {array.dtype}, the model expects {expected.dtype}"
            )
        if require_finite and array.dtype.kind == "f" and not np.isfinite(array).all():
            raise WeightsMismatchError(f"weight {name!r} contains NaN or Inf")
    return got if isinstance(template, Mapping) else [got[name] for name in want]

"""A safe weights codec: named arrays with their shapes and dtypes, in safetensors format.

Decoding never runs code: a safetensors file is a JSON header and raw little-endian
buffers. Weights are a mapping of names to arrays, or a sequence of arrays (Keras'
``get_weights()`` style); anything else is refused with :class:`WeightsFormatError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Union

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as _st_load
from safetensors.numpy import save as _st_save

FORMAT_TAG = "colearn-weights/1"
ArrayTree = Union[dict[str, np.ndarray], list[np.ndarray]]


class WeightsFormatError(ValueError):
    """Bytes or objects that are not weights this codec accepts."""


class WeightsMismatchError(ValueError):
    """Decoded weights that do not fit the model that would load them."""


def _as_array(name: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a framework tensor
        value = value.detach().cpu().numpy()
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    if not isinstance(value, (np.ndarray, np.generic)):
        raise WeightsFormatError(f"weight {name!r} is a {type(value).__name__}, not an array")
    array = np.asarray(value)
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)  # (it would turn a 0-d array into 1-d)
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise WeightsFormatError(f"weight {name!r} has unsupported dtype {array.dtype}")
    return array


def encode_weights(weights: Any) -> bytes:
    """Serializes a mapping ``{name: array}`` or a sequence of arrays to safetensors bytes."""
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
    # One metadata entry: safetensors writes several in a random order, and the same
    # weights must always give the same bytes (hence the same digest and CID).
    return _st_save(named, metadata={"format": f"{FORMAT_TAG};{container}"})


def decode_weights(data: bytes, *, max_bytes: int | None = None) -> ArrayTree:
    """Parses safetensors bytes made by :func:`encode_weights`; never executes anything."""
    if max_bytes is not None and len(data) > max_bytes:
        raise WeightsFormatError(f"weights are {len(data)} bytes, more than the limit {max_bytes}")
    if len(data) < 8:
        raise WeightsFormatError("weights are not in safetensors format (too short)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8:
        raise WeightsFormatError("weights are not in safetensors format (bad header length)")
    try:
        metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
        arrays = _st_load(data)
    except (SafetensorError, ValueError, UnicodeDecodeError) as exc:
        raise WeightsFormatError(f"weights are not in safetensors format: {exc}") from None
    tag, _, container = str(metadata.get("format", "")).partition(";")
    if tag != FORMAT_TAG:
        raise WeightsFormatError(f"weights are not tagged {FORMAT_TAG!r}")
    if container == "list":
        try:
            return [arrays[str(i)] for i in range(len(arrays))]
        except KeyError:
            raise WeightsFormatError("list weights must be named 0..n-1") from None
    if container != "dict":
        raise WeightsFormatError(f"unknown container {container!r}")
    return dict(arrays)


def _items(tree: Any) -> list[tuple[str, np.ndarray]]:
    if isinstance(tree, Mapping):
        return [(str(k), _as_array(str(k), v)) for k, v in tree.items()]
    return [(str(i), _as_array(str(i), v)) for i, v in enumerate(tree)]


def check_compatible(candidate: ArrayTree, template: Any) -> None:
    """Raises :class:`WeightsMismatchError` unless ``candidate`` has the template's
    structure, names, shapes and dtypes, and only finite values."""
    if isinstance(candidate, Mapping) != isinstance(template, Mapping):
        raise WeightsMismatchError("weights container differs from the model's")
    got = dict(_items(candidate))
    want = dict(_items(template))
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
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise WeightsMismatchError(f"weight {name!r} contains NaN or Inf")

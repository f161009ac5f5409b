"""Weights in and out of a PyTorch model without copying the model.

A voter tests a proposal by swapping the proposal's tensors into the model's parameters
and buffers (:func:`swapped_in`: ``torch.from_numpy`` on the decoded arrays, no copy),
scoring, and swapping the model's own tensors back, however the scoring ends. Accepting
copies the proposal once into the model's own tensors (:func:`load_into`). So a vote
holds the model and the proposal, never a snapshot of the model or a converted copy of
the proposal.

Decoded proposals are read-only numpy views of the fetched bytes. torch cannot mark a
tensor read-only and warns when it wraps such an array; the wrapped tensors are only read
here (the model is scored in eval mode under ``no_grad``, where no layer writes to its
parameters or buffers), so the warning is silenced for those arrays alone.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from colearn_core.codec import WeightsFormatError, check_compatible
from colearn_core.learners._base import raw_weights
from colearn_core.ml_interface import Weights

WeightsLike = Weights | Mapping[str, Any]


def state_dict_to_numpy(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's ``state_dict`` as ``{name: numpy copy}`` (exact values and dtypes)."""
    return {
        name: tensor.detach().cpu().numpy().copy()
        for name, tensor in model.state_dict().items()
    }


def state_dict_copy(model: nn.Module) -> OrderedDict[str, torch.Tensor]:
    """The model's ``state_dict`` as detached copies (colearn's form of weights)."""
    return OrderedDict(
        (name, tensor.detach().clone()) for name, tensor in model.state_dict().items())


def checked_arrays(weights: WeightsLike, model: nn.Module, *,
                   require_finite: bool = True) -> dict[str, np.ndarray]:
    """``weights`` as ``{name: numpy array}`` (views of the given arrays or tensors, no
    copy) after checking them against ``model`` (same names, shapes and dtypes; finite if
    ``require_finite``).

    ``weights`` may hold tensors (the learner's own form) or numpy arrays (as the codec
    decodes them). Raises :class:`~colearn_core.codec.WeightsFormatError` for something
    that is not a mapping of arrays, :class:`~colearn_core.codec.WeightsMismatchError`
    for weights that do not fit the model.
    """
    raw = raw_weights(weights)
    if not isinstance(raw, Mapping):
        raise WeightsFormatError(
            f"PyTorch weights are a mapping {{name: array}}, not {type(raw).__name__}"
        )
    checked = check_compatible(raw, model.state_dict(), require_finite=require_finite)
    assert isinstance(checked, dict)
    return checked


def as_tensors(arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """CPU tensors sharing the arrays' memory (read-only arrays too: see the module's
    docstring); an unaligned array, which torch may not read in place, is copied."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable",
                                category=UserWarning)
        return {name: torch.from_numpy(array if array.flags.aligned else array.copy())
                for name, array in arrays.items()}


def weights_to_state_dict(
    weights: WeightsLike, model: nn.Module, *, require_finite: bool = True
) -> dict[str, torch.Tensor]:
    """Checks ``weights`` against ``model`` (:func:`checked_arrays`) and returns a
    ``state_dict`` of fresh tensors (copies: the caller's arrays are never aliased)."""
    checked = checked_arrays(weights, model, require_finite=require_finite)
    return {name: torch.from_numpy(np.array(array, copy=True))
            for name, array in checked.items()}


def _targets(model: nn.Module, names: Iterator[str]) -> tuple[dict[str, torch.Tensor],
                                                            dict[str, str]]:
    """The model's parameter or buffer for each name that is the first to name it, and
    ``{alias: first name}`` for the others (tied weights: one tensor under two names)."""
    targets: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    first: dict[int, str] = {}
    for name in names:
        path, _, attribute = name.rpartition(".")
        module = model.get_submodule(path) if path else model
        target = module._parameters.get(attribute, module._buffers.get(attribute))
        if target is None:
            raise WeightsFormatError(f"{name!r} is neither a parameter nor a buffer of the "
                                     "model (extra state cannot be swapped)")
        if id(target) in first:
            aliases[name] = first[id(target)]
        else:
            first[id(target)] = name
            targets[name] = target
    return targets, aliases


def _put(target: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    """Makes ``tensor`` the storage of ``target`` (which stays the same object: optimizer
    state, shared buffers and tied weights still refer to it); returns the one it had."""
    previous = target.data
    target.data = tensor
    return previous


def swap_storage(model: nn.Module,
                 tensors: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Makes ``tensors`` (``state_dict`` names, checked shapes and dtypes, on the model's
    device) the storage of the model's parameters and buffers, without copying, and
    returns the tensors they held, by the same names. A tied tensor takes its first
    name's."""
    targets, aliases = _targets(model, iter(tensors))
    previous = {name: _put(target, tensors[name]) for name, target in targets.items()}
    return OrderedDict((name, previous[aliases.get(name, name)]) for name in tensors)


@contextlib.contextmanager
def swapped_in(model: nn.Module, arrays: Mapping[str, np.ndarray],
               device: torch.device) -> Iterator[None]:
    """Runs the block with ``arrays`` (checked: :func:`checked_arrays`) as the model's
    parameters and buffers, shared with the arrays on the CPU (copied to another
    ``device``), and puts the model's own tensors back afterwards, also when the block
    raises. The block must only read them (eval mode, ``no_grad``)."""
    tensors = as_tensors(arrays)
    if device.type != "cpu":
        tensors = {name: tensor.to(device) for name, tensor in tensors.items()}
    targets, _ = _targets(model, iter(tensors))
    own: dict[str, torch.Tensor] = {}
    try:
        for name, target in targets.items():  # a failure half-way restores what was put
            own[name] = _put(target, tensors[name])
        yield
    finally:
        swap_storage(model, own)


@torch.no_grad()
def load_into(model: nn.Module, arrays: Mapping[str, np.ndarray]) -> None:
    """Copies ``arrays`` (checked: :func:`checked_arrays`) once into the model's own
    parameters and buffers; nothing aliases the arrays afterwards."""
    targets = model.state_dict()  # detached views of the model's tensors
    for name, tensor in as_tensors(arrays).items():
        targets[name].copy_(tensor)

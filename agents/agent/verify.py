"""Weights a peer published, checked before a learner sees them: fetched within a deadline
and a size fitting the learner's own model, the sha256 digest on chain (the store checks
it as the bytes arrive), a safe decode, and the model's names, shapes and dtypes with
finite values.

Whatever goes wrong is a :class:`Rejected` with the reason: the agent turns it into a
reject vote (or leaves an accepted model it cannot load), never into a crash.

A learner whose weights are opaque (``bytes``, or a model file named by a path: see
:func:`colearn_core.codec.weights_kind`) gets peers' data of the same kind checked only
for size and digest: it decodes them itself. A model file is written to this agent's own
temporary directory and the learner is handed that path.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from agents.storage.cid import BytesLike
from agents.storage.store import (
    ContentMismatch,
    ContentTooLarge,
    InvalidCid,
    WeightStore,
    WeightStoreError,
)
from colearn_core.codec import (
    ModelFile,
    WeightsFormatError,
    WeightsMismatchError,
    check_compatible,
    decode_weights,
    encoded_size_limit,
    weights_kind,
)


class Rejected(Exception):
    """Weights that cannot be fetched, verified or loaded; ``permanent`` when their content
    is at fault (the same CID and digest can never load)."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


class WeightsVerifier:
    """Fetches and checks weights for a model shaped like ``weights`` (their names, shapes
    and dtypes; their values are not kept). ``max_bytes`` caps a fetch further."""

    def __init__(self, store: WeightStore, weights: Any, max_bytes: int) -> None:
        self.store = store
        self.template = shape_template(weights)
        self.kind = weights_kind(weights)
        # Anything longer than this model's weights can encode to is refused unread (opaque
        # weights may grow: a boosted model gains trees each round).
        self.max_bytes = max_bytes if self.kind != "arrays" else \
            min(max_bytes, encoded_size_limit(self.template))
        self._files: Path | None = None  # where peers' model files are written

    def fetch(self, cid: str, digest: bytes, timeout: float | None) -> Any:
        """The weights of ``cid`` if they arrive within ``timeout`` seconds (``None``: the
        store's own limit), hash to ``digest`` and fit the model; else :class:`Rejected`."""
        try:  # checked against the digest on chain (not the CID too: one hash, not two)
            fetched = self.store.get(cid, max_bytes=self.max_bytes, timeout=timeout,
                                     sha256=digest)
        except (InvalidCid, ContentTooLarge, ContentMismatch) as exc:
            raise Rejected(str(exc), permanent=True) from None
        except WeightStoreError as exc:
            raise Rejected(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - a store must not stop the agent either
            raise Rejected(f"the store failed: {describe(exc)}") from None
        try:
            weights = decode_weights(fetched.data, max_bytes=self.max_bytes)  # views: no copy
            check_compatible(weights, self.template)
        except (WeightsFormatError, WeightsMismatchError) as exc:
            raise Rejected(str(exc), permanent=True) from None
        if isinstance(weights, ModelFile):
            return self._model_path(weights, digest)
        return weights

    def _model_path(self, model: ModelFile, digest: bytes) -> str:
        """The path of a file holding ``model``, in this agent's temporary directory
        (removed with the verifier), named by its digest."""
        if self._files is None:
            self._files = Path(tempfile.mkdtemp(prefix="colearn-weights-"))
            weakref.finalize(self, shutil.rmtree, self._files, ignore_errors=True)
        path = self._files / f"{digest.hex()}{model.suffix}"
        try:
            if not path.exists():
                path.write_bytes(model.content)
        except OSError as exc:
            raise Rejected(f"cannot write the model file: {describe(exc)}") from None
        return str(path)


def shape_template(weights: Any) -> Any:
    """Arrays with the names, shapes and dtypes of ``weights`` and none of their content
    (``np.empty``: large ones stay unmapped until touched, and are never touched); for
    opaque weights, an empty value of their kind."""
    kind = weights_kind(weights)
    if kind != "arrays":
        return b"" if kind == "bytes" else ModelFile(b"")
    if isinstance(weights, Mapping):
        return {name: np.empty(np.shape(a), np.asarray(a).dtype) for name, a in weights.items()}
    return [np.empty(np.shape(a), np.asarray(a).dtype) for a in weights]


def sha256(data: BytesLike) -> bytes:
    return hashlib.sha256(data).digest()


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line."""
    return f"{type(exc).__name__}: {one_line(str(exc))}"


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."

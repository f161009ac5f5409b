"""The store's checks: every proposal's weights (and the initial model's) are there, hash
to their digest on chain, and the final model loads."""

from __future__ import annotations

import numpy as np

from agents.audit.checks.core import STORE_TIMEOUT, Checker
from agents.audit.checks.protocol import expected_model
from agents.audit.history import History
from agents.storage.store import (
    ContentMismatch,
    ContentNotFound,
    Fetched,
    WeightStore,
    WeightStoreError,
)
from colearn_core.codec import ModelFile, WeightsFormatError, decode_weights


def check_store(h: History, store: WeightStore, c: Checker,
                timeout: float = STORE_TIMEOUT) -> None:
    """Every proposal's weights (and the initial model's) are in the store and hash to
    their on-chain digest; the final model loads."""
    items: list[tuple[int | None, str, str]] = [(None, h.config.initial_cid,
                                                    h.config.initial_digest)]
    items += [(r.round, r.proposal.cid, r.proposal.digest) for r in h.rounds if r.proposal]
    _, _, final_cid = expected_model(h)
    final: Fetched | None = None  # the one payload kept: the final model's, to load below
    for round_index, cid, digest in items:
        what = "the initial model" if round_index is None else f"round {round_index}'s proposal"
        c.count("weights-missing")
        c.count("weights-digest")
        data = _fetch(store, cid, what, round_index, c, timeout)
        if data is not None and "0x" + data.sha256.hex() != digest:
            c.fail("weights-digest", round_index,
                   f"{what} ({cid}) hashes to 0x{data.sha256.hex()}, the chain says {digest}")
            data = None
        if cid == final_cid:
            final = data
    c.count("final-model-unloadable")
    if final is None:
        c.fail("final-model-unloadable", None,
               f"the final model {final_cid} could not be fetched intact from the store")
        return
    try:
        weights = decode_weights(final.data)
        if isinstance(weights, (bytes, ModelFile)):
            return  # opaque: only its learners can tell whether it loads
        arrays = weights.values() if isinstance(weights, dict) else weights
        for array in arrays:
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise WeightsFormatError("it holds NaN or Inf")
    except WeightsFormatError as exc:
        c.fail("final-model-unloadable", None, f"the final model {final_cid} does not load: {exc}")


def _fetch(store: WeightStore, cid: str, what: str, round_index: int | None, c: Checker,
           timeout: float) -> Fetched | None:
    try:
        return store.get(cid, timeout=timeout)
    except ContentNotFound:
        c.fail("weights-missing", round_index, f"{what}: the store has nothing for {cid}")
    except ContentMismatch as exc:
        c.fail("weights-digest", round_index,
               f"{what}: the store's bytes for {cid} hash to {exc.actual}, not to that CID")
    except WeightStoreError as exc:
        c.fail("weights-missing", round_index, f"{what}: cannot fetch {cid}: {exc}")
    return None

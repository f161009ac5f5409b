"""An experiment's model, fetched and checked against the chain (``colearn model get``):
the final model (the last accepted proposal, or the initial model) or one round's proposal,
its bytes verified against the digest on chain, and optionally exported to ONNX through a
learner factory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agents.audit.checks import expected_model
from agents.audit.history import History
from agents.audit.reader import read_history
from agents.chain.client import CollectiveLearningClient
from agents.experiment.spec import LearnerFactory, SpecError, describe_exception
from agents.storage.store import WeightStore, WeightStoreError

log = logging.getLogger(__name__)


class ModelError(ValueError):
    """A model that cannot be had: no such round, a blob that does not match the chain, a
    learner that cannot export it."""


class ModelRef(BaseModel):
    """Which model, where it is stored, and its digest on chain."""

    experiment_id: int
    model_round: int  # 0: the initial model; r + 1: the proposal of round r
    cid: str
    digest: str  # 0x-hex sha256 of the stored bytes
    what: str  # for people: "the final model (round 4's proposal)", ...
    complete: bool  # the experiment is complete: the model is final


def final_model(h: History) -> ModelRef:
    """The current model by the events (the last accepted proposal, or the initial model),
    cross-checked with the contract's ``currentModel`` view when it was read."""
    digest, model_round, cid = expected_model(h)
    view = h.view
    if view is not None and (view.model_digest.lower(), view.model_round) != (digest.lower(),
                                                                              model_round):
        raise ModelError(f"the contract's current model {view.model_digest} (model round "
                         f"{view.model_round}) is not the last accepted one by its events "
                         f"({digest}, model round {model_round}): run `colearn audit`")
    complete = h.completion is not None
    source = f"round {model_round - 1}'s proposal" if model_round else "the initial model"
    what = f"the {'final' if complete else 'current'} model ({source})"
    return ModelRef(experiment_id=h.experiment_id, model_round=model_round, cid=cid,
                    digest=digest, what=what, complete=complete)


def round_model(h: History, round_index: int) -> ModelRef:
    """Round ``round_index``'s proposal, accepted or not."""
    row = next((r for r in h.rounds if r.round == round_index), None)
    if row is None or row.proposal is None:
        reached = max((r.round for r in h.rounds if r.proposal is not None), default=None)
        has = (f"proposals exist for rounds up to {reached}" if reached is not None
               else "no round has a proposal yet")
        raise ModelError(f"experiment {h.experiment_id} has no proposal in round "
                         f"{round_index} ({has})")
    outcome = row.outcome
    return ModelRef(experiment_id=h.experiment_id, model_round=round_index + 1,
                    cid=row.proposal.cid, digest=row.proposal.digest,
                    what=f"round {round_index}'s proposal ({outcome})",
                    complete=h.completion is not None)


def locate_model(client: CollectiveLearningClient, experiment_id: int,
                 round_index: int | None = None, *, from_block: int = 0) -> ModelRef:
    """The final model, or round ``round_index``'s proposal, as the chain names it."""
    h = read_history(client, experiment_id, from_block=from_block)
    return final_model(h) if round_index is None else round_model(h, round_index)


def fetch_model(store: WeightStore, ref: ModelRef) -> memoryview:
    """The model's bytes from ``store``, checked against the digest on chain."""
    try:
        fetched = store.get(ref.cid)
    except WeightStoreError as exc:
        raise ModelError(f"cannot fetch {ref.what}, CID {ref.cid}: {exc}") from None
    actual = "0x" + fetched.sha256.hex()
    if actual != ref.digest.lower():
        raise ModelError(f"the store's {ref.cid} hashes to {actual}, not the digest on chain "
                         f"{ref.digest}: refusing it")
    return fetched.data


def export_onnx(data: memoryview, factory: LearnerFactory, path: Path) -> None:
    """The weights ``data`` given to the learner ``factory`` builds, exported to ONNX
    (``mli_get_current_model()``) and written to ``path``."""
    from colearn_core.codec import decode_weights
    from colearn_core.ml_interface import ModelFormat, Weights

    learner = factory.build()
    try:
        learner.mli_accept_weights(Weights(weights=decode_weights(data)))
    except Exception as exc:  # noqa: BLE001 - the user's learner: whatever it raises
        raise ModelError(f"learner {factory.target} refuses the model's weights: "
                         f"{describe_exception(exc)}") from None
    try:
        model = learner.mli_get_current_model()
    except Exception as exc:  # noqa: BLE001 - exporters raise many kinds of errors
        raise ModelError(f"learner {factory.target} cannot export its model: "
                         f"{describe_exception(exc)}") from None
    if model.model_format is not ModelFormat.ONNX or model.model is None:
        raise ModelError(f"learner {factory.target} cannot export to ONNX: its "
                         f"mli_get_current_model() gives {model.model_format.name} (is the "
                         "onnx package, or its framework's exporter, installed?)")
    path.write_bytes(_onnx_bytes(model.model))


def _onnx_bytes(model: Any) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    serialize = getattr(model, "SerializeToString", None)
    if serialize is None:
        raise SpecError(f"the learner's ONNX model is a {type(model).__name__}, not an "
                        "onnx.ModelProto or bytes")
    return bytes(serialize())


def model_cid(client: CollectiveLearningClient, experiment_id: int, digest: bytes) -> str | None:
    """The CID of the experiment's current model if its digest is ``digest`` (an agent's
    final summary); None if it is another model or the chain cannot be read (logged)."""
    try:
        ref = final_model(read_history(client, experiment_id, from_block=client.first_block))
    except Exception as exc:  # noqa: BLE001 - a summary line must not fail the finished run
        log.warning("cannot read the final model's CID: %s", describe_exception(exc))
        return None
    return ref.cid if ref.digest.lower() == "0x" + digest.hex() else None

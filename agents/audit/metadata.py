"""An experiment's metadata: the JSON document whose CID ``ExperimentCreated`` logs,
fetched from a weight store when one is given (else named by its CID only)."""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import BaseModel

from agents.storage.store import WeightStore, WeightStoreError

log = logging.getLogger(__name__)

#: Metadata larger than this is not fetched (it describes an experiment; it is no model).
MAX_METADATA_BYTES = 64 * 1024
#: Seconds to wait for it from a slow store.
FETCH_SECONDS = 10.0


class Metadata(BaseModel):
    cid: str
    content: Any = None  # the parsed JSON (or the text, when it is not JSON)
    note: str | None = None  # why the content is not shown

    @property
    def fetched(self) -> bool:
        return self.note is None

    def text(self) -> str:
        """The content, pretty-printed, or the CID and why it was not fetched."""
        if not self.cid:
            return "none"
        if self.note is not None:
            return f"metadata CID {self.cid} ({self.note})"
        if isinstance(self.content, str):
            return self.content
        return json.dumps(self.content, indent=2, sort_keys=True)

    def vote_score(self) -> tuple[str, bool | None]:
        """What the vote scores are, as the metadata says (``vote_score``: ``name`` and
        ``lower_is_better``): ("score", None) when it does not say."""
        entry = self.content.get("vote_score") if isinstance(self.content, dict) else None
        if not isinstance(entry, dict):
            return "score", None
        name = entry.get("name")
        lower = entry.get("lower_is_better")
        return (name if isinstance(name, str) and name else "score",
                lower if isinstance(lower, bool) else None)


def fetch_metadata(cid: str, store: WeightStore | None) -> Metadata:
    """The metadata of ``cid`` from ``store``; never raises: a failure is its ``note``."""
    if not cid:
        return Metadata(cid="", note="no metadata")
    if store is None:
        return Metadata(cid=cid, note="not fetched: no --store")
    try:
        data = store.get(cid, max_bytes=MAX_METADATA_BYTES, timeout=FETCH_SECONDS)
    except (WeightStoreError, OSError) as exc:
        log.info("metadata %s: %s", cid, exc)
        return Metadata(cid=cid, note=f"not fetched: {exc}")
    text = bytes(data).decode("utf-8", errors="replace")
    try:
        return Metadata(cid=cid, content=json.loads(text))
    except json.JSONDecodeError:
        return Metadata(cid=cid, content=text)

"""Where an agent keeps the openings of its sealed votes between commit and reveal.

A sealed vote is committed as a hash; only its opening (vote, score, salt) reveals it, and
an agent that lost the opening cannot reveal (its vote does not count, and a staked
experiment takes a penalty). So the opening is written to disk *before* the commitment
is sent, and a restarted agent reads it back.

One small JSON file per (chain, contract, experiment, voter) in the state directory::

    {"chain_id": 31337, "contract": "0x…", "experiment_id": 1, "voter": "0x…",
     "openings": {"3": {"digest": "<hex>", "approve": true, "score": 917…, "salt": "<hex>"}}}

keyed by round; ``digest`` is the proposal the vote judged (an opening made for another
proposal, one a reorganization replaced, is never revealed). It holds no key: a salt and a
vote only. Writes are atomic (a temporary file in the same directory, then a rename), so a
crash leaves the old file or the new one, never half of one. Without a directory, openings
live in memory only (a restart between commit and reveal then loses the vote).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from agents.chain.signing import VoteOpening

log = logging.getLogger(__name__)


class StoredOpening(BaseModel):
    """A round's opening and the proposal digest it was made for."""

    model_config = ConfigDict(frozen=True, ser_json_bytes="hex", val_json_bytes="hex")

    digest: bytes
    approve: bool
    score: int
    salt: bytes

    @property
    def opening(self) -> VoteOpening:
        return VoteOpening(approve=self.approve, score=self.score, salt=self.salt)


class _File(BaseModel):
    chain_id: int
    contract: str
    experiment_id: int
    voter: str
    openings: dict[int, StoredOpening]


class OpeningStore:
    """The openings of one voter's sealed votes in one experiment, by round."""

    def __init__(self, directory: Path | None, *, chain_id: int, contract: str,
                 experiment_id: int, voter: str):
        self.chain_id, self.contract = chain_id, contract
        self.experiment_id, self.voter = experiment_id, voter
        self.path = None if directory is None else Path(directory) / (
            f"openings-{chain_id}-{contract.lower()}-{experiment_id}-{voter.lower()}.json")
        self._openings: dict[int, StoredOpening] = {}
        if self.path is not None and self.path.exists():
            self._openings = self._read(self.path)

    @property
    def persistent(self) -> bool:
        return self.path is not None

    def get(self, round_index: int, digest: bytes) -> VoteOpening | None:
        """The opening kept for the round's proposal ``digest``, if any."""
        stored = self._openings.get(round_index)
        return stored.opening if stored is not None and stored.digest == digest else None

    def put(self, round_index: int, digest: bytes, opening: VoteOpening) -> None:
        """Keeps an opening (on disk before this returns, when there is a directory);
        openings of earlier rounds are dropped."""
        self._openings = {r: o for r, o in self._openings.items() if r > round_index}
        self._openings[round_index] = StoredOpening(
            digest=digest, approve=opening.approve, score=opening.score, salt=opening.salt)
        self._save()

    def forget_before(self, round_index: int) -> None:
        """Drops the openings of rounds before ``round_index`` (decided: moot)."""
        if any(r < round_index for r in self._openings):
            self._openings = {r: o for r, o in self._openings.items() if r >= round_index}
            self._save()

    @property
    def rounds(self) -> list[int]:
        return sorted(self._openings)

    def _read(self, path: Path) -> dict[int, StoredOpening]:
        try:
            stored = _File.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as exc:
            log.error("cannot read the sealed-vote openings in %s (%s); starting without them",
                      path, str(exc).splitlines()[0])
            return {}
        if (stored.chain_id, stored.contract.lower(), stored.experiment_id,
                stored.voter.lower()) != (self.chain_id, self.contract.lower(),
                                          self.experiment_id, self.voter.lower()):
            log.error("%s holds openings of another experiment or voter: ignored", path)
            return {}
        return dict(stored.openings)

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = _File(chain_id=self.chain_id, contract=self.contract,
                     experiment_id=self.experiment_id, voter=self.voter,
                     openings=self._openings).model_dump_json(indent=1)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp",
                                   dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:  # mkstemp: readable by this user only
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

"""An agent's side of the relay's HTTP API."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel

from agents._utils.closing import Closing
from agents.chain.signing import SignedCommit, SignedJoin, SignedProposal, SignedVote
from agents.relay.errors import Refused, RelayError
from agents.relay.requests import RevealRequest


class RelayClient(Closing):
    """Posts signed calls to a relay; a context manager (closes its connection)."""

    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout)

    def submit_vote(self, vote: SignedVote) -> None:
        self._post("/v1/votes", vote)

    def submit_commit(self, commit: SignedCommit) -> None:
        """Hands a signed commitment (sealed votes) to the relay's batch of its round."""
        self._post("/v1/commits", commit)

    def submit_reveal(self, reveal: RevealRequest) -> None:
        """Hands a sealed vote's opening to the relay's batch of reveals of its round."""
        self._post("/v1/reveals", reveal)

    def submit_proposal(self, proposal: SignedProposal) -> str | None:
        return self._post("/v1/proposals", proposal).get("tx_hash")

    def submit_join(self, join: SignedJoin) -> str | None:
        """The join's transaction hash (``None``: the learner had joined already)."""
        return self._post("/v1/joins", join).get("tx_hash")

    def _post(self, path: str, body: BaseModel) -> dict[str, Any]:
        try:
            response = self._http.post(self.url + path, content=body.model_dump_json(),
                                       headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            raise RelayError(f"cannot reach the relay at {self.url}: {exc}") from None
        try:
            payload = response.json()
        except ValueError:
            payload = {"error": response.text[:200]}
        if not isinstance(payload, dict):
            payload = {"error": str(payload)[:200]}
        if response.status_code >= 400:
            raise Refused(f"relay refused: {payload.get('error', response.status_code)}",
                          status=response.status_code)
        return payload

    def close(self) -> None:
        self._http.close()

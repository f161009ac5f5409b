"""A vote relay: learners hand it EIP-712 signatures, it pays for the transactions.

Any learner, or a third party, runs ``colearn relay``. Agents started with ``--relay
URL`` sign their proposals and votes and POST them here instead of sending
transactions, so a learner with no ETH can take part in a whole experiment. The relay:

- checks each signature off chain (right contract and chain, the signer is the learner
  it claims to be, the round is open) and refuses what the contract would refuse;
- submits a proposal at once (:meth:`CollectiveLearningClient.propose_by_sig`);
- collects a round's votes and submits them as one ``castVotesBySig`` batch when every
  voter's vote is in, or ``batch_delay`` seconds after the first one arrived, leaving out
  votes already on chain (a learner may have fallen back to voting directly);
- closes rounds whose deadline passed (``expire`` / ``decide``) in the experiments it
  has relayed for, since learners without ETH cannot.

The HTTP API (JSON): ``POST /v1/votes`` (a :class:`SignedVote`), ``POST /v1/proposals``
(a :class:`SignedProposal`), ``GET /v1/health``. Refusals are 4xx with ``{"error": ...}``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import httpx
from pydantic import BaseModel, ValidationError

from agents.chain import (
    ChainError,
    CollectiveLearningClient,
    ContractRevert,
    ExperimentCreated,
    RoundState,
)
from agents.signing import SignedProposal, SignedVote

log = logging.getLogger(__name__)

# Contract errors meaning the round moved on: the queued votes of that round are moot.
_ROUND_GONE = {"WrongRound", "UnexpectedRoundState"}


class RelayError(Exception):
    """The relay refused a signed call, or cannot be reached."""


class Refused(RelayError):
    """The relay (or the contract, checked by the relay) refuses this signed call."""


class _Pending(BaseModel):
    votes: dict[str, SignedVote] = {}  # by voter address
    first_at: float


class Relay:
    """Checks, queues and submits signed calls for one deployed contract. Thread-safe:
    HTTP handlers call :meth:`submit_vote` / :meth:`submit_proposal`, one loop calls
    :meth:`tick`."""

    def __init__(self, client: CollectiveLearningClient, *, batch_delay: float = 0.5):
        if client.account is None:
            raise RelayError("a relay needs an account to pay for transactions")
        self.client = client
        self.batch_delay = batch_delay
        self._lock = threading.Lock()
        self._experiments: dict[int, ExperimentCreated] = {}
        self._pending: dict[tuple[int, int], _Pending] = {}
        self.batches_sent = 0
        self.votes_relayed = 0
        self.proposals_relayed = 0

    def watch(self, experiment_id: int) -> None:
        """Closes timed-out rounds of this experiment from now on (experiments the relay
        has relayed for are watched anyway)."""
        with self._lock:
            self._check_domain(self.client.chain_id, self.client.address, experiment_id)

    # ------------------------------------------------------------ submissions

    def submit_vote(self, vote: SignedVote) -> None:
        """Queues a signed vote after checking it; raises :class:`Refused` with the reason."""
        with self._lock:
            created = self._check_domain(vote.chain_id, vote.contract, vote.experiment_id)
            if not 0 <= vote.learner_index < len(created.learners):
                raise Refused(f"learner index {vote.learner_index} is out of range")
            learner = created.learners[vote.learner_index]
            if vote.voter != learner or vote.signer() != learner:
                raise Refused(f"the signature is not learner {vote.learner_index}'s ({learner})")
            status = self.client.round_status(vote.experiment_id, learner)
            if status.round != vote.round or status.state != RoundState.VOTING:
                raise Refused(f"round {vote.round} is not open for votes (round {status.round} "
                              f"is {status.state.name})")
            if status.voted:
                return  # already on chain: nothing to do
            key = (vote.experiment_id, vote.round)
            pending = self._pending.setdefault(key, _Pending(first_at=time.monotonic()))
            pending.votes[learner] = vote
            log.info("experiment %d round %d: vote of learner %d queued (%d waiting)",
                     vote.experiment_id, vote.round, vote.learner_index, len(pending.votes))
            if len(pending.votes) == len(created.learners) - 1:
                self._send_batch(key)

    def submit_proposal(self, proposal: SignedProposal) -> str:
        """Submits a signed proposal now; returns the transaction hash."""
        with self._lock:
            self._check_domain(proposal.chain_id, proposal.contract, proposal.experiment_id)
            signer = proposal.signer()
            if signer != proposal.proposer:
                raise Refused(f"the signature is {signer}'s, not {proposal.proposer}'s")
            try:
                tx = self.client.propose_by_sig(proposal)
            except ContractRevert as exc:
                raise Refused(f"the contract refuses it: {exc}") from None
            self.proposals_relayed += 1
            log.info("experiment %d round %d: proposal of %s submitted", proposal.experiment_id,
                     proposal.round, proposal.proposer)
            return tx.tx_hash

    # ------------------------------------------------------------------ loop

    def tick(self) -> None:
        """Sends batches that waited ``batch_delay`` and closes timed-out rounds."""
        with self._lock:
            now = time.monotonic()
            for key in [k for k, p in self._pending.items() if now - p.first_at >= self.batch_delay]:
                self._send_batch(key)
            for experiment_id in self._experiments:
                self._close_if_timed_out(experiment_id)

    def run(self, stop: threading.Event, interval: float = 0.2) -> None:
        """Ticks until ``stop`` is set; chain errors are logged and retried."""
        while not stop.is_set():
            try:
                self.tick()
            except ChainError as exc:
                log.warning("relay: %s; retrying", exc)
                stop.wait(min(5.0, interval * 10))
            stop.wait(interval)

    # ------------------------------------------------------------- internals

    def _check_domain(self, chain_id: int, contract: str, experiment_id: int) -> ExperimentCreated:
        if chain_id != self.client.chain_id or contract != self.client.address:
            raise Refused(f"signed for chain {chain_id} contract {contract}; this relay serves "
                          f"chain {self.client.chain_id} contract {self.client.address}")
        created = self._experiments.get(experiment_id)
        if created is None:
            try:
                created = self.client.experiment_created(experiment_id)
            except ContractRevert as exc:
                raise Refused(str(exc)) from None
            self._experiments[experiment_id] = created
        return created

    def _send_batch(self, key: tuple[int, int]) -> None:
        pending = self._pending.pop(key)
        experiment_id, round_index = key
        learners = self._experiments[experiment_id].learners
        votes = [v for voter, v in pending.votes.items()
                 if not self.client.vote_of(experiment_id, voter)[0]]
        while votes:
            try:
                tx = self.client.cast_votes_by_sig(experiment_id, round_index, learners, votes)
            except ContractRevert as exc:
                if exc.name in _ROUND_GONE:
                    log.warning("experiment %d round %d closed before %d relayed votes landed: %s",
                                experiment_id, round_index, len(votes), exc)
                    return
                if exc.name == "AlreadyVoted":  # voted directly meanwhile: drop it, resend
                    votes = [v for v in votes if v.voter != exc.error_args["voter"]]
                    continue
                raise
            self.batches_sent += 1
            self.votes_relayed += len(votes)
            log.info("experiment %d round %d: %d signed votes in one batch (%d gas)",
                     experiment_id, round_index, len(votes), tx.gas_used)
            return

    def _close_if_timed_out(self, experiment_id: int) -> None:
        status = self.client.round_status(experiment_id)
        try:
            if status.state == RoundState.PROPOSAL_TIMED_OUT:
                self.client.expire(experiment_id, status.round)
                log.info("experiment %d round %d: expired", experiment_id, status.round)
            elif status.state == RoundState.VOTING_TIMED_OUT:
                self.client.decide(experiment_id, status.round)
                log.info("experiment %d round %d: decided after the deadline", experiment_id,
                         status.round)
        except ContractRevert as exc:
            if exc.name not in _ROUND_GONE:
                raise


# ------------------------------------------------------------------- HTTP server


class RelayServer:
    """Serves a :class:`Relay` over HTTP on ``host:port`` (port 0: a free one) and runs its
    loop; a context manager: everything stops on exit."""

    def __init__(self, relay: Relay, host: str = "127.0.0.1", port: int = 0,
                 tick_interval: float | None = 0.2):
        self.relay = relay
        self.tick_interval = tick_interval  # None: the caller calls relay.tick() itself
        self._server = ThreadingHTTPServer((host, port), _handler(relay))
        self._server.daemon_threads = True
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="relay-http", daemon=True)]
        if self.tick_interval is not None:
            self._threads.append(threading.Thread(
                target=self.relay.run, args=(self._stop, self.tick_interval), name="relay-loop",
                daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)


def _handler(relay: Relay) -> type[BaseHTTPRequestHandler]:
    routes: dict[str, tuple[type[BaseModel], Any]] = {
        "/v1/votes": (SignedVote, relay.submit_vote),
        "/v1/proposals": (SignedProposal, relay.submit_proposal),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/v1/health":
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {self.path}"})
                return
            self._reply(HTTPStatus.OK, {"contract": relay.client.address,
                                        "chain_id": relay.client.chain_id,
                                        "votes_relayed": relay.votes_relayed,
                                        "batches_sent": relay.batches_sent,
                                        "proposals_relayed": relay.proposals_relayed})

        def do_POST(self) -> None:
            route = routes.get(self.path)
            if route is None:
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {self.path}"})
                return
            model, submit = route
            try:
                length = int(self.headers.get("Content-Length", "0"))
                if length > 64 * 1024:
                    raise Refused("request too large")
                result = submit(model.model_validate_json(self.rfile.read(length)))
            except (ValidationError, ValueError) as exc:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": f"malformed request: {exc}"})
            except Refused as exc:
                self._reply(HTTPStatus.CONFLICT, {"error": str(exc)})
            except ChainError as exc:
                self._reply(HTTPStatus.BAD_GATEWAY, {"error": f"chain: {exc}"})
            else:
                self._reply(HTTPStatus.ACCEPTED, {"tx_hash": result} if result else {})

        def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("relay http: " + format, *args)

    return Handler


# ------------------------------------------------------------------- client side


class RelayClient:
    """An agent's side of the relay API; a context manager (closes its connection)."""

    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout)

    def submit_vote(self, vote: SignedVote) -> None:
        self._post("/v1/votes", vote)

    def submit_proposal(self, proposal: SignedProposal) -> str | None:
        return self._post("/v1/proposals", proposal).get("tx_hash")

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
        if response.status_code >= 400:
            raise Refused(f"relay refused: {payload.get('error', response.status_code)}")
        return payload

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""What every part of a learner agent shares: its state (set up by the constructor) and
the helpers its parts use (the experiment read once, proposals, the relay, deadlines)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from eth_account.signers.local import LocalAccount
from pydantic import BaseModel

from agents.agent.openings import OpeningStore
from agents.agent.records import RoundRecord, Timings
from agents.agent.settings import AgentSettings
from agents.agent.verify import WeightsVerifier, sha256
from agents.chain.client import CollectiveLearningClient
from agents.chain.errors import ChainError
from agents.chain.logs import ExperimentCreated, RoundDecided, RoundExpired, WeightsProposed
from agents.chain.types import RoundState, RoundStatus
from agents.relay import RelayClient, RelayError
from agents.storage.store import WeightStore
from colearn_core.codec import encode_weights
from colearn_core.ml_interface import MachineLearningInterface

# Time kept for testing and sending a vote when fetching a proposal near its deadline (at
# least; a tenth of the time left if that is more).
VOTE_MARGIN_SECONDS = 2.0


# Said once at start (logged, and printed by `colearn agent`) for a learner whose weights
# the agent cannot check.
OPAQUE_NOTICE = ("this learner's weights are {kind}: it decodes peer data itself (the agent "
                 "checks only their size and digest), so the learner is responsible for "
                 "validating peers' weights")


class AgentError(Exception):
    """The agent cannot act for this learner (wrong account, unknown experiment...)."""


class ExperimentCancelled(AgentError):
    """The experiment was cancelled before it started (a learner did not join in time)."""


class Verdict(BaseModel):
    """This learner's verdict on a round's proposal."""

    digest: bytes  # of the proposal judged: the vote names it
    approve: bool
    score: int
    reason: str | None = None


class AgentCore:
    """The state of an agent acting for one learner in one experiment."""

    def __init__(
        self,
        client: CollectiveLearningClient,
        store: WeightStore,
        learner: MachineLearningInterface,
        experiment_id: int,
        *,
        relay: RelayClient | None = None,
        settings: AgentSettings | None = None,
    ):
        if client.account is None:
            raise AgentError("an agent needs a client with an account")
        self.client = client
        self.account: LocalAccount = client.account
        self.store = store
        self.learner = learner
        self.experiment_id = experiment_id
        # With a relay, proposals and votes go to it as signatures (this account may hold
        # no ETH); votes it has not delivered by the fallback time are sent directly.
        self.relay = relay
        self.settings = settings if settings is not None else AgentSettings()
        self._relayed_vote: int | None = None  # round whose vote the relay holds
        self._relayed_commit: int | None = None  # round whose commitment the relay holds
        self._relayed_reveal: int | None = None  # round whose reveal the relay holds
        self._openings: OpeningStore | None = None  # sealed votes' openings (see _opening_store)
        self._said: set[tuple[int, str]] = set()  # (round, what) errors logged once
        #: What the agent withdrew at the end of a staked experiment (None: not yet, or
        #: not staked); 0 when there was nothing to withdraw.
        self.withdrawn: int | None = None
        self.address = client.account.address
        name = self.settings.name or self.address[:10]
        self.log = logging.getLogger(f"agents.agent.learner_agent.{name}")
        self.records: dict[int, RoundRecord] = {}
        self.done = False
        self.budget_exhausted = False
        self.status: RoundStatus | None = None  # read by the latest step
        self._status_read_at = 0.0  # time.monotonic() when it was read
        self._step_again = False  # act again at once: another participant moved first
        # The furthest point events have announced, as (round, 1 once proposed): a status
        # behind it comes from a node lagging behind the one that sent the event.
        self._announced = (0, 0)
        self._start_announced = False  # an ExperimentStarted or ExperimentCancelled event came
        self._joined_count: int | None = None  # learners joined, as last reported
        self._created: ExperimentCreated | None = None
        self._index: int | None = None
        self._verdicts: dict[int, Verdict] = {}
        self._failed_model: bytes | None = None  # a current model this agent cannot load
        self._unloadable: set[bytes] = set()  # digests whose content can never be loaded
        self.timings = Timings()
        # What the person who started the agent is told (agents.agent.progress).
        self._said_ready = False
        self._next_report: int | None = None  # the next round whose line is due
        self._acts: dict[int, str] = {}  # what this agent did in a round, for its line
        self._closings: dict[int, RoundDecided | RoundExpired] = {}  # from wake events
        self._proposals: dict[int, WeightsProposed] = {}
        self._proposals_from = 0
        # Weights this agent holds already verified (its own proposal, or the proposal it
        # tested) as (round, digest, weights): adopting them on acceptance needs no fetch.
        self._held: tuple[int, bytes, Any] | None = None
        weights = learner.mli_get_current_weights().weights
        # The learner's weights at start: if they are the chain's model, nothing to fetch.
        self.model_digest = sha256(encode_weights(weights))
        # Names, shapes and dtypes fetched weights must have (the model's never change),
        # hence the most bytes worth fetching: anything longer is refused unread.
        self.verifier = WeightsVerifier(store, weights, self.settings.max_weight_bytes)
        if self.verifier.kind != "arrays":
            self._report(OPAQUE_NOTICE.format(
                kind="opaque bytes" if self.verifier.kind == "bytes" else "a model file"))

    def _seconds_left(self, status: RoundStatus) -> float:
        """Seconds until the current phase's deadline, on the chain's clock."""
        return status.deadline - status.timestamp - (time.monotonic() - self._status_read_at)

    def _report(self, message: str) -> None:
        """Tells ``settings.notify`` (then logs at DEBUG: said once with -v), else logs at
        INFO."""
        if self.settings.notify is None:
            self.log.info("%s", message)
        else:
            self.log.debug("%s", message)
            self.settings.notify(message)

    def _learner_index(self) -> int:
        """This learner's index in the experiment's list (its place in the schedule)."""
        self._experiment()
        assert self._index is not None
        return self._index

    def _experiment(self) -> ExperimentCreated:
        if self._created is None:
            created = self.client.experiment_created(self.experiment_id)
            if self.address not in created.learners:
                raise AgentError(
                    f"account {self.address} is not a learner in experiment {self.experiment_id}")
            index = created.learners.index(self.address)  # the contract's order: the schedule
            self._created, self._index = created, index
            self.log.info("acting for learner %d of experiment %d", index, self.experiment_id)
        return self._created

    def _proposal(self, round_index: int) -> WeightsProposed:
        """The proposal of a round: from the event that announced it, else from the logs
        (each query reads only blocks not read yet, from the experiment's creation on)."""
        if round_index not in self._proposals:
            cursor = self._proposals_from or self._experiment().block_number
            for proposal in self.client.events(WeightsProposed, self.experiment_id, from_block=cursor):
                self._proposals[proposal.round] = proposal
                self._proposals_from = max(cursor, proposal.block_number)
        if round_index not in self._proposals:
            raise ChainError(f"round {round_index} has no proposal in the logs")
        return self._proposals[round_index]

    def _relayed(self, round_index: int, what: str,
                 submit: Callable[[RelayClient], object]) -> bool:
        """Hands a signed call to the relay, if there is one; False if there is none or it
        refused (then the agent acts directly)."""
        if self.relay is None:
            return False
        try:
            with self.timings.measure("transactions"):
                submit(self.relay)
        except RelayError as exc:
            self.log.warning("round %d: %s not relayed (%s); sending it directly", round_index,
                             what, exc)
            return False
        self.log.info("round %d: %s handed to the relay", round_index, what)
        return True

    def _relay_due(self, held: int | None, round_index: int, what: str) -> bool | None:
        """For a call the relay may hold: True while its batch is still due (wait), False
        once the fallback time came (act directly), None if the relay holds none."""
        if held != round_index:
            return None
        if self.status is not None and \
                self._seconds_left(self.status) > self.settings.relay_fallback_seconds:
            return True
        self.log.warning("round %d: the relay has not delivered this %s; sending it directly",
                         round_index, what)
        return False

    def _once(self, round_index: int, what: str, level: int, message: str) -> None:
        if (round_index, what) not in self._said:
            self._said.add((round_index, what))
            self.log.log(level, "round %d: %s", round_index, message)

    def _time_to_act(self) -> float | None:
        """Seconds a fetch may take so that this agent's vote (or proposal) still lands
        before the current phase's deadline; None (the store's own limit) when no phase
        with a deadline is running."""
        status = self.status
        if status is None or status.state not in (RoundState.PROPOSING, RoundState.VOTING,
                                                  RoundState.REVEALING):
            return None
        left = self._seconds_left(status)
        return max(1.0, left - max(VOTE_MARGIN_SECONDS, 0.1 * left))

    def _fetch(self, cid: str, digest: bytes, timeout: float | None) -> Any:
        with self.timings.measure("store"):
            return self.verifier.fetch(cid, digest, timeout)

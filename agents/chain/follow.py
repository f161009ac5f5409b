"""Being told of an experiment's events: pushed over a WebSocket where the node serves one
(``eth_subscribe``), polled over JSON-RPC otherwise.

An agent only needs waking for events that ask something of it (:data:`WAKE_EVENTS`): a
proposal to test (voters; a proposer is not woken by its own), a round closed (everyone:
adopt the model, propose on one's turn) and the experiment completed; before round 0, a
learner joining (to report who the start waits for), the experiment started (the last join)
or cancelled. ``VoteCast`` never
does: the vote that completes a ballot also logs ``RoundDecided``. Deadlines announce
themselves with no event: the agent also wakes when the current phase's ends.

Followers add up the time they spend following (requests, decoding; idle waits excluded)
in ``busy_seconds``: it is chain time the agent pays for, next to its steps.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from agents._utils.closing import Closing
from agents.chain.client import CollectiveLearningClient
from agents.chain.errors import ChainError
from agents.chain.logs import RawLog, raw_log_from_json

WAKE_EVENTS = ("WeightsProposed", "RoundDecided", "RoundExpired", "ExperimentCompleted",
               "LearnerJoined", "ExperimentStarted", "ExperimentCancelled",
               "CommitsComplete")  # sealed votes: the reveal window opened early
# Longest uninterrupted wait on a WebSocket, so that a stop request is noticed.
STOP_CHECK_SECONDS = 0.5


class EventFollower(Closing):
    """Waits for an experiment's wake events. Use as a context manager (or call
    :meth:`close`): a subscription holds a connection open."""

    def __init__(self, client: CollectiveLearningClient, experiment_id: int, *,
                 me: str | None = None, events: Sequence[str] = WAKE_EVENTS):
        self.client = client
        self.busy_seconds = 0.0
        self.busy_cpu_seconds = 0.0  # the process's CPU time over the same spans
        self._proposed = client.event_topic("WeightsProposed")
        self._me = None if me is None else bytes.fromhex(me[2:].lower()).rjust(32, b"\0")
        self.topics: list[Any] = [[client.event_topic(e) for e in events],
                                  experiment_id.to_bytes(32, "big")]

    def wait(self, timeout: float, stop: threading.Event | None = None) -> list[RawLog]:
        """Waits up to ``timeout`` seconds (less if ``stop`` is set) for wake events;
        returns those that came (none on a timeout)."""
        raise NotImplementedError

    def _wanted(self, entry: RawLog) -> bool:
        """Whether a log asks something of this agent (its own proposal does not)."""
        return not (self._me is not None and entry.topics[0] == self._proposed
                    and len(entry.topics) > 3 and entry.topics[3] == self._me
                    and not entry.removed)

    @contextmanager
    def _busy(self) -> Iterator[None]:
        started, started_cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.busy_seconds += time.perf_counter() - started
            self.busy_cpu_seconds += time.process_time() - started_cpu


class PollingFollower(EventFollower):
    """Asks the node every ``poll_interval`` seconds for its latest block and, when there
    is a new one, for the experiment's wake events since the last block read."""

    def __init__(self, client: CollectiveLearningClient, experiment_id: int, *,
                 poll_interval: float = 0.25, **kwargs: Any):
        super().__init__(client, experiment_id, **kwargs)
        self.poll_interval = poll_interval
        with self._busy():
            self.last_block = client.block_number()

    def poll(self) -> list[RawLog]:
        """The wake events logged since the last poll."""
        with self._busy():
            latest = self.client.block_number()
            if latest <= self.last_block:
                return []
            logs = self.client.raw_logs(self.topics, self.last_block + 1, latest)
            self.last_block = latest
            return [entry for entry in logs if self._wanted(entry)]

    def wait(self, timeout: float, stop: threading.Event | None = None) -> list[RawLog]:
        deadline = time.monotonic() + timeout
        while not (stop and stop.is_set()):
            logs = self.poll()
            left = deadline - time.monotonic()
            if logs or left <= 0:
                return logs
            if stop is None:
                time.sleep(min(self.poll_interval, left))
            else:
                stop.wait(min(self.poll_interval, left))
        return []


class SubscriptionFollower(EventFollower):
    """Has the node push the experiment's wake events over a WebSocket (``eth_subscribe``
    to ``logs``, filtered by the contract, the events and the experiment). Transport
    failures raise :class:`ChainError`: subscribe again, and read the chain's state, to
    catch up with what was missed."""

    def __init__(self, client: CollectiveLearningClient, experiment_id: int, url: str, *,
                 open_timeout: float = 10.0, **kwargs: Any):
        super().__init__(client, experiment_id, **kwargs)
        self.url = url
        self._stack = ExitStack()
        with self._busy():
            try:
                self._ws: ClientConnection = self._stack.enter_context(
                    ws_connect(url, open_timeout=open_timeout, close_timeout=1.0))
            except (OSError, InvalidURI, InvalidHandshake, TimeoutError) as exc:
                raise ChainError(f"cannot open the event stream at {url}: {exc}") from None
            try:
                self._subscription = self._subscribe(open_timeout)
            except BaseException:
                self._stack.close()
                raise

    def _subscribe(self, timeout: float) -> str:
        topics = [["0x" + t.hex() for t in self.topics[0]], "0x" + self.topics[1].hex()]
        self._send({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                    "params": ["logs", {"address": self.client.address, "topics": topics}]})
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(max(0.0, deadline - time.monotonic()))
            if message is None:
                raise ChainError(f"no answer to eth_subscribe from {self.url}")
            if message.get("id") == 1:
                if "error" in message or not isinstance(message.get("result"), str):
                    raise ChainError(f"{self.url} refused the subscription to the contract's "
                                     f"logs: {message.get('error', message)}")
                return message["result"]

    def wait(self, timeout: float, stop: threading.Event | None = None) -> list[RawLog]:
        deadline = time.monotonic() + timeout
        logs: list[RawLog] = []
        while not logs and not (stop and stop.is_set()):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            message = self._receive(min(left, STOP_CHECK_SECONDS))
            if message is None:
                continue
            # Take whatever else is already there too: one wake for a burst of events.
            while message is not None:
                with self._busy():
                    logs.extend(self._logs_in(message))
                message = self._receive(0)
        return logs

    def _logs_in(self, message: dict[str, Any]) -> list[RawLog]:
        params = message.get("params")
        if (message.get("method") != "eth_subscription" or not isinstance(params, dict)
                or params.get("subscription") != self._subscription):
            return []
        try:
            entry = raw_log_from_json(params["result"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ChainError(f"malformed log from {self.url}: {exc}") from None
        return [entry] if self._wanted(entry) else []

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self._ws.send(json.dumps(message))
        except (ConnectionClosed, OSError) as exc:
            raise ChainError(f"lost the event stream from {self.url}: {exc}") from None

    def _receive(self, timeout: float) -> dict[str, Any] | None:
        """The next message, or ``None`` if none comes within ``timeout`` seconds."""
        try:
            text = self._ws.recv(timeout=timeout)
        except TimeoutError:
            return None
        except (ConnectionClosed, OSError) as exc:
            raise ChainError(f"lost the event stream from {self.url}: {exc}") from None
        with self._busy():
            try:
                message = json.loads(text)
            except ValueError as exc:
                raise ChainError(f"malformed message from {self.url}: {exc}") from None
        return message if isinstance(message, dict) else None

    def close(self) -> None:
        self._stack.close()


def follow_events(client: CollectiveLearningClient, experiment_id: int, *,
                  events_url: str | None = None, poll_interval: float = 0.25,
                  me: str | None = None) -> EventFollower:
    """A subscription at ``events_url`` (``ws://`` or ``wss://``) if given, else polling
    the client's node every ``poll_interval`` seconds."""
    if events_url is not None:
        return SubscriptionFollower(client, experiment_id, events_url, me=me)
    return PollingFollower(client, experiment_id, poll_interval=poll_interval, me=me)

"""Dishonest learners for fault tests (factories for ``colearn agent --learner``)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any, Self

import numpy as np

from agents.chain.client import CollectiveLearningClient
from agents.chain.errors import ContractRevert
from agents.chain.types import RoundState
from colearn_core.ml_interface import Weights
from colearn_core.tasks.factories import digits_learner


def poisoned_learner(index: int, n_learners: int = 5, seed: int = 0, mode: str = "random",
                     **options: Any):
    """An honest digits learner that proposes poison every turn: random weights
    (``mode="random"``) or weights trained on flipped labels (``mode="label_flip"``).
    It tests and votes honestly (``options``: :func:`digits_learner`'s)."""
    learner = digits_learner(index, n_learners, seed, **options)
    rng = np.random.default_rng(seed + 1000 * index)
    honest_propose = learner.mli_propose_weights
    honest_criterion = learner.criterion

    def propose() -> Weights:
        if mode == "random":
            current = learner.mli_get_current_weights().weights
            return Weights(weights={k: rng.standard_normal(v.shape).astype(np.asarray(v).dtype)
                                    for k, v in current.items()})
        learner.criterion = lambda outputs, labels: honest_criterion(outputs, 9 - labels)
        try:
            return honest_propose()
        finally:
            learner.criterion = honest_criterion

    learner.mli_propose_weights = propose
    return learner


class HandDrivenPeer:
    """Learner ``index`` of an experiment, acting by hand from the test process: on its
    turns it publishes whatever bytes ``publish(round)`` gives (stored with ``put``, and
    proposed with their true CID and sha256, as a hostile peer can), and it approves every
    other proposal at once. Runs on a thread until the experiment completes."""

    def __init__(self, client: CollectiveLearningClient, experiment_id: int, index: int,
                 n_learners: int, put: Callable[[bytes], str],
                 publish: Callable[[int], bytes]) -> None:
        self.client, self.experiment_id = client, experiment_id
        self.index, self.n_learners = index, n_learners
        self.put, self.publish = put, publish
        self.proposed: dict[int, str] = {}  # round -> CID
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hand-driven-peer", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        if self.error is not None and exc[0] is None:
            raise self.error

    def _run(self) -> None:
        address = self.client.account.address
        try:
            while not self._stop.is_set():
                status = self.client.round_status(self.experiment_id, address)
                mine = status.round % self.n_learners == self.index
                try:
                    if status.state == RoundState.COMPLETED:
                        return
                    if status.state == RoundState.JOINING and not status.joined:
                        self.client.join(self.experiment_id)  # it consents like anyone
                    elif status.state == RoundState.PROPOSING and mine:
                        data = self.publish(status.round)
                        cid = self.put(data)
                        self.client.propose(self.experiment_id, status.round, cid,
                                            hashlib.sha256(data).digest())
                        self.proposed[status.round] = cid
                    elif status.state == RoundState.VOTING and not mine and not status.voted:
                        self.client.vote(self.experiment_id, status.round, status.proposal_digest,
                                         True, 0)
                except ContractRevert as exc:
                    if exc.name not in {"WrongRound", "UnexpectedRoundState", "AlreadyVoted",
                                        "AlreadyJoined"}:
                        raise
                self._stop.wait(0.1)
        except BaseException as exc:  # noqa: BLE001 - reported by __exit__
            self.error = exc

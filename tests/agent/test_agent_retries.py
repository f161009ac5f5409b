"""An agent's run loop on anvil survives RPC errors (retry with backoff) and follows the
contract's events, pushed over a WebSocket or polled."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest
from eth_account.signers.local import LocalAccount

from agents.agent.learner_agent import LearnerAgent
from agents.agent.settings import AgentSettings
from agents.chain.client import CollectiveLearningClient
from agents.chain.errors import ChainError
from agents.chain.logs import RoundDecided, RoundExpired
from agents.chain.network import connect, derive_accounts, fund_accounts
from agents.chain.types import RoundState
from agents.devtools.anvil import AnvilProcess
from agents.experiment.launch import launch_experiment
from agents.experiment.spec import ExperimentTerms
from agents.storage.store import FileWeightStore
from colearn_core.codec import encode_weights
from colearn_core.ml_interface import MachineLearningInterface
from colearn_core.tasks.digits import DigitsConfig
from colearn_core.tasks.digits_torch import make_digits_learners
from colearn_core.training import set_equal_weights

pytestmark = pytest.mark.anvil


class FlakyClient(CollectiveLearningClient):
    """A client whose node has two short outages, like an overloaded RPC provider."""

    OUTAGES = (range(1, 4), range(6, 9))  # status reads that fail

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def round_status(self, experiment_id, account=None):
        self.calls += 1
        if any(self.calls in outage for outage in self.OUTAGES):
            raise ChainError("cannot reach the chain: connection reset (injected)")
        return super().round_status(experiment_id, account)


class _Experiment(NamedTuple):
    client: CollectiveLearningClient  # the deployer's
    experiment_id: int
    accounts: list[LocalAccount]
    learners: list[MachineLearningInterface]
    store: FileWeightStore


@contextmanager
def _experiment(tmp_path: Path, label: str, rounds: int,
                timeout: int) -> Iterator[tuple[AnvilProcess, _Experiment]]:
    """A fresh anvil (blocks every second) with an experiment of three digits learners,
    launched (``timeout``: each phase's, in seconds) but not joined."""
    learners = make_digits_learners(config=DigitsConfig(n_learners=3))
    set_equal_weights(learners)
    accounts = derive_accounts(3, 0, label=label)
    store = FileWeightStore(tmp_path)
    initial = encode_weights(learners[0].mli_get_current_weights().weights)
    with AnvilProcess(block_time=1, mixed_mining=True) as anvil:
        w3 = connect(anvil.url)
        fund_accounts(w3, [a.address for a in accounts])
        client, _ = CollectiveLearningClient.deploy(w3, accounts[0])
        experiment_id = launch_experiment(client, store, ExperimentTerms(
            learners=[a.address for a in accounts], rounds=rounds, proposal_timeout=timeout,
            voting_timeout=timeout), initial).experiment_id
        yield anvil, _Experiment(client, experiment_id, accounts, list(learners), store)


@pytest.mark.parametrize("follow", ["ws", "poll"])
def test_agents_retry_rpc_errors_and_finish(tmp_path, caplog, follow):
    rounds = 4
    with _experiment(tmp_path, "retries", rounds, timeout=60) as (anvil, e):
        client, experiment_id = e.client, e.experiment_id
        agents = [LearnerAgent(FlakyClient(connect(anvil.url), client.address, account),
                               e.store, learner, experiment_id,
                               settings=AgentSettings(name=f"learner{i}"))
                  for i, (account, learner) in enumerate(zip(e.accounts, e.learners))]
        stop = threading.Event()
        events_url = "ws://" + anvil.url.removeprefix("http://") if follow == "ws" else None
        threads = [threading.Thread(target=a.run, kwargs={
            "poll_interval": 0.05, "events_url": events_url, "stop": stop}) for a in agents]
        with caplog.at_level(logging.WARNING, logger="agents.agent.learner_agent"):
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=90)
            stop.set()
        assert client.state(experiment_id) == RoundState.COMPLETED
        digest, _ = client.current_model(experiment_id)
        assert [d.round for d in client.events(RoundDecided, experiment_id)] == list(range(rounds))
    assert all(a.done and a.model_digest == digest for a in agents)
    assert all(a.timings.seconds["follow"] > 0 for a in agents)
    assert any("injected" in r.getMessage() and "retrying" in r.getMessage()
               for r in caplog.records)


def test_agents_wake_at_deadlines_when_no_event_comes(tmp_path):
    # Learner 0 joins but never shows up: its round expires, and round 1's ballot lacks its vote, so
    # both rounds close only because the others wake at the deadlines (the safety recheck
    # is far longer than the whole test).
    timeout = 3
    with _experiment(tmp_path, "deadlines", rounds=2, timeout=timeout) as (anvil, e):
        client, experiment_id = e.client, e.experiment_id
        client.with_account(e.accounts[0]).join(experiment_id)  # joins, then never shows up
        agents = [LearnerAgent(client.with_account(e.accounts[i]), e.store, e.learners[i],
                               experiment_id, settings=AgentSettings(name=f"learner{i}"))
                  for i in (1, 2)]
        stop = threading.Event()
        events_url = "ws://" + anvil.url.removeprefix("http://")
        threads = [threading.Thread(target=a.run, kwargs={
            "events_url": events_url, "recheck": 600.0, "stop": stop}) for a in agents]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        stop.set()
        elapsed = time.monotonic() - started
        assert [e.round for e in client.events(RoundExpired, experiment_id)] == [0]
        (decided,) = client.events(RoundDecided, experiment_id)
        assert (decided.round, decided.approvals + decided.rejections) == (1, 1)
    assert all(a.done for a in agents)
    assert elapsed < 4 * timeout + 10, f"took {elapsed:.1f} s"

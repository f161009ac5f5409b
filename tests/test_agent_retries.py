"""An agent's run loop on anvil survives RPC errors (retry with backoff) and follows logs."""

from __future__ import annotations

import hashlib
import logging
import threading

import pytest

from agents.agent import LearnerAgent
from agents.chain import ChainError, CollectiveLearningClient, RoundState
from agents.devchain import AnvilProcess
from agents.network import connect, derive_accounts, fund_accounts
from agents.weight_store import FileWeightStore
from colearn_core.codec import encode_weights
from colearn_core.driver import set_equal_weights
from colearn_core.tasks.digits import DigitsConfig
from colearn_core.tasks.digits_torch import make_digits_learners

pytestmark = pytest.mark.anvil


class FlakyClient(CollectiveLearningClient):
    """A client whose node has two short outages, like an overloaded RPC provider."""

    OUTAGES = (range(1, 6), range(40, 46))  # view calls that fail

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def _call(self, fn, block="latest"):
        self.calls += 1
        if any(self.calls in outage for outage in self.OUTAGES):
            raise ChainError("cannot reach the chain: connection reset (injected)")
        return super()._call(fn, block)


def test_agents_retry_rpc_errors_and_finish(tmp_path, caplog):
    n, rounds = 3, 4
    learners = make_digits_learners(config=DigitsConfig(n_learners=n))
    set_equal_weights(learners)
    accounts = derive_accounts(n, 0, label="retries")
    store = FileWeightStore(tmp_path)
    initial = encode_weights(learners[0].mli_get_current_weights().weights)
    with AnvilProcess(block_time=1, mixed_mining=True) as anvil:
        w3 = connect(anvil.url)
        fund_accounts(w3, [a.address for a in accounts])
        client, _ = CollectiveLearningClient.deploy(w3, accounts[0])
        experiment_id, _ = client.create_experiment(
            [a.address for a in accounts], 5000, rounds, 60, 60, store.put(initial),
            hashlib.sha256(initial).digest())
        agents = [LearnerAgent(FlakyClient(connect(anvil.url), client.address, account), store,
                               learner, experiment_id, name=f"learner{i}")
                  for i, (account, learner) in enumerate(zip(accounts, learners))]
        stop = threading.Event()
        threads = [threading.Thread(target=a.run, kwargs={"poll_interval": 0.05, "stop": stop})
                   for a in agents]
        with caplog.at_level(logging.WARNING, logger="agents.agent"):
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=90)
            stop.set()
        assert client.state(experiment_id) == RoundState.COMPLETED
        digest, _ = client.current_model(experiment_id)
        assert [d.round for d in client.decisions(experiment_id)] == list(range(rounds))
    assert all(a.done and a.model_digest == digest for a in agents)
    assert any("injected" in r.getMessage() and "retrying" in r.getMessage()
               for r in caplog.records)

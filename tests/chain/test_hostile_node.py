"""An RPC node that answers anything: the client and the agent raise ChainError (which the
agent's loop retries with backoff), never anything else, whatever JSON comes back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pytest
from fake_http import json_handler
from hypothesis import HealthCheck, given, settings

from agents._utils.http import BackgroundHttpServer
from agents.agent.learner_agent import LearnerAgent
from agents.chain.client import CollectiveLearningClient
from agents.chain.errors import ChainError
from agents.chain.network import connect, derive_accounts
from agents.storage.store import FileWeightStore
from colearn_core.ml_interface import MachineLearningInterface, ProposedWeights, Weights

ADDRESS = "0x" + "ab" * 20


class FakeNode(BackgroundHttpServer[ThreadingHTTPServer]):
    """Answers every JSON-RPC request with ``answer(method)`` (a chain id to start with)."""

    def __init__(self) -> None:
        self.answer: Callable[[str], Any] = lambda method: {"jsonrpc": "2.0", "id": 1,
                                                             "result": "0x1"}
        super().__init__(ThreadingHTTPServer,
                         json_handler(lambda request: self.answer(request["method"])),
                         name="fake-node")


@pytest.fixture
def node() -> Iterator[FakeNode]:
    with FakeNode() as fake:
        yield fake


class _Idle(MachineLearningInterface):
    def __init__(self) -> None:
        self.weights = {"w": np.zeros(3, np.float32)}

    def mli_propose_weights(self) -> Weights:
        return Weights(weights=self.weights)

    def mli_test_weights(self, weights: Weights) -> ProposedWeights:
        return ProposedWeights(weights=weights, vote_score=0.0, test_score=0.0, vote=True)

    def mli_accept_weights(self, weights: Weights) -> None:
        self.weights = weights.weights

    def mli_get_current_weights(self) -> Weights:
        return Weights(weights=self.weights)

    def mli_get_current_model(self) -> Any:
        return None


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.sampled_from(["0x", "0x1", "0xzz", "0x" + "00" * 32, "0x" + "ff" * 64]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["result", "error", "data", "code", "message", "topics",
                                       "transactionHash", "blockNumber", "status", "logIndex",
                                       "baseFeePerGas", "gasUsed"]), children, max_size=5),
    max_leaves=16)
_ANSWERS = _JSON | st.builds(lambda r: {"jsonrpc": "2.0", "id": 1, "result": r}, _JSON) \
    | st.builds(lambda e: {"jsonrpc": "2.0", "id": 1, "error": e}, _JSON)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answers=st.lists(_ANSWERS, min_size=1, max_size=8), action=st.sampled_from(
    ["status", "logs", "created", "vote", "step"]))
def test_any_answer_is_a_chain_error_or_a_result(node, tmp_path, answers, action):
    node.answer = lambda method: {"jsonrpc": "2.0", "id": 1, "result": "0x1"}  # the chain id
    w3 = connect(node.url)
    (account,) = derive_accounts(1, seed=1, label="hostile-node")
    client = CollectiveLearningClient(w3, ADDRESS, account)
    queue = iter(answers * 50)
    node.answer = lambda method: next(queue, answers[-1])
    try:
        if action == "status":
            client.round_status(1)
        elif action == "logs":
            client.raw_logs([None], 0)
        elif action == "created":
            client.experiment_created(1)
        elif action == "vote":
            client.vote(1, 0, bytes(32), True, 0)
        else:
            with FileWeightStore(tmp_path / "store") as store:
                LearnerAgent(client, store, _Idle(), 1).step()
    except ChainError:
        pass

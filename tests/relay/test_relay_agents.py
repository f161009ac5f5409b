"""Agents that act through ``colearn relay``: learners holding no ETH finish a whole
experiment (the relay pays for every proposal, vote batch and closed round), and agents
fall back to voting directly when a relay loses their votes. On anvil, a block a second;
agents run in threads, each with its own connection."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from conftest import started
from eth_account.signers.local import LocalAccount

from agents.agent.learner_agent import LearnerAgent
from agents.agent.settings import AgentSettings
from agents.chain.client import CollectiveLearningClient
from agents.chain.logs import RoundDecided, VoteCast, WeightsProposed
from agents.chain.network import connect, derive_accounts, fund_accounts
from agents.chain.types import ExperimentOptions, RoundState
from agents.devtools.anvil import AnvilProcess
from agents.experiment.launch import launch_experiment
from agents.experiment.spec import ExperimentTerms
from agents.relay import Relay, RelayClient, RelayServer
from agents.storage.store import FileWeightStore
from colearn_core.tasks.digits import DigitsConfig
from colearn_core.tasks.digits_torch import make_digits_learners
from colearn_core.training import set_equal_weights

pytestmark = [pytest.mark.anvil, pytest.mark.slow]

N_LEARNERS = 3


@pytest.fixture(scope="module")
def anvil() -> Iterator[AnvilProcess]:
    with started(lambda: AnvilProcess(block_time=1, mixed_mining=True), "anvil",
                 "anvil") as process:
        yield process


class Consortium:
    """A contract, an experiment, and one agent per learner (not started)."""

    def __init__(self, anvil: AnvilProcess, tmp_path, *, funded_learners: bool,
                 rounds: int, voting_timeout: int, label: str,
                 options: ExperimentOptions | None = None):
        self.anvil = anvil
        deployer, *self.accounts = derive_accounts(N_LEARNERS + 1, seed=1, label=label)
        w3 = connect(anvil.url)
        fund_accounts(w3, [deployer.address] + (
            [a.address for a in self.accounts] if funded_learners else []))
        self.client, _ = CollectiveLearningClient.deploy(w3, deployer)
        self.store = FileWeightStore(tmp_path / "store")
        self.learners = make_digits_learners(config=DigitsConfig(n_learners=N_LEARNERS, seed=5))
        set_equal_weights(self.learners)
        self.experiment_id = launch_experiment(self.client, self.store, ExperimentTerms(
            learners=[a.address for a in self.accounts], rounds=rounds,
            voting_timeout=voting_timeout, options=options or ExperimentOptions()),
            self.learners[0].mli_get_current_weights().weights).experiment_id

    def agent(self, i: int, relay_url: str, **options) -> LearnerAgent:
        client = CollectiveLearningClient(connect(self.anvil.url), self.client.address,
                                          self.accounts[i])
        return LearnerAgent(client, self.store, self.learners[i], self.experiment_id,
                            relay=RelayClient(relay_url),
                            settings=AgentSettings(name=f"learner{i}", **options))

    def run(self, agents: list[LearnerAgent], timeout: float = 120) -> None:
        stop = threading.Event()
        threads = [threading.Thread(target=a.run, kwargs={"poll_interval": 0.1, "stop": stop})
                   for a in agents]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout)
        stop.set()
        assert all(a.done for a in agents), "the experiment did not complete in time"

    def senders(self, tx_hashes: set[str]) -> set[str]:
        return {self.client.w3.eth.get_transaction(h)["from"] for h in tx_hashes}


def test_learners_without_eth_finish_an_experiment_through_the_relay(
        anvil: AnvilProcess, tmp_path) -> None:
    c = Consortium(anvil, tmp_path, funded_learners=False, rounds=3, voting_timeout=600,
                   label="relay-zero-eth")
    payer: LocalAccount = derive_accounts(1, seed=2, label="relay-payer")[0]
    fund_accounts(c.client.w3, [payer.address])
    relay = Relay(CollectiveLearningClient(connect(anvil.url), c.client.address, payer),
                  experiments=[c.experiment_id], batch_delay=5)
    with RelayServer(relay) as server:
        agents = [c.agent(i, server.url) for i in range(N_LEARNERS)]
        c.run(agents)

    eid = c.experiment_id
    assert c.client.state(eid) is RoundState.COMPLETED
    assert all(c.client.w3.eth.get_balance(a.address) == 0 for a in c.accounts)
    proposals = c.client.events(WeightsProposed, eid)
    votes = c.client.events(VoteCast, eid)
    assert [p.round for p in proposals] == [0, 1, 2]
    assert [p.proposer for p in proposals] == [a.address for a in c.accounts]
    assert len(votes) == 3 * (N_LEARNERS - 1), "every learner voted in every round"
    assert c.senders({p.tx_hash for p in proposals} | {v.tx_hash for v in votes}) == {
        payer.address}
    assert relay.batches_sent == 3, "each round's votes went in one batch"
    digest, _ = c.client.current_model(eid)
    assert all(a.model_digest == digest for a in agents)


class LosingRelay(Relay):
    """A relay that accepts votes and never submits them."""

    def _send_batch(self, key: tuple[int, int, str]) -> None:
        self._pending.pop(key, None)


def test_agents_vote_directly_when_the_relay_loses_their_votes(anvil: AnvilProcess,
                                                               tmp_path) -> None:
    c = Consortium(anvil, tmp_path, funded_learners=True, rounds=1, voting_timeout=12,
                   label="relay-lossy")
    payer = derive_accounts(1, seed=3, label="relay-payer")[0]
    fund_accounts(c.client.w3, [payer.address])
    relay = LosingRelay(CollectiveLearningClient(connect(anvil.url), c.client.address, payer),
                        experiments=[c.experiment_id])
    with RelayServer(relay) as server:
        agents = [c.agent(i, server.url, relay_fallback_seconds=6) for i in range(N_LEARNERS)]
        c.run(agents)

    votes = c.client.events(VoteCast, c.experiment_id, 0)
    assert {v.voter for v in votes} == {a.address for a in c.accounts[1:]}
    assert c.senders({v.tx_hash for v in votes}) == {a.address for a in c.accounts[1:]}, (
        "each voter sent its own vote")
    assert c.client.events(RoundDecided, c.experiment_id, 0), "decided by the last vote, in time"


def test_agents_vote_directly_when_the_relay_is_unreachable(anvil: AnvilProcess,
                                                            tmp_path) -> None:
    c = Consortium(anvil, tmp_path, funded_learners=True, rounds=2, voting_timeout=600,
                   label="relay-down")
    agents = [c.agent(i, "http://127.0.0.1:9") for i in range(N_LEARNERS)]  # nothing there
    c.run(agents)
    assert c.client.state(c.experiment_id) is RoundState.COMPLETED
    senders = c.senders({v.tx_hash for v in c.client.events(VoteCast, c.experiment_id)})
    assert senders == {a.address for a in c.accounts}


def test_learners_without_eth_commit_and_reveal_sealed_votes_through_the_relay(
        anvil: AnvilProcess, tmp_path) -> None:
    c = Consortium(anvil, tmp_path, funded_learners=False, rounds=3, voting_timeout=600,
                   label="relay-sealed", options=ExperimentOptions(reveal_timeout=600))
    payer: LocalAccount = derive_accounts(1, seed=4, label="relay-payer")[0]
    fund_accounts(c.client.w3, [payer.address])
    relay = Relay(CollectiveLearningClient(connect(anvil.url), c.client.address, payer),
                  experiments=[c.experiment_id], batch_delay=5)
    with RelayServer(relay) as server:
        agents = [c.agent(i, server.url, state_dir=tmp_path / f"state{i}")
                  for i in range(N_LEARNERS)]
        c.run(agents)

    eid = c.experiment_id
    assert c.client.state(eid) is RoundState.COMPLETED
    assert all(c.client.w3.eth.get_balance(a.address) == 0 for a in c.accounts)
    votes = c.client.events(VoteCast, eid)  # revealed votes
    assert len(votes) == 3 * (N_LEARNERS - 1), "every learner's sealed vote was revealed"
    assert c.senders({v.tx_hash for v in votes}) == {payer.address}
    assert (relay.commits_relayed, relay.reveals_relayed) == (6, 6)
    assert relay.batches_sent == 6, "each round's commitments, then reveals, in one batch"

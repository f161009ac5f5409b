"""One seeded learner set gives the same accept/reject sequence in memory and on chain."""

import hashlib

import pytest

from agents.agent.learner_agent import LearnerAgent, run_in_process
from agents.chain.client import CollectiveLearningClient
from agents.chain.logs import RoundDecided
from agents.chain.network import connect, derive_accounts, fund_accounts
from agents.experiment.launch import launch_experiment
from agents.experiment.spec import ExperimentTerms
from agents.storage.store import FileWeightStore
from colearn_core.codec import encode_weights
from colearn_core.tasks.digits import DigitsConfig
from colearn_core.tasks.digits_torch import make_digits_learners
from colearn_core.training import run_experiment, set_equal_weights


def on_chain_decisions(config: DigitsConfig, store_dir) -> tuple[list[bool], bytes]:
    learners = make_digits_learners(config=config)
    set_equal_weights(learners)
    w3 = connect(None)
    accounts = derive_accounts(config.n_learners, seed=config.seed, label="parity")
    fund_accounts(w3, [a.address for a in accounts])
    client, _ = CollectiveLearningClient.deploy(w3, accounts[0])
    store = FileWeightStore(store_dir)
    experiment_id = launch_experiment(client, store, ExperimentTerms(
        learners=[a.address for a in accounts], threshold=config.vote_threshold,
        rounds=config.n_rounds), learners[0].mli_get_current_weights().weights).experiment_id
    agents = [LearnerAgent(client.with_account(a), store, learner, experiment_id)
              for a, learner in zip(accounts, learners)]
    run_in_process(agents)
    decisions = [d.accepted for d in client.events(RoundDecided, experiment_id)]
    return decisions, client.current_model(experiment_id)[0]


@pytest.mark.slow
@pytest.mark.parametrize("threshold, mixed", [(0.5, False), (0.8, True)])
def test_in_memory_and_on_chain_decide_alike(tmp_path, threshold, mixed):
    config = DigitsConfig(n_learners=4, n_rounds=10, seed=5, vote_threshold=threshold)

    learners = make_digits_learners(config=config)
    set_equal_weights(learners)
    in_memory = run_experiment(learners, config.n_rounds, config.vote_threshold).decisions()
    final_in_memory = hashlib.sha256(
        encode_weights(learners[0].mli_get_current_weights().weights)).digest()

    on_chain, final_on_chain = on_chain_decisions(config, tmp_path / "store")

    assert on_chain == in_memory
    if mixed:
        assert True in in_memory and False in in_memory, "the sequence should have both outcomes"
    assert final_on_chain == final_in_memory, "and end with bitwise the same model"

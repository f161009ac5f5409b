"""Every kind of learner through the real ``colearn agent`` command: one OS process per
stakeholder on anvil, each building its learner from an example's factory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import started
from consortium import Consortium

from agents.chain.types import RoundState
from agents.devtools.anvil import AnvilProcess

pytestmark = [pytest.mark.anvil]

FACTORIES = [
    "colearn_core.examples.sgd_fraud:learner",
    "colearn_core.examples.random_forest_iris:learner",
    pytest.param("colearn_core.examples.keras_mnist:learner", marks=pytest.mark.slow),
]


@pytest.fixture(scope="module")
def anvil() -> Iterator[AnvilProcess]:
    with started(lambda: AnvilProcess(block_time=1, mixed_mining=True), "anvil",
                 "anvil") as process:
        yield process


@pytest.mark.parametrize("factory", FACTORIES)
def test_agents_complete_an_experiment_with_the_learner(anvil, tmp_path, factory) -> None:
    if "keras" in factory:
        pytest.importorskip("keras")
    pytest.importorskip("sklearn")
    c = Consortium(anvil.url, f"file:{tmp_path / 'store'}", tmp_path, n=3, rounds=3,
                   factory=factory)
    try:
        for i in range(3):
            c.start(i)
        c.wait_all(timeout=240)
        assert c.client.state(c.experiment_id) == RoundState.COMPLETED
        digest, model_round = c.client.current_model(c.experiment_id)
        assert model_round > 0  # at least one proposal was accepted
        for i in range(3):
            result = c.result(i)
            assert result["model_digest"] == "0x" + digest.hex()
            assert [r["round"] for r in result["rounds"]] == [0, 1, 2]
            assert result["budget_exhausted"] is False
    finally:
        c.stop()

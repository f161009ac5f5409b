"""Learners whose weights are not arrays, through the real ``colearn agent`` command (one
OS process per stakeholder on anvil): the XGBoost learner served by a colearn MLI factory
(``--mli-factory``), and a bytes learner next to a peer proposing garbage bytes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import started
from consortium import Consortium

from agents.agent.base import OPAQUE_NOTICE
from agents.chain.types import RoundState
from agents.devtools.anvil import AnvilProcess

pytestmark = [pytest.mark.anvil]
pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def anvil() -> Iterator[AnvilProcess]:
    with started(lambda: AnvilProcess(block_time=1, mixed_mining=True), "anvil",
                 "anvil") as process:
        yield process


class FactoryConsortium(Consortium):
    """Agents started with ``--mli-factory`` (learner ``i``'s data chosen by
    ``--dataset-params``) in place of ``--learner``."""

    def __init__(self, *args: Any, model: str, **kwargs: Any) -> None:
        self.model = model
        super().__init__(*args, **kwargs)

    def command(self, i: int, factory: str | None = None, **factory_args: Any) -> list[str]:
        argv = super().command(i, factory, **factory_args)
        at = argv.index("--learner")
        argv[at:at + 2] = ["--mli-factory", "opaque_learners:OpaqueFactory",
                           "--model", self.model, "--model-params", '{"n_steps_per_round": 2}',
                           "--dataloader", "DIABETES", "--dataset-params",
                           json.dumps({"index": i, "n_learners": self.n, "seed": self.seed})]
        return [a for a in argv if not a.startswith("--learner-arg=")]


def check_completed(c: Consortium, n: int) -> list[dict[str, Any]]:
    c.wait_all(timeout=300)
    assert c.client.state(c.experiment_id) == RoundState.COMPLETED
    digest, model_round = c.client.current_model(c.experiment_id)
    results = [c.result(i) for i in range(n)]
    for result in results:
        assert result["model_digest"] == "0x" + digest.hex()
    assert model_round > 0
    return results


def test_xgboost_learners_from_an_mli_factory_as_processes(anvil, tmp_path) -> None:
    pytest.importorskip("xgboost")
    c = FactoryConsortium(anvil.url, f"file:{tmp_path / 'store'}", tmp_path, n=3, rounds=3,
                          factory="opaque_learners:xgb_learner", model="XGBOOST")
    try:
        for i in range(3):
            c.start(i)
        results = check_completed(c, 3)
        for i, result in enumerate(results):
            assert [r["round"] for r in result["rounds"]] == [0, 1, 2]
            assert all("reason" not in r for r in result["rounds"]), result
            assert OPAQUE_NOTICE.format(kind="opaque bytes") in c.log(i)
    finally:
        c.stop()


def test_a_peer_proposing_garbage_bytes_is_rejected_with_the_reason(anvil, tmp_path) -> None:
    c = Consortium(anvil.url, f"file:{tmp_path / 'store'}", tmp_path, n=3, rounds=3,
                   factory="opaque_learners:bytes_learner")
    try:
        c.start(0, factory="opaque_learners:hostile_learner")
        c.start(1)
        c.start(2)
        results = check_completed(c, 3)
        for i in (1, 2):
            first = results[i]["rounds"][0]
            assert first["approve"] is False
            assert "testing failed: ValueError: expected 88 bytes of coefficients" \
                in first["reason"]
            assert "rejecting proposal" in c.log(i)
    finally:
        c.stop()

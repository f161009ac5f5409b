"""Weights that are not arrays, through agents on the in-process chain: bytes and model
files travel as opaque data, the agent says at start that the learner decodes peer data
itself, and a learner that raises on a peer's bytes makes its agent vote reject with the
reason, never crash."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from opaque_learners import BytesLearner, bytes_learner, diabetes_parts, hostile_learner

from agents.agent.base import OPAQUE_NOTICE
from agents.experiment.onchain import run_on_chain
from colearn_core.codec import ModelFile
from colearn_core.driver import run_experiment
from colearn_core.ml_interface import Weights


def test_bytes_weights_on_chain_decide_as_in_memory(caplog) -> None:
    in_memory = run_experiment([bytes_learner(i) for i in range(3)], 3, 0.5)
    with caplog.at_level(logging.INFO, logger="agents.agent"):
        run = run_on_chain([bytes_learner(i) for i in range(3)], 3, 0.5)
    assert run.decisions() == in_memory.decisions() and any(run.decisions())
    assert isinstance(run.final_weights, bytes)
    notice = OPAQUE_NOTICE.format(kind="opaque bytes")
    assert sum(notice in r.getMessage() for r in caplog.records) == 3  # once an agent


def test_a_learner_raising_on_peer_bytes_votes_reject_with_the_reason(caplog) -> None:
    learners = [hostile_learner(0), bytes_learner(1), bytes_learner(2)]
    with caplog.at_level(logging.WARNING, logger="agents.agent"):
        run = run_on_chain(learners, 3, 0.5)
    hostile_round = run.rounds[0]
    assert hostile_round.proposer_index == 0 and not hostile_round.accepted
    for records in run.records[1:]:
        assert records[0].approve is False
        assert records[0].reason is not None and "testing failed: ValueError: expected " \
            "88 bytes of coefficients" in records[0].reason
    assert any("rejecting proposal" in r.getMessage() and "expected 88 bytes" in r.getMessage()
               for r in caplog.records)
    assert any(run.decisions()[1:])  # the honest learners go on


class FileLearner(BytesLearner):
    """colearn's XGBoost example's convention: the weights are the path of a model file
    (here the coefficients' bytes), written under ``directory``."""

    def __init__(self, index: int, directory: Path) -> None:
        super().__init__(diabetes_parts(index, 3, 0))
        self.directory, self.saves = directory, 0
        self.loaded: list[str] = []

    def _save(self, raw: bytes) -> str:
        path = self.directory / f"model_{id(self)}_{self.saves}.bin"
        self.saves += 1
        path.write_bytes(raw)
        return str(path)

    def _read(self, weights: Weights) -> Weights:
        self.loaded.append(weights.weights)
        return Weights(weights=Path(weights.weights).read_bytes())

    def mli_propose_weights(self) -> Weights:
        return Weights(weights=self._save(super().mli_propose_weights().weights))

    def mli_test_weights(self, weights: Weights):
        return super().mli_test_weights(self._read(weights)).model_copy(
            update={"weights": weights})

    def mli_accept_weights(self, weights: Weights) -> None:
        super().mli_accept_weights(self._read(weights))

    def mli_get_current_weights(self) -> Weights:
        return Weights(weights=self._save(self.coef.tobytes()))


def test_model_file_weights_travel_by_content(tmp_path, caplog) -> None:
    mine = tmp_path / "own"
    mine.mkdir()
    in_memory = run_experiment([FileLearner(i, mine) for i in range(3)], 3, 0.5)
    learners = [FileLearner(i, mine) for i in range(3)]
    with caplog.at_level(logging.INFO, logger="agents.agent"):
        run = run_on_chain(learners, 3, 0.5)
    assert run.decisions() == in_memory.decisions() and any(run.decisions())
    assert isinstance(run.final_weights, ModelFile) and run.final_weights.suffix == ".bin"
    assert np.array_equal(np.frombuffer(run.final_weights.content, np.float64),
                          learners[0].coef)
    # peers' files are the agents' own copies, named by digest, not the proposer's paths
    peer_paths = [p for learner in learners for p in learner.loaded if not p.startswith(str(mine))]
    assert peer_paths and all(Path(p).name.endswith(".bin") and "colearn-weights-" in p
                              for p in peer_paths)
    assert any(OPAQUE_NOTICE.format(kind="a model file") in r.getMessage()
               for r in caplog.records)


def test_xgboost_example_decides_alike_in_memory_and_on_chain() -> None:
    pytest.importorskip("xgboost")
    from agents.demo.examples import run_example

    in_memory = run_example("xgb-reg-boston", n_learners=3, n_rounds=3)
    on_chain = run_example("xgb-reg-boston", n_learners=3, n_rounds=3, on_chain=True)
    assert on_chain.decisions == in_memory.decisions and any(on_chain.decisions)
    assert on_chain.final_score == pytest.approx(in_memory.final_score, abs=1e-9)
    assert on_chain.final_score < on_chain.initial_score  # mean squared error

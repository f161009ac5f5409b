"""A learner written for colearn runs here with only its imports changed: the learner of
colearn's own tutorial (tests/colearn_doc_learner.py), in memory and on chain."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from colearn_doc_learner import FraudLearner
from sklearn.datasets import load_breast_cancer

from agents.experiment.onchain import run_on_chain
from colearn_core.ml_interface import ModelFormat, Weights
from colearn_core.training import run_experiment, set_equal_weights

N_LEARNERS, N_ROUNDS = 3, 6


def _data():
    bunch = load_breast_cancer()
    x = ((bunch.data - bunch.data.mean(0)) / bunch.data.std(0)).astype(np.float64)
    order = np.random.default_rng(0).permutation(len(x))
    test, rest = order[:150], order[150:]
    return x, bunch.target, test, np.array_split(rest, N_LEARNERS)


def _learners() -> tuple[list[FraudLearner], tuple[np.ndarray, np.ndarray]]:
    x, y, test, parts = _data()
    learners = []
    for i, part in enumerate(parts):
        own_test, train = part[:30], part[30:]
        learners.append(FraudLearner(x[train], y[train], x[own_test], y[own_test],
                                     batch_size=32, steps_per_round=2, seed=i))
    return learners, (x[test], y[test])


def _score(weights: dict, learner: FraudLearner, data) -> float:
    saved = learner.mli_get_current_weights()
    learner.set_weights(Weights(weights=weights))
    try:
        return learner.test(*data)
    finally:
        learner.set_weights(saved)


def test_colearn_tutorial_learner_in_memory_and_on_chain() -> None:
    learners, global_test = _learners()
    set_equal_weights(learners)
    initial = _score(learners[0].mli_get_current_weights().weights, learners[0], global_test)
    in_memory = run_experiment(learners, N_ROUNDS, 0.5)
    memory_final = learners[0].mli_get_current_weights().weights

    on_chain_learners, _ = _learners()
    run = run_on_chain(on_chain_learners, N_ROUNDS, 0.5)

    assert run.decisions() == in_memory.decisions()
    assert any(run.decisions())
    for name in ("coef_", "intercept_"):
        assert np.array_equal(run.final_weights[name], memory_final[name])
    final = _score(run.final_weights, learners[0], global_test)
    assert final > initial + 0.05, (initial, final)


def test_colearn_tutorial_learner_exports_onnx() -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    learners, (x_test, _) = _learners()
    learner = learners[0]
    learner.mli_accept_weights(learner.mli_propose_weights())
    model = learner.mli_get_current_model()
    assert model.model_format is ModelFormat.ONNX
    session = ort.InferenceSession(model.model.SerializeToString())
    labels = session.run(None, {session.get_inputs()[0].name: x_test.astype(np.float32)})[0]
    assert (labels == learner.model.predict(x_test)).mean() > 0.99

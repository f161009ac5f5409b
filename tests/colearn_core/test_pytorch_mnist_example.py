"""colearn's PyTorch MNIST example (offline stand-in data): build, the agent factory,
learning in memory and on chain, the optional DP budget, and clear data errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from colearn_core.examples import ExampleSetup, load_example, mnist_images
from colearn_core.examples import pytorch_mnist as example
from colearn_core.tasks.datasets import DatasetError
from colearn_core.training import run_experiment


def _weights(learner) -> dict:
    return learner.mli_get_current_weights().weights


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_stand_in_data_is_the_digits_upsampled_to_mnist_shape():
    data = mnist_images()
    assert data.x.shape == (1797, 1, 28, 28) and data.x.dtype == np.float32
    assert data.n_classes == 10 and data.y.dtype == np.int64
    from colearn_core.tasks.datasets import load_dataset

    digits = load_dataset("digits").x.reshape(-1, 8, 8)
    # every original pixel is a 3x3 block inside a 2-pixel blank frame
    np.testing.assert_array_equal(data.x[:, 0, 2:26:3, 2:26:3], digits)
    np.testing.assert_array_equal(data.x[:, 0, 4:26:3, 4:26:3], digits)
    assert not data.x[:, 0, :2, :].any() and not data.x[:, 0, 26:, :].any()


def test_build_learns_collectively_on_the_stand_in():
    setup = example.build(n_learners=3, seed=0)
    assert isinstance(setup, ExampleSetup) and load_example("pytorch-mnist") is example
    assert setup.score_name == "accuracy" and "28x28" in setup.description
    assert all(_same(_weights(setup.learners[0]), _weights(other)) for other in setup.learners)
    initial = setup.global_score(_weights(setup.learners[0]))
    start = time.perf_counter()
    proposal = setup.learners[0].mli_propose_weights()
    seconds = time.perf_counter() - start
    assert seconds < 2.0  # about 0.05 s on one core; generous for a busy machine
    assert proposal.training_summary.dp_budget is None
    results = run_experiment(setup.learners, 6, setup.vote_threshold)
    final = setup.global_score(_weights(setup.learners[0]))
    assert initial < 0.2
    assert final > 0.8, f"reached only {final:.3f}"
    assert sum(bool(d) for d in results.decisions()) >= 4
    # the test score is accuracy, the vote score a loss
    first = results.data[0]
    assert all(0.0 <= s <= 1.0 for s in first.test_scores)
    assert all(s > 0 for s in first.vote_scores)


def test_the_factory_takes_strings_and_matches_build():
    built = example.build(n_learners=3, seed=1)
    made = example.learner("2", n_learners="3", seed="1")
    assert _same(_weights(built.learners[2]), _weights(made))
    for _ in range(2):  # and trains identically
        expected, got = built.learners[2].mli_propose_weights(), made.mli_propose_weights()
        assert _same(expected.weights, got.weights)
        built.learners[2].mli_accept_weights(expected)
        made.mli_accept_weights(got)
    with pytest.raises(ValueError, match="index"):
        example.learner(3, n_learners=3)
    with pytest.raises(ValueError, match="seed"):
        example.learner(0, seed="zero")


def test_missing_mnist_files_are_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="mnist"):
        example.build(n_learners=3, data_dir=str(tmp_path))


def test_dp_option_reports_and_limits_the_budget():
    pytest.importorskip("opacus")
    setup = example.build(n_learners=3, dp_epsilon="8")
    assert "DP-SGD" in setup.description
    learner = setup.learners[0]
    spent = []
    for _ in range(10):
        summary = learner.mli_propose_weights().training_summary
        if summary.error_code is not None:
            break
        spent.append(summary.dp_budget.consumed_epsilon)
    assert spent and all(e <= 8.0 for e in spent) and spent == sorted(spent)
    assert summary.error_code is not None, "a budget of 8 runs out within a few proposals"
    assert summary.dp_budget.consumed_epsilon == spent[-1]
    with pytest.raises(ValueError, match="dp_epsilon"):
        example.build(n_learners=3, dp_epsilon="-1")


def test_on_chain_with_factory_learners():
    from agents.experiment.onchain import run_on_chain

    learners = [example.learner(str(i), n_learners="3", seed="0") for i in range(3)]
    run = run_on_chain(learners, 3, 0.5)
    assert len(run.rounds) == 3 and all(r.closed for r in run.rounds)
    assert any(run.decisions())
    assert set(run.final_weights) == set(_weights(learners[0]))
    split = example.make_split(3, 0)
    accuracy = example.global_accuracy(run.final_weights, split)
    assert accuracy > 0.3  # three proposals of 10 Adam steps, from 0.10

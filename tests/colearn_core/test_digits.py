"""The digits task: seeded, disjoint splits; learners; global accuracy; the baseline."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from colearn_core.tasks.datasets import load_dataset
from colearn_core.tasks.digits import DigitsConfig, split_for_config
from colearn_core.tasks.splits import FederatedSplit, LearnerSplit, split_dataset


def _all_indices(split):
    parts = [split.global_test_index]
    for learner in split.learners:
        parts += [learner.train_index, learner.vote_index, learner.test_index]
    return parts


def test_data_scaled_and_shaped():
    data = load_dataset("digits")
    x, y = data.x, data.y
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(y)) == set(range(10))


@pytest.mark.parametrize("n_learners", [2, 5, 8])
def test_split_is_split_datasets_disjoint_and_complete(n_learners):
    split = split_for_config(DigitsConfig(n_learners=n_learners, seed=3))
    assert isinstance(split, FederatedSplit) and split.n_learners == n_learners
    assert all(isinstance(learner, LearnerSplit) for learner in split.learners)
    parts = _all_indices(split)
    everything = np.concatenate(parts)
    assert len(everything) == 1797
    assert len(np.unique(everything)) == 1797  # pairwise disjoint and complete
    seen_by_learners = np.concatenate(parts[1:])
    assert not np.intersect1d(split.global_test_index, seen_by_learners).size
    assert len(split.global_test_index) == round(0.3 * 1797)
    data = load_dataset("digits")
    np.testing.assert_array_equal(split.x_global_test, data.x[split.global_test_index])
    for learner in split.learners:
        np.testing.assert_array_equal(learner.x_train, data.x[learner.train_index])
        np.testing.assert_array_equal(learner.y_vote, data.y[learner.vote_index])
        assert len(learner.y_train) > len(learner.y_vote) > 0
    # IID: parts of (almost) equal size
    sizes = [learner.n_samples for learner in split.learners]
    assert max(sizes) - min(sizes) <= 1


def test_config_fractions_reach_the_split():
    split = split_for_config(DigitsConfig(global_test_fraction=0.2, vote_fraction=0.25,
                                          test_fraction=0.0))
    assert len(split.y_global_test) == round(0.2 * 1797)
    for learner in split.learners:
        assert len(learner.y_test) == 0
        assert len(learner.y_vote) == round(0.25 * learner.n_samples)


def test_split_seeded_and_cached():
    a = split_for_config(DigitsConfig(seed=0))
    b = split_for_config(DigitsConfig(seed=0, hidden_size=7, n_rounds=3))  # training only
    c = split_for_config(DigitsConfig(seed=1))
    assert a is b  # one split per data parameters, shared by every learner and the test set
    fresh = split_dataset(load_dataset("digits"), 5, seed=0, scheme="iid")  # not cached
    for pa, pb in zip(_all_indices(a), _all_indices(fresh), strict=True):
        np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(a.global_test_index, c.global_test_index)


def test_split_arrays_are_read_only():
    split = split_for_config(DigitsConfig())
    with pytest.raises(ValueError):
        split.learners[0].x_train[0, 0] = 5.0
    with pytest.raises(ValueError):
        split.y_global_test[0] = 1
    with pytest.raises(ValueError):
        split.learners[0].train_index[0] = 0


def test_config_validation():
    with pytest.raises(ValueError):
        DigitsConfig(vote_fraction=0.6, test_fraction=0.5)
    with pytest.raises(ValueError):
        DigitsConfig(n_learners=1)
    with pytest.raises(ValueError):
        DigitsConfig(vote_on="f1")
    with pytest.raises(ValueError):
        DigitsConfig(vote_on="auc")  # MLPTaskConfig's, but digits have ten classes
    with pytest.raises(ValueError):
        DigitsConfig(score="auc")


def test_numpy_part_does_not_import_torch():
    code = (
        "import sys, colearn_core, colearn_core.tasks.digits as d; "
        "d.split_for_config(d.DigitsConfig()); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------- torch part

torch = pytest.importorskip("torch")

from colearn_core.codec import decode_weights, encode_weights
from colearn_core.tasks.digits_torch import (
    global_test_accuracy,
    learners_identical,
    make_digits_learners,
    run_digits_experiment,
    solo_accuracies,
)
from colearn_core.training import set_equal_weights


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_learners_start_identical_and_are_deterministic():
    a = make_digits_learners(n_learners=3, seed=1)
    b = make_digits_learners(n_learners=3, seed=1)
    assert len(a) == 3 and learners_identical(a)
    for la, lb in zip(a, b, strict=True):
        for _ in range(2):
            wa, wb = la.mli_propose_weights(), lb.mli_propose_weights()
            assert _same(wa.weights, wb.weights)
            la.mli_accept_weights(wa)
            lb.mli_accept_weights(wb)
    # different learners train on different data
    assert not _same(a[0].mli_get_current_weights().weights, a[1].mli_get_current_weights().weights)


def test_experiment_deterministic_and_learns():
    config = DigitsConfig(n_rounds=5, seed=2)
    first = run_digits_experiment(config)
    second = run_digits_experiment(config)
    assert first.results.decisions() == second.results.decisions()
    assert first.final_accuracy == second.final_accuracy
    assert first.accuracy_per_round == second.accuracy_per_round
    assert len(first.accuracy_per_round) == 5
    assert first.accepted_rounds >= 1
    assert first.final_accuracy > 0.5
    # test scores in the results are accuracies on each learner's private test set
    assert all(0.0 <= s <= 1.0 for s in first.results.data[-1].test_scores)


def test_global_accuracy_of_weights_and_codec_round_trip():
    learners = make_digits_learners()
    set_equal_weights(learners)
    untrained = global_test_accuracy(learners[0].mli_get_current_weights())
    for _ in range(3):
        learners[0].mli_accept_weights(learners[0].mli_propose_weights())
    weights = learners[0].mli_get_current_weights()
    decoded = decode_weights(encode_weights(weights.weights))
    assert _same(weights.weights, decoded)
    trained = global_test_accuracy(decoded)
    assert trained == global_test_accuracy(weights)
    assert trained > untrained
    assert trained > 0.6


def test_solo_baseline_shape():
    accuracies = solo_accuracies(DigitsConfig(n_learners=3, n_rounds=2))
    assert len(accuracies) == 3
    assert all(0.0 <= a <= 1.0 for a in accuracies)

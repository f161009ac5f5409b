"""split_dataset of colearn_core.tasks.splits: disjoint, complete, deterministic, a
stratified global test set, Dirichlet label skew, minimum sizes and argument checks."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from colearn_core.tasks.datasets import Dataset, load_dataset
from colearn_core.tasks.splits import (
    FederatedSplit,
    label_histogram,
    min_learner_size,
    split_dataset,
)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def all_index_sets(split: FederatedSplit) -> list[np.ndarray]:
    sets = [split.global_test_index]
    for learner in split.learners:
        sets += [learner.train_index, learner.vote_index, learner.test_index]
    return sets


def check_partition(data: Dataset, split: FederatedSplit) -> None:
    """Disjoint, complete, and every array holds exactly its rows of the data set."""
    joined = np.concatenate(all_index_sets(split))
    np.testing.assert_array_equal(np.sort(joined), np.arange(data.n_samples))
    np.testing.assert_array_equal(split.x_global_test, data.x[split.global_test_index])
    np.testing.assert_array_equal(split.y_global_test, data.y[split.global_test_index])
    for learner in split.learners:
        for part in ("train", "vote", "test"):
            index = getattr(learner, f"{part}_index")
            np.testing.assert_array_equal(getattr(learner, f"x_{part}"), data.x[index])
            np.testing.assert_array_equal(getattr(learner, f"y_{part}"), data.y[index])
        assert len(learner.y_train) >= 1 and len(learner.y_vote) >= 1


@pytest.mark.parametrize("scheme", ["iid", "dirichlet"])
@pytest.mark.parametrize("name,n_learners", [("digits", 5), ("iris", 3), ("wine", 4)])
def test_disjoint_and_complete(name: str, n_learners: int, scheme: str) -> None:
    data = load_dataset(name)
    split = split_dataset(data, n_learners, seed=2, scheme=scheme, alpha=0.5)
    assert len(split.learners) == n_learners and split.n_learners == n_learners
    check_partition(data, split)
    assert split.n_classes == data.n_classes


def test_iid_sizes_and_fractions(digits: Dataset) -> None:
    split = split_dataset(digits, 5, seed=0)
    assert len(split.y_global_test) == round(0.3 * 1797) == 539
    sizes = [learner.n_samples for learner in split.learners]
    assert sum(sizes) == 1797 - 539 and max(sizes) - min(sizes) <= 1
    for learner in split.learners:
        assert len(learner.y_vote) == round(0.3 * learner.n_samples)
        assert len(learner.y_test) == round(0.2 * learner.n_samples)
    assert split.train_sizes() == [len(learner.y_train) for learner in split.learners]


@pytest.mark.parametrize("scheme", ["iid", "dirichlet"])
def test_deterministic_and_seed_sensitive(digits: Dataset, scheme: str) -> None:
    a = split_dataset(digits, 4, seed=11, scheme=scheme)
    b = split_dataset(digits, 4, seed=11, scheme=scheme)
    c = split_dataset(digits, 4, seed=12, scheme=scheme)
    for x, y in zip(all_index_sets(a), all_index_sets(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.global_test_index, c.global_test_index)
    assert not np.array_equal(a.learners[0].train_index, c.learners[0].train_index)


@pytest.mark.parametrize("name", ["digits", "iris", "breast_cancer", "wine"])
@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.55])
def test_global_test_is_stratified(name: str, fraction: float) -> None:
    data = load_dataset(name)
    for seed in range(3):
        split = split_dataset(data, 2, seed=seed, global_test_fraction=fraction)
        counts = np.bincount(split.y_global_test, minlength=data.n_classes)
        assert np.all(np.abs(counts - fraction * data.class_counts()) <= 1), counts
        assert counts.sum() == round(fraction * data.n_samples)


def mean_label_entropy(split: FederatedSplit) -> float:
    histogram = label_histogram(split).astype(float)
    p = histogram / histogram.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return float(entropy.mean())


def test_dirichlet_skew_depends_on_alpha(digits: Dataset) -> None:
    max_entropy = np.log(10)
    for seed in range(3):
        skewed = mean_label_entropy(split_dataset(digits, 5, seed=seed, scheme="dirichlet",
                                                  alpha=0.1))
        mild = mean_label_entropy(split_dataset(digits, 5, seed=seed, scheme="dirichlet",
                                                alpha=100.0))
        iid = mean_label_entropy(split_dataset(digits, 5, seed=seed))
        # measured: alpha 0.1 about 0.9-1.2 nats, alpha 100 and iid about 2.29 of 2.30
        assert skewed < 0.6 * max_entropy
        assert mild > 0.97 * max_entropy and iid > 0.97 * max_entropy
        assert skewed < mild - 0.8 and skewed < iid - 0.8


def test_label_histogram(digits: Dataset) -> None:
    split = split_dataset(digits, 5, seed=0, scheme="dirichlet", alpha=0.1)
    histogram = label_histogram(split)
    assert histogram.shape == (5, 10) and histogram.dtype == np.int64
    assert histogram.sum(axis=1).tolist() == [lr.n_samples for lr in split.learners]
    np.testing.assert_array_equal(
        histogram.sum(axis=0) + np.bincount(split.y_global_test, minlength=10),
        digits.class_counts())
    # several learners miss whole classes at alpha 0.1
    assert (histogram == 0).sum() >= 5


def test_dirichlet_minimum_size(digits: Dataset, caplog: pytest.LogCaptureFixture) -> None:
    need = min_learner_size(0.3, 0.2)
    assert need == 2
    redrawn = 0
    for seed in range(4):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="colearn_core.tasks.splits"):
            split = split_dataset(digits, 10, seed=seed, scheme="dirichlet", alpha=0.05)
        redrawn += any("needed" in r.getMessage() for r in caplog.records)
        check_partition(digits, split)
        assert min(lr.n_samples for lr in split.learners) >= need
    # the guarantee was exercised: some first draws left a learner (almost) empty
    assert redrawn >= 2


def test_min_samples_floor(digits: Dataset) -> None:
    for seed in range(3):
        split = split_dataset(digits, 10, seed=seed, scheme="dirichlet", alpha=0.1,
                              min_samples=30)
        check_partition(digits, split)
        assert min(lr.n_samples for lr in split.learners) >= 30
    with pytest.raises(ValueError, match="cannot give 5 learners 300 samples each"):
        split_dataset(digits, 5, min_samples=300)
    with pytest.raises(ValueError, match="min_samples must be a positive int"):
        split_dataset(digits, 5, min_samples=0)


def test_too_many_learners() -> None:
    iris = load_dataset("iris")
    with pytest.raises(ValueError, match="cannot give 60 learners 2 samples each"):
        split_dataset(iris, 60)
    with pytest.raises(ValueError, match="cannot give 60 learners"):
        split_dataset(iris, 60, scheme="dirichlet")
    # possible in count, but a tiny alpha puts each class on about one learner
    with pytest.raises(ValueError, match="no Dirichlet.*larger alpha or fewer learners"):
        split_dataset(iris, 50, scheme="dirichlet", alpha=0.001)


def test_min_learner_size() -> None:
    assert min_learner_size(0.5, 0.0) == 2
    assert min_learner_size(0.1, 0.1) == 6  # round(0.6) = 1 vote and 1 test, 4 train
    assert min_learner_size(0.3, 0.6) == 4  # 1 vote, 2 test, 1 train
    with pytest.raises(ValueError, match="vote_fraction \\+ test_fraction < 1"):
        min_learner_size(0.5, 0.5)


def test_read_only_and_pooled(digits: Dataset) -> None:
    split = split_dataset(digits, 3, seed=0)
    learner = split.learners[0]
    for array in (learner.x_train, learner.y_vote, split.x_global_test, learner.train_index):
        with pytest.raises(ValueError):
            array[0] = 0
    x, y = split.pooled_train()
    assert len(y) == sum(split.train_sizes()) and x.shape == (len(y), 64)
    np.testing.assert_array_equal(
        y, np.concatenate([lr.y_train for lr in split.learners]))
    np.testing.assert_array_equal(x[-1], split.learners[-1].x_train[-1])
    x[0, 0] = 2.0  # a fresh copy: changing it leaves the split alone
    assert split.learners[0].x_train[0, 0] != 2.0


def test_image_shaped_features() -> None:
    rng = np.random.default_rng(0)
    data = Dataset("images", rng.random((60, 1, 4, 4), dtype=np.float32),
                   np.arange(60, dtype=np.int64) % 3, 3)
    split = split_dataset(data, 3, seed=1, scheme="dirichlet", alpha=1.0)
    check_partition(data, split)
    assert split.learners[0].x_train.shape[1:] == (1, 4, 4)


def test_single_learner(digits: Dataset) -> None:
    split = split_dataset(digits, 1, seed=0, scheme="dirichlet")
    check_partition(digits, split)


@pytest.mark.parametrize("kwargs,message", [
    ({"n_learners": 0}, "n_learners must be a positive int"),
    ({"n_learners": 2.0}, "n_learners must be a positive int"),
    ({"n_learners": True}, "n_learners must be a positive int"),
    ({"seed": -1}, "seed must be a non-negative int"),
    ({"scheme": "pathological"}, "scheme must be one of iid, dirichlet"),
    ({"alpha": 0.0}, "alpha must be a positive"),
    ({"alpha": float("inf")}, "alpha must be a positive"),
    ({"global_test_fraction": 0.0}, r"global_test_fraction must lie in \(0.0, 1\)"),
    ({"global_test_fraction": 1.0}, "global_test_fraction must lie in"),
    ({"vote_fraction": 0.0}, "vote_fraction must lie in"),
    ({"test_fraction": -0.1}, r"test_fraction must lie in \[0.0, 1\)"),
    ({"test_fraction": "0.2"}, "test_fraction must be a number"),
    ({"vote_fraction": 0.6, "test_fraction": 0.4}, "vote_fraction \\+ test_fraction must be < 1"),
    ({"global_test_fraction": 0.0001}, "empty global test set"),
])
def test_argument_validation(kwargs: dict, message: str) -> None:
    data = load_dataset("iris")
    arguments = {"n_learners": 3, **kwargs}
    n_learners = arguments.pop("n_learners")
    with pytest.raises(ValueError, match=message):
        split_dataset(data, n_learners, **arguments)


def test_rejects_non_dataset() -> None:
    with pytest.raises(ValueError, match="dataset must be a Dataset"):
        split_dataset((np.zeros((5, 2)), np.zeros(5)), 2)  # type: ignore[arg-type]

"""The scikit-learn learners (partial_fit estimators and the array-encoded random forest)
and colearn's two sklearn examples: MLI guarantees, weight validation, ONNX export run
by onnxruntime, in-memory experiments and whole experiments on chain."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.neural_network import MLPClassifier
from sklearn.tree import DecisionTreeClassifier

from agents.experiment.onchain import run_on_chain
from colearn_core.codec import (
    WeightsFormatError,
    WeightsMismatchError,
    check_compatible,
    decode_weights,
    encode_weights,
)
from colearn_core.examples import load_example, random_forest_iris, sgd_fraud
from colearn_core.learners.sklearn import (
    ForestLayout,
    RandomForestLearner,
    ScoreError,
    SklearnPartialFitLearner,
    tree_to_arrays,
)
from colearn_core.ml_interface import ModelFormat, Weights
from colearn_core.tasks.datasets import load_dataset
from colearn_core.tasks.splits import split_dataset
from colearn_core.training import run_experiment, set_equal_weights

# --------------------------------------------------------------------------- helpers

def _equal(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(
        np.asarray(a[k]).dtype == np.asarray(b[k]).dtype and np.array_equal(a[k], b[k])
        for k in a)


def _copy(w: dict) -> dict:
    return {k: np.array(v, copy=True) for k, v in w.items()}


def _run_onnx(model, x: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"input": x.astype(np.float32)}), strict=True))


@pytest.fixture(scope="module")
def cancer_split():
    return split_dataset(load_dataset("breast_cancer"), 3, seed=0)


@pytest.fixture(scope="module")
def iris_split():
    return split_dataset(load_dataset("iris"), 3, seed=0)


def _sgd_learner(part, seed=0, **kwargs) -> SklearnPartialFitLearner:
    kwargs.setdefault("vote_criterion", "log_loss")
    return SklearnPartialFitLearner(
        SGDClassifier(loss="log_loss", alpha=1e-3, learning_rate="constant", eta0=0.02),
        part.x_train, part.y_train,
        part.x_vote, part.y_vote, part.x_test, part.y_test, classes=[0, 1],
        batch_size=16, batches_per_round=5, seed=seed, **kwargs)


def _forest_learner(part, seed=0, **kwargs) -> RandomForestLearner:
    kwargs.setdefault("max_trees", 6)
    kwargs.setdefault("trees_per_round", 2)
    kwargs.setdefault("max_depth", 3)
    return RandomForestLearner(part.x_train, part.y_train, part.x_vote, part.y_vote,
                               part.x_test, part.y_test, n_classes=3, seed=seed, **kwargs)


def _forest_with(layout: ForestLayout, trees: list[DecisionTreeClassifier]) -> dict:
    w = layout.empty()
    for t, tree in enumerate(trees):
        slot, count = tree_to_arrays(tree, layout)
        for name, array in slot.items():
            w[name][t] = array
        w["node_count"][t] = count
    w["n_trees"][0] = len(trees)
    return w


# --------------------------------------------------------------------------- partial_fit

def test_sgd_weights_structure_and_initial_values(cancer_split):
    learner = _sgd_learner(cancer_split.learners[0])
    w = learner.mli_get_current_weights().weights
    assert {k: v.shape for k, v in w.items()} == {"coef_": (1, 30), "intercept_": (1,),
                                                  "t_": (1,)}
    assert not np.any(w["coef_"]) and not np.any(w["intercept_"]) and w["t_"][0] == 1.0
    # every learner starts from the same weights (zeros, t_ = 1) whatever its data
    other = _sgd_learner(cancer_split.learners[1], seed=7)
    assert _equal(w, other.mli_get_current_weights().weights)
    # and the structure survives the safe codec unchanged
    check_compatible(decode_weights(encode_weights(w)), w)


def test_propose_and_test_restore_current_weights_bitwise(cancer_split):
    learner = _sgd_learner(cancer_split.learners[0])
    peer = _sgd_learner(cancer_split.learners[1], seed=1)
    learner.mli_accept_weights(peer.mli_propose_weights())  # non-trivial current weights
    before = learner.mli_get_current_weights().weights
    proposal = learner.mli_propose_weights().weights
    assert not _equal(proposal, before)  # it trained
    # t_ counts the samples seen: 5 batches of at most 16 (an epoch's last one is short)
    assert 5 < proposal["t_"][0] - before["t_"][0] <= 5 * 16
    assert _equal(learner.mli_get_current_weights().weights, before)
    learner.mli_test_weights(Weights(weights=proposal))
    assert _equal(learner.mli_get_current_weights().weights, before)
    assert np.array_equal(learner.estimator.coef_, before["coef_"])  # the model itself too


def test_weights_are_copied_in_and_out(cancer_split):
    learner = _sgd_learner(cancer_split.learners[0])
    out = learner.mli_get_current_weights().weights
    out["coef_"][...] = 5.0  # mutating what we got does not touch the model
    assert not np.any(learner.mli_get_current_weights().weights["coef_"])
    proposal = learner.mli_propose_weights().weights
    given = _copy(proposal)
    learner.mli_accept_weights(Weights(weights=given))
    given["coef_"][...] = 9.0  # nor does mutating what we gave it
    assert _equal(learner.mli_get_current_weights().weights, proposal)
    learner.mli_propose_weights()  # training in place must not write into the caller's
    assert np.all(given["coef_"] == 9.0)


def test_vote_is_strictly_better_and_cached_score_refreshes_on_accept(cancer_split):
    learner = _sgd_learner(cancer_split.learners[0])
    initial = learner.mli_get_current_weights()
    assert learner.vote_score == pytest.approx(np.log(2))  # zeros: p = 0.5 everywhere
    proposal = learner.mli_propose_weights()
    tested = learner.mli_test_weights(proposal)
    assert tested.vote_score < learner.vote_score and tested.vote is True
    assert learner.mli_test_weights(initial).vote is False  # equal is not better
    learner.mli_accept_weights(proposal)
    assert learner.vote_score == tested.vote_score
    assert learner.mli_test_weights(initial).vote is False  # worse now
    # a maximised score votes the other way round
    auc = _sgd_learner(cancer_split.learners[0], vote_criterion="roc_auc")
    assert auc.minimise_criterion is False and auc.vote_score == 0.5
    tested = auc.mli_test_weights(proposal)
    assert tested.vote_score > 0.5 and tested.vote is True


def _three_accepted_proposals(learner) -> list[dict]:
    out = []
    for _ in range(3):
        w = learner.mli_propose_weights()
        learner.mli_accept_weights(w)
        out.append(w.weights)
    return out


def test_partial_fit_learner_is_deterministic(cancer_split):
    def sequence():
        return _three_accepted_proposals(_sgd_learner(cancer_split.learners[0], seed=3))

    first, second = sequence(), sequence()
    assert all(_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not _equal(first[0], first[1])


def test_mismatched_weights_are_refused_with_named_errors(cancer_split):
    learner = _sgd_learner(cancer_split.learners[0])
    w = learner.mli_get_current_weights().weights
    with pytest.raises(WeightsMismatchError, match="shape"):
        learner.mli_test_weights(Weights(weights={**w, "coef_": np.zeros((1, 29), np.float32)}))
    with pytest.raises(WeightsMismatchError, match="dtype"):
        learner.mli_accept_weights(Weights(weights={**w, "t_": np.ones(1, np.float32)}))
    with pytest.raises(WeightsMismatchError, match="missing"):
        learner.mli_accept_weights(Weights(weights={"coef_": w["coef_"]}))
    with pytest.raises(WeightsMismatchError, match="NaN"):
        learner.mli_accept_weights(Weights(weights={**w, "intercept_": np.array([np.nan])}))
    with pytest.raises(WeightsFormatError):
        learner.mli_accept_weights(Weights(weights=list(w.values())))
    # testing non-finite weights is not an error: they score NaN and are never approved
    tested = learner.mli_test_weights(Weights(weights={**w, "coef_": w["coef_"] + np.inf}))
    assert np.isnan(tested.vote_score) and tested.vote is False
    assert _equal(learner.mli_get_current_weights().weights, w)


def test_bad_configurations_are_refused(cancer_split):
    part = cancer_split.learners[0]
    args = (part.x_train, part.y_train, part.x_vote, part.y_vote)
    with pytest.raises(ValueError, match="classes"):
        SklearnPartialFitLearner(SGDClassifier(), *args)
    with pytest.raises(ValueError, match="average"):
        SklearnPartialFitLearner(SGDClassifier(average=True), *args, classes=[0, 1])
    with pytest.raises(ValueError, match="minimise_criterion"):
        SklearnPartialFitLearner(SGDClassifier(), *args, classes=[0, 1],
                                 vote_criterion=lambda y, out: float(np.mean(y == out)))
    with pytest.raises(ValueError, match="contradicts"):
        SklearnPartialFitLearner(SGDClassifier(), *args, classes=[0, 1],
                                 vote_criterion="roc_auc", minimise_criterion=True)
    with pytest.raises(ScoreError, match="unknown score"):
        SklearnPartialFitLearner(SGDClassifier(), *args, classes=[0, 1], vote_criterion="f7")
    with pytest.raises(ScoreError, match="predict_proba"):
        SklearnPartialFitLearner(SGDClassifier(loss="hinge"), *args, classes=[0, 1],
                                 vote_criterion="log_loss")


def test_custom_vote_function_receives_the_chosen_output(cancer_split):
    part = cancer_split.learners[0]
    seen = []

    def error_rate(y_true, proba):
        seen.append(proba.shape)
        return float(np.mean((proba[:, 1] > 0.5) != y_true))

    learner = SklearnPartialFitLearner(
        SGDClassifier(loss="log_loss"), part.x_train, part.y_train, part.x_vote, part.y_vote,
        classes=[0, 1], vote_criterion=error_rate, minimise_criterion=True,
        vote_output="predict_proba")
    assert seen == [(len(part.y_vote), 2)]
    assert learner.mli_test_weights(learner.mli_propose_weights()).test_score == 0.0  # no test set


def test_mlp_weights_are_layer_lists_and_training_improves(cancer_split):
    part = cancer_split.learners[0]
    learner = SklearnPartialFitLearner(
        MLPClassifier((8,), learning_rate_init=0.01), part.x_train, part.y_train,
        part.x_vote, part.y_vote, classes=[0, 1], vote_criterion="log_loss",
        batch_size=32, batches_per_round=10, seed=0)
    w = learner.mli_get_current_weights().weights
    assert {k: v.shape for k, v in w.items()} == {
        "coefs_.0": (30, 8), "coefs_.1": (8, 1), "intercepts_.0": (8,), "intercepts_.1": (1,)}
    # Glorot-uniform from the seed: same seed, same weights, whatever the data
    again = SklearnPartialFitLearner(
        MLPClassifier((8,), learning_rate_init=0.01), cancer_split.learners[1].x_train,
        cancer_split.learners[1].y_train, part.x_vote, part.y_vote, classes=[0, 1], seed=0)
    assert _equal(w, again.mli_get_current_weights().weights)
    proposal = learner.mli_propose_weights()
    assert learner.mli_test_weights(proposal).vote is True
    assert _equal(learner.mli_get_current_weights().weights, w)


def test_sgd_regressor_experiment_lowers_mse():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 5)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.1 * rng.normal(size=600)
    learners = [SklearnPartialFitLearner(
        SGDRegressor(eta0=0.01), x[i * 150:i * 150 + 100], y[i * 150:i * 150 + 100],
        x[i * 150 + 100:(i + 1) * 150], y[i * 150 + 100:(i + 1) * 150],
        batch_size=16, batches_per_round=5, seed=i) for i in range(3)]
    set_equal_weights(learners)
    x_global, y_global = x[450:], y[450:]
    before = learners[0].evaluate(learners[0].mli_get_current_weights(), x_global, y_global)
    results = run_experiment(learners, 4)
    after = learners[0].evaluate(learners[0].mli_get_current_weights(), x_global, y_global)
    assert learners[0].minimise_criterion and any(results.decisions())
    assert after < 0.2 * before


# --------------------------------------------------------------------------- forest

def test_tree_arrays_predict_exactly_as_sklearn(iris_split):
    x, y = iris_split.pooled_train()
    trees = [DecisionTreeClassifier(max_depth=3, random_state=s).fit(x[s::2], y[s::2])
             for s in range(2)]
    layout = ForestLayout(4, 15, 4, 3)
    w = layout.validate(_forest_with(layout, trees))
    full = load_dataset("iris").x
    for tree in trees:
        one = layout.validate(_forest_with(layout, [tree]))
        assert np.array_equal(layout.predict_proba(one, full), tree.predict_proba(full))
    expected = (trees[0].predict_proba(full) + trees[1].predict_proba(full)) / 2
    assert np.allclose(layout.predict_proba(w, full), expected, rtol=0, atol=1e-15)
    # a tree trained without class 2 gives it probability 0
    missing = DecisionTreeClassifier(max_depth=2, random_state=0).fit(x[y < 2], y[y < 2])
    proba = layout.predict_proba(layout.validate(_forest_with(layout, [missing])), full)
    assert proba.shape == (150, 3) and np.all(proba[:, 2] == 0)


def test_empty_forest_predicts_uniform_and_is_the_initial_weights(iris_split):
    learner = _forest_learner(iris_split.learners[0])
    w = learner.mli_get_current_weights().weights
    assert w["n_trees"][0] == 0 and _equal(w, learner.layout.empty())
    proba = learner.predict_proba(w, iris_split.x_global_test)
    assert np.all(proba == 1 / 3)
    assert learner.vote_score == pytest.approx(2 / 3)  # Brier of the uniform prediction


def test_forest_grows_each_round_then_caps_replacing_the_oldest(iris_split):
    learner = _forest_learner(iris_split.learners[0], max_trees=5, trees_per_round=2)
    history = []
    for _ in range(4):
        proposal = learner.mli_propose_weights().weights
        learner.mli_accept_weights(Weights(weights=proposal))
        history.append(proposal)
    assert [int(w["n_trees"][0]) for w in history] == [2, 4, 5, 5]
    # round 3 (4 -> 6 trees, capacity 5): the oldest tree went, the others moved up one
    third, fourth = history[1], history[2]
    for name in ("children_left", "threshold", "value", "node_count"):
        assert np.array_equal(fourth[name][:3], third[name][1:4])
    # round 4: two more new trees, the two oldest dropped
    assert np.array_equal(history[3]["threshold"][:3], fourth["threshold"][2:5])
    assert not np.array_equal(history[3]["threshold"][3:], fourth["threshold"][3:])


def test_forest_propose_test_leave_weights_and_vote_direction(iris_split):
    learner = _forest_learner(iris_split.learners[0])
    peer = _forest_learner(iris_split.learners[1], seed=1)
    learner.mli_accept_weights(peer.mli_propose_weights())
    before = learner.mli_get_current_weights().weights
    proposal = learner.mli_propose_weights()
    assert _equal(learner.mli_get_current_weights().weights, before)
    tested = learner.mli_test_weights(proposal)
    assert _equal(learner.mli_get_current_weights().weights, before)
    assert tested.vote == (tested.vote_score < learner.vote_score)
    assert learner.mli_test_weights(Weights(weights=before)).vote is False  # equal: no
    empty = learner.layout.empty()
    assert learner.mli_test_weights(Weights(weights=empty)).vote_score > learner.vote_score
    learner.mli_accept_weights(proposal)
    assert learner.vote_score == tested.vote_score


def test_forest_is_deterministic(iris_split):
    def run():
        return _three_accepted_proposals(_forest_learner(iris_split.learners[2], seed=5))

    first, second = run(), run()
    assert all(_equal(a, b) for a, b in zip(first, second, strict=True))
    other = _forest_learner(iris_split.learners[2], seed=6).mli_propose_weights().weights
    assert not _equal(first[0], other)


@pytest.fixture(scope="module")
def grown_forest(iris_split):
    learner = _forest_learner(iris_split.learners[0], max_trees=4, max_depth=3)
    learner.mli_accept_weights(learner.mli_propose_weights())
    return learner, learner.mli_get_current_weights().weights


def _tampered(weights: dict, name: str, index: tuple, value) -> dict:
    w = _copy(weights)
    w[name][index] = value
    return w


def _first_internal(w: dict) -> int:
    return int(np.flatnonzero(w["children_left"][0] >= 0)[0])


@pytest.mark.parametrize("tamper, message", [
    (lambda w: _tampered(w, "n_trees", (0,), 5), "n_trees is 5"),
    (lambda w: _tampered(w, "n_trees", (0,), -1), "n_trees is -1"),
    (lambda w: _tampered(w, "node_count", (0,), 16), "node_count 16"),
    (lambda w: _tampered(w, "node_count", (0,), 0), "node_count 0"),
    (lambda w: _tampered(w, "node_count", (3,), 1), "unused tree slot"),
    (lambda w: _tampered(w, "children_left", (0, _first_internal(w)), 0), "cycles"),
    (lambda w: _tampered(w, "children_right", (0, 0), 0), "cycles"),
    (lambda w: _tampered(w, "children_right", (0, 0), 14), "beyond the tree's node_count"),
    (lambda w: _tampered(w, "children_left", (0, 0), w["children_right"][0, 0]),
     "same node"),
    (lambda w: _tampered(w, "feature", (0, 0), 4), "feature index"),
    (lambda w: _tampered(w, "feature", (0, 0), -1), "feature index"),
    (lambda w: _tampered(w, "value", (0, int(np.flatnonzero(w["children_left"][0] < 0)[0]), 0),
                         7.0), "sum to 1"),
    (lambda w: _tampered(w, "value", (0, 0, 0), 0.5), "internal node's value"),
    (lambda w: _tampered(w, "threshold", (3, 0), 1.5), "unused node"),
    (lambda w: _tampered(w, "children_right",
                         (0, int(np.flatnonzero(w["children_left"][0] < 0)[0])), 3),
     "has a right child"),
    (lambda w: _tampered(w, "threshold", (0, 0), np.nan), "NaN"),
    (lambda w: {**w, "value": w["value"].astype(np.float32)}, "dtype"),
    (lambda w: {**w, "threshold": w["threshold"][:, :-1]}, "shape"),
    (lambda w: {k: v for k, v in w.items() if k != "feature"}, "missing"),
])
def test_tampered_forest_arrays_are_refused(grown_forest, tamper, message):
    learner, weights = grown_forest
    assert weights["n_trees"][0] == 2 and weights["node_count"][0] > 3
    bad = tamper(weights)
    before = learner.mli_get_current_weights().weights
    for call in (learner.mli_test_weights, learner.mli_accept_weights):
        with pytest.raises(WeightsMismatchError, match=message):
            call(Weights(weights=bad))
    assert _equal(learner.mli_get_current_weights().weights, before)


def test_forest_configuration_is_checked(iris_split):
    part = iris_split.learners[0]
    with pytest.raises(ValueError, match="max_depth or max_leaf_nodes"):
        _forest_learner(part, max_depth=None)
    with pytest.raises(ValueError, match="trees_per_round"):
        _forest_learner(part, max_trees=2, trees_per_round=3)
    with pytest.raises(ValueError, match="labels must lie"):
        RandomForestLearner(part.x_train, part.y_train, part.x_vote, part.y_vote, n_classes=2)
    with pytest.raises(ScoreError):
        _forest_learner(part, vote_criterion="mse")
    # max_leaf_nodes bounds the capacity too
    assert _forest_learner(part, max_depth=None, max_leaf_nodes=6).layout.max_nodes == 11


# --------------------------------------------------------------------------- ONNX

@pytest.mark.parametrize("make", [
    lambda: SGDClassifier(loss="log_loss", alpha=1e-3),
    lambda: SGDClassifier(loss="modified_huber", alpha=1e-3),
    lambda: MLPClassifier((8,), learning_rate_init=0.01),
], ids=["sgd-log", "sgd-huber", "mlp"])
def test_partial_fit_model_as_onnx_matches_onnxruntime(cancer_split, make):
    part = cancer_split.learners[0]
    learner = SklearnPartialFitLearner(make(), part.x_train, part.y_train, part.x_vote,
                                       part.y_vote, classes=[0, 1], seed=0)
    learner.mli_accept_weights(learner.mli_propose_weights())
    model = learner.mli_get_current_model()
    assert model.model_format is ModelFormat.ONNX
    x = cancer_split.x_global_test
    out = _run_onnx(model.model, x)
    assert np.array_equal(out["label"], learner.estimator.predict(x))
    assert np.allclose(out["probabilities"], learner.estimator.predict_proba(x), atol=1e-5)


def _check_forest_onnx(learner: RandomForestLearner, x: np.ndarray, *,
                       decisive: bool = True) -> None:
    model = learner.mli_get_current_model()
    assert model.model_format is ModelFormat.ONNX
    out = _run_onnx(model.model, x)
    proba = learner.predict_proba(learner.mli_get_current_weights(), x)
    assert np.allclose(out["probabilities"], proba, atol=1e-6)
    top2 = np.sort(proba, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-6  # ties may break either way
    if decisive:
        assert clear.sum() > len(x) // 2
    assert np.array_equal(out["label"][clear], np.argmax(proba, axis=1)[clear])


def test_forest_as_onnx_matches_onnxruntime(iris_split):
    learner = _forest_learner(iris_split.learners[0])
    x = load_dataset("iris").x
    _check_forest_onnx(learner, x, decisive=False)  # the empty forest: uniform (all ties)
    for _ in range(4):  # 8 trees > capacity 6: a forest that has replaced trees
        learner.mli_accept_weights(learner.mli_propose_weights())
    _check_forest_onnx(learner, x)


def test_binary_forest_as_onnx_matches_onnxruntime(cancer_split):
    part = cancer_split.learners[0]
    learner = RandomForestLearner(part.x_train, part.y_train, part.x_vote, part.y_vote,
                                  n_classes=2, trees_per_round=3, max_depth=4, seed=0)
    learner.mli_accept_weights(learner.mli_propose_weights())
    _check_forest_onnx(learner, cancer_split.x_global_test)


# --------------------------------------------------------------------------- examples

@pytest.mark.parametrize("module", [sgd_fraud, random_forest_iris])
def test_example_in_memory_improves_global_score(module):
    setup = module.build(n_learners=5, seed=0)
    assert len(setup.learners) == 5 and setup.n_rounds == 15
    initial = setup.global_score(setup.learners[0].mli_get_current_weights().weights)
    results = run_experiment(setup.learners, 8, setup.vote_threshold)
    final = setup.global_score(setup.learners[0].mli_get_current_weights().weights)
    assert sum(results.decisions()) >= 2
    assert final > initial + 0.3


@pytest.mark.parametrize("module, name", [(sgd_fraud, "sgd-fraud"),
                                          (random_forest_iris, "random-forest-iris")])
def test_example_factory_gives_the_build_learner(module, name):
    assert load_example(name) is module
    setup = module.build(n_learners=4, seed=1)
    alone = module.learner("2", n_learners="4", seed="1")
    built = setup.learners[2]
    assert _equal(alone.mli_get_current_weights().weights,
                  built.mli_get_current_weights().weights)
    assert alone.vote_score == built.vote_score
    assert _equal(alone.mli_propose_weights().weights, built.mli_propose_weights().weights)
    with pytest.raises(ValueError, match="index"):
        module.learner(4, n_learners=4)


# --------------------------------------------------------------------------- on chain

def _check_on_chain(module, n_rounds: int) -> None:
    setup = module.build(n_learners=3, seed=0)
    learners, global_score = setup.learners, setup.global_score
    initial = global_score(learners[0].mli_get_current_weights().weights)
    run = run_on_chain(learners, n_rounds, vote_threshold=0.5)
    decisions = run.decisions()
    assert len(decisions) == n_rounds and None not in decisions  # every round closed
    assert any(decisions)
    final = run.final_weights
    for learner in learners:
        assert _equal(final, learner.mli_get_current_weights().weights)
    assert global_score(final) > initial
    assert run.final_model_round == max(r + 1 for r, ok in enumerate(decisions) if ok)
    # the same learners in memory take the same decisions and end with the same model
    again = module.build(n_learners=3, seed=0)
    assert run_experiment(again.learners, n_rounds, 0.5).decisions() == decisions
    assert _equal(again.learners[0].mli_get_current_weights().weights, final)


def test_sgd_fraud_experiment_on_chain():
    _check_on_chain(sgd_fraud, 4)


def test_random_forest_experiment_on_chain():
    _check_on_chain(random_forest_iris, 4)

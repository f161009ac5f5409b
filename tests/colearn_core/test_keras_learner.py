"""KerasLearner (Keras 3, TensorFlow backend): the MLI guarantees, votes, weight checks,
determinism, ONNX export, and the Keras MNIST example in memory and on chain."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
keras = pytest.importorskip("keras")  # one import of TensorFlow (~5 s) for the module
import tensorflow as tf
from learner_checks import (
    a_tested_proposal_votes_and_changes_nothing,
    accept_own_proposals,
    codec_round_trip,
    propose_leaves_the_learner_unchanged,
)

from colearn_core.codec import WeightsFormatError, WeightsMismatchError
from colearn_core.examples import mnist_images
from colearn_core.learners.keras import KerasLearner
from colearn_core.ml_interface import ColearnModel, DiffPrivConfig, ModelFormat, Weights
from colearn_core.training import run_experiment, set_equal_weights

try:  # small models are fastest on one thread; only possible before TF's runtime starts
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
except RuntimeError:
    pass


def _data(seed: int, n: int = 96, features: int = 6, classes: int = 3):
    centers = np.random.default_rng(0).normal(0, 2, size=(classes, features))  # one task
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    x = (centers[y] + rng.normal(0, 1, size=(n, features))).astype(np.float32)
    return x, y.astype(np.int64)


def _dataset(x, y, batch_size=16, shuffle_seed=None):
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size)


def _model(seed: int = 0, lr: float = 0.05) -> keras.Model:
    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="relu",
                           kernel_initializer=keras.initializers.GlorotUniform(seed=seed)),
        keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 1)),
    ])
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def make_learner(seed: int = 0, *, steps: int = 2, **kwargs) -> KerasLearner:
    x, y = _data(seed)
    xv, yv = _data(seed + 100, n=40)
    xt, yt = _data(seed + 200, n=40)
    kwargs.setdefault("model_fit_kwargs", {"steps_per_epoch": steps})
    return KerasLearner(
        model=_model(),
        train_loader=_dataset(x, y, shuffle_seed=seed),
        vote_loader=_dataset(xv, yv),
        test_loader=_dataset(xt, yt),
        **kwargs,
    )


def _same(a, b) -> bool:
    return len(a) == len(b) and all(
        x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b)
    )


def _current(learner: KerasLearner) -> list[np.ndarray]:
    return learner.mli_get_current_weights().weights


# --------------------------------------------------------------------------- the MLI

def test_current_weights_are_a_list_of_numpy_copies():
    learner = make_learner()
    w = _current(learner)
    assert isinstance(w, list) and len(w) == 4
    assert all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in w)
    before = _current(learner)
    for array in w:
        array += 1.0
    assert _same(before, _current(learner))


def test_propose_leaves_current_weights_bitwise_unchanged():
    propose_leaves_the_learner_unchanged(make_learner(), _same)


def test_test_weights_leaves_current_weights_unchanged_and_votes():
    learner = make_learner()
    proposal = Weights(weights=[a + 0.5 for a in _current(learner)])
    a_tested_proposal_votes_and_changes_nothing(learner, proposal, _same)


def test_accept_changes_weights_and_refreshes_vote_score():
    learner = make_learner()
    proposal = learner.mli_propose_weights()
    tested = learner.mli_test_weights(proposal)
    learner.mli_accept_weights(proposal)
    assert _same(proposal.weights, _current(learner))
    assert learner.vote_score == pytest.approx(tested.vote_score)
    for array in proposal.weights:  # the learner does not alias the accepted arrays
        array += 1.0
    assert not _same(proposal.weights, _current(learner))


def test_training_lowers_the_vote_loss_and_votes_follow():
    learner = make_learner(steps=6)
    start = learner.vote_score
    accept_own_proposals(learner, 4)
    assert learner.vote_score < start - 0.1


def test_maximised_accuracy_criterion():
    learner = make_learner(criterion="accuracy", minimise_criterion=False)
    assert 0.0 <= learner.vote_score <= 1.0
    for _ in range(3):
        learner.mli_accept_weights(learner.mli_propose_weights())
    zeros = [np.zeros_like(a) for a in _current(learner)]
    tested = learner.mli_test_weights(Weights(weights=zeros))
    assert tested.vote == (tested.vote_score > learner.vote_score)
    # all-zero weights: equal logits, argmax 0, so the accuracy is class 0's share
    xv_y = np.concatenate([y.numpy() for _, y in learner.vote_loader])
    assert tested.vote_score == pytest.approx(np.mean(xv_y == 0))
    assert 0.0 <= tested.test_score <= 1.0


def test_unknown_criterion_is_named():
    with pytest.raises(ValueError, match="'auc'.*accuracy"):
        make_learner(criterion="auc")


def test_bad_weights_are_refused_with_named_errors():
    learner = make_learner()
    current = _current(learner)
    with pytest.raises(WeightsFormatError):
        learner.mli_accept_weights(Weights(weights={str(i): a for i, a in enumerate(current)}))
    with pytest.raises(WeightsFormatError):
        learner.mli_test_weights(Weights(weights=current[:-1] + ["not an array"]))
    with pytest.raises(WeightsMismatchError, match="3 weight arrays"):
        learner.mli_test_weights(Weights(weights=current[:-1]))
    with pytest.raises(WeightsMismatchError, match="dtype"):
        learner.mli_accept_weights(Weights(weights=[a.astype(np.float64) for a in current]))
    with pytest.raises(WeightsMismatchError, match="shape"):
        learner.mli_accept_weights(Weights(weights=[a.T for a in current]))
    nan = [np.full_like(a, np.nan) for a in current]
    assert learner.mli_test_weights(Weights(weights=nan)).vote is False
    with pytest.raises(WeightsMismatchError, match="NaN"):
        learner.mli_accept_weights(Weights(weights=nan))
    assert _same(current, _current(learner))


def test_weights_round_trip_through_codec_bitwise():
    decoded = codec_round_trip(make_learner(), make_learner(seed=1), _same)
    assert isinstance(decoded, list)


def test_need_reset_optimizer_restores_the_fresh_optimizer_state():
    learner = make_learner()
    fresh = [np.array(v.numpy()) for v in learner.model.optimizer.variables]
    proposal1 = learner.mli_propose_weights()
    assert int(learner.model.optimizer.iterations.numpy()) == 2
    proposal2 = learner.mli_propose_weights()
    # same start weights, fresh optimizer, but a reshuffled train set: the step count
    # restarted at 0 (2 steps again, not 4)
    assert int(learner.model.optimizer.iterations.numpy()) == 2
    assert not _same(proposal1.weights, proposal2.weights)
    learner.reset_optimizer()
    assert _same(fresh, [np.array(v.numpy()) for v in learner.model.optimizer.variables])

    keep = make_learner(need_reset_optimizer=False)
    keep.mli_propose_weights()
    keep.mli_propose_weights()
    assert int(keep.model.optimizer.iterations.numpy()) == 4


def test_determinism_same_calls_same_weights():
    def run():
        learners = [make_learner(seed=s) for s in range(3)]
        set_equal_weights(learners)
        results = run_experiment(learners, n_rounds=4, vote_threshold=0.5)
        return results.decisions(), [_current(lr) for lr in learners]

    # tf.data combines a shuffle's seed with TF's global seed: fix both
    keras.utils.set_random_seed(123)
    d1, w1 = run()
    tf.random.uniform((3,))  # draws in between must not matter
    keras.utils.set_random_seed(123)
    d2, w2 = run()
    assert d1 == d2 and any(d1)
    assert all(_same(a, b) for a, b in zip(w1, w2, strict=True))
    assert all(_same(w1[0], w) for w in w1[1:])


def test_no_test_loader_scores_zero_and_diff_priv_refused():
    learner = make_learner()
    learner.test_loader = None
    assert learner.mli_test_weights(learner.mli_get_current_weights()).test_score == 0.0
    dp = DiffPrivConfig(target_epsilon=1, target_delta=1e-5, max_grad_norm=1, noise_multiplier=1)
    with pytest.raises(NotImplementedError, match="PytorchLearner"):
        make_learner(diff_priv_config=dp)


def test_reserved_kwargs_and_uncompiled_model_refused():
    with pytest.raises(ValueError, match="return_dict"):
        make_learner(model_evaluate_kwargs={"return_dict": False})
    x, y = _data(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="compiled"):
        KerasLearner(model, _dataset(x, y), _dataset(x, y))


def test_evaluate_kwargs_limit_the_scored_batches():
    full = make_learner()
    one = make_learner(model_evaluate_kwargs={"steps": 1})
    xv = np.concatenate([x.numpy() for x, _ in full.vote_loader])
    yv = np.concatenate([y.numpy() for _, y in full.vote_loader])
    logits = full.model.predict(xv[:16], verbose=0)
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(yv[:16], logits)
    assert one.vote_score == pytest.approx(float(expected), rel=1e-5)
    assert full.vote_score != pytest.approx(one.vote_score)


# --------------------------------------------------------------------------- the model

def test_current_model_is_onnx_matching_keras_predictions():
    ort = pytest.importorskip("onnxruntime")
    learner = make_learner()
    learner.mli_accept_weights(learner.mli_propose_weights())
    before = _current(learner)
    model = learner.mli_get_current_model()
    assert isinstance(model, ColearnModel) and model.model_format is ModelFormat.ONNX
    session = ort.InferenceSession(model.model.SerializeToString())
    x = np.concatenate([x.numpy() for x, _ in learner.test_loader])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    expected = learner.model.predict(x, verbose=0)
    assert got.shape == expected.shape == (40, 3)
    assert np.max(np.abs(got - expected)) < 1e-4
    assert _same(before, _current(learner))


def test_current_model_without_onnx_is_the_weights_list(monkeypatch):
    import colearn_core.learners.keras as keras_learner

    monkeypatch.setattr(keras_learner, "onnx_export_available", lambda: False)
    learner = make_learner()
    model = learner.mli_get_current_model()
    assert model.model_format is ModelFormat.PICKLE_WEIGHTS_ONLY
    assert _same(model.model, _current(learner))


# --------------------------------------------------------------------------- the example

@pytest.fixture(scope="module")
def keras_mnist():
    from colearn_core.examples import keras_mnist

    return keras_mnist


def test_example_build_and_factory_agree(keras_mnist):
    setup = keras_mnist.build(n_learners=3, seed=0)
    assert setup.score_name == "accuracy" and setup.n_rounds == 15
    assert "stand-in" in setup.description and "cross-entropy" in setup.description
    first = _current(setup.learners[0])
    assert all(_same(first, _current(lr)) for lr in setup.learners[1:])
    assert all(isinstance(lr, KerasLearner) for lr in setup.learners)
    one = keras_mnist.learner("2", n_learners="3", seed="0")  # agent CLI arguments
    assert _same(first, _current(one))
    assert one.vote_score == pytest.approx(setup.learners[2].vote_score)
    assert 0.0 <= setup.global_score(first) <= 0.3  # untrained: about chance
    with pytest.raises(ValueError, match="index"):
        keras_mnist.learner(3, n_learners=3)
    with pytest.raises(ValueError, match="seed"):
        keras_mnist.learner(0, seed="x")


def test_example_reads_mnist_idx_files_channels_last(keras_mnist, tmp_path):
    rng = np.random.default_rng(0)

    def write(name: str, n: int) -> None:
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (tmp_path / f"{name}-images-idx3-ubyte").write_bytes(
            np.array([0x803, n, 28, 28], ">u4").tobytes() + images.tobytes())
        (tmp_path / f"{name}-labels-idx1-ubyte").write_bytes(
            np.array([0x801, n], ">u4").tobytes() + labels.tobytes())
        return images

    train = write("train", 100)
    write("t10k", 50)
    data = mnist_images(str(tmp_path), channels_last=True)
    assert data.x.shape == (150, 28, 28, 1) and data.x.dtype == np.float32
    np.testing.assert_allclose(data.x[:100, :, :, 0], train / 255.0, rtol=1e-6)
    setup = keras_mnist.build(n_learners=2, data_dir=str(tmp_path))
    assert str(tmp_path) in setup.description
    proposal = setup.learners[0].mli_propose_weights()
    assert 0.0 <= setup.global_score(proposal.weights) <= 1.0


def test_example_in_memory_experiment_improves_the_global_score(keras_mnist):
    setup = keras_mnist.build(n_learners=3, seed=0)
    initial = setup.global_score(_current(setup.learners[0]))
    results = run_experiment(setup.learners, n_rounds=4, vote_threshold=setup.vote_threshold)
    decisions = results.decisions()
    assert sum(decisions) >= 2
    final = _current(setup.learners[0])
    assert all(_same(final, _current(lr)) for lr in setup.learners[1:])
    assert setup.global_score(final) > initial + 0.3


def test_example_on_chain(keras_mnist):
    """THE KEY TEST: a Keras experiment completed on chain (in-process EVM), one agent per
    learner, weights through the content-addressed store as a safetensors list."""
    from agents.experiment.onchain import run_on_chain

    setup = keras_mnist.build(n_learners=3, seed=0)
    initial = setup.global_score(_current(setup.learners[0]))
    run = run_on_chain(setup.learners, n_rounds=3, vote_threshold=setup.vote_threshold)
    assert len(run.rounds) == 3
    assert all(row.closed and not row.expired for row in run.rounds)
    decisions = run.decisions()
    assert None not in decisions and any(decisions)
    assert [row.proposer_index for row in run.rounds] == [0, 1, 2]
    accepted = [r for r, d in enumerate(decisions) if d]
    assert run.final_model_round == accepted[-1] + 1
    assert isinstance(run.final_weights, list)
    for lr in setup.learners:
        assert _same(run.final_weights, _current(lr))
    # each voter's recorded vote matches its own scores against its cached vote score
    for row in run.rounds:
        assert row.approvals + row.rejections == 2
        for vote in row.votes:
            record = run.records[vote.learner_index][row.round]
            assert record.approve == vote.approve and record.reason is None
            assert record.vote_score == pytest.approx(vote.vote_score)
            assert 0.0 <= record.test_score <= 1.0  # test_criterion: accuracy
    assert setup.global_score(run.final_weights) > initial + 0.2
    assert run.results().decisions() == decisions

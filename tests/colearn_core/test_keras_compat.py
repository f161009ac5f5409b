"""colearn_keras' names and conventions here: KerasLearner's constructor (order, names,
defaults), set_weights / test / reset_optimizer / vote, kwargs checked against
model.fit / model.evaluate, and colearn_core.keras.utils.normalize_img."""

from __future__ import annotations

import inspect
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
keras = pytest.importorskip("keras")
import tensorflow as tf

import colearn_core.keras.keras_learner as compat_learner
from colearn_core.codec import decode_weights, encode_weights
from colearn_core.keras.keras_learner import KerasLearner
from colearn_core.keras.utils import normalize_img
from colearn_core.learners import keras as home
from colearn_core.ml_interface import Weights

#: colearn 0.2.8's KerasLearner.__init__ parameters, in order, with their defaults.
COLEARN_PARAMETERS = [
    ("model", inspect.Parameter.empty), ("train_loader", inspect.Parameter.empty),
    ("vote_loader", inspect.Parameter.empty), ("test_loader", None),
    ("need_reset_optimizer", True), ("minimise_criterion", True), ("criterion", "loss"),
    ("model_fit_kwargs", None), ("model_evaluate_kwargs", None),
]


def _dataset(seed: int, n: int = 48):
    centers = np.random.default_rng(0).normal(0, 2, size=(3, 4))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = (centers[y] + rng.normal(0, 1, size=(n, 4))).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def _model() -> keras.Model:
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotUniform(seed=0)),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["sparse_categorical_accuracy"])
    return model


def test_one_class_at_colearns_path():
    assert compat_learner.KerasLearner is home.KerasLearner


def test_constructor_parameters_are_colearns_then_keyword_only_extras():
    parameters = list(inspect.signature(KerasLearner).parameters.values())
    head = parameters[:len(COLEARN_PARAMETERS)]
    assert [(p.name, p.default) for p in head] == COLEARN_PARAMETERS
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in head)
    extras = parameters[len(COLEARN_PARAMETERS):]
    assert {p.name for p in extras} == {"diff_priv_config", "test_criterion"}
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in extras)


def test_colearns_positional_call_and_its_methods():
    learner = KerasLearner(_model(), _dataset(0), _dataset(1), _dataset(2), False, False,
                           "sparse_categorical_accuracy", {"epochs": 1}, {"steps": 2})
    assert learner.need_reset_optimizer is False and learner.minimise_criterion is False
    assert learner.criterion == "sparse_categorical_accuracy"
    assert learner.model_fit_kwargs["epochs"] == 1
    assert learner.model_evaluate_kwargs["steps"] == 2
    start = learner.vote_score
    assert learner.test(learner.vote_loader) == start
    proposal = learner.mli_propose_weights()
    tested = learner.mli_test_weights(proposal)
    learner.set_weights(proposal)
    assert learner.vote_score == start  # set_weights loads; it does not rescore
    assert all(np.array_equal(a, b) for a, b in zip(learner.model.get_weights(), proposal.weights))
    assert learner.test(learner.vote_loader) == tested.vote_score
    assert learner.test(learner.test_loader) == tested.test_score
    assert learner.vote(tested.vote_score) is (tested.vote_score > start)
    assert learner.vote(start) is False
    learner.reset_optimizer()


def test_set_weights_takes_codec_output_and_checks_it():
    learner = KerasLearner(_model(), _dataset(0), _dataset(1))
    proposal = learner.mli_propose_weights()
    decoded = decode_weights(encode_weights(proposal.weights))
    learner.set_weights(Weights(weights=decoded))
    assert all(np.array_equal(a, b) for a, b in zip(learner.model.get_weights(), decoded))
    with pytest.raises(ValueError):
        learner.set_weights(decoded[:1])


def test_fit_kwargs_that_are_not_fit_arguments_are_refused():
    # (Keras 3's evaluate takes **kwargs, so only fit's can be checked this way)
    with pytest.raises(ValueError, match="model_fit_kwargs"):
        KerasLearner(_model(), _dataset(0), _dataset(1), model_fit_kwargs={"epoch": 2})


def test_normalize_img():
    image = tf.constant([[0, 51], [255, 102]], dtype=tf.uint8)
    scaled, label = normalize_img(image, 7)
    assert scaled.dtype == tf.float32 and label == 7
    np.testing.assert_allclose(scaled.numpy(), [[0.0, 0.2], [1.0, 0.4]], rtol=1e-6)
    dataset = tf.data.Dataset.from_tensor_slices((image[None], [3])).map(normalize_img)
    x, y = next(iter(dataset))
    assert x.dtype == tf.float32 and int(y) == 3

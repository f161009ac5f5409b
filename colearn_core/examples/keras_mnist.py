"""colearn's Keras MNIST example: a small CNN trained collectively on handwritten digits.

As in colearn's ``keras_mnist`` example, each learner trains a convolutional network
(conv - max-pool - conv - max-pool - dense, logits) with Adam and sparse categorical
cross-entropy on its private share of the images. It votes on its vote set's LOSS
(mean cross-entropy, lower is better), as the PyTorch example does; colearn's Keras
example voted on accuracy, but on vote sets of about 75 images (the offline stand-in) a
strictly better accuracy needs one more image right, so votes stall early (measured:
9/15 rounds accepted and 0.917 global accuracy, against 12/15 and 0.933 on loss). The
test score (``test_criterion``) is the accuracy on the learner's test set. The global score is the accuracy
on the split's global test set, which no learner sees.

Data: ``data_dir`` given, the real MNIST idx files in it
(:func:`~colearn_core.tasks.datasets.load_dataset` ``("mnist", data_dir)``, transposed
from (n, 1, 28, 28) to channels-last (n, 28, 28, 1)). Without it, an offline stand-in
that needs no download: scikit-learn's 8x8 digits, each pixel repeated 3x3
(``np.repeat``) to 24x24 and padded with 2 blank pixels per side to 28x28, as the
PyTorch example does. Either is split IID (:func:`~colearn_core.tasks.splits.split_dataset`).

Every learner's layers are initialised from the same seeded initialisers (so all start
with equal weights) and each train set is a ``tf.data`` shuffle with its own seed. TF
combines that seed with its global seed, which is fixed by default: a process that does
not call ``tf.random.set_seed`` / ``keras.utils.set_random_seed`` with another value, or
one that calls it with the same value, gives identical runs for ``(n_learners, seed)``.
A proposal is ``STEPS_PER_PROPOSAL`` Adam steps (``model_fit_kwargs``), about 0.1-0.2 s
on one core.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from typing import Any

# As colearn_core.learners.keras does, before keras (and TF) are first imported here.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from colearn_core.examples import Example, mnist_images, mnist_source
from colearn_core.learners.keras import KerasLearner, check_keras_weights
from colearn_core.tasks.splits import FederatedSplit, LearnerSplit, split_dataset

log = logging.getLogger(__name__)

IMAGE_SIDE = 28
N_CLASSES = 10
BATCH_SIZE = 32
EVAL_BATCH_SIZE = 512
#: Adam steps per proposal (``model_fit_kwargs={"steps_per_epoch": ...}``).
STEPS_PER_PROPOSAL = 10
LEARNING_RATE = 3e-3
#: The score voted on (lower is better) and the test score: keys of
#: ``model.evaluate(return_dict=True)``.
CRITERION = "loss"
TEST_CRITERION = "accuracy"
TF_THREADS = 1


def _seed(*parts: int) -> int:
    """A 31-bit seed derived from integers (Keras seeds must fit in 32 bits)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint32)[0]) >> 1


def use_one_thread() -> None:
    """Runs TF ops on one thread (fastest for this small CNN on a shared machine), if TF's
    runtime has not started yet; otherwise its thread settings can no longer change."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(TF_THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(TF_THREADS)
    except RuntimeError:
        log.debug("TensorFlow is already initialised: its thread counts stay as they are")


def make_model(seed: int = 0) -> keras.Model:
    """(28, 28, 1) -> conv5 (8) -> max-pool 2 -> conv5 (16) -> max-pool 2 -> dense 10
    (logits), compiled with Adam, sparse categorical cross-entropy and accuracy. Every
    layer's initialiser is seeded from ``seed``: models of one seed start alike."""

    def init(layer: int) -> keras.initializers.Initializer:
        return keras.initializers.GlorotUniform(seed=_seed(seed, 0, layer))

    model = keras.Sequential([
        keras.Input((IMAGE_SIDE, IMAGE_SIDE, 1)),
        keras.layers.Conv2D(8, 5, activation="relu", kernel_initializer=init(0)),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(16, 5, activation="relu", kernel_initializer=init(1)),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(N_CLASSES, kernel_initializer=init(2)),
    ], name="mnist_cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


@lru_cache(maxsize=4)
def make_split(n_learners: int = 5, seed: int = 0, data_dir: str | None = None) -> FederatedSplit:
    """The IID split of the example's data among ``n_learners``."""
    return split_dataset(mnist_images(data_dir, channels_last=True), n_learners, seed=seed,
                         scheme="iid")


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int,
                 shuffle_seed: int | None = None) -> tf.data.Dataset:
    """A batched ``tf.data.Dataset`` of ``(x, y)``. With ``shuffle_seed`` (a train set)
    it is reshuffled every pass and repeats without end, so that ``steps_per_epoch``
    steps are taken even when a learner has fewer batches than that."""
    dataset = tf.data.Dataset.from_tensor_slices((np.asarray(x), np.asarray(y)))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(y), seed=shuffle_seed,
                                  reshuffle_each_iteration=True).repeat()
    return dataset.batch(batch_size)


def make_learner(data: LearnerSplit, index: int, seed: int = 0,
                 steps_per_proposal: int = STEPS_PER_PROPOSAL) -> KerasLearner:
    """Learner ``index`` on its part of the split: Adam, vote on loss, test accuracy."""
    use_one_thread()
    test_loader = None
    if len(data.y_test):
        test_loader = make_dataset(data.x_test, data.y_test, EVAL_BATCH_SIZE)
    return KerasLearner(
        model=make_model(seed),
        train_loader=make_dataset(data.x_train, data.y_train, BATCH_SIZE,
                                  shuffle_seed=_seed(seed, 1, index)),
        vote_loader=make_dataset(data.x_vote, data.y_vote, EVAL_BATCH_SIZE),
        test_loader=test_loader,
        need_reset_optimizer=True,
        minimise_criterion=True,
        criterion=CRITERION,
        model_fit_kwargs={"steps_per_epoch": steps_per_proposal},
        test_criterion=TEST_CRITERION,
    )


class GlobalAccuracy:
    """Accuracy of raw weights (a list of arrays, or ``Weights``) on the global test set,
    with one model kept for scoring."""

    def __init__(self, split: FederatedSplit, seed: int = 0) -> None:
        self.model = make_model(seed)
        self.x = np.asarray(split.x_global_test)
        self.y = np.asarray(split.y_global_test)

    def __call__(self, weights: Any) -> float:
        self.model.set_weights(check_keras_weights(weights, self.model, require_finite=False))
        logits = self.model.predict(self.x, batch_size=EVAL_BATCH_SIZE, verbose=0)
        return float(np.mean(np.argmax(logits, axis=1) == self.y))


def describe(n_learners: int, seed: int, data_dir: str | None) -> str:
    return (f"colearn's Keras MNIST example: CNN (conv-pool-conv-pool-dense), Adam, "
            f"{STEPS_PER_PROPOSAL} batches of {BATCH_SIZE} per proposal, vote on the vote "
            f"set's cross-entropy, test accuracy; {mnist_source(data_dir)}; IID split among "
            f"{n_learners} learners")


EXAMPLE = Example(
    make_split=make_split,
    make_learner=make_learner,
    global_score=lambda split, seed, _learners: GlobalAccuracy(split, seed),
    score_name="accuracy",
    describe=describe,
)
build = EXAMPLE.build
learner = EXAMPLE.learner

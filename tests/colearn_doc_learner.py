"""A learner written exactly as colearn's documentation describes one (its tutorial on
implementing the machine learning interface directly: a fraud detector on scikit-learn's
SGDClassifier), for the compatibility test.

Only the imports differ from colearn's: ``from colearn.ml_interface import ...`` became
``from colearn_core.ml_interface import ...``. Its batch sampler, a helper of colearn's
examples, is written out below (seeded, so that runs can be compared).
"""

import numpy as np
from sklearn.linear_model import SGDClassifier

from colearn_core.ml_interface import (
    ColearnModel,
    MachineLearningInterface,
    ModelFormat,
    ProposedWeights,
    Weights,
    convert_model_to_onnx,
)


class InfiniteSampler:
    def __init__(self, dataset_size, batch_size, seed=0):
        self.dataset_size = dataset_size
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)

    def __next__(self):
        return self.rng.choice(self.dataset_size, size=self.batch_size)


class FraudLearner(MachineLearningInterface):
    def __init__(self, train_data, train_labels, test_data, test_labels,
                 batch_size: int = 10000, steps_per_round: int = 1, seed: int = 0):
        self.steps_per_round = steps_per_round
        self.batch_size = batch_size
        self.train_data = train_data
        self.train_labels = train_labels
        self.test_data = test_data
        self.test_labels = test_labels

        self.class_labels = np.unique(train_labels)
        self.train_sampler = InfiniteSampler(len(train_data), batch_size, seed)

        self.model = SGDClassifier(max_iter=1, verbose=0, loss="modified_huber", random_state=0)
        self.model.partial_fit(self.train_data[0:1], self.train_labels[0:1],
                               classes=self.class_labels)  # this needs to be called before predict
        self.vote_score = self.test(self.train_data, self.train_labels)

    def mli_propose_weights(self) -> Weights:
        current_weights = self.mli_get_current_weights()

        for i in range(self.steps_per_round):
            batch_indices = next(self.train_sampler)
            train_data = self.train_data[batch_indices]
            train_labels = self.train_labels[batch_indices]
            self.model.partial_fit(train_data, train_labels, classes=self.class_labels)

        new_weights = self.mli_get_current_weights()
        self.set_weights(current_weights)
        return new_weights

    def mli_test_weights(self, weights: Weights) -> ProposedWeights:
        current_weights = self.mli_get_current_weights()
        self.set_weights(weights)

        vote_score = self.test(self.train_data, self.train_labels)

        test_score = self.test(self.test_data, self.test_labels)

        vote = self.vote_score <= vote_score

        self.set_weights(current_weights)
        return ProposedWeights(weights=weights,
                               vote_score=vote_score,
                               test_score=test_score,
                               vote=vote
                               )

    def mli_accept_weights(self, weights: Weights):
        self.set_weights(weights)
        self.vote_score = self.test(self.train_data, self.train_labels)

    def mli_get_current_weights(self):
        return Weights(weights=dict(coef_=self.model.coef_,
                                    intercept_=self.model.intercept_))

    def mli_get_current_model(self) -> ColearnModel:
        """
        :return: The current model and its format
        """

        return ColearnModel(
            model_format=ModelFormat(ModelFormat.ONNX),
            model_file="",
            model=convert_model_to_onnx(self.model),
        )

    def set_weights(self, weights: Weights):
        self.model.coef_ = weights.weights['coef_']
        self.model.intercept_ = weights.weights['intercept_']

    def test(self, data, labels):
        return self.model.score(data, labels)

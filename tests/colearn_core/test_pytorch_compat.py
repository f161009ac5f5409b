"""colearn_pytorch's names and conventions here: PytorchLearner's constructor (order,
names, defaults), its optimizer reset, its (outputs, labels) criteria on tensors, its
OrderedDict-of-tensors weights, set_weights / test / reset_optimizer / vote, and
colearn_core.pytorch.utils."""

from __future__ import annotations

import inspect
import math
import warnings
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import roc_auc_score
from torch import nn

import colearn_core.pytorch.pytorch_learner as compat_learner
from colearn_core.codec import decode_weights, encode_weights
from colearn_core.learners import pytorch as home
from colearn_core.ml_interface import Weights
from colearn_core.pytorch.pytorch_learner import PytorchLearner
from colearn_core.pytorch.utils import (
    auc_from_logits,
    binary_accuracy_from_logits,
    categorical_accuracy,
    prepare_data_split_list,
)

#: colearn 0.2.8's PytorchLearner.__init__ parameters, in order, with their defaults.
COLEARN_PARAMETERS = [
    ("model", inspect.Parameter.empty), ("optimizer", inspect.Parameter.empty),
    ("train_loader", inspect.Parameter.empty), ("vote_loader", inspect.Parameter.empty),
    ("test_loader", None), ("need_reset_optimizer", True), ("device", "cpu"),
    ("criterion", None), ("minimise_criterion", True), ("vote_criterion", None),
    ("num_train_batches", None), ("num_test_batches", None),
]


def _data(seed: int, n: int = 64, classes: int = 3):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2, size=(classes, 5))
    y = rng.integers(0, classes, size=n)
    x = (centers[y] + rng.normal(0, 1, size=(n, 5))).astype(np.float32)
    return torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y, dtype=torch.int64))


def _model() -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.uniform_(-0.5, 0.5, generator=generator)
    return model


def _loaders(batch_size: int = 16):
    train = torch.utils.data.DataLoader(_data(0), batch_size=batch_size)  # fixed order
    vote = torch.utils.data.DataLoader(_data(1, 40), batch_size=batch_size)
    test = torch.utils.data.DataLoader(_data(2, 40), batch_size=batch_size)
    return train, vote, test


def _learner(**kwargs) -> PytorchLearner:
    model = _model()
    train, vote, test = _loaders()
    kwargs.setdefault("criterion", nn.CrossEntropyLoss())
    return PytorchLearner(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=0.05),
                          train_loader=train, vote_loader=vote, test_loader=test,
                          num_threads=1, **kwargs)


def _equal(a, b) -> bool:
    return list(a) == list(b) and all(
        np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


def test_one_class_at_colearns_path():
    assert compat_learner.PytorchLearner is home.PytorchLearner


def test_constructor_parameters_are_colearns_then_keyword_only_extras():
    parameters = list(inspect.signature(PytorchLearner).parameters.values())
    head = parameters[:len(COLEARN_PARAMETERS)]
    assert [p.name for p in head] == [name for name, _ in COLEARN_PARAMETERS]
    for parameter, (_, default) in zip(head, COLEARN_PARAMETERS):
        assert parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        assert parameter.default == default
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY
               for p in parameters[len(COLEARN_PARAMETERS):])
    assert {"diff_priv_config", "test_criterion", "num_threads", "lr_scheduler", "dp_seed"} \
        <= {p.name for p in parameters[len(COLEARN_PARAMETERS):]}


def test_colearns_positional_call():
    model = _model()
    train, vote, test = _loaders()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    learner = PytorchLearner(model, optimizer, train, vote, test, False, torch.device("cpu"),
                             nn.CrossEntropyLoss(), False, categorical_accuracy, 2, 1)
    assert learner.need_reset_optimizer is False
    assert learner.device == torch.device("cpu")
    assert learner.minimise_criterion is False
    assert learner.vote_criterion is categorical_accuracy
    assert (learner.num_train_batches, learner.num_test_batches) == (2, 1)
    assert learner.vote_score == categorical_accuracy(model(next(iter(vote))[0]),
                                                      next(iter(vote))[1])
    with pytest.raises(TypeError, match="need_reset_optimizer"):
        # the old order (device sixth) now fails clearly instead of misreading it
        PytorchLearner(model, optimizer, train, vote, test, "cpu")


def test_optimizer_is_reset_before_each_training_by_default():
    learner = _learner()
    assert learner.need_reset_optimizer is True
    first, second = learner.mli_propose_weights(), learner.mli_propose_weights()
    # the same start, a fresh Adam and a fixed batch order: the same proposal, bitwise
    assert _equal(first.weights, second.weights)


def test_keeping_the_optimizer_state_is_an_option():
    learner = _learner(need_reset_optimizer=False)
    first, second = learner.mli_propose_weights(), learner.mli_propose_weights()
    assert not _equal(first.weights, second.weights)  # Adam's moments carried over
    learner.reset_optimizer()
    third, fourth = learner.mli_propose_weights(), learner.mli_propose_weights()
    assert _equal(first.weights, third.weights)
    assert _equal(second.weights, fourth.weights)


def test_reset_optimizer_clears_state_and_keeps_hyperparameters():
    learner = _learner(need_reset_optimizer=False)
    learner.train()
    assert len(learner.optimizer.state) > 0
    learner.reset_optimizer()
    assert len(learner.optimizer.state) == 0
    assert learner.optimizer.param_groups[0]["lr"] == 0.05
    learner.train()  # trains on from a fresh state
    assert len(learner.optimizer.state) > 0


def test_vote_criterion_is_called_as_colearn_calls_it():
    calls = []

    def spy(outputs, labels):
        calls.append((outputs, labels))
        return categorical_accuracy(outputs, labels)

    learner = _learner(vote_criterion=spy, minimise_criterion=False)
    outputs, labels = calls[0]
    assert isinstance(outputs, torch.Tensor) and isinstance(labels, torch.Tensor)
    assert outputs.shape == (40, 3) and labels.shape == (40,)  # the whole vote set
    assert labels.dtype == torch.int64
    assert learner.vote_score == categorical_accuracy(outputs, labels)


def test_a_torch_loss_as_vote_criterion_scores_as_the_mean_loss():
    by_loss = _learner(vote_criterion=nn.CrossEntropyLoss())
    by_criterion = _learner()
    assert isinstance(by_loss.vote_score, float)
    assert by_loss.vote_score == pytest.approx(by_criterion.vote_score, rel=1e-6)


def test_num_test_batches_limits_the_scored_batches():
    seen = []
    learner = _learner(vote_criterion=lambda o, l: seen.append(len(l)) or 0.0,
                       num_test_batches=2)
    assert seen == [32]  # 2 batches of 16 out of 40
    assert learner.test(learner.vote_loader) == 0.0


def test_weights_load_into_a_model_and_come_back_from_the_codec():
    learner = _learner()
    proposal = learner.mli_propose_weights()
    model = _model()
    model.load_state_dict(proposal.weights)  # colearn's form: a state_dict of tensors
    assert _equal(model.state_dict(), proposal.weights)
    model.load_state_dict(learner.mli_get_current_weights().weights)
    decoded = decode_weights(encode_weights(proposal.weights))  # numpy, as from a peer
    learner.set_weights(Weights(weights=decoded))
    current = learner.mli_get_current_weights().weights
    assert isinstance(current, OrderedDict)
    assert all(isinstance(t, torch.Tensor) for t in current.values())
    assert _equal(current, proposal.weights)


def test_set_weights_and_test_and_vote():
    learner = _learner(vote_criterion=categorical_accuracy, minimise_criterion=False)
    start = learner.vote_score
    proposal = learner.mli_propose_weights()
    learner.set_weights(proposal)
    assert learner.vote_score == start  # set_weights loads; it does not rescore
    assert _equal(learner.mli_get_current_weights().weights, proposal.weights)
    new_score = learner.test(learner.vote_loader)
    assert new_score == learner.mli_test_weights(proposal).vote_score
    assert learner.vote(new_score) is (new_score > start)
    assert learner.vote(start) is False
    learner.mli_accept_weights(proposal)
    assert learner.vote_score == new_score
    assert learner.test(learner.test_loader) == learner.mli_test_weights(proposal).test_score


def test_opacus_wrapped_model_and_optimizer_as_colearns_dp_example_passes_them():
    opacus = pytest.importorskip("opacus")
    model = _model()
    train, vote, test = _loaders()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # opacus: "Secure RNG turned off"
        engine = opacus.PrivacyEngine()
        model, optimizer, train = engine.make_private(
            module=model, optimizer=torch.optim.Adam(model.parameters(), lr=0.05),
            data_loader=train, noise_multiplier=1.0, max_grad_norm=1.0)
    learner = PytorchLearner(model=model, train_loader=train, vote_loader=vote,
                             test_loader=test, optimizer=optimizer,
                             criterion=nn.CrossEntropyLoss(), num_test_batches=1)
    model.train()
    model(torch.zeros(7, 5))  # a forward pass without backward, as torchsummary's
    proposal = learner.mli_propose_weights()
    assert len(optimizer.state) > 0
    learner.reset_optimizer()
    assert len(optimizer.state) == 0 and len(optimizer.original_optimizer.state) == 0
    assert learner.mli_test_weights(proposal).vote_score > 0


# --------------------------------------------------------------------------- utils


def test_categorical_accuracy():
    outputs = torch.tensor([[0.1, 2.0, 0.3], [5.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    assert categorical_accuracy(outputs, torch.tensor([1, 0, 1, 0])) == 0.75


def test_binary_accuracy_from_logits():
    logits = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]])
    labels = torch.tensor([[1.0], [1.0], [1.0], [0.0]])
    assert binary_accuracy_from_logits(logits, labels) == 0.75
    assert binary_accuracy_from_logits(torch.tensor([0.0]), torch.tensor([0.0])) == 1.0


def test_auc_from_logits_is_sklearns_on_the_sigmoid():
    logits = torch.tensor([[0.3], [-1.0], [2.0], [0.1], [-0.2]])
    labels = torch.tensor([[1.0], [0.0], [1.0], [0.0], [1.0]])
    expected = roc_auc_score([1, 0, 1, 0, 1], torch.sigmoid(logits).numpy())
    assert auc_from_logits(logits, labels) == pytest.approx(expected)
    with pytest.warns(UndefinedMetricWarning):  # one class: undefined, as in scikit-learn
        assert math.isnan(auc_from_logits(logits, torch.ones_like(labels)))


@pytest.mark.parametrize(("size", "n", "parts"), [
    (10, 3, [3, 3, 4]), (9, 3, [3, 3, 3]), (2, 3, [0, 0, 2]), (7, 1, [7]),
])
def test_prepare_data_split_list(size, n, parts):
    assert prepare_data_split_list(list(range(size)), n) == parts
    subsets = torch.utils.data.random_split(range(size), parts)
    assert sum(len(s) for s in subsets) == size

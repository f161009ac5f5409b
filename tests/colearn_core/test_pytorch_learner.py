"""PytorchLearner: the MLI guarantees, votes, determinism and the weights codec."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from learner_checks import (
    a_tested_proposal_votes_and_changes_nothing,
    accept_own_proposals,
    codec_round_trip,
    propose_leaves_the_learner_unchanged,
)
from torch import nn

from colearn_core.codec import WeightsFormatError, WeightsMismatchError
from colearn_core.learners.privacy import DiffPrivError
from colearn_core.learners.pytorch import PytorchLearner, evaluate_model
from colearn_core.ml_interface import ColearnModel, DiffPrivConfig, ModelFormat, Weights
from colearn_core.pytorch.utils import categorical_accuracy
from colearn_core.training import run_experiment, set_equal_weights


def _data(seed: int, n: int = 96, features: int = 6, classes: int = 3):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2, size=(classes, features))
    y = rng.integers(0, classes, size=n)
    x = (centers[y] + rng.normal(0, 1, size=(n, features))).astype(np.float32)
    return torch.tensor(x), torch.tensor(y, dtype=torch.int64)


def _loader(x, y, batch_size=16, shuffle=False, seed=0):
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    ds = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=gen)


def _model(seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5, generator=gen)
    return model


def make_learner(seed: int = 0, *, num_train_batches=2, **kwargs) -> PytorchLearner:
    x, y = _data(seed)
    xv, yv = _data(seed + 100, n=40)
    xt, yt = _data(seed + 200, n=40)
    model = _model()
    kwargs.setdefault("optimizer", torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    kwargs.setdefault("num_threads", 1)
    return PytorchLearner(
        model=model,
        train_loader=_loader(x, y, shuffle=True, seed=seed),
        vote_loader=_loader(xv, yv),
        test_loader=_loader(xt, yt),
        num_train_batches=num_train_batches,
        **kwargs,
    )


def _same(a: dict, b: dict) -> bool:
    """Same names, dtypes and values, whether tensors or numpy arrays."""
    return a.keys() == b.keys() and all(
        np.asarray(a[k]).dtype == np.asarray(b[k]).dtype
        and np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a
    )


def test_current_weights_are_an_ordered_dict_of_tensor_copies():
    learner = make_learner()
    w = learner.mli_get_current_weights()
    assert isinstance(w, Weights)
    assert isinstance(w.weights, OrderedDict)
    assert list(w.weights) == list(learner.model.state_dict())
    for name, tensor in w.weights.items():
        assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
        assert not tensor.requires_grad
        assert torch.equal(tensor, learner.model.state_dict()[name])
    # mutating the returned tensors does not touch the model
    before = learner.mli_get_current_weights().weights
    for tensor in w.weights.values():
        tensor += 1.0
    assert _same(before, learner.mli_get_current_weights().weights)


def test_propose_does_not_change_current_weights():
    propose_leaves_the_learner_unchanged(make_learner(), _same)


def test_test_weights_does_not_change_current_weights_and_votes():
    learner = make_learner()
    before = learner.mli_get_current_weights().weights
    proposal = Weights(weights={k: v + 0.5 for k, v in before.items()})
    a_tested_proposal_votes_and_changes_nothing(learner, proposal, _same)


def test_accept_changes_weights_and_refreshes_vote_score():
    learner = make_learner()
    for _ in range(3):
        learner.mli_accept_weights(learner.mli_propose_weights())
    proposal = learner.mli_propose_weights()
    tested = learner.mli_test_weights(proposal)
    learner.mli_accept_weights(proposal)
    assert _same(proposal.weights, learner.mli_get_current_weights().weights)
    assert learner.vote_score == pytest.approx(tested.vote_score)
    # the learner does not alias the accepted arrays
    for array in proposal.weights.values():
        array += 1.0
    assert not _same(proposal.weights, learner.mli_get_current_weights().weights)


def test_training_lowers_the_vote_loss_and_votes_follow():
    learner = make_learner(num_train_batches=6)
    start = learner.vote_score
    accept_own_proposals(learner, 5)
    assert learner.vote_score < start


def test_maximised_vote_criterion():
    learner = make_learner(vote_criterion=categorical_accuracy, minimise_criterion=False)
    assert 0.0 <= learner.vote_score <= 1.0
    worse = {k: torch.zeros_like(v) for k, v in learner.mli_get_current_weights().weights.items()}
    tested = learner.mli_test_weights(Weights(weights=worse))
    # all-zero weights give equal logits: argmax 0, so accuracy is class 0's share
    assert tested.vote == (tested.vote_score > learner.vote_score)
    assert 0.0 <= tested.test_score <= 1.0


def test_test_criterion_separates_test_score_from_vote_score():
    learner = make_learner(test_criterion=categorical_accuracy)
    tested = learner.mli_test_weights(learner.mli_get_current_weights())
    assert 0.0 <= tested.test_score <= 1.0
    assert tested.vote_score == pytest.approx(learner.vote_score)


def test_loss_score_is_exact_mean_over_samples():
    learner = make_learner()
    x = torch.cat([b[0] for b in learner.vote_loader])
    y = torch.cat([b[1] for b in learner.vote_loader])
    with torch.no_grad():
        expected = nn.functional.cross_entropy(learner.model(x), y).item()
    assert learner.vote_score == pytest.approx(expected, rel=1e-5)


def test_nan_proposal_is_rejected_not_accepted():
    learner = make_learner()
    bad = {k: torch.full_like(v, np.nan) for k, v in learner.mli_get_current_weights().weights.items()}
    assert learner.mli_test_weights(Weights(weights=bad)).vote is False
    with pytest.raises(WeightsMismatchError):
        learner.mli_accept_weights(Weights(weights=bad))


def test_wrong_weights_are_refused():
    learner = make_learner()
    current = learner.mli_get_current_weights().weights
    with pytest.raises(WeightsFormatError):
        learner.mli_accept_weights(Weights(weights=list(current.values())))
    missing = dict(current)
    missing.pop(next(iter(missing)))
    with pytest.raises(WeightsMismatchError):
        learner.mli_test_weights(Weights(weights=missing))
    for convert in (lambda v: v, lambda v: v.numpy()):  # tensors, and arrays as decoded
        wrong_dtype = {k: convert(v.double()) for k, v in current.items()}
        with pytest.raises(WeightsMismatchError):
            learner.mli_accept_weights(Weights(weights=wrong_dtype))
        wrong_shape = {k: convert(torch.zeros((1, *v.shape))) for k, v in current.items()}
        with pytest.raises(WeightsMismatchError):
            learner.set_weights(Weights(weights=wrong_shape))
    assert _same(current, learner.mli_get_current_weights().weights)


def test_accepts_numpy_arrays():
    learner = make_learner()
    target = {k: np.full(v.shape, 0.25, np.float32) for k, v in learner.model.state_dict().items()}
    learner.mli_accept_weights(Weights(weights=target))
    for tensor in learner.mli_get_current_weights().weights.values():
        assert bool(torch.all(tensor == 0.25))


def test_weights_round_trip_through_codec_bitwise():
    other = make_learner(seed=1)
    decoded = codec_round_trip(make_learner(), other, _same)
    assert all(isinstance(v, np.ndarray) for v in decoded.values())  # tensors in, arrays out
    assert all(isinstance(v, torch.Tensor) for v in other.mli_get_current_weights().weights.values())


def test_determinism_same_calls_same_bits():
    def run():
        learners = [make_learner(seed=s) for s in range(3)]
        set_equal_weights(learners)
        results = run_experiment(learners, n_rounds=6, vote_threshold=0.5)
        return results.decisions(), [lr.mli_get_current_weights().weights for lr in learners]

    torch.manual_seed(123)
    d1, w1 = run()
    torch.manual_seed(456)  # the global generator must not matter
    torch.rand(10)
    d2, w2 = run()
    assert d1 == d2
    assert all(_same(a, b) for a, b in zip(w1, w2, strict=True))
    assert all(_same(w1[0], w) for w in w1[1:])  # all learners hold the same model


def test_num_train_batches_cycles_and_none_is_one_pass():
    learner = make_learner(num_train_batches=None)
    calls = []
    original = learner.model.forward

    def counting(x):
        calls.append(len(x))
        return original(x)

    learner.model.forward = counting
    learner.mli_propose_weights()
    assert sum(calls) == 96  # one pass over the 96 training samples
    calls.clear()
    learner.num_train_batches = 15  # more than an epoch (6 batches): cycles on
    learner.mli_propose_weights()
    assert len(calls) == 15


def test_evaluate_leaves_weights_alone():
    learner = make_learner()
    before = learner.mli_get_current_weights().weights
    zeros = {k: torch.zeros_like(v) for k, v in before.items()}
    acc = learner.evaluate(Weights(weights=zeros), learner.test_loader, categorical_accuracy)
    assert 0.0 <= acc <= 1.0
    assert _same(before, learner.mli_get_current_weights().weights)
    loss = learner.evaluate(zeros, learner.test_loader)
    assert loss == pytest.approx(np.log(3), rel=1e-5)  # equal logits over 3 classes
    assert evaluate_model(learner.model, learner.vote_loader, criterion=nn.CrossEntropyLoss()) \
        == pytest.approx(learner.vote_score)


def test_current_model_without_onnx_is_the_weights_dict():
    learner = make_learner()
    model = learner.mli_get_current_model()
    assert isinstance(model, ColearnModel)
    if model.model_format is ModelFormat.PICKLE_WEIGHTS_ONLY:
        assert _same(model.model, learner.mli_get_current_weights().weights)
    else:
        assert model.model_format is ModelFormat.ONNX


def test_no_test_loader_scores_zero_and_diff_priv_needs_a_dataloader():
    learner = make_learner()
    learner.test_loader = None
    assert learner.mli_test_weights(learner.mli_get_current_weights()).test_score == 0.0
    dp = DiffPrivConfig(target_epsilon=1, target_delta=1e-5, max_grad_norm=1, noise_multiplier=1)
    x, y = _data(0)
    model = _model()
    with pytest.raises(DiffPrivError, match="DataLoader"):
        PytorchLearner(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                       train_loader=list(zip(x.split(16), y.split(16))),
                       vote_loader=learner.vote_loader, diff_priv_config=dp)


def test_num_threads_is_set_during_calls_and_restored():
    seen = []
    learner = make_learner(num_threads=1)
    original = learner.model.forward

    def spy(x):
        seen.append(torch.get_num_threads())
        return original(x)

    learner.model.forward = spy
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        learner.mli_accept_weights(learner.mli_propose_weights())
        learner.mli_test_weights(learner.mli_get_current_weights())
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}

"""PytorchLearner's weights without copies: a tested proposal is swapped into the model
(sharing the decoded arrays' memory) and swapped out again, however the test ends; an
accepted one is copied in once; read-only proposals raise no warning."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn

from colearn_core.codec import decode_weights, encode_weights
from colearn_core.learners.pytorch import PytorchLearner
from colearn_core.ml_interface import Weights


def _loader(seed: int, n: int = 32, features: int = 6):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=generator)
    y = torch.randint(0, 3, (n,), generator=generator)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)


def _learner(model: nn.Module | None = None, **kwargs) -> PytorchLearner:
    if model is None:
        model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    torch.manual_seed(0)
    return PytorchLearner(model, torch.optim.SGD(model.parameters(), lr=0.1), _loader(0),
                          _loader(1), _loader(2), num_threads=1, **kwargs)


def _decoded_proposal(learner: PytorchLearner) -> dict[str, np.ndarray]:
    """A different model's weights as a voter gets them: read-only views of the bytes."""
    weights = learner.mli_get_current_weights().weights
    for tensor in weights.values():
        if tensor.is_floating_point():
            tensor.add_(0.5)
    decoded = decode_weights(encode_weights(weights))
    assert isinstance(decoded, dict)
    assert not any(array.flags.writeable for array in decoded.values())
    return decoded


def _own_state(learner: PytorchLearner) -> dict[str, tuple[int, np.ndarray]]:
    """Each of the model's tensors: where its memory is, and a copy of its values."""
    return {name: (tensor.data_ptr(), tensor.detach().numpy().copy())
            for name, tensor in learner.model.state_dict().items()}


def _assert_unchanged(learner: PytorchLearner, before: dict[str, tuple[int, np.ndarray]]):
    after = _own_state(learner)
    assert after.keys() == before.keys()
    for name, (pointer, values) in before.items():
        assert after[name][0] == pointer, f"{name} is not the model's own tensor any more"
        assert after[name][1].tobytes() == values.tobytes(), f"{name} changed"


@pytest.mark.filterwarnings("error::UserWarning")
def test_a_tested_proposal_is_swapped_in_without_a_copy_and_swapped_out():
    learner = _learner()
    proposal = _decoded_proposal(learner)
    before = _own_state(learner)
    seen: dict[str, bool] = {}

    def look(module: nn.Module, args: object) -> None:  # during the test's forward passes
        for name, tensor in learner.model.state_dict().items():
            seen[name] = np.shares_memory(tensor.numpy(), proposal[name])

    hook = learner.model.register_forward_pre_hook(look)
    try:
        tested = learner.mli_test_weights(Weights(weights=proposal))
    finally:
        hook.remove()
    assert seen and all(seen.values()), seen  # parameters and buffers: the decoded arrays
    _assert_unchanged(learner, before)
    alone = _learner()
    alone.set_weights(proposal)
    assert tested.vote_score == alone.test(alone.vote_loader)  # it scored the proposal


def test_the_model_gets_its_own_tensors_back_when_the_test_raises():
    learner = _learner()
    proposal = _decoded_proposal(learner)
    before = _own_state(learner)

    def fail(module: nn.Module, args: object) -> None:
        raise RuntimeError("scoring failed")

    hook = learner.model[3].register_forward_pre_hook(fail)  # after the first layers ran
    with pytest.raises(RuntimeError, match="scoring failed"):
        learner.mli_test_weights(Weights(weights=proposal))
    _assert_unchanged(learner, before)
    with pytest.raises(RuntimeError, match="scoring failed"):
        learner.evaluate(proposal, learner.vote_loader)  # the same swap
    _assert_unchanged(learner, before)
    hook.remove()


@pytest.mark.filterwarnings("error::UserWarning")
def test_a_read_only_proposal_is_accepted_as_one_copy_into_the_model():
    learner = _learner()
    proposal = _decoded_proposal(learner)
    pointers = {name: tensor.data_ptr() for name, tensor in learner.model.state_dict().items()}
    learner.mli_accept_weights(Weights(weights=proposal))
    for name, tensor in learner.model.state_dict().items():
        assert tensor.data_ptr() == pointers[name]  # copied into the model's own memory
        assert not np.shares_memory(tensor.numpy(), proposal[name])
        assert tensor.numpy().tobytes() == proposal[name].tobytes()


class _Tied(nn.Module):
    """Input and output embeddings tied: one parameter under two names."""

    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Linear(6, 6, bias=False)
        self.decode = nn.Linear(6, 6, bias=False)
        self.decode.weight = self.encode.weight
        self.out = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.decode(torch.relu(self.encode(x)))))


def test_tied_weights_are_swapped_once_and_proposed_under_both_names():
    learner = _learner(_Tied())
    values = {name: tensor.clone() for name, tensor in learner.model.state_dict().items()}
    proposal = learner.mli_propose_weights().weights
    # the model's values are back (in the saved copy's memory: swapped, not copied)
    assert all(torch.equal(t, values[name]) for name, t in learner.model.state_dict().items())
    assert proposal["encode.weight"] is proposal["decode.weight"]
    assert not torch.equal(proposal["encode.weight"], learner.model.encode.weight)
    before = _own_state(learner)
    learner.mli_test_weights(Weights(weights=_decoded_proposal(learner)))
    _assert_unchanged(learner, before)
    assert learner.model.encode.weight is learner.model.decode.weight

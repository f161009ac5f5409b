"""PytorchLearner.mli_get_current_model as ONNX: onnxruntime gives the torch model's
predictions for any batch size, for the digits MLP, the MNIST example's CNN and a DP
learner (whose export is the plain model, not opacus' wrapper)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from colearn_core.learners.pytorch import PytorchLearner
from colearn_core.ml_interface import ModelFormat
from colearn_core.tasks.datasets import load_dataset
from colearn_core.tasks.digits import DigitsConfig
from colearn_core.tasks.digits_torch import make_digits_learners

BATCH_SIZES = (1, 37, 200)  # none equals the export batch (the vote loader's first)


def _onnx_matches_torch(learner: PytorchLearner, x: np.ndarray) -> float:
    """Largest absolute difference between onnxruntime and torch over BATCH_SIZES."""
    model = learner.mli_get_current_model()
    assert model.model_format is ModelFormat.ONNX
    onnx.checker.check_model(model.model)
    assert [i.name for i in model.model.graph.input] == ["input"]
    batch_dim = model.model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param == "batch"  # dynamic, not the export batch's size
    session = ort.InferenceSession(model.model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    worst = 0.0
    learner.model.eval()
    for size in BATCH_SIZES:
        batch = np.ascontiguousarray(x[:size], dtype=np.float32)
        (got,) = session.run(["output"], {"input": batch})
        with torch.no_grad():
            expected = learner.model(torch.from_numpy(batch.copy())).numpy()
        assert got.shape == expected.shape == (size, 10)
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def _trained(learner: PytorchLearner) -> PytorchLearner:
    learner.mli_accept_weights(learner.mli_propose_weights())
    return learner


def test_digits_mlp_exports_to_onnx_with_torchs_predictions():
    learner = _trained(make_digits_learners(config=DigitsConfig(n_learners=2))[0])
    before = learner.mli_get_current_weights().weights
    x = load_dataset("digits").x
    assert _onnx_matches_torch(learner, x) < 1e-4
    after = learner.mli_get_current_weights().weights
    assert all(np.array_equal(before[k], after[k]) for k in before)  # export changes nothing


def test_mnist_example_cnn_exports_to_onnx_with_torchs_predictions():
    from colearn_core.examples import mnist_images
    from colearn_core.examples.pytorch_mnist import learner

    cnn = _trained(learner(0, n_learners=3))
    assert _onnx_matches_torch(cnn, mnist_images().x) < 1e-4


def test_the_onnx_model_is_the_current_model():
    first, second = make_digits_learners(config=DigitsConfig(n_learners=2))
    x = load_dataset("digits").x
    old = first.mli_get_current_model().model.SerializeToString()
    first.mli_accept_weights(_trained(second).mli_get_current_weights())
    new = first.mli_get_current_model().model
    assert new.SerializeToString() != old
    (got,) = ort.InferenceSession(new.SerializeToString(), providers=["CPUExecutionProvider"]) \
        .run(["output"], {"input": x[:50]})
    with torch.no_grad():
        expected = second.model(torch.from_numpy(x[:50].copy())).numpy()
    assert np.abs(got - expected).max() < 1e-4


def test_a_dp_learner_exports_the_unwrapped_model():
    pytest.importorskip("opacus")
    from colearn_core.examples import mnist_images
    from colearn_core.examples.pytorch_mnist import learner

    private = _trained(learner(1, n_learners=3, dp_epsilon=50.0))
    assert private.dp_epsilon > 0
    model = private.mli_get_current_model().model
    names = {init.name for init in model.graph.initializer}
    assert not any("_module" in name for name in names)  # opacus' wrapper is not exported
    assert {"conv1.weight", "conv2.weight", "fc.weight"} <= names
    assert _onnx_matches_torch(private, mnist_images().x) < 1e-4

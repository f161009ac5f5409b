"""colearn's MLI factory, registry and demo helpers: names, signatures, JSON-string
parameters merged over the defaults, and clear errors."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import pytest

from colearn_core.grpc.example_mli_factory import ExampleMliFactory
from colearn_core.grpc.factory_registry import FactoryRegistry, RegistryException
from colearn_core.grpc.mli_factory_interface import MliFactory
from colearn_core.ml_interface import MachineLearningInterface
from colearn_core.other.demo_utils import get_score_name, get_split_to_folders


@pytest.fixture(autouse=True)
def empty_registry(monkeypatch):
    """A registry of this test's own (the real one is process-wide)."""
    monkeypatch.setattr(FactoryRegistry, "dataloaders", {})
    monkeypatch.setattr(FactoryRegistry, "model_architectures", {})


class Learner(MachineLearningInterface):
    def __init__(self, data: tuple, **config: Any) -> None:
        self.data, self.config = data, config

    def mli_propose_weights(self): ...
    def mli_test_weights(self, weights): ...
    def mli_accept_weights(self, weights): ...
    def mli_get_current_weights(self): ...
    def mli_get_current_model(self): ...


def register() -> None:
    @FactoryRegistry.register_dataloader("TOY")
    def prepare_toy(location: str, train_ratio: float = 0.8, seed: int | None = None) -> tuple:
        return (location, train_ratio, seed)

    @FactoryRegistry.register_model_architecture("TOY_MODEL", ["TOY"])
    def prepare_model(data_loaders: tuple, learning_rate: float = 0.001,
                      layers: tuple = (8, 8)) -> MachineLearningInterface:
        return Learner(data_loaders, learning_rate=learning_rate, layers=layers)


def test_the_interface_has_colearns_abstract_methods_and_signatures() -> None:
    assert MliFactory.__abstractmethods__ == {
        "get_models", "get_dataloaders", "get_compatibilities", "get_mli"}
    assert list(inspect.signature(MliFactory.get_mli).parameters) == [
        "self", "model_name", "model_params", "dataloader_name", "dataset_params"]
    assert issubclass(ExampleMliFactory, MliFactory)


def test_registered_defaults_compatibilities_and_copies() -> None:
    register()
    factory = ExampleMliFactory()
    assert factory.get_models() == {"TOY_MODEL": {"learning_rate": 0.001, "layers": (8, 8)}}
    assert factory.get_dataloaders() == {"TOY": {"train_ratio": 0.8, "seed": None}}
    assert factory.get_compatibilities() == {"TOY_MODEL": ["TOY"]}
    factory.get_models()["TOY_MODEL"]["learning_rate"] = 1.0  # a copy
    assert factory.get_models()["TOY_MODEL"]["learning_rate"] == 0.001
    assert FactoryRegistry.dataloaders["TOY"].default_parameters == {"train_ratio": 0.8,
                                                                     "seed": None}


def test_get_mli_merges_json_strings_over_the_defaults(caplog) -> None:
    register()
    with caplog.at_level(logging.WARNING):
        learner = ExampleMliFactory().get_mli(
            "TOY_MODEL", '{"learning_rate": 0.1, "unknown": 1}', "TOY",
            '{"location": "/data", "seed": 3}')
    assert isinstance(learner, Learner)
    assert learner.data == ("/data", 0.8, 3)
    assert learner.config == {"learning_rate": 0.1, "layers": (8, 8)}
    assert any("unknown" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("args, message", [
    (("NOPE", "{}", "TOY", "{}"), "Model NOPE is not a valid model"),
    (("TOY_MODEL", "{}", "NOPE", "{}"), "Dataloader NOPE is not a valid dataloader"),
    (("TOY_MODEL", "{bad", "TOY", '{"location": ""}'), "model TOY_MODEL are not JSON"),
    (("TOY_MODEL", "{}", "TOY", "[1]"), "a JSON list, not an object"),
])
def test_get_mli_refuses_names_and_params_clearly(args, message) -> None:
    register()
    with pytest.raises(ValueError, match=message):
        ExampleMliFactory().get_mli(*args)


def test_incompatible_dataloader() -> None:
    register()

    @FactoryRegistry.register_dataloader("OTHER")
    def prepare_other(location: str) -> tuple:
        return ()

    with pytest.raises(ValueError, match="OTHER is not compatible with TOY_MODEL"):
        ExampleMliFactory().get_mli("TOY_MODEL", "{}", "OTHER", "{}")


def test_registry_checks_what_it_is_given(caplog) -> None:
    register()
    with pytest.raises(RegistryException, match="'location'"):
        FactoryRegistry.register_dataloader("BAD")(lambda path: None)
    with pytest.raises(RegistryException, match="'data_loaders'"):
        FactoryRegistry.register_model_architecture("BAD", ["TOY"])(lambda data: None)
    with pytest.raises(RegistryException, match="MISSING is not registered"):
        FactoryRegistry.register_model_architecture("BAD", ["MISSING"])(
            lambda data_loaders: None)

    def wrong_type(data_loaders: list) -> Learner: ...

    with pytest.raises(RegistryException, match="return type"):
        FactoryRegistry.register_model_architecture("BAD", ["TOY"])(wrong_type)
    with caplog.at_level(logging.WARNING):
        register()  # the same names again: replaced, with a warning
    assert any("already registered" in r.getMessage() for r in caplog.records)


def test_demo_utils() -> None:
    assert get_score_name("PYTORCH_XRAY") == "auc"
    assert get_score_name("KERAS_MNIST") == "categorical_accuracy"
    assert get_score_name("FRAUD") == "accuracy"
    assert get_score_name("ANYTHING") == "loss"
    with pytest.raises(NotImplementedError, match="NOPE"):
        get_split_to_folders("NOPE")

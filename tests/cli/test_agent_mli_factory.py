"""``colearn agent --mli-factory`` and ``colearn mli-factory``: a colearn MLI factory
(a class or an importable instance) lists what it offers, and names or parameters it
does not offer are one-line errors before anything touches the chain."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("sklearn")

from cli_runner import run_colearn

from agents.chain.network import dev_keys
from agents.devtools.anvil import find_free_port

UNREACHABLE = f"http://127.0.0.1:{find_free_port()}"
CONTRACT = "0x" + "11" * 20
DEV_KEY = {"COLEARN_PRIVATE_KEY": dev_keys(1)[0][1]}
FACTORY = "opaque_learners:OpaqueFactory"


def run(*argv: str) -> tuple[int, str, str]:
    return run_colearn(*argv, env=DEV_KEY)


def agent(*extra: str) -> tuple[int, str, str]:
    return run("agent", "--rpc", UNREACHABLE, "--contract", CONTRACT, "--experiment=1",
               "--store", "file:unused", *extra)


@pytest.mark.parametrize("target", [FACTORY, "opaque_learners:FACTORY"])
def test_listing_what_a_factory_offers(target) -> None:
    status, out, err = run("mli-factory", target)
    assert status == 0, err
    offered = json.loads(out)
    assert offered["models"]["XGBOOST"] == {"n_steps_per_round": 2, "seed": 0}
    assert offered["models"]["BYTES_LINEAR"] == {"learning_rate": 0.5, "steps": 20}
    assert offered["dataloaders"]["DIABETES"] == {"location": "", "index": 0,
                                                  "n_learners": 3, "seed": 0}
    assert offered["compatibilities"]["XGBOOST"] == ["DIABETES"]


def assert_one_line(status: int, err: str, expected: int, message: str) -> None:
    assert "Traceback" not in err, err
    assert status == expected, err
    assert message in err.strip().splitlines()[-1], err


@pytest.mark.parametrize("argv, status, message", [
    (["--mli-factory", "no_such_module_xyz:F", "--model", "X"], 1,
     "cannot import the MLI factory's module 'no_such_module_xyz'"),
    (["--mli-factory", "opaque_learners:nothing", "--model", "X"], 1,
     "module 'opaque_learners' has no attribute 'nothing'"),
    (["--mli-factory", "opaque_learners:bytes_learner", "--model", "X"], 1,
     "is a function, not an MLI factory (it has no get_models, get_dataloaders"),
    (["--mli-factory", FACTORY], 1, "--mli-factory needs --model: one of XGBOOST"),
    (["--mli-factory", FACTORY, "--model", "XGB"], 1,
     "has no model 'XGB': one of XGBOOST, BYTES_LINEAR"),
    (["--mli-factory", FACTORY, "--model", "XGBOOST", "--dataloader", "MNIST"], 1,
     "has no dataloader 'MNIST': one of DIABETES"),
    (["--mli-factory", FACTORY, "--model", "XGBOOST", "--model-params", "{depth: 3}"], 1,
     "--model-params is not valid JSON"),
    (["--mli-factory", FACTORY, "--model", "XGBOOST", "--dataset-params", "[1, 2]"], 1,
     "--dataset-params must be a JSON object, not a JSON list"),
    (["--mli-factory", FACTORY, "--model", "XGBOOST", "--dataset-params",
      "[" * 100_000], 1, "--dataset-params is not valid JSON"),
    (["--mli-factory", FACTORY, "--model", "XGBOOST", "--learner-arg", "index=1"], 1,
     "--learner-arg goes with --learner"),
    (["--learner", "opaque_learners:bytes_learner", "--model", "XGBOOST"], 1,
     "--model go with --mli-factory, not --learner"),
    (["--learner", "opaque_learners:bytes_learner", "--mli-factory", FACTORY], 2,
     "not allowed with argument"),
    (["--model", "XGBOOST"], 2, "one of the arguments --learner --mli-factory is required"),
])
def test_bad_factory_input_is_one_line(argv, status, message) -> None:
    got, _, err = agent(*argv)
    assert_one_line(got, err, status, message)


def test_a_good_factory_gets_as_far_as_the_chain() -> None:
    status, _, err = agent("--mli-factory", FACTORY, "--model", "BYTES_LINEAR",
                           "--model-params", '{"steps": 5}',
                           "--dataset-params", '{"index": 1}')
    assert_one_line(status, err, 1, "127.0.0.1")  # checked, then the chain is unreachable


def test_get_mli_receives_the_json_strings_as_given(monkeypatch) -> None:
    from opaque_learners import FACTORY as INSTANCE

    from agents.experiment.mli_factory import MliFactorySpec

    calls = []
    original = INSTANCE.get_mli
    monkeypatch.setattr(INSTANCE, "get_mli", lambda *args: calls.append(args) or original(*args))
    spec = MliFactorySpec(target="opaque_learners:FACTORY", model="BYTES_LINEAR",
                          model_params='{"steps":  5}', dataset_params='{"index": 2}')
    learner = spec.build()
    assert calls == [("BYTES_LINEAR", '{"steps":  5}', "DIABETES", '{"index": 2}')]
    assert learner.steps == 5

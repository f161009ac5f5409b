"""``colearn example NAME``: each of colearn's examples runs from the command line, in
memory and on chain, with the same decisions both ways."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from agents.cli.main import main
from agents.demo.examples import run_example
from colearn_core.examples import EXAMPLES

FAST = ["pytorch-mnist", "sgd-fraud", "random-forest-iris"]


@pytest.mark.parametrize("name", FAST + [pytest.param("keras-mnist", marks=pytest.mark.slow)])
def test_example_runs_in_memory_and_on_chain_alike(name: str) -> None:
    if name == "keras-mnist":
        pytest.importorskip("keras")
    in_memory = run_example(name, n_learners=3, n_rounds=3)
    on_chain = run_example(name, n_learners=3, n_rounds=3, on_chain=True)
    assert on_chain.decisions == in_memory.decisions
    assert on_chain.final_score == pytest.approx(in_memory.final_score, abs=1e-6)
    assert any(on_chain.decisions) and on_chain.final_score > on_chain.initial_score
    assert on_chain.total_gas and on_chain.total_gas > 0


def test_cli_prints_rounds_and_the_final_score(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["example", "random-forest-iris", "--learners", "3", "--rounds", "2",
                 "--on-chain"]) == 0
    out = capsys.readouterr().out
    assert "round   0 · proposer 0" in out and "round   1 · proposer 1" in out
    assert "final global test accuracy" in out and "gas" in out


def test_missing_mnist_files_are_a_one_line_error(tmp_path, capsys) -> None:
    assert main(["example", "pytorch-mnist", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "train-images-idx3-ubyte" in err and "Traceback" not in err


def test_every_registered_example_has_build_and_a_factory() -> None:
    import importlib

    for name, module in EXAMPLES.items():
        if name == "keras-mnist" and importlib.util.find_spec("keras") is None:
            continue
        loaded = importlib.import_module(module)
        assert callable(loaded.build) and callable(loaded.learner), name


def test_cifar10_example_on_files_in_cifars_binary_format(tmp_path) -> None:
    import numpy as np

    from colearn_core.tasks.datasets import CIFAR10_FILES

    rng = np.random.default_rng(0)
    for name in CIFAR10_FILES:  # 60 images a file, each class a colour of its own
        labels = rng.integers(0, 10, size=60).astype(np.uint8)
        images = rng.integers(0, 60, size=(60, 3, 32, 32))
        images[:, 0] += (labels * 19)[:, None, None]
        images[:, 2] += ((9 - labels) * 19)[:, None, None]
        records = np.concatenate([labels[:, None], images.reshape(60, -1)], axis=1)
        (tmp_path / name).write_bytes(records.astype(np.uint8).tobytes())
    in_memory = run_example("pytorch-cifar10", n_learners=3, n_rounds=3, data_dir=tmp_path)
    on_chain = run_example("pytorch-cifar10", n_learners=3, n_rounds=3, data_dir=tmp_path,
                           on_chain=True)
    assert on_chain.decisions == in_memory.decisions
    assert on_chain.final_score == pytest.approx(in_memory.final_score, abs=1e-6)
    assert on_chain.final_score > on_chain.initial_score + 0.2


def test_cifar10_example_without_data_is_a_one_line_error(capsys) -> None:
    assert main(["example", "pytorch-cifar10"]) == 1
    assert "needs the data" in capsys.readouterr().err

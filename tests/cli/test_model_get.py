"""The newcomer's path end to end on anvil: ``colearn experiment init``'s spec created
unedited, three agents run to the end, ``colearn experiment status``, then ``colearn model
get`` (the final model, a round's proposal, a tampered and a missing blob, ``--onnx``) and
the README's snippets loading the result in numpy, torch, Keras, scikit-learn and
onnxruntime."""

from __future__ import annotations

import hashlib
import json
import os
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_colearn
from eth_account import Account

from agents.agent.learner_agent import LearnerAgent, run_in_process
from agents.agent.settings import AgentSettings
from agents.chain.client import CollectiveLearningClient
from agents.chain.logs import WeightsProposed
from agents.chain.network import connect, dev_keys
from agents.experiment.model import ModelRef, fetch_model, model_cid
from agents.storage.store import FileWeightStore, open_store
from colearn_core.codec import encode_weights
from colearn_core.ml_interface import ColearnModel, ModelFormat
from colearn_core.tasks.factories import digits_learner

HERE = __name__
FACTORY = "colearn_core.tasks.factories:digits_learner"

def run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return run_colearn(*argv, env={"COLUMNS": "200", **(env or {})})


def assert_one_line(status: int, err: str, expected_status: int, message: str) -> None:
    assert "Traceback" not in err, err
    assert status == expected_status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in " ".join(lines), err


def no_onnx_learner(index: int = 0, n_learners: int = 3):
    """A digits learner whose mli_get_current_model() gives the weights only."""
    learner = digits_learner(index, n_learners)
    learner.mli_get_current_model = lambda: ColearnModel(
        model_format=ModelFormat.PICKLE_WEIGHTS_ONLY, model=learner.mli_get_current_weights())
    return learner


@pytest.fixture(scope="module")
def finished(anvil_process, tmp_path_factory):
    """An experiment created from `colearn experiment init`'s spec, unedited, and run to
    the end by three in-process agents (the dev chain's accounts 1..3) on a file store."""
    tmp = tmp_path_factory.mktemp("model-get")
    url = anvil_process.url
    keys = [key for _, key in dev_keys(4)]
    creator = {"COLEARN_PRIVATE_KEY": keys[0]}
    status, _, err = run("experiment", "init", "--out", str(tmp / "experiment.toml"))
    assert status == 0, err
    status, out, err = run("deploy", "--rpc", url, env=creator)
    assert status == 0, err
    contract = out.strip()
    store_url = f"file:{tmp / 'store'}"
    status, out, err = run("experiment", "create", "--rpc", url, "--contract", contract,
                           "--spec", str(tmp / "experiment.toml"), "--store", store_url,
                           env=creator)
    assert status == 0, err
    experiment_id = int(out.strip())
    client = CollectiveLearningClient(connect(url), contract)
    store = open_store(store_url)
    agents = [LearnerAgent(client.with_account(Account.from_key(key)), store,
                           digits_learner(i, 3), experiment_id,
                           settings=AgentSettings(name=f"learner{i}", state_dir=tmp / "state"))
              for i, key in enumerate(keys[1:])]
    run_in_process(agents)
    return {"url": url, "contract": contract, "id": experiment_id, "store": tmp / "store",
            "client": client, "agents": agents, "tmp": tmp}


def get(f, *extra: str, store: str | None = None) -> tuple[int, str, str]:
    return run("model", "get", "--rpc", f["url"], "--contract", f["contract"],
               "--experiment", str(f["id"]), "--store", store or str(f["store"]), *extra)


@pytest.mark.anvil
def test_status_of_the_finished_experiment(finished):
    f = finished
    status, out, err = run("experiment", "status", "--rpc", f["url"], "--contract",
                           f["contract"], "--experiment", str(f["id"]), "--json")
    assert status == 0, err
    data = json.loads(out)
    assert (data["state"], data["phase"], data["round"], data["num_rounds"]) == \
        ("COMPLETED", "complete", 3, 3)
    assert [x["address"] for x in data["learners"]] == [a for a, _ in dev_keys(4)[1:]]
    assert all(x["joined"] and x["balance"] > 0 and not x["late"] for x in data["learners"])
    digest, model_round = f["client"].current_model(f["id"])
    assert (data["model_digest"], data["model_round"]) == ("0x" + digest.hex(), model_round)
    status, out, err = run("experiment", "status", "--rpc", f["url"], "--contract",
                           f["contract"], "--experiment", str(f["id"]))
    assert status == 0, err
    assert "phase complete" in out and data["model_cid"] in out


@pytest.mark.anvil
def test_the_agents_summary_names_the_final_cid(finished):
    f = finished
    cid = model_cid(f["client"], f["id"], f["agents"][0].model_digest)
    _, out, _ = run("experiment", "status", "--rpc", f["url"], "--contract",
                    f["contract"], "--experiment", str(f["id"]), "--json")
    assert cid is not None and cid == json.loads(out)["model_cid"]
    assert model_cid(f["client"], f["id"], b"\0" * 32) is None


@pytest.mark.anvil
def test_get_the_final_model_and_load_it(finished, tmp_path):
    f = finished
    out_file = tmp_path / "model.safetensors"
    status, out, err = get(f, "--out", str(out_file))
    assert status == 0, err
    digest, _ = f["client"].current_model(f["id"])
    assert hashlib.sha256(out_file.read_bytes()).digest() == digest
    assert "verified" in out and ("final model" in out)
    namespace = run_snippet("PyTorch", tmp_path, model_file=out_file)
    x, y = held_out_digits()
    predicted = namespace["model"](x).argmax(dim=1).numpy()
    assert (predicted == y.numpy()).mean() > 0.5  # the digits model, trained together


@pytest.mark.anvil
def test_get_a_rounds_proposal(finished, tmp_path):
    f = finished
    out_file = tmp_path / "round1.safetensors"
    status, out, err = get(f, "--round", "1", "--out", str(out_file))
    assert status == 0, err
    proposal = f["client"].events(WeightsProposed, f["id"], 1)[0]
    assert hashlib.sha256(out_file.read_bytes()).digest() == proposal.digest
    assert "round 1's proposal" in out
    status, _, err = get(f, "--round", "7", "--out", str(tmp_path / "x"))
    assert_one_line(status, err, 1, "has no proposal in round 7 (proposals exist for rounds "
                                    "up to 2)")


@pytest.mark.anvil
def test_a_tampered_or_missing_blob_is_refused(finished, tmp_path):
    f = finished
    copy = tmp_path / "store"
    copy.mkdir()
    for blob in f["store"].iterdir():
        (copy / blob.name).write_bytes(blob.read_bytes())
    status, _, err = get(f, "--out", str(tmp_path / "m"), "--store", f"file:{copy}")
    assert status == 0, err
    cid = json.loads(run("experiment", "status", "--rpc", f["url"], "--contract", f["contract"],
                         "--experiment", str(f["id"]), "--json")[1])["model_cid"]
    blob = FileWeightStore(copy)._path(cid)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    status, _, err = get(f, "--out", str(tmp_path / "m2"), "--store", str(copy))
    assert_one_line(status, err, 1, "cannot fetch the final model")
    assert "refusing it" in err and not (tmp_path / "m2").exists()
    blob.unlink()
    status, _, err = get(f, "--out", str(tmp_path / "m3"), "--store", str(copy))
    assert_one_line(status, err, 1, f"content {cid} not found")
    assert not (tmp_path / "m3").exists()


def test_a_blob_whose_cid_holds_but_digest_does_not_is_refused(tmp_path):
    store = FileWeightStore(tmp_path)
    cid = store.put(b"not the model")
    ref = ModelRef(experiment_id=0, model_round=1, cid=cid, digest="0x" + "ab" * 32,
                   what="the final model", complete=True)
    with pytest.raises(ValueError, match="not the digest on chain 0xabab"):
        fetch_model(store, ref)


@pytest.mark.anvil
def test_onnx_export_through_the_digits_factory(finished, tmp_path):
    import onnxruntime

    f = finished
    weights, onnx_file = tmp_path / "model.safetensors", tmp_path / "model.onnx"
    status, out, err = get(f, "--out", str(weights), "--onnx", str(onnx_file), "--learner",
                           FACTORY, "--learner-arg", "index=0", "--learner-arg", "n_learners=3")
    assert status == 0, err
    assert f"wrote {onnx_file}" in out.replace("\n", "")
    x, _ = held_out_digits()
    namespace = run_snippet("onnxruntime, after --onnx", tmp_path, model_file=onnx_file,
                            given={"x": x.numpy()})
    torch_model = run_snippet("PyTorch", tmp_path, model_file=weights)["model"]
    assert np.array_equal(namespace["predicted"], torch_model(x).argmax(dim=1).numpy())
    assert onnxruntime.get_available_providers()


@pytest.mark.anvil
def test_onnx_export_errors_are_one_line(finished, tmp_path):
    f = finished
    status, _, err = get(f, "--out", str(tmp_path / "m"), "--onnx", str(tmp_path / "m.onnx"),
                         "--learner", f"{HERE}:no_onnx_learner")
    assert_one_line(status, err, 1, f"learner {HERE}:no_onnx_learner cannot export to ONNX: "
                                    "its mli_get_current_model() gives PICKLE_WEIGHTS_ONLY")
    status, _, err = get(f, "--out", str(tmp_path / "m"), "--onnx", str(tmp_path / "m.onnx"))
    assert_one_line(status, err, 1, "--onnx needs --learner MODULE:FACTORY")
    status, _, err = get(f, "--out", str(tmp_path / "m"), "--onnx", str(tmp_path / "m.onnx"),
                         "--learner", FACTORY)
    assert_one_line(status, err, 1, "missing a required argument: 'index'")


# ------------------------------------------------------------------ the README's snippets
# The tests run the README's own blocks (found by the label that ends their first line), with
# ``model.safetensors`` / ``model.onnx`` in the current directory: they cannot drift.

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_snippet(label: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (block,) = [b for b in blocks if b.splitlines()[0].rstrip().endswith(f"# {label}")]
    return block


def held_out_digits():
    from colearn_core.tasks.digits import DigitsConfig
    from colearn_core.tasks.digits_torch import global_test_loader

    return next(iter(global_test_loader(DigitsConfig())))


def run_snippet(label: str, where: Path, *, model_file: Path, given: dict | None = None) -> dict:
    """Runs the README snippet ``label`` in ``where`` with ``model_file`` as the file it
    names and the names in ``given`` defined (the snippet's "your inputs")."""
    code = readme_snippet(label)
    name = "model.onnx" if model_file.suffix == ".onnx" else "model.safetensors"
    target = where / name
    if model_file != target:
        target.write_bytes(model_file.read_bytes())
    namespace: dict = dict(given or {})
    cwd = Path.cwd()
    os.chdir(where)
    try:
        exec(compile(textwrap.dedent(code), f"<README {name}>", "exec"), namespace)  # noqa: S102
    finally:
        os.chdir(cwd)
    return namespace


def test_numpy_snippet(tmp_path, capsys):
    weights = {"hidden.weight": np.ones((2, 3), np.float32)}
    (tmp_path / "w.safetensors").write_bytes(encode_weights(weights))
    run_snippet("numpy", tmp_path, model_file=tmp_path / "w.safetensors")
    assert "hidden.weight (2, 3) float32" in capsys.readouterr().out


@pytest.mark.slow
def test_keras_snippet(tmp_path):
    from colearn_core.examples.keras_mnist import make_model

    trained = make_model(seed=7)
    (tmp_path / "w.safetensors").write_bytes(encode_weights(trained.get_weights()))
    namespace = run_snippet("Keras", tmp_path, model_file=tmp_path / "w.safetensors")
    for got, want in zip(namespace["model"].get_weights(), trained.get_weights()):
        assert np.array_equal(got, want)


def test_sklearn_snippet(tmp_path):
    from colearn_core.examples.sgd_fraud import learner as make_learner

    trained = make_learner(index=1, n_learners=2)
    trained.mli_accept_weights(trained.mli_propose_weights())
    weights = trained.mli_get_current_weights().weights
    (tmp_path / "w.safetensors").write_bytes(encode_weights(weights))
    namespace = run_snippet("scikit-learn, through its learner", tmp_path, model_file=tmp_path / "w.safetensors")
    estimator = namespace["estimator"]
    assert np.array_equal(estimator.coef_, trained.estimator.coef_)
    assert estimator.predict(trained.x_vote[:5]).shape == (5,)

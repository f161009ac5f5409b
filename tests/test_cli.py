"""The stakeholder commands end to end: account, chain, deploy, experiment, agent, store."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from agents.chain import CollectiveLearningClient, RoundState
from agents.demo import DemoConfig
from agents.devchain import AnvilProcess, dev_keys, find_free_port
from agents.keys import create_keystore, load_keystore
from agents.network import connect, fund_accounts
from agents.processes import run_process_demo
from colearn_core.codec import encode_weights
from colearn_core.tasks.factories import digits_learner

pytestmark = pytest.mark.anvil
ROOT = Path(__file__).resolve().parent.parent


def colearn(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agents.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_keystores_never_show_the_key(tmp_path):
    password = tmp_path / "password"
    password.write_text("correct horse\n")
    result = colearn("account", "new", "--keystore", str(tmp_path / "k.json"),
                     "--password-file", str(password))
    assert result.returncode == 0, result.stderr
    address = result.stdout.strip()
    account = load_keystore(tmp_path / "k.json", "correct horse")
    assert account.address == address
    assert account.key.hex().removeprefix("0x") not in (tmp_path / "k.json").read_text()
    again = colearn("account", "new", "--keystore", str(tmp_path / "k.json"),
                    "--password-file", str(password))
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr


def test_colearn_chain_serves_until_interrupted():
    port = find_free_port()
    process = subprocess.Popen([sys.executable, "-m", "agents.cli", "chain", "--port", str(port)],
                               stdout=subprocess.PIPE, text=True, cwd=ROOT,
                               env={**os.environ, "COLUMNS": "200"})
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        assert f"http://127.0.0.1:{port}" in lines[0]
        assert dev_keys(1)[0][0] in lines[2]
        assert connect(f"http://127.0.0.1:{port}").eth.chain_id == 31337
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    with pytest.raises(Exception):
        connect(f"http://127.0.0.1:{port}", timeout=2)


def test_deploy_create_and_run_agents_from_the_command_line(tmp_path):
    n = 2
    password = tmp_path / "password"
    password.write_text("pw")
    keystores = [tmp_path / f"learner{i}.json" for i in range(n)]
    addresses = [create_keystore(k, "pw") for k in keystores]
    initial = tmp_path / "initial.safetensors"
    initial.write_bytes(encode_weights(digits_learner(0, n).mli_get_current_weights().weights))
    spec = tmp_path / "experiment.toml"
    spec.write_text(f"""
learners = {json.dumps(addresses)}
threshold = 0.5
rounds = 2
proposal_timeout = 60
voting_timeout = 60

[initial]
weights = "initial.safetensors"

[metadata]
task = "digits"
""")
    store = f"file:{tmp_path / 'store'}"
    keys = ["--keystore", str(keystores[0]), "--password-file", str(password)]
    with AnvilProcess(block_time=1, mixed_mining=True) as anvil:
        fund_accounts(connect(anvil.url), addresses)
        deployed = colearn("deploy", "--rpc", anvil.url, *keys)
        assert deployed.returncode == 0, deployed.stderr
        contract = deployed.stdout.strip()
        created = colearn("experiment", "create", "--rpc", anvil.url, "--contract", contract,
                          "--spec", str(spec), "--store", store, *keys)
        assert created.returncode == 0, created.stderr
        experiment_id = int(created.stdout.strip())

        agents = [subprocess.Popen(
            [sys.executable, "-m", "agents.cli", "agent", "--rpc", anvil.url,
             "--contract", contract, "--experiment", str(experiment_id),
             "--keystore", str(k), "--password-file", str(password),
             "--learner", "colearn_core.tasks.factories:digits_learner",
             "--learner-arg", f"index={i}", "--learner-arg", f"n_learners={n}",
             "--store", store], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
            for i, k in enumerate(keystores)]
        outputs = [a.communicate(timeout=180) for a in agents]
        client = CollectiveLearningClient(connect(anvil.url), contract)
        assert client.state(experiment_id) == RoundState.COMPLETED
        digest, _ = client.current_model(experiment_id)
        created_event = client.experiment_created(experiment_id)
    assert created_event.initial_digest == hashlib.sha256(initial.read_bytes()).digest()
    secrets = [load_keystore(k, "pw").key.hex().removeprefix("0x") for k in keystores]
    for agent, (out, err) in zip(agents, outputs):
        assert not any(secret in out + err for secret in secrets)
        assert agent.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["model_digest"] == "0x" + digest.hex()


def test_store_add_and_get_verify(tmp_path):
    data = b"weights" * 1000
    source = tmp_path / "w.bin"
    source.write_bytes(data)
    store = f"file:{tmp_path / 'store'}"
    added = colearn("store", "add", str(source), "--store", store)
    assert added.returncode == 0, added.stderr
    cid = added.stdout.strip()
    fetched = colearn("store", "get", cid, "--store", store, "-o", str(tmp_path / "out.bin"))
    assert fetched.returncode == 0 and (tmp_path / "out.bin").read_bytes() == data
    (tmp_path / "store" / cid).write_bytes(b"tampered")
    tampered = colearn("store", "get", cid, "--store", store, "-o", str(tmp_path / "bad.bin"))
    assert tampered.returncode == 1 and "Traceback" not in tampered.stderr
    assert not (tmp_path / "bad.bin").exists()


@pytest.mark.parametrize("spec, message", [
    ("rounds = 1", "learners"),
    ("learners = ['0x1', '0x2']\nrounds = 1\n[initial]\nweights = 'w'", "not an Ethereum address"),
    ("this is not toml", "not valid TOML"),
])
def test_bad_specs_are_explained(tmp_path, spec, message):
    path = tmp_path / "spec.toml"
    path.write_text(spec)
    result = colearn("experiment", "create", "--rpc", "http://127.0.0.1:9", "--contract",
                     "0x" + "11" * 20, "--spec", str(path), "--store", "file:x",
                     env={"COLEARN_PRIVATE_KEY": dev_keys(1)[0][1]})
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert message in result.stderr


@pytest.mark.slow
@pytest.mark.ipfs
def test_process_demo(tmp_path):
    results = run_process_demo(DemoConfig(n_learners=3, n_rounds=3, out=tmp_path),
                               Console(quiet=True))
    assert len(results["rounds"]) == 3
    assert (tmp_path / "votes.png").exists()
    for i in range(3):
        assert "acting for learner" in (tmp_path / "logs" / f"learner{i}.log").read_text()

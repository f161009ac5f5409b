"""The stakeholder commands end to end: account, chain, deploy, experiment, agent, store;
and bad input of every kind, which must end as one line on stderr, never a traceback."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from cli_runner import run_colearn as run
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from agents.chain.client import CollectiveLearningClient
from agents.chain.keys import create_keystore, load_keystore
from agents.chain.network import connect, derive_accounts, dev_keys, fund_accounts
from agents.chain.types import RoundState
from agents.cli import main as cli
from agents.cli import options
from agents.cli import store as store_command
from agents.demo.embedded import DemoConfig
from agents.demo.processes import run_process_demo
from agents.devtools.anvil import AnvilProcess, find_free_port
from agents.storage.store import open_store
from colearn_core.codec import encode_weights
from colearn_core.tasks.factories import digits_learner

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.anvil
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
        assert process.wait(timeout=60) == 130  # 128 + SIGINT (agents._utils.shutdown)
    with pytest.raises(Exception):
        connect(f"http://127.0.0.1:{port}", timeout=2)


@pytest.mark.anvil
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

        # the first agent as a person starts it; the second with -v after the command
        agents = [subprocess.Popen(
            [sys.executable, "-m", "agents.cli", "agent", *(["-v"] if i else []),
             "--rpc", anvil.url,
             "--contract", contract, "--experiment", str(experiment_id),
             "--keystore", str(k), "--password-file", str(password),
             "--learner", "colearn_core.tasks.factories:digits_learner",
             "--learner-arg", f"index={i}", "--learner-arg", f"n_learners={n}",
             "--store", store], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "300"})
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
        (line,) = out.splitlines()  # stdout: the summary alone
        summary = json.loads(line)
        assert summary["model_digest"] == "0x" + digest.hex()
        assert open_store(store).get(summary["model_cid"]).sha256 == digest
    # Without -v: what the agent does, a plain line each, on stderr
    said = outputs[0][1].splitlines()
    assert said[0].startswith(f"ready: experiment {experiment_id} on contract {contract} ")
    assert f"learner {addresses[0]} is learner 0 of 2: proposes in rounds 0, votes in the " \
           f"others; store {store}" in said[0]
    assert said[-1] == f"experiment {experiment_id} complete; final model 0x{digest.hex()}"
    rounds = [line for line in said if line.startswith("round ")]
    assert rounds[0].startswith("round 0: proposer, proposed ")
    assert rounds[1].startswith("round 1: voter, voted ")
    assert all(line.endswith(("approve, 0 reject)", "approve, 1 reject)")) for line in rounds)
    assert "INFO" not in outputs[0][1]
    # -v after the command: the same lines, once, and the log
    logged = outputs[1][1]
    assert "INFO" in logged and "acting for learner 1 of experiment" in logged
    assert logged.count("ready: experiment") == 1
    assert f"\nexperiment {experiment_id} complete; final model 0x{digest.hex()}\n" in logged


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
@pytest.mark.anvil
@pytest.mark.ipfs
def test_process_demo(tmp_path):
    results = run_process_demo(DemoConfig(n_learners=3, n_rounds=3, out=tmp_path),
                               Console(quiet=True))
    assert len(results["rounds"]) == 3
    assert (tmp_path / "votes.png").exists()
    for i in range(3):
        assert "acting for learner" in (tmp_path / "logs" / f"learner{i}.log").read_text()


# ------------------------------------------------------------------- bad input: one line

UNREACHABLE = f"http://127.0.0.1:{find_free_port()}"  # nothing listens: refused at once
CONTRACT = "0x" + "11" * 20
DEV_KEY = {"COLEARN_PRIVATE_KEY": dev_keys(1)[0][1]}
# This module, as the CLI imports a learner factory (pytest puts tests/ on sys.path).
HERE = __name__
NOT_CALLABLE = 42


def signature_factory(index: int, n_learners: int = 2, *, scale: float = 1.0):
    """A factory for the argument checks: they refuse bad arguments before any call."""
    raise AssertionError("the argument checks never call the factory")


def failing_factory(index: int = 0, *, scale: float = 1.0):
    raise RuntimeError(f"no data for learner {index} at /data/private")


def agent_argv(*extra: str, experiment: str = "1",
               learner: str = f"{HERE}:signature_factory") -> list[str]:
    return ["agent", "--rpc", UNREACHABLE, "--contract", CONTRACT, f"--experiment={experiment}",
            "--learner", learner, "--store", "file:unused", *extra]


def assert_one_line(status: int, err: str, expected_status: int, message: str) -> None:
    assert "Traceback" not in err, err
    assert status == expected_status, err
    lines = [line for line in err.splitlines() if message in line]
    assert lines and lines[-1].startswith(("error:", "colearn ")), err
    assert err.rstrip().splitlines()[-1] == lines[-1], err  # the message ends the output


@pytest.mark.parametrize("argv, option", [
    (agent_argv("--poll", "0"), "--poll"),
    (agent_argv("--poll=-1"), "--poll"),
    (agent_argv("--poll", "0.001"), "--poll"),
    (agent_argv("--poll", "nan"), "--poll"),
    (agent_argv("--poll", "inf"), "--poll"),
    (agent_argv("--relay-fallback=-5"), "--relay-fallback"),
    (["explorer", "--rpc", UNREACHABLE, "--contract", CONTRACT, "--poll", "0"], "--poll"),
    (["relay", "--rpc", UNREACHABLE, "--contract", CONTRACT, "--batch-delay=-1"],
     "--batch-delay"),
    (["bench", "overhead", "--poll", "0"], "--poll"),
])
def test_intervals_have_a_sane_range(argv, option):
    status, _, err = run(*argv, env=DEV_KEY)
    assert_one_line(status, err, 2, f"argument {option}: expected seconds from")


@pytest.mark.parametrize("command", [
    agent_argv,
    lambda experiment: ["audit", "--rpc", UNREACHABLE, "--contract", CONTRACT,
                        f"--experiment={experiment}"],
    lambda experiment: ["relay", "--rpc", UNREACHABLE, "--contract", CONTRACT,
                        f"--experiment={experiment}"],
], ids=["agent", "audit", "relay"])
@pytest.mark.parametrize("experiment", ["-1", str(2**256), "1e3", "5" * 5000])
def test_experiment_ids_are_uint256(command, experiment):
    status, _, err = run(*command(experiment=experiment), env=DEV_KEY)
    assert_one_line(status, err, 2, "argument --experiment: an experiment id is an integer "
                                    "from 0 to 2**256 - 1")


def test_learner_factories_that_cannot_be_loaded(tmp_path, monkeypatch):
    (tmp_path / "exploding_learners.py").write_text("raise ImportError('needs libfoo 2')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cases = [
        ("no_such_module_xyz:make", ("cannot import the learner factory's module "
                                     "'no_such_module_xyz': ModuleNotFoundError")),
        ("exploding_learners:make", ("cannot import the learner factory's module "
                                     "'exploding_learners': ImportError: needs libfoo 2")),
        (f"{HERE}:no_such_factory", f"module '{HERE}' has no attribute 'no_such_factory'"),
        (f"{HERE}:NOT_CALLABLE", f"learner factory {HERE}:NOT_CALLABLE is a int, not a function"),
    ]
    for learner, message in cases:
        status, _, err = run(*agent_argv(learner=learner), env=DEV_KEY)
        assert_one_line(status, err, 1, message)
    status, _, err = run(*agent_argv(learner="no_colon"), env=DEV_KEY)
    assert_one_line(status, err, 2, "argument --learner: expected MODULE:FACTORY")


@pytest.mark.parametrize("pair, status, message", [
    ("index", 2, "argument --learner-arg: learner argument 'index' is not KEY=VALUE"),
    ("=1", 2, "learner argument '=1' has an empty key"),
    ("in-dex=1", 2, "the key 'in-dex' is not a Python name"),
    ("index=[1, 2", 2, "learner argument index: the value is not valid JSON"),
    ("index=" + "[" * 100_000, 2, "learner argument index: the value nests deeper than 100"),
    ("idx=1", 1, (f"learner factory {HERE}:signature_factory has no argument idx; "
                  "it accepts index, n_learners, scale")),
    ("scale=2", 1, "missing a required argument: 'index'; it accepts index, n_learners, scale"),
])
def test_learner_arg_typos(pair, status, message):
    got, _, err = run(*agent_argv("--learner-arg", pair), env=DEV_KEY)
    assert_one_line(got, err, status, message)


@pytest.fixture(scope="module")
def live_experiment(anvil_process):
    """An experiment on anvil whose first learner's key is in the returned environment."""
    w3 = connect(anvil_process.url)
    deployer, *members = derive_accounts(3, seed=0, label="cli-tests")
    fund_accounts(w3, [a.address for a in (deployer, *members)])
    client, _ = CollectiveLearningClient.deploy(w3, deployer)
    experiment_id, _ = client.create_experiment([m.address for m in members], 5000, 1, 600, 600,
                                                "bafy-initial", b"\1" * 32)
    return (anvil_process.url, client.address, experiment_id,
            {"COLEARN_PRIVATE_KEY": members[0].key.hex()})


@pytest.mark.anvil
def test_a_learner_factory_that_raises_is_one_line(live_experiment):
    url, contract, experiment_id, env = live_experiment
    status, _, err = run("agent", "--rpc", url, "--contract", contract,
                         "--experiment", str(experiment_id), "--learner",
                         f"{HERE}:failing_factory", "--learner-arg", "index=3",
                         "--store", "file:unused", env=env)
    assert_one_line(status, err, 1, f"learner factory {HERE}:failing_factory failed: "
                                     "RuntimeError: no data for learner 3 at /data/private")


def test_a_password_prompt_without_a_terminal_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "COLEARN_PASSWORD"}
    result = subprocess.run(  # a new session: no controlling terminal, stdin at its end
        [sys.executable, "-m", "agents.cli", "account", "new", "--keystore",
         str(tmp_path / "k.json")], stdin=subprocess.DEVNULL, capture_output=True, text=True,
        check=False, timeout=60, cwd=ROOT, start_new_session=True, env={**env, "COLUMNS": "200"})
    assert_one_line(result.returncode, result.stderr, 1,
                    "no terminal to ask for the keystore password on: give --password-file")
    assert not (tmp_path / "k.json").exists()


@pytest.mark.parametrize("interruption, message", [
    (EOFError, "no keystore password entered (end of input): give --password-file"),
    (KeyboardInterrupt, "no keystore password entered (interrupted): give --password-file"),
])
def test_a_closed_or_interrupted_password_prompt_is_one_line(tmp_path, monkeypatch,
                                                             interruption, message):
    monkeypatch.delenv("COLEARN_PASSWORD", raising=False)
    monkeypatch.setattr(getpass, "getpass", mock.Mock(side_effect=interruption))
    status, _, err = run("account", "new", "--keystore", str(tmp_path / "k.json"))
    assert_one_line(status, err, 1, message)


@pytest.mark.parametrize("spec, message", [
    (b"\xff\xfe rounds = 1", "is not valid TOML: not UTF-8 text"),
    (b"a = " + b"[" * 100_000, "is not valid TOML: RecursionError"),
])
def test_malformed_specs_are_one_line(tmp_path, spec, message):
    path = tmp_path / "spec.toml"
    path.write_bytes(spec)
    status, _, err = run("experiment", "create", "--rpc", UNREACHABLE, "--contract", CONTRACT,
                         "--spec", str(path), "--store", "file:unused", env=DEV_KEY)
    assert_one_line(status, err, 1, message)


def test_unreadable_keystores_are_one_line(tmp_path):
    keystore = tmp_path / "k.json"
    keystore.write_text(json.dumps({"version": 2, "crypto": {}}))
    status, _, err = run("deploy", "--rpc", UNREACHABLE, "--keystore", str(keystore),
                         env={"COLEARN_PASSWORD": "pw"})
    assert_one_line(status, err, 1, f"{keystore} is not a version 3 keystore")


def test_messages_are_printed_as_they_are(tmp_path):
    """Brackets in a message are text, not Rich markup (which once failed the print)."""
    status, _, err = run("store", "get", "[/x]", "--store", f"file:{tmp_path}",
                         "-o", str(tmp_path / "out"))
    assert_one_line(status, err, 1, "invalid CID '[/x]'")


def test_messages_show_no_emoji(tmp_path):
    """``:factory:`` in a message is text, not Rich's emoji code (it printed a factory)."""
    status, _, err = run("store", "get", "mymodule:factory:", "--store", f"file:{tmp_path}",
                         "-o", str(tmp_path / "out"))
    assert_one_line(status, err, 1, "invalid CID 'mymodule:factory:'")
    assert "\N{FACTORY}" not in err


def test_verbosity_is_counted_before_and_after_the_command(monkeypatch):
    seen = []
    monkeypatch.setattr(store_command, "run_get", lambda args, console: seen.append(args.verbose))
    for argv, verbose in [([], 0), (["-v"], 1), (["-vv"], 2)]:
        for where in ("before", "after"):
            command = ["store", "get", "x", "--store", "file:unused", "-o", "unused"]
            assert run(*(argv + command if where == "before" else command + argv))[0] == 0
            assert seen.pop() == verbose, (argv, where)
    assert run("-v", "store", "get", "x", "--store", "file:unused", "-o", "unused", "-v")[0] == 0
    assert seen.pop() == 2


def test_version_names_the_package_and_the_contract():
    status, out, _ = run("--version")
    assert status == 0
    package, contract = out.splitlines()
    assert package.startswith("colearn ")
    assert contract.startswith("contract CollectiveLearning: solc 0.8.")
    assert ", bytecode keccak256 0x" in contract


def test_a_bug_is_one_line_and_its_traceback_shows_with_vv(monkeypatch):
    def buggy(args, console):
        return {}["missing"]

    monkeypatch.setattr(store_command, "run_get", buggy)
    status, _, err = run("store", "get", "x", "--store", "file:unused", "-o", "unused")
    assert_one_line(status, err, cli.EXIT_INTERNAL_ERROR,
                    "error: unexpected KeyError: 'missing' (a bug: rerun with -vv")
    status, _, err = run("-vv", "store", "get", "x", "--store", "file:unused", "-o", "unused")
    assert status == cli.EXIT_INTERNAL_ERROR
    assert "Traceback" in err and 'return {}["missing"]' in err


# Random arguments against a live experiment (so a value that passes parsing reaches the
# chain and the factory): any outcome is a clean exit (0, 1 or 2) without a traceback.
FUZZ = settings(max_examples=60, deadline=None)


def live_agent_run(live_experiment, *extra: str, experiment: str | None = None) -> tuple[int, str]:
    url, contract, experiment_id, env = live_experiment
    status, _, err = run("agent", "--rpc", url, "--contract", contract,
                         f"--experiment={experiment_id if experiment is None else experiment}",
                         "--learner", f"{HERE}:failing_factory", "--store", "file:unused",
                         *extra, env=env)
    assert status in (0, 1, 2) and "Traceback" not in err, (status, err)
    return status, err


@pytest.mark.anvil
@FUZZ
@given(experiment=st.one_of(st.text(), st.integers(-2**300, 2**300).map(str)))
def test_any_experiment_argument_ends_cleanly(live_experiment, experiment):
    live_agent_run(live_experiment, experiment=experiment)


@pytest.mark.anvil
@FUZZ
@given(poll=st.one_of(st.text(), st.floats().map(str), st.integers().map(str)))
def test_any_poll_argument_ends_cleanly(live_experiment, poll):
    status, err = live_agent_run(live_experiment, f"--poll={poll}")
    try:
        in_range = options.MIN_POLL_SECONDS <= float(poll) <= options.MAX_WAIT_SECONDS
    except ValueError:
        in_range = False
    assert (status == 2) == (not in_range), err  # refused at parsing, and only then


@pytest.mark.anvil
@FUZZ
@given(pairs=st.lists(st.one_of(
    st.text(),
    st.builds("{}={}".format, st.sampled_from(["index", "n_learners", "scale", "x", ""]),
              st.one_of(st.text(), st.from_regex(r"[\[\]{}\"0-9,.:a-z ]*", fullmatch=True)))),
    max_size=3))
def test_any_learner_args_end_cleanly(live_experiment, pairs):
    live_agent_run(live_experiment, *[f"--learner-arg={pair}" for pair in pairs])

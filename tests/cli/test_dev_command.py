"""``colearn dev`` as a newcomer runs it: started as a process, its printed commands pasted
as they are (experiment create, one agent per stakeholder, the audit), to a finished
experiment on anvil with js-ipfs as the store; then SIGTERM stops it and both services."""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from eth_account import Account
from process_checks import gone

from agents.chain.client import CollectiveLearningClient
from agents.chain.network import connect
from agents.chain.types import RoundState

ROOT = Path(__file__).resolve().parents[2]
COLEARN = [sys.executable, "-m", "agents.cli"]
ENV = {**os.environ, "COLUMNS": "100", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
#: Guards against a hang only (the test waits for lines and exits, never for time).
HANG_GUARD = 900


def argv(command: str) -> tuple[list[str], dict[str, str]]:
    """A printed ``[VAR=value ...] colearn ...`` line as a process's argv and environment,
    ``colearn`` run from this checkout."""
    words = shlex.split(command)
    env = dict(ENV)
    while "=" in words[0] and not words[0].startswith("colearn"):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    assert words[0] == "colearn", command
    return COLEARN + words[1:], env


def run_printed(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    args, env = argv(command)
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=HANG_GUARD)


def read_until_ready(process: subprocess.Popen[str]) -> list[str]:
    """The lines ``colearn dev`` prints up to its ``ready`` line (fails if it exits first)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put("")  # end of output

    threading.Thread(target=pump, daemon=True).start()
    seen = []
    while True:
        line = lines.get(timeout=HANG_GUARD)
        if line == "" and process.poll() is not None:
            pytest.fail(f"colearn dev exited ({process.returncode}) before it was ready:\n"
                        + "\n".join(seen) + (process.stderr.read() if process.stderr else ""))
        seen.append(line)
        if line.startswith("ready"):
            return seen


def listening_addresses(pid: int) -> set[str]:
    """The ``IP:PORT`` every TCP socket of process ``pid`` listens on (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for row in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                ip = (".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0))
                      if len(address) == 8 else address)
                found.add(f"{ip}:{int(port, 16)}")
    return found


@pytest.mark.slow
@pytest.mark.anvil
@pytest.mark.ipfs
def test_colearn_dev_runs_a_whole_experiment_from_its_printed_commands(tmp_path):
    out = tmp_path / "dev"
    dev = subprocess.Popen([*COLEARN, "dev", "--out", str(out), "--rounds", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                           env=ENV)
    try:
        lines = read_until_ready(dev)
        state = json.loads((out / "dev.json").read_text())
        # Everything listens on 127.0.0.1 only; js-ipfs opens no swarm port at all.
        for pid in (state["anvil_pid"], state["ipfs_pid"]):
            addresses = listening_addresses(pid)
            assert addresses and all(a.startswith("127.0.0.1:") for a in addresses), addresses
        assert len(listening_addresses(state["ipfs_pid"])) == 2  # RPC API and gateway

        create = [line for line in lines if line.startswith("colearn experiment create ")]
        agents = [line for line in lines if line.startswith("colearn agent ")]
        audit = [line for line in lines if line.startswith("colearn audit ")]
        assert len(create) == 1 and len(agents) == 3 and len(audit) == 1, lines

        created = run_printed(create[0], tmp_path)
        assert created.returncode == 0, created.stderr
        assert created.stdout.strip() == "1"

        processes = []
        for command in agents:
            args, env = argv(command)
            processes.append(subprocess.Popen(args, env=env, cwd=tmp_path, text=True,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        outputs = [p.communicate(timeout=HANG_GUARD) for p in processes]
        for process, (stdout, stderr) in zip(processes, outputs):
            assert process.returncode == 0, stderr
        summaries = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]
        client = CollectiveLearningClient(connect(state["rpc"]), state["contract"])
        assert client.state(1) == RoundState.COMPLETED
        digest, _ = client.current_model(1)
        assert {s["model_digest"] for s in summaries} == {"0x" + digest.hex()}

        audited = run_printed(audit[0], tmp_path)
        assert audited.returncode == 0, audited.stdout + audited.stderr
    finally:
        dev.send_signal(signal.SIGTERM)
        status = dev.wait(timeout=HANG_GUARD)
    assert status == 128 + signal.SIGTERM
    assert gone(state["anvil_pid"]) and gone(state["ipfs_pid"])
    with pytest.raises(Exception):
        connect(state["rpc"], timeout=2)


@pytest.mark.anvil
def test_colearn_dev_refuses_a_missing_anvil_in_one_line(tmp_path):
    result = subprocess.run([*COLEARN, "dev", "--out", str(tmp_path / "dev"),
                             "--anvil", str(tmp_path / "no-anvil")], capture_output=True,
                            text=True, env=ENV, timeout=HANG_GUARD)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: --anvil {tmp_path / 'no-anvil'}: no such file"]
    assert not (tmp_path / "dev").exists()  # nothing written before the check


@pytest.mark.slow
@pytest.mark.anvil
@pytest.mark.ipfs
def test_colearn_dev_prints_keys_instead_of_writing_keystores(tmp_path):
    out = tmp_path / "dev"
    dev = subprocess.Popen([*COLEARN, "dev", "--out", str(out), "--learners", "2",
                            "--print-keys"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd=tmp_path, env=ENV)
    try:
        lines = read_until_ready(dev)
        state = json.loads((out / "dev.json").read_text())
        assert sorted(p.name for p in out.iterdir()) == ["dev.json", "experiment.toml"]
        printed = dict(line.split(": ", 1)[1].split() for line in lines
                       if line.strip().startswith("stakeholder "))
        assert list(printed) == [learner["address"] for learner in state["learners"]]
        assert all("private_key" not in learner for learner in state["learners"])
        for address, key in printed.items():
            assert Account.from_key(key).address == address
        create = next(line for line in lines if "colearn experiment create " in line)
        agents = [line for line in lines if " colearn agent " in line]
        assert create.startswith("COLEARN_PRIVATE_KEY=0x") and len(agents) == 2
        assert all(a.startswith("COLEARN_PRIVATE_KEY=0x") for a in agents)
        created = run_printed(create, tmp_path)
        assert created.returncode == 0, created.stderr
        assert created.stdout.strip() == "1"
    finally:
        dev.send_signal(signal.SIGINT)
        status = dev.wait(timeout=HANG_GUARD)
    assert status == 128 + signal.SIGINT
    assert gone(state["anvil_pid"]) and gone(state["ipfs_pid"])

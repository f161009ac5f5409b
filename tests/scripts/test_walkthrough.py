"""``scripts/walkthrough.sh``, the README's first hour as a script: run as CI runs it, to a
model file loaded with numpy, leaving nothing running; and stopped halfway (SIGTERM, or
SIGINT as Ctrl-C sends it), it stops colearn dev, anvil, js-ipfs and the agents."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from process_checks import gone
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "walkthrough.sh"
#: The venv's colearn, this checkout's code (PYTHONPATH: the editable install may be another's).
ENV = {**os.environ, "COLEARN": str(Path(sys.executable).with_name("colearn")),
       "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "100"}
#: Guards against a hang only (the tests wait for lines and exits, never for time).
HANG_GUARD = 900



def start(out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(["bash", str(SCRIPT), str(out)], env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(script: subprocess.Popen[str]) -> str:
    """The script's output once it exits; on a hang, SIGTERM (so its trap still runs)."""
    try:
        return script.communicate(timeout=HANG_GUARD)[0]
    except subprocess.TimeoutExpired:
        script.send_signal(signal.SIGTERM)
        output = script.communicate(timeout=HANG_GUARD)[0]
        pytest.fail(f"walkthrough.sh hung:\n{output}")


def wait_for_exec(pid: int) -> None:
    """Until ``pid`` (a subshell the script started) has exec'd ``colearn agent``."""
    deadline = time.monotonic() + HANG_GUARD
    while True:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"agent" in cmdline and any(w.endswith(b"colearn") for w in cmdline[:2]):
            return
        assert time.monotonic() < deadline, f"pid {pid} never became colearn agent: {cmdline}"
        time.sleep(0.05)


def started_pids(output: str, out: Path) -> dict[str, int]:
    """Every process the script started (colearn dev, the agents: from its output) or
    colearn dev did (anvil, js-ipfs: from dev.json)."""
    pids = {name: int(pid) for name, pid in
            re.findall(r"^(colearn dev|agent \d+) \(pid (\d+)\)", output, re.MULTILINE)}
    state = json.loads((out / "dev.json").read_text())
    return {**pids, "anvil": state["anvil_pid"], "js-ipfs": state["ipfs_pid"]}


@pytest.mark.slow
@pytest.mark.anvil
@pytest.mark.ipfs
def test_walkthrough_runs_to_a_loaded_model_and_leaves_nothing_running(tmp_path):
    out = tmp_path / "colearn-dev"
    script = start(out)
    output = finish(script)
    assert script.returncode == 0, output
    assert "audit passed" in output
    arrays = load_file(out / "model.safetensors")
    assert arrays and all(f"{name} {a.shape} {a.dtype}" in output for name, a in arrays.items())
    pids = started_pids(output, out)
    assert {"colearn dev", "agent 1", "agent 2", "agent 3", "anvil", "js-ipfs"} == set(pids)
    assert [name for name, pid in pids.items() if not gone(pid)] == []


@pytest.mark.slow
@pytest.mark.anvil
@pytest.mark.ipfs
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_walkthrough_stopped_while_agents_run_stops_everything(tmp_path, stop):
    out = tmp_path / "colearn-dev"
    script = start(out)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert script.stdout is not None
        for line in script.stdout:
            lines.put(line)
        lines.put("")  # end of output

    threading.Thread(target=pump, daemon=True).start()
    seen = []
    try:
        while not seen or not seen[-1].startswith("agent 3 (pid "):
            line = lines.get(timeout=HANG_GUARD)
            assert line, "walkthrough.sh ended before its agents ran:\n" + "".join(seen)
            seen.append(line)
        pids = started_pids("".join(seen), out)
        for n in (1, 2, 3):  # each agent becomes its own process (exec), not a shell around it
            wait_for_exec(pids[f"agent {n}"])
    finally:
        script.send_signal(stop)
        status = script.wait(timeout=HANG_GUARD)
    assert status == 128 + stop
    assert [name for name, pid in pids.items() if not gone(pid)] == []


@pytest.mark.parametrize("colearn", ["/no/such/colearn", "no-such-colearn"])
def test_walkthrough_without_colearn_says_so_in_one_line(tmp_path, colearn):
    result = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "dev")], check=False,
                            env={**ENV, "COLEARN": colearn}, capture_output=True, text=True,
                            timeout=HANG_GUARD)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"error: no colearn at {colearn} (make demo)"]

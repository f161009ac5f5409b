"""Every command that starts processes stops all of them on Ctrl-C, SIGTERM, SIGHUP or its
own failure (agents._utils.shutdown): it exits with 128 + the signal's number and one line on
stderr, and no process it started (collected from /proc while it runs) outlives it.

The commands run in their own session; the tests wait for their children by polling
/proc (never a fixed sleep) and, whatever happens, SIGKILL everything they saw.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agents._utils.shutdown import (
    ChildProcesses,
    Interrupted,
    deferred_signals,
    interrupt_status,
    signals_unwind,
)

ROOT = Path(__file__).resolve().parents[2]
#: Generous bounds: CI shares 2 cores with other work. Nothing waits this long when all is well.
START_TIMEOUT = 600.0
EXIT_TIMEOUT = 120.0

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


# ------------------------------------------------------------------------- /proc


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(ppid, start time, state) of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[1]), int(fields[19]), fields[0]


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []


def descendants(root: int) -> dict[tuple[int, int], list[str]]:
    """Every living descendant of ``root``: (pid, start time) -> command line."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            ppid, start, state = stat
            if state != "Z":
                children.setdefault(ppid, []).append((int(entry.name), start))
    found: dict[tuple[int, int], list[str]] = {}
    todo = [root]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            found[(pid, start)] = _cmdline(pid)
            todo.append(pid)
    return found


def alive(pid: int, start: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[1] == start and stat[2] != "Z"


def wait_for(condition: Callable[[], bool], timeout: float, what: str,
             explain: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}\n{explain()}")
        time.sleep(0.1)


class Command:
    """A command run in its own session, with every descendant ever seen remembered."""

    def __init__(self, args: list[str], tmp_path: Path, env: dict[str, str] | None = None):
        self.stdout_path, self.stderr_path = tmp_path / "stdout", tmp_path / "stderr"
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, *args], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                stderr=err, start_new_session=True,
                env={**os.environ, "COLUMNS": "200", **(env or {})})
        self.seen: dict[tuple[int, int], list[str]] = {}

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Waits for ``condition`` while the command runs; fails at once if it exits."""
        def done() -> bool:
            if condition():
                return True
            if self.process.poll() is not None:
                pytest.fail(f"the command exited before {what}\n{self.output()}")
            return False
        wait_for(done, START_TIMEOUT, what, self.output)

    def snapshot(self) -> dict[tuple[int, int], list[str]]:
        now = descendants(self.process.pid)
        self.seen.update(now)
        return now

    def count(self, predicate: Callable[[list[str]], bool]) -> int:
        return sum(1 for cmd in self.snapshot().values() if predicate(cmd))

    def output(self) -> str:
        return (f"exit code {self.process.poll()}\nstdout:\n{self.stdout_path.read_text()[-3000:]}"
                f"\nstderr:\n{self.stderr_path.read_text()[-3000:]}")

    def wait(self, timeout: float = EXIT_TIMEOUT) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {timeout:g} s after the signal\n{self.output()}")

    def survivors(self) -> list[str]:
        """The descendants seen that are still alive, after a bounded wait for the last
        SIGKILLs to land."""
        def left() -> list[tuple[int, int]]:
            return [key for key in self.seen if alive(*key)]
        deadline = time.monotonic() + 30
        while left() and time.monotonic() < deadline:
            time.sleep(0.1)
        return [f"{pid}: {' '.join(self.seen[(pid, start)])}" for pid, start in left()]

    def kill_everything(self) -> None:
        self.snapshot()
        for pid, start in self.seen:
            if alive(pid, start):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()


@contextmanager
def command(args: list[str], tmp_path: Path, env: dict[str, str] | None = None
            ) -> Iterator[Command]:
    run = Command(args, tmp_path, env)
    try:
        yield run
    finally:
        run.kill_everything()


def is_agent(cmd: list[str]) -> bool:
    return "agents.cli" in cmd and "agent" in cmd


def is_anvil(cmd: list[str]) -> bool:
    return bool(cmd) and Path(cmd[0]).name == "anvil"


def check_stopped(run: Command, signum: int) -> None:
    status = run.wait()
    assert status == 128 + signum, run.output()
    stderr = run.stderr_path.read_text()
    assert "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == f"interrupted ({signal.Signals(signum).name})"
    assert run.survivors() == [], run.output()


def send(run: Command, signum: int) -> None:
    """SIGINT as a terminal sends it (to the foreground process group); others with kill."""
    if signum == signal.SIGINT:
        os.killpg(run.process.pid, signum)
    else:
        os.kill(run.process.pid, signum)


# ------------------------------------------------------------------- the mechanism


SLEEPER = "import time; time.sleep(600)"
# Ignores SIGTERM (so only SIGKILL stops it) and starts a grandchild in its group.
STUBBORN = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"subprocess.Popen([sys.executable, '-c', {SLEEPER!r}]); time.sleep(600)")


def test_child_processes_stops_every_child_and_grandchild_on_an_error():
    with pytest.raises(RuntimeError), ChildProcesses(stop_timeout=1.0) as children:
        started = [children.start([sys.executable, "-c", code], name=f"child {i}")
                   for i, code in enumerate([SLEEPER, STUBBORN, SLEEPER])]
        wait_for(lambda: len(descendants(started[1].pid)) == 1, START_TIMEOUT,
                 "the grandchild")
        grandchild = next(iter(descendants(started[1].pid)))
        raise RuntimeError("the command failed")
    assert all(p.returncode is not None for p in started)  # stopped and reaped
    assert started[1].returncode == -signal.SIGKILL
    wait_for(lambda: not alive(*grandchild), 30, "the grandchild to die")


def test_interrupt_status():
    assert interrupt_status(KeyboardInterrupt()) == (130, "SIGINT")
    assert interrupt_status(Interrupted(signal.SIGTERM)) == (143, "SIGTERM")
    assert interrupt_status(Interrupted(signal.SIGHUP)) == (129, "SIGHUP")


def test_a_signal_within_deferred_signals_raises_at_its_end():
    previous = signal.getsignal(signal.SIGTERM)
    reached = False
    with pytest.raises(Interrupted) as raised, signals_unwind(), deferred_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs between bytecodes
            pass
        reached = True
    assert reached and raised.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is previous


SCRIPT = textwrap.dedent("""
    import logging, signal, sys, time
    from pathlib import Path
    from agents._utils.shutdown import ChildProcesses, interrupt_status, signals_unwind

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    flags = Path(sys.argv[1])
    # Takes its time to stop: notes the SIGTERM, then waits to be released.
    CHILD = f'''
    import signal, time
    from pathlib import Path
    flags = Path({str(flags)!r})
    def stop(signum, frame):
        (flags / "child-got-sigterm").touch()
        while not (flags / "release").exists():
            time.sleep(0.05)
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)
    (flags / "child-ready").touch()
    time.sleep(600)
    '''
    try:
        with signals_unwind(), ChildProcesses(stop_timeout=300) as children:
            children.start([sys.executable, "-c", CHILD], name="slow to stop")
            time.sleep(600)
    except KeyboardInterrupt as exc:
        status, name = interrupt_status(exc)
        print(name, file=sys.stderr)
        sys.exit(status)
""")


def test_a_repeated_signal_does_not_cut_the_stopping_short(tmp_path):
    flags = tmp_path / "flags"
    flags.mkdir()
    with command(["-c", SCRIPT, str(flags)], tmp_path) as run:
        run.wait_until(lambda: (flags / "child-ready").exists(), "the child")
        run.snapshot()
        os.kill(run.process.pid, signal.SIGTERM)
        run.wait_until(lambda: (flags / "child-got-sigterm").exists(), "the child's SIGTERM")
        os.kill(run.process.pid, signal.SIGTERM)  # again, while the child is stopping
        run.wait_until(lambda: "already stopping" in run.stderr_path.read_text(),
                       "the second signal to be noted")
        assert run.process.poll() is None, run.output()  # still waiting for its child
        (flags / "release").touch()
        assert run.wait() == 143, run.output()
        assert run.stderr_path.read_text().strip().splitlines()[-1] == "SIGTERM"
        assert run.survivors() == []


# ---------------------------------------------------------------------- commands


@pytest.mark.anvil
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_colearn_chain_stops_anvil(tmp_path, signum):
    with command(["-m", "agents.cli", "chain", "--port", "0"], tmp_path) as run:
        run.wait_until(lambda: "Ctrl-C stops it" in run.stdout_path.read_text(), "anvil")
        assert run.count(is_anvil) == 1
        send(run, signum)
        check_stopped(run, signum)


@pytest.mark.slow
@pytest.mark.anvil
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_process_demo_stops_its_agents_and_services(tmp_path, signum):
    args = ["-m", "agents.cli", "demo", "--processes", "--rounds", "30",
            "--out", str(tmp_path / "out")]
    with command(args, tmp_path) as run:
        run.wait_until(lambda: run.count(is_agent) == 5, "5 agent processes")
        assert run.count(is_anvil) == 1
        send(run, signum)
        check_stopped(run, signum)


@pytest.mark.slow
@pytest.mark.anvil
def test_overhead_bench_stops_anvil_and_its_agents(tmp_path):
    args = ["-m", "agents.cli", "bench", "overhead", "--preset", "small", "--learners", "3",
            "--rounds", "30", "--workdir", str(tmp_path / "work")]
    with command(args, tmp_path) as run:
        run.wait_until(lambda: run.count(is_agent) == 3, "3 agent processes")
        assert run.count(is_anvil) == 1
        send(run, signal.SIGTERM)
        check_stopped(run, signal.SIGTERM)


FAILING_FACTORY = textwrap.dedent("""
    import os, time
    from pathlib import Path

    def make(index, n_learners, seed):
        flags = Path(os.environ["CLEANUP_TEST_FLAGS"])
        (flags / f"started-{index}").touch()
        if index == 0:  # fails once the test has seen everyone
            while not (flags / "go").exists():
                time.sleep(0.05)
            raise RuntimeError("learner 0's data is unreadable")
        while True:  # the others take forever to load theirs
            time.sleep(1)
""")


@pytest.mark.slow
@pytest.mark.anvil
def test_process_demo_stops_everything_when_an_agent_fails(tmp_path):
    (tmp_path / "failing_factory.py").write_text(FAILING_FACTORY)
    flags = tmp_path / "flags"
    flags.mkdir()
    script = ("import sys, agents.demo.processes as p; p.FACTORY = 'failing_factory:make'; "
              "from agents.cli.main import main; sys.exit(main(sys.argv[1:]))")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
           "CLEANUP_TEST_FLAGS": str(flags)}
    args = ["-c", script, "demo", "--processes", "--learners", "3", "--rounds", "30",
            "--out", str(tmp_path / "out")]
    with command(args, tmp_path, env) as run:
        run.wait_until(lambda: all((flags / f"started-{i}").exists() for i in range(3)),
                       "the 3 agents' factories")
        assert run.count(is_agent) == 3
        (flags / "go").touch()
        assert run.wait() == 1, run.output()
        stderr = run.stderr_path.read_text()
        assert "agents [0] exited with an error" in stderr and "Traceback" not in stderr
        assert run.survivors() == [], run.output()

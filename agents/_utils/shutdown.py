"""How a command stops everything it started, however it ends: done, failed, or stopped
by Ctrl-C (SIGINT), SIGTERM or SIGHUP.

* :func:`signals_unwind` (the CLI's ``main`` runs every command inside it) turns those
  three signals into an :class:`Interrupted` exception raised in the main thread, so the
  command's ``with`` blocks unwind as they do on an error. Repeats of a signal while that
  unwinding runs are logged and ignored, so the stopping itself is not cut short; a third
  one raises again (the person insists).
* :class:`ChildProcesses` starts processes for the duration of a ``with`` block and, when
  the block ends for any reason, stops them all: SIGTERM to each one's process group, a
  shared grace period, then SIGKILL. :class:`agents.devtools.process.ManagedProcess` (anvil,
  js-ipfs, hardhat) starts and stops its process the same way (:func:`spawn`,
  :func:`stop_processes`).

Each child runs in its own session, so a Ctrl-C in the terminal reaches only the command,
which stops its children in order; on Linux a child also gets SIGTERM if the command is
killed outright (SIGKILL), when no cleanup can run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType, TracebackType
from typing import Any, Self

log = logging.getLogger(__name__)

#: The signals that stop a command: Ctrl-C, ``kill``, a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Seconds a child gets between SIGTERM and SIGKILL by default.
DEFAULT_STOP_TIMEOUT = 10.0


class Interrupted(KeyboardInterrupt):
    """The command was asked to stop by a signal (a KeyboardInterrupt, as Ctrl-C raises)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def interrupt_status(exc: KeyboardInterrupt) -> tuple[int, str]:
    """The exit status (128 + the signal's number: 130 for Ctrl-C, 143 for SIGTERM) and the
    signal's name, for a KeyboardInterrupt (a plain one is Ctrl-C)."""
    signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
    return 128 + signum, signal.Signals(signum).name


class _SignalState:
    """What the handler knows: how many stop signals arrived, and whether the main thread
    is in a section where raising would lose track of a child (see :func:`deferred_signals`)."""

    def __init__(self) -> None:
        self.received = 0
        self.deferring = 0
        self.pending: int | None = None


_state = _SignalState()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _handle(signum: int, frame: FrameType | None) -> None:
    _state.received += 1
    name = signal.Signals(signum).name
    if _state.received == 2:
        log.warning("%s: already stopping; waiting for the started processes to stop", name)
        return
    if _state.deferring:
        _state.pending = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_unwind(signals: Sequence[int] = STOP_SIGNALS) -> Iterator[None]:
    """Within the block, each of ``signals`` raises :class:`Interrupted` in the main thread
    (see the module's docstring); the previous handlers come back afterwards. Outside the
    main thread (where Python runs no signal handlers) it changes nothing."""
    if not _in_main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    _state.received, _state.pending = 0, None
    try:
        for signum in signals:
            previous[signum] = signal.signal(signum, _handle)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """A stop signal that arrives within the block raises only at its end, so that starting
    a process and recording it (to stop it later) is never separated by an exception.
    Only the main thread defers (signal handlers run nowhere else)."""
    if not _in_main_thread():
        yield
        return
    _state.deferring += 1
    try:
        yield
    finally:
        _state.deferring -= 1
        if not _state.deferring and _state.pending is not None:
            signum, _state.pending = _state.pending, None
            raise Interrupted(signum)


# ----------------------------------------------------------------- child processes


def _load_prctl() -> Callable[[], None] | None:
    """Linux: a function, run in the child before exec, that makes the kernel SIGTERM the
    child when the thread that started it dies without cleaning up (PR_SET_PDEATHSIG): a
    backstop for a command killed outright, which runs no cleanup.

    libc is loaded here, in the parent, so the child only makes one foreign call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def _die_with_parent() -> None:  # pragma: no cover - runs in the child
        prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG

    return _die_with_parent


DIE_WITH_PARENT = _load_prctl()


def spawn(command: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
    """Starts ``command`` in its own session (a process group that is signalled as a whole,
    and that a Ctrl-C in the terminal does not reach), with stdin from /dev/null unless
    given, and, on Linux, SIGTERM when the starting thread dies (start it from the main
    thread). Call it within :func:`deferred_signals` and record the process at once."""
    popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(
        list(command), start_new_session=True,
        preexec_fn=DIE_WITH_PARENT,  # noqa: PLW1509 - one prctl call, no imports or locks
        **popen_kwargs)


def signal_group(process: subprocess.Popen[Any], sig: int) -> None:
    """Signals the process group the process leads (its own session), or the process alone."""
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            process.send_signal(sig)
        except ProcessLookupError:
            pass


def stop_processes(processes: Sequence[subprocess.Popen[Any]], timeout: float,
                   names: Sequence[str] | None = None) -> None:
    """Stops every process and whatever is left in its group: SIGTERM to all groups, up to
    ``timeout`` seconds (shared) for them to exit, then SIGKILL. Waits for each, so none is
    left a zombie. Signals are deferred meanwhile (see :func:`deferred_signals`)."""
    labels = list(names) if names is not None else [f"pid {p.pid}" for p in processes]
    with deferred_signals():
        for process, label in zip(processes, labels):
            if process.poll() is None:
                log.info("stopping %s (pid %d)", label, process.pid)
            # Signal the group even if the leader is gone: a child may outlive it.
            signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process, label in zip(processes, labels):
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) ignored SIGTERM for %g s; killing it", label,
                            process.pid, timeout)
                signal_group(process, signal.SIGKILL)
                process.wait()
            try:
                os.killpg(process.pid, signal.SIGKILL)  # anything left in the group
            except (ProcessLookupError, PermissionError):
                pass


class ChildProcesses:
    """Processes started (:meth:`start`) for the duration of a ``with`` block, all stopped
    (:func:`stop_processes`) when it ends: normally, on an error, or on a stop signal."""

    def __init__(self, stop_timeout: float = DEFAULT_STOP_TIMEOUT):
        self.stop_timeout = stop_timeout
        self._processes: list[tuple[str, subprocess.Popen[Any]]] = []

    def start(self, command: Sequence[str], *, name: str,
              **popen_kwargs: Any) -> subprocess.Popen[Any]:
        """Starts ``command`` (see :func:`spawn`) and records it, under ``name`` for logs."""
        with deferred_signals():
            process = spawn(command, **popen_kwargs)
            self._processes.append((name, process))
        log.info("started %s (pid %d)", name, process.pid)
        return process

    @property
    def processes(self) -> list[subprocess.Popen[Any]]:
        return [process for _, process in self._processes]

    def stop(self) -> None:
        """Stops every process started so far. Idempotent."""
        names = [name for name, _ in self._processes]
        stop_processes(self.processes, self.stop_timeout, names)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

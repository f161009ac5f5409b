"""This process's resident memory from Linux's ``/proc/self``, for memory benchmarks, and
:func:`trim_heap` to give freed memory back.

``VmRSS`` is the resident set now, ``VmHWM`` its peak ("high water mark") since the
process started or since :func:`reset_peak`, which writes ``5`` to
``/proc/self/clear_refs`` (Linux 4.0+): the peak restarts from the current RSS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from pathlib import Path
from typing import Any

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


class RssUnavailable(RuntimeError):
    """The system has no ``/proc/self/status`` (not Linux) or cannot reset the peak."""


def memory() -> tuple[int, int]:
    """``(rss, peak)`` in bytes: ``VmRSS`` and ``VmHWM``."""
    try:
        text = _STATUS.read_text()
    except OSError as exc:
        raise RssUnavailable(f"cannot read {_STATUS}: {exc}") from None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        return _bytes(fields["VmRSS"]), _bytes(fields["VmHWM"])
    except KeyError as exc:
        raise RssUnavailable(f"{_STATUS} has no {exc.args[0]}") from None


def _bytes(field: str) -> int:
    value, unit = field.split()
    if unit != "kB":
        raise RssUnavailable(f"unexpected unit {unit!r} in {_STATUS}")
    return int(value) * 1024


def reset_peak() -> None:
    """Restarts ``VmHWM`` from the current RSS."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError as exc:
        raise RssUnavailable(f"cannot reset the RSS peak through {_CLEAR_REFS}: {exc}") from None


def trim_heap() -> None:
    """Hands the C heap's free memory back to the system (glibc's ``malloc_trim(0)``; a
    no-op elsewhere). glibc keeps freed blocks below its mmap threshold (which grows up to
    32 MiB as large blocks are freed) in the heap, resident: a model's layers freed after
    a vote would keep the process at its peak."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None

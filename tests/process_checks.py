"""Whether a process a test started is gone."""

from __future__ import annotations

import os
from pathlib import Path


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone too (its parent exited: init reaps it).
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"

"""``colearn`` run in this process, as the CLI tests call it."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Mapping
from unittest import mock

from agents.cli import main as cli


def run_colearn(*argv: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """``colearn *argv`` with ``env`` added to the environment: (exit status, stdout,
    stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env or {}), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            status = cli.main(list(argv))
        except SystemExit as exc:  # argparse: 2 on bad arguments
            status = exc.code
    return status, out.getvalue(), err.getvalue()

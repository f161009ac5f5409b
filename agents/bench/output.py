"""How every benchmark hands over its report: with ``--json``, the report as JSON on
stdout (a person's progress lines go to stderr); else its table, for a person."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from rich.console import Console

R = TypeVar("R", bound=BaseModel | dict[str, Any])


def emit(report: R, as_json: bool, printer: Callable[[R, Console], None],
         console: Console | None = None) -> None:
    """Writes ``report`` as JSON on stdout if ``as_json``, else ``printer(report, console)``
    (a console on stdout by default)."""
    if as_json:
        data = report.model_dump() if isinstance(report, BaseModel) else report
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        printer(report, console or Console())

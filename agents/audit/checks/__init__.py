"""The audit's checks: what PROTOCOL.md requires of a history, each violation named.

Every check reads a :class:`agents.audit.reader.History` (events and the contract's views at the
audited block), optionally the weight store and a results file; none trusts an agent.
Violation codes are stable identifiers (:data:`CODES`); each comes with the round it
concerns, if any, and a message for people.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agents.audit.checks.core import (
    CODES,
    STORE_TIMEOUT,
    AuditReport,
    Checker,
    CheckSummary,
    Violation,
)
from agents.audit.checks.money import check_money, due_penalties
from agents.audit.checks.protocol import (
    check_configuration,
    check_format,
    check_joining,
    check_model_chain,
    check_round,
    check_sequence,
    check_view,
    expected_model,
)
from agents.audit.checks.sealed import check_sealed
from agents.audit.checks.store import check_store
from agents.audit.history import History
from agents.storage.store import WeightStore

__all__ = ["CODES", "STORE_TIMEOUT", "AuditReport", "CheckSummary", "Checker", "Violation",
           "audit_history", "check_history", "check_store", "due_penalties", "expected_model"]


def check_history(history: History, checker: Checker | None = None) -> list[Violation]:
    """Every chain-only check; returns the violations found."""
    c = checker or Checker()
    check_format(history, c)
    check_configuration(history, c)
    check_view(history, c)
    check_joining(history, c)
    check_sequence(history, c)
    for r in history.rounds:
        check_round(history, r, c)
        check_sealed(history, r, c)
    check_model_chain(history, c)
    check_money(history, c)
    return c.violations


def audit_history(history: History, *, store: WeightStore | None = None,
                  store_url: str | None = None, compare: Path | None = None,
                  store_timeout: float = STORE_TIMEOUT,
                  clock: Callable[[], float] | None = None) -> AuditReport:
    """Runs every check that applies: the chain's always, the store's with ``store``, the
    results file's with ``compare``."""
    import time

    clock = clock or time.perf_counter
    started = clock()
    c = Checker()
    check_history(history, c)
    if store is not None:
        check_store(history, store, c, store_timeout)
    off_chain: list[str] = []
    if compare is not None:
        from agents.audit.results import compare_results

        off_chain = compare_results(history, compare, c)
    return AuditReport(history=history, violations=c.violations, checks=c.summaries(),
                       store=store_url, compared=str(compare) if compare else None,
                       off_chain_fields=off_chain, seconds=clock() - started)

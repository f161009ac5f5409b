"""The audit's comparison with a results file: every chain number of the demo's
``results.json`` rebuilt from the chain, and a results file checked against it row by row
(``colearn audit --compare``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agents.audit.checks import Checker, expected_model
from agents.audit.history import History
from agents.audit.rows import join_rows, round_rows

#: results.json fields that are not on chain (the demo measures them off chain).
OFF_CHAIN_FIELDS = ("test_accuracy", "final_test_accuracy", "solo_test_accuracy", "seconds")


def results_rows(h: History) -> list[dict[str, Any]]:
    """The closed rounds as the demo's results.json lists them (:mod:`agents.audit.rows`'s
    rows), rebuilt from the chain."""
    return [row.model_dump(exclude={"close_block"}) for row in round_rows(h) if row.closed]


def results_summary(h: History) -> dict[str, Any]:
    """Every chain number of the demo's results.json, rebuilt from the chain."""
    digest, model_round, cid = expected_model(h)
    rows = results_rows(h)
    join_gas = sum(j.gas for j in join_rows(h))
    return {"chain_id": h.chain_id, "contract": h.contract, "experiment_id": h.experiment_id,
            "rounds": rows,
            "final_model": {"digest": digest, "model_round": model_round, "cid": cid},
            "join_gas": join_gas, "total_gas": join_gas + sum(r["gas"]["total"] for r in rows)}


def compare_results(h: History, path: Path, c: Checker) -> list[str]:
    """Compares a results file with the chain, naming each row and field that differs;
    returns the file's fields that are not on chain (not compared)."""
    try:
        claimed = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None
    if not isinstance(claimed, dict) or not isinstance(claimed.get("rounds"), list):
        raise ValueError(f"{path} is not a results file (no 'rounds' list)")  # noqa: TRY004
    truth = results_summary(h)
    if isinstance(claimed.get("final_model"), dict) and "cid" not in claimed["final_model"]:
        del truth["final_model"]["cid"]  # a results file from before the CID was written
    off_chain = sorted({k for k in claimed if k in OFF_CHAIN_FIELDS}
                       | {k for row in claimed["rounds"] if isinstance(row, dict)
                          for k in row if k in OFF_CHAIN_FIELDS})
    for key in ("chain_id", "contract", "experiment_id", "final_model", "join_gas", "total_gas"):
        c.count("results-mismatch")
        if key not in claimed:
            continue
        for where, mine, theirs in _diff(truth[key], claimed[key], key):
            c.fail("results-mismatch", None, f"{where}: the file says {theirs}, the chain {mine}")
    ours, theirs = truth["rounds"], claimed["rounds"]
    if len(theirs) != len(ours):
        c.fail("results-mismatch", None,
               f"the file lists {len(theirs)} closed rounds, the chain has {len(ours)}")
    for i, (mine, row) in enumerate(zip(ours, theirs)):
        c.count("results-mismatch")
        if not isinstance(row, dict):
            c.fail("results-mismatch", i, f"rounds[{i}] is not an object")
            continue
        row = {k: v for k, v in row.items() if k not in OFF_CHAIN_FIELDS}
        diffs = _diff(mine, row, f"rounds[{i}]")
        if diffs:
            rendered = "; ".join(f"{w}: file {t}, chain {m}" for w, m, t in diffs[:6])
            more = f" (and {len(diffs) - 6} more)" if len(diffs) > 6 else ""
            c.fail("results-mismatch", mine["round"], f"round {mine['round']} differs: "
                                                      f"{rendered}{more}")
    return off_chain


def _diff(mine: Any, theirs: Any, where: str) -> list[tuple[str, str, str]]:
    """Paths where two JSON values differ, with both sides rendered."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        out = []
        for key in sorted(set(mine) | set(theirs)):
            if key not in theirs:
                out.append((f"{where}.{key}", _show(mine[key]), "nothing"))
            elif key not in mine:
                out.append((f"{where}.{key}", "nothing", _show(theirs[key])))
            else:
                out.extend(_diff(mine[key], theirs[key], f"{where}.{key}"))
        return out
    if isinstance(mine, list) and isinstance(theirs, list):
        if len(mine) != len(theirs):
            return [(f"{where}", f"{len(mine)} items", f"{len(theirs)} items")]
        return [d for i, (a, b) in enumerate(zip(mine, theirs)) for d in _diff(a, b, f"{where}[{i}]")]
    if _same(mine, theirs):
        return []
    return [(where, _show(mine), _show(theirs))]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str) and a.startswith("0x") and b.startswith("0x"):
        return a.lower() == b.lower()  # addresses: checksummed or not
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."

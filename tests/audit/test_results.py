"""results.json's final model carries its CID; ``colearn audit --compare`` checks it, and
still accepts a results file written before the CID was."""

from __future__ import annotations

import json
from pathlib import Path

from test_audit import synthetic_history

from agents.audit.checks import Checker, expected_model
from agents.audit.results import compare_results, results_summary


def test_the_final_model_has_its_cid(tmp_path: Path) -> None:
    h = synthetic_history()
    summary = results_summary(h)
    digest, model_round, cid = expected_model(h)
    assert summary["final_model"] == {"digest": digest, "model_round": model_round, "cid": cid}
    accepted = [r for r in h.rounds if r.outcome == "accepted"][-1]
    assert cid == accepted.proposal.cid

    path = tmp_path / "results.json"
    path.write_text(json.dumps(summary))
    c = Checker()
    compare_results(h, path, c)
    assert c.violations == []

    del summary["final_model"]["cid"]  # a file from before the CID: not a mismatch
    path.write_text(json.dumps(summary))
    c = Checker()
    compare_results(h, path, c)
    assert c.violations == []

    summary["final_model"]["cid"] = "bafy-elsewhere"
    path.write_text(json.dumps(summary))
    c = Checker()
    compare_results(h, path, c)
    assert [v.message for v in c.violations] == [
        f'final_model.cid: the file says "bafy-elsewhere", the chain "{cid}"']

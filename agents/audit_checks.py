"""The audit's checks: what PROTOCOL.md requires of a history, each violation named.

Every check reads a :class:`agents.audit.History` (events and the contract's views at the
audited block), optionally the weight store and a results file; none trusts an agent.
Violation codes are stable identifiers (:data:`CODES`); each comes with the round it
concerns, if any, and a message for people.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from agents.audit import History, RoundHistory
from agents.history import RoundGas, RoundRow, VoteRow
from agents.weight_store import ContentMismatch, ContentNotFound, WeightStore, WeightStoreError
from colearn_core.codec import WeightsFormatError, decode_weights
from colearn_core.decision import BPS_DENOMINATOR

log = logging.getLogger(__name__)

#: Violation codes, and what each check verifies.
CODES: dict[str, str] = {
    "round-sequence": "rounds close one after another, each once, none beyond the last; "
                      "the contract's round view agrees",
    "proposer-schedule": "each proposal comes from learners[round % n]",
    "vote-eligibility": "each vote comes from a learner other than the proposer, once a "
                        "round, after the proposal and before the round closed",
    "tally-mismatch": "each decision's tallies equal the round's VoteCast events",
    "decision-rule": "each decision follows approvals * 10000 >= threshold_bps * (n - 1); "
                     "only proposed rounds are decided, only unproposed ones expire",
    "timing": "proposals and votes before their deadlines; an incomplete ballot decided, "
              "or a round expired, only after its deadline",
    "model-chain": "the final and current model is the last accepted proposal (or the "
                   "initial model), in the completion event and the contract's view",
    "completion": "ExperimentCompleted is logged once, when the last round closes",
    "weights-missing": "the store holds every proposal's weights (and the initial model's)",
    "weights-digest": "those weights hash to their CID and to the digest on chain",
    "final-model-unloadable": "the final model's weights load (safe format, finite values)",
    "results-mismatch": "a results file agrees with the chain, row by row",
}
#: results.json fields that are not on chain (the demo measures them off chain).
OFF_CHAIN_FIELDS = ("test_accuracy", "final_test_accuracy", "solo_test_accuracy", "seconds")
STORE_TIMEOUT = 30.0


class Violation(BaseModel):
    code: str
    round: int | None = None
    message: str


class CheckSummary(BaseModel):
    code: str
    description: str
    checked: int  # items looked at
    violations: int


class AuditReport(BaseModel):
    history: History
    violations: list[Violation] = Field(default_factory=list)
    checks: list[CheckSummary] = Field(default_factory=list)
    store: str | None = None
    compared: str | None = None
    off_chain_fields: list[str] = Field(default_factory=list)  # in the compared file
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations


class _Checker:
    def __init__(self) -> None:
        self.violations: list[Violation] = []
        self.checked: dict[str, int] = {}

    def count(self, code: str, n: int = 1) -> None:
        self.checked[code] = self.checked.get(code, 0) + n

    def fail(self, code: str, round_index: int | None, message: str) -> None:
        assert code in CODES, code
        self.violations.append(Violation(code=code, round=round_index, message=message))

    def summaries(self) -> list[CheckSummary]:
        return [CheckSummary(code=c, description=CODES[c], checked=n,
                             violations=sum(1 for v in self.violations if v.code == c))
                for c, n in self.checked.items()]


# ---------------------------------------------------------------------- the history


def check_history(history: History, checker: _Checker | None = None) -> list[Violation]:
    """Every chain-only check; returns the violations found."""
    c = checker or _Checker()
    _check_sequence(history, c)
    for r in history.rounds:
        _check_round(history, r, c)
    _check_model_chain(history, c)
    return c.violations


def _round_start(history: History, r: int) -> int | None:
    """When round r started: the creation block's time, or the previous round's close."""
    if r == 0:
        return history.config.timestamp
    previous = next((x for x in history.rounds if x.round == r - 1), None)
    closing = previous.closing if previous is not None else None
    return closing.timestamp if closing is not None else None


def _check_sequence(h: History, c: _Checker) -> None:
    cfg = h.config
    c.count("round-sequence", len(h.rounds))
    closed = [r.round for r in h.rounds if r.closed]
    expected = list(range(len(closed)))
    if closed != expected:
        missing = sorted(set(range(max(closed, default=-1) + 1)) - set(closed))
        c.fail("round-sequence", missing[0] if missing else None,
               f"closed rounds are {_ranges(closed)}, not 0..{len(closed) - 1}: round(s) "
               f"{_ranges(missing)} never closed")
    for r in h.rounds:
        if r.round >= cfg.num_rounds:
            c.fail("round-sequence", r.round,
                   f"events for round {r.round}, beyond the experiment's {cfg.num_rounds} rounds")
        if r.decision is not None and r.expiry is not None:
            c.fail("round-sequence", r.round, "round both decided and expired")
        for name in r.duplicates:
            c.fail("round-sequence", r.round, f"{name} logged more than once for the round")
        if r.round > len(closed):
            c.fail("round-sequence", r.round,
                   f"events for round {r.round} while round {len(closed)} is still open")
    # Closing order: each round closes after the previous one.
    closings = [(r.round, r.closing) for r in h.rounds if r.closing is not None]
    for (a, ca), (b, cb) in itertools.pairwise(closings):
        if cb.position < ca.position:
            c.fail("round-sequence", b, f"round {b} closed before round {a}")
    if h.view is not None and h.view.round != min(len(closed), cfg.num_rounds):
        c.fail("round-sequence", None,
               f"the contract's view is at round {h.view.round} (block {h.view.block_number}), "
               f"the events close {len(closed)} round(s)")
    # Completion.
    c.count("completion")
    complete = len(closed) >= cfg.num_rounds
    if complete and h.completion is None:
        c.fail("completion", None, f"all {cfg.num_rounds} rounds closed, no ExperimentCompleted")
    if h.completion is not None:
        if not complete:
            c.fail("completion", None, f"ExperimentCompleted logged after {len(closed)} of "
                                       f"{cfg.num_rounds} rounds")
        else:
            last = next(r for r in h.rounds if r.round == cfg.num_rounds - 1)
            if last.closing is not None and last.closing.tx_hash != h.completion.tx_hash:
                c.fail("completion", last.round,
                       f"ExperimentCompleted in tx {h.completion.tx_hash}, not in the last "
                       f"round's closing tx {last.closing.tx_hash}")


def _check_round(h: History, r: RoundHistory, c: _Checker) -> None:
    cfg = h.config
    n = len(cfg.learners)
    scheduled = cfg.proposer(r.round)
    p = r.proposal
    # proposer-schedule
    if p is not None:
        c.count("proposer-schedule")
        if p.proposer != scheduled:
            c.fail("proposer-schedule", r.round,
                   f"proposed by {p.proposer}, but learners[{r.round} % {n}] is {scheduled}")
    # vote-eligibility
    seen: set[str] = set()
    closing = r.closing
    for v in r.votes:
        c.count("vote-eligibility")
        problem = None
        if v.learner_index < 0 or v.voter not in cfg.learners:
            problem = "is not a learner of the experiment"
        elif v.voter == scheduled:
            problem = "is the round's proposer, who does not vote"
        elif v.voter in seen:
            problem = "voted twice"
        elif p is None or v.position < p.position:
            problem = "voted before any proposal"
        elif closing is not None and v.position > closing.position:
            problem = "voted after the round closed"
        if problem:
            c.fail("vote-eligibility", r.round, f"{v.voter} {problem} (tx {v.tx_hash})")
        seen.add(v.voter)
    approvals = sum(1 for v in r.votes if v.approve)
    rejections = len(r.votes) - approvals
    d = r.decision
    if d is not None:
        # tally-mismatch
        c.count("tally-mismatch")
        if (d.approvals, d.rejections) != (approvals, rejections):
            c.fail("tally-mismatch", r.round,
                   f"RoundDecided says {d.approvals} approve / {d.rejections} reject, the "
                   f"round's votes are {approvals} / {rejections}")
        # decision-rule, on the votes themselves
        c.count("decision-rule")
        if p is None:
            c.fail("decision-rule", r.round, "decided without a proposal")
        else:
            should = approvals * BPS_DENOMINATOR >= cfg.threshold_bps * (n - 1)
            if d.accepted != should:
                c.fail("decision-rule", r.round,
                       f"{'accepted' if d.accepted else 'rejected'} with {approvals} of {n - 1} "
                       f"approving at threshold {cfg.threshold_bps} bps: the rule "
                       f"({approvals} * {BPS_DENOMINATOR} >= {cfg.threshold_bps} * {n - 1}) "
                       f"says {'accept' if should else 'reject'}")
    if r.expiry is not None:
        c.count("decision-rule")
        if p is not None:
            c.fail("decision-rule", r.round, "expired although a proposal was made")
    _check_timing(h, r, approvals + rejections, c)


def _check_timing(h: History, r: RoundHistory, ballots: int, c: _Checker) -> None:
    cfg = h.config
    start = _round_start(h, r.round)
    p = r.proposal
    if p is not None and start is not None:
        c.count("timing")
        if p.timestamp >= start + cfg.proposal_timeout:
            c.fail("timing", r.round, f"proposed at {p.timestamp}, not before the proposal "
                                      f"deadline {start + cfg.proposal_timeout}")
    if p is not None:
        deadline = p.timestamp + cfg.voting_timeout
        for v in r.votes:
            c.count("timing")
            if v.timestamp >= deadline:
                c.fail("timing", r.round, f"{v.voter} voted at {v.timestamp}, not before the "
                                          f"voting deadline {deadline}")
        d = r.decision
        if d is not None and ballots < len(cfg.learners) - 1:
            c.count("timing")
            if d.timestamp < deadline:
                c.fail("timing", r.round,
                       f"decided at {d.timestamp} with {ballots} of {len(cfg.learners) - 1} "
                       f"votes, before the voting deadline {deadline}")
    if r.expiry is not None and start is not None:
        c.count("timing")
        if r.expiry.timestamp < start + cfg.proposal_timeout:
            c.fail("timing", r.round, f"expired at {r.expiry.timestamp}, before the proposal "
                                      f"deadline {start + cfg.proposal_timeout}")


def expected_model(h: History) -> tuple[str, int, str]:
    """(digest, model round, CID) of the current model by the events: the last accepted
    proposal, or the initial model."""
    digest, model_round, cid = h.config.initial_digest, 0, h.config.initial_cid
    for r in h.rounds:
        if r.decision is not None and r.decision.accepted and r.proposal is not None:
            digest, model_round, cid = r.proposal.digest, r.round + 1, r.proposal.cid
    return digest, model_round, cid


def _check_model_chain(h: History, c: _Checker) -> None:
    digest, model_round, _ = expected_model(h)
    where = (f"round {model_round - 1}'s accepted proposal" if model_round else "the initial model")
    if h.completion is not None:
        c.count("model-chain")
        got = (h.completion.model_digest, h.completion.model_round)
        if got != (digest, model_round):
            c.fail("model-chain", None,
                   f"ExperimentCompleted names model {got[0]} (model round {got[1]}), but the "
                   f"last accepted is {where}: {digest}")
    if h.view is not None:
        c.count("model-chain")
        got = (h.view.model_digest, h.view.model_round)
        if got != (digest, model_round):
            c.fail("model-chain", None,
                   f"the contract's current model at block {h.view.block_number} is {got[0]} "
                   f"(model round {got[1]}), but the last accepted is {where}: {digest}")


# ------------------------------------------------------------------------ the store


def check_store(h: History, store: WeightStore, c: _Checker,
                timeout: float = STORE_TIMEOUT) -> None:
    """Every proposal's weights (and the initial model's) are in the store and hash to
    their on-chain digest; the final model loads."""
    items: list[tuple[int | None, str, str]] = [(None, h.config.initial_cid,
                                                    h.config.initial_digest)]
    items += [(r.round, r.proposal.cid, r.proposal.digest) for r in h.rounds if r.proposal]
    loaded: dict[str, bytes | None] = {}
    for round_index, cid, digest in items:
        what = "the initial model" if round_index is None else f"round {round_index}'s proposal"
        c.count("weights-missing")
        c.count("weights-digest")
        data = _fetch(store, cid, what, round_index, c, timeout)
        loaded[cid] = data
        if data is None:
            continue
        actual = "0x" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            c.fail("weights-digest", round_index,
                   f"{what} ({cid}) hashes to {actual}, the chain says {digest}")
            loaded[cid] = None
    _, _, final_cid = expected_model(h)
    c.count("final-model-unloadable")
    data = loaded.get(final_cid)
    if data is None:
        c.fail("final-model-unloadable", None,
               f"the final model {final_cid} could not be fetched intact from the store")
        return
    try:
        weights = decode_weights(data)
        arrays = weights.values() if isinstance(weights, dict) else weights
        for array in arrays:
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise WeightsFormatError("it holds NaN or Inf")
    except WeightsFormatError as exc:
        c.fail("final-model-unloadable", None, f"the final model {final_cid} does not load: {exc}")


def _fetch(store: WeightStore, cid: str, what: str, round_index: int | None, c: _Checker,
           timeout: float) -> bytes | None:
    try:
        return store.get(cid, timeout=timeout)
    except ContentNotFound:
        c.fail("weights-missing", round_index, f"{what}: the store has nothing for {cid}")
    except ContentMismatch as exc:
        c.fail("weights-digest", round_index,
               f"{what}: the store's bytes for {cid} hash to {exc.actual}, not to that CID")
    except WeightStoreError as exc:
        c.fail("weights-missing", round_index, f"{what}: cannot fetch {cid}: {exc}")
    return None


# ------------------------------------------------------------- results file (the demo)


def results_rows(h: History) -> list[dict[str, Any]]:
    """The closed rounds as the demo's results.json lists them (``agents.history``'s rows),
    rebuilt from the chain. A round's ``gas.total`` counts each transaction once."""
    rows = []
    for r in h.rounds:
        if not r.closed:
            continue
        gas_of = {tx.hash: tx.gas_used for tx in r.txs}
        p, d = r.proposal, r.decision
        votes = [VoteRow(learner=v.voter, learner_index=v.learner_index, approve=v.approve,
                         vote_score=v.vote_score, tx_hash=v.tx_hash, gas=gas_of.get(v.tx_hash, 0))
                 for v in r.votes]
        closing = r.closing
        assert closing is not None
        own = {p.tx_hash if p else None, *(v.tx_hash for v in r.votes)}
        close_gas = gas_of.get(closing.tx_hash) if closing.tx_hash not in own else None
        row = RoundRow(
            round=r.round, proposer=r.proposer, proposer_index=r.proposer_index,
            cid=p.cid if p else None, digest=p.digest if p else None,
            accepted=d.accepted if d else None, expired=r.expiry is not None,
            approvals=d.approvals if d else 0, rejections=d.rejections if d else 0,
            votes=votes, propose_tx=p.tx_hash if p else None, close_tx=closing.tx_hash,
            gas=RoundGas(propose=gas_of.get(p.tx_hash) if p else None,
                         votes=[v.gas for v in votes], close=close_gas, total=r.gas))
        rows.append(row.model_dump(exclude={"close_block"}))
    return rows


def results_summary(h: History) -> dict[str, Any]:
    """Every chain number of the demo's results.json, rebuilt from the chain."""
    digest, model_round, _ = expected_model(h)
    rows = results_rows(h)
    return {"chain_id": h.chain_id, "contract": h.contract, "experiment_id": h.experiment_id,
            "rounds": rows, "final_model": {"digest": digest, "model_round": model_round},
            "total_gas": sum(r["gas"]["total"] for r in rows)}


def compare_results(h: History, path: Path, c: _Checker) -> list[str]:
    """Compares a results file with the chain, naming each row and field that differs;
    returns the file's fields that are not on chain (not compared)."""
    try:
        claimed = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None
    if not isinstance(claimed, dict) or not isinstance(claimed.get("rounds"), list):
        raise ValueError(f"{path} is not a results file (no 'rounds' list)")  # noqa: TRY004
    truth = results_summary(h)
    off_chain = sorted({k for k in claimed if k in OFF_CHAIN_FIELDS}
                       | {k for row in claimed["rounds"] if isinstance(row, dict)
                          for k in row if k in OFF_CHAIN_FIELDS})
    for key in ("chain_id", "contract", "experiment_id", "final_model", "total_gas"):
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


def _ranges(values: list[int]) -> str:
    if not values:
        return "none"
    parts, start, prev = [], values[0], values[0]
    for v in values[1:] + [None]:  # type: ignore[list-item]
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)


# -------------------------------------------------------------------------- the audit


def audit_history(history: History, *, store: WeightStore | None = None,
                  store_url: str | None = None, compare: Path | None = None,
                  store_timeout: float = STORE_TIMEOUT,
                  clock: Callable[[], float] | None = None) -> AuditReport:
    """Runs every check that applies: the chain's always, the store's with ``store``, the
    results file's with ``compare``."""
    import time

    clock = clock or time.perf_counter
    started = clock()
    c = _Checker()
    check_history(history, c)
    if store is not None:
        check_store(history, store, c, store_timeout)
    off_chain: list[str] = []
    if compare is not None:
        off_chain = compare_results(history, compare, c)
    return AuditReport(history=history, violations=c.violations, checks=c.summaries(),
                       store=store_url, compared=str(compare) if compare else None,
                       off_chain_fields=off_chain, seconds=clock() - started)

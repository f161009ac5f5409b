"""The audit's checks: what PROTOCOL.md requires of a history, each violation named.

Every check reads a :class:`agents.audit.reader.History` (events and the contract's views at the
audited block), optionally the weight store and a results file; none trusts an agent.
Violation codes are stable identifiers (:data:`CODES`); each comes with the round it
concerns, if any, and a message for people.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from agents.audit.ledger import Account, Ledger, ledger
from agents.audit.reader import (
    ChainView,
    Commit,
    Completion,
    EventRef,
    History,
    RoundHistory,
    Vote,
)
from agents.chain.signing import VoteOpening, vote_commitment
from agents.chain.types import (
    MAX_AMOUNT,
    MAX_LEARNERS,
    MAX_ROUNDS,
    MAX_THRESHOLD_BPS,
    MAX_TIMEOUT,
    MIN_LEARNERS,
    ZERO_ADDRESS,
    ExperimentOptions,
)
from agents.storage.store import ContentMismatch, ContentNotFound, WeightStore, WeightStoreError
from colearn_core.codec import WeightsFormatError, decode_weights
from colearn_core.decision import BPS_DENOMINATOR

log = logging.getLogger(__name__)

#: Violation codes, and what each check verifies.
CODES: dict[str, str] = {
    "event-format": "every log of the experiment decodes as the contract's event "
                    "(topic count, data length and encoding)",
    "configuration": "ExperimentCreated is logged once, with a configuration the contract "
                     "accepts: 2-500 distinct non-zero learners, threshold at most 10000 bps, "
                     "1 to 2^24 - 1 rounds, join, proposal and voting timeouts of 1 s to 30 "
                     "days, an initial CID and digest",
    "contract-view": "the contract's views answer at the audited block, within the "
                     "contract's bounds, and agree with the configuration",
    "join": "each join comes from a listed learner, once, before the join deadline "
            "(creation + join timeout) and before the start; the contract's join count agrees",
    "start": "ExperimentStarted is logged once, in the transaction of the last join (every "
             "learner joined); no round event comes before it; round 0 starts at its time",
    "cancellation": "ExperimentCancelled only after the join deadline with a learner "
                    "missing, once, never after a start, and nothing of a round after it",
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
    "sealed-votes": "sealed votes: each voter other than the proposer commits once, after "
                    "the proposal and before the commit deadline (proposal + voting timeout); "
                    "CommitsComplete once, in the transaction of the last voter's commitment; "
                    "every counted vote is the reveal of an earlier commitment, in the reveal "
                    "window (from the commit deadline or CommitsComplete to the commit "
                    "deadline + reveal timeout); a round with commitments left unrevealed is "
                    "decided only after the reveal deadline. Public votes: no commitment",
    "reveal-opening": "each reveal's opening (approve, score and salt, read from the "
                      "revealing transaction's calldata) is the VoteCast's vote and hashes to "
                      "its voter's commitment on the round's proposal",
    "vote-proposal": "each public vote names the round's proposal digest, and its "
                     "transaction's calldata holds the VoteCast's vote",
    "vote-skipped": "each VoteSkipped names a voter whose vote, commitment or reveal was "
                    "already on chain in that round",
    "penalty": "penalties only in a staked experiment, exactly when due (missed proposal: "
               "in the expiry; unrevealed vote: at the decision, for each committer without "
               "a reveal; rejected proposal: when rejected by at least rejection_share_bps of "
               "the n - 1 voters), each the fixed amount capped at what is left of the stake",
    "deposit": "deposits only in a staked experiment: the reward pool by the creator at "
               "creation, the stake by each learner in its join, nothing else",
    "withdrawal": "withdrawals only once the experiment completed or was cancelled, once "
                  "an account, each of what it is owed (stake - penalties + its shares of "
                  "each pool part; the creator: the parts nobody has a share of; cancelled: "
                  "the deposits back); never more paid than deposited, and only rounding "
                  "dust left once everyone withdrew",
}
STORE_TIMEOUT = 30.0
_SHOWN = 20  # ranges of rounds named in one message, at most


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
    _check_format(history, c)
    _check_configuration(history, c)
    _check_view(history, c)
    _check_joining(history, c)
    _check_sequence(history, c)
    for r in history.rounds:
        _check_round(history, r, c)
        _check_sealed(history, r, c)
    _check_model_chain(history, c)
    _check_money(history, c)
    return c.violations


def _round_start(history: History, r: int) -> int | None:
    """When round r started: the start's time (the last join's), or the previous round's
    close."""
    if r == 0:
        return history.start.timestamp if history.start is not None else None
    previous = _by_round(history).get(r - 1)
    closing = previous.closing if previous is not None else None
    return closing.timestamp if closing is not None else None


def _by_round(history: History) -> dict[int, RoundHistory]:
    return {r.round: r for r in history.rounds}


def _check_format(h: History, c: _Checker) -> None:
    logged = 1 + sum(len(_positions(r)) for r in h.rounds) + (h.completion is not None) \
        + len(h.joins) + (h.start is not None) + (h.cancellation is not None) \
        + len(h.deposits) + len(h.withdrawals)
    c.count("event-format", logged + len(h.duplicates) + len(h.malformed))
    for m in h.malformed:
        c.fail("event-format", None, f"{m.event} log in block {m.block_number} (tx {m.tx_hash}, "
                                     f"log {m.log_index}): {m.reason}")


def _check_configuration(h: History, c: _Checker) -> None:
    cfg = h.config
    c.count("configuration")
    problems = []
    n = len(cfg.learners)
    if not MIN_LEARNERS <= n <= MAX_LEARNERS:
        problems.append(f"{n} learners, not {MIN_LEARNERS} to {MAX_LEARNERS}")
    if len(set(cfg.learners)) != n:
        problems.append("a learner is listed twice")
    if "0x" + "0" * 40 in cfg.learners:
        problems.append("the zero address is a learner")
    if cfg.threshold_bps > MAX_THRESHOLD_BPS:
        problems.append(f"threshold {cfg.threshold_bps} bps, above {MAX_THRESHOLD_BPS}")
    if not 1 <= cfg.num_rounds <= MAX_ROUNDS:
        problems.append(f"{cfg.num_rounds} rounds, not 1 to {MAX_ROUNDS}")
    for what, value in (("proposal", cfg.proposal_timeout), ("voting", cfg.voting_timeout),
                        ("join", cfg.join_timeout)):
        if not 1 <= value <= MAX_TIMEOUT:
            problems.append(f"{what} timeout {value} s, not 1 to {MAX_TIMEOUT}")
    if not cfg.initial_cid:
        problems.append("no initial CID")
    if cfg.initial_digest == "0x" + "00" * 32:
        problems.append("a zero initial digest")
    problems += _terms_problems(cfg.options)
    if problems:
        c.fail("configuration", None, "ExperimentCreated: " + "; ".join(problems) + ": the "
                                      "contract refuses such an experiment")
    for d in h.duplicates:
        if d.event == "ExperimentCreated":
            c.fail("configuration", None, f"ExperimentCreated logged again in block "
                                          f"{d.block_number} (tx {d.tx_hash})")


def _check_view(h: History, c: _Checker) -> None:
    c.count("contract-view")
    v, cfg = h.view, h.config
    if v is None:
        if h.view_error is not None:
            c.fail("contract-view", None, f"the contract's views fail at the audited block: "
                                          f"{h.view_error}")
        return
    if v.round > MAX_ROUNDS or v.model_round > MAX_ROUNDS:
        c.fail("contract-view", None,
               f"the contract's view says round {v.round}, model round {v.model_round}: the "
               f"contract stores both in 24 bits (at most {MAX_ROUNDS})")
    for what, viewed, logged in (("learners", v.num_learners, len(cfg.learners)),
                                 ("rounds", v.num_rounds, cfg.num_rounds),
                                 ("seconds of reveal timeout", v.reveal_timeout,
                                  cfg.options.reveal_timeout),
                                 ("(staked: 1)", None if v.staked is None else int(v.staked),
                                  int(cfg.options.staked))):
        if viewed is not None and viewed != logged:
            c.fail("contract-view", None, f"the contract's view says {viewed} {what}, "
                                          f"ExperimentCreated {logged}")


def _check_joining(h: History, c: _Checker) -> None:
    cfg = h.config
    n = len(cfg.learners)
    start, cancelled = h.start, h.cancellation
    seen: set[str] = set()
    for j in h.joins:
        c.count("join")
        problem = None
        if j.learner_index < 0:
            problem = "is not a learner of the experiment"
        elif j.learner in seen:
            problem = "joined twice"
        elif j.position < cfg.position:
            problem = "joined before the experiment was created"
        elif j.timestamp >= cfg.join_deadline:
            problem = f"joined at {j.timestamp}, not before the join deadline {cfg.join_deadline}"
        elif start is not None and j.position > start.position:
            problem = "joined after the experiment started"
        elif cancelled is not None and j.position > cancelled.position:
            problem = "joined after the experiment was cancelled"
        if problem:
            c.fail("join", None, f"{j.learner} {problem} (tx {j.tx_hash})")
        seen.add(j.learner)
    if h.view is not None and h.view.joined is not None:
        c.count("join")
        if h.view.joined != len(seen & set(cfg.learners)):
            c.fail("join", None, f"the contract's view counts {h.view.joined} joins, the "
                                 f"events {len(seen & set(cfg.learners))}")
    # start
    c.count("start")
    events = [e for r in h.rounds for _, e in _positions(r)]
    if start is None:
        if events:
            first = min(events, key=lambda e: e.position)
            c.fail("start", None, f"round events (from tx {first.tx_hash}) but no "
                                  f"ExperimentStarted: rounds run only once every learner joined")
    else:
        joined = [j for j in h.joins if j.position < start.position]
        last = joined[-1] if joined else None
        learners = len({j.learner for j in joined} & set(cfg.learners))
        if learners < n:
            c.fail("start", None, f"ExperimentStarted (tx {start.tx_hash}) after {learners} of "
                                  f"{n} learners joined: it starts with the last join")
        elif last is None or last.tx_hash != start.tx_hash:
            c.fail("start", None, f"ExperimentStarted in tx {start.tx_hash}, not in the last "
                                  f"join's transaction")
        early = [e for e in events if e.position < start.position]
        if early:
            c.fail("start", None, f"{len(early)} round event(s) logged before the experiment "
                                  f"started (first in tx {early[0].tx_hash})")
    for d in h.duplicates:
        if d.event == "ExperimentStarted":
            c.fail("start", None, f"ExperimentStarted logged again in block {d.block_number} "
                                  f"(tx {d.tx_hash})")
    # cancellation
    c.count("cancellation")
    if cancelled is not None:
        before = {j.learner for j in h.joins if j.position < cancelled.position}
        if cancelled.timestamp < cfg.join_deadline:
            c.fail("cancellation", None, f"cancelled at {cancelled.timestamp}, before the join "
                                         f"deadline {cfg.join_deadline}")
        if start is not None:
            c.fail("cancellation", None, "cancelled although the experiment started")
        elif len(before & set(cfg.learners)) >= n:
            c.fail("cancellation", None, "cancelled although every learner had joined")
        after = [e for e in events if e.position > cancelled.position]
        if after:
            c.fail("cancellation", None, f"{len(after)} round event(s) after the cancellation")
    for d in h.duplicates:
        if d.event == "ExperimentCancelled":
            c.fail("cancellation", None, f"ExperimentCancelled logged again in block "
                                         f"{d.block_number} (tx {d.tx_hash})")


def _positions(r: RoundHistory) -> list[tuple[str, EventRef]]:
    out: list[tuple[str, EventRef]] = [("WeightsProposed", r.proposal)] if r.proposal else []
    out += [("VoteCast", v) for v in r.votes]
    out += [("VoteCommitted", v) for v in r.commits]
    out += [("CommitsComplete", r.commits_complete)] if r.commits_complete else []
    out += [("VoteSkipped", v) for v in r.skipped]
    out += [("PenaltyTaken", v) for v in r.penalties]
    out += [("RoundDecided", r.decision)] if r.decision else []
    out += [("RoundExpired", r.expiry)] if r.expiry else []
    return out


def _check_sequence(h: History, c: _Checker) -> None:
    cfg = h.config
    c.count("round-sequence", len(h.rounds))
    closed = [r.round for r in h.rounds if r.closed]  # sorted: rounds are in round order
    if closed != list(range(len(closed))):
        # The gaps, as ranges: never one item per missing round (a round may be 2^256 - 1).
        gaps = [(a + 1, b - 1) for a, b in itertools.pairwise([-1, *closed]) if b > a + 1]
        shown = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in gaps[:_SHOWN])
        more = f" (and {len(gaps) - _SHOWN} more gaps)" if len(gaps) > _SHOWN else ""
        c.fail("round-sequence", gaps[0][0] if gaps else None,
               f"closed rounds are {_ranges(closed)}, not 0..{len(closed) - 1}: round(s) "
               f"{shown}{more} never closed")
    for r in h.rounds:
        if r.round > MAX_ROUNDS - 1:
            c.fail("round-sequence", r.round,
                   f"events for round {r.round}: the contract counts rounds in 24 bits, its "
                   f"last possible round is {MAX_ROUNDS - 1}")
        elif r.round >= cfg.num_rounds:
            c.fail("round-sequence", r.round,
                   f"events for round {r.round}, beyond the experiment's {cfg.num_rounds} rounds")
        early = [name for name, e in _positions(r) if e.position < cfg.position]
        if early:
            c.fail("round-sequence", r.round, f"{', '.join(sorted(set(early)))} logged before "
                                              f"the experiment was created")
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
    for d in h.duplicates:
        if d.event == "ExperimentCompleted":
            c.fail("completion", None, f"ExperimentCompleted logged again in block "
                                       f"{d.block_number} (tx {d.tx_hash})")
    if h.completion is not None:
        if not complete:
            c.fail("completion", None, f"ExperimentCompleted logged after {len(closed)} of "
                                       f"{cfg.num_rounds} rounds")
        else:
            last = _by_round(h).get(cfg.num_rounds - 1)
            if last is None:
                c.fail("completion", None, f"ExperimentCompleted logged, and the last round "
                                           f"({cfg.num_rounds - 1}) has no events")
            elif last.closing is not None and last.closing.tx_hash != h.completion.tx_hash:
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
        if v.learner_index < 0:
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
        elif d.position < p.position:
            c.fail("decision-rule", r.round, "decided before its proposal was logged")
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
    if p is not None and not cfg.options.sealed:  # sealed votes: see _check_sealed
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
    claims: list[tuple[str, Completion | ChainView]] = []
    if h.completion is not None:
        claims.append(("ExperimentCompleted names model", h.completion))
    if h.view is not None:
        claims.append((f"the contract's current model at block {h.view.block_number} is",
                       h.view))
    for claimant, claim in claims:
        c.count("model-chain")
        if (claim.model_digest, claim.model_round) != (digest, model_round):
            c.fail("model-chain", None,
                   f"{claimant} {claim.model_digest} (model round {claim.model_round}), but "
                   f"the last accepted is {where}: {digest}")


# ------------------------------------------------------ sealed votes, stake (v2)


def _terms_problems(o: ExperimentOptions) -> list[str]:
    """What the contract's ``_checkTerms`` would refuse in the logged terms."""
    problems = []
    if o.reveal_timeout > MAX_TIMEOUT:
        problems.append(f"reveal timeout {o.reveal_timeout} s, above {MAX_TIMEOUT}")
    stake_fields = ("missed_proposal_penalty", "unrevealed_vote_penalty",
                    "rejected_proposal_penalty", "rejection_share_bps", "proposer_share_bps")
    if not o.staked:
        extra = [f for f in stake_fields if getattr(o, f)]
        if o.token.lower() != ZERO_ADDRESS:
            extra.insert(0, "token")
        if extra:
            problems.append(f"no stake nor reward pool, yet {', '.join(extra)} set")
        return problems
    for field in ("stake", "reward_pool", "missed_proposal_penalty", "unrevealed_vote_penalty",
                  "rejected_proposal_penalty"):
        if getattr(o, field) > MAX_AMOUNT:
            problems.append(f"{field} above 2^96 - 1")
    for field in ("rejection_share_bps", "proposer_share_bps"):
        if getattr(o, field) > MAX_THRESHOLD_BPS:
            problems.append(f"{field} {getattr(o, field)}, above {MAX_THRESHOLD_BPS}")
    return problems


def _eligible_commits(h: History, r: RoundHistory) -> dict[str, Commit]:
    """The first commitment of each learner other than the proposer, made after the
    proposal and before the round closed (the others are violations of their own)."""
    p, closing = r.proposal, r.closing
    out: dict[str, Commit] = {}
    for cm in r.commits:
        if (cm.learner_index >= 0 and cm.voter != r.proposer and p is not None
                and cm.position > p.position
                and (closing is None or cm.position < closing.position)):
            out.setdefault(cm.voter, cm)
    return out


def _check_sealed(h: History, r: RoundHistory, c: _Checker) -> None:
    """Commitments, reveals and their openings (sealed votes); the digest a public vote
    names; skipped votes."""
    cfg = h.config
    o = cfg.options
    p, closing, done = r.proposal, r.closing, r.commits_complete
    for s in r.skipped:
        c.count("vote-skipped")
        earlier = [e for e in [*r.votes, *r.commits] if e.voter == s.voter  # type: ignore[attr-defined]
                   and e.position < s.position]
        if not earlier:
            c.fail("vote-skipped", r.round, f"VoteSkipped for {s.voter} (tx {s.tx_hash}), who "
                                            f"had neither voted nor committed before")
    if not o.sealed:
        if r.commits or done is not None:
            c.count("sealed-votes")
            c.fail("sealed-votes", r.round, f"{len(r.commits)} commitment(s)"
                                            f"{' and CommitsComplete' if done else ''} in an "
                                            f"experiment with public votes")
        if p is not None:
            for v in r.votes:
                _check_public_call(h, r, v, c)
        return
    voters = len(cfg.learners) - 1
    seen: set[str] = set()
    for cm in r.commits:
        c.count("sealed-votes")
        problem = None
        if cm.learner_index < 0:
            problem = "is not a learner of the experiment"
        elif cm.voter == r.proposer:
            problem = "is the round's proposer, who does not vote"
        elif cm.voter in seen:
            problem = "committed twice"
        elif p is None or cm.position < p.position:
            problem = "committed before any proposal"
        elif cm.timestamp >= p.timestamp + cfg.voting_timeout:
            problem = (f"committed at {cm.timestamp}, not before the commit deadline "
                       f"{p.timestamp + cfg.voting_timeout}")
        elif done is not None and cm.position > done.position:
            problem = "committed after CommitsComplete"
        elif closing is not None and cm.position > closing.position:
            problem = "committed after the round closed"
        if problem:
            c.fail("sealed-votes", r.round, f"{cm.voter} {problem} (tx {cm.tx_hash})")
        seen.add(cm.voter)
    committed = _eligible_commits(h, r)
    if done is not None:
        c.count("sealed-votes")
        before = [cm for cm in committed.values() if cm.position < done.position]
        if len(before) < voters:
            c.fail("sealed-votes", r.round, f"CommitsComplete (tx {done.tx_hash}) after "
                                            f"{len(before)} of {voters} commitments")
        elif max(before, key=lambda cm: cm.position).tx_hash != done.tx_hash:
            c.fail("sealed-votes", r.round, f"CommitsComplete in tx {done.tx_hash}, not in "
                                            f"the last commitment's transaction")
    elif len(committed) >= voters > 0:
        c.count("sealed-votes")
        c.fail("sealed-votes", r.round, f"all {voters} voters committed, no CommitsComplete")
    if p is None:  # votes without a proposal: vote-eligibility names them
        return
    commit_deadline = p.timestamp + cfg.voting_timeout
    reveal_deadline = commit_deadline + o.reveal_timeout
    for v in r.votes:
        c.count("sealed-votes")
        commit = committed.get(v.voter)
        problem = None
        if commit is None:
            problem = "revealed a vote it never committed"
        elif v.position < commit.position:
            problem = "revealed before committing"
        elif done is None and v.timestamp < commit_deadline:
            problem = (f"revealed at {v.timestamp}, before the reveal window opened (commit "
                       f"deadline {commit_deadline}, no CommitsComplete)")
        elif done is not None and v.position < done.position:
            problem = "revealed before CommitsComplete opened the reveal window"
        elif v.timestamp >= reveal_deadline:
            problem = (f"revealed at {v.timestamp}, not before the reveal deadline "
                       f"{reveal_deadline}")
        if problem:
            c.fail("sealed-votes", r.round, f"{v.voter} {problem} (tx {v.tx_hash})")
        elif commit is not None:
            _check_opening(h, r, v, commit, c)
    d = r.decision
    if d is not None:
        revealed = {v.voter for v in r.votes} & set(committed)
        if len(revealed) < len(committed) or not committed:
            c.count("sealed-votes")
            if d.timestamp < reveal_deadline:
                c.fail("sealed-votes", r.round,
                       f"decided at {d.timestamp} with {len(revealed)} of {len(committed)} "
                       f"commitments revealed, before the reveal deadline {reveal_deadline}")


def _check_opening(h: History, r: RoundHistory, v: Vote, cm: Commit, c: _Checker) -> None:
    c.count("reveal-opening")
    call, p = v.call, r.proposal
    assert p is not None
    where = f"{v.voter}'s reveal (tx {v.tx_hash})"
    if call is None:
        if v.call_problem is not None and v.call_direct:
            c.fail("reveal-opening", r.round, f"{where}: {v.call_problem}")
        return  # sent through another contract, or not read: not verifiable from calldata
    if call.salt is None:
        c.fail("reveal-opening", r.round, f"{where} is a {call.function} call, not a reveal")
        return
    if (call.experiment_id, call.round) != (h.config.experiment_id, r.round):
        c.fail("reveal-opening", r.round, f"{where} calls {call.function} for experiment "
                                          f"{call.experiment_id} round {call.round}")
        return
    if (call.approve, call.score) != (v.approve, v.score):
        c.fail("reveal-opening", r.round,
               f"{where} opens approve={call.approve} score={call.score}, VoteCast says "
               f"approve={v.approve} score={v.score}")
        return
    try:
        opened = vote_commitment(h.config.experiment_id, r.round, v.voter,
                                 bytes.fromhex(p.digest[2:]),
                                 VoteOpening(approve=call.approve, score=call.score,
                                             salt=bytes.fromhex(call.salt[2:])))
    except (ValueError, TypeError) as exc:
        c.fail("reveal-opening", r.round, f"{where}: the opening does not hash: {exc}")
        return
    if "0x" + opened.hex() != cm.commitment.lower():
        c.fail("reveal-opening", r.round,
               f"{where} opens to 0x{opened.hex()} on proposal {p.digest}, not to its "
               f"commitment {cm.commitment} (tx {cm.tx_hash})")


def _check_public_call(h: History, r: RoundHistory, v: Vote, c: _Checker) -> None:
    c.count("vote-proposal")
    call, p = v.call, r.proposal
    assert p is not None
    where = f"{v.voter}'s vote (tx {v.tx_hash})"
    if call is None:
        if v.call_problem is not None and v.call_direct:
            c.fail("vote-proposal", r.round, f"{where}: {v.call_problem}")
        return
    if call.digest is None:
        c.fail("vote-proposal", r.round, f"{where} is a {call.function} call, not a vote")
    elif (call.experiment_id, call.round) != (h.config.experiment_id, r.round):
        c.fail("vote-proposal", r.round, f"{where} calls {call.function} for experiment "
                                         f"{call.experiment_id} round {call.round}")
    elif call.digest.lower() != p.digest.lower():
        c.fail("vote-proposal", r.round, f"{where} names digest {call.digest}, the round's "
                                         f"proposal is {p.digest}")
    elif (call.approve, call.score) != (v.approve, v.score):
        c.fail("vote-proposal", r.round,
               f"{where} sends approve={call.approve} score={call.score}, VoteCast says "
               f"approve={v.approve} score={v.score}")


def due_penalties(h: History) -> dict[int, list[tuple[str, str, int, str]]]:
    """The penalties the rule takes, per round: (learner, reason, amount, tx), each the
    fixed amount capped at what is left of the learner's stake, in closing order."""
    cfg, o = h.config, h.config.options
    n = len(cfg.learners)
    index = {a: i for i, a in reversed(list(enumerate(cfg.learners)))}
    taken: dict[str, int] = {}
    out: dict[int, list[tuple[str, str, int, str]]] = {}
    if not o.staked:
        return out
    closed = sorted((r for r in h.rounds if r.closing is not None),
                    key=lambda r: r.closing.position)  # type: ignore[union-attr]
    for r in closed:
        due: list[tuple[str, str, int, str]] = []
        if r.expiry is not None:
            if r.proposer:
                due.append((r.proposer, "missed_proposal", o.missed_proposal_penalty,
                            r.expiry.tx_hash))
        elif r.decision is not None:
            d = r.decision
            if o.sealed:
                revealed = {v.voter for v in r.votes}
                for voter in sorted(set(_eligible_commits(h, r)) - revealed, key=index.__getitem__):
                    due.append((voter, "unrevealed_vote", o.unrevealed_vote_penalty, d.tx_hash))
            if (not d.accepted and r.proposer
                    and d.rejections * BPS_DENOMINATOR >= o.rejection_share_bps * (n - 1)):
                due.append((r.proposer, "rejected_proposal", o.rejected_proposal_penalty,
                            d.tx_hash))
        rows = []
        for learner, reason, fixed, tx in due:
            amount = min(fixed, max(0, o.stake - taken.get(learner, 0)))
            if amount:
                rows.append((learner, reason, amount, tx))
                taken[learner] = taken.get(learner, 0) + amount
        out[r.round] = rows
    return out


def _check_money(h: History, c: _Checker) -> None:
    _check_penalties(h, c)
    _check_deposits(h, c)
    _check_withdrawals(h, c)


def _check_penalties(h: History, c: _Checker) -> None:
    o = h.config.options
    due = due_penalties(h)
    for r in h.rounds:
        expected = list(due.get(r.round, []))
        actual = [(p.learner, p.reason, p.amount, p.tx_hash) for p in r.penalties]
        if not expected and not actual:
            continue
        c.count("penalty", max(len(expected), len(actual)))
        if not o.staked:
            c.fail("penalty", r.round, f"{len(actual)} penalty(ies) in an experiment without "
                                       f"stake (first: {actual[0][0]}, tx {actual[0][3]})")
            continue
        extra = []
        for row in actual:
            if row in expected:
                expected.remove(row)
            else:
                extra.append(row)
        for learner, reason, amount, tx in extra:
            same = next((e for e in expected if e[:2] == (learner, reason)), None)
            if same is not None:
                expected.remove(same)
                c.fail("penalty", r.round, f"{reason} penalty of {amount} for {learner} (tx "
                                           f"{tx}): the rule takes {same[2]} in tx {same[3]} "
                                           f"(capped at what is left of the stake)")
            else:
                c.fail("penalty", r.round, f"{reason} penalty of {amount} for {learner} (tx "
                                           f"{tx}), which is not due")
        for learner, reason, amount, tx in expected:
            c.fail("penalty", r.round, f"no {reason} penalty for {learner}: {amount} is due "
                                       f"in tx {tx}")


def _check_deposits(h: History, c: _Checker) -> None:
    cfg, o = h.config, h.config.options
    expected: list[tuple[str, int, str]] = []
    if o.staked:
        if o.reward_pool:
            expected.append((cfg.creator, o.reward_pool, cfg.tx_hash))
        if o.stake:
            expected += [(j.learner, o.stake, j.tx_hash) for j in h.joins if j.learner_index >= 0]
    for d in h.deposits:
        c.count("deposit")
        row = (d.account, d.amount, d.tx_hash)
        if row in expected:
            expected.remove(row)
        elif not o.staked:
            c.fail("deposit", None, f"{d.account} deposited {d.amount} (tx {d.tx_hash}) in an "
                                    f"experiment without stake")
        else:
            c.fail("deposit", None, f"{d.account} deposited {d.amount} (tx {d.tx_hash}): "
                                    f"neither the reward pool ({o.reward_pool}) at creation "
                                    f"nor the stake ({o.stake}) in its join")
    for account, amount, tx in expected:
        c.count("deposit")
        what = "the reward pool" if tx == cfg.tx_hash else "its stake"
        c.fail("deposit", None, f"no deposit of {what} ({amount}) by {account} in tx {tx}")


def _check_withdrawals(h: History, c: _Checker) -> None:
    o = h.config.options
    book = ledger(h)
    end = h.cancellation or h.completion
    seen: set[str] = set()
    for w in h.withdrawals:
        c.count("withdrawal")
        account = book.account(w.account)
        problem = None
        if not o.staked:
            problem = "from an experiment without stake"
        elif end is None or w.position < end.position:
            problem = "before the experiment completed or was cancelled"
        elif account is None or not (account.joined or w.account == h.config.creator):
            problem = "by an account that neither joined nor created the experiment"
        elif w.account in seen:
            problem = "a second time"
        elif w.amount != account.owed:
            problem = (f"but is owed {account.owed} "
                       f"({_owed_terms(account, book, o.stake, h.config.creator)})")
        if problem:
            c.fail("withdrawal", None, f"{w.account} withdrew {w.amount} (tx {w.tx_hash}) "
                                       f"{problem}")
        seen.add(w.account)
    if not h.withdrawals:
        return
    c.count("withdrawal")
    if book.withdrawn > book.deposited:
        c.fail("withdrawal", None, f"{book.withdrawn} withdrawn, more than the {book.deposited} "
                                   f"deposited")
    elif book.finished and all(a.address in seen for a in book.accounts if a.owed):
        left = book.deposited - book.withdrawn
        if left > book.dust_bound:
            c.fail("withdrawal", None,
                   f"{left} left in the contract once everyone withdrew, more than rounding "
                   f"dust (at most {book.dust_bound}: one per shareholder and part)")


def _owed_terms(a: Account, book: Ledger, stake: int, creator: str) -> str:
    if book.finished == "cancelled":
        return "cancelled: the deposits back"
    parts = []
    if a.learner and a.joined:
        parts.append(f"stake {stake} - penalties {a.penalties} + {a.proposer_shares}/"
                     f"{book.proposer_shares} of {book.proposer_part} + {a.voter_shares}/"
                     f"{book.voter_shares} of {book.voter_part}")
    if a.address == creator:
        parts.append(f"pool parts with no shares: {book.creator_owed}")
    return "; ".join(parts) or "nothing"


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


def _ranges(values: list[int]) -> str:
    """Sorted integers as ranges ("0-4, 7"), the first :data:`_SHOWN` of them."""
    if not values:
        return "none"
    parts, start, prev = [], values[0], values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    more = f" (and {len(parts) - _SHOWN} more)" if len(parts) > _SHOWN else ""
    return ", ".join(parts[:_SHOWN]) + more


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
        from agents.audit.results import compare_results

        off_chain = compare_results(history, compare, c)
    return AuditReport(history=history, violations=c.violations, checks=c.summaries(),
                       store=store_url, compared=str(compare) if compare else None,
                       off_chain_fields=off_chain, seconds=clock() - started)

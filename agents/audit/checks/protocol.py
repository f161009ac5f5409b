"""The protocol's checks: configuration, views, joins, the start, rounds, votes, decisions,
timing and the model chain (PROTOCOL.md), on the events alone."""

from __future__ import annotations

import itertools

from agents.audit.checks.core import SHOWN, Checker, ranges
from agents.audit.checks.money import terms_problems
from agents.audit.history import ChainView, Completion, EventRef, History, RoundHistory
from agents.chain.types import (
    MAX_LEARNERS,
    MAX_ROUNDS,
    MAX_THRESHOLD_BPS,
    MAX_TIMEOUT,
    MIN_LEARNERS,
)
from colearn_core.decision import BPS_DENOMINATOR


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


def check_format(h: History, c: Checker) -> None:
    logged = 1 + sum(len(_positions(r)) for r in h.rounds) + (h.completion is not None) \
        + len(h.joins) + (h.start is not None) + (h.cancellation is not None) \
        + len(h.deposits) + len(h.withdrawals)
    c.count("event-format", logged + len(h.duplicates) + len(h.malformed))
    for m in h.malformed:
        c.fail("event-format", None, f"{m.event} log in block {m.block_number} (tx {m.tx_hash}, "
                                     f"log {m.log_index}): {m.reason}")


def check_configuration(h: History, c: Checker) -> None:
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
    problems += terms_problems(cfg.options)
    if problems:
        c.fail("configuration", None, "ExperimentCreated: " + "; ".join(problems) + ": the "
                                      "contract refuses such an experiment")
    for d in h.duplicates:
        if d.event == "ExperimentCreated":
            c.fail("configuration", None, f"ExperimentCreated logged again in block "
                                          f"{d.block_number} (tx {d.tx_hash})")


def check_view(h: History, c: Checker) -> None:
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


def check_joining(h: History, c: Checker) -> None:
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


def check_sequence(h: History, c: Checker) -> None:
    cfg = h.config
    c.count("round-sequence", len(h.rounds))
    closed = [r.round for r in h.rounds if r.closed]  # sorted: rounds are in round order
    if closed != list(range(len(closed))):
        # The gaps, as ranges: never one item per missing round (a round may be 2^256 - 1).
        gaps = [(a + 1, b - 1) for a, b in itertools.pairwise([-1, *closed]) if b > a + 1]
        shown = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in gaps[:SHOWN])
        more = f" (and {len(gaps) - SHOWN} more gaps)" if len(gaps) > SHOWN else ""
        c.fail("round-sequence", gaps[0][0] if gaps else None,
               f"closed rounds are {ranges(closed)}, not 0..{len(closed) - 1}: round(s) "
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


def check_round(h: History, r: RoundHistory, c: Checker) -> None:
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


def _check_timing(h: History, r: RoundHistory, ballots: int, c: Checker) -> None:
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


def check_model_chain(h: History, c: Checker) -> None:
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

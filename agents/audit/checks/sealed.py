"""Sealed votes' checks: commitments, CommitsComplete, reveals and their openings; the
digest a public vote names; skipped votes."""

from __future__ import annotations

from agents.audit.checks.core import Checker
from agents.audit.history import Commit, History, Proposal, RoundHistory, Vote, VoteCall
from agents.chain.signing import VoteOpening, vote_commitment


def eligible_commits(h: History, r: RoundHistory) -> dict[str, Commit]:
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


def check_sealed(h: History, r: RoundHistory, c: Checker) -> None:
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
    committed = eligible_commits(h, r)
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


def _vote_call(h: History, r: RoundHistory, v: Vote, c: Checker, code: str,
               what: str) -> tuple[VoteCall, str, Proposal] | None:
    """The call of a vote's transaction, and how messages name it, if it is the ``what``
    ("vote" or "reveal") of this experiment and round; None (the violation named) if not,
    or if it is not readable from calldata (sent through another contract: no violation)."""
    c.count(code)
    assert r.proposal is not None
    where = f"{v.voter}'s {what} (tx {v.tx_hash})"
    call = v.call
    if call is None:
        if v.call_problem is not None and v.call_direct:
            c.fail(code, r.round, f"{where}: {v.call_problem}")
        return None
    if (call.salt if what == "reveal" else call.digest) is None:
        c.fail(code, r.round, f"{where} is a {call.function} call, not a {what}")
        return None
    if (call.experiment_id, call.round) != (h.config.experiment_id, r.round):
        c.fail(code, r.round, f"{where} calls {call.function} for experiment "
                              f"{call.experiment_id} round {call.round}")
        return None
    return call, where, r.proposal


def _check_opening(h: History, r: RoundHistory, v: Vote, cm: Commit, c: Checker) -> None:
    read = _vote_call(h, r, v, c, "reveal-opening", "reveal")
    if read is None:
        return
    call, where, p = read
    assert call.salt is not None
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


def _check_public_call(h: History, r: RoundHistory, v: Vote, c: Checker) -> None:
    read = _vote_call(h, r, v, c, "vote-proposal", "vote")
    if read is None:
        return
    call, where, p = read
    assert call.digest is not None
    if call.digest.lower() != p.digest.lower():
        c.fail("vote-proposal", r.round, f"{where} names digest {call.digest}, the round's "
                                         f"proposal is {p.digest}")
    elif (call.approve, call.score) != (v.approve, v.score):
        c.fail("vote-proposal", r.round,
               f"{where} sends approve={call.approve} score={call.score}, VoteCast says "
               f"approve={v.approve} score={v.score}")

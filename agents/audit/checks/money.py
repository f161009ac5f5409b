"""Stake's checks: the terms, penalties, deposits and withdrawals against the ledger."""

from __future__ import annotations

from agents.audit.checks.core import Checker
from agents.audit.checks.sealed import eligible_commits
from agents.audit.history import History
from agents.audit.ledger import Account, Ledger, ledger
from agents.chain.types import (
    MAX_AMOUNT,
    MAX_THRESHOLD_BPS,
    MAX_TIMEOUT,
    ZERO_ADDRESS,
    ExperimentOptions,
)
from colearn_core.decision import BPS_DENOMINATOR


def terms_problems(o: ExperimentOptions) -> list[str]:
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
                for voter in sorted(set(eligible_commits(h, r)) - revealed,
                                   key=lambda a: index.get(a, n)):
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


def check_money(h: History, c: Checker) -> None:
    _check_penalties(h, c)
    _check_deposits(h, c)
    _check_withdrawals(h, c)


def _check_penalties(h: History, c: Checker) -> None:
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


def _check_deposits(h: History, c: Checker) -> None:
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


def _check_withdrawals(h: History, c: Checker) -> None:
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

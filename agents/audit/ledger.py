"""The money side of a staked experiment, rebuilt from its events alone: deposits,
penalties, shares of the pool, what each account is owed and what it withdrew.

PROTOCOL.md's payout (CollectiveLearning's ``withdraw``): the pool is the reward pool plus
the penalties taken; its proposers' part is ``pool * proposerShareBps // 10000``, shared
among proposers of accepted rounds (one share per accepted round), the voters' part is
the rest, shared among counted votes (public, or revealed); a learner gets its stake minus
its penalties plus ``part * its shares // all shares`` of each part; each part nobody has a
share of goes back to the creator. Cancelled: every deposit goes back. The rounding dust
stays in the contract.

Plain data, used by the audit's checks and by the explorer.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from agents.audit.history import History
from colearn_core.decision import BPS_DENOMINATOR


class Account(BaseModel):
    """One learner (or the creator) as the events tell it."""

    address: str
    learner: bool  # a listed learner
    joined: bool
    deposited: int = 0
    penalties: int = 0  # taken from its stake (PenaltyTaken, as logged)
    proposer_shares: int = 0  # accepted rounds it proposed
    voter_shares: int = 0  # its counted votes in decided rounds
    owed: int = 0  # what the formula gives it (so far, before the end)
    withdrawn: int = 0  # FundsWithdrawn, summed
    withdrawals: int = 0  # how many FundsWithdrawn


class Ledger(BaseModel):
    staked: bool
    finished: str | None = None  # "completed", "cancelled", or None (still running)
    reward_pool: int = 0
    penalties: int = 0  # taken so far
    pool: int = 0  # reward pool + penalties
    proposer_part: int = 0
    voter_part: int = 0
    proposer_shares: int = 0
    voter_shares: int = 0
    creator_owed: int = 0  # the pool parts nobody has a share of (cancelled: the reward pool)
    deposited: int = 0
    withdrawn: int = 0
    #: Rounding dust the contract may keep once everyone withdrew: under one wei per
    #: shareholder and part.
    dust_bound: int = 0
    accounts: list[Account] = Field(default_factory=list)  # learners in list order, then
    # the creator if it is not a learner

    def account(self, address: str) -> Account | None:
        return next((a for a in self.accounts if a.address == address), None)


def ledger(h: History) -> Ledger:
    """The experiment's money as its events tell it (every amount from the logs: a
    penalty or a withdrawal the contract should not have logged still counts here; the
    checks name it)."""
    cfg, o = h.config, h.config.options
    joined = {j.learner for j in h.joins}
    accounts: dict[str, Account] = {}
    for address in cfg.learners:
        accounts.setdefault(address, Account(address=address, learner=True,
                                             joined=address in joined))
    if cfg.creator not in accounts:
        accounts[cfg.creator] = Account(address=cfg.creator, learner=False, joined=False)
    out = Ledger(staked=o.staked, reward_pool=o.reward_pool)
    if h.cancellation is not None:
        out.finished = "cancelled"
    elif h.completion is not None:
        out.finished = "completed"
    for d in h.deposits:
        out.deposited += d.amount
        if d.account in accounts:
            accounts[d.account].deposited += d.amount
    for w in h.withdrawals:
        out.withdrawn += w.amount
        if w.account in accounts:
            accounts[w.account].withdrawn += w.amount
            accounts[w.account].withdrawals += 1
    for r in h.rounds:
        for p in r.penalties:
            out.penalties += p.amount
            if p.learner in accounts:
                accounts[p.learner].penalties += p.amount
        if r.decision is None:
            continue
        if r.decision.accepted and r.proposer in accounts:
            accounts[r.proposer].proposer_shares += 1
            out.proposer_shares += 1
        for v in r.votes:
            if v.voter in accounts and accounts[v.voter].learner:
                accounts[v.voter].voter_shares += 1
                out.voter_shares += 1
    out.pool = o.reward_pool + out.penalties
    out.proposer_part = out.pool * o.proposer_share_bps // BPS_DENOMINATOR
    out.voter_part = out.pool - out.proposer_part
    if out.finished == "cancelled":
        out.creator_owed = o.reward_pool
    else:
        out.creator_owed = ((out.proposer_part if out.proposer_shares == 0 else 0)
                            + (out.voter_part if out.voter_shares == 0 else 0))
    for a in accounts.values():
        if a.learner and a.joined and o.staked:
            if out.finished == "cancelled":
                a.owed = o.stake
            else:
                a.owed = max(0, o.stake - a.penalties)
                if out.proposer_shares:
                    a.owed += out.proposer_part * a.proposer_shares // out.proposer_shares
                if out.voter_shares:
                    a.owed += out.voter_part * a.voter_shares // out.voter_shares
        if a.address == cfg.creator and o.staked:
            a.owed += out.creator_owed
    if out.finished == "completed":
        out.dust_bound = (sum(1 for a in accounts.values() if a.proposer_shares)
                          + sum(1 for a in accounts.values() if a.voter_shares))
    out.accounts = list(accounts.values())
    return out

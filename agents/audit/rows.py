"""An experiment's joins and rounds as rows (the demo's table and ``results.json``,
``run_on_chain``):
a view of the one history reader, :class:`agents.audit.reader.HistoryReader`, which reads every
event of the experiment at one block, in block ranges, with batched receipts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pydantic import BaseModel

from agents.audit.history import History
from agents.audit.reader import read_history as audit_read_history
from agents.chain.client import CollectiveLearningClient
from colearn_core.results import Result, Results


class JoinRow(BaseModel):
    """A learner's join (its consent); the last one started round 0."""

    learner: str
    learner_index: int
    relayed: bool  # a signed join a relayer submitted (and paid for)
    tx_hash: str
    block_number: int
    timestamp: int
    gas: int
    started: bool = False  # this join's transaction started round 0


def join_rows(h: History) -> list[JoinRow]:
    """The experiment's joins, in order, as rows."""
    start = h.start.tx_hash if h.start is not None else None
    return [JoinRow(learner=j.learner, learner_index=j.learner_index, relayed=j.relayed,
                    tx_hash=j.tx_hash, block_number=j.block_number, timestamp=j.timestamp,
                    gas=j.gas_used, started=j.tx_hash == start) for j in h.joins]


class VoteRow(BaseModel):
    learner: str
    learner_index: int
    approve: bool
    vote_score: float | None  # None: the voter could not test the proposal
    tx_hash: str
    gas: int  # of the transaction that carried the vote (a relayed batch carries several)


class RoundGas(BaseModel):
    propose: int | None = None
    votes: list[int] = []
    close: int | None = None  # a separate decide/expire transaction, if any
    total: int = 0


class RoundRow(BaseModel):
    round: int
    proposer: str
    proposer_index: int
    cid: str | None = None
    digest: str | None = None
    accepted: bool | None = None  # None while open, or when expired
    expired: bool = False
    approvals: int = 0
    rejections: int = 0
    votes: list[VoteRow] = []
    propose_tx: str | None = None
    close_tx: str | None = None
    close_block: int | None = None
    gas: RoundGas = RoundGas()

    @property
    def closed(self) -> bool:
        return self.expired or self.accepted is not None


def round_rows(h: History) -> list[RoundRow]:
    """Every round of an audit history (:class:`agents.audit.reader.HistoryReader`) as a row:
    the view the demo, ``run_on_chain`` and results files use. Gas lists one entry per
    vote transaction (a relayed batch carries several votes) and counts each transaction
    of the round once."""
    rows = []
    for r in h.rounds:
        gas_of = {tx.hash: tx.gas_used for tx in r.txs}
        p, d, closing = r.proposal, r.decision, r.closing
        votes = [VoteRow(learner=v.voter, learner_index=v.learner_index, approve=v.approve,
                         vote_score=v.vote_score, tx_hash=v.tx_hash,
                         gas=gas_of.get(v.tx_hash, 0)) for v in r.votes]
        own = {p.tx_hash if p else None, *(v.tx_hash for v in r.votes)}
        gas = RoundGas(propose=gas_of.get(p.tx_hash) if p else None,
                       votes=[gas_of.get(tx, 0) for tx in dict.fromkeys(v.tx_hash for v in votes)],
                       close=gas_of.get(closing.tx_hash)
                       if closing is not None and closing.tx_hash not in own else None)
        gas.total = (gas.propose or 0) + sum(gas.votes) + (gas.close or 0)
        rows.append(RoundRow(
            round=r.round, proposer=r.proposer, proposer_index=r.proposer_index,
            cid=p.cid if p else None, digest=p.digest if p else None,
            accepted=d.accepted if d else None, expired=r.expiry is not None,
            approvals=d.approvals if d else 0, rejections=d.rejections if d else 0,
            votes=votes, propose_tx=p.tx_hash if p else None,
            close_tx=closing.tx_hash if closing else None,
            close_block=closing.block_number if closing else None, gas=gas))
    return rows


def read_history(client: CollectiveLearningClient, experiment_id: int,
                 from_block: int = 0) -> list[RoundRow]:
    """Every round of the experiment, read at one block (the latest when called): the
    audit's reader, in block ranges, seen as rows."""
    return round_rows(audit_read_history(client, experiment_id, from_block=from_block))


class OwnRecord(Protocol):
    """What an agent noted of a round itself (:class:`agents.agent.records.RoundRecord`)."""

    @property
    def vote_score(self) -> float | None: ...
    @property
    def test_score(self) -> float | None: ...
    @property
    def training_summary(self) -> Any: ...


def colearn_results(rows: Sequence[RoundRow], n: int,
                    records: Sequence[Mapping[int, OwnRecord]] = ()) -> Results:
    """colearn's ``Results`` of the closed rounds: decisions, votes and vote scores from the
    chain; where the agents' own ``records`` are given (one mapping per learner, by round),
    their vote and test scores and training summaries. Learners from index ``n`` on (a
    hostile event's) are left out."""
    results = Results()
    for row in rows:
        if not row.closed:
            continue
        votes: list[bool | None] = [None] * n
        vote_scores: list[float | None] = [None] * n
        for v in row.votes:
            if 0 <= v.learner_index < n:
                votes[v.learner_index], vote_scores[v.learner_index] = v.approve, v.vote_score
        test_scores: list[float | None] = [None] * n
        summaries: list[Any] = [None] * n
        for j, own in enumerate(records[:n]):
            record = own.get(row.round)
            if record is not None:
                vote_scores[j], test_scores[j] = record.vote_score, record.test_score
                summaries[j] = record.training_summary
        results.data.append(Result(vote=None if row.expired else row.accepted, votes=votes,
                              vote_scores=vote_scores, test_scores=test_scores,
                              training_summaries=summaries, block_proposer=row.proposer_index))
    return results

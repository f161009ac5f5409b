"""An experiment's history rebuilt from the contract's events alone (no agent state)."""

from __future__ import annotations

from pydantic import BaseModel

from agents.chain import CollectiveLearningClient, ExperimentCreated, fixed_to_score


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


def read_history(client: CollectiveLearningClient, experiment_id: int, from_block: int = 0,
                 created: ExperimentCreated | None = None) -> list[RoundRow]:
    """Every round with events from ``from_block`` on, from the experiment's events and
    their receipts (``created``, if given, saves looking up the creation event)."""
    created = created or client.experiment_created(experiment_id)
    index = {address: i for i, address in enumerate(created.learners)}
    gas_cache: dict[str, int] = {}

    def gas_of(tx_hash: str) -> int:
        if tx_hash not in gas_cache:
            gas_cache[tx_hash] = client.w3.eth.get_transaction_receipt(tx_hash)["gasUsed"]
        return gas_cache[tx_hash]

    rows: dict[int, RoundRow] = {}

    def row(r: int) -> RoundRow:
        if r not in rows:
            proposer = created.proposer(r)
            rows[r] = RoundRow(round=r, proposer=proposer, proposer_index=index[proposer])
        return rows[r]

    start = max(from_block, created.block_number)
    for p in client.proposals(experiment_id, from_block=start):
        rr = row(p.round)
        rr.cid, rr.digest, rr.propose_tx = p.cid, "0x" + p.digest.hex(), p.tx_hash
        rr.gas.propose = gas_of(p.tx_hash)
    for v in client.votes(experiment_id, from_block=start):
        row(v.round).votes.append(VoteRow(
            learner=v.voter, learner_index=index[v.voter], approve=v.approve,
            vote_score=fixed_to_score(v.score), tx_hash=v.tx_hash, gas=gas_of(v.tx_hash)))
    for d in client.decisions(experiment_id, from_block=start):
        rr = row(d.round)
        rr.accepted, rr.approvals, rr.rejections = d.accepted, d.approvals, d.rejections
        rr.close_tx, rr.close_block = d.tx_hash, d.block_number
    for e in client.expiries(experiment_id, from_block=start):
        rr = row(e.round)
        rr.expired, rr.close_tx, rr.close_block = True, e.tx_hash, e.block_number

    for rr in rows.values():
        # One entry per vote transaction: a relayed batch carries several votes.
        rr.gas.votes = [gas_of(tx) for tx in dict.fromkeys(v.tx_hash for v in rr.votes)]
        own = {rr.propose_tx, *(v.tx_hash for v in rr.votes)}
        if rr.close_tx is not None and rr.close_tx not in own:
            rr.gas.close = gas_of(rr.close_tx)
        rr.gas.total = (rr.gas.propose or 0) + sum(rr.gas.votes) + (rr.gas.close or 0)
    return [rows[r] for r in sorted(rows)]

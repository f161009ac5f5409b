"""An experiment's state now, for ``colearn experiment status``: the phase and deadline as
the contract computes them (``roundStatus``), who joined, proposed and voted in the current
round and who is late (from the history reader), each learner's balance and, in a staked
experiment, its stake, penalties and what it is owed (the client's typed views)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydantic import BaseModel

from agents.audit.checks import expected_model
from agents.audit.history import History, RoundHistory
from agents.audit.reader import HistoryReader
from agents.chain.client import CollectiveLearningClient
from agents.chain.types import ZERO_ADDRESS, RoundState, RoundStatus

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger(__name__)

#: The phase a person reads, for each of the contract's round states.
PHASES: dict[RoundState, str] = {
    RoundState.JOINING: "joining", RoundState.JOIN_TIMED_OUT: "joining (deadline passed)",
    RoundState.PROPOSING: "proposing", RoundState.PROPOSAL_TIMED_OUT: "proposing (expired)",
    RoundState.VOTING: "voting", RoundState.VOTING_TIMED_OUT: "voting (expired)",
    RoundState.REVEALING: "revealing", RoundState.REVEAL_TIMED_OUT: "revealing (expired)",
    RoundState.COMPLETED: "complete", RoundState.CANCELLED: "cancelled",
}
#: States whose deadline has passed: whoever the phase waits for is late.
TIMED_OUT = (RoundState.JOIN_TIMED_OUT, RoundState.PROPOSAL_TIMED_OUT,
             RoundState.VOTING_TIMED_OUT, RoundState.REVEAL_TIMED_OUT)
#: Reads are retried this many times when a block lands between them.
_ATTEMPTS = 5


class LearnerStatus(BaseModel):
    address: str
    index: int
    joined: bool
    role: str  # this round: "proposer", "voter"; "" when no round runs
    acted: bool  # this round: proposed (proposer) or voted (voter; sealed: revealed)
    committed: bool  # sealed votes: committed this round
    waiting: bool  # the current phase waits for this learner
    late: bool  # ... and its deadline has passed
    balance: int  # wei, or units of the experiment's token
    # staked experiments (the contract's accountOf)
    stake: int | None = None
    penalties: int | None = None
    owed: int | None = None
    withdrawn: bool | None = None


class ExperimentStatus(BaseModel):
    chain_id: int
    contract: str
    experiment_id: int
    block_number: int
    chain_time: int  # the block's timestamp: the clock of every deadline
    state: str  # the contract's RoundState name
    phase: str  # joining, proposing, voting, revealing, complete, cancelled (+ expired)
    round: int
    num_rounds: int
    closed_rounds: int
    accepted_rounds: int
    deadline: int  # of the current phase; 0 once complete or cancelled
    seconds_left: int  # chain seconds to the deadline (negative: past it)
    join_deadline: int
    sealed: bool
    staked: bool
    token: str  # the zero address: ETH
    proposer: str | None  # this round's
    model_round: int  # 0: the initial model; r + 1: the proposal of round r
    model_digest: str
    model_cid: str
    pool: int | None = None  # staked: reward pool plus penalties so far
    learners: list[LearnerStatus]

    @property
    def late(self) -> list[LearnerStatus]:
        return [learner for learner in self.learners if learner.late]


def experiment_status(client: CollectiveLearningClient, experiment_id: int, *,
                      from_block: int = 0) -> ExperimentStatus:
    """The experiment's status at one block (the latest)."""
    reader = HistoryReader(client, experiment_id, from_block=from_block)
    for _ in range(_ATTEMPTS):
        block = client.block_number()
        reader.update(block)
        status = client.round_status(experiment_id)
        if client.block_number() == block:  # both reads saw the same block
            break
        log.debug("a block landed while reading experiment %d: reading again", experiment_id)
    history = reader.history()
    return _status(client, history, status, block)


def _status(client: CollectiveLearningClient, h: History, status: RoundStatus,
            block: int) -> ExperimentStatus:
    config, state = h.config, status.state
    options = config.options
    running = state not in (RoundState.JOINING, RoundState.JOIN_TIMED_OUT,
                            RoundState.COMPLETED, RoundState.CANCELLED)
    row = next((r for r in h.rounds if r.round == status.round), None) if running else None
    proposer = config.proposer(status.round) if running else None
    joined = {j.learner for j in h.joins}
    token = None if int(options.token, 16) == 0 else options.token
    stake = client.stake_of(h.experiment_id) if options.staked else None
    learners = []
    for index, address in enumerate(config.learners):
        role = "" if proposer is None else "proposer" if address == proposer else "voter"
        acted, committed = _acted(row, address, role)
        waiting = _waits_for(state, options.sealed, address in joined, role, acted, committed)
        money = {}
        if stake is not None:
            account = client.account_of(h.experiment_id, address)
            money = {"stake": stake.stake if address in joined else 0,
                     "penalties": account.penalties, "owed": account.owed,
                     "withdrawn": account.withdrawn}
        learners.append(LearnerStatus(
            address=address, index=index, joined=address in joined, role=role, acted=acted,
            committed=committed, waiting=waiting, late=waiting and state in TIMED_OUT,
            balance=client.balance(address, token), **money))
    digest, model_round, cid = expected_model(h)
    return ExperimentStatus(
        chain_id=h.chain_id, contract=h.contract, experiment_id=h.experiment_id,
        block_number=block, chain_time=status.timestamp, state=state.name,
        phase=PHASES[state], round=status.round, num_rounds=config.num_rounds,
        closed_rounds=h.closed_rounds,
        accepted_rounds=sum(1 for r in h.rounds if r.outcome == "accepted"),
        deadline=status.deadline,
        seconds_left=status.deadline - status.timestamp if status.deadline else 0,
        join_deadline=config.join_deadline, sealed=options.sealed, staked=options.staked,
        token=options.token if token else ZERO_ADDRESS, proposer=proposer,
        model_round=model_round, model_digest=digest, model_cid=cid,
        pool=stake.pool if stake is not None else None, learners=learners)


def _acted(row: RoundHistory | None, address: str, role: str) -> tuple[bool, bool]:
    """(proposed or voted this round, committed a sealed vote this round)."""
    if row is None or not role:
        return False, False
    if role == "proposer":
        return row.proposal is not None, False
    return (any(v.voter == address for v in row.votes),
            any(c.voter == address for c in row.commits))


def _waits_for(state: RoundState, sealed: bool, joined: bool, role: str, acted: bool,
               committed: bool) -> bool:
    """Whether the current phase waits for this learner (late, once it timed out)."""
    if state in (RoundState.JOINING, RoundState.JOIN_TIMED_OUT):
        return not joined
    if state in (RoundState.PROPOSING, RoundState.PROPOSAL_TIMED_OUT):
        return role == "proposer"
    if state in (RoundState.VOTING, RoundState.VOTING_TIMED_OUT):
        return role == "voter" and not (committed if sealed else acted)
    if state in (RoundState.REVEALING, RoundState.REVEAL_TIMED_OUT):
        return role == "voter" and committed and not acted
    return False


def _when(deadline: int, now: int) -> str:
    """``2026-11-28 10:41:07 UTC (in 9m 30s)``, on the chain's clock."""
    import datetime

    at = datetime.datetime.fromtimestamp(deadline, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    left = deadline - now
    span = _span(abs(left))
    return f"{at} UTC ({'in ' + span if left > 0 else span + ' ago' if left < 0 else 'now'})"


def _span(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0s"


def render_status(s: ExperimentStatus, console: Console) -> None:
    """The status for people: a summary, then one row per learner."""
    from rich.table import Table

    eth = int(s.token, 16) == 0
    unit = "ETH" if eth else f"units of {s.token}"

    def amount(value: int | None) -> str:
        return "-" if value is None else _ether(value) if eth else f"{value:,}"

    lines = [
        (f"experiment [bold]{s.experiment_id}[/] · contract {s.contract} · "
         f"chain {s.chain_id} · block {s.block_number}"),
        (f"phase [bold]{s.phase}[/] · round {min(s.round, s.num_rounds)} of {s.num_rounds}"
         f" · {s.closed_rounds} closed, {s.accepted_rounds} accepted"
         + (" · sealed votes" if s.sealed else "") + (" · staked" if s.staked else "")),
    ]
    if s.deadline:
        lines.append(f"deadline of this phase: {_when(s.deadline, s.chain_time)}")
    if s.phase.startswith("joining"):
        joined = sum(1 for learner in s.learners if learner.joined)
        lines.append(f"{joined} of {len(s.learners)} learners joined")
    if s.proposer is not None:
        lines.append(f"proposer of round {s.round}: {s.proposer}")
    source = f"round {s.model_round - 1}'s proposal" if s.model_round else "the initial model"
    lines.append(f"model: {source} · digest {s.model_digest} · CID {s.model_cid}")
    if s.pool is not None:
        lines.append(f"pool: {amount(s.pool)} {unit}")
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)
    table = Table(show_edge=False)
    for column in ("#", "learner", "joined", "this round", "balance"):
        table.add_column(column, justify="right" if column in ("#", "balance") else "left")
    if s.staked:
        for column in ("stake", "penalties", "owed"):
            table.add_column(column, justify="right")
    for learner in s.learners:
        row = [str(learner.index), learner.address, "yes" if learner.joined else "no",
               _doing(learner, s), amount(learner.balance)]
        if s.staked:
            row += [amount(learner.stake), amount(learner.penalties),
                    amount(learner.owed) + (" (withdrawn)" if learner.withdrawn else "")]
        table.add_row(*row, style="red" if learner.late else None)
    console.print(table)
    if s.late:
        console.print("[red]late[/] (past the deadline): "
                      + ", ".join(f"learner {x.index}" for x in s.late), highlight=False)
    console.print(f"amounts in {unit}" + (" (--json: wei)" if eth else ""), style="dim",
                  highlight=False)


def _ether(wei: int) -> str:
    """Wei as ETH, exactly, without trailing zeros: ``1.5``, ``10,000``."""
    whole, fraction = divmod(wei, 10**18)
    decimals = f"{fraction:018d}".rstrip("0")
    return f"{whole:,}" + (f".{decimals}" if decimals else "")


def _doing(learner: LearnerStatus, s: ExperimentStatus) -> str:
    if not learner.role:
        return "LATE: has not joined" if learner.late else "waiting to join" \
            if learner.waiting else "-"
    if learner.role == "proposer":
        done = "proposed" if learner.acted else "has not proposed"
    elif learner.acted:
        done = "voted" + (" (revealed)" if s.sealed else "")
    elif learner.committed:
        done = "committed, not revealed"
    else:
        done = "has not voted"
    return f"{learner.role}: {'LATE, ' if learner.late else ''}{done}"

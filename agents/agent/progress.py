"""What a learner agent tells the person who started it: a ready line (the experiment, this
learner, its role schedule, the store), one line per round (its role, what it did, the
decision, its scores), the end; and a warning when a deadline passed before it acted.

Lines go through :meth:`AgentCore._report` (handed to ``settings.notify``, else logged at
INFO); warnings are logged (``colearn agent`` shows them without ``-v``). Reading a round's decision
costs nothing when the event that closed it woke the agent, else one log read: it is done
only when someone listens (a ``notify`` callback, or INFO logging).
"""

from __future__ import annotations

import logging

from agents.agent.base import AgentCore
from agents.chain.errors import ChainError
from agents.chain.logs import RawLog, RoundDecided, RoundExpired
from agents.chain.types import RoundState, RoundStatus

# Proposer rounds listed in the ready line before "…".
_SHOWN_ROUNDS = 6


def store_label(store: object) -> str:
    """A store as a person gave it: its IPFS RPC URL, ``file:DIR``, else its repr."""
    api_url = getattr(store, "api_url", None)
    if isinstance(api_url, str):
        return api_url
    root = getattr(store, "root", None)
    return f"file:{root}" if root is not None else repr(store)


def proposer_rounds(index: int, n_learners: int, n_rounds: int) -> str:
    """The rounds learner ``index`` proposes in (round robin), e.g. ``1, 4, 7, … (every
    3rd)``."""
    rounds = list(range(index, n_rounds, n_learners))
    if not rounds:
        return "none"
    shown = ", ".join(map(str, rounds[:_SHOWN_ROUNDS]))
    if len(rounds) > _SHOWN_ROUNDS:
        shown += f", … (every {_ordinal(n_learners)})"
    return shown


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


class Progress(AgentCore):
    """The ready line, the round lines and the late warnings of a learner agent."""

    def _listened(self) -> bool:
        return self.settings.notify is not None or self.log.isEnabledFor(logging.INFO)

    def _ready(self) -> None:
        """Reports what this agent is about to do (once, before its first step)."""
        if self._said_ready:
            return
        self._said_ready = True
        created = self._experiment()
        n, index = len(created.learners), self._learner_index()
        options = created.options
        terms = [f"{created.num_rounds} rounds", f"threshold {created.threshold_bps / 100:g}%"]
        if options.sealed:
            terms.append("sealed votes")
        if options.staked:
            terms.append(f"stake {options.stake} "
                         f"{'wei' if options.in_eth else 'units of token ' + str(options.token)}")
        self._report(
            f"ready: experiment {self.experiment_id} on contract {self.client.address} "
            f"(chain {self.client.chain_id}; {', '.join(terms)}); learner {self.address} is "
            f"learner {index} of {n}: proposes in rounds "
            f"{proposer_rounds(index, n, created.num_rounds)}, votes in the others; "
            f"store {store_label(self.store)}")

    def _note_closing(self, entry: RawLog) -> None:
        """Keeps the decision (or expiry) a wake event announced, for the round's line."""
        if not self._listened():
            return
        try:
            closing = self.client.closing_from_log(entry)
        except ValueError:
            return
        if closing.experiment_id == self.experiment_id:
            self._closings[closing.round] = closing

    def _report_rounds(self, status: RoundStatus) -> None:
        """One line for each round closed since the last step (from the first round this
        agent saw running)."""
        if self._next_report is None:
            self._next_report = status.round
        if not self._listened():
            self._next_report = status.round
            return
        while self._next_report < status.round:
            round_index = self._next_report
            self._report(self._round_line(round_index))
            self._closings.pop(round_index, None)
            self._next_report = round_index + 1

    def _round_line(self, round_index: int) -> str:
        created = self._experiment()
        proposer = self._learner_index() == round_index % len(created.learners)
        record = self.records.get(round_index)
        did = self._acts.get(round_index)
        if did is None:
            if record is not None and record.reason:
                did = f"did not {'propose' if proposer else 'vote'} ({record.reason})"
            elif record is not None:
                did = "tested the proposal; its vote did not count"
            else:
                did = f"did not {'propose' if proposer else 'vote'}"
        if record is not None and record.reason and not proposer and did.startswith("voted"):
            did += f": {record.reason}"
        scores = ""
        if record is not None and (record.vote_score is not None or record.test_score is not None):
            scores = (f" ({'own ' if proposer else ''}vote score {_score(record.vote_score)}, "
                      f"test score {_score(record.test_score)})")
        return (f"round {round_index}: {'proposer' if proposer else 'voter'}, {did}{scores}; "
                f"{self._decision(round_index)}")

    def _decision(self, round_index: int) -> str:
        closing = self._closings.get(round_index)
        if closing is None:
            start = self._proposals[round_index].block_number \
                if round_index in self._proposals else self._experiment().block_number
            try:
                found: list[RoundDecided] | list[RoundExpired] = \
                    self.client.events(RoundDecided, self.experiment_id, round_index, from_block=start)
                if not found:
                    found = self.client.events(RoundExpired, self.experiment_id, round_index,
                                                 from_block=start)
            except ChainError as exc:
                self.log.debug("round %d: decision not read (%s)", round_index, exc)
                return "closed"
            closing = found[0] if found else None
        if closing is None:
            return "closed"
        if isinstance(closing, RoundExpired):
            return "expired (no proposal in time)"
        return (f"{'accepted' if closing.accepted else 'rejected'} ({closing.approvals} "
                f"approve, {closing.rejections} reject)")

    def _check_late(self, status: RoundStatus, proposer: bool) -> None:
        """Warns (once a round) when a deadline passed before this learner acted."""
        state, round_index = status.state, status.round
        sealed = self._experiment().options.sealed
        late = None
        if state == RoundState.JOIN_TIMED_OUT and not status.joined:
            late, round_index = "the join deadline passed before this learner joined", -1
        elif state == RoundState.PROPOSAL_TIMED_OUT and proposer and not self.budget_exhausted:
            late = "the proposal deadline passed before this learner proposed"
        elif state == RoundState.VOTING_TIMED_OUT and not proposer:
            if sealed and not status.committed:
                late = "the voting deadline passed before this learner committed its vote"
            elif not sealed and not status.voted:
                late = "the voting deadline passed before this learner voted"
        elif state == RoundState.REVEAL_TIMED_OUT and not proposer and status.committed \
                and not status.voted:
            late = "the reveal deadline passed before this learner revealed its vote"
        if late is not None and (round_index, "late") not in self._said:
            self._said.add((round_index, "late"))
            where = f"experiment {self.experiment_id}" if round_index < 0 \
                else f"round {round_index}"
            self.log.warning("%s: late: %s", where, late)

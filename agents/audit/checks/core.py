"""The audit's vocabulary: violation codes, what a check found, the report.

:data:`CODES` are stable identifiers; each violation comes with the round it concerns, if
any, and a message for people. :class:`Checker` collects them as the checks run.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from agents.audit.history import History

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
SHOWN = 20  # ranges of rounds named in one message, at most


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


class Checker:
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


def ranges(values: list[int]) -> str:
    """Sorted integers as ranges ("0-4, 7"), the first :data:`SHOWN` of them."""
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
    more = f" (and {len(parts) - SHOWN} more)" if len(parts) > SHOWN else ""
    return ", ".join(parts[:SHOWN]) + more

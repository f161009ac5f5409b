"""Per-round results with colearn's fields, defaults and statistics.

``colearn_core.utils.results`` (colearn's path) re-exports these: one class each.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from colearn_core.ml_interface import ProposedWeights, TrainingSummary


class Result(BaseModel):
    """One round: the decision, every learner's vote (the proposer's is ``None``) and
    scores, and who proposed. ``Result()`` has colearn's defaults (``vote`` ``False``, no
    proposer); a round that expired without a proposal has ``vote`` ``None``
    (:meth:`expired`, :attr:`is_expired`)."""

    vote: bool | None = False
    votes: list[bool | None] = Field(default_factory=list)
    test_scores: list[float | None] = Field(default_factory=list)
    vote_scores: list[float | None] = Field(default_factory=list)
    training_summaries: list[TrainingSummary | None] = Field(default_factory=list)
    block_proposer: int | None = None

    @classmethod
    def from_round(
        cls, proposer: int, proposed: list[ProposedWeights], vote: bool
    ) -> Result:
        """A decided round: each learner's test of the proposal, the proposer's summary."""
        return cls(
            vote=vote,
            votes=[p.vote for p in proposed],
            test_scores=[p.test_score for p in proposed],
            vote_scores=[p.vote_score for p in proposed],
            training_summaries=[
                p.weights.training_summary if j == proposer else None
                for j, p in enumerate(proposed)
            ],
            block_proposer=proposer,
        )

    @classmethod
    def expired(
        cls, proposer: int, n_learners: int, summary: TrainingSummary | None = None
    ) -> Result:
        """A round with no decision: the proposer proposed nothing (e.g. its privacy budget
        is spent) or, on chain, the round's deadline passed."""
        return cls(vote=None, votes=[None] * n_learners, test_scores=[None] * n_learners,
                   vote_scores=[None] * n_learners, block_proposer=proposer,
                   training_summaries=[summary if j == proposer else None
                                       for j in range(n_learners)])

    @property
    def is_expired(self) -> bool:
        return self.vote is None


class Results(BaseModel):
    """All rounds of an experiment (``data``) and colearn's statistics over them, filled
    by :meth:`process_statistics`: per learner (``h_test_scores[j]``, ``h_vote_scores[j]``,
    one value per round) and the mean over learners per round."""

    data: list[Result] = Field(default_factory=list)
    h_test_scores: list[list[float | None]] = Field(default_factory=list)
    h_vote_scores: list[list[float | None]] = Field(default_factory=list)
    mean_test_scores: list[float | None] = Field(default_factory=list)
    mean_vote_scores: list[float | None] = Field(default_factory=list)

    def process_statistics(self) -> None:
        """Recomputes the series from ``data``. Unlike colearn's, it accepts no rounds, and
        rounds or learners without a score (an expired round, a learner that did not vote
        on chain): a missing score is ``None`` and means are over the scores present
        (``None`` when there is none)."""
        n_learners = max((max(len(r.test_scores), len(r.vote_scores)) for r in self.data),
                         default=0)
        self.h_test_scores = [[_at(r.test_scores, j) for r in self.data]
                              for j in range(n_learners)]
        self.h_vote_scores = [[_at(r.vote_scores, j) for r in self.data]
                              for j in range(n_learners)]
        self.mean_test_scores = [_mean(r.test_scores) for r in self.data]
        self.mean_vote_scores = [_mean(r.vote_scores) for r in self.data]

    def decisions(self) -> list[bool | None]:
        """Each round's decision (``None``: expired), as ``OnchainRun.decisions()``."""
        return [r.vote for r in self.data]


def print_results(results: Results) -> None:
    """Prints the latest round as colearn does: proposer, decision, and each learner's
    vote, test score and vote score."""
    rule = "-" * 50
    if not results.data:
        print("--------------- NO ROUNDS YET ---------------------")
        return
    last = results.data[-1]
    accepted = "None (round expired)" if last.is_expired else last.vote
    print("--------------- LATEST ROUND RESULTS -------------")
    print("Selected proposer:\t", last.block_proposer)
    print("New model accepted:\t", accepted)
    print(rule)
    print("learner id\t\tvote\ttest score\t\tvote score")
    for j, vote in enumerate(last.votes):
        print(f"{j}\t\t\t\t{vote}\t{_score(_at(last.test_scores, j))}"
              f"\t\t\t{_score(_at(last.vote_scores, j))}")
    print(rule)


def _at(values: list[float | None], index: int) -> float | None:
    return values[index] if index < len(values) else None


def _score(value: float | None) -> str:
    return "None" if value is None else f"{value:.3f}"


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None

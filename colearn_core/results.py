"""Per-round results with colearn's fields."""

from __future__ import annotations

from pydantic import BaseModel, Field

from colearn_core.ml_interface import ProposedWeights, TrainingSummary


class Result(BaseModel):
    """One round: the decision, every learner's vote (the proposer's is ``None``) and
    scores, and who proposed."""

    vote: bool | None = None  # None: the round expired without a proposal
    votes: list[bool | None] = Field(default_factory=list)
    test_scores: list[float | None] = Field(default_factory=list)
    vote_scores: list[float | None] = Field(default_factory=list)
    training_summaries: list[TrainingSummary | None] = Field(default_factory=list)
    block_proposer: int

    @classmethod
    def from_round(
        cls, proposer: int, proposed: list[ProposedWeights], vote: bool
    ) -> Result:
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


class Results(BaseModel):
    """All rounds of an experiment, with colearn's per-learner and mean series."""

    data: list[Result] = Field(default_factory=list)

    def append(self, result: Result) -> None:
        self.data.append(result)

    def test_scores(self, learner: int) -> list[float | None]:
        return [r.test_scores[learner] if r.test_scores else None for r in self.data]

    def vote_scores(self, learner: int) -> list[float | None]:
        return [r.vote_scores[learner] if r.vote_scores else None for r in self.data]

    def mean_test_scores(self) -> list[float | None]:
        return [_mean(r.test_scores) for r in self.data]

    def mean_vote_scores(self) -> list[float | None]:
        return [_mean(r.vote_scores) for r in self.data]

    def decisions(self) -> list[bool | None]:
        return [r.vote for r in self.data]


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None

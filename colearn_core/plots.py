"""colearn's two plots, drawn to PNG: scores per learner per round, and the vote grid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from colearn_core.results import Results


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(values: Sequence[float | None]) -> list[float]:
    return [float("nan") if v is None else v for v in values]


def plot_results(
    results: Results,
    n_learners: int,
    path: Path,
    score_name: str = "score",
    extra: dict[str, Sequence[float | None]] | None = None,
) -> Path:
    """Test and vote scores per learner per round, with their means; ``extra`` adds
    named series (e.g. accuracy on a global held-out set) to the test panel."""
    plt = _pyplot()
    rounds = list(range(len(results.data)))
    fig, (ax_test, ax_vote) = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    for j in range(n_learners):
        ax_test.plot(rounds, _series(results.test_scores(j)), "--", alpha=0.6, label=f"learner {j}")
        ax_vote.plot(rounds, _series(results.vote_scores(j)), ":", alpha=0.6, label=f"learner {j}")
    ax_test.plot(rounds, _series(results.mean_test_scores()), "k-", lw=2, label="mean")
    ax_vote.plot(rounds, _series(results.mean_vote_scores()), "k-", lw=2, label="mean")
    for name, values in (extra or {}).items():
        ax_test.plot(rounds, _series(values), "-o", lw=2, ms=3, label=name)
    ax_test.set_title(f"test {score_name} per learner")
    ax_vote.set_title(f"vote {score_name} per learner")
    for ax in (ax_test, ax_vote):
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_votes(results: Results, n_learners: int, path: Path) -> Path:
    """Learner x round grid: approve, reject, no vote, and the proposer coloured by the
    round's outcome (accepted, rejected, expired)."""
    import numpy as np

    plt = _pyplot()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    labels = ["no vote", "reject", "approve", "proposer: rejected", "proposer: accepted",
              "proposer: expired"]
    colours = ["#ffffff", "#e4572e", "#76b041", "#8b1e3f", "#1f6f3b", "#9e9e9e"]
    n_rounds = len(results.data)
    grid = np.zeros((n_learners, max(n_rounds, 1)), dtype=int)
    for r, result in enumerate(results.data):
        for j, vote in enumerate(result.votes):
            grid[j, r] = 0 if vote is None else (2 if vote else 1)
        grid[result.block_proposer, r] = {None: 5, False: 3, True: 4}[result.vote]
    fig, ax = plt.subplots(figsize=(max(6, n_rounds * 0.45), 1.2 + n_learners * 0.45))
    ax.imshow(grid, cmap=ListedColormap(colours), vmin=0, vmax=len(colours) - 1, aspect="auto")
    ax.set_xticks(range(n_rounds))
    ax.set_yticks(range(n_learners))
    ax.set_yticklabels([f"learner {j}" for j in range(n_learners)])
    ax.set_xlabel("round")
    ax.set_xticks(np.arange(-0.5, n_rounds, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, n_learners, 1), minor=True)
    ax.grid(which="minor", color="#cccccc", lw=0.5)
    ax.tick_params(which="minor", length=0)
    ax.legend(handles=[Patch(facecolor=c, edgecolor="#999999", label=l)
                       for c, l in zip(colours, labels)],
              bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=7)
    ax.set_title("votes")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

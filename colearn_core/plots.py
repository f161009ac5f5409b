"""colearn's two plots: scores per learner per round (with their means), and the
learner x round vote grid.

:func:`draw_scores` and :func:`draw_votes` draw onto given axes; everything that plots
results uses them: :func:`plot_results` and :func:`plot_votes` (PNG files, through no
global pyplot state), ``colearn_core.utils.plot.ColearnPlot`` (colearn's live figure) and
the audit report.

Every axis is labelled with what it measures and its unit; a score's label says which way
is better where that is known (:func:`score_label`: given, or read from a name such as
"loss" or "accuracy"). The solo baselines (each learner trained alone) are dashed lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from colearn_core.results import Results

#: The vote grid's cell values, in order: labels and colours.
GRID_LABELS = ["no vote", "reject", "approve", "proposer: rejected", "proposer: accepted",
               "proposer: expired"]
GRID_COLOURS = ["#ffffff", "#e4572e", "#76b041", "#8b1e3f", "#1f6f3b", "#9e9e9e"]
#: The x axis of every plot.
ROUND_LABEL = "training round (number, from 0)"
#: The y axis of the vote grid.
LEARNER_LABEL = "learner (index in the experiment)"
#: Above this many learners the solo baselines are drawn as their best and mean only.
MAX_BASELINE_LINES = 8
#: Score names whose direction is known: lower is better (losses, errors) or higher.
_LOWER_WORDS = ("loss", "error", "entropy", "mse", "mae", "rmse", "perplexity")
_HIGHER_WORDS = ("accuracy", "auc", "f1", "precision", "recall", "r2", "r²")
#: Units of the scores the project's learners report.
_UNITS = {"accuracy": "fraction correct, 0–1", "cross-entropy": "nats"}
#: Line style per score kind when both are on one axes (colearn's: test blue, vote red).
_KIND_STYLE = {"test": ("tab:blue", "--"), "vote": ("tab:red", ":")}


def series(values: Sequence[float | None]) -> list[float]:
    """Values to plot: a missing score (``None``) is a gap."""
    return [float("nan") if v is None else v for v in values]


def lower_is_better_from_name(name: str) -> bool | None:
    """Whether a score named ``name`` is better lower (a loss, an error), higher (an
    accuracy), or None when the name does not say."""
    lowered = name.lower()
    if any(word in lowered for word in _LOWER_WORDS):
        return True
    if any(word in lowered for word in _HIGHER_WORDS):
        return False
    return None


def score_label(name: str, lower_is_better: bool | None = None,
                unit: str | None = None) -> str:
    """An axis label for a score: its name, its unit and which way is better, e.g.
    ``"vote score: cross-entropy (nats; lower is better)"``. The direction, when not
    given, comes from the name (:func:`lower_is_better_from_name`); a score without a
    known unit is said to be unitless."""
    if lower_is_better is None:
        lower_is_better = lower_is_better_from_name(name)
    if unit is None:
        unit = next((u for word, u in _UNITS.items() if word in name.lower()), "unitless")
    better = {True: "; lower is better", False: "; higher is better", None: ""}[lower_is_better]
    return f"{name} ({unit}{better})"


def draw_baselines(ax: Any, baselines: Sequence[float], what: str = "alone") -> None:
    """The solo baselines as horizontal dashed lines, labelled: one per learner up to
    :data:`MAX_BASELINE_LINES` learners, else their best and their mean."""
    values = [b for b in baselines if b is not None]
    if not values:
        return
    if len(values) <= MAX_BASELINE_LINES:
        for j, value in enumerate(values):
            ax.axhline(value, ls="--", lw=1, color=f"C{j % 10}", alpha=0.8,
                       label=f"learner {j} {what}: {value:.3f}")
        return
    best, mean = max(values), sum(values) / len(values)
    ax.axhline(best, ls="--", lw=1.2, color="tab:green", label=f"best learner {what}: {best:.3f}")
    ax.axhline(mean, ls="--", lw=1.2, color="tab:gray", label=f"mean learner {what}: {mean:.3f}")


def draw_scores(
    ax: Any,
    results: Results,
    kinds: Sequence[str] = ("test", "vote"),
    score_name: str = "score",
    n_learners: int | None = None,
    legend: bool = True,
    lower_is_better: bool | None = None,
    unit: str | None = None,
) -> None:
    """Each learner's ``kinds`` scores (``"test"``, ``"vote"``) per round, thin, and their
    mean over learners, thick. With one kind each learner has its own colour and legend
    entry; with both, the kind sets the colour, as in colearn's plot. The y label is
    :func:`score_label`'s (``lower_is_better`` and ``unit``, else read from the name)."""
    results.process_statistics()
    rounds = list(range(len(results.data)))
    drawn = len(results.h_test_scores) if n_learners is None else n_learners
    one_kind = len(kinds) == 1
    for kind in kinds:
        per_learner = results.h_test_scores if kind == "test" else results.h_vote_scores
        mean = results.mean_test_scores if kind == "test" else results.mean_vote_scores
        colour, style = _KIND_STYLE[kind]
        for j, values in enumerate(per_learner[:drawn]):
            if one_kind:
                # solid: dashed lines are the solo baselines (draw_baselines), in the
                # same colour as their learner's line
                ax.plot(rounds, series(values), "-o", color=f"C{j % 10}", alpha=0.6, lw=1,
                        ms=3, label=f"learner {j}")  # markers: a lone score shows
            else:
                ax.plot(rounds, series(values), style, color=colour, alpha=0.5, lw=1,
                        label=f"{kind} {score_name}" if j == 0 else None)
        ax.plot(rounds, series(mean), "-", color="k" if one_kind else colour, lw=2.5,
                label=f"mean {kind} {score_name}")
    if rounds:
        ax.set_xlim(-0.5, len(rounds) - 0.5)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(ROUND_LABEL)
    ax.set_ylabel(score_label(f"{kinds[0]} {score_name}" if one_kind else score_name,
                              lower_is_better, unit))
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=7)


def draw_curves(ax: Any, curves: Mapping[str, Sequence[float | None]], *,
                thick: bool = False) -> None:
    """Named series per round (x: the round), one line each; ``thick`` (e.g. a global
    held-out score beside learners' own): thick lines, the first one purple."""
    for j, (name, values) in enumerate(curves.items()):
        colour = "#5a2d82" if thick and j == 0 else f"C{j % 10}"
        ax.plot(range(len(values)), series(values), "-o", color=colour, lw=2 if thick else 1.5,
                ms=3, label=name)


def plot_curves(panels: Mapping[str, Mapping[str, Sequence[float | None]]],
                path: Path | IO[bytes], score_name: str = "score",
                lower_is_better: bool | None = None) -> Path | IO[bytes]:
    """One panel per title, each with its named series per round (:func:`draw_curves`),
    as a PNG: e.g. every method's global test score per round, per task and split."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    columns = min(3, max(1, len(panels)))
    rows = max(1, -(-len(panels) // columns))
    fig = Figure(figsize=(5.2 * columns, 3.9 * rows))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, (title, curves) in zip(axes, panels.items()):
        draw_curves(ax, curves)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(ROUND_LABEL)
        ax.set_ylabel(score_label(score_name, lower_is_better))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    return path


def vote_grid(results: Results, n_learners: int) -> list[list[int]]:
    """Learner x round cells as indices into :data:`GRID_LABELS`; a round without a
    proposer (colearn's initial result, an individual round) marks none."""
    grid = [[0] * len(results.data) for _ in range(n_learners)]
    for r, result in enumerate(results.data):
        for j, vote in enumerate(result.votes[:n_learners]):
            grid[j][r] = 0 if vote is None else (2 if vote else 1)
        proposer = result.block_proposer
        if proposer is not None and 0 <= proposer < n_learners:
            grid[proposer][r] = {None: 5, False: 3, True: 4}[result.vote]
    return grid


def draw_votes(ax: Any, results: Results, n_learners: int, ticks: bool = True) -> None:
    """The vote grid (:func:`vote_grid`); ``ticks`` labels every round and learner."""
    import numpy as np
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    n_rounds = len(results.data)
    values = vote_grid(results, n_learners)
    grid = np.array(values, dtype=int) if n_learners and n_rounds else np.zeros((1, 1), int)
    ax.imshow(grid, cmap=ListedColormap(GRID_COLOURS), vmin=0, vmax=len(GRID_COLOURS) - 1,
              aspect="auto", interpolation="nearest")
    if ticks:
        ax.set_xticks(range(n_rounds))
        ax.set_yticks(range(n_learners))
        ax.set_yticklabels([f"learner {j}" for j in range(n_learners)])
        ax.set_xticks(np.arange(-0.5, n_rounds, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, n_learners, 1), minor=True)
        ax.grid(which="minor", color="#cccccc", lw=0.5)
        ax.tick_params(which="minor", length=0)
    ax.set_xlabel(ROUND_LABEL)
    ax.set_ylabel(LEARNER_LABEL)
    ax.legend(handles=[Patch(facecolor=c, edgecolor="#999999", label=label)
                       for c, label in zip(GRID_COLOURS, GRID_LABELS)],
              bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=7)


def plot_results(
    results: Results,
    n_learners: int,
    path: Path | IO[bytes],
    score_name: str = "score",
    extra: dict[str, Sequence[float | None]] | None = None,
    *,
    test_name: str | None = None,
    vote_name: str | None = None,
    vote_lower_is_better: bool | None = None,
    baselines: Sequence[float] | None = None,
    baseline_what: str = "alone",
) -> Path | IO[bytes]:
    """Test and vote scores per learner per round, with their means, side by side as a
    PNG. ``test_name`` and ``vote_name`` name each panel's score (default ``score_name``;
    their direction and unit come from the name, or ``vote_lower_is_better``); ``extra``
    adds named series (e.g. accuracy on a global held-out set) to the test panel, and
    ``baselines`` each learner's solo score there as dashed lines (:func:`draw_baselines`)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.8))
    ax_test, ax_vote = fig.subplots(1, 2, sharex=True)
    for ax, kind, name, lower in ((ax_test, "test", test_name or score_name, None),
                                  (ax_vote, "vote", vote_name or score_name,
                                   vote_lower_is_better)):
        draw_scores(ax, results, (kind,), name, n_learners, legend=False, lower_is_better=lower)
        ax.set_title(f"{kind} {name} per learner")
    draw_curves(ax_test, extra or {}, thick=True)
    if baselines:
        draw_baselines(ax_test, baselines, baseline_what)
    for ax in (ax_test, ax_vote):
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    return path


def plot_votes(results: Results, n_learners: int, path: Path | IO[bytes]) -> Path | IO[bytes]:
    """The learner x round vote grid as a PNG: approve, reject, no vote, and the proposer
    coloured by the round's outcome (accepted, rejected, expired)."""
    from matplotlib.figure import Figure

    n_rounds = len(results.data)
    fig = Figure(figsize=(max(6, n_rounds * 0.45), 1.2 + n_learners * 0.45))
    draw_votes(fig.subplots(), results, n_learners)
    fig.axes[0].set_title("votes")
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    return path

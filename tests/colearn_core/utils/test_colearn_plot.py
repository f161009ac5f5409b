"""colearn's ColearnPlot, headless: under a non-interactive backend nothing is shown and
nothing waits; the axes carry colearn's content, with y-axis labels."""

from __future__ import annotations

import inspect
import io

import matplotlib
import pytest

matplotlib.use("Agg")  # as MPLBACKEND=Agg: the tests never open a window
import matplotlib.pyplot as plt

from colearn_core.plots import GRID_LABELS, plot_results, plot_votes, vote_grid
from colearn_core.utils.plot import ColearnPlot
from colearn_core.utils.results import Result, Results


def _results() -> Results:
    results = Results()
    results.data.append(Result(votes=[True] * 3, test_scores=[0.5, 0.6, 0.7],
                               vote_scores=[0.4, 0.5, 0.6]))  # colearn's initial result
    results.data.append(Result(vote=True, votes=[None, True, False], block_proposer=0,
                               test_scores=[0.6, 0.7, 0.8], vote_scores=[0.5, 0.6, 0.7]))
    results.data.append(Result(vote=False, votes=[False, None, False], block_proposer=1,
                               test_scores=[0.6, 0.5, 0.8], vote_scores=[0.5, 0.4, 0.7]))
    results.data.append(Result.expired(2, 3))
    return results


def test_colearns_constructor_and_methods() -> None:
    params = inspect.signature(ColearnPlot).parameters
    assert [(p, params[p].default) for p in ("score_name", "draw_time")] == [
        ("score_name", "user-defined score"), ("draw_time", 0.01)]
    for method in ("plot_results", "plot_votes", "plot_results_and_votes"):
        assert list(inspect.signature(getattr(ColearnPlot, method)).parameters) == [
            "self", "results"]
    assert list(inspect.signature(ColearnPlot.block).parameters) == ["self"]


def test_headless_plot_draws_and_never_waits(tmp_path) -> None:
    path = tmp_path / "colearn.png"
    plot = ColearnPlot(score_name="accuracy", path=path)
    assert not plot.interactive
    results = _results()
    plot.plot_results_and_votes(results)
    assert results.mean_test_scores[0] == pytest.approx(0.6)  # process_statistics ran
    assert plot.results_axes.get_ylabel() == "accuracy"
    assert plot.results_axes.get_xlabel() == "training round"
    labels = [line.get_label() for line in plot.results_axes.get_lines()]
    assert {"mean test accuracy", "mean vote accuracy"} <= set(labels)
    assert len(plot.results_axes.get_lines()) == 3 * 2 + 2
    assert plot.votes_axes.get_ylabel() == "learner"
    assert [t.get_text() for t in plot.votes_axes.get_yticklabels()] == [
        "learner 0", "learner 1", "learner 2"]
    assert path.read_bytes()[:4] == b"\x89PNG"
    figure = plot.figure
    plot.block()  # returns at once
    assert figure.number not in plt.get_fignums()
    with pytest.raises(RuntimeError, match="invalid"):
        plot.block()
    plot.plot_results(results)  # a fresh figure, as colearn's remakes its axes
    assert not plot.fig_invalid
    plot.block()


def test_vote_grid_marks_proposers_by_outcome() -> None:
    grid = vote_grid(_results(), 3)
    names = [[GRID_LABELS[v] for v in row] for row in grid]
    assert names[0] == ["approve", "proposer: accepted", "reject", "no vote"]
    assert names[1] == ["approve", "approve", "proposer: rejected", "no vote"]
    assert names[2] == ["approve", "reject", "reject", "proposer: expired"]


def test_png_plots_have_y_labels() -> None:
    from matplotlib.figure import Figure

    for draw in (lambda out: plot_results(_results(), 3, out, score_name="accuracy"),
                 lambda out: plot_votes(_results(), 3, out)):
        out = io.BytesIO()
        draw(out)
        assert out.getvalue()[:4] == b"\x89PNG"
    from colearn_core.plots import draw_scores

    ax = Figure().subplots()
    draw_scores(ax, _results(), ("vote",), "accuracy")
    assert ax.get_ylabel() == "vote accuracy"

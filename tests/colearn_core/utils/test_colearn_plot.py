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
    assert plot.results_axes.get_ylabel() == "accuracy (fraction correct, 0–1; higher is better)"
    assert plot.results_axes.get_xlabel() == "training round (number, from 0)"
    labels = [line.get_label() for line in plot.results_axes.get_lines()]
    assert {"mean test accuracy", "mean vote accuracy"} <= set(labels)
    assert len(plot.results_axes.get_lines()) == 3 * 2 + 2
    assert plot.votes_axes.get_ylabel() == "learner (index in the experiment)"
    assert plot.votes_axes.get_xlabel() == "training round (number, from 0)"
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
    assert ax.get_ylabel() == "vote accuracy (fraction correct, 0–1; higher is better)"


def test_labels_say_the_unit_and_which_way_is_better() -> None:
    from matplotlib.figure import Figure

    from colearn_core.plots import draw_scores, lower_is_better_from_name, score_label

    assert score_label("vote cross-entropy") == "vote cross-entropy (nats; lower is better)"
    assert score_label("vote score", lower_is_better=True) == \
        "vote score (unitless; lower is better)"
    assert score_label("vote score") == "vote score (unitless)"  # direction unknown: unsaid
    assert score_label("mse", unit="kWh²") == "mse (kWh²; lower is better)"
    assert [lower_is_better_from_name(n) for n in ("loss", "Mean Squared Error", "AUC",
                                                   "score")] == [True, True, False, None]
    ax = Figure().subplots()
    draw_scores(ax, _results(), ("vote",), "score", lower_is_better=True)
    assert ax.get_ylabel() == "vote score (unitless; lower is better)"
    assert ax.get_xlabel() == "training round (number, from 0)"


def test_solo_baselines_are_dashed_labelled_lines_on_the_accuracy_panel() -> None:
    from matplotlib.figure import Figure

    from colearn_core import plots

    captured = []

    class Spy(Figure):
        def savefig(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            captured.append(self)
            super().savefig(*args, **kwargs)

    from unittest import mock

    with mock.patch("matplotlib.figure.Figure", Spy):
        plots.plot_results(_results(), 3, io.BytesIO(), test_name="accuracy",
                           vote_name="cross-entropy", vote_lower_is_better=True,
                           extra={"global test accuracy": [0.5, 0.6, 0.6, 0.6]},
                           baselines=[0.55, 0.58, 0.61])
    ax_test, ax_vote = captured[0].axes
    assert ax_test.get_ylabel() == "test accuracy (fraction correct, 0–1; higher is better)"
    assert ax_vote.get_ylabel() == "vote cross-entropy (nats; lower is better)"
    dashed = [line for line in ax_test.get_lines() if line.get_linestyle() == "--"]
    assert [line.get_label() for line in dashed] == [
        "learner 0 alone: 0.550", "learner 1 alone: 0.580", "learner 2 alone: 0.610"]
    assert [line.get_ydata()[0] for line in dashed] == [0.55, 0.58, 0.61]

    ax = Figure().subplots()  # many learners: their best and mean only
    plots.draw_baselines(ax, [0.1 * i for i in range(1, 11)])
    assert [line.get_label() for line in ax.get_lines()] == [
        "best learner alone: 1.000", "mean learner alone: 0.550"]

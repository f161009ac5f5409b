"""colearn's live figure: scores (top) and the vote grid (bottom), redrawn after each
round. Drawn by :mod:`colearn_core.plots`.

Under a non-interactive backend (``MPLBACKEND=Agg``, no display) nothing is shown, nothing
waits and :meth:`ColearnPlot.block` returns at once; ``path``, an addition, saves the
figure there after every update.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from colearn_core.plots import draw_scores, draw_votes
from colearn_core.results import Results

log = logging.getLogger(__name__)


def _interactive_backend() -> bool:
    import matplotlib
    from matplotlib.backends import BackendFilter, backend_registry

    backend = matplotlib.get_backend().lower()
    return backend in backend_registry.list_builtin(BackendFilter.INTERACTIVE)


class ColearnPlot:
    """colearn's ``ColearnPlot(score_name, draw_time)``: ``plot_results``,
    ``plot_votes``, ``plot_results_and_votes`` and ``block``."""

    def __init__(self, score_name: str = "user-defined score", draw_time: float = 0.01,
                 path: str | Path | None = None) -> None:
        import matplotlib.pyplot as plt

        self._plt = plt
        self.score_name = score_name
        self.draw_time = draw_time  # seconds given to the GUI to draw after each update
        self.path = Path(path) if path is not None else None
        self.interactive = _interactive_backend()
        if self.interactive:
            plt.ion()
        self.fig_invalid = False
        self._remake_axes()

    def _remake_axes(self) -> None:
        self.figure: Any = self._plt.figure(figsize=(9, 7))
        self.results_axes: Any = self.figure.add_subplot(2, 1, 1)
        self.votes_axes: Any = self.figure.add_subplot(2, 1, 2)
        if self.interactive:
            self._plt.show(block=False)
        self.fig_invalid = False

    def plot_results_and_votes(self, results: Results) -> None:
        self.plot_results(results)
        self.plot_votes(results)

    def plot_results(self, results: Results) -> None:
        """Each learner's test and vote scores per round, and their means (this calls
        ``results.process_statistics()``, as colearn's does)."""
        if self.fig_invalid:
            self._remake_axes()
        self.results_axes.clear()
        draw_scores(self.results_axes, results, ("test", "vote"), self.score_name)
        self._update()

    def plot_votes(self, results: Results) -> None:
        """Each learner's vote per round, the proposer's cell coloured by the outcome."""
        if self.fig_invalid:
            self._remake_axes()
        self.votes_axes.clear()
        n_learners = max((len(r.votes) for r in results.data), default=0)
        draw_votes(self.votes_axes, results, n_learners)
        self._update()

    def block(self) -> None:
        """Shows the figure until its window is closed (returns at once when the backend
        is not interactive); the figure is then spent: plotting again opens a new one."""
        if self.fig_invalid:
            raise RuntimeError("Previous call to .block() made the plot invalid.")
        if self.interactive:
            self._plt.show(block=True)
        else:
            self._save()
        self._plt.close(self.figure)
        self.fig_invalid = True

    def _update(self) -> None:
        self.figure.tight_layout()
        if self.interactive:
            self.figure.canvas.draw_idle()
            self._plt.pause(self.draw_time)
        self._save()

    def _save(self) -> None:
        if self.path is not None:
            self.figure.savefig(self.path, dpi=100)
            log.debug("plot saved to %s", self.path)

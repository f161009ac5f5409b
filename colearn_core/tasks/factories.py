"""Learner factories for ``colearn agent --learner MODULE:FACTORY``.

A stakeholder's factory builds its learner over its own private data; these build the
demo's learners, one stakeholder's part of a seeded split each.
"""

from __future__ import annotations

from colearn_core.ml_interface import MachineLearningInterface


def digits_learner(index: int, n_learners: int = 5, seed: int = 0, *,
                   vote_tolerance: float = 0.0,
                   update_fraction: float = 1.0) -> MachineLearningInterface:
    """Learner ``index`` of the digits task split ``n_learners`` ways with ``seed``: the
    same learner the in-process demo builds (``vote_tolerance`` and ``update_fraction``:
    :class:`~colearn_core.learners.pytorch.PytorchLearner`'s; the defaults are
    colearn's)."""
    from colearn_core.tasks.digits import DigitsConfig
    from colearn_core.tasks.digits_torch import make_digits_learners

    if not 0 <= index < n_learners:
        raise ValueError(f"learner index {index} is outside 0..{n_learners - 1}")
    return make_digits_learners(config=DigitsConfig(
        n_learners=n_learners, seed=seed, vote_tolerance=vote_tolerance,
        update_fraction=update_fraction))[index]

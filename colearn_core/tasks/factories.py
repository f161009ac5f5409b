"""Learner factories for ``colearn agent --learner MODULE:FACTORY``.

A stakeholder's factory builds its learner over its own private data; these build the
demo's learners, one stakeholder's part of a seeded split each.
"""

from __future__ import annotations

from colearn_core.ml_interface import MachineLearningInterface
from colearn_core.tasks.mlp_config import DEFAULT_RULE


def digits_learner(index: int, n_learners: int = 5, seed: int = 0, *,
                   rule: str = DEFAULT_RULE, vote_tolerance: float | None = None,
                   update_fraction: float | None = None,
                   update_momentum: float | None = None,
                   logit_adjustment: bool | None = None) -> MachineLearningInterface:
    """Learner ``index`` of the digits task split ``n_learners`` ways with ``seed``: the
    same learner the in-process demo builds. ``rule`` names its vote and proposal options
    (:data:`~colearn_core.tasks.mlp_config.RULES`; ``"colearn"``: colearn's learner); an
    option given overrides the rule's (they are
    :class:`~colearn_core.learners.pytorch.PytorchLearner`'s)."""
    from colearn_core.tasks.digits import DigitsConfig
    from colearn_core.tasks.digits_torch import make_digits_learners
    from colearn_core.tasks.mlp_config import rule_options

    if not 0 <= index < n_learners:
        raise ValueError(f"learner index {index} is outside 0..{n_learners - 1}")
    given = {"vote_tolerance": vote_tolerance, "update_fraction": update_fraction,
             "update_momentum": update_momentum, "logit_adjustment": logit_adjustment}
    options = rule_options(rule) | {k: v for k, v in given.items() if v is not None}
    return make_digits_learners(config=DigitsConfig(
        n_learners=n_learners, seed=seed, **options))[index]

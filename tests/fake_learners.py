"""Learner factories for system tests (``colearn agent --learner fake_learners:...``): a
digits learner, honest or poisoning, whose first tests of proposals are slow, so that a
test can act (kill another agent, say) while this one is still judging."""

from __future__ import annotations

import time
from typing import Any

from adversaries import poisoned_learner

from colearn_core.ml_interface import ProposedWeights, Weights
from colearn_core.tasks.factories import digits_learner


def slow_tester(index: int, n_learners: int = 5, seed: int = 0, delay: float = 5.0,
                slow_tests: int = 1, poison: str = "") -> Any:
    """Learner ``index`` (poisoning in mode ``poison`` if given) whose first ``slow_tests``
    calls to ``mli_test_weights`` on a proposal each take ``delay`` seconds more."""
    learner = poisoned_learner(index, n_learners, seed, mode=poison) if poison else \
        digits_learner(index, n_learners, seed)
    honest_test = learner.mli_test_weights
    left = [slow_tests]

    def test(weights: Weights) -> ProposedWeights:
        if left[0] > 0:
            left[0] -= 1
            time.sleep(delay)
        return honest_test(weights)

    learner.mli_test_weights = test
    return learner

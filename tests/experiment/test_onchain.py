"""run_on_chain: any learners through a whole experiment on the in-process chain, with the
same decisions as the in-memory driver."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from agents.experiment.onchain import run_on_chain
from colearn_core.tasks.digits import DigitsConfig
from colearn_core.tasks.digits_torch import make_digits_learners
from colearn_core.training import run_experiment, set_equal_weights


def test_on_chain_matches_the_in_memory_driver() -> None:
    config = DigitsConfig(n_learners=3, n_rounds=4)
    in_memory = make_digits_learners(config=config)
    set_equal_weights(in_memory)
    expected = run_experiment(in_memory, 4, 0.5)

    learners = make_digits_learners(config=config)
    run = run_on_chain(learners, 4, 0.5)

    assert run.decisions() == expected.decisions()
    assert len(run.rounds) == 4 and all(r.closed for r in run.rounds)
    final = in_memory[0].mli_get_current_weights().weights
    assert set(run.final_weights) == set(final)
    assert all(np.array_equal(run.final_weights[k], final[k]) for k in final)
    for learner in learners:  # every agent adopted the final model
        current = learner.mli_get_current_weights().weights
        assert all(np.array_equal(current[k], final[k]) for k in final)
    results = run.results()
    assert [r.vote for r in results.data] == expected.decisions()
    assert [r.block_proposer for r in results.data] == [0, 1, 2, 0]
    assert results.data[0].training_summaries[0] is not None  # the proposer's summary
    assert run.total_gas == sum(r.gas.total for r in run.rounds) > 0


def test_needs_two_learners() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        run_on_chain(make_digits_learners(n_learners=2)[:1], 1)

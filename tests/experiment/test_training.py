"""agents.experiment.training: colearn's training helpers with each collective round played
on chain (one agent per learner, in process), returning what the in-memory ones return."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from agents.experiment import training as on_chain
from colearn_core import training as in_memory
from colearn_core.tasks.digits import DigitsConfig
from colearn_core.tasks.digits_torch import make_digits_learners


@pytest.fixture(autouse=True)
def _close_sessions() -> object:
    yield
    on_chain.close()


def test_rounds_on_chain_match_the_in_memory_rounds() -> None:
    config = DigitsConfig(n_learners=3, n_rounds=3)
    expected_learners = make_digits_learners(config=config)
    in_memory.set_equal_weights(expected_learners)
    expected = [in_memory.collective_learning_round(expected_learners, 0.5, r)
                for r in range(3)]

    learners = make_digits_learners(config=config)
    on_chain.set_equal_weights(learners)
    initial = on_chain.initial_result(learners)
    assert initial.votes == [True] * 3 and initial.block_proposer is None
    got = [on_chain.collective_learning_round(learners, 0.5, r) for r in range(3)]

    assert [r.vote for r in got] == [r.vote for r in expected]
    assert [r.block_proposer for r in got] == [0, 1, 2]
    for r, e in zip(got, expected):
        assert r.votes == e.votes  # the proposer's is None
        assert r.vote_scores == pytest.approx(e.vote_scores)
        assert r.test_scores == pytest.approx(e.test_scores)
        assert r.training_summaries[r.block_proposer] is not None
    final = expected_learners[0].mli_get_current_weights().weights
    for learner in learners:  # each call returns with every learner holding the outcome
        current = learner.mli_get_current_weights().weights
        assert all(np.array_equal(np.asarray(current[k]), np.asarray(final[k]))
                   for k in final)


def test_a_closed_round_is_returned_as_it_was_and_sessions_are_per_learner_list() -> None:
    learners = make_digits_learners(n_learners=2)
    first = on_chain.collective_learning_round(learners, 0.5, 0)
    session = on_chain.session_for(learners, 0.5)
    assert all(set(own) == {0} for own in session.records())  # round 1 not begun
    again = on_chain.collective_learning_round(learners, 0.5, 0)
    assert again == first
    assert on_chain.session_for(learners, 0.5) is session
    with pytest.raises(ValueError, match="vote threshold"):
        on_chain.collective_learning_round(learners, 0.8, 1)
    others = make_digits_learners(n_learners=2)
    on_chain.collective_learning_round(others, 0.5, 0)
    assert on_chain.session_for(others, 0.5) is not session


def test_close_ends_every_session_and_a_new_call_starts_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    learners = make_digits_learners(n_learners=2)
    on_chain.collective_learning_round(learners, 0.5, 0)
    session = on_chain.session_for(learners, 0.5)
    assert [p.name[:16] for p in tmp_path.iterdir()] == ["colearn-onchain-"]  # its store
    on_chain.close()
    assert not list(tmp_path.iterdir())
    assert on_chain.session_for(learners, 0.5) is not session


def test_bad_round_indices_are_refused() -> None:
    learners = make_digits_learners(n_learners=2)
    with pytest.raises(ValueError, match=">= 0"):
        on_chain.collective_learning_round(learners, 0.5, -1)


def test_individual_rounds_involve_no_chain() -> None:
    learners = make_digits_learners(n_learners=2)
    result = on_chain.individual_training_round(learners, 0)
    assert result.votes == [True, True] and not on_chain._sessions

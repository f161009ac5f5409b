"""colearn's Result/Results at colearn's path: defaults, statistics and print_results."""

from __future__ import annotations

import inspect

import pytest

import colearn_core.results
import colearn_core.utils.results
from colearn_core.ml_interface import ProposedWeights, Weights
from colearn_core.utils.results import Result, Results, print_results


def test_one_class_at_both_paths() -> None:
    for name in ("Result", "Results", "print_results"):
        assert getattr(colearn_core.utils.results, name) is getattr(colearn_core.results, name)
    assert list(inspect.signature(print_results).parameters) == ["results"]


def test_result_has_colearns_defaults_and_is_filled_in_place() -> None:
    result = Result()
    assert (result.vote, result.votes, result.test_scores, result.vote_scores,
            result.block_proposer, result.training_summaries) == (False, [], [], [], None, [])
    assert not result.is_expired
    result.votes.append(True)  # colearn's scripts build results this way
    result.vote = True
    assert Result().votes == []  # no shared default list


def test_expired_round() -> None:
    expired = Result.expired(proposer=1, n_learners=3)
    assert expired.is_expired and expired.vote is None and expired.block_proposer == 1
    assert expired.votes == expired.test_scores == expired.vote_scores == [None] * 3


def test_from_round_keeps_the_proposers_summary() -> None:
    proposed = [ProposedWeights(weights=Weights(weights=0), vote_score=v, test_score=v + 1,
                                vote=vote) for v, vote in ((0.5, True), (0.25, None))]
    result = Result.from_round(1, proposed, True)
    assert result.votes == [True, None] and result.test_scores == [1.5, 1.25]
    assert result.block_proposer == 1 and result.vote is True


def _results() -> Results:
    results = Results()
    results.data.append(Result(votes=[True, True], test_scores=[0.5, 0.7],
                               vote_scores=[0.4, 0.6]))
    results.data.append(Result(vote=True, votes=[None, True], test_scores=[0.6, 0.8],
                               vote_scores=[0.5, 0.9], block_proposer=0))
    results.data.append(Result.expired(1, 2))
    return results


def test_process_statistics_fills_colearns_attributes() -> None:
    results = Results()
    assert (results.data, results.h_test_scores, results.h_vote_scores,
            results.mean_test_scores, results.mean_vote_scores) == ([], [], [], [], [])
    results.process_statistics()  # no rounds: colearn's raised, ours gives empty series
    assert results.h_test_scores == []
    results = _results()
    assert results.mean_test_scores == []  # filled only by process_statistics, as colearn
    results.process_statistics()
    assert results.h_test_scores == [[0.5, 0.6, None], [0.7, 0.8, None]]
    assert results.h_vote_scores == [[0.4, 0.5, None], [0.6, 0.9, None]]
    assert results.mean_test_scores[:2] == pytest.approx([0.6, 0.7])
    assert results.mean_test_scores[2] is None
    assert results.mean_vote_scores[:2] == pytest.approx([0.5, 0.7])
    assert results.decisions() == [False, True, None]
    assert not hasattr(results, "append") and not callable(results.mean_test_scores)


def test_print_results_prints_colearns_latest_round_table(capsys) -> None:
    results = _results()
    results.data.pop()
    print_results(results)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "--------------- LATEST ROUND RESULTS -------------"
    assert lines[1] == "Selected proposer:\t 0"
    assert lines[2] == "New model accepted:\t True"
    assert lines[4] == "learner id\t\tvote\ttest score\t\tvote score"
    assert lines[5] == "0\t\t\t\tNone\t0.600\t\t\t0.500"
    assert lines[6] == "1\t\t\t\tTrue\t0.800\t\t\t0.900"
    assert lines[7] == "-" * 50 and len(lines) == 8


def test_print_results_on_an_expired_round_and_on_nothing(capsys) -> None:
    print_results(_results())
    out = capsys.readouterr().out
    assert "New model accepted:\t None (round expired)" in out
    assert "0\t\t\t\tNone\tNone\t\t\tNone" in out
    print_results(Results())
    assert "NO ROUNDS YET" in capsys.readouterr().out

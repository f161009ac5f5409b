"""``colearn experiment status``'s reading: the phase and deadline as the contract computes
them, who joined, proposed, voted, who is late, balances and stakes; on both dev chains."""

from __future__ import annotations

import io

from experiments import Make, score_to_fixed
from rich.console import Console

from agents.chain.types import ExperimentOptions
from agents.experiment.status import experiment_status, render_status


def rendered(status) -> str:
    out = io.StringIO()
    render_status(status, Console(file=out, width=200))
    return out.getvalue()


def by_index(status):
    return {learner.index: learner for learner in status.learners}


def test_joining_then_late_joiners(make: Make, clock):
    e = make(n=3, join=False)
    e.join(e.learners[0])
    s = experiment_status(e.contract, e.id)
    assert (s.state, s.phase, s.round) == ("JOINING", "joining", 0)
    assert s.deadline == s.join_deadline and s.seconds_left > 0
    learners = by_index(s)
    assert [learners[i].joined for i in range(3)] == [True, False, False]
    assert [learners[i].waiting for i in range(3)] == [False, True, True]
    assert not s.late
    assert "1 of 3 learners joined" in rendered(s)

    clock.mine_at(s.join_deadline)  # the deadline passed with two learners missing
    s = experiment_status(e.contract, e.id)
    assert (s.state, s.phase) == ("JOIN_TIMED_OUT", "joining (deadline passed)")
    assert [x.index for x in s.late] == [1, 2]
    assert s.seconds_left == 0 and "UTC (now)" in rendered(s)
    assert "late" in rendered(s) and "LATE: has not joined" in rendered(s)


def test_proposer_and_voters_and_who_is_late(make: Make, clock):
    e = make(n=3)
    s = experiment_status(e.contract, e.id)
    assert (s.state, s.round, s.proposer) == ("PROPOSING", 0, e.learners[0].address)
    assert all(x.joined for x in s.learners) and not s.late
    assert [x.role for x in s.learners] == ["proposer", "voter", "voter"]
    assert by_index(s)[0].waiting and not by_index(s)[1].waiting
    assert all(x.balance > 0 for x in s.learners)  # wei, funded by the fixture

    e.propose(0)
    e.vote(0, e.learners[1], True, score_to_fixed(0.4))
    s = experiment_status(e.contract, e.id)
    assert (s.state, s.phase) == ("VOTING", "voting")
    learners = by_index(s)
    assert learners[0].acted and learners[1].acted and not learners[2].acted
    assert [x.waiting for x in s.learners] == [False, False, True] and not s.late
    text = rendered(s)
    assert "proposer: proposed" in text and "voter: voted" in text and "has not voted" in text

    clock.mine_at(s.deadline)
    s = experiment_status(e.contract, e.id)
    assert s.state == "VOTING_TIMED_OUT" and s.seconds_left <= 0
    assert [x.index for x in s.late] == [2]
    assert "voter: LATE, has not voted" in rendered(s)


def test_a_round_closes_and_the_experiment_completes(make: Make):
    e = make(n=2, rounds=1)
    e.propose(0)
    e.vote(0, e.learners[1], True, score_to_fixed(0.3))
    s = experiment_status(e.contract, e.id)
    assert (s.state, s.phase, s.round, s.deadline) == ("COMPLETED", "complete", 1, 0)
    assert (s.closed_rounds, s.accepted_rounds, s.model_round) == (1, 1, 1)
    assert s.model_cid == e.proposal(0)[0]
    assert s.model_digest == "0x" + e.proposal(0)[1].hex()
    assert s.proposer is None and not s.late
    assert "phase complete" in rendered(s)


def test_a_staked_experiment_shows_stakes_and_what_is_owed(make: Make, clock):
    stake = 10**15
    e = make(n=2, rounds=1, options=ExperimentOptions(stake=stake,
                                                       missed_proposal_penalty=stake // 2))
    clock.mine_at(experiment_status(e.contract, e.id).deadline)  # the proposer misses it
    e.contract.expire(e.id, 0)
    s = experiment_status(e.contract, e.id)
    assert s.staked and s.state == "COMPLETED" and s.pool == stake // 2
    learners = by_index(s)
    assert [learners[i].stake for i in range(2)] == [stake, stake]
    assert [learners[i].penalties for i in range(2)] == [stake // 2, 0]
    assert learners[0].owed is not None and learners[0].owed < learners[1].owed
    assert "stake" in rendered(s) and "owed" in rendered(s)
    data = s.model_dump(mode="json")
    assert data["learners"][0]["penalties"] == stake // 2


def test_sealed_votes_commit_reveal_and_a_late_revealer(make: Make, clock):
    e = make(n=3, rounds=1, options=ExperimentOptions(reveal_timeout=100))
    e.propose(0)
    e.commit(0, e.learners[1], True, score_to_fixed(0.2))
    s = experiment_status(e.contract, e.id)
    assert (s.state, s.sealed) == ("VOTING", True)
    assert [x.waiting for x in s.learners] == [False, False, True]
    assert "committed, not revealed" in rendered(s)
    e.commit(0, e.learners[2], False, score_to_fixed(0.9))
    e.reveal(0, e.learners[1], True, score_to_fixed(0.2))
    s = experiment_status(e.contract, e.id)
    assert (s.state, s.phase) == ("REVEALING", "revealing")
    assert [x.waiting for x in s.learners] == [False, False, True] and not s.late
    assert "voter: voted (revealed)" in rendered(s)
    clock.mine_at(s.deadline)
    s = experiment_status(e.contract, e.id)
    assert s.state == "REVEAL_TIMED_OUT" and [x.index for x in s.late] == [2]

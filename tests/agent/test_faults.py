"""Faults with agents as OS processes on anvil, weights on a real IPFS daemon (js-ipfs).

Each test runs a small experiment end to end with ``colearn agent`` processes and breaks
something: a killed agent, an agent that never comes, tampered or missing weights, a
poisoning proposer, bad command-line input.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import started
from consortium import Consortium
from experiments import web3_contract

from agents.chain.logs import LearnerJoined, RoundDecided, RoundExpired, VoteCast, WeightsProposed
from agents.chain.network import advance_time
from agents.chain.types import NO_SCORE, ExperimentOptions, Penalty, RoundState
from agents.devtools.anvil import AnvilProcess
from agents.storage.cid import compute_cid
from colearn_core.codec import decode_weights, encode_weights
from colearn_core.tasks.digits import DigitsConfig
from colearn_core.tasks.digits_torch import global_test_accuracy, make_digits_learners
from colearn_core.tasks.mlp_config import DEFAULT_RULE, rule_options
from colearn_core.training import run_experiment, set_equal_weights

pytestmark = [pytest.mark.slow, pytest.mark.anvil, pytest.mark.ipfs]


@pytest.fixture(scope="module")
def anvil() -> Iterator[AnvilProcess]:
    # Mixed mining: transactions mine at once and empty blocks every second move the
    # chain's clock, so deadlines pass as they would on a live network.
    with started(lambda: AnvilProcess(block_time=1, mixed_mining=True), "anvil",
                 "anvil") as process:
        yield process


@pytest.fixture
def consortium(anvil, ipfs_daemon, tmp_path) -> Iterator[callable]:
    made: list[Consortium] = []

    def make(**kwargs) -> Consortium:
        made.append(Consortium(anvil.url, ipfs_daemon.api_url, tmp_path, **kwargs))
        return made[-1]

    yield make
    for c in made:
        c.stop()


def test_an_agent_killed_mid_round_restarts_and_catches_up(consortium):
    c = consortium(n=3, rounds=6)
    for i in range(3):
        c.start(i)
    c.wait_round(2)
    c.kill(1)  # wherever it is: training, testing, between RPC calls
    killed_at = c.client.experiment(c.experiment_id).round
    time.sleep(3)  # the round now waits for learner 1's vote or proposal
    assert c.client.experiment(c.experiment_id).round <= killed_at + 1
    c.start(1)
    c.wait_all()

    assert c.client.state(c.experiment_id) == RoundState.COMPLETED
    digest, _ = c.client.current_model(c.experiment_id)
    for i in range(3):
        assert c.result(i)["model_digest"] == "0x" + digest.hex()
    assert "adopted model" in c.log(1)  # the restarted agent rebuilt its model from the chain
    closed = [d.round for d in c.client.events(RoundDecided, c.experiment_id)] + \
        [e.round for e in c.client.events(RoundExpired, c.experiment_id)]
    assert sorted(closed) == list(range(6))  # every round closed once: none lost or repeated


def test_a_learner_that_never_comes_expires_its_rounds_and_the_rest_finish(consortium):
    # learner 1's missing votes hold each round until the voting deadline: keep it short
    c = consortium(n=3, rounds=4, proposal_timeout=20, voting_timeout=5)
    c.join(1)  # it consented, then never comes
    c.start(0)
    c.start(2)
    c.wait_all()

    assert [e.round for e in c.client.events(RoundExpired, c.experiment_id)] == [1]
    assert [d.round for d in c.client.events(RoundDecided, c.experiment_id)] == [0, 2, 3]
    assert c.client.state(c.experiment_id) == RoundState.COMPLETED
    assert "closed as expired" in c.log(0) + c.log(2)


def test_missing_or_mismatched_weights_get_reject_votes_with_reasons(consortium):
    c = consortium(n=3, rounds=4, voting_timeout=5)  # learner 0 never votes
    proposer = c.client.with_account(c.accounts[0])  # learner 0 misbehaves by hand
    c.join(0)
    good = bytes(encode_weights(make_digits_learners(config=DigitsConfig(n_learners=3))[0]
                                .mli_get_current_weights().weights))
    c.start(1)
    c.start(2)
    c.wait_until(lambda: c.client.state(c.experiment_id) is RoundState.PROPOSING, 120,
                 "both agents to join (the last join starts round 0)")
    proposer.propose(c.experiment_id, 0, compute_cid(good + b"never stored"),
                     hashlib.sha256(good + b"never stored").digest())
    c.wait_round(3, RoundState.PROPOSING)
    proposer.propose(c.experiment_id, 3, c.store.put(good), hashlib.sha256(b"other").digest())
    c.wait_all()

    for round_index in (0, 3):
        votes = c.client.events(VoteCast, c.experiment_id, round_index)
        assert [(v.approve, v.score) for v in votes] == [(False, NO_SCORE)] * 2
        assert not c.client.events(RoundDecided, c.experiment_id, round_index)[0].accepted
    for i in (1, 2):
        assert "not found" in c.log(i) and "digest mismatch" in c.log(i)


# colearn's rule and the default (balanced: the widest vote tolerance of the named rules)
@pytest.mark.parametrize("rule", ["colearn", DEFAULT_RULE])
@pytest.mark.parametrize("mode", ["random", "label_flip"])
def test_a_poisoning_proposer_is_outvoted_and_accuracy_holds(consortium, mode, rule):
    n, rounds = 3, 6
    options = {"rule": rule}
    c = consortium(n=n, rounds=rounds)
    c.start(0, "adversaries:poisoned_learner", mode=mode, **options)
    c.start(1, "colearn_core.tasks.factories:digits_learner", **options)
    c.start(2, "colearn_core.tasks.factories:digits_learner", **options)
    c.wait_all()

    decisions = {d.round: d.accepted for d in c.client.events(RoundDecided, c.experiment_id)}
    assert [decisions[r] for r in range(0, rounds, n)] == [False, False]  # every poison refused
    final = decode_weights(c.store.get(_model_cid(c)).data)
    config = DigitsConfig(n_learners=n, n_rounds=rounds, **rule_options(rule))
    accuracy = global_test_accuracy(final, config)
    # Baseline: the same experiment in memory where learner 0 contributes nothing (it
    # proposes its current weights, which nobody finds better): poison must cost no more.
    honest = make_digits_learners(config=config)
    honest[0].mli_propose_weights = honest[0].mli_get_current_weights
    set_equal_weights(honest)
    baseline_decisions = run_experiment(honest, rounds, 0.5).decisions()
    # (colearn's rule refuses the unchanged model, not strictly better; the tolerant ones
    # accept it, no worse: either way the model stays as it was)
    nothing = [False, False] if rule == "colearn" else [True, True]
    assert [baseline_decisions[r] for r in range(0, rounds, n)] == nothing
    baseline = global_test_accuracy(honest[1].mli_get_current_weights(), config)
    assert accuracy >= baseline - 0.01, (accuracy, baseline)


def _model_cid(c: Consortium) -> str:
    _, model_round = c.client.current_model(c.experiment_id)
    assert model_round > 0
    return c.client.events(WeightsProposed, c.experiment_id, model_round - 1)[0].cid


def run_agent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agents.cli", "agent", *args],
                          capture_output=True, text=True, timeout=60)


def test_bad_agent_input_gives_one_line_and_a_non_zero_exit(consortium, tmp_path: Path):
    c = consortium(n=2, rounds=1)
    base = ["--learner", "colearn_core.tasks.factories:digits_learner",
            "--learner-arg", "index=0", "--learner-arg", "n_learners=2", "--store", c.store_url]
    key = ["--keystore", str(c.keystores[0]), "--password-file", str(tmp_path / "password")]
    wrong_password = tmp_path / "wrong"
    wrong_password.write_text("not the password")
    no_code = "0x" + "11" * 20
    cases = {
        "cannot reach the chain": [
            "--rpc", "http://127.0.0.1:9", "--contract", c.client.address, "--experiment", "1",
            *key, *base],
        "wrong password": [
            "--rpc", c.chain_url, "--contract", c.client.address, "--experiment", "1",
            "--keystore", str(c.keystores[0]), "--password-file", str(wrong_password), *base],
        "no contract code": [
            "--rpc", c.chain_url, "--contract", no_code, "--experiment", "1", *key, *base],
        "UnknownExperiment": [
            "--rpc", c.chain_url, "--contract", c.client.address, "--experiment", "99",
            *key, *base],
    }
    for message, args in cases.items():
        result = run_agent(*args)
        output = result.stdout + result.stderr
        assert result.returncode != 0, message
        assert "Traceback" not in output, output
        assert message in output, output
        assert len(output.strip().splitlines()) == 1, output


def test_an_agent_started_late_delays_the_start_instead_of_losing_round_0(consortium):
    # Learner 2's agent starts after more than a proposal timeout: round 0 waits for it.
    c = consortium(n=3, rounds=2, proposal_timeout=5, voting_timeout=30)
    c.start(0)
    c.start(1)
    c.wait_until(lambda: c.joined() == 2, 120, "two learners to join")
    created = c.client.experiment_created(c.experiment_id)
    created_at = c.w3.eth.get_block(created.block_number)["timestamp"]
    c.wait_until(lambda: c.client.chain_time() > created_at + 5 + 1, 60,
                 "a proposal timeout to pass on the chain's clock")
    assert c.client.state(c.experiment_id) == RoundState.JOINING
    c.start(2)
    c.wait_all()
    assert c.client.state(c.experiment_id) == RoundState.COMPLETED
    joins = c.client.events(LearnerJoined, c.experiment_id)
    assert joins[-1].learner == c.accounts[2].address
    start = c.client.start(c.experiment_id)
    assert start is not None and start.tx_hash == joins[-1].tx_hash
    assert c.client.events(WeightsProposed, c.experiment_id, 0), "round 0 was proposed, not lost"
    assert 0 not in [e.round for e in c.client.events(RoundExpired, c.experiment_id)]
    assert any(f"joined experiment {c.experiment_id}; waiting for" in c.log(i) for i in (0, 1))
    assert (f"joined experiment {c.experiment_id}; every learner has joined: experiment "
            f"{c.experiment_id} started") in c.log(2)
    for i in range(3):
        assert [r["round"] for r in c.result(i)["rounds"]] == [0, 1]


def test_an_agent_whose_experiment_is_cancelled_stops_with_one_line(consortium):
    c = consortium(n=3, rounds=1, join_timeout=600)  # learners 1 and 2 never come
    c.start(0)
    c.wait_until(lambda: c.joined() == 1, 120, "learner 0 to join")
    advance_time(c.w3, 601)  # past the join deadline, on the chain's clock
    c.wait_until(lambda: c.processes[0].poll() is not None
                 or c.client.state(c.experiment_id) == RoundState.CANCELLED, 120,
                 "the experiment to be cancelled")
    assert c.processes[0].wait(60) == 1
    log = c.log(0)
    assert f"joined experiment {c.experiment_id}; waiting for 2 learners" in log
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert errors == [f"error: experiment {c.experiment_id} was cancelled: 2 of 3 learners "
                      "did not join before the join deadline"], log
    assert "Traceback" not in log


# ------------------------------------------------------------------ sealed votes, stake

STAKE, POOL = 10**18, 10**18 + 7
SEALED_STAKED = ExperimentOptions(
    reveal_timeout=8, stake=STAKE, reward_pool=POOL, missed_proposal_penalty=10**17 + 1,
    unrevealed_vote_penalty=2 * 10**17 + 3, rejected_proposal_penalty=3 * 10**17 + 5,
    rejection_share_bps=5000, proposer_share_bps=3000)


def _events(c: Consortium, name: str) -> list:
    """The experiment's events ``name``, decoded by web3 (not by the client)."""
    event = getattr(web3_contract(c.client).events, name)
    return [e["args"] for e in event().get_logs(
        from_block=0, argument_filters={"experimentId": c.experiment_id})]


def test_a_staked_sealed_experiment_pays_every_learner_to_the_wei(consortium):
    """Four learners, sealed votes, ETH stake: learner 1 poisons its proposal, learner 3's
    agent is killed between its commitment and its reveal in round 0 (learners 1 and 2
    are still testing), and restarted once round 0 is decided. Every withdrawal must be
    what PROTOCOL.md's formula gives, computed here from the events alone."""
    n, rounds, opts = 4, 4, SEALED_STAKED
    c = consortium(n=n, rounds=rounds, voting_timeout=20, options=opts)
    eid, learners = c.experiment_id, [a.address for a in c.accounts]
    c.start(0)
    c.start(1, "fake_learners:slow_tester", poison="random", delay=6)
    c.start(2, "fake_learners:slow_tester", delay=6)
    c.start(3)
    c.wait_until(lambda: c.client.round_status(eid, learners[3]).committed, 180,
                 "learner 3 to commit in round 0")
    c.kill(3)
    status = c.client.round_status(eid, learners[3])
    assert (status.round, status.state, status.voted) == (0, RoundState.VOTING, False)
    c.wait_round(1, timeout=120)
    c.start(3)
    c.wait_all(timeout=300)
    assert c.client.state(eid) == RoundState.COMPLETED

    # What happened, from the events.
    def proposer(r: int) -> str:
        return learners[r % n]

    decided = {d["round"]: d for d in _events(c, "RoundDecided")}
    expired = [e["round"] for e in _events(c, "RoundExpired")]
    committed = {(e["round"], e["voter"]) for e in _events(c, "VoteCommitted")}
    revealed = [(e["round"], e["voter"]) for e in _events(c, "VoteCast")]
    assert set(revealed) <= committed
    # The offences the contract can see, by PROTOCOL.md's rules.
    expected_penalties = [(proposer(r), r, Penalty.MISSED_PROPOSAL,
                           opts.missed_proposal_penalty) for r in expired]
    expected_penalties += [(v, r, Penalty.UNREVEALED_VOTE, opts.unrevealed_vote_penalty)
                           for r, v in committed - set(revealed)]
    expected_penalties += [
        (proposer(r), r, Penalty.REJECTED_PROPOSAL, opts.rejected_proposal_penalty)
        for r, d in decided.items()
        if not d["accepted"] and d["rejections"] * 10_000 >= opts.rejection_share_bps * (n - 1)]
    taken = [(p["learner"], p["round"], Penalty(p["reason"]), p["amount"])
             for p in _events(c, "PenaltyTaken")]
    assert sorted(taken) == sorted(expected_penalties)
    assert (learners[3], 0, Penalty.UNREVEALED_VOTE, opts.unrevealed_vote_penalty) in taken
    assert (learners[1], 1, Penalty.REJECTED_PROPOSAL, opts.rejected_proposal_penalty) in taken
    penalties = Counter[str]()
    for learner, _, _, amount in expected_penalties:
        penalties[learner] += amount
    # The pool and its split (floor division; a part nobody has a share of: the creator's).
    pool = POOL + sum(penalties.values())
    proposer_part = pool * opts.proposer_share_bps // 10_000
    voter_part = pool - proposer_part
    accepted = Counter(proposer(r) for r, d in decided.items() if d["accepted"])
    votes = Counter(v for _, v in revealed)
    expected = {}
    for a in learners:
        owed = STAKE - penalties[a]
        if accepted:
            owed += proposer_part * accepted[a] // sum(accepted.values())
        if votes:
            owed += voter_part * votes[a] // sum(votes.values())
        expected[a] = owed
    creator = learners[0]
    expected[creator] += (0 if accepted else proposer_part) + (0 if votes else voter_part)

    paid = {w["account"]: w["amount"] for w in _events(c, "FundsWithdrawn")}
    assert paid == expected
    for i, a in enumerate(learners):
        assert c.result(i)["withdrawn"] == expected[a]
        assert f"withdrew {expected[a]} wei" in c.log(i)
    # Figures for the record: chain seconds from proposal to decision, per round.
    proposed = {p.round: p.block_number for p in c.client.events(WeightsProposed, eid)}
    durations = {}
    for d in c.client.events(RoundDecided, eid):
        t = c.client.block_timestamps([proposed[d.round], d.block_number])
        durations[d.round] = t[d.block_number] - t[proposed[d.round]]
    print(f"\nsealed staked experiment: proposal to decision (chain seconds) {durations}; "
          f"penalties {dict(penalties)}")


def test_an_agent_killed_after_committing_reveals_once_restarted(consortium):
    """Learner 2's agent is killed after its commitment, restarted with the same
    ``--state-dir``: it reads its opening back and reveals; no vote is lost."""
    c = consortium(n=3, rounds=1, voting_timeout=60,
                   options=ExperimentOptions(reveal_timeout=60))
    eid, me = c.experiment_id, c.accounts[2].address
    c.start(0)
    c.start(1, "fake_learners:slow_tester", delay=8)  # the round stays open for commitments
    c.start(2)
    c.wait_until(lambda: c.client.round_status(eid, me).committed, 180,
                 "learner 2 to commit in round 0")
    c.kill(2)
    assert not c.client.round_status(eid, me).voted
    c.start(2)
    c.wait_all(timeout=180)
    assert me in [v.voter for v in c.client.events(VoteCast, eid, 0)]
    (decision,) = c.client.events(RoundDecided, eid, 0)
    assert decision.approvals + decision.rejections == 2  # both votes count
    assert "read from" in c.log(2) and "revealed its vote" in c.log(2)
    assert all("decided after the reveal deadline" not in c.log(i) for i in range(3))


def test_an_agent_that_cannot_pay_the_stake_stops_with_one_line(consortium):
    c = consortium(n=2, rounds=1, options=ExperimentOptions(stake=10**21))  # funded 10**20
    c.start(0)
    assert c.processes[0].wait(120) == 1
    log = c.log(0)
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot pay the stake" in errors[0], log
    assert "Traceback" not in log

"""Learner agents on the in-process chain: turns, votes, adoption, and tampered proposals."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from agents.agent.learner_agent import AgentError, ExperimentCancelled, LearnerAgent, run_in_process
from agents.agent.settings import AgentSettings
from agents.chain.abi import load_artifact
from agents.chain.client import CollectiveLearningClient
from agents.chain.logs import LearnerJoined, RoundDecided, VoteCast, WeightsProposed
from agents.chain.network import advance_time, connect, derive_accounts, fund_accounts
from agents.chain.types import NO_SCORE, ExperimentOptions, RoundState
from agents.experiment.launch import launch_experiment
from agents.experiment.spec import ExperimentTerms
from agents.storage.cid import compute_cid
from agents.storage.store import FileWeightStore
from colearn_core.codec import encode_weights
from colearn_core.ml_interface import ProposedWeights, Weights
from colearn_core.tasks.digits import DigitsConfig
from colearn_core.tasks.digits_torch import make_digits_learners
from colearn_core.training import set_equal_weights


class Wrapped:
    """A real learner, some of whose methods a subclass replaces."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)


@dataclass
class Setup:
    client: CollectiveLearningClient
    accounts: list
    store: FileWeightStore
    learners: list
    experiment_id: int
    initial_digest: bytes

    def agent(self, i: int, **settings) -> LearnerAgent:
        return LearnerAgent(self.client.with_account(self.accounts[i]), self.store,
                            self.learners[i], self.experiment_id,
                            settings=AgentSettings(name=f"learner{i}", **settings))

    def digest_of(self, i: int) -> bytes:
        data = encode_weights(self.learners[i].mli_get_current_weights().weights)
        return hashlib.sha256(data).digest()


def make_setup(tmp_path, n=3, rounds=3, threshold_bps=5000, learners=None,
               join=True, join_timeout=86_400, options=None) -> Setup:
    """An experiment of ``n`` digits learners; every learner joins it (round 0 starts)
    unless ``join=False`` (then agents join by themselves)."""
    w3 = connect(None)
    accounts = derive_accounts(n, seed=7, label="agent-tests")
    fund_accounts(w3, [a.address for a in accounts])
    client, _ = CollectiveLearningClient.deploy(w3, accounts[0])
    store = FileWeightStore(tmp_path / "store")
    if learners is None:
        learners = make_digits_learners(config=DigitsConfig(n_learners=n, seed=3))
    set_equal_weights(learners)
    launched = launch_experiment(client, store, ExperimentTerms(
        learners=[a.address for a in accounts], threshold=threshold_bps / 10_000, rounds=rounds,
        join_timeout=join_timeout, options=options or ExperimentOptions()),
        learners[0].mli_get_current_weights().weights)
    if join:
        for account in accounts:
            client.with_account(account).join(launched.experiment_id)
    return Setup(client, accounts, store, learners, launched.experiment_id,
                 launched.initial_digest)


def test_agents_join_by_themselves_and_the_last_join_starts_round_0(tmp_path, caplog):
    s = make_setup(tmp_path, n=3, rounds=1, join=False)
    assert s.client.state(s.experiment_id) == RoundState.JOINING
    reports: list[str] = []
    agents = [s.agent(0, notify=reports.append), s.agent(1), s.agent(2)]
    with caplog.at_level(logging.INFO, logger="agents.agent.learner_agent"):
        run_in_process(agents)
    assert s.client.state(s.experiment_id) == RoundState.COMPLETED
    joins = s.client.events(LearnerJoined, s.experiment_id)
    assert [j.learner for j in joins] == [a.address for a in s.accounts]
    start = s.client.start(s.experiment_id)
    assert start is not None and start.tx_hash == joins[-1].tx_hash
    assert reports[0].startswith(f"ready: experiment {s.experiment_id} on contract "
                                 f"{s.client.address}")
    assert reports[1] == f"joined experiment {s.experiment_id}; waiting for 2 learners"
    assert f"experiment {s.experiment_id} started: every learner joined" in reports
    assert "waiting for 1 learner" in caplog.text  # the second agent's report
    assert s.client.events(WeightsProposed, s.experiment_id, 0)  # round 0 was not lost


def test_an_agent_cancels_an_unfilled_experiment_then_stops(tmp_path):
    s = make_setup(tmp_path, n=3, rounds=1, join=False, join_timeout=60)
    agent = s.agent(0)
    assert agent.step()  # joins
    status = s.client.round_status(s.experiment_id, s.accounts[0].address)
    assert (status.state, status.joined) == (RoundState.JOINING, True)
    assert not agent.step()  # waits for the others
    advance_time(s.client.w3, 61)
    assert agent.step()  # the join deadline passed with learners missing: it cancels
    assert s.client.state(s.experiment_id) == RoundState.CANCELLED
    with pytest.raises(ExperimentCancelled, match=f"experiment {s.experiment_id} was "
                       "cancelled: 2 of 3 learners did not join before the join deadline"):
        agent.step()
    late = s.agent(1)  # an agent started after the cancellation stops at once
    with pytest.raises(ExperimentCancelled):
        late.step()
    assert not s.client.round_status(s.experiment_id, s.accounts[1].address).joined


def test_agents_run_an_experiment_to_the_end(tmp_path):
    s = make_setup(tmp_path, n=3, rounds=4)
    agents = [s.agent(i) for i in range(3)]
    run_in_process(agents)

    assert s.client.state(s.experiment_id) == RoundState.COMPLETED
    for r in range(4):
        (proposal,) = s.client.events(WeightsProposed, s.experiment_id, r)
        assert proposal.proposer == s.accounts[r % 3].address  # round robin
        voters = {v.voter for v in s.client.events(VoteCast, s.experiment_id, r)}
        assert voters == {a.address for i, a in enumerate(s.accounts) if i != r % 3}
        assert agents[r % 3].records[r].role == "proposer"
    final_digest, model_round = s.client.current_model(s.experiment_id)
    assert model_round > 0, "an honest digits experiment accepts at least one round"
    for i, agent in enumerate(agents):
        assert agent.model_digest == final_digest
        assert s.digest_of(i) == final_digest  # the learner really holds the final model


def test_rejected_rounds_keep_the_current_weights(tmp_path):
    class AlwaysReject(Wrapped):
        """A real learner whose owner votes against every proposal."""

        def mli_test_weights(self, weights: Weights) -> ProposedWeights:
            return self.inner.mli_test_weights(weights).model_copy(update={"vote": False})

    learners = make_digits_learners(config=DigitsConfig(n_learners=3, seed=3))
    learners[1], learners[2] = AlwaysReject(learners[1]), AlwaysReject(learners[2])
    s = make_setup(tmp_path, n=3, rounds=3, threshold_bps=10_000, learners=learners)
    agents = [s.agent(i) for i in range(3)]
    run_in_process(agents)

    assert [d.accepted for d in s.client.events(RoundDecided, s.experiment_id)] == [False, False, False]
    assert s.client.current_model(s.experiment_id) == (s.initial_digest, 0)
    for i in range(3):
        assert s.digest_of(i) == s.initial_digest


class _Voting(Wrapped):
    def __init__(self, inner, vote: bool):
        super().__init__(inner)
        self.vote = vote

    def mli_test_weights(self, weights: Weights) -> ProposedWeights:
        return self.inner.mli_test_weights(weights).model_copy(update={"vote": self.vote})


@pytest.mark.parametrize("threshold_bps, accepted", [(10_000, False), (5_000, True)])
def test_a_voter_holds_the_proposal_it_tested_until_the_round_is_decided(
        tmp_path, threshold_bps: int, accepted: bool):
    learners = make_digits_learners(config=DigitsConfig(n_learners=3, seed=3))
    learners[1], learners[2] = _Voting(learners[1], True), _Voting(learners[2], False)
    s = make_setup(tmp_path, n=3, rounds=1, threshold_bps=threshold_bps, learners=learners)
    proposer, approver, rejecter = (s.agent(i) for i in range(3))
    assert proposer.step()
    assert approver.step() and rejecter.step()
    for voter in (approver, rejecter):  # whatever its vote: to adopt it unfetched
        assert voter._held is not None and voter._held[0] == 0
    fetches = [voter.timings.seconds["store"] for voter in (approver, rejecter)]
    run_in_process([proposer, approver, rejecter])
    assert [d.accepted for d in s.client.events(RoundDecided, s.experiment_id)] == [accepted]
    for voter, before in zip((approver, rejecter), fetches):
        assert voter._held is None  # adopted, or dropped with its rejected round
        assert voter.timings.seconds["store"] == before  # adopted without a second fetch
    proposal = s.client.events(WeightsProposed, s.experiment_id)[0].digest
    assert {a.model_digest for a in (approver, rejecter)} == \
        {proposal if accepted else s.initial_digest}


def _bad_proposals(store: FileWeightStore, template: dict[str, Any]):
    template = {k: np.asarray(v) for k, v in template.items()}  # a learner's tensors
    good = bytes(encode_weights(template))
    name = next(iter(template))
    wrong_shape = dict(template, **{name: np.zeros((3, 3), np.float32)})
    wrong_dtype = {k: v.astype(np.int32) for k, v in template.items()}  # the same size
    too_large = {k: v.astype(np.float64) for k, v in template.items()}
    with_nan = {k: v.copy() for k, v in template.items()}
    with_nan[name].flat[0] = np.nan
    not_weights = b"\x80\x04\x95 this is a pickle, never loaded"

    def stored(data: bytes):
        return store.put(data), hashlib.sha256(data).digest()

    yield "digest mismatch", (store.put(good), hashlib.sha256(good + b"x").digest())
    yield "not found", (compute_cid(good + b"never stored"), hashlib.sha256(good).digest())
    yield "shape", stored(encode_weights(wrong_shape))
    yield "dtype", stored(encode_weights(wrong_dtype))
    yield "NaN", stored(encode_weights(with_nan))
    yield "over the limit", stored(encode_weights(too_large))  # refused before decoding
    yield "safetensors", stored(not_weights)


@pytest.mark.parametrize("case", ["digest mismatch", "not found", "shape", "dtype", "NaN",
                                  "over the limit", "safetensors"])
def test_tampered_proposals_get_a_reject_vote_with_a_logged_reason(tmp_path, caplog, case):
    s = make_setup(tmp_path, n=3, rounds=1)
    template = s.learners[0].mli_get_current_weights().weights
    cid, digest = dict(_bad_proposals(s.store, template))[case]
    s.client.with_account(s.accounts[0]).propose(s.experiment_id, 0, cid, digest)
    honest = [s.agent(1), s.agent(2)]
    before = [s.digest_of(1), s.digest_of(2)]

    with caplog.at_level(logging.WARNING, logger="agents.agent.learner_agent"):
        for agent in honest:
            agent.step()

    votes = s.client.events(VoteCast, s.experiment_id, 0)
    assert [(v.approve, v.score) for v in votes] == [(False, NO_SCORE), (False, NO_SCORE)]
    (decision,) = s.client.events(RoundDecided, s.experiment_id, 0)
    assert not decision.accepted
    reasons = [r.getMessage() for r in caplog.records if "rejecting proposal" in r.getMessage()]
    assert len(reasons) == 2 and all(case in m for m in reasons), reasons
    assert [s.digest_of(1), s.digest_of(2)] == before
    assert all(a.records[0].reason for a in honest)


def test_an_agent_for_an_outsider_account_refuses_to_start(tmp_path):
    s = make_setup(tmp_path, n=3, rounds=1)
    outsider = derive_accounts(1, seed=99, label="outsider")[0]
    agent = LearnerAgent(s.client.with_account(outsider), s.store, s.learners[0], s.experiment_id)
    with pytest.raises(AgentError, match="not a learner"):
        agent.step()


def test_a_restarted_agent_rebuilds_its_state_from_the_chain(tmp_path):
    s = make_setup(tmp_path, n=3, rounds=3)
    agents = [s.agent(i) for i in range(3)]
    for agent in agents:  # round 0: learner 0 proposes, 1 and 2 vote, the last vote decides
        agent.step()
    assert s.client.experiment(s.experiment_id).round == 1

    # learner 2's process dies and comes back with a fresh learner: it refetches the model
    fresh = make_digits_learners(config=DigitsConfig(n_learners=3, seed=3))[2]
    s.learners[2] = fresh
    agents[2] = s.agent(2)
    run_in_process(agents)
    final_digest, _ = s.client.current_model(s.experiment_id)
    assert agents[2].model_digest == final_digest == s.digest_of(2)


def test_an_agent_knows_when_its_node_lags_behind_the_events_it_was_told(tmp_path):
    s = make_setup(tmp_path, n=3, rounds=1)
    voter = s.agent(1)
    voter.step()
    assert voter.status.state == RoundState.PROPOSING and not voter._lagging()
    s.client.with_account(s.accounts[0]).propose(s.experiment_id, 0, "bafy-x", b"\x01" * 32)
    logs = s.client.raw_logs([s.client.event_topic("WeightsProposed")], 0,
                             s.client.block_number())
    voter._note(logs)  # as a follower hands them over: the status read before is behind
    assert voter._lagging()
    assert voter._proposals[0].cid == "bafy-x", "kept: judging it needs no log query"
    voter.step()  # reads the status again, rejects the unfetchable proposal, votes
    assert voter.status.state == RoundState.VOTING and not voter._lagging()
    assert [v.voter for v in s.client.events(VoteCast, s.experiment_id, 0)] == [s.accounts[1].address]


def _crafted_bytes(template: dict[str, np.ndarray]):
    """Arbitrary bytes, and valid encodings of the model mutated in a few places."""
    import hypothesis.strategies as st

    valid = encode_weights(template)

    @st.composite
    def mutated(draw) -> bytes:
        data = bytearray(valid)
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(data) - 1))
            data[at:at + draw(st.integers(0, 4))] = draw(st.binary(max_size=4))
            if not data:
                break
        return bytes(data)

    return st.binary(max_size=256) | mutated()


def test_any_bytes_a_proposer_publishes_get_a_vote_never_a_crash(tmp_path, caplog):
    """Hypothesis drives the agent's verify path with whatever a hostile proposer can
    store and propose under its true CID and digest: the honest agent always votes, and
    anything that does not load is a reject with NO_SCORE and a reason."""
    from hypothesis import HealthCheck, given, settings

    s = make_setup(tmp_path, n=2, rounds=2_000, threshold_bps=10_000)
    hostile = s.client.with_account(s.accounts[0])
    honest = s.agent(1)
    honest.learner.mli_propose_weights = honest.learner.mli_get_current_weights  # quick turns
    template = s.learners[0].mli_get_current_weights().weights

    @settings(max_examples=30, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=_crafted_bytes(template))
    def check(data: bytes) -> None:
        round_index = s.client.experiment(s.experiment_id).round
        hostile.propose(s.experiment_id, round_index, s.store.put(data),
                        hashlib.sha256(data).digest())
        honest.step()  # votes (it is the only voter: the round is decided)
        assert s.client.experiment(s.experiment_id).round == round_index + 1
        record = honest.records[round_index]
        if record.reason is not None:  # (views only: log queries slow eth-tester down)
            assert record.approve is False and record.vote_score is None
        honest.step()  # its own round: proposes, the hand-driven learner rejects it
        hostile.vote(s.experiment_id, round_index + 1,
                     s.client.proposal_digest(s.experiment_id), False, 0)

    with caplog.at_level(logging.WARNING, logger="agents.agent.learner_agent"):
        check()
    # Only what the honest agent itself approved can pass (threshold 100 %, one voter): a
    # mutation inside the arrays is valid weights. It holds exactly the chain's model.
    final, _ = s.client.current_model(s.experiment_id)
    assert honest.model_digest == final == s.digest_of(1)


def test_a_learner_that_fails_on_a_proposal_votes_reject(tmp_path, caplog):
    class Fragile(Wrapped):
        def mli_test_weights(self, weights: Weights) -> ProposedWeights:
            raise FloatingPointError("overflow in the loss")

    learners = make_digits_learners(config=DigitsConfig(n_learners=2, seed=3))
    learners[1] = Fragile(learners[1])
    s = make_setup(tmp_path, n=2, rounds=1, learners=learners)
    good = encode_weights(s.learners[0].mli_get_current_weights().weights)
    s.client.with_account(s.accounts[0]).propose(s.experiment_id, 0, s.store.put(good),
                                                 hashlib.sha256(good).digest())
    with caplog.at_level(logging.WARNING, logger="agents.agent.learner_agent"):
        s.agent(1).step()
    (vote,) = s.client.events(VoteCast, s.experiment_id, 0)
    assert (vote.approve, vote.score) == (False, NO_SCORE)
    assert any("testing failed: FloatingPointError: overflow in the loss" in r.getMessage()
               for r in caplog.records)


def test_an_accepted_model_that_cannot_load_is_left_and_the_agent_goes_on(tmp_path, caplog):
    s = make_setup(tmp_path, n=3, rounds=3, threshold_bps=0)
    junk = (7).to_bytes(8, "little") + b"[1,2,3]"
    s.client.with_account(s.accounts[0]).propose(s.experiment_id, 0, s.store.put(junk),
                                                 hashlib.sha256(junk).digest())
    before = s.digest_of(1)
    agents = [s.agent(1), s.agent(2)]
    hand = s.client.with_account(s.accounts[0])
    with caplog.at_level(logging.ERROR, logger="agents.agent.learner_agent"):
        while s.client.state(s.experiment_id) != RoundState.COMPLETED:
            for agent in agents:
                agent.step()
            status = s.client.round_status(s.experiment_id, s.accounts[0].address)
            if status.state == RoundState.VOTING and not status.voted:
                hand.vote(s.experiment_id, status.round, status.proposal_digest, True, 0)
        for agent in agents:
            agent.step()  # adopts the last round's model
    assert [d.accepted for d in s.client.events(RoundDecided, s.experiment_id)] == [True, True, True]
    final, _ = s.client.current_model(s.experiment_id)
    assert all(a.model_digest == final for a in agents)  # honest rounds 1, 2 were adopted
    assert s.digest_of(1) != before
    refusals = [r for r in caplog.records if "cannot adopt the current model" in r.getMessage()]
    assert len(refusals) == 2  # once per agent, not once per step


# ------------------------------------------------------------------ sealed votes, stake

SEALED = ExperimentOptions(reveal_timeout=600)
STAKE, POOL = 10**18, 10**18 + 7
STAKED = ExperimentOptions(reveal_timeout=600, stake=STAKE, reward_pool=POOL,
                           unrevealed_vote_penalty=2 * 10**17, proposer_share_bps=3000)


def _step_until(agents, condition, limit=200) -> None:
    for _ in range(limit):
        if condition():
            return
        for agent in agents:
            if not agent.done:
                agent.step()
    raise AssertionError("the condition never came")


def test_sealed_votes_are_committed_then_revealed_and_the_openings_kept_on_disk(tmp_path):
    s = make_setup(tmp_path, n=3, rounds=3, options=SEALED)
    state = tmp_path / "state"
    agents = [s.agent(i, state_dir=state) for i in range(3)]
    seen: list[tuple[int, list[int]]] = []
    run_in_process(agents, on_step=lambda: seen.append(
        (s.client.round_status(s.experiment_id).round, agents[1]._opening_store().rounds)))
    assert s.client.state(s.experiment_id) == RoundState.COMPLETED
    for round_index in range(3):  # every voter's vote counts: revealed, as committed
        assert len(s.client.events(VoteCast, s.experiment_id, round_index)) == 2
    assert len(s.client.events(RoundDecided, s.experiment_id)) == 3
    files = sorted(state.iterdir())
    assert len(files) == 3 and all(f.name.startswith("openings-") for f in files)
    text = files[0].read_text()
    assert all(a.key.hex()[2:] not in text for a in s.accounts)  # no key, ever
    # at most one round's opening is kept: older ones are dropped once a round is decided
    assert all(len(rounds) <= 1 and all(x >= r - 1 for x in rounds) for r, rounds in seen)


def test_an_agent_restarted_between_commit_and_reveal_reveals_from_its_state_dir(
        tmp_path, caplog):
    s = make_setup(tmp_path, n=3, rounds=1, options=SEALED)
    state = tmp_path / "state"
    proposer, first, last = s.agent(0), s.agent(1, state_dir=state), s.agent(2)
    proposer.step()  # proposes
    first.step()  # commits
    status = s.client.round_status(s.experiment_id, s.accounts[1].address)
    assert (status.state, status.committed, status.voted) == (RoundState.VOTING, True, False)
    del first  # the process dies: the opening is on disk only
    last.step()  # the last commitment opens the reveal window
    assert s.client.state(s.experiment_id) == RoundState.REVEALING
    restarted = s.agent(1, state_dir=state)
    with caplog.at_level(logging.INFO, logger="agents.agent.learner_agent"):
        assert restarted.step()
    assert "read from" in caplog.text and "revealed its vote" in caplog.text
    assert s.client.vote_of(s.experiment_id, s.accounts[1].address)[0]
    last.step()
    assert s.client.state(s.experiment_id) == RoundState.COMPLETED


def test_without_a_state_dir_a_restart_loses_the_vote_and_says_so(tmp_path, caplog):
    s = make_setup(tmp_path, n=3, rounds=1, options=SEALED)
    proposer, first, last = s.agent(0), s.agent(1), s.agent(2)
    with caplog.at_level(logging.WARNING, logger="agents.agent.learner_agent"):
        proposer.step()
        first.step()
        last.step()
        restarted = s.agent(1)
        assert not restarted.step() and not restarted.step()
    assert "in memory only" in caplog.text
    lost = [r for r in caplog.records if "cannot be revealed" in r.getMessage()]
    assert len(lost) == 1  # once, not once per step
    assert not s.client.vote_of(s.experiment_id, s.accounts[1].address)[0]


def test_a_staked_sealed_experiment_ends_with_every_learner_withdrawing(tmp_path):
    s = make_setup(tmp_path, n=3, rounds=3, options=STAKED, join=False)
    agents = [s.agent(i, state_dir=tmp_path / "state") for i in range(3)]
    run_in_process(agents)
    contract = web3_contract(s.client)
    events = contract.events.FundsWithdrawn().get_logs(
        from_block=0, argument_filters={"experimentId": s.experiment_id})
    paid = {e["args"]["account"]: e["args"]["amount"] for e in events}
    assert [a.withdrawn for a in agents] == [paid[a.address] for a in s.accounts]
    assert 0 <= 3 * STAKE + POOL - sum(paid.values()) < 3  # floor division's dust only
    assert all(s.client.account_of(s.experiment_id, a.address).withdrawn for a in s.accounts)
    again = s.agent(0)
    again.step()  # completed, withdrawn already: not an error
    assert again.withdrawn == 0 and again.done


def test_an_agent_that_cannot_pay_the_stake_says_so_in_one_line(tmp_path):
    s = make_setup(tmp_path, n=2, rounds=1, join=False,
                   options=ExperimentOptions(stake=10**22))  # funded with 10**20
    with pytest.raises(AgentError, match=r"^account 0x[0-9a-fA-F]{40} cannot pay the stake of "
                       r"experiment \d+: it holds \d+ wei, the stake is \d+ wei \(plus gas\)$"):
        s.agent(0).step()


def test_a_cancelled_staked_experiment_refunds_the_stake(tmp_path):
    s = make_setup(tmp_path, n=2, rounds=1, join=False, join_timeout=60,
                   options=ExperimentOptions(stake=STAKE))
    agent = s.agent(0)
    assert agent.step()  # joins, depositing the stake
    advance_time(s.client.w3, 61)
    assert agent.step()  # cancels
    with pytest.raises(ExperimentCancelled):
        agent.step()
    assert agent.withdrawn == STAKE


def web3_contract(client: CollectiveLearningClient):
    """web3's own decoder of the contract's events (independent of the client's)."""
    return client.w3.eth.contract(address=client.address, abi=load_artifact()["abi"])


def test_agents_say_what_they_do_round_by_round(tmp_path):
    """The ready line, one line per round (role, what it did, scores, the decision as the
    chain logged it) and the end, as ``colearn agent`` prints them without -v."""
    s = make_setup(tmp_path, n=3, rounds=3)
    reports: list[list[str]] = [[], [], []]
    agents = [s.agent(i, notify=reports[i].append) for i in range(3)]
    run_in_process(agents)
    for i, lines in enumerate(reports):
        assert lines[0] == (
            f"ready: experiment {s.experiment_id} on contract {s.client.address} (chain "
            f"{s.client.chain_id}; 3 rounds, threshold 50%); learner {s.accounts[i].address} "
            f"is learner {i} of 3: proposes in rounds {i}, votes in the others; "
            f"store file:{tmp_path / 'store'}")
        rounds = [line for line in lines if line.startswith("round ")]
        assert len(rounds) == 3
        for r, line in enumerate(rounds):
            (decision,) = s.client.events(RoundDecided, s.experiment_id, r)
            outcome = "accepted" if decision.accepted else "rejected"
            assert line.endswith(f"; {outcome} ({decision.approvals} approve, "
                                 f"{decision.rejections} reject)"), line
            record = agents[i].records[r]
            if r == i:
                (proposal,) = s.client.events(WeightsProposed, s.experiment_id, r)
                assert line.startswith(f"round {r}: proposer, proposed {proposal.cid} (own "
                                       f"vote score {record.vote_score:.4g}, "), line
            else:
                vote = "approve" if record.approve else "reject"
                assert line.startswith(f"round {r}: voter, voted {vote} (vote score "
                                       f"{record.vote_score:.4g}, test score "
                                       f"{record.test_score:.4g})"), line
        assert lines[-1].startswith(f"experiment {s.experiment_id} complete; final model 0x")


def test_an_agent_warns_when_a_deadline_passed_before_it_acted(tmp_path, caplog):
    s = make_setup(tmp_path, n=2, rounds=1)
    proposer, voter = s.agent(0), s.agent(1)
    reports: list[str] = []
    voter = s.agent(1, notify=reports.append)
    assert proposer.step()  # proposes round 0
    advance_time(s.client.w3, s.client.experiment(s.experiment_id).voting_timeout + 1)
    with caplog.at_level(logging.WARNING, logger="agents.agent.learner_agent"):
        assert voter.step()  # too late to vote: it closes the round instead
        voter.step()
    assert "round 0: late: the voting deadline passed before this learner voted" in caplog.text
    assert caplog.text.count("late:") == 1  # said once
    (decision,) = s.client.events(RoundDecided, s.experiment_id, 0)
    assert [r for r in reports if r.startswith("round ")] == [
        f"round 0: voter, did not vote; rejected (0 approve, {decision.rejections} reject)"]

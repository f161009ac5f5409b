"""The vote relay over HTTP: it checks signed calls, batches a round's votes into one
transaction, submits proposals, refuses what the contract would refuse, and closes
timed-out rounds. On both dev chains (the relay's loop is ticked by the test, since the
in-process chain is not thread-safe)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from experiments import PROPOSAL_TIMEOUT, VOTING_TIMEOUT, Make
from signed_calls import (
    opening,
    reveal_request,
    signed_commit,
    signed_join,
    signed_proposal,
    signed_vote,
)
from web3 import Web3

from agents.chain.logs import RoundDecided, RoundExpired, VoteCast, WeightsProposed
from agents.chain.network import advance_time
from agents.chain.types import ExperimentOptions, RoundState
from agents.relay import Refused, Relay, RelayClient, RelayServer


@pytest.fixture
def relay(make: Make, outsider: LocalAccount, chain: Web3) -> Iterator[tuple[Relay, RelayClient]]:
    """A relay for any experiment paid by the outsider, with a long batch delay, and a
    client of it."""
    payer = make(n=2).contract.with_account(outsider)
    service = Relay(payer, any_experiment=True, batch_delay=3600)
    with RelayServer(service, tick_interval=None) as server, RelayClient(server.url) as client:
        yield service, client


def test_a_rounds_votes_go_on_chain_in_one_batch(relay: tuple[Relay, RelayClient],
                                                 make: Make) -> None:
    service, client = relay
    e = make(n=4, threshold=5000, rounds=2)
    e.propose(0)
    l1, l2, l3 = e.voters(0)
    client.submit_vote(signed_vote(e, l1, 0, True))
    client.submit_vote(signed_vote(e, l2, 0, False))
    assert e.info().approvals + e.info().rejections == 0, "waits for the rest of the ballot"
    client.submit_vote(signed_vote(e, l3, 0, True))  # the last vote: the batch goes now
    votes = e.contract.events(VoteCast, e.id, 0)
    assert [v.voter for v in votes] == [l1.address, l2.address, l3.address]
    assert len({v.tx_hash for v in votes}) == 1
    assert e.tally(0) == (True, 2, 1)
    assert (service.batches_sent, service.votes_relayed) == (1, 3)
    health = httpx.get(client.url + "/v1/health").json()
    assert health["votes_relayed"] == 3 and health["contract"] == e.contract.address


def test_a_partial_batch_goes_after_the_delay_without_votes_already_cast(
        relay: tuple[Relay, RelayClient], make: Make) -> None:
    service, client = relay
    e = make(n=4, rounds=1)
    e.propose(0)
    l1, l2, _ = e.voters(0)
    client.submit_vote(signed_vote(e, l1, 0))
    client.submit_vote(signed_vote(e, l2, 0))
    e.vote(0, l2, False)  # l2 falls back to voting directly before the batch goes
    service.batch_delay = 0
    service.tick()
    assert e.contract.vote_of(e.id, l1.address) == (True, True)
    assert e.contract.vote_of(e.id, l2.address) == (True, False), "the direct vote stands"
    assert service.votes_relayed == 1


def test_a_signed_proposal_goes_at_once(relay: tuple[Relay, RelayClient], make: Make) -> None:
    _, client = relay
    e = make(n=3, rounds=1)
    cid, _ = e.proposal(0)
    signed = signed_proposal(e, e.learners[0])
    tx_hash = client.submit_proposal(signed)
    (event,) = e.contract.events(WeightsProposed, e.id, 0)
    assert (event.proposer, event.cid, event.tx_hash) == (e.learners[0].address, cid, tx_hash)
    assert e.state() is RoundState.VOTING
    with pytest.raises(Refused, match="round 0 is not open for proposals"):
        client.submit_proposal(signed)


def test_the_relay_refuses_what_the_contract_would(relay: tuple[Relay, RelayClient],
                                                   make: Make, learners: list[LocalAccount]
                                                   ) -> None:
    _, client = relay
    e = make(n=3, rounds=1)
    _, l1, _ = e.learners
    with pytest.raises(Refused, match="not open for votes"):
        client.submit_vote(signed_vote(e, l1, 0))  # nothing proposed yet
    e.propose(0)
    with pytest.raises(Refused, match="serves chain"):
        client.submit_vote(signed_vote(e, l1, 0).model_copy(update={"contract": learners[5].address}))
    forged = signed_vote(e, learners[5], 0, index=1)
    with pytest.raises(Refused, match="is not a learner of experiment"):
        client.submit_vote(forged)
    with pytest.raises(Refused, match="not learner 7"):
        client.submit_vote(signed_vote(e, l1, 0).model_copy(update={"learner_index": 7}))
    with pytest.raises(Refused, match="the signature is 0x[0-9a-fA-F]{40}'s, not"):
        client.submit_vote(signed_vote(e, l1, 0).model_copy(update={"experiment_id": 999}))
    with pytest.raises(Refused, match="UnknownExperiment"):
        client.submit_vote(signed_vote(e, l1, 0, experiment_id=999))
    bad = httpx.post(client.url + "/v1/votes", content=b'{"round": "x"}')
    assert bad.status_code == 400 and "malformed" in bad.json()["error"]
    assert httpx.get(client.url + "/v1/nothing").status_code == 404


def test_the_relay_closes_rounds_whose_deadline_passed(make: Make, outsider: LocalAccount,
                                                        chain: Web3) -> None:
    e = make(n=3, rounds=2)
    service = Relay(e.contract.with_account(outsider), experiments=[e.id])
    assert service.watched == {e.id}, "an experiment it serves is watched from the start"
    advance_time(chain, PROPOSAL_TIMEOUT)
    service.tick()
    assert [x.round for x in e.contract.events(RoundExpired, e.id)] == [0]
    e.propose(1)
    advance_time(chain, VOTING_TIMEOUT)
    service.tick()
    (decided,) = e.contract.events(RoundDecided, e.id, 1)
    assert not decided.accepted and e.state() is RoundState.COMPLETED
    service.tick()
    assert service.watched == set(), "a complete experiment is no longer watched"


def test_signed_joins_go_at_once_checked_like_votes(make: Make, outsider: LocalAccount,
                                                     clock, monkeypatch) -> None:
    e = make(n=3, join=False)
    other = make(n=3, join=False)
    service = Relay(e.contract.with_account(outsider), experiments=[e.id], batch_delay=3600)
    l0, l1, l2 = e.learners

    reads: list[object] = []
    for name in ("round_status", "learner_index", "experiment_created"):
        real = getattr(service.client, name)
        monkeypatch.setattr(service.client, name,
                            lambda *a, _real=real, **k: reads.append(a) or _real(*a, **k))
    with RelayServer(service, tick_interval=None) as server, RelayClient(server.url) as client:
        # Refused before any chain read: a forged signature, an experiment not served.
        forged = signed_join(e, Account.create(), 1).model_copy(update={"learner": l1.address})
        with pytest.raises(Refused, match="the signature is .*'s, not"):
            client.submit_join(forged)
        with pytest.raises(Refused, match="serves experiments"):
            client.submit_join(signed_join(other, l1))
        assert reads == []
        with pytest.raises(Refused, match="is not a learner of experiment"):
            client.submit_join(signed_join(e, Account.create(), 0))
        with pytest.raises(Refused, match="not learner 2"):
            client.submit_join(signed_join(e, l1, 2))
        assert client.submit_join(signed_join(e, l1))  # its transaction hash
        assert e.contract.round_status(e.id, l1.address).joined
        assert client.submit_join(signed_join(e, l1)) is None  # joined already: nothing sent
        assert service.joins_relayed == 1
        assert httpx.get(client.url + "/v1/health").json()["joins_relayed"] == 1
        e.join(l0)
        clock.mine_at(e.deadline())  # the join deadline passes with l2 missing
        with pytest.raises(Refused, match="not open for joining"):
            client.submit_join(signed_join(e, l2))
        service.tick()  # the relay cancels the experiment it serves
        assert e.state() is RoundState.CANCELLED
        service.tick()
        assert service.watched == frozenset()
        with pytest.raises(Refused, match="not open for joining"):
            client.submit_join(signed_join(e, l2))


# ------------------------------------------------------------------------ sealed votes

REVEAL_TIMEOUT = 300


SEALED = ExperimentOptions(reveal_timeout=REVEAL_TIMEOUT)


def test_sealed_commitments_and_reveals_go_on_chain_in_batches(
        relay: tuple[Relay, RelayClient], make: Make, learners: list[LocalAccount]) -> None:
    service, client = relay
    e = make(n=4, rounds=2, options=SEALED)
    with pytest.raises(Refused, match="not open for commitments"):
        client.submit_commit(signed_commit(e, learners[1], 0, opening(True)))  # nothing proposed
    e.propose(0)
    voters = e.voters(0)
    opened = {v.address: opening(i != 1, 0.5 + i / 10) for i, v in enumerate(voters)}
    with pytest.raises(Refused, match="the round's proposer cannot vote"):
        client.submit_commit(signed_commit(e, e.proposer(0), 0, opening(True)))
    with pytest.raises(Refused, match="not open for reveals"):
        client.submit_reveal(reveal_request(e, voters[0], 0, opened[voters[0].address]))
    for v in voters:  # the last commitment completes the ballot: the batch goes
        client.submit_commit(signed_commit(e, v, 0, opened[v.address]))
    assert e.state() is RoundState.REVEALING, "every voter committed: the reveal window opened"
    assert service.commits_relayed == 3 and service.batches_sent == 1
    # An opening is checked against the commitment on chain before it is queued.
    wrong = reveal_request(e, voters[0], 0, opened[voters[0].address].model_copy(update={"approve": False}))
    with pytest.raises(Refused, match="does not match the commitment"):
        client.submit_reveal(wrong)
    with pytest.raises(Refused, match="not learner 3"):
        client.submit_reveal(reveal_request(e, voters[0], 0, opened[voters[0].address])
                             .model_copy(update={"learner_index": 3}))
    with pytest.raises(Refused, match="no commitment in round 0"):
        client.submit_reveal(reveal_request(e, e.proposer(0), 0, opening(True)))
    assert service.queued["reveal"] == 0
    for v in voters:
        client.submit_reveal(reveal_request(e, v, 0, opened[v.address]))
    votes = e.contract.events(VoteCast, e.id, 0)
    assert [(v.voter, v.approve, v.score) for v in votes] == [
        (v.address, opened[v.address].approve, opened[v.address].score) for v in voters]
    assert len({v.tx_hash for v in votes}) == 1
    assert e.tally(0) == (True, 2, 1)
    assert (service.reveals_relayed, service.batches_sent) == (3, 2)
    health = httpx.get(client.url + "/v1/health").json()
    assert (health["commits_relayed"], health["reveals_relayed"]) == (3, 3)


def test_a_commitment_in_an_experiment_with_public_votes_is_refused(
        relay: tuple[Relay, RelayClient], make: Make) -> None:
    _, client = relay
    public = make(n=3, rounds=1)
    public.propose(0)
    with pytest.raises(Refused, match="has public votes"):
        client.submit_commit(signed_commit(public, public.voters(0)[0], 0, opening(True)))


def test_a_partial_reveal_batch_goes_after_the_delay_and_the_relay_decides_after_the_deadline(
        relay: tuple[Relay, RelayClient], make: Make, chain: Web3) -> None:
    service, client = relay
    e = make(n=3, rounds=2, options=SEALED)
    e.propose(0)
    l1, l2 = e.voters(0)
    opened = {l1.address: opening(True), l2.address: opening(False)}
    for v in (l1, l2):
        assert client.submit_commit(signed_commit(e, v, 0, opened[v.address])) is None
    assert e.state() is RoundState.REVEALING
    client.submit_reveal(reveal_request(e, l1, 0, opened[l1.address]))  # l2 never reveals
    service.batch_delay = 0
    service.tick()
    assert e.contract.vote_of(e.id, l1.address) == (True, True)
    advance_time(chain, REVEAL_TIMEOUT + VOTING_TIMEOUT)
    service.tick()  # the reveal deadline passed: the relay decides the round
    (decided,) = e.contract.events(RoundDecided, e.id, 0)
    assert (decided.approvals, decided.rejections) == (1, 0)

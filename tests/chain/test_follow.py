"""What an agent's loop uses from the chain: the one-call round status, round
transactions with a local nonce, and event followers (WebSocket push and polling)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from agents.chain.client import CollectiveLearningClient
from agents.chain.errors import ChainError, ContractRevert
from agents.chain.follow import PollingFollower, SubscriptionFollower, follow_events
from agents.chain.network import connect, derive_accounts, fund_accounts
from agents.chain.types import RoundState
from agents.devtools.anvil import AnvilProcess


def _digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _create(contract: CollectiveLearningClient, members: list[LocalAccount],
            rounds: int = 2) -> int:
    eid, _ = contract.create_experiment([a.address for a in members], 5000, rounds, 600, 600,
                                        "bafy-initial", _digest("initial"))
    for member in members:
        contract.with_account(member).join(eid)
    return eid


# ---------------------------------------------------------------- round status


def test_round_status_matches_the_separate_views(chain: Web3, contract: CollectiveLearningClient,
                                                 learners: list[LocalAccount]) -> None:
    proposer, voter, other = learners[:3]
    eid = _create(contract, [proposer, voter, other])
    as_voter = contract.with_account(voter)

    def check(account: LocalAccount) -> None:
        status = as_voter.round_status(eid, account.address)
        block = chain.eth.get_block("latest")
        assert status.round == contract.experiment(eid).round
        assert status.state == contract.state(eid)
        assert status.deadline == contract.deadline(eid)
        assert (status.model_digest, status.model_round) == contract.current_model(eid)
        assert status.voted == contract.vote_of(eid, account.address)[0]
        assert status.timestamp == block["timestamp"]
        assert status.base_fee == block["baseFeePerGas"]
        assert status.seconds_left == max(0, status.deadline - status.timestamp)

    check(voter)
    contract.with_account(proposer).propose(eid, 0, "bafy-round-0", _digest("round 0"))
    as_voter.vote(eid, 0, _digest("round 0"), True, 1)
    check(voter)
    check(other)
    assert as_voter.round_status(eid).voted  # the client's own account by default
    assert as_voter.round_status(eid).state == RoundState.VOTING

    with pytest.raises(ContractRevert) as refused:
        as_voter.round_status(eid + 100)
    assert refused.value.name == "UnknownExperiment"


# ----------------------------------------------------------- round transactions


def test_the_nonce_is_kept_locally_and_read_again_when_stale(
        chain: Web3, contract: CollectiveLearningClient, learners: list[LocalAccount],
        monkeypatch: pytest.MonkeyPatch) -> None:
    proposer = learners[0]
    first, second, third, fourth = (_create(contract, learners[:3]) for _ in range(4))
    client = contract.with_account(proposer)
    reads: list[str] = []
    original = client._rpc.nonce
    monkeypatch.setattr(client._rpc, "nonce", lambda a: reads.append(a) or original(a))

    client.propose(first, 0, "bafy-a", _digest("a"))
    client.round_status(second)  # prices the next transaction from the status' base fee
    client.propose(second, 0, "bafy-b", _digest("b"))
    assert len(reads) == 1, "the nonce is kept between transactions"

    # The same account sends through another client: the kept nonce is now used, the node
    # refuses it, and the client reads the nonce again and sends once more.
    contract.with_account(proposer).propose(third, 0, "bafy-c", _digest("c"))
    assert client.propose(fourth, 0, "bafy-d", _digest("d")).gas_used > 0
    assert len(reads) == 2
    assert [contract.state(e) for e in (first, second, third, fourth)] == [RoundState.VOTING] * 4


def test_a_race_lost_is_named_and_spends_no_gas(
        chain: Web3, contract: CollectiveLearningClient, learners: list[LocalAccount]) -> None:
    proposer, voter = learners[:2]
    eid = _create(contract, learners[:3])
    contract.with_account(proposer).propose(eid, 0, "bafy-a", _digest("a"))
    client = contract.with_account(voter)
    client.vote(eid, 0, _digest("a"), True, 1)
    before = chain.eth.get_transaction_count(voter.address)
    with pytest.raises(ContractRevert) as refused:
        client.vote(eid, 0, _digest("a"), True, 1)
    assert refused.value.name == "AlreadyVoted"
    assert chain.eth.get_transaction_count(voter.address) == before
    client.round_status(eid)
    with pytest.raises(ContractRevert):
        client.vote(eid, 0, _digest("a"), False, 1)
    # The kept nonce still works after the refusals.
    assert contract.with_account(learners[2]).vote(eid, 0, _digest("a"), True, 1).gas_used > 0
    assert contract.experiment(eid).round == 1


# -------------------------------------------------------------------- followers


def _round_with_events(contract: CollectiveLearningClient, members: list[LocalAccount],
                       eid: int, round_index: int = 0) -> None:
    proposer, *voters = members
    contract.with_account(proposer).propose(eid, round_index, f"bafy-{round_index}",
                                            _digest(f"round {round_index}"))
    for voter in voters:
        contract.with_account(voter).vote(eid, round_index, _digest(f"round {round_index}"),
                                          True, 1)


def _names(contract: CollectiveLearningClient, logs) -> list[str]:
    by_topic = {contract.event_topic(name): name for name in (
        "WeightsProposed", "VoteCast", "RoundDecided", "RoundExpired", "ExperimentCompleted")}
    return [by_topic[entry.topics[0]] for entry in logs]


def _check_follower(contract: CollectiveLearningClient, learners: list[LocalAccount],
                    follow) -> None:
    members = learners[:3]
    eid = _create(contract, members, rounds=1)
    other = _create(contract, members, rounds=1)
    with follow(eid, None) as everyone, follow(eid, members[0].address) as proposer:
        assert everyone.wait(0.3) == [] and proposer.wait(0.3) == []
        _round_with_events(contract, members, other)  # another experiment: not followed
        contract.with_account(members[0]).propose(eid, 0, "bafy-0", _digest("round 0"))
        logs = everyone.wait(5)
        assert _names(contract, logs) == ["WeightsProposed"]
        assert contract.proposal_from_log(logs[0]).cid == "bafy-0"
        assert proposer.wait(0.5) == [], "a proposer is not woken by its own proposal"
        contract.with_account(members[1]).vote(eid, 0, _digest("round 0"), True, 1)
        assert everyone.wait(0.5) == [], "votes wake no one"
        contract.with_account(members[2]).vote(eid, 0, _digest("round 0"), True, 1)  # decides, completes
        for follower in (everyone, proposer):
            seen: list = []
            deadline = time.monotonic() + 5
            while len(seen) < 2 and time.monotonic() < deadline:
                seen += follower.wait(1)
            assert _names(contract, seen) == ["RoundDecided", "ExperimentCompleted"]
        assert everyone.busy_seconds > 0


def test_polling_follows_the_wake_events_only(chain: Web3, contract: CollectiveLearningClient,
                                              learners: list[LocalAccount]) -> None:
    _check_follower(contract, learners, lambda eid, me: PollingFollower(
        contract, eid, poll_interval=0.02, me=me))


@pytest.fixture
def anvil_contract(anvil_process: AnvilProcess) -> Iterator[tuple[CollectiveLearningClient,
                                                                   list[LocalAccount]]]:
    w3 = connect(anvil_process.url)
    deployer, *members = derive_accounts(4, seed=0, label="follow-tests")
    fund_accounts(w3, [a.address for a in (deployer, *members)])
    contract, _ = CollectiveLearningClient.deploy(w3, deployer)
    yield contract, members


@pytest.mark.anvil
def test_a_subscription_pushes_the_wake_events_only(anvil_contract, anvil_process) -> None:
    contract, members = anvil_contract
    url = "ws://" + anvil_process.url.removeprefix("http://")
    _check_follower(contract, members, lambda eid, me: follow_events(
        contract, eid, events_url=url, me=me))


@pytest.mark.anvil
def test_a_subscription_stops_on_request_and_fails_as_a_chain_error(
        anvil_contract, anvil_process) -> None:
    contract, members = anvil_contract
    eid = _create(contract, members[:3])
    url = "ws://" + anvil_process.url.removeprefix("http://")
    stop = threading.Event()
    with SubscriptionFollower(contract, eid, url) as follower:
        threading.Timer(0.2, stop.set).start()
        started = time.monotonic()
        assert follower.wait(30, stop) == []
        assert time.monotonic() - started < 2
        follower._ws.close()  # the connection drops
        with pytest.raises(ChainError, match="lost the event stream"):
            follower.wait(1)
    with pytest.raises(ChainError, match="cannot open the event stream"):
        SubscriptionFollower(contract, eid, "ws://127.0.0.1:9", open_timeout=2)


@pytest.mark.anvil
def test_a_bad_events_url_stops_the_agent_command_with_one_line(anvil_contract, anvil_process,
                                                                  tmp_path) -> None:
    contract, members = anvil_contract
    eid = _create(contract, members[:2], rounds=1)
    base = ["agent", "--rpc", anvil_process.url, "--contract", contract.address,
            "--experiment", str(eid), "--store", f"file:{tmp_path}",
            "--learner", "colearn_core.tasks.factories:digits_learner",
            "--learner-arg", "index=0", "--learner-arg", "n_learners=2"]
    env = dict(os.environ, COLEARN_PRIVATE_KEY=members[0].key.hex())
    for events, message in (("http://127.0.0.1:9", "expected a ws:// or wss:// URL"),
                            ("ws://127.0.0.1:9", "cannot open the event stream")):
        result = subprocess.run([sys.executable, "-m", "agents.cli", *base, "--events", events],
                                capture_output=True, text=True, timeout=60, env=env)
        output = result.stdout + result.stderr
        assert result.returncode != 0 and "Traceback" not in output, output
        assert message in output and len(output.strip().splitlines()) == 1, output

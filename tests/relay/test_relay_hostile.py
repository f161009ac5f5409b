"""The relay against hostile clients, on anvil (which, unlike py-evm, enforces EIP-7623's
calldata floor, and where the relay's threads meet a real node).

A relay spends gas only for what it was started for; it checks a signature before it
reads the chain for it; it refuses the round's proposer's and non-learners' votes; a
batch the contract refuses goes again without the vote at fault, one that fails in
transit stays queued; and its HTTP server answers any bytes with a 4xx and one log
line (never a traceback), within a deadline, at a bounded rate, and keeps serving.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import httpx
import pytest
from conftest import SLOW_ENV
from eth_account import Account
from eth_account.signers.local import LocalAccount
from experiments import PROPOSAL_TIMEOUT, VOTING_TIMEOUT, Exp, Make
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from log_capture import LogRecords, captured
from signed_calls import opening, signed_commit, signed_join, signed_proposal, signed_vote
from web3 import Web3

from agents.chain.client import CollectiveLearningClient
from agents.chain.errors import ChainError
from agents.chain.logs import RoundDecided, RoundExpired, VoteCast, WeightsProposed
from agents.chain.network import advance_time, derive_accounts
from agents.chain.signing import SignedCommit, SignedVote
from agents.chain.transactions import calldata_floor
from agents.chain.types import ExperimentOptions, RoundState, score_to_fixed
from agents.cli import main as cli
from agents.relay import HttpLimits, Refused, Relay, RelayClient, RelayError, RelayServer

pytestmark = [pytest.mark.anvil,
              pytest.mark.parametrize("chain_env", ["anvil"], indirect=True)]

EXAMPLES = 300 if os.environ.get(SLOW_ENV) else 40
UNLIMITED = HttpLimits(rate=1e9, burst=10**9)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
WAIT = 60.0  # seconds a test client waits for an answer: far above any deadline in play


# ---------------------------------------------------------------------------- helpers


def nonce(client: CollectiveLearningClient) -> int:
    return client.w3.eth.get_transaction_count(client.account.address)


@contextmanager
def serving(relay: Relay, limits: HttpLimits = UNLIMITED) -> Iterator[RelayServer]:
    """The relay over HTTP; its loop is ticked by the test."""
    with RelayServer(relay, tick_interval=None, limits=limits) as server:
        yield server


def relay_log() -> AbstractContextManager[LogRecords]:
    """Records of the relay's loggers (``agents.relay.*``), for one block."""
    return captured("agents.relay")


def raw_request(url: str, data: bytes, *, close_write: bool = True) -> bytes:
    """Sends raw bytes to the server; its whole answer (b"" if it closes without one)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        try:
            sock.sendall(data)
            if close_write:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered and closed before taking everything
            pass
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int | None:
    """The status of an HTTP/1.x answer (``None``: no answer, or an HTTP/0.9 one)."""
    match = re.match(rb"HTTP/\d\.\d (\d{3}) ", answer)
    return int(match.group(1)) if match else None


def wait_for(condition: Callable[[], bool]) -> None:
    """Waits for a state of the server (not for a time): polls up to WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "the state was not reached"
        time.sleep(0.01)


def post(url: str, path: str, body: bytes | str, headers: dict[str, str] | None = None
         ) -> httpx.Response:
    return httpx.post(url + path, content=body, headers=headers or {}, timeout=WAIT)


def assert_refused(answer: bytes, status: int, log: LogRecords) -> None:
    assert status_of(answer) == status, answer[:300]
    assert len(log.records) == 1, [r.getMessage() for r in log.records]
    log.assert_clean(at_most=1)


def healthy(url: str) -> bool:
    return httpx.get(url + "/v1/health", timeout=WAIT).status_code == 200


@pytest.fixture
def payer(make: Make, outsider: LocalAccount) -> Callable[[], CollectiveLearningClient]:
    """The outsider's client of the session's contract: the relay's paying account."""
    return lambda: make(n=2).contract.with_account(outsider)


# ------------------------------------------------------------------ what it serves


def test_a_relay_must_be_told_what_to_serve(payer: Callable[[], CollectiveLearningClient],
                                            monkeypatch, capsys) -> None:
    monkeypatch.setenv("COLEARN_PRIVATE_KEY", "0x" + "11" * 32)
    status = cli.main(["relay", "--rpc", "http://127.0.0.1:9", "--contract", "0x" + "22" * 20])
    err = capsys.readouterr().err.strip()
    assert status == 1 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "--experiment ID" in err and "--any-experiment" in err
    with pytest.raises(RelayError, match="--any-experiment"):
        Relay(payer())
    with pytest.raises(RelayError, match="cannot serve experiment 999: UnknownExperiment"):
        Relay(payer(), experiments=[999])


def test_a_relay_for_named_experiments_ignores_the_others(make: Make, outsider: LocalAccount,
                                                          chain: Web3) -> None:
    served, stranger = make(n=3, rounds=2), make(n=3, rounds=5)
    relay = Relay(served.contract.with_account(outsider), experiments=[served.id])
    stranger.propose(0)
    with serving(relay) as server, RelayClient(server.url) as client, relay_log() as log:
        with pytest.raises(Refused, match=f"not experiment {stranger.id}") as refused:
            client.submit_vote(signed_vote(stranger, stranger.learners[1]))
        assert refused.value.status == 403
        assert len(log.records) == 1
    assert relay.watched == {served.id}
    sent = nonce(relay.client)
    advance_time(chain, VOTING_TIMEOUT + PROPOSAL_TIMEOUT)
    relay.tick()
    assert stranger.contract.round_status(stranger.id).state.name == "VOTING_TIMED_OUT", (
        "the stranger's experiment is left alone")
    assert [x.round for x in served.contract.events(RoundExpired, served.id)] == [0]
    assert nonce(relay.client) == sent + 1, "one transaction: the served experiment's"


def test_any_experiment_mode_watches_only_after_a_learners_genuine_signature(
        make: Make, outsider: LocalAccount, learners: list[LocalAccount], chain: Web3) -> None:
    e = make(n=3, rounds=2)
    relay = Relay(e.contract.with_account(outsider), any_experiment=True)
    _, l1, l2 = e.learners
    attacker = Account.create()
    with serving(relay) as server, RelayClient(server.url) as client:
        # A forged signature claiming to be a learner's, a stranger's own signature, a
        # learner's for a round not open (nothing proposed yet), a replayed round.
        forged = signed_vote(e, attacker, index=1).model_copy(update={"voter": l1.address})
        for vote, reason in [(forged, "the signature is .*'s, not"),
                             (signed_vote(e, attacker, index=1), "is not a learner of experiment"),
                             (signed_vote(e, learners[5], index=1), "is not a learner of experiment"),
                             (signed_vote(e, l1), "round 0 is not open for votes")]:
            with pytest.raises(Refused, match=reason):
                client.submit_vote(vote)
        assert relay.watched == set()
        sent = nonce(relay.client)
        advance_time(chain, PROPOSAL_TIMEOUT)
        relay.tick()
        assert nonce(relay.client) == sent and not e.contract.events(RoundExpired, e.id), (
            "no gas spent on an experiment no learner asked for")
        e.by(e.learners[0]).expire(e.id, 0)  # round 1: l1 proposes
        e.propose(1)
        client.submit_vote(signed_vote(e, l2, 1))
        assert relay.watched == {e.id}, "watched once a learner's genuine vote came in"
        advance_time(chain, VOTING_TIMEOUT)
        relay.tick()  # decides round 1: the experiment is complete
        assert e.contract.events(RoundDecided, e.id, 1)
        relay.tick()
        assert relay.watched == set(), "no longer watched once complete"


def test_proposals_are_checked_before_anything_is_sent(make: Make, outsider: LocalAccount
                                                       ) -> None:
    e = make(n=3, rounds=1)
    relay = Relay(e.contract.with_account(outsider), experiments=[e.id])
    sent = nonce(relay.client)
    with serving(relay) as server, RelayClient(server.url) as client:
        with pytest.raises(Refused, match="is not the proposer of round 0"):
            client.submit_proposal(signed_proposal(e, e.learners[1]))
        with pytest.raises(Refused, match="is not a learner"):
            client.submit_proposal(signed_proposal(e, Account.create()))
        assert nonce(relay.client) == sent
        assert client.submit_proposal(signed_proposal(e, e.learners[0]))
    assert e.contract.events(WeightsProposed, e.id, 0)


# --------------------------------------------------------------------- the votes


def test_the_proposers_vote_is_refused_and_the_honest_votes_land(
        make: Make, outsider: LocalAccount) -> None:
    e = make(n=3, rounds=1)
    relay = Relay(e.contract.with_account(outsider), experiments=[e.id], batch_delay=3600)
    e.propose(0)
    l0, l1, l2 = e.learners
    with serving(relay) as server, RelayClient(server.url) as client:
        client.submit_vote(signed_vote(e, l1))
        with relay_log() as log, pytest.raises(Refused, match="the round's proposer cannot "
                                                              "vote") as refused:
            client.submit_vote(signed_vote(e, l0))
        assert refused.value.status == 409 and len(log.records) == 1
        client.submit_vote(signed_vote(e, l2))  # completes the ballot: the batch goes now
    assert {v.voter for v in e.contract.events(VoteCast, e.id, 0)} == {l1.address, l2.address}
    assert e.contract.events(RoundDecided, e.id, 0)


def high_s(signed: SignedVote) -> SignedVote:
    """The signature with an ``s`` above half the curve order, which the contract refuses
    before recovering anything (``ECDSAInvalidSignatureS``)."""
    vs = (SECP256K1_N // 2 + 12345) | (int.from_bytes(signed.vs, "big") >> 255 << 255)
    return signed.model_copy(update={"vs": vs.to_bytes(32, "big")})


def test_a_batch_the_contract_refuses_goes_again_without_the_offenders(
        make: Make, outsider: LocalAccount) -> None:
    e = make(n=5, rounds=1)
    relay = Relay(e.contract.with_account(outsider), experiments=[e.id], batch_delay=0)
    e.propose(0)
    l0, l1, l2, l3, l4 = e.learners
    # What the relay's checks refuse, queued anyway (as if a check had missed it): the
    # proposer's vote, a high-s signature, a vote with a wrong learner index.
    queue = [signed_vote(e, l1), signed_vote(e, l0), high_s(signed_vote(e, l3)), signed_vote(e, l2),
             signed_vote(e, l4).model_copy(update={"approve": False})]  # not what l4 signed
    for vote in queue:
        relay._enqueue(vote, voters=len(queue) + 1)  # never complete: the tick sends it
    with relay_log() as log:
        relay.tick()
    votes = e.contract.events(VoteCast, e.id, 0)
    assert {v.voter for v in votes} == {l1.address, l2.address}
    assert len({v.tx_hash for v in votes}) == 1, "the honest votes in one batch"
    reverts = [r.getMessage() for r in log.records if "reverts with" in r.getMessage()]
    assert len(reverts) == 3 and all("sending it without learner" in m for m in reverts)
    assert relay.votes_queued == 0 and relay.votes_relayed == 2


def test_a_revert_naming_no_vote_sends_the_votes_one_by_one(make: Make,
                                                            outsider: LocalAccount) -> None:
    e = make(n=4, rounds=1)
    relay = Relay(e.contract.with_account(outsider), experiments=[e.id], batch_delay=0)
    e.propose(0)
    _, l1, l2, l3 = e.learners
    relay._enqueue(signed_vote(e, l1), 3)
    relay._enqueue(signed_vote(e, l2).model_copy(update={"r": bytes(32)}), 3)  # ECDSAInvalidSignature()
    assert relay.votes_queued == 2
    relay.tick()
    assert {v.voter for v in e.contract.events(VoteCast, e.id, 0)} == {l1.address}
    assert relay.votes_queued == 0
    with serving(relay) as server, RelayClient(server.url) as client:
        client.submit_vote(signed_vote(e, l2))
        client.submit_vote(signed_vote(e, l3))
    relay.tick()
    assert e.contract.events(RoundDecided, e.id, 0), "l2's genuine vote still counts"


def test_a_batch_that_fails_in_transit_stays_queued(make: Make, outsider: LocalAccount,
                                                    monkeypatch) -> None:
    e = make(n=4, rounds=1)
    relay = Relay(e.contract.with_account(outsider), experiments=[e.id], batch_delay=0)
    e.propose(0)
    _, l1, l2, _ = e.learners
    real = relay.client.cast_votes_by_sig
    failures = iter([ChainError("cannot reach the chain: connection refused")] * 2)

    def flaky(*args: Any, **kwargs: Any) -> Any:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real(*args, **kwargs)

    monkeypatch.setattr(relay.client, "cast_votes_by_sig", flaky)
    with serving(relay) as server, RelayClient(server.url) as client:
        client.submit_vote(signed_vote(e, l1))
        client.submit_vote(signed_vote(e, l2))
    for _ in range(2):
        relay._pending[(e.id, 0, "vote")].retry_at = 0  # the test's tick is the next try
        relay.tick()
        assert relay.votes_queued == 2 and not e.contract.events(VoteCast, e.id, 0)
    relay._pending[(e.id, 0, "vote")].retry_at = 0
    relay.tick()
    assert {v.voter for v in e.contract.events(VoteCast, e.id, 0)} == {l1.address, l2.address}
    assert relay.votes_queued == 0 and relay.votes_discarded == 0


def test_votes_are_discarded_only_once_their_round_is_closed(
        make: Make, outsider: LocalAccount, chain: Web3) -> None:
    e = make(n=4, rounds=2)
    relay = Relay(e.contract.with_account(outsider), experiments=[e.id], batch_delay=3600)
    e.propose(0)
    with serving(relay) as server, RelayClient(server.url) as client:
        client.submit_vote(signed_vote(e, e.learners[1]))
    relay.tick()
    assert relay.votes_queued == 1, "queued until the batch is due"
    advance_time(chain, VOTING_TIMEOUT)
    with relay_log() as log:
        relay.tick()  # decides the round, then drops its votes
    assert e.contract.events(RoundDecided, e.id, 0)
    assert (relay.votes_queued, relay.votes_discarded) == (0, 1)
    assert any("1 queued votes discarded" in r.getMessage() for r in log.records)


def test_a_batch_in_a_large_experiment_pays_at_least_the_calldata_floor(
        make: Make, learners: list[LocalAccount], outsider: LocalAccount,
        gas_figures: dict[str, dict[str, int]]) -> None:
    n = 400
    members = learners[:2] + derive_accounts(n - 2, seed=7, label="relay-large")
    e = make(n=n, rounds=1, members=members, join=False)  # most members hold no ETH:
    payer = e.contract.with_account(outsider)  # their signed joins are relayed
    for i, member in enumerate(members):
        payer.join_by_sig(signed_join(e, member, i))
    relay = Relay(payer, experiments=[e.id], batch_delay=0)
    e.propose(0)
    with serving(relay) as server, RelayClient(server.url) as client:
        client.submit_vote(signed_vote(e, learners[1]))
    relay.tick()
    (vote,) = e.contract.events(VoteCast, e.id, 0)
    tx = relay.client.w3.eth.get_transaction(vote.tx_hash)
    receipt = relay.client.w3.eth.get_transaction_receipt(vote.tx_hash)
    floor = calldata_floor(bytes(tx["input"]))
    assert receipt["gasUsed"] >= floor > 300_000 + 20_000, "the old fixed limit was too low"
    assert floor <= tx["gas"] < 2**24
    gas_figures.setdefault("relay n=400, one vote", {}).update(
        floor=floor, used=receipt["gasUsed"], limit=tx["gas"])


# ---------------------------------------------------------------------- the HTTP side


@pytest.fixture
def server(payer: Callable[[], CollectiveLearningClient]) -> Iterator[RelayServer]:
    """A relay for any experiment, over HTTP with short deadlines and no rate limit."""
    relay = Relay(payer(), any_experiment=True)
    with serving(relay, HttpLimits(request_timeout=2.0, rate=1e9, burst=10**9)) as running:
        yield running


HEAD = b"POST /v1/votes HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize("headers, status", [
    (b"Content-Length: -1\r\n", 400),
    (b"Content-Length: 12abc\r\n", 400),
    (b"Content-Length: 1\r\nContent-Length: 2\r\n", 400),
    (b"", 411),
    (b"Transfer-Encoding: chunked\r\n", 411),
    (b"Content-Length: 1000000000\r\n", 413),
])
def test_bad_lengths_are_refused_before_the_body_is_read(server: RelayServer, headers: bytes,
                                                         status: int) -> None:
    with relay_log() as log:
        # The body never comes: an answer proves the server did not wait for it.
        answer = raw_request(server.url, HEAD + headers + b"\r\n", close_write=False)
    assert_refused(answer, status, log)
    assert healthy(server.url)


def test_a_body_of_minus_one_length_is_not_read_to_its_end(server: RelayServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock, relay_log() as log:
        sock.sendall(HEAD + b"Content-Length: -1\r\n\r\n" + b"x" * 4096)
        answer = sock.recv(65536)
        sent = 0
        with pytest.raises(OSError):  # the relay closes: the flood cannot go on
            while sent < 512 * 2**20:
                sock.sendall(b"x" * 2**20)
                sent += 2**20
    assert_refused(answer, 400, log)
    assert sent < 512 * 2**20


def test_a_stalled_request_is_answered_408_or_closed_and_frees_its_thread(
        server: RelayServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    stalled = [socket.create_connection((host, int(port)), timeout=WAIT) for _ in range(4)]
    try:
        for sock in stalled[:2]:  # a body that stops halfway
            sock.sendall(HEAD + b"Content-Length: 100\r\n\r\n{\"chain_id\"")
        for sock in stalled[2:]:  # headers that stop halfway
            sock.sendall(b"POST /v1/votes HTTP/1.1\r\nHost: rel")
        with relay_log() as log:
            answers = [sock.recv(65536) for sock in stalled]  # waits for the deadline
    finally:
        for sock in stalled:
            sock.close()
    assert [status_of(a) for a in answers] == [408, 408, None, None]
    log.assert_clean(at_most=4)
    wait_for(lambda: server.open_connections == 0)
    assert healthy(server.url)


def test_connections_beyond_the_cap_are_turned_away(
        payer: Callable[[], CollectiveLearningClient]) -> None:
    relay = Relay(payer(), any_experiment=True)
    limits = HttpLimits(request_timeout=WAIT, rate=1e9, burst=10**9, max_connections=4)
    with serving(relay, limits) as server:
        host, port = server.url.removeprefix("http://").split(":")
        held = [socket.create_connection((host, int(port)), timeout=WAIT) for _ in range(4)]
        try:
            for sock in held:
                sock.sendall(b"GET /v1/hea")
            wait_for(lambda: server.open_connections == 4)
            with relay_log() as log:
                answer = raw_request(server.url, b"GET /v1/health HTTP/1.0\r\n\r\n")
            assert status_of(answer) in (503, None)  # told to come back, or reset at once
            assert len(log.records) == 1 and "connections open already" in \
                log.records[0].getMessage()
        finally:
            for sock in held:
                sock.close()
        wait_for(lambda: server.open_connections == 0)
        assert healthy(server.url)


def test_each_client_address_is_rate_limited(payer: Callable[[], CollectiveLearningClient]
                                             ) -> None:
    relay = Relay(payer(), any_experiment=True)
    with serving(relay, HttpLimits(rate=1 / 3600, burst=3)) as server:
        assert [healthy(server.url) for _ in range(3)] == [True] * 3
        with relay_log() as log:
            answer = httpx.get(server.url + "/v1/health", timeout=WAIT)
            flood = post(server.url, "/v1/votes", b"{}")
        assert answer.status_code == 429 and int(answer.headers["Retry-After"]) >= 1
        assert flood.status_code == 429
        assert len(log.records) == 2
        log.assert_clean(at_most=2)


def test_an_unexpected_error_is_a_500_and_one_line(server: RelayServer, make: Make,
                                                   monkeypatch) -> None:
    e = make(n=3)

    def broken(*args: Any) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(server.relay, "_check_target", broken)
    with relay_log() as log:
        answer = post(server.url, "/v1/votes", signed_vote(e, e.learners[1]).model_dump_json())
    assert answer.status_code == 500 and answer.json() == {"error": "internal error"}
    assert len(log.records) == 1 and log.records[0].levelno == logging.ERROR
    log.assert_clean(at_most=1)
    assert healthy(server.url)


# ------------------------------------------------------ generated requests (Hypothesis)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12)
HYPOTHESIS = settings(max_examples=EXAMPLES, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture,
                                             HealthCheck.too_slow])


@HYPOTHESIS
@given(data=st.binary(max_size=2048))
def test_any_bytes_get_a_4xx_and_one_log_line(server: RelayServer, data: bytes) -> None:
    with relay_log() as log:
        answer = raw_request(server.url, data)
    status = status_of(answer)
    assert status is None or 400 <= status < 500 or status == 200, answer[:200]
    log.assert_clean(at_most=0 if status == 200 else 1)
    if status is not None and status != 200:
        assert len(log.records) == 1
    assert healthy(server.url)


@HYPOTHESIS
@given(path=st.sampled_from(["/v1/votes", "/v1/proposals", "/v1/commits", "/v1/reveals",
                             "/v1/joins"]),
       body=json_values | st.fixed_dictionaries({
           "chain_id": json_values, "contract": json_values, "experiment_id": json_values,
           "round": json_values, "voter": json_values, "learner_index": json_values,
           "approve": json_values, "score": json_values, "r": json_values, "vs": json_values,
           "digest": json_values, "commitment": json_values, "opening": json_values}))
def test_random_json_gets_a_4xx_and_one_log_line(server: RelayServer, path: str,
                                                 body: Any) -> None:
    with relay_log() as log:
        answer = post(server.url, path, json.dumps(body))
    assert 400 <= answer.status_code < 500 and "error" in answer.json()
    assert len(log.records) == 1
    log.assert_clean(at_most=1)


@HYPOTHESIS
@given(r=st.binary(min_size=32, max_size=32), vs=st.binary(min_size=32, max_size=32),
       index=st.integers(0, 2**256 - 1), experiment=st.integers(0, 2**256 - 1))
def test_random_signatures_get_a_4xx_and_one_log_line(server: RelayServer, r: bytes,
                                                      vs: bytes, index: int,
                                                      experiment: int) -> None:
    assert_refused_in_one_line(server, "/v1/votes", SignedVote(
        chain_id=server.relay.client.chain_id, contract=server.relay.client.address,
        experiment_id=experiment, round=0, voter="0x" + "ab" * 20, learner_index=index,
        digest=b"\x01" * 32, approve=True, score=1, r=r, vs=vs))


def assert_refused_in_one_line(server: RelayServer, path: str,
                               call: SignedVote | SignedCommit) -> None:
    """Posts ``call``: a 4xx answer and one log line, and no experiment watched."""
    with relay_log() as log:
        answer = post(server.url, path, call.model_dump_json())
    assert answer.status_code in (400, 409), answer.text
    assert len(log.records) == 1
    log.assert_clean(at_most=1)
    assert server.relay.watched == set()


@HYPOTHESIS
@given(length=st.text(max_size=30), extra=st.lists(
    st.tuples(st.text(st.characters(min_codepoint=33, max_codepoint=126,
                                    exclude_characters=":"), min_size=1, max_size=20),
              st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40)),
    max_size=5))
def test_random_headers_get_a_4xx_and_one_log_line(server: RelayServer, length: str,
                                                   extra: list[tuple[str, str]]) -> None:
    head = HEAD + b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in extra)
    head += f"Content-Length: {length}\r\n\r\n".encode("utf-8", "replace")
    with relay_log() as log:
        answer = raw_request(server.url, head + b"{}")
    status = status_of(answer)
    assert status is None or 400 <= status < 500, answer[:200]
    if status is not None:
        assert len(log.records) == 1
    log.assert_clean(at_most=1)


@HYPOTHESIS
@given(r=st.binary(min_size=32, max_size=32), vs=st.binary(min_size=32, max_size=32),
       commitment=st.binary(min_size=32, max_size=32), index=st.integers(0, 2**256 - 1),
       experiment=st.integers(0, 2**256 - 1))
def test_random_signed_commitments_get_a_4xx_and_one_log_line(
        server: RelayServer, r: bytes, vs: bytes, commitment: bytes, index: int,
        experiment: int) -> None:
    assert_refused_in_one_line(server, "/v1/commits", SignedCommit(
        chain_id=server.relay.client.chain_id, contract=server.relay.client.address,
        experiment_id=experiment, round=0, voter="0x" + "ab" * 20, learner_index=index,
        commitment=commitment, r=r, vs=vs))


@pytest.fixture
def revealing(server: RelayServer, learners: list[LocalAccount]) -> Exp:
    """A sealed experiment whose round 0 is in its reveal window: learners 1 and 2
    committed (to approve, score 0.7, salt 0x11..), through the server's relay."""
    client = server.relay.client.with_account(learners[0])
    members = learners[:3]
    eid, tx = client.create_experiment([a.address for a in members], 5000, 1,
                                       PROPOSAL_TIMEOUT, VOTING_TIMEOUT, "bafy-initial",
                                       b"\x07" * 32, "", 1000,
                                       options=ExperimentOptions(reveal_timeout=600))
    e = Exp(eid, client, members, b"\x07" * 32, tx)
    e.join_all()
    e.propose(0)
    for voter in e.voters(0):
        server.relay.submit_commit(signed_commit(e, voter, 0, opening(True, 0.7, b"\x11" * 32)))
    assert e.state() is RoundState.REVEALING
    return e


@HYPOTHESIS
@given(approve=st.booleans(), score=st.integers(-(2**255), 2**255 - 1),
       salt=st.binary(min_size=32, max_size=32), who=st.integers(0, 3),
       index=st.integers(0, 5), round_index=st.integers(0, 2))
def test_random_openings_get_a_4xx_and_one_log_line_and_nothing_is_queued(
        server: RelayServer, revealing: Exp, approve: bool, score: int, salt: bytes,
        who: int, index: int, round_index: int) -> None:
    e = revealing
    voter = (e.learners + [Account.from_key(b"\x22" * 32)])[who]
    if (approve, score, salt) == (True, score_to_fixed(0.7), b"\x11" * 32):
        salt = b"\x12" * 32  # never the true opening
    body = {"chain_id": e.contract.chain_id, "contract": e.contract.address,
            "experiment_id": e.id, "round": round_index, "voter": voter.address,
            "learner_index": index, "opening": {"approve": approve, "score": score,
                                                "salt": salt.hex()}}
    with relay_log() as log:
        answer = post(server.url, "/v1/reveals", json.dumps(body))
    assert answer.status_code in (400, 403, 409), answer.text
    assert len(log.records) == 1
    log.assert_clean(at_most=1)
    assert server.relay.queued["reveal"] == 0
    assert e.state() is RoundState.REVEALING

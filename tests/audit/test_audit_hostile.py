"""``colearn audit`` and ``colearn explorer`` against hostile input.

* The one event decoder (:class:`agents.audit.logs.EventDecoder`) on any topics and data
  (Hypothesis): a log decodes, or :class:`MalformedEvent` comes out, nothing else.
* A hostile contract, ``tests/audit/contracts/HostileAudit.sol``, compiled here with the project's
  pinned npm solc and deployed on both dev chains: it emits the contract's real events with
  values no CollectiveLearning can log (round 2^256 - 1, no learners, a learner twice, a
  decision before its proposal), malformed logs (short data, wrong topic counts), and
  answers the audit's views with garbage or reverts. Each is a named violation (or, when
  the creation event itself is unreadable, one clear error), in bounded memory.
* ``colearn audit`` on anvil against it, in a process whose address space is capped:
  exit 3 with the violations, or exit 1 with one line; never a traceback.
* The explorer (Hypothesis, a real server on a free 127.0.0.1 port): any path, query or
  bytes get a page or a 4xx with a short message and one log line.

The contract compiles with ``node_modules`` (``npm ci``); without it these tests fail with
one line, they never skip.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_from_bytes

import pytest
from conftest import SLOW_ENV, Clock
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from log_capture import LogRecords, captured
from rich.console import Console
from web3 import Web3

from agents.audit.checks import AuditReport, audit_history
from agents.audit.errors import AuditError, UnknownExperiment
from agents.audit.explorer import Explorer, ExplorerServer
from agents.audit.history import EventRef
from agents.audit.reader import read_history
from agents.audit.report import print_report, report_json
from agents.audit.report_html import render_html
from agents.chain.abi import EVENTS, EventDecoder
from agents.chain.client import CollectiveLearningClient
from agents.chain.errors import ChainError, MalformedEvent
from agents.chain.logs import RawLog

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests" / "audit" / "contracts" / "HostileAudit.sol"
TOP = 2**256 - 1  # the largest number an event or a view can carry
DIGEST = b"\x11" * 32
DIGEST2 = b"\x22" * 32
ZERO_ADDRESS = "0x" + "00" * 20
PLAIN = (0, ZERO_ADDRESS, 0, 0, 0, 0, 0, 0, 0)  # ExperimentTerms: public votes, no stake
SLOW = bool(os.environ.get(SLOW_ENV))
DECODER = EventDecoder()
#: The audit's peak Python allocations against the hostile contract, at most (the whole
#: read: a few dozen logs). Today's honest audit of such a history uses about 2 MB.
MEMORY_BOUND = 64 * 2**20
#: Address space of the `colearn audit` process (imports included: ~1.2 GB of mappings).
CLI_ADDRESS_SPACE = 3 * 2**30


# ------------------------------------------------------------ the hostile contract


@pytest.fixture(scope="session")
def hostile_compiled() -> dict[str, Any]:
    """HostileAudit's ABI and bytecode, from the pinned npm solc and compile.js's settings."""
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "solc").is_dir():
        pytest.fail("cannot compile tests/audit/contracts/HostileAudit.sol: node or the npm solc is "
                    "missing (run `npm ci`)", pytrace=False)
    run = subprocess.run([node, str(ROOT / "tests" / "audit" / "contracts" / "compile.js"), str(SOURCE),
                          "HostileAudit"], capture_output=True, text=True, timeout=300,
                         check=False, cwd=ROOT)
    assert run.returncode == 0, f"compiling HostileAudit failed:\n{run.stderr}"
    return json.loads(run.stdout)


def word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def address_word(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address[2:])


class Hostile:
    """The deployed HostileAudit, driven by one funded account."""

    def __init__(self, w3: Web3, account: LocalAccount, compiled: dict[str, Any]):
        self.w3, self.account = w3, account
        factory = w3.eth.contract(abi=compiled["abi"], bytecode=compiled["bytecode"])
        receipt = self._send(factory.constructor())
        self.address = receipt["contractAddress"]
        self.contract = w3.eth.contract(address=self.address, abi=compiled["abi"])

    def _send(self, fn: Any) -> Any:
        tx = fn.build_transaction({
            "from": self.account.address, "gas": 5_000_000, "chainId": self.w3.eth.chain_id,
            "nonce": self.w3.eth.get_transaction_count(self.account.address, "pending")})
        signed = self.account.sign_transaction(tx)
        receipt = self.w3.eth.wait_for_transaction_receipt(
            self.w3.eth.send_raw_transaction(signed.raw_transaction))
        assert receipt["status"] == 1
        return receipt

    def do(self, *calls: tuple[str, tuple[Any, ...]]) -> None:
        """Emits through HostileAudit's functions, in one transaction, in this order."""
        data = [self.contract.encode_abi(name, args=list(args)) for name, args in calls]
        self._send(self.contract.functions.batch(data))

    def raw(self, event: str, topics: list[bytes], data: bytes, experiment_id: int = 1) -> None:
        """A log with ``event``'s signature topic, the experiment id, then ``topics``."""
        self._send(self.contract.functions.raw(
            [DECODER.topic[event], word(experiment_id), *topics], data))

    def answer(self, signature: str, data: bytes, reverts: bool = False) -> None:
        """The view ``signature`` answers ``data`` from now on (or reverts with it)."""
        self._send(self.contract.functions.answer(function_signature_to_4byte_selector(
            signature), reverts, data))

    def views(self, *, round_index: int, model_round: int, learners: int = 3,
              rounds: int = 3) -> None:
        """getExperiment and currentModel answer like a contract, with these values."""
        self.answer("getExperiment(uint256)", abi_encode(
            ["uint256"] * 7 + ["bool"] + ["uint256"] * 7 + ["bool"],
            [learners, 5000, rounds, 600, 600, round_index, 0, False, 0, 0, model_round, 600,
             learners, 0, 0, False]))
        self.answer("currentModel(uint256)", abi_encode(["bytes32", "uint256"],
                                                        [DIGEST, model_round]))

    @property
    def client(self) -> CollectiveLearningClient:
        return CollectiveLearningClient(self.w3, self.address)

    def audit(self, experiment_id: int = 1) -> AuditReport:
        return audit_history(read_history(self.client, experiment_id))


@pytest.fixture
def hostile(chain: Web3, deployer: LocalAccount, hostile_compiled: dict[str, Any]) -> Hostile:
    return Hostile(chain, deployer, hostile_compiled)


@pytest.fixture
def addresses(learners: list[LocalAccount]) -> list[str]:
    return [a.address for a in learners[:3]]


def created(experiment_id: int, learners: list[str], *, threshold: int = 5000, rounds: int = 3,
            timeouts: tuple[int, int] = (600, 600), cid: str = "bafy-initial",
            digest: bytes = DIGEST, join_timeout: int = 600, terms: tuple[Any, ...] = PLAIN,
            start: bool = True) -> tuple[str, tuple[Any, ...]]:
    """ExperimentCreated (``terms``: the ExperimentTerms tuple); with ``start`` (the
    default) every learner's join and the start follow in the same transaction."""
    return ("created", (experiment_id, learners, [threshold, rounds, *timeouts, join_timeout],
                        cid, digest, terms, start))


def audit_in_bounded_memory(hostile: Hostile) -> AuditReport:
    """The hostile contract's audit, which must allocate less than :data:`MEMORY_BOUND`."""
    tracemalloc.start()
    try:
        report = hostile.audit()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"the audit allocated {peak / 2**20:.0f} MiB at its peak"
    return report


def messages(report: AuditReport) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for v in report.violations:
        out.setdefault(v.code, []).append(v.message)
    return out


def renders(report: AuditReport) -> None:
    """The report in its three forms, without error."""
    console = Console(record=True, width=160)
    print_report(report, console)
    assert "audit failed" in console.export_text()
    json.dumps(report_json(report))
    assert "Audit failed" in render_html(report)


# ---------------------------------------------------------------- the decoder


def _log(topics: list[bytes], data: bytes) -> RawLog:
    return RawLog(tuple(topics), data, 7, "0x" + "ab" * 32, 0, False)


_TOPIC0 = st.one_of(st.sampled_from(sorted(DECODER.topic.values())), st.binary(max_size=40))
_TOPIC = st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40),
                   st.integers(0, TOP).map(word))
_VALID = {  # data as the contract encodes it, to mutate
    "ExperimentCreated": abi_encode(
        DECODER.types["ExperimentCreated"],
        [["0x" + "01" * 20, "0x" + "02" * 20], 5000, 3, 600, 600, 900, "bafy-initial", DIGEST,
         "m", (100, "0x" + "03" * 20, 10, 20, 1, 2, 3, 5000, 2500)]),
    "LearnerJoined": b"",
    "ExperimentStarted": b"",
    "ExperimentCancelled": b"",
    "WeightsProposed": abi_encode(DECODER.types["WeightsProposed"], ["bafy-round", DIGEST]),
    "VoteCast": abi_encode(DECODER.types["VoteCast"], [True, -5]),
    "RoundDecided": abi_encode(DECODER.types["RoundDecided"], [True, 2, 1]),
    "RoundExpired": b"",
    "ExperimentCompleted": abi_encode(DECODER.types["ExperimentCompleted"], [DIGEST, 3]),
    "Deposited": word(10),
    "FundsWithdrawn": word(10),
    "VoteSkipped": b"",
    "VoteCommitted": word(2) + DIGEST,
    "CommitsComplete": b"",
    "PenaltyTaken": word(1) + word(5),
}


@st.composite
def _mutated(draw: st.DrawFn) -> RawLog:
    """An event's real topics and data, then bytes flipped, cut or added."""
    name = draw(st.sampled_from(EVENTS))
    topics = [DECODER.topic[name]] + [draw(_TOPIC) for _ in range(DECODER.topic_count[name] - 1)]
    data = bytearray(_VALID[name])
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "add", "word"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and data:
            data[min(at, len(data) - 1)] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        elif kind == "add":
            data[at:at] = draw(st.binary(min_size=1, max_size=40))
        elif data:
            start = (min(at, len(data) - 1) // 32) * 32
            data[start:start + 32] = word(draw(st.sampled_from([TOP, 2**255, 2**64, 0x40])))
    if draw(st.booleans()):
        topics = draw(st.lists(st.sampled_from(topics), max_size=5)) or topics[:1]
    return _log(topics, bytes(data))


_LOGS = st.one_of(
    st.builds(lambda t0, rest, data: _log([t0, *rest], data), _TOPIC0,
              st.lists(_TOPIC, max_size=4), st.binary(max_size=600)),
    st.builds(lambda data: _log([], data), st.binary(max_size=64)),
    _mutated(),
)


@settings(max_examples=3000 if SLOW else 400, deadline=None)
@given(_LOGS)
@example(_log([DECODER.topic["VoteCast"], word(1), word(0)], word(1)))  # 3 topics: IndexError
@example(_log([DECODER.topic["RoundDecided"], word(1), word(0)], b"\x01" * 10))  # short data
@example(_log([DECODER.topic["ExperimentCompleted"], word(1)], b""))
def test_the_decoder_raises_only_its_own_error(entry: RawLog) -> None:
    try:
        name, fields = DECODER.decode(entry)
    except MalformedEvent as exc:
        assert isinstance(exc, ChainError) and exc.reason and len(str(exc)) < 300
        return
    assert name in EVENTS and isinstance(fields, dict)
    if "round" in fields:
        assert 0 <= fields["round"] <= TOP


def test_the_decoder_decodes_what_the_contract_logs() -> None:
    voter = "0x" + "0a" * 20
    name, fields = DECODER.decode(_log([DECODER.topic["VoteCast"], word(1), word(4),
                                        address_word(voter)], _VALID["VoteCast"]))
    assert (name, fields["round"], fields["approve"], fields["score"]) == ("VoteCast", 4, True, -5)
    name, fields = DECODER.decode(_log([DECODER.topic["ExperimentCreated"], word(1),
                                        address_word(voter)], _VALID["ExperimentCreated"]))
    assert fields["num_rounds"] == 3 and len(fields["learners"]) == 2
    with pytest.raises(MalformedEvent, match="logged for experiment 1, not 2"):
        DECODER.decode(_log([DECODER.topic["RoundExpired"], word(1), word(0)], b""), 2)


# ------------------------------------------------------- the hostile contract, audited


def test_impossible_round_numbers_are_violations_in_bounded_memory(
        hostile: Hostile, addresses: list[str]) -> None:
    """Rounds 2^24, 2^255 and 2^256 - 1 in events, round 2^256 - 1 in the views: named, and
    the audit allocates for the events it read, not for the rounds they claim."""
    hostile.do(created(1, addresses))
    hostile.do(("proposed", (1, 2**24, addresses[2**24 % 3], "bafy-x", DIGEST2)),
               ("voted", (1, TOP, addresses[0], True, 5)),
               ("decided", (1, 2**255, True, TOP, 0)),
               ("expired", (1, TOP)),
               ("completed", (1, DIGEST2, TOP)))
    hostile.views(round_index=TOP, model_round=TOP, rounds=TOP)

    report = audit_in_bounded_memory(hostile)

    found = messages(report)
    sequence = " | ".join(found["round-sequence"])
    assert f"events for round {TOP}: the contract counts rounds in 24 bits" in sequence
    assert f"events for round {2**24}: " in sequence and "never closed" in sequence
    assert any("24 bits" in m for m in found["contract-view"])
    assert any(f"view says {TOP} rounds" in m
               for m in found["contract-view"])
    assert "completion" in found and "model-chain" in found
    renders(report)


def test_no_learners_or_learners_twice_are_configuration_violations(
        hostile: Hostile, addresses: list[str]) -> None:
    a, b, _ = addresses
    hostile.do(created(1, [], threshold=20_000, rounds=0, timeouts=(0, 2**32), cid="",
                       digest=bytes(32)),
               ("proposed", (1, 0, a, "bafy-0", DIGEST2)),
               ("voted", (1, 0, b, True, 1)),
               ("decided", (1, 0, True, 1, 0)))
    report = hostile.audit(1)
    (config,) = messages(report)["configuration"]
    for part in ("0 learners, not 2 to 500", "threshold 20000 bps", "0 rounds",
                 "proposal timeout 0 s", f"voting timeout {2**32} s", "no initial CID",
                 "zero initial digest"):
        assert part in config
    assert "proposer-schedule" in messages(report) and "vote-eligibility" in messages(report)
    renders(report)

    hostile.do(created(2, [a, a, ZERO_ADDRESS]),
               ("proposed", (2, 0, a, "bafy-0", DIGEST2)),
               ("voted", (2, 0, a, True, 1)))
    report = hostile.audit(2)
    (config,) = messages(report)["configuration"]
    assert "a learner is listed twice" in config and "the zero address is a learner" in config
    assert any("round's proposer" in m for m in messages(report)["vote-eligibility"])
    renders(report)


def test_malformed_logs_are_violations(hostile: Hostile, addresses: list[str]) -> None:
    a = addresses[0]
    hostile.do(created(1, addresses))
    cases = [
        ("VoteCast", [word(0)], word(1) + word(5), "3 topics, not 4"),
        ("RoundDecided", [word(0)], b"\x01" * 10, "10 bytes of data, not 96"),
        ("ExperimentCompleted", [], b"", "0 bytes of data, not 64"),
        ("WeightsProposed", [word(0), address_word(a)], word(2**255) + word(0),
         "data does not decode"),
        ("VoteCast", [word(1), address_word(a)], word(2) + word(0), "neither 0 nor 1"),
        ("VoteCast", [word(1), b"\xff" * 32], word(1) + word(0), "non-zero padding"),
        ("RoundExpired", [word(0), word(0)], b"", "4 topics, not 3"),
    ]
    for event, topics, data, _ in cases:
        hostile.raw(event, topics, data)
    report = hostile.audit()
    found = messages(report)["event-format"]
    assert len(found) == len(cases)
    for (event, _, _, reason), message in zip(cases, found):
        assert message.startswith(f"{event} log in block") and reason in message
    assert not report.ok
    renders(report)


def test_an_unreadable_creation_event_is_one_clear_error(hostile: Hostile,
                                                         addresses: list[str]) -> None:
    hostile.raw("ExperimentCreated", [address_word(addresses[0])], bytes(40))
    with pytest.raises(AuditError, match=r"experiment 1's ExperimentCreated event \(block \d+, "
                                         r"tx 0x[0-9a-f]+\) is malformed: data does not decode"):
        read_history(hostile.client, 1)


def test_views_that_revert_or_answer_garbage_are_violations(hostile: Hostile,
                                                            addresses: list[str]) -> None:
    hostile.do(created(1, addresses))
    # A revert with one of the contract's own error selectors and 3 bytes of arguments
    # (the revert decoder chokes on it), an answer of 5 bytes.
    selector = function_signature_to_4byte_selector(
        "UnexpectedRoundState(uint256,uint256,uint8,uint8)")
    hostile.answer("getExperiment(uint256)", selector + b"abc", reverts=True)
    hostile.answer("currentModel(uint256)", b"\x01" * 5)
    (message,) = messages(hostile.audit())["contract-view"]
    assert message.startswith("the contract's views fail at the audited block")

    hostile.answer("getExperiment(uint256)", b"")
    (message,) = messages(hostile.audit())["contract-view"]
    assert message.startswith("the contract's views fail at the audited block")

    for impossible in (0, -1, 2**256):
        with pytest.raises(ValueError, match="experiment ids run from 1 to 2"):
            read_history(hostile.client, impossible)
    hostile.answer("experimentCount()", selector, reverts=True)
    with pytest.raises(UnknownExperiment, match=r"experiment 9 does not exist .* \(its "
                                                r"experimentCount\(\) view fails\)"):
        read_history(hostile.client, 9)

    hostile.views(round_index=2**24, model_round=0, learners=4, rounds=3)
    found = messages(hostile.audit())
    assert any("stores both in 24 bits" in m for m in found["contract-view"])
    assert any("view says 4 learners, ExperimentCreated 3" in m for m in found["contract-view"])
    assert any(f"view is at round {2**24}" in m for m in found["round-sequence"])


def test_events_out_of_order_or_twice_are_violations(hostile: Hostile,
                                                     addresses: list[str]) -> None:
    a, b, c = addresses
    hostile.do(("expired", (1, 0)), created(1, addresses, rounds=2))  # before its creation
    hostile.do(("decided", (1, 1, True, 1, 0)),  # decided before its proposal, voted after
               ("proposed", (1, 1, b, "bafy-1", DIGEST2)),
               ("voted", (1, 1, a, True, 7)),
               ("completed", (1, DIGEST2, 2)),
               ("completed", (1, DIGEST2, 2)))
    hostile.do(created(1, addresses))
    found = messages(hostile.audit())
    assert "RoundExpired logged before the experiment was created" in found["round-sequence"]
    assert "decided before its proposal was logged" in found["decision-rule"]
    assert any("voted after the round closed" in m for m in found["vote-eligibility"])
    assert any(m.startswith("ExperimentCompleted logged again") for m in found["completion"])
    assert any(m.startswith("ExperimentCreated logged again") for m in found["configuration"])
    assert c not in " ".join(found["vote-eligibility"])


# ------------------------------------------------------------------ the CLI, on anvil


#: ``python -m agents.cli`` with its address space capped first (in the child itself: a
#: preexec_fn is not safe in a process with threads).
_CAPPED_CLI = ("import resource, runpy, sys\n"
               "resource.setrlimit(resource.RLIMIT_AS, ({0}, {0}))\n"
               "sys.argv[0] = 'colearn'\n"
               "runpy.run_module('agents.cli', run_name='__main__', alter_sys=True)\n")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``colearn audit ARGS`` in a process that cannot map more than 3 GiB."""
    return subprocess.run([sys.executable, "-c", _CAPPED_CLI.format(CLI_ADDRESS_SPACE), "audit",
                           *args], capture_output=True, text=True, timeout=300, check=False,
                          cwd=ROOT)


@pytest.mark.parametrize("chain_env", [pytest.param("anvil", marks=pytest.mark.anvil)],
                         indirect=True)
def test_the_audit_command_against_a_hostile_contract(hostile: Hostile,
                                                      addresses: list[str]) -> None:
    url = str(hostile.w3.provider.endpoint_uri)  # type: ignore[attr-defined]
    hostile.do(created(1, addresses))
    hostile.do(("decided", (1, TOP, True, 2, 0)), ("expired", (1, 2**200)))
    hostile.raw("VoteCast", [word(0)], b"\x01")
    hostile.views(round_index=TOP, model_round=0)
    hostile.raw("ExperimentCreated", [address_word(addresses[0])], bytes(40), experiment_id=2)

    result = cli("--rpc", url, "--contract", hostile.address, "--experiment", "1")
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for code in ("round-sequence", "event-format", "contract-view"):
        assert code in result.stdout
    assert str(TOP) in result.stdout

    for experiment, message in (("2", "ExperimentCreated event"), ("0", "experiment ids run"),
                                ("7", "experiment 7 does not exist")):
        result = cli("--rpc", url, "--contract", hostile.address, "--experiment", experiment)
        assert result.returncode == 1, (experiment, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# ------------------------------------------------------------------ the explorer


@pytest.fixture
def explorer(chain: Web3, make: Any) -> Iterator[tuple[int, LogRecords]]:
    """The explorer of the session's contract (one experiment) on a free port, and the
    records its logger emits at INFO and above."""
    e = make(n=3)
    with captured("agents.audit.explorer", logging.INFO) as records, ExplorerServer(
            Explorer(CollectiveLearningClient(chain, e.contract.address), poll=60),
            port=0) as server:
        yield server.port, records


def request(port: int, target: bytes, method: bytes = b"GET") -> tuple[int, bytes]:
    """One raw HTTP/1.1 request (any bytes as its target): the status and the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Connection: close\r\n\r\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


_IDS = st.one_of(
    st.integers(-(2**300), 2**300).map(str),
    st.text("0123456789", min_size=70, max_size=6000),
    st.text(max_size=40).map(lambda t: quote(t, safe="")),
)
_TEMPLATES = ["/api/experiments/{}", "/api/experiments/{}/scores.png",
              "/api/experiments/{}/votes.png", "/block/{}", "/tx/{}", "/{}", "/api/{}",
              "/api/experiments/1/{}"]
_TARGETS = st.one_of(
    st.builds(lambda t, x: t.format(x).encode(), st.sampled_from(_TEMPLATES), _IDS),
    # any bytes but the request line's separators
    st.binary(max_size=300).map(lambda b: b"/" + bytes(c for c in b if c not in b" \r\n")),
)
_QUERIES = st.one_of(st.just(b""), st.binary(max_size=100).map(
    lambda b: b"?" + quote_from_bytes(b).encode()))


@pytest.mark.parametrize("chain_env", ["eth-tester"], indirect=True)
@settings(max_examples=1500 if SLOW else 150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=_TARGETS, query=_QUERIES, method=st.sampled_from([b"GET", b"GET", b"HEAD",
                                                                 b"POST", b"BREW"]))
@example(target=b"/api/experiments/" + b"9" * 5000, query=b"", method=b"GET")
@example(target=b"/api/experiments/0", query=b"", method=b"GET")
@example(target=b"/api/experiments/" + str(2**256).encode(), query=b"", method=b"GET")
@example(target=b"/block/" + b"1" * 5000, query=b"", method=b"GET")
@example(target=b"/api/experiments/-1/votes.png", query=b"?x=1", method=b"GET")
def test_the_explorer_answers_any_request_with_a_page_or_a_4xx(
        explorer: tuple[int, LogRecords], target: bytes, query: bytes, method: bytes) -> None:
    port, records = explorer
    records.records.clear()
    status, body = request(port, target + query, method)
    assert 200 <= status < 500, (status, body[:300])
    logged = [r for r in records.records if r.levelno >= logging.INFO]
    if status < 400:
        assert method == b"GET" and not logged
        return
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert logged[0].exc_info is None and "\n" not in logged[0].getMessage()
    if method != b"HEAD":
        assert len(body) <= 400 and "error" in json.loads(body)


@pytest.mark.parametrize("chain_env", ["eth-tester"], indirect=True)
def test_the_explorer_of_a_hostile_contract(hostile: Hostile, addresses: list[str]) -> None:
    """2^256 - 1 experiments claimed, one real, one with an unreadable creation event: the
    list shows the newest hundred (each that cannot be read with its error), the real one
    is audited, the unreadable one is a 422."""
    hostile.do(created(1, addresses), ("expired", (1, TOP)))
    hostile.raw("ExperimentCreated", [address_word(addresses[0])], bytes(40), experiment_id=2)
    hostile.answer("experimentCount()", word(TOP))
    with ExplorerServer(Explorer(hostile.client, poll=60), port=0) as server:
        status, body = request(server.port, b"/api/experiments")
        assert status == 200
        listed = json.loads(body)
        assert [e["id"] for e in listed] == list(range(TOP - 99, TOP + 1))
        assert all("does not exist" in e["error"] for e in listed)
        status, body = request(server.port, b"/api/experiments/1")
        assert status == 200 and not json.loads(body)["ok"]
        assert request(server.port, b"/api/experiments/1/votes.png")[0] == 200
        status, body = request(server.port, b"/api/experiments/2")
        assert status == 422 and "ExperimentCreated event" in json.loads(body)["error"]
        # A count that reverts with one of the contract's error selectors and no arguments.
        hostile.answer("experimentCount()", function_signature_to_4byte_selector(
            "UnexpectedRoundState(uint256,uint256,uint8,uint8)"), reverts=True)
        status, body = request(server.port, b"/api/experiments")
        assert status == 422 and "experimentCount() fails" in json.loads(body)["error"]


# ------------------------------------------- sealed votes and stake (v2), hostile


STAKED = (100, ZERO_ADDRESS, 10, 20, 1, 2, 3, 5000, 2500)  # sealed, staked terms


def test_money_and_commitments_in_a_plain_experiment_are_violations(
        hostile: Hostile, addresses: list[str]) -> None:
    a, b, c = addresses
    hostile.do(created(1, addresses),
               ("deposited", (1, a, TOP)),
               ("committed", (1, a, TOP, DIGEST)),
               ("commitsComplete", (1, 0)),
               ("skipped", (1, 0, c)),
               ("penalized", (1, b, TOP, 2, TOP)),
               ("withdrew", (1, b, TOP)))
    hostile.raw("PenaltyTaken", [address_word(a), word(0)], word(7) + word(1))
    report = audit_in_bounded_memory(hostile)
    found = messages(report)
    for code in ("deposit", "withdrawal", "penalty", "sealed-votes", "vote-skipped",
                 "round-sequence", "event-format"):
        assert code in found, code
    assert "penalty reason 7" in " ".join(found["event-format"])
    assert all("\n" not in v.message for v in report.violations)
    renders(report)


def test_hostile_sealed_and_staked_events_are_violations(hostile: Hostile, clock: Clock,
                                                         addresses: list[str]) -> None:
    a, b, c = addresses
    hostile.do(created(1, addresses, terms=STAKED, timeouts=(600, 2)),
               ("proposed", (1, 0, a, "bafy-0", DIGEST2)),
               ("voted", (1, 0, b, True, 5)),  # never committed
               ("committed", (1, c, 0, DIGEST)))
    clock.mine_at(clock.latest() + 10)  # the reveal window is open
    hostile.do(("voted", (1, 0, c, False, -1)),  # its transaction holds no reveal
               ("decided", (1, 0, False, 1, 1)),
               ("withdrew", (1, c, 12)))  # before the end
    found = messages(hostile.audit())
    assert any("never committed" in m for m in found["sealed-votes"])
    assert any("not a vote or reveal" in m for m in found["reveal-opening"])
    assert any("before the experiment completed" in m for m in found["withdrawal"])
    assert any("no deposit" in m for m in found["deposit"])
    # Terms no contract accepts (and amounts that overflow any uint96): configuration.
    hostile.do(created(2, addresses, terms=(TOP, ZERO_ADDRESS, TOP, TOP, TOP, TOP, TOP, TOP, TOP)),
               ("proposed", (2, 0, a, "bafy-0", DIGEST2)),
               ("expired", (2, 0)),
               ("penalized", (2, a, 0, 0, TOP)),
               ("withdrew", (2, a, TOP)))
    report = hostile.audit(2)
    (config,) = messages(report)["configuration"]
    assert f"reveal timeout {TOP} s" in config and "stake above 2^96 - 1" in config
    renders(report)


_AMOUNTS = st.one_of(st.integers(0, 50), st.sampled_from([TOP, 2**96, 2**255]))


@settings(max_examples=1000 if SLOW else 150, deadline=None)
@given(data=st.data())
def test_any_v2_events_in_a_history_are_violations_never_crashes(data: st.DataObject) -> None:
    """A synthetic sealed, staked history with commitments, reveals, skips, penalties,
    deposits and withdrawals of any values: the checks name violations, one line each."""
    from test_audit import synthetic_history

    from agents.audit.reader import Commit, PenaltyRecord, Skip, Transfer, VoteCall
    from agents.chain.types import ExperimentOptions

    h = synthetic_history()
    h.config.options = ExperimentOptions.model_construct(
        reveal_timeout=data.draw(_AMOUNTS), token=ZERO_ADDRESS, stake=data.draw(_AMOUNTS),
        reward_pool=data.draw(_AMOUNTS), missed_proposal_penalty=data.draw(_AMOUNTS),
        unrevealed_vote_penalty=data.draw(_AMOUNTS), rejected_proposal_penalty=data.draw(_AMOUNTS),
        rejection_share_bps=data.draw(_AMOUNTS), proposer_share_bps=data.draw(_AMOUNTS))
    people = [*h.config.learners, "0x" + "ee" * 20]
    refs = st.builds(lambda b, i, t: {"tx_hash": "0x" + "ab" * 32, "block_number": b,
                                      "log_index": i, "timestamp": t},
                     st.integers(0, 200), st.integers(0, 5), st.integers(0, 5000))
    for r in h.rounds:
        for _ in range(data.draw(st.integers(0, 3))):
            r.commits.append(Commit(voter=data.draw(st.sampled_from(people)),
                                    learner_index=data.draw(st.integers(-1, 3)),
                                    commitment="0x" + data.draw(st.binary(min_size=32,
                                                                          max_size=32)).hex(),
                                    **data.draw(refs)))
        for _ in range(data.draw(st.integers(0, 2))):
            r.skipped.append(Skip(voter=data.draw(st.sampled_from(people)), **data.draw(refs)))
            r.penalties.append(PenaltyRecord(
                learner=data.draw(st.sampled_from(people)), learner_index=0,
                round=r.round, reason=data.draw(st.sampled_from(["missed_proposal",
                                                                 "unrevealed_vote",
                                                                 "rejected_proposal"])),
                amount=data.draw(_AMOUNTS), **data.draw(refs)))
        for v in r.votes:
            if data.draw(st.booleans()):
                v.call = VoteCall(function="revealVotes", experiment_id=data.draw(_AMOUNTS),
                                  round=r.round, approve=v.approve,
                                  score=data.draw(st.sampled_from([v.score, -(2**255)])),
                                  salt="0x" + data.draw(st.binary(min_size=32,
                                                                  max_size=32)).hex())
        if data.draw(st.booleans()):
            r.commits_complete = EventRef(**data.draw(refs))
    for target in (h.deposits, h.withdrawals):
        for _ in range(data.draw(st.integers(0, 3))):
            target.append(Transfer(account=data.draw(st.sampled_from(people)),
                                   amount=data.draw(_AMOUNTS), **data.draw(refs)))
    report = audit_history(h)
    for v in report.violations:
        assert "\n" not in v.message and len(v.message) < 2000
    json.dumps(report_json(report))

"""Random call sequences against the contract and the reference model of PROTOCOL.md
(tests/protocol_model.py): every call's success or named error (with its arguments), every
event and every view must agree, and the chain's own record (events and views) must
satisfy the protocol's invariants after every step.

The contract is deployed once per run on the in-process chain; each sequence starts from
a snapshot of that state. Transactions are signed and sent raw, each in its own block at
a timestamp the test chooses, so the model knows the exact time the contract sees. (The
client's round calls first check with an ``eth_call`` at the latest block, whose clock
differs from the mined block's: near a deadline the outcome would depend on which of the
two times decided it.) Views go through the client, after every step, at the latest
block's time.

Test-only hook: ``COLEARN_STATEFUL_ARTIFACT=/path/CollectiveLearning.json`` deploys that
compiled artifact instead of the shipped one (to check this test catches mutated
contracts; the ABI must be the shipped one's).
"""

from __future__ import annotations

import ast
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Container, Sequence
from dataclasses import astuple, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils import (
    event_abi_to_log_topic,
    function_signature_to_4byte_selector,
    keccak,
    to_checksum_address,
)
from experiments import web3_contract
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from protocol_model import (
    SECP256K1_N,
    ZERO_ADDRESS,
    Domain,
    Event,
    Experiment,
    Outcome,
    ProtocolModel,
    RevealArg,
    Revert,
    SignedCommitArg,
    SignedVoteArg,
    Terms,
    accepted,
    commitment_of,
)
from web3 import Web3

from agents.chain.abi import load_artifact
from agents.chain.client import CollectiveLearningClient
from agents.chain.errors import ContractRevert
from agents.chain.network import connect, derive_accounts, fund_accounts
from agents.chain.signing import sign_commit, sign_join, sign_proposal, sign_vote
from agents.chain.types import RoundState

ARTIFACT_ENV = "COLEARN_STATEFUL_ARTIFACT"
SLOW = os.environ.get("COLEARN_TESTS_SLOW") == "1"
POOL_SIZE = 6  # accounts that may be learners; the outsider never is
TX_GAS = 2_000_000  # explicit: no gas estimate (and a reverting call is still mined)
MAX_FEE = 10**10  # above the in-process chain's base fee (1 gwei at genesis, never rising)
THRESHOLDS = (0, 1, 2000, 2500, 3333, 3334, 4000, 5000, 6000, 6666, 6667, 7500, 8000,
              9999, 10000)

#: Deposits, penalties and withdrawals: the money side, checked by the model's balances;
#: they interleave with the protocol's events (a deposit at every staked join, withdrawals
#: after a cancellation).
MONEY_EVENTS = frozenset({"Deposited", "PenaltyTaken", "FundsWithdrawn"})

SETTINGS = settings(
    max_examples=3000 if SLOW else 300,
    stateful_step_count=14,  # joining takes a step or more before round 0
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ----------------------------------------------------------------- the chain


@dataclass
class World:
    """The in-process chain with the contract deployed, set up once per test run."""

    w3: Web3
    deployer: LocalAccount
    pool: list[LocalAccount]
    outsider: LocalAccount
    client: CollectiveLearningClient  # views only
    domain: Domain
    snapshot: Any
    nonces: dict[str, int]  # at the snapshot
    events: dict[bytes, tuple[str, list[tuple[str, str, bool]]]]  # topic -> name, inputs
    errors: dict[bytes, tuple[str, list[str], list[str]]]  # selector -> name, types, names

    @property
    def accounts(self) -> list[LocalAccount]:
        return [*self.pool, self.outsider, self.deployer]

    @property
    def tester(self) -> Any:
        return self.w3.provider.ethereum_tester  # type: ignore[attr-defined]


@cache
def world() -> World:
    w3 = connect(None)
    # Only the in-process provider's own formatting stays: the default middleware
    # validates and reformats every request, which costs more than the EVM call.
    for name in ("validation", "ens_name_to_address", "gas_price_strategy", "attrdict"):
        w3.middleware_onion.remove(name)
    deployer, *pool, outsider = derive_accounts(POOL_SIZE + 2, seed=1, label="colearn-stateful")
    w3.eth.default_account = deployer.address
    fund_accounts(w3, [a.address for a in (deployer, *pool, outsider)])
    abi = load_artifact()["abi"]
    address = _deploy(w3, deployer, _artifact()["bytecode"])
    client = CollectiveLearningClient(w3, address)
    tester = w3.provider.ethereum_tester  # type: ignore[attr-defined]
    return World(
        w3=w3, deployer=deployer, pool=pool, outsider=outsider, client=client,
        domain=Domain(w3.eth.chain_id, address), snapshot=tester.take_snapshot(),
        nonces={a.address: w3.eth.get_transaction_count(a.address)
                for a in (deployer, *pool, outsider)},
        events=_event_table(abi), errors=_error_table(abi))


def _artifact() -> dict[str, Any]:
    override = os.environ.get(ARTIFACT_ENV)
    if not override:
        return load_artifact()
    artifact = json.loads(Path(override).read_text())
    assert artifact["abi"] == load_artifact()["abi"], f"{override}: not the shipped ABI"
    return artifact


def _deploy(w3: Web3, account: LocalAccount, bytecode: str) -> str:
    tx = {"chainId": w3.eth.chain_id, "nonce": w3.eth.get_transaction_count(account.address),
          "data": bytecode, "value": 0, "gas": 10_000_000, "maxFeePerGas": MAX_FEE,
          "maxPriorityFeePerGas": 1}
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    assert receipt["status"] == 1
    return receipt["contractAddress"]


def _abi_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){param['type'][len('tuple'):]}"
    return param["type"]


def _event_table(abi: list[dict[str, Any]]) -> dict[bytes, tuple[str, list[tuple[str, str, bool]]]]:
    return {event_abi_to_log_topic(item): (item["name"], [
        (i["name"], _abi_type(i), i["indexed"]) for i in item["inputs"]])
        for item in abi if item["type"] == "event"}


def _error_table(abi: list[dict[str, Any]]) -> dict[bytes, tuple[str, list[str], list[str]]]:
    table = {}
    for item in abi:
        if item["type"] == "error":
            types = [_abi_type(i) for i in item["inputs"]]
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            table[selector] = (item["name"], types, [i["name"] for i in item["inputs"]])
    return table


def _plain(abi_type: str, value: Any) -> Any:
    """A decoded ABI value as the model writes it (checksummed addresses, bytes)."""
    if abi_type.endswith("[]"):
        return [_plain(abi_type[:-2], v) for v in value]
    if abi_type == "address":
        return to_checksum_address(value)
    if abi_type.startswith("("):  # a struct (the terms): components in order
        inner = abi_type[1:-1].split(",")
        return tuple(_plain(t, v) for t, v in zip(inner, value))
    return bytes(value) if isinstance(value, (bytes, bytearray)) else value


def decode_log(w: World, log: dict[str, Any]) -> Event:
    name, inputs = w.events[bytes(log["topics"][0])]
    topics = iter(log["topics"][1:])
    data = iter(abi_decode([t for _, t, indexed in inputs if not indexed], bytes(log["data"])))
    args = {}
    for arg, abi_type, indexed in inputs:
        value = abi_decode([abi_type], bytes(next(topics)))[0] if indexed else next(data)
        args[arg] = _plain(abi_type, value)
    return name, args


def decode_revert(w: World, data: bytes) -> Revert:
    name, types, names = w.errors[data[:4]]
    args = {k: _plain(t, v) for k, t, v in zip(names, types, abi_decode(types, data[4:]))}
    if name == "UnexpectedRoundState":
        args = {**args, "current": RoundState(args["current"]).name,
                "expected": RoundState(args["expected"]).name}
    return Revert(name, args)


def revert_data(exc: BaseException) -> bytes:
    """The raw revert data of a failed ``eth_call`` on the in-process chain (eth-tester
    puts it in its message: "execution reverted: b'...'")."""
    message = str(exc.args[0]) if exc.args else ""
    prefix = "execution reverted: "
    if not message.startswith(prefix):
        raise AssertionError(f"no revert data in {exc!r}")
    data = ast.literal_eval(message[len(prefix):])
    assert isinstance(data, bytes), exc
    return data


# -------------------------------------------------------------- the machine


def _rotated(items: list[str], first: int) -> list[str]:
    """``items`` starting at the ``first``-th (modulo their number), wrapping around."""
    k = first % len(items)
    return items[k:] + items[:k]


def _voters_left(e: Experiment, done: Container[str], first: int) -> list[str]:
    """The round's voters not in ``done`` (committed, or voted), from the ``first``-th."""
    return _rotated([a for a in e.learners if a != e.proposer and a not in done], first)


def running(e: Experiment) -> bool:
    """Joining, or in its rounds: not cancelled, not complete."""
    return e.stage != "cancelled" and not e.complete


def joining(e: Experiment) -> bool:
    """Before round 0 (before or after the join deadline)."""
    return e.stage == "joining"


def awaiting_proposal(e: Experiment) -> bool:
    return e.stage == "running" and not e.complete and e.proposal is None


def voting(e: Experiment) -> bool:
    """A proposal is on the table (before or after the voting deadline)."""
    return e.stage == "running" and not e.complete and e.proposal is not None


@dataclass
class Stats:
    """What a run did, printed at its end."""

    sequences: int = 0
    steps: int = 0
    transactions: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # error or event name -> count

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


STATS = Stats()

EXISTING = st.integers(0, 7)  # an existing experiment, by position
# 0-9: a suitable experiment (see pick); 10-13: any; 14: one never created; 15: id 0.
ANY_EXPERIMENT = st.integers(0, 15)
THRESHOLD = st.one_of(st.sampled_from(THRESHOLDS), st.integers(0, 10_000))
TIMEOUT = st.sampled_from((40, 60, 30, 20, 10, 5, 1))
JOIN_TIMEOUT = st.sampled_from((60, 120, 40, 20, 5, 1))
MAX_EXPERIMENTS = 2  # per sequence (every step reads the state of each)
FLAW = st.sampled_from(("one_learner", "threshold", "no_rounds", "no_proposal_timeout",
                        "no_voting_timeout", "empty_cid", "zero_digest", "zero_learner",
                        "duplicate", "no_join_timeout", "long_join_timeout",
                        "long_voting_timeout", "long_cid", "long_reveal_timeout",
                        "stake_terms", "share_over_10000", "wrong_value"))
# (v2) terms: public or sealed votes, with or without an ETH stake; small amounts, so that
# penalties run a stake out and pool shares round.
KIND = st.sampled_from(("plain", "plain", "sealed", "staked", "sealed_staked"))
AMOUNT = st.sampled_from((0, 1, 7, 100, 1000))
STAKE_TERMS = st.tuples(st.sampled_from((1, 100, 1000)), AMOUNT, AMOUNT, AMOUNT, AMOUNT,
                        st.sampled_from((0, 3333, 5000, 10_000)),
                        st.sampled_from((0, 2500, 5000, 10_000)))
NAMED = st.sampled_from(("right",) * 8 + ("other", "model"))  # the digest a vote names
CONTENT = st.sampled_from(("ok",) * 4 + ("empty_cid", "zero_digest"))
ROUND = st.sampled_from(("current",) * 9 + ("next", "previous", "far"))
PICK = st.integers(0, POOL_SIZE - 1)
SCORE = st.sampled_from((0, 10**18, 973100000000000000, -1, -(2**255), 2**255 - 1))
ANYONE = st.integers(0, POOL_SIZE + 1)  # any pool account, the outsider or the deployer
BAD_VOTE_SIGNATURES = ("wrong_index", "bad_index", "other_round", "other_experiment",
                       "other_digest",
                       "other_chain", "other_contract", "tampered", "high_s_twin", "high_s",
                       "zero_r", "off_curve")
VOTE_SIG = st.sampled_from(("genuine",) * 12 + ("duplicate",) * 3 + BAD_VOTE_SIGNATURES)
PROPOSAL_SIG = st.sampled_from(("genuine",) + (
    "other_round", "other_experiment", "other_chain", "other_contract", "tampered",
    "high_s_twin", "high_s", "zero_r", "off_curve"))
JOIN_SIG = st.sampled_from((None,) * 4 + ("genuine",) * 2 + (
    "wrong_index", "bad_index", "other_experiment", "other_chain", "other_contract",
    "high_s_twin", "high_s", "zero_r", "off_curve"))
JOINER = st.sampled_from(("learner",) * 3 + ("joined",) * 2 + ("outsider",))
SIGNER = st.sampled_from(("voter",) * 3 + ("voted",) * 3 + ("proposer", "outsider"))
LEARNER_LIST = st.sampled_from(("right",) * 8 + ("reversed", "missing", "outsider", "empty"))
# A relayed batch: (signer, pick, signature kind, approve, score) per vote.
BATCH = st.lists(st.tuples(SIGNER, PICK, VOTE_SIG, st.booleans(), SCORE), min_size=1,
                 max_size=4)
RARELY = st.sampled_from((False,) * 9 + (True,))
# A vote that must not count, cast while a ballot is open (see ContractMachine.intrude).
INTRUSION = st.sampled_from((None,) * 5 + ("proposer_votes", "outsider_votes", "votes_again",
                                           "batch_votes_again", "batch_duplicate") * 3
                            + ("batch_wrong_list", "batch_empty", "batch_wrong_digest")
                            + tuple(f"batch_{kind}" for kind in BAD_VOTE_SIGNATURES))


class ContractMachine(RuleBasedStateMachine):
    """One sequence: the chain from the snapshot, the model from nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.w = world()
        self.w.tester.revert_to_snapshot(self.w.snapshot)
        self.model = ProtocolModel(self.w.domain)
        self.nonces = dict(self.w.nonces)
        self.latest = int(self.w.w3.eth.get_block("latest")["timestamp"])  # views' clock
        self.next_time = self.latest + 1  # the next block's timestamp
        # The chain's record, as observed: events per experiment, and the views last read.
        self.events: dict[int, list[Event]] = {}
        self.infos: dict[int, dict[str, Any]] = {}
        self.models: dict[int, tuple[bytes, int]] = {}
        self.touched: set[int] = set()  # experiments whose storage this step changed
        self.views_checked_at = self.latest
        self.views_read = 0
        self.paid = 0  # the gas fee of the last transaction
        # sealed votes: (experiment, round, voter) -> (digest, approve, score, salt) committed
        self.openings: dict[tuple[int, int, str], tuple[bytes, bool, int, bytes]] = {}
        STATS.sequences += 1

    # ------------------------------------------------------------ sending

    def send_batch(self, sender: LocalAccount, function: str, eid: int, args: tuple[Any, ...],
                   listed: str, entries: Sequence[Any],
                   predict: Callable[[list[str], int], Outcome]) -> None:
        """Relays the batch ``function(eid, *args, learners, entries)`` from ``sender``, the
        learner list as ``listed`` says; ``predict(learners, timestamp)`` is the model's
        outcome."""
        learners = self.learner_list(eid, listed)
        fn = getattr(web3_contract(self.w.client).functions, function)(
            eid, *args, learners, [astuple(e) for e in entries])
        self.send(sender, fn, lambda at: predict(learners, at))

    def send(self, account: LocalAccount, fn: Any, predict: Callable[[int], Outcome],
             value: int = 0) -> None:
        """Mines ``fn`` from ``account`` (sending ``value`` wei) in a block of its own at
        ``next_time`` and checks the outcome (revert, or events in order) against
        ``predict(timestamp)``, and the sender's balance to the wei."""
        at = self.next_time
        expected = predict(at)
        before = self.w.w3.eth.get_balance(account.address)
        observed = self._transact(account, fn._encode_transaction_data(), at, value)
        spent = self.paid
        if isinstance(observed, list):
            spent += value - sum(a["amount"] for n, a in observed if n == "FundsWithdrawn"
                                 and self.model.experiments[a["experimentId"]].terms.token
                                 == ZERO_ADDRESS)
        assert self.w.w3.eth.get_balance(account.address) == before - spent
        assert observed == expected, (
            f"{fn.fn_name} at {at} from {account.address}:\n"
            f"  contract: {observed}\n  model:    {expected}")
        STATS.transactions += 1
        if isinstance(expected, Revert):
            STATS.outcomes[expected.name] += 1
        if isinstance(expected, Revert) and expected.name == "UnknownExperiment":
            self.check_unknown(expected.args["experimentId"])
        for name, args in observed if isinstance(observed, list) else []:
            STATS.outcomes[name] += 1
            self.events.setdefault(args["experimentId"], []).append((name, args))
            self.touched.add(args["experimentId"])

    def _transact(self, account: LocalAccount, data: str, at: int, value: int = 0) -> Outcome:
        w3 = self.w.w3
        self.next_block_at(at)
        tx = {"chainId": self.w.domain.chain_id, "nonce": self.nonces[account.address],
              "to": self.w.client.address, "data": data, "value": value, "gas": TX_GAS,
              "maxFeePerGas": MAX_FEE, "maxPriorityFeePerGas": 1}
        tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
        self.nonces[account.address] += 1
        receipt = w3.eth.get_transaction_receipt(tx_hash)
        block = receipt["blockNumber"]
        self.paid = receipt["gasUsed"] * receipt["effectiveGasPrice"]
        self.latest, self.next_time = at, at + 1
        if receipt["status"] == 1:
            return [decode_log(self.w, log) for log in receipt["logs"]]
        assert receipt["gasUsed"] < TX_GAS, "out of gas"
        # Reverted: replay it on the state it ran on (the block's, since it changed nothing).
        try:
            w3.eth.call({"from": account.address, "to": tx["to"], "data": data,
                         "value": value}, block)
        except Exception as exc:  # noqa: BLE001 - the revert we are after
            return decode_revert(self.w, revert_data(exc))
        raise AssertionError("a reverted transaction succeeds when replayed")

    def next_block_at(self, timestamp: int) -> None:
        """The next block (the pending one, still empty) gets exactly ``timestamp``."""
        chain = self.w.tester.backend.chain
        chain.header = chain.header.copy(timestamp=timestamp)

    # -------------------------------------------------------------- views

    def check_views_after_step(self) -> None:
        """All views of the experiments whose storage the step changed; the state of the
        others, if the views' clock moved."""
        for eid in self.model.experiments:
            if eid in self.touched:
                self.check_views(eid)
            elif self.latest != self.views_checked_at:
                assert self.w.client.state(eid) == self.model.state(eid, self.latest), eid
        self.touched, self.views_checked_at = set(), self.latest
        assert self.w.w3.eth.get_balance(self.w.client.address) == self.model.held

    def check_views(self, eid: int) -> None:
        c, m, now = self.w.client, self.model, self.latest
        info = c.experiment(eid).model_dump()
        assert info == m.experiment(eid)
        assert c.state(eid) == m.state(eid, now)
        assert c.deadline(eid) == m.deadline(eid, now)
        model = c.current_model(eid)
        assert model == m.current_model(eid)
        assert c.proposal_digest(eid) == m.proposal_digest(eid)
        if m.experiments[eid].terms.staked:
            stake = c.stake_of(eid).model_dump()
            stake["creator"], stake["token"] = (to_checksum_address(stake["creator"]),
                                                to_checksum_address(stake["token"]))
            assert stake == m.stake_of(eid)
            for learner in m.experiments[eid].learners:
                assert c.account_of(eid, learner).model_dump() == m.account_of(
                    eid, learner, now), learner
        for learner in m.experiments[eid].learners:
            assert c.vote_of(eid, learner) == m.vote_of(eid, learner), learner
        # One more account each time, in turn: the pool, the outsider, the deployer.
        self.views_read += 1
        account = self.w.accounts[self.views_read % len(self.w.accounts)].address
        status = c.round_status(eid, account).model_dump()
        assert status.pop("base_fee") == self.w.w3.eth.get_block("latest")["baseFeePerGas"]
        assert status == m.round_status(eid, account, now)
        index = c.learner_index(eid, account)
        assert (-1 if index is None else index) == m.learner_index(eid, account)
        self.infos[eid], self.models[eid] = info, model

    def check_unknown(self, eid: int) -> None:
        try:
            self.w.client.experiment(eid)
        except ContractRevert as err:
            assert (err.name, err.error_args) == ("UnknownExperiment", {"experimentId": eid})
        else:
            raise AssertionError(f"experiment {eid} exists")

    # ---------------------------------------------------------- resolving

    def account(self, index: int) -> LocalAccount:
        return self.w.accounts[index]

    def by_address(self, address: str) -> LocalAccount:
        (account,) = [a for a in self.w.accounts if a.address == address]
        return account

    def experiment_id(self, choice: int) -> int:
        count = self.model.count
        if choice == 15:
            return 0
        if choice == 14 or count == 0:
            return count + 1
        return choice % count + 1

    def joining(self) -> bool:
        """Whether some experiment has not started (before or after its join deadline)."""
        return any(joining(e) for e in self.model.experiments.values())

    def pending(self) -> bool:
        """Whether some round has a proposal (voting, or past its voting deadline)."""
        return any(voting(e) for e in self.model.experiments.values())

    def pick(self, choice: int, preferred: Callable[[Experiment], bool]) -> int:
        """An experiment id from ``choice`` (see ANY_EXPERIMENT): mostly one that is
        ``preferred`` (else a running one, else any), sometimes any, rarely an unknown id."""
        if choice >= 14:
            return self.experiment_id(choice)
        experiments = list(self.model.experiments.values())
        tiers = [lambda e: True] if choice >= 10 else [preferred, running, lambda e: True]
        for wanted in tiers:
            candidates = [e.id for e in experiments if wanted(e)]
            if candidates:
                return candidates[choice % len(candidates)]
        raise AssertionError("no experiment")

    def round_index(self, eid: int, choice: str) -> int:
        current = self.model.experiments[eid].round if eid in self.model.experiments else 0
        return {"current": current, "next": current + 1, "far": 2**24,
                "previous": current - 1 if current else 2**256 - 1}[choice]

    def learners(self, eid: int) -> list[str]:
        e = self.model.experiments.get(eid)
        return list(e.learners) if e else [a.address for a in self.w.pool[:3]]

    def proposer(self, eid: int) -> str:
        e = self.model.experiments.get(eid)
        return e.proposer if e else self.w.pool[0].address

    def signer(self, eid: int, who: str, pick: int) -> LocalAccount:
        """A proposer, an outsider, a learner that voted, or one that may vote."""
        if who == "outsider":
            return self.w.outsider
        if who == "proposer":
            return self.by_address(self.proposer(eid))
        e = self.model.experiments.get(eid)
        voters = [a for a in self.learners(eid) if a != self.proposer(eid)]
        voted = [a for a in voters if e and a in e.votes]
        fresh = [a for a in voters if a not in voted]
        group = (voted or voters) if who == "voted" else (fresh or voters)
        return self.by_address(group[pick % len(group)])

    # ------------------------------------------------------------- rules
    # ``advance`` follows the protocol (so sequences get somewhere), with intrusions; the
    # ``*_wrongly`` and ``*_anytime`` rules mostly break it. Any call may still fail on
    # timing or state: the model says how.

    @initialize(size=st.integers(2, POOL_SIZE), order=st.permutations(range(POOL_SIZE)),
                threshold=THRESHOLD, rounds=st.integers(1, 4), proposal_timeout=TIMEOUT,
                voting_timeout=TIMEOUT, join_timeout=JOIN_TIMEOUT, creator=ANYONE, kind=KIND,
                stake=STAKE_TERMS)
    def first_experiment(self, size: int, order: list[int], threshold: int, rounds: int,
                         proposal_timeout: int, voting_timeout: int, join_timeout: int,
                         creator: int, kind: str, stake: tuple[int, ...]) -> None:
        self.create_experiment(size, order, threshold, rounds, proposal_timeout,
                               voting_timeout, join_timeout, creator, None, kind, stake)

    @precondition(lambda self: self.model.count < MAX_EXPERIMENTS)
    @rule(size=st.integers(2, POOL_SIZE), order=st.permutations(range(POOL_SIZE)),
          threshold=THRESHOLD, rounds=st.integers(1, 4), proposal_timeout=TIMEOUT,
          voting_timeout=TIMEOUT, join_timeout=JOIN_TIMEOUT, creator=ANYONE,
          flaw=st.one_of(st.none(), FLAW), kind=KIND, stake=STAKE_TERMS)
    def create_experiment(self, size: int, order: list[int], threshold: int, rounds: int,
                          proposal_timeout: int, voting_timeout: int, join_timeout: int,
                          creator: int, flaw: str | None, kind: str,
                          stake: tuple[int, ...]) -> None:
        """Creates an experiment (public or sealed votes, with or without an ETH stake), or
        (with a ``flaw``) tries to create an invalid one."""
        learners = [self.w.pool[i].address for i in order[:size]]
        amount, pool, missed, unrevealed, rejected, rejection_share, proposer_share = stake
        terms = Terms(reveal_timeout=voting_timeout if "sealed" in kind else 0)
        if "staked" in kind:
            terms = Terms(terms.reveal_timeout, ZERO_ADDRESS, amount, pool, missed, unrevealed,
                          rejected, rejection_share, proposer_share)
        args: dict[str, Any] = {
            "learners": learners, "threshold_bps": threshold, "num_rounds": rounds,
            "proposal_timeout": proposal_timeout, "voting_timeout": voting_timeout,
            "join_timeout": join_timeout, "initial_cid": "bafy-initial",
            "initial_digest": keccak(text=f"initial-{self.model.count}")}
        args.update({
            None: {},
            "one_learner": {"learners": learners[:1]},
            "threshold": {"threshold_bps": 10_001},
            "no_rounds": {"num_rounds": 0},
            "no_proposal_timeout": {"proposal_timeout": 0},
            "no_voting_timeout": {"voting_timeout": 0},
            "empty_cid": {"initial_cid": ""},
            "zero_digest": {"initial_digest": bytes(32)},
            "zero_learner": {"learners": [*learners, "0x" + "00" * 20]},
            "duplicate": {"learners": [*learners, learners[0]]},
            "no_join_timeout": {"join_timeout": 0},
            "long_join_timeout": {"join_timeout": 30 * 86_400 + 1},
            "long_voting_timeout": {"voting_timeout": 30 * 86_400 + 1},
            "long_cid": {"initial_cid": "b" * 129},
            "long_reveal_timeout": {"terms": Terms(reveal_timeout=30 * 86_400 + 1)},
            "stake_terms": {"terms": Terms(missed_proposal_penalty=1)},
            "share_over_10000": {"terms": Terms(stake=1, proposer_share_bps=10_001)},
            "wrong_value": {"value": terms.reward_pool + 1},
        }.get(flaw, {}))
        args.setdefault("terms", terms)
        args.setdefault("value", args["terms"].reward_pool)
        self.create(self.account(creator), **args)

    def create(self, creator: LocalAccount, learners: list[str], threshold_bps: int,
               num_rounds: int, proposal_timeout: int, voting_timeout: int, join_timeout: int,
               initial_cid: str, initial_digest: bytes, terms: Terms, value: int) -> None:
        fn = web3_contract(self.w.client).functions.createExperiment(
            learners, threshold_bps, num_rounds, proposal_timeout, voting_timeout, initial_cid,
            initial_digest, "bafy-metadata", join_timeout, terms.as_tuple())
        self.send(creator, fn, lambda at: self.model.create_experiment(
            creator.address, learners, threshold_bps, num_rounds, proposal_timeout,
            voting_timeout, initial_cid, initial_digest, "bafy-metadata", join_timeout, at,
            terms, value), value)

    @precondition(lambda self: self.model.count > 0)
    @rule(exp=EXISTING, actions=st.integers(1, 3), relayer=st.one_of(st.none(), ANYONE),
          first=PICK, ballots=st.lists(st.tuples(st.booleans(), SCORE), min_size=1,
                                       max_size=POOL_SIZE - 1),
          intrusion=INTRUSION)
    def advance(self, exp: int, actions: int, relayer: int | None, first: int,
                ballots: list[tuple[bool, int]], intrusion: str | None) -> None:
        """The protocol's next ``actions`` steps in a running experiment, each as the
        round's state (at the next block's time) calls for: while joining, the next learner
        (from ``first``) that has not joined joins (signed, through ``relayer``, if there
        is one), or anyone cancels after the join deadline; the scheduled proposer
        proposes; learners that may vote vote (one directly, or ``ballots`` relayed in a
        batch); anyone (``first``) decides or expires the round. Without ``relayer`` calls
        are direct. While voting, an ``intrusion`` (a vote that must not count) comes
        first."""
        eid = self.pick(exp, running)
        for _ in range(actions):
            if intrusion and self.model.state(eid, self.next_time) == RoundState.VOTING:
                self.intrude(self.model.experiments[eid], intrusion, first)
            self.next_action(self.model.experiments[eid], relayer, first, ballots)

    def intrude(self, e: Experiment, intrusion: str, pick: int) -> None:
        """A vote by the proposer or an outsider, a second vote (direct or relayed), a
        relayed batch holding one learner's vote twice, with a wrong learner list, with no
        votes, or with a genuine vote then a bad one ("batch_<kind>", see
        BAD_VOTE_SIGNATURES). A learner that has not voted yet stands in for one that has
        when none has."""
        relayer = self.account(pick + 1)
        if intrusion == "proposer_votes":
            self.vote_directly(self.by_address(e.proposer), e.id, "current", True, 1)
        elif intrusion == "outsider_votes":
            self.vote_directly(self.w.outsider, e.id, "current", True, 1)
        elif intrusion == "votes_again":
            self.vote_directly(self.signer(e.id, "voted", pick), e.id, "current", False, 2)
        elif intrusion == "batch_votes_again":
            batch = [("voted", pick, "genuine", True, 3)]
            self.cast_signed(e.id, "current", batch, "right", relayer)
        elif intrusion == "batch_duplicate":
            batch = [("voter", pick, "genuine", False, 4), ("voter", pick, "duplicate", False, 4)]
            self.cast_signed(e.id, "current", batch, "right", relayer)
        elif intrusion == "batch_wrong_list":
            listed = ("reversed", "missing", "outsider", "empty")[pick % 4]
            self.cast_signed(e.id, "current", [("voter", pick, "genuine", True, 7)], listed,
                             relayer)
        elif intrusion == "batch_empty":
            self.cast_signed(e.id, "current", [], "right", relayer)
        elif intrusion == "batch_wrong_digest":
            self.cast_signed(e.id, "current", [("voter", pick, "genuine", True, 8)], "right",
                             relayer, named="other")
        else:
            kind = intrusion.removeprefix("batch_")
            batch = [("voter", pick, "genuine", True, 5), ("voter", pick + 1, kind, True, 6)]
            self.cast_signed(e.id, "current", batch, "right", relayer)

    def next_action(self, e: Experiment, relayer: int | None, first: int,
                    ballots: list[tuple[bool, int]]) -> None:
        state = e.state(self.next_time)
        if state == RoundState.JOINING:
            waiting = [a for a in e.learners if a not in e.joined]
            learner = self.by_address(waiting[first % len(waiting)])
            if relayer is None:
                self.join_directly(learner, e.id)
            else:
                self.join_signed(learner, e.id, "genuine", self.account(relayer))
        elif state == RoundState.JOIN_TIMED_OUT:
            self.cancel(self.account(first), e.id)
        elif state == RoundState.PROPOSING:
            proposer = self.by_address(e.proposer)
            if relayer is None:
                self.propose_directly(proposer, e.id, "current", "ok")
            else:
                self.propose_signed(proposer, e.id, "current", "genuine",
                                    self.account(relayer), "ok")
        elif state == RoundState.VOTING and e.sealed:
            voters = _voters_left(e, e.commits, first)
            if relayer is None:
                approve, score = ballots[0]
                self.commit_directly(self.by_address(voters[0]), e.id, "current", approve, score)
            else:
                self.commit_signed(e.id, [(v, approve, score, "genuine") for v, (approve, score)
                                          in zip(voters, ballots)], self.account(relayer))
        elif state == RoundState.REVEALING:
            waiting = [a for a in e.learners if a in e.commits and a not in e.votes]
            if not waiting:  # nobody committed: wait for the reveal deadline
                self.next_time = max(self.next_time, e.deadline(self.next_time))
                return
            waiting = _rotated(waiting, first)
            if relayer is None:
                self.reveal_directly(self.by_address(waiting[0]), e.id, "current", "right")
            else:
                self.reveal_batch(e.id, [(v, "right") for v in waiting[:len(ballots)]],
                                  self.account(relayer))
        elif state == RoundState.REVEAL_TIMED_OUT:
            self.close_round("decide", self.account(first), e.id, e.round)
        elif state == RoundState.VOTING:
            voters = _voters_left(e, e.votes, first)
            if relayer is None:
                approve, score = ballots[0]
                self.vote_directly(self.by_address(voters[0]), e.id, "current", approve, score)
            else:
                batch = [("voter", e.learners.index(v), "genuine", approve, score)
                         for v, (approve, score) in zip(voters, ballots)]
                self.cast_signed(e.id, "current", batch, "right", self.account(relayer),
                                 by_index=True)
        elif state == RoundState.VOTING_TIMED_OUT:
            self.close_round("decide", self.account(first), e.id, e.round)
        elif state == RoundState.PROPOSAL_TIMED_OUT:
            self.close_round("expire", self.account(first), e.id, e.round)

    @precondition(lambda self: self.joining())
    @rule(exp=ANY_EXPERIMENT, who=JOINER, pick=ANYONE, signature=JOIN_SIG, relayer=ANYONE)
    def join_wrongly(self, exp: int, who: str, pick: int, signature: str | None,
                     relayer: int) -> None:
        """A join that may come from an outsider or a learner that joined, after the join
        deadline or the start, or (sent by a relayer) with a bad signature."""
        eid = self.pick(exp, joining)
        e = self.model.experiments.get(eid)
        learners = self.learners(eid)
        joined = [a for a in learners if e and a in e.joined]
        account = {"learner": self.by_address(learners[pick % len(learners)]),
                   "joined": self.by_address((joined or learners)[pick % len(joined or learners)]),
                   "outsider": self.w.outsider}[who]
        if signature is None:
            self.join_directly(account, eid, wrong_value=pick == 0)
        else:
            self.join_signed(account, eid, signature, self.account(relayer), pick)

    def join_directly(self, sender: LocalAccount, eid: int, wrong_value: bool = False) -> None:
        """A join that sends the stake the terms ask for (or, ``wrong_value``, one wei more)."""
        e = self.model.experiments.get(eid)
        value = (e.terms.stake if e and e.terms.staked else 0) + wrong_value
        fn = web3_contract(self.w.client).functions.join(eid)
        self.send(sender, fn, lambda at: self.model.join(sender.address, eid, at, value), value)

    def join_signed(self, signer: LocalAccount, eid: int, kind: str, sender: LocalAccount,
                    pick: int = 0) -> None:
        index = self.signer_index(eid, signer, kind, pick)
        chain_id, contract = self.domain_for(kind)
        signed = sign_join(signer, chain_id=chain_id, contract=contract,
                           experiment_id=another(eid) if kind == "other_experiment" else eid,
                           learner_index=index)
        r, vs = mangle(kind, signed.r, signed.vs, pick)
        fn = web3_contract(self.w.client).functions.joinBySig(eid, index, r, vs)
        self.send(sender, fn, lambda at: self.model.join_by_sig(
            sender.address, eid, index, r, vs, at))

    @precondition(lambda self: self.joining())
    @rule(exp=ANY_EXPERIMENT, caller=ANYONE)
    def cancel_anytime(self, exp: int, caller: int) -> None:
        """Anyone cancels an experiment, maybe before the join deadline or after the start."""
        self.cancel(self.account(caller), self.pick(exp, joining))

    def cancel(self, sender: LocalAccount, eid: int) -> None:
        fn = web3_contract(self.w.client).functions.cancel(eid)
        self.send(sender, fn, lambda at: self.model.cancel(sender.address, eid, at))

    @rule(exp=ANY_EXPERIMENT, who=st.sampled_from(("proposer", "learner", "anyone")),
          pick=ANYONE, round_choice=ROUND, content=CONTENT,
          signature=st.one_of(st.none(), PROPOSAL_SIG), relayer=ANYONE)
    def propose_wrongly(self, exp: int, who: str, pick: int, round_choice: str, content: str,
                        signature: str | None, relayer: int) -> None:
        """A proposal that may come from the wrong account, for the wrong round, with
        empty contents or (sent by a relayer) a bad signature."""
        eid = self.pick(exp, awaiting_proposal)
        learners = self.learners(eid)
        account = {"proposer": self.by_address(self.proposer(eid)),
                   "learner": self.by_address(learners[pick % len(learners)]),
                   "anyone": self.account(pick)}[who]
        if signature is None:
            self.propose_directly(account, eid, round_choice, content)
        else:
            self.propose_signed(account, eid, round_choice, signature, self.account(relayer),
                                content, pick)

    def propose_directly(self, sender: LocalAccount, eid: int, round_choice: str,
                         content: str) -> None:
        round_index = self.round_index(eid, round_choice)
        cid, digest = self.proposal(eid, round_index, content)
        fn = web3_contract(self.w.client).functions.propose(eid, round_index, cid, digest)
        self.send(sender, fn, lambda at: self.model.propose(
            sender.address, eid, round_index, cid, digest, at))

    def propose_signed(self, signer: LocalAccount, eid: int, round_choice: str, kind: str,
                       sender: LocalAccount, content: str, pick: int = 0) -> None:
        round_index = self.round_index(eid, round_choice)
        cid, digest = self.proposal(eid, round_index, content)
        chain_id, contract = self.domain_for(kind)
        signed = sign_proposal(
            signer, chain_id=chain_id, contract=contract,
            experiment_id=another(eid) if kind == "other_experiment" else eid,
            round_index=another(round_index) if kind == "other_round" else round_index,
            cid=cid, digest=keccak(digest) if kind == "tampered" else digest)
        r, vs = mangle(kind, signed.r, signed.vs, pick)
        fn = web3_contract(self.w.client).functions.proposeBySig(eid, round_index, cid, digest, r, vs)
        self.send(sender, fn, lambda at: self.model.propose_by_sig(
            sender.address, eid, round_index, cid, digest, r, vs, at))

    @precondition(lambda self: self.pending())
    @rule(exp=ANY_EXPERIMENT, who=SIGNER, pick=PICK, round_choice=ROUND,
          approve=st.booleans(), score=SCORE, named=NAMED)
    def vote_wrongly(self, exp: int, who: str, pick: int, round_choice: str, approve: bool,
                     score: int, named: str) -> None:
        """A vote that may come from the proposer, an outsider or a learner that voted,
        name the wrong round or another digest than the proposal's, or be public in a
        sealed experiment."""
        eid = self.pick(exp, voting)
        self.vote_directly(self.signer(eid, who, pick), eid, round_choice, approve, score,
                           named)

    def named_digest(self, eid: int, named: str) -> bytes:
        """The digest a vote names: the round's proposal, another, or the current model's."""
        e = self.model.experiments.get(eid)
        if named == "other" or e is None:
            return keccak(text=f"other-{eid}")
        return e.model_digest if named == "model" else self.model.proposal_digest(eid)

    def vote_directly(self, voter: LocalAccount, eid: int, round_choice: str, approve: bool,
                      score: int, named: str = "right") -> None:
        round_index = self.round_index(eid, round_choice)
        digest = self.named_digest(eid, named)
        fn = web3_contract(self.w.client).functions.vote(eid, round_index, digest, approve,
                                                         score)
        self.send(voter, fn, lambda at: self.model.vote(
            voter.address, eid, round_index, digest, approve, score, at))

    # ------------------------------------------------------- sealed votes

    def opening(self, eid: int, round_index: int, voter: str, approve: bool,
                score: int) -> tuple[bytes, bool, int, bytes]:
        """``voter``'s opening over the current proposal, remembered for its reveal."""
        digest = self.named_digest(eid, "right")
        opening = (digest, approve, score, keccak(text=f"salt-{eid}-{round_index}-{voter}"))
        self.openings.setdefault((eid, round_index, voter), opening)
        return opening

    def commit_directly(self, voter: LocalAccount, eid: int, round_choice: str, approve: bool,
                        score: int) -> None:
        round_index = self.round_index(eid, round_choice)
        commitment = commitment_of(eid, round_index, voter.address,
                                   *self.opening(eid, round_index, voter.address, approve, score))
        fn = web3_contract(self.w.client).functions.commitVote(eid, round_index, commitment)
        self.send(voter, fn, lambda at: self.model.commit_vote(
            voter.address, eid, round_index, commitment, at))

    def commit_signed(self, eid: int, batch: list[tuple[str, bool, int, str]],
                      sender: LocalAccount, listed: str = "right") -> None:
        """Signed commitments of ``(voter, approve, score, signature kind)``, relayed."""
        round_index = self.round_index(eid, "current")
        commits: list[SignedCommitArg] = []
        for voter, approve, score, kind in batch:
            if kind == "duplicate" and commits:
                commits.append(commits[-1])
                continue
            commitment = commitment_of(eid, round_index, voter,
                                       *self.opening(eid, round_index, voter, approve, score))
            index = self.signer_index(eid, self.by_address(voter), kind, 0)
            chain_id, contract = self.domain_for(kind)
            signed = sign_commit(
                self.by_address(voter), chain_id=chain_id, contract=contract,
                experiment_id=another(eid) if kind == "other_experiment" else eid,
                round_index=another(round_index) if kind == "other_round" else round_index,
                learner_index=index,
                commitment=keccak(commitment) if kind == "tampered" else commitment)
            r, vs = mangle(kind, signed.r, signed.vs, 0)
            commits.append(SignedCommitArg(index, commitment, r, vs))
        self.send_batch(sender, "commitVotesBySig", eid, (round_index,), listed, commits,
                        lambda learners, at: self.model.commit_votes_by_sig(
                            sender.address, eid, round_index, learners, commits, at))

    def reveal_arg(self, eid: int, round_index: int, voter: str, how: str) -> RevealArg:
        """``voter``'s opening as committed ("right"), or one that does not match it."""
        learners = self.learners(eid)
        index = learners.index(voter) if voter in learners else len(learners)
        _, approve, score, salt = self.openings.get(
            (eid, round_index, voter), (b"", True, 0, keccak(text="no salt")))
        if how == "flipped":
            approve = not approve
        elif how == "salt":
            salt = keccak(salt)
        return RevealArg(index, approve, score, salt)

    def reveal_directly(self, voter: LocalAccount, eid: int, round_choice: str,
                        how: str) -> None:
        round_index = self.round_index(eid, round_choice)
        v = self.reveal_arg(eid, round_index, voter.address, how)
        fn = web3_contract(self.w.client).functions.revealVote(eid, round_index, v.approve,
                                                               v.score, v.salt)
        self.send(voter, fn, lambda at: self.model.reveal_vote(
            voter.address, eid, round_index, v.approve, v.score, v.salt, at))

    def reveal_batch(self, eid: int, batch: list[tuple[str, str]], sender: LocalAccount,
                     listed: str = "right") -> None:
        round_index = self.round_index(eid, "current")
        reveals = [self.reveal_arg(eid, round_index, voter, how) for voter, how in batch]
        self.send_batch(sender, "revealVotes", eid, (round_index,), listed, reveals,
                        lambda learners, at: self.model.reveal_votes(
                            sender.address, eid, round_index, learners, reveals, at))

    @precondition(lambda self: self.pending())
    @rule(exp=ANY_EXPERIMENT, who=SIGNER, pick=PICK, round_choice=ROUND,
          approve=st.booleans(), score=SCORE,
          how=st.sampled_from(("commit", "commit", "signed", "reveal", "reveal_flipped",
                               "reveal_salt", "batch_reveal", "batch_commit_bad")),
          kind=VOTE_SIG, relayer=ANYONE, listed=LEARNER_LIST)
    def seal_wrongly(self, exp: int, who: str, pick: int, round_choice: str, approve: bool,
                     score: int, how: str, kind: str, relayer: int, listed: str) -> None:
        """A commitment or reveal, direct or relayed, that may come from the proposer, an
        outsider or a learner that committed or revealed, name the wrong round, not match
        its commitment, carry a bad signature or a wrong learner list, or be sealed in a
        public experiment."""
        eid = self.pick(exp, voting)
        account = self.signer(eid, who, pick)
        sender = self.account(relayer)
        if how == "commit":
            self.commit_directly(account, eid, round_choice, approve, score)
        elif how == "signed":
            self.commit_signed(eid, [(account.address, approve, score, "genuine")], sender,
                               listed)
        elif how == "batch_commit_bad":
            fresh = self.signer(eid, "voter", pick + 1).address
            bad = kind if kind not in ("wrong_index", "bad_index", "other_digest") else "tampered"
            self.commit_signed(eid, [(account.address, approve, score, "genuine"),
                                     (fresh, approve, score, bad)], sender)
        elif how == "batch_reveal":
            self.reveal_batch(eid, [(account.address, "right")], sender, listed)
        else:
            self.reveal_directly(account, eid, round_choice,
                                 {"reveal": "right", "reveal_flipped": "flipped",
                                  "reveal_salt": "salt"}[how])

    @precondition(lambda self: self.model.count > 0)
    @rule(exp=ANY_EXPERIMENT, who=ANYONE)
    def withdraw_anytime(self, exp: int, who: int) -> None:
        """Anyone withdraws from an experiment: a learner, the creator, an outsider; before
        or after its end, once or again."""
        eid = self.pick(exp, lambda e: e.terms.staked and not running(e))
        sender = self.account(who)
        fn = web3_contract(self.w.client).functions.withdraw(eid)
        self.send(sender, fn, lambda at: self.model.withdraw(sender.address, eid, at))

    @precondition(lambda self: self.pending())
    @rule(exp=ANY_EXPERIMENT, round_choice=ROUND, batch=BATCH, listed=LEARNER_LIST,
          relayer=ANYONE, empty=RARELY)
    def cast_votes_wrongly(self, exp: int, round_choice: str,
                           batch: list[tuple[str, int, str, bool, int]], listed: str,
                           relayer: int, empty: bool) -> None:
        """A relayed batch that may hold bad signatures (see VOTE_SIG), votes that may not
        count, a wrong learner list or the wrong round; or (``empty``) no votes at all."""
        self.cast_signed(self.pick(exp, voting), round_choice,
                         [] if empty else batch, listed, self.account(relayer))

    def cast_signed(self, eid: int, round_choice: str,
                    batch: list[tuple[str, int, str, bool, int]], listed: str,
                    sender: LocalAccount, by_index: bool = False, named: str = "right") -> None:
        round_index = self.round_index(eid, round_choice)
        digest = self.named_digest(eid, named)
        votes: list[SignedVoteArg] = []
        for who, pick, kind, approve, score in batch:
            if kind == "duplicate" and votes:
                votes.append(votes[-1])
                continue
            signer = (self.by_address(self.learners(eid)[pick]) if by_index
                      else self.signer(eid, who, pick))
            votes.append(self.signed_vote(eid, round_index, digest, signer, pick, kind, approve,
                                          score))
        self.send_batch(sender, "castVotesBySig", eid, (round_index, digest), listed, votes,
                        lambda learners, at: self.model.cast_votes_by_sig(
                            sender.address, eid, round_index, digest, learners, votes, at))

    @precondition(lambda self: self.model.count > 0)
    @rule(how=st.sampled_from(("decide", "expire")), exp=ANY_EXPERIMENT, round_choice=ROUND,
          caller=ANYONE)
    def close_round_anytime(self, how: str, exp: int, round_choice: str, caller: int) -> None:
        """Anyone decides or expires a round, maybe too early or naming the wrong round."""
        eid = self.pick(exp, voting if how == "decide" else awaiting_proposal)
        self.close_round(how, self.account(caller), eid, self.round_index(eid, round_choice))

    def close_round(self, how: str, sender: LocalAccount, eid: int, round_index: int) -> None:
        fn = getattr(web3_contract(self.w.client).functions, how)(eid, round_index)
        predict = getattr(self.model, how)
        self.send(sender, fn, lambda at: predict(sender.address, eid, round_index, at))

    @rule(how=st.sampled_from(("wait", "deadline-1", "deadline", "deadline+1", "mine")),
          seconds=st.integers(1, 20), exp=EXISTING)
    def time_passes(self, how: str, seconds: int, exp: int) -> None:
        """The next transaction comes ``seconds`` later ("wait"), or next to an experiment's
        current deadline (if that is still ahead); or ("mine") an empty block is mined at
        the next time, moving the views' clock there."""
        if how == "mine":
            self.next_block_at(self.next_time)
            self.w.tester.mine_blocks()
            self.latest, self.next_time = self.next_time, self.next_time + 1
        elif how == "wait":
            self.next_time += seconds
        elif self.model.count:
            offset = {"deadline-1": -1, "deadline": 0, "deadline+1": 1}[how]
            target = self.model.deadline(self.pick(exp, running), self.latest) + offset
            if target > self.latest:
                self.next_time = target

    # ----------------------------------------------------------- helpers

    def proposal(self, eid: int, round_index: int, content: str) -> tuple[str, bytes]:
        cid = "" if content == "empty_cid" else f"bafy-{eid}-{round_index}"
        digest = bytes(32) if content == "zero_digest" else keccak(text=f"{eid}-{round_index}")
        return cid, digest

    def domain_for(self, kind: str) -> tuple[int, str]:
        chain_id, contract = self.w.domain.chain_id, self.w.domain.contract
        if kind == "other_chain":
            return chain_id + 1, contract
        if kind == "other_contract":
            return chain_id, self.w.deployer.address
        return chain_id, contract

    def signer_index(self, eid: int, signer: LocalAccount, kind: str, pick: int) -> int:
        """The learner index a signed call names: the signer's, or (``wrong_index``) the
        next learner's, or (``bad_index``) one past the list (``pick`` for an outsider)."""
        learners = self.learners(eid)
        index = learners.index(signer.address) if signer.address in learners else pick
        if kind == "wrong_index":
            return (index + 1) % len(learners)
        if kind == "bad_index":
            return len(learners) + pick
        return index

    def signed_vote(self, eid: int, round_index: int, digest: bytes, signer: LocalAccount,
                    pick: int, kind: str, approve: bool, score: int) -> SignedVoteArg:
        index = self.signer_index(eid, signer, kind, pick)
        chain_id, contract = self.domain_for(kind)
        signed = sign_vote(
            signer, chain_id=chain_id, contract=contract,
            experiment_id=another(eid) if kind == "other_experiment" else eid,
            round_index=another(round_index) if kind == "other_round" else round_index,
            learner_index=index, digest=keccak(digest) if kind == "other_digest" else digest,
            approve=approve != (kind == "tampered"), score=score)
        r, vs = mangle(kind, signed.r, signed.vs, pick)
        return SignedVoteArg(index, approve, score, r, vs)

    def learner_list(self, eid: int, listed: str) -> list[str]:
        learners = self.learners(eid)
        return {"right": learners, "reversed": learners[::-1], "missing": learners[:-1],
                "outsider": [*learners[:-1], self.w.outsider.address], "empty": []}[listed]

    # -------------------------------------------------------- invariants
    # After every step: the views against the model, then the invariants on the chain's
    # record alone (events and views read), not on the model. One Hypothesis invariant
    # runs them all, so a counterexample prints one line a step.

    @invariant()
    def views_match_and_the_chain_record_is_consistent(self) -> None:
        STATS.steps += 1
        self.check_views_after_step()
        self.tallies_equal_the_votes_of_the_current_round()
        self.one_vote_per_learner_per_round_and_none_by_the_proposer()
        self.only_the_scheduled_proposer_proposed()
        self.every_decision_follows_the_rule()
        self.the_model_changes_only_on_acceptance()
        self.rounds_close_in_order_and_the_last_completes()
        self.rounds_only_after_the_start_and_the_start_is_the_last_join()
        self.a_cancellation_ends_an_unfilled_experiment()

    def rounds_only_after_the_start_and_the_start_is_the_last_join(self) -> None:
        for eid, events in self.events.items():
            learners = self.created(eid)["learners"]
            names = [name for name, _ in events if name not in MONEY_EVENTS]
            joins = [a["learner"] for a in self.of(eid, "LearnerJoined")]
            assert len(joins) == len(set(joins)) and set(joins) <= set(learners), joins
            started = [i for i, name in enumerate(names) if name == "ExperimentStarted"]
            assert len(started) <= 1, names
            if not started:
                assert names[1:] == ["LearnerJoined"] * (len(names) - 1) or \
                    names[-1] == "ExperimentCancelled", names
                continue
            at = started[0]
            # the n-th join, and in the same transaction (the event just before it)
            assert names[:at] == ["ExperimentCreated"] + ["LearnerJoined"] * len(learners), names
            assert "LearnerJoined" not in names[at:] and "ExperimentCancelled" not in names
            if eid in self.infos:
                assert self.infos[eid]["joined"] == len(learners)

    def a_cancellation_ends_an_unfilled_experiment(self) -> None:
        for eid, events in self.events.items():
            names = [name for name, _ in events if name not in MONEY_EVENTS]
            if "ExperimentCancelled" not in names:
                continue
            learners = self.created(eid)["learners"]
            assert names[-1] == "ExperimentCancelled" and names.count("ExperimentCancelled") == 1
            assert names[:-1] == ["ExperimentCreated"] + ["LearnerJoined"] * (len(names) - 2)
            assert len(names) - 2 < len(learners), names

    def tallies_equal_the_votes_of_the_current_round(self) -> None:
        for eid, info in self.infos.items():
            votes = [a for a in self.votes(eid) if a["round"] == info["round"]]
            approvals = sum(a["approve"] for a in votes)
            assert (info["approvals"], info["rejections"]) == (approvals, len(votes) - approvals)

    def one_vote_per_learner_per_round_and_none_by_the_proposer(self) -> None:
        for eid in self.events:
            learners = self.created(eid)["learners"]
            ballots = [(a["round"], a["voter"]) for a in self.votes(eid)]
            assert len(ballots) == len(set(ballots)), ballots
            for round_index, voter in ballots:
                assert voter in learners and voter != learners[round_index % len(learners)]

    def only_the_scheduled_proposer_proposed(self) -> None:
        for eid in self.events:
            learners = self.created(eid)["learners"]
            rounds = [a["round"] for a in self.of(eid, "WeightsProposed")]
            assert len(rounds) == len(set(rounds)), rounds
            for a in self.of(eid, "WeightsProposed"):
                assert a["proposer"] == learners[a["round"] % len(learners)], a

    def every_decision_follows_the_rule(self) -> None:
        for eid in self.events:
            created = self.created(eid)
            for d in self.of(eid, "RoundDecided"):
                votes = [a["approve"] for a in self.votes(eid) if a["round"] == d["round"]]
                assert (d["approvals"], d["rejections"]) == (sum(votes), len(votes) - sum(votes))
                assert d["accepted"] == accepted(d["approvals"], created["thresholdBps"],
                                                 len(created["learners"])), d

    def the_model_changes_only_on_acceptance(self) -> None:
        for eid, current in self.models.items():
            created = self.created(eid)
            expected = (created["initialDigest"], 0)
            proposals = {a["round"]: a["digest"] for a in self.of(eid, "WeightsProposed")}
            for d in self.of(eid, "RoundDecided"):
                if d["accepted"]:
                    expected = (proposals[d["round"]], d["round"] + 1)
            assert current == expected
            for done in self.of(eid, "ExperimentCompleted"):
                assert (done["modelDigest"], done["modelRound"]) == expected

    def rounds_close_in_order_and_the_last_completes(self) -> None:
        for eid in self.events:
            closed = [a["round"] for name, a in self.events[eid]
                      if name in ("RoundDecided", "RoundExpired")]
            assert closed == list(range(len(closed))), closed
            completed = [name for name, _ in self.events[eid] if name == "ExperimentCompleted"]
            finished = len(closed) == self.created(eid)["numRounds"]
            assert completed == (["ExperimentCompleted"] if finished else [])
            if finished:
                assert self.events[eid][-1][0] == "ExperimentCompleted"
            if eid in self.infos:
                assert self.infos[eid]["round"] == len(closed)

    def of(self, eid: int, name: str) -> list[dict[str, Any]]:
        return [a for n, a in self.events.get(eid, []) if n == name]

    def votes(self, eid: int) -> list[dict[str, Any]]:
        return self.of(eid, "VoteCast")

    def created(self, eid: int) -> dict[str, Any]:
        (created,) = self.of(eid, "ExperimentCreated")
        return created


def another(number: int) -> int:
    """The previous round or experiment (a replayed signature), or the next one if none."""
    return number - 1 if number > 0 else number + 1


def mangle(kind: str, r: bytes, vs: bytes, pick: int) -> tuple[bytes, bytes]:
    """A genuine ERC-2098 signature ``(r, vs)``, made invalid as ``kind`` says."""
    value = int.from_bytes(vs, "big")
    s, parity = value & ((1 << 255) - 1), value >> 255
    if kind == "high_s_twin":
        # The malleable twin (n - s, other parity). n - s rarely fits in 255 bits, so in
        # ERC-2098 form its top bit overwrites the parity: the contract reads another s.
        twin = ((SECP256K1_N - s) | ((1 - parity) << 255)) % 2**256
        return r, twin.to_bytes(32, "big")
    if kind == "high_s":  # an s above n / 2 that does fit: refused before recovery
        high = SECP256K1_N // 2 + 1 + pick
        return r, (high | (parity << 255)).to_bytes(32, "big")
    if kind == "zero_r":
        return bytes(32), vs
    if kind == "off_curve":  # 5 is no x-coordinate on secp256k1: ecrecover fails
        return (5).to_bytes(32, "big"), vs
    return r, vs


@pytest.mark.slow  # 1.5-2 min for 300 sequences; about 17 min with --slow (3000)
def test_contract_follows_the_protocol_model(capsys: pytest.CaptureFixture[str]) -> None:
    STATS.reset()
    world()  # set up outside Hypothesis' timing (py-evm changes the recursion limit on import)
    start = time.perf_counter()
    in_fresh_thread(lambda: run_state_machine_as_test(ContractMachine, settings=SETTINGS))
    elapsed = time.perf_counter() - start
    errors = {item["name"] for item in load_artifact()["abi"] if item["type"] == "error"}
    # Out of reach here: no length to get wrong in (r, vs); EIP-712's constructor errors;
    # 501 learners.
    errors -= {"ECDSAInvalidSignatureLength", "InvalidShortString", "StringTooLong",
               "TooManyLearners"}
    with capsys.disabled():
        print(f"\nstateful contract test: {STATS.sequences} sequences, {STATS.steps} steps, "
              f"{STATS.transactions} transactions in {elapsed:.1f} s\n"
              f"  outcomes: {dict(sorted(STATS.outcomes.items()))}\n"
              f"  errors never met: {sorted(errors - set(STATS.outcomes))}")


def in_fresh_thread(run: Callable[[], None]) -> None:
    """Runs ``run`` in a new thread and re-raises what it raised. Speed only: at the depth
    of pytest's frame stack, CPython 3.11 kept allocating and freeing a 16 KiB frame chunk
    (mmap/munmap) on every EVM call, which made the test two to three times slower."""
    raised: list[BaseException] = []

    def target() -> None:
        try:
            run()
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            raised.append(exc)

    thread = threading.Thread(target=target, name="stateful-contract-test")
    thread.start()
    thread.join()
    if raised:
        raise raised[0]

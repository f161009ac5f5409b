"""Helpers shared by the contract tests: experiments with a client per account, and a
context manager asserting a named revert."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from agents.chain.abi import load_artifact
from agents.chain.client import CollectiveLearningClient
from agents.chain.errors import ContractRevert
from agents.chain.logs import RoundDecided
from agents.chain.signing import VoteOpening, vote_commitment
from agents.chain.types import ExperimentInfo, RoundState, TxResult, score_to_fixed

PROPOSAL_TIMEOUT = 100
VOTING_TIMEOUT = 200
INITIAL_CID = "bafy-initial-weights"
ZERO = bytes(32)
ZERO_ADDRESS = "0x" + "00" * 20
MAX_LEARNERS = 500
TX_GAS_CAP = 2**24  # EIP-7825 (Osaka): the most gas one transaction may use
MAX_ROUNDS = 2**24 - 1
UINT32_MAX = 2**32 - 1
MAX_TIMEOUT = 30 * 86_400  # the contract's bound on every timeout
JOIN_TIMEOUT = 1_000  # of the experiments tests make (round 0 starts when all joined)
JOIN_GAS_BUDGET = 50_000  # a join, the last one (which starts round 0) included
# Gas bounds of issue 4 (deterministic: asserted, not timed)
ROUND_GAS_BUDGET = 200_000  # a steady round of 5 learners: proposal + 4 direct votes
FIRST_ROUND_GAS_BUDGET = 240_000  # the first round also writes two zero slots
VOTE_GAS_BUDGET = 45_000  # a direct vote that does not decide


def digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def creation_args(members: list[str], rounds: int = 1) -> tuple[Any, ...]:
    """``createExperiment``'s positional arguments for the tests' usual terms (threshold
    5000, their timeouts, a fixed initial model), for tests that call it directly."""
    return (members, 5000, rounds, PROPOSAL_TIMEOUT, VOTING_TIMEOUT, INITIAL_CID,
            digest("initial"), "", JOIN_TIMEOUT)


def same_address(a: str, b: str) -> bool:
    return a.lower() == b.lower()


@contextmanager
def reverts(name: str, **expected: Any) -> Iterator[None]:
    """Asserts the block raises ContractRevert ``name`` with (a subset of) these arguments."""
    with pytest.raises(ContractRevert) as info:
        yield
    err = info.value
    assert err.name == name, f"expected {name}, got {err}"
    for key, want in expected.items():
        got = err.error_args[key]
        if isinstance(want, str) and want.startswith("0x"):
            assert same_address(got, want), f"{err}: {key}={got}, expected {want}"
        else:
            assert got == want, f"{err}: {key}={got!r}, expected {want!r}"


@dataclass
class Exp:
    """One experiment and a client per account."""

    id: int
    contract: CollectiveLearningClient  # the creator's client
    learners: list[LocalAccount]
    initial: bytes
    created: TxResult
    started: TxResult | None = None  # the last join (round 0 starts at its block's time)
    joined: list[TxResult] = field(default_factory=list)
    _clients: dict[str, CollectiveLearningClient] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.learners)

    def by(self, account: LocalAccount) -> CollectiveLearningClient:
        if account.address not in self._clients:
            self._clients[account.address] = self.contract.with_account(account)
        return self._clients[account.address]

    def join(self, learner: LocalAccount) -> TxResult:
        tx = self.by(learner).join(self.id)
        self.joined.append(tx)
        if len(self.joined) == self.n:
            self.started = tx
        return tx

    def join_all(self) -> TxResult:
        """Every learner joins, in order; returns the last join (round 0's start)."""
        for account in self.learners:
            self.join(account)
        assert self.started is not None
        return self.started

    def proposer(self, round_index: int) -> LocalAccount:
        return self.learners[round_index % self.n]

    def voters(self, round_index: int) -> list[LocalAccount]:
        return [a for a in self.learners if a is not self.proposer(round_index)]

    def proposal(self, round_index: int) -> tuple[str, bytes]:
        return f"bafy-exp{self.id}-round{round_index}", digest(f"exp{self.id}-round{round_index}")

    def propose(self, round_index: int) -> TxResult:
        cid, dig = self.proposal(round_index)
        return self.by(self.proposer(round_index)).propose(self.id, round_index, cid, dig)

    def vote(self, round_index: int, voter: LocalAccount, approve: bool,
             score: int = 0, digest: bytes | None = None) -> TxResult:
        """A vote on the round's proposal (by default, the one :meth:`propose` makes)."""
        named = self.proposal(round_index)[1] if digest is None else digest
        return self.by(voter).vote(self.id, round_index, named, approve, score)

    def cast(self, round_index: int, ballot: Sequence[bool | None]) -> list[TxResult]:
        """Votes of the round's voters in learner order; ``None`` means no vote."""
        voters = self.voters(round_index)
        assert len(ballot) == len(voters)
        return [self.vote(round_index, v, b, score_to_fixed(0.5 + i / 100))
                for i, (v, b) in enumerate(zip(voters, ballot)) if b is not None]

    # sealed votes (experiments created with a reveal timeout)
    def opening(self, round_index: int, voter: LocalAccount, approve: bool,
                score: int = 0) -> VoteOpening:
        """``voter``'s opening in ``round_index``, with a salt of its own."""
        salt = keccak(text=f"salt-{self.id}-{round_index}-{voter.address}")
        return VoteOpening(approve=approve, score=score, salt=salt)

    def commitment(self, round_index: int, voter: LocalAccount, approve: bool,
                   score: int = 0, digest: bytes | None = None) -> bytes:
        named = self.proposal(round_index)[1] if digest is None else digest
        return vote_commitment(self.id, round_index, voter.address, named,
                               self.opening(round_index, voter, approve, score))

    def commit(self, round_index: int, voter: LocalAccount, approve: bool, score: int = 0,
               digest: bytes | None = None) -> TxResult:
        """``voter`` commits to its vote on the round's proposal (by default :meth:`propose`'s)."""
        return self.by(voter).commit_vote(
            self.id, round_index, self.commitment(round_index, voter, approve, score, digest))

    def reveal(self, round_index: int, voter: LocalAccount, approve: bool,
               score: int = 0) -> TxResult:
        return self.by(voter).reveal_vote(self.id, round_index,
                                          self.opening(round_index, voter, approve, score))

    def logged(self, tx: TxResult, event: str) -> list[dict[str, Any]]:
        """The arguments of every ``event`` log of the transaction, decoded by web3."""
        receipt = self.contract.w3.eth.get_transaction_receipt(tx.tx_hash)
        return [dict(log["args"]) for log in getattr(
            web3_contract(self.contract).events, event)().process_receipt(receipt, errors=DISCARD)]

    # views through the creator's client
    def info(self) -> ExperimentInfo:
        return self.contract.experiment(self.id)

    def state(self) -> RoundState:
        return self.contract.state(self.id)

    def deadline(self) -> int:
        return self.contract.deadline(self.id)

    def model(self) -> tuple[bytes, int]:
        return self.contract.current_model(self.id)

    def tally(self, round_index: int) -> tuple[bool, int, int]:
        """Round ``round_index``'s decision: (accepted, approvals, rejections)."""
        (d,) = self.contract.events(RoundDecided, self.id, round_index)
        return d.accepted, d.approvals, d.rejections

    def completed_events(self) -> list[Any]:
        # Decoded by web3, independently of the client's decoder.
        return list(web3_contract(self.contract).events.ExperimentCompleted().get_logs(
            from_block=0, argument_filters={"experimentId": self.id}))


Make = Callable[..., Exp]


def web3_contract(client: CollectiveLearningClient) -> Contract:
    """web3's own view of the client's contract: an independent encoder and decoder."""
    return client.w3.eth.contract(address=client.address, abi=load_artifact()["abi"])


def block_time(w3: Web3, tx: TxResult) -> int:
    return int(w3.eth.get_block(tx.block_number)["timestamp"])

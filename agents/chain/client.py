"""Typed client for the CollectiveLearning contract.

Transactions are signed locally with an eth-account key and sent raw, so the same
code works on the in-process chain (eth-tester / py-evm), anvil, Hardhat or any
JSON-RPC node. Reverts come back as :class:`ContractRevert` carrying the contract's
custom error name and arguments.

What an agent does every round (:meth:`CollectiveLearningClient.round_status`, the round
transactions, raw log reads) skips web3's contract machinery: calls are encoded and
results decoded with eth-abi, JSON-RPC requests go out raw over one kept-alive
connection, and transactions are built, priced and signed here with the nonce kept
between them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, TypeVar

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from pydantic import BaseModel
from web3 import Web3
from web3.types import BlockIdentifier

from agents.chain.abi import AbiFunction, EventDecoder, load_artifact, word
from agents.chain.erc20 import Erc20
from agents.chain.errors import (
    ChainError,
    ContractRevert,
    ErrorDecoder,
    MalformedEvent,
    node_answer,
)
from agents.chain.logs import (
    ExperimentCancelled,
    ExperimentCompleted,
    ExperimentCreated,
    ExperimentStarted,
    RangedLogs,
    RawLog,
    RoundDecided,
    RoundExpired,
    Topics,
    WeightsProposed,
)
from agents.chain.rpc import rpc_for
from agents.chain.signing import SignedCommit, SignedJoin, SignedProposal, SignedVote, VoteOpening
from agents.chain.transactions import ROUND_CALL_GAS, TxSender
from agents.chain.types import (
    DEFAULT_JOIN_TIMEOUT,
    AccountInfo,
    ExperimentInfo,
    ExperimentOptions,
    RoundState,
    RoundStatus,
    StakeInfo,
    TxResult,
)

log = logging.getLogger(__name__)

_E = TypeVar("_E", bound=BaseModel)
#: A plain experiment's options: public votes, no stake.
PLAIN = ExperimentOptions()

_ZERO_ADDRESS = "0x" + "00" * 20

class CollectiveLearningClient:
    """One account's view of one deployed CollectiveLearning contract."""

    def __init__(self, w3: Web3, address: str, account: LocalAccount | None = None):
        self.w3 = w3
        self.account = account
        abi = load_artifact()["abi"]
        self.address = to_checksum_address(address)
        # Calls are encoded and results decoded here (eth-abi), requests sent raw where the
        # provider speaks JSON-RPC: web3's contract machinery costs more than the request.
        self._rpc = rpc_for(w3, ErrorDecoder(abi))
        self._functions = AbiFunction.all(abi)
        self._events = EventDecoder(abi)
        self._status_calls: dict[tuple[int, str], dict[str, str]] = {}
        self._sender = None if account is None else TxSender(
            self._rpc, account, lambda: self.chain_id)
        self._base_fee: int | None = None  # of the latest status read
        # Log reads: ranged, halved when the node refuses (the limit learned is shared by
        # the clients of other accounts made from this one, as are the creations found).
        self._ranges = RangedLogs(self.logs_once)
        self._created: dict[int, ExperimentCreated] = {}
        #: Where to start looking for an experiment's creation (a block at or before it).
        self.first_block = 0

    # ------------------------------------------------------------------ set-up

    @classmethod
    def deploy(cls, w3: Web3, account: LocalAccount) -> tuple[CollectiveLearningClient, TxResult]:
        artifact = load_artifact()
        sender = TxSender(rpc_for(w3, ErrorDecoder(artifact["abi"])), account,
                          lambda: w3.eth.chain_id)
        result, receipt = sender.transact(None, bytes.fromhex(artifact["bytecode"].removeprefix("0x")))
        if receipt.contract_address is None:
            raise ChainError(f"deployment {result.tx_hash} created no contract")
        return cls(w3, receipt.contract_address, account), result

    def with_account(self, account: LocalAccount) -> CollectiveLearningClient:
        other = CollectiveLearningClient(self.w3, self.address, account)
        other._ranges.max_blocks = self._ranges.max_blocks
        other._created, other.first_block = self._created, self.first_block
        return other

    def check_deployed(self) -> None:
        """Raises :class:`ChainError` unless contract code is at the address."""
        try:
            code = self.w3.eth.get_code(self.address)
        except Exception as exc:  # noqa: BLE001 - any transport error means unreachable
            raise ChainError(f"cannot reach the chain: {exc}") from None
        if len(code) == 0:
            raise ChainError(f"no contract code at {self.address}")

    @cached_property
    def chain_id(self) -> int:
        return self.w3.eth.chain_id

    # ------------------------------------------------------------- transactions

    def create_experiment(
        self,
        learners: list[str],
        threshold_bps: int,
        num_rounds: int,
        proposal_timeout: int,
        voting_timeout: int,
        initial_cid: str,
        initial_digest: bytes,
        metadata_cid: str = "",
        join_timeout: int = DEFAULT_JOIN_TIMEOUT,
        options: ExperimentOptions = PLAIN,
    ) -> tuple[int, TxResult]:
        """Creates an experiment (``Joining`` until every learner joins); returns its id
        and the transaction. A reward pool is deposited with it (ETH sent along; an ERC-20
        approved to the contract first)."""
        data = self._functions["createExperiment"].encode(
            [to_checksum_address(a) for a in learners], threshold_bps, num_rounds,
            proposal_timeout, voting_timeout, initial_cid, initial_digest, metadata_cid,
            join_timeout, options.as_call_arg())
        value = self._deposit(options, options.reward_pool)
        result, receipt = self._sender_or_fail().transact(self.address, data, value=value)
        for entry in receipt.logs:
            if entry.topics and entry.topics[0] == self._events.topic["ExperimentCreated"]:
                with node_answer("ExperimentCreated log"):
                    _, fields = self._events.decode(entry)
                    return fields["experiment_id"], result
        raise ChainError(f"transaction {result.tx_hash} created no experiment")

    def join(self, experiment_id: int) -> TxResult:
        """Joins the experiment as this client's account (a listed learner consenting),
        depositing the stake its terms ask for."""
        options = self.experiment_created(experiment_id).options
        value = self._deposit(options, options.stake)
        return self._round_call("join", experiment_id, value=value)

    def withdraw(self, experiment_id: int) -> TxResult:
        """Withdraws what a finished (completed or cancelled) staked experiment owes this
        client's account: its stake less penalties, plus its share of the pool."""
        return self._round_call("withdraw", experiment_id)

    def join_by_sig(self, signed: SignedJoin) -> TxResult:
        """Submits a learner's signed join (this client pays the gas)."""
        return self._round_call("joinBySig", signed.experiment_id, signed.learner_index,
                                signed.r, signed.vs)

    def cancel(self, experiment_id: int) -> TxResult:
        """Cancels an experiment whose join deadline passed with a learner missing."""
        return self._round_call("cancel", experiment_id)

    def propose(self, experiment_id: int, round_index: int, cid: str, digest: bytes) -> TxResult:
        return self._round_call("propose", experiment_id, round_index, cid, digest)

    def vote(self, experiment_id: int, round_index: int, digest: bytes, approve: bool,
             score: int) -> TxResult:
        """A public vote on the proposal of ``round_index`` whose digest is ``digest``."""
        return self._round_call("vote", experiment_id, round_index, digest, approve, score)

    def commit_vote(self, experiment_id: int, round_index: int, commitment: bytes) -> TxResult:
        """A sealed vote's commitment (see :func:`agents.chain.signing.vote_commitment`)."""
        return self._round_call("commitVote", experiment_id, round_index, commitment)

    def reveal_vote(self, experiment_id: int, round_index: int,
                    opening: VoteOpening) -> TxResult:
        """Opens this account's commitment: its vote counts from now on."""
        return self._round_call("revealVote", experiment_id, round_index, opening.approve,
                                opening.score, opening.salt)

    def decide(self, experiment_id: int, round_index: int) -> TxResult:
        return self._round_call("decide", experiment_id, round_index)

    def expire(self, experiment_id: int, round_index: int) -> TxResult:
        return self._round_call("expire", experiment_id, round_index)

    def cast_votes_by_sig(self, experiment_id: int, round_index: int, digest: bytes,
                          learners: Sequence[str], votes: Sequence[SignedVote],
                          gas: int | None = None) -> TxResult:
        """Submits learners' signed votes on the proposal ``digest`` in one transaction
        (this client pays the gas: ``gas``, or the node's estimate, see
        :func:`estimated_gas_limit`); votes already on chain are skipped (``VoteSkipped``).
        ``learners`` is the experiment's learner list (the contract checks its hash)."""
        return self._round_call("castVotesBySig", experiment_id, round_index, digest,
                                _addresses(learners), [v.as_call_arg() for v in votes],
                                gas=gas)

    def commit_votes_by_sig(self, experiment_id: int, round_index: int,
                            learners: Sequence[str], commits: Sequence[SignedCommit],
                            gas: int | None = None) -> TxResult:
        """Submits learners' signed commitments in one transaction (as
        :meth:`cast_votes_by_sig`: commitments already on chain are skipped)."""
        return self._round_call("commitVotesBySig", experiment_id, round_index,
                                _addresses(learners), [c.as_call_arg() for c in commits],
                                gas=gas)

    def reveal_votes(self, experiment_id: int, round_index: int, learners: Sequence[str],
                     reveals: Sequence[tuple[int, VoteOpening]],
                     gas: int | None = None) -> TxResult:
        """Reveals committed votes, ``(learner index, opening)`` each, in one transaction
        (anyone holding an opening may reveal it; reveals already on chain are skipped)."""
        return self._round_call("revealVotes", experiment_id, round_index,
                                _addresses(learners),
                                [opening.as_call_arg(index) for index, opening in reveals],
                                gas=gas)

    def propose_by_sig(self, proposal: SignedProposal) -> TxResult:
        """Submits a proposer's signed proposal (this client pays the gas, as estimated)."""
        return self._round_call("proposeBySig", proposal.experiment_id, proposal.round,
                                proposal.cid, proposal.digest, proposal.r, proposal.vs,
                                gas=None)

    def _round_call(self, name: str, *args: Any, gas: int | None = ROUND_CALL_GAS,
                    value: int = 0) -> TxResult:
        """A per-round transaction, priced from the base fee of the latest status read
        (``gas=None``: its limit from the node's estimate)."""
        data = self._functions[name].encode(*args)
        return self._sender_or_fail().send(self.address, data, gas, self._base_fee, value)

    def _deposit(self, options: ExperimentOptions, amount: int) -> int:
        """Prepares a deposit of ``amount`` under ``options``: the wei to send along (ETH),
        or 0 once the contract may pull the amount of the ERC-20 (approved here)."""
        if amount == 0 or options.in_eth:
            return amount
        token = Erc20(self._rpc, options.token)
        sender = self._sender_or_fail()
        if token.allowance(sender.account.address, self.address) < amount:
            sender.send(options.token, token.approve_data(self.address, amount), None,
                        self._base_fee)
        return 0

    def _sender_or_fail(self) -> TxSender:
        if self._sender is None:
            raise ChainError("this client has no account to send transactions from")
        return self._sender

    # -------------------------------------------------------------------- views

    def experiment(self, experiment_id: int, block: BlockIdentifier = "latest") -> ExperimentInfo:
        (values,) = self._view("getExperiment", block, experiment_id)
        return ExperimentInfo(**dict(zip(ExperimentInfo.model_fields, values)))

    def state(self, experiment_id: int, block: BlockIdentifier = "latest") -> RoundState:
        (state,) = self._view("state", block, experiment_id)
        with node_answer("state"):
            return RoundState(state)

    def round_status(self, experiment_id: int, account: str | None = None) -> RoundStatus:
        """Round, state, deadline, current model, whether ``account`` (default: this
        client's) voted, and the block's time and base fee: one call, so all from one block
        (separate reads at "latest" could straddle a transaction that moves the round)."""
        if account is None:
            account = self.account.address if self.account is not None else _ZERO_ADDRESS
        key = (experiment_id, account)
        call = self._status_calls.get(key)
        if call is None:
            data = self._functions["roundStatus"].encode(experiment_id, account)
            call = self._status_calls[key] = {"to": self.address, "data": "0x" + data.hex()}
        ((round_index, state, deadline, digest, model_round, voted, joined, timestamp,
          base_fee, committed, proposal_digest),) = self._functions["roundStatus"].decode(
            self._rpc.call(call, "latest"))
        self._base_fee = base_fee
        with node_answer("roundStatus"):
            state = RoundState(state)
        # Values typed by the ABI decoder: no validation needed on this hot path.
        return RoundStatus.model_construct(
            round=round_index, state=state, deadline=deadline, model_digest=digest,
            model_round=model_round, voted=voted, joined=joined, timestamp=timestamp,
            base_fee=base_fee, committed=committed, proposal_digest=proposal_digest)

    def balance(self, account: str, token: str | None = None) -> int:
        """What ``account`` holds: wei, or units of the ERC-20 ``token``."""
        if token is None:
            return self._rpc.balance(account)
        return Erc20(self._rpc, token).balance_of(account)

    def stake_of(self, experiment_id: int) -> StakeInfo:
        """The money side of a staked experiment: token, amounts, pool, shares so far."""
        (values,) = self._view("stakeOf", "latest", experiment_id)
        return StakeInfo(**dict(zip(StakeInfo.model_fields, values)))

    def account_of(self, experiment_id: int, account: str) -> AccountInfo:
        """One learner's penalties, shares and what a withdrawal pays it now."""
        (values,) = self._view("accountOf", "latest", experiment_id, account)
        return AccountInfo(**dict(zip(AccountInfo.model_fields, values)))

    def deadline(self, experiment_id: int) -> int:
        (deadline,) = self._view("deadline", "latest", experiment_id)
        return int(deadline)

    def current_model(self, experiment_id: int,
                      block: BlockIdentifier = "latest") -> tuple[bytes, int]:
        """The current model's digest and round (0: initial; r + 1: proposal of round r)."""
        digest, model_round = self._view("currentModel", block, experiment_id)
        return bytes(digest), int(model_round)

    def proposal_digest(self, experiment_id: int) -> bytes:
        (digest,) = self._view("proposalDigest", "latest", experiment_id)
        return bytes(digest)

    def learner_index(self, experiment_id: int, account: str) -> int | None:
        (index,) = self._view("learnerIndex", "latest", experiment_id, account)
        return None if index < 0 else int(index)

    def vote_of(self, experiment_id: int, voter: str) -> tuple[bool, bool]:
        voted, approved = self._view("voteOf", "latest", experiment_id, voter)
        return bool(voted), bool(approved)

    def chain_time(self) -> int:
        """The latest block's timestamp: the clock deadlines are measured on."""
        return self._rpc.latest_timestamp()

    def experiment_count(self, block: BlockIdentifier = "latest") -> int:
        (count,) = self._view("experimentCount", block)
        return int(count)

    def _view(self, name: str, block: BlockIdentifier, *args: Any) -> tuple[Any, ...]:
        """Calls the view ``name`` at ``block``: its decoded results."""
        function = self._functions[name]
        call = {"to": self.address, "data": "0x" + function.encode(*args).hex()}
        return function.decode(self._rpc.call(call, block))

    # ------------------------------------------------------------------- events

    def experiment_created(self, experiment_id: int,
                           from_block: int | None = None) -> ExperimentCreated:
        """The experiment's creation event, searched from ``from_block`` (default: the
        client's :attr:`first_block`) and remembered once found. Through a provider that
        caps ``eth_getLogs`` ranges, its block is found by bisecting ``experimentCount()``
        over past blocks where the node can (not by scanning the whole chain)."""
        known = self._created.get(experiment_id)
        if known is not None:
            return known
        first = self.first_block if from_block is None else from_block
        entry = self.first_log(
            [self._events.topic["ExperimentCreated"], word(experiment_id)], first,
            self.block_number(), lambda block: self.experiment_count(block) >= experiment_id)
        if entry is None:
            raise ContractRevert("UnknownExperiment", {"experimentId": experiment_id})
        created = self._created[experiment_id] = self._typed(ExperimentCreated, entry)
        return created

    def start(self, experiment_id: int, from_block: int = 0
              ) -> ExperimentStarted | ExperimentCancelled | None:
        """How joining ended: the experiment's start, its cancellation, or ``None`` while
        it is joining."""
        for kind in (ExperimentStarted, ExperimentCancelled):
            for event in self.events(kind, experiment_id, None, from_block):
                return event
        return None

    def completion(self, experiment_id: int) -> ExperimentCompleted | None:
        """The experiment's completion, or ``None`` while it runs."""
        start = self.experiment_created(experiment_id).block_number
        for event in self.events(ExperimentCompleted, experiment_id, None, start):
            return event
        return None

    def withdrawal(self, experiment_id: int, account: str, block: int) -> int | None:
        """What ``account`` withdrew from the experiment in ``block`` (its FundsWithdrawn
        event, decoded strictly), or ``None`` if it withdrew nothing there."""
        topics = [self._events.topic["FundsWithdrawn"], word(experiment_id),
                  bytes.fromhex(to_checksum_address(account)[2:]).rjust(32, b"\0")]
        for entry in self.raw_logs(topics, block, block):
            if not entry.removed:
                _, fields = self._events.decode(entry, experiment_id)
                return int(fields["amount"])
        return None

    def block_number(self) -> int:
        return self._rpc.block_number()

    def block_timestamps(self, blocks: Sequence[int]) -> dict[int, int]:
        """Each block's timestamp, many per request (JSON-RPC batches) where the node
        speaks JSON-RPC over HTTP."""
        return self._rpc.timestamps(blocks)

    def senders_and_gas(self, tx_hashes: Sequence[str]) -> dict[str, tuple[str, int]]:
        """Each mined transaction's sender and gas used, many per request."""
        return self._rpc.senders_and_gas(tx_hashes)

    def transactions(self, tx_hashes: Sequence[str]) -> dict[str, tuple[str | None, bytes]]:
        """Each mined transaction's recipient and calldata, many per request (the audit
        reads openings of sealed votes, which no event carries, from the calldata)."""
        return self._rpc.transactions(tx_hashes)

    @property
    def batch_requests(self) -> int:
        """JSON-RPC batches this client's connection sent."""
        return self._rpc.batches

    def event_topic(self, event: str) -> bytes:
        """An event's first topic (the hash of its signature)."""
        return self._events.topic[event]

    @property
    def log_queries(self) -> int:
        """``eth_getLogs`` requests this client's connection sent (refused ones too)."""
        return self._ranges.queries

    def raw_logs(self, topics: Topics, from_block: int, to_block: int | None = None, *,
                 chunk_blocks: int | None = None) -> list[RawLog]:
        """The contract's logs in blocks ``from_block``..``to_block`` matching ``topics``
        (per position: ``None`` for any, a topic, or a list of alternatives), undecoded.
        Without ``to_block``, the latest block's number is read first: the read is pinned
        to it, however many queries it takes. Ranges go out in chunks of at most
        ``chunk_blocks``, halved while the node refuses them (:mod:`agents.chain.logs`)."""
        last = self.block_number() if to_block is None else to_block
        return self._ranges.read(topics, from_block, last, chunk_blocks=chunk_blocks)

    def first_log(self, topics: Topics, from_block: int, to_block: int,
                  reached: Callable[[int], bool] | None = None) -> RawLog | None:
        """The first log matching ``topics`` in the range, found without scanning it chunk
        by chunk where possible (see :meth:`agents.chain.logs.RangedLogs.first`)."""
        return self._ranges.first(topics, from_block, to_block, reached)

    def logs_once(self, topics: Topics, from_block: int, to_block: int) -> list[RawLog]:
        """One ``eth_getLogs`` request, not split: :meth:`raw_logs` is what to call."""
        return self._rpc.logs(self.address, topics, from_block, to_block)

    def proposal_from_log(self, entry: RawLog) -> WeightsProposed:
        """Decodes a WeightsProposed log (as followers receive them); any other log, or a
        malformed one, is a :class:`~agents.chain.errors.MalformedEvent`."""
        return self._typed(WeightsProposed, entry)

    def closing_from_log(self, entry: RawLog) -> RoundDecided | RoundExpired:
        """Decodes a RoundDecided or RoundExpired log (as followers receive them); any
        other log, or a malformed one, is a :class:`~agents.chain.errors.MalformedEvent`."""
        expired = entry.topics and entry.topics[0] == self.event_topic("RoundExpired")
        return self._typed(RoundExpired, entry) if expired else self._typed(RoundDecided, entry)

    def events(self, kind: type[_E], experiment_id: int, round_index: int | None = None,
               from_block: int = 0) -> list[_E]:
        """The experiment's events of one kind (``WeightsProposed``, ``VoteCast``,
        ``RoundDecided``, ``LearnerJoined``, ...; of ``round_index`` only if given, for the
        kinds indexed by round), in chain order, decoded and typed."""
        topics: list[Any] = [self._events.topic[kind.__name__], word(experiment_id)]
        if round_index is not None:
            topics.append(word(round_index))
        return [self._typed(kind, e) for e in self.raw_logs(topics, from_block) if not e.removed]

    def _typed(self, kind: type[_E], entry: RawLog) -> _E:
        name, fields = self._events.decode(entry)
        if name != kind.__name__:
            raise MalformedEvent(name, f"not a {kind.__name__} log")
        for key in _DIGESTS & fields.keys():
            fields[key] = bytes.fromhex(fields[key].removeprefix("0x"))
        fields.setdefault("experiment_id", int.from_bytes(entry.topics[1], "big"))
        return kind(**fields, tx_hash=entry.tx_hash, block_number=entry.block_number,
                    log_index=entry.log_index)


def _addresses(addresses: Sequence[str]) -> list[str]:
    return [to_checksum_address(a) for a in addresses]


#: The event decoder's fields that are digests (0x-hex there, bytes in the typed events).
_DIGESTS = {"digest", "model_digest", "initial_digest"}

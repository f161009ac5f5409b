"""An experiment's whole history rebuilt from the contract's events alone, for audits.

:class:`HistoryReader` asks the node for the contract's logs of one experiment in block
ranges (all fifteen event types in one ``eth_getLogs`` per range, filtered by the contract and
the experiment-id topic; the range halves when a node refuses it as too large), decodes
them locally, and fetches each distinct block's header once (timestamps) and each distinct
transaction's receipt once (sender, gas), in JSON-RPC batches; and the calldata of each
transaction that logged a vote (``eth_getTransactionByHash``, batched): a sealed vote's
opening (its salt) and the digest a public vote names are in no event. It reads incrementally:
:meth:`HistoryReader.update` fetches only what landed since the last call (the explorer
relies on it).

:class:`agents.audit.history.History` is plain data (pydantic), so the checks of
:mod:`agents.audit.checks` run as well on a history read from a chain as on one doctored by
hand in a test.

Nothing here trusts an agent or a results file; the contract's views are read once, at
the audited block, only to cross-check what the events say. Nor does anything here trust
the contract: logs are decoded by :class:`agents.audit.logs.EventDecoder`, and a log that
does not decode, a view that fails, a round number no contract could reach, are recorded
in the history for the checks to name. Memory grows with the logs the node returns, never
with a number a log or a view claims.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import to_checksum_address

from agents.audit.errors import AuditError, UnknownExperiment, check_experiment_id
from agents.audit.history import (
    ChainView,
    Commit,
    Completion,
    Decision,
    EventRef,
    ExperimentConfig,
    Expiry,
    FetchStats,
    History,
    Join,
    MalformedLog,
    PenaltyRecord,
    Proposal,
    RoundHistory,
    Skip,
    Transfer,
    TxRecord,
    TxRole,
    Vote,
    VoteCall,
)
from agents.chain.abi import AbiFunction, EventDecoder, load_artifact
from agents.chain.client import CollectiveLearningClient
from agents.chain.errors import ChainError, ContractRevert, MalformedEvent
from agents.chain.errors import brief as _brief
from agents.chain.logs import DEFAULT_CHUNK_BLOCKS, RawLog
from agents.chain.types import ExperimentOptions

log = logging.getLogger(__name__)

#: The calls whose calldata holds a vote (public) or a vote's opening (sealed).
VOTE_CALLS = ("vote", "castVotesBySig", "revealVote", "revealVotes")


# ----------------------------------------------------------------------------- reader


class HistoryReader:
    """Reads one experiment's events, incrementally, and assembles its :class:`History`."""

    def __init__(self, client: CollectiveLearningClient, experiment_id: int, *,
                 from_block: int = 0, chunk_blocks: int = DEFAULT_CHUNK_BLOCKS):
        self.client = client
        self.experiment_id = check_experiment_id(experiment_id)
        self.chunk_blocks = max(1, chunk_blocks)
        self.stats = FetchStats(from_block=from_block)
        self._decoder = EventDecoder()
        self._first_block = from_block
        self._next_block = from_block
        self._events: list[tuple[str, dict[str, Any], RawLog]] = []
        self._malformed: list[MalformedLog] = []
        self._timestamps: dict[int, int] = {}
        self._receipts: dict[str, tuple[str, int]] = {}
        self._calldata: dict[str, tuple[str | None, bytes]] = {}
        self._view: ChainView | None = None
        self._view_error: str | None = None
        self._located = False
        self.version = 0  # bumped whenever new events arrive

    def update(self, to_block: int | None = None) -> bool:
        """Fetches the events logged since the last update, up to ``to_block`` (default:
        the latest block); returns whether any arrived."""
        started = time.perf_counter()
        latest = self.client.block_number() if to_block is None else to_block
        if latest < self._next_block - 1:  # the chain went back (a reorg, a dev snapshot)
            log.info("the chain is at block %d, behind block %d already read: reading again",
                     latest, self._next_block - 1)
            self._reset()
        if not self._located:
            self._locate(latest)
        before = len(self._events)
        if self._next_block <= latest:
            self._scan(self._next_block, latest)
            self._next_block = latest + 1
        new = self._events[before:]
        self._fetch_details(new)
        self._view, self._view_error = self._read_view(latest)
        self.stats.to_block = latest
        self.stats.blocks, self.stats.receipts = len(self._timestamps), len(self._receipts)
        self.stats.transactions = len(self._calldata)
        self.stats.batches = self.client.batch_requests
        self.stats.seconds += time.perf_counter() - started
        if new:
            self.version += 1
        return bool(new)

    @property
    def view(self) -> ChainView | None:
        """The contract's views at the last update's block."""
        return self._view

    def history(self) -> History:
        """The experiment as read so far (call :meth:`update` first)."""
        created = [(f, e) for name, f, e in self._events if name == "ExperimentCreated"]
        if not created:
            broken = next((m for m in self._malformed if m.event == "ExperimentCreated"), None)
            if broken is not None:
                raise AuditError(f"experiment {self.experiment_id}'s ExperimentCreated event "
                                 f"(block {broken.block_number}, tx {broken.tx_hash}) is "
                                 f"malformed: {broken.reason}")
            raise self._unknown()
        fields, entry = created[0]
        options = ExperimentOptions.model_construct(**fields["options"])  # as logged
        config = ExperimentConfig(**{**fields, "options": options}, **self._ref(entry))
        malformed = [m.model_copy(update={"timestamp": self._timestamps.get(m.block_number, 0)})
                     for m in self._malformed]
        return History(chain_id=self.client.chain_id, contract=self.client.address,
                       config=config, view=self._view, view_error=self._view_error,
                       malformed=malformed, stats=self.stats.model_copy(),
                       **_assemble(config, self._events, self._ref, self._receipts,
                                   _VoteCalls(self.client.address, self._calldata)))

    # ------------------------------------------------------------------ internals

    def _unknown(self) -> ChainError:
        try:
            count = self.client.experiment_count()
        except Exception as exc:  # noqa: BLE001 - a hostile contract's answer can break
            # web3's and eth-abi's decoders in many ways: the count is only for the message
            log.debug("experimentCount() failed: %s", exc)
            has = "its experimentCount() view fails"
        else:
            has = f"it has {count} experiment{'' if count == 1 else 's'}"
        return UnknownExperiment(f"experiment {self.experiment_id} does not exist in contract "
                                 f"{self.client.address} ({has})")

    def _reset(self) -> None:
        self._next_block = self._first_block
        self._events.clear()
        self._malformed.clear()
        self._timestamps.clear()
        self._receipts.clear()
        self._calldata.clear()
        self._located = False
        self.version += 1

    def _locate(self, latest: int) -> None:
        """Starts the scan at the experiment's creation block, found by the client's
        search for its first creation log (one query where the node takes the range,
        else a bisection of ``experimentCount()`` or a chunked scan)."""
        self._located = True
        topics = [self._decoder.topic["ExperimentCreated"], self.experiment_id.to_bytes(32, "big")]
        queries = self.client.log_queries
        try:
            found = self.client.first_log(topics, self._next_block, latest,
                                          self._created_by)
        finally:
            self.stats.log_queries += self.client.log_queries - queries
        if found is None:
            raise self._unknown()
        self._next_block = max(self._next_block, found.block_number)
        self.stats.from_block = self._next_block

    def _created_by(self, block: int) -> bool:
        """Whether the contract's ``experimentCount()`` says the experiment exists at
        ``block`` (a hint only: the scan still reads the creation event itself)."""
        return self.client.experiment_count(block) >= self.experiment_id

    def _scan(self, first: int, last: int) -> None:
        topics = self._decoder.topics(self.experiment_id)
        queries = self.client.log_queries
        try:
            entries = self.client.raw_logs(topics, first, last, chunk_blocks=self.chunk_blocks)
        finally:
            self.stats.log_queries += self.client.log_queries - queries
        for entry in entries:
            if entry.removed:
                continue
            try:
                name, fields = self._decoder.decode(entry, self.experiment_id)
            except MalformedEvent as exc:
                self._malformed.append(MalformedLog(event=exc.event, reason=exc.reason,
                                                    **self._ref(entry)))
                continue
            self._events.append((name, fields, entry))
        self.stats.logs += len(entries)

    def _fetch_details(self, events: Iterable[tuple[str, dict[str, Any], RawLog]]) -> None:
        blocks = sorted({e.block_number for _, _, e in events} - set(self._timestamps))
        txs = sorted({e.tx_hash for _, _, e in events} - set(self._receipts))
        self._timestamps.update(self.client.block_timestamps(blocks))
        self._receipts.update(self.client.senders_and_gas(txs))
        votes = sorted({e.tx_hash for name, _, e in events if name == "VoteCast"}
                       - set(self._calldata))
        if votes:
            self._calldata.update(self.client.transactions(votes))

    def _read_view(self, block: int) -> tuple[ChainView | None, str | None]:
        """The contract's views at ``block``, or why they could not be read (a revert, an
        answer that does not decode: the checks report it if the experiment exists)."""
        try:
            info = self.client.experiment(self.experiment_id, block)
            digest, model_round = self.client.current_model(self.experiment_id, block)
        except ChainError as exc:
            if "cannot reach" in str(exc) and not isinstance(exc, ContractRevert):
                raise
            return None, _brief(exc)
        except Exception as exc:  # noqa: BLE001 - eth-abi and web3 fail in many ways on a
            # hostile contract's return or revert data; it is a finding, not a crash
            return None, _brief(exc)
        return ChainView(block_number=block, round=info.round, model_digest="0x" + digest.hex(),
                         model_round=model_round, num_learners=info.num_learners,
                         num_rounds=info.num_rounds, joined=info.joined, staked=info.staked,
                         reveal_timeout=info.reveal_timeout), None

    def _ref(self, entry: RawLog) -> dict[str, Any]:
        return {"tx_hash": entry.tx_hash, "block_number": entry.block_number,
                "log_index": entry.log_index,
                "timestamp": self._timestamps.get(entry.block_number, 0)}


@functools.cache
def _vote_functions() -> dict[bytes, tuple[str, list[str]]]:
    """The vote and reveal functions by selector: their names and input types."""
    functions = AbiFunction.all(load_artifact()["abi"])
    return {functions[n].selector: (n, functions[n].inputs) for n in VOTE_CALLS}


class _VoteCalls:
    """Decodes the votes and openings that vote and reveal transactions carry in their
    calldata (``vote``, ``castVotesBySig``, ``revealVote``, ``revealVotes``), per voter."""

    def __init__(self, contract: str, calldata: dict[str, tuple[str | None, bytes]]):
        self.contract = contract
        self.calldata = calldata
        self.functions = _vote_functions()
        self._decoded: dict[str, tuple[dict[str, VoteCall], str | None, bool]] = {}

    def find(self, tx_hash: str, voter: str, sender: str
             ) -> tuple[VoteCall | None, str | None, bool]:
        """(the call's vote for ``voter``, why there is none, whether the transaction was
        sent to the contract itself)."""
        if tx_hash not in self._decoded:
            self._decoded[tx_hash] = self._decode(tx_hash, sender)
        calls, problem, direct = self._decoded[tx_hash]
        call = calls.get(voter)
        if call is None and problem is None:
            problem = f"transaction {tx_hash} holds no vote of {voter}"
        return call, (None if call is not None else problem), direct

    def _decode(self, tx_hash: str, sender: str) -> tuple[dict[str, VoteCall], str | None, bool]:
        if tx_hash not in self.calldata:
            return {}, f"transaction {tx_hash} was not read", True
        to, data = self.calldata[tx_hash]
        if to is None or to.lower() != self.contract.lower():
            return {}, (f"transaction {tx_hash} calls {to}, not the contract: its calldata "
                        f"cannot be read"), False
        function = self.functions.get(bytes(data[:4]))
        if function is None:
            return {}, (f"transaction {tx_hash} calls selector 0x{bytes(data[:4]).hex()}, "
                        f"not a vote or reveal"), True
        name, inputs = function
        try:
            args = abi_decode(inputs, bytes(data[4:]), strict=False)
        except Exception as exc:  # noqa: BLE001 - eth-abi fails in many ways on any bytes
            return {}, f"transaction {tx_hash}'s {name} calldata does not decode: {_brief(exc)}", True
        out: dict[str, VoteCall] = {}
        eid, rnd = args[0], args[1]
        try:
            if name == "vote":
                out[sender] = VoteCall(function=name, experiment_id=eid, round=rnd,
                                       digest="0x" + bytes(args[2]).hex(), approve=args[3],
                                       score=args[4])
            elif name == "revealVote":
                out[sender] = VoteCall(function=name, experiment_id=eid, round=rnd,
                                       approve=args[2], score=args[3],
                                       salt="0x" + bytes(args[4]).hex())
            elif name == "castVotesBySig":
                learners, digest = args[3], "0x" + bytes(args[2]).hex()
                for index, approve, score, _, _ in args[4]:
                    if index < len(learners):
                        out.setdefault(to_checksum_address(learners[index]), VoteCall(
                            function=name, experiment_id=eid, round=rnd, digest=digest,
                            approve=approve, score=score))
            else:  # revealVotes
                learners = args[2]
                for index, approve, score, salt in args[3]:
                    if index < len(learners):
                        out.setdefault(to_checksum_address(learners[index]), VoteCall(
                            function=name, experiment_id=eid, round=rnd, approve=approve,
                            score=score, salt="0x" + bytes(salt).hex()))
        except Exception as exc:  # noqa: BLE001 - odd values (non-address words...)
            return {}, f"transaction {tx_hash}'s {name} calldata is malformed: {_brief(exc)}", True
        return out, None, True


def _assemble(config: ExperimentConfig, events: list[tuple[str, dict[str, Any], RawLog]],
              ref: Any, receipts: dict[str, tuple[str, int]],
              calls: _VoteCalls | None = None) -> dict[str, Any]:
    """Joins, the start or cancellation, rounds and the completion from the decoded
    events, in log order: one row per round number the events name, whatever the numbers
    (the checks judge them)."""
    index: dict[str, int] = {}
    for i, a in enumerate(config.learners):
        index.setdefault(a, i)  # a listed twice (never by the contract) keeps its first place
    rounds: dict[int, RoundHistory] = {}
    completion: Completion | None = None
    joins: list[Join] = []
    once: dict[str, EventRef] = {}  # ExperimentStarted, ExperimentCancelled
    duplicates: list[MalformedLog] = []
    created = 0
    deposits: list[Transfer] = []
    withdrawals: list[Transfer] = []

    def row(r: int) -> RoundHistory:
        if r not in rounds:
            proposer = config.proposer(r)
            rounds[r] = RoundHistory(round=r, proposer=proposer,
                                     proposer_index=index.get(proposer, -1))
        return rounds[r]

    tx_events: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    tx_round: dict[str, int] = {}
    for name, f, entry in events:
        if name == "ExperimentCreated":
            created += 1
            if created > 1:
                duplicates.append(MalformedLog(event=name, reason="logged again", **ref(entry)))
            continue
        if name == "LearnerJoined":
            sender, gas = receipts.get(entry.tx_hash, ("", 0))
            joins.append(Join(learner=f["learner"], learner_index=index.get(f["learner"], -1),
                              sender=sender, gas_used=gas, **ref(entry)))
            continue
        if name in ("ExperimentStarted", "ExperimentCancelled"):
            if name in once:
                duplicates.append(MalformedLog(event=name, reason="logged again", **ref(entry)))
            else:
                once[name] = EventRef(**ref(entry))
            continue
        if name in ("Deposited", "FundsWithdrawn"):
            (deposits if name == "Deposited" else withdrawals).append(
                Transfer(account=f["account"], amount=f["amount"], **ref(entry)))
            continue
        if name == "ExperimentCompleted":
            if completion is None:
                completion = Completion(**f, **ref(entry))
            else:
                duplicates.append(MalformedLog(event=name, reason="logged again", **ref(entry)))
            continue
        rr = row(f["round"])
        tx_events.setdefault(entry.tx_hash, []).append((name, f))
        tx_round.setdefault(entry.tx_hash, rr.round)
        if name == "WeightsProposed":
            if rr.proposal is not None:
                rr.duplicates.append(name)
            else:
                rr.proposal = Proposal(proposer=f["proposer"], cid=f["cid"], digest=f["digest"],
                                       **ref(entry))
        elif name == "VoteCast":
            call, problem, direct = None, None, True
            if calls is not None:
                call, problem, direct = calls.find(entry.tx_hash, f["voter"],
                                                   receipts.get(entry.tx_hash, ("", 0))[0])
            rr.votes.append(Vote(voter=f["voter"], learner_index=index.get(f["voter"], -1),
                                 approve=f["approve"], score=f["score"], call=call,
                                 call_problem=problem, call_direct=direct, **ref(entry)))
        elif name == "VoteCommitted":
            rr.commits.append(Commit(voter=f["voter"], learner_index=index.get(f["voter"], -1),
                                     commitment=f["commitment"], **ref(entry)))
        elif name == "CommitsComplete":
            if rr.commits_complete is not None:
                rr.duplicates.append(name)
            else:
                rr.commits_complete = EventRef(**ref(entry))
        elif name == "VoteSkipped":
            rr.skipped.append(Skip(voter=f["voter"], **ref(entry)))
        elif name == "PenaltyTaken":
            rr.penalties.append(PenaltyRecord(
                learner=f["learner"], learner_index=index.get(f["learner"], -1),
                round=f["round"], reason=f["reason"], amount=f["amount"], **ref(entry)))
        elif name == "RoundDecided":
            if rr.decision is not None:
                rr.duplicates.append(name)
            else:
                rr.decision = Decision(accepted=f["accepted"], approvals=f["approvals"],
                                       rejections=f["rejections"], **ref(entry))
        elif name == "RoundExpired":
            if rr.expiry is not None:
                rr.duplicates.append(name)
            else:
                rr.expiry = Expiry(**ref(entry))

    first_ref: dict[str, dict[str, Any]] = {}
    for _, _, entry in events:
        first_ref.setdefault(entry.tx_hash, ref(entry))
    for tx_hash, logged in tx_events.items():
        sender, gas = receipts.get(tx_hash, ("", 0))
        names = [n for n, _ in logged]
        at = first_ref[tx_hash]
        rounds[tx_round[tx_hash]].txs.append(TxRecord(
            hash=tx_hash, role=_role(logged, sender, config.options.sealed), sender=sender,
            block_number=at["block_number"], timestamp=at["timestamp"], gas_used=gas,
            events=len(logged), decides="VoteCast" in names and "RoundDecided" in names))
    return {"rounds": [rounds[r] for r in sorted(rounds)], "completion": completion,
            "joins": joins, "start": once.get("ExperimentStarted"),
            "cancellation": once.get("ExperimentCancelled"), "duplicates": duplicates,
            "deposits": deposits, "withdrawals": withdrawals}


def _role(logged: list[tuple[str, dict[str, Any]]], sender: str, sealed: bool) -> TxRole:
    names = [n for n, _ in logged]
    if "WeightsProposed" in names:
        proposer = next(f["proposer"] for n, f in logged if n == "WeightsProposed")
        return "propose" if proposer == sender else "proposeBySig"
    votes = [f for n, f in logged if n == "VoteCast"]
    commits = [f for n, f in logged if n == "VoteCommitted"]
    skipped = [f for n, f in logged if n == "VoteSkipped"]
    if commits:
        return ("commitVote" if len(commits) == 1 and not skipped
                and commits[0]["voter"] == sender else "commitVotesBySig")
    if votes and sealed:
        return ("revealVote" if len(votes) == 1 and not skipped
                and votes[0]["voter"] == sender else "revealVotes")
    if votes or skipped:
        return ("vote" if len(votes) == 1 and not skipped
                and votes[0]["voter"] == sender else "castVotesBySig")
    return "expire" if "RoundExpired" in names else "decide"


def read_history(client: CollectiveLearningClient, experiment_id: int, *, from_block: int = 0,
                 chunk_blocks: int = DEFAULT_CHUNK_BLOCKS) -> History:
    """The experiment's whole history up to the latest block, from its events."""
    reader = HistoryReader(client, experiment_id, from_block=from_block, chunk_blocks=chunk_blocks)
    reader.update()
    return reader.history()

"""``colearn bench gas``: the gas of every CollectiveLearning call by learner count, beside
OpenZeppelin's Governor.

For each learner count n (default 5, 20 and 100) a fresh deployment runs, on one chain:

- every learner **joins** (``join``, in learner order); the last join starts round 0
  (a join is the median of the others, the last one is reported on its own);
- round 0, a **first round**: a proposal and n - 1 direct votes. Its first writes of zero
  storage slots (the ballot word, the second digest slot) cost more, so it is reported on
  its own;
- round 1, a **steady round** done the same way: ``propose``, ``vote`` (the median of the
  votes that do not decide) and the deciding vote (the last one, which decides and
  advances the round);
- round 2, a **relayed round**: a proposal, then one ``castVotesBySig`` batch of the n - 1
  learners' EIP-712 signed votes (the batch decides the round); a signed vote costs the
  batch's gas / (n - 1), rounded up;
- round 3: no proposal; ``expire`` after the proposal deadline;
- round 4: a proposal and one vote; ``decide`` after the voting deadline.

Then the v2 terms (PROTOCOL.md), each on an experiment of its own with the same n:

- **sealed votes** (reveal timeout set, no stake): round 0 relayed, as below (it writes the
  storage slots for the first time: not reported); round 1, a **sealed round** of direct calls: ``propose``, n - 1 ``commitVote`` (the last one logs
  CommitsComplete and opens the reveal window) and n - 1 ``revealVote`` (the last one
  decides); round 2, relayed: one ``commitVotesBySig`` batch of the n - 1 signed
  commitments and one ``revealVotes`` batch of the n - 1 openings (a signed commitment and
  a reveal cost their batch's gas / (n - 1), rounded up);
- **stake in ETH** and **stake in an ERC-20** (``contracts/bench/BenchERC20.sol``,
  OpenZeppelin's ERC20): the creator deposits a reward pool with ``createExperiment``, every
  learner but the last joins depositing the stake (ETH sent along; the token approved
  first, in a transaction of its own not counted in the join), five at most: a join does
  not depend on n.

Every vote approves, with the score 0.9731 (:data:`SCORE`). Gas is each receipt's
``gasUsed``: the whole transaction, 21,000 intrinsic gas and calldata included.

Beside it, OpenZeppelin's Governor (``contracts/bench/GovernorBench.sol``:
GovernorSettings, GovernorCountingSimple, GovernorVotes over an ERC20Votes token, compiled
with the same settings) with the same n accounts as voters: each holds one token and
delegates to itself, one proposal is made, and once voting opens every voter calls
``castVote(proposalId, For)``. The first voter pays for the first write of the proposal's
``forVotes``; a typical voter's castVote is the median of the others.

Gas does not depend on timing, so the figures are the same on every run and, with the
same EVM rules, on every chain (the in-process chain runs py-evm's latest fork), but for a
few gas in the batches: signatures depend on the chain id, and calldata costs more for
non-zero bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any, Literal

from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from web3 import Web3
from web3.contract import Contract
from web3.types import Wei

from agents.chain.abi import load_artifact
from agents.chain.client import CollectiveLearningClient
from agents.chain.errors import ChainError, ErrorDecoder
from agents.chain.network import (
    advance_time,
    connect,
    derive_accounts,
    fund_accounts,
    is_in_process,
)
from agents.chain.rpc import Receipt, rpc_for
from agents.chain.signing import VoteOpening, sign_commit, sign_vote, vote_commitment
from agents.chain.transactions import TxSender
from agents.chain.types import ExperimentOptions, score_to_fixed

DEFAULT_LEARNER_COUNTS = (5, 20, 100)
#: The contract's bounds on a learner list (3: a steady round needs a vote that does not decide).
MIN_LEARNERS, MAX_LEARNERS = 3, 500
SCORE = score_to_fixed(0.9731)
THRESHOLD_BPS = 5000
ROUNDS = 10  # more than the five measured: the last round's completion event stays out
TIMEOUT = 3600
# A CIDv1 (raw leaves, sha256) of the length the weight stores produce.
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
ACCOUNT_LABEL = "colearn-gas-bench"
GOVERNOR_ARTIFACT = "GovernorBench"
TOKEN_ARTIFACT = "BenchERC20"
STAKE = 10**15  # wei (or token units) each learner deposits in the staked experiments
REWARD_POOL = 10**16
STAKED_JOINS = 5  # joins measured in each staked experiment (never the last, which starts it)
GOVERNOR_FOR = 1  # GovernorCountingSimple's VoteType.For
GOVERNOR_ACTIVE = 1  # IGovernor.ProposalState.Active
# Gas limits (set rather than estimated: the in-process chain's estimates run the call many
# times). A batch of signed votes uses under 10k a vote.
BATCH_GAS_BASE, BATCH_GAS_PER_VOTE = 500_000, 20_000
GOVERNOR_CALL_GAS = 500_000  # gas limit of delegate, propose and castVote (they use < 200k)

# Bounds (upper bounds on gas; the report checks them, the tests assert them).
JOIN_MAX = 50_000
VOTE_MAX = 45_000
ROUND_OF_FIVE_MAX = 200_000
SIGNED_VOTE_AT_100_MAX = 10_000
SEALED_ROUND_OF_FIVE_MAX = 400_000
SIGNED_COMMIT_AT_100_MAX = 12_000
VOTE_SPREAD_MAX = 0.05


class LearningGas(BaseModel):
    """CollectiveLearning's gas with n learners (see the module's docstring)."""

    create: int
    join: int
    last_join: int  # starts round 0
    first_round_direct: int
    propose: int
    vote: int
    deciding_vote: int
    expire: int
    decide: int
    signed_vote: int
    batch: int
    round_direct: int
    round_relayed: int
    # v2: sealed votes (an experiment with a reveal timeout)
    commit: int  # direct commitVote, not the last
    last_commit: int  # opens the reveal window (CommitsComplete)
    reveal: int  # direct revealVote, not the deciding one
    deciding_reveal: int
    sealed_round_direct: int  # proposal + n - 1 commitments + n - 1 reveals
    signed_commit: int  # in a commitVotesBySig batch of n - 1
    commit_batch: int
    reveal_in_batch: int  # in a revealVotes batch of n - 1 (the batch decides)
    reveal_batch: int
    sealed_round_relayed: int  # proposal + both batches
    # v2: stake
    create_staked_eth: int  # with the reward pool deposited in ETH
    join_eth: int  # depositing the stake in ETH
    create_staked_erc20: int  # with the reward pool pulled from the token
    join_erc20: int  # depositing the stake in the ERC-20 (its approve not counted)


class GovernorGas(BaseModel):
    """OpenZeppelin Governor's castVote with n voters."""

    cast_vote_first: int
    cast_vote: int


class GasColumn(BaseModel):
    n_learners: int
    collective_learning: LearningGas
    governor: GovernorGas


class Bound(BaseModel):
    name: str
    description: str
    measured: float
    limit: float
    met: bool


class GasReport(BaseModel):
    benchmark: Literal["gas"] = "gas"
    chain: str
    score: int
    columns: list[GasColumn]
    bounds: list[Bound]
    all_bounds_met: bool
    seconds: float


# ------------------------------------------------------------------- measuring


def _digest(round_index: int) -> bytes:
    return hashlib.sha256(f"weights of round {round_index}".encode()).digest()


def _direct_round(clients: list[CollectiveLearningClient], experiment_id: int,
                  round_index: int) -> tuple[int, list[int]]:
    """A proposal and every other learner's direct vote: the proposal's gas and the votes'."""
    n = len(clients)
    proposer = round_index % n
    propose = clients[proposer].propose(experiment_id, round_index, CID, _digest(round_index))
    votes = [clients[i].vote(experiment_id, round_index, _digest(round_index), True,
                             SCORE).gas_used
             for i in range(n) if i != proposer]
    return propose.gas_used, votes


def _relayed_round(clients: list[CollectiveLearningClient], experiment_id: int,
                   round_index: int) -> tuple[int, int]:
    """A proposal, then one batch of every other learner's signed vote: both gas figures."""
    n = len(clients)
    proposer = round_index % n
    propose = clients[proposer].propose(experiment_id, round_index, CID, _digest(round_index))
    relayer = clients[proposer]
    accounts = [c.account for c in clients if c.account is not None]
    assert len(accounts) == n  # every client here sends transactions
    votes = [sign_vote(a, chain_id=relayer.chain_id, contract=relayer.address,
                       experiment_id=experiment_id, round_index=round_index, learner_index=i,
                       digest=_digest(round_index), approve=True, score=SCORE)
             for i, a in enumerate(accounts) if i != proposer]
    learners = [a.address for a in accounts]
    batch = relayer.cast_votes_by_sig(experiment_id, round_index, _digest(round_index),
                                      learners, votes,
                                      gas=BATCH_GAS_BASE + BATCH_GAS_PER_VOTE * len(votes))
    return propose.gas_used, batch.gas_used


def measure_collective_learning(w3: Web3, accounts: list[LocalAccount]) -> LearningGas:
    """Deploys the contract, creates an experiment of ``accounts`` and runs its first five
    rounds (see the module's docstring)."""
    n = len(accounts)
    deployed, _ = CollectiveLearningClient.deploy(w3, accounts[0])
    experiment_id, created = deployed.create_experiment(
        [a.address for a in accounts], THRESHOLD_BPS, ROUNDS, TIMEOUT, TIMEOUT, CID, _digest(-1),
        join_timeout=TIMEOUT)
    clients = [deployed.with_account(a) for a in accounts]
    joins = [c.join(experiment_id) for c in clients]  # the last one starts round 0

    first_propose, first_votes = _direct_round(clients, experiment_id, 0)
    propose, votes = _direct_round(clients, experiment_id, 1)
    relayed_propose, batch = _relayed_round(clients, experiment_id, 2)

    advance_time(w3, TIMEOUT + 1)
    expire = clients[0].expire(experiment_id, 3)

    clients[4 % n].propose(experiment_id, 4, CID, _digest(4))
    clients[(4 + 1) % n].vote(experiment_id, 4, _digest(4), True, SCORE)
    advance_time(w3, TIMEOUT + 1)
    decide = clients[0].decide(experiment_id, 4)
    v2 = {**measure_sealed(deployed, accounts), **measure_stake(w3, deployed, accounts)}

    return LearningGas(
        create=created.gas_used,
        join=int(statistics.median(j.gas_used for j in joins[:-1])),
        last_join=joins[-1].gas_used,
        first_round_direct=first_propose + sum(first_votes),
        propose=propose,
        vote=int(statistics.median(votes[:-1])),
        deciding_vote=votes[-1],
        expire=expire.gas_used,
        decide=decide.gas_used,
        signed_vote=math.ceil(batch / (n - 1)),
        batch=batch,
        round_direct=propose + sum(votes),
        round_relayed=relayed_propose + batch,
        **v2,
    )


def _salt(round_index: int, learner: int) -> bytes:
    return hashlib.sha256(f"salt {round_index} {learner}".encode()).digest()


def _sealed_round(clients: list[CollectiveLearningClient], experiment_id: int,
                  round_index: int) -> tuple[int, list[int], list[int]]:
    """A proposal, every other learner's direct commitment, then its direct reveal: the
    proposal's gas, the commitments' and the reveals'."""
    n = len(clients)
    proposer = round_index % n
    digest = _digest(round_index)
    propose = clients[proposer].propose(experiment_id, round_index, CID, digest)
    voters = [i for i in range(n) if i != proposer]
    openings = {i: VoteOpening(approve=True, score=SCORE, salt=_salt(round_index, i))
                for i in voters}
    commits = [clients[i].commit_vote(experiment_id, round_index, vote_commitment(
        experiment_id, round_index, clients[i].account.address, digest,  # type: ignore[union-attr]
        openings[i])).gas_used for i in voters]
    reveals = [clients[i].reveal_vote(experiment_id, round_index, openings[i]).gas_used
               for i in voters]
    return propose.gas_used, commits, reveals


def _sealed_relayed_round(clients: list[CollectiveLearningClient], experiment_id: int,
                          round_index: int) -> tuple[int, int, int]:
    """A proposal, one batch of the other learners' signed commitments, one batch of their
    openings: the three gas figures."""
    n = len(clients)
    proposer = round_index % n
    digest = _digest(round_index)
    relayer = clients[proposer]
    propose = relayer.propose(experiment_id, round_index, CID, digest)
    accounts = [c.account for c in clients if c.account is not None]
    learners = [a.address for a in accounts]
    voters = [i for i in range(n) if i != proposer]
    openings = {i: VoteOpening(approve=True, score=SCORE, salt=_salt(round_index, i))
                for i in voters}
    commits = [sign_commit(accounts[i], chain_id=relayer.chain_id, contract=relayer.address,
                           experiment_id=experiment_id, round_index=round_index,
                           learner_index=i, commitment=vote_commitment(
                               experiment_id, round_index, learners[i], digest, openings[i]))
               for i in voters]
    gas = BATCH_GAS_BASE + BATCH_GAS_PER_VOTE * len(voters)
    commit_batch = relayer.commit_votes_by_sig(experiment_id, round_index, learners, commits,
                                               gas=gas)
    reveal_batch = relayer.reveal_votes(experiment_id, round_index, learners,
                                        [(i, openings[i]) for i in voters], gas=gas)
    return propose.gas_used, commit_batch.gas_used, reveal_batch.gas_used


def measure_sealed(deployed: CollectiveLearningClient,
                   accounts: list[LocalAccount]) -> dict[str, int]:
    """An experiment with sealed votes: its first, steady and relayed rounds."""
    n = len(accounts)
    experiment_id, _ = deployed.create_experiment(
        [a.address for a in accounts], THRESHOLD_BPS, ROUNDS, TIMEOUT, TIMEOUT, CID,
        _digest(-2), join_timeout=TIMEOUT, options=ExperimentOptions(reveal_timeout=TIMEOUT))
    clients = [deployed.with_account(a) for a in accounts]
    for c in clients:
        c.join(experiment_id)
    _sealed_relayed_round(clients, experiment_id, 0)  # first writes of the slots
    propose, commits, reveals = _sealed_round(clients, experiment_id, 1)
    relayed_propose, commit_batch, reveal_batch = _sealed_relayed_round(
        clients, experiment_id, 2)
    return {
        "commit": int(statistics.median(commits[:-1])), "last_commit": commits[-1],
        "reveal": int(statistics.median(reveals[:-1])), "deciding_reveal": reveals[-1],
        "sealed_round_direct": propose + sum(commits) + sum(reveals),
        "signed_commit": math.ceil(commit_batch / (n - 1)), "commit_batch": commit_batch,
        "reveal_in_batch": math.ceil(reveal_batch / (n - 1)), "reveal_batch": reveal_batch,
        "sealed_round_relayed": relayed_propose + commit_batch + reveal_batch,
    }


def measure_stake(w3: Web3, deployed: CollectiveLearningClient,
                  accounts: list[LocalAccount]) -> dict[str, int]:
    """Two staked experiments, in ETH and in an ERC-20: their creation (the reward pool
    deposited) and the joins (the stake deposited; the median)."""
    out: dict[str, int] = {}
    compiled = load_artifact(TOKEN_ARTIFACT)["contracts"]["BenchERC20"]
    token = _deploy(w3, accounts[0], compiled, [a.address for a in accounts],
                    STAKE + REWARD_POOL)
    for kind, address in (("eth", None), ("erc20", token.address)):
        options = ExperimentOptions(stake=STAKE, reward_pool=REWARD_POOL,
                                    missed_proposal_penalty=STAKE // 10,
                                    proposer_share_bps=5000,
                                    **({"token": address} if address else {}))
        creator = deployed.with_account(accounts[0])
        experiment_id, created = creator.create_experiment(
            [a.address for a in accounts], THRESHOLD_BPS, ROUNDS, TIMEOUT, TIMEOUT, CID,
            _digest(-3), join_timeout=TIMEOUT, options=options)
        joins = [deployed.with_account(a).join(experiment_id).gas_used
                 for a in accounts[:min(STAKED_JOINS, len(accounts) - 1)]]
        out[f"create_staked_{kind}"] = created.gas_used
        out[f"join_{kind}"] = int(statistics.median(joins))
    return out


def _send(w3: Web3, account: LocalAccount, to: str | None, data: bytes | str,
          gas: int | None = None) -> Receipt:
    """Signs and sends a call of a benchmark contract (``to``) or its deployment
    (``to=None``), the one way the package sends transactions; its receipt."""
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x"))
    sender = TxSender(rpc_for(w3, ErrorDecoder([])), account, lambda: w3.eth.chain_id)
    try:
        return sender.transact(to, data, gas)[1]
    except ChainError as exc:
        raise ChainError(f"benchmark transaction failed: {exc}") from None


def _deploy(w3: Web3, account: LocalAccount, compiled: dict[str, Any], *args: Any) -> Contract:
    factory = w3.eth.contract(abi=compiled["abi"], bytecode=compiled["bytecode"])
    receipt = _send(w3, account, None, factory.constructor(*args).data_in_transaction)
    assert receipt.contract_address is not None
    return w3.eth.contract(address=to_checksum_address(receipt.contract_address),
                           abi=compiled["abi"])


def measure_governor(w3: Web3, accounts: list[LocalAccount]) -> GovernorGas:
    """Deploys the token and the Governor, lets every account delegate to itself and
    vote For on one proposal (see the module's docstring)."""
    compiled = load_artifact(GOVERNOR_ARTIFACT)["contracts"]
    token = _deploy(w3, accounts[0], compiled["BenchToken"], [a.address for a in accounts])
    for account in accounts:
        _send(w3, account, token.address, token.encode_abi("delegate", [account.address]),
              GOVERNOR_CALL_GAS)
    governor = _deploy(w3, accounts[0], compiled["BenchGovernor"], token.address)
    proposal = ([token.address], [0], [b""])
    description = "gas bench"
    _send(w3, accounts[0], governor.address,
          governor.encode_abi("propose", [*proposal, description]), GOVERNOR_CALL_GAS)
    proposal_id = governor.functions.hashProposal(
        *proposal, keccak(text=description)).call()
    for _ in range(3):  # voting opens after a delay of one block: mine until it is open
        if governor.functions.state(proposal_id).call() == GOVERNOR_ACTIVE:
            break
        advance_time(w3, 1)
    else:
        raise ChainError("the Governor's proposal never became active")
    cast_vote = governor.encode_abi("castVote", [proposal_id, GOVERNOR_FOR])
    gas = [_send(w3, a, governor.address, cast_vote, GOVERNOR_CALL_GAS).gas_used
           for a in accounts]
    return GovernorGas(cast_vote_first=gas[0], cast_vote=int(statistics.median(gas[1:])))


# ---------------------------------------------------------------------- bounds


def _bounds(columns: list[GasColumn]) -> list[Bound]:
    """The bounds that the measured learner counts allow checking."""
    by_n = {c.n_learners: c.collective_learning for c in columns}
    direct = max(max(g.vote, g.deciding_vote) for g in by_n.values())
    ratio = max(c.collective_learning.vote / c.governor.cast_vote for c in columns)
    join = max(max(g.join, g.last_join) for g in by_n.values())
    bounds = [
        Bound(name="join_max", measured=join, limit=JOIN_MAX, met=join <= JOIN_MAX,
              description="join (the last one, which starts round 0, included), every n"),
        Bound(name="direct_vote_max", measured=direct, limit=VOTE_MAX, met=direct <= VOTE_MAX,
              description="direct vote (deciding vote included), steady rounds, every n"),
        Bound(name="vote_vs_governor_cast_vote", measured=round(ratio, 4), limit=1.0,
              met=ratio < 1.0,
              description="our vote / Governor's typical castVote, the largest over n "
                          "(below 1: ours is cheaper)"),
    ]
    if 5 in by_n:
        total = by_n[5].round_direct
        bounds.append(Bound(name="round_of_5_max", measured=total, limit=ROUND_OF_FIVE_MAX,
                            met=total <= ROUND_OF_FIVE_MAX,
                            description="steady round of 5 learners: proposal + 4 direct votes"))
    if 5 in by_n:
        sealed = by_n[5].sealed_round_direct
        bounds.append(Bound(name="sealed_round_of_5_max", measured=sealed,
                            limit=SEALED_ROUND_OF_FIVE_MAX,
                            met=sealed <= SEALED_ROUND_OF_FIVE_MAX,
                            description="steady sealed round of 5 learners: proposal + 4 "
                                        "commitments + 4 reveals"))
    if 100 in by_n:
        commit = by_n[100].signed_commit
        bounds.append(Bound(name="signed_commit_in_batch_of_99_max", measured=commit,
                            limit=SIGNED_COMMIT_AT_100_MAX,
                            met=commit <= SIGNED_COMMIT_AT_100_MAX,
                            description="signed commitment inside a batch of 99 (n = 100)"))
    if 100 in by_n:
        signed = by_n[100].signed_vote
        bounds.append(Bound(name="signed_vote_in_batch_of_99_max", measured=signed,
                            limit=SIGNED_VOTE_AT_100_MAX, met=signed <= SIGNED_VOTE_AT_100_MAX,
                            description="signed vote inside a batch of 99 (n = 100)"))
    if 5 in by_n and 100 in by_n:
        spread = abs(by_n[100].vote - by_n[5].vote) / by_n[5].vote
        bounds.append(Bound(name="vote_spread_5_to_100", measured=round(spread, 4),
                            limit=VOTE_SPREAD_MAX, met=spread <= VOTE_SPREAD_MAX,
                            description="vote gas at n = 100 relative to n = 5"))
    return bounds


# ------------------------------------------------------------------------- run


def check_learner_counts(learner_counts: Sequence[int]) -> list[int]:
    """The learner counts, sorted; :class:`ValueError` for an empty, repeated or out of
    range one."""
    counts = sorted(learner_counts)
    if not counts:
        raise ValueError("give at least one learner count")
    if len(set(counts)) != len(counts):
        raise ValueError(f"repeated learner count in {list(learner_counts)}")
    for n in counts:
        if not MIN_LEARNERS <= n <= MAX_LEARNERS:
            raise ValueError(f"learner count {n} is outside {MIN_LEARNERS}..{MAX_LEARNERS}")
    return counts


def _fund(w3: Web3, addresses: list[str], amount_wei: int = 10**19) -> None:
    """:func:`agents.chain.network.fund_accounts` with the gas limit of a transfer given: the
    in-process chain's gas estimates are slow."""
    if not w3.eth.accounts:
        fund_accounts(w3, addresses, amount_wei)  # raises its explanation
    for address in addresses:
        tx_hash = w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "to": address, "value": Wei(amount_wei),
             "gas": 21_000})
        w3.eth.wait_for_transaction_receipt(tx_hash)


def _chain_name(w3: Web3, rpc: str | None) -> str:
    if rpc is not None:
        return rpc
    vm = w3.provider.ethereum_tester.backend.chain.get_vm()  # type: ignore[attr-defined]
    return f"in-process eth-tester (py-evm, {vm.fork})"


def run_gas_bench(learner_counts: Sequence[int] = DEFAULT_LEARNER_COUNTS,
                  rpc: str | None = None) -> GasReport:
    """Measures every learner count on one chain (in process unless ``rpc`` names a dev
    node with a funded unlocked account) and checks the bounds."""
    counts = check_learner_counts(learner_counts)
    started = time.perf_counter()
    w3 = connect(rpc)
    accounts = derive_accounts(counts[-1], 0, label=ACCOUNT_LABEL)
    _fund(w3, [a.address for a in accounts])
    columns = [GasColumn(n_learners=n,
                         collective_learning=measure_collective_learning(w3, accounts[:n]),
                         governor=measure_governor(w3, accounts[:n]))
               for n in counts]
    bounds = _bounds(columns)
    return GasReport(chain=_chain_name(w3, None if is_in_process(w3) else rpc), score=SCORE,
                     columns=columns, bounds=bounds, all_bounds_met=all(b.met for b in bounds),
                     seconds=round(time.perf_counter() - started, 2))


# ---------------------------------------------------------------------- report

_ROWS: list[tuple[str, str]] = [
    ("create", "create (n learners; first of a deployment)"),
    ("join", "join"),
    ("last_join", "last join (starts round 0)"),
    ("first_round_direct", "first round: proposal + n - 1 votes"),
    ("propose", "propose"),
    ("vote", "vote"),
    ("deciding_vote", "deciding vote"),
    ("expire", "expire (after the proposal deadline)"),
    ("decide", "decide (after the voting deadline)"),
    ("signed_vote", "signed vote in a batch of n - 1"),
    ("batch", "batch of n - 1 signed votes"),
    ("round_direct", "round: proposal + n - 1 votes"),
    ("round_relayed", "round: proposal + batch of n - 1"),
    ("commit", "commitVote"),
    ("last_commit", "last commitVote (opens the reveals)"),
    ("reveal", "revealVote"),
    ("deciding_reveal", "deciding revealVote"),
    ("sealed_round_direct", "sealed round: proposal + n - 1 commits + n - 1 reveals"),
    ("signed_commit", "signed commitment in a batch of n - 1"),
    ("commit_batch", "batch of n - 1 signed commitments"),
    ("reveal_in_batch", "reveal in a batch of n - 1"),
    ("reveal_batch", "batch of n - 1 reveals"),
    ("sealed_round_relayed", "sealed round: proposal + both batches"),
    ("create_staked_eth", "create, reward pool in ETH"),
    ("join_eth", "join, stake in ETH"),
    ("create_staked_erc20", "create, reward pool in an ERC-20"),
    ("join_erc20", "join, stake in an ERC-20 (approve apart)"),
]


def _marks(report: GasReport) -> dict[tuple[str, int], bool]:
    """Which cells a bound covers, and whether it is met there."""
    bounds = {b.name: b.met for b in report.bounds}
    marks: dict[tuple[str, int], bool] = {}
    for column in report.columns:
        n, ours = column.n_learners, column.collective_learning
        marks[("vote", n)] = ours.vote <= VOTE_MAX and ours.vote < column.governor.cast_vote
        marks[("deciding_vote", n)] = ours.deciding_vote <= VOTE_MAX
        marks[("join", n)] = ours.join <= JOIN_MAX
        marks[("last_join", n)] = ours.last_join <= JOIN_MAX
    if "round_of_5_max" in bounds:
        marks[("round_direct", 5)] = bounds["round_of_5_max"]
    if "signed_vote_in_batch_of_99_max" in bounds:
        marks[("signed_vote", 100)] = bounds["signed_vote_in_batch_of_99_max"]
    if "sealed_round_of_5_max" in bounds:
        marks[("sealed_round_direct", 5)] = bounds["sealed_round_of_5_max"]
    if "signed_commit_in_batch_of_99_max" in bounds:
        marks[("signed_commit", 100)] = bounds["signed_commit_in_batch_of_99_max"]
    return marks


def _cell(value: int, mark: bool | None) -> str:
    text = f"{value:,}"
    if mark is None:
        return text
    return f"{text} [green]✓[/]" if mark else f"[red]{text} ✗[/]"


def print_gas_report(report: GasReport, console: Console) -> None:
    """The report as rich tables: gas by operation and learner count, then the bounds."""
    table = Table(title=f"gas by learner count n, steady rounds (round >= 1)\n"
                        f"{report.chain}, vote scores {report.score / 10**18:g}")
    table.add_column("operation")
    for column in report.columns:
        table.add_column(f"n = {column.n_learners}", justify="right")
    marks = _marks(report)
    for key, label in _ROWS:
        table.add_row(label, *(_cell(getattr(c.collective_learning, key),
                                     marks.get((key, c.n_learners)))
                               for c in report.columns))
    table.add_section()
    table.add_row("Governor castVote (first voter)",
                  *(f"{c.governor.cast_vote_first:,}" for c in report.columns))
    table.add_row("Governor castVote (typical voter)",
                  *(f"{c.governor.cast_vote:,}" for c in report.columns))
    console.print(table)

    bounds = Table(title="bounds")
    for name, justify in (("bound", "left"), ("measured", "right"), ("limit", "right"),
                          ("met", "center")):
        bounds.add_column(name, justify=justify)  # type: ignore[arg-type]
    for b in report.bounds:
        fmt = "{:,.0f}" if b.limit >= 100 else "{:.4g}"
        bounds.add_row(b.description, fmt.format(b.measured), fmt.format(b.limit),
                       "[green]yes[/]" if b.met else "[red]no[/]")
    console.print(bounds)
    console.print(f"all bounds met: {'[green]yes[/]' if report.all_bounds_met else '[red]no[/]'}"
                  f" · {report.seconds:.1f} s")


def bench_gas(as_json: bool = False, learner_counts: Sequence[int] = DEFAULT_LEARNER_COUNTS,
              rpc: str | None = None) -> GasReport:
    """``colearn bench gas [--json]``: measures, prints the report (JSON on stdout when
    asked) and returns it. The bounds are reported, never enforced."""
    report = run_gas_bench(learner_counts, rpc)
    if as_json:
        sys.stdout.write(json.dumps(report.model_dump(), indent=2) + "\n")
    else:
        print_gas_report(report, Console())
    return report

"""``colearn bench gas``'s measure of CollectiveLearning: the plain experiment's five
rounds, then the sealed and the staked experiments (see :mod:`agents.bench.gas`)."""

from __future__ import annotations

import hashlib
import math
import statistics

from eth_account.signers.local import LocalAccount
from pydantic import BaseModel
from web3 import Web3

from agents.bench.gas.openzeppelin import deploy_token
from agents.chain.client import CollectiveLearningClient
from agents.chain.network import advance_time
from agents.chain.signing import VoteOpening, sign_commit, sign_vote, vote_commitment
from agents.chain.types import ExperimentOptions, score_to_fixed

SCORE = score_to_fixed(0.9731)
THRESHOLD_BPS = 5000
ROUNDS = 10  # more than the five measured: the last round's completion event stays out
TIMEOUT = 3600
# A CIDv1 (raw leaves, sha256) of the length the weight stores produce.
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
STAKE = 10**15  # wei (or token units) each learner deposits in the staked experiments
REWARD_POOL = 10**16
STAKED_JOINS = 5  # joins measured in each staked experiment (never the last, which starts it)
# Gas limits (set rather than estimated: the in-process chain's estimates run the call many
# times). A batch of signed votes uses under 10k a vote.
BATCH_GAS_BASE, BATCH_GAS_PER_VOTE = 500_000, 20_000


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
    token = deploy_token(w3, accounts[0], [a.address for a in accounts], STAKE + REWARD_POOL)
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

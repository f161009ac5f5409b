"""Version 2 stake, through CollectiveLearningClient, on both dev chains: deposits at
creation (the reward pool) and at join (the stake), in ETH and in an ERC-20 (a test token
compiled here, see tests/tokens.py), refused deposits (``WrongValue``, fee on transfer,
signed ETH joins), penalties, withdrawals equal to ``account_of(...).owed`` to the wei, and
refunds after a cancellation."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from experiments import (
    JOIN_TIMEOUT,
    PROPOSAL_TIMEOUT,
    VOTING_TIMEOUT,
    Exp,
    Make,
    creation_args,
    reverts,
)
from tokens import Token
from web3 import Web3

from agents.chain.client import CollectiveLearningClient
from agents.chain.network import advance_time
from agents.chain.signing import sign_join
from agents.chain.types import ExperimentOptions, Penalty, RoundState, TxResult

ETH = 10**18
BPS = 10_000


def terms(**changes: Any) -> ExperimentOptions:
    base = {"stake": ETH, "reward_pool": 3 * ETH, "missed_proposal_penalty": 2 * ETH // 10,
            "unrevealed_vote_penalty": ETH // 10, "rejected_proposal_penalty": 3 * ETH // 10,
            "rejection_share_bps": 5000, "proposer_share_bps": 4000}
    return ExperimentOptions(**{**base, **changes})


def paid(w3: Web3, tx: TxResult) -> int:
    """What the transaction's sender paid for its gas, in wei."""
    receipt = w3.eth.get_transaction_receipt(tx.tx_hash)
    return receipt["gasUsed"] * receipt["effectiveGasPrice"]


def owed(options: ExperimentOptions, pool: int, penalties: int, proposer_shares: tuple[int, int],
         voter_shares: tuple[int, int]) -> int:
    """PROTOCOL.md's payout of one learner: its stake less its penalties, plus its shares of
    the pool's two parts (``(mine, total)`` each), rounded down."""
    proposer_part = pool * options.proposer_share_bps // BPS
    voter_part = pool - proposer_part
    amount = options.stake - penalties
    if proposer_shares[1]:
        amount += proposer_part * proposer_shares[0] // proposer_shares[1]
    if voter_shares[1]:
        amount += voter_part * voter_shares[0] // voter_shares[1]
    return amount


def withdraw_eth(e: Exp, account: LocalAccount, expected: int) -> TxResult:
    w3 = e.contract.w3
    assert e.contract.account_of(e.id, account.address).owed == expected or \
        account.address == e.contract.account.address  # the creator's share is not in accountOf
    before = w3.eth.get_balance(account.address)
    tx = e.by(account).withdraw(e.id)
    assert e.logged(tx, "FundsWithdrawn") == [{"experimentId": e.id, "account": account.address,
                                               "amount": expected}]
    assert w3.eth.get_balance(account.address) == before + expected - paid(w3, tx)
    return tx


def test_eth_stake_deposits_penalties_and_withdrawals(
        chain: Web3, chain_kind: str, make: Make, outsider: LocalAccount,
        gas_figures: dict[str, dict[str, int]]) -> None:
    options = terms()
    contract_balance = lambda: chain.eth.get_balance(e.contract.address)
    e = make(n=3, threshold=5000, rounds=3, options=options, join=False)
    l0, l1, l2 = e.learners
    assert e.logged(e.created, "Deposited") == [
        {"experimentId": e.id, "account": e.contract.account.address, "amount": 3 * ETH}]
    assert contract_balance() == 3 * ETH
    stake = e.contract.stake_of(e.id)
    assert (stake.stake, stake.reward_pool, stake.pool, stake.token) == (
        ETH, 3 * ETH, 3 * ETH, "0x" + "00" * 20)
    assert e.info().staked

    for wrong in (0, ETH - 1, ETH + 1):
        with reverts("WrongValue", expected=ETH, given=wrong):
            e.by(l0)._round_call("join", e.id, value=wrong)
    signed = sign_join(l0, chain_id=e.contract.chain_id, contract=e.contract.address,
                       experiment_id=e.id, learner_index=0)
    with reverts("SignedJoinNeedsToken", experimentId=e.id):
        e.by(outsider).join_by_sig(signed)
    with reverts("NotFinished", experimentId=e.id, current=int(RoundState.JOINING)):
        e.by(l0).withdraw(e.id)
    joins = [e.join(a) for a in e.learners]
    assert e.logged(joins[0], "Deposited") == [
        {"experimentId": e.id, "account": l0.address, "amount": ETH}]
    assert contract_balance() == 6 * ETH

    # round 0: accepted (l0 earns a proposer share, l1 and l2 a voter share each)
    e.propose(0)
    e.cast(0, [True, True])
    # round 1: rejected by both voters: l1 pays the rejected-proposal penalty
    e.propose(1)
    decided = e.cast(1, [False, False])[-1]
    (penalty,) = e.logged(decided, "PenaltyTaken")
    assert penalty == {"experimentId": e.id, "learner": l1.address, "round": 1,
                       "reason": int(Penalty.REJECTED_PROPOSAL), "amount": 3 * ETH // 10}
    # round 2: l2 misses its slot
    advance_time(chain, PROPOSAL_TIMEOUT)
    with reverts("NotFinished", current=int(RoundState.PROPOSAL_TIMED_OUT)):
        e.by(l0).withdraw(e.id)
    expired = e.by(outsider).expire(e.id, 2)
    (penalty,) = e.logged(expired, "PenaltyTaken")
    assert (penalty["learner"], penalty["reason"], penalty["amount"]) == (
        l2.address, int(Penalty.MISSED_PROPOSAL), 2 * ETH // 10)
    assert e.state() is RoundState.COMPLETED

    pool = 3 * ETH + 5 * ETH // 10
    stake = e.contract.stake_of(e.id)
    assert (stake.pool, stake.proposer_shares, stake.voter_shares) == (pool, 1, 4)
    accounts = {a.address: e.contract.account_of(e.id, a.address) for a in e.learners}
    assert [(x.penalties, x.proposer_shares, x.voter_shares) for x in accounts.values()] == [
        (0, 1, 1), (3 * ETH // 10, 0, 1), (2 * ETH // 10, 0, 2)]
    expected = {l0.address: owed(options, pool, 0, (1, 1), (1, 4)),
                l1.address: owed(options, pool, 3 * ETH // 10, (0, 1), (1, 4)),
                l2.address: owed(options, pool, 2 * ETH // 10, (0, 1), (2, 4))}
    assert {a: x.owed for a, x in accounts.items()} == expected
    withdrawals = [withdraw_eth(e, a, expected[a.address]) for a in e.learners]
    for a in e.learners:
        assert e.contract.account_of(e.id, a.address).withdrawn
        assert e.contract.account_of(e.id, a.address).owed == 0
        with reverts("NothingToWithdraw", experimentId=e.id, account=a.address):
            e.by(a).withdraw(e.id)
    # every share was earned: the creator gets nothing back, outsiders neither
    for account in (e.contract.account, outsider):
        with reverts("NothingToWithdraw", account=account.address):
            e.by(account).withdraw(e.id)
    dust = 6 * ETH - sum(expected.values())
    assert contract_balance() == dust and 0 <= dust < 3 * 2  # under a wei per share and part

    figures = {"join (ETH stake)": joins[0].gas_used,
               "join (ETH stake, last)": joins[-1].gas_used,
               "create (3 learners, ETH pool)": e.created.gas_used,
               "withdraw (ETH)": withdrawals[0].gas_used,
               "expire (penalty)": expired.gas_used, "deciding vote (penalty)": decided.gas_used}
    gas_figures.setdefault(chain_kind, {}).update(figures)
    print(f"\nstake gas on {chain_kind}: {figures}")


def test_the_creator_gets_back_the_parts_nobody_earned(chain: Web3, make: Make,
                                                       outsider: LocalAccount) -> None:
    options = terms(proposer_share_bps=2500)
    e = make(n=2, threshold=5000, rounds=1, options=options)
    e.propose(0)
    e.cast(0, [False])  # rejected: no proposer share; l1 earns the whole voter part
    pool = 3 * ETH + 3 * ETH // 10
    creator = e.contract.account
    withdraw_eth(e, creator, pool * 2500 // BPS)
    withdraw_eth(e, e.learners[1], owed(options, pool, 0, (0, 0), (1, 1)))
    withdraw_eth(e, e.learners[0], ETH - 3 * ETH // 10)
    assert chain.eth.get_balance(e.contract.address) == 0


def test_a_cancelled_experiment_refunds_every_deposit(chain: Web3, make: Make,
                                                      outsider: LocalAccount) -> None:
    e = make(n=3, rounds=2, options=terms(), join=False)
    l0, l1, l2 = e.learners
    e.join(l0)
    e.join(l2)
    advance_time(chain, JOIN_TIMEOUT)
    e.by(outsider).cancel(e.id)
    assert e.state() is RoundState.CANCELLED
    assert e.contract.account_of(e.id, l1.address).owed == 0
    withdraw_eth(e, l0, ETH)
    withdraw_eth(e, l2, ETH)
    with reverts("NothingToWithdraw", account=l1.address):  # never joined, never deposited
        e.by(l1).withdraw(e.id)
    withdraw_eth(e, e.contract.account, 3 * ETH)
    assert chain.eth.get_balance(e.contract.address) == 0


def test_plain_experiments_take_no_value(chain: Web3, make: Make,
                                         contract: CollectiveLearningClient,
                                         learners: list[LocalAccount]) -> None:
    args = creation_args([a.address for a in learners[:3]])
    with reverts("WrongValue", expected=0, given=1):
        contract._round_call("createExperiment", *args, ExperimentOptions().as_call_arg(),
                             gas=None, value=1)
    with reverts("WrongValue", expected=3 * ETH, given=ETH):
        contract._round_call("createExperiment", *args, terms().as_call_arg(), gas=None,
                             value=ETH)
    e = make(n=3, rounds=1, join=False)
    with reverts("WrongValue", expected=0, given=5):
        e.by(learners[0])._round_call("join", e.id, value=5)
    e.join_all()
    e.propose(0)
    e.cast(0, [True, True])
    with reverts("NothingToWithdraw", experimentId=e.id, account=learners[0].address):
        e.by(learners[0]).withdraw(e.id)


@pytest.fixture
def token(chain: Web3, outsider: LocalAccount, learners: list[LocalAccount],
          deployer: LocalAccount) -> Token:
    token = Token(chain, outsider)
    for account in (*learners, deployer):
        token.mint(account.address, 10 * ETH)
    return token


def test_erc20_stake_sealed_votes_and_the_unrevealed_penalty(
        chain: Web3, chain_kind: str, make: Make, token: Token, outsider: LocalAccount,
        deployer: LocalAccount, gas_figures: dict[str, dict[str, int]]) -> None:
    options = terms(token=token.address, reveal_timeout=100, proposer_share_bps=0)
    e = make(n=3, threshold=5000, rounds=1, options=options, join=False)
    l0, l1, l2 = e.learners
    assert token.balance_of(e.contract.address) == 3 * ETH
    assert token.balance_of(deployer.address) == 7 * ETH
    with reverts("WrongValue", expected=0, given=ETH):
        e.by(l0)._round_call("join", e.id, value=ETH)
    first = e.join(l0)
    assert token.balance_of(l0.address) == 9 * ETH
    # a signed join pulls the stake from the signer, who approved it
    e.by(l1)._deposit(options, ETH)  # the approval the client makes before a join
    signed = sign_join(l1, chain_id=e.contract.chain_id, contract=e.contract.address,
                       experiment_id=e.id, learner_index=1)
    relayed = e.by(outsider).join_by_sig(signed)
    assert e.logged(relayed, "Deposited") == [
        {"experimentId": e.id, "account": l1.address, "amount": ETH}]
    e.join(l2)
    assert token.balance_of(e.contract.address) == 6 * ETH

    e.propose(0)
    e.commit(0, l1, True)
    e.commit(0, l2, True)
    e.reveal(0, l1, True)  # l2 never reveals
    advance_time(chain, VOTING_TIMEOUT + 100)
    decided = e.by(outsider).decide(e.id, 0)
    assert [(p["learner"], p["reason"], p["amount"]) for p in
            e.logged(decided, "PenaltyTaken")] == [(l2.address, int(Penalty.UNREVEALED_VOTE),
                                                   ETH // 10)]
    (d,) = e.logged(decided, "RoundDecided")
    assert (d["accepted"], d["approvals"], d["rejections"]) == (True, 1, 0)  # 1 of 2: 50%
    pool = 3 * ETH + ETH // 10  # the proposers' part is 0%: l1's one vote earns it all
    expected = {l0.address: ETH, l1.address: ETH + pool, l2.address: ETH - ETH // 10}
    for account in e.learners:
        assert e.contract.account_of(e.id, account.address).owed == expected[account.address]
        before = token.balance_of(account.address)
        withdrawal = e.by(account).withdraw(e.id)
        assert token.balance_of(account.address) == before + expected[account.address]
    assert token.balance_of(e.contract.address) == 0
    gas_figures.setdefault(chain_kind, {}).update({
        "join (ERC-20 stake)": first.gas_used, "join by signature (ERC-20 stake)": relayed.gas_used,
        "withdraw (ERC-20)": withdrawal.gas_used})


def test_a_fee_on_transfer_token_is_refused(chain: Web3, contract: CollectiveLearningClient,
                                            learners: list[LocalAccount],
                                            deployer: LocalAccount, outsider: LocalAccount) -> None:
    fee = Token(chain, outsider, "FeeOnTransferToken")
    fee.mint(deployer.address, 10 * ETH)
    with reverts("FeeOnTransferToken", token=fee.address, expected=3 * ETH,
                 received=3 * ETH - 3 * ETH // 100):
        contract.create_experiment(*creation_args([a.address for a in learners[:3]]),
                                   options=terms(token=fee.address))
    assert fee.balance_of(deployer.address) == 10 * ETH

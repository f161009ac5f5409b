"""The OpenZeppelin contracts beside CollectiveLearning in ``colearn bench gas``: the
Governor measured for comparison (``contracts/bench/GovernorBench.sol``) and the ERC-20 of
the staked experiments (``contracts/bench/BenchERC20.sol``), deployed and called with the
package's transaction sender."""

from __future__ import annotations

import statistics
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from pydantic import BaseModel
from web3 import Web3
from web3.contract import Contract

from agents.chain.abi import load_artifact
from agents.chain.errors import ChainError, ErrorDecoder
from agents.chain.network import advance_time
from agents.chain.rpc import Receipt, rpc_for
from agents.chain.transactions import TxSender

GOVERNOR_ARTIFACT = "GovernorBench"
TOKEN_ARTIFACT = "BenchERC20"
GOVERNOR_FOR = 1  # GovernorCountingSimple's VoteType.For
GOVERNOR_ACTIVE = 1  # IGovernor.ProposalState.Active
GOVERNOR_CALL_GAS = 500_000  # gas limit of delegate, propose and castVote (they use < 200k)


class GovernorGas(BaseModel):
    """OpenZeppelin Governor's castVote with n voters."""

    cast_vote_first: int
    cast_vote: int


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


def deploy_token(w3: Web3, account: LocalAccount, holders: list[str], amount: int) -> Contract:
    """Deploys the benchmark's ERC-20, minting ``amount`` to each of ``holders``."""
    compiled = load_artifact(TOKEN_ARTIFACT)["contracts"]["BenchERC20"]
    return _deploy(w3, account, compiled, holders, amount)


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


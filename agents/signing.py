"""EIP-712 signed votes and proposals, for learners who act through a relayer.

The typed data matches the contract's ``VOTE_TYPEHASH`` and ``PROPOSAL_TYPEHASH`` under
the domain ``CollectiveLearning`` version ``1`` bound to the chain id and the contract's
address, so a signature is good for one round of one experiment on one deployment.
Signatures travel in ERC-2098 short form ``(r, vs)``, as the contract takes them.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from pydantic import BaseModel, ConfigDict

DOMAIN_NAME = "CollectiveLearning"
DOMAIN_VERSION = "1"

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_VOTE_TYPE = [
    {"name": "experimentId", "type": "uint256"},
    {"name": "round", "type": "uint256"},
    {"name": "approve", "type": "bool"},
    {"name": "score", "type": "int256"},
]
_PROPOSAL_TYPE = [
    {"name": "experimentId", "type": "uint256"},
    {"name": "round", "type": "uint256"},
    {"name": "cid", "type": "string"},
    {"name": "digest", "type": "bytes32"},
]


# Signed calls travel as JSON (to a relay): bytes as hex.
_WIRE = ConfigDict(frozen=True, ser_json_bytes="hex", val_json_bytes="hex")


class SignedVote(BaseModel):
    """A learner's signed vote, as a relayer receives and submits it."""

    model_config = _WIRE

    chain_id: int
    contract: str
    experiment_id: int
    round: int
    voter: str
    learner_index: int
    approve: bool
    score: int
    r: bytes
    vs: bytes

    def as_call_arg(self) -> tuple[int, bool, int, bytes, bytes]:
        """The contract's ``SignedVote`` struct."""
        return (self.learner_index, self.approve, self.score, self.r, self.vs)

    def signer(self) -> str:
        """The address the signature recovers to (the voter, if it is genuine)."""
        signature = _expand(self.r, self.vs)
        message = encode_typed_data(full_message=vote_typed_data(
            self.chain_id, self.contract, self.experiment_id, self.round, self.approve,
            self.score))
        return Account.recover_message(message, signature=signature)


class SignedProposal(BaseModel):
    """A proposer's signed proposal, as a relayer receives and submits it."""

    model_config = _WIRE

    chain_id: int
    contract: str
    experiment_id: int
    round: int
    proposer: str
    cid: str
    digest: bytes
    r: bytes
    vs: bytes

    def signer(self) -> str:
        """The address the signature recovers to (the proposer, if it is genuine)."""
        message = encode_typed_data(full_message=proposal_typed_data(
            self.chain_id, self.contract, self.experiment_id, self.round, self.cid,
            self.digest))
        return Account.recover_message(message, signature=_expand(self.r, self.vs))


def _domain(chain_id: int, contract: str) -> dict[str, Any]:
    return {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
            "verifyingContract": to_checksum_address(contract)}


def vote_typed_data(chain_id: int, contract: str, experiment_id: int, round_index: int,
                    approve: bool, score: int) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, "Vote": _VOTE_TYPE},
        "primaryType": "Vote",
        "domain": _domain(chain_id, contract),
        "message": {"experimentId": experiment_id, "round": round_index, "approve": approve,
                    "score": score},
    }


def proposal_typed_data(chain_id: int, contract: str, experiment_id: int, round_index: int,
                        cid: str, digest: bytes) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, "Proposal": _PROPOSAL_TYPE},
        "primaryType": "Proposal",
        "domain": _domain(chain_id, contract),
        "message": {"experimentId": experiment_id, "round": round_index, "cid": cid,
                    "digest": digest},
    }


def sign_vote(account: LocalAccount, *, chain_id: int, contract: str, experiment_id: int,
              round_index: int, learner_index: int, approve: bool, score: int) -> SignedVote:
    signed = account.sign_typed_data(full_message=vote_typed_data(
        chain_id, contract, experiment_id, round_index, approve, score))
    r, vs = _compact(signed.r, signed.s, signed.v)
    return SignedVote(chain_id=chain_id, contract=to_checksum_address(contract),
                      experiment_id=experiment_id, round=round_index, voter=account.address,
                      learner_index=learner_index, approve=approve, score=score, r=r, vs=vs)


def sign_proposal(account: LocalAccount, *, chain_id: int, contract: str, experiment_id: int,
                  round_index: int, cid: str, digest: bytes) -> SignedProposal:
    signed = account.sign_typed_data(full_message=proposal_typed_data(
        chain_id, contract, experiment_id, round_index, cid, digest))
    r, vs = _compact(signed.r, signed.s, signed.v)
    return SignedProposal(chain_id=chain_id, contract=to_checksum_address(contract),
                          experiment_id=experiment_id, round=round_index,
                          proposer=account.address, cid=cid, digest=digest, r=r, vs=vs)


def _compact(r: int, s: int, v: int) -> tuple[bytes, bytes]:
    """ERC-2098: the parity of ``v`` goes into the top bit of ``s`` (always free, since
    signatures with a high ``s`` are refused)."""
    return r.to_bytes(32, "big"), (s | ((v - 27) << 255)).to_bytes(32, "big")


def _expand(r: bytes, vs: bytes) -> bytes:
    value = int.from_bytes(vs, "big")
    s, v = value & ((1 << 255) - 1), 27 + (value >> 255)
    return r + s.to_bytes(32, "big") + bytes([v])

"""EIP-712 signed votes, commitments, proposals and joins, for learners who act through a
relayer; and the commitment a sealed vote binds its voter to.

The typed data matches the contract's ``VOTE_TYPEHASH``, ``COMMIT_TYPEHASH``,
``PROPOSAL_TYPEHASH`` and ``JOIN_TYPEHASH`` under the domain ``CollectiveLearning`` version
``1`` bound to the chain id and the contract's address, so a vote, commitment or proposal is
good for one round of one experiment on one deployment (a vote for one proposal: it names
its digest), a join for one experiment.
Signatures travel in ERC-2098 short form ``(r, vs)``, as the contract takes them.
"""

from __future__ import annotations

from typing import Annotated, Any

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

DOMAIN_NAME = "CollectiveLearning"
DOMAIN_VERSION = "2"

# EIP-712's encodeType of each struct, as the contract's *_TYPEHASH constants hash it.
_DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
_VOTE_TYPE = "Vote(uint256 experimentId,uint256 round,bytes32 digest,bool approve,int256 score)"
_COMMIT_TYPE = "Commit(uint256 experimentId,uint256 round,bytes32 commitment)"
_PROPOSAL_TYPE = "Proposal(uint256 experimentId,uint256 round,string cid,bytes32 digest)"
_JOIN_TYPE = "Join(uint256 experimentId)"


# Signed calls travel as JSON (to a relay): bytes as hex. Every field is bounded as the
# contract's ABI type is, so anything that validates can be hashed and encoded.
_WIRE = ConfigDict(frozen=True, ser_json_bytes="hex", val_json_bytes="hex")
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

Uint256 = Annotated[int, Field(ge=0, lt=2**256)]
Int256 = Annotated[int, Field(ge=-(2**255), lt=2**255)]
Word = Annotated[bytes, Field(min_length=32, max_length=32)]
Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$"),
                    AfterValidator(to_checksum_address)]


class InvalidSignature(ValueError):
    """The signature is malformed: it recovers no address, or one the contract refuses."""


class _SignedCall(BaseModel):
    """What every signed call holds: the contract and experiment it is for, and the
    signature of its EIP-712 typed data (compact: ``r`` and ``vs``)."""

    model_config = _WIRE

    chain_id: Uint256
    contract: Address
    experiment_id: Uint256
    r: Word
    vs: Word

    def typed_data(self) -> dict[str, Any]:
        raise NotImplementedError

    def signer(self) -> str:
        """The address the signature recovers to (the signer it names, if it is
        genuine); raises :class:`InvalidSignature` if it recovers none."""
        return _recover(encode_typed_data(full_message=self.typed_data()), self.r, self.vs)


class SignedVote(_SignedCall):
    """A learner's signed vote, as a relayer receives and submits it."""

    round: Uint256
    voter: Address
    learner_index: Uint256
    digest: Word  # of the proposal it judged
    approve: bool
    score: Int256

    def as_call_arg(self) -> tuple[int, bool, int, bytes, bytes]:
        """The contract's ``SignedVote`` struct (the digest is the batch's)."""
        return (self.learner_index, self.approve, self.score, self.r, self.vs)

    def typed_data(self) -> dict[str, Any]:
        return vote_typed_data(self.chain_id, self.contract, self.experiment_id, self.round,
                               self.digest, self.approve, self.score)


class SignedCommit(_SignedCall):
    """A learner's signed commitment to a sealed vote (see :func:`vote_commitment`), as a
    relayer receives and submits it."""

    round: Uint256
    voter: Address
    learner_index: Uint256
    commitment: Word

    def as_call_arg(self) -> tuple[int, bytes, bytes, bytes]:
        """The contract's ``SignedCommit`` struct."""
        return (self.learner_index, self.commitment, self.r, self.vs)

    def typed_data(self) -> dict[str, Any]:
        return commit_typed_data(self.chain_id, self.contract, self.experiment_id, self.round,
                                 self.commitment)


class VoteOpening(BaseModel):
    """What opens a sealed vote's commitment: the vote, its score and the salt. Anyone who
    holds it may reveal the vote (the contract's ``Reveal`` struct, with the voter's index)."""

    model_config = _WIRE

    approve: bool
    score: Int256
    salt: Word

    def as_call_arg(self, learner_index: int) -> tuple[int, bool, int, bytes]:
        return (learner_index, self.approve, self.score, self.salt)


class SignedProposal(_SignedCall):
    """A proposer's signed proposal, as a relayer receives and submits it."""

    round: Uint256
    proposer: Address
    cid: Annotated[str, Field(max_length=1024)]
    digest: Word

    def typed_data(self) -> dict[str, Any]:
        return proposal_typed_data(self.chain_id, self.contract, self.experiment_id,
                                   self.round, self.cid, self.digest)


class SignedJoin(_SignedCall):
    """A learner's signed join (its consent to an experiment's terms), as a relayer
    receives and submits it."""

    learner: Address
    learner_index: Uint256

    def typed_data(self) -> dict[str, Any]:
        return join_typed_data(self.chain_id, self.contract, self.experiment_id)


def _struct(encoded_type: str) -> tuple[str, list[dict[str, str]]]:
    """``Name(type1 name1,type2 name2)`` as its name and eth-account's list of fields."""
    name, _, fields = encoded_type.removesuffix(")").partition("(")
    return name, [{"name": field, "type": kind}
                  for kind, field in (pair.split(" ") for pair in fields.split(","))]


def _typed_data(encoded_type: str, chain_id: int, contract: str,
                message: dict[str, Any]) -> dict[str, Any]:
    """The typed data of one struct (``encoded_type``) under the contract's domain."""
    primary, fields = _struct(encoded_type)
    return {
        "types": {"EIP712Domain": _struct(_DOMAIN_TYPE)[1], primary: fields},
        "primaryType": primary,
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
                   "verifyingContract": to_checksum_address(contract)},
        "message": message,
    }


def vote_commitment(experiment_id: int, round_index: int, voter: str, digest: bytes,
                    opening: VoteOpening) -> bytes:
    """``keccak256(abi.encode(experimentId, round, voter, proposalDigest, approve, score,
    salt))``: what a sealed vote commits its voter to (PROTOCOL.md, "Sealed votes")."""
    return keccak(abi_encode(
        ["uint256", "uint256", "address", "bytes32", "bool", "int256", "bytes32"],
        [experiment_id, round_index, to_checksum_address(voter), digest, opening.approve,
         opening.score, opening.salt]))


def vote_typed_data(chain_id: int, contract: str, experiment_id: int, round_index: int,
                    digest: bytes, approve: bool, score: int) -> dict[str, Any]:
    return _typed_data(_VOTE_TYPE, chain_id, contract, {
        "experimentId": experiment_id, "round": round_index, "digest": digest,
        "approve": approve, "score": score})


def commit_typed_data(chain_id: int, contract: str, experiment_id: int, round_index: int,
                      commitment: bytes) -> dict[str, Any]:
    return _typed_data(_COMMIT_TYPE, chain_id, contract, {
        "experimentId": experiment_id, "round": round_index, "commitment": commitment})


def proposal_typed_data(chain_id: int, contract: str, experiment_id: int, round_index: int,
                        cid: str, digest: bytes) -> dict[str, Any]:
    return _typed_data(_PROPOSAL_TYPE, chain_id, contract, {
        "experimentId": experiment_id, "round": round_index, "cid": cid, "digest": digest})


def join_typed_data(chain_id: int, contract: str, experiment_id: int) -> dict[str, Any]:
    return _typed_data(_JOIN_TYPE, chain_id, contract, {"experimentId": experiment_id})


def sign_join(account: LocalAccount, *, chain_id: int, contract: str, experiment_id: int,
              learner_index: int) -> SignedJoin:
    signed = account.sign_typed_data(full_message=join_typed_data(
        chain_id, contract, experiment_id))
    r, vs = _compact(signed.r, signed.s, signed.v)
    return SignedJoin(chain_id=chain_id, contract=to_checksum_address(contract),
                      experiment_id=experiment_id, learner=account.address,
                      learner_index=learner_index, r=r, vs=vs)


def sign_vote(account: LocalAccount, *, chain_id: int, contract: str, experiment_id: int,
              round_index: int, learner_index: int, digest: bytes, approve: bool,
              score: int) -> SignedVote:
    signed = account.sign_typed_data(full_message=vote_typed_data(
        chain_id, contract, experiment_id, round_index, digest, approve, score))
    r, vs = _compact(signed.r, signed.s, signed.v)
    return SignedVote(chain_id=chain_id, contract=to_checksum_address(contract),
                      experiment_id=experiment_id, round=round_index, voter=account.address,
                      learner_index=learner_index, digest=digest, approve=approve,
                      score=score, r=r, vs=vs)


def sign_commit(account: LocalAccount, *, chain_id: int, contract: str, experiment_id: int,
                round_index: int, learner_index: int, commitment: bytes) -> SignedCommit:
    signed = account.sign_typed_data(full_message=commit_typed_data(
        chain_id, contract, experiment_id, round_index, commitment))
    r, vs = _compact(signed.r, signed.s, signed.v)
    return SignedCommit(chain_id=chain_id, contract=to_checksum_address(contract),
                        experiment_id=experiment_id, round=round_index, voter=account.address,
                        learner_index=learner_index, commitment=commitment, r=r, vs=vs)


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


def _recover(message: Any, r: bytes, vs: bytes) -> str:
    """The signer, as OpenZeppelin's ``ECDSA.recover`` finds it: a high ``s`` (or a zero
    ``r`` or ``s``, or one past the curve order) is refused, as the contract refuses it."""
    s = int.from_bytes(vs, "big") & ((1 << 255) - 1)
    if not 0 < int.from_bytes(r, "big") < _SECP256K1_N or not 0 < s <= _SECP256K1_N // 2:
        raise InvalidSignature("the signature's r or s is out of range")
    try:
        return Account.recover_message(message, signature=_expand(r, vs))
    except Exception as exc:  # noqa: BLE001 - eth-keys' errors for unrecoverable points
        raise InvalidSignature(f"the signature recovers no address: {exc}") from None


def _expand(r: bytes, vs: bytes) -> bytes:
    value = int.from_bytes(vs, "big")
    s, v = value & ((1 << 255) - 1), 27 + (value >> 255)
    return r + s.to_bytes(32, "big") + bytes([v])

"""A vote relay: learners hand it EIP-712 signatures, it pays for the transactions.

Any learner, or a third party, runs ``colearn relay --experiment ID`` (or, explicitly,
``--any-experiment``). Agents started with ``--relay URL`` sign their proposals and votes
and POST them here instead of sending transactions, so a learner with no ETH can take
part in a whole experiment. The relay:

- serves only the experiments it was started for; with ``--any-experiment``, an
  experiment once one of its learners handed it a genuine signature for an open round;
- checks each signed call off chain before anything else (right contract and chain, the
  signer is the learner it claims to be), then that the round is open, that the signer
  is a learner and, for a vote, not the round's proposer: 409 with the reason otherwise;
- submits a proposal at once (:meth:`CollectiveLearningClient.propose_by_sig`);
- collects a round's votes and submits them as one ``castVotesBySig`` batch when every
  voter's vote is in, or ``batch_delay`` seconds after the first one arrived, its gas
  from ``eth_estimateGas`` (never below the calldata floor). A batch the contract refuses
  is sent again without the vote at fault; one that fails in transit stays queued and
  is tried again; votes are discarded (logged) only once their round is closed;
- closes timed-out rounds (``expire`` / ``decide``) of the experiments it watches, since
  learners without ETH cannot, until they complete.

In an experiment with sealed votes, commitments and reveals go the same way: a signed
commitment is checked as a vote is and batched (``commitVotesBySig``); an opening needs no
signature (it authenticates itself): the relay checks that it hashes to the voter's
commitment on chain (its ``VoteCommitted`` log) before queuing it, and batches the round's
reveals (``revealVotes``).

The HTTP API (JSON): ``POST /v1/votes`` (a :class:`SignedVote`), ``POST /v1/commits`` (a
:class:`SignedCommit`), ``POST /v1/reveals`` (a :class:`RevealRequest`: chain id,
contract, experiment, round, voter, learner index and the :class:`VoteOpening`),
``POST /v1/proposals`` (a :class:`SignedProposal`), ``POST /v1/joins`` (a
:class:`SignedJoin`), ``GET /v1/health``. Refusals are 4xx with ``{"error": ...}``
(:mod:`agents.relay.server` for the limits on what a client may send).
"""

from agents.relay.client import RelayClient
from agents.relay.errors import Refused, RelayError
from agents.relay.requests import RevealRequest
from agents.relay.server import HttpLimits, RelayServer
from agents.relay.service import Relay

__all__ = ["HttpLimits", "Refused", "Relay", "RelayClient", "RelayError", "RelayServer",
           "RevealRequest"]

"""How a learner agent votes: tests the round's proposal once, then votes openly, or, in an
experiment with sealed votes, commits to its vote (keeping the opening) and reveals it."""

from __future__ import annotations

import logging
import secrets

from agents.agent.base import AgentCore, Verdict
from agents.agent.openings import OpeningStore
from agents.agent.records import RoundRecord
from agents.agent.verify import Rejected, describe, one_line
from agents.chain.errors import ChainError, ContractRevert
from agents.chain.signing import VoteOpening, sign_commit, sign_vote, vote_commitment
from agents.chain.types import NO_SCORE, RoundStatus, score_to_fixed
from agents.relay import RelayClient
from agents.relay.requests import RevealRequest
from colearn_core.ml_interface import Weights


class Voter(AgentCore):
    """The voting part of a learner agent (open and sealed votes)."""

    def _verdict(self, round_index: int) -> Verdict:
        """This learner's verdict on the round's proposal (tested once per proposal)."""
        verdict = self._verdicts.get(round_index)
        if verdict is None or (self.status is not None
                               and verdict.digest != self.status.proposal_digest):
            verdict = self._judge(round_index)
            self._verdicts = {round_index: verdict}
        return verdict

    def _judge(self, round_index: int) -> Verdict:
        """Tests the round's proposal. Whatever goes wrong with the peer's weights (fetch,
        digest, format, fit, or the learner failing on them) is a reject vote with
        ``NO_SCORE`` and the reason logged."""
        proposal = self._proposal(round_index)
        try:
            weights = self._fetch(proposal.cid, proposal.digest, self._time_to_act())
            with self.timings.measure("learner"):
                try:
                    tested = self.learner.mli_test_weights(Weights(weights=weights))
                except Exception as exc:  # noqa: BLE001 - peer data must not stop the agent
                    raise Rejected(f"testing failed: {describe(exc)}") from None
        except Rejected as exc:
            reason = one_line(str(exc))
            self.log.warning("round %d: rejecting proposal %s: %s", round_index,
                             one_line(proposal.cid, 80), reason)
            self.records[round_index] = RoundRecord(
                round=round_index, role="voter", approve=False, reason=reason)
            return Verdict(digest=proposal.digest, approve=False, score=NO_SCORE,
                            reason=reason)
        approve = bool(tested.vote)
        # Held until the round is decided, to adopt without a second fetch if it accepts
        # the proposal (whatever this vote); dropped if it rejects it. It holds no more
        # than the test did: the model and the proposal.
        self._held = (round_index, proposal.digest, weights)
        self.records[round_index] = RoundRecord(
            round=round_index, role="voter", vote_score=tested.vote_score,
            test_score=tested.test_score, approve=approve)
        return Verdict(digest=proposal.digest, approve=approve,
                        score=score_to_fixed(tested.vote_score))

    def _vote(self, round_index: int, voted: bool) -> bool:
        if voted:
            return False
        verdict = self._verdict(round_index)
        due = self._relay_due(self._relayed_vote, round_index, "vote")
        if due:
            return False  # the relay's batch is still due
        def relayed(relay: RelayClient) -> None:
            relay.submit_vote(sign_vote(
                self.account, chain_id=self.client.chain_id, contract=self.client.address,
                experiment_id=self.experiment_id, round_index=round_index,
                learner_index=self._learner_index(), digest=verdict.digest,
                approve=verdict.approve, score=verdict.score))

        how = "approve" if verdict.approve else "reject"
        if due is None and self._relayed(round_index, "vote", relayed):
            self._relayed_vote = round_index
            self._acts[round_index] = f"voted {how} (through the relay)"
            return True
        with self.timings.measure("transactions"):
            self.client.vote(self.experiment_id, round_index, verdict.digest, verdict.approve,
                             verdict.score)
        self._acts[round_index] = f"voted {how}"
        self.log.info("round %d: voted %s", round_index, "approve" if verdict.approve else "reject")
        return True

    def _sealed(self) -> bool:
        return self._experiment().options.sealed

    def _opening_store(self) -> OpeningStore:
        if self._openings is None:
            directory = self.settings.state_dir
            self._openings = OpeningStore(
                directory, chain_id=self.client.chain_id, contract=self.client.address,
                experiment_id=self.experiment_id, voter=self.address)
            if directory is None:
                self.log.warning("experiment %d has sealed votes and this agent keeps their "
                                 "openings in memory only (no state directory): if it "
                                 "restarts between commit and reveal, its vote is lost",
                                 self.experiment_id)
            elif self._openings.rounds:
                self.log.info("sealed-vote openings of round(s) %s read from %s",
                              self._openings.rounds, self._openings.path)
        return self._openings

    def _commit(self, round_index: int, status: RoundStatus) -> bool:
        """Sealed votes, commit window: tests the proposal, keeps the opening (on disk
        first), then commits to it (through the relay, or directly)."""
        if status.committed or status.voted:
            return False
        store = self._opening_store()
        opening = store.get(round_index, status.proposal_digest)
        if opening is None:
            verdict = self._verdict(round_index)
            if verdict.digest != status.proposal_digest:
                raise ChainError(f"round {round_index}: the proposal in the logs is not the "
                                 "round's (the node is lagging)")
            opening = VoteOpening(approve=verdict.approve, score=verdict.score,
                                  salt=secrets.token_bytes(32))
            store.put(round_index, verdict.digest, opening)  # before the commitment goes
        commitment = vote_commitment(self.experiment_id, round_index, self.address,
                                     status.proposal_digest, opening)
        due = self._relay_due(self._relayed_commit, round_index, "commitment")
        if due:
            return False
        def relayed(relay: RelayClient) -> None:
            relay.submit_commit(sign_commit(
                self.account, chain_id=self.client.chain_id, contract=self.client.address,
                experiment_id=self.experiment_id, round_index=round_index,
                learner_index=self._learner_index(), commitment=commitment))

        if due is None and self._relayed(round_index, "commitment", relayed):
            self._relayed_commit = round_index
            self._acts[round_index] = "committed a sealed vote (through the relay)"
            return True
        with self.timings.measure("transactions"):
            self.client.commit_vote(self.experiment_id, round_index, commitment)
        self._acts[round_index] = "committed a sealed vote"
        self.log.info("round %d: committed a sealed vote", round_index)
        return True

    def _reveal(self, round_index: int, status: RoundStatus) -> bool:
        """Sealed votes, reveal window: opens this learner's commitment."""
        if status.voted:
            return False
        if not status.committed:
            self._once(round_index, "uncommitted", logging.WARNING,
                       "this learner committed no vote in time: nothing to reveal")
            return False
        opening = self._opening_store().get(round_index, status.proposal_digest)
        if opening is None:
            self._once(round_index, "lost", logging.ERROR,
                       "the opening of this learner's sealed vote is lost (kept in "
                       "memory only, or its state file is gone): the vote cannot be revealed")
            return False
        due = self._relay_due(self._relayed_reveal, round_index, "reveal")
        if due:
            return False
        request = RevealRequest(chain_id=self.client.chain_id, contract=self.client.address,
                                experiment_id=self.experiment_id, round=round_index,
                                voter=self.address, learner_index=self._learner_index(),
                                opening=opening)
        if due is None and self._relayed(round_index, "reveal",
                                         lambda relay: relay.submit_reveal(request)):
            self._relayed_reveal = round_index
            self._acts[round_index] = (f"revealed its sealed vote "
                                       f"({'approve' if opening.approve else 'reject'}; "
                                       "through the relay)")
            return True
        try:
            with self.timings.measure("transactions"):
                self.client.reveal_vote(self.experiment_id, round_index, opening)
        except ContractRevert as exc:
            if exc.name != "CommitmentMismatch":
                raise
            self._once(round_index, "mismatch", logging.ERROR,
                       f"the kept opening does not match the commitment on chain "
                       f"({exc}): the vote cannot be revealed")
            return False
        self._acts[round_index] = \
            f"revealed its sealed vote ({'approve' if opening.approve else 'reject'})"
        self.log.info("round %d: revealed its vote (%s)", round_index,
                      "approve" if opening.approve else "reject")
        return True

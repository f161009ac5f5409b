// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

// Behaviour of the v2 rules (PROTOCOL.md): votes bound to the digest, batches that skip votes
// already cast, sealed votes, bounds. The first three tests fail on version 1 of the contract.

import {CollectiveLearning} from "../CollectiveLearning.sol";
import {ICollectiveLearning} from "../ICollectiveLearning.sol";
import {Fixture} from "./Fixture.sol";
import {Log} from "./Vm.sol";

contract ProtocolTest is Fixture {
    function setUp() public override {
        super.setUp();
        _makeLearners(5);
    }

    // ---------------------------------------------------------------- fail on v1

    /// Copying one signed vote out of a pending batch and submitting it first no longer sinks
    /// the batch: the copy counts once, the batch skips it and counts the others.
    function test_copiedSignatureGrief_batchStillLands() public {
        uint256 id = _proposed(_plain());
        ICollectiveLearning.SignedVote[] memory votes = _signedVotes(id, 0, true);
        ICollectiveLearning.SignedVote[] memory copied = new ICollectiveLearning.SignedVote[](1);
        copied[0] = votes[2];
        bytes32 digest = _digest(0);
        assertEq(cl.castVotesBySig(id, 0, digest, learners, copied), 1, "the copy counts");
        vm.recordLogs();
        uint256 counted = cl.castVotesBySig(id, 0, digest, learners, votes);
        assertEq(counted, 3, "the batch counts the others");
        Log[] memory logs = vm.getRecordedLogs();
        assertEq(_count(logs, ICollectiveLearning.VoteSkipped.selector), 1, "one VoteSkipped");
        _assertState(id, ICollectiveLearning.RoundState.Proposing, "round 1 began");
        _assertModelRound(id, 1, "round 0 accepted with every approval");
    }

    /// A vote made for proposal A does not count for proposal B (a reorg that swaps the
    /// proposal): refused directly and signed.
    function test_reorgRebinding_voteForAnotherDigestRefused() public {
        uint256 id = _create(3, _plain());
        _joinAll(id);
        bytes32 a = keccak256("proposal A");
        bytes32 b = _digest(0);
        _propose(id, 0); // the chain holds proposal B
        vm.prank(learners[1]);
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.WrongProposal.selector, id, 0, b, a));
        cl.vote(id, 0, a, true, SCORE);
        // A vote signed for A, relayed as a vote on B: its signature recovers to someone else.
        ICollectiveLearning.SignedVote[] memory votes = new ICollectiveLearning.SignedVote[](1);
        votes[0] = _signedVote(id, 0, a, 1, true);
        vm.expectRevert();
        cl.castVotesBySig(id, 0, b, learners, votes);
        // Relayed as a vote on A: the round's proposal is B.
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.WrongProposal.selector, id, 0, b, a));
        cl.castVotesBySig(id, 0, a, learners, votes);
        (bool voted,) = cl.voteOf(id, learners[1]);
        assertTrue(!voted, "no vote counted");
    }

    /// Copy-the-median: in a sealed experiment nothing about the others' votes is visible
    /// before the reveal, neither in storage nor in events (commitments only).
    function test_sealed_nothingVisibleBeforeReveal() public {
        uint256 id = _proposed(_sealed());
        vm.recordLogs();
        _commit(id, 0, 1, true);
        _commit(id, 0, 2, false);
        _commit(id, 0, 3, true);
        Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = 0; i < logs.length; ++i) {
            assertTrue(logs[i].topics[0] == ICollectiveLearning.VoteCommitted.selector, "only commitments");
            (uint256 round, bytes32 commitment) = abi.decode(logs[i].data, (uint256, bytes32));
            assertEq(round, 0, "round");
            assertTrue(commitment == _commitment(id, 0, i + 1, i != 1), "the commitment, nothing else");
        }
        ICollectiveLearning.ExperimentView memory v = cl.getExperiment(id);
        assertEq(v.approvals + v.rejections, 0, "no tally before reveals");
        assertEq(v.commitments, 3, "three commitments");
        for (uint256 i = 1; i < 4; ++i) {
            (bool voted, bool approved) = cl.voteOf(id, learners[i]);
            assertTrue(!voted && !approved, "no vote visible");
        }
        // A public vote is refused in a sealed experiment.
        bytes32 digest = _digest(0);
        vm.prank(learners[4]);
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.WrongVoteKind.selector, id, true));
        cl.vote(id, 0, digest, true, SCORE);
    }

    // ---------------------------------------------------------------- sealed votes

    function test_sealed_lastRevealDecides_andEarlyRevealWindow() public {
        uint256 id = _proposed(_sealed());
        for (uint256 i = 1; i < 5; ++i) {
            _assertState(id, ICollectiveLearning.RoundState.Voting, "commit window");
            _commit(id, 0, i, i != 4);
        }
        // Every voter committed: the reveal window is open before the commit deadline.
        _assertState(id, ICollectiveLearning.RoundState.Revealing, "revealing");
        for (uint256 i = 1; i < 4; ++i) _reveal(id, 0, i, true);
        vm.prank(learners[4]);
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.CommitmentMismatch.selector, id, 0, learners[4]));
        cl.revealVote(id, 0, true, SCORE, _salt(0, 4)); // committed to a reject
        _reveal(id, 0, 4, false);
        _assertModelRound(id, 1, "accepted by the last reveal, 3 of 4");
        assertEq(cl.getExperiment(id).round, 1, "next round");
    }

    function test_sealed_unrevealedCountsAsNotApproving() public {
        uint256 id = _proposed(_sealed());
        _commit(id, 0, 1, true);
        _commit(id, 0, 2, true);
        _commit(id, 0, 3, true);
        vm.warp(cl.deadline(id)); // commit deadline: learner 4 never committed
        _assertState(id, ICollectiveLearning.RoundState.Revealing, "revealing");
        _reveal(id, 0, 1, true);
        vm.warp(cl.deadline(id)); // reveal deadline: 2 and 3 never revealed
        _assertState(id, ICollectiveLearning.RoundState.RevealTimedOut, "timed out");
        _expectUnexpectedState(id, 0, ICollectiveLearning.RoundState.RevealTimedOut, ICollectiveLearning.RoundState.Revealing);
        _reveal(id, 0, 2, true);
        cl.decide(id, 0);
        _assertModelRound(id, 0, "rejected: 1 approval of 4 < 50%");
    }

    function test_sealed_batchesSkipWhatIsOnChain() public {
        uint256 id = _proposed(_sealed());
        ICollectiveLearning.SignedCommit[] memory commits = _signedCommits(id, 0, true);
        _commit(id, 0, 2, true); // learner 2 committed directly first
        ICollectiveLearning.SignedCommit[] memory some = new ICollectiveLearning.SignedCommit[](2);
        some[0] = commits[0];
        some[1] = commits[1]; // learner 2's signed commitment: skipped
        assertEq(cl.commitVotesBySig(id, 0, learners, some), 1, "one new commitment");
        assertEq(cl.commitVotesBySig(id, 0, learners, some), 0, "a replay records nothing");
        assertEq(cl.commitVotesBySig(id, 0, learners, commits), 2, "the rest");
        // Every voter committed: the window closed, a late batch is refused by name.
        _expectUnexpectedState(id, 0, ICollectiveLearning.RoundState.Revealing, ICollectiveLearning.RoundState.Voting);
        cl.commitVotesBySig(id, 0, learners, commits);
        ICollectiveLearning.Reveal[] memory reveals = _openings(0, true);
        _reveal(id, 0, 3, true);
        ICollectiveLearning.Reveal[] memory first = new ICollectiveLearning.Reveal[](2);
        first[0] = reveals[0];
        first[1] = reveals[2]; // learner 3's, already revealed: skipped
        assertEq(cl.revealVotes(id, 0, learners, first), 1, "one new reveal");
        assertEq(cl.revealVotes(id, 0, learners, reveals), 2, "the rest; it decides");
        _assertModelRound(id, 1, "accepted");
    }

    // ---------------------------------------------------------------- signatures

    function test_signedVote_replayAndForgeryRefused() public {
        uint256 id = _proposed(_plain());
        ICollectiveLearning.SignedVote[] memory votes = new ICollectiveLearning.SignedVote[](1);
        votes[0] = _signedVote(id, 0, _digest(0), 2, true);
        bytes32 digest = _digest(0);
        assertEq(cl.castVotesBySig(id, 0, digest, learners, votes), 1, "counted");
        assertEq(cl.castVotesBySig(id, 0, digest, learners, votes), 0, "replay skipped, not counted twice");
        vm.prank(learners[2]);
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.AlreadyVoted.selector, id, 0, learners[2]));
        cl.vote(id, 0, digest, false, SCORE);
        // Claimed for another learner: refused.
        votes[0].learnerIndex = 3;
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.SignerMismatch.selector, id, 3, learners[2]));
        cl.castVotesBySig(id, 0, digest, learners, votes);
        // Other contents: refused.
        votes[0] = _signedVote(id, 0, digest, 3, true);
        votes[0].score = SCORE + 1;
        vm.expectRevert();
        cl.castVotesBySig(id, 0, digest, learners, votes);
        assertEq(cl.getExperiment(id).approvals, 1, "one approval");
    }

    // ---------------------------------------------------------------- bounds

    function test_bounds_timeoutsAndCids() public {
        ICollectiveLearning.ExperimentTerms memory t;
        bytes32 d = _digest(9);
        uint256 max = cl.MAX_TIMEOUT();
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.InvalidTimeout.selector, max + 1, 1, max));
        cl.createExperiment(learners, 5000, 1, max + 1, 1, CID, d, "", 1, t);
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.InvalidJoinTimeout.selector, max + 1, max));
        cl.createExperiment(learners, 5000, 1, 1, 1, CID, d, "", max + 1, t);
        t.revealTimeout = max + 1;
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.InvalidRevealTimeout.selector, max + 1, max));
        cl.createExperiment(learners, 5000, 1, 1, 1, CID, d, "", 1, t);
        t.revealTimeout = 0;
        string memory long = string(new bytes(129));
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.CidTooLong.selector, 129, 128));
        cl.createExperiment(learners, 5000, 1, 1, 1, long, d, "", 1, t);
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.CidTooLong.selector, 129, 128));
        cl.createExperiment(learners, 5000, 1, 1, 1, CID, d, long, 1, t);
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.InvalidRoundCount.selector, 1 << 24));
        cl.createExperiment(learners, 5000, 1 << 24, 1, 1, CID, d, "", 1, t);
        // The largest legal values are accepted, and read back unchanged.
        t.revealTimeout = max;
        uint256 id = cl.createExperiment(learners, 10000, (1 << 24) - 1, max, max, string(new bytes(128)), d, string(new bytes(128)), max, t);
        ICollectiveLearning.ExperimentView memory v = cl.getExperiment(id);
        assertEq(v.numRounds, (1 << 24) - 1, "numRounds");
        assertEq(v.revealTimeout, max, "revealTimeout");
        assertEq(v.joinTimeout, max, "joinTimeout");
        assertEq(v.approvals + v.rejections + v.commitments, 0, "no tally bits set");
        _joinAll(id);
        vm.prank(learners[0]);
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.CidTooLong.selector, 129, 128));
        cl.propose(id, 0, long, d);
    }

    function test_stakeTermsRefusedWithoutStake() public {
        ICollectiveLearning.ExperimentTerms memory t;
        t.missedProposalPenalty = 1;
        bytes32 d = _digest(9);
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.InvalidStakeTerms.selector, uint256(type(uint96).max)));
        cl.createExperiment(learners, 5000, 1, 1, 1, CID, d, "", 1, t);
        t.missedProposalPenalty = 0;
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.WrongValue.selector, 0, 1));
        cl.createExperiment{value: 1}(learners, 5000, 1, 1, 1, CID, d, "", 1, t);
    }

    function _count(Log[] memory logs, bytes32 topic) internal pure returns (uint256 k) {
        for (uint256 i = 0; i < logs.length; ++i) if (logs[i].topics[0] == topic) ++k;
    }
}

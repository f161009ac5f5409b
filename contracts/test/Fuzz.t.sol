// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

// Fuzz tests: the packing helpers round-trip at every legal value (maxima included), the
// decision rule against a plain recomputation, and EIP-712 signatures (digest binding,
// replay, skipping of votes already cast).

import {ICollectiveLearning} from "../ICollectiveLearning.sol";
import {Ballots, Experiments} from "../Packing.sol";
import {Fixture} from "./Fixture.sol";

contract FuzzTest is Fixture {
    uint256 internal constant MAX_ROUNDS = (1 << 24) - 1;

    function _bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + x % (hi - lo + 1);
    }

    function testFuzz_experimentWord_roundTrip(uint256[13] memory r, bool staked) public pure {
        Experiments.Fields memory f;
        f.numLearners = _bound(r[0], 2, 500);
        f.thresholdBps = _bound(r[1], 0, 10000);
        f.numRounds = _bound(r[2], 1, MAX_ROUNDS);
        f.proposalTimeout = _bound(r[3], 1, 30 days);
        f.votingTimeout = _bound(r[4], 1, 30 days);
        f.revealTimeout = _bound(r[5], 0, 30 days);
        f.round = _bound(r[6], 0, f.numRounds);
        f.phaseStart = _bound(r[7], 0, (1 << 40) - 1);
        f.status = _bound(r[8], 0, 4);
        f.modelRound = _bound(r[9], 0, f.round);
        f.modelSlot = _bound(r[10], 0, 1);
        f.staked = staked;
        f.joined = _bound(r[11], 0, f.numLearners);
        uint256 e = Experiments.pack(f);
        assertTrue(keccak256(abi.encode(Experiments.unpack(e))) == keccak256(abi.encode(f)), "round trip");
        // Setters change their field only.
        uint256 newRound = _bound(r[12], 0, MAX_ROUNDS);
        Experiments.Fields memory g = Experiments.unpack(Experiments.withRound(e, newRound));
        f.round = newRound;
        assertTrue(keccak256(abi.encode(g)) == keccak256(abi.encode(f)), "withRound");
        g = Experiments.unpack(Experiments.withPhase(e, 4 - f.status, (1 << 40) - 1 - f.phaseStart));
        f.round = Experiments.round(e);
        f.status = 4 - f.status;
        f.phaseStart = (1 << 40) - 1 - f.phaseStart;
        assertTrue(keccak256(abi.encode(g)) == keccak256(abi.encode(f)), "withPhase");
        g = Experiments.unpack(Experiments.withAcceptedModel(e, MAX_ROUNDS - 1));
        assertEq(g.modelRound, MAX_ROUNDS, "modelRound at its maximum");
        assertEq(g.modelSlot, 1 - Experiments.modelSlot(e), "modelSlot flipped");
        assertEq(g.joined, Experiments.joined(e), "joined kept");
        assertEq(Experiments.joined(Experiments.withJoined(e, 500)), 500, "joined");
    }

    /// Ballot words: at any legal round (numRounds up to 2^24 - 1, and the round after the
    /// last), with counts up to 499 and any learner bits, the tag, counts and bits never overlap.
    function testFuzz_ballot_roundTrip(uint256 round, uint256 a, uint256 b, uint256 c, uint256 i, uint256 j, uint256 bits)
        public
        pure
    {
        round = _bound(round, 0, MAX_ROUNDS);
        (a, b, c) = (_bound(a, 0, 499), _bound(b, 0, 499), _bound(c, 0, 499));
        i = _bound(i, 0, 499);
        j = _bound(j, 0, 499);
        bits = _bound(bits, 1, 3);
        uint256 w0 = Ballots.empty(round);
        for (uint256 k = 0; k < a; ++k) w0 = Ballots.increment(w0, Ballots.APPROVALS);
        for (uint256 k = 0; k < b; ++k) w0 = Ballots.increment(w0, Ballots.REJECTIONS);
        for (uint256 k = 0; k < c; ++k) w0 = Ballots.increment(w0, Ballots.COMMITS);
        (uint256 wi, uint256 oi) = Ballots.position(i);
        (uint256 wj, uint256 oj) = Ballots.position(j);
        assertTrue(wi < Ballots.WORDS, "five words hold 500 learners");
        assertTrue(oi >= (wi == 0 ? Ballots.WORD0_FIRST : Ballots.TAG_BITS) && oi <= 254, "bits in range");
        if (i != j) assertTrue(wi != wj || oi != oj, "distinct positions");
        uint256 word = wi == 0 ? w0 : Ballots.empty(round);
        word = Ballots.withBits(word, oi, bits);
        if (wi == 0) w0 = word;
        assertEq(Ballots.bitsAt(word, oi), bits, "bits");
        assertEq(Ballots.count(w0, Ballots.APPROVALS), a, "approvals");
        assertEq(Ballots.count(w0, Ballots.REJECTIONS), b, "rejections");
        assertEq(Ballots.count(w0, Ballots.COMMITS), c, "commitments");
        assertEq(Ballots.ofRound(w0, round), w0, "a word of its round");
        assertEq(Ballots.ofRound(word, round), word, "a word of its round");
        if (round < MAX_ROUNDS) assertEq(Ballots.ofRound(w0, round + 1), Ballots.empty(round + 1), "empty next round");
        if (i != j && (wi != wj || oi != oj)) assertEq(Ballots.bitsAt(word, wi == wj ? oj : 0) & (wi == wj ? 3 : 0), 0, "others untouched");
    }

    function testFuzz_commitmentPairs(bytes32 x, bytes32 y, uint256 k) public pure {
        k = _bound(k, 0, 249);
        uint256 slot = Ballots.withCommitment(Ballots.withCommitment(0, 2 * k, x), 2 * k + 1, y);
        assertEq(Ballots.commitmentAt(slot, 2 * k), Ballots.short(x), "first of the pair");
        assertEq(Ballots.commitmentAt(slot, 2 * k + 1), Ballots.short(y), "second of the pair");
        slot = Ballots.withCommitment(slot, 2 * k, y);
        assertEq(Ballots.commitmentAt(slot, 2 * k + 1), Ballots.short(y), "partner kept");
    }

    /// approvals * 10000 >= threshold * (n - 1), against approvals / (n - 1) >= threshold / 10000
    /// recomputed as a comparison of the smallest approving count.
    function testFuzz_decisionRule(uint256 n, uint256 threshold, uint256 approvals) public pure {
        n = _bound(n, 2, 500);
        threshold = _bound(threshold, 0, 10000);
        approvals = _bound(approvals, 0, n - 1);
        uint256 voters = n - 1;
        uint256 needed = (threshold * voters + 9999) / 10000; // ceil
        assertTrue(Ballots.accepted(approvals, threshold, voters) == (approvals >= needed), "rule");
        if (threshold == 0) assertTrue(Ballots.accepted(0, 0, voters), "threshold 0 accepts");
        if (threshold == 10000) assertTrue(Ballots.accepted(approvals, threshold, voters) == (approvals == voters), "unanimity");
    }

    /// A vote signed for digest A is refused for digest B; a replay is skipped; a batch skips
    /// exactly the votes already cast.
    function testFuzz_signatures(bytes32 other, bool approve, int256 score, uint8 precast) public {
        _makeLearners(6);
        uint256 id = _create(2, _plain());
        _joinAll(id);
        _propose(id, 0);
        bytes32 digest = _digest(0);
        vm.assume(other != digest);
        ICollectiveLearning.SignedVote[] memory one = new ICollectiveLearning.SignedVote[](1);
        bytes32 h = _typed(keccak256(abi.encode(cl.VOTE_TYPEHASH(), id, 0, other, approve, score)));
        (bytes32 r, bytes32 vs) = vm.signCompact(keys[1], h);
        one[0] = ICollectiveLearning.SignedVote({learnerIndex: 1, approve: approve, score: score, r: r, vs: vs});
        vm.expectRevert();
        cl.castVotesBySig(id, 0, digest, learners, one);
        // Learners 1..5 vote; those in `precast` vote directly first, the batch counts the rest.
        uint256 direct;
        for (uint256 i = 1; i < 5; ++i) {
            if (precast & (1 << i) != 0) {
                _vote(id, 0, i, true);
                ++direct;
            }
        }
        ICollectiveLearning.SignedVote[] memory votes = new ICollectiveLearning.SignedVote[](4);
        for (uint256 i = 1; i < 5; ++i) votes[i - 1] = _signedVote(id, 0, digest, i, true);
        assertEq(cl.castVotesBySig(id, 0, digest, learners, votes), 4 - direct, "the batch counts the rest");
        assertEq(cl.castVotesBySig(id, 0, digest, learners, votes), 0, "a replay counts nothing");
        assertEq(cl.getExperiment(id).approvals, 4, "four approvals");
    }
}

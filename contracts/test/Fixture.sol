// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

// Test-only: a deployed CollectiveLearning, learner keys, and helpers that act as learners,
// sign as learners and relay.

import {CollectiveLearning} from "../CollectiveLearning.sol";
import {ICollectiveLearning} from "../ICollectiveLearning.sol";
import {MockToken} from "./Tokens.sol";
import {TestBase} from "./Vm.sol";

abstract contract Fixture is TestBase {
    CollectiveLearning internal cl;
    MockToken internal token;
    uint256[] internal keys;
    address[] internal learners;
    address internal constant CREATOR = address(0xC0FFEE);
    string internal constant CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    int256 internal constant SCORE = 973100000000000000; // 0.9731, as the gas bench votes
    uint256 internal constant T = 1 hours; // every timeout unless a test says otherwise

    function setUp() public virtual {
        vm.warp(1_000_000);
        cl = new CollectiveLearning();
        token = new MockToken();
    }

    function _makeLearners(uint256 n) internal {
        delete keys;
        delete learners;
        for (uint256 i = 0; i < n; ++i) {
            uint256 key = 0xA11CE + i;
            keys.push(key);
            learners.push(vm.addr(key));
        }
    }

    function _plain() internal pure returns (ICollectiveLearning.ExperimentTerms memory t) {}

    function _sealed() internal pure returns (ICollectiveLearning.ExperimentTerms memory t) {
        t.revealTimeout = T;
    }

    function _create(uint256 rounds, ICollectiveLearning.ExperimentTerms memory t) internal returns (uint256 id) {
        uint256 value = 0;
        if (t.stake != 0 || t.rewardPool != 0) {
            if (t.token == address(0)) {
                value = t.rewardPool;
                vm.deal(CREATOR, value);
            } else {
                MockToken(t.token).mint(CREATOR, t.rewardPool);
                vm.prank(CREATOR);
                MockToken(t.token).approve(address(cl), t.rewardPool);
            }
        }
        bytes32 initial = _digest(type(uint256).max);
        vm.prank(CREATOR);
        id = cl.createExperiment{value: value}(learners, 5000, rounds, T, T, CID, initial, "", T, t);
    }

    /// @dev Gives learner `i` what it needs to join (ETH or approved tokens).
    function _fund(uint256 id, uint256 i) internal returns (uint256 value) {
        ICollectiveLearning.StakeView memory s = cl.stakeOf(id);
        if (s.stake == 0) return 0;
        if (s.token == address(0)) {
            vm.deal(learners[i], s.stake);
            return s.stake;
        }
        MockToken(s.token).mint(learners[i], s.stake);
        vm.prank(learners[i]);
        MockToken(s.token).approve(address(cl), s.stake);
        return 0;
    }

    function _joinAll(uint256 id) internal {
        for (uint256 i = 0; i < learners.length; ++i) {
            uint256 value = _fund(id, i);
            vm.prank(learners[i]);
            cl.join{value: value}(id);
        }
    }

    function _digest(uint256 round) internal pure returns (bytes32) {
        return sha256(abi.encodePacked("weights of round ", round));
    }

    function _proposer(uint256 round) internal view returns (uint256) {
        return round % learners.length;
    }

    // Arguments are computed before vm.prank: a call in between (sha256 is a precompile call)
    // would take the prank.
    function _propose(uint256 id, uint256 round) internal {
        bytes32 digest = _digest(round);
        vm.prank(learners[_proposer(round)]);
        cl.propose(id, round, CID, digest);
    }

    function _vote(uint256 id, uint256 round, uint256 i, bool approve) internal {
        bytes32 digest = _digest(round);
        vm.prank(learners[i]);
        cl.vote(id, round, digest, approve, SCORE);
    }

    /// @dev An experiment of 3 rounds on `t`, every learner joined, round 0 proposed.
    function _proposed(ICollectiveLearning.ExperimentTerms memory t) internal returns (uint256 id) {
        id = _create(3, t);
        _joinAll(id);
        _propose(id, 0);
    }

    function _assertModelRound(uint256 id, uint256 round, string memory why) internal view {
        (, uint256 modelRound) = cl.currentModel(id);
        assertEq(modelRound, round, why);
    }

    function _assertState(uint256 id, ICollectiveLearning.RoundState state, string memory why) internal view {
        assertEq(uint256(cl.state(id)), uint256(state), why);
    }

    /// @dev The next call reverts: round `round` is in state `actual`, the call wants `expected`.
    function _expectUnexpectedState(
        uint256 id,
        uint256 round,
        ICollectiveLearning.RoundState actual,
        ICollectiveLearning.RoundState expected
    ) internal {
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.UnexpectedRoundState.selector, id, round, actual, expected));
    }

    function _salt(uint256 round, uint256 i) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", round, i));
    }

    function _commitment(uint256 id, uint256 round, uint256 i, bool approve) internal view returns (bytes32) {
        return cl.commitmentOf(id, round, learners[i], _digest(round), approve, SCORE, _salt(round, i));
    }

    function _commit(uint256 id, uint256 round, uint256 i, bool approve) internal {
        bytes32 c = _commitment(id, round, i, approve);
        vm.prank(learners[i]);
        cl.commitVote(id, round, c);
    }

    function _reveal(uint256 id, uint256 round, uint256 i, bool approve) internal {
        vm.prank(learners[i]);
        cl.revealVote(id, round, approve, SCORE, _salt(round, i));
    }

    function _domainSeparator() internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("CollectiveLearning"),
                keccak256("2"),
                block.chainid,
                address(cl)
            )
        );
    }

    function _typed(bytes32 structHash) internal view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", _domainSeparator(), structHash));
    }

    function _signedVote(uint256 id, uint256 round, bytes32 digest, uint256 i, bool approve)
        internal
        view
        returns (ICollectiveLearning.SignedVote memory v)
    {
        bytes32 h = _typed(keccak256(abi.encode(cl.VOTE_TYPEHASH(), id, round, digest, approve, SCORE)));
        (bytes32 r, bytes32 vs) = vm.signCompact(keys[i], h);
        v = ICollectiveLearning.SignedVote({learnerIndex: i, approve: approve, score: SCORE, r: r, vs: vs});
    }

    function _signedCommit(uint256 id, uint256 round, uint256 i, bool approve)
        internal
        view
        returns (ICollectiveLearning.SignedCommit memory c)
    {
        bytes32 commitment = _commitment(id, round, i, approve);
        bytes32 h = _typed(keccak256(abi.encode(cl.COMMIT_TYPEHASH(), id, round, commitment)));
        (bytes32 r, bytes32 vs) = vm.signCompact(keys[i], h);
        c = ICollectiveLearning.SignedCommit({learnerIndex: i, commitment: commitment, r: r, vs: vs});
    }

    function _opening(uint256 round, uint256 i, bool approve) internal pure returns (ICollectiveLearning.Reveal memory) {
        return ICollectiveLearning.Reveal({learnerIndex: i, approve: approve, score: SCORE, salt: _salt(round, i)});
    }

    /// @dev The indices of every learner but the proposer of `round`.
    function _voters(uint256 round) internal view returns (uint256[] memory voters) {
        uint256 n = learners.length;
        voters = new uint256[](n - 1);
        uint256 k = 0;
        for (uint256 i = 0; i < n; ++i) {
            if (i != _proposer(round)) voters[k++] = i;
        }
    }

    /// @dev Signed votes of every voter of `round`.
    function _signedVotes(uint256 id, uint256 round, bool approve)
        internal
        view
        returns (ICollectiveLearning.SignedVote[] memory votes)
    {
        uint256[] memory voters = _voters(round);
        votes = new ICollectiveLearning.SignedVote[](voters.length);
        for (uint256 k = 0; k < voters.length; ++k) votes[k] = _signedVote(id, round, _digest(round), voters[k], approve);
    }

    function _signedCommits(uint256 id, uint256 round, bool approve)
        internal
        view
        returns (ICollectiveLearning.SignedCommit[] memory commits)
    {
        uint256[] memory voters = _voters(round);
        commits = new ICollectiveLearning.SignedCommit[](voters.length);
        for (uint256 k = 0; k < voters.length; ++k) commits[k] = _signedCommit(id, round, voters[k], approve);
    }

    function _openings(uint256 round, bool approve) internal view returns (ICollectiveLearning.Reveal[] memory reveals) {
        uint256[] memory voters = _voters(round);
        reveals = new ICollectiveLearning.Reveal[](voters.length);
        for (uint256 k = 0; k < voters.length; ++k) reveals[k] = _opening(round, voters[k], approve);
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

// Stake and rewards: deposits, the three penalties, the pool split, pull withdrawals, refunds.
// Expected amounts are recomputed here from the rules of PROTOCOL.md, to the wei.

import {ICollectiveLearning} from "../ICollectiveLearning.sol";
import {Fixture} from "./Fixture.sol";
import {FeeOnTransferToken} from "./Tokens.sol";

/// A learner whose receive() tries to withdraw again: the reentrancy guard refuses, so the
/// ETH transfer fails and the whole withdrawal reverts; nothing moves twice.
contract ReentrantLearner {
    ICollectiveLearning internal immutable cl;
    uint256 internal id;
    bool internal attack;

    constructor(ICollectiveLearning target) {
        cl = target;
    }

    function join(uint256 experimentId) external payable {
        id = experimentId;
        cl.join{value: msg.value}(experimentId);
    }

    function withdraw(bool reenter) external returns (uint256) {
        attack = reenter;
        return cl.withdraw(id);
    }

    receive() external payable {
        if (attack) cl.withdraw(id);
    }
}

contract StakeTest is Fixture {
    uint256 internal constant STAKE = 100e18 + 7;
    uint256 internal constant POOL = 1000e18 + 13;
    uint256 internal constant MISSED = 10e18;
    uint256 internal constant UNREVEALED = 5e18;
    uint256 internal constant REJECTED = 20e18;

    function setUp() public override {
        super.setUp();
        _makeLearners(4);
    }

    function _terms(address tokenAddress) internal pure returns (ICollectiveLearning.ExperimentTerms memory t) {
        t.revealTimeout = T;
        t.token = tokenAddress;
        t.stake = STAKE;
        t.rewardPool = POOL;
        t.missedProposalPenalty = MISSED;
        t.unrevealedVotePenalty = UNREVEALED;
        t.rejectedProposalPenalty = REJECTED;
        t.rejectionShareBps = 6000; // 2 of the 3 voters rejecting make a rejected proposal penalised
        t.proposerShareBps = 3000;
    }

    /// A staked, sealed experiment with one poisoning proposer (learner 1), one voter that
    /// does not reveal (learner 3, round 0) and one missed proposal (learner 2): every
    /// withdrawal equals stake - penalties + shares, to the wei.
    function test_stakedSealedExperiment_payoutsToTheWei() public {
        uint256 id = _create(4, _terms(address(token)));
        _joinAll(id);
        assertEq(token.balanceOf(address(cl)), POOL + 4 * STAKE, "deposits");
        // Round 0: proposer 0; 1 and 2 approve; 3 commits and never reveals.
        _propose(id, 0);
        for (uint256 i = 1; i < 4; ++i) _commit(id, 0, i, true);
        _reveal(id, 0, 1, true);
        _reveal(id, 0, 2, true);
        vm.warp(cl.deadline(id));
        cl.decide(id, 0);
        // Round 1: the poisoner's proposal is rejected by all three.
        _propose(id, 1);
        for (uint256 i = 0; i < 4; ++i) if (i != 1) _commit(id, 1, i, false);
        for (uint256 i = 0; i < 4; ++i) if (i != 1) _reveal(id, 1, i, false);
        // Round 2: proposer 2 misses its slot.
        vm.warp(cl.deadline(id));
        cl.expire(id, 2);
        // Round 3: proposer 3; everyone approves.
        _propose(id, 3);
        for (uint256 i = 0; i < 3; ++i) _commit(id, 3, i, true);
        for (uint256 i = 0; i < 3; ++i) _reveal(id, 3, i, true);
        _assertState(id, ICollectiveLearning.RoundState.Completed, "completed");

        uint256[4] memory penalties = [uint256(0), REJECTED, MISSED, UNREVEALED];
        uint256[4] memory proposerShares = [uint256(1), 0, 0, 1];
        uint256[4] memory voterShares = [uint256(2), 2, 3, 1];
        uint256 pool = POOL + REJECTED + MISSED + UNREVEALED;
        uint256 proposerPart = pool * 3000 / 10000;
        uint256 voterPart = pool - proposerPart;
        uint256 paid;
        for (uint256 i = 0; i < 4; ++i) {
            uint256 expected = STAKE - penalties[i] + proposerPart * proposerShares[i] / 2 + voterPart * voterShares[i] / 8;
            assertEq(cl.accountOf(id, learners[i]).owed, expected, "owed");
            vm.prank(learners[i]);
            assertEq(cl.withdraw(id), expected, "withdrawn");
            assertEq(token.balanceOf(learners[i]), expected, "balance");
            paid += expected;
        }
        vm.prank(CREATOR);
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.NothingToWithdraw.selector, id, CREATOR));
        cl.withdraw(id); // both parts had shareholders
        uint256 dust = POOL + 4 * STAKE - paid;
        assertEq(token.balanceOf(address(cl)), dust, "only dust stays");
        assertLe(dust, 4, "dust under one wei a shareholder and part");
        vm.prank(learners[0]);
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.NothingToWithdraw.selector, id, learners[0]));
        cl.withdraw(id);
    }

    /// ETH: every proposal slot missed, so nobody earns a share: the creator gets the pool
    /// back, with the penalties; a penalty never exceeds what is left of a stake.
    function test_eth_noShares_poolBackToCreator_penaltiesCapped() public {
        ICollectiveLearning.ExperimentTerms memory t = _terms(address(0));
        t.revealTimeout = 0;
        t.missedProposalPenalty = STAKE - 1; // the second miss of learner 0 takes only 1 wei
        uint256 id = _create(5, t);
        vm.prank(learners[0]);
        vm.deal(learners[0], STAKE);
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.WrongValue.selector, STAKE, 1));
        cl.join{value: 1}(id);
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.SignedJoinNeedsToken.selector, id));
        cl.joinBySig(id, 0, bytes32(0), bytes32(0));
        _joinAll(id);
        for (uint256 r = 0; r < 5; ++r) {
            vm.warp(cl.deadline(id));
            cl.expire(id, r);
        }
        // learner 0 missed rounds 0 and 4: STAKE - 1, then 1.
        assertEq(cl.accountOf(id, learners[0]).penalties, STAKE, "capped at the stake");
        vm.prank(learners[0]);
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.NothingToWithdraw.selector, id, learners[0]));
        cl.withdraw(id);
        vm.prank(learners[1]);
        assertEq(cl.withdraw(id), 1, "stake minus its penalty");
        vm.prank(CREATOR);
        assertEq(cl.withdraw(id), POOL + STAKE + 3 * (STAKE - 1), "pool and penalties");
        for (uint256 i = 2; i < 4; ++i) {
            vm.prank(learners[i]);
            cl.withdraw(id);
        }
        assertEq(address(cl).balance, 0, "all paid out");
    }

    function test_cancel_refundsEveryDeposit() public {
        uint256 id = _create(3, _terms(address(token)));
        for (uint256 i = 0; i < 3; ++i) {
            _fund(id, i);
            vm.prank(learners[i]);
            cl.join(id);
        }
        vm.prank(learners[0]);
        vm.expectRevert(abi.encodeWithSelector(
            ICollectiveLearning.NotFinished.selector, id, ICollectiveLearning.RoundState.Joining
        ));
        cl.withdraw(id);
        vm.warp(cl.deadline(id));
        cl.cancel(id);
        for (uint256 i = 0; i < 3; ++i) {
            vm.prank(learners[i]);
            assertEq(cl.withdraw(id), STAKE, "stake back");
        }
        vm.prank(learners[3]);
        vm.expectRevert(abi.encodeWithSelector(ICollectiveLearning.NothingToWithdraw.selector, id, learners[3]));
        cl.withdraw(id);
        vm.prank(CREATOR);
        assertEq(cl.withdraw(id), POOL, "pool back");
        assertEq(token.balanceOf(address(cl)), 0, "nothing left");
    }

    function test_feeOnTransferTokenRefused() public {
        FeeOnTransferToken fee = new FeeOnTransferToken();
        ICollectiveLearning.ExperimentTerms memory t = _terms(address(fee));
        fee.mint(CREATOR, POOL);
        vm.prank(CREATOR);
        fee.approve(address(cl), POOL);
        bytes32 d = _digest(9);
        vm.prank(CREATOR);
        vm.expectRevert(abi.encodeWithSelector(
            ICollectiveLearning.FeeOnTransferToken.selector, address(fee), POOL, POOL - POOL / 100
        ));
        cl.createExperiment(learners, 5000, 1, T, T, CID, d, "", T, t);
        // With no pool the creation passes; the first stake is refused.
        t.rewardPool = 0;
        vm.prank(CREATOR);
        uint256 id = cl.createExperiment(learners, 5000, 1, T, T, CID, d, "", T, t);
        fee.mint(learners[0], STAKE);
        vm.prank(learners[0]);
        fee.approve(address(cl), STAKE);
        vm.prank(learners[0]);
        vm.expectRevert(abi.encodeWithSelector(
            ICollectiveLearning.FeeOnTransferToken.selector, address(fee), STAKE, STAKE - STAKE / 100
        ));
        cl.join(id);
    }

    function test_signedJoin_pullsTheSignersTokens() public {
        uint256 id = _create(1, _terms(address(token)));
        token.mint(learners[2], STAKE);
        vm.prank(learners[2]);
        token.approve(address(cl), STAKE);
        bytes32 h = _typed(keccak256(abi.encode(cl.JOIN_TYPEHASH(), id)));
        (bytes32 r, bytes32 vs) = vm.signCompact(keys[2], h);
        vm.prank(address(0xBEEF)); // a relayer with no tokens
        cl.joinBySig(id, 2, r, vs);
        assertEq(token.balanceOf(learners[2]), 0, "stake pulled from the signer");
        assertEq(token.balanceOf(address(cl)), POOL + STAKE, "deposited");
    }

    function test_reentrantWithdrawRefused() public {
        ReentrantLearner attacker = new ReentrantLearner(cl);
        learners[3] = address(attacker);
        uint256 id = _create(1, _terms(address(0)));
        vm.deal(address(this), STAKE);
        attacker.join{value: STAKE}(id);
        vm.warp(cl.deadline(id)); // the others never joined
        cl.cancel(id);
        vm.expectRevert(); // the guard refuses the inner call, so the ETH transfer fails
        attacker.withdraw(true);
        assertEq(attacker.withdraw(false), STAKE, "withdraws once, normally");
        assertEq(address(cl).balance, POOL, "the pool stays for the creator");
    }
}

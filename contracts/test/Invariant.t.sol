// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

// Invariant tests: a handler makes bounded random calls (create, join, propose, vote, signed
// batch, commit, reveal, decide, expire, cancel, withdraw, warp) on a few experiments of every
// kind (plain or sealed; no stake, ETH or ERC-20 stake), and after every call:
// (a) the contract's ETH and token balances equal deposits minus withdrawals;
// (b) no experiment paid out more than was deposited into it, no learner more than its stake
//     plus the whole pool, and once everyone of a finished experiment withdrew, what stays is
//     rounding dust (under one wei per shareholder and pool part);
// (c) the current round's tallies and commitment count equal the votes and commitments cast.

import {CollectiveLearning} from "../CollectiveLearning.sol";
import {ICollectiveLearning} from "../ICollectiveLearning.sol";
import {Fixture} from "./Fixture.sol";
import {MockToken} from "./Tokens.sol";

struct FuzzSelector {
    address addr;
    bytes4[] selectors;
}

contract Handler is Fixture {
    uint256[] public ids;
    mapping(uint256 => uint256) public deposited;
    mapping(uint256 => uint256) public withdrawn;
    mapping(uint256 => uint256) public withdrawals; // accounts that withdrew
    mapping(uint256 => uint256) public ghostRound;
    mapping(uint256 => uint256) public ghostCounted;
    mapping(uint256 => uint256) public ghostCommits;
    uint256 public ethIn;
    uint256 public ethOut;
    uint256 public tokenIn;
    uint256 public tokenOut;
    bool public overpaid;

    constructor(CollectiveLearning target, MockToken t) {
        cl = target;
        token = t;
        _makeLearners(4);
    }

    mapping(uint256 => bool) public creatorWithdrew;

    /// The fuzzer may call any public function: this one must not redeploy.
    function setUp() public override {}

    function learnerAt(uint256 i) external view returns (address) {
        return learners[i];
    }

    function idCount() external view returns (uint256) {
        return ids.length;
    }

    function _pick(uint256 seed) internal view returns (uint256) {
        return ids[seed % ids.length];
    }

    function _track(uint256 id) internal {
        uint256 round = cl.getExperiment(id).round;
        if (round != ghostRound[id]) {
            ghostRound[id] = round;
            ghostCounted[id] = 0;
            ghostCommits[id] = 0;
        }
    }

    function create(uint256 seed) external {
        if (ids.length >= 4) return;
        ICollectiveLearning.ExperimentTerms memory t;
        if (seed % 2 == 1) t.revealTimeout = T;
        uint256 kind = (seed >> 8) % 3; // 0: no stake, 1: ETH, 2: token
        if (kind != 0) {
            t.token = kind == 2 ? address(token) : address(0);
            t.stake = 1e18 + (seed >> 16) % 1e9;
            t.rewardPool = 10e18 + (seed >> 48) % 1e9;
            t.missedProposalPenalty = (seed >> 80) % 2e18;
            t.unrevealedVotePenalty = (seed >> 96) % 2e18;
            t.rejectedProposalPenalty = (seed >> 112) % 2e18;
            t.rejectionShareBps = (seed >> 128) % 10001;
            t.proposerShareBps = (seed >> 144) % 10001;
        }
        uint256 id = _create(1 + (seed >> 160) % 3, t);
        ids.push(id);
        deposited[id] += t.rewardPool;
        if (t.token == address(0)) ethIn += t.rewardPool;
        else tokenIn += t.rewardPool;
    }

    function join(uint256 seed, uint256 who) external {
        if (ids.length == 0) return;
        uint256 id = _pick(seed);
        uint256 i = who % learners.length;
        uint256 value = _fund(id, i);
        ICollectiveLearning.StakeView memory s = cl.stakeOf(id);
        vm.prank(learners[i]);
        try cl.join{value: value}(id) {
            deposited[id] += s.stake;
            if (s.token == address(0)) ethIn += s.stake;
            else tokenIn += s.stake;
        } catch {}
        _track(id);
    }

    /// Runs `action` on the current round of a picked experiment and keeps the ghost tallies:
    /// `action` returns the votes it counted and the commitments it recorded (0 if it reverted);
    /// counted votes stand only if they did not end the round.
    function _onRound(
        uint256 seed,
        uint256 who,
        bool approve,
        function(uint256, uint256, uint256, bool) internal returns (uint256, uint256) action
    ) internal {
        if (ids.length == 0) return;
        uint256 id = _pick(seed);
        uint256 round = cl.getExperiment(id).round;
        (uint256 counted, uint256 committed) = action(id, round, who % learners.length, approve);
        if (counted != 0 && cl.getExperiment(id).round == round) ghostCounted[id] += counted;
        ghostCommits[id] += committed;
        _track(id);
    }

    function propose(uint256 seed) external {
        _onRound(seed, 0, false, _tryPropose);
    }

    function vote(uint256 seed, uint256 who, bool approve) external {
        _onRound(seed, who, approve, _tryVote);
    }

    function voteBatch(uint256 seed, bool approve) external {
        _onRound(seed, 0, approve, _tryVoteBatch);
    }

    function commit(uint256 seed, uint256 who, bool approve) external {
        _onRound(seed, who, approve, _tryCommit);
    }

    function commitBatch(uint256 seed, bool approve) external {
        _onRound(seed, 0, approve, _tryCommitBatch);
    }

    function reveal(uint256 seed, uint256 who, bool approve) external {
        _onRound(seed, who, approve, _tryReveal);
    }

    function revealBatch(uint256 seed, bool approve) external {
        _onRound(seed, 0, approve, _tryRevealBatch);
    }

    function close(uint256 seed) external {
        _onRound(seed, 0, false, _tryClose);
    }

    function _tryPropose(uint256 id, uint256 round, uint256, bool) internal returns (uint256, uint256) {
        bytes32 digest = _digest(round);
        vm.prank(learners[_proposer(round)]);
        try cl.propose(id, round, CID, digest) {} catch {}
        return (0, 0);
    }

    function _tryVote(uint256 id, uint256 round, uint256 i, bool approve) internal returns (uint256 counted, uint256) {
        bytes32 digest = _digest(round);
        vm.prank(learners[i]);
        try cl.vote(id, round, digest, approve, SCORE) {
            counted = 1;
        } catch {}
    }

    function _tryVoteBatch(uint256 id, uint256 round, uint256, bool approve) internal returns (uint256 counted, uint256) {
        ICollectiveLearning.SignedVote[] memory votes = _signedVotes(id, round, approve);
        bytes32 digest = _digest(round);
        try cl.castVotesBySig(id, round, digest, learners, votes) returns (uint256 n) {
            counted = n;
        } catch {}
    }

    function _tryCommit(uint256 id, uint256 round, uint256 i, bool approve) internal returns (uint256, uint256 committed) {
        bytes32 c = _commitment(id, round, i, approve);
        vm.prank(learners[i]);
        try cl.commitVote(id, round, c) {
            committed = 1;
        } catch {}
    }

    function _tryCommitBatch(uint256 id, uint256 round, uint256, bool approve) internal returns (uint256, uint256 committed) {
        ICollectiveLearning.SignedCommit[] memory commits = _signedCommits(id, round, approve);
        try cl.commitVotesBySig(id, round, learners, commits) returns (uint256 n) {
            committed = n;
        } catch {}
    }

    function _tryReveal(uint256 id, uint256 round, uint256 i, bool approve) internal returns (uint256 counted, uint256) {
        vm.prank(learners[i]);
        try cl.revealVote(id, round, approve, SCORE, _salt(round, i)) {
            counted = 1;
        } catch {}
    }

    function _tryRevealBatch(uint256 id, uint256 round, uint256, bool approve) internal returns (uint256 counted, uint256) {
        ICollectiveLearning.Reveal[] memory reveals = _openings(round, approve);
        try cl.revealVotes(id, round, learners, reveals) returns (uint256 n) {
            counted = n;
        } catch {}
    }

    function _tryClose(uint256 id, uint256 round, uint256, bool) internal returns (uint256, uint256) {
        try cl.decide(id, round) {} catch {}
        try cl.expire(id, round) {} catch {}
        try cl.cancel(id) {} catch {}
        return (0, 0);
    }

    function withdraw(uint256 seed, uint256 who) external {
        if (ids.length == 0) return;
        uint256 id = _pick(seed);
        address account = who % 5 == 4 ? CREATOR : learners[who % 4];
        ICollectiveLearning.StakeView memory s = cl.stakeOf(id);
        vm.prank(account);
        try cl.withdraw(id) returns (uint256 amount) {
            withdrawn[id] += amount;
            withdrawals[id] += 1;
            if (account == CREATOR) creatorWithdrew[id] = true;
            if (s.token == address(0)) ethOut += amount;
            else tokenOut += amount;
            // No learner gets more than its stake plus the whole pool (the creator: the pool).
            if (amount > s.stake + s.pool) overpaid = true;
        } catch {}
    }

    /// The sensible next step of an experiment, so that runs reach completion and withdrawals.
    function drive(uint256 seed, bool approve) external {
        if (ids.length == 0) return;
        uint256 id = _pick(seed);
        ICollectiveLearning.RoundState st = cl.state(id);
        if (st == ICollectiveLearning.RoundState.Joining) {
            for (uint256 i = 0; i < learners.length; ++i) this.join(seed, i);
        } else if (st == ICollectiveLearning.RoundState.Proposing) {
            this.propose(seed);
        } else if (st == ICollectiveLearning.RoundState.Voting) {
            if (cl.getExperiment(id).revealTimeout == 0) this.voteBatch(seed, approve);
            else this.commitBatch(seed, approve);
        } else if (st == ICollectiveLearning.RoundState.Revealing) {
            this.revealBatch(seed, approve);
        } else if (st == ICollectiveLearning.RoundState.Completed || st == ICollectiveLearning.RoundState.Cancelled) {
            for (uint256 who = 0; who < 5; ++who) this.withdraw(seed, who);
        } else {
            this.close(seed);
        }
    }

    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + seconds_ % (2 * T));
    }
}

contract InvariantTest is Fixture {
    Handler internal handler;

    function setUp() public override {
        super.setUp();
        handler = new Handler(cl, token);
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// The handler's actions only (not its getters).
    function targetSelectors() public view returns (FuzzSelector[] memory selectors) {
        bytes4[14] memory actions = [
            Handler.create.selector, Handler.join.selector, Handler.propose.selector, Handler.vote.selector,
            Handler.voteBatch.selector, Handler.commit.selector, Handler.commitBatch.selector, Handler.reveal.selector,
            Handler.revealBatch.selector, Handler.close.selector, Handler.withdraw.selector, Handler.warp.selector,
            Handler.drive.selector, Handler.drive.selector // drive twice: twice as likely
        ];
        selectors = new FuzzSelector[](1);
        selectors[0] = FuzzSelector({addr: address(handler), selectors: new bytes4[](actions.length)});
        for (uint256 i = 0; i < actions.length; ++i) selectors[0].selectors[i] = actions[i];
    }

    /// (a) balances equal deposits minus withdrawals.
    function invariant_balancesEqualDepositsMinusWithdrawals() public view {
        assertEq(address(cl).balance, handler.ethIn() - handler.ethOut(), "ETH");
        assertEq(token.balanceOf(address(cl)), handler.tokenIn() - handler.tokenOut(), "token");
    }

    /// (b) nobody paid more than owed; everything but dust paid out once everyone withdrew.
    function invariant_payoutsBounded() public view {
        assertTrue(!handler.overpaid(), "an account got more than its stake and the pool");
        for (uint256 k = 0; k < handler.idCount(); ++k) {
            uint256 id = handler.ids(k);
            uint256 d = handler.deposited(id);
            uint256 w = handler.withdrawn(id);
            assertLe(w, d, "paid out <= deposited");
            ICollectiveLearning.RoundState s = cl.state(id);
            bool finished = s == ICollectiveLearning.RoundState.Completed || s == ICollectiveLearning.RoundState.Cancelled;
            if (finished && _everyoneWithdrew(id)) assertLe(d - w, 2 * learners_() , "only dust stays");
        }
    }

    /// (c) tallies equal the votes cast in the current round; the commitment count, the commitments.
    function invariant_talliesEqualVotes() public view {
        for (uint256 k = 0; k < handler.idCount(); ++k) {
            uint256 id = handler.ids(k);
            ICollectiveLearning.ExperimentView memory v = cl.getExperiment(id);
            if (v.round != handler.ghostRound(id)) continue; // not touched since it advanced
            assertEq(v.approvals + v.rejections, handler.ghostCounted(id), "tallies");
            assertEq(v.commitments, handler.ghostCommits(id), "commitments");
        }
    }

    function learners_() internal pure returns (uint256) {
        return 4;
    }

    /// Whether every account with something owed withdrew (learners: the contract's
    /// accountOf; the creator: cancelled, the reward pool; completed, a part with no share).
    function _everyoneWithdrew(uint256 id) internal view returns (bool) {
        for (uint256 i = 0; i < 4; ++i) {
            if (cl.accountOf(id, handler.learnerAt(i)).owed != 0) return false;
        }
        ICollectiveLearning.StakeView memory s = cl.stakeOf(id);
        bool cancelled = cl.state(id) == ICollectiveLearning.RoundState.Cancelled;
        bool creatorOwed = cancelled ? s.rewardPool != 0 : (s.pool != 0 && (s.proposerShares == 0 || s.voterShares == 0));
        return !creatorOwed || handler.creatorWithdrew(id);
    }
}

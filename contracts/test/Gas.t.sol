// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

// The gas bounds of issue 13, as transaction gas: every test runs isolated (each call from the
// test is its own transaction), and vm.lastCallGas() reports the transaction's gas, the 21,000
// base and calldata included, as a receipt's gasUsed does. Rounds are measured like
// `colearn bench gas`: round 0 is the first round (first writes of zero slots), round 1 a
// steady round; the bounds hold for steady rounds and are reported for both.

import {ICollectiveLearning} from "../ICollectiveLearning.sol";
import {Fixture} from "./Fixture.sol";

contract GasTest is Fixture {
    event GasUsed(string what, uint256 gas);

    uint256 internal constant PLAIN_ROUND_OF_5_MAX = 200_000;
    uint256 internal constant JOIN_MAX = 50_000;
    uint256 internal constant SEALED_ROUND_OF_5_MAX = 400_000;
    uint256 internal constant BATCHED_COMMIT_OR_REVEAL_MAX = 12_000;

    function _last() internal view returns (uint256) {
        return vm.lastCallGas().gasTotalUsed;
    }

    function _joinMeasured(uint256 id) internal returns (uint256 most) {
        for (uint256 i = 0; i < learners.length; ++i) {
            uint256 value = _fund(id, i);
            vm.prank(learners[i]);
            cl.join{value: value}(id);
            uint256 g = _last();
            if (g > most) most = g;
        }
    }

    /// @dev Round `round` from its proposal to its decision, every voter approving (sealed: all
    /// commit, then all reveal); the gas of all its transactions.
    function _round(uint256 id, uint256 round, bool sealed_) internal returns (uint256 total) {
        _propose(id, round);
        total = _last();
        uint256[] memory voters = _voters(round);
        for (uint256 k = 0; k < voters.length; ++k) {
            if (sealed_) _commit(id, round, voters[k], true);
            else _vote(id, round, voters[k], true);
            total += _last();
        }
        if (!sealed_) return total;
        for (uint256 k = 0; k < voters.length; ++k) {
            _reveal(id, round, voters[k], true);
            total += _last();
        }
    }

    /// @dev Creates an experiment of 5 learners on `t`, every learner joins, and rounds 0 and 1
    /// run; reports each as named (`rounds`: both rounds' name). Returns the costliest join and
    /// the steady round.
    function _measureRounds(
        ICollectiveLearning.ExperimentTerms memory t,
        string memory create,
        string memory join,
        string memory rounds
    ) internal returns (uint256 joinGas, uint256 steady) {
        _makeLearners(5);
        uint256 id = _create(10, t);
        emit GasUsed(create, _last());
        joinGas = _joinMeasured(id);
        emit GasUsed(join, joinGas);
        bool sealed_ = t.revealTimeout != 0;
        emit GasUsed(string.concat(rounds, ", first (round 0)"), _round(id, 0, sealed_));
        steady = _round(id, 1, sealed_);
        emit GasUsed(string.concat(rounds, ", steady (round 1)"), steady);
    }

    /// forge-config: default.isolate = true
    function test_gas_plainRoundOfFive_and_join() public {
        (uint256 join, uint256 steady) =
            _measureRounds(_plain(), "create, 5 learners, plain", "join without stake (most of 5)", "plain round of 5");
        assertLe(steady, PLAIN_ROUND_OF_5_MAX, "plain round of 5");
        assertLe(join, JOIN_MAX, "join without stake");
    }

    /// forge-config: default.isolate = true
    function test_gas_sealedRoundOfFive() public {
        (, uint256 steady) =
            _measureRounds(_sealed(), "create, 5 learners, sealed", "join, sealed, no stake (most of 5)", "sealed round of 5");
        assertLe(steady, SEALED_ROUND_OF_5_MAX, "sealed round of 5");
    }

    /// forge-config: default.isolate = true
    function test_gas_stakedSealedRoundOfFive_erc20() public {
        ICollectiveLearning.ExperimentTerms memory t = _sealed();
        t.token = address(token);
        t.stake = 100e18;
        t.rewardPool = 1000e18;
        t.missedProposalPenalty = 10e18;
        t.unrevealedVotePenalty = 5e18;
        t.rejectedProposalPenalty = 20e18;
        t.rejectionShareBps = 7500;
        t.proposerShareBps = 5000;
        _measureRounds(
            t, "create with ERC-20 stake and pool, 5 learners", "join with ERC-20 stake (most of 5)", "staked sealed round of 5"
        );
    }

    /// forge-config: default.isolate = true
    function test_gas_stakedPlain_eth() public {
        ICollectiveLearning.ExperimentTerms memory t;
        t.stake = 1 ether;
        t.rewardPool = 10 ether;
        t.proposerShareBps = 5000;
        _measureRounds(t, "create with ETH stake and pool, 5 learners", "join with ETH stake (most of 5)", "staked plain round of 5");
    }

    /// forge-config: default.isolate = true
    function test_gas_batchesOf99() public {
        _makeLearners(100);
        uint256 plain = _create(10, _plain());
        _joinAll(plain);
        for (uint256 round = 0; round < 2; ++round) {
            string memory r = round == 0 ? ", round 0" : ", round 1";
            _propose(plain, round);
            ICollectiveLearning.SignedVote[] memory votes = _signedVotes(plain, round, true);
            bytes32 digest = _digest(round);
            cl.castVotesBySig(plain, round, digest, learners, votes);
            emit GasUsed(string.concat("signed vote batch of 99, whole", r), _last());
            emit GasUsed(string.concat("signed vote in a batch of 99", r), _perItem(_last()));
        }
        uint256 id = _create(10, _sealed());
        _joinAll(id);
        uint256 most;
        for (uint256 round = 0; round < 2; ++round) {
            string memory r = round == 0 ? ", round 0" : ", round 1";
            _propose(id, round);
            ICollectiveLearning.SignedCommit[] memory commits = _signedCommits(id, round, true);
            cl.commitVotesBySig(id, round, learners, commits);
            emit GasUsed(string.concat("signed commit batch of 99, whole", r), _last());
            uint256 commit = _perItem(_last());
            ICollectiveLearning.Reveal[] memory reveals = _openings(round, true);
            cl.revealVotes(id, round, learners, reveals);
            emit GasUsed(string.concat("reveal batch of 99, whole", r), _last());
            uint256 reveal = _perItem(_last());
            emit GasUsed(string.concat("signed commit in a batch of 99", r), commit);
            emit GasUsed(string.concat("reveal in a batch of 99", r), reveal);
            if (round == 1) most = commit > reveal ? commit : reveal;
        }
        assertLe(most, BATCHED_COMMIT_OR_REVEAL_MAX, "batched commit or reveal");
    }

    /// EIP-7825: creating an experiment of MAX_LEARNERS learners, staked and sealed, fits one
    /// transaction's gas cap of 2^24.
    /// forge-config: default.isolate = true
    function test_gas_createLargest() public {
        _makeLearners(500);
        ICollectiveLearning.ExperimentTerms memory t = _sealed();
        t.token = address(token);
        t.stake = 1e18;
        t.rewardPool = 1e18;
        _create(1, t);
        emit GasUsed("create, 500 learners, sealed, ERC-20 stake", _last());
        assertLe(_last(), 1 << 24, "EIP-7825 cap");
    }

    /// EIP-170: the deployed runtime stays under 24,576 bytes.
    function test_codeSize() public {
        emit GasUsed("runtime bytes", address(cl).code.length);
        assertLe(address(cl).code.length, 24_576, "EIP-170");
    }

    function _perItem(uint256 batchGas) internal pure returns (uint256) {
        return (batchGas + 98) / 99;
    }
}

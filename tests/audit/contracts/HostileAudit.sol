// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ICollectiveLearning} from "contracts/ICollectiveLearning.sol";

/**
 * @title HostileAudit
 * @notice A test-only contract that `colearn audit` is pointed at (tests/audit/test_audit_hostile.py):
 * it emits CollectiveLearning's events (declared once, in ICollectiveLearning) with their real
 * signatures but whatever values a test asks for (huge round numbers, no learners, a decision
 * before its proposal, penalties, deposits and withdrawals nobody owes), raw logs with any
 * topics and data (short data, wrong topic counts, a penalty reason out of the enum), and
 * answers any view with whatever bytes a test sets, or reverts with them.
 */
contract HostileAudit {
    struct Answer {
        bool reverts;
        bytes data;
    }

    mapping(bytes4 selector => Answer) private _answers;

    /// @notice From now on a call with `selector` returns `data` as is (or reverts with it).
    function answer(bytes4 selector, bool reverts, bytes calldata data) external {
        _answers[selector] = Answer(reverts, data);
    }

    /// @notice ExperimentCreated (`numbers`: threshold, rounds, proposal, voting and join
    /// timeouts); with `start`, every learner's join and the start follow (as when all join in
    /// the creation's block).
    function created(
        uint256 experimentId,
        address[] calldata learners,
        uint256[5] calldata numbers,
        string calldata initialCid,
        bytes32 initialDigest,
        ICollectiveLearning.ExperimentTerms calldata terms,
        bool start
    ) external {
        emit ICollectiveLearning.ExperimentCreated(
            experimentId, msg.sender, learners, numbers[0], numbers[1], numbers[2], numbers[3], numbers[4],
            initialCid, initialDigest, "", terms
        );
        if (start) _joinAll(experimentId, learners);
    }

    function _joinAll(uint256 experimentId, address[] calldata learners) private {
        for (uint256 i = 0; i < learners.length; ++i) {
            emit ICollectiveLearning.LearnerJoined(experimentId, learners[i]);
        }
        emit ICollectiveLearning.ExperimentStarted(experimentId);
    }

    function joined(uint256 experimentId, address learner) external {
        emit ICollectiveLearning.LearnerJoined(experimentId, learner);
    }

    function started(uint256 experimentId) external {
        emit ICollectiveLearning.ExperimentStarted(experimentId);
    }

    function cancelled(uint256 experimentId) external {
        emit ICollectiveLearning.ExperimentCancelled(experimentId);
    }

    function proposed(uint256 experimentId, uint256 round, address proposer, string calldata cid, bytes32 digest)
        external
    {
        emit ICollectiveLearning.WeightsProposed(experimentId, round, proposer, cid, digest);
    }

    function voted(uint256 experimentId, uint256 round, address voter, bool approve, int256 score) external {
        emit ICollectiveLearning.VoteCast(experimentId, round, voter, approve, score);
    }

    function decided(uint256 experimentId, uint256 round, bool accepted, uint256 approvals, uint256 rejections)
        external
    {
        emit ICollectiveLearning.RoundDecided(experimentId, round, accepted, approvals, rejections);
    }

    function expired(uint256 experimentId, uint256 round) external {
        emit ICollectiveLearning.RoundExpired(experimentId, round);
    }

    function completed(uint256 experimentId, bytes32 modelDigest, uint256 modelRound) external {
        emit ICollectiveLearning.ExperimentCompleted(experimentId, modelDigest, modelRound);
    }

    function deposited(uint256 experimentId, address account, uint256 amount) external {
        emit ICollectiveLearning.Deposited(experimentId, account, amount);
    }

    function skipped(uint256 experimentId, uint256 round, address voter) external {
        emit ICollectiveLearning.VoteSkipped(experimentId, round, voter);
    }

    function committed(uint256 experimentId, address voter, uint256 round, bytes32 commitment) external {
        emit ICollectiveLearning.VoteCommitted(experimentId, voter, round, commitment);
    }

    function commitsComplete(uint256 experimentId, uint256 round) external {
        emit ICollectiveLearning.CommitsComplete(experimentId, round);
    }

    /// @notice PenaltyTaken with a reason of the enum (a reason out of it: {raw}).
    function penalized(uint256 experimentId, address learner, uint256 round, uint8 reason, uint256 amount)
        external
    {
        emit ICollectiveLearning.PenaltyTaken(experimentId, learner, round, ICollectiveLearning.Penalty(reason), amount);
    }

    function withdrew(uint256 experimentId, address account, uint256 amount) external {
        emit ICollectiveLearning.FundsWithdrawn(experimentId, account, amount);
    }

    /// @notice Emits one log with 0 to 4 `topics` and any `data`.
    function raw(bytes32[] calldata topics, bytes calldata data) external {
        bytes memory d = data;
        uint256 n = topics.length;
        require(n <= 4, "at most 4 topics");
        bytes32[4] memory t;
        for (uint256 i = 0; i < n; ++i) {
            t[i] = topics[i];
        }
        assembly ("memory-safe") {
            let p := add(d, 32)
            let len := mload(d)
            switch n
            case 0 { log0(p, len) }
            case 1 { log1(p, len, mload(t)) }
            case 2 { log2(p, len, mload(t), mload(add(t, 32))) }
            case 3 { log3(p, len, mload(t), mload(add(t, 32)), mload(add(t, 64))) }
            default { log4(p, len, mload(t), mload(add(t, 32)), mload(add(t, 64)), mload(add(t, 96))) }
        }
    }

    /// @notice Runs several of the calls above in one transaction, in order.
    function batch(bytes[] calldata calls) external {
        for (uint256 i = 0; i < calls.length; ++i) {
            (bool ok,) = address(this).delegatecall(calls[i]);
            require(ok, "batched call failed");
        }
    }

    /// @notice Every other call (the views the audit reads): the answer set for its selector.
    fallback(bytes calldata) external returns (bytes memory) {
        Answer storage a = _answers[msg.sig];
        bytes memory data = a.data;
        if (a.reverts) {
            assembly ("memory-safe") {
                revert(add(data, 32), mload(data))
            }
        }
        return data;
    }
}

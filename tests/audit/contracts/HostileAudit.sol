// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/**
 * @title HostileAudit
 * @notice A test-only contract that `colearn audit` is pointed at (tests/test_audit_hostile.py):
 * it emits CollectiveLearning's nine events with their real signatures but whatever
 * values a test asks for (huge round numbers, no learners, a decision before its proposal),
 * raw logs with any topics and data (short data, wrong topic counts), and answers any
 * view with whatever bytes a test sets, or reverts with them.
 */
contract HostileAudit {
    event ExperimentCreated(
        uint256 indexed experimentId,
        address indexed creator,
        address[] learners,
        uint256 thresholdBps,
        uint256 numRounds,
        uint256 proposalTimeout,
        uint256 votingTimeout,
        uint256 joinTimeout,
        string initialCid,
        bytes32 initialDigest,
        string metadataCid
    );
    event LearnerJoined(uint256 indexed experimentId, address indexed learner);
    event ExperimentStarted(uint256 indexed experimentId);
    event ExperimentCancelled(uint256 indexed experimentId);
    event WeightsProposed(
        uint256 indexed experimentId, uint256 indexed round, address indexed proposer, string cid, bytes32 digest
    );
    event VoteCast(
        uint256 indexed experimentId, uint256 indexed round, address indexed voter, bool approve, int256 score
    );
    event RoundDecided(
        uint256 indexed experimentId, uint256 indexed round, bool accepted, uint256 approvals, uint256 rejections
    );
    event RoundExpired(uint256 indexed experimentId, uint256 indexed round);
    event ExperimentCompleted(uint256 indexed experimentId, bytes32 modelDigest, uint256 modelRound);

    struct Answer {
        bool reverts;
        bytes data;
    }

    mapping(bytes4 selector => Answer) private _answers;

    /// @notice From now on a call with `selector` returns `data` as is (or reverts with it).
    function answer(bytes4 selector, bool reverts, bytes calldata data) external {
        _answers[selector] = Answer(reverts, data);
    }

    /// @notice ExperimentCreated; with `start`, every learner's join and the start follow
    /// (as when all join in the creation's block).
    function created(
        uint256 experimentId,
        address[] calldata learners,
        uint256 thresholdBps,
        uint256 numRounds,
        uint256 proposalTimeout,
        uint256 votingTimeout,
        uint256 joinTimeout,
        string calldata initialCid,
        bytes32 initialDigest,
        bool start
    ) external {
        emit ExperimentCreated(
            experimentId, msg.sender, learners, thresholdBps, numRounds, proposalTimeout, votingTimeout,
            joinTimeout, initialCid, initialDigest, ""
        );
        if (start) {
            for (uint256 i = 0; i < learners.length; ++i) {
                emit LearnerJoined(experimentId, learners[i]);
            }
            emit ExperimentStarted(experimentId);
        }
    }

    function joined(uint256 experimentId, address learner) external {
        emit LearnerJoined(experimentId, learner);
    }

    function started(uint256 experimentId) external {
        emit ExperimentStarted(experimentId);
    }

    function cancelled(uint256 experimentId) external {
        emit ExperimentCancelled(experimentId);
    }

    function proposed(uint256 experimentId, uint256 round, address proposer, string calldata cid, bytes32 digest)
        external
    {
        emit WeightsProposed(experimentId, round, proposer, cid, digest);
    }

    function voted(uint256 experimentId, uint256 round, address voter, bool approve, int256 score) external {
        emit VoteCast(experimentId, round, voter, approve, score);
    }

    function decided(uint256 experimentId, uint256 round, bool accepted, uint256 approvals, uint256 rejections)
        external
    {
        emit RoundDecided(experimentId, round, accepted, approvals, rejections);
    }

    function expired(uint256 experimentId, uint256 round) external {
        emit RoundExpired(experimentId, round);
    }

    function completed(uint256 experimentId, bytes32 modelDigest, uint256 modelRound) external {
        emit ExperimentCompleted(experimentId, modelDigest, modelRound);
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
        assembly {
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
            assembly {
                revert(add(data, 32), mload(data))
            }
        }
        return data;
    }
}

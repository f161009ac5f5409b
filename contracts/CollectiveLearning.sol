// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/**
 * @title CollectiveLearning
 * @notice Records collective learning experiments and decides every round on chain.
 *
 * Each round one learner, `learners[round % n]`, proposes new model weights by their
 * content identifier (CID) and sha256 digest; the weights themselves live in a
 * content-addressed store. Every other learner votes once, approve or reject, with
 * its score of the proposal on its private vote set. The round is accepted iff
 * `approvals * 10000 >= thresholdBps * (n - 1)`; a missing vote counts as not
 * approving. A round without a proposal before its deadline can be expired by anyone.
 *
 * A round's state is computed from the stored phase start and the experiment's
 * timeouts (see {state}). Storage keeps what deciding and resuming need; the full
 * history is in the events.
 */
contract CollectiveLearning {
    /// @notice Vote scores are fixed-point integers with 18 decimals: 0.9731 is 973100000000000000.
    uint256 public constant SCORE_SCALE = 1e18;
    /// @notice The score of a reject vote cast because the proposal could not be fetched,
    /// verified or loaded (no score exists for it).
    int256 public constant NO_SCORE = type(int256).min;
    /// @notice Denominator of the vote threshold.
    uint256 public constant BPS = 10_000;
    /// @notice Bounds on the learner list of an experiment.
    uint256 public constant MIN_LEARNERS = 2;
    /// (500 keeps creation under EIP-7825's 2^24 gas cap per transaction.)
    uint256 public constant MAX_LEARNERS = 500;
    /// @notice Largest number of rounds an experiment may have.
    uint256 public constant MAX_ROUNDS = type(uint24).max;

    /// @notice The state of an experiment's current round.
    enum RoundState {
        Proposing, // waiting for the scheduled proposer, before the proposal deadline
        ProposalTimedOut, // no proposal before the deadline: anyone may expire the round
        Voting, // proposal recorded, waiting for votes, before the voting deadline
        VotingTimedOut, // voting deadline passed with votes missing: anyone may decide
        Completed // every round is closed; the current model is final
    }

    /// @dev Configuration and current round in one storage slot (248 bits).
    struct Experiment {
        uint16 numLearners; // 0 marks an experiment that does not exist
        uint16 thresholdBps;
        uint24 numRounds;
        uint32 proposalTimeout;
        uint32 votingTimeout;
        uint24 round; // current round; equals numRounds once complete
        uint40 phaseStart; // round start while proposing, proposal time while voting
        bool proposed;
        uint16 approvals;
        uint16 rejections;
        uint24 modelRound; // 0: the initial model; r + 1: the proposal of round r
    }

    /// @notice Everything an agent reads to decide its next step, from one block (see {roundStatus}).
    struct RoundStatus {
        uint256 round; // current round; equals numRounds once complete
        RoundState state;
        uint256 deadline; // of the current phase (see {deadline})
        bytes32 modelDigest; // the current model
        uint256 modelRound; // 0: the initial model; r + 1: the proposal of round r
        bool voted; // whether `account` has voted in the current round
        uint256 timestamp; // the block's timestamp, the clock of every deadline
        uint256 baseFee; // the block's base fee, for pricing the agent's next transaction
    }

    /// @dev A learner's place in an experiment and its vote in the current round.
    struct Member {
        uint16 indexPlusOne; // 0 marks a non-learner
        uint24 votedRoundPlusOne; // r + 1 after voting in round r
        bool approved;
    }

    uint256 private _experimentCount;
    mapping(uint256 experimentId => Experiment) private _experiments;
    mapping(uint256 experimentId => bytes32) private _modelDigest;
    mapping(uint256 experimentId => bytes32) private _proposalDigest;
    mapping(uint256 experimentId => mapping(address learner => Member)) private _members;

    /// @notice An experiment was created; its configuration is fixed from now on.
    event ExperimentCreated(
        uint256 indexed experimentId,
        address indexed creator,
        address[] learners,
        uint256 thresholdBps,
        uint256 numRounds,
        uint256 proposalTimeout,
        uint256 votingTimeout,
        string initialCid,
        bytes32 initialDigest,
        string metadataCid
    );
    /// @notice The scheduled proposer of `round` proposed weights stored under `cid`.
    event WeightsProposed(
        uint256 indexed experimentId, uint256 indexed round, address indexed proposer, string cid, bytes32 digest
    );
    /// @notice `voter` voted on the proposal of `round`, with its score scaled by {SCORE_SCALE}.
    event VoteCast(
        uint256 indexed experimentId, uint256 indexed round, address indexed voter, bool approve, int256 score
    );
    /// @notice `round` was decided; on acceptance its proposal is the current model.
    event RoundDecided(
        uint256 indexed experimentId, uint256 indexed round, bool accepted, uint256 approvals, uint256 rejections
    );
    /// @notice `round` closed without a proposal; the current model stays.
    event RoundExpired(uint256 indexed experimentId, uint256 indexed round);
    /// @notice The last round closed; `modelDigest` is the final model.
    event ExperimentCompleted(uint256 indexed experimentId, bytes32 modelDigest, uint256 modelRound);

    error TooFewLearners(uint256 given, uint256 minimum);
    error TooManyLearners(uint256 given, uint256 maximum);
    error InvalidLearner(address learner);
    error DuplicateLearner(address learner);
    error InvalidThreshold(uint256 thresholdBps);
    error InvalidRoundCount(uint256 numRounds);
    error InvalidTimeout(uint256 proposalTimeout, uint256 votingTimeout);
    error EmptyCid();
    error EmptyDigest();
    error UnknownExperiment(uint256 experimentId);
    /// @dev The call names a round other than the current one (a stale or early call).
    error WrongRound(uint256 experimentId, uint256 currentRound, uint256 givenRound);
    /// @dev The round is in `current`; the call needs `expected`.
    error UnexpectedRoundState(uint256 experimentId, uint256 round, RoundState current, RoundState expected);
    error NotLearner(uint256 experimentId, address account);
    error NotProposer(uint256 experimentId, uint256 round, address account);
    error ProposerCannotVote(uint256 experimentId, uint256 round, address proposer);
    error AlreadyVoted(uint256 experimentId, uint256 round, address voter);

    // ------------------------------------------------------------------ mutations

    /**
     * @notice Creates an experiment. Its first round starts now.
     * @param learners Ordered learner addresses; `learners[r % n]` proposes round r.
     * @param thresholdBps Acceptance threshold as a fraction of the n - 1 voters, in basis points.
     * @param numRounds Number of rounds (at least 1).
     * @param proposalTimeout Seconds the proposer has from a round's start.
     * @param votingTimeout Seconds voters have from the proposal.
     * @param initialCid CID of the serialized initial weights in the weight store.
     * @param initialDigest sha256 of the serialized initial weights.
     * @param metadataCid CID of a document describing the task (may be empty).
     * @return experimentId The new experiment's id (ids start at 1).
     */
    function createExperiment(
        address[] calldata learners,
        uint256 thresholdBps,
        uint256 numRounds,
        uint256 proposalTimeout,
        uint256 votingTimeout,
        string calldata initialCid,
        bytes32 initialDigest,
        string calldata metadataCid
    ) external returns (uint256 experimentId) {
        uint256 n = learners.length;
        if (n < MIN_LEARNERS) revert TooFewLearners(n, MIN_LEARNERS);
        if (n > MAX_LEARNERS) revert TooManyLearners(n, MAX_LEARNERS);
        if (thresholdBps > BPS) revert InvalidThreshold(thresholdBps);
        if (numRounds == 0 || numRounds > MAX_ROUNDS) revert InvalidRoundCount(numRounds);
        if (
            proposalTimeout == 0 || votingTimeout == 0 || proposalTimeout > type(uint32).max
                || votingTimeout > type(uint32).max
        ) revert InvalidTimeout(proposalTimeout, votingTimeout);
        if (bytes(initialCid).length == 0) revert EmptyCid();
        if (initialDigest == bytes32(0)) revert EmptyDigest();

        experimentId = ++_experimentCount;
        mapping(address => Member) storage members = _members[experimentId];
        // Bounded by MAX_LEARNERS; runs once per experiment, never per round.
        for (uint256 i = 0; i < n; ++i) {
            address learner = learners[i];
            if (learner == address(0)) revert InvalidLearner(learner);
            if (members[learner].indexPlusOne != 0) revert DuplicateLearner(learner);
            members[learner].indexPlusOne = uint16(i + 1);
        }
        _experiments[experimentId] = Experiment({
            numLearners: uint16(n),
            thresholdBps: uint16(thresholdBps),
            numRounds: uint24(numRounds),
            proposalTimeout: uint32(proposalTimeout),
            votingTimeout: uint32(votingTimeout),
            round: 0,
            phaseStart: uint40(block.timestamp),
            proposed: false,
            approvals: 0,
            rejections: 0,
            modelRound: 0
        });
        _modelDigest[experimentId] = initialDigest;
        emit ExperimentCreated(
            experimentId,
            msg.sender,
            learners,
            thresholdBps,
            numRounds,
            proposalTimeout,
            votingTimeout,
            initialCid,
            initialDigest,
            metadataCid
        );
    }

    /**
     * @notice Proposes weights for `round`. Only the round's scheduled proposer, only
     * before the proposal deadline.
     * @param experimentId The experiment.
     * @param round The current round (guards against stale transactions).
     * @param cid Where the serialized weights are stored.
     * @param digest sha256 of the serialized weights.
     */
    function propose(uint256 experimentId, uint256 round, string calldata cid, bytes32 digest) external {
        Experiment memory e = _current(experimentId, round);
        _expectState(experimentId, e, RoundState.Proposing);
        if (_members[experimentId][msg.sender].indexPlusOne != _proposerIndex(e) + 1) {
            revert NotProposer(experimentId, round, msg.sender);
        }
        if (bytes(cid).length == 0) revert EmptyCid();
        if (digest == bytes32(0)) revert EmptyDigest();

        _proposalDigest[experimentId] = digest;
        e.proposed = true;
        e.phaseStart = uint40(block.timestamp);
        _experiments[experimentId] = e;
        emit WeightsProposed(experimentId, round, msg.sender, cid, digest);
    }

    /**
     * @notice Votes on the proposal of `round`. Every learner but the proposer, once,
     * before the voting deadline. The vote that completes the ballot decides the round.
     * @param experimentId The experiment.
     * @param round The current round (guards against stale transactions).
     * @param approve Whether the proposal improves on the current model for this voter.
     * @param score The voter's score of the proposal, scaled by {SCORE_SCALE}.
     */
    function vote(uint256 experimentId, uint256 round, bool approve, int256 score) external {
        Experiment memory e = _current(experimentId, round);
        _expectState(experimentId, e, RoundState.Voting);
        Member memory m = _members[experimentId][msg.sender];
        if (m.indexPlusOne == 0) revert NotLearner(experimentId, msg.sender);
        if (m.indexPlusOne == _proposerIndex(e) + 1) revert ProposerCannotVote(experimentId, round, msg.sender);
        if (m.votedRoundPlusOne == round + 1) revert AlreadyVoted(experimentId, round, msg.sender);

        m.votedRoundPlusOne = uint24(round + 1);
        m.approved = approve;
        _members[experimentId][msg.sender] = m;
        if (approve) ++e.approvals;
        else ++e.rejections;
        emit VoteCast(experimentId, round, msg.sender, approve, score);

        if (e.approvals + e.rejections == e.numLearners - 1) _decide(experimentId, e);
        else _experiments[experimentId] = e;
    }

    /**
     * @notice Decides `round` after its voting deadline, counting missing votes as not
     * approving. Anyone may call it.
     * @param experimentId The experiment.
     * @param round The current round.
     */
    function decide(uint256 experimentId, uint256 round) external {
        Experiment memory e = _current(experimentId, round);
        _expectState(experimentId, e, RoundState.VotingTimedOut);
        _decide(experimentId, e);
    }

    /**
     * @notice Closes `round` as expired when its proposer missed the proposal deadline.
     * The current model stays. Anyone may call it.
     * @param experimentId The experiment.
     * @param round The current round.
     */
    function expire(uint256 experimentId, uint256 round) external {
        Experiment memory e = _current(experimentId, round);
        _expectState(experimentId, e, RoundState.ProposalTimedOut);
        emit RoundExpired(experimentId, round);
        _advance(experimentId, e);
    }

    // ---------------------------------------------------------------------- views

    /// @notice Number of experiments created so far; ids run from 1 to this.
    function experimentCount() external view returns (uint256) {
        return _experimentCount;
    }

    /**
     * @notice An experiment's configuration and current round.
     * @dev Reverts with {UnknownExperiment} for an id that was never created.
     */
    function getExperiment(uint256 experimentId) external view returns (Experiment memory) {
        return _load(experimentId);
    }

    /// @notice The state of the experiment's current round, computed from stored timestamps.
    function state(uint256 experimentId) external view returns (RoundState) {
        return _state(_load(experimentId));
    }

    /**
     * @notice The deadline of the current phase: the proposal deadline while proposing,
     * the voting deadline while voting, 0 once complete. Calls are accepted strictly before it.
     */
    function deadline(uint256 experimentId) external view returns (uint256) {
        return _deadline(_load(experimentId));
    }

    /// @notice The current model: its digest and the round whose proposal it is (0 = initial, r + 1 = round r).
    function currentModel(uint256 experimentId) external view returns (bytes32 digest, uint256 modelRound) {
        Experiment memory e = _load(experimentId);
        return (_modelDigest[experimentId], e.modelRound);
    }

    /// @notice The digest proposed in the current round (meaningful while voting).
    function proposalDigest(uint256 experimentId) external view returns (bytes32) {
        _load(experimentId);
        return _proposalDigest[experimentId];
    }

    /// @notice The index of `account` in the experiment's learner list, or -1 if it is not a learner.
    function learnerIndex(uint256 experimentId, address account) external view returns (int256) {
        _load(experimentId);
        return int256(uint256(_members[experimentId][account].indexPlusOne)) - 1;
    }

    /// @notice Whether `voter` has voted in the current round, and how.
    function voteOf(uint256 experimentId, address voter) external view returns (bool voted, bool approved) {
        Experiment memory e = _load(experimentId);
        Member memory m = _members[experimentId][voter];
        voted = e.round < e.numRounds && m.votedRoundPlusOne == e.round + 1;
        approved = voted && m.approved;
    }

    /**
     * @notice The current round as `account` needs it, read in one call from one block:
     * round, state, deadline, current model, whether `account` voted, and the block's
     * timestamp and base fee.
     */
    function roundStatus(uint256 experimentId, address account) external view returns (RoundStatus memory s) {
        Experiment memory e = _load(experimentId);
        Member memory m = _members[experimentId][account];
        s.round = e.round;
        s.state = _state(e);
        s.deadline = _deadline(e);
        s.modelDigest = _modelDigest[experimentId];
        s.modelRound = e.modelRound;
        s.voted = e.round < e.numRounds && m.votedRoundPlusOne == e.round + 1;
        s.timestamp = block.timestamp;
        s.baseFee = block.basefee;
    }

    // ------------------------------------------------------------------ internals

    function _load(uint256 experimentId) private view returns (Experiment memory e) {
        e = _experiments[experimentId];
        if (e.numLearners == 0) revert UnknownExperiment(experimentId);
    }

    function _current(uint256 experimentId, uint256 round) private view returns (Experiment memory e) {
        e = _load(experimentId);
        if (round != e.round) revert WrongRound(experimentId, e.round, round);
    }

    function _proposerIndex(Experiment memory e) private pure returns (uint256) {
        return uint256(e.round) % e.numLearners;
    }

    function _deadline(Experiment memory e) private pure returns (uint256) {
        if (e.round >= e.numRounds) return 0;
        return uint256(e.phaseStart) + (e.proposed ? e.votingTimeout : e.proposalTimeout);
    }

    function _state(Experiment memory e) private view returns (RoundState) {
        if (e.round >= e.numRounds) return RoundState.Completed;
        bool late = block.timestamp >= _deadline(e);
        if (!e.proposed) return late ? RoundState.ProposalTimedOut : RoundState.Proposing;
        return late ? RoundState.VotingTimedOut : RoundState.Voting;
    }

    function _expectState(uint256 experimentId, Experiment memory e, RoundState expected) private view {
        RoundState current = _state(e);
        if (current != expected) revert UnexpectedRoundState(experimentId, e.round, current, expected);
    }

    function _decide(uint256 experimentId, Experiment memory e) private {
        bool accepted = uint256(e.approvals) * BPS >= uint256(e.thresholdBps) * (e.numLearners - 1);
        if (accepted) {
            _modelDigest[experimentId] = _proposalDigest[experimentId];
            e.modelRound = e.round + 1;
        }
        emit RoundDecided(experimentId, e.round, accepted, e.approvals, e.rejections);
        _advance(experimentId, e);
    }

    /// @dev Starts the next round, or completes the experiment after the last one.
    function _advance(uint256 experimentId, Experiment memory e) private {
        e.round += 1;
        e.phaseStart = uint40(block.timestamp);
        e.proposed = false;
        e.approvals = 0;
        e.rejections = 0;
        _experiments[experimentId] = e;
        if (e.round == e.numRounds) {
            emit ExperimentCompleted(experimentId, _modelDigest[experimentId], e.modelRound);
        }
    }
}

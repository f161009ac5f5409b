// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

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
 * Learners without ETH can take part through a relayer: a proposal or a vote may also
 * be an EIP-712 signature by the learner, and anyone may submit it ({proposeBySig},
 * {castVotesBySig}, which takes a batch). A signed vote counts exactly as a direct one.
 *
 * Joining: nobody is enrolled without consent. A new experiment is `Joining` until every
 * listed learner has called {join} (or had a relayer submit its signed join,
 * {joinBySig}); the last join starts round 0 in its transaction. If the join deadline
 * (creation + join timeout) passes with a learner missing, anyone may {cancel} it: the
 * experiment ends without a round.
 *
 * A round's state is computed from the stored phase start and the experiment's
 * timeouts (see {state}). Storage keeps what deciding and resuming need; the full
 * history is in the events. Gas: the configuration, the join count and the round fit
 * one slot; whether a learner joined is a bit next to its index (a join rewrites two
 * warm slots, no zero slot); the current
 * round's ballot (tallies, who voted and how: two bits a learner) lives in words tagged
 * with the round, so a new round needs no clearing and a vote by any of the first 100
 * learners writes one ballot word; accepting a proposal flips which of two digest slots
 * holds the model instead of copying the digest.
 */
contract CollectiveLearning is EIP712 {
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
    /// @notice Longest join, proposal or voting timeout (PROTOCOL v2); the shortest is 1 s.
    uint256 public constant MAX_TIMEOUT = 30 days;
    /// @notice EIP-712 type of a signed vote.
    bytes32 public constant VOTE_TYPEHASH =
        keccak256("Vote(uint256 experimentId,uint256 round,bool approve,int256 score)");
    /// @notice EIP-712 type of a signed proposal (`cid` is hashed as EIP-712 hashes strings).
    bytes32 public constant PROPOSAL_TYPEHASH =
        keccak256("Proposal(uint256 experimentId,uint256 round,string cid,bytes32 digest)");
    /// @notice EIP-712 type of a signed join: the learner consents to the experiment's terms.
    bytes32 public constant JOIN_TYPEHASH = keccak256("Join(uint256 experimentId)");

    /// @notice The state of an experiment's current round.
    enum RoundState {
        Proposing, // waiting for the scheduled proposer, before the proposal deadline
        ProposalTimedOut, // no proposal before the deadline: anyone may expire the round
        Voting, // proposal recorded, waiting for votes, before the voting deadline
        VotingTimedOut, // voting deadline passed with votes missing: anyone may decide
        Completed, // every round is closed; the current model is final
        Joining, // before round 0: waiting for learners to join, before the join deadline
        Cancelled, // the join deadline passed with a learner missing and it was cancelled: no round
        JoinTimedOut // the join deadline passed with a learner missing: anyone may cancel
    }

    /// @dev An experiment's life outside its rounds (its rounds run while `Running`).
    enum Stage {
        Joining,
        Running,
        Cancelled
    }

    /// @dev Configuration, joins and current round in one storage slot (256 bits).
    struct Experiment {
        uint16 numLearners; // 0 marks an experiment that does not exist
        uint16 thresholdBps;
        uint24 numRounds;
        uint24 proposalTimeout; // timeouts are at most MAX_TIMEOUT (30 days < 2^24 s)
        uint24 votingTimeout;
        uint24 joinTimeout;
        uint24 round; // current round; equals numRounds once complete
        uint40 phaseStart; // creation while joining, round start while proposing, proposal time while voting
        bool proposed;
        uint24 modelRound; // 0: the initial model; r + 1: the proposal of round r
        uint8 modelSlot; // which of the experiment's two digest slots holds the model
        Stage stage;
        uint16 joined; // learners who joined
    }

    /// @notice An experiment's configuration and current round (see {getExperiment}).
    struct ExperimentView {
        uint256 numLearners;
        uint256 thresholdBps;
        uint256 numRounds;
        uint256 proposalTimeout;
        uint256 votingTimeout;
        uint256 round;
        uint256 phaseStart;
        bool proposed;
        uint256 approvals;
        uint256 rejections;
        uint256 modelRound;
        uint256 joinTimeout;
        uint256 joined; // learners who joined
    }

    /// @notice Everything an agent reads to decide its next step, from one block (see {roundStatus}).
    struct RoundStatus {
        uint256 round; // current round; equals numRounds once complete
        RoundState state;
        uint256 deadline; // of the current phase (see {deadline}); the join deadline while joining
        bytes32 modelDigest; // the current model
        uint256 modelRound; // 0: the initial model; r + 1: the proposal of round r
        bool voted; // whether `account` has voted in the current round
        bool joined; // whether `account` has joined the experiment
        uint256 timestamp; // the block's timestamp, the clock of every deadline
        uint256 baseFee; // the block's base fee, for pricing the agent's next transaction
    }

    /// @notice A learner's EIP-712 signature of a {VOTE_TYPEHASH} vote, as a relayer submits it.
    /// The signature is in ERC-2098 short form (`r`, `vs`).
    struct SignedVote {
        uint256 learnerIndex; // the signer's index in the experiment's learner list
        bool approve;
        int256 score;
        bytes32 r;
        bytes32 vs;
    }

    /// @dev The current round's ballot, in memory while a transaction counts votes.
    struct Ballot {
        uint256[5] words; // ballot words 0-4: word 0 holds the tallies and learners 0-99
        uint256 loaded; // bit w: words[w] is read (and tagged with the round)
        uint256 written; // bit w: words[w] changed
        uint256 approvals;
        uint256 rejections;
    }

    // Ballot words: bits 0-23 hold round + 1 (a word with another tag is empty);
    // word 0: approvals in bits 24-39, rejections in 40-55, learners 0-99 from bit 56;
    // word w >= 1: learners 100 + 116 (w - 1) onwards from bit 24. Two bits a learner:
    // voted, and approved.
    uint256 private constant _TAG_MASK = (1 << 24) - 1;
    uint256 private constant _TALLY_MASK = (1 << 16) - 1;
    uint256 private constant _WORD0_LEARNERS = 100;
    uint256 private constant _WORD_LEARNERS = 116;
    // Learner entries: bits 0-15 hold index + 1 (0: not a learner), bit 16 is set once joined.
    uint256 private constant _INDEX_MASK = (1 << 16) - 1;
    uint256 private constant _JOINED = 1 << 16;

    uint256 private _experimentCount;
    mapping(uint256 experimentId => Experiment) private _experiments;
    /// @dev The model digest is in slot `modelSlot`, the current proposal's in the other.
    mapping(uint256 experimentId => bytes32[2]) private _digests;
    mapping(uint256 experimentId => mapping(uint256 word => uint256)) private _ballots;
    /// @dev Read and written through {_indexPlusOne}, {_hasJoined} and {_join}.
    mapping(uint256 experimentId => mapping(address learner => uint256)) private _learnerEntries;
    /// @dev keccak256 of the learner list, for relayed votes (see {castVotesBySig}).
    mapping(uint256 experimentId => bytes32) private _learnersHash;

    /// @notice An experiment was created; its configuration is fixed from now on.
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
    /// @notice `learner` consented to the experiment's terms.
    event LearnerJoined(uint256 indexed experimentId, address indexed learner);
    /// @notice Every learner joined: round 0 starts at this block's time.
    event ExperimentStarted(uint256 indexed experimentId);
    /// @notice The join deadline passed with a learner missing: the experiment ends without a round.
    event ExperimentCancelled(uint256 indexed experimentId);
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
    /// @dev The join timeout is not within 1 s .. {MAX_TIMEOUT}.
    error InvalidJoinTimeout(uint256 joinTimeout, uint256 maximum);
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
    error AlreadyJoined(uint256 experimentId, address learner);
    /// @dev The join deadline passed (or the experiment was cancelled): joining is over.
    error JoinClosed(uint256 experimentId, uint256 joinDeadline);
    /// @dev Cancelling needs the join deadline passed; it is `joinDeadline`.
    error JoinStillOpen(uint256 experimentId, uint256 joinDeadline);
    /// @dev A relayed batch held no votes.
    error EmptyBatch();
    /// @dev The learner list given with relayed votes is not the experiment's.
    error LearnerListMismatch(uint256 experimentId);
    /// @dev A relayed vote or join names a learner index outside the learner list.
    error InvalidLearnerIndex(uint256 experimentId, uint256 learnerIndex);
    /// @dev A relayed vote's or join's signature recovers to `signer`, not to the learner it names
    /// (another round, experiment, contract or chain, other contents, or another key).
    error SignerMismatch(uint256 experimentId, uint256 learnerIndex, address signer);

    constructor() EIP712("CollectiveLearning", "1") {}

    // ------------------------------------------------------------------ mutations

    /**
     * @notice Creates an experiment. It is `Joining` until every learner has joined
     * ({join}); the last join starts round 0.
     * @param learners Ordered learner addresses; `learners[r % n]` proposes round r.
     * @param thresholdBps Acceptance threshold as a fraction of the n - 1 voters, in basis points.
     * @param numRounds Number of rounds (at least 1).
     * @param proposalTimeout Seconds the proposer has from a round's start.
     * @param votingTimeout Seconds voters have from the proposal.
     * @param joinTimeout Seconds learners have from now to join; after that, with a learner
     * missing, anyone may {cancel} the experiment.
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
        string calldata metadataCid,
        uint256 joinTimeout
    ) external returns (uint256 experimentId) {
        uint256 n = learners.length;
        if (n < MIN_LEARNERS) revert TooFewLearners(n, MIN_LEARNERS);
        if (n > MAX_LEARNERS) revert TooManyLearners(n, MAX_LEARNERS);
        if (thresholdBps > BPS) revert InvalidThreshold(thresholdBps);
        if (numRounds == 0 || numRounds > MAX_ROUNDS) revert InvalidRoundCount(numRounds);
        if (
            proposalTimeout == 0 || votingTimeout == 0 || proposalTimeout > MAX_TIMEOUT
                || votingTimeout > MAX_TIMEOUT
        ) revert InvalidTimeout(proposalTimeout, votingTimeout);
        if (joinTimeout == 0 || joinTimeout > MAX_TIMEOUT) revert InvalidJoinTimeout(joinTimeout, MAX_TIMEOUT);
        if (bytes(initialCid).length == 0) revert EmptyCid();
        if (initialDigest == bytes32(0)) revert EmptyDigest();

        experimentId = ++_experimentCount;
        mapping(address => uint256) storage entries = _learnerEntries[experimentId];
        // The one loop over learners: it runs once per experiment, bounded by MAX_LEARNERS.
        for (uint256 i = 0; i < n; ++i) {
            address learner = learners[i];
            if (learner == address(0)) revert InvalidLearner(learner);
            if (entries[learner] != 0) revert DuplicateLearner(learner);
            entries[learner] = i + 1; // not joined yet
        }
        _learnersHash[experimentId] = keccak256(abi.encodePacked(learners));
        _experiments[experimentId] = Experiment({
            numLearners: uint16(n),
            thresholdBps: uint16(thresholdBps),
            numRounds: uint24(numRounds),
            proposalTimeout: uint24(proposalTimeout),
            votingTimeout: uint24(votingTimeout),
            joinTimeout: uint24(joinTimeout),
            round: 0,
            phaseStart: uint40(block.timestamp),
            proposed: false,
            modelRound: 0,
            modelSlot: 0,
            stage: Stage.Joining,
            joined: 0
        });
        _digests[experimentId][0] = initialDigest;
        emit ExperimentCreated(
            experimentId,
            msg.sender,
            learners,
            thresholdBps,
            numRounds,
            proposalTimeout,
            votingTimeout,
            joinTimeout,
            initialCid,
            initialDigest,
            metadataCid
        );
    }

    /**
     * @notice Joins the experiment: the caller, a listed learner, consents to its terms.
     * Once, before the join deadline. The last join starts round 0 at this block's time.
     * @param experimentId The experiment.
     */
    function join(uint256 experimentId) external {
        _join(experimentId, msg.sender);
    }

    /**
     * @notice Submits a learner's signed join (see {JOIN_TYPEHASH}); it counts as the
     * learner's own {join}. Anyone may submit it.
     * @param experimentId The experiment, as signed.
     * @param signerIndex The signer's index in the experiment's learner list.
     * @param r The signature's `r`.
     * @param vs The signature's `s` and parity in ERC-2098 short form.
     */
    function joinBySig(uint256 experimentId, uint256 signerIndex, bytes32 r, bytes32 vs) external {
        Experiment memory e = _load(experimentId);
        if (signerIndex >= e.numLearners) revert InvalidLearnerIndex(experimentId, signerIndex);
        bytes32 structHash = keccak256(abi.encode(JOIN_TYPEHASH, experimentId));
        address signer = ECDSA.recover(_hashTypedDataV4(structHash), r, vs);
        if (_indexPlusOne(experimentId, signer) != signerIndex + 1) {
            revert SignerMismatch(experimentId, signerIndex, signer);
        }
        _join(experimentId, signer);
    }

    /**
     * @notice Cancels an experiment whose join deadline passed with a learner missing: it
     * ends without a round. Anyone may call it.
     * @param experimentId The experiment.
     */
    function cancel(uint256 experimentId) external {
        Experiment memory e = _load(experimentId);
        RoundState current = _state(e);
        if (current == RoundState.Joining) revert JoinStillOpen(experimentId, _deadline(e));
        if (current != RoundState.JoinTimedOut) {
            revert UnexpectedRoundState(experimentId, e.round, current, RoundState.JoinTimedOut);
        }
        e.stage = Stage.Cancelled;
        _experiments[experimentId] = e;
        emit ExperimentCancelled(experimentId);
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
        _propose(experimentId, round, cid, digest, msg.sender);
    }

    /**
     * @notice Submits the scheduled proposer's signed proposal for `round` (see
     * {PROPOSAL_TYPEHASH}); it counts as the proposer's own {propose}. Anyone may submit it.
     * @param experimentId The experiment.
     * @param round The current round, as signed.
     * @param cid Where the serialized weights are stored, as signed.
     * @param digest sha256 of the serialized weights, as signed.
     * @param r The signature's `r`.
     * @param vs The signature's `s` and parity in ERC-2098 short form.
     */
    function proposeBySig(
        uint256 experimentId,
        uint256 round,
        string calldata cid,
        bytes32 digest,
        bytes32 r,
        bytes32 vs
    ) external {
        bytes32 structHash = keccak256(abi.encode(PROPOSAL_TYPEHASH, experimentId, round, keccak256(bytes(cid)), digest));
        _propose(experimentId, round, cid, digest, ECDSA.recover(_hashTypedDataV4(structHash), r, vs));
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
        uint256 index = _indexPlusOne(experimentId, msg.sender);
        if (index == 0) revert NotLearner(experimentId, msg.sender);
        Ballot memory b = _openBallot(experimentId, e.round);
        _count(experimentId, e.round, _proposerIndex(e), b, index - 1, msg.sender, approve, score);
        _close(experimentId, e, b);
    }

    /**
     * @notice Submits learners' signed votes on the proposal of `round` (see
     * {VOTE_TYPEHASH}); each counts exactly as that learner's own {vote}. Anyone may
     * submit them. All or nothing: any invalid vote reverts the batch.
     * @param experimentId The experiment.
     * @param round The current round, as signed.
     * @param learners The experiment's learner list, as in {ExperimentCreated} (checked
     * against its hash; reading it from calldata is cheaper than from storage).
     * @param votes The signed votes, each naming its signer's index in `learners`.
     */
    function castVotesBySig(
        uint256 experimentId,
        uint256 round,
        address[] calldata learners,
        SignedVote[] calldata votes
    ) external {
        Experiment memory e = _current(experimentId, round);
        _expectState(experimentId, e, RoundState.Voting);
        if (votes.length == 0) revert EmptyBatch();
        if (keccak256(abi.encodePacked(learners)) != _learnersHash[experimentId]) {
            revert LearnerListMismatch(experimentId);
        }
        Ballot memory b = _openBallot(experimentId, e.round);
        bytes32 domainSeparator = _domainSeparatorV4();
        uint256 proposerIndex = _proposerIndex(e);
        for (uint256 i = 0; i < votes.length; ++i) {
            SignedVote calldata v = votes[i];
            uint256 index = v.learnerIndex;
            if (index >= learners.length) revert InvalidLearnerIndex(experimentId, index);
            bytes32 structHash = _voteHash(experimentId, round, v.approve, v.score);
            address signer = ECDSA.recover(MessageHashUtils.toTypedDataHash(domainSeparator, structHash), v.r, v.vs);
            if (signer != learners[index]) revert SignerMismatch(experimentId, index, signer);
            _count(experimentId, e.round, proposerIndex, b, index, signer, v.approve, v.score);
        }
        _close(experimentId, e, b);
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
        (uint256 approvals, uint256 rejections) = _tallies(experimentId, e.round);
        _decide(experimentId, e, approvals, rejections);
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
     * @notice An experiment's configuration and current round, with the round's tallies.
     * @dev Reverts with {UnknownExperiment} for an id that was never created.
     */
    function getExperiment(uint256 experimentId) external view returns (ExperimentView memory v) {
        Experiment memory e = _load(experimentId);
        (uint256 approvals, uint256 rejections) = _tallies(experimentId, e.round);
        v = ExperimentView({
            numLearners: e.numLearners,
            thresholdBps: e.thresholdBps,
            numRounds: e.numRounds,
            proposalTimeout: e.proposalTimeout,
            votingTimeout: e.votingTimeout,
            round: e.round,
            phaseStart: e.phaseStart,
            proposed: e.proposed,
            approvals: approvals,
            rejections: rejections,
            modelRound: e.modelRound,
            joinTimeout: e.joinTimeout,
            joined: e.joined
        });
    }

    /// @notice The state of the experiment's current round, computed from stored timestamps.
    function state(uint256 experimentId) external view returns (RoundState) {
        return _state(_load(experimentId));
    }

    /**
     * @notice The deadline of the current phase: the join deadline while joining, the
     * proposal deadline while proposing, the voting deadline while voting, 0 once complete
     * or cancelled. Calls are accepted strictly before it.
     */
    function deadline(uint256 experimentId) external view returns (uint256) {
        return _deadline(_load(experimentId));
    }

    /// @notice The current model: its digest and the round whose proposal it is (0 = initial, r + 1 = round r).
    function currentModel(uint256 experimentId) external view returns (bytes32 digest, uint256 modelRound) {
        Experiment memory e = _load(experimentId);
        return (_digests[experimentId][e.modelSlot], e.modelRound);
    }

    /// @notice The digest proposed in the current round (meaningful while voting).
    function proposalDigest(uint256 experimentId) external view returns (bytes32) {
        Experiment memory e = _load(experimentId);
        return _digests[experimentId][1 - e.modelSlot];
    }

    /// @notice The index of `account` in the experiment's learner list, or -1 if it is not a learner.
    function learnerIndex(uint256 experimentId, address account) external view returns (int256) {
        _load(experimentId);
        return int256(_indexPlusOne(experimentId, account)) - 1;
    }

    /// @notice Whether `voter` has voted in the current round, and how.
    function voteOf(uint256 experimentId, address voter) external view returns (bool voted, bool approved) {
        return _voteOf(experimentId, _load(experimentId), voter);
    }

    /**
     * @notice The current round as `account` needs it, read in one call from one block:
     * round, state, deadline, current model, whether `account` voted and whether it
     * joined, and the block's timestamp and base fee.
     */
    function roundStatus(uint256 experimentId, address account) external view returns (RoundStatus memory s) {
        Experiment memory e = _load(experimentId);
        s.round = e.round;
        s.state = _state(e);
        s.deadline = _deadline(e);
        s.modelDigest = _digests[experimentId][e.modelSlot];
        s.modelRound = e.modelRound;
        (s.voted,) = _voteOf(experimentId, e, account);
        s.joined = _hasJoined(experimentId, account);
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
        if (e.stage == Stage.Joining) return uint256(e.phaseStart) + e.joinTimeout;
        if (e.stage == Stage.Cancelled || e.round >= e.numRounds) return 0;
        return uint256(e.phaseStart) + (e.proposed ? e.votingTimeout : e.proposalTimeout);
    }

    function _state(Experiment memory e) private view returns (RoundState) {
        if (e.stage == Stage.Joining) {
            return block.timestamp >= _deadline(e) ? RoundState.JoinTimedOut : RoundState.Joining;
        }
        if (e.stage == Stage.Cancelled) return RoundState.Cancelled;
        if (e.round >= e.numRounds) return RoundState.Completed;
        bool late = block.timestamp >= _deadline(e);
        if (!e.proposed) return late ? RoundState.ProposalTimedOut : RoundState.Proposing;
        return late ? RoundState.VotingTimedOut : RoundState.Voting;
    }

    function _expectState(uint256 experimentId, Experiment memory e, RoundState expected) private view {
        RoundState current = _state(e);
        if (current != expected) revert UnexpectedRoundState(experimentId, e.round, current, expected);
    }

    function _propose(uint256 experimentId, uint256 round, string calldata cid, bytes32 digest, address proposer)
        private
    {
        Experiment memory e = _current(experimentId, round);
        _expectState(experimentId, e, RoundState.Proposing);
        if (_indexPlusOne(experimentId, proposer) != _proposerIndex(e) + 1) {
            revert NotProposer(experimentId, round, proposer);
        }
        if (bytes(cid).length == 0) revert EmptyCid();
        if (digest == bytes32(0)) revert EmptyDigest();

        _digests[experimentId][1 - e.modelSlot] = digest;
        e.proposed = true;
        e.phaseStart = uint40(block.timestamp);
        _experiments[experimentId] = e;
        emit WeightsProposed(experimentId, round, proposer, cid, digest);
    }

    /// @dev `learner`'s index in the learner list plus one; 0 if it is not a learner.
    function _indexPlusOne(uint256 experimentId, address learner) private view returns (uint256) {
        return _learnerEntries[experimentId][learner] & _INDEX_MASK;
    }

    /// @dev Whether `learner` has joined the experiment.
    function _hasJoined(uint256 experimentId, address learner) private view returns (bool) {
        return _learnerEntries[experimentId][learner] & _JOINED != 0;
    }

    /// @dev Records `learner`'s join; the last one starts round 0 now.
    function _join(uint256 experimentId, address learner) private {
        Experiment memory e = _load(experimentId);
        uint256 entry = _learnerEntries[experimentId][learner];
        if (entry == 0) revert NotLearner(experimentId, learner);
        if (entry & _JOINED != 0) revert AlreadyJoined(experimentId, learner);
        // Not joined, so not started: joining is open, timed out or cancelled.
        if (_state(e) != RoundState.Joining) revert JoinClosed(experimentId, uint256(e.phaseStart) + e.joinTimeout);
        _learnerEntries[experimentId][learner] = entry | _JOINED;
        emit LearnerJoined(experimentId, learner);
        e.joined += 1;
        if (e.joined == e.numLearners) {
            e.stage = Stage.Running;
            e.phaseStart = uint40(block.timestamp);
            emit ExperimentStarted(experimentId);
        }
        _experiments[experimentId] = e;
    }

    /// @dev The EIP-712 struct hash of a vote: keccak256(abi.encode(VOTE_TYPEHASH, ...)),
    /// computed in scratch memory (a batch hashes one vote per signature; abi.encode
    /// would allocate memory for each).
    function _voteHash(uint256 experimentId, uint256 round, bool approve, int256 score)
        private
        pure
        returns (bytes32 structHash)
    {
        bytes32 typeHash = VOTE_TYPEHASH;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, typeHash)
            mstore(add(ptr, 0x20), experimentId)
            mstore(add(ptr, 0x40), round)
            mstore(add(ptr, 0x60), approve)
            mstore(add(ptr, 0x80), score)
            structHash := keccak256(ptr, 0xa0)
        }
    }

    /// @dev Where learner `index`'s two ballot bits are: the word, and the bit offset in it.
    function _position(uint256 index) private pure returns (uint256 word, uint256 offset) {
        if (index < _WORD0_LEARNERS) return (0, 56 + 2 * index);
        index -= _WORD0_LEARNERS;
        return (1 + index / _WORD_LEARNERS, 24 + 2 * (index % _WORD_LEARNERS));
    }

    /// @dev Ballot word `word` of `round`: the stored word if it is tagged with the round, else empty.
    function _ballotWord(uint256 experimentId, uint256 round, uint256 word) private view returns (uint256 value) {
        value = _ballots[experimentId][word];
        if (value & _TAG_MASK != round + 1) value = round + 1;
    }

    function _tallies(uint256 experimentId, uint256 round) private view returns (uint256, uint256) {
        uint256 word0 = _ballotWord(experimentId, round, 0);
        return ((word0 >> 24) & _TALLY_MASK, (word0 >> 40) & _TALLY_MASK);
    }

    function _voteOf(uint256 experimentId, Experiment memory e, address voter)
        private
        view
        returns (bool voted, bool approved)
    {
        uint256 index = _indexPlusOne(experimentId, voter);
        if (index == 0 || e.stage != Stage.Running || e.round >= e.numRounds) return (false, false);
        (uint256 word, uint256 offset) = _position(index - 1);
        uint256 bits = (_ballotWord(experimentId, e.round, word) >> offset) & 3;
        return (bits & 1 != 0, bits & 2 != 0);
    }

    /// @dev The current round's ballot with word 0 (the tallies) read.
    function _openBallot(uint256 experimentId, uint256 round) private view returns (Ballot memory b) {
        b.words[0] = _ballotWord(experimentId, round, 0);
        b.loaded = 1;
    }

    /// @dev Counts one vote into the in-memory ballot `b` and logs it.
    function _count(
        uint256 experimentId,
        uint256 round,
        uint256 proposerIndex,
        Ballot memory b,
        uint256 index,
        address voter,
        bool approve,
        int256 score
    ) private {
        if (index == proposerIndex) revert ProposerCannotVote(experimentId, round, voter);
        (uint256 word, uint256 offset) = _position(index);
        if (b.loaded & (uint256(1) << word) == 0) {
            b.words[word] = _ballotWord(experimentId, round, word);
            b.loaded |= uint256(1) << word;
        }
        if ((b.words[word] >> offset) & 1 != 0) revert AlreadyVoted(experimentId, round, voter);
        b.words[word] |= uint256(approve ? 3 : 1) << offset;
        b.written |= uint256(1) << word;
        if (approve) b.words[0] += 1 << 24;
        else b.words[0] += 1 << 40;
        emit VoteCast(experimentId, round, voter, approve, score);
    }

    /// @dev Decides the round if every voter has voted, else stores the ballot words `b` changed.
    function _close(uint256 experimentId, Experiment memory e, Ballot memory b) private {
        uint256 approvals = (b.words[0] >> 24) & _TALLY_MASK;
        uint256 rejections = (b.words[0] >> 40) & _TALLY_MASK;
        if (approvals + rejections == e.numLearners - 1) {
            // The ballot is complete: decide, and leave it unstored (the next round's is empty anyway).
            _decide(experimentId, e, approvals, rejections);
            return;
        }
        mapping(uint256 => uint256) storage ballots = _ballots[experimentId];
        // Word 0 always changes (the tallies); at most four others exist (MAX_LEARNERS).
        ballots[0] = b.words[0];
        for (uint256 w = 1; w < 5; ++w) {
            if (b.written & (uint256(1) << w) != 0) ballots[w] = b.words[w];
        }
    }

    function _decide(uint256 experimentId, Experiment memory e, uint256 approvals, uint256 rejections) private {
        bool accepted = approvals * BPS >= uint256(e.thresholdBps) * (e.numLearners - 1);
        if (accepted) {
            e.modelSlot = 1 - e.modelSlot;
            e.modelRound = e.round + 1;
        }
        emit RoundDecided(experimentId, e.round, accepted, approvals, rejections);
        _advance(experimentId, e);
    }

    /// @dev Starts the next round, or completes the experiment after the last one. The
    /// new round's ballot is empty: its words are tagged with the old round.
    function _advance(uint256 experimentId, Experiment memory e) private {
        e.round += 1;
        e.phaseStart = uint40(block.timestamp);
        e.proposed = false;
        _experiments[experimentId] = e;
        if (e.round == e.numRounds) {
            emit ExperimentCompleted(experimentId, _digests[experimentId][e.modelSlot], e.modelRound);
        }
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/**
 * @title ICollectiveLearning
 * @notice The external interface of {CollectiveLearning}: its types, events and errors.
 * PROTOCOL.md states the behaviour; every refusal is one of the errors below, every state
 * change one of the events.
 */
interface ICollectiveLearning {
    // ------------------------------------------------------------------ types

    /// @notice The state of an experiment's current round. New values are appended at the
    /// end: the first eight keep the numbers they had in version 1.
    enum RoundState {
        Proposing, // waiting for the scheduled proposer, before the proposal deadline
        ProposalTimedOut, // no proposal before the deadline: anyone may expire the round
        Voting, // proposal recorded, waiting for votes (sealed: for commitments), before the voting deadline
        VotingTimedOut, // public votes: the voting deadline passed with votes missing: anyone may decide
        Completed, // every round is closed; the current model is final
        Joining, // before round 0: waiting for learners to join, before the join deadline
        Cancelled, // the join deadline passed with a learner missing and it was cancelled: no round
        JoinTimedOut, // the join deadline passed with a learner missing: anyone may cancel
        Revealing, // sealed votes: the commit window closed (deadline passed or every voter committed), before the reveal deadline
        RevealTimedOut // sealed votes: the reveal deadline passed with reveals missing: anyone may decide
    }

    /// @notice Why a penalty was taken from a learner's stake (see {PenaltyTaken}).
    enum Penalty {
        MissedProposal, // the learner's proposal slot expired
        UnrevealedVote, // the learner committed a sealed vote and did not reveal it
        RejectedProposal // the learner's proposal was rejected by at least `rejectionShareBps` of the voters
    }

    /**
     * @notice The optional terms of an experiment, fixed at creation. All zero: a plain
     * experiment (public votes, no stake).
     * Sealed votes: `revealTimeout` > 0. Stake: `stake` > 0 or `rewardPool` > 0; then
     * `token` is the ERC-20 of every deposit (address(0): ETH), and the other fields apply.
     * Without stake, every stake field must be zero.
     */
    struct ExperimentTerms {
        uint256 revealTimeout; // seconds from the commit deadline to reveal; 0: public votes
        address token; // the deposits' ERC-20; address(0): ETH
        uint256 stake; // deposited by each learner at {join}
        uint256 rewardPool; // deposited by the creator at creation
        uint256 missedProposalPenalty; // taken when a learner's proposal slot expires
        uint256 unrevealedVotePenalty; // taken when a committed sealed vote is not revealed
        uint256 rejectedProposalPenalty; // taken when a proposal is rejected by >= rejectionShareBps of the voters
        uint256 rejectionShareBps; // share of the n - 1 voters whose rejection makes a proposal penalised
        uint256 proposerShareBps; // the pool's share for proposers of accepted rounds; the rest for voters
    }

    /// @notice An experiment's configuration and current round (see {getExperiment}).
    struct ExperimentView {
        uint256 numLearners;
        uint256 thresholdBps;
        uint256 numRounds;
        uint256 proposalTimeout;
        uint256 votingTimeout;
        uint256 round;
        uint256 phaseStart; // creation while joining, round start while proposing, proposal time after
        bool proposed;
        uint256 approvals;
        uint256 rejections;
        uint256 modelRound;
        uint256 joinTimeout;
        uint256 joined; // learners who joined
        uint256 revealTimeout; // 0: public votes
        uint256 commitments; // sealed votes: commitments in the current round
        bool staked;
    }

    /// @notice Everything an agent reads to decide its next step, from one block (see {roundStatus}).
    struct RoundStatus {
        uint256 round; // current round; equals numRounds once complete
        RoundState state;
        uint256 deadline; // of the current phase (see {deadline}); the join deadline while joining
        bytes32 modelDigest; // the current model
        uint256 modelRound; // 0: the initial model; r + 1: the proposal of round r
        bool voted; // whether `account`'s vote counts in the current round (sealed: revealed)
        bool joined; // whether `account` has joined the experiment
        uint256 timestamp; // the block's timestamp, the clock of every deadline
        uint256 baseFee; // the block's base fee, for pricing the agent's next transaction
        bool committed; // sealed votes: whether `account` committed in the current round
        bytes32 proposalDigest; // the digest a vote must name (meaningful once proposed)
    }

    /// @notice The money side of a staked experiment (see {stakeOf}).
    struct StakeView {
        address token; // address(0): ETH
        uint256 stake;
        uint256 rewardPool; // as deposited by the creator
        uint256 pool; // reward pool plus penalties taken so far
        uint256 missedProposalPenalty;
        uint256 unrevealedVotePenalty;
        uint256 rejectedProposalPenalty;
        uint256 rejectionShareBps;
        uint256 proposerShareBps;
        uint256 proposerShares; // accepted rounds so far
        uint256 voterShares; // counted votes so far
        address creator;
    }

    /// @notice A learner's account in a staked experiment (see {accountOf}).
    struct AccountView {
        uint256 penalties; // taken from its stake so far
        uint256 proposerShares; // its accepted proposals
        uint256 voterShares; // its counted votes (sealed: revealed)
        bool withdrawn;
        uint256 owed; // what {withdraw} pays it now (0 before the end, or once withdrawn)
    }

    /// @notice A learner's EIP-712 signed vote, as a relayer submits it (ERC-2098 short signature).
    struct SignedVote {
        uint256 learnerIndex; // the signer's index in the experiment's learner list
        bool approve;
        int256 score;
        bytes32 r;
        bytes32 vs;
    }

    /// @notice A learner's EIP-712 signed commitment, as a relayer submits it (ERC-2098 short signature).
    struct SignedCommit {
        uint256 learnerIndex; // the signer's index in the experiment's learner list
        bytes32 commitment; // see {commitmentOf}
        bytes32 r;
        bytes32 vs;
    }

    /// @notice The opening of a learner's commitment; anyone holding it may submit it.
    struct Reveal {
        uint256 learnerIndex; // the committer's index in the experiment's learner list
        bool approve;
        int256 score;
        bytes32 salt;
    }

    // ------------------------------------------------------------------ events

    /// @notice An experiment was created; its configuration and terms are fixed from now on.
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
        string metadataCid,
        ExperimentTerms terms
    );
    /// @notice `account` deposited `amount` (the reward pool at creation, a stake at join).
    event Deposited(uint256 indexed experimentId, address indexed account, uint256 amount);
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
    /// @notice `voter`'s vote on the proposal of `round` counts, with its score scaled by 1e18.
    /// Emitted for a public vote and for the reveal of a sealed one.
    event VoteCast(
        uint256 indexed experimentId, uint256 indexed round, address indexed voter, bool approve, int256 score
    );
    /// @notice A relayed vote, commitment or reveal of `voter` was already on chain: the batch skipped it.
    event VoteSkipped(uint256 indexed experimentId, uint256 indexed round, address indexed voter);
    /// @notice `voter` committed to a sealed vote on the proposal of `round` (see {commitmentOf}).
    /// `round` is not indexed: one topic less keeps a relayed commitment under 12,000 gas.
    event VoteCommitted(uint256 indexed experimentId, address indexed voter, uint256 round, bytes32 commitment);
    /// @notice Every voter of `round` committed: the reveal window opens now (it closes at the
    /// reveal deadline as ever).
    event CommitsComplete(uint256 indexed experimentId, uint256 indexed round);
    /// @notice `round` was decided; on acceptance its proposal is the current model.
    event RoundDecided(
        uint256 indexed experimentId, uint256 indexed round, bool accepted, uint256 approvals, uint256 rejections
    );
    /// @notice `round` closed without a proposal; the current model stays.
    event RoundExpired(uint256 indexed experimentId, uint256 indexed round);
    /// @notice The last round closed; `modelDigest` is the final model.
    event ExperimentCompleted(uint256 indexed experimentId, bytes32 modelDigest, uint256 modelRound);
    /// @notice `amount` of `learner`'s stake went to the pool for `reason`, in `round`.
    event PenaltyTaken(
        uint256 indexed experimentId, address indexed learner, uint256 indexed round, Penalty reason, uint256 amount
    );
    /// @notice `account` withdrew `amount`, all it was owed by the experiment.
    event FundsWithdrawn(uint256 indexed experimentId, address indexed account, uint256 amount);

    // ------------------------------------------------------------------ errors

    error TooFewLearners(uint256 given, uint256 minimum);
    error TooManyLearners(uint256 given, uint256 maximum);
    error InvalidLearner(address learner);
    error DuplicateLearner(address learner);
    error InvalidThreshold(uint256 thresholdBps);
    error InvalidRoundCount(uint256 numRounds);
    /// @dev The proposal or voting timeout is not within 1 s .. `maximum`.
    error InvalidTimeout(uint256 proposalTimeout, uint256 votingTimeout, uint256 maximum);
    /// @dev The join timeout is not within 1 s .. `maximum`.
    error InvalidJoinTimeout(uint256 joinTimeout, uint256 maximum);
    /// @dev The reveal timeout is over `maximum` (0 is allowed: public votes).
    error InvalidRevealTimeout(uint256 revealTimeout, uint256 maximum);
    error EmptyCid();
    error EmptyDigest();
    /// @dev A CID (initial, metadata or proposal) is longer than `maximum` bytes.
    error CidTooLong(uint256 length, uint256 maximum);
    /// @dev Terms of a plain experiment carry a stake field, a basis-point share is over 10000, or
    /// an amount is over `maximum` (2^96 - 1).
    error InvalidStakeTerms(uint256 maximum);
    /// @dev msg.value is not what the call deposits (`expected`: 0 unless ETH is deposited).
    error WrongValue(uint256 expected, uint256 given);
    /// @dev The token delivered `received` for a transfer of `expected` (fee on transfer): refused.
    error FeeOnTransferToken(address token, uint256 expected, uint256 received);
    error UnknownExperiment(uint256 experimentId);
    /// @dev The call names a round other than the current one (a stale or early call).
    error WrongRound(uint256 experimentId, uint256 currentRound, uint256 givenRound);
    /// @dev The round is in `current`; the call needs `expected`.
    error UnexpectedRoundState(uint256 experimentId, uint256 round, RoundState current, RoundState expected);
    /// @dev The vote names the digest `given`; the proposal of the round is `expected`.
    error WrongProposal(uint256 experimentId, uint256 round, bytes32 expected, bytes32 given);
    /// @dev A public vote in an experiment with sealed votes, or a commitment/reveal in one without.
    error WrongVoteKind(uint256 experimentId, bool sealedVotes);
    error NotLearner(uint256 experimentId, address account);
    error NotProposer(uint256 experimentId, uint256 round, address account);
    error ProposerCannotVote(uint256 experimentId, uint256 round, address proposer);
    error AlreadyVoted(uint256 experimentId, uint256 round, address voter);
    /// @dev `voter` committed already in this round (a direct commitment).
    error AlreadyCommitted(uint256 experimentId, uint256 round, address voter);
    /// @dev A reveal for `voter`, who has no commitment in this round.
    error NotCommitted(uint256 experimentId, uint256 round, address voter);
    /// @dev The opening does not hash to `voter`'s commitment (other vote, score, salt or proposal).
    error CommitmentMismatch(uint256 experimentId, uint256 round, address voter);
    error AlreadyJoined(uint256 experimentId, address learner);
    /// @dev The join deadline passed (or the experiment was cancelled): joining is over.
    error JoinClosed(uint256 experimentId, uint256 joinDeadline);
    /// @dev Cancelling needs the join deadline passed; it is `joinDeadline`.
    error JoinStillOpen(uint256 experimentId, uint256 joinDeadline);
    /// @dev A signed join cannot deposit ETH (the relayer would pay the stake): join directly.
    error SignedJoinNeedsToken(uint256 experimentId);
    /// @dev A relayed batch held nothing.
    error EmptyBatch();
    /// @dev The learner list given with relayed calls is not the experiment's.
    error LearnerListMismatch(uint256 experimentId);
    /// @dev A relayed call names a learner index outside the learner list.
    error InvalidLearnerIndex(uint256 experimentId, uint256 learnerIndex);
    /// @dev A relayed call's signature recovers to `signer`, not to the learner it names
    /// (another round, experiment, proposal, contract or chain, other contents, or another key).
    error SignerMismatch(uint256 experimentId, uint256 learnerIndex, address signer);
    /// @dev Withdrawals open when the experiment is `Completed` or `Cancelled`; it is `current`.
    error NotFinished(uint256 experimentId, RoundState current);
    /// @dev `account` is owed nothing (no stake, no share, or already withdrawn).
    error NothingToWithdraw(uint256 experimentId, address account);

    // ------------------------------------------------------------------ functions
    // (documented where they are implemented, in CollectiveLearning)

    function createExperiment(
        address[] calldata learners,
        uint256 thresholdBps,
        uint256 numRounds,
        uint256 proposalTimeout,
        uint256 votingTimeout,
        string calldata initialCid,
        bytes32 initialDigest,
        string calldata metadataCid,
        uint256 joinTimeout,
        ExperimentTerms calldata terms
    ) external payable returns (uint256 experimentId);

    function join(uint256 experimentId) external payable;

    function joinBySig(uint256 experimentId, uint256 signerIndex, bytes32 r, bytes32 vs) external;

    function cancel(uint256 experimentId) external;

    function propose(uint256 experimentId, uint256 round, string calldata cid, bytes32 digest) external;

    function proposeBySig(
        uint256 experimentId,
        uint256 round,
        string calldata cid,
        bytes32 digest,
        bytes32 r,
        bytes32 vs
    ) external;

    function vote(uint256 experimentId, uint256 round, bytes32 digest, bool approve, int256 score) external;

    function castVotesBySig(
        uint256 experimentId,
        uint256 round,
        bytes32 digest,
        address[] calldata learners,
        SignedVote[] calldata votes
    ) external returns (uint256 counted);

    function commitVote(uint256 experimentId, uint256 round, bytes32 commitment) external;

    function commitVotesBySig(
        uint256 experimentId,
        uint256 round,
        address[] calldata learners,
        SignedCommit[] calldata commits
    ) external returns (uint256 counted);

    function revealVote(uint256 experimentId, uint256 round, bool approve, int256 score, bytes32 salt) external;

    function revealVotes(uint256 experimentId, uint256 round, address[] calldata learners, Reveal[] calldata reveals)
        external
        returns (uint256 counted);

    function decide(uint256 experimentId, uint256 round) external;

    function expire(uint256 experimentId, uint256 round) external;

    function withdraw(uint256 experimentId) external returns (uint256 amount);

    function experimentCount() external view returns (uint256);

    function getExperiment(uint256 experimentId) external view returns (ExperimentView memory);

    function stakeOf(uint256 experimentId) external view returns (StakeView memory);

    function accountOf(uint256 experimentId, address account) external view returns (AccountView memory);

    function state(uint256 experimentId) external view returns (RoundState);

    function deadline(uint256 experimentId) external view returns (uint256);

    function currentModel(uint256 experimentId) external view returns (bytes32 digest, uint256 modelRound);

    function proposalDigest(uint256 experimentId) external view returns (bytes32);

    function learnerIndex(uint256 experimentId, address account) external view returns (int256);

    function voteOf(uint256 experimentId, address voter) external view returns (bool voted, bool approved);

    function commitmentOf(
        uint256 experimentId,
        uint256 round,
        address voter,
        bytes32 digest,
        bool approve,
        int256 score,
        bytes32 salt
    ) external pure returns (bytes32);

    function roundStatus(uint256 experimentId, address account) external view returns (RoundStatus memory);
}

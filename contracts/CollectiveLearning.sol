// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {Ballots, Experiments} from "./Packing.sol";
import {ICollectiveLearning} from "./ICollectiveLearning.sol";

/**
 * @title CollectiveLearning
 * @notice Records collective learning experiments and decides every round on chain
 * (PROTOCOL.md, version 2). No owner, no admin, no upgrade: once deployed, only the rules
 * below move state or funds.
 *
 * Each round one learner, `learners[round % n]`, proposes new model weights by their
 * content identifier (CID) and sha256 digest; the weights themselves live in a
 * content-addressed store. Every other learner votes once, approve or reject, naming the
 * digest it judged, with its score of the proposal on its private vote set. The round is
 * accepted iff `approvals * 10000 >= thresholdBps * (n - 1)`; a missing vote counts as not
 * approving. A round without a proposal before its deadline can be expired by anyone.
 *
 * Sealed votes (an experiment created with `terms.revealTimeout > 0`): voters first commit
 * to `keccak256(abi.encode(experimentId, round, voter, proposalDigest, approve, score, salt))`
 * ({commitmentOf}) until the voting deadline, then reveal until the reveal deadline (voting
 * deadline + reveal timeout). The reveal window opens early once every voter committed
 * (nothing is left to hide). A reveal counts as a public vote does (event {VoteCast}); the
 * reveal that opens the last commitment decides the round, and after the reveal deadline
 * anyone may {decide} it: an unrevealed vote counts as not approving.
 *
 * Stake (an experiment created with `terms.stake > 0` or `terms.rewardPool > 0`): each learner
 * deposits the stake at {join}, the creator the reward pool at creation, in ETH or one ERC-20
 * (tokens that take a fee on transfer are refused). Penalties move from the offender's stake
 * into the pool, each capped at what is left of that stake. At completion the pool (reward
 * pool plus penalties) is split: `proposerShareBps` of it among proposers of accepted rounds,
 * one share per accepted round, the rest among voters, one share per counted vote; each part
 * with no share goes back to the creator. A learner withdraws stake minus penalties plus
 * `floor(part * myShares / totalShares)` of each part; the rounding dust (under one wei per
 * shareholder and part) stays in the contract. A cancelled experiment refunds every deposit.
 *
 * Relaying: a proposal, a vote, a commitment or a join may be an EIP-712 signature of the
 * learner that anyone submits; a reveal needs no signature (the opening authenticates
 * itself: it only matches its committer's commitment). Batches skip a vote, commitment or
 * reveal already on chain ({VoteSkipped}) instead of failing, so copying one signature out
 * of a pending batch cannot cancel the others.
 *
 * Gas: the configuration, the join count and the round fit one word ({Experiments}); the
 * current round's ballot (tallies, commitments count, two bits a learner) lives in words
 * tagged with the round ({Ballots}), so a new round needs no clearing; commitments are stored
 * two to a slot; accepting a proposal flips which of two digest slots holds the model
 * instead of copying the digest.
 */
contract CollectiveLearning is ICollectiveLearning, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using Experiments for uint256;

    /// @notice Vote scores are fixed-point integers with 18 decimals: 0.9731 is 973100000000000000.
    uint256 public constant SCORE_SCALE = 1e18;
    /// @notice The score of a reject vote cast because the proposal could not be fetched,
    /// verified or loaded (no score exists for it).
    int256 public constant NO_SCORE = type(int256).min;
    /// @notice Denominator of the vote threshold and of every share in basis points.
    uint256 public constant BPS = 10_000;
    /// @notice Bounds on the learner list of an experiment.
    uint256 public constant MIN_LEARNERS = 2;
    /// (500 keeps creation under EIP-7825's 2^24 gas cap per transaction.)
    uint256 public constant MAX_LEARNERS = 500;
    /// @notice Largest number of rounds an experiment may have.
    uint256 public constant MAX_ROUNDS = type(uint24).max;
    /// @notice Longest join, proposal, voting or reveal timeout; the shortest is 1 s (reveal: 0 = public votes).
    uint256 public constant MAX_TIMEOUT = 30 days;
    /// @notice Longest CID (initial, metadata, proposal), in bytes.
    uint256 public constant MAX_CID_LENGTH = 128;
    /// @notice Largest stake, reward pool or penalty (2^96 - 1).
    uint256 public constant MAX_AMOUNT = type(uint96).max;
    /// @notice EIP-712 type of a signed vote: it names the digest of the proposal it judged.
    bytes32 public constant VOTE_TYPEHASH =
        keccak256("Vote(uint256 experimentId,uint256 round,bytes32 digest,bool approve,int256 score)");
    /// @notice EIP-712 type of a signed commitment to a sealed vote (see {commitmentOf}).
    bytes32 public constant COMMIT_TYPEHASH = keccak256("Commit(uint256 experimentId,uint256 round,bytes32 commitment)");
    /// @notice EIP-712 type of a signed proposal (`cid` is hashed as EIP-712 hashes strings).
    bytes32 public constant PROPOSAL_TYPEHASH =
        keccak256("Proposal(uint256 experimentId,uint256 round,string cid,bytes32 digest)");
    /// @notice EIP-712 type of a signed join: the learner consents to the experiment's terms.
    bytes32 public constant JOIN_TYPEHASH = keccak256("Join(uint256 experimentId)");

    /// @dev Terms read outside rounds (joining, withdrawing): one slot.
    struct Settings {
        address token; // deposits' ERC-20; address(0): ETH
        uint24 joinTimeout;
        uint16 rejectionShareBps;
        uint16 proposerShareBps;
    }

    /// @dev The money of a staked experiment (four slots).
    struct Stake {
        uint96 stake;
        uint96 rewardPool;
        uint64 proposerShares; // accepted rounds
        uint128 penaltyTotal; // penalties taken: the pool is rewardPool + penaltyTotal
        uint64 voterShares; // counted votes of decided rounds
        bool creatorWithdrawn;
        uint96 missedProposalPenalty;
        uint96 unrevealedVotePenalty;
        address creator;
        uint96 rejectedProposalPenalty;
    }

    /// @dev A learner's account in a staked experiment, by learner index (written at join).
    struct Account {
        address learner;
        uint24 proposerShares;
        uint32 voterShares;
        bool withdrawn;
        uint96 penalties; // (second slot)
    }

    // Learner entries: bits 0-15 hold index + 1 (0: not a learner), bit 16 is set once joined.
    uint256 private constant _INDEX_MASK = (1 << 16) - 1;
    uint256 private constant _JOINED = 1 << 16;

    uint256 private _experimentCount;
    /// @dev The experiment's word (see {Experiments}); 0: no such experiment.
    mapping(uint256 experimentId => uint256) private _experiments;
    mapping(uint256 experimentId => Settings) private _settings;
    mapping(uint256 experimentId => Stake) private _stakes;
    mapping(uint256 experimentId => mapping(uint256 learnerIndex => Account)) private _accounts;
    /// @dev The model digest is in slot `modelSlot`, the current proposal's in the other.
    mapping(uint256 experimentId => bytes32[2]) private _digests;
    /// @dev Ballot words (see {Ballots}).
    mapping(uint256 experimentId => mapping(uint256 word => uint256)) private _ballots;
    /// @dev Sealed votes: learners 2k and 2k + 1's stored commitments of their latest round, in
    /// slot k (see {Ballots-withCommitment}); the ballot says whether one is this round's.
    // Written through a storage reference to the experiment's inner mapping (commitVotesBySig,
    // _storeCommitment), which Slither does not follow.
    // slither-disable-next-line uninitialized-state
    mapping(uint256 experimentId => mapping(uint256 pair => uint256)) private _commitments;
    /// @dev Read and written through {_indexPlusOne} and {_join}.
    mapping(uint256 experimentId => mapping(address learner => uint256)) private _learnerEntries;
    /// @dev keccak256 of the learner list, for relayed calls (see {castVotesBySig}).
    mapping(uint256 experimentId => bytes32) private _learnersHash;

    constructor() EIP712("CollectiveLearning", "2") {}

    // ------------------------------------------------------------------ creation and joining

    /**
     * @notice Creates an experiment. It is `Joining` until every learner has joined
     * ({join}); the last join starts round 0. With a stake, the creator deposits
     * `terms.rewardPool` now (ETH: as msg.value; ERC-20: pulled, after the creator's approval).
     * @param learners Ordered learner addresses; `learners[r % n]` proposes round r.
     * @param thresholdBps Acceptance threshold as a fraction of the n - 1 voters, in basis points.
     * @param numRounds Number of rounds (1 .. {MAX_ROUNDS}).
     * @param proposalTimeout Seconds the proposer has from a round's start (1 .. {MAX_TIMEOUT}).
     * @param votingTimeout Seconds voters (sealed: committers) have from the proposal (1 .. {MAX_TIMEOUT}).
     * @param initialCid CID of the serialized initial weights (1 .. {MAX_CID_LENGTH} bytes).
     * @param initialDigest sha256 of the serialized initial weights.
     * @param metadataCid CID of a document describing the task (0 .. {MAX_CID_LENGTH} bytes).
     * @param joinTimeout Seconds learners have from now to join (1 .. {MAX_TIMEOUT}); after
     * that, with a learner missing, anyone may {cancel} the experiment.
     * @param terms Sealed votes and stake; all zero for a plain experiment.
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
        uint256 joinTimeout,
        ExperimentTerms calldata terms
    ) external payable nonReentrant returns (uint256 experimentId) {
        uint256 n = learners.length;
        if (n < MIN_LEARNERS) revert TooFewLearners(n, MIN_LEARNERS);
        if (n > MAX_LEARNERS) revert TooManyLearners(n, MAX_LEARNERS);
        if (thresholdBps > BPS) revert InvalidThreshold(thresholdBps);
        if (numRounds == 0 || numRounds > MAX_ROUNDS) revert InvalidRoundCount(numRounds);
        if (
            proposalTimeout == 0 || votingTimeout == 0 || proposalTimeout > MAX_TIMEOUT
                || votingTimeout > MAX_TIMEOUT
        ) revert InvalidTimeout(proposalTimeout, votingTimeout, MAX_TIMEOUT);
        if (joinTimeout == 0 || joinTimeout > MAX_TIMEOUT) revert InvalidJoinTimeout(joinTimeout, MAX_TIMEOUT);
        if (terms.revealTimeout > MAX_TIMEOUT) revert InvalidRevealTimeout(terms.revealTimeout, MAX_TIMEOUT);
        _checkCid(initialCid, false);
        _checkCid(metadataCid, true);
        if (initialDigest == bytes32(0)) revert EmptyDigest();
        bool staked = _checkTerms(terms);

        experimentId = ++_experimentCount;
        mapping(address => uint256) storage entries = _learnerEntries[experimentId];
        // The one loop over learners: it runs once per experiment, bounded by MAX_LEARNERS.
        for (uint256 i = 0; i < n; ++i) {
            address learner = learners[i];
            if (learner == address(0)) revert InvalidLearner(learner);
            if (entries[learner] != 0) revert DuplicateLearner(learner);
            entries[learner] = i + 1; // not joined yet
        }
        _learnersHash[experimentId] = _hashLearners(learners);
        _experiments[experimentId] = Experiments.pack(
            Experiments.Fields({
                numLearners: n,
                thresholdBps: thresholdBps,
                numRounds: numRounds,
                proposalTimeout: proposalTimeout,
                votingTimeout: votingTimeout,
                revealTimeout: terms.revealTimeout,
                round: 0,
                phaseStart: block.timestamp,
                status: Experiments.JOINING,
                modelRound: 0,
                modelSlot: 0,
                staked: staked,
                joined: 0
            })
        );
        _settings[experimentId] = Settings({
            token: terms.token,
            joinTimeout: uint24(joinTimeout),
            rejectionShareBps: uint16(terms.rejectionShareBps),
            proposerShareBps: uint16(terms.proposerShareBps)
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
            metadataCid,
            terms
        );
        if (staked) {
            _stakes[experimentId] = Stake({
                stake: uint96(terms.stake),
                rewardPool: uint96(terms.rewardPool),
                proposerShares: 0,
                penaltyTotal: 0,
                voterShares: 0,
                creatorWithdrawn: false,
                missedProposalPenalty: uint96(terms.missedProposalPenalty),
                unrevealedVotePenalty: uint96(terms.unrevealedVotePenalty),
                creator: msg.sender,
                rejectedProposalPenalty: uint96(terms.rejectedProposalPenalty)
            });
            _deposit(experimentId, terms.token, msg.sender, terms.rewardPool, msg.value);
        } else if (msg.value != 0) {
            revert WrongValue(0, msg.value);
        }
    }

    /**
     * @notice Joins the experiment: the caller, a listed learner, consents to its terms and,
     * with a stake, deposits it (ETH: as msg.value; ERC-20: pulled, after its approval).
     * Once, before the join deadline. The last join starts round 0 at this block's time.
     * @param experimentId The experiment.
     */
    function join(uint256 experimentId) external payable nonReentrant {
        _join(experimentId, msg.sender, msg.value);
    }

    /**
     * @notice Submits a learner's signed join (see {JOIN_TYPEHASH}); it counts as the
     * learner's own {join}. Anyone may submit it. With an ERC-20 stake the stake is pulled
     * from the signer (who approved it); with a non-zero ETH stake it is refused
     * ({SignedJoinNeedsToken}): the relayer would pay the stake.
     * @param experimentId The experiment, as signed.
     * @param signerIndex The signer's index in the experiment's learner list.
     * @param r The signature's `r`.
     * @param vs The signature's `s` and parity in ERC-2098 short form.
     */
    function joinBySig(uint256 experimentId, uint256 signerIndex, bytes32 r, bytes32 vs) external nonReentrant {
        uint256 e = _load(experimentId);
        if (signerIndex >= e.numLearners()) revert InvalidLearnerIndex(experimentId, signerIndex);
        if (e.staked() && _settings[experimentId].token == address(0) && _stakes[experimentId].stake != 0) {
            revert SignedJoinNeedsToken(experimentId);
        }
        bytes32 structHash = keccak256(abi.encode(JOIN_TYPEHASH, experimentId));
        address signer = ECDSA.recover(_hashTypedDataV4(structHash), r, vs);
        if (_indexPlusOne(experimentId, signer) != signerIndex + 1) {
            revert SignerMismatch(experimentId, signerIndex, signer);
        }
        _join(experimentId, signer, 0);
    }

    /**
     * @notice Cancels an experiment whose join deadline passed with a learner missing: it
     * ends without a round, and every deposit is refundable ({withdraw}). Anyone may call it.
     * @param experimentId The experiment.
     */
    function cancel(uint256 experimentId) external {
        uint256 e = _load(experimentId);
        RoundState current = _state(experimentId, e);
        if (current == RoundState.Joining) revert JoinStillOpen(experimentId, _deadline(experimentId, e));
        if (current != RoundState.JoinTimedOut) {
            revert UnexpectedRoundState(experimentId, e.round(), current, RoundState.JoinTimedOut);
        }
        _experiments[experimentId] = e.set(Experiments.STATUS, Experiments.MASK8, Experiments.CANCELLED);
        emit ExperimentCancelled(experimentId);
    }

    // ------------------------------------------------------------------ rounds

    /**
     * @notice Proposes weights for `round`. Only the round's scheduled proposer, only
     * before the proposal deadline.
     * @param experimentId The experiment.
     * @param round The current round (guards against stale transactions).
     * @param cid Where the serialized weights are stored (1 .. {MAX_CID_LENGTH} bytes).
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
     * @notice Votes on the proposal of `round` (public votes only). Every learner but the
     * proposer, once, before the voting deadline. The vote that completes the ballot decides
     * the round.
     * @param experimentId The experiment.
     * @param round The current round (guards against stale transactions).
     * @param digest The digest of the proposal judged; any other than the round's is refused
     * ({WrongProposal}).
     * @param approve Whether the proposal improves on the current model for this voter.
     * @param score The voter's score of the proposal, scaled by {SCORE_SCALE}.
     */
    function vote(uint256 experimentId, uint256 round, bytes32 digest, bool approve, int256 score) external {
        uint256 e = _openRound(experimentId, round, false, RoundState.Voting);
        _checkDigest(experimentId, e, digest);
        uint256 index = _voterIndex(experimentId, e, msg.sender);
        (uint256 word0, uint256 w, uint256 offset, uint256 word) = _ballotOf(experimentId, round, index);
        if (Ballots.bitsAt(word, offset) != Ballots.NONE) revert AlreadyVoted(experimentId, round, msg.sender);
        (word0, word) = _setBits(word0, w, offset, word, Ballots.vote(approve));
        word0 = Ballots.increment(word0, Ballots.tally(approve));
        _counted(experimentId, e, index, msg.sender, approve, score);
        if (Ballots.counted(word0) == e.numLearners() - 1) _decide(experimentId, e, word0);
        else _storeBallot(experimentId, w, word0, word);
    }

    /**
     * @notice Submits learners' signed votes on the proposal of `round` (see
     * {VOTE_TYPEHASH}); each counts exactly as that learner's own {vote}. Anyone may submit
     * them. A vote of a learner who already voted this round is skipped ({VoteSkipped});
     * anything else invalid reverts the batch.
     * @param experimentId The experiment.
     * @param round The current round, as signed.
     * @param digest The proposal's digest, as signed.
     * @param learners The experiment's learner list, as in {ExperimentCreated} (checked
     * against its hash; reading it from calldata is cheaper than from storage).
     * @param votes The signed votes, each naming its signer's index in `learners`.
     * @return counted How many votes counted (the others were skipped).
     */
    function castVotesBySig(
        uint256 experimentId,
        uint256 round,
        bytes32 digest,
        address[] calldata learners,
        SignedVote[] calldata votes
    ) external returns (uint256 counted) {
        uint256 e = _openRound(experimentId, round, false, RoundState.Voting);
        if (votes.length == 0) revert EmptyBatch();
        _checkDigest(experimentId, e, digest);
        _checkLearners(experimentId, learners);
        uint256 word0 = _ballotWord(experimentId, round, 0);
        (uint256 cw, uint256 cv) = (0, 0); // a ballot word >= 1 read in this batch (0: none), and its value
        bytes32 domainSeparator = _domainSeparatorV4();
        uint256 proposerIndex = _proposerIndex(e);
        for (uint256 i = 0; i < votes.length; ++i) {
            SignedVote calldata v = votes[i];
            uint256 index = v.learnerIndex;
            if (index >= learners.length) revert InvalidLearnerIndex(experimentId, index);
            bool approve = v.approve;
            bytes32 structHash = _hash6(VOTE_TYPEHASH, experimentId, round, digest, _boolWord(approve), uint256(v.score));
            address signer = ECDSA.recover(MessageHashUtils.toTypedDataHash(domainSeparator, structHash), v.r, v.vs);
            if (signer != _learnerAt(learners, index)) revert SignerMismatch(experimentId, index, signer);
            if (index == proposerIndex) revert ProposerCannotVote(experimentId, round, signer);
            (uint256 w, uint256 offset) = Ballots.position(index);
            if (w != 0 && w != cw) (cw, cv) = _switchWord(experimentId, round, cw, cv, w);
            uint256 value = w == 0 ? word0 : cv;
            if (Ballots.bitsAt(value, offset) != Ballots.NONE) {
                emit VoteSkipped(experimentId, round, signer);
                continue;
            }
            (word0, cv) = _setBits(word0, w, offset, cv, Ballots.vote(approve));
            word0 = Ballots.increment(word0, Ballots.tally(approve));
            _counted(experimentId, e, index, signer, approve, v.score);
            unchecked {
                ++counted;
            }
        }
        if (Ballots.counted(word0) == e.numLearners() - 1) _decide(experimentId, e, word0);
        else _storeBallot(experimentId, cw, word0, cv);
    }

    /**
     * @notice Commits to a sealed vote on the proposal of `round` (sealed experiments only).
     * Every learner but the proposer, once, before the voting deadline. The commitment that
     * completes the ballot opens the reveal window.
     * @param experimentId The experiment.
     * @param round The current round.
     * @param commitment {commitmentOf} the caller's vote, score and a secret salt, over the
     * round's proposal digest.
     */
    function commitVote(uint256 experimentId, uint256 round, bytes32 commitment) external {
        uint256 e = _openRound(experimentId, round, true, RoundState.Voting);
        uint256 index = _voterIndex(experimentId, e, msg.sender);
        (uint256 word0, uint256 w, uint256 offset, uint256 word) = _ballotOf(experimentId, round, index);
        if (Ballots.bitsAt(word, offset) != Ballots.NONE) revert AlreadyCommitted(experimentId, round, msg.sender);
        (word0, word) = _setBits(word0, w, offset, word, Ballots.COMMITTED);
        word0 = Ballots.increment(word0, Ballots.COMMITS);
        _storeCommitment(experimentId, round, index, msg.sender, commitment);
        _storeBallot(experimentId, w, word0, word);
        if (Ballots.count(word0, Ballots.COMMITS) == e.numLearners() - 1) _openReveals(experimentId, e);
    }

    /**
     * @notice Submits learners' signed commitments (see {COMMIT_TYPEHASH}); each counts as
     * that learner's own {commitVote}. Anyone may submit them. A commitment of a learner who
     * already committed this round is skipped ({VoteSkipped}); anything else invalid reverts.
     * @param experimentId The experiment.
     * @param round The current round, as signed.
     * @param learners The experiment's learner list (checked against its hash).
     * @param commits The signed commitments, each naming its signer's index in `learners`.
     * @return counted How many commitments were recorded (the others were skipped).
     */
    function commitVotesBySig(
        uint256 experimentId,
        uint256 round,
        address[] calldata learners,
        SignedCommit[] calldata commits
    ) external returns (uint256 counted) {
        uint256 e = _openRound(experimentId, round, true, RoundState.Voting);
        if (commits.length == 0) revert EmptyBatch();
        _checkLearners(experimentId, learners);
        uint256 word0 = _ballotWord(experimentId, round, 0);
        (uint256 cw, uint256 cv) = (0, 0); // a ballot word >= 1 read in this batch (0: none), and its value
        bytes32 domainSeparator = _domainSeparatorV4();
        uint256 proposerIndex = _proposerIndex(e);
        mapping(uint256 => uint256) storage pairs = _commitments[experimentId];
        for (uint256 i = 0; i < commits.length; ++i) {
            SignedCommit calldata c = commits[i];
            uint256 index = c.learnerIndex;
            if (index >= learners.length) revert InvalidLearnerIndex(experimentId, index);
            bytes32 commitment = c.commitment;
            bytes32 structHash = _hash4(COMMIT_TYPEHASH, experimentId, round, commitment);
            address signer = ECDSA.recover(MessageHashUtils.toTypedDataHash(domainSeparator, structHash), c.r, c.vs);
            if (signer != _learnerAt(learners, index)) revert SignerMismatch(experimentId, index, signer);
            if (index == proposerIndex) revert ProposerCannotVote(experimentId, round, signer);
            (uint256 w, uint256 offset) = Ballots.position(index);
            if (w != 0 && w != cw) (cw, cv) = _switchWord(experimentId, round, cw, cv, w);
            uint256 value = w == 0 ? word0 : cv;
            if (Ballots.bitsAt(value, offset) != Ballots.NONE) {
                emit VoteSkipped(experimentId, round, signer);
                continue;
            }
            (word0, cv) = _setBits(word0, w, offset, cv, Ballots.COMMITTED);
            word0 = Ballots.increment(word0, Ballots.COMMITS);
            pairs[index >> 1] = Ballots.withCommitment(pairs[index >> 1], index, commitment);
            emit VoteCommitted(experimentId, signer, round, commitment);
            unchecked {
                ++counted;
            }
        }
        _storeBallot(experimentId, cw, word0, cv);
        if (Ballots.count(word0, Ballots.COMMITS) == e.numLearners() - 1) _openReveals(experimentId, e);
    }

    /**
     * @notice Reveals the caller's sealed vote on the proposal of `round`, in the reveal
     * window. It counts as a public vote ({VoteCast}); the reveal of the last commitment
     * decides the round.
     * @param experimentId The experiment.
     * @param round The current round.
     * @param approve The vote committed to.
     * @param score The score committed to, scaled by {SCORE_SCALE}.
     * @param salt The salt committed with.
     */
    function revealVote(uint256 experimentId, uint256 round, bool approve, int256 score, bytes32 salt) external {
        uint256 e = _openRound(experimentId, round, true, RoundState.Revealing);
        uint256 index = _indexOf(experimentId, msg.sender);
        (uint256 word0, uint256 w, uint256 offset, uint256 word) = _ballotOf(experimentId, round, index);
        uint256 bits = Ballots.bitsAt(word, offset);
        if (bits == Ballots.NONE) revert NotCommitted(experimentId, round, msg.sender);
        if (bits != Ballots.COMMITTED) revert AlreadyVoted(experimentId, round, msg.sender);
        _checkOpening(experimentId, e, index, msg.sender, _proposalDigest(experimentId, e), approve, score, salt);
        (word0, word) = _setBits(word0, w, offset, word, Ballots.vote(approve));
        word0 = Ballots.increment(word0, Ballots.tally(approve));
        _counted(experimentId, e, index, msg.sender, approve, score);
        if (Ballots.counted(word0) == Ballots.count(word0, Ballots.COMMITS)) _decide(experimentId, e, word0);
        else _storeBallot(experimentId, w, word0, word);
    }

    /**
     * @notice Submits openings of learners' commitments in the reveal window; each counts as
     * that learner's own {revealVote}. Anyone holding an opening may submit it: an opening
     * only matches its committer's commitment, so it needs no signature. An opening of a
     * vote already revealed is skipped ({VoteSkipped}); anything else invalid reverts.
     * @param experimentId The experiment.
     * @param round The current round.
     * @param learners The experiment's learner list (checked against its hash).
     * @param reveals The openings, each naming its committer's index in `learners`.
     * @return counted How many votes were revealed (the others were skipped).
     */
    function revealVotes(uint256 experimentId, uint256 round, address[] calldata learners, Reveal[] calldata reveals)
        external
        returns (uint256 counted)
    {
        uint256 e = _openRound(experimentId, round, true, RoundState.Revealing);
        if (reveals.length == 0) revert EmptyBatch();
        _checkLearners(experimentId, learners);
        uint256 word0 = _ballotWord(experimentId, round, 0);
        (uint256 cw, uint256 cv) = (0, 0); // a ballot word >= 1 read in this batch (0: none), and its value
        bytes32 digest = _proposalDigest(experimentId, e);
        for (uint256 i = 0; i < reveals.length; ++i) {
            Reveal calldata v = reveals[i];
            uint256 index = v.learnerIndex;
            if (index >= learners.length) revert InvalidLearnerIndex(experimentId, index);
            address voter = _learnerAt(learners, index);
            (uint256 w, uint256 offset) = Ballots.position(index);
            if (w != 0 && w != cw) (cw, cv) = _switchWord(experimentId, round, cw, cv, w);
            uint256 bits = Ballots.bitsAt(w == 0 ? word0 : cv, offset);
            if (bits == Ballots.NONE) revert NotCommitted(experimentId, round, voter);
            if (bits != Ballots.COMMITTED) {
                emit VoteSkipped(experimentId, round, voter);
                continue;
            }
            bool approve = v.approve;
            _checkOpening(experimentId, e, index, voter, digest, approve, v.score, v.salt);
            (word0, cv) = _setBits(word0, w, offset, cv, Ballots.vote(approve));
            word0 = Ballots.increment(word0, Ballots.tally(approve));
            _counted(experimentId, e, index, voter, approve, v.score);
            unchecked {
                ++counted;
            }
        }
        if (Ballots.counted(word0) == Ballots.count(word0, Ballots.COMMITS)) _decide(experimentId, e, word0);
        else _storeBallot(experimentId, cw, word0, cv);
    }

    /**
     * @notice Decides `round` after its voting deadline (public votes) or its reveal
     * deadline (sealed votes), counting missing votes as not approving. Anyone may call it.
     * In a staked experiment, each committed vote left unrevealed costs its voter the
     * unrevealed-vote penalty.
     * @param experimentId The experiment.
     * @param round The current round.
     */
    function decide(uint256 experimentId, uint256 round) external {
        uint256 e = _current(experimentId, round);
        _expectState(experimentId, e, e.isSealed() ? RoundState.RevealTimedOut : RoundState.VotingTimedOut);
        uint256 word0 = _ballotWord(experimentId, round, 0);
        if (e.staked() && e.isSealed()) _penalizeUnrevealed(experimentId, e, word0);
        _decide(experimentId, e, word0);
    }

    /**
     * @notice Closes `round` as expired when its proposer missed the proposal deadline.
     * The current model stays; in a staked experiment the proposer pays the
     * missed-proposal penalty. Anyone may call it.
     * @param experimentId The experiment.
     * @param round The current round.
     */
    function expire(uint256 experimentId, uint256 round) external {
        uint256 e = _current(experimentId, round);
        _expectState(experimentId, e, RoundState.ProposalTimedOut);
        emit RoundExpired(experimentId, round);
        if (e.staked()) {
            _penalize(
                experimentId, round, _proposerIndex(e), Penalty.MissedProposal, _stakes[experimentId].missedProposalPenalty
            );
        }
        _advance(experimentId, e);
    }

    // ------------------------------------------------------------------ funds

    /**
     * @notice Pays the caller everything the experiment owes it, once it is `Completed` or
     * `Cancelled`: as a learner its stake minus penalties plus its shares of the pool
     * (cancelled: its stake), as the creator each pool part nobody earned a share of
     * (cancelled: the reward pool). Only the owner of funds can move them, to itself.
     * @param experimentId The experiment.
     * @return amount What was paid (in the experiment's token, or ETH).
     */
    function withdraw(uint256 experimentId) external nonReentrant returns (uint256 amount) {
        uint256 e = _load(experimentId);
        RoundState current = _state(experimentId, e);
        bool cancelled = current == RoundState.Cancelled;
        if (!cancelled && current != RoundState.Completed) revert NotFinished(experimentId, current);
        if (e.staked()) {
            Stake storage s = _stakes[experimentId];
            uint256 entry = _learnerEntries[experimentId][msg.sender];
            if (entry & _JOINED != 0) {
                Account storage a = _accounts[experimentId][(entry & _INDEX_MASK) - 1];
                if (!a.withdrawn) {
                    a.withdrawn = true;
                    amount = _learnerOwed(experimentId, s, a, cancelled);
                }
            }
            if (msg.sender == s.creator && !s.creatorWithdrawn) {
                s.creatorWithdrawn = true;
                amount += _creatorOwed(experimentId, s, cancelled);
            }
        }
        if (amount == 0) revert NothingToWithdraw(experimentId, msg.sender);
        emit FundsWithdrawn(experimentId, msg.sender, amount);
        address token = _settings[experimentId].token;
        if (token == address(0)) Address.sendValue(payable(msg.sender), amount);
        else IERC20(token).safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------ views

    /// @notice Number of experiments created so far; ids run from 1 to this.
    function experimentCount() external view returns (uint256) {
        return _experimentCount;
    }

    /**
     * @notice An experiment's configuration and current round, with the round's tallies.
     * @dev Reverts with {UnknownExperiment} for an id that was never created.
     * @param experimentId The experiment.
     */
    function getExperiment(uint256 experimentId) external view returns (ExperimentView memory v) {
        uint256 e = _load(experimentId);
        uint256 word0 = _ballotWord(experimentId, e.round(), 0);
        uint256 status = e.status();
        v = ExperimentView({
            numLearners: e.numLearners(),
            thresholdBps: e.thresholdBps(),
            numRounds: e.numRounds(),
            proposalTimeout: e.proposalTimeout(),
            votingTimeout: e.votingTimeout(),
            round: e.round(),
            phaseStart: e.phaseStart(),
            proposed: status == Experiments.VOTING || status == Experiments.REVEALING,
            approvals: Ballots.count(word0, Ballots.APPROVALS),
            rejections: Ballots.count(word0, Ballots.REJECTIONS),
            modelRound: e.modelRound(),
            joinTimeout: _settings[experimentId].joinTimeout,
            joined: e.joined(),
            revealTimeout: e.revealTimeout(),
            commitments: Ballots.count(word0, Ballots.COMMITS),
            staked: e.staked()
        });
    }

    /// @notice The money side of a staked experiment (all zero for an unstaked one).
    /// @param experimentId The experiment.
    function stakeOf(uint256 experimentId) external view returns (StakeView memory v) {
        _load(experimentId);
        Stake storage s = _stakes[experimentId];
        Settings storage t = _settings[experimentId];
        v = StakeView({
            token: t.token,
            stake: s.stake,
            rewardPool: s.rewardPool,
            pool: uint256(s.rewardPool) + s.penaltyTotal,
            missedProposalPenalty: s.missedProposalPenalty,
            unrevealedVotePenalty: s.unrevealedVotePenalty,
            rejectedProposalPenalty: s.rejectedProposalPenalty,
            rejectionShareBps: t.rejectionShareBps,
            proposerShareBps: t.proposerShareBps,
            proposerShares: s.proposerShares,
            voterShares: s.voterShares,
            creator: s.creator
        });
    }

    /// @notice `account`'s penalties, shares and what {withdraw} would pay it as a learner now.
    /// @param experimentId The experiment.
    /// @param account A learner of the experiment (all zero for anyone else).
    function accountOf(uint256 experimentId, address account) external view returns (AccountView memory v) {
        uint256 e = _load(experimentId);
        uint256 entry = _learnerEntries[experimentId][account];
        if (!e.staked() || entry & _JOINED == 0) return v;
        Account storage a = _accounts[experimentId][(entry & _INDEX_MASK) - 1];
        v.penalties = a.penalties;
        v.proposerShares = a.proposerShares;
        v.voterShares = a.voterShares;
        v.withdrawn = a.withdrawn;
        RoundState current = _state(experimentId, e);
        bool cancelled = current == RoundState.Cancelled;
        if (!a.withdrawn && (cancelled || current == RoundState.Completed)) {
            v.owed = _learnerOwed(experimentId, _stakes[experimentId], a, cancelled);
        }
    }

    /// @notice The state of the experiment's current round, computed from stored timestamps.
    /// @param experimentId The experiment.
    function state(uint256 experimentId) external view returns (RoundState) {
        return _state(experimentId, _load(experimentId));
    }

    /**
     * @notice The deadline of the current phase: the join deadline while joining, the
     * proposal deadline while proposing, the voting (sealed: commit) deadline while voting,
     * the reveal deadline while revealing, 0 once complete or cancelled. Calls are accepted
     * strictly before it.
     * @param experimentId The experiment.
     */
    function deadline(uint256 experimentId) external view returns (uint256) {
        return _deadline(experimentId, _load(experimentId));
    }

    /// @notice The current model: its digest and the round whose proposal it is (0 = initial, r + 1 = round r).
    /// @param experimentId The experiment.
    function currentModel(uint256 experimentId) external view returns (bytes32 digest, uint256 modelRound) {
        uint256 e = _load(experimentId);
        return (_digests[experimentId][e.modelSlot()], e.modelRound());
    }

    /// @notice The digest proposed in the current round (meaningful once proposed).
    /// @param experimentId The experiment.
    function proposalDigest(uint256 experimentId) external view returns (bytes32) {
        return _proposalDigest(experimentId, _load(experimentId));
    }

    /// @notice The index of `account` in the experiment's learner list, or -1 if it is not a learner.
    /// @param experimentId The experiment.
    /// @param account Any address.
    function learnerIndex(uint256 experimentId, address account) external view returns (int256) {
        _load(experimentId);
        return int256(_indexPlusOne(experimentId, account)) - 1;
    }

    /// @notice Whether `voter`'s vote counts in the current round (sealed: revealed), and how.
    /// @param experimentId The experiment.
    /// @param voter Any address.
    function voteOf(uint256 experimentId, address voter) external view returns (bool voted, bool approved) {
        uint256 bits = _bitsOf(experimentId, _load(experimentId), voter);
        return (bits & Ballots.COUNTED != 0, bits == Ballots.APPROVED);
    }

    /**
     * @notice The commitment of a sealed vote:
     * `keccak256(abi.encode(experimentId, round, voter, digest, approve, score, salt))`.
     * @param experimentId The experiment.
     * @param round The round voted in.
     * @param voter The committer.
     * @param digest The digest of the round's proposal.
     * @param approve The vote.
     * @param score The score, scaled by {SCORE_SCALE}.
     * @param salt A secret random 32 bytes, kept until the reveal.
     */
    function commitmentOf(
        uint256 experimentId,
        uint256 round,
        address voter,
        bytes32 digest,
        bool approve,
        int256 score,
        bytes32 salt
    ) public pure returns (bytes32) {
        return keccak256(abi.encode(experimentId, round, voter, digest, approve, score, salt));
    }

    /**
     * @notice The current round as `account` needs it, read in one call from one block:
     * round, state, deadline, current model, whether `account` voted, committed and joined,
     * the proposal's digest, and the block's timestamp and base fee.
     * @param experimentId The experiment.
     * @param account The learner asking.
     */
    function roundStatus(uint256 experimentId, address account) external view returns (RoundStatus memory s) {
        uint256 e = _load(experimentId);
        s.round = e.round();
        s.state = _state(experimentId, e);
        s.deadline = _deadline(experimentId, e);
        s.modelDigest = _digests[experimentId][e.modelSlot()];
        s.modelRound = e.modelRound();
        uint256 bits = _bitsOf(experimentId, e, account);
        s.voted = bits & Ballots.COUNTED != 0;
        s.committed = bits != Ballots.NONE;
        s.joined = _learnerEntries[experimentId][account] & _JOINED != 0;
        s.timestamp = block.timestamp;
        s.baseFee = block.basefee;
        s.proposalDigest = _proposalDigest(experimentId, e);
    }

    // ------------------------------------------------------------------ internals: experiments

    function _load(uint256 experimentId) private view returns (uint256 e) {
        e = _experiments[experimentId];
        if (e == 0) revert UnknownExperiment(experimentId);
    }

    function _current(uint256 experimentId, uint256 round) private view returns (uint256 e) {
        e = _load(experimentId);
        if (round != e.round()) revert WrongRound(experimentId, e.round(), round);
    }

    /// @dev The current round, of the vote kind `sealedVotes`, in state `expected`.
    function _openRound(uint256 experimentId, uint256 round, bool sealedVotes, RoundState expected)
        private
        view
        returns (uint256 e)
    {
        e = _current(experimentId, round);
        if (e.isSealed() != sealedVotes) revert WrongVoteKind(experimentId, !sealedVotes);
        _expectState(experimentId, e, expected);
    }

    function _proposerIndex(uint256 e) private pure returns (uint256) {
        return e.round() % e.numLearners();
    }

    function _proposalDigest(uint256 experimentId, uint256 e) private view returns (bytes32) {
        return _digests[experimentId][1 - e.modelSlot()];
    }

    function _deadline(uint256 experimentId, uint256 e) private view returns (uint256) {
        uint256 status = e.status();
        if (status == Experiments.JOINING) return e.phaseStart() + _settings[experimentId].joinTimeout;
        if (status == Experiments.CANCELLED || e.round() >= e.numRounds()) return 0;
        if (status == Experiments.PROPOSING) return e.phaseStart() + e.proposalTimeout();
        uint256 commitDeadline = e.phaseStart() + e.votingTimeout();
        if (!e.isSealed() || (status == Experiments.VOTING && block.timestamp < commitDeadline)) {
            return commitDeadline;
        }
        return commitDeadline + e.revealTimeout();
    }

    function _state(uint256 experimentId, uint256 e) private view returns (RoundState) {
        uint256 status = e.status();
        if (status == Experiments.JOINING) {
            return block.timestamp >= e.phaseStart() + _settings[experimentId].joinTimeout
                ? RoundState.JoinTimedOut
                : RoundState.Joining;
        }
        if (status == Experiments.CANCELLED) return RoundState.Cancelled;
        if (e.round() >= e.numRounds()) return RoundState.Completed;
        if (status == Experiments.PROPOSING) {
            return block.timestamp >= e.phaseStart() + e.proposalTimeout()
                ? RoundState.ProposalTimedOut
                : RoundState.Proposing;
        }
        uint256 commitDeadline = e.phaseStart() + e.votingTimeout();
        if (!e.isSealed()) return block.timestamp >= commitDeadline ? RoundState.VotingTimedOut : RoundState.Voting;
        if (block.timestamp >= commitDeadline + e.revealTimeout()) return RoundState.RevealTimedOut;
        if (status == Experiments.REVEALING || block.timestamp >= commitDeadline) return RoundState.Revealing;
        return RoundState.Voting;
    }

    function _expectState(uint256 experimentId, uint256 e, RoundState expected) private view {
        RoundState current = _state(experimentId, e);
        if (current != expected) revert UnexpectedRoundState(experimentId, e.round(), current, expected);
    }

    /// @dev Refuses a vote naming `digest` unless it is the current proposal's.
    function _checkDigest(uint256 experimentId, uint256 e, bytes32 digest) private view {
        bytes32 expected = _proposalDigest(experimentId, e);
        if (digest != expected) revert WrongProposal(experimentId, e.round(), expected, digest);
    }

    function _checkLearners(uint256 experimentId, address[] calldata learners) private view {
        if (_hashLearners(learners) != _learnersHash[experimentId]) revert LearnerListMismatch(experimentId);
    }

    /// @dev `learners[index]` for an index already checked against the length, read without
    /// Solidity's check of the word's high bits: a dirty word never equals a signer, and a list
    /// with one fails {_checkLearners}.
    function _learnerAt(address[] calldata learners, uint256 index) private pure returns (address learner) {
        assembly ("memory-safe") {
            learner := calldataload(add(learners.offset, shl(5, index)))
        }
    }

    /// @dev keccak256(abi.encodePacked(learners)), hashed straight from calldata, where the list
    /// already has that layout (one 32-byte word an address). abi.encodePacked copies and cleans
    /// it word by word, at several hundred gas a learner. A word with dirty high bits hashes
    /// differently, so such a list is refused ({LearnerListMismatch}), never misread.
    function _hashLearners(address[] calldata learners) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            let size := shl(5, learners.length)
            calldatacopy(ptr, learners.offset, size)
            h := keccak256(ptr, size)
        }
    }

    function _checkCid(string calldata cid, bool mayBeEmpty) private pure {
        uint256 length = bytes(cid).length;
        if (length == 0 && !mayBeEmpty) revert EmptyCid();
        if (length > MAX_CID_LENGTH) revert CidTooLong(length, MAX_CID_LENGTH);
    }

    /// @dev Checks the optional terms; returns whether the experiment is staked.
    function _checkTerms(ExperimentTerms calldata t) private pure returns (bool staked) {
        staked = t.stake != 0 || t.rewardPool != 0;
        if (!staked) {
            if (
                t.token != address(0) || t.missedProposalPenalty != 0 || t.unrevealedVotePenalty != 0
                    || t.rejectedProposalPenalty != 0 || t.rejectionShareBps != 0 || t.proposerShareBps != 0
            ) revert InvalidStakeTerms(MAX_AMOUNT);
            return false;
        }
        if (
            t.stake > MAX_AMOUNT || t.rewardPool > MAX_AMOUNT || t.missedProposalPenalty > MAX_AMOUNT
                || t.unrevealedVotePenalty > MAX_AMOUNT || t.rejectedProposalPenalty > MAX_AMOUNT
                || t.rejectionShareBps > BPS || t.proposerShareBps > BPS
        ) revert InvalidStakeTerms(MAX_AMOUNT);
    }

    function _propose(uint256 experimentId, uint256 round, string calldata cid, bytes32 digest, address proposer)
        private
    {
        uint256 e = _current(experimentId, round);
        _expectState(experimentId, e, RoundState.Proposing);
        if (_indexPlusOne(experimentId, proposer) != _proposerIndex(e) + 1) {
            revert NotProposer(experimentId, round, proposer);
        }
        _checkCid(cid, false);
        if (digest == bytes32(0)) revert EmptyDigest();

        _digests[experimentId][1 - e.modelSlot()] = digest;
        _experiments[experimentId] = e.withPhase(Experiments.VOTING, block.timestamp);
        emit WeightsProposed(experimentId, round, proposer, cid, digest);
    }

    /// @dev `learner`'s index in the learner list plus one; 0 if it is not a learner.
    function _indexPlusOne(uint256 experimentId, address learner) private view returns (uint256) {
        return _learnerEntries[experimentId][learner] & _INDEX_MASK;
    }

    /// @dev `learner`'s index in the learner list; reverts if it is not a learner.
    function _indexOf(uint256 experimentId, address learner) private view returns (uint256) {
        uint256 indexPlusOne = _indexPlusOne(experimentId, learner);
        if (indexPlusOne == 0) revert NotLearner(experimentId, learner);
        return indexPlusOne - 1;
    }

    /// @dev `voter`'s index; reverts unless it is a learner other than the round's proposer.
    function _voterIndex(uint256 experimentId, uint256 e, address voter) private view returns (uint256 index) {
        index = _indexOf(experimentId, voter);
        if (index == _proposerIndex(e)) revert ProposerCannotVote(experimentId, e.round(), voter);
    }

    /// @dev Records `learner`'s join (and its stake); the last one starts round 0 now.
    function _join(uint256 experimentId, address learner, uint256 value) private {
        uint256 e = _load(experimentId);
        uint256 entry = _learnerEntries[experimentId][learner];
        if (entry == 0) revert NotLearner(experimentId, learner);
        if (entry & _JOINED != 0) revert AlreadyJoined(experimentId, learner);
        // Not joined, so not started: joining is open, timed out or cancelled.
        if (_state(experimentId, e) != RoundState.Joining) {
            revert JoinClosed(experimentId, _deadline(experimentId, e));
        }
        _learnerEntries[experimentId][learner] = entry | _JOINED;
        emit LearnerJoined(experimentId, learner);
        uint256 joined = e.joined() + 1;
        e = e.withJoined(joined);
        if (joined == e.numLearners()) {
            e = e.withPhase(Experiments.PROPOSING, block.timestamp);
            emit ExperimentStarted(experimentId);
        }
        _experiments[experimentId] = e;
        if (e.staked()) {
            _accounts[experimentId][(entry & _INDEX_MASK) - 1].learner = learner;
            _deposit(experimentId, _settings[experimentId].token, learner, _stakes[experimentId].stake, value);
        } else if (value != 0) {
            revert WrongValue(0, value);
        }
    }

    /// @dev Takes a deposit of `amount` from `from`: ETH as `value`, or pulled ERC-20 tokens
    /// whose arrival is checked (a token that takes a fee on transfer is refused).
    function _deposit(uint256 experimentId, address token, address from, uint256 amount, uint256 value) private {
        if (token == address(0)) {
            if (value != amount) revert WrongValue(amount, value);
        } else {
            if (value != 0) revert WrongValue(0, value);
            if (amount != 0) {
                uint256 before = IERC20(token).balanceOf(address(this));
                // `from` is the caller, or the signer of a Join (joinBySig): a signed join is the
                // learner's consent to deposit its stake, as its approval is to the transfer.
                // slither-disable-next-line arbitrary-send-erc20
                IERC20(token).safeTransferFrom(from, address(this), amount);
                uint256 received = IERC20(token).balanceOf(address(this)) - before;
                if (received != amount) revert FeeOnTransferToken(token, amount, received);
            }
        }
        if (amount != 0) emit Deposited(experimentId, from, amount);
    }

    // ------------------------------------------------------------------ internals: ballots

    /// @dev Ballot word `word` of `round`: the stored word if it is tagged with the round, else empty.
    function _ballotWord(uint256 experimentId, uint256 round, uint256 word) private view returns (uint256) {
        return Ballots.ofRound(_ballots[experimentId][word], round);
    }

    /// @dev `voter`'s two ballot bits in the current round (0 outside a running round).
    function _bitsOf(uint256 experimentId, uint256 e, address voter) private view returns (uint256) {
        uint256 index = _indexPlusOne(experimentId, voter);
        uint256 status = e.status();
        if (index == 0 || status == Experiments.JOINING || status == Experiments.CANCELLED || e.round() >= e.numRounds()) {
            return Ballots.NONE;
        }
        (uint256 word, uint256 offset) = Ballots.position(index - 1);
        return Ballots.bitsAt(_ballotWord(experimentId, e.round(), word), offset);
    }

    /// @dev One voter's ballot: word 0, the index of its own word, its bit offset, and its word.
    function _ballotOf(uint256 experimentId, uint256 round, uint256 index)
        private
        view
        returns (uint256 word0, uint256 w, uint256 offset, uint256 word)
    {
        (w, offset) = Ballots.position(index);
        word0 = _ballotWord(experimentId, round, 0);
        word = w == 0 ? word0 : _ballotWord(experimentId, round, w);
    }

    /// @dev Sets one voter's bits at `offset` of word `w`: in `word0` when `w` is 0 (`word`
    /// is then returned unchanged), else in `word`.
    function _setBits(uint256 word0, uint256 w, uint256 offset, uint256 word, uint256 bits)
        private
        pure
        returns (uint256, uint256)
    {
        if (w == 0) return (Ballots.withBits(word0, offset, bits), word);
        return (word0, Ballots.withBits(word, offset, bits));
    }

    /// @dev Stores word 0 and, if `w` is not 0, word `w`.
    function _storeBallot(uint256 experimentId, uint256 w, uint256 word0, uint256 word) private {
        _ballots[experimentId][0] = word0;
        if (w != 0) _ballots[experimentId][w] = word;
    }

    /// @dev For a batch: stores the ballot word `cw` it holds (0: none) and returns word `w`
    /// of `round` to hold instead (a batch in learner order reads each word once).
    function _switchWord(uint256 experimentId, uint256 round, uint256 cw, uint256 cv, uint256 w)
        private
        returns (uint256, uint256)
    {
        if (cw != 0) _ballots[experimentId][cw] = cv;
        return (w, _ballotWord(experimentId, round, w));
    }

    /// @dev A vote counts (public, or revealed): the voter's share, and the event.
    function _counted(uint256 experimentId, uint256 e, uint256 index, address voter, bool approve, int256 score)
        private
    {
        if (e.staked()) _accounts[experimentId][index].voterShares += 1;
        emit VoteCast(experimentId, e.round(), voter, approve, score);
    }

    function _storeCommitment(uint256 experimentId, uint256 round, uint256 index, address voter, bytes32 commitment)
        private
    {
        mapping(uint256 => uint256) storage pairs = _commitments[experimentId];
        pairs[index >> 1] = Ballots.withCommitment(pairs[index >> 1], index, commitment);
        emit VoteCommitted(experimentId, voter, round, commitment);
    }

    /// @dev Refuses an opening that does not match `voter`'s stored commitment.
    function _checkOpening(
        uint256 experimentId,
        uint256 e,
        uint256 index,
        address voter,
        bytes32 digest,
        bool approve,
        int256 score,
        bytes32 salt
    ) private view {
        uint256 round = e.round();
        bytes32 commitment = commitmentOf(experimentId, round, voter, digest, approve, score, salt);
        if (Ballots.commitmentAt(_commitments[experimentId][index >> 1], index) != Ballots.short(commitment)) {
            revert CommitmentMismatch(experimentId, round, voter);
        }
    }

    /// @dev Every voter committed: the reveal window opens now.
    function _openReveals(uint256 experimentId, uint256 e) private {
        _experiments[experimentId] = e.set(Experiments.STATUS, Experiments.MASK8, Experiments.REVEALING);
        emit CommitsComplete(experimentId, e.round());
    }

    /// @dev Takes the unrevealed-vote penalty from every voter of the round who committed
    /// and did not reveal. Bounded: at most MAX_LEARNERS learners in five ballot words.
    function _penalizeUnrevealed(uint256 experimentId, uint256 e, uint256 word0) private {
        uint256 penalty = _stakes[experimentId].unrevealedVotePenalty;
        if (penalty == 0) return;
        uint256 unrevealed = Ballots.count(word0, Ballots.COMMITS) - Ballots.counted(word0);
        uint256 n = e.numLearners();
        uint256 round = e.round();
        uint256 value = word0;
        for (uint256 index = 0; index < n && unrevealed != 0; ++index) {
            (uint256 w, uint256 offset) = Ballots.position(index);
            if (w != 0 && offset == Ballots.TAG_BITS) value = _ballotWord(experimentId, round, w);
            if (Ballots.bitsAt(value, offset) == Ballots.COMMITTED) {
                _penalize(experimentId, round, index, Penalty.UnrevealedVote, penalty);
                --unrevealed;
            }
        }
    }

    // ------------------------------------------------------------------ internals: decisions, money

    function _decide(uint256 experimentId, uint256 e, uint256 word0) private {
        uint256 approvals = Ballots.count(word0, Ballots.APPROVALS);
        uint256 rejections = Ballots.count(word0, Ballots.REJECTIONS);
        uint256 voters = e.numLearners() - 1;
        uint256 round = e.round();
        bool accepted = Ballots.accepted(approvals, e.thresholdBps(), voters);
        if (e.staked()) _settle(experimentId, e, accepted, approvals + rejections, rejections * BPS, voters);
        if (accepted) e = e.withAcceptedModel(round);
        emit RoundDecided(experimentId, round, accepted, approvals, rejections);
        _advance(experimentId, e);
    }

    /// @dev Shares and the rejected-proposal penalty of a decided round of a staked experiment.
    function _settle(
        uint256 experimentId,
        uint256 e,
        bool accepted,
        uint256 counted,
        uint256 rejectionsBps,
        uint256 voters
    ) private {
        Stake storage s = _stakes[experimentId];
        uint256 proposer = _proposerIndex(e);
        s.voterShares += uint64(counted);
        if (accepted) {
            s.proposerShares += 1;
            _accounts[experimentId][proposer].proposerShares += 1;
        } else if (rejectionsBps >= uint256(_settings[experimentId].rejectionShareBps) * voters) {
            _penalize(experimentId, e.round(), proposer, Penalty.RejectedProposal, s.rejectedProposalPenalty);
        }
    }

    /// @dev Moves `amount` (capped at what is left of its stake) from learner `index`'s stake to the pool.
    function _penalize(uint256 experimentId, uint256 round, uint256 index, Penalty reason, uint256 amount) private {
        if (amount == 0) return;
        Stake storage s = _stakes[experimentId];
        Account storage a = _accounts[experimentId][index];
        uint256 taken = Math.min(amount, uint256(s.stake) - a.penalties);
        if (taken == 0) return;
        a.penalties += uint96(taken);
        s.penaltyTotal += uint128(taken);
        emit PenaltyTaken(experimentId, a.learner, round, reason, taken);
    }

    /// @dev What a learner is owed: cancelled, its stake; completed, its stake minus its
    /// penalties plus `floor(part * myShares / totalShares)` of each pool part.
    function _learnerOwed(uint256 experimentId, Stake storage s, Account storage a, bool cancelled)
        private
        view
        returns (uint256 owed)
    {
        owed = uint256(s.stake);
        if (cancelled) return owed;
        owed -= a.penalties;
        (uint256 proposerPart, uint256 voterPart) = _poolParts(experimentId, s);
        if (s.proposerShares != 0) owed += proposerPart * a.proposerShares / s.proposerShares;
        if (s.voterShares != 0) owed += voterPart * a.voterShares / s.voterShares;
    }

    /// @dev What the creator is owed: cancelled, the reward pool; completed, each pool part nobody has a share of.
    function _creatorOwed(uint256 experimentId, Stake storage s, bool cancelled) private view returns (uint256 owed) {
        if (cancelled) return s.rewardPool;
        (uint256 proposerPart, uint256 voterPart) = _poolParts(experimentId, s);
        if (s.proposerShares == 0) owed += proposerPart;
        if (s.voterShares == 0) owed += voterPart;
    }

    /// @dev The pool (reward pool plus penalties) split into the proposers' and the voters' parts.
    /// No product here overflows: the pool is under 501 * 2^96 (a reward pool and 500 stakes of
    /// at most MAX_AMOUNT), shares are under 2^33 (2^24 rounds of at most 499 votes).
    function _poolParts(uint256 experimentId, Stake storage s)
        private
        view
        returns (uint256 proposerPart, uint256 voterPart)
    {
        uint256 pool = uint256(s.rewardPool) + s.penaltyTotal;
        proposerPart = pool * _settings[experimentId].proposerShareBps / BPS;
        voterPart = pool - proposerPart;
    }

    /// @dev Starts the next round, or completes the experiment after the last one. The
    /// new round's ballot is empty: its words are tagged with the old round.
    function _advance(uint256 experimentId, uint256 e) private {
        uint256 next = e.round() + 1;
        e = e.withRound(next).withPhase(Experiments.PROPOSING, block.timestamp);
        _experiments[experimentId] = e;
        if (next == e.numRounds()) {
            emit ExperimentCompleted(experimentId, _digests[experimentId][e.modelSlot()], e.modelRound());
        }
    }

    // ------------------------------------------------------------------ internals: hashing

    /// @dev keccak256(abi.encode(a, b, c, d)) in scratch memory (a batch hashes one struct
    /// per signature; abi.encode would allocate memory for each).
    function _hash4(bytes32 a, uint256 b, uint256 c, bytes32 d) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, a)
            mstore(add(ptr, 0x20), b)
            mstore(add(ptr, 0x40), c)
            mstore(add(ptr, 0x60), d)
            h := keccak256(ptr, 0x80)
        }
    }

    /// @dev keccak256(abi.encode(a, b, c, d, f, g)) in scratch memory (see {_hash4}).
    function _hash6(bytes32 a, uint256 b, uint256 c, bytes32 d, uint256 f, uint256 g) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, a)
            mstore(add(ptr, 0x20), b)
            mstore(add(ptr, 0x40), c)
            mstore(add(ptr, 0x60), d)
            mstore(add(ptr, 0x80), f)
            mstore(add(ptr, 0xa0), g)
            h := keccak256(ptr, 0xc0)
        }
    }

    function _boolWord(bool value) private pure returns (uint256 word) {
        assembly ("memory-safe") {
            word := value
        }
    }
}

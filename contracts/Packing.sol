// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/**
 * @title Experiments
 * @notice The one storage word of an experiment's configuration, joins and current round,
 * behind named getters and setters (fuzzed by the Foundry tests at every legal value).
 *
 * Bits (low to high): numLearners 0-15, thresholdBps 16-31, numRounds 32-55,
 * proposalTimeout 56-79, votingTimeout 80-103, revealTimeout 104-127, round 128-151,
 * phaseStart 152-191, status 192-199, modelRound 200-223, modelSlot 224-231,
 * staked 232-239, joined 240-255. Every field is wide enough for its largest legal value
 * (500 learners, 10000 bps, 2^24 - 1 rounds, round and modelRound up to numRounds,
 * timeouts up to 30 days < 2^24 s, times up to 2^40 s), so no field spills into another.
 * A setter's value must fit its field; the contract only sets values within these bounds.
 */
library Experiments {
    uint256 internal constant NUM_LEARNERS = 0;
    uint256 internal constant THRESHOLD_BPS = 16;
    uint256 internal constant NUM_ROUNDS = 32;
    uint256 internal constant PROPOSAL_TIMEOUT = 56;
    uint256 internal constant VOTING_TIMEOUT = 80;
    uint256 internal constant REVEAL_TIMEOUT = 104;
    uint256 internal constant ROUND = 128;
    uint256 internal constant PHASE_START = 152;
    uint256 internal constant STATUS = 192;
    uint256 internal constant MODEL_ROUND = 200;
    uint256 internal constant MODEL_SLOT = 224;
    uint256 internal constant STAKED = 232;
    uint256 internal constant JOINED = 240;

    uint256 internal constant MASK16 = (1 << 16) - 1;
    uint256 internal constant MASK24 = (1 << 24) - 1;
    uint256 internal constant MASK40 = (1 << 40) - 1;
    uint256 internal constant MASK8 = (1 << 8) - 1;

    /// @dev Phases (the `status` field). An experiment is complete when round == numRounds.
    uint256 internal constant JOINING = 0;
    uint256 internal constant PROPOSING = 1;
    uint256 internal constant VOTING = 2; // public votes, or sealed commitments
    uint256 internal constant REVEALING = 3; // sealed: every voter committed (the deadline also opens it)
    uint256 internal constant CANCELLED = 4;

    /// @dev The fields of a word, unpacked (creation and tests).
    struct Fields {
        uint256 numLearners;
        uint256 thresholdBps;
        uint256 numRounds;
        uint256 proposalTimeout;
        uint256 votingTimeout;
        uint256 revealTimeout;
        uint256 round;
        uint256 phaseStart;
        uint256 status;
        uint256 modelRound;
        uint256 modelSlot;
        bool staked;
        uint256 joined;
    }

    function pack(Fields memory f) internal pure returns (uint256) {
        return f.numLearners | (f.thresholdBps << THRESHOLD_BPS) | (f.numRounds << NUM_ROUNDS)
            | (f.proposalTimeout << PROPOSAL_TIMEOUT) | (f.votingTimeout << VOTING_TIMEOUT)
            | (f.revealTimeout << REVEAL_TIMEOUT) | (f.round << ROUND) | (f.phaseStart << PHASE_START)
            | (f.status << STATUS) | (f.modelRound << MODEL_ROUND) | (f.modelSlot << MODEL_SLOT)
            | (uint256(f.staked ? 1 : 0) << STAKED) | (f.joined << JOINED);
    }

    function unpack(uint256 e) internal pure returns (Fields memory f) {
        f.numLearners = numLearners(e);
        f.thresholdBps = thresholdBps(e);
        f.numRounds = numRounds(e);
        f.proposalTimeout = proposalTimeout(e);
        f.votingTimeout = votingTimeout(e);
        f.revealTimeout = revealTimeout(e);
        f.round = round(e);
        f.phaseStart = phaseStart(e);
        f.status = status(e);
        f.modelRound = modelRound(e);
        f.modelSlot = modelSlot(e);
        f.staked = staked(e);
        f.joined = joined(e);
    }

    function numLearners(uint256 e) internal pure returns (uint256) {
        return e & MASK16;
    }

    function thresholdBps(uint256 e) internal pure returns (uint256) {
        return (e >> THRESHOLD_BPS) & MASK16;
    }

    function numRounds(uint256 e) internal pure returns (uint256) {
        return (e >> NUM_ROUNDS) & MASK24;
    }

    function proposalTimeout(uint256 e) internal pure returns (uint256) {
        return (e >> PROPOSAL_TIMEOUT) & MASK24;
    }

    function votingTimeout(uint256 e) internal pure returns (uint256) {
        return (e >> VOTING_TIMEOUT) & MASK24;
    }

    function revealTimeout(uint256 e) internal pure returns (uint256) {
        return (e >> REVEAL_TIMEOUT) & MASK24;
    }

    function round(uint256 e) internal pure returns (uint256) {
        return (e >> ROUND) & MASK24;
    }

    function phaseStart(uint256 e) internal pure returns (uint256) {
        return (e >> PHASE_START) & MASK40;
    }

    function status(uint256 e) internal pure returns (uint256) {
        return (e >> STATUS) & MASK8;
    }

    function modelRound(uint256 e) internal pure returns (uint256) {
        return (e >> MODEL_ROUND) & MASK24;
    }

    function modelSlot(uint256 e) internal pure returns (uint256) {
        return (e >> MODEL_SLOT) & MASK8;
    }

    function staked(uint256 e) internal pure returns (bool) {
        return (e >> STAKED) & MASK8 != 0;
    }

    function joined(uint256 e) internal pure returns (uint256) {
        return e >> JOINED;
    }

    function isSealed(uint256 e) internal pure returns (bool) {
        return revealTimeout(e) != 0;
    }

    /// @dev `e` with the field at `offset` (`mask` wide) set to `value`.
    function set(uint256 e, uint256 offset, uint256 mask, uint256 value) internal pure returns (uint256) {
        return (e & ~(mask << offset)) | (value << offset);
    }

    /// @dev `e` in `newStatus` since `time`.
    function withPhase(uint256 e, uint256 newStatus, uint256 time) internal pure returns (uint256) {
        return set(set(e, STATUS, MASK8, newStatus), PHASE_START, MASK40, time);
    }

    function withRound(uint256 e, uint256 value) internal pure returns (uint256) {
        return set(e, ROUND, MASK24, value);
    }

    function withJoined(uint256 e, uint256 value) internal pure returns (uint256) {
        return set(e, JOINED, MASK16, value);
    }

    /// @dev `e` with the model being the proposal of `proposalRound` (in the other digest slot).
    function withAcceptedModel(uint256 e, uint256 proposalRound) internal pure returns (uint256) {
        return set(set(e, MODEL_SLOT, MASK8, 1 - modelSlot(e)), MODEL_ROUND, MASK24, proposalRound + 1);
    }
}

/**
 * @title Ballots
 * @notice The bit layout of a round's ballot words and of stored commitments, and the
 * decision rule of {CollectiveLearning}, as named pure helpers (fuzzed by the Foundry tests).
 *
 * A ballot word is tagged with its round: bits 0-31 hold `round + 1` (at most 2^24, so the
 * tag never reaches the bits above it at any legal round); a stored word with another tag
 * is read as empty. Word 0: approvals in bits 32-47, rejections in 48-63, commitments in
 * 64-79 (each at most 499), learners 0-87 from bit 80; word w >= 1: learners
 * 88 + 112 (w - 1) onwards from bit 32. Five words hold 536 learners (MAX_LEARNERS is 500).
 * Two bits a learner: {NONE}, {COMMITTED} (sealed, not revealed), {REJECTED} or
 * {APPROVED} (the vote counts).
 *
 * Commitments are stored two to a slot (learners 2k and 2k + 1), each as its high 128 bits:
 * a batch of commitments then writes one slot per two voters. Binding rests on 128 bits: to
 * open one stored commitment two ways a voter needs a 128-bit keccak256 collision between
 * two of its own openings (about 2^64 hashes), within one round's commit and reveal windows
 * (the preimage holds the proposal's digest, unknown before the proposal). Events carry the
 * full 256-bit commitment.
 */
library Ballots {
    uint256 internal constant TAG_BITS = 32;
    uint256 internal constant TAG_MASK = (1 << TAG_BITS) - 1;
    uint256 internal constant COUNT_MASK = (1 << 16) - 1;
    /// @dev Offsets of the counts in word 0.
    uint256 internal constant APPROVALS = 32;
    uint256 internal constant REJECTIONS = 48;
    uint256 internal constant COMMITS = 64;
    uint256 internal constant WORD0_FIRST = 80;
    uint256 internal constant WORD0_LEARNERS = 88;
    uint256 internal constant WORD_LEARNERS = 112;
    uint256 internal constant WORDS = 5;
    /// @dev A learner's two bits.
    uint256 internal constant NONE = 0;
    uint256 internal constant COMMITTED = 1;
    uint256 internal constant REJECTED = 2;
    uint256 internal constant APPROVED = 3;
    uint256 internal constant COUNTED = 2; // the bit set in REJECTED and APPROVED
    uint256 internal constant COMMITMENT_BITS = 128;

    /// @dev An empty ballot word of `round`.
    function empty(uint256 round) internal pure returns (uint256) {
        unchecked {
            return round + 1; // round < 2^24
        }
    }

    /// @dev `stored` if it is a word of `round`, else an empty word of `round`.
    function ofRound(uint256 stored, uint256 round) internal pure returns (uint256) {
        uint256 tag = empty(round);
        return stored & TAG_MASK == tag ? stored : tag;
    }

    /// @dev Where learner `index`'s two bits are: the word, and the bit offset in it.
    function position(uint256 index) internal pure returns (uint256 word, uint256 offset) {
        unchecked {
            // index < 2^16 (a learner index): nothing here overflows.
            if (index < WORD0_LEARNERS) return (0, WORD0_FIRST + 2 * index);
            index -= WORD0_LEARNERS;
            return (1 + index / WORD_LEARNERS, TAG_BITS + 2 * (index % WORD_LEARNERS));
        }
    }

    /// @dev The count at `field` (APPROVALS, REJECTIONS or COMMITS) of word 0.
    function count(uint256 word0, uint256 field) internal pure returns (uint256) {
        return (word0 >> field) & COUNT_MASK;
    }

    /// @dev Votes that count (approvals + rejections) in word 0.
    function counted(uint256 word0) internal pure returns (uint256) {
        return count(word0, APPROVALS) + count(word0, REJECTIONS);
    }

    /// @dev Word 0 with one more at `field` (a count stays below 2^16 - 1: at most 499 here).
    function increment(uint256 word0, uint256 field) internal pure returns (uint256) {
        unchecked {
            return word0 + (uint256(1) << field);
        }
    }

    /// @dev The two bits at `offset`.
    function bitsAt(uint256 word, uint256 offset) internal pure returns (uint256) {
        return (word >> offset) & 3;
    }

    /// @dev `word` with the two bits at `offset` set to `bits` (0-3).
    function withBits(uint256 word, uint256 offset, uint256 bits) internal pure returns (uint256) {
        return (word & ~(uint256(3) << offset)) | (bits << offset);
    }

    /// @dev The ballot bits of a counted vote.
    function vote(bool approve) internal pure returns (uint256) {
        return approve ? APPROVED : REJECTED;
    }

    /// @dev The count a counted vote adds to.
    function tally(bool approve) internal pure returns (uint256) {
        return approve ? APPROVALS : REJECTIONS;
    }

    /// @dev The stored form of a commitment: its high 128 bits.
    function short(bytes32 commitment) internal pure returns (uint256) {
        return uint256(commitment) >> COMMITMENT_BITS;
    }

    /// @dev Learner `index`'s stored commitment in its slot (`index / 2`).
    function commitmentAt(uint256 slot, uint256 index) internal pure returns (uint256) {
        return (slot >> ((index & 1) * COMMITMENT_BITS)) & type(uint128).max;
    }

    /// @dev `slot` with learner `index`'s stored commitment set to `short(commitment)`.
    function withCommitment(uint256 slot, uint256 index, bytes32 commitment) internal pure returns (uint256) {
        uint256 shift = (index & 1) * COMMITMENT_BITS;
        return (slot & ~(uint256(type(uint128).max) << shift)) | (short(commitment) << shift);
    }

    /// @dev The decision rule: accepted iff `approvals * 10000 >= thresholdBps * voters`,
    /// voters being the n - 1 learners other than the proposer.
    function accepted(uint256 approvals, uint256 thresholdBps, uint256 voters) internal pure returns (bool) {
        return approvals * 10_000 >= thresholdBps * voters;
    }
}

"""``colearn bench gas``: the gas of every CollectiveLearning call by learner count, beside
OpenZeppelin's Governor.

For each learner count n (default 5, 20 and 100) a fresh deployment runs, on one chain:

- every learner **joins** (``join``, in learner order); the last join starts round 0
  (a join is the median of the others, the last one is reported on its own);
- round 0, a **first round**: a proposal and n - 1 direct votes. Its first writes of zero
  storage slots (the ballot word, the second digest slot) cost more, so it is reported on
  its own;
- round 1, a **steady round** done the same way: ``propose``, ``vote`` (the median of the
  votes that do not decide) and the deciding vote (the last one, which decides and
  advances the round);
- round 2, a **relayed round**: a proposal, then one ``castVotesBySig`` batch of the n - 1
  learners' EIP-712 signed votes (the batch decides the round); a signed vote costs the
  batch's gas / (n - 1), rounded up;
- round 3: no proposal; ``expire`` after the proposal deadline;
- round 4: a proposal and one vote; ``decide`` after the voting deadline.

Then the v2 terms (PROTOCOL.md), each on an experiment of its own with the same n:

- **sealed votes** (reveal timeout set, no stake): round 0 relayed, as below (it writes the
  storage slots for the first time: not reported); round 1, a **sealed round** of direct calls: ``propose``, n - 1 ``commitVote`` (the last one logs
  CommitsComplete and opens the reveal window) and n - 1 ``revealVote`` (the last one
  decides); round 2, relayed: one ``commitVotesBySig`` batch of the n - 1 signed
  commitments and one ``revealVotes`` batch of the n - 1 openings (a signed commitment and
  a reveal cost their batch's gas / (n - 1), rounded up);
- **stake in ETH** and **stake in an ERC-20** (``contracts/bench/BenchERC20.sol``,
  OpenZeppelin's ERC20): the creator deposits a reward pool with ``createExperiment``, every
  learner but the last joins depositing the stake (ETH sent along; the token approved
  first, in a transaction of its own not counted in the join), five at most: a join does
  not depend on n.

Every vote approves, with the score 0.9731 (:data:`SCORE`). Gas is each receipt's
``gasUsed``: the whole transaction, 21,000 intrinsic gas and calldata included.

Beside it, OpenZeppelin's Governor (``contracts/bench/GovernorBench.sol``:
GovernorSettings, GovernorCountingSimple, GovernorVotes over an ERC20Votes token, compiled
with the same settings) with the same n accounts as voters: each holds one token and
delegates to itself, one proposal is made, and once voting opens every voter calls
``castVote(proposalId, For)``. The first voter pays for the first write of the proposal's
``forVotes``; a typical voter's castVote is the median of the others.

Gas does not depend on timing, so the figures are the same on every run and, with the
same EVM rules, on every chain (the in-process chain runs py-evm's latest fork), but for a
few gas in the batches: signatures depend on the chain id, and calldata costs more for
non-zero bytes.
"""

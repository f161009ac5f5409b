"""``colearn experiment init``: a commented experiment spec that documents every field and
runs unedited on a dev chain (``colearn chain``'s funded accounts 1..3 as learners, the
digits learners as the initial model)."""

from __future__ import annotations

from collections.abc import Sequence

#: The factory of the template's initial model, and of the agents' ``--learner``.
DEFAULT_FACTORY = "colearn_core.tasks.factories:digits_learner"
#: Factories that ship with the package: ``module:function`` -> what it learns.
SHIPPED_FACTORIES: dict[str, str] = {
    DEFAULT_FACTORY: "a small PyTorch net on scikit-learn's 8x8 digits (the demo's task; "
                     "args index, n_learners, seed)",
    "colearn_core.examples.pytorch_mnist:learner": "a PyTorch CNN on MNIST (data_dir: the "
                                                   "idx files; without it, digits padded "
                                                   "to 28x28)",
    "colearn_core.examples.pytorch_cifar10:learner": "a PyTorch CNN on CIFAR-10 (data_dir "
                                                     "required)",
    "colearn_core.examples.keras_mnist:learner": "a Keras CNN on MNIST (as pytorch_mnist)",
    "colearn_core.examples.sgd_fraud:learner": "scikit-learn SGDClassifier on a synthetic "
                                               "fraud set",
    "colearn_core.examples.random_forest_iris:learner": "a random forest on iris",
    "colearn_core.examples.xgb_reg_boston:learner": "XGBoost regression on scikit-learn's "
                                                    "diabetes data (opaque weights)",
}


def dev_learners(count: int = 3) -> list[str]:
    """The addresses of the dev chain's funded accounts 1..``count`` (account 0 deploys and
    creates); ``colearn chain`` prints their keys."""
    from agents.chain.network import dev_keys

    return [address for address, _ in dev_keys(count + 1)[1:]]


def spec_template(learners: Sequence[str] | None = None, *, rounds: int = 3,
                  proposal_timeout: int = 600, voting_timeout: int = 600) -> str:
    """The commented spec: every field of :class:`agents.experiment.spec.ExperimentSpec`,
    with working values (``learners``: default the dev chain's accounts 1..3). The one
    template: ``colearn experiment init`` and ``colearn dev`` write it."""
    learners = list(learners) if learners is not None else dev_learners()
    rendered = "\n".join(f'  "{a}",  # learner {i}' for i, a in enumerate(learners))
    factories = "\n".join(f"#   {target}\n#       {what}"
                          for target, what in SHIPPED_FACTORIES.items())
    return f'''\
# An experiment spec for `colearn experiment create --spec FILE` (written by
# `colearn experiment init`). Every field is here; the values run as they are on a dev
# chain (`colearn chain`: its funded accounts 1..{len(learners)} are the learners).

# The learners' addresses, in proposer order: round r's proposer is learners[r % n].
# Learner i runs its agent with its own key, e.g. for the digits learners:
#   colearn agent --rpc URL --contract ADDR --experiment ID --store URL \\
#     --learner {DEFAULT_FACTORY} \\
#     --learner-arg index=i --learner-arg n_learners={len(learners)}
learners = [
{rendered}
]
threshold = 0.5           # share of the other learners that must approve (0.0 .. 1.0)
rounds = {rounds:<17}# rounds of proposal and vote
proposal_timeout = {proposal_timeout:<7}# seconds for the round's proposer to propose
voting_timeout = {voting_timeout:<9}# seconds for the others to vote (sealed: to commit)
join_timeout = 86400      # seconds from creation for every learner to join; round 0
                          # starts with the last join

# Anything you like, stored as JSON (its CID goes on chain): what the experiment is.
[metadata]
task = "digits"
description = "scikit-learn digits split among {len(learners)} learners"
weights_format = "safetensors (colearn-weights/1)"
# The vote score's name and direction: the audit and the explorer label their plots with it.
vote_score = {{ name = "cross-entropy", lower_is_better = true }}

# The initial model: exactly one of `weights` or `[initial.factory]`.
[initial]
# weights = "initial.safetensors"   # a safetensors file (colearn_core.codec), relative
                                    # to this spec

# ...or the current weights of a learner built by a factory, `module:function` called
# with `args` as keyword arguments (agents pass theirs with --learner-arg KEY=VALUE).
# Factories that ship:
{factories}
[initial.factory]
target = "{DEFAULT_FACTORY}"
args = {{ index = 0, n_learners = {len(learners)}, seed = 0 }}

# Sealed votes and stake (optional; all zero or left out: public votes, no stake). See
# `colearn experiment create --help`.
[options]
reveal_timeout = 0              # seconds to reveal after the commit deadline; 0: public votes
# token = "0x..."               # the ERC-20 of every deposit; left out: ETH
stake = 0                       # wei (or token units) each learner deposits when it joins
reward_pool = 0                 # deposited by the creator at creation
missed_proposal_penalty = 0     # taken from a proposer whose round expired
unrevealed_vote_penalty = 0     # from a voter that committed and did not reveal
rejected_proposal_penalty = 0   # from a proposer rejected by enough voters:
rejection_share_bps = 0         #   rejections * 10000 >= rejection_share_bps * (n - 1)
proposer_share_bps = 0          # the pool's share for proposers of accepted rounds
'''


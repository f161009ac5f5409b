"""The configuration of :mod:`colearn_core.tasks.mlp_torch`'s MLP and its training, kept
free of torch so that numpy-only code (:class:`colearn_core.tasks.digits.DigitsConfig`)
can extend it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Score = Literal["accuracy", "auc"]


class MLPTaskConfig(BaseModel):
    """The model and its training; the defaults are the digits demo's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(0, ge=0)
    hidden_size: int = Field(128, ge=1)
    learning_rate: float = Field(0.2, gt=0.0)
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # SGD only
    weight_decay: float = Field(1e-3, ge=0.0)
    lr_decay: float = Field(0.6, gt=0.0, le=1.0)  # learning rate factor after each proposal
    batch_size: int = Field(16, ge=1)
    batches_per_round: int = Field(50, ge=1)  # num_train_batches of each proposal
    vote_on: Literal["loss", "accuracy", "auc"] = "loss"  # the vote score
    score: Score = "accuracy"  # test and global test score
    # learner-side options for skewed data (colearn_core.learners.pytorch.PytorchLearner);
    # the defaults are colearn's: strict vote, plain training, the trained weights proposed
    vote_tolerance: float = Field(0.0, ge=0.0, lt=1.0)  # relative non-inferiority margin
    proximal_mu: float = Field(0.0, ge=0.0)  # FedProx term in the proposer's loss
    update_fraction: float = Field(1.0, gt=0.0, le=1.0)  # of the trained update proposed
    update_momentum: float = Field(0.0, ge=0.0, lt=1.0)  # of the last accepted change added
    logit_adjustment: bool = False  # train on logits + log(own class shares)
    # torch's thread count while learners work: results depend on it in the last bits
    # (even the accept sequence can change), and 1 is fastest for a small model
    torch_threads: int = Field(1, ge=1)


#: Named sets of the learner-side options above: how learners vote and what they propose
#: (the contract's decision, approvals against the threshold, is the same for all).
#: ``colearn``: colearn's learners exactly (approve iff strictly better on one's own vote
#: set; propose the trained weights); MLPTaskConfig's defaults. ``tolerant``: approve iff
#: no worse than the current model by more than 10% of its vote score; propose the current
#: weights plus 35% of the trained update. ``balanced``, the project's default for its
#: ready-made learners (:mod:`colearn_core.tasks.factories`, the demo, ``colearn bench
#: learning``): approve within 20%; propose 35% of the trained update plus half the shared
#: model's last accepted change (server momentum); train on logits adjusted by one's own
#: class shares (balanced softmax), so a learner that lacks some classes does not teach
#: the shared model that they are rare.
RULES: dict[str, dict[str, Any]] = {
    "colearn": {"vote_tolerance": 0.0, "update_fraction": 1.0, "update_momentum": 0.0,
                "logit_adjustment": False},
    "tolerant": {"vote_tolerance": 0.1, "update_fraction": 0.35, "update_momentum": 0.0,
                 "logit_adjustment": False},
    "balanced": {"vote_tolerance": 0.2, "update_fraction": 0.35, "update_momentum": 0.5,
                 "logit_adjustment": True},
}
DEFAULT_RULE = "balanced"


def rule_options(rule: str) -> dict[str, Any]:
    """:data:`RULES`' options of ``rule`` (a copy); ``ValueError`` for an unknown rule."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}: one of {', '.join(RULES)}")
    return dict(RULES[rule])

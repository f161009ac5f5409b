"""The configuration of :mod:`colearn_core.tasks.mlp_torch`'s MLP and its training, kept
free of torch so that numpy-only code (:class:`colearn_core.tasks.digits.DigitsConfig`)
can extend it."""

from __future__ import annotations

from typing import Literal

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
    # torch's thread count while learners work: results depend on it in the last bits
    # (even the accept sequence can change), and 1 is fastest for a small model
    torch_threads: int = Field(1, ge=1)

"""Collective learning: the machine learning interface, the in-memory driver, results.

Importing this package imports no ML framework; learners for a framework live in
``colearn_core.learners`` and are imported explicitly.
"""

from colearn_core.decision import is_accepted, threshold_to_bps
from colearn_core.ml_interface import (
    ColearnModel,
    DiffPrivBudget,
    DiffPrivConfig,
    ErrorCodes,
    MachineLearningInterface,
    ModelFormat,
    ModelUnavailableError,
    ProposedWeights,
    TrainingSummary,
    Weights,
)
from colearn_core.results import Result, Results
from colearn_core.standalone_driver import run_one_round
from colearn_core.training import (
    collective_learning_round,
    individual_training_round,
    initial_result,
    run_experiment,
    set_equal_weights,
)

__all__ = [
    "ColearnModel",
    "DiffPrivBudget",
    "DiffPrivConfig",
    "ErrorCodes",
    "MachineLearningInterface",
    "ModelFormat",
    "ModelUnavailableError",
    "ProposedWeights",
    "Result",
    "Results",
    "TrainingSummary",
    "Weights",
    "collective_learning_round",
    "individual_training_round",
    "initial_result",
    "is_accepted",
    "run_experiment",
    "run_one_round",
    "set_equal_weights",
    "threshold_to_bps",
]

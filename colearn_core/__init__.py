"""Collective learning: the machine learning interface, the in-memory driver, results.

Importing this package imports no ML framework; learners for a framework live in
``colearn_core.learners`` and are imported explicitly.
"""

from colearn_core.decision import is_accepted, threshold_to_bps
from colearn_core.driver import (
    collective_learning_round,
    run_experiment,
    run_one_round,
    set_equal_weights,
)
from colearn_core.ml_interface import (
    ColearnModel,
    DiffPrivBudget,
    DiffPrivConfig,
    ErrorCodes,
    MachineLearningInterface,
    ModelFormat,
    ProposedWeights,
    TrainingSummary,
    Weights,
)
from colearn_core.results import Result, Results

__all__ = [
    "ColearnModel",
    "DiffPrivBudget",
    "DiffPrivConfig",
    "ErrorCodes",
    "MachineLearningInterface",
    "ModelFormat",
    "ProposedWeights",
    "Result",
    "Results",
    "TrainingSummary",
    "Weights",
    "collective_learning_round",
    "is_accepted",
    "run_experiment",
    "run_one_round",
    "set_equal_weights",
    "threshold_to_bps",
]

"""The learner options for skewed data: the tolerant vote (non-inferiority margin), the
partial update a proposer proposes and FedProx's proximal term; colearn's behaviour stays
the default."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from colearn_core.learners._base import approves, check_vote_tolerance
from colearn_core.learners.pytorch import PytorchLearner, partial_update
from colearn_core.ml_interface import Weights
from colearn_core.tasks.digits import DigitsConfig
from colearn_core.tasks.digits_torch import make_digits_learners
from colearn_core.training import run_experiment, set_equal_weights

TOLERANT = {"vote_tolerance": 0.1, "update_fraction": 0.35}  # the bench's "tolerant" rule


# --------------------------------------------------------------------------- the rule

def test_zero_tolerance_is_colearns_strict_rule() -> None:
    assert approves(0.9, 1.0, minimise_criterion=True)
    assert not approves(1.0, 1.0, minimise_criterion=True)
    assert approves(0.8, 0.7, minimise_criterion=False)
    assert not approves(0.7, 0.7, minimise_criterion=False)
    assert not approves(math.nan, 1.0, minimise_criterion=True)


@pytest.mark.parametrize("tolerance", [0.01, 0.05, 0.1])
def test_a_tolerance_approves_within_its_margin_of_the_current_score(tolerance: float) -> None:
    loss, accuracy = 0.5, 0.8
    assert approves(loss * (1 + tolerance), loss, True, tolerance)  # the margin itself
    assert not approves(loss * (1 + tolerance) + 1e-9, loss, True, tolerance)
    assert approves(accuracy * (1 - tolerance), accuracy, False, tolerance)
    assert not approves(accuracy * (1 - tolerance) - 1e-9, accuracy, False, tolerance)
    for minimise in (True, False):
        assert not approves(math.nan, loss, minimise, tolerance)
        assert not approves(math.inf if minimise else -math.inf, loss, minimise, tolerance)


@pytest.mark.parametrize("bad", [-0.01, 1.0, 2, math.nan, True, "0.1"])
def test_a_tolerance_outside_0_1_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="vote_tolerance"):
        check_vote_tolerance(bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the learner

def test_colearns_positional_signature_and_defaults_are_unchanged() -> None:
    parameters = inspect.signature(PytorchLearner).parameters
    positional = [name for name, p in parameters.items()
                  if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert positional == ["model", "optimizer", "train_loader", "vote_loader", "test_loader",
                          "need_reset_optimizer", "device", "criterion", "minimise_criterion",
                          "vote_criterion", "num_train_batches", "num_test_batches"]
    for name, default in (("vote_tolerance", 0.0), ("proximal_mu", 0.0),
                          ("update_fraction", 1.0)):
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[name].default == default


def _learners(n: int = 3, **options: float) -> list[PytorchLearner]:
    learners = make_digits_learners(config=DigitsConfig(n_learners=n, **options))
    set_equal_weights(learners)
    return learners


@pytest.mark.parametrize("bad", [{"vote_tolerance": 1.0}, {"proximal_mu": -1.0},
                                 {"update_fraction": 0.0}, {"update_fraction": 1.5}])
def test_options_out_of_range_are_refused(bad: dict) -> None:
    learner = _learners(2)[0]
    with pytest.raises(ValueError):
        PytorchLearner(learner.model, learner.optimizer, learner.train_loader,
                       learner.vote_loader, **bad)


def _delta_norm(before: Weights, after: Weights) -> float:
    return float(sum(((after.weights[k] - before.weights[k]) ** 2).sum()
                     for k in before.weights) ** 0.5)


def test_update_fraction_proposes_that_fraction_of_the_trained_update() -> None:
    full, part = _learners(2)[0], _learners(2, update_fraction=0.35)[0]
    current = full.mli_get_current_weights()
    trained, proposed = full.mli_propose_weights(), part.mli_propose_weights()
    for name, value in current.weights.items():  # the same training, then 35% of it
        expected = value + 0.35 * (trained.weights[name] - value)
        assert torch.allclose(proposed.weights[name], expected, atol=1e-7)
    assert torch.equal(part.mli_get_current_weights().weights["hidden.weight"],
                       current.weights["hidden.weight"])  # the current weights unchanged
    assert partial_update(current.weights, trained.weights, 1.0).keys() == current.weights.keys()


def test_defaults_give_colearns_proposals_bitwise() -> None:
    plain = _learners(2)[0]
    explicit = _learners(2, vote_tolerance=0.0, proximal_mu=0.0, update_fraction=1.0)[0]
    a, b = plain.mli_propose_weights(), explicit.mli_propose_weights()
    assert all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)


def test_the_proximal_term_keeps_proposals_closer_to_the_current_model() -> None:
    drift = {}
    for mu in (0.0, 1.0):
        learner = _learners(2, proximal_mu=mu)[0]
        drift[mu] = _delta_norm(learner.mli_get_current_weights(), learner.mli_propose_weights())
    assert 0 < drift[1.0] < 0.9 * drift[0.0], drift


# --------------------------------------------------------------------------- robustness

def _trained_shared_model(**options: float) -> list[PytorchLearner]:
    """Three digits learners after a few collective rounds (a model worth protecting)."""
    learners = _learners(3, **options)
    run_experiment(learners, 3, 0.5)
    return learners


def test_the_tolerant_vote_refuses_random_and_label_flipped_proposals() -> None:
    learners = _trained_shared_model(**TOLERANT)
    voter, poisoner = learners[1], learners[0]
    current = poisoner.mli_get_current_weights().weights
    rng = np.random.default_rng(0)
    random_weights = Weights(weights={
        k: torch.from_numpy(rng.standard_normal(tuple(v.shape)).astype(np.float32))
        for k, v in current.items()})
    honest = poisoner.criterion
    poisoner.criterion = lambda outputs, labels: honest(outputs, 9 - labels)
    try:
        flipped = poisoner.mli_propose_weights()
    finally:
        poisoner.criterion = honest
    for poison in (random_weights, flipped):
        tested = voter.mli_test_weights(poison)
        assert not tested.vote, (tested.vote_score, voter.vote_score)
        assert tested.vote_score > voter.vote_score * (1 + TOLERANT["vote_tolerance"])


def test_the_tolerant_vote_approves_a_slightly_worse_proposal_colearns_refuses() -> None:
    learners = _trained_shared_model(**TOLERANT)
    voter = learners[1]
    current = voter.mli_get_current_weights().weights
    # shrink the output layer a little: the vote-set loss gets slightly worse
    worse = Weights(weights={k: v * 0.97 if k.startswith("out.") else v.clone()
                             for k, v in current.items()})
    tested = voter.mli_test_weights(worse)
    assert voter.vote_score < tested.vote_score <= voter.vote_score * 1.1
    assert tested.vote
    voter.vote_tolerance = 0.0  # colearn's rule: not strictly better, refused
    assert not voter.mli_test_weights(worse).vote

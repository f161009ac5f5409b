"""The learner options for skewed data: the tolerant vote (non-inferiority margin), the
partial update a proposer proposes, FedProx's proximal term, the momentum of accepted
changes and logit-adjusted training; colearn's behaviour stays the default."""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from colearn_core.learners._base import approves, check_vote_tolerance
from colearn_core.learners.pytorch import PytorchLearner
from colearn_core.learners.pytorch_skew import ABSENT_CLASS_COUNT, label_log_prior, partial_update
from colearn_core.ml_interface import Weights
from colearn_core.tasks.digits import DigitsConfig
from colearn_core.tasks.digits_torch import make_digits_learners
from colearn_core.tasks.mlp_config import DEFAULT_RULE, RULES, rule_options
from colearn_core.training import run_experiment, set_equal_weights

TOLERANT, BALANCED = RULES["tolerant"], RULES["balanced"]


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
                          ("update_fraction", 1.0), ("update_momentum", 0.0),
                          ("logit_adjustment", False)):
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[name].default == default


def _learners(n: int = 3, **options: Any) -> list[PytorchLearner]:
    learners = make_digits_learners(config=DigitsConfig(n_learners=n, **options))
    set_equal_weights(learners)
    return learners


@pytest.mark.parametrize("bad", [{"vote_tolerance": 1.0}, {"proximal_mu": -1.0},
                                 {"update_fraction": 0.0}, {"update_fraction": 1.5},
                                 {"update_momentum": 1.0}, {"update_momentum": -0.1},
                                 {"update_momentum": True}, {"logit_adjustment": 1}])
def test_options_out_of_range_are_refused(bad: dict) -> None:
    learner = _learners(2)[0]
    with pytest.raises((ValueError, TypeError)):
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
    explicit = _learners(2, vote_tolerance=0.0, proximal_mu=0.0, update_fraction=1.0,
                         update_momentum=0.0, logit_adjustment=False)[0]
    a, b = plain.mli_propose_weights(), explicit.mli_propose_weights()
    assert all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)


def test_the_proximal_term_keeps_proposals_closer_to_the_current_model() -> None:
    drift = {}
    for mu in (0.0, 1.0):
        learner = _learners(2, proximal_mu=mu)[0]
        drift[mu] = _delta_norm(learner.mli_get_current_weights(), learner.mli_propose_weights())
    assert 0 < drift[1.0] < 0.9 * drift[0.0], drift


def test_update_momentum_adds_that_fraction_of_the_last_accepted_change() -> None:
    plain, moving = _learners(2)[0], _learners(2, update_momentum=0.3)[0]
    before = moving.mli_get_current_weights().weights
    accepted = {k: v + 0.01 for k, v in before.items()}
    for learner in (plain, moving):
        learner.mli_accept_weights(Weights(weights=accepted))
    a, b = plain.mli_propose_weights(), moving.mli_propose_weights()
    for name, value in a.weights.items():  # the same training, plus 0.3 of the change
        assert torch.allclose(b.weights[name], value + 0.3 * 0.01, atol=1e-6)


def test_update_momentum_proposes_plainly_until_a_change_is_accepted() -> None:
    plain, moving = _learners(2)[0], _learners(2, update_momentum=0.3)[0]
    a, b = plain.mli_propose_weights(), moving.mli_propose_weights()
    assert all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)


def test_label_log_prior_is_the_log_class_shares_with_absent_classes_near_zero() -> None:
    from torch.utils.data import DataLoader, TensorDataset

    labels = torch.tensor([0, 0, 0, 1])
    loader = DataLoader(TensorDataset(torch.zeros(4, 2), labels), batch_size=2, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    prior = label_log_prior(loader, 3).exp()
    total = 4 + ABSENT_CLASS_COUNT
    assert torch.allclose(prior, torch.tensor([3 / total, 1 / total, ABSENT_CLASS_COUNT / total]))
    assert [len(b[1]) for b in loader] == [2, 2]  # the loader is read as usual afterwards
    with pytest.raises(ValueError, match="within 0..0"):
        label_log_prior(loader, 1)
    with pytest.raises(TypeError, match="map-style"):
        label_log_prior([(torch.zeros(1, 2), labels[:1])], 3)


def test_logit_adjustment_changes_training_only_not_the_scores() -> None:
    plain, adjusted = _learners(2)[0], _learners(2, logit_adjustment=True)[0]
    a, b = plain.mli_propose_weights(), adjusted.mli_propose_weights()
    assert not all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)
    assert plain.vote_score == adjusted.vote_score  # the same model scores the same
    assert plain.mli_test_weights(b).vote_score == adjusted.mli_test_weights(b).vote_score


def test_logit_adjustment_keeps_the_output_of_an_absent_class() -> None:
    """A learner without class 9: plain training pushes class 9's logit down, adjusted
    training leaves it nearly where it was."""
    from torch.utils.data import DataLoader, TensorDataset

    shift = {}
    for adjust in (False, True):
        learner = _learners(2, logit_adjustment=adjust)[0]
        data = learner.train_loader.dataset.tensors
        keep = data[1] != 9
        learner.train_loader = DataLoader(TensorDataset(data[0][keep], data[1][keep]),
                                          batch_size=16, shuffle=True,
                                          generator=torch.Generator().manual_seed(0))
        before = learner.mli_get_current_weights().weights["out.bias"]
        after = learner.mli_propose_weights().weights["out.bias"]
        shift[adjust] = float(after[9] - before[9])
    assert shift[False] < 0 and abs(shift[True]) < 0.2 * abs(shift[False]), shift


def test_logit_adjustment_is_refused_with_differential_privacy() -> None:
    from colearn_core.ml_interface import DiffPrivConfig

    learner = _learners(2)[0]
    with pytest.raises(ValueError, match="logit_adjustment"):
        PytorchLearner(learner.model, learner.optimizer, learner.train_loader,
                       learner.vote_loader, logit_adjustment=True,
                       diff_priv_config=DiffPrivConfig(target_epsilon=5.0, target_delta=1e-5,
                                                       max_grad_norm=1.0,
                                                       noise_multiplier=1.0))


def test_the_ready_made_learners_follow_the_default_rule() -> None:
    from colearn_core.tasks.factories import digits_learner

    learner = digits_learner(1, 3)
    assert DEFAULT_RULE == "balanced" and learner.logit_adjustment
    assert {k: getattr(learner, k) for k in BALANCED} == BALANCED
    colearns = digits_learner(1, 3, rule="colearn", update_fraction=0.5)
    assert {k: getattr(colearns, k) for k in BALANCED} == rule_options("colearn") | {
        "update_fraction": 0.5}
    with pytest.raises(ValueError, match="unknown rule"):
        digits_learner(1, 3, rule="lenient")


# --------------------------------------------------------------------------- robustness

def _trained_shared_model(**options: Any) -> list[PytorchLearner]:
    """Three digits learners after a few collective rounds (a model worth protecting)."""
    learners = _learners(3, **options)
    run_experiment(learners, 3, 0.5)
    return learners


@pytest.mark.parametrize("rule", [TOLERANT, BALANCED], ids=["tolerant", "balanced"])
def test_the_tolerant_vote_refuses_random_and_label_flipped_proposals(rule: dict) -> None:
    learners = _trained_shared_model(**rule)
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
        assert tested.vote_score > voter.vote_score * (1 + rule["vote_tolerance"])


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

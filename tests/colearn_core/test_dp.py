"""Differential privacy in PytorchLearner (opacus DP-SGD, RDP accountant): the budget
reported per proposal, the proposal that would exceed it refused before training, weight
names unchanged by opacus, determinism with seeds, learning in memory, and on chain a
learner whose budget runs out: its later rounds expire while it keeps voting."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")
from opacus.accountants import RDPAccountant
from torch import nn

from colearn_core.codec import decode_weights, encode_weights
from colearn_core.learners.privacy import DiffPrivError
from colearn_core.learners.pytorch import PytorchLearner
from colearn_core.ml_interface import DiffPrivConfig, ErrorCodes, TrainingSummary, Weights
from colearn_core.tasks.digits import DigitsConfig, split_for_config
from colearn_core.tasks.digits_torch import (
    global_test_accuracy,
    make_digits_learners,
    make_model,
)
from colearn_core.tasks.mlp_torch import EVAL_BATCH_SIZE, derived_seed, make_loader
from colearn_core.tasks.splits import LearnerSplit
from colearn_core.training import run_experiment, set_equal_weights

CONFIG = DigitsConfig(n_learners=3)
BATCH_SIZE = 32
STEPS = 10  # num_train_batches of a DP proposal
DELTA = 1e-5
NOISE = 1.0
CLIP = 1.0


def dp_config(target_epsilon: float = 100.0) -> DiffPrivConfig:
    return DiffPrivConfig(target_epsilon=target_epsilon, target_delta=DELTA,
                          max_grad_norm=CLIP, noise_multiplier=NOISE)


def dp_learner(index: int = 0, *, target_epsilon: float = 100.0, dp_seed: int | None = 7,
               private: bool = True, data: LearnerSplit | None = None) -> PytorchLearner:
    """A digits MLP learner (the task's model and data) with DP-SGD, or without."""
    data = data if data is not None else split_for_config(CONFIG).learners[index]
    model = make_model(CONFIG)
    return PytorchLearner(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9),
        train_loader=make_loader(data.x_train, data.y_train, BATCH_SIZE, shuffle=True,
                                 seed=derived_seed(CONFIG.seed, 1, index)),
        vote_loader=make_loader(data.x_vote, data.y_vote, EVAL_BATCH_SIZE),
        test_loader=make_loader(data.x_test, data.y_test, EVAL_BATCH_SIZE),
        num_train_batches=STEPS,
        num_threads=1,
        diff_priv_config=dp_config(target_epsilon) if private else None,
        dp_seed=dp_seed if private else None,
    )


def sample_rate(index: int = 0) -> float:
    """Poisson sampling rate opacus uses: 1 / (batches per epoch of the original loader)."""
    n_train = len(split_for_config(CONFIG).learners[index].y_train)
    return 1.0 / int(np.ceil(n_train / BATCH_SIZE))


def opacus_epsilon(proposals: int, index: int = 0) -> float:
    """What opacus' own RDP accountant reports after ``proposals`` proposals."""
    accountant = RDPAccountant()
    if proposals:
        accountant.history = [(NOISE, sample_rate(index), STEPS * proposals)]
    return float(accountant.get_epsilon(delta=DELTA))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        np.asarray(a[k]).dtype == np.asarray(b[k]).dtype
        and np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


# ------------------------------------------------------------------ budget


def test_budget_reported_and_increasing_per_proposal():
    learner = dp_learner()
    assert learner.dp_epsilon == 0.0
    consumed = []
    for proposal_number in range(1, 4):
        before = learner.mli_get_current_weights().weights
        weights = learner.mli_propose_weights()
        # the current weights are unchanged by a DP proposal; the proposal differs
        assert _same(before, learner.mli_get_current_weights().weights)
        assert not _same(before, weights.weights)
        summary = weights.training_summary
        assert summary.error_code is None
        budget = summary.dp_budget
        assert (budget.target_epsilon, budget.target_delta) == (100.0, DELTA)
        assert budget.consumed_delta == DELTA
        assert budget.consumed_epsilon == pytest.approx(opacus_epsilon(proposal_number),
                                                        rel=1e-9)
        assert learner.dp_epsilon == pytest.approx(budget.consumed_epsilon, rel=1e-12)
        consumed.append(budget.consumed_epsilon)
        if proposal_number == 2:  # accepted or not, the budget is spent
            learner.mli_accept_weights(weights)
    assert consumed[0] > 0 and consumed[0] < consumed[1] < consumed[2]


def test_the_proposal_that_would_exceed_the_target_is_refused_untrained():
    target = (opacus_epsilon(2) + opacus_epsilon(3)) / 2  # room for exactly 2 proposals
    learner = dp_learner(target_epsilon=target)
    for _ in range(2):
        weights = learner.mli_propose_weights()
        assert weights.training_summary.error_code is None
        assert weights.training_summary.dp_budget.consumed_epsilon <= target
        learner.mli_accept_weights(weights)
    current = learner.mli_get_current_weights().weights
    spent = learner.dp_epsilon
    optimizer_state = {k: {n: t.clone() if isinstance(t, torch.Tensor) else t
                           for n, t in v.items()}
                       for k, v in learner.optimizer.state_dict()["state"].items()}
    for _ in range(2):  # refused, and refused again: nothing is spent
        refused = learner.mli_propose_weights()
        summary = refused.training_summary
        assert summary.error_code == ErrorCodes.DP_BUDGET_EXCEEDED
        assert summary.dp_budget.consumed_epsilon == pytest.approx(spent)
        assert summary.dp_budget.consumed_epsilon == pytest.approx(opacus_epsilon(2))
        assert summary.dp_budget.target_epsilon == target
        assert _same(current, refused.weights)
        assert _same(current, learner.mli_get_current_weights().weights)
        assert learner.dp_epsilon == pytest.approx(spent)
    # no training step happened: the optimizer's momentum buffers are as they were
    after = learner.optimizer.state_dict()["state"]
    assert all(torch.equal(after[k]["momentum_buffer"], optimizer_state[k]["momentum_buffer"])
               for k in optimizer_state)


def test_a_budget_too_small_for_one_proposal_refuses_the_first():
    learner = dp_learner(target_epsilon=opacus_epsilon(1) * 0.9)
    refused = learner.mli_propose_weights()
    assert refused.training_summary.error_code == ErrorCodes.DP_BUDGET_EXCEEDED
    assert refused.training_summary.dp_budget.consumed_epsilon == 0.0
    assert _same(refused.weights, learner.mli_get_current_weights().weights)


def test_non_dp_learners_report_an_empty_summary():
    learner = dp_learner(private=False)
    assert learner.dp_epsilon is None
    assert learner.mli_propose_weights().training_summary == TrainingSummary()


# ------------------------------------------------------------------ weights and setup


def test_dp_weights_have_the_original_models_names_and_travel_to_non_dp_learners():
    private, plain = dp_learner(), dp_learner(private=False)
    proposal = private.mli_propose_weights()
    reference = make_model(CONFIG).state_dict()
    assert list(proposal.weights) == list(reference)  # no "_module." prefix from opacus
    assert list(private.mli_get_current_weights().weights) == list(reference)
    for name, array in proposal.weights.items():
        assert array.shape == reference[name].shape and array.dtype == torch.float32
    decoded = decode_weights(encode_weights(proposal.weights))
    plain.mli_accept_weights(Weights(weights=decoded))  # checks names, shapes, dtypes
    assert _same(plain.mli_get_current_weights().weights, proposal.weights)
    # and back: a DP learner adopts a non-DP learner's proposal, then trains on from it
    other = plain.mli_propose_weights()
    private.mli_accept_weights(other)
    assert _same(private.mli_get_current_weights().weights, other.weights)
    assert private.mli_propose_weights().training_summary.error_code is None


def test_fixed_seeds_give_identical_weights_and_the_noise_is_real():
    def two_proposals(dp_seed: int | None, private: bool = True) -> dict:
        learner = dp_learner(dp_seed=dp_seed, private=private)
        learner.mli_accept_weights(learner.mli_propose_weights())
        return learner.mli_propose_weights().weights

    first = two_proposals(3)
    assert _same(first, two_proposals(3))
    assert not _same(first, two_proposals(4))  # other noise and sampling
    assert not _same(first, two_proposals(None, private=False))
    # no seed: fresh entropy, not a fixed default
    assert not _same(two_proposals(None), two_proposals(None))


def test_models_opacus_cannot_train_privately_are_refused_clearly():
    data = split_for_config(CONFIG).learners[0]
    model = nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    with pytest.raises(DiffPrivError, match="BatchNorm"):
        PytorchLearner(
            model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            train_loader=make_loader(data.x_train, data.y_train, BATCH_SIZE),
            vote_loader=make_loader(data.x_vote, data.y_vote, EVAL_BATCH_SIZE),
            diff_priv_config=dp_config())


@pytest.mark.parametrize("field, value", [
    ("noise_multiplier", 0.0), ("target_epsilon", -1.0), ("target_delta", 1.0),
    ("max_grad_norm", 0.0),
])
def test_invalid_dp_configs_are_refused(field: str, value: float):
    config = dp_config().model_copy(update={field: value})
    data = split_for_config(CONFIG).learners[0]
    model = make_model(CONFIG)
    with pytest.raises(DiffPrivError, match=field):
        PytorchLearner(
            model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            train_loader=make_loader(data.x_train, data.y_train, BATCH_SIZE),
            vote_loader=make_loader(data.x_vote, data.y_vote, EVAL_BATCH_SIZE),
            diff_priv_config=config)


# ------------------------------------------------------------------ experiments


def test_in_memory_dp_experiment_learns():
    learners = [dp_learner(i, dp_seed=i) for i in range(CONFIG.n_learners)]
    set_equal_weights(learners)
    initial = global_test_accuracy(learners[0].mli_get_current_weights(), CONFIG)
    results = run_experiment(learners, 6, 0.5)
    final = global_test_accuracy(learners[0].mli_get_current_weights(), CONFIG)
    assert initial < 0.2
    assert final > 0.6, f"DP experiment reached only {final:.3f}"
    assert sum(bool(d) for d in results.decisions()) >= 3
    spent = [s.dp_budget.consumed_epsilon for r in results.data
             for s in r.training_summaries if s is not None and s.dp_budget is not None]
    assert len(spent) == 6 and max(spent) == pytest.approx(opacus_epsilon(2))


def test_on_chain_a_learner_out_of_budget_stops_proposing_and_keeps_voting():
    from agents.experiment.onchain import run_on_chain

    dp_index = 1
    # a target between the epsilon after 2 and after 3 proposals; k is what opacus' own
    # accountant then allows
    target = (opacus_epsilon(2, dp_index) + opacus_epsilon(3, dp_index)) / 2
    k = max(j for j in range(10) if opacus_epsilon(j, dp_index) <= target)
    n_learners = CONFIG.n_learners
    own_turns_with_budget = [dp_index + n_learners * j for j in range(k)]
    refused_turn = dp_index + n_learners * k
    silent_turn = refused_turn + n_learners  # budget_exhausted: not even asked
    n_rounds = silent_turn + 1

    learners = make_digits_learners(config=CONFIG)
    learners[dp_index] = dp_learner(dp_index, target_epsilon=target, dp_seed=11)
    run = run_on_chain(learners, n_rounds, 0.5)

    assert len(run.rounds) == n_rounds and all(r.closed for r in run.rounds)
    decisions = run.decisions()
    for r in range(n_rounds):
        if r in (refused_turn, silent_turn):
            assert run.rounds[r].expired and decisions[r] is None and run.rounds[r].cid is None
        else:
            assert not run.rounds[r].expired and decisions[r] is not None, r
    own = run.records[dp_index]
    epsilons = []
    for r in own_turns_with_budget:
        budget = own[r].training_summary.dp_budget
        assert own[r].role == "proposer" and own[r].training_summary.error_code is None
        assert budget.consumed_epsilon <= target
        epsilons.append(budget.consumed_epsilon)
    assert epsilons == sorted(epsilons) and len(set(epsilons)) == k
    assert epsilons[-1] == pytest.approx(opacus_epsilon(k, dp_index))
    refused = own[refused_turn]
    assert refused.reason == "privacy budget exhausted"
    assert refused.training_summary.error_code == ErrorCodes.DP_BUDGET_EXCEEDED
    assert refused.training_summary.dp_budget.consumed_epsilon == pytest.approx(epsilons[-1])
    assert silent_turn not in own
    # it keeps voting on the others' proposals after its budget ran out
    later = [r for r in range(refused_turn + 1, n_rounds) if r != silent_turn]
    assert later
    for r in later:
        assert dp_index in {v.learner_index for v in run.rounds[r].votes}, r
    # colearn's Results carry the same summaries; none exceeds the target
    summaries = [s for result in run.results().data for s in result.training_summaries
                 if s is not None and s.dp_budget is not None]
    assert len(summaries) == k + 1
    assert all(s.dp_budget.consumed_epsilon <= target for s in summaries)
    # the DP learner holds the chain's final model like everyone else
    final = run.final_weights
    assert _same({k_: np.asarray(v) for k_, v in final.items()},
                 learners[dp_index].mli_get_current_weights().weights)
    print(f"\nk={k} target={target:.4f} epsilons={[round(e, 4) for e in epsilons]} "
          f"decisions={decisions} seconds={run.seconds:.1f}")

    # the in-memory driver: the same rounds, the spent budget's rounds without a decision
    in_memory = make_digits_learners(config=CONFIG)
    in_memory[dp_index] = dp_learner(dp_index, target_epsilon=target, dp_seed=11)
    set_equal_weights(in_memory)
    results = run_experiment(in_memory, n_rounds, 0.5)
    assert results.decisions() == decisions
    assert results.data[refused_turn].training_summaries[dp_index].error_code == \
        ErrorCodes.DP_BUDGET_EXCEEDED
    assert _same(in_memory[0].mli_get_current_weights().weights, final)


def test_one_pass_proposals_count_one_poisson_epoch_of_steps():
    data = split_for_config(CONFIG).learners[0]
    model = make_model(CONFIG)
    learner = PytorchLearner(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_loader=make_loader(data.x_train, data.y_train, BATCH_SIZE, shuffle=True),
        vote_loader=make_loader(data.x_vote, data.y_vote, EVAL_BATCH_SIZE),
        num_train_batches=None, num_threads=1, diff_priv_config=dp_config(), dp_seed=0)
    epoch = round(1 / sample_rate())
    budget = learner.mli_propose_weights().training_summary.dp_budget
    accountant = RDPAccountant()
    accountant.history = [(NOISE, sample_rate(), epoch)]
    assert budget.consumed_epsilon == pytest.approx(accountant.get_epsilon(delta=DELTA))

"""A PyTorch learner for the machine learning interface, with colearn's parameters.

Import it explicitly: it imports torch (``colearn_core`` itself imports no framework).

Weights are, as in colearn, the model's ``state_dict`` as an ``OrderedDict`` of tensors
(detached copies), so ``model.load_state_dict(learner.mli_get_current_weights().weights)``
works; :mod:`colearn_core.codec` encodes them as named arrays and decodes them to numpy,
and the learner takes either form. Incoming weights are checked against the model (names,
shapes, dtypes) before they are used. Testing swaps them into the model for the test's
duration, sharing their memory (read-only arrays too), and accepting copies them in once
(:mod:`colearn_core.learners.pytorch_weights`): the model never keeps the caller's arrays.

Guarantees (PROTOCOL.md, "What an agent guarantees"):

- :meth:`PytorchLearner.mli_propose_weights` trains, returns the new weights and
  restores the current ones bitwise. As in colearn, ``need_reset_optimizer`` (default
  ``True``) clears the optimizer's state (momentum, Adam moments, step count) before each
  training, so no proposal inherits the state of a proposal that was never accepted;
  ``need_reset_optimizer=False`` keeps it across proposals.
- :meth:`PytorchLearner.mli_test_weights` scores weights on the vote and test sets and
  restores the current weights bitwise; its vote is "strictly better than the current
  weights' vote score", that score being cached and refreshed by
  :meth:`PytorchLearner.mli_accept_weights`.
- Nothing here draws from torch's global random generator: give the train loader its
  own ``torch.Generator`` (and avoid dropout, or seed it yourself) and one sequence of
  calls gives bitwise identical weights every time.

Differences from colearn's ``PytorchLearner``, on purpose: without ``vote_criterion`` the
score is the exact mean loss per sample (colearn divided the sum of its batch means by
the number of samples, and counted one batch more than it scored when
``num_test_batches`` cut a loader short); the train loader is read on from where the
previous proposal stopped, starting a new epoch when it runs out (colearn restarted it
at every proposal, so an unshuffled loader gave the same first batches every time, and
stopped at the end of an epoch); ``criterion`` defaults to ``nn.CrossEntropyLoss()``
(colearn: none, and training failed); weights are checked before they are loaded. Extras,
keyword-only after colearn's parameters: ``diff_priv_config`` and ``dp_seed``,
``test_criterion`` (the test score may differ from the vote score, e.g. vote on loss,
report accuracy), ``num_threads`` (bitwise results depend on torch's thread count) and
``lr_scheduler``.

Differential privacy (``diff_priv_config``) uses opacus (imported only then): DP-SGD with
per-sample gradient clipping to ``max_grad_norm``, Gaussian noise of ``noise_multiplier``
times it, Poisson sampling of the train set and opacus' RDP accountant. The privacy
budget is checked *before* training: a proposal whose steps would take the accountant's
epsilon above ``target_epsilon`` is not trained, and the learner returns its current
weights with ``ErrorCodes.DP_BUDGET_EXCEEDED`` (an agent then stops proposing). colearn
checked *after* training, so its last proposal could already exceed the target; here no
published proposal ever does. Every proposal counts, accepted or not: its weights were
published.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from colearn_core.learners._base import Learner, check_vote_tolerance, current_model
from colearn_core.learners.privacy import PrivateTraining, discard_stale_per_sample_state
from colearn_core.learners.pytorch_onnx import export_onnx
from colearn_core.learners.pytorch_scoring import (
    ScoreFn,
    evaluate_model,
    score_weights,
    split_batch,
    to_device,
    torch_threads,
)
from colearn_core.learners.pytorch_skew import (
    add_scaled,
    label_log_prior,
    partial_update,
    weight_change,
)
from colearn_core.learners.pytorch_weights import (
    WeightsLike,
    as_tensors,
    checked_arrays,
    load_into,
    state_dict_copy,
    state_dict_to_numpy,
    swap_storage,
    swapped_in,
    weights_to_state_dict,
)
from colearn_core.ml_interface import (
    ColearnModel,
    DiffPrivConfig,
    ErrorCodes,
    ProposedWeights,
    TrainingSummary,
    Weights,
)

log = logging.getLogger(__name__)

# (imported from here too)
__all__ = ["PytorchLearner", "ScoreFn", "evaluate_model", "partial_update", "score_weights",
           "torch_threads", "weights_to_state_dict"]


# --------------------------------------------------------------------------- helpers

def _with_threads(method: Callable) -> Callable:
    @functools.wraps(method)
    def wrapper(self: PytorchLearner, *args: Any, **kwargs: Any) -> Any:
        with torch_threads(self.num_threads):
            return method(self, *args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------- learner

class PytorchLearner(Learner):
    """A learner wrapping a PyTorch model, with colearn's constructor parameters (names,
    order and defaults), then this project's extras as keyword-only parameters.

    - ``need_reset_optimizer``: clear the optimizer's state before each training
      (colearn's default, ``True``); ``False`` keeps momentum and step counts across
      proposals, including ones never accepted.
    - ``device``: where the model and each batch go.
    - ``criterion``: the training loss (default ``nn.CrossEntropyLoss()``); a batch mean.
    - ``vote_criterion``: ``f(outputs, labels) -> float`` on the whole vote (and test)
      set, tensors, as colearn calls it (e.g.
      :func:`colearn_core.pytorch.utils.categorical_accuracy`); ``None``: the score is
      the mean ``criterion`` loss.
    - ``minimise_criterion``: lower vote scores are better (``True``, for losses) or
      higher ones (``False``, for accuracies).
    - ``num_train_batches``: batches per proposal (``None``: one pass over
      ``train_loader``). The train loader is read on from where the previous proposal
      stopped, starting a new epoch when it runs out.
    - ``num_test_batches``: at most this many batches scored from the vote and test
      loaders (``None``: all).
    - ``test_criterion`` (not in colearn): the test score's function, like
      ``vote_criterion``; ``None``: the same score as the vote.
    - ``num_threads`` (not in colearn): torch's thread count while the learner works
      (set and restored around each call; ``None``: leave it). Bitwise results depend on
      it, so fix it when runs in different processes must agree.
    - ``lr_scheduler`` (not in colearn): a torch LR scheduler of ``optimizer``, stepped
      once after each training call (each proposal).
    - ``diff_priv_config``: DP-SGD with opacus (see the module docstring): the train
      loader must be a ``DataLoader`` over a map-style dataset (it is replaced by a
      Poisson-sampling one with the same expected batch size), ``criterion`` must return
      a batch mean, and the model must hold only layers opacus supports (Linear, Conv,
      GroupNorm, ... not BatchNorm), else :class:`~colearn_core.learners.privacy.DiffPrivError`. Each proposal's
      ``TrainingSummary.dp_budget`` reports the epsilon consumed so far; a proposal that
      would exceed ``target_epsilon`` is refused (``ErrorCodes.DP_BUDGET_EXCEEDED``, the
      current weights returned, nothing trained).
    - ``vote_tolerance`` (not in colearn): the vote's relative non-inferiority margin
      (:func:`colearn_core.learners._base.approves`): approve a proposal whose vote score
      is no worse than the current one by more than this fraction of it. ``0`` (the
      default): colearn's rule, strictly better.
    - ``proximal_mu`` (not in colearn): FedProx's proximal term: each proposal's training
      loss gets ``proximal_mu / 2 * ||w - w_current||^2`` added, so the proposal drifts
      less from the shared model. ``0`` (the default): plain training, as colearn. Not
      with ``diff_priv_config``.
    - ``update_fraction`` (not in colearn): a proposal is the current weights plus this
      fraction of the update its training made, ``w + f * (w_trained - w)`` (floating
      point tensors; the optimizer's state is the trained one's). ``1`` (the default):
      the trained weights, as colearn. Smaller steps from one learner's data pull the
      shared model less towards its classes, so others' votes pass under label skew.
    - ``update_momentum`` (not in colearn): the proposal also adds this fraction of the
      shared model's last accepted change (what the learner's last
      :meth:`mli_accept_weights` changed), ``w + f * (w_trained - w) + m * last_change``:
      server momentum as in FedAvgM (Hsu et al. 2019), so a proposal carries on what
      other learners' accepted rounds learned. ``0`` (the default): colearn's proposal.
      Adopting the experiment's initial model counts as a change too: build the learner
      with those weights (as the seeded factories here do), or that change is wasted on
      its first proposal.
    - ``logit_adjustment`` (not in colearn): train on ``criterion(outputs + log prior,
      labels)``, the prior being the class shares of this learner's train set
      (:func:`label_log_prior`): the balanced softmax / logit adjustment of Ren et al. 2020
      and Menon et al. 2021, so a learner whose data lacks some classes does not teach the
      shared model that they are rare. Scores (vote, test) use the plain outputs. For
      classifiers whose ``criterion`` takes logits and integer labels (cross-entropy); needs
      a ``DataLoader`` over a map-style dataset. ``False`` (the default): plain training.
      Not with ``diff_priv_config``.
    - ``dp_seed`` (not in colearn): seeds the DP noise and the Poisson sampling, so runs
      repeat bitwise; ``None`` draws the seed from the OS. Anyone who knows the seed
      can reproduce the noise, which voids the guarantee against them: keep it private
      outside experiments.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        train_loader: Iterable,
        vote_loader: Iterable,
        test_loader: Iterable | None = None,
        need_reset_optimizer: bool = True,
        device: str | torch.device = "cpu",
        criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        minimise_criterion: bool = True,
        vote_criterion: ScoreFn | None = None,
        num_train_batches: int | None = None,
        num_test_batches: int | None = None,
        *,
        diff_priv_config: DiffPrivConfig | None = None,
        test_criterion: ScoreFn | None = None,
        num_threads: int | None = None,
        lr_scheduler: Any | None = None,
        dp_seed: int | None = None,
        vote_tolerance: float = 0.0,
        proximal_mu: float = 0.0,
        update_fraction: float = 1.0,
        update_momentum: float = 0.0,
        logit_adjustment: bool = False,
    ) -> None:
        if not 0.0 < update_fraction <= 1.0:
            raise ValueError("update_fraction must be in (0, 1]")
        self.update_fraction = float(update_fraction)
        if isinstance(update_momentum, bool) or not 0.0 <= update_momentum < 1.0:
            raise ValueError("update_momentum must be in [0, 1)")
        self.update_momentum = float(update_momentum)
        if not isinstance(logit_adjustment, bool):
            raise TypeError("logit_adjustment must be a bool")
        self.logit_adjustment = logit_adjustment
        if logit_adjustment and diff_priv_config is not None:
            raise ValueError("logit_adjustment is not supported with diff_priv_config (the "
                             "adjustment is the train set's class counts, unprotected)")
        #: the shared model's last accepted change (update_momentum); None before one
        self._last_change: OrderedDict[str, torch.Tensor] | None = None
        self._log_prior: torch.Tensor | None = None
        if proximal_mu < 0 or not np.isfinite(proximal_mu):
            raise ValueError("proximal_mu must be a finite number >= 0")
        if proximal_mu and diff_priv_config is not None:
            raise ValueError("proximal_mu is not supported with diff_priv_config (DP-SGD "
                             "clips per-sample gradients; the proximal term has none)")
        self.vote_tolerance = check_vote_tolerance(vote_tolerance)
        self.proximal_mu = float(proximal_mu)
        if num_train_batches is not None and num_train_batches < 1:
            raise ValueError("num_train_batches must be at least 1 (or None: one pass)")
        if num_test_batches is not None and num_test_batches < 1:
            raise ValueError("num_test_batches must be at least 1 (or None: all)")
        if num_threads is not None and num_threads < 1:
            raise ValueError("num_threads must be at least 1 (or None: unchanged)")
        super().__init__(train_loader, vote_loader, test_loader, minimise_criterion,
                         diff_priv_config, need_reset_optimizer=need_reset_optimizer)
        self.num_threads = num_threads
        self.lr_scheduler = lr_scheduler
        self.device = torch.device(device)
        self.model: nn.Module = model.to(self.device)
        self.optimizer = optimizer
        self.criterion = criterion if criterion is not None else nn.CrossEntropyLoss()
        self.vote_criterion = vote_criterion
        self.test_criterion = test_criterion
        self.num_train_batches = num_train_batches
        self.num_test_batches = num_test_batches
        self._dp: PrivateTraining | None = None
        if diff_priv_config is not None:
            self._dp = PrivateTraining(diff_priv_config, self.model, optimizer, train_loader, dp_seed)
        self._train_iter: Iterator | None = None
        with torch_threads(num_threads):
            self.vote_score: float = self._score(self.vote_loader, self.vote_criterion)

    # ------------------------------------------------------------------ scoring

    def _score(self, loader: Iterable, score_fn: ScoreFn | None) -> float:
        return evaluate_model(
            self.model,
            loader,
            score_fn,
            criterion=self.criterion,
            device=self.device,
            num_batches=self.num_test_batches,
        )

    @_with_threads
    def test(self, loader: Iterable) -> float:
        """colearn's score of the current model on ``loader``: ``vote_criterion`` (or the
        mean loss), on at most ``num_test_batches`` batches."""
        return self._score(loader, self.vote_criterion)

    @_with_threads
    def evaluate(
        self,
        weights: WeightsLike,
        loader: Iterable,
        score_fn: ScoreFn | None = None,
        num_batches: int | None = None,
    ) -> float:
        """Scores ``weights`` on any ``loader`` (e.g. a held-out set) with ``score_fn``
        (default: mean ``criterion``), leaving the current weights as they were."""
        arrays = checked_arrays(weights, self.model, require_finite=False)
        with swapped_in(self.model, arrays, self.device):
            return evaluate_model(
                self.model, loader, score_fn, criterion=self.criterion,
                device=self.device, num_batches=num_batches,
            )

    # ------------------------------------------------------------------ training

    def _snapshot(self) -> OrderedDict[str, torch.Tensor]:
        return state_dict_copy(self.model)

    def set_weights(self, weights: WeightsLike) -> None:
        """Loads ``weights`` (``Weights``, or the mapping itself; tensors or arrays) into
        the model after checking they fit it; the vote score is left as it was (as in
        colearn: :meth:`mli_accept_weights` also rescores)."""
        load_into(self.model, checked_arrays(weights, self.model, require_finite=False))

    def reset_optimizer(self) -> None:
        """Clears the optimizer's state (momentum buffers, Adam moments, step counts);
        its hyperparameters (learning rate, ...) stay as they are."""
        self.optimizer.state = defaultdict(dict)

    def _loader_for_training(self) -> Iterable:
        return self._dp.train_loader if self._dp is not None else self.train_loader

    def _next_train_batch(self) -> Any:
        loader = self._loader_for_training()
        if self._train_iter is None:
            self._train_iter = iter(loader)
        try:
            return next(self._train_iter)
        except StopIteration:
            self._train_iter = iter(loader)
            try:
                return next(self._train_iter)
            except StopIteration:
                raise ValueError("the train loader is empty") from None

    def _train_batches(self) -> Iterator:
        if self.num_train_batches is None:
            yield from self._loader_for_training()
        else:
            for _ in range(self.num_train_batches):
                yield self._next_train_batch()

    def _steps_per_proposal(self) -> int:
        if self.num_train_batches is not None:
            return self.num_train_batches
        return len(self._loader_for_training())  # type: ignore[arg-type]  # (one pass)

    def _proximal_anchor(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(parameter, copy of its value before training) for FedProx's term; empty
        without ``proximal_mu``."""
        if not self.proximal_mu:
            return []
        return [(p, p.detach().clone()) for p in self.model.parameters() if p.requires_grad]

    def _proximal_term(self, anchor: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """FedProx's ``mu / 2 * ||w - w_current||^2`` (Li et al. 2020)."""
        total = sum(((p - start) ** 2).sum() for p, start in anchor)
        return 0.5 * self.proximal_mu * total  # type: ignore[return-value]

    def _train_log_prior(self, n_classes: int) -> torch.Tensor:
        if self._log_prior is None or len(self._log_prior) != n_classes:
            self._log_prior = label_log_prior(self.train_loader, n_classes).to(self.device)
        return self._log_prior

    @property
    def dp_epsilon(self) -> float | None:
        """The privacy budget (epsilon) spent so far; ``None`` without DP."""
        return None if self._dp is None else self._dp.epsilon()

    @_with_threads
    def train(self) -> TrainingSummary:
        """Trains the model in place on ``num_train_batches`` batches. With DP, the
        summary carries the budget consumed after training (the caller checks the
        budget first: :meth:`mli_propose_weights`)."""
        dp = self._dp
        module = dp.module if dp is not None else self.model
        optimizer = dp.optimizer if dp is not None else self.optimizer
        steps_before = dp.steps if dp is not None else 0
        if self.need_reset_optimizer:
            self.reset_optimizer()
        discard_stale_per_sample_state(module)
        module.train()
        trained = 0
        anchor = self._proximal_anchor()
        for batch in self._train_batches():
            data, labels = split_batch(batch)
            data, labels = to_device(data, self.device), to_device(labels, self.device)
            optimizer.zero_grad()
            outputs = module(data)
            if self.logit_adjustment:
                outputs = outputs + self._train_log_prior(outputs.shape[-1])
            loss = self.criterion(outputs, labels)
            if anchor:
                loss = loss + self._proximal_term(anchor)
            with warnings.catch_warnings():
                # opacus' per-sample hooks on the first layer, whose input needs no
                # gradient: torch warns, the per-sample gradients are right
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                loss.backward()
            optimizer.step()
            trained += 1
        optimizer.zero_grad(set_to_none=True)  # a model size less held between proposals
        self.model.eval()
        if trained == 0:
            raise ValueError("the train loader is empty")
        if self.lr_scheduler is not None:
            self.lr_scheduler.step()
        if dp is None:
            return TrainingSummary()
        if dp.steps != steps_before + trained:  # the budget check relies on this count
            raise RuntimeError(
                f"the accountant counted {dp.steps - steps_before} DP steps, not {trained}")
        return TrainingSummary(dp_budget=dp.budget(dp.epsilon()))

    # ------------------------------------------------------------------ the MLI

    @_with_threads
    def mli_propose_weights(self) -> Weights:
        """Trains and returns the new weights, the current ones unchanged. With DP, if
        this proposal's steps would take epsilon above the target, nothing is trained:
        the current weights come back with ``ErrorCodes.DP_BUDGET_EXCEEDED``."""
        if self._dp is not None:
            after = self._dp.epsilon(self._steps_per_proposal())
            if after > self._dp.config.target_epsilon:
                spent = self._dp.epsilon()
                log.info("privacy budget: this proposal would reach epsilon %.4f > target "
                         "%.4f (spent %.4f); not training", after,
                         self._dp.config.target_epsilon, spent)
                return Weights(
                    weights=self._snapshot(),
                    training_summary=TrainingSummary(
                        dp_budget=self._dp.budget(spent),
                        error_code=ErrorCodes.DP_BUDGET_EXCEEDED))
        saved = self._snapshot()
        try:
            summary = self.train()
        except BaseException:
            swap_storage(self.model, saved)
            raise
        # the trained tensors become the proposal and the saved ones the model's own
        # again: swapped, not copied
        new_weights = swap_storage(self.model, saved)
        if self.update_fraction != 1.0:
            new_weights = partial_update(saved, new_weights, self.update_fraction)
        if self.update_momentum and self._last_change is not None:
            new_weights = add_scaled(new_weights, self._last_change, self.update_momentum)
        return Weights(weights=new_weights, training_summary=summary)

    @_with_threads
    def mli_test_weights(self, weights: Weights) -> ProposedWeights:
        """Scores ``weights`` with their tensors swapped into the model in place of its
        own (no copy of the model, none of the weights on the CPU), which come back
        afterwards, also when scoring raises."""
        arrays = checked_arrays(weights, self.model, require_finite=False)
        with swapped_in(self.model, arrays, self.device):
            vote_score = self._score(self.vote_loader, self.vote_criterion)
            if self.test_loader is not None:
                test_fn = self.test_criterion if self.test_criterion is not None \
                    else self.vote_criterion
                test_score = self._score(self.test_loader, test_fn)
            else:
                test_score = 0.0
        return self._tested(weights, vote_score, test_score)

    @_with_threads
    def mli_accept_weights(self, weights: Weights) -> None:
        """Copies ``weights`` (checked, finite) once into the model's own tensors."""
        arrays = checked_arrays(weights, self.model)
        if self.update_momentum:
            self._last_change = weight_change(self.model.state_dict(), as_tensors(arrays))
        load_into(self.model, arrays)
        self.vote_score = self._score(self.vote_loader, self.vote_criterion)

    def mli_get_current_weights(self) -> Weights:
        """The current ``state_dict`` as an ``OrderedDict`` of tensor copies (colearn's
        form: ``model.load_state_dict`` takes it)."""
        return Weights(weights=self._snapshot())

    @_with_threads
    def mli_get_current_model(self) -> ColearnModel:
        """The current model as ONNX if the ``onnx`` package is installed and export
        works for it; otherwise ``PICKLE_WEIGHTS_ONLY`` with ``model`` the weights dict
        (``{name: array}``; nothing is pickled)."""
        data, _ = split_batch(next(iter(self.vote_loader)))
        return current_model(export_onnx(self.model, to_device(data, self.device)),
                             lambda: state_dict_to_numpy(self.model))

"""Any learners in an experiment on chain, in one process.

:class:`OnChainSession` deploys, creates the experiment and steps the agents (to the end,
or until a condition holds: :mod:`agents.experiment.training` plays one round a call);
:func:`run_on_chain` is the on-chain counterpart of :func:`colearn_core.training.run_experiment`:
it deploys the contract (in-process EVM by default, or any RPC), stores learner 0's
weights as the initial model, creates the experiment, steps one :class:`LearnerAgent`
per learner until the experiment completes and rebuilds every round from the chain.
On the in-process chain, when no agent can act (a proposer that stopped proposing, such
as a learner whose privacy budget is spent), the clock jumps to the phase's deadline so
the round expires as it would on a real chain, only without the wait.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any, TypedDict, Unpack

from pydantic import BaseModel, ConfigDict

from agents._utils.closing import Closing
from agents.agent.learner_agent import LearnerAgent, run_in_process
from agents.agent.records import RoundRecord
from agents.agent.settings import AgentSettings
from agents.audit.rows import RoundRow, colearn_results, read_history
from agents.chain.client import CollectiveLearningClient
from agents.chain.network import (
    advance_time,
    connect,
    derive_accounts,
    fund_accounts,
    is_in_process,
)
from agents.chain.types import RoundState
from agents.experiment.launch import launch_experiment
from agents.experiment.spec import ExperimentTerms
from agents.storage.store import WeightStore, open_store
from colearn_core.codec import decode_weights, encode_weights
from colearn_core.ml_interface import MachineLearningInterface
from colearn_core.results import Results

log = logging.getLogger(__name__)


class OnChainRun(BaseModel):
    """An experiment run on chain: every round as the chain records it, each agent's own
    records (scores, and the proposer's training summary), and the final model."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    chain_id: int
    contract: str
    experiment_id: int
    rounds: list[RoundRow]
    records: list[dict[int, RoundRecord]]  # per learner, by round
    final_weights: Any  # the chain's final model, fetched and decoded from the store
    final_model_round: int  # 0: the initial model; r + 1: the proposal of round r
    total_gas: int
    seconds: float

    def decisions(self) -> list[bool | None]:
        """Accepted / rejected per round; ``None`` for a round that expired."""
        return [None if r.expired else r.accepted for r in self.rounds]

    def results(self) -> Results:
        """colearn's ``Results``: votes and decisions from the chain, scores and training
        summaries from the agents' own records."""
        return colearn_results(self.rounds, len(self.records), self.records)


class SessionOptions(TypedDict, total=False):
    """Where and how an on-chain session runs (every field optional)."""

    chain_url: str | None  # a JSON-RPC URL; None (default): the in-process EVM
    store: WeightStore | None  # default: a temporary file store
    proposal_timeout: int  # seconds (default 600)
    voting_timeout: int  # seconds (default 600)
    seed: int  # of the learners' derived accounts (default 0)


class OnChainSession(Closing):
    """Learners with one agent each, in an experiment on chain, stepped in this process:
    :func:`run_on_chain` steps it to the end, :mod:`agents.experiment.training` one round
    at a time. Close it (or use it as a context manager) to release its store."""

    def __init__(
        self,
        learners: Sequence[MachineLearningInterface],
        n_rounds: int,
        vote_threshold: float = 0.5,
        **options: Unpack[SessionOptions],
    ) -> None:
        if len(learners) < 2:
            raise ValueError("an experiment needs at least 2 learners")
        self.started = time.perf_counter()
        self._stack = contextlib.ExitStack()
        store = options.get("store")
        try:
            if store is None:
                tmp = self._stack.enter_context(
                    tempfile.TemporaryDirectory(prefix="colearn-onchain-"))
                store = self._stack.enter_context(open_store(f"file:{tmp}"))
            self.store: WeightStore = store
            w3 = connect(options.get("chain_url"))
            accounts = derive_accounts(len(learners), options.get("seed", 0),
                                       label="colearn-onchain")
            fund_accounts(w3, [a.address for a in accounts])
            self.client, _ = CollectiveLearningClient.deploy(w3, accounts[0])
            self.experiment_id = launch_experiment(self.client, store, ExperimentTerms(
                learners=[a.address for a in accounts], threshold=vote_threshold,
                rounds=n_rounds, proposal_timeout=options.get("proposal_timeout", 600),
                voting_timeout=options.get("voting_timeout", 600)),
                encode_weights(learners[0].mli_get_current_weights().weights)).experiment_id
            self.agents = [LearnerAgent(self.client.with_account(account), store, learner,
                                        self.experiment_id,
                                        settings=AgentSettings(name=f"learner{i}"))
                           for i, (account, learner) in enumerate(zip(accounts, learners))]
            self._in_process = is_in_process(w3)
        except BaseException:
            self._stack.close()
            raise

    def step(self, until: Callable[[], bool] | None = None) -> None:
        """Steps the agents until the experiment completes, or until ``until()`` is true
        (asked before each agent's step)."""
        run_in_process(self.agents, until=until, on_idle=lambda: _idle(
            self.client, self.experiment_id, in_process=self._in_process))

    def adopt_current_model(self) -> None:
        """Every learner adopts the chain's current model if it does not hold it yet,
        and nothing else happens (no agent proposes or votes)."""
        for agent in self.agents:
            agent.adopt_current_model()

    def rounds(self) -> list[RoundRow]:
        """Every round so far, as the chain records it."""
        return read_history(self.client, self.experiment_id)

    def records(self) -> list[dict[int, RoundRecord]]:
        """Each agent's own records, by round."""
        return [a.records for a in self.agents]

    def outcome(self) -> OnChainRun:
        """The run as it stands: rounds, records and the chain's current model."""
        rounds = self.rounds()
        digest, model_round = self.client.current_model(self.experiment_id)
        fetched = self.store.get(
            _model_cid(self.client, self.experiment_id, model_round, rounds))
        if fetched.sha256 != digest:
            raise RuntimeError("the stored final model does not match the chain's digest")
        return OnChainRun(
            chain_id=self.client.chain_id, contract=self.client.address,
            experiment_id=self.experiment_id, rounds=rounds, records=self.records(),
            final_weights=decode_weights(fetched.data), final_model_round=model_round,
            total_gas=sum(r.gas.total for r in rounds),
            seconds=time.perf_counter() - self.started)

    def close(self) -> None:
        self._stack.close()


def run_on_chain(
    learners: Sequence[MachineLearningInterface],
    n_rounds: int,
    vote_threshold: float = 0.5,
    **options: Unpack[SessionOptions],
) -> OnChainRun:
    """Runs ``learners`` through ``n_rounds`` rounds on chain and returns what happened.

    Learner 0's current weights are the initial model; every learner adopts it first
    (the agents fetch it, as stakeholders would). ``options``: see :class:`SessionOptions`."""
    with OnChainSession(learners, n_rounds, vote_threshold, **options) as session:
        session.step()
        return session.outcome()


def _idle(client: CollectiveLearningClient, experiment_id: int, *,
          in_process: bool) -> None:
    """Nobody can act before the current deadline: on the in-process chain the clock
    moves there; on a real node, time passes."""
    status = client.round_status(experiment_id)
    if status.state == RoundState.COMPLETED:
        return
    if in_process:
        advance_time(client.w3, max(1, status.deadline - status.timestamp))
    else:
        time.sleep(0.05)


def _model_cid(client: CollectiveLearningClient, experiment_id: int, model_round: int,
               rounds: list[RoundRow]) -> str:
    if model_round == 0:
        return client.experiment_created(experiment_id).initial_cid
    cid = rounds[model_round - 1].cid
    if cid is None:
        raise RuntimeError(f"round {model_round - 1} is the model but has no proposal")
    return cid

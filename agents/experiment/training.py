"""colearn's training helpers, on chain: a colearn script runs on chain when it imports
``collective_learning_round`` (and the others) from here instead of
``colearn_core.training`` (colearn's ``colearn.training``); the signatures are the same.

The first :func:`collective_learning_round` for a list of learners starts a session: an
in-process EVM, a file store in a temporary directory, the contract, and an experiment
whose initial model is learner 0's current weights (as :func:`run_on_chain` does), with
the most rounds the contract allows, so a script may loop as long as it likes. Each call
then steps one :class:`~agents.agent.learner_agent.LearnerAgent` per learner, in this
process, until round ``round_index`` is decided (or expires) on chain (no agent starts
the next round), then every learner adopts the chain's model, and returns colearn's
``Result`` read from the chain (decision, votes, proposer) and the agents' own records
(vote and test scores, the proposer's training summary). The agents of a session step only during its calls: between calls nothing runs.

:func:`close` ends every session (it runs at exit too). :func:`set_equal_weights`,
:func:`initial_result` and :func:`individual_training_round` involve no chain: they are
the in-memory ones.
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Callable, Sequence

from agents.audit.rows import colearn_results
from agents.chain.types import MAX_ROUNDS, RoundState
from agents.experiment.onchain import OnChainSession
from colearn_core.ml_interface import MachineLearningInterface
from colearn_core.results import Result
from colearn_core.training import (
    individual_training_round,
    initial_result,
    set_equal_weights,
)

__all__ = ["close", "collective_learning_round", "individual_training_round",
           "initial_result", "session_for", "set_equal_weights"]

log = logging.getLogger(__name__)

_sessions: dict[tuple[int, ...], tuple[Sequence[MachineLearningInterface], float,
                                       OnChainSession]] = {}


def session_for(learners: Sequence[MachineLearningInterface],
                vote_threshold: float) -> OnChainSession:
    """The session of this list of learners (the same learner objects in the same order),
    started on first use. A different vote threshold for the same learners is refused:
    it is fixed when the experiment is created."""
    key = tuple(id(learner) for learner in learners)
    found = _sessions.get(key)
    if found is not None:
        if found[1] != vote_threshold:
            raise ValueError(f"these learners' experiment has vote threshold {found[1]}, "
                             f"not {vote_threshold}")
        return found[2]
    log.info("starting an on-chain session for %d learners", len(learners))
    session = OnChainSession(learners, MAX_ROUNDS, vote_threshold)
    # the learners are kept with their session: their ids stay theirs while it lives
    _sessions[key] = (learners, vote_threshold, session)
    return session


def collective_learning_round(learners: Sequence[MachineLearningInterface],
                              vote_threshold: float, round_index: int) -> Result:
    """Plays on chain until round ``round_index`` is closed, then every learner adopts its
    outcome; returns that round as colearn's ``Result``. Rounds are played in order: a
    round already closed is returned as it was."""
    if round_index < 0:
        raise ValueError(f"round_index must be >= 0, not {round_index}")
    if round_index >= MAX_ROUNDS:
        raise ValueError(f"the contract allows at most {MAX_ROUNDS} rounds")
    session = session_for(learners, vote_threshold)
    session.step(until=_closed(session, round_index))
    session.adopt_current_model()  # as colearn's round leaves them: holding the outcome
    row = next(r for r in session.rounds() if r.round == round_index)
    return colearn_results([row], len(learners), session.records()).data[0]


def _closed(session: OnChainSession, round_index: int) -> Callable[[], bool]:
    """A stop condition for :meth:`OnChainSession.step`: round ``round_index`` is closed
    on chain (asked before each agent's step, so the next round's proposer has not
    started training when the call returns)."""
    def until() -> bool:
        status = session.client.round_status(session.experiment_id)
        return status.round > round_index or status.state == RoundState.COMPLETED

    return until


def close() -> None:
    """Ends every session (their stores and temporary directories)."""
    while _sessions:
        _, (_, _, session) = _sessions.popitem()
        session.close()


atexit.register(close)

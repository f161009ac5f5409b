"""An experiment that is stalled: its phase's deadline passed and nobody called
``cancel()``, ``expire()`` or ``decide()``. The audit says since when and why in each of
its forms, and still passes (a stall breaks no rule). On the in-process chain, the clock
moved past each deadline (``Clock``); the stall's start is the contract's own deadline."""

from __future__ import annotations

import html
import json
from typing import Any

import pytest
from conftest import Clock
from eth_account.signers.local import LocalAccount
from experiments import Make
from rich.console import Console
from web3 import Web3

from agents.audit.checks import audit_history
from agents.audit.history import History
from agents.audit.metadata import Metadata
from agents.audit.reader import read_history
from agents.audit.report import print_report, report_json
from agents.audit.report_html import render_html
from agents.audit.stall import Stall, audit_clock, duration, find_stall
from agents.chain.client import CollectiveLearningClient
from agents.chain.types import ExperimentOptions, score_to_fixed


def history(chain: Web3, e) -> History:  # type: ignore[no-untyped-def]
    return read_history(CollectiveLearningClient(chain, e.contract.address), e.id)


def stall_now(chain: Web3, e, clock: Clock) -> Stall | None:  # type: ignore[no-untyped-def]
    """The stall by the chain's clock (the latest block's time)."""
    return find_stall(history(chain, e), clock.latest())


def test_joining_past_the_join_deadline_is_stalled_until_cancelled(
        chain: Web3, make: Make, clock: Clock, outsider: LocalAccount) -> None:
    e = make(n=3, join=False)
    e.join(e.learners[0])
    assert stall_now(chain, e, clock) is None  # joining is open
    deadline = e.deadline()
    clock.mine_at(deadline)
    stall = stall_now(chain, e, clock)
    assert stall is not None and stall.phase == "joining" and stall.since == deadline
    assert stall.action == "cancel()"
    assert "the join deadline passed with 1 of 3 learners joined and nobody called " \
           "cancel()" in stall.line()
    e.by(outsider).cancel(e.id)
    assert stall_now(chain, e, clock) is None  # cancelled: finished, not stalled


def test_a_round_without_a_proposal_is_stalled_until_expired(
        chain: Web3, make: Make, clock: Clock, outsider: LocalAccount) -> None:
    e = make(n=3, rounds=2)
    assert stall_now(chain, e, clock) is None
    deadline = e.deadline()
    clock.mine_at(deadline - 1)
    assert stall_now(chain, e, clock) is None  # the last second of the phase
    clock.mine_at(deadline + 125)
    stall = stall_now(chain, e, clock)
    assert stall is not None and (stall.phase, stall.round, stall.since) == (
        "proposing", 0, deadline)
    assert stall.seconds == 125
    assert ("(2 min 5 s ago): round 0's proposal deadline passed without a proposal from "
            "learner 0 and nobody called expire()") in stall.line()
    e.by(outsider).expire(e.id, 0)
    assert stall_now(chain, e, clock) is None  # round 1 starts now


def test_a_ballot_past_its_voting_deadline_is_stalled_until_decided(
        chain: Web3, make: Make, clock: Clock, outsider: LocalAccount) -> None:
    e = make(n=3, rounds=2)
    e.propose(0)
    e.cast(0, [True, True])
    e.propose(1)
    e.vote(1, e.voters(1)[0], True, score_to_fixed(0.4))
    assert stall_now(chain, e, clock) is None
    deadline = e.deadline()
    clock.mine_at(deadline + 3 * 3600 + 60)
    h = history(chain, e)
    stall = find_stall(h, clock.latest())
    assert stall is not None and (stall.phase, stall.round, stall.since) == ("voting", 1, deadline)
    assert ("(3 h 1 min ago): round 1's voting deadline passed with 1 of 2 votes counted and "
            "nobody called decide()") in stall.line()

    # Not a violation: the audit passes, and says so together with the stall.
    report = audit_history(h)
    assert report.ok
    console = Console(record=True, width=300)
    print_report(report, console, stall)
    text = console.export_text()
    assert "stalled since" in text and "nobody called decide()" in text
    assert "audit passed: every check holds; the experiment is stalled" in text
    assert text.index("stalled since") < text.index("audit passed")
    data = report_json(report, stall)
    assert data["ok"] is True and data["stalled"]["since"] == deadline
    assert data["stalled"]["line"] == stall.line() and data["stalled"]["action"] == "decide()"
    json.dumps(data)
    page = render_html(report, stall)
    assert "id='stalled'" in page and "nobody called decide()" in page
    assert "Audit passed" in page

    # The audit's clock: the chain's, or this machine's when later.
    assert audit_clock(CollectiveLearningClient(chain, e.contract.address), h) >= clock.latest()

    e.by(outsider).decide(e.id, 1)
    h = history(chain, e)
    assert h.completion is not None and find_stall(h, clock.latest() + 10**6) is None
    assert report_json(audit_history(h))["stalled"] is None


def test_sealed_votes_stall_after_the_reveal_deadline(
        chain: Web3, make: Make, clock: Clock) -> None:
    e = make(n=3, rounds=1, options=ExperimentOptions(reveal_timeout=300))
    e.propose(0)
    proposed = clock.latest()
    voting_timeout = history(chain, e).config.voting_timeout
    clock.mine_at(proposed + voting_timeout + 1)  # commit deadline passed: revealing
    assert stall_now(chain, e, clock) is None
    clock.mine_at(proposed + voting_timeout + 300)
    stall = stall_now(chain, e, clock)
    assert stall is not None and stall.phase == "revealing" and stall.since == e.deadline()
    assert "round 0's reveal deadline passed with 0 of 2 votes" in stall.line()


def test_a_running_experiment_shows_no_stall_and_metadata_is_named_when_not_fetched(
        chain: Web3, make: Make, clock: Clock) -> None:
    e = make(n=3, rounds=2)
    e.propose(0)
    h = history(chain, e)
    report = audit_history(h)
    console = Console(record=True, width=300)
    print_report(report, console, find_stall(h, clock.latest()))
    text = console.export_text()
    assert "stalled" not in text and "audit passed: every check holds\n" in text
    assert "metadata: metadata CID bafy-metadata (not fetched: no --store)" in text
    shown = Metadata(cid="bafy-x", content={"task": "digits"})
    assert '"task": "digits"' in html.unescape(render_html(report, None, shown))


def test_durations_read_at_a_glance() -> None:
    assert [duration(s) for s in (0, 59, 61, 3600, 3 * 86400 + 7200)] == [
        "0 s", "59 s", "1 min 1 s", "1 h 0 min", "3 d 2 h"]


def test_the_audit_plot_is_labelled_from_the_metadata(
        chain: Web3, make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    """The vote score's name and direction are in no event: the metadata says them; without
    it the label says the direction is unknown."""
    from agents.audit import report as report_module

    e = make(n=3, rounds=2)
    e.propose(0)
    e.cast(0, [True, False])
    h = history(chain, e)
    figures: list[Any] = []
    monkeypatch.setattr(report_module, "_png", lambda fig, plt: figures.append(fig) or b"")
    loss = Metadata(cid="bafy-x", content={"vote_score": {"name": "cross-entropy",
                                                          "lower_is_better": True}})
    report_module.scores_png(h, loss)
    report_module.scores_png(h, None)
    report_module.votes_png(h)
    (ax_loss,), (ax_unknown,), (ax_grid,) = (f.axes[:1] for f in figures)
    assert ax_loss.get_ylabel() == "vote cross-entropy (nats; lower is better)"
    assert ax_unknown.get_ylabel() == "vote score (learner-defined; direction not on chain)"
    for ax in (ax_loss, ax_unknown, ax_grid):
        assert ax.get_xlabel() == "training round (number, from 0)"
    assert ax_grid.get_ylabel() == "learner (index in the experiment)"

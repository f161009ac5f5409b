"""``colearn explorer`` end to end: anvil, an experiment under way, the explorer, and a real
headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by Selenium).

The browser test fails, never skips, when Chromium is missing: CI must run it (``make
test`` installs it). Deselect it locally with ``-k 'not browser'``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import started
from eth_account.signers.local import LocalAccount

from agents.audit.explorer import Explorer, ExplorerServer
from agents.chain.client import CollectiveLearningClient
from agents.chain.network import connect, derive_accounts, fund_accounts
from agents.chain.signing import VoteOpening, sign_vote, vote_commitment
from agents.chain.types import ExperimentOptions, score_to_fixed
from agents.devtools.anvil import AnvilProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1400,1900")
N_LEARNERS, N_ROUNDS = 3, 4

pytestmark = pytest.mark.anvil


class Run:
    """An experiment on anvil that the test moves forward round by round."""

    def __init__(self, url: str, options: ExperimentOptions | None = None,
                 metadata: str = "bafy-metadata", store: Any = None):
        self.store = store  # a weight store: the initial model and proposals are real weights
        self.w3 = connect(url)
        *self.learners, self.relayer = derive_accounts(N_LEARNERS + 1, 0, label="explorer-test")
        fund_accounts(self.w3, [a.address for a in (*self.learners, self.relayer)])
        self.client, _ = CollectiveLearningClient.deploy(self.w3, self.relayer)
        self.options = options or ExperimentOptions()
        self.id, _ = self.client.create_experiment(
            [a.address for a in self.learners], 5000, N_ROUNDS, 600, 600,
            *self.weights(-1, "bafy-initial", b"\x01" * 32), metadata, options=self.options)
        for learner in self.learners:
            self.by(learner).join(self.id)
        self.round = 0

    def by(self, account: LocalAccount) -> CollectiveLearningClient:
        return self.client.with_account(account)

    def weights(self, r: int, cid: str, digest: bytes) -> tuple[str, bytes]:
        """Round ``r``'s proposal (-1: the initial model): ``cid`` and ``digest``, or with a
        store, small real weights put there."""
        if self.store is None:
            return cid, digest
        import hashlib

        import numpy as np

        from colearn_core.codec import encode_weights

        data = encode_weights({"w": np.full(3, r, np.float32)})
        return self.store.put(data), hashlib.sha256(data).digest()

    def play(self, approvals: int, relayed: bool = False) -> None:
        """One round: the scheduled proposal, then every vote (``approvals`` approve),
        direct or in one relayed batch of signed votes."""
        r = self.round
        proposer = self.learners[r % N_LEARNERS]
        cid, digest = self.weights(r, f"bafy-round-{r}", bytes([r + 2]) * 32)
        self.by(proposer).propose(self.id, r, cid, digest)
        voters = [a for a in self.learners if a is not proposer]
        ballot = [(a, i < approvals, score_to_fixed(0.3 + 0.1 * i + 0.05 * r))
                  for i, a in enumerate(voters)]
        if self.options.sealed:  # commit every vote, then reveal each (the last decides)
            openings = [(a, VoteOpening(approve=ok, score=score, salt=bytes([r, i]) * 16))
                        for i, (a, ok, score) in enumerate(ballot)]
            for a, o in openings:
                self.by(a).commit_vote(self.id, r, vote_commitment(self.id, r, a.address,
                                                                   digest, o))
            for a, o in openings:
                self.by(a).reveal_vote(self.id, r, o)
        elif relayed:
            self.client.cast_votes_by_sig(self.id, r, digest,
                                          [a.address for a in self.learners], [
                sign_vote(a, chain_id=self.client.chain_id, contract=self.client.address,
                          experiment_id=self.id, round_index=r,
                          learner_index=self.learners.index(a), digest=digest, approve=ok,
                          score=score)
                for a, ok, score in ballot])
        else:
            for a, ok, score in ballot:
                self.by(a).vote(self.id, r, digest, ok, score)
        self.round += 1


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    with started(AnvilProcess, "anvil", "anvil") as anvil:
        yield anvil.url


@pytest.fixture
def run(anvil_url: str) -> Run:
    return Run(anvil_url)


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = response.read()
            kind = response.headers["Content-Type"]
            return response.status, json.loads(body) if "json" in kind else body
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:  # fail outside the except: no chained traceback
        pytest.fail(f"cannot run the browser test: {', '.join(missing)} missing. Install "
                    "Debian's chromium and chromium-driver (`make test` does it).",
                    pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    service = Service(executable_path=str(CHROMEDRIVER),
                      log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Polls ``condition`` until it is true (an element the page redrew meanwhile: again)."""
    import time

    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_the_explorer_in_a_headless_browser(run: Run, browser: Any,
                                            screenshot: Callable[[Any, str], Path]) -> None:
    from selenium.webdriver.common.by import By

    run.play(approvals=2)  # accepted, direct votes
    run.play(approvals=0, relayed=True)  # rejected, one relayed batch
    with ExplorerServer(Explorer(run.client, poll=0.5)) as server:
        browser.get(server.url)
        rows = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR,
                                                      "#experiments tr.experiment"),
                        "the experiment list")
        assert len(rows) == 1
        assert "2 / 4" in rows[0].text and "passes" in rows[0].text

        rows[0].find_element(By.TAG_NAME, "a").click()
        wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#rounds tr.round")) == 2,
                 "the round table")
        text = browser.find_element(By.ID, "rounds").text
        assert "accepted" in text and "rejected" in text and "castVotesBySig" in text
        assert "Started at" in browser.find_element(By.ID, "joining").text
        assert len(browser.find_elements(By.CSS_SELECTOR, "#joins tbody tr")) == N_LEARNERS
        assert "Audit passes" in browser.find_element(By.ID, "audit").text
        cells = browser.find_elements(By.CSS_SELECTOR, "#vote-grid td.cell")
        assert len(cells) == N_LEARNERS * 2
        assert {c.get_attribute("class") for c in cells} == {
            "cell v2", "cell v1", "cell v4", "cell v3"}  # approve, reject, the two proposers
        wait_for(lambda: browser.execute_script(
            "const img = document.getElementById('scores-plot');"
            "return img.complete && img.naturalWidth > 0;"), "the score plot")

        # Links go to the explorer's own JSON views of the transaction and the block.
        link = browser.find_element(By.CSS_SELECTOR, "#rounds a.tx-link")
        status, tx = get(link.get_attribute("href"))
        assert status == 200 and tx["events"][0]["event"] == "WeightsProposed"
        assert tx["function"] == "propose"
        block = browser.find_element(By.CSS_SELECTOR, "#rounds a.block-link")
        status, data = get(block.get_attribute("href"))
        assert status == 200 and data["number"] == int(block.text)

        # A new round lands: the page shows it without a reload.
        run.play(approvals=1)
        wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#rounds tr.round")) == 3,
                 "the new round")
        wait_for(lambda: "3 of 4 rounds closed" in
                 browser.find_element(By.ID, "experiment-title").text, "the title")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#vote-grid td.cell")) == 3 * 3
        wait_for(lambda: browser.execute_script(
            "const img = document.getElementById('scores-plot');"
            "return img.complete && img.naturalWidth > 0 && img.src.includes('-3');"),
            "the redrawn score plot")
        screenshot(browser, "explorer")


def test_the_json_api_is_read_only_and_self_contained(run: Run) -> None:
    run.play(approvals=2)
    explorer = Explorer(run.client, explorer_url="https://etherscan.io/", poll=0.2)
    with ExplorerServer(explorer) as server:
        status, info = get(server.url + "api/info")
        assert status == 200 and info["explorer_url"] == "https://etherscan.io"
        assert info["contract"] == run.client.address
        status, page = get(server.url)
        assert status == 200 and b"<script>" in page
        assert b"src=\"http" not in page and b"href=\"http" not in page  # no external assets
        status, experiments = get(server.url + "api/experiments")
        assert [e["id"] for e in experiments] == [run.id]
        status, x = get(server.url + f"api/experiments/{run.id}")
        assert x["closed_rounds"] == 1 and x["ok"] and x["grid"]["values"][0] == [4]
        status, png = get(server.url + f"api/experiments/{run.id}/votes.png")
        assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
        assert get(server.url + "api/experiments/99")[0] == 404
        assert get(server.url + "nothing-here")[0] == 404
        request = urllib.request.Request(server.url + "api/info", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 405


def test_the_explorer_command(run: Run, anvil_url: str) -> None:
    created = run.client.experiment_created(run.id).block_number
    process = subprocess.Popen(
        [sys.executable, "-m", "agents.cli", "explorer", "--rpc", anvil_url, "--contract",
         run.client.address, "--port", "0", "--from-block", str(created)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        status, experiments = get(url + "api/experiments")
        assert status == 200 and experiments[0]["state"] == "proposing"
        status, detail = get(url + f"api/experiments/{run.id}")
        assert status == 200 and detail["created_block"] == created and detail["ok"]
    finally:
        process.terminate()
        process.wait(timeout=10)

    bad = subprocess.run([sys.executable, "-m", "agents.cli", "explorer", "--rpc",
                          "http://127.0.0.1:9", "--contract", run.client.address],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 1 and "cannot reach the chain" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_a_sealed_staked_experiment_shows_its_terms_and_money(anvil_url: str,
                                                              browser: Any) -> None:
    from selenium.webdriver.common.by import By

    options = ExperimentOptions(reveal_timeout=300, stake=10**18, reward_pool=3 * 10**18 + 1,
                                rejected_proposal_penalty=10**17, rejection_share_bps=10_000,
                                proposer_share_bps=4000)
    run = Run(anvil_url, options)
    run.play(approvals=2)  # accepted
    run.play(approvals=0)  # rejected by every voter: the proposer pays
    with ExplorerServer(Explorer(run.client, poll=0.2)) as server:
        status, x = get(server.url + f"api/experiments/{run.id}")
        assert status == 200 and x["ok"], x["violations"]
        c = x["config"]
        assert c["sealed"] and c["staked"] and c["options"]["stake"] == str(10**18)
        assert [r["commits"] for r in x["rounds"][:2]] == [2, 2]
        (penalty,) = x["rounds"][1]["penalties"]
        assert penalty["reason"] == "rejected_proposal" and penalty["amount"] == str(10**17)
        money = x["money"]
        assert money["pool"] == str(3 * 10**18 + 1 + 10**17) and money["finished"] is None
        assert money["proposer_shares"] == 1 and money["voter_shares"] == 4
        accounts = {a["address"]: a for a in money["accounts"]}
        first = accounts[run.learners[0].address]
        assert first["proposer_shares"] == 1 and first["voter_shares"] == 1
        assert accounts[run.learners[1].address]["penalties"] == str(10**17)

        browser.get(server.url + f"#experiment={run.id}")
        wait_for(lambda: browser.find_element(By.ID, "money").is_displayed(), "the money")
        rows = browser.find_elements(By.CSS_SELECTOR, "#accounts tbody tr")
        assert len(rows) == N_LEARNERS + 1  # the creator (the relayer) is not a learner
        assert "rejected proposal" in browser.find_element(By.ID, "rounds").text
        config = browser.find_element(By.ID, "config").text
        assert "sealed" in config and "ETH (wei)" in config and "4000 bps" in config


# ------------------------------------------- at a glance: plots first, metadata, a stall

METADATA = {"task": "digits", "description": "digits split among three learners",
            "vote_score": {"name": "cross-entropy", "lower_is_better": True}}


def _top(browser: Any, element_id: str) -> float:
    return float(browser.execute_script(
        f"return document.getElementById('{element_id}').getBoundingClientRect().top;"))


def _plot_loaded(browser: Any, selector: str) -> bool:
    return bool(browser.execute_script(
        f"const img = document.querySelector({json.dumps(selector)});"
        "return img !== null && img.complete && img.naturalWidth > 0 && "
        "img.getBoundingClientRect().height > 0;"))


@pytest.fixture
def stalled(anvil_url: str, tmp_path: Path) -> tuple[Run, str, str, str]:
    """Two rounds played, round 2 proposed with one vote, then the chain's clock moved past
    its voting deadline with nobody deciding; the metadata in a file store. Returns the
    run, the store's URL and the stall's expected reason."""
    from conftest import Clock

    from agents.storage.store import FileWeightStore

    store = FileWeightStore(tmp_path / "store")
    cid = store.put(json.dumps(METADATA, sort_keys=True).encode())
    run = Run(anvil_url, metadata=cid, store=store)
    run.play(approvals=2)
    run.play(approvals=1)
    proposal, digest = run.weights(2, "", b"")
    run.by(run.learners[2]).propose(run.id, 2, proposal, digest)
    run.by(run.learners[0]).vote(run.id, 2, digest, True, score_to_fixed(0.42))
    clock = Clock(run.w3)
    clock.mine_at(run.client.deadline(run.id) + 3600)
    return run, f"file:{tmp_path / 'store'}", ("round 2's voting deadline passed with 1 of 2 "
                                                "votes counted and nobody called decide()"), \
        anvil_url


def test_the_explorer_reads_at_a_glance(stalled: tuple[Run, str, str, str], browser: Any,
                                        screenshot: Callable[[Any, str], Path]) -> None:
    """Plots first, above the long round table; the metadata's content; the stall, with
    since when and why; the list marks the experiment stalled."""
    from selenium.webdriver.common.by import By

    from agents.storage.store import open_store

    run, store_url, reason, _ = stalled
    explorer = Explorer(run.client, poll=0.5, store=open_store(store_url))
    with ExplorerServer(explorer) as server:
        status, x = get(server.url + f"api/experiments/{run.id}")
        assert status == 200 and x["ok"] and reason in x["stalled"]["line"]
        assert x["metadata"]["content"] == METADATA and x["metadata"]["note"] is None

        browser.get(server.url)
        row = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#experiments tr.experiment"),
                       "the experiment list")[0]
        assert "stalled since" in row.text
        browser.get(server.url + f"#experiment={run.id}")
        wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#rounds tr.round")) == 3,
                 "the round table")
        banner = browser.find_element(By.ID, "stalled")
        assert banner.is_displayed() and "Stalled: stalled since" in banner.text
        assert reason in banner.text and "decide()" in banner.text
        assert "Audit passes" in browser.find_element(By.ID, "audit").text  # no violation
        wait_for(lambda: _plot_loaded(browser, "#scores-plot"), "the score plot")
        # The plots come first: above the configuration and the long round table, in the
        # first screen (the window is 1900 px high).
        assert _top(browser, "scores-plot") < _top(browser, "vote-grid") \
            < _top(browser, "config") < _top(browser, "rounds")
        assert _top(browser, "scores-plot") < 700
        metadata = browser.find_element(By.ID, "metadata")
        assert json.loads(metadata.text) == METADATA  # the content, not only the CID
        screenshot(browser, "explorer-stalled")

    # Without a store, the page names the CID and says why the content is not shown.
    with ExplorerServer(Explorer(run.client, poll=0.5)) as server:
        browser.get(server.url + f"#experiment={run.id}")
        text = wait_for(lambda: [e.text for e in browser.find_elements(By.ID, "metadata")],
                        "the metadata")[0]
        assert text == f"metadata CID {run_metadata_cid(run)} (not fetched: no --store)"


def run_metadata_cid(run: Run) -> str:
    from agents.audit.reader import read_history

    return read_history(run.client, run.id).config.metadata_cid


def test_the_audit_html_reads_at_a_glance(stalled: tuple[Run, str, str, str], browser: Any,
                                          tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          screenshot: Callable[[Any, str], Path]) -> None:
    """``colearn audit --html`` of the stalled experiment: exit status 0 (no rule broken),
    the stall in the terminal, and an HTML page with the verdict, the stall banner, the
    plots before the configuration and the rounds, and the metadata's content."""
    from selenium.webdriver.common.by import By

    from agents.cli.main import main

    run, store_url, reason, url = stalled
    page = tmp_path / "audit.html"
    code = main(["audit", "--rpc", url, "--contract", run.client.address, "--experiment",
                 str(run.id), "--store", store_url, "--html", str(page)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "stalled since" in out and reason in out and "audit passed" in out
    assert '"task": "digits"' in out  # the metadata's content, on one line

    browser.get(page.as_uri())
    verdict = browser.find_element(By.ID, "verdict")
    assert "Audit passed" in verdict.text
    banner = browser.find_element(By.ID, "stalled")
    assert banner.is_displayed() and reason in banner.text
    assert _top(browser, "verdict") < _top(browser, "stalled") < _top(browser, "plots") \
        < _top(browser, "config") < _top(browser, "rounds")
    plots = browser.find_elements(By.CSS_SELECTOR, "#plots img.plot")
    assert len(plots) == 2
    wait_for(lambda: all(_plot_loaded(browser, f"#plots img:nth-of-type({i})") for i in (1, 2)),
             "both plots")
    assert _top(browser, "plots") < 700  # in the first screen
    assert json.loads(browser.find_element(By.ID, "metadata").text) == METADATA
    screenshot(browser, "audit-stalled")

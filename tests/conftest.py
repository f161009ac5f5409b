"""Shared fixtures: a dev chain (in-process eth-tester, or anvil), funded learner accounts,
the deployed contract, and helpers to place blocks at exact timestamps.

Every test that asks for ``chain`` runs twice, once per chain. Each chain is set up once
per session (accounts funded, contract deployed) and every test starts from a snapshot
of that state, reverted afterwards, so tests are independent and fast.

The anvil tests need ``node_modules/.bin/anvil`` (``npm ci``). Without it they fail (an
error at set-up naming ``npm ci``), they are never skipped:
CI must run them. Deselect them locally with ``-m "not anvil"``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from experiments import (
    INITIAL_CID,
    JOIN_TIMEOUT,
    PROPOSAL_TIMEOUT,
    VOTING_TIMEOUT,
    Exp,
    Make,
    digest,
)
from web3 import Web3

from agents.chain.client import PLAIN, CollectiveLearningClient
from agents.chain.network import connect, derive_accounts, fund_accounts, is_in_process
from agents.chain.types import ExperimentOptions
from agents.devtools.anvil import AnvilProcess
from agents.devtools.ipfs import JsIpfsDaemon
from agents.devtools.process import DevProcessError, ManagedProcess

NUM_LEARNERS = 6
SLOW_ENV = "COLEARN_TESTS_SLOW"  # set by ``pytest --slow``
ACCOUNT_LABEL = "colearn-tests"

CHAINS = [
    pytest.param("eth-tester", id="eth-tester"),
    pytest.param("anvil", id="anvil", marks=pytest.mark.anvil),
]

GAS_KEY = pytest.StashKey[dict[str, dict[str, int]]]()
#: Screenshots the browser tests took ("test id: path"), listed at the end of the run.
SCREENSHOTS_KEY = pytest.StashKey[list[str]]()


@dataclass
class ChainEnv:
    """One chain, set up once per session."""

    kind: str
    w3: Web3
    deployer: LocalAccount
    learners: list[LocalAccount]
    outsider: LocalAccount
    contract_address: str


@contextmanager
def started(make: Callable[[], ManagedProcess], what: str,
            marker: str) -> Iterator[ManagedProcess]:
    """Runs the dev service ``make()`` builds for the block; if it cannot start (binary
    missing included), the test fails (never skips) with one clear line, since CI must
    run these tests."""
    try:
        service = make()
        service.start()
    except DevProcessError as exc:
        problem = str(exc)
    else:
        problem = ""
    if problem:  # fail outside the except block, without the chained traceback
        pytest.fail(f"cannot run the {what} tests: {problem}\n"
                    f"They are required in CI; deselect them locally with -m 'not {marker}'.",
                    pytrace=False)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def anvil_process() -> Iterator[AnvilProcess]:
    with started(AnvilProcess, "anvil", "anvil") as anvil:
        yield anvil


@pytest.fixture(scope="session")
def ipfs_daemon() -> Iterator[JsIpfsDaemon]:
    with started(JsIpfsDaemon, "IPFS", "ipfs") as daemon:
        yield daemon


@pytest.fixture(scope="session", params=CHAINS)
def chain_env(request: pytest.FixtureRequest) -> ChainEnv:
    kind: str = request.param
    if kind == "anvil":
        w3 = connect(request.getfixturevalue("anvil_process").url)
    else:
        w3 = connect(None)
    deployer, *learners, outsider = derive_accounts(NUM_LEARNERS + 2, seed=0, label=ACCOUNT_LABEL)
    fund_accounts(w3, [a.address for a in (deployer, *learners, outsider)])
    client, _ = CollectiveLearningClient.deploy(w3, deployer)
    return ChainEnv(kind, w3, deployer, learners, outsider, client.address)


@pytest.fixture
def chain(chain_env: ChainEnv) -> Iterator[Web3]:
    """A connected Web3 with the accounts funded and the contract deployed; the chain's
    state is reverted after the test."""
    w3 = chain_env.w3
    if is_in_process(w3):
        tester = w3.provider.ethereum_tester
        snapshot = tester.take_snapshot()
        yield w3
        tester.revert_to_snapshot(snapshot)
    else:
        snapshot = _rpc(w3, "evm_snapshot")
        yield w3
        assert _rpc(w3, "evm_revert", snapshot) is True, "anvil could not revert to the snapshot"


@pytest.fixture
def chain_kind(chain_env: ChainEnv, chain: Web3) -> str:
    return chain_env.kind


@pytest.fixture
def learners(chain_env: ChainEnv, chain: Web3) -> list[LocalAccount]:
    """Six funded deterministic accounts (``derive_accounts``), in learner order."""
    return chain_env.learners


@pytest.fixture
def outsider(chain_env: ChainEnv, chain: Web3) -> LocalAccount:
    """A funded account that is a learner in no experiment."""
    return chain_env.outsider


@pytest.fixture
def deployer(chain_env: ChainEnv, chain: Web3) -> LocalAccount:
    return chain_env.deployer


@pytest.fixture
def contract(chain_env: ChainEnv, chain: Web3) -> CollectiveLearningClient:
    """The contract deployed at session start (no experiments yet), as the deployer."""
    return CollectiveLearningClient(chain, chain_env.contract_address, chain_env.deployer)


@pytest.fixture
def deploy(chain_env: ChainEnv, chain: Web3) -> Callable[..., CollectiveLearningClient]:
    """Deploys a fresh contract: ``deploy(account=deployer) -> client``."""

    def _deploy(account: LocalAccount | None = None) -> CollectiveLearningClient:
        client, _ = CollectiveLearningClient.deploy(chain, account or chain_env.deployer)
        return client

    return _deploy


@pytest.fixture(scope="session")
def gas_figures(request: pytest.FixtureRequest) -> dict[str, dict[str, int]]:
    """Gas used per operation, per chain; printed at the end of the run."""
    return request.config.stash.setdefault(GAS_KEY, {})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", default=False,
                     help="run property-based tests with many more examples")


# Every test module's level (a marker: ``-m unit``, ``-m "not system"``...), from the
# smallest scope to the whole product. A module missing here is a collection error.
LEVELS: dict[str, tuple[str, ...]] = {
    "unit": ("test_agent_mli_factory", "test_cid", "test_codec", "test_colearn_data",
             "test_colearn_plot", "test_colearn_results", "test_colearn_training",
             "test_datasets", "test_digits", "test_dp", "test_examples",
             "test_fraud_dataset", "test_help", "test_keras_compat", "test_keras_learner",
             "test_mli_factory", "test_pytorch_compat", "test_pytorch_learner",
             "test_pytorch_mnist_example", "test_pytorch_onnx", "test_pytorch_weights",
             "test_skew_options",
             "test_sklearn_learners", "test_splits", "test_standalone_driver",
             "test_template", "test_weight_store", "test_weights_bench", "test_xgboost_learner"),
    "contract": ("test_artifact", "test_contract", "test_contract_stateful",
                 "test_gas_bench", "test_hardhat", "test_joining", "test_sealed_votes",
                 "test_signed_calls", "test_stake"),
    "agents": ("test_agent_retries", "test_agents", "test_audit", "test_audit_hostile",
               "test_colearn_compat", "test_colearn_ml_interface", "test_explorer",
               "test_follow", "test_hostile_node", "test_ipfs_store", "test_logs",
               "test_onchain", "test_opaque_weights", "test_parity", "test_relay",
               "test_relay_agents", "test_relay_hostile", "test_results", "test_stall", "test_status",
               "test_training"),
    "system": ("test_account_fund", "test_bench", "test_cli", "test_colearn_examples",
               "test_compile_check", "test_demo", "test_dev_command", "test_faults",
               "test_find_anvil", "test_hostile_peers", "test_learner_processes",
               "test_learning_bench", "test_memory_bench", "test_model_get", "test_opaque_learner_processes",
               "test_process_cleanup", "test_walkthrough", "test_wheel"),
}
_LEVEL_OF = {module: level for level, modules in LEVELS.items() for module in modules}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        level = _LEVEL_OF.get(item.path.stem)
        if level is None:
            raise pytest.UsageError(f"{item.path.name} has no test level: add it to LEVELS "
                                    "in tests/conftest.py")
        item.add_marker(level)


def pytest_configure(config: pytest.Config) -> None:
    # Read by test modules at import time (Hypothesis settings are fixed when a test
    # class is defined), so it is passed through the environment.
    if config.getoption("--slow"):
        os.environ[SLOW_ENV] = "1"


def pytest_sessionfinish(session: pytest.Session) -> None:
    # An xdist worker hands its gas figures to the controller, which prints them all.
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["gas_figures"] = json.dumps(session.config.stash.get(GAS_KEY, {}))
        output["screenshots"] = json.dumps(session.config.stash.get(SCREENSHOTS_KEY, []))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    figures = node.config.stash.setdefault(GAS_KEY, {})
    for kind, ops in json.loads(node.workeroutput.get("gas_figures", "{}")).items():
        figures.setdefault(kind, {}).update(ops)
    node.config.stash.setdefault(SCREENSHOTS_KEY, []).extend(
        json.loads(node.workeroutput.get("screenshots", "[]")))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    shots = config.stash.get(SCREENSHOTS_KEY, [])
    if shots:
        terminalreporter.section("screenshots (headless Chromium)")
        for line in shots:
            terminalreporter.write_line(line)
    figures = config.stash.get(GAS_KEY, {})
    if not figures:
        return
    terminalreporter.section("gas used")
    for kind, ops in sorted(figures.items()):
        rendered = ", ".join(f"{op} {gas:,}" for op, gas in ops.items())
        terminalreporter.write_line(f"{kind}: {rendered}")


@pytest.fixture
def screenshot(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Any, str], Path]:
    """``screenshot(driver, name)`` saves the browser's page as ``tmp_path/name.png`` and
    reports its path: a ``screenshot`` property of the test (JUnit XML) and a line in the
    run's terminal summary, with or without ``-s``."""

    def take(driver: Any, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        assert driver.save_screenshot(str(path)), f"no screenshot of {name}"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        request.node.user_properties.append(("screenshot", str(path)))
        request.config.stash.setdefault(SCREENSHOTS_KEY, []).append(
            f"{request.node.nodeid}: {path}")
        return path

    return take


# --------------------------------------------------------------------------- time


def _rpc(w3: Web3, method: str, *params: Any) -> Any:
    response = w3.provider.make_request(method, list(params))
    if "error" in response:
        raise RuntimeError(f"{method} failed: {response['error']}")
    return response["result"]


class Clock:
    """Places blocks at exact timestamps on either chain.

    Views (``state``, ``voteOf``...) are evaluated at the latest block; a transaction runs
    at its own block's timestamp. eth-tester estimates gas on the pending block, anvil on
    the latest one: a transaction whose block crosses a deadline the latest block has not
    crossed is mined and reverts on anvil, and the client replays it to name the error.
    """

    def __init__(self, w3: Web3):
        self.w3 = w3

    def latest(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def block_time(self, block_number: int) -> int:
        return int(self.w3.eth.get_block(block_number)["timestamp"])

    def mine_at(self, timestamp: int) -> None:
        """Mines an empty block with exactly ``timestamp`` (views then see that time)."""
        self.next_at(timestamp)
        if is_in_process(self.w3):
            self.w3.provider.ethereum_tester.mine_blocks()
        else:
            _rpc(self.w3, "evm_mine")
        assert self.latest() == timestamp

    def last_second_before(self, deadline: int) -> None:
        """Views see ``deadline - 2``; the next transaction lands at ``deadline - 1``, the
        last second a phase is open."""
        self.mine_at(deadline - 2)
        self.next_at(deadline - 1)

    def next_at(self, timestamp: int) -> None:
        """The next transaction's block gets exactly ``timestamp`` (after the latest block)."""
        assert timestamp > self.latest()
        if is_in_process(self.w3):
            backend = self.w3.provider.ethereum_tester.backend
            backend.chain.header = backend.chain.header.copy(timestamp=timestamp)
        else:
            _rpc(self.w3, "evm_setNextBlockTimestamp", timestamp)


@pytest.fixture
def clock(chain: Web3) -> Clock:
    return Clock(chain)


@pytest.fixture
def make(contract: CollectiveLearningClient, learners: list[LocalAccount]) -> Make:
    """``make(n=3, threshold=5000, rounds=3, ...) -> Exp`` creates an experiment and has
    every learner join it (round 0 starts with the last join); ``join=False`` leaves it
    ``Joining``; ``options`` are its v2 terms (sealed votes, stake: each join deposits it)."""
    counter = iter(range(1, 1000))

    def _make(n: int = 3, threshold: int = 5000, rounds: int = 3,
              proposal_timeout: int = PROPOSAL_TIMEOUT, voting_timeout: int = VOTING_TIMEOUT,
              members: list[LocalAccount] | None = None,
              creator: CollectiveLearningClient | None = None,
              metadata: str = "bafy-metadata", join_timeout: int = JOIN_TIMEOUT,
              join: bool = True, options: ExperimentOptions = PLAIN) -> Exp:
        members = list(members if members is not None else learners[:n])
        initial = digest(f"initial-{next(counter)}")
        client = creator or contract
        eid, tx = client.create_experiment([a.address for a in members], threshold, rounds,
                                           proposal_timeout, voting_timeout, INITIAL_CID,
                                           initial, metadata, join_timeout, options=options)
        e = Exp(eid, client, members, initial, tx)
        if join:
            e.join_all()
        return e

    return _make

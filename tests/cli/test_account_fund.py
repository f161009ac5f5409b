"""``colearn account fund`` on a dev chain, its refusals, and the one-line hint naming it
that a command sending from an unfunded account gets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from agents.chain.network import connect
from agents.devtools.anvil import AnvilProcess
from agents.devtools.funding import format_eth, parse_eth

ROOT = Path(__file__).resolve().parents[2]


def colearn(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agents.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "300", **(env or {})})


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("text, wei, shown", [
    ("100", 10**20, "100 ETH"), ("1.5", 15 * 10**17, "1.5 ETH"),
    ("0.000000000000000001", 1, "0.000000000000000001 ETH"), ("1e3", 10**21, "1000 ETH")])
def test_amounts_of_eth(text, wei, shown):
    assert parse_eth(text) == wei
    assert format_eth(wei) == shown


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "abc", "0.0000000000000000001",
                                  "1e10", ""])
def test_bad_amounts_are_refused(text):
    with pytest.raises(ValueError):
        parse_eth(text)


@pytest.mark.anvil
def test_an_unfunded_deployer_is_told_to_fund_then_deploys(anvil_process):
    key = Account.create()
    env = {"COLEARN_PRIVATE_KEY": "0x" + key.key.hex().removeprefix("0x")}
    refused = colearn("deploy", "--rpc", anvil_process.url, env=env)
    assert refused.returncode == 1
    line = one_line_error(refused)
    assert f"account {key.address} has too little ETH" in line
    assert f"colearn account fund --rpc URL --to {key.address}" in line

    funded = colearn("account", "fund", "--rpc", anvil_process.url, "--to", key.address,
                     "--amount", "1.5")
    assert funded.returncode == 0, funded.stderr
    assert funded.stdout.strip() == f"{key.address}: +1.5 ETH, balance 1.5 ETH"
    again = colearn("account", "fund", "--rpc", anvil_process.url, "--to", key.address)
    assert again.stdout.strip() == f"{key.address}: +100 ETH, balance 101.5 ETH"
    assert connect(anvil_process.url).eth.get_balance(key.address) == 101_500 * 10**15

    deployed = colearn("deploy", "--rpc", anvil_process.url, env=env)
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stdout.strip().startswith("0x")


@pytest.mark.anvil
def test_a_chain_that_is_not_a_dev_chain_is_refused():
    address = Account.create().address
    with AnvilProcess(chain_id=11155111) as anvil:  # Sepolia's id
        result = colearn("account", "fund", "--rpc", anvil.url, "--to", address)
        assert connect(anvil.url).eth.get_balance(address) == 0
    assert result.returncode == 1
    assert "chain id 11155111 is not a dev chain" in one_line_error(result)


@pytest.mark.parametrize("args, message", [
    (["--to", "0x123"], "expected an address"),
    (["--to", "0x" + "11" * 20, "--amount", "-3"], "an amount of ETH is above 0"),
    (["--to", "0x" + "11" * 20, "--amount", "lots"], "expected an amount of ETH"),
])
def test_bad_fund_arguments_are_one_line(args, message):
    result = colearn("account", "fund", "--rpc", "http://127.0.0.1:9", *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_chain_is_one_line():
    result = colearn("account", "fund", "--rpc", "http://127.0.0.1:9", "--to", "0x" + "11" * 20)
    assert result.returncode == 1
    assert "cannot reach the chain at http://127.0.0.1:9" in one_line_error(result)

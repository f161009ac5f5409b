"""Test-only ERC-20 tokens (tests/contract/contracts/TestTokens.sol), compiled at test time
with the project's pinned npm solc by tests/audit/contracts/compile.js: never shipped in
agents/artifacts/."""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "contract" / "contracts" / "TestTokens.sol"
COMPILE = ROOT / "tests" / "audit" / "contracts" / "compile.js"


@cache
def compiled(name: str) -> dict[str, Any]:
    """``{"abi", "bytecode"}`` of ``MockToken`` or ``FeeOnTransferToken``."""
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "solc").is_dir():
        pytest.fail(f"cannot compile {SOURCE.name}: node or the npm solc is missing (run `npm ci`)",
                    pytrace=False)
    run = subprocess.run([node, str(COMPILE), str(SOURCE), name], capture_output=True,
                         text=True, timeout=300, check=False, cwd=ROOT)
    assert run.returncode == 0, f"compiling {name} failed:\n{run.stderr}"
    return json.loads(run.stdout)


class Token:
    """A deployed test token, minted and read by one funded account."""

    def __init__(self, w3: Web3, account: LocalAccount, name: str = "MockToken"):
        self.w3, self.account = w3, account
        code = compiled(name)
        receipt = self._send(w3.eth.contract(abi=code["abi"], bytecode=code["bytecode"]).constructor())
        self.address: str = receipt["contractAddress"]
        self.contract = w3.eth.contract(address=self.address, abi=code["abi"])

    def _send(self, fn: Any) -> Any:
        tx = fn.build_transaction({
            "from": self.account.address, "gas": 2_000_000, "chainId": self.w3.eth.chain_id,
            "nonce": self.w3.eth.get_transaction_count(self.account.address, "pending")})
        tx_hash = self.w3.eth.send_raw_transaction(self.account.sign_transaction(tx).raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        assert receipt["status"] == 1
        return receipt

    def mint(self, to: str, amount: int) -> None:
        self._send(self.contract.functions.mint(to, amount))

    def balance_of(self, account: str) -> int:
        return int(self.contract.functions.balanceOf(account).call())

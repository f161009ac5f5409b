"""``colearn dev``'s environment: anvil and a js-ipfs node on 127.0.0.1, funded stakeholder
accounts (keystores sharing one password file, or printed keys), the contract deployed,
and a ready-to-run experiment spec: what a newcomer needs to run an experiment with real
agents as processes.

    with DevEnvironment(DevSettings(out=Path("colearn-dev"))) as env:
        print(env.create_command(), *env.agent_commands())

Everything it starts stops when the ``with`` block ends (on an error or a stop signal too).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shlex
import shutil
from pathlib import Path
from types import TracebackType
from typing import Self

from eth_account import Account
from pydantic import BaseModel, ConfigDict, Field

from agents.chain.keys import create_keystore, load_keystore
from agents.chain.network import dev_keys
from agents.devtools.anvil import AnvilProcess
from agents.devtools.funding import WEI_PER_ETH, fund_dev_account
from agents.devtools.ipfs import JsIpfsDaemon
from agents.devtools.process import DevProcessError
from agents.experiment.template import DEFAULT_FACTORY

log = logging.getLogger(__name__)

#: The ready-made learner factory the spec names: the digits task, split n ways.
SPEC_FILE = "experiment.toml"
PASSWORD_FILE = "password"
STATE_FILE = "dev.json"
#: The printed commands and $RPC, $EVENTS, $ADDR, $STORE, for ``source`` (keystores only).
COMMANDS_FILE = "commands.sh"
#: ETH each stakeholder account gets.
FUNDING_ETH = 100


class DevSettings(BaseModel):
    """What ``colearn dev`` was asked for."""

    model_config = ConfigDict(extra="forbid")

    out: Path
    learners: int = Field(3, ge=2, le=20)
    rounds: int = Field(3, ge=1, le=1000)
    proposal_timeout: int = Field(120, ge=1)
    voting_timeout: int = Field(120, ge=1)
    port: int | None = None  # anvil's; None: a free port
    ipfs_port: int | None = None  # js-ipfs's RPC API; None: a free port
    block_time: float = 1.0
    anvil: Path | None = None
    print_keys: bool = False


class Stakeholder(BaseModel):
    """One learner: its address, and its keystore (or, with ``--print-keys``, its key)."""

    index: int
    address: str
    keystore: Path | None = None
    private_key: str | None = None


class DevState(BaseModel):
    """``dev.json`` in the output directory: where everything is while ``colearn dev`` runs."""

    rpc: str
    events: str
    store: str
    contract: str
    chain_id: int
    spec: Path
    password_file: Path | None
    learners: list[Stakeholder]
    anvil_pid: int
    ipfs_pid: int


class DevEnvironment:
    """Starts anvil and js-ipfs, funds the stakeholders, deploys and writes the spec
    (:meth:`start`); :meth:`stop` stops both services."""

    def __init__(self, settings: DevSettings):
        self.settings = settings
        self.out = settings.out.expanduser().resolve()
        self._stack = contextlib.ExitStack()
        self.anvil: AnvilProcess | None = None
        self.ipfs: JsIpfsDaemon | None = None
        self.state: DevState | None = None

    # --- start / stop -------------------------------------------------------------------

    def start(self) -> Self:
        try:
            # Found before anything starts: a missing binary is said at once.
            anvil = AnvilProcess(self.settings.anvil, port=self.settings.port,
                                 block_time=self.settings.block_time, mixed_mining=True)
            ipfs = JsIpfsDaemon(api_port=self.settings.ipfs_port)
            self.out.mkdir(parents=True, exist_ok=True)
            # The agents' sealed-vote openings of an earlier run: its chain is gone, and the
            # new one repeats its chain id, contract address and experiment ids.
            shutil.rmtree(self.state_dir, ignore_errors=True)
            learners = self._stakeholders()
            self.anvil = self._stack.enter_context(anvil)
            self.ipfs = self._stack.enter_context(ipfs)
            self.state = self._set_up_chain(learners)
            self._write_spec()
            # With print_keys the keys are printed, never written.
            (self.out / STATE_FILE).write_text(self.state.model_dump_json(
                indent=2, exclude={"learners": {"__all__": {"private_key"}}}) + "\n")
            self._write_commands()
            return self
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stops js-ipfs and anvil (in that order). Idempotent."""
        self._stack.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def state_dir(self) -> Path:
        """The agents' ``--state-dir``."""
        return self.out / "state"

    @property
    def running(self) -> bool:
        return (self.anvil is not None and self.anvil.running
                and self.ipfs is not None and self.ipfs.running)

    def check_running(self) -> None:
        """Raises :class:`DevProcessError` if anvil or js-ipfs exited by itself."""
        for service in (self.anvil, self.ipfs):
            if service is not None and not service.running:
                raise DevProcessError(f"{service.name} exited by itself: "
                                      f"{service.output() or '(no output)'}")

    # --- set-up -------------------------------------------------------------------------

    def _stakeholders(self) -> list[Stakeholder]:
        """The learners' accounts: with ``print_keys`` fresh keys; else a keystore each in
        the output directory, kept from an earlier run when there (same password file)."""
        n = self.settings.learners
        if self.settings.print_keys:
            accounts = [Account.create() for _ in range(n)]
            return [Stakeholder(index=i, address=a.address, private_key="0x" + a.key.hex()
                                .removeprefix("0x")) for i, a in enumerate(accounts)]
        password_file = self.out / PASSWORD_FILE
        keystores = [self.out / f"learner{i + 1}.json" for i in range(n)]
        if password_file.exists():
            password = password_file.read_text().rstrip("\n")
        elif any(k.exists() for k in keystores):
            raise DevProcessError(f"{self.out} has keystores but no {PASSWORD_FILE} file: "
                                  "give another --out directory")
        else:
            password = secrets.token_urlsafe(18)
            fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(password + "\n")
        learners = []
        for i, keystore in enumerate(keystores):
            address = (str(load_keystore(keystore, password).address) if keystore.exists()
                       else create_keystore(keystore, password))
            learners.append(Stakeholder(index=i, address=address, keystore=keystore))
        return learners

    def _set_up_chain(self, learners: list[Stakeholder]) -> DevState:
        from agents.chain.client import CollectiveLearningClient
        from agents.chain.network import connect

        assert self.anvil is not None and self.ipfs is not None
        w3 = connect(self.anvil.url)
        for learner in learners:
            fund_dev_account(w3, learner.address, FUNDING_ETH * WEI_PER_ETH)
        # The deployer: anvil's first well-known dev account (funded by anvil itself).
        deployer = Account.from_key(dev_keys(1)[0][1])
        client, tx = CollectiveLearningClient.deploy(w3, deployer)
        log.info("deployed at %s (gas %d)", client.address, tx.gas_used)
        return DevState(
            rpc=self.anvil.url, events=self.anvil.url.replace("http://", "ws://", 1),
            store=self.ipfs.api_url, contract=client.address, chain_id=self.anvil.chain_id,
            spec=self.out / SPEC_FILE,
            password_file=None if self.settings.print_keys else self.out / PASSWORD_FILE,
            learners=learners, anvil_pid=self.anvil.pid or 0, ipfs_pid=self.ipfs.pid or 0)

    def _write_spec(self) -> None:
        """The experiment spec (``colearn experiment init``'s template with these learners
        and settings), checked by loading it back."""
        from agents.experiment.spec import ExperimentSpec
        from agents.experiment.template import spec_template

        assert self.state is not None
        s = self.settings
        self.state.spec.write_text(spec_template(
            [learner.address for learner in self.state.learners], rounds=s.rounds,
            proposal_timeout=s.proposal_timeout, voting_timeout=s.voting_timeout))
        ExperimentSpec.load(self.state.spec)

    def _write_commands(self) -> None:
        """``commands.sh``: what ``source`` needs (bash or zsh) to run the printed commands
        and the README's (``$RPC``, ``$ADDR``, ``$STORE``). Not with ``print_keys``: the
        commands would carry the keys, which are never written."""
        path = self.out / COMMANDS_FILE
        path.unlink(missing_ok=True)  # an earlier run's: its chain is gone
        if self.settings.print_keys:
            return
        assert self.state is not None
        q = shlex.quote
        agents = "".join(f"  {q(command)}\n" for command in self.agent_commands())
        path.write_text(f"""\
# Written by `colearn dev`, valid while it runs: `source {q(str(path))}` sets $RPC,
# $EVENTS, $ADDR (the contract) and $STORE for the README's commands, and the commands
# `colearn dev` printed: $CREATE, one agent per stakeholder in $AGENTS, $AUDIT.
RPC={q(self.state.rpc)}
EVENTS={q(self.state.events)}
ADDR={q(self.state.contract)}
STORE={q(self.state.store)}
CREATE={q(self.create_command())}
AGENTS=(
{agents})
AUDIT={q(self.audit_command())}
""")

    # --- the commands to paste ----------------------------------------------------------

    def _key_args(self, learner: Stakeholder) -> tuple[list[str], str]:
        """The key options of a command signed by ``learner``, and an environment prefix."""
        assert self.state is not None
        if learner.keystore is not None:
            assert self.state.password_file is not None
            return ["--keystore", str(learner.keystore),
                    "--password-file", str(self.state.password_file)], ""
        return [], f"COLEARN_PRIVATE_KEY={learner.private_key} "

    def create_command(self) -> str:
        """``colearn experiment create ...``, signed by the first stakeholder."""
        assert self.state is not None
        keys, env = self._key_args(self.state.learners[0])
        return env + shlex.join([
            "colearn", "experiment", "create", "--rpc", self.state.rpc,
            "--contract", self.state.contract, "--spec", str(self.state.spec),
            "--store", self.state.store, *keys])

    def agent_commands(self, experiment_id: int = 1) -> list[str]:
        """One ``colearn agent ...`` per stakeholder, for experiment ``experiment_id`` (the
        first experiment on a fresh contract is 1)."""
        assert self.state is not None
        commands = []
        for learner in self.state.learners:
            keys, env = self._key_args(learner)
            commands.append(env + shlex.join([
                "colearn", "agent", "--rpc", self.state.rpc, "--events", self.state.events,
                "--contract", self.state.contract, "--experiment", str(experiment_id),
                "--store", self.state.store, "--learner", DEFAULT_FACTORY,
                "--learner-arg", f"index={learner.index}",
                "--learner-arg", f"n_learners={self.settings.learners}",
                "--state-dir", str(self.state_dir), *keys]))
        return commands

    def audit_command(self, experiment_id: int = 1) -> str:
        """``colearn audit ...`` of experiment ``experiment_id``, its weights checked too."""
        assert self.state is not None
        return shlex.join(["colearn", "audit", "--rpc", self.state.rpc,
                           "--contract", self.state.contract,
                           "--experiment", str(experiment_id), "--store", self.state.store])

    def describe(self) -> dict[str, str]:
        """What a person needs to know, for printing."""
        assert self.state is not None
        return {"chain": f"{self.state.rpc} (chain id {self.state.chain_id}; events "
                         f"{self.state.events})",
                "IPFS": f"{self.state.store} (js-ipfs RPC API, 127.0.0.1 only)",
                "contract": self.state.contract,
                "spec": str(self.state.spec),
                "files": str(self.out)}


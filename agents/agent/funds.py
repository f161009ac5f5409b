"""A learner agent's joining and money: the stake checked and deposited at the join (a
join without stake may go through the relay), the balance read, the withdrawal at the end."""

from __future__ import annotations

from agents.agent.base import AgentCore, AgentError
from agents.chain.errors import ChainError, ContractRevert
from agents.chain.signing import sign_join
from agents.relay import RelayError


class Funds(AgentCore):
    """The joining and stake part of a learner agent."""

    def _join(self) -> None:
        """Joins directly, or hands a signed join to the relay (directly if it refuses).
        A join that deposits a stake is always direct (a relayer cannot pay it)."""
        options = self._experiment().options
        if options.stake > 0:
            self._check_funds(options.stake, options.token if not options.in_eth else None)
        if self.relay is not None and options.stake == 0:
            signed = sign_join(self.account, chain_id=self.client.chain_id,
                               contract=self.client.address, experiment_id=self.experiment_id,
                               learner_index=self._learner_index())
            try:
                with self.timings.measure("transactions"):
                    self.relay.submit_join(signed)
                self.log.info("join handed to the relay")
                return
            except RelayError as exc:
                self.log.warning("join not relayed (%s); joining directly", exc)
        with self.timings.measure("transactions"):
            self.client.join(self.experiment_id)

    def _check_funds(self, stake: int, token: str | None) -> None:
        """Raises :class:`AgentError` (one line) if the account cannot pay the stake."""
        held = self.client.balance(self.address, token)
        unit = "wei" if token is None else f"units of token {token}"
        if held < stake:
            raise AgentError(
                f"account {self.address} cannot pay the stake of experiment "
                f"{self.experiment_id}: it holds {held} {unit}, the stake is {stake} {unit}"
                + (" (plus gas)" if token is None else ""))

    def _settle(self) -> None:
        """At the end (completed or cancelled) of a staked experiment: withdraws what it
        owes this learner (once; nothing owed, or withdrawn already, is no error)."""
        options = self._experiment().options
        if not options.staked or self.withdrawn is not None:
            return
        unit = "wei" if options.in_eth else f"units of token {options.token}"
        try:
            owed = self.client.account_of(self.experiment_id, self.address).owed
            with self.timings.measure("transactions"):
                tx = self.client.withdraw(self.experiment_id)
        except ContractRevert as exc:
            if exc.name != "NothingToWithdraw":
                raise
            self.withdrawn = 0
            self._report(f"experiment {self.experiment_id}: nothing to withdraw (withdrawn "
                         "already, or nothing owed)")
            return
        self.withdrawn = self._withdrawn_amount(tx.block_number, owed)
        self._report(f"experiment {self.experiment_id}: withdrew {self.withdrawn} {unit}")

    def _withdrawn_amount(self, block: int, owed: int) -> int:
        """The amount of this account's FundsWithdrawn event in ``block`` (``owed``, as
        read before, if the event cannot be read)."""
        try:
            amount = self.client.withdrawal(self.experiment_id, self.address, block)
        except ChainError:
            return owed
        return owed if amount is None else amount

    def _can_pay(self) -> bool:
        return self.client.balance(self.address) > 0

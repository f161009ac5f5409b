"""What an agent posts to the relay besides the chain's own signed calls: the opening of a
sealed vote, to reveal (an opening authenticates itself: it must hash to the voter's
commitment on chain, so it needs no signature)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from agents.chain.signing import Address, Uint256, VoteOpening


class RevealRequest(BaseModel):
    """A sealed vote's opening for one round of one experiment, with whose it is."""

    model_config = ConfigDict(frozen=True)  # the opening's bytes travel as hex

    chain_id: Uint256
    contract: Address
    experiment_id: Uint256
    round: Uint256
    voter: Address
    learner_index: Uint256
    opening: VoteOpening

"""Hostile peers and stores against real ``colearn agent`` processes on anvil.

Learner 0 is driven by hand from the test: it publishes crafted bytes with their true CID
and sha256 (what any learner can do), or serves its proposal from a store that drips. The
honest agents must vote reject with ``NO_SCORE`` and the reason logged, in time, adopt
nothing they cannot load, and finish the experiment with exit 0, restarts included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from adversaries import HandDrivenPeer
from conftest import started
from consortium import Consortium
from fake_kubo import FakeKubo

from agents.chain.logs import RoundDecided, VoteCast
from agents.chain.types import NO_SCORE, RoundState
from agents.devtools.anvil import AnvilProcess
from colearn_core.codec import encode_weights
from colearn_core.tasks.factories import digits_learner

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

TAG = {"__metadata__": {"format": "colearn-weights/1;dict"}}


def _safetensors(header: object, body: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + body


def _model_weights() -> dict[str, np.ndarray]:
    weights = digits_learner(0, 3, 0).mli_get_current_weights().weights
    return {k: np.asarray(v) for k, v in weights.items()}  # the learner's tensors as arrays


# Each crafted payload, and words the honest voters' reason must contain.
def _payloads() -> list[tuple[bytes, str]]:
    weights = _model_weights()
    nan = {k: np.full_like(v, np.nan) for k, v in weights.items()}
    padded = dict(weights, pad=np.zeros(1024 * 1024, np.float32))  # 4 MiB past the model
    return [
        (_safetensors([1, 2, 3]), "JSON list"),
        (_safetensors(7), "JSON int"),
        (_safetensors({**TAG, "w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}},
                      b"\0" * 4), "'BF16'"),
        (_safetensors({**TAG, "w": {"dtype": "F8_E4M3", "shape": [4],
                                    "data_offsets": [0, 4]}}, b"\0" * 4), "'F8_E4M3'"),
        (_safetensors(b"[" * 15_000 + b"]" * 15_000), "nests deeper"),  # within the size
        (encode_weights(padded), "over the limit"),
        (encode_weights(nan), "NaN"),
    ]


@pytest.fixture(scope="module")
def anvil() -> Iterator[AnvilProcess]:
    with started(lambda: AnvilProcess(block_time=1, mixed_mining=True), "anvil",
                 "anvil") as process:
        yield process


@pytest.mark.ipfs
def test_crafted_weights_are_rejected_and_accepted_junk_is_left(anvil, ipfs_daemon, tmp_path):
    """Threshold 0: every crafted payload also becomes the current model. The honest agents
    reject each one by name, keep their last good weights, and finish; an agent started
    on an experiment whose final model is junk starts, says so once, and exits 0."""
    payloads = _payloads()
    hostile_rounds = [3 * k for k in range(len(payloads))]
    rounds = hostile_rounds[-1] + 1  # the last round's (junk) model is the final one
    c = Consortium(anvil.url, ipfs_daemon.api_url, tmp_path, n=3, rounds=rounds,
                   threshold=0.0)
    try:
        peer = HandDrivenPeer(c.client.with_account(c.accounts[0]), c.experiment_id, 0, 3,
                              c.store.put, lambda r: payloads[r // 3][0])
        with peer:
            c.start(1)
            c.start(2)
            c.wait_all(timeout=600)

        for k, (_, words) in enumerate(payloads):
            r = hostile_rounds[k]
            votes = c.client.events(VoteCast, c.experiment_id, r)
            assert sorted((v.approve, v.score) for v in votes) == [(False, NO_SCORE)] * 2, r
            assert c.client.events(RoundDecided, c.experiment_id, r)[0].accepted  # threshold 0
            for i in (1, 2):
                record = next(x for x in c.result(i)["rounds"] if x["round"] == r)
                assert record["approve"] is False and words in record["reason"], record
        # Honest rounds after junk was accepted: proposed from the last good weights and
        # accepted; the agents hold them.
        honest = [d for d in c.client.events(RoundDecided, c.experiment_id) if d.round % 3]
        assert len(honest) == 2 * (len(payloads) - 1) and all(d.accepted for d in honest)
        digest, _ = c.client.current_model(c.experiment_id)
        for i in (1, 2):
            log = c.log(i)
            assert "Traceback" not in log
            assert "cannot adopt the current model" in log
            assert c.result(i)["model_digest"] != "0x" + digest.hex()  # junk is not adopted

        c.start(1)  # a restart on a finished experiment whose final model is junk
        c.wait_all(timeout=120)
        log = c.log(1)
        assert "Traceback" not in log
        assert log.count("cannot adopt the current model") == 1
        assert c.client.state(c.experiment_id) == RoundState.COMPLETED
    finally:
        c.stop()


def test_a_dripping_store_cannot_hold_a_voter_past_the_deadline(anvil, tmp_path):
    """Learner 0's proposal is served one byte every half second: every read is quick, the
    whole never ends. The voters give up in time to vote (reject), so the round is decided
    by their votes, not by its deadline, and the experiment goes on."""
    with FakeKubo(drip_seconds=0.5) as node:
        c = Consortium(anvil.url, node.url, tmp_path, n=3, rounds=2, voting_timeout=30)
        try:
            weights = encode_weights(_model_weights())
            peer = HandDrivenPeer(c.client.with_account(c.accounts[0]), c.experiment_id, 0, 3,
                                  lambda data: node.add(data, drip=True), lambda r: weights)
            with peer:
                c.start(1)
                c.start(2)
                c.wait_all(timeout=300)
            votes = c.client.events(VoteCast, c.experiment_id, 0)
            assert sorted((v.approve, v.score) for v in votes) == [(False, NO_SCORE)] * 2
            decision = c.client.events(RoundDecided, c.experiment_id, 0)[0]
            assert (decision.approvals, decision.rejections) == (0, 2)
            assert c.client.events(RoundDecided, c.experiment_id, 1)[0].accepted
            for i in (1, 2):
                record = next(x for x in c.result(i)["rounds"] if x["round"] == 0)
                assert "not delivered within" in record["reason"], record
        finally:
            c.stop()

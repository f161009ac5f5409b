"""Creating an experiment: its terms and initial weights go to the store, then one
transaction creates it on chain. The one way the CLI, the demos, the benchmarks and the
tests create experiments with real weights.

    launched = launch_experiment(client, store, ExperimentTerms(learners=[...], rounds=10),
                                 learner.mli_get_current_weights().weights)
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from agents.chain.client import CollectiveLearningClient
from agents.chain.types import TxResult
from agents.experiment.spec import ExperimentTerms
from agents.storage.cid import content_digests
from agents.storage.store import WeightStore
from colearn_core.codec import decode_weights, encode_weights
from colearn_core.decision import threshold_to_bps


class LaunchedExperiment(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    experiment_id: int
    initial_cid: str
    initial_digest: bytes
    metadata_cid: str
    tx: TxResult


def launch_experiment(client: CollectiveLearningClient, store: WeightStore,
                      terms: ExperimentTerms, initial: Any) -> LaunchedExperiment:
    """Stores the initial weights (a mapping or sequence of arrays, or the bytes of an
    encoding, checked to decode) and the metadata, then creates the experiment."""
    if isinstance(initial, (bytes, bytearray, memoryview)):
        data = memoryview(initial)
        decode_weights(data)  # refuse anything that is not weights
    else:
        data = encode_weights(initial)
    digests = content_digests(data)
    initial_cid = store.put(data, digests=digests)
    digest = digests.sha256
    metadata_cid = store.put(json.dumps(terms.metadata, sort_keys=True).encode()) \
        if terms.metadata else ""
    experiment_id, tx = client.create_experiment(
        terms.learners, threshold_to_bps(terms.threshold), terms.rounds, terms.proposal_timeout,
        terms.voting_timeout, initial_cid, digest, metadata_cid, terms.join_timeout,
        terms.options)
    return LaunchedExperiment(experiment_id=experiment_id, initial_cid=initial_cid,
                              initial_digest=digest, metadata_cid=metadata_cid, tx=tx)

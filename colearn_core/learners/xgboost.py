"""A gradient-boosted trees learner (XGBoost) whose weights are the model's own bytes.

The weights are XGBoost's native UBJSON model (``Booster.save_raw("ubj")``) as ``bytes``,
loaded with ``Booster.load_model(bytearray)``: no pickle, no files. On chain they travel
as opaque data (:func:`colearn_core.codec.weights_kind`), so this learner checks peers'
bytes itself: a size cap, then a first load **in a child process**. XGBoost 3.2's model
parsers can crash the whole process on malformed bytes (a segmentation fault in the
UBJSON parser, an abort in the JSON one, found by mutating valid models), so bytes are
loaded here only once a child has loaded them and predicted on this learner's data
without dying. Anything wrong is a
:class:`~colearn_core.codec.WeightsMismatchError` naming it, which the agent turns into a
reject vote.

Each proposal adds ``n_steps_per_round`` boosting rounds to the current model; a learner
votes for a proposal whose mean squared error on its vote set is lower than the current
model's (the vote criterion and the test score can be any ``(y_true, y_pred) -> float``).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import os
import select
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import xgboost as xgb

from colearn_core.codec import WeightsMismatchError
from colearn_core.learners._base import Learner, current_model, raw_weights
from colearn_core.ml_interface import ColearnModel, ProposedWeights, Weights

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "reg:squarederror", "max_depth": 5, "colsample_bytree": 0.1,
    "tree_method": "hist", "learning_rate": 0.3}
"""colearn's XGBoost example's parameters (without its ``verbose``, which XGBoost 3
reports as unused)."""

MAX_MODEL_BYTES = 64 * 1024 * 1024
"""Largest model accepted from a peer (a 100-round, depth-5 model is about 300 kB)."""

PROBE_TIMEOUT_SECONDS = 120.0

Metric = Callable[[np.ndarray, np.ndarray], float]


def mean_squared_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean((np.asarray(y_true, np.float64) - y_pred) ** 2))


class XGBoostLearner(Learner):
    """An XGBoost learner over numpy arrays. ``params`` are XGBoost's training parameters
    (default :data:`DEFAULT_PARAMS`); the initial model is ``n_steps_per_round`` rounds on
    this learner's training data (``seed`` fixes XGBoost's sampling)."""

    def __init__(self, train_data: Any, train_labels: Any, vote_data: Any, vote_labels: Any,
                 test_data: Any, test_labels: Any, *, params: dict[str, Any] | None = None,
                 n_steps_per_round: int = 2, seed: int = 0,
                 vote_criterion: Metric = mean_squared_error, minimise_criterion: bool = True,
                 test_criterion: Metric = mean_squared_error,
                 max_model_bytes: int = MAX_MODEL_BYTES) -> None:
        super().__init__(None, None, None, minimise_criterion, None)
        self.params = {**(DEFAULT_PARAMS if params is None else params), "seed": seed}
        self.n_steps_per_round = n_steps_per_round
        self.vote_criterion, self.test_criterion = vote_criterion, test_criterion
        self.max_model_bytes = max_model_bytes
        arrays = [np.ascontiguousarray(a, np.float32)
                  for a in (train_data, vote_data, test_data)]
        self.n_features = arrays[0].shape[1]
        self.train = xgb.DMatrix(arrays[0], label=np.asarray(train_labels))
        self.vote_set = xgb.DMatrix(arrays[1], label=np.asarray(vote_labels))
        self.test_set = xgb.DMatrix(arrays[2], label=np.asarray(test_labels))
        self._probe_data = np.concatenate(arrays)  # what this learner will predict on
        self._probed: set[bytes] = set()  # digests of bytes a child process loaded
        self.model = xgb.train(self.params, self.train, n_steps_per_round)
        self._probed.add(_digest(self._raw()))
        self.vote_score = self._score(self.model, self.vote_set, self.vote_criterion)

    def mli_propose_weights(self) -> Weights:
        booster = self._load(self._raw())  # a copy: training continues it in place
        booster = xgb.train(self.params, self.train, self.n_steps_per_round,
                            xgb_model=booster)
        raw = bytes(booster.save_raw("ubj"))
        self._probed.add(_digest(raw))
        return Weights(weights=raw)

    def mli_test_weights(self, weights: Weights) -> ProposedWeights:
        booster = self.load_weights(raw_weights(weights))
        return self._tested(weights,
                            self._score(booster, self.vote_set, self.vote_criterion),
                            self._score(booster, self.test_set, self.test_criterion))

    def mli_accept_weights(self, weights: Weights) -> None:
        self.model = self.load_weights(raw_weights(weights))
        self.vote_score = self._score(self.model, self.vote_set, self.vote_criterion)

    def mli_get_current_weights(self) -> Weights:
        return Weights(weights=self._raw())

    def mli_get_current_model(self) -> ColearnModel:
        """The current ``xgboost.Booster`` (as ``PICKLE_WEIGHTS_ONLY``: nothing is pickled;
        XGBoost has no ONNX exporter of its own)."""
        return current_model(None, lambda: self._load(self._raw()))

    def load_weights(self, raw: Any) -> xgb.Booster:
        """A booster from weights of this learner's kind, after checking them (see the
        module's docstring); else :class:`WeightsMismatchError`."""
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise WeightsMismatchError(
                f"XGBoost weights are the model's bytes, not a {type(raw).__name__}")
        raw = bytes(raw)
        if len(raw) > self.max_model_bytes:
            raise WeightsMismatchError(f"XGBoost model of {len(raw)} bytes is larger than "
                                       f"{self.max_model_bytes}")
        digest = _digest(raw)
        if digest not in self._probed:
            probe_model(raw, self._probe_data)
            self._probed.add(digest)
        booster = self._load(raw)
        if booster.num_features() != self.n_features:
            raise WeightsMismatchError(f"XGBoost model has {booster.num_features()} features, "
                                       f"this learner's data {self.n_features}")
        return booster

    def _raw(self) -> bytes:
        return bytes(self.model.save_raw("ubj"))

    @staticmethod
    def _load(raw: bytes) -> xgb.Booster:
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(raw))
        except Exception as exc:  # noqa: BLE001 - XGBoostError, or UnicodeDecodeError on it
            raise WeightsMismatchError(f"not an XGBoost model: {_first_line(exc)}") from None
        return booster

    @staticmethod
    def _score(booster: xgb.Booster, data: xgb.DMatrix, metric: Metric) -> float:
        return float(metric(data.get_label(), booster.predict(data)))


def probe_model(raw: bytes, data: np.ndarray, *,
                timeout: float = PROBE_TIMEOUT_SECONDS) -> None:
    """Loads ``raw`` and predicts on ``data`` in a child process (one kept for the
    process's lifetime, replaced when it dies); :class:`WeightsMismatchError` if that
    fails, crashes the child or takes over ``timeout`` seconds."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(data, np.float32), allow_pickle=False)
    reply = _PROBER.ask(struct.pack("<Q", len(raw)) + raw + buffer.getvalue(), timeout)
    if reply != "ok":
        raise WeightsMismatchError(f"not a usable XGBoost model: {reply}")


class Prober:
    """A child process answering probes (by default :func:`_probe_main`; ``command``
    replaces it): a request is its length (8 bytes) and the message, the answer one
    line, ``ok`` or the reason."""

    def __init__(self, command: list[str] | None = None) -> None:
        self._command = command or [sys.executable, "-m", __name__]
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def ask(self, message: bytes, timeout: float) -> str:
        with self._lock:
            child = self._child
            if child is None or child.poll() is not None:
                child = self._child = self._start()
            assert child.stdin is not None and child.stdout is not None
            try:
                child.stdin.write(struct.pack("<Q", len(message)) + message)
                child.stdin.flush()
                ready, _, _ = select.select([child.stdout], [], [], timeout)
                line = child.stdout.readline() if ready else b""
            except OSError:
                line = b""
            if line.endswith(b"\n"):
                return _first_line(line.decode("utf-8", "replace"))
            self._child = None
            if not ready:
                child.kill()
            status = child.wait()
            for pipe in (child.stdin, child.stdout):
                with contextlib.suppress(OSError):
                    pipe.close()
            if not ready:
                return f"loading it took over {timeout:g} s (in a child process)"
            return (f"it crashed the process loading it (signal {-status})" if status < 0
                    else f"the process loading it exited with status {status}")

    def close(self) -> None:
        """Ends the child (its input closes: it exits)."""
        with self._lock:
            child, self._child = self._child, None
        if child is not None:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.close()
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            child.stdout.close()

    def _start(self) -> subprocess.Popen[bytes]:
        # The child imports this module from where the parent found it.
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        return subprocess.Popen(self._command, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONPATH": path})


_PROBER = Prober()
atexit.register(_PROBER.close)


def _probe_main() -> None:
    """The child's side of :func:`probe_model`, until its input closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while len(head := stdin.read(8)) == 8:
        message = stdin.read(struct.unpack("<Q", head)[0])
        stdout.write((_probe(message) + "\n").encode())
        stdout.flush()


def _probe(message: bytes) -> str:
    (size,) = struct.unpack("<Q", message[:8])
    data = np.load(io.BytesIO(message[8 + size:]), allow_pickle=False)
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(message[8:8 + size]))
        if booster.num_features() != data.shape[1]:
            return (f"the model has {booster.num_features()} features, the data "
                    f"{data.shape[1]}")
        predictions = booster.predict(xgb.DMatrix(data))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        return _first_line(exc)
    if predictions.shape[0] != data.shape[0] or not np.isfinite(predictions).all():
        return "its predictions are not one finite number per row"
    return "ok"


def _digest(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


def _first_line(value: Any, limit: int = 200) -> str:
    text = " ".join(str(value[0] if isinstance(value, list) else value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


if __name__ == "__main__":
    _probe_main()

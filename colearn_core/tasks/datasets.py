"""Data sets for the benchmark tasks, as plain numpy arrays (no ML framework).

:func:`load_dataset` returns a :class:`Dataset`: features ``x`` (float32), labels ``y``
(int64, ``0 .. n_classes - 1``), both read-only because loads are cached and shared.

Sources:

* ``digits``, ``breast_cancer``, ``wine``, ``iris``: scikit-learn's bundled copies (no
  download). Digits are scaled to [0, 1] (pixel / 16). The three tabular sets are z-scored
  per feature with the mean and standard deviation of the WHOLE data set. Strictly, that
  lets the held-out rows influence the scaling; here it is agreed public preprocessing
  (every learner could compute it from published statistics), the usual simplification
  in federated-learning benchmarks, and it keeps all learners on one feature scale.
* ``mnist1d``: generated offline by the ``mnist1d`` package's ``make_dataset`` with its
  default arguments except the seed (the package's published copy uses seed 42 and is a
  pickle download, which we never use). Its train and test parts are concatenated.
* ``mnist``: the four standard idx files (plain or gzipped) in ``data_dir``, parsed here
  (magic numbers, sizes, label range and lengths all checked). Train then test.
* ``cifar10``: CIFAR-10's BINARY version (``cifar-10-binary.tar.gz``, extracted), either
  ``data_dir/cifar-10-batches-bin/`` or the ``.bin`` files directly in ``data_dir``.
  The "python version" is a set of pickles and is refused: unpickling runs arbitrary code.

Problems raise :class:`DatasetError` (a ``ValueError``) naming the file and what was
expected; nothing falls back silently.
"""

from __future__ import annotations

import gzip
import logging
import os
import random
import struct
import threading
import zlib
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

DATASETS: tuple[str, ...] = (
    "digits", "breast_cancer", "wine", "iris", "mnist1d", "mnist", "cifar10",
)
FILE_DATASETS: tuple[str, ...] = ("mnist", "cifar10")  # the ones that need ``data_dir``

MNIST_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)
IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
MNIST_SIDE = 28

CIFAR10_BIN_DIR = "cifar-10-batches-bin"
CIFAR10_FILES: tuple[str, ...] = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + (
    "test_batch.bin",
)
CIFAR10_SIDE = 32
CIFAR10_RECORD = 1 + 3 * CIFAR10_SIDE * CIFAR10_SIDE  # label byte + 3072 pixel bytes
CIFAR10_BINARY_HINT = (
    "download CIFAR-10's binary version (cifar-10-binary.tar.gz, 'CIFAR-10 binary version "
    "(suitable for C programs)') and extract it into data_dir"
)


class DatasetError(ValueError):
    """A data set could not be loaded: unknown name, missing or malformed file."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A whole labelled data set: ``x`` float32 (n, ...), ``y`` int64 (n,) in
    ``0 .. n_classes - 1``. The arrays are made read-only on construction."""

    name: str
    x: np.ndarray
    y: np.ndarray
    n_classes: int
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.x, np.ndarray) or self.x.dtype != np.float32:
            raise DatasetError(f"{self.name}: x must be a float32 numpy array")
        if not isinstance(self.y, np.ndarray) or self.y.dtype != np.int64 or self.y.ndim != 1:
            raise DatasetError(f"{self.name}: y must be a 1-D int64 numpy array")
        if self.x.ndim < 2 or self.x.shape[0] != self.y.shape[0]:
            raise DatasetError(
                f"{self.name}: x {self.x.shape} and y {self.y.shape} must have one row per label"
            )
        if isinstance(self.n_classes, bool) or not isinstance(self.n_classes, int) \
                or self.n_classes < 1:
            raise DatasetError(f"{self.name}: n_classes must be a positive int")
        if self.y.size and (self.y.min() < 0 or self.y.max() >= self.n_classes):
            raise DatasetError(f"{self.name}: labels must lie in 0..{self.n_classes - 1}")
        self.x.setflags(write=False)
        self.y.setflags(write=False)

    @property
    def n_samples(self) -> int:
        return int(self.y.shape[0])

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. (64,) for digits or (1, 28, 28) for MNIST."""
        return tuple(self.x.shape[1:])

    def class_counts(self) -> np.ndarray:
        """Number of samples of each class, shape (n_classes,)."""
        return np.bincount(self.y, minlength=self.n_classes)


def load_dataset(
    name: str, data_dir: str | os.PathLike[str] | None = None, *, seed: int = 0
) -> Dataset:
    """Loads data set ``name`` (one of :data:`DATASETS`).

    ``data_dir`` is required for ``mnist`` and ``cifar10`` and ignored otherwise; ``seed``
    only matters for ``mnist1d`` (which is generated). Results are cached: the bundled and
    generated sets by name (and seed), the file sets by path and the files' sizes and
    modification times, so a changed file is read again.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    if name in FILE_DATASETS:
        if data_dir is None:
            raise DatasetError(f"{name} needs data_dir, the directory holding its files")
        directory = Path(data_dir).expanduser().resolve()
        if not directory.is_dir():
            raise DatasetError(f"{name}: data_dir {str(directory)!r} is not a directory")
        if name == "mnist":
            files = _find_mnist_files(directory)
            return _load_mnist_cached(files, _stamp(files))
        files = _find_cifar10_files(directory)
        return _load_cifar10_cached(files, _stamp(files))
    if name == "mnist1d":
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise DatasetError(f"mnist1d: seed must be a non-negative int, got {seed!r}")
        return _load_mnist1d(int(seed))
    return _load_bundled(name)


# --- scikit-learn's bundled sets -------------------------------------------------------


@cache
def _load_bundled(name: str) -> Dataset:
    from sklearn import datasets as skd

    loaders = {
        "digits": skd.load_digits,
        "breast_cancer": skd.load_breast_cancer,
        "wine": skd.load_wine,
        "iris": skd.load_iris,
    }
    bunch = loaders[name]()
    raw = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    n_classes = len(bunch.target_names)
    if name == "digits":
        x = (raw / 16.0).astype(np.float32)
        description = "scikit-learn digits, 8x8 pixels scaled to [0, 1]"
    else:
        mean = raw.mean(axis=0)
        std = raw.std(axis=0)
        # a constant feature would divide by zero; none of these sets has one
        if np.any(std == 0):
            raise DatasetError(f"{name}: a feature is constant, cannot z-score it")
        x = ((raw - mean) / std).astype(np.float32)
        description = (
            f"scikit-learn {name}, features z-scored with data-set-wide mean and std "
            "(agreed public preprocessing)"
        )
    logger.info("loaded %s: x %s, %d classes", name, x.shape, n_classes)
    return Dataset(name, x, y, n_classes, description)


# --- mnist1d ---------------------------------------------------------------------------

_GLOBAL_RNG_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _load_mnist1d(seed: int) -> Dataset:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    # make_dataset seeds and draws from the GLOBAL numpy and random generators: keep
    # other users of those generators unaffected by restoring their states afterwards
    with _GLOBAL_RNG_LOCK:
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            data = make_dataset(args)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)
    y = np.concatenate([data["y"], data["y_test"]]).astype(np.int64)
    logger.info("generated mnist1d (seed %d): x %s", seed, x.shape)
    return Dataset(
        "mnist1d", x, y, 10,
        f"MNIST-1D generated offline (mnist1d.data.make_dataset, default args, seed {seed})",
    )


# --- files -----------------------------------------------------------------------------

_FileStamp = tuple[tuple[int, int], ...]


def _stamp(files: tuple[Path, ...]) -> _FileStamp:
    stamps = []
    for path in files:
        stat = path.stat()
        stamps.append((stat.st_size, stat.st_mtime_ns))
    return tuple(stamps)


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    if path.suffix == ".gz":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{path} is not a valid gzip file: {exc}") from exc
    return raw


# --- MNIST (idx files) -----------------------------------------------------------------


def _find_mnist_files(directory: Path) -> tuple[Path, ...]:
    """The four idx files, plain or gzipped, in ``directory`` or torchvision's
    ``MNIST/raw`` below it (plain preferred when both exist)."""
    places = [directory, directory / "MNIST" / "raw"]
    found = []
    for base in MNIST_FILES:
        candidates = [place / f"{base}{ext}" for place in places for ext in ("", ".gz")]
        match = next((c for c in candidates if c.is_file()), None)
        if match is None:
            raise DatasetError(
                f"mnist: missing {base} (or {base}.gz) in {directory}; expected the four "
                f"standard idx files: {', '.join(MNIST_FILES)}"
            )
        found.append(match)
    return tuple(found)


def _parse_idx_images(path: Path) -> np.ndarray:
    data = _read_bytes(path)
    if len(data) < 16:
        raise DatasetError(f"{path}: truncated, {len(data)} bytes, expected a 16-byte idx header")
    magic, n, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != IDX_IMAGES_MAGIC:
        raise DatasetError(
            f"{path}: magic number {magic:#010x}, expected {IDX_IMAGES_MAGIC:#010x} "
            "(idx images: unsigned bytes, 3 dimensions)"
        )
    if (rows, cols) != (MNIST_SIDE, MNIST_SIDE):
        raise DatasetError(f"{path}: images are {rows}x{cols}, expected 28x28")
    expected = 16 + n * rows * cols
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DatasetError(
            f"{path}: {what}: {len(data)} bytes, expected {expected} for {n} images of 28x28"
        )
    pixels = np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, 1, rows, cols)
    return pixels


def _parse_idx_labels(path: Path) -> np.ndarray:
    data = _read_bytes(path)
    if len(data) < 8:
        raise DatasetError(f"{path}: truncated, {len(data)} bytes, expected an 8-byte idx header")
    magic, n = struct.unpack(">II", data[:8])
    if magic != IDX_LABELS_MAGIC:
        raise DatasetError(
            f"{path}: magic number {magic:#010x}, expected {IDX_LABELS_MAGIC:#010x} "
            "(idx labels: unsigned bytes, 1 dimension)"
        )
    expected = 8 + n
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DatasetError(f"{path}: {what}: {len(data)} bytes, expected {expected} for {n} labels")
    labels = np.frombuffer(data, dtype=np.uint8, offset=8)
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{path}: label {int(labels.max())} out of range, expected 0..9")
    return labels


@lru_cache(maxsize=2)
def _load_mnist_cached(files: tuple[Path, ...], stamp: _FileStamp) -> Dataset:
    del stamp  # part of the cache key only
    train_images, train_labels, test_images, test_labels = files
    parts = []
    for images_path, labels_path in ((train_images, train_labels), (test_images, test_labels)):
        images = _parse_idx_images(images_path)
        labels = _parse_idx_labels(labels_path)
        if len(images) != len(labels):
            raise DatasetError(
                f"mnist: {images_path} has {len(images)} images but {labels_path} has "
                f"{len(labels)} labels; expected one label per image"
            )
        parts.append((images, labels))
    x = np.concatenate([p[0] for p in parts]).astype(np.float32)
    x /= np.float32(255.0)
    y = np.concatenate([p[1] for p in parts]).astype(np.int64)
    logger.info("loaded mnist from %s: x %s", train_images.parent, x.shape)
    return Dataset(
        "mnist", x, y, 10,
        f"MNIST idx files from {train_images.parent}: {len(parts[0][1])} train then "
        f"{len(parts[1][1])} test images, pixels / 255",
    )


# --- CIFAR-10 (binary version) ---------------------------------------------------------


def _find_cifar10_files(directory: Path) -> tuple[Path, ...]:
    for place in (directory / CIFAR10_BIN_DIR, directory):
        if (place / CIFAR10_FILES[0]).is_file():
            missing = [f for f in CIFAR10_FILES if not (place / f).is_file()]
            if missing:
                raise DatasetError(
                    f"cifar10: missing {', '.join(missing)} in {place}; expected "
                    f"{', '.join(CIFAR10_FILES)}"
                )
            return tuple(place / f for f in CIFAR10_FILES)
    # the pickled "python version": recognised only to say what to use instead
    pickled = [
        p for p in (directory / "cifar-10-batches-py", directory / "data_batch_1",
                    directory / "cifar-10-python.tar.gz")
        if p.exists()
    ]
    if pickled:
        raise DatasetError(
            f"cifar10: found CIFAR-10's python version ({pickled[0]}), which is pickled and "
            f"is never unpickled here; {CIFAR10_BINARY_HINT}"
        )
    if (directory / "cifar-10-binary.tar.gz").exists():
        raise DatasetError(
            f"cifar10: {directory / 'cifar-10-binary.tar.gz'} is not extracted; run "
            f"`tar xzf cifar-10-binary.tar.gz` in {directory}"
        )
    raise DatasetError(
        f"cifar10: no {CIFAR10_FILES[0]} in {directory / CIFAR10_BIN_DIR} or {directory}; "
        f"expected {', '.join(CIFAR10_FILES)}; {CIFAR10_BINARY_HINT}"
    )


def _parse_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = _read_bytes(path)
    if len(data) == 0 or len(data) % CIFAR10_RECORD:
        raise DatasetError(
            f"{path}: {len(data)} bytes, expected a positive multiple of {CIFAR10_RECORD} "
            "(records of 1 label byte + 3072 pixel bytes); truncated or not a binary batch"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR10_RECORD)
    labels = records[:, 0]
    if labels.max() > 9:
        raise DatasetError(f"{path}: label {int(labels.max())} out of range, expected 0..9")
    images = records[:, 1:].reshape(-1, 3, CIFAR10_SIDE, CIFAR10_SIDE)
    return images, labels


@lru_cache(maxsize=1)
def _load_cifar10_cached(files: tuple[Path, ...], stamp: _FileStamp) -> Dataset:
    del stamp  # part of the cache key only
    batches = [_parse_cifar10_batch(path) for path in files]
    x = np.concatenate([b[0] for b in batches]).astype(np.float32)
    x /= np.float32(255.0)
    y = np.concatenate([b[1] for b in batches]).astype(np.int64)
    logger.info("loaded cifar10 from %s: x %s", files[0].parent, x.shape)
    return Dataset(
        "cifar10", x, y, 10,
        f"CIFAR-10 binary batches from {files[0].parent}: data_batch_1..5 then test_batch, "
        "pixels / 255, channels first",
    )

"""Small local stand-ins for the data colearn 0.2.8's examples download or read, written in
the formats the examples read, and the runner the example subprocesses start through.

Nothing can be downloaded here (no MNIST, CIFAR-10, Kaggle, X-ray or COVID files), so the
test writes small files of its own, made from scikit-learn's bundled digits (images) and
seeded random numbers (tables), in each dataset's real format: the examples' own loading
code (torchvision's readers, scipy's ``loadmat``, PIL, the fraud preprocessing) reads them.

Three things are not files, and :func:`run` (the subprocesses' entry point) provides them
before it runs the example, each only when the test asks for it through the environment:

- ``STANDIN_TORCHVISION``: the only torchvision 0.28.0 (the release for torch 2.13) this
  machine's registries have is built for CUDA; its C++ operators (``nms``, ``roi_align``...:
  detection, which no example uses) do not load with the CPU torch, and its import then
  fails registering their fake kernels. Those registrations are skipped for operators that
  do not exist; the datasets and transforms the examples use are pure Python, unchanged.

- torchvision checks CIFAR-10's files against the md5 sums of the real ones, so a stand-in
  never passes: ``STANDIN_CIFAR10_MD5`` (JSON, file name -> md5) replaces the sums
  torchvision expects with those of the stand-in files. Its reader is unchanged.
- scikit-learn removed ``load_boston`` in 1.2 (colearn's XGBoost example calls it):
  ``STANDIN_BOSTON_CSV`` names a CSV (13 feature columns, then the target) that
  ``sklearn.datasets.load_boston`` then serves, as a ``Bunch`` with ``data`` and ``target``.

``STANDIN_PACKAGE_PATHS`` (JSON, package -> folder) adds a folder to a package's
``__path__``: colearn's helper learner modules, extracted with their imports changed, are
then importable where the import rule puts them (``colearn_core.pytorch.pytorch_xray``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import pickle
import runpy
import sys
from pathlib import Path
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------- data


def _digit_images(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images ``size`` x ``size`` of scikit-learn's digits (8x8 upsampled and
    padded), repeated with noise to reach ``n``, and their labels 0-9."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(digits.images), n)
    scale = size // 8
    images = np.kron(digits.images[index], np.ones((scale, scale))) * (255 / 16)
    pad = size - 8 * scale
    images = np.pad(images, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2)))
    images = np.clip(images + rng.normal(0, 12, images.shape), 0, 255).astype(np.uint8)
    return images, digits.target[index].astype(np.uint8)


def write_mnist(root: Path, n_train: int = 6500, n_test: int = 500) -> None:
    """torchvision's MNIST raw files (idx, uncompressed) in ``root/MNIST/raw``."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = _digit_images(n, 28, seed)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            (2051).to_bytes(4, "big") + n.to_bytes(4, "big") + (28).to_bytes(4, "big")
            + (28).to_bytes(4, "big") + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            (2049).to_bytes(4, "big") + n.to_bytes(4, "big") + labels.tobytes())


def write_cifar10(root: Path, per_batch: int = 600) -> dict[str, str]:
    """CIFAR-10's "python version" as torchvision reads it (``cifar-10-batches-py``: five
    training batches, a test batch, the label names); returns each file's md5. These
    pickles are the test's own, read by torchvision in the example's subprocess."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    sums = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        grey, labels = _digit_images(per_batch, 32, seed)
        rgb = np.stack([grey, grey[:, ::-1], grey.transpose(0, 2, 1)], axis=1)
        data = pickle.dumps({"data": rgb.reshape(per_batch, -1),
                             "labels": [int(x) for x in labels]})
        (folder / name).write_bytes(data)
        sums[name] = hashlib.md5(data).hexdigest()
    meta = pickle.dumps({"label_names": [f"class{i}" for i in range(10)]})
    (folder / "batches.meta").write_bytes(meta)
    sums["batches.meta"] = hashlib.md5(meta).hexdigest()
    return sums


def write_fraud(folder: Path, n: int = 1500, seed: int = 0) -> None:
    """The Kaggle IEEE-CIS fraud files colearn's fraud preprocessing reads
    (``train_transaction.csv``, ``train_identity.csv``), with a few of their columns."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    x = rng.normal(size=(n, 6))
    fraud = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.5, n) > 1.6).astype(int)
    products = np.array(["W", "H", "C", "S", "R"])[rng.integers(0, 5, n)]
    cards = np.array(["visa", "mastercard", "discover"])[rng.integers(0, 3, n)]
    lines = [("TransactionID,isFraud,TransactionDT,TransactionAmt,ProductCD,card4,"
             "C1,C2,D1,V1")]
    for i in range(n):
        d1 = "" if i % 7 == 0 else f"{x[i, 4]:.4f}"  # missing values, as in the real set
        lines.append(f"{i},{fraud[i]},{86400 + 37 * i},{abs(x[i, 0]) * 100:.2f},"
                     f"{products[i]},{cards[i]},{x[i, 1]:.4f},{x[i, 2]:.4f},{d1},"
                     f"{x[i, 5]:.4f}")
    (folder / "train_transaction.csv").write_text("\n".join(lines) + "\n")
    ids = ["TransactionID,id_01,id_12,DeviceType"]
    for i in range(0, n, 3):  # identity rows for a third of the transactions
        ids.append(f"{i},{x[i, 3]:.4f},{'Found' if i % 2 else 'NotFound'},"
                   f"{'mobile' if i % 5 else 'desktop'}")
    (folder / "train_identity.csv").write_text("\n".join(ids) + "\n")


def write_xray(folder: Path, per_class: int = 30, size: int = 128) -> None:
    """The chest X-ray folders (``train/`` and ``test/``, each with ``NORMAL/`` and
    ``PNEUMONIA/`` JPEGs) colearn's X-ray examples read."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", per_class)):
        for label, name in enumerate(("NORMAL", "PNEUMONIA")):
            out = folder / split / name
            out.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = rng.normal(100 + 60 * label, 30, (size, size)).clip(0, 255)
                Image.fromarray(image.astype(np.uint8)).save(out / f"{name.lower()}{i}.jpeg")


def write_covid(folder: Path, per_class: int = 120, features: int = 252) -> None:
    """The COVID-19 X-ray feature matrices (``covid.mat``, ``normal.mat``,
    ``pneumonia.mat``: one row a sample, ``features`` values then the label)."""
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for label, name in enumerate(("covid", "normal", "pneumonia")):
        x = rng.normal(label, 1.0, (per_class, features))
        savemat(folder / f"{name}.mat", {name: np.hstack([x, np.full((per_class, 1), label)])})


def write_boston(path: Path, n: int = 200) -> None:
    """A Boston-housing-shaped CSV: 13 features, then the price."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 13))
    y = 22 + 3 * x[:, 5] - 2 * x[:, 12] + rng.normal(0, 1, n)
    np.savetxt(path, np.hstack([x, y[:, None]]), delimiter=",", fmt="%.5f")


# ------------------------------------------------------------ in the subprocess


def _torchvision_without_its_cuda_ops() -> None:
    import torch.library

    real = torch.library.register_fake

    @functools.wraps(real)
    def register_fake(op: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(op, str) and op.startswith("torchvision::") \
                and not hasattr(torch.ops.torchvision, op.partition("::")[2]):
            return args[0] if args and callable(args[0]) else (lambda fn: fn)
        return real(op, *args, **kwargs)

    torch.library.register_fake = register_fake


def _serve_cifar10_checksums(sums: dict[str, str]) -> None:
    from torchvision.datasets import CIFAR10

    CIFAR10.train_list = [[name, sums[name]] for name, _ in CIFAR10.train_list]
    CIFAR10.test_list = [[name, sums[name]] for name, _ in CIFAR10.test_list]
    CIFAR10.meta = {**CIFAR10.meta, "md5": sums["batches.meta"]}


def _serve_load_boston(csv: str) -> None:
    import sklearn.datasets
    from sklearn.utils import Bunch

    def load_boston() -> Bunch:
        table = np.loadtxt(csv, delimiter=",")
        return Bunch(data=table[:, :-1], target=table[:, -1],
                     feature_names=np.array([f"f{i}" for i in range(13)]), DESCR="stand-in")

    sklearn.datasets.load_boston = load_boston  # type: ignore[attr-defined]


def run(script: str, args: list[str]) -> None:
    """Runs ``script`` as ``__main__`` with ``args``, after the stand-ins the environment
    asks for."""
    if "STANDIN_TORCHVISION" in os.environ:
        _torchvision_without_its_cuda_ops()
    if "STANDIN_CIFAR10_MD5" in os.environ:
        _serve_cifar10_checksums(json.loads(os.environ["STANDIN_CIFAR10_MD5"]))
    if "STANDIN_BOSTON_CSV" in os.environ:
        _serve_load_boston(os.environ["STANDIN_BOSTON_CSV"])
    for package, folder in json.loads(os.environ.get("STANDIN_PACKAGE_PATHS", "{}")).items():
        importlib.import_module(package).__path__.append(folder)
    sys.argv = [script, *args]
    sys.path[0] = str(Path(script).parent)  # as `python script`: not this folder
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2:])

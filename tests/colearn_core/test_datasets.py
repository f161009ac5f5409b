"""The data loaders of colearn_core.tasks.datasets: the bundled and generated sets, and
the MNIST (idx) and CIFAR-10 (binary) file parsers on tiny files written here."""

from __future__ import annotations

import gzip
import os
import random
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from colearn_core.tasks.datasets import (
    CIFAR10_FILES,
    DATASETS,
    MNIST_FILES,
    Dataset,
    DatasetError,
    load_dataset,
)

# --- bundled and generated sets --------------------------------------------------------

BUNDLED = {  # name: (n, n_features, n_classes)
    "digits": (1797, 64, 10),
    "breast_cancer": (569, 30, 2),
    "wine": (178, 13, 3),
    "iris": (150, 4, 3),
}


def test_names_listed() -> None:
    assert set(DATASETS) == {*BUNDLED, "mnist1d", "mnist", "cifar10"}


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_shapes_dtypes_ranges(name: str) -> None:
    n, n_features, n_classes = BUNDLED[name]
    data = load_dataset(name)
    assert data.name == name
    assert data.x.shape == (n, n_features) and data.x.dtype == np.float32
    assert data.y.shape == (n,) and data.y.dtype == np.int64
    assert data.n_classes == n_classes
    assert set(np.unique(data.y)) == set(range(n_classes))
    assert np.isfinite(data.x).all()
    if name == "digits":
        assert data.x.min() == 0.0 and data.x.max() == 1.0
        # pixels are integers 0..16 scaled by 1/16
        np.testing.assert_array_equal(data.x * 16, np.round(data.x * 16))
    else:
        np.testing.assert_allclose(data.x.mean(axis=0), 0.0, atol=1e-5)
        np.testing.assert_allclose(data.x.std(axis=0), 1.0, atol=1e-4)
    assert data.description


def test_digits_match_sklearn() -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    data = load_dataset("digits")
    np.testing.assert_array_equal(data.x, (bunch.data / 16).astype(np.float32))
    np.testing.assert_array_equal(data.y, bunch.target)


def test_arrays_read_only_and_cached() -> None:
    data = load_dataset("iris")
    with pytest.raises(ValueError):
        data.x[0, 0] = 5.0
    with pytest.raises(ValueError):
        data.y[0] = 1
    assert load_dataset("iris") is data


def test_unknown_name_lists_names() -> None:
    with pytest.raises(DatasetError, match="unknown data set 'mnist2'.*digits.*cifar10"):
        load_dataset("mnist2")


def test_dataset_validates() -> None:
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(DatasetError, match="float32"):
        Dataset("t", x.astype(np.float64), np.zeros(3, np.int64), 2)
    with pytest.raises(DatasetError, match="int64"):
        Dataset("t", x, np.zeros(3, np.int32), 2)
    with pytest.raises(DatasetError, match="one row per label"):
        Dataset("t", x, np.zeros(4, np.int64), 2)
    with pytest.raises(DatasetError, match=r"0\.\.1"):
        Dataset("t", x, np.array([0, 1, 2], np.int64), 2)
    data = Dataset("t", x, np.array([0, 1, 1], np.int64), 2)
    assert data.n_samples == 3 and data.feature_shape == (2,)
    np.testing.assert_array_equal(data.class_counts(), [1, 2])


def test_mnist1d_matches_generator_and_keeps_global_rng() -> None:
    from mnist1d.data import get_dataset_args, make_dataset

    np.random.seed(1234)
    random.seed(1234)
    expected_np, expected_py = np.random.rand(), random.random()
    np.random.seed(1234)
    random.seed(1234)
    data = load_dataset("mnist1d", seed=3)
    # the generator seeds the global generators; the loader restores them
    assert np.random.rand() == expected_np and random.random() == expected_py

    assert data.x.shape == (5000, 40) and data.x.dtype == np.float32
    assert data.y.dtype == np.int64 and data.n_classes == 10
    assert set(np.unique(data.y)) == set(range(10))
    args = get_dataset_args()
    args.seed = 3
    direct = make_dataset(args)
    np.testing.assert_allclose(
        data.x, np.concatenate([direct["x"], direct["x_test"]]).astype(np.float32))
    np.testing.assert_array_equal(data.y, np.concatenate([direct["y"], direct["y_test"]]))
    assert load_dataset("mnist1d", seed=3) is data


def test_mnist1d_seed_changes_data() -> None:
    a = load_dataset("mnist1d", seed=0)
    b = load_dataset("mnist1d", seed=3)  # cached by the test above when run together
    assert not np.array_equal(a.x, b.x)
    with pytest.raises(DatasetError, match="seed"):
        load_dataset("mnist1d", seed=-1)


def test_no_framework_imported() -> None:
    # a fresh interpreter: other tests in this process may have imported frameworks
    code = (
        "import sys\n"
        "from colearn_core.tasks.datasets import load_dataset\n"
        "from colearn_core.tasks.splits import split_dataset\n"
        "split_dataset(load_dataset('iris'), 3)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'tensorflow', 'keras', 'jax', 'opacus'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[2])
    assert out.stdout.strip() == "[]"


# --- MNIST idx files -------------------------------------------------------------------


def idx_images(pixels: np.ndarray, magic: int = 0x00000803) -> bytes:
    n, rows, cols = pixels.shape
    return struct.pack(">IIII", magic, n, rows, cols) + pixels.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray, magic: int = 0x00000801) -> bytes:
    return struct.pack(">II", magic, len(labels)) + labels.astype(np.uint8).tobytes()


def write(path: Path, data: bytes, gz: bool) -> None:
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


@pytest.fixture
def mnist_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "train_x": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "train_y": np.array([0, 9, 3, 3, 7], np.uint8),
        "test_x": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "test_y": np.array([5, 1, 9], np.uint8),
    }


def write_mnist(directory: Path, arrays: dict[str, np.ndarray], gz: bool | list[bool],
                **override: bytes) -> None:
    contents = {
        MNIST_FILES[0]: idx_images(arrays["train_x"]),
        MNIST_FILES[1]: idx_labels(arrays["train_y"]),
        MNIST_FILES[2]: idx_images(arrays["test_x"]),
        MNIST_FILES[3]: idx_labels(arrays["test_y"]),
    }
    gzs = gz if isinstance(gz, list) else [gz] * 4
    for (name, data), zipped in zip(contents.items(), gzs, strict=True):
        write(directory / name, override.get(name, data), zipped)


@pytest.mark.parametrize("gz", [False, True, [True, False, False, True]],
                         ids=["plain", "gz", "mixed"])
def test_mnist_exact_pixels_and_labels(tmp_path: Path, mnist_arrays, gz) -> None:
    write_mnist(tmp_path, mnist_arrays, gz)
    data = load_dataset("mnist", tmp_path)
    assert data.x.shape == (8, 1, 28, 28) and data.x.dtype == np.float32
    assert data.y.dtype == np.int64 and data.n_classes == 10
    assert 0.0 <= data.x.min() and data.x.max() <= 1.0
    pixels = np.concatenate([mnist_arrays["train_x"], mnist_arrays["test_x"]])
    np.testing.assert_array_equal(data.x[:, 0], pixels.astype(np.float32) / 255)
    np.testing.assert_array_equal(np.round(data.x * 255).astype(np.uint8)[:, 0], pixels)
    np.testing.assert_array_equal(data.y, [0, 9, 3, 3, 7, 5, 1, 9])
    assert not data.x.flags.writeable


def test_mnist_torchvision_layout(tmp_path: Path, mnist_arrays) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_mnist(raw, mnist_arrays, False)
    assert load_dataset("mnist", str(tmp_path)).y.tolist() == [0, 9, 3, 3, 7, 5, 1, 9]


def test_mnist_reloads_changed_files(tmp_path: Path, mnist_arrays) -> None:
    write_mnist(tmp_path, mnist_arrays, False)
    first = load_dataset("mnist", tmp_path)
    assert load_dataset("mnist", tmp_path) is first  # cached
    mnist_arrays["test_y"] = np.array([2, 2, 2], np.uint8)
    write_mnist(tmp_path, mnist_arrays, False)
    label_file = tmp_path / MNIST_FILES[3]
    stat = label_file.stat()
    os.utime(label_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert load_dataset("mnist", tmp_path).y.tolist() == [0, 9, 3, 3, 7, 2, 2, 2]


def test_mnist_missing_file(tmp_path: Path, mnist_arrays) -> None:
    write_mnist(tmp_path, mnist_arrays, False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="missing t10k-labels-idx1-ubyte"):
        load_dataset("mnist", tmp_path)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_mnist_wrong_magic(tmp_path: Path, mnist_arrays, gz: bool) -> None:
    bad = idx_images(mnist_arrays["train_x"], magic=0x00000801)
    write_mnist(tmp_path, mnist_arrays, gz, **{MNIST_FILES[0]: bad})
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte.*magic number "
                                           r"0x00000801, expected 0x00000803"):
        load_dataset("mnist", tmp_path)


def test_mnist_labels_wrong_magic(tmp_path: Path, mnist_arrays) -> None:
    bad = idx_labels(mnist_arrays["test_y"], magic=0x00000803)
    write_mnist(tmp_path, mnist_arrays, False, **{MNIST_FILES[3]: bad})
    with pytest.raises(DatasetError, match=r"t10k-labels.*expected 0x00000801"):
        load_dataset("mnist", tmp_path)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_mnist_truncated_images(tmp_path: Path, mnist_arrays, gz: bool) -> None:
    good = idx_images(mnist_arrays["test_x"])
    write_mnist(tmp_path, mnist_arrays, gz, **{MNIST_FILES[2]: good[:-100]})
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte.*truncated.*expected "
                                           f"{len(good)} for 3 images"):
        load_dataset("mnist", tmp_path)


def test_mnist_truncated_header_and_labels(tmp_path: Path, mnist_arrays) -> None:
    write_mnist(tmp_path, mnist_arrays, False, **{MNIST_FILES[0]: b"\x00\x00\x08"})
    with pytest.raises(DatasetError, match="truncated.*16-byte idx header"):
        load_dataset("mnist", tmp_path)
    good = idx_labels(mnist_arrays["train_y"])
    write_mnist(tmp_path, mnist_arrays, False, **{MNIST_FILES[1]: good[:-1]})
    with pytest.raises(DatasetError, match="train-labels.*truncated"):
        load_dataset("mnist", tmp_path)


def test_mnist_trailing_bytes(tmp_path: Path, mnist_arrays) -> None:
    good = idx_labels(mnist_arrays["train_y"])
    write_mnist(tmp_path, mnist_arrays, False, **{MNIST_FILES[1]: good + b"\x01"})
    with pytest.raises(DatasetError, match="trailing bytes"):
        load_dataset("mnist", tmp_path)


def test_mnist_label_out_of_range(tmp_path: Path, mnist_arrays) -> None:
    mnist_arrays["train_y"][2] = 10
    write_mnist(tmp_path, mnist_arrays, False)
    with pytest.raises(DatasetError, match="label 10 out of range"):
        load_dataset("mnist", tmp_path)


def test_mnist_count_mismatch(tmp_path: Path, mnist_arrays) -> None:
    short = idx_labels(mnist_arrays["train_y"][:4])
    write_mnist(tmp_path, mnist_arrays, False, **{MNIST_FILES[1]: short})
    with pytest.raises(DatasetError, match="5 images but .* 4 labels"):
        load_dataset("mnist", tmp_path)


def test_mnist_wrong_image_size(tmp_path: Path, mnist_arrays) -> None:
    write_mnist(tmp_path, mnist_arrays, False,
                **{MNIST_FILES[0]: idx_images(np.zeros((5, 32, 32), np.uint8))})
    with pytest.raises(DatasetError, match="32x32, expected 28x28"):
        load_dataset("mnist", tmp_path)


def test_mnist_bad_gzip(tmp_path: Path, mnist_arrays) -> None:
    write_mnist(tmp_path, mnist_arrays, [False, False, False, True])
    (tmp_path / (MNIST_FILES[3] + ".gz")).write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match="not a valid gzip"):
        load_dataset("mnist", tmp_path)


def test_file_sets_need_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="mnist needs data_dir"):
        load_dataset("mnist")
    with pytest.raises(DatasetError, match="not a directory"):
        load_dataset("cifar10", tmp_path / "nowhere")


# --- CIFAR-10 binary -------------------------------------------------------------------


def cifar_batches(n_per_file: int = 2, seed: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (rng.integers(0, 10, n_per_file, dtype=np.uint8),
         rng.integers(0, 256, (n_per_file, 3, 32, 32), dtype=np.uint8))
        for _ in CIFAR10_FILES
    ]


def cifar_bytes(labels: np.ndarray, images: np.ndarray) -> bytes:
    records = np.concatenate([labels[:, None], images.reshape(len(labels), -1)], axis=1)
    return records.astype(np.uint8).tobytes()


def write_cifar(directory: Path, batches) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, (labels, images) in zip(CIFAR10_FILES, batches, strict=True):
        (directory / name).write_bytes(cifar_bytes(labels, images))


@pytest.mark.parametrize("subdir", ["cifar-10-batches-bin", ""], ids=["extracted", "flat"])
def test_cifar10_round_trip(tmp_path: Path, subdir: str) -> None:
    batches = cifar_batches()
    write_cifar(tmp_path / subdir if subdir else tmp_path, batches)
    data = load_dataset("cifar10", tmp_path)
    assert data.x.shape == (12, 3, 32, 32) and data.x.dtype == np.float32
    assert data.y.dtype == np.int64 and data.n_classes == 10
    images = np.concatenate([b[1] for b in batches])
    np.testing.assert_array_equal(data.x, images.astype(np.float32) / 255)
    np.testing.assert_array_equal(data.y, np.concatenate([b[0] for b in batches]))
    assert 0.0 <= data.x.min() and data.x.max() <= 1.0
    assert not data.x.flags.writeable


def test_cifar10_channel_layout(tmp_path: Path) -> None:
    # one record whose red plane is 10, green 20, blue 30: channels first, row-major
    labels = np.array([4], np.uint8)
    image = np.stack([np.full((32, 32), v, np.uint8) for v in (10, 20, 30)])[None]
    image[0, 0, 0, 1] = 255  # red, row 0, column 1
    write_cifar(tmp_path, [(labels, image)] * 6)
    data = load_dataset("cifar10", tmp_path)
    assert data.x[0, 0, 0, 1] == 1.0 and data.x[0, 0, 1, 0] == np.float32(10 / 255)
    np.testing.assert_array_equal(data.x[0, :, 5, 5] * 255, np.float32([10, 20, 30]))


def test_cifar10_truncated(tmp_path: Path) -> None:
    write_cifar(tmp_path, cifar_batches())
    path = tmp_path / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DatasetError, match=r"data_batch_3\.bin.*multiple of 3073"):
        load_dataset("cifar10", tmp_path)


def test_cifar10_label_out_of_range(tmp_path: Path) -> None:
    batches = cifar_batches()
    batches[5][0][1] = 11
    write_cifar(tmp_path, batches)
    with pytest.raises(DatasetError, match=r"test_batch\.bin: label 11 out of range"):
        load_dataset("cifar10", tmp_path)


def test_cifar10_missing_batch(tmp_path: Path) -> None:
    write_cifar(tmp_path / "cifar-10-batches-bin", cifar_batches())
    (tmp_path / "cifar-10-batches-bin" / "data_batch_4.bin").unlink()
    with pytest.raises(DatasetError, match=r"missing data_batch_4\.bin"):
        load_dataset("cifar10", tmp_path)


def test_cifar10_python_version_refused(tmp_path: Path) -> None:
    py = tmp_path / "cifar-10-batches-py"
    py.mkdir()
    for name in ("data_batch_1", "data_batch_2", "test_batch", "batches.meta"):
        (py / name).write_bytes(b"\x80\x04 not to be unpickled")
    with pytest.raises(DatasetError, match="python version.*binary version"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(DatasetError, match="python version.*cifar-10-binary.tar.gz"):
        load_dataset("cifar10", py)


def test_cifar10_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no data_batch_1\.bin.*binary version"):
        load_dataset("cifar10", tmp_path)

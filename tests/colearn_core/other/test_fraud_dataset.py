"""colearn's fraud_preprocessing on small CSVs in Kaggle's layouts, written here."""

from __future__ import annotations

import csv
import inspect
from pathlib import Path

import numpy as np
import pytest

from colearn_core.other.fraud_dataset import fraud_preprocessing

TRANSACTIONS = [  # TransactionID, isFraud, TransactionDT, TransactionAmt, ProductCD, card2
    ("3", "0", "300", "10.0", "W", "360.0"),
    ("1", "1", "100", "", "C", "111.0"),
    ("4", "0", "50", "30.0", "H", ""),
    ("2", "0", "200", "inf", "W", "360.0"),
]
IDENTITY = [("1", "Found", "0.5"), ("2", "NotFound", "")]  # TransactionID, id_12, id_01


def _write(path: Path, header: list[str], rows) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _ieee(folder: Path) -> Path:
    _write(folder / "train_transaction.csv", ["TransactionID", "isFraud", "TransactionDT",
                                              "TransactionAmt", "ProductCD", "card2"],
           TRANSACTIONS)
    _write(folder / "train_identity.csv", ["TransactionID", "id_12", "id_01"], IDENTITY)
    return folder


def _standard(values: list[float]) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    return (array - array.mean()) / array.std()


def test_colearns_signature() -> None:
    params = inspect.signature(fraud_preprocessing).parameters
    assert [(p, params[p].default) for p in params] == [
        ("data_dir", inspect.Parameter.empty), ("use_cache", True)]


def test_ieee_cis_layout_as_colearn_preprocesses_it(tmp_path) -> None:
    data, labels = fraud_preprocessing(str(_ieee(tmp_path)))
    assert data.dtype == np.float32 and labels.dtype == np.float32
    # time order: DT 50, 100, 200, 300 -> ids 4, 1, 2, 3
    assert labels.tolist() == [0.0, 1.0, 0.0, 0.0]
    # columns: TransactionAmt, ProductCD, card2, id_12, id_01 (labels, time, id dropped)
    assert data.shape == (4, 5)
    amount = [30.0, 20.0, 20.0, 10.0]  # missing and inf become the mean of 10 and 30
    codes_product = [1.0, 0.0, 2.0, 2.0]  # sorted text: C, H, W
    codes_card2 = [2.0, 0.0, 1.0, 1.0]  # a float column with gaps: "111.0", "360.0", "nan"
    codes_id12 = [2.0, 0.0, 1.0, 2.0]  # unmatched rows are "nan": Found, NotFound, nan
    for column, expected in enumerate((amount, codes_product, codes_card2, codes_id12)):
        np.testing.assert_allclose(data[:, column], _standard(expected), rtol=1e-6)
    # id_01: one value, the gaps filled with it: a constant column is only centred
    np.testing.assert_array_equal(data[:, 4], np.zeros(4, np.float32))


def test_cache_is_read_back_and_can_be_skipped(tmp_path) -> None:
    first = fraud_preprocessing(_ieee(tmp_path))
    assert (tmp_path / "data.npy").is_file() and (tmp_path / "labels.npy").is_file()
    (tmp_path / "train_transaction.csv").unlink()
    cached = fraud_preprocessing(tmp_path)
    np.testing.assert_array_equal(cached[0], first[0])
    with pytest.raises(FileNotFoundError, match="train_transaction.csv"):
        fraud_preprocessing(tmp_path, use_cache=False)


def test_without_identity_file_and_with_integer_categories(tmp_path) -> None:
    _write(tmp_path / "train_transaction.csv",
           ["TransactionID", "isFraud", "TransactionDT", "card1"],
           [("1", "0", "2", "10"), ("2", "1", "1", "9"), ("3", "0", "3", "100")])
    data, labels = fraud_preprocessing(tmp_path)
    assert labels.tolist() == [1.0, 0.0, 0.0]
    # an integer column is encoded by its text: "10" < "100" < "9"
    np.testing.assert_allclose(data[:, 0], _standard([2.0, 0.0, 1.0]), rtol=1e-6)


def test_credit_card_layout(tmp_path) -> None:
    header = ["Time", *[f"V{i}" for i in range(1, 29)], "Amount", "Class"]
    rng = np.random.default_rng(0)
    rows = [[str(t), *map(str, rng.normal(size=28)), str(a), f"{c}"]
            for t, a, c in ((5, 12.5, 0), (1, 3.0, 1), (3, 7.0, 0))]
    _write(tmp_path / "creditcard.csv", header, rows)
    data, labels = fraud_preprocessing(tmp_path)
    assert data.shape == (3, 29) and labels.tolist() == [1.0, 0.0, 0.0]
    np.testing.assert_allclose(data[:, -1], _standard([3.0, 7.0, 12.5]), rtol=1e-6)
    np.testing.assert_allclose(data.mean(axis=0), 0, atol=1e-6)


@pytest.mark.parametrize("rows, message", [
    ([("1", "0", "1", "x")], "numeric"),
    ([("1", "0", "1")], "3 cells"),
])
def test_bad_csv_is_refused_with_its_place(tmp_path, rows, message) -> None:
    _write(tmp_path / "train_transaction.csv",
           ["TransactionID", "isFraud", "TransactionDT", "TransactionAmt"], rows)
    with pytest.raises(ValueError, match=message):
        fraud_preprocessing(tmp_path)


def test_missing_data_and_missing_columns(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="creditcard.csv"):
        fraud_preprocessing(tmp_path)
    _write(tmp_path / "train_transaction.csv", ["TransactionID", "isFraud"], [("1", "0")])
    with pytest.raises(ValueError, match="TransactionDT"):
        fraud_preprocessing(tmp_path)

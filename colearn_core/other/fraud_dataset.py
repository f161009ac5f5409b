"""colearn's ``colearn_other.fraud_dataset`` data preparation, with NumPy and the ``csv``
module only (colearn used pandas).

:func:`fraud_preprocessing` reads Kaggle's IEEE-CIS fraud detection data as colearn's
examples do (``train_transaction.csv`` joined with ``train_identity.csv`` on
``TransactionID``; https://www.kaggle.com/c/ieee-fraud-detection), or, where those files
are absent, Kaggle's credit-card fraud data (``creditcard.csv``: ``Time``, ``V1``..``V28``,
``Amount``, ``Class``). Preprocessed arrays are cached as ``data.npy`` and ``labels.npy``
(loaded without pickle).
"""

from __future__ import annotations

import csv
import logging
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

TRANSACTION_CSV = "train_transaction.csv"
IDENTITY_CSV = "train_identity.csv"
CREDITCARD_CSV = "creditcard.csv"
DATA_CACHE = "data.npy"
LABELS_CACHE = "labels.npy"

#: IEEE-CIS columns that colearn label-encodes (by their text, missing as "nan").
CATEGORICAL_COLUMNS = frozenset(
    [f"id_{i}" for i in range(12, 39)]
    + ["DeviceType", "DeviceInfo", "ProductCD", "card1", "card2", "card3", "card4", "card5",
       "card6", "addr1", "addr2", "P_emaildomain", "R_emaildomain"]
    + [f"M{i}" for i in range(1, 10)]
    + [f"{p}_emaildomain_{i}" for p in "PR" for i in (1, 2, 3)])

#: Cells read as missing (pandas' default NA strings, so results match colearn's).
NA_STRINGS = frozenset(["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
                        "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a",
                        "nan", "null"])
_MISSING_CODE = -1.0  # a categorical cell's provisional code when missing


def fraud_preprocessing(data_dir: str | Path, use_cache: bool = True
                        ) -> tuple[np.ndarray, np.ndarray]:
    """``(data, labels)`` from ``data_dir``: one float32 row per transaction, in time
    order, each column standardised (mean 0, standard deviation 1, missing values first
    replaced by the column's mean); labels 1.0 for fraud, 0.0 otherwise. The result is
    saved to ``data.npy`` / ``labels.npy`` in ``data_dir`` and, with ``use_cache``, read
    back from there when both exist."""
    folder = Path(data_dir)
    data_file, labels_file = folder / DATA_CACHE, folder / LABELS_CACHE
    if use_cache and data_file.is_file() and labels_file.is_file():
        return np.load(data_file, allow_pickle=False), np.load(labels_file, allow_pickle=False)
    if (folder / TRANSACTION_CSV).is_file():
        features, labels = _ieee_cis(folder)
    elif (folder / CREDITCARD_CSV).is_file():
        features, labels = _credit_card(folder / CREDITCARD_CSV)
    else:
        raise FileNotFoundError(f"{folder} has neither {TRANSACTION_CSV} (IEEE-CIS fraud "
                                f"detection) nor {CREDITCARD_CSV} (credit-card fraud)")
    data = _standardise(features)
    np.save(data_file, data)
    np.save(labels_file, labels)
    return data, labels


# ------------------------------------------------------------------------ reading


@dataclass
class _Categorical:
    """A label-encoded column while reading: its distinct texts by provisional code."""

    texts: list[str] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    missing: bool = False

    def code(self, text: str) -> float:
        if text in NA_STRINGS:
            self.missing = True
            return _MISSING_CODE
        if text not in self.codes:
            self.codes[text] = len(self.texts)
            self.texts.append(text)
        return float(self.codes[text])


@dataclass
class _Table:
    columns: list[str]
    values: np.ndarray  # float32; categorical columns hold provisional codes
    categorical: dict[int, _Categorical]


def _read_csv(path: Path, categorical: Iterable[str]) -> _Table:
    """``path`` as numbers: a cell of a ``categorical`` column by a provisional code,
    any other cell as a float (missing: NaN). Text in another column is an error."""
    wanted = set(categorical)
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        columns = next(reader, None)
        if not columns:
            raise ValueError(f"{path} is empty: expected a header row")
        encoders = {j: _Categorical() for j, name in enumerate(columns) if name in wanted}
        rows = []
        for line, cells in enumerate(reader, start=2):
            if len(cells) != len(columns):
                raise ValueError(f"{path}:{line}: {len(cells)} cells, the header has "
                                 f"{len(columns)}")
            row = np.empty(len(columns), dtype=np.float32)
            for j, text in enumerate(cells):
                encoder = encoders.get(j)
                row[j] = encoder.code(text) if encoder is not None else \
                    _number(text, path, line, columns[j])
            rows.append(row)
    values = np.stack(rows) if rows else np.empty((0, len(columns)), dtype=np.float32)
    return _Table(columns, values, encoders)


def _number(text: str, path: Path, line: int, column: str) -> float:
    if text in NA_STRINGS:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}:{line}: column {column!r} is numeric, got {text!r}") from None


def _column(table: _Table, name: str, path: Path) -> int:
    if name not in table.columns:
        raise ValueError(f"{path} has no column {name!r}")
    return table.columns.index(name)


def _encode(values: np.ndarray, encoder: _Categorical, missing: bool) -> np.ndarray:
    """colearn's label encoding: codes in the sorted order of the cells' text as pandas
    writes them (``astype(str)``: an integer column "7", a float one "7.0", missing
    "nan")."""
    texts = encoder.texts
    is_float = [_parses_as(float, t) for t in texts]
    if not all(is_float):
        shown = list(texts)
    elif not missing and all(_parses_as(int, t) for t in texts):
        shown = [str(int(t)) for t in texts]
    else:
        shown = [repr(float(t)) for t in texts]
    shown.append("nan")  # the missing cell's text, at index len(texts)
    ranks = {text: rank for rank, text in enumerate(sorted(set(shown)))}
    lookup = np.array([ranks[t] for t in shown], dtype=np.float32)
    provisional = values.astype(np.int64)
    provisional[provisional < 0] = len(texts)
    return lookup[provisional]


def _parses_as(kind: Callable[[str], object], text: str) -> bool:
    """Whether ``kind`` (``int``, ``float``) reads ``text``."""
    try:
        kind(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------- the layouts


def _ieee_cis(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Transactions left-joined with their identity rows, label-encoded, in time order,
    without ``isFraud``, ``TransactionDT`` and ``TransactionID``."""
    transaction_path, identity_path = folder / TRANSACTION_CSV, folder / IDENTITY_CSV
    transactions = _read_csv(transaction_path, CATEGORICAL_COLUMNS)
    n = len(transactions.values)
    key = _column(transactions, "TransactionID", transaction_path)
    columns = list(transactions.columns)
    blocks = [transactions.values]
    encoders = dict(transactions.categorical)
    missing = {j: e.missing for j, e in encoders.items()}
    if identity_path.is_file():
        identity = _read_csv(identity_path, CATEGORICAL_COLUMNS)
        id_key = _column(identity, "TransactionID", identity_path)
        row_of: dict[float, int] = {}
        for i, transaction_id in enumerate(identity.values[:, id_key].tolist()):
            if transaction_id in row_of:
                raise ValueError(f"{identity_path}: TransactionID {transaction_id:.0f} "
                                 "appears twice")
            row_of[transaction_id] = i
        matched = np.array([row_of.get(t, -1) for t in transactions.values[:, key].tolist()],
                           dtype=np.int64)
        kept = [j for j in range(len(identity.columns)) if j != id_key]
        joined = np.full((n, len(kept)), np.nan, dtype=np.float32)
        found = matched >= 0
        joined[found] = identity.values[matched[found]][:, kept]
        offset = len(columns)
        for k, j in enumerate(kept):
            encoder = identity.categorical.get(j)
            if encoder is not None:
                joined[~found, k] = _MISSING_CODE
                encoders[offset + k] = encoder
                missing[offset + k] = encoder.missing or not bool(found.all())
        columns += [identity.columns[j] for j in kept]
        blocks.append(joined)
    values = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
    for j, encoder in encoders.items():
        values[:, j] = _encode(values[:, j], encoder, missing[j])
    order = np.argsort(values[:, _column(transactions, "TransactionDT", transaction_path)],
                       kind="stable")
    label = _column(transactions, "isFraud", transaction_path)
    dropped = {label, key, columns.index("TransactionDT")}
    features = values[order][:, [j for j in range(len(columns)) if j not in dropped]]
    return features, values[order, label].astype(np.float32)


def _credit_card(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``V1``..``V28`` and ``Amount`` in ``Time`` order (``Time`` itself dropped, as the
    IEEE-CIS timestamp is); ``Class`` is the label."""
    table = _read_csv(path, ())
    label, time = _column(table, "Class", path), _column(table, "Time", path)
    order = np.argsort(table.values[:, time], kind="stable")
    kept = [j for j in range(len(table.columns)) if j not in (label, time)]
    return table.values[order][:, kept], table.values[order, label].astype(np.float32)


def _standardise(features: np.ndarray) -> np.ndarray:
    """Infinities and missing values become the column's mean, then each column is
    centred and scaled to unit variance (a constant column is only centred; a column
    with no value at all stays missing)."""
    values = features.astype(np.float64)
    values[np.isinf(values)] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column: NaN mean
        means = np.nanmean(values, axis=0)
        gaps = np.isnan(values)
        values[gaps] = np.take(means, np.nonzero(gaps)[1])
        values = values.astype(np.float32).astype(np.float64)  # colearn scales float32 data
        centre = np.nanmean(values, axis=0)
        spread = np.nanstd(values, axis=0)
    spread[(spread == 0) | np.isnan(spread)] = 1.0
    return ((values - centre) / spread).astype(np.float32)

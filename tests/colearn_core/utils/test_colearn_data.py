"""colearn's data helpers: split_list_into_fractions and get_data."""

from __future__ import annotations

import inspect
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from colearn_core.utils.data import get_data, split_list_into_fractions


def test_colearns_signatures() -> None:
    empty = inspect.Parameter.empty
    assert [(p.name, p.default) for p in
            inspect.signature(split_list_into_fractions).parameters.values()] == [
        ("input_list", empty), ("fractions_list", empty), ("min_part_size", 1)]
    assert [(p.name, p.default) for p in inspect.signature(get_data).parameters.values()] == [
        ("data_dir", empty), ("download_to", "/tmp/data_download")]


def test_split_is_consecutive_truncated_and_capped() -> None:
    assert split_list_into_fractions(list(range(10)), [0.3, 0.3, 0.4]) == [
        [0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    assert split_list_into_fractions(list(range(10)), [0.25, 0.25]) == [[0, 1], [2, 3]]
    assert split_list_into_fractions(list(range(5)), [0.5, 0.9]) == [[0, 1], [2, 3, 4]]
    parts = split_list_into_fractions(np.arange(7), [0.5, 0.5])
    assert [p.tolist() for p in parts] == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="Insufficient data"):
        split_list_into_fractions(list(range(2)), [0.5, 0.5, 0.5])  # the third is empty
    with pytest.raises(ValueError, match="Insufficient data"):
        split_list_into_fractions(list(range(10)), [0.5, 0.5], min_part_size=6)
    assert split_list_into_fractions([1], [0.5], min_part_size=0) == [[]]


@given(st.integers(0, 200), st.lists(st.floats(0, 1), min_size=1, max_size=6))
def test_split_matches_the_rule(n: int, fractions: list[float]) -> None:
    items = list(range(n))
    try:
        parts = split_list_into_fractions(items, fractions, min_part_size=0)
    except ValueError:
        pytest.fail("min_part_size=0 never refuses")
    assert [x for part in parts for x in part] == items[:sum(len(p) for p in parts)]
    start = 0
    for part, fraction in zip(parts, fractions):
        assert len(part) == min(start + int(n * fraction), n) - start
        start += len(part)


def test_get_data_paths() -> None:
    assert get_data("/data/x") == "/data/x"
    assert get_data(Path("/data/x")) == Path("/data/x")
    assert get_data("file:///data/x") == "/data/x"


class _Blob:
    def __init__(self, name: str, content: bytes) -> None:
        self.name, self.content, self.size = name, content, len(content)

    def download_to_filename(self, filename: str) -> None:
        Path(filename).write_bytes(self.content)


def _fake_storage(monkeypatch, blobs: list[_Blob]) -> list[tuple]:
    calls: list[tuple] = []

    class Bucket:
        def list_blobs(self, prefix: str):
            calls.append(("list", prefix))
            return [b for b in blobs if b.name.startswith(prefix)]

    class Client:
        def bucket(self, bucket_name: str) -> Bucket:
            calls.append(("bucket", bucket_name))
            return Bucket()

        @classmethod
        def create_anonymous_client(cls) -> Client:
            calls.append(("anonymous",))
            return cls()

    storage = types.ModuleType("google.cloud.storage")
    storage.Client = Client  # type: ignore[attr-defined]
    cloud = types.ModuleType("google.cloud")
    cloud.storage = storage  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.cloud", cloud)
    monkeypatch.setitem(sys.modules, "google.cloud.storage", storage)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    return calls


def test_get_data_downloads_a_bucket_prefix(monkeypatch, tmp_path) -> None:
    calls = _fake_storage(monkeypatch, [_Blob("fraud/a.csv", b"1"), _Blob("fraud/empty", b""),
                                        _Blob("fraud/sub/b.csv", b"2")])
    where = get_data("gs://bucket/fraud", download_to=str(tmp_path))
    assert where == tmp_path / "fraud"
    assert (where / "a.csv").read_bytes() == b"1" and (where / "sub/b.csv").read_bytes() == b"2"
    assert not (where / "empty").exists()
    assert calls[:2] == [("anonymous",), ("bucket", "bucket")]
    with pytest.raises(FileNotFoundError, match="No data"):
        get_data("gs://bucket/nothing", download_to=str(tmp_path))


def test_get_data_refuses_objects_outside_the_download_folder(monkeypatch, tmp_path) -> None:
    _fake_storage(monkeypatch, [_Blob("fraud/../../escape", b"x")])
    with pytest.raises(ValueError, match="outside"):
        get_data("gs://bucket/fraud", download_to=str(tmp_path / "d"))
    assert not (tmp_path / "escape").exists()


def test_get_data_without_the_storage_client_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud", None)
    with pytest.raises(ImportError, match="google-cloud-storage"):
        get_data("gs://bucket/fraud")

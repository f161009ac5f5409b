"""FileWeightStore and open_store: roundtrips, verification on every get, clear errors."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from agents.storage.cid import ContentHasher, compute_cid, content_digests
from agents.storage.store import (
    ContentMismatch,
    ContentNotFound,
    ContentTooLarge,
    DigestMismatch,
    FileWeightStore,
    InvalidCid,
    WeightStore,
    WeightStoreError,
    open_store,
)
from colearn_core.codec import decode_weights, encode_weights

# From js-ipfs 0.66.1 (`jsipfs add --cid-version=1 --raw-leaves --only-hash`), see test_cid.py.
HELLO_CID = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
EMPTY_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
# content(262145) of test_cid.py: two raw leaves under a dag-pb root.
TWO_LEAVES_CID = "bafybeiaisubczlbvpwvtws36cqqz4fp5l4ikny2fkd6l2rz3z4p2pkqu7a"


def two_leaves() -> bytes:
    return hashlib.shake_128(b"colearn-cid-vectors").digest(262145)


@pytest.fixture
def store(tmp_path: Path) -> FileWeightStore:
    return FileWeightStore(tmp_path / "store")


def test_roundtrip(store: FileWeightStore) -> None:
    assert store.put(b"hello world") == HELLO_CID
    assert store.get(HELLO_CID).data == b"hello world"
    data = two_leaves()
    assert store.put(data) == TWO_LEAVES_CID
    assert store.get(TWO_LEAVES_CID).data == data


def test_empty_content(store: FileWeightStore) -> None:
    assert store.put(b"") == EMPTY_CID
    assert store.get(EMPTY_CID).data == b""


def test_one_file_per_cid_and_no_temp_files_left(store: FileWeightStore) -> None:
    store.put(b"hello world")
    store.put(two_leaves())
    assert sorted(p.name for p in store.root.iterdir()) == sorted([HELLO_CID, TWO_LEAVES_CID])
    assert (store.root / HELLO_CID).read_bytes() == b"hello world"


def test_put_is_idempotent(store: FileWeightStore) -> None:
    path = store.root / HELLO_CID
    assert store.put(b"hello world") == HELLO_CID
    mtime = path.stat().st_mtime_ns
    os.utime(path, ns=(mtime - 10**9, mtime - 10**9))
    assert store.put(b"hello world") == HELLO_CID
    assert path.stat().st_mtime_ns == mtime - 10**9  # not rewritten
    assert [p.name for p in store.root.iterdir()] == [HELLO_CID]


def test_put_repairs_a_corrupt_copy(store: FileWeightStore, caplog) -> None:
    store.put(b"hello world")
    (store.root / HELLO_CID).write_bytes(b"hello WORLD")
    with caplog.at_level(logging.WARNING, logger="agents.storage.store"):
        assert store.put(b"hello world") == HELLO_CID
    assert "corrupt" in caplog.text
    assert store.get(HELLO_CID).data == b"hello world"


def test_missing_content(store: FileWeightStore) -> None:
    with pytest.raises(ContentNotFound, match=HELLO_CID) as info:
        store.get(HELLO_CID)
    assert info.value.cid == HELLO_CID
    assert isinstance(info.value, WeightStoreError)


def test_tampered_file_is_refused(store: FileWeightStore) -> None:
    store.put(b"hello world")
    (store.root / HELLO_CID).write_bytes(b"hello WORLD")
    with pytest.raises(ContentMismatch, match=HELLO_CID) as info:
        store.get(HELLO_CID)
    assert info.value.actual != HELLO_CID


def test_tampered_multi_block_file_is_refused(store: FileWeightStore) -> None:
    data = bytearray(two_leaves())
    store.put(bytes(data))
    data[-1] ^= 1  # flip one bit in the second leaf
    (store.root / TWO_LEAVES_CID).write_bytes(bytes(data))
    with pytest.raises(ContentMismatch, match=TWO_LEAVES_CID):
        store.get(TWO_LEAVES_CID)


def test_file_planted_under_a_wrong_name_is_refused(store: FileWeightStore) -> None:
    (store.root / HELLO_CID).write_bytes(b"")
    with pytest.raises(ContentMismatch, match=EMPTY_CID):
        store.get(HELLO_CID)


def test_size_limit(store: FileWeightStore) -> None:
    store.put(b"hello world")
    assert store.get(HELLO_CID, max_bytes=11).data == b"hello world"
    with pytest.raises(ContentTooLarge, match=HELLO_CID) as info:
        store.get(HELLO_CID, max_bytes=10)
    assert (info.value.size, info.value.max_bytes) == (11, 10)
    assert "11 bytes" in str(info.value) and "10 bytes" in str(info.value)


def test_size_limit_is_checked_before_hashing(store: FileWeightStore) -> None:
    # A too-large file is refused for its size even if its content is wrong too.
    (store.root / HELLO_CID).write_bytes(b"x" * 100)
    with pytest.raises(ContentTooLarge):
        store.get(HELLO_CID, max_bytes=50)


@pytest.mark.parametrize(
    "bad", ["", "nope", "../etc/passwd", HELLO_CID.upper(), HELLO_CID[:-1], HELLO_CID + "a"]
)
def test_bad_cid(store: FileWeightStore, bad: str) -> None:
    with pytest.raises(InvalidCid, match="invalid CID") as info:
        store.get(bad)
    assert info.value.cid == bad
    assert isinstance(info.value, WeightStoreError)


def test_cidv0_names_the_same_dag_pb_content(store: FileWeightStore) -> None:
    data = two_leaves()
    store.put(data)
    # TWO_LEAVES_CID as CIDv0, from `jsipfs cid format -v 0 -b base58btc` (js-ipfs 0.66.1).
    assert store.get("QmNv9kk2mqdEjmw6VLGHYdVHTEy1FoLt6pUz9B8oWLAuJP").data == data


def test_non_string_cid(store: FileWeightStore) -> None:
    with pytest.raises(InvalidCid):
        store.get(None)  # type: ignore[arg-type]


def test_context_manager_and_protocol(tmp_path: Path) -> None:
    with FileWeightStore(tmp_path / "s") as store:
        assert isinstance(store, WeightStore)
        assert store.get(store.put(b"hello world")).data == b"hello world"


def test_open_store_file_urls(tmp_path: Path) -> None:
    a = open_store(f"file:{tmp_path / 'a'}")
    assert isinstance(a, FileWeightStore) and a.root == tmp_path / "a"
    b = open_store(f"file://{tmp_path / 'b'}")  # file:///abs/path
    assert isinstance(b, FileWeightStore) and b.root == tmp_path / "b"
    assert (tmp_path / "b").is_dir()
    cid = a.put(b"hello world")
    assert open_store(f"file://{tmp_path / 'a'}").get(cid).data == b"hello world"


def test_open_store_relative_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("file:weights")
    assert isinstance(store, FileWeightStore)
    assert store.root == Path("weights") and (tmp_path / "weights").is_dir()


@pytest.mark.parametrize("url", ["http://127.0.0.1:5001", "https://ipfs.example:5001"])
def test_open_store_http_is_an_ipfs_rpc_store(url: str) -> None:
    from agents.storage.ipfs import IpfsRpcStore

    with open_store(url) as store:
        assert isinstance(store, IpfsRpcStore)


@pytest.mark.parametrize("url", ["", "/tmp/x", "s3://bucket", "ipfs://bafk", "file:", "file://"])
def test_open_store_unsupported(url: str) -> None:
    with pytest.raises(WeightStoreError, match=r"URL|directory"):
        open_store(url)


# --- one pass, no copy ----------------------------------------------------------------------


def test_get_reads_the_file_once_and_gives_its_sha256(store: FileWeightStore) -> None:
    weights = {"w": np.arange(300_000, dtype=np.float32), "b": np.ones(7, np.float64)}
    data = encode_weights(weights)
    cid = store.put(data)
    fetched = store.get(cid)
    assert fetched.sha256 == hashlib.sha256(data).digest() and len(fetched) == len(data)
    assert fetched.data.readonly and bytes(fetched) == data
    decoded = decode_weights(fetched.data)
    for name, array in decoded.items():  # views of the buffer read: no copy
        assert np.shares_memory(array, np.frombuffer(fetched.data, np.uint8))
        assert np.array_equal(array, weights[name])


def test_a_file_truncated_while_held_is_harmless(store: FileWeightStore) -> None:
    # A mapped file would kill the reader (SIGBUS) here; a buffer read keeps its bytes.
    data = two_leaves()
    cid = store.put(data)
    fetched = store.get(cid)
    os.truncate(store.root / cid, 0)
    assert bytes(fetched) == data
    with pytest.raises(ContentMismatch):
        store.get(cid)


def test_a_file_that_grew_is_refused(store: FileWeightStore) -> None:
    data = two_leaves()
    cid = store.put(data)
    with open(store.root / cid, "ab") as f:
        f.write(b"more")
    with pytest.raises(ContentTooLarge):
        store.get(cid, max_bytes=len(data))
    with pytest.raises(ContentMismatch):
        store.get(cid)


def test_put_with_the_callers_digests_hashes_nothing(store: FileWeightStore,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    data = two_leaves() * 20  # several write pieces
    digests = content_digests(data)

    def no_hashing(self: ContentHasher, piece: object) -> None:
        raise AssertionError("hashed again")

    monkeypatch.setattr(ContentHasher, "update", no_hashing)
    assert store.put(data, digests=digests) == digests.cid
    assert (store.root / digests.cid).read_bytes() == data
    assert store.put(data, digests=digests) == digests.cid  # already there: nothing written


def test_put_hashes_as_it_writes(store: FileWeightStore) -> None:
    data = two_leaves() * 20
    assert store.put(data) == compute_cid(data)
    assert store.get(compute_cid(data)).sha256 == hashlib.sha256(data).digest()


# --- checked against the caller's digest ----------------------------------------------------


def test_get_checks_the_callers_sha256_instead_of_the_cid(
        store: FileWeightStore, monkeypatch: pytest.MonkeyPatch) -> None:
    data = two_leaves() * 8  # several CID leaves, a piece hashed on the second thread
    cid = store.put(data)
    sha = hashlib.sha256(data).digest()

    def no_cid(self: ContentHasher, *args: object, **kwargs: object) -> None:
        raise AssertionError("the CID was computed")

    with monkeypatch.context() as patched:
        patched.setattr("agents.storage.cid.CidBuilder.update", no_cid)
        fetched = store.get(cid, sha256=sha)
    assert fetched.sha256 == sha and bytes(fetched) == data
    with pytest.raises(DigestMismatch, match="digest mismatch") as info:
        store.get(cid, sha256=hashlib.sha256(data + b"x").digest())
    assert info.value.cid == cid and info.value.actual == sha.hex()
    assert isinstance(info.value, ContentMismatch)  # what callers already refuse


def test_a_tampered_file_fails_the_callers_sha256(store: FileWeightStore) -> None:
    data = two_leaves()
    cid = store.put(data)
    (store.root / cid).write_bytes(data[:-1] + b"!")
    with pytest.raises(DigestMismatch):
        store.get(cid, sha256=hashlib.sha256(data).digest())

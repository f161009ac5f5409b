"""IpfsRpcStore against a real IPFS node (js-ipfs from node_modules) and against a fake one.

The tests marked ``ipfs`` start one js-ipfs daemon for the session (``ipfs_daemon`` in conftest) (``agents.devtools.ipfs``).
They need ``node_modules/.bin/jsipfs`` (``npm ci``); without it they fail with a message
naming ``npm ci``, they are never skipped: CI must run them. Deselect them locally with
``-m "not ipfs"``. The other tests talk to a small stdlib HTTP server that plays a
misbehaving node (wrong bytes, wrong CIDs, errors) and need nothing.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
from fake_http import QuietHandler

from agents._utils.http import BackgroundHttpServer
from agents.devtools.ipfs import DevIpfsError, JsIpfsDaemon
from agents.devtools.process import find_free_port
from agents.storage.cid import CHUNK_SIZE, compute_cid, content_digests
from agents.storage.ipfs import IpfsRpcStore
from agents.storage.store import (
    ContentMismatch,
    ContentNotFound,
    ContentTooLarge,
    DigestMismatch,
    FetchTimeout,
    FileWeightStore,
    InvalidCid,
    WeightStore,
    WeightStoreError,
    open_store,
)
from colearn_core.codec import decode_weights, encode_weights

MiB = 1024 * 1024
HELLO_CID = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"

ipfs = pytest.mark.ipfs


def content(size: int, seed: int = 0) -> bytes:
    """Deterministic incompressible bytes."""
    return random.Random(f"{seed}-{size}").randbytes(size)


# --------------------------------------------------------------------------- the daemon


@pytest.fixture
def store(ipfs_daemon: JsIpfsDaemon) -> Iterator[IpfsRpcStore]:
    with IpfsRpcStore(ipfs_daemon.api_url, timeout=30) as s:
        yield s


def daemon_add(api_url: str, data: bytes) -> str:
    """The CID the daemon itself gives ``data`` (``add`` called directly, no store code)."""
    response = httpx.post(
        f"{api_url}/api/v0/add",
        params={"cid-version": "1", "raw-leaves": "true", "cid-base": "base32",
                "pin": "false"},
        files={"file": ("data", data)},
        timeout=60,
    )
    response.raise_for_status()
    return json.loads(response.text.splitlines()[-1])["Hash"]


SIZES = [
    pytest.param(0, id="0B"),
    pytest.param(1, id="1B"),
    pytest.param(CHUNK_SIZE, id="256KiB"),
    pytest.param(CHUNK_SIZE + 1, id="256KiB+1"),
    pytest.param(5 * MiB, id="5MiB"),
    pytest.param(60 * MiB, id="60MiB"),  # about 2 s
]


@ipfs
@pytest.mark.parametrize("size", SIZES)
def test_cid_equals_the_daemons(ipfs_daemon: JsIpfsDaemon, store: IpfsRpcStore,
                                size: int) -> None:
    data = content(size)
    expected = compute_cid(data)
    assert daemon_add(ipfs_daemon.api_url, data) == expected
    assert store.put(data) == expected  # put checks the node's answer itself
    assert store.get(expected, max_bytes=size).data == data


@ipfs
def test_roundtrip_and_pinned(ipfs_daemon: JsIpfsDaemon, store: IpfsRpcStore) -> None:
    assert store.put(b"hello world") == HELLO_CID
    assert store.get(HELLO_CID).data == b"hello world"
    data = content(3 * CHUNK_SIZE + 17, seed=1)
    cid = store.put(data)
    assert store.put(data) == cid  # idempotent
    assert store.get(cid).data == data
    pins = httpx.post(f"{ipfs_daemon.api_url}/api/v0/pin/ls",
                      params={"arg": cid, "cid-base": "base32"}, timeout=10)
    assert pins.status_code == 200 and cid in pins.text


@ipfs
def test_missing_content_is_not_found_quickly(ipfs_daemon: JsIpfsDaemon) -> None:
    never_added = compute_cid(b"never added to any store " + content(32, seed=2))
    with IpfsRpcStore(ipfs_daemon.api_url, timeout=1.0) as quick:
        start = time.monotonic()
        with pytest.raises(ContentNotFound, match=never_added) as info:
            quick.get(never_added)
        elapsed = time.monotonic() - start
    assert elapsed < 5, f"a missing CID took {elapsed:.1f} s"
    assert ipfs_daemon.api_url in str(info.value)
    assert info.value.cid == never_added


@ipfs
def test_size_limit(ipfs_daemon: JsIpfsDaemon, store: IpfsRpcStore) -> None:
    data = content(2 * CHUNK_SIZE + 5, seed=3)
    cid = store.put(data)
    with pytest.raises(ContentTooLarge, match=f"limit of {len(data) - 1} bytes") as info:
        store.get(cid, max_bytes=len(data) - 1)
    assert info.value.size > info.value.max_bytes == len(data) - 1
    assert store.get(cid, max_bytes=len(data)).data == data
    # The store's own default applies when the caller gives none.
    with (
        IpfsRpcStore(ipfs_daemon.api_url, max_bytes=1000) as small,
        pytest.raises(ContentTooLarge),
    ):
        small.get(cid)
        assert small.get(cid, max_bytes=len(data)).data == data
        assert small.put(b"hello world") == HELLO_CID
        assert small.get(HELLO_CID).data == b"hello world"


@ipfs
def test_content_moves_between_stores(ipfs_daemon: JsIpfsDaemon, store: IpfsRpcStore,
                                      tmp_path: Path) -> None:
    files = FileWeightStore(tmp_path / "files")
    data = content(CHUNK_SIZE * 174 + 1, seed=4)  # two levels of dag-pb nodes
    cid = files.put(data)
    assert store.put(files.get(cid).data) == cid
    assert daemon_add(ipfs_daemon.api_url, data) == cid
    back = FileWeightStore(tmp_path / "back")
    assert back.put(store.get(cid).data) == cid
    assert back.get(cid).data == data


@ipfs
def test_weights_stream_through_the_node_hashed_once(store: IpfsRpcStore) -> None:
    """Megabytes of weights go up in pieces and come back into one buffer, hashed as they
    arrive: the sha256 comes with them, and decoding makes views of that buffer."""
    weights = [np.arange(3_000_000, dtype=np.float32), np.full((64, 3), 0.5, np.float64)]
    data = encode_weights(weights)
    digests = content_digests(data)
    cid = store.put(data, digests=digests)
    assert cid == digests.cid == compute_cid(data)
    fetched = store.get(cid, max_bytes=len(data))
    assert fetched.sha256 == hashlib.sha256(data).digest() and fetched.data == data
    decoded = decode_weights(fetched.data)
    assert all(np.shares_memory(a, np.frombuffer(fetched.data, np.uint8)) for a in decoded)
    assert all(np.array_equal(a, b) for a, b in zip(decoded, weights, strict=True))
    with pytest.raises(ContentTooLarge):
        store.get(cid, max_bytes=len(data) - 1)


@ipfs
def test_open_store_http(ipfs_daemon: JsIpfsDaemon) -> None:
    for url in (ipfs_daemon.api_url, ipfs_daemon.api_url + "/", ipfs_daemon.api_url + "/api/v0"):
        with open_store(url) as opened:
            assert isinstance(opened, IpfsRpcStore) and isinstance(opened, WeightStore)
            assert opened.api_url == ipfs_daemon.api_url
            assert opened.put(b"hello world") == HELLO_CID
            assert opened.get(HELLO_CID).data == b"hello world"
        assert opened._client.is_closed


@ipfs
def test_daemon_is_local_and_offline(ipfs_daemon: JsIpfsDaemon) -> None:
    assert ipfs_daemon.api_url.startswith("http://127.0.0.1:")
    assert ipfs_daemon.gateway_url.startswith("http://127.0.0.1:")
    assert ipfs_daemon.version  # js-ipfs 0.66.1 reports 0.18.1
    config = json.loads((ipfs_daemon.repo_path / "config").read_text())
    assert config["Addresses"]["Swarm"] == [] and config["Bootstrap"] == []
    assert "RPC" not in config["Addresses"]
    gateway = httpx.get(f"{ipfs_daemon.gateway_url}/ipfs/{HELLO_CID}", timeout=10)
    assert gateway.status_code == 200 and gateway.content == b"hello world"


def test_daemon_missing_binary_names_npm_ci(tmp_path: Path) -> None:
    with pytest.raises(DevIpfsError, match="jsipfs not found"):
        JsIpfsDaemon(tmp_path / "jsipfs")
    from agents.devtools import ipfs as devipfs
    original = devipfs.DEFAULT_JSIPFS
    devipfs.DEFAULT_JSIPFS = tmp_path / "node_modules" / ".bin" / "jsipfs"
    try:
        with pytest.raises(DevIpfsError, match="npm ci"):
            JsIpfsDaemon()
    finally:
        devipfs.DEFAULT_JSIPFS = original


# --------------------------------------------------------------------------- no node at all


def test_unreachable_node() -> None:
    url = f"http://127.0.0.1:{find_free_port()}"
    with IpfsRpcStore(url, timeout=2) as nowhere:
        for call in (lambda: nowhere.put(b"hello world"), lambda: nowhere.get(HELLO_CID)):
            start = time.monotonic()
            with pytest.raises(WeightStoreError, match="cannot reach the IPFS node") as info:
                call()
            assert time.monotonic() - start < 5
            message = str(info.value)
            assert url in message and "\n" not in message
            assert not isinstance(info.value, ContentNotFound)


def test_invalid_cid_is_refused_before_asking() -> None:
    with IpfsRpcStore(f"http://127.0.0.1:{find_free_port()}") as nowhere, pytest.raises(InvalidCid):
        nowhere.get("not-a-cid")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:5001", "http://", "127.0.0.1:5001"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(WeightStoreError, match="URL"):
        IpfsRpcStore(url)


# --------------------------------------------------------------------------- a lying node


@dataclass
class FakeNode:
    """What the fake node answers: ``cat`` -> (status, headers, body); ``add`` -> body."""

    cat: tuple[int, dict[str, str], bytes] = (200, {}, b"")
    add: bytes = b""
    drip: float | None = None  # seconds between the bytes of a cat answer
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def fake_node() -> Iterator[FakeNode]:
    node = FakeNode()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            node.requests.append((parts.path, parse_qs(parts.query)))
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if parts.path == "/api/v0/cat":
                status, headers, body = node.cat
            elif parts.path == "/api/v0/add":
                status, headers, body = 200, {}, node.add
            else:
                status, headers, body = 404, {}, b"404 page not found"
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            if node.drip is None or parts.path != "/api/v0/cat":
                self.wfile.write(body)
                return
            for byte in body:  # one byte at a time: each read is quick, the whole never ends
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:
                    return  # the client gave up
                time.sleep(node.drip)

    with BackgroundHttpServer(ThreadingHTTPServer, Handler) as server:
        node.url = server.url
        yield node


def test_tampered_cat_is_a_mismatch(fake_node: FakeNode) -> None:
    fake_node.cat = (200, {}, b"hello WORLD")
    with IpfsRpcStore(fake_node.url, timeout=5) as liar, pytest.raises(ContentMismatch) as info:
        liar.get(HELLO_CID)
    assert info.value.cid == HELLO_CID and info.value.actual == compute_cid(b"hello WORLD")
    path, query = fake_node.requests[-1]
    assert path == "/api/v0/cat" and query["arg"] == [HELLO_CID]
    assert query["timeout"] == ["5000ms"]  # the node is told to give up, not hang


@pytest.mark.parametrize("announced", [False, True], ids=["unannounced", "announced"])
def test_tampered_megabytes_are_a_mismatch(fake_node: FakeNode, announced: bool) -> None:
    data = content(3 * MiB + 5, seed=7)
    tampered = data[:MiB] + b"X" + data[MiB + 1:]  # the same size, one byte changed
    fake_node.cat = (200, {"X-Content-Length": str(len(data))} if announced else {}, tampered)
    with IpfsRpcStore(fake_node.url, timeout=10) as liar, pytest.raises(ContentMismatch):
        liar.get(compute_cid(data), max_bytes=len(data))
    fake_node.cat = (200, {"X-Content-Length": str(len(data))} if announced else {}, data)
    with IpfsRpcStore(fake_node.url, timeout=10) as node:
        fetched = node.get(compute_cid(data), max_bytes=10 * MiB)
    assert fetched.data == data and fetched.sha256 == hashlib.sha256(data).digest()


@pytest.mark.parametrize("size", [11, 3 * MiB + 5])
def test_cat_checked_against_the_callers_sha256(fake_node: FakeNode, size: int) -> None:
    data = content(size, seed=9)
    cid, sha = compute_cid(data), hashlib.sha256(data).digest()
    fake_node.cat = (200, {}, data)
    with IpfsRpcStore(fake_node.url, timeout=10) as node:
        assert node.get(cid, sha256=sha).data == data
        with pytest.raises(DigestMismatch, match="digest mismatch"):
            node.get(cid, sha256=hashlib.sha256(b"other").digest())
    fake_node.cat = (200, {}, data[:-1] + b"!")
    with IpfsRpcStore(fake_node.url, timeout=10) as liar, pytest.raises(DigestMismatch):
        liar.get(cid, sha256=sha)


def test_more_than_announced_is_still_verified(fake_node: FakeNode) -> None:
    data = content(2 * MiB, seed=8)
    fake_node.cat = (200, {"X-Content-Length": "1000"}, data)  # (the buffer must grow)
    with IpfsRpcStore(fake_node.url, timeout=10) as node:
        assert node.get(compute_cid(data)).data == data


def test_truthful_fake_node_is_accepted(fake_node: FakeNode) -> None:
    fake_node.cat = (200, {}, b"hello world")
    with IpfsRpcStore(fake_node.url) as node:
        assert node.get(HELLO_CID).data == b"hello world"


def test_node_with_other_add_settings_is_refused(fake_node: FakeNode) -> None:
    # The CIDv0 kubo gives "hello world" with its old defaults (dag-pb leaf, no raw leaves).
    fake_node.add = json.dumps({"Name": "weights", "Size": "19",
                                "Hash": "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"}).encode()
    with (
        IpfsRpcStore(fake_node.url) as other,
        pytest.raises(WeightStoreError, match="other add settings"),
    ):
        other.put(b"hello world")
    path, query = fake_node.requests[-1]
    assert path == "/api/v0/add"
    assert query["cid-version"] == ["1"] and query["raw-leaves"] == ["true"]
    assert query["pin"] == ["true"]


def test_add_answer_without_cid(fake_node: FakeNode) -> None:
    fake_node.add = b"<html>not an IPFS node</html>"
    with (
        IpfsRpcStore(fake_node.url) as other,
        pytest.raises(WeightStoreError, match="without a CID"),
    ):
        other.put(b"hello world")


@pytest.mark.parametrize("message", [
    "context deadline exceeded",  # kubo with timeout=
    "block was not found locally (offline)",  # kubo --offline
    "Failed to cat file: request timed out",  # js-ipfs with timeout=
])
def test_node_errors_meaning_not_found(fake_node: FakeNode, message: str) -> None:
    body = json.dumps({"Message": message, "Code": 0, "Type": "error"}).encode()
    fake_node.cat = (500, {"Content-Type": "application/json"}, body)
    with (
        IpfsRpcStore(fake_node.url) as node,
        pytest.raises(ContentNotFound, match=re.escape(message)),
    ):
        node.get(HELLO_CID)


def test_other_node_errors(fake_node: FakeNode) -> None:
    body = json.dumps({"Message": "this action must be run in online mode",
                       "Code": 0, "Type": "error"}).encode()
    fake_node.cat = (403, {"Content-Type": "application/json"}, body)
    with (
        IpfsRpcStore(fake_node.url) as node,
        pytest.raises(WeightStoreError, match="HTTP 403: this action") as info,
    ):
        node.get(HELLO_CID)
    assert not isinstance(info.value, ContentNotFound)


def test_announced_size_over_the_limit_is_refused_unread(fake_node: FakeNode) -> None:
    fake_node.cat = (200, {"X-Content-Length": "11"}, b"hello world")
    with (
        IpfsRpcStore(fake_node.url) as node,
        pytest.raises(ContentTooLarge, match="is 11 bytes, over the limit of 10") as info,
    ):
        node.get(HELLO_CID, max_bytes=10)
    assert info.value.size == 11


def test_stream_over_the_limit_is_cut(fake_node: FakeNode) -> None:
    big = content(3 * MiB, seed=5)
    fake_node.cat = (200, {}, big)
    with IpfsRpcStore(fake_node.url) as node, pytest.raises(ContentTooLarge) as info:
        node.get(compute_cid(big), max_bytes=MiB)
    assert MiB < info.value.size < 3 * MiB  # stopped reading well before the end


def test_a_dripping_node_is_cut_off_at_the_deadline(fake_node: FakeNode) -> None:
    """A node that sends one byte at a time never trips a per-read timeout; the call's
    whole duration is bounded all the same."""
    fake_node.cat = (200, {}, b"x" * 100_000)
    fake_node.drip = 0.05  # 100,000 bytes: more than an hour
    with IpfsRpcStore(fake_node.url, timeout=60) as node:
        start = time.monotonic()
        with pytest.raises(FetchTimeout, match="not delivered within 1 s") as info:
            node.get(compute_cid(b"x" * 100_000), timeout=1.0)
        elapsed = time.monotonic() - start
    assert info.value.received > 0
    assert elapsed < 30, f"the fetch took {elapsed:.1f} s"


def test_silent_node_is_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node that accepts the connection but never answers: the client's own timeout."""
    from agents.storage import ipfs as ipfs_store
    monkeypatch.setattr(ipfs_store, "_TIMEOUT_MARGIN", 0.0)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # connections complete in the kernel's backlog; nothing answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with IpfsRpcStore(url, timeout=0.5) as node:
            start = time.monotonic()
            with pytest.raises(ContentNotFound, match="no answer within"):
                node.get(HELLO_CID)
            assert time.monotonic() - start < 3

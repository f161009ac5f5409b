"""A weight store backed by an IPFS node's RPC API (Kubo, or anything that speaks it).

    with IpfsRpcStore("http://127.0.0.1:5001") as store:
        cid = store.put(weights)
        assert store.get(cid).data == weights

The store talks HTTP to ``POST /api/v0/...`` (Kubo's RPC API; js-ipfs serves the same
commands). It trusts the node for nothing:

* :meth:`IpfsRpcStore.put` adds with ``cid-version=1&raw-leaves=true`` and checks that
  the CID the node answers is the one :func:`agents.storage.cid.compute_cid` gives, so a node
  with another chunker or hash function is refused instead of handing out CIDs that no
  other learner can reproduce; the upload goes out in 64 KiB views of the caller's
  buffer (one ``bytes`` would be re-copied by httpcore after every partial send);
* :meth:`IpfsRpcStore.get` streams ``cat`` with a limit on the size into one buffer
  allocated up front, and hashes it (sha256 and CID) as it arrives: content over the
  limit, or bytes that do not hash to the CID asked for, are refused.

The RPC API gives full control over the node: point the store only at a node of your own
(typically on 127.0.0.1), never at a public one.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import httpx

from agents.storage.cid import (
    PARALLEL_BYTES,
    BytesLike,
    Digests,
    content_digests,
    normalize_cid,
)
from agents.storage.store import (
    ContentNotFound,
    ContentTooLarge,
    Fetched,
    FetchTimeout,
    WeightStore,
    WeightStoreError,
    _checked_cid,
    checked_sha256,
    content_hasher,
    fresh_buffer,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
"""Seconds the node may spend on one request (finding and sending the content of a CID)."""

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
"""Largest content :meth:`IpfsRpcStore.get` accepts unless told otherwise (256 MiB)."""

CONNECT_TIMEOUT = 10.0
"""Seconds to open a connection to the node (capped by the store's ``timeout``)."""

_TIMEOUT_MARGIN = 5.0
"""Extra seconds the HTTP client waits beyond the node's own ``timeout=``, so that the node
reports its time-out (a clean error) before the client gives up."""

_MAX_ERROR_BODY = 64 * 1024

SEND_PIECE = 64 * 1024
"""Bytes of the upload handed to httpx at a time."""

_UNBOUNDED_START = 1024 * 1024  # first buffer of a download with no size known nor limit
_PREALLOCATE_MAX = 4 * 1024**3  # beyond it, a download's buffer grows as bytes arrive

# Words in the node's error message that mean "this node has not got that content (in
# time)". js-ipfs: "Failed to cat file: request timed out"; Kubo: "context deadline
# exceeded", "block was not found locally (offline)", "...: not found".
_NOT_FOUND_HINTS = ("timed out", "timeout", "deadline exceeded", "not found")


def _base_url(api_url: str) -> str:
    """``http(s)://host:port[/prefix]`` without a trailing slash or ``/api/v0``."""
    url = api_url.strip()
    if not url.startswith(("http://", "https://")):
        raise WeightStoreError(f"IPFS RPC URL {api_url!r} must start with http:// or https://")
    url = url.rstrip("/").removesuffix("/api/v0").rstrip("/")
    try:
        host = httpx.URL(url).host
    except (httpx.InvalidURL, ValueError) as exc:
        raise WeightStoreError(f"invalid IPFS RPC URL {api_url!r}: {exc}") from None
    if not host:
        raise WeightStoreError(f"IPFS RPC URL {api_url!r} names no host")
    return url


def _duration(seconds: float) -> str:
    """A duration Kubo (Go ``time.ParseDuration``) and js-ipfs (``parse-duration``) accept."""
    return f"{max(1, round(seconds * 1000))}ms"


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _error_message(response: httpx.Response) -> str:
    """The ``Message`` of an RPC error body, else the body itself, on one line."""
    body = response.content[:_MAX_ERROR_BODY].decode(errors="replace")
    try:
        message = json.loads(body).get("Message")
    except (ValueError, AttributeError):
        message = None
    if not isinstance(message, str) or not message:
        message = body or response.reason_phrase or "(no message)"
    return _one_line(message)


class _Transfer:
    """One ``cat`` on a worker thread, bounded by ``deadline`` (``time.monotonic()``).

    The caller waits on :attr:`done` until the deadline, then :meth:`abort` shuts the
    connection's socket down, which wakes the worker from a blocked read at once.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds  # the whole call's budget: the node is told it too
        self.deadline = time.monotonic() + seconds
        self.done = threading.Event()
        self.data: Fetched | None = None
        self.error: Exception | None = None
        self.received = 0
        self._socket: socket.socket | None = None
        self._aborted = False
        self._lock = threading.Lock()

    def run(self, cat: Callable[[str, str, int | None, _Transfer], Fetched], cid: str,
            canonical: str, limit: int | None) -> None:
        try:
            self.data = cat(cid, canonical, limit, self)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
            self.error = exc if isinstance(exc, WeightStoreError) else WeightStoreError(
                f"fetching {cid} failed: {type(exc).__name__}: {_one_line(str(exc))}")
        finally:
            self.done.set()

    def watch(self, response: httpx.Response) -> None:
        """Notes the response's socket, so that :meth:`abort` can wake its reads."""
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        with self._lock:
            self._socket = sock
            aborted = self._aborted
        if aborted:
            self._shutdown(sock)

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            sock = self._socket
        self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket | None) -> None:
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # closed already


class IpfsRpcStore(WeightStore):
    """Content on an IPFS node, through its Kubo-compatible RPC API (``POST /api/v0/...``).

    ``timeout`` (seconds) bounds each request at the node: it is sent as the ``timeout=``
    option (so a ``cat`` of content the node cannot find ends with an error instead of
    hanging) and the HTTP client waits a few seconds longer. It covers the whole transfer,
    so it must be long enough for the largest content. ``max_bytes`` is the size limit of
    :meth:`get` when the caller gives none (``None``: no limit).

    One HTTP client (a connection pool) per store, closed by :meth:`close`.
    """

    def __init__(
        self,
        api_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, not {max_bytes}")
        self.api_url = _base_url(api_url)
        self.timeout = float(timeout)
        self.max_bytes = max_bytes
        self._client = httpx.Client(
            timeout=httpx.Timeout(
                timeout + _TIMEOUT_MARGIN, connect=min(CONNECT_TIMEOUT, timeout)
            ),
            headers={"User-Agent": "colearn-chain"},
        )
        log.debug("IPFS RPC weight store at %s", self.api_url)

    def __repr__(self) -> str:
        return f"IpfsRpcStore({self.api_url!r})"

    def _endpoint(self, command: str) -> str:
        return f"{self.api_url}/api/v0/{command}"

    def _unreachable(self, exc: httpx.TransportError, what: str) -> WeightStoreError:
        reason = _one_line(str(exc)) or type(exc).__name__
        return WeightStoreError(f"cannot reach the IPFS node at {self.api_url} ({what}): {reason}")

    # --- put --------------------------------------------------------------------------

    def put(self, data: BytesLike, *, digests: Digests | None = None) -> str:
        """Adds ``data`` to the node (pinned); returns its CID, checked against our own.

        Raises :class:`WeightStoreError` if the node is unreachable, refuses the upload,
        or answers a CID other than :func:`agents.storage.cid.compute_cid` of ``data``.
        """
        view = memoryview(data).cast("B")
        expected = (digests or content_digests(view)).cid
        params = {
            "cid-version": "1",
            "raw-leaves": "true",
            "cid-base": "base32",
            "pin": "true",
            "timeout": _duration(self.timeout),
        }
        boundary = os.urandom(16).hex()
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                'filename="weights"\r\nContent-Type: application/octet-stream\r\n\r\n').encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        start = time.monotonic()
        try:
            response = self._client.post(
                self._endpoint("add"),
                params=params,
                # (typed bytes, but httpx sends any bytes-like piece as it is)
                content=cast("Iterator[bytes]", _multipart(head, view, tail)),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                         "Content-Length": str(len(head) + len(view) + len(tail))},
            )
        except httpx.TimeoutException as exc:
            raise WeightStoreError(
                f"the IPFS node at {self.api_url} did not finish adding {len(view)} bytes "
                f"within {self.timeout:g} s ({type(exc).__name__})"
            ) from None
        except httpx.TransportError as exc:
            raise self._unreachable(exc, "add") from None
        if response.status_code != 200:
            raise WeightStoreError(
                f"the IPFS node at {self.api_url} refused to add {len(view)} bytes: "
                f"HTTP {response.status_code}: {_error_message(response)}"
            )
        answered = self._added_cid(response)
        try:
            actual = normalize_cid(answered)
        except (ValueError, TypeError):
            actual = None
        if actual != expected:
            log.error("put: node %s answered CID %s for content whose CID is %s",
                      self.api_url, answered, expected)
            raise WeightStoreError(
                f"the IPFS node at {self.api_url} stored {len(view)} bytes as {answered}, "
                f"but their CID is {expected}: the node uses other add settings (chunker, "
                "hash, DAG layout); configure it for kubo's defaults"
            )
        log.info("put %s (%d bytes) on %s in %.2f s", expected, len(view), self.api_url,
                 time.monotonic() - start)
        return expected

    def _added_cid(self, response: httpx.Response) -> str:
        """The ``Hash`` of the last object in an ``add`` answer (JSON objects, one a line)."""
        answered: Any = None
        for line in response.text.splitlines():
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                break
            if isinstance(entry, dict) and isinstance(entry.get("Hash"), str):
                answered = entry["Hash"]
        if answered is None:
            raise WeightStoreError(
                f"the IPFS node at {self.api_url} answered add without a CID: "
                f"{_one_line(response.text[:_MAX_ERROR_BODY]) or '(empty answer)'}"
            )
        return str(answered)

    # --- get --------------------------------------------------------------------------

    def get(self, cid: str, *, max_bytes: int | None = None, timeout: float | None = None,
            sha256: bytes | None = None) -> Fetched:
        """The content of ``cid`` from the node, verified against it (or against
        ``sha256``: see :meth:`WeightStore.get`), and its sha256.

        ``max_bytes`` and ``timeout`` default to the store's. ``timeout`` bounds the whole
        call by the wall clock, whatever the node does (answers slowly, drips one byte at a
        time, never finishes): the transfer runs on a worker thread, and this call returns
        at the deadline. Raises :class:`InvalidCid`, :class:`ContentNotFound` (the node has
        not got it), :class:`FetchTimeout`, :class:`ContentTooLarge` (reading stops at the
        limit), :class:`ContentMismatch` (the bytes do not hash to ``cid``, or
        :class:`DigestMismatch`: not to ``sha256``) or
        :class:`WeightStoreError` (node unreachable, other errors).
        """
        canonical = _checked_cid(cid)
        limit = self.max_bytes if max_bytes is None else max_bytes
        seconds = self.timeout if timeout is None else max(0.1, timeout)
        transfer = _Transfer(seconds)
        cat = functools.partial(self._cat, sha256=sha256)
        worker = threading.Thread(target=transfer.run, args=(cat, cid, canonical, limit),
                                  name=f"ipfs-cat-{canonical[-8:]}", daemon=True)
        worker.start()
        if not transfer.done.wait(seconds):
            transfer.abort()
            if not transfer.received:
                raise ContentNotFound(cid, f"the IPFS node at {self.api_url} (no answer "
                                           f"within {seconds:g} s)")
            raise FetchTimeout(cid, seconds, transfer.received, self.api_url)
        if transfer.error is not None:
            raise transfer.error
        assert transfer.data is not None
        return transfer.data

    def _cat(self, cid: str, canonical: str, limit: int | None, transfer: _Transfer, *,
             sha256: bytes | None) -> Fetched:
        """Streams ``cat`` into one buffer, hashing it as it fills; stops at ``limit`` bytes
        or at the transfer's deadline."""
        seconds = transfer.seconds  # (the caller stops waiting at the deadline anyway)
        params = {"arg": canonical, "timeout": _duration(seconds)}
        start = time.monotonic()
        hasher = content_hasher(sha256)
        buffer = memoryview(b"")  # (allocated below, once the size is known)
        size = 0
        try:
            with self._client.stream("POST", self._endpoint("cat"), params=params,
                                     headers={"Accept-Encoding": "identity"},
                                     timeout=seconds) as response:
                transfer.watch(response)
                if response.status_code != 200:
                    response.read()
                    raise self._cat_error(cid, response)
                announced = response.headers.get("X-Content-Length")  # Kubo sends it
                known = int(announced) if announced and announced.isdigit() else None
                if limit is not None and known is not None and known > limit:
                    raise ContentTooLarge(cid, known, limit)
                # Room for all of it at once (untouched pages cost nothing): the size
                # announced, else the limit, plus one byte to see content past either.
                room = known if known is not None else limit
                buffer = fresh_buffer(min(room, _PREALLOCATE_MAX) + 1 if room is not None
                                      else _UNBOUNDED_START)
                for piece in response.iter_raw():
                    end = size + len(piece)
                    if limit is not None and end > limit:
                        # The true size is unknown: at least what arrived.
                        raise ContentTooLarge(cid, end, limit)
                    if end > len(buffer):  # more than announced or preallocated
                        grown = fresh_buffer(max(end, 2 * len(buffer)))
                        grown[:size] = buffer[:size]
                        buffer = grown
                    buffer[size:end] = piece
                    if end - hasher.size >= PARALLEL_BYTES:
                        hasher.update(buffer[hasher.size:end])
                    size = transfer.received = end
                    if time.monotonic() > transfer.deadline:
                        raise FetchTimeout(cid, seconds, size, self.api_url)
        except httpx.TimeoutException as exc:
            if not size:
                raise ContentNotFound(
                    cid, f"the IPFS node at {self.api_url} (no answer within "
                    f"{seconds:g} s: {type(exc).__name__})"
                ) from None
            raise FetchTimeout(cid, seconds, size, self.api_url) from None
        except httpx.TransportError as exc:
            raise self._unreachable(exc, f"cat {cid}") from None
        hasher.update(buffer[hasher.size:size])
        digest = checked_sha256(canonical, hasher, sha256)
        log.info("get %s (%d bytes) from %s in %.2f s", cid, size, self.api_url,
                 time.monotonic() - start)
        return Fetched(buffer[:size].toreadonly(), digest)

    def _cat_error(self, cid: str, response: httpx.Response) -> WeightStoreError:
        message = _error_message(response)
        if response.status_code == 500 and any(h in message.lower() for h in _NOT_FOUND_HINTS):
            return ContentNotFound(cid, f"the IPFS node at {self.api_url} ({message})")
        return WeightStoreError(
            f"the IPFS node at {self.api_url} refused cat {cid}: "
            f"HTTP {response.status_code}: {message}"
        )

    # --- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        """Closes the HTTP client (its pooled connections). Idempotent."""
        self._client.close()


def _multipart(head: bytes, view: memoryview, tail: bytes) -> Iterator[BytesLike]:
    """A one-file ``multipart/form-data`` body: the caller's buffer in bounded views."""
    yield head
    for start in range(0, len(view), SEND_PIECE):
        yield view[start:start + SEND_PIECE]
    yield tail

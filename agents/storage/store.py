"""Content-addressed weight stores: put bytes, get them back by their IPFS CID.

Every store hands back only verified content: the CID of the bytes returned by
:meth:`WeightStore.get` is recomputed as they arrive and must equal the CID asked for (or,
when the caller names the sha256 it trusts, their sha256 must equal that); their sha256
comes from the same pass (:class:`Fetched`), so nobody hashes them again. A caller
that hashed what it puts (:func:`agents.storage.cid.content_digests`, which it needs for
the digest on chain) hands the store those digests. CIDs are those of
``ipfs add --cid-version=1 --raw-leaves`` (see :mod:`agents.storage.cid`), so the same bytes have
the same CID here and on any IPFS node.

:func:`open_store` picks a store from a URL:

* ``file:DIR`` or ``file://DIR`` -> :class:`FileWeightStore` (one file per CID in DIR);
* ``http://HOST:PORT`` / ``https://...`` -> an IPFS node's RPC API
  (:class:`agents.storage.ipfs.IpfsRpcStore`).
"""

from __future__ import annotations

import logging
import mmap
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from agents.storage.cid import (
    BytesLike,
    ContentHasher,
    Digests,
    compute_cid_file,
    normalize_cid,
)

log = logging.getLogger(__name__)


class WeightStoreError(Exception):
    """Base class of every weight store error."""


class InvalidCid(WeightStoreError):
    """A string that is not a CID this store accepts."""

    def __init__(self, cid: object, reason: str = "") -> None:
        self.cid = cid
        super().__init__(f"invalid CID {cid!r}" + (f": {reason}" if reason else ""))


class ContentNotFound(WeightStoreError):
    """The store holds no content for the CID."""

    def __init__(self, cid: str, where: str = "") -> None:
        self.cid = cid
        super().__init__(f"content {cid} not found" + (f" in {where}" if where else ""))


class ContentMismatch(WeightStoreError):
    """The bytes the store holds for a CID do not hash to that CID."""

    def __init__(self, cid: str, actual: str, message: str | None = None) -> None:
        self.cid = cid
        self.actual = actual
        super().__init__(message or f"content stored for {cid} hashes to {actual}: refusing it")


class DigestMismatch(ContentMismatch):
    """The bytes the store holds for a CID do not have the sha256 the caller expects."""

    def __init__(self, cid: str, actual: bytes, expected: bytes) -> None:
        super().__init__(cid, actual.hex(), f"digest mismatch: content of {cid} is "
                                            f"{actual.hex()}, the caller expects {expected.hex()}")


class ContentTooLarge(WeightStoreError):
    """The content of a CID is larger than the caller accepts."""

    def __init__(self, cid: str, size: int, max_bytes: int) -> None:
        self.cid = cid
        self.size = size
        self.max_bytes = max_bytes
        super().__init__(f"content {cid} is {size} bytes, over the limit of {max_bytes} bytes")


class FetchTimeout(WeightStoreError):
    """The store did not deliver the content of a CID within the time allowed."""

    def __init__(self, cid: str, seconds: float, received: int, where: str = "") -> None:
        self.cid = cid
        self.seconds = seconds
        self.received = received
        super().__init__(f"content {cid} not delivered within {seconds:g} s "
                         f"({received} bytes arrived)" + (f" from {where}" if where else ""))


WRITE_PIECE = 16 * 262_144
"""Bytes a store writes (and hashes) at a time: bounded pieces, copied nowhere else."""


@dataclass(frozen=True)
class Fetched:
    """Content a store verified (against its CID, or the caller's sha256): the bytes (a
    read-only view of the buffer they were read into: no copy) and their sha256, from the
    same pass."""

    data: memoryview
    sha256: bytes

    def __len__(self) -> int:
        return len(self.data)

    def __bytes__(self) -> bytes:
        return self.data.tobytes()


@runtime_checkable
class WeightStore(Protocol):
    """Stores bytes under their CID and returns only content that matches its CID.

    Subclasses get context-manager support (``with store: ...`` closes it) for free.
    """

    def put(self, data: BytesLike, *, digests: Digests | None = None) -> str:
        """Stores ``data``; returns its CID. Putting the same bytes again is harmless.
        ``digests``: :func:`~agents.storage.cid.content_digests` of these very bytes, if the
        caller has them (they are not computed again)."""
        ...

    def get(self, cid: str, *, max_bytes: int | None = None, timeout: float | None = None,
            sha256: bytes | None = None) -> Fetched:
        """The content of ``cid``, verified, and its sha256, within ``timeout`` seconds of
        wall clock time if the store can be slow (a local store ignores it).

        The content is verified against ``cid``, or, when the caller gives the ``sha256``
        it trusts (the digest on chain), against that alone: either binds the bytes, and
        one hash costs half of two (see :func:`checked_sha256`).

        Raises :class:`InvalidCid`, :class:`ContentNotFound`, :class:`ContentTooLarge`
        (content over ``max_bytes``), :class:`ContentMismatch` (:class:`DigestMismatch`
        against ``sha256``) or :class:`FetchTimeout`.
        """
        ...

    def close(self) -> None:
        """Releases whatever the store holds open."""
        ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def fresh_buffer(size: int) -> memoryview:
    """A writable buffer of ``size`` bytes for content on its way in: private anonymous
    memory of its own, so it goes back to the system when the last view of it goes (a
    heap block would stay with the process), in huge pages where the system allows
    (filled in about a third of the time 4 KiB pages take)."""
    memory = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        memory.madvise(mmap.MADV_HUGEPAGE)
    return memoryview(memory)[:size]


def checked_sha256(cid: str, hasher: ContentHasher, sha256: bytes | None) -> bytes:
    """The sha256 of the content ``hasher`` was fed (made by :func:`content_hasher` for
    the same ``sha256``), once it is checked: against ``sha256`` if given, else against
    ``cid``. Raises :class:`DigestMismatch` or :class:`ContentMismatch`."""
    if sha256 is not None:
        actual = hasher.sha256()
        if actual != sha256:
            log.error("get %s: the content's sha256 is %s, not %s", cid, actual.hex(),
                      sha256.hex())
            raise DigestMismatch(cid, actual, sha256)
        return actual
    digests = hasher.finish()
    if digests.cid != cid:
        log.error("get %s: the content hashes to %s", cid, digests.cid)
        raise ContentMismatch(cid, digests.cid)
    return digests.sha256


def content_hasher(sha256: bytes | None) -> ContentHasher:
    """What a get hashes fetched content with: the sha256 alone when the caller expects
    one, else the sha256 and the CID."""
    return ContentHasher(with_cid=sha256 is None)


def _checked_cid(cid: str) -> str:
    """The canonical CIDv1 text of ``cid``, or :class:`InvalidCid`."""
    try:
        return normalize_cid(cid)
    except (ValueError, TypeError) as exc:
        raise InvalidCid(cid, str(exc)) from None


class FileWeightStore(WeightStore):
    """A directory holding one file per CID, named by the CID (canonical CIDv1 base32).

    Writes go to a temporary file in the same directory, then an atomic rename, so a
    reader never sees half a file. A CIDv0 (``Qm...``) is looked up as its CIDv1.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        log.debug("file weight store at %s", self.root)

    def __repr__(self) -> str:
        return f"FileWeightStore({str(self.root)!r})"

    def _path(self, cid: str) -> Path:
        return self.root / cid

    def put(self, data: BytesLike, *, digests: Digests | None = None) -> str:
        """Writes ``data`` in pieces to a temporary file (hashing each piece as it goes, if
        ``digests`` are not given), syncs it, and renames it to its CID."""
        view = memoryview(data).cast("B")
        if digests is not None and self._holds(digests.cid):
            return digests.cid
        hasher = ContentHasher()
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb", buffering=0) as f:
                for start in range(0, len(view), WRITE_PIECE):
                    piece = view[start:start + WRITE_PIECE]
                    if digests is None:
                        hasher.update(piece)
                    f.write(piece)
                os.fsync(f.fileno())
            cid = (digests or hasher.finish()).cid
            if digests is None and self._holds(cid):
                Path(tmp).unlink()
                return cid
            os.replace(tmp, self._path(cid))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        log.info("put %s (%d bytes) in %s", cid, len(view), self.root)
        return cid

    def _holds(self, cid: str) -> bool:
        """Whether the store has an intact copy of ``cid`` (a corrupt one is overwritten)."""
        path = self._path(cid)
        if not path.is_file():
            return False
        if compute_cid_file(path) == cid:
            log.debug("put %s: already stored", cid)
            return True
        log.warning("put %s: stored copy is corrupt, rewriting it", cid)
        return False

    def get(self, cid: str, *, max_bytes: int | None = None, timeout: float | None = None,
            sha256: bytes | None = None) -> Fetched:
        """The file of ``cid``, read into one buffer of its size and hashed there. The file
        is read, not mapped: anyone who can write the directory could truncate a mapped file
        under a reader, and touching a page past the new end kills the process (SIGBUS);
        a file that shrinks or grows while it is read is refused instead."""
        canonical = _checked_cid(cid)
        path = self._path(canonical)
        try:
            with open(path, "rb", buffering=0) as f:
                size = os.fstat(f.fileno()).st_size
                if max_bytes is not None and size > max_bytes:
                    raise ContentTooLarge(cid, size, max_bytes)
                view = fresh_buffer(size + 1)  # one byte more: a file that grew fills it
                filled = 0
                while filled < len(view) and (n := f.readinto(view[filled:])):
                    filled += n
        except FileNotFoundError:
            raise ContentNotFound(cid, str(self.root)) from None
        if max_bytes is not None and filled > max_bytes:  # it grew since fstat
            raise ContentTooLarge(cid, filled, max_bytes)
        data = view[:filled].toreadonly()  # a file that changed meanwhile fails the check
        hasher = content_hasher(sha256)
        hasher.update(data)
        digest = checked_sha256(canonical, hasher, sha256)
        log.debug("get %s (%d bytes)", cid, len(data))
        return Fetched(data, digest)

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own files."""


def open_store(url: str) -> WeightStore:
    """The store a URL names: ``file:DIR`` / ``file://DIR``, or ``http(s)://HOST:PORT`` for
    an IPFS node's RPC API (:class:`agents.storage.ipfs.IpfsRpcStore` with its defaults)."""
    if url.startswith("file:"):
        directory = url.removeprefix("file://") if url.startswith("file://") else url[5:]
        if not directory:
            raise WeightStoreError(f"store URL {url!r} names no directory")
        return FileWeightStore(Path(directory).expanduser())
    if url.startswith(("http://", "https://")):
        from agents.storage.ipfs import IpfsRpcStore  # imports this module: import it late

        return IpfsRpcStore(url)
    raise WeightStoreError(
        f"unsupported store URL {url!r}: expected file:DIR, file://DIR or http(s)://HOST:PORT"
    )

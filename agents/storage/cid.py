"""Pure-Python IPFS CIDs, byte-for-byte what ``ipfs add --cid-version=1 --raw-leaves`` gives.

The parameters are kubo's defaults otherwise: a fixed-size chunker of 256 KiB
(262144 bytes), the balanced DAG layout with at most 174 links per node, and sha2-256.

* Content of at most one chunk (empty included) is a single raw block: its CID is the
  raw-codec (0x55) CIDv1 of ``sha256(data)``.
* Larger content is cut into raw leaves, which dag-pb (0x70) UnixFS ``File`` nodes join
  into a balanced tree. go-unixfs builds it top-down (first leaf; then, while data is
  left, a new root whose first child is the old root, filled recursively); the result
  is the same as grouping the leaves 174 at a time, then those parents 174 at a time,
  and so on, until one node is left. :class:`CidBuilder` does the latter as a stream,
  so it keeps at most 174 links per level in memory.

:class:`ContentHasher` computes the sha256 of the whole content (the digest on chain) and
its CID in the same pass.

CIDs are written as multibase base32 (prefix ``b``, lowercase, no padding). No
third-party library is needed.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from os import PathLike
from typing import BinaryIO

BytesLike = bytes | bytearray | memoryview

CHUNK_SIZE = 262_144
"""Bytes per leaf: kubo's default ``size-262144`` chunker."""

MAX_LINKS = 174
"""Links per dag-pb node: go-unixfs' and js-ipfs' ``DefaultLinksPerBlock``."""

CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70
MH_SHA2_256 = 0x12
_SHA256_LEN = 32

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


# --- varints, multihash, CID text ------------------------------------------------------


def _varint(n: int) -> bytes:
    """Unsigned LEB128, as used by multiformats and protobuf."""
    if n < 0:
        raise ValueError(f"varint of negative number {n}")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Reads an unsigned varint at ``pos``; returns ``(value, next_pos)``."""
    value = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _cid_bytes(codec: int, digest: bytes) -> bytes:
    """Binary CIDv1 of a sha2-256 ``digest`` with the given content ``codec``."""
    return _varint(1) + _varint(codec) + bytes([MH_SHA2_256, _SHA256_LEN]) + digest


def encode_cid(cid: bytes) -> str:
    """Binary CID -> multibase base32 text (``b`` + lowercase RFC 4648, no padding)."""
    return "b" + base64.b32encode(cid).decode("ascii").rstrip("=").lower()


def _b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        try:
            n = n * 58 + _B58_INDEX[ch]
        except KeyError:
            raise ValueError(f"invalid base58 character {ch!r}") from None
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    leading_zeros = len(text) - len(text.lstrip("1"))
    return b"\x00" * leading_zeros + body


def parse_cid(text: str) -> bytes:
    """Parses a CID string into its binary CIDv1 form; raises :class:`ValueError` if malformed.

    Accepted: CIDv1 in canonical base32 (``b...``, lowercase, no padding) with the raw or
    dag-pb codec and a sha2-256 multihash, which is what this module produces; and CIDv0
    (``Qm...`` base58btc, a sha2-256 multihash of a dag-pb node), returned as the
    equivalent dag-pb CIDv1. A non-string raises :class:`TypeError`.
    """
    if not isinstance(text, str):
        raise TypeError(f"CID must be a string, not {type(text).__name__}")
    shown = text if len(text) <= 80 else text[:77] + "..."
    if text.startswith("Qm"):
        if len(text) != 46:
            raise ValueError(f"malformed CIDv0 {shown!r}: expected 46 characters")
        try:
            mh = _b58decode(text)
        except ValueError as exc:
            raise ValueError(f"malformed CIDv0 {shown!r}: {exc}") from None
        if len(mh) != 2 + _SHA256_LEN or mh[:2] != bytes([MH_SHA2_256, _SHA256_LEN]):
            raise ValueError(f"malformed CIDv0 {shown!r}: not a sha2-256 multihash")
        return _cid_bytes(CODEC_DAG_PB, mh[2:])
    if not text.startswith("b"):
        raise ValueError(
            f"malformed CID {shown!r}: expected a CIDv1 in base32 ('b...') or a CIDv0 ('Qm...')"
        )
    body = text[1:]
    if not body or body != body.lower() or not body.isascii():
        raise ValueError(f"malformed CID {shown!r}: base32 part must be lowercase ASCII")
    try:
        raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    except ValueError:  # binascii.Error is a ValueError
        raise ValueError(f"malformed CID {shown!r}: invalid base32") from None
    if encode_cid(raw) != text:  # rejects non-canonical spellings (e.g. stray trailing bits)
        raise ValueError(f"malformed CID {shown!r}: non-canonical base32")
    try:
        version, pos = _read_varint(raw, 0)
        codec, pos = _read_varint(raw, pos)
        mh_code, pos = _read_varint(raw, pos)
        mh_len, pos = _read_varint(raw, pos)
    except ValueError as exc:
        raise ValueError(f"malformed CID {shown!r}: {exc}") from None
    if version != 1:
        raise ValueError(f"malformed CID {shown!r}: version {version}, expected 1")
    if codec not in (CODEC_RAW, CODEC_DAG_PB):
        raise ValueError(f"unsupported CID {shown!r}: codec 0x{codec:x} is not raw or dag-pb")
    if mh_code != MH_SHA2_256 or mh_len != _SHA256_LEN:
        raise ValueError(f"unsupported CID {shown!r}: multihash is not sha2-256")
    if len(raw) - pos != _SHA256_LEN:
        raise ValueError(f"malformed CID {shown!r}: digest length {len(raw) - pos}, expected 32")
    return raw


def normalize_cid(text: str) -> str:
    """The canonical CIDv1 base32 spelling of ``text`` (a CIDv0 becomes its dag-pb CIDv1)."""
    return encode_cid(parse_cid(text))


def is_valid_cid(text: str) -> bool:
    """Whether :func:`parse_cid` accepts ``text``."""
    try:
        parse_cid(text)
    except (ValueError, TypeError):
        return False
    return True


# --- dag-pb / UnixFS encoding -----------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    """A built block as its parent sees it."""

    cid: bytes  # binary CID
    tsize: int  # cumulative size: this block's bytes plus all blocks below it
    filesize: int  # bytes of file content under this node


def _field_bytes(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _field_varint(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _unixfs_file(blocksizes: list[int]) -> bytes:
    """UnixFS ``Data`` of an internal File node: Type=File, filesize, blocksizes (proto2)."""
    out = bytearray(_field_varint(1, 2))  # Type = File
    out += _field_varint(3, sum(blocksizes))  # filesize
    for size in blocksizes:  # repeated uint64, not packed
        out += _field_varint(4, size)
    return bytes(out)


def _parent(children: list[_Node]) -> _Node:
    """Encodes a dag-pb File node over ``children`` (canonical order: Links, then Data)."""
    block = bytearray()
    for child in children:
        link = _field_bytes(1, child.cid) + _field_bytes(2, b"") + _field_varint(3, child.tsize)
        block += _field_bytes(2, link)
    block += _field_bytes(1, _unixfs_file([c.filesize for c in children]))
    return _Node(
        cid=_cid_bytes(CODEC_DAG_PB, hashlib.sha256(block).digest()),
        tsize=len(block) + sum(c.tsize for c in children),
        filesize=sum(c.filesize for c in children),
    )


# --- the builder --------------------------------------------------------------------------


class CidBuilder:
    """Computes a file's CID from its bytes fed in any pieces, copying none of them: each
    leaf's sha256 is updated as its bytes arrive, and at most 174 links per level are kept.

    >>> b = CidBuilder(); b.update(b"hello "); b.update(b"world"); b.finish()
    'bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e'
    """

    def __init__(self) -> None:
        self._leaf = hashlib.sha256()  # the leaf being filled
        self._leaf_size = 0
        self._levels: list[list[_Node]] = [[]]  # _levels[0]: leaves; [i]: nodes of height i
        self._size = 0
        self._done: str | None = None
        # After finish(): the DAG's cumulative size, the ``Size`` that ``ipfs add`` reports.
        self.tsize: int | None = None

    @property
    def size(self) -> int:
        """Bytes fed so far."""
        return self._size

    def update(self, data: BytesLike) -> None:
        """Feeds more bytes of the file."""
        if self._done is not None:
            raise RuntimeError("CidBuilder.update() after finish()")
        view = memoryview(data).cast("B")
        n = len(view)
        self._size += n
        pos = 0
        while pos < n:
            if self._leaf_size == 0 and n - pos >= CHUNK_SIZE:  # a whole chunk from input
                self._add_leaf(hashlib.sha256(view[pos:pos + CHUNK_SIZE]).digest(), CHUNK_SIZE)
                pos += CHUNK_SIZE
                continue
            take = min(CHUNK_SIZE - self._leaf_size, n - pos)
            self._leaf.update(view[pos:pos + take])
            self._leaf_size += take
            pos += take
            if self._leaf_size == CHUNK_SIZE:
                self._add_leaf(self._leaf.digest(), CHUNK_SIZE)
                self._leaf, self._leaf_size = hashlib.sha256(), 0

    def _add_leaf(self, digest: bytes, size: int) -> None:
        self._push(0, _Node(_cid_bytes(CODEC_RAW, digest), size, size))

    def _push(self, height: int, node: _Node) -> None:
        """Adds a node at ``height``; a full level (174 nodes) becomes one node above it."""
        if height == len(self._levels):
            self._levels.append([])
        level = self._levels[height]
        level.append(node)
        if len(level) == MAX_LINKS:
            self._levels[height] = []
            self._push(height + 1, _parent(level))

    def finish(self) -> str:
        """The CID of everything fed, as CIDv1 base32 text. Further calls return the same."""
        if self._done is not None:
            return self._done
        # The last leaf is never empty, unless the file is: then it is the only one. A file
        # of one leaf is that single raw block (the top level holding one node below).
        if self._leaf_size or self._size == 0:
            self._add_leaf(self._leaf.digest(), self._leaf_size)
        # Close partial levels bottom-up. A level's nodes get a parent unless it is the
        # top level holding exactly one node: that node is the root.
        height = 0
        while True:
            top = len(self._levels) - 1
            level = self._levels[height]
            if height == top and len(level) == 1:
                root = level[0]
                break
            if level:
                self._levels[height] = []
                if height == top:
                    self._levels.append([])
                self._levels[height + 1].append(_parent(level))
            height += 1
        self._done, self.tsize = encode_cid(root.cid), root.tsize
        return self._done


@dataclass(frozen=True)
class Digests:
    """What a payload is known by: its sha256 (the digest on chain) and its CID."""

    sha256: bytes
    cid: str
    size: int


PARALLEL_BYTES = 4 * CHUNK_SIZE
"""Pieces at least this long are hashed for the CID on a second thread while the calling
thread computes their sha256 (hashlib releases the GIL): the two hashes take the time of
one on two cores."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _second_thread() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(1, thread_name_prefix="cid-leaves")
        return _pool


class ContentHasher:
    """The sha256 and the CID of content fed in pieces, in one pass over its bytes: each
    piece is hashed both ways while it is at hand, and never copied. ``with_cid=False``:
    the sha256 alone. Not thread-safe."""

    def __init__(self, *, with_cid: bool = True) -> None:
        self._sha256 = hashlib.sha256()
        self._cid = CidBuilder() if with_cid else None
        self._size = 0

    @property
    def size(self) -> int:
        """Bytes fed so far."""
        return self._size

    def update(self, data: BytesLike) -> None:
        """Feeds the next piece; it is read during this call only."""
        view = memoryview(data).cast("B")
        self._size += len(view)
        if self._cid is None:
            self._sha256.update(view)
        elif len(view) < PARALLEL_BYTES:
            self._cid.update(view)
            self._sha256.update(view)
        else:
            leaves = _second_thread().submit(self._cid.update, view)
            try:
                self._sha256.update(view)
            finally:
                leaves.result()

    def sha256(self) -> bytes:
        """The sha256 of what was fed so far."""
        return self._sha256.digest()

    def finish(self) -> Digests:
        """The sha256 and the CID of everything fed (``with_cid=False``: a ``ValueError``)."""
        if self._cid is None:
            raise ValueError("this hasher computes no CID")
        return Digests(self._sha256.digest(), self._cid.finish(), self._size)


def content_digests(data: BytesLike) -> Digests:
    """The sha256 and CID of ``data``, in one pass (see :class:`ContentHasher`)."""
    hasher = ContentHasher()
    hasher.update(data)
    return hasher.finish()


def compute_cid(data: BytesLike) -> str:
    """The CID ``ipfs add --cid-version=1 --raw-leaves`` gives for ``data`` (base32 text)."""
    builder = CidBuilder()
    builder.update(data)
    return builder.finish()


def compute_cid_stream(stream: BinaryIO, *, read_size: int = 4 * CHUNK_SIZE) -> str:
    """The CID of everything left in a binary stream, read ``read_size`` bytes at a time."""
    builder = CidBuilder()
    while chunk := stream.read(read_size):
        builder.update(chunk)
    return builder.finish()


def compute_cid_file(path: str | PathLike[str]) -> str:
    """The CID of a file's content, read in pieces (memory stays small for large files)."""
    with open(path, "rb") as f:
        return compute_cid_stream(f)

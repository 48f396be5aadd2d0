# SPDX-License-Identifier: MIT
"""Publish to and fetch from IPFS for the OGPU network, with the standard library alone.

This one file is the whole client: it can be imported as ``ogpu.ipfs`` or copied
into another project under any name and imported from there, even under
``python -I -S``.  It needs CPython 3.6 or newer and nothing else.

Example::

    from ogpu.ipfs import publish_to_ipfs, fetch_ipfs_json

    link = publish_to_ipfs({"result": "cat", "confidence": 0.97})
    assert fetch_ipfs_json(link) == {"result": "cat", "confidence": 0.97}

Every failure surfaces as one of the typed errors below (``IPFSFetchError``,
``IPFSGatewayError``, ``IPFSVerificationError``, all under ``IPFSError`` and
``OGPUError``); only a caller's programming error raises ``TypeError`` or
``ValueError``.
"""

import base64
import binascii
import contextlib
import email.utils
import functools
import hashlib
import http.client
import io
import json
import logging
import mimetypes
import os
import random
import re
import secrets
import socket
import ssl
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from typing import (
    IO,
    TYPE_CHECKING,
    Any,
    BinaryIO,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

if TYPE_CHECKING:  # pragma: no cover
    import argparse

__version__ = "0.1.0"

__all__ = [
    "OGPUError",
    "IPFSError",
    "IPFSFetchError",
    "IPFSGatewayError",
    "IPFSVerificationError",
    "publish_to_ipfs",
    "fetch_ipfs_json",
    "fetch_ipfs_bytes",
    "fetch_ipfs_to_file",
    "compute_cid",
    "main",
]

_log = logging.getLogger("ogpu.ipfs")


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class OGPUError(Exception):
    """Base class of every error this module raises on purpose."""


class IPFSError(OGPUError):
    """Base class of the IPFS errors."""


class IPFSFetchError(IPFSError):
    """The transfer itself failed: network, TLS, timeout, truncated or invalid body.

    Attributes:
        url: the URL concerned, with any credentials removed.
        reason: a short human-readable explanation.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__("Failed to fetch from IPFS {}: {}".format(url, reason))

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.url, self.reason))


class IPFSGatewayError(IPFSError):
    """The server answered, but not with what was asked for (status or payload).

    Attributes:
        gateway: the URL that answered, with any credentials removed.
        status_code: the HTTP status of the answer.
        body: a short decoded excerpt of the response body, or None.
    """

    def __init__(self, gateway: str, status_code: int, body: Optional[str] = None) -> None:
        self.gateway = gateway
        self.status_code = status_code
        self.body = body
        super().__init__("IPFS gateway {} returned HTTP {}".format(gateway, status_code))

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.gateway, self.status_code, self.body))


class IPFSVerificationError(IPFSError):
    """Content did not match its CID, or could not be checked against it.

    Attributes:
        url: the URL concerned (credentials removed), or None.
        cid: the CID the content was checked against, or None.
        reason: a short human-readable explanation.
    """

    def __init__(self, url: Optional[str], cid: Optional[str], reason: str) -> None:
        self.url = url
        self.cid = cid
        self.reason = reason
        where = " from {}".format(url) if url else ""
        what = " of {}".format(cid) if cid else ""
        super().__init__("Verification{}{} failed: {}".format(what, where, reason))

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.url, self.cid, self.reason))


def _malformed(reason: str) -> IPFSVerificationError:
    """The one error every decoder raises; the caller fills in url and cid."""
    return IPFSVerificationError(None, None, reason)


# ---------------------------------------------------------------------------
# Constants and limits
# ---------------------------------------------------------------------------

# Where publish_to_ipfs uploads to.  Read at call time; deliberately not a
# parameter nor an environment variable (tests and LocalGateway patch it).
_PUBLISH_URL = "https://capi.ogpuscan.io/file/create"

# Gateways used for ipfs://, /ipfs/ and bare-CID URLs, unless the caller or
# OGPU_IPFS_GATEWAYS (comma-separated base URLs) says otherwise.
_DEFAULT_GATEWAYS = ("https://cipfs.ogpuscan.io",)
_GATEWAYS_ENV = "OGPU_IPFS_GATEWAYS"

_USER_AGENT = "ogpu-ipfs/" + __version__

DEFAULT_TIMEOUT = 30.0  # seconds per network operation (connect, or next bytes)
DEFAULT_DEADLINE = 120.0  # seconds for a whole in-memory call, retries included
DEFAULT_RETRIES = 3  # extra attempts after the first, on idempotent failures
DEFAULT_MAX_JSON_BYTES = 64 * 1024 * 1024

_RETRY_STATUSES = frozenset((408, 429, 500, 502, 503, 504))
_REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))
_MAX_REDIRECTS = 5
_BACKOFF_BASE = 0.5  # seconds; attempt n waits up to base * 2**n ...
_BACKOFF_CAP = 8.0  # ... but never more than this (before Retry-After)
_MAX_RETRY_AFTER = 300.0  # a Retry-After beyond this is not waited for at all

_IO_CHUNK = 256 * 1024  # bytes read or sent per operation
_ERROR_BODY_EXCERPT = 200  # characters of an error body kept in IPFSGatewayError.body

# Content addressing, as Kubo's `ipfs add` does by default.
_CHUNK_SIZE = 256 * 1024
_MAX_LINKS = 174
_CODEC_RAW = 0x55
_CODEC_DAG_PB = 0x70
_HASH_IDENTITY = 0x00
_HASH_SHA2_256 = 0x12
_SHA2_256_LEN = 32
_MAX_VARINT_LEN = 9  # multiformats unsigned-varint: at most 63 bits in 9 bytes
_MAX_DIGEST_LEN = 128  # longest digest accepted in a CID (identity CIDs inline data)
_MAX_BLOCK_SIZE = 2 * 1024 * 1024  # the trustless-gateway block limit
_MAX_CAR_HEADER = 64 * 1024
_MAX_PATH_DEPTH = 64

# UnixFS Data.Type values (unixfs.proto).
_UNIXFS_RAW = 0
_UNIXFS_DIRECTORY = 1
_UNIXFS_FILE = 2
_UNIXFS_METADATA = 3
_UNIXFS_SYMLINK = 4
_UNIXFS_HAMT_SHARD = 5


# ---------------------------------------------------------------------------
# Encodings: unsigned varint, base32, base58btc
# ---------------------------------------------------------------------------


def _varint_encode(value: int) -> bytes:
    """Encode a non-negative int as a multiformats unsigned varint (LEB128)."""
    if value < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(buf: Union[bytes, memoryview], pos: int) -> Tuple[int, int]:
    """Read a minimal unsigned varint at ``pos``; return ``(new_pos, value)``."""
    value = 0
    shift = 0
    end = len(buf)
    for i in range(_MAX_VARINT_LEN):
        if pos + i >= end:
            raise _malformed("truncated varint")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise _malformed("non-minimal varint")
            return pos + i + 1, value
        shift += 7
    raise _malformed("varint longer than {} bytes".format(_MAX_VARINT_LEN))


def _b32encode(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").lower().rstrip("=")


def _b32decode(text: str) -> bytes:
    padded = text.upper() + "=" * (-len(text) % 8)
    try:
        return base64.b32decode(padded)
    except (binascii.Error, ValueError):
        raise _malformed("invalid base32") from None


_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


def _b58encode(data: bytes) -> str:
    zeros = len(data) - len(data.lstrip(b"\0"))
    num = int.from_bytes(data, "big")
    digits = []
    while num:
        num, rem = divmod(num, 58)
        digits.append(_B58_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(digits))


def _b58decode(text: str) -> bytes:
    num = 0
    for char in text:
        try:
            num = num * 58 + _B58_INDEX[char]
        except KeyError:
            raise _malformed("invalid base58 character {!r}".format(char)) from None
    zeros = len(text) - len(text.lstrip("1"))
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    return b"\0" * zeros + body


# ---------------------------------------------------------------------------
# Multihash and CID (https://github.com/multiformats/cid)
# ---------------------------------------------------------------------------


class _Cid:
    """A parsed CID: version, content codec and multihash (code, digest)."""

    __slots__ = ("version", "codec", "hash_code", "digest", "multihash")

    def __init__(self, version: int, codec: int, hash_code: int, digest: bytes) -> None:
        self.version = version
        self.codec = codec
        self.hash_code = hash_code
        self.digest = bytes(digest)
        self.multihash = _varint_encode(hash_code) + _varint_encode(len(digest)) + self.digest

    @classmethod
    def for_block(cls, block: Union[bytes, memoryview], codec: int, version: int) -> "_Cid":
        return cls(version, codec, _HASH_SHA2_256, hashlib.sha256(block).digest())

    def to_bytes(self) -> bytes:
        if self.version == 0:
            return self.multihash
        return _varint_encode(1) + _varint_encode(self.codec) + self.multihash

    def __str__(self) -> str:
        if self.version == 0:
            return _b58encode(self.multihash)
        return "b" + _b32encode(self.to_bytes())

    def __repr__(self) -> str:
        return "_Cid({})".format(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Cid) and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def check(self, block: Union[bytes, memoryview]) -> bool:
        """True when ``block`` hashes to this CID's digest (only supported hashes)."""
        if self.hash_code == _HASH_SHA2_256:
            return hashlib.sha256(block).digest() == self.digest
        if self.hash_code == _HASH_IDENTITY:
            return bytes(block) == self.digest
        raise _malformed("unsupported multihash code 0x{:x}".format(self.hash_code))


def _read_multihash(buf: Union[bytes, memoryview], pos: int) -> Tuple[int, int, bytes]:
    pos, code = _read_varint(buf, pos)
    pos, length = _read_varint(buf, pos)
    if length > _MAX_DIGEST_LEN:
        raise _malformed("multihash digest of {} bytes is too long".format(length))
    if code == _HASH_SHA2_256 and length != _SHA2_256_LEN:
        raise _malformed("sha2-256 digest must be 32 bytes, not {}".format(length))
    if pos + length > len(buf):
        raise _malformed("truncated multihash")
    return pos + length, code, bytes(buf[pos : pos + length])


def _read_cid(buf: Union[bytes, memoryview], pos: int) -> Tuple[int, _Cid]:
    """Read a binary CID at ``pos``; return ``(new_pos, cid)``."""
    if pos + 2 <= len(buf) and buf[pos] == _HASH_SHA2_256 and buf[pos + 1] == _SHA2_256_LEN:
        # CIDv0 is a bare sha2-256 multihash (0x12 0x20 + 32 bytes).
        pos, code, digest = _read_multihash(buf, pos)
        return pos, _Cid(0, _CODEC_DAG_PB, code, digest)
    pos, version = _read_varint(buf, pos)
    if version != 1:
        raise _malformed("unsupported CID version {}".format(version))
    pos, codec = _read_varint(buf, pos)
    pos, code, digest = _read_multihash(buf, pos)
    return pos, _Cid(1, codec, code, digest)


def _cid_from_bytes(data: Union[bytes, memoryview]) -> _Cid:
    pos, cid = _read_cid(data, 0)
    if pos != len(data):
        raise _malformed("trailing bytes after CID")
    return cid


def _parse_cid(text: str) -> _Cid:
    """Parse a CID in text form: v0 ``Qm…``, v1 base32 ``b…``/``B…`` or base58btc ``z…``."""
    if len(text) == 46 and text.startswith("Qm"):
        return _cid_from_bytes(_b58decode(text))
    if len(text) < 2:
        raise _malformed("not a CID: {!r}".format(text[:80]))
    prefix, rest = text[0], text[1:]
    if prefix in "bB":
        raw = _b32decode(rest)
    elif prefix == "z":
        raw = _b58decode(rest)
    else:
        raise _malformed("not a CID (unsupported multibase {!r}): {!r}".format(prefix, text[:80]))
    cid = _cid_from_bytes(raw)
    if cid.version != 1:
        raise _malformed("CIDv0 cannot carry a multibase prefix")
    return cid


def _looks_like_cid(text: str) -> bool:
    try:
        _parse_cid(text)
    except IPFSVerificationError:
        return False
    return True


# ---------------------------------------------------------------------------
# Protobuf, dag-pb and UnixFS (https://ipld.io/specs/codecs/dag-pb/spec/,
# https://github.com/ipfs/specs/blob/main/UNIXFS.md)
# ---------------------------------------------------------------------------


def _pb_key(field: int, wire_type: int) -> bytes:
    return _varint_encode(field << 3 | wire_type)


def _pb_bytes(field: int, value: bytes) -> bytes:
    return _pb_key(field, 2) + _varint_encode(len(value)) + value


def _pb_uint(field: int, value: int) -> bytes:
    return _pb_key(field, 0) + _varint_encode(value)


def _pb_fields(buf: Union[bytes, memoryview]) -> Iterator[Tuple[int, int, Any]]:
    """Yield ``(field, wire_type, value)``; value is an int or a memoryview."""
    view = memoryview(buf)
    pos = 0
    end = len(view)
    while pos < end:
        pos, key = _read_varint(view, pos)
        field, wire_type = key >> 3, key & 7
        if field == 0:
            raise _malformed("protobuf field number 0")
        if wire_type == 0:
            pos, value = _read_varint(view, pos)
            yield field, wire_type, value
        elif wire_type == 2:
            pos, length = _read_varint(view, pos)
            if pos + length > end:
                raise _malformed("truncated protobuf field {}".format(field))
            yield field, wire_type, view[pos : pos + length]
            pos += length
        elif wire_type == 1:
            if pos + 8 > end:
                raise _malformed("truncated protobuf field {}".format(field))
            yield field, wire_type, view[pos : pos + 8]
            pos += 8
        elif wire_type == 5:
            if pos + 4 > end:
                raise _malformed("truncated protobuf field {}".format(field))
            yield field, wire_type, view[pos : pos + 4]
            pos += 4
        else:
            raise _malformed("unsupported protobuf wire type {}".format(wire_type))


class _PbLink:
    __slots__ = ("cid", "name", "tsize")

    def __init__(self, cid: _Cid, name: Optional[str], tsize: Optional[int]) -> None:
        self.cid = cid
        self.name = name
        self.tsize = tsize


def _decode_pblink(buf: memoryview) -> _PbLink:
    cid = None  # type: Optional[_Cid]
    name = None  # type: Optional[str]
    tsize = None  # type: Optional[int]
    for field, wire_type, value in _pb_fields(buf):
        if field == 1 and wire_type == 2 and cid is None:
            cid = _cid_from_bytes(value)
        elif field == 2 and wire_type == 2 and name is None:
            try:
                name = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                raise _malformed("dag-pb link name is not UTF-8") from None
        elif field == 3 and wire_type == 0 and tsize is None:
            tsize = value
        else:
            raise _malformed("unexpected field {} in dag-pb link".format(field))
    if cid is None:
        raise _malformed("dag-pb link without a hash")
    return _PbLink(cid, name, tsize)


def _decode_pbnode(block: Union[bytes, memoryview]) -> Tuple[List[_PbLink], Optional[bytes]]:
    """Decode a dag-pb node into ``(links, data)``; ``data`` is None when absent."""
    links = []  # type: List[_PbLink]
    data = None  # type: Optional[bytes]
    for field, wire_type, value in _pb_fields(block):
        if field == 2 and wire_type == 2 and data is None:
            links.append(_decode_pblink(value))
        elif field == 1 and wire_type == 2 and data is None:
            data = bytes(value)
        else:
            raise _malformed("unexpected field {} in dag-pb node".format(field))
    return links, data


class _UnixFSData:
    __slots__ = ("type", "data", "filesize", "blocksizes")

    def __init__(self) -> None:
        self.type = -1
        self.data = b""
        self.filesize = None  # type: Optional[int]
        self.blocksizes = []  # type: List[int]


def _decode_unixfs(buf: Union[bytes, memoryview]) -> _UnixFSData:
    node = _UnixFSData()
    for field, wire_type, value in _pb_fields(buf):
        if field == 1 and wire_type == 0:
            node.type = value
        elif field == 2 and wire_type == 2:
            node.data = bytes(value)
        elif field == 3 and wire_type == 0:
            node.filesize = value
        elif field == 4 and wire_type == 0:
            node.blocksizes.append(value)
        elif field == 4 and wire_type == 2:  # packed repeated
            pos = 0
            while pos < len(value):
                pos, size = _read_varint(value, pos)
                node.blocksizes.append(size)
        elif field in (5, 6, 7) and wire_type == 0:
            pass  # hashType, fanout, mode: not needed to read a file
        elif field == 8 and wire_type == 2:
            pass  # mtime
        else:
            raise _malformed("unexpected field {} in UnixFS data".format(field))
    if node.type not in (
        _UNIXFS_RAW,
        _UNIXFS_DIRECTORY,
        _UNIXFS_FILE,
        _UNIXFS_METADATA,
        _UNIXFS_SYMLINK,
        _UNIXFS_HAMT_SHARD,
    ):
        raise _malformed("UnixFS node of unknown type {}".format(node.type))
    return node


# ---------------------------------------------------------------------------
# CID computation: Kubo's `ipfs add` (fixed-size chunker, balanced layout)
# ---------------------------------------------------------------------------

_OnBlock = Callable[[_Cid, bytes], None]


class _DagBuilder:
    """Build the UnixFS file DAG of a byte stream as ``ipfs add`` does, incrementally.

    Version 0 wraps every chunk in a dag-pb leaf; version 1 uses raw leaves and
    CIDv1.  Nodes of at most ``max_links`` children are closed level by level, so
    only the pending links of each level are held (a few KiB per GiB of input).
    ``on_block(cid, block)`` receives every block, children before parents, the
    root last.
    """

    def __init__(
        self,
        cid_version: int = 0,
        chunk_size: int = _CHUNK_SIZE,
        max_links: int = _MAX_LINKS,
        on_block: Optional[_OnBlock] = None,
    ) -> None:
        if cid_version not in (0, 1):
            raise ValueError("cid_version must be 0 or 1")
        if chunk_size < 1 or max_links < 2:
            raise ValueError("chunk_size must be >= 1 and max_links >= 2")
        self.cid_version = cid_version
        self.chunk_size = chunk_size
        self.max_links = max_links
        self.on_block = on_block
        self.size = 0
        self._pending = bytearray()
        # _levels[i] holds (cid, tsize, filesize) of finished nodes at height i
        # that do not have a parent yet; height 0 holds leaves.
        self._levels = [[]]  # type: List[List[Tuple[_Cid, int, int]]]
        self._root = None  # type: Optional[_Cid]

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        if self._root is not None:
            raise ValueError("write() after finish()")
        view = memoryview(data).cast("B")
        self.size += len(view)
        size = self.chunk_size
        if self._pending:
            need = size - len(self._pending)
            self._pending += view[:need]
            view = view[need:]
            if len(self._pending) < size:
                return
            self._leaf(bytes(self._pending))
            self._pending = bytearray()
        while len(view) >= size:
            self._leaf(view[:size])
            view = view[size:]
        if len(view):
            self._pending += view

    def finish(self) -> _Cid:
        if self._root is not None:
            return self._root
        if self._pending or self.size == 0:
            self._leaf(bytes(self._pending))
            self._pending = bytearray()
        levels = self._levels
        height = 0
        while True:
            nodes = levels[height]
            higher = any(levels[height + 1 :])
            if len(nodes) == 1 and not higher:
                self._root = nodes[0][0]
                return self._root
            if nodes:
                self._close(height)
            height += 1

    def _leaf(self, chunk: Union[bytes, memoryview]) -> None:
        length = len(chunk)
        if self.cid_version == 1 and (length or self.size == 0):
            cid = _Cid.for_block(chunk, _CODEC_RAW, 1)
            if self.on_block is not None:
                self.on_block(cid, bytes(chunk))
            self._add(0, cid, length, length)
            return
        # dag-pb leaf: PBNode{Data: UnixFS{Type: File, Data: chunk, filesize}}
        inner_head = b"\x08\x02" + (_pb_key(2, 2) + _varint_encode(length) if length else b"")
        inner_tail = _pb_uint(3, length)
        inner_len = len(inner_head) + length + len(inner_tail)
        head = _pb_key(1, 2) + _varint_encode(inner_len) + inner_head
        digest = hashlib.sha256(head)
        digest.update(chunk)
        digest.update(inner_tail)
        cid = _Cid(self.cid_version, _CODEC_DAG_PB, _HASH_SHA2_256, digest.digest())
        block_len = len(head) + length + len(inner_tail)
        if self.on_block is not None:
            self.on_block(cid, head + bytes(chunk) + inner_tail)
        self._add(0, cid, block_len, length)

    def _add(self, height: int, cid: _Cid, tsize: int, filesize: int) -> None:
        levels = self._levels
        if height == len(levels):
            levels.append([])
        levels[height].append((cid, tsize, filesize))
        # A full node is closed at once: whatever comes next starts a sibling.
        # This yields the same tree as Kubo's balanced layout, which grows the
        # root one level whenever the tree below it is full.
        if len(levels[height]) == self.max_links:
            self._close(height)

    def _close(self, height: int) -> None:
        """Turn the pending entries at ``height`` into one parent node."""
        children = self._levels[height]
        self._levels[height] = []
        filesize = sum(child[2] for child in children)
        unixfs = b"\x08\x02" + _pb_uint(3, filesize)
        unixfs += b"".join(_pb_uint(4, child[2]) for child in children)
        links = b"".join(
            _pb_bytes(2, _pb_bytes(1, child[0].to_bytes()) + b"\x12\x00" + _pb_uint(3, child[1]))
            for child in children
        )
        block = links + _pb_bytes(1, unixfs)
        cid = _Cid.for_block(block, _CODEC_DAG_PB, self.cid_version)
        if self.on_block is not None:
            self.on_block(cid, block)
        self._add(height + 1, cid, len(block) + sum(child[1] for child in children), filesize)


# ---------------------------------------------------------------------------
# Content sources: what can be published or hashed, read in bounded chunks
# ---------------------------------------------------------------------------

_Progress = Callable[[int, Optional[int]], None]


class _Source:
    """Content of known size, read in chunks; ``rewind()`` restarts it if it can."""

    def __init__(
        self,
        size: int,
        data: Optional[memoryview] = None,
        fileobj: Optional[IO[bytes]] = None,
        owned: bool = False,
        in_memory: bool = True,
    ) -> None:
        self.size = size
        self._data = data
        self._file = fileobj
        self._owned = owned
        self._start = fileobj.tell() if fileobj is not None else 0
        self.in_memory = in_memory
        self._used = False

    @property
    def rewindable(self) -> bool:
        return self._data is not None or self._file is not None

    def chunks(self, size: int = _IO_CHUNK) -> Iterator[Union[bytes, memoryview]]:
        if self._used and self._file is not None:
            self._file.seek(self._start)
        self._used = True
        if self._data is not None:
            data = self._data
            for pos in range(0, len(data), size):
                yield data[pos : pos + size]
            return
        assert self._file is not None
        left = self.size
        while left:
            block = self._file.read(min(size, left))
            if not block:
                raise _SourceChanged(self.size - left, self.size)
            left -= len(block)
            yield block

    def close(self) -> None:
        if self._owned and self._file is not None:
            self._file.close()


class _SourceChanged(Exception):
    """A file ended before the size announced in Content-Length."""

    def __init__(self, done: int, size: int) -> None:
        super().__init__("source ended after {} of {} bytes".format(done, size))


def _json_bytes(data: Mapping[str, Any]) -> bytes:
    # Default arguments on purpose: the same bytes, hence the same CID, as the OGPU SDK.
    return json.dumps(data).encode("utf-8")


def _open_source(data: Any) -> _Source:
    """Turn publishable ``data`` into a _Source (the caller closes it)."""
    if isinstance(data, dict):
        raw = _json_bytes(data)
        return _Source(len(raw), memoryview(raw))
    if isinstance(data, str):
        raw = data.encode("utf-8")
        return _Source(len(raw), memoryview(raw))
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data).cast("B")
        return _Source(len(view), view)
    if isinstance(data, os.PathLike):
        fileobj = open(os.fspath(data), "rb")  # noqa: SIM115 -- closed by _Source.close
        try:
            size = os.fstat(fileobj.fileno()).st_size
        except BaseException:
            fileobj.close()
            raise
        return _Source(size, fileobj=fileobj, owned=True, in_memory=False)
    if hasattr(data, "read"):
        if isinstance(data, io.TextIOBase):
            raise TypeError("file objects must be opened in binary mode")
        return _file_source(data)
    raise TypeError(
        "data must be a dict, str, bytes-like object, os.PathLike path or binary file, "
        "not {}".format(type(data).__name__)
    )


def _file_source(fileobj: Any) -> _Source:
    seekable = False
    with contextlib.suppress(AttributeError, OSError, ValueError):
        seekable = bool(fileobj.seekable())
    if seekable:
        start = fileobj.tell()
        end = fileobj.seek(0, io.SEEK_END)
        fileobj.seek(start)
        return _Source(end - start, fileobj=fileobj, in_memory=False)
    # A pipe or socket: spool it to a temporary file to learn its size and to
    # be able to send it again on a retry.
    spool = tempfile.TemporaryFile()  # noqa: SIM115 -- closed by _Source.close
    try:
        while True:
            block = fileobj.read(_IO_CHUNK)
            if not block:
                break
            if not isinstance(block, (bytes, bytearray)):
                raise TypeError("file objects must be opened in binary mode")
            spool.write(block)
        size = spool.tell()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return _Source(size, fileobj=spool, owned=True, in_memory=False)


def compute_cid(data: Any, cid_version: int = 0) -> str:
    """Return the CID that ``ipfs add`` (Kubo, default settings) gives for ``data``.

    ``data`` is what :func:`publish_to_ipfs` accepts: a dict (hashed as published,
    ``json.dumps`` with default arguments), a str (UTF-8), bytes-like content, an
    ``os.PathLike`` path or a binary file object (both streamed).  Version 0 gives
    ``Qm…`` (dag-pb leaves, like ``ipfs add``); version 1 gives base32 ``b…`` with raw
    leaves, like ``ipfs add --cid-version=1``.  No network is used.

    Raises:
        TypeError: for an unsupported type of ``data``.
        ValueError: for a ``cid_version`` other than 0 or 1.
    """
    if cid_version not in (0, 1):
        raise ValueError("cid_version must be 0 or 1")
    source = _open_source(data)
    try:
        builder = _DagBuilder(cid_version)
        try:
            for chunk in source.chunks():
                builder.write(chunk)
        except _SourceChanged as exc:
            raise ValueError(str(exc)) from None
        return str(builder.finish())
    finally:
        source.close()


# ---------------------------------------------------------------------------
# HTTP: URLs, the opener, sockets bounded by a deadline
# ---------------------------------------------------------------------------

_CTL_CHARS = re.compile(r"[\x00-\x20\x7f]")


def _redact(url: str) -> str:
    """``url`` without credentials, for messages and logs."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + host))


def _origin(url: str) -> Tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), parts.netloc.rpartition("@")[2].lower()


def _check_url(url: str) -> str:
    """Validate an http(s) URL before any I/O; return it with the path quoted."""
    shown = _redact(url)
    if _CTL_CHARS.search(url):
        raise IPFSFetchError(shown, "URL contains whitespace or control characters")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError as exc:
        raise IPFSFetchError(shown, "invalid URL ({})".format(exc)) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise IPFSFetchError(
            shown, "unsupported URL scheme {!r}: only http and https".format(parts.scheme)
        )
    if not parts.hostname:
        raise IPFSFetchError(shown, "URL has no host")
    safe = "/%:@!$&'()*+,;=-._~"
    path = urllib.parse.quote(parts.path, safe=safe)
    query = urllib.parse.quote(parts.query, safe=safe + "?")
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc, path, query, ""))


def _split_credentials(url: str) -> Tuple[str, Optional[str]]:
    """Move ``user:pass@`` out of ``url`` into a Basic ``Authorization`` value."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = "{}:{}".format(urllib.parse.unquote(user), urllib.parse.unquote(password))
    auth = "Basic " + base64.b64encode(token.encode("utf-8")).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), auth


class _Deadline:
    """Time left for a whole call; ``None`` seconds means no overall bound."""

    def __init__(self, seconds: Optional[float]) -> None:
        self.seconds = seconds
        self.at = None if seconds is None else time.monotonic() + seconds

    def left(self) -> Optional[float]:
        return None if self.at is None else self.at - time.monotonic()

    def expired(self) -> bool:
        left = self.left()
        return left is not None and left <= 0

    def bound(self, timeout: Optional[float]) -> Optional[float]:
        """The timeout for the next operation: ``timeout`` clipped to the time left."""
        left = self.left()
        if left is None:
            return timeout
        if left <= 0:
            raise socket.timeout("deadline exceeded")
        return left if timeout is None else min(timeout, left)


class _DeadlineSocket:
    """A socket whose every blocking call waits at most min(timeout, time left).

    http.client reads a status line or a body with many ``recv`` calls; a server
    that drips one byte at a time would reset a plain socket timeout forever.
    Re-arming the timeout before each call bounds the whole exchange.
    """

    def __init__(self, sock: socket.socket, timeout: Optional[float], deadline: _Deadline) -> None:
        self._sock = sock
        self._timeout = timeout
        self._deadline = deadline
        self._io_refs = 0
        self._closed = False

    def _arm(self) -> None:
        self._sock.settimeout(self._deadline.bound(self._timeout))

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._arm()
        return self._sock.recv_into(buffer, nbytes, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._arm()
        return self._sock.recv(bufsize, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        view = memoryview(data).cast("B")
        # sendall's timeout covers the whole call: send in slices so that a slow
        # but moving upload is not mistaken for a stalled one.
        for pos in range(0, len(view), 65536):
            self._arm()
            self._sock.sendall(view[pos : pos + 65536], flags)

    def send(self, data: Any, flags: int = 0) -> int:
        self._arm()
        return self._sock.send(data, flags)

    def makefile(self, mode: str = "rb", buffering: Optional[int] = None, **_: Any) -> Any:
        if mode != "rb":
            raise ValueError("only binary reading is supported")
        self._io_refs += 1
        return io.BufferedReader(socket.SocketIO(self, "rb"))  # type: ignore[arg-type]

    def _decref_socketios(self) -> None:
        self._io_refs -= 1
        if self._closed and self._io_refs <= 0:
            self._sock.close()

    def close(self) -> None:
        # Like socket.socket: the descriptor outlives close() while a makefile()
        # reader (an HTTPResponse) still uses it.
        self._closed = True
        if self._io_refs <= 0:
            self._sock.close()

    def detach_for_tls(self) -> socket.socket:
        sock = self._sock
        self._closed = True
        self._io_refs = 1 << 30  # the TLS socket takes over; never close it from here
        return sock

    def fileno(self) -> int:
        return self._sock.fileno()

    def settimeout(self, timeout: Optional[float]) -> None:
        self._timeout = timeout

    def gettimeout(self) -> Optional[float]:
        return self._timeout

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = deadline

    def connect(self) -> None:
        _connect_plain(self, self._deadline)


def _connect_plain(conn: Any, deadline: _Deadline) -> None:
    """Connect ``conn`` (through its proxy tunnel, if any) on a deadline socket."""
    sock = socket.create_connection(
        (conn.host, conn.port), deadline.bound(conn.timeout), conn.source_address
    )
    with contextlib.suppress(OSError):  # not every platform allows it
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.sock = _DeadlineSocket(sock, conn.timeout, deadline)
    if conn._tunnel_host:
        conn._tunnel()


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = deadline

    def connect(self) -> None:
        _connect_plain(self, self._deadline)
        raw = self.sock.detach_for_tls()  # type: ignore[union-attr]
        try:
            raw.settimeout(self._deadline.bound(self.timeout))
            server_hostname = self._tunnel_host or self.host  # type: ignore[attr-defined]
            tls = self._context.wrap_socket(  # type: ignore[attr-defined]
                raw, server_hostname=server_hostname
            )
        except BaseException:
            raw.close()
            raise
        self.sock = _DeadlineSocket(tls, self.timeout, self._deadline)


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        factory = functools.partial(_HTTPConnection, deadline=self._deadline)
        return self.do_open(factory, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline, context: Optional[ssl.SSLContext]) -> None:
        super().__init__()
        self._deadline = deadline
        self._user_context = context

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        context = self._user_context or _default_ssl_context()
        factory = functools.partial(_HTTPSConnection, deadline=self._deadline)
        return self.do_open(factory, req, context=context)


_ssl_cache = {}  # type: Dict[Tuple[Optional[str], ...], ssl.SSLContext]
_ssl_lock = threading.Lock()


def _default_ssl_context() -> ssl.SSLContext:
    """A verifying context; SSL_CERT_FILE/SSL_CERT_DIR (OpenSSL's own) and
    REQUESTS_CA_BUNDLE (a file or a directory) are honoured."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or None
    key = (
        bundle,
        os.environ.get("SSL_CERT_FILE"),
        os.environ.get("SSL_CERT_DIR"),
    )
    with _ssl_lock:
        context = _ssl_cache.get(key)
        if context is None:
            if bundle and os.path.isdir(bundle):
                context = ssl.create_default_context(capath=bundle)
            elif bundle:
                context = ssl.create_default_context(cafile=bundle)
            else:
                context = ssl.create_default_context()
            _ssl_cache.clear()
            _ssl_cache[key] = context
        return context


def _build_opener(deadline: _Deadline, context: Optional[ssl.SSLContext]) -> Any:
    # A private opener with exactly these handlers: no HTTPErrorProcessor (a
    # status is an answer, handled by _exchange), no redirect handler (followed
    # by _exchange under our own rules), never install_opener.
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        _HTTPHandler(deadline),
        _HTTPSHandler(deadline, context),
    ):
        opener.add_handler(handler)
    return opener


# ---------------------------------------------------------------------------
# HTTP: failures, retry policy
# ---------------------------------------------------------------------------


class _Failure(Exception):
    """An attempt failed; ``error`` is what the caller sees if it is the last."""

    def __init__(
        self, error: IPFSError, retryable: bool, retry_after: Optional[float] = None
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.retryable = retryable
        self.retry_after = retry_after


def _describe(exc: BaseException, deadline: _Deadline, timeout: Optional[float]) -> str:
    """A short reason for a transport exception (credentials never appear here:
    urllib only ever sees URLs with the user info removed)."""
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        return _describe(exc.reason, deadline, timeout)
    if isinstance(exc, socket.timeout) or (
        isinstance(exc, OSError) and "timed out" in str(exc)
    ):
        if deadline.expired():
            return "deadline of {:g}s exceeded".format(deadline.seconds or 0)
        return "timed out after {:g}s".format(timeout) if timeout else "timed out"
    if isinstance(exc, ssl.SSLError):
        if "CERTIFICATE_VERIFY_FAILED" in str(exc) or exc.__class__.__name__.startswith(
            "SSLCertVerification"
        ):
            detail = getattr(exc, "verify_message", None) or "certificate verify failed"
            return "TLS certificate verification failed ({})".format(detail)
        return "TLS error ({})".format(getattr(exc, "reason", None) or exc)
    if isinstance(exc, ssl.CertificateError):
        return "TLS certificate verification failed ({})".format(exc)
    if isinstance(exc, socket.gaierror):
        return "DNS lookup failed ({})".format(exc.strerror or exc)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "server closed the connection without a response"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, http.client.IncompleteRead):
        return "response body truncated after {} bytes".format(len(exc.partial))
    if isinstance(exc, http.client.LineTooLong):
        return "invalid HTTP response (line too long)"
    if isinstance(exc, http.client.HTTPException):
        return "invalid HTTP response ({}: {})".format(type(exc).__name__, str(exc)[:100])
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)[:200]
    if isinstance(exc, OSError):
        return (exc.strerror or str(exc) or type(exc).__name__)[:200]
    if isinstance(exc, ValueError):  # http.client: malformed chunk sizes and the like
        return "invalid HTTP response ({})".format(str(exc)[:100])
    return "{}: {}".format(type(exc).__name__, str(exc)[:200])


# What urllib, http.client, ssl and socket raise on network trouble.
_TRANSPORT_ERRORS = (OSError, http.client.HTTPException, ValueError)


def _parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None or when.tzinfo is None:  # 3.6-3.9 return None on garbage
        return None
    import datetime  # only here: rarely needed

    delta = (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    return max(0.0, delta)


def _backoff(attempt: int, retry_after: Optional[float], rng: random.Random) -> float:
    """Exponential backoff with full jitter; a Retry-After is a lower bound."""
    delay = rng.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * (2 ** attempt)))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


_rng = random.SystemRandom()


# ---------------------------------------------------------------------------
# HTTP: multipart/form-data (https://html.spec.whatwg.org/#multipart-form-data)
# ---------------------------------------------------------------------------


def _escape_quoted(value: str) -> bytes:
    # WHATWG: in a quoted name or filename, " becomes %22, CR %0D and LF %0A;
    # the rest is sent as UTF-8.
    escaped = value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
    return escaped.encode("utf-8", "surrogateescape")


class _Multipart:
    """A single-file multipart body: head, content, tail; length known up front."""

    def __init__(self, source: _Source, filename: str, content_type: str) -> None:
        self.source = source
        boundary = "ogpu-ipfs-" + secrets.token_hex(16)
        if source._data is not None:
            # In-memory content can be checked outright (re searches the buffer in
            # place, no copy); for streamed files the 128 random bits make a
            # collision practically impossible.
            while re.search(boundary.encode("ascii"), source._data):
                boundary = "ogpu-ipfs-" + secrets.token_hex(16)
        self.boundary = boundary
        self.content_type = "multipart/form-data; boundary=" + boundary
        self.head = (
            b"--" + boundary.encode("ascii") + b"\r\n"
            b'Content-Disposition: form-data; name="file"; filename="'
            + _escape_quoted(filename)
            + b'"\r\nContent-Type: '
            + content_type.encode("utf-8")
            + b"\r\n\r\n"
        )
        self.tail = b"\r\n--" + boundary.encode("ascii") + b"--\r\n"
        self.length = len(self.head) + source.size + len(self.tail)

    def chunks(self, sent: "_Transfer") -> Iterator[Any]:
        sent.start(self.source.size)
        yield self.head
        for chunk in self.source.chunks():
            yield chunk
            sent.add(chunk)  # reached here once http.client has sent the chunk
        yield self.tail


class _Transfer:
    """Counts the bytes of one attempt, reports progress and, if asked, hashes them."""

    def __init__(self, progress: Optional[_Progress], cid_version: Optional[int] = None) -> None:
        self.progress = progress
        self.cid_version = cid_version
        self.done = 0
        self.total = None  # type: Optional[int]
        self.builder = None  # type: Optional[_DagBuilder]

    def start(self, total: Optional[int]) -> None:
        self.done = 0
        self.total = total
        if self.cid_version is not None:
            self.builder = _DagBuilder(self.cid_version)
        if self.progress is not None:
            self.progress(0, total)

    def add(self, chunk: Union[bytes, memoryview]) -> None:
        self.done += len(chunk)
        if self.builder is not None:
            self.builder.write(chunk)
        if self.progress is not None:
            self.progress(self.done, self.total)


# ---------------------------------------------------------------------------
# HTTP: the one request function (timeouts, deadline, retries, redirects,
# translation of every transport failure)
# ---------------------------------------------------------------------------


def _chain(error: IPFSError, cause: Optional[BaseException]) -> IPFSError:
    error.__cause__ = cause
    error.__suppress_context__ = True
    return error


def _is_retryable(exc: BaseException) -> bool:
    """Failures safe to try again: the server never answered, or went away."""
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        return _is_retryable(exc.reason)
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
        return False  # a TLS failure will not heal by asking again
    if isinstance(exc, (http.client.RemoteDisconnected, http.client.IncompleteRead)):
        return True
    if isinstance(exc, http.client.HTTPException):
        return False  # the server answered, with garbage
    return isinstance(exc, OSError)  # refused, reset, timed out, DNS, unreachable


class _Call:
    """The settings one public call shares across its attempts."""

    def __init__(
        self,
        method: str,
        timeout: Optional[float],
        deadline: Optional[float],
        retries: int,
        headers: Optional[Mapping[str, str]],
        ssl_context: Optional[ssl.SSLContext],
    ) -> None:
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError("timeout must be a positive number of seconds or None")
        if deadline is not None and not (isinstance(deadline, (int, float)) and deadline > 0):
            raise ValueError("deadline must be a positive number of seconds or None")
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise ValueError("retries must be a non-negative int")
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError("ssl_context must be an ssl.SSLContext")
        self.method = method
        self.timeout = None if timeout is None else float(timeout)
        self.deadline = _Deadline(None if deadline is None else float(deadline))
        self.retries = retries
        self.headers = _check_headers(headers)
        self.opener = _build_opener(self.deadline, ssl_context)


def _check_headers(headers: Optional[Mapping[str, str]]) -> Dict[str, str]:
    checked = {}  # type: Dict[str, str]
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("header names and values must be str")
        if not re.match(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$", name):
            raise ValueError("invalid header name {!r}".format(name))
        if re.search(r"[\r\n\0]", value):
            raise ValueError("header {} contains CR, LF or NUL".format(name))
        checked[name] = value
    return checked


def _read_excerpt(resp: Any) -> Optional[str]:
    """A short, decoded start of an error body; never fails, never reads much."""
    try:
        raw = resp.read1(1024) if hasattr(resp, "read1") else resp.read(1024)
    except Exception:
        return None
    if not raw:
        return None
    text = raw.decode("utf-8", "replace").strip()
    return text[:_ERROR_BODY_EXCERPT] or None


def _open(
    call: _Call, url: str, body: Optional[_Multipart], transfer: Optional[_Transfer], accept: str
) -> Tuple[Any, str]:
    """One attempt: send the request, follow redirects; return (2xx response, shown URL)."""
    target, auth = _split_credentials(_check_url(url))
    shown = _redact(url)
    origin = _origin(target)
    private = dict(call.headers)  # only ever sent to the origin the caller named
    if auth is not None:
        private["Authorization"] = auth
    method = call.method
    for _hop in range(_MAX_REDIRECTS + 1):
        headers = {"User-Agent": _USER_AGENT, "Accept": accept}
        if method == "GET":
            headers["Accept-Encoding"] = "gzip, deflate"
        if _origin(target) == origin:
            headers.update(private)
        data: Optional[Iterable[Any]] = None
        if body is not None and method == "POST":
            assert transfer is not None
            headers["Content-Type"] = body.content_type
            headers["Content-Length"] = str(body.length)
            data = body.chunks(transfer)
        request = urllib.request.Request(target, data=data, headers=headers, method=method)
        size = body.source.size if body is not None and data is not None else 0
        _log.debug("%s %s (%s bytes)", method, _redact(target), size)
        try:
            resp = call.opener.open(request, timeout=call.timeout)
        except _SourceChanged as exc:
            raise _Failure(_chain(IPFSFetchError(shown, str(exc)), exc), False) from None
        except _TRANSPORT_ERRORS as exc:
            reason = _describe(exc, call.deadline, call.timeout)
            error = _chain(IPFSFetchError(_redact(target), reason), exc)
            raise _Failure(error, _is_retryable(exc)) from None
        status = resp.status
        location = resp.headers.get("Location")
        if status in _REDIRECT_STATUSES and location:
            resp.close()
            target = _follow(target, location, status, method, shown)
            if status == 303:
                method = "GET"
            continue
        if 200 <= status < 300:
            return resp, _redact(target)
        excerpt = _read_excerpt(resp)
        retry_after = _parse_retry_after(resp.headers.get("Retry-After"))
        resp.close()
        error = IPFSGatewayError(_redact(target), status, excerpt)
        raise _Failure(error, status in _RETRY_STATUSES, retry_after)
    raise _Failure(IPFSFetchError(shown, "too many redirects"), False)


def _follow(current: str, location: str, status: int, method: str, shown: str) -> str:
    """The next URL of a redirect, under our rules: http(s) only, never down to http."""
    try:
        target = urllib.parse.urljoin(current, location.strip())
    except ValueError:
        raise _Failure(IPFSFetchError(shown, "invalid redirect location"), False) from None
    scheme = urllib.parse.urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        reason = "refused redirect to a {!r} URL".format(scheme)
        raise _Failure(IPFSFetchError(shown, reason), False)
    if _origin(current)[0] == "https" and scheme == "http":
        raise _Failure(IPFSFetchError(shown, "refused redirect from https to http"), False)
    if method == "POST" and status in (301, 302, 303):
        # Turning an upload into a GET would lose it: report the answer instead.
        raise _Failure(IPFSGatewayError(shown, status, None), False)
    try:
        checked = _check_url(target)
    except IPFSFetchError as exc:
        raise _Failure(IPFSFetchError(shown, "bad redirect: " + exc.reason), False) from None
    # Credentials in a Location header are never used.
    return _split_credentials(checked)[0]


def _exchange(
    call: _Call,
    urls: Sequence[str],
    consume: Callable[[Any, str], Any],
    body: Optional[_Multipart] = None,
    transfer: Optional[_Transfer] = None,
    accept: str = "*/*",
) -> Any:
    """Run attempts over ``urls`` (gateways in order) with retries and backoff.

    ``consume(response, shown_url)`` reads a 2xx response and returns the result,
    raising _Failure for a retryable or final problem.
    """
    last = None  # type: Optional[_Failure]
    for attempt in range(call.retries + 1):
        for url in urls:
            if call.deadline.expired():
                break
            started = time.monotonic()
            try:
                resp, shown = _open(call, url, body, transfer, accept)
                try:
                    result = consume(resp, shown)
                finally:
                    resp.close()
            except _Failure as failure:
                last = failure
                _log.warning("%s %s failed: %s", call.method, _redact(url), failure.error)
                if not failure.retryable:
                    raise failure.error from failure.error.__cause__
                continue
            _log.info(
                "%s %s succeeded in %.3fs", call.method, shown, time.monotonic() - started
            )
            return result
        if last is None:  # the deadline ran out before any attempt
            raise IPFSFetchError(_redact(urls[0]), "deadline exceeded before the request")
        if attempt == call.retries or call.deadline.expired():
            break
        if last.retry_after is not None and last.retry_after > _MAX_RETRY_AFTER:
            break
        delay = _backoff(attempt, last.retry_after, _rng)
        left = call.deadline.left()
        if left is not None and delay >= left:
            break
        _log.warning(
            "retrying in %.2fs (retry %d of %d)", delay, attempt + 1, call.retries
        )
        time.sleep(delay)
    assert last is not None
    raise last.error from last.error.__cause__


class _Decoder:
    """Content-Encoding decoding, incremental and bounded (no bomb expands in memory)."""

    def __init__(self, encoding: str, shown: str) -> None:
        self.shown = shown
        self.encoding = encoding.strip().lower() or "identity"
        if self.encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)  # type: Any
        elif self.encoding == "deflate":
            self._z = None  # zlib or raw deflate: decided by the first bytes
        elif self.encoding == "identity":
            self._z = False
        else:
            reason = "unsupported Content-Encoding {!r}".format(encoding[:40])
            raise _Failure(IPFSFetchError(shown, reason), False)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._z is False:
            yield data
            return
        if self._z is None:
            # RFC 9110 says zlib-wrapped, yet some servers send raw deflate.
            wrapped = len(data) >= 2 and (data[0] & 0x0F) == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._z = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        try:
            while data:
                if self._z.eof:
                    raise _Failure(IPFSFetchError(self.shown, "data after the compressed body"), False)
                out = self._z.decompress(data, _IO_CHUNK)
                if out:
                    yield out
                data = self._z.unconsumed_tail
        except zlib.error as exc:
            reason = "corrupt {} body ({})".format(self.encoding, exc)
            raise _Failure(_chain(IPFSFetchError(self.shown, reason), exc), False) from None

    def finish(self) -> None:
        if self._z not in (False, None) and not self._z.eof:
            raise _Failure(IPFSFetchError(self.shown, "truncated {} body".format(self.encoding)), True)


def _stream_body(
    call: _Call,
    resp: Any,
    shown: str,
    write: Callable[[bytes], None],
    max_bytes: Optional[int],
    transfer: Optional[_Transfer],
) -> int:
    """Read a 200 response to the end into ``write``, decoded; return the decoded size."""
    if resp.status != 200:
        raise _Failure(IPFSGatewayError(shown, resp.status, _read_excerpt(resp)), False)
    decoder = _Decoder(resp.headers.get("Content-Encoding", ""), shown)
    length = None  # type: Optional[int]
    raw_length = resp.headers.get("Content-Length")
    if raw_length is not None and raw_length.strip().isdigit():
        length = int(raw_length)
    identity = decoder.encoding == "identity"
    if identity and length is not None and max_bytes is not None and length > max_bytes:
        reason = "response of {} bytes exceeds max_bytes={}".format(length, max_bytes)
        raise _Failure(IPFSFetchError(shown, reason), False)
    if transfer is not None:
        transfer.start(length if decoder.encoding == "identity" else None)
    total = 0
    while True:
        try:
            raw = resp.read1(_IO_CHUNK)
        except _TRANSPORT_ERRORS as exc:
            reason = _describe(exc, call.deadline, call.timeout)
            raise _Failure(_chain(IPFSFetchError(shown, reason), exc), _is_retryable(exc)) from None
        if not raw:
            break
        for piece in decoder.feed(raw):
            total += len(piece)
            if max_bytes is not None and total > max_bytes:
                reason = "response exceeds max_bytes={}".format(max_bytes)
                raise _Failure(IPFSFetchError(shown, reason), False)
            write(piece)
            if transfer is not None:
                transfer.add(piece)
    decoder.finish()
    return total


# ---------------------------------------------------------------------------
# URL forms: http(s) gateway URLs, ipfs://, /ipfs/ paths and bare CIDs
# ---------------------------------------------------------------------------


class _Target:
    """What a fetch asks for: URLs to try in order, and the CID and path if known."""

    def __init__(self, urls: List[str], cid: Optional[str], path: str) -> None:
        self.urls = urls
        self.cid = cid
        self.path = path  # "" or "/a/b", percent-encoded as in the URL


def _env_gateways() -> List[str]:
    value = os.environ.get(_GATEWAYS_ENV, "")
    found = [item.strip() for item in value.split(",") if item.strip()]
    return found or list(_DEFAULT_GATEWAYS)


def _gateway_urls(gateways: Sequence[str], cid: str, path: str, query: str = "") -> List[str]:
    urls = []
    for base in gateways:
        if not isinstance(base, str):
            raise TypeError("gateways must be a sequence of str")
        url = base.rstrip("/") + "/ipfs/" + cid + path + ("?" + query if query else "")
        if url not in urls:
            urls.append(url)
    return urls


def _resolve(url: str, gateways: Optional[Sequence[str]]) -> _Target:
    """Turn any accepted URL form into the URLs to try, before any I/O."""
    if not isinstance(url, str):
        raise TypeError("url must be a str, not {}".format(type(url).__name__))
    if isinstance(gateways, str):
        raise TypeError("gateways must be a sequence of base URLs, not a str")
    text = url.strip()
    lowered = text.lower()
    if lowered.startswith("ipfs://"):
        rest = text[len("ipfs://") :]
    elif text.startswith("/ipfs/"):
        rest = text[len("/ipfs/") :]
    elif "://" not in text and not text.startswith("/") and _looks_like_cid(text.split("/")[0]):
        rest = text
    else:
        if not lowered.startswith(("http://", "https://")):
            _check_url(text)  # raises the "unsupported scheme" error
        try:
            parts = urllib.parse.urlsplit(text)
        except ValueError:
            return _Target([text], None, "")  # _check_url reports it
        cid = None  # type: Optional[str]
        path = ""
        match = re.match(r"^/ipfs/([^/]+)(/.*)?$", parts.path)
        host = (parts.hostname or "").lower()
        if match and _looks_like_cid(match.group(1)):
            cid, path = match.group(1), match.group(2) or ""
        elif ".ipfs." in host and _looks_like_cid(host.split(".")[0]):
            # Subdomain gateway: https://<cid>.ipfs.example.org/path
            cid, path = host.split(".")[0], parts.path if parts.path != "/" else ""
        urls = [text]
        if cid is not None and gateways:
            urls += [u for u in _gateway_urls(gateways, cid, path, parts.query) if u != text]
        return _Target(urls, cid, path)
    cid, slash, path = rest.partition("/")
    cid = cid.split("?")[0]
    if not _looks_like_cid(cid):
        raise IPFSFetchError(_redact(text), "not a valid CID: {!r}".format(cid[:80]))
    path = slash + path
    bases = list(gateways) if gateways else _env_gateways()
    return _Target(_gateway_urls(bases, cid, path), cid, path)


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------


class _Auto:
    """The default of ``deadline``: bounded for in-memory calls, open for streams."""

    def __repr__(self) -> str:
        return "<auto>"


AUTO = _Auto()

_Deadline_t = Union[float, None, _Auto]


def _pick_deadline(deadline: _Deadline_t, bounded: bool) -> Optional[float]:
    if isinstance(deadline, _Auto):
        return DEFAULT_DEADLINE if bounded else None
    return deadline


def _link_cid(link: str) -> Optional[str]:
    match = re.search(r"/ipfs/([^/?#]+)", link)
    candidate = match.group(1) if match else link.rsplit("/", 1)[-1]
    return candidate if _looks_like_cid(candidate) else None


def publish_to_ipfs(
    data: Any,
    filename: str = "data.json",
    content_type: str = "application/json",
    *,
    timeout: Optional[float] = DEFAULT_TIMEOUT,
    deadline: _Deadline_t = AUTO,
    retries: int = DEFAULT_RETRIES,
    headers: Optional[Mapping[str, str]] = None,
    ssl_context: Optional[ssl.SSLContext] = None,
    progress: Optional[_Progress] = None,
    verify: bool = False,
) -> str:
    """Upload ``data`` to OGPU's pinning service and return its IPFS link.

    Args:
        data: a dict (sent as ``json.dumps(data)``), a str (UTF-8), bytes-like
            content, an ``os.PathLike`` path, or a binary file object.  Files are
            streamed in chunks at constant memory; a non-seekable stream is first
            spooled to a temporary file so that its length is known.
        filename: the part's file name (escaped the way browsers do it).
        content_type: the part's Content-Type; CR, LF and NUL are refused.
        timeout: seconds each network operation (connect, send, wait for bytes)
            may take.
        deadline: seconds the whole call may take, retries included; ``None`` for
            no bound.  By default 120 s for dict, str and bytes-like data, and no
            bound for files and streams (``timeout`` still applies).  With the
            defaults a dict or str publish therefore ends within about 120 s plus
            one ``timeout`` (150 s) whatever the server does.
        retries: extra attempts after connection failures and HTTP 408, 429,
            500, 502, 503, 504, with exponential backoff and full jitter, honouring
            ``Retry-After``; default 3.
        headers: extra request headers (a token, say); never sent to another
            host after a redirect.
        ssl_context: an ``ssl.SSLContext`` to verify the server with.
        progress: ``progress(done_bytes, total_bytes)`` after each chunk sent.
        verify: compute the CIDv0 of the bytes while sending them and check it
            against the CID in the returned link.

    Returns:
        The ``link`` of the service's JSON answer.

    Raises:
        IPFSFetchError: network, TLS or timeout trouble, or a body that is not JSON.
        IPFSGatewayError: an HTTP status other than 200/201, or a JSON answer
            without a usable ``link``.
        IPFSVerificationError: with ``verify=True``, the link names another CID
            (the upload itself has happened).
        TypeError, ValueError: for unsupported ``data`` or bad arguments.
    """
    if not isinstance(filename, str) or not isinstance(content_type, str):
        raise TypeError("filename and content_type must be str")
    if re.search(r"[\r\n\0]", content_type):
        raise ValueError("content_type must not contain CR, LF or NUL")
    if "\0" in filename:
        raise ValueError("filename must not contain NUL")
    source = _open_source(data)
    try:
        call = _Call(
            "POST",
            timeout,
            _pick_deadline(deadline, source.in_memory),
            retries,
            headers,
            ssl_context,
        )
        body = _Multipart(source, filename, content_type)
        transfer = _Transfer(progress, 0 if verify else None)
        url = _PUBLISH_URL
        link = _exchange(
            call, [url], _consume_publish, body, transfer, accept="application/json"
        )  # type: str
    finally:
        source.close()
    if verify:
        assert transfer.builder is not None
        expected = str(transfer.builder.finish())
        _check_published_cid(link, expected)
    return link


def _check_published_cid(link: str, expected: str) -> None:
    named = _link_cid(link)
    shown = _redact(link)
    if named is None:
        reason = "the link names no CID; the upload happened, its CID is {}".format(expected)
        raise IPFSVerificationError(shown, expected, reason)
    got = _parse_cid(named)
    mine = _parse_cid(expected)
    same = got == mine or (got.codec == _CODEC_DAG_PB and got.multihash == mine.multihash)
    if not same:
        reason = "the upload happened, but the link names {} while the content is {}".format(
            named, expected
        )
        raise IPFSVerificationError(shown, expected, reason)


def _consume_publish(resp: Any, shown: str) -> str:
    status = resp.status
    if status not in (200, 201):
        raise _Failure(IPFSGatewayError(shown, status, _read_excerpt(resp)), False)
    chunks = []  # type: List[bytes]
    size = 0
    while True:
        try:
            raw = resp.read1(_IO_CHUNK)
        except _TRANSPORT_ERRORS as exc:
            reason = _describe(exc, _Deadline(None), None)
            raise _Failure(_chain(IPFSFetchError(shown, reason), exc), False) from None
        if not raw:
            break
        size += len(raw)
        if size > 1024 * 1024:
            raise _Failure(IPFSFetchError(shown, "answer larger than 1 MiB"), False)
        chunks.append(raw)
    raw_body = b"".join(chunks)
    excerpt = raw_body[:1024].decode("utf-8", "replace").strip()[:_ERROR_BODY_EXCERPT] or None
    try:
        answer = json.loads(raw_body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        reason = "answer is not valid JSON ({})".format(str(exc)[:100])
        raise _Failure(_chain(IPFSFetchError(shown, reason), exc), False) from None
    if not isinstance(answer, dict):
        raise _Failure(IPFSGatewayError(shown, status, excerpt), False)
    link = answer.get("link")
    if not isinstance(link, str) or not link.strip():
        raise _Failure(IPFSGatewayError(shown, status, excerpt), False)
    return link


def _fetch(
    url: str,
    write: Callable[[bytes], None],
    reset: Callable[[], None],
    timeout: Optional[float],
    deadline: Optional[float],
    retries: int,
    max_bytes: Optional[int],
    gateways: Optional[Sequence[str]],
    headers: Optional[Mapping[str, str]],
    ssl_context: Optional[ssl.SSLContext],
    progress: Optional[_Progress],
    verify: bool,
) -> int:
    """GET ``url`` (any accepted form) into ``write``; ``reset`` undoes a failed attempt."""
    if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes < 0):
        raise ValueError("max_bytes must be a non-negative int or None")
    target = _resolve(url, gateways)
    for candidate in target.urls:
        _check_url(candidate)
    call = _Call("GET", timeout, deadline, retries, headers, ssl_context)
    transfer = _Transfer(progress)
    if verify:
        return _fetch_verified(call, target, write, reset, max_bytes, transfer)

    def consume(resp: Any, shown: str) -> int:
        reset()
        return _stream_body(call, resp, shown, write, max_bytes, transfer)

    return _exchange(call, target.urls, consume, transfer=transfer)  # type: ignore[no-any-return]


def _fetch_verified(
    call: _Call,
    target: _Target,
    write: Callable[[bytes], None],
    reset: Callable[[], None],
    max_bytes: Optional[int],
    transfer: _Transfer,
) -> int:
    raise NotImplementedError  # filled in by the trustless section


def fetch_ipfs_json(
    url: str,
    *,
    timeout: Optional[float] = DEFAULT_TIMEOUT,
    deadline: Optional[float] = DEFAULT_DEADLINE,
    retries: int = DEFAULT_RETRIES,
    max_bytes: Optional[int] = DEFAULT_MAX_JSON_BYTES,
    gateways: Optional[Sequence[str]] = None,
    headers: Optional[Mapping[str, str]] = None,
    ssl_context: Optional[ssl.SSLContext] = None,
    verify: bool = False,
) -> Dict[str, Any]:
    """Fetch ``url`` and return its content parsed as a JSON object.

    Args:
        url: an ``http(s)://`` URL, ``ipfs://<cid>[/path]``, ``/ipfs/<cid>[/path]``
            or a bare CID (the last three are tried on ``gateways`` in order).
        timeout: seconds each network operation may take.
        deadline: seconds the whole call may take, retries included (default
            120).  With the defaults no server behaviour holds the call longer
            than about 120 s.
        retries: extra attempts on connection failures, timeouts and HTTP 408,
            429, 500, 502, 503, 504 (default 3).
        max_bytes: the largest body accepted, after decompression (64 MiB).
        gateways: base URLs for the CID forms (default: ``OGPU_IPFS_GATEWAYS``,
            comma-separated, else ``https://cipfs.ogpuscan.io``); an http(s) URL
            naming ``/ipfs/<cid>`` falls over to them too.
        headers: extra request headers, never sent to another host on a redirect.
        ssl_context: an ``ssl.SSLContext`` to verify servers with.
        verify: fetch a CAR and check every byte against the CID (trustless).

    Raises:
        IPFSFetchError: network trouble, invalid URL, a body over ``max_bytes``,
            invalid JSON or encoding, or a JSON value that is not an object.
        IPFSGatewayError: an HTTP status other than 200.
        IPFSVerificationError: with ``verify=True``, content that fails its CID.
    """
    buffer = io.BytesIO()
    _fetch(
        url, _writer(buffer), _truncate(buffer), timeout, deadline, retries, max_bytes,
        gateways, headers, ssl_context, None, verify,
    )
    raw = buffer.getvalue()
    shown = _redact(url)
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and UnicodeDecodeError.
        reason = "invalid JSON ({})".format(str(exc)[:120] or type(exc).__name__)
        raise IPFSFetchError(shown, reason) from exc
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(value), "a number"
        )
        raise IPFSFetchError(shown, "expected a JSON object, got {}".format(kind))
    return value


def _writer(fileobj: Any) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        fileobj.write(data)

    return write


def _truncate(buffer: Any) -> Callable[[], None]:
    def reset() -> None:
        buffer.seek(0)
        buffer.truncate()

    return reset


def fetch_ipfs_bytes(
    url: str,
    *,
    timeout: Optional[float] = DEFAULT_TIMEOUT,
    deadline: Optional[float] = None,
    retries: int = DEFAULT_RETRIES,
    max_bytes: Optional[int] = None,
    gateways: Optional[Sequence[str]] = None,
    headers: Optional[Mapping[str, str]] = None,
    ssl_context: Optional[ssl.SSLContext] = None,
    progress: Optional[_Progress] = None,
    verify: bool = False,
) -> bytes:
    """Fetch ``url`` (any form :func:`fetch_ipfs_json` takes) and return its bytes.

    Compressed answers are decoded; ``max_bytes`` bounds the decoded size.  There
    is no overall ``deadline`` by default (``timeout`` still bounds every wait).
    ``progress(done, total_or_None)`` is called as bytes arrive.  Raises the same
    errors as :func:`fetch_ipfs_json`, JSON aside.
    """
    buffer = io.BytesIO()
    _fetch(
        url, _writer(buffer), _truncate(buffer), timeout, deadline, retries, max_bytes,
        gateways, headers, ssl_context, progress, verify,
    )
    return buffer.getvalue()


def fetch_ipfs_to_file(
    url: str,
    dest: Union[str, "os.PathLike[str]", BinaryIO],
    *,
    timeout: Optional[float] = DEFAULT_TIMEOUT,
    deadline: Optional[float] = None,
    retries: int = DEFAULT_RETRIES,
    max_bytes: Optional[int] = None,
    gateways: Optional[Sequence[str]] = None,
    headers: Optional[Mapping[str, str]] = None,
    ssl_context: Optional[ssl.SSLContext] = None,
    progress: Optional[_Progress] = None,
    verify: bool = False,
) -> int:
    """Stream ``url`` into ``dest`` at constant memory; return the bytes written.

    ``dest`` is a path or a binary file object.  A path is written atomically:
    into a temporary file in the same folder, flushed and fsynced, then renamed
    over ``dest``; any failure or interruption (``KeyboardInterrupt`` included)
    leaves ``dest`` as it was and no temporary file behind.  A file object is
    written from its current position.  Other arguments and errors as
    :func:`fetch_ipfs_bytes`.
    """
    common = (timeout, deadline, retries, max_bytes, gateways, headers, ssl_context, progress)
    if hasattr(dest, "write"):
        fileobj = dest  # type: Any
        start = None
        try:
            if fileobj.seekable():
                start = fileobj.tell()
        except (AttributeError, OSError, ValueError):
            start = None

        def reset_obj() -> None:
            if start is not None:
                fileobj.seek(start)
                fileobj.truncate()

        return _fetch(url, _writer(fileobj), reset_obj, *common, verify=verify)
    if not isinstance(dest, (str, bytes, os.PathLike)):
        raise TypeError("dest must be a path or a binary file object")
    path = os.fsdecode(os.fspath(dest))
    folder = os.path.dirname(os.path.abspath(path))
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 -- renamed or removed below
        dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".part", delete=False
    )
    try:
        with handle:

            def reset_file() -> None:
                handle.seek(0)
                handle.truncate()

            written = _fetch(url, _writer(handle), reset_file, *common, verify=verify)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        raise
    return written


# ---------------------------------------------------------------------------
# Command line: `ogpu-ipfs`, `python -m ogpu`, `python ipfs.py`
# ---------------------------------------------------------------------------

_CLI_EXAMPLES = """\
examples:
  %(prog)s publish result.json                 upload a file, print its link
  echo '{"a": 1}' | %(prog)s publish - --filename a.json
  %(prog)s fetch ipfs://QmCID -o weights.bin   download to a file (atomically)
  %(prog)s fetch https://gw.example/ipfs/QmCID --verify > out.json
  %(prog)s cid model.safetensors               the CID `ipfs add` would give
  %(prog)s cid --cid-version 1 - < data.bin

environment:
  OGPU_IPFS_GATEWAYS   comma-separated gateway base URLs for CID forms
  HTTP(S)_PROXY, NO_PROXY, SSL_CERT_FILE, SSL_CERT_DIR, REQUESTS_CA_BUNDLE

exit status: 0 success, 1 IPFS error (one line on stderr), 2 usage error
"""


class _ProgressLine:
    """A one-line progress report on a terminal: bytes, rate and ETA."""

    _MIN_SIZE = 4 * 1024 * 1024  # smaller transfers finish before a line helps

    def __init__(self, stream: Any, label: str) -> None:
        self.stream = stream
        self.label = label
        self.started = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: Optional[int]) -> None:
        now = time.monotonic()
        final = total is not None and done >= total
        if now - self.last < 0.2 and not final:
            return
        if not self.shown and (total is None or total < self._MIN_SIZE) and done < self._MIN_SIZE:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed
        text = "{} {}".format(self.label, _human(done))
        if total:
            text += " / {} ({:.0f}%)".format(_human(total), 100.0 * done / total)
        text += "  {}/s".format(_human(rate))
        if total and rate > 0 and done < total:
            text += "  ETA {:.0f}s".format((total - done) / rate)
        self.stream.write("\r" + text.ljust(70)[:120])
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return "{:.0f} {}".format(size, unit) if unit == "B" else "{:.1f} {}".format(size, unit)
        size /= 1024.0
    return ""  # pragma: no cover


def _cli_parser() -> "argparse.ArgumentParser":
    import argparse

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="seconds per network operation (default %(default)s)")
    common.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                        help="seconds for the whole transfer (default: no bound)")
    common.add_argument("--retries", type=int, default=DEFAULT_RETRIES, metavar="N",
                        help="extra attempts on transient failures (default %(default)s)")
    common.add_argument("--gateway", action="append", default=None, metavar="URL",
                        help="gateway base URL for CID forms; repeatable, tried in order")
    verbosity = common.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="only errors")
    verbosity.add_argument("-v", "--verbose", action="count", default=0,
                           help="log requests (-vv: debug)")

    parser = argparse.ArgumentParser(
        prog="ogpu-ipfs",
        description="Publish to and fetch from IPFS for the OGPU network.",
        epilog=_CLI_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    publish = commands.add_parser("publish", parents=[common], help="upload a file, print its link",
                                  description="Upload PATH (or stdin with -) and print the link.")
    publish.add_argument("path", metavar="PATH|-")
    publish.add_argument("--filename", help="name sent with the upload (default: PATH's name)")
    publish.add_argument("--content-type",
                         help="guessed from the file name; application/octet-stream otherwise")
    publish.add_argument("--verify", action="store_true",
                         help="check the CID in the link against the content sent")

    fetch = commands.add_parser("fetch", parents=[common], help="download content",
                                description="Download URL (http(s)://, ipfs://, /ipfs/ or a CID).")
    fetch.add_argument("url", metavar="URL")
    fetch.add_argument("-o", "--output", metavar="FILE",
                       help="write to FILE (atomically) instead of stdout")
    fetch.add_argument("--max-bytes", type=int, default=None, metavar="N",
                       help="fail if the content is larger than N bytes")
    fetch.add_argument("--verify", action="store_true",
                       help="trustless: check every byte against the CID")

    cid = commands.add_parser("cid", parents=[common], help="print the CID of a file",
                              description="Print the CID `ipfs add` gives for PATH (or stdin).")
    cid.add_argument("path", metavar="PATH|-")
    cid.add_argument("--cid-version", type=int, choices=(0, 1), default=0)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit status (0, 1 on IPFS errors, 2 on usage)."""
    parser = _cli_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    level = logging.ERROR if args.quiet else (
        logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ogpu-ipfs: %(message)s"))
    _log.addHandler(handler)
    old_level = _log.level
    _log.setLevel(level)
    progress = None  # type: Optional[_ProgressLine]
    try:
        if args.command == "cid":
            source = sys.stdin.buffer if args.path == "-" else _cli_path(args.path)
            print(compute_cid(source, cid_version=args.cid_version))
            return 0
        if sys.stderr.isatty() and not args.quiet:
            progress = _ProgressLine(sys.stderr, args.command)
        if args.command == "publish":
            return _cli_publish(args, progress)
        return _cli_fetch(args, progress)
    except OGPUError as exc:
        if progress is not None:
            progress.close()
            progress = None
        print("ogpu-ipfs: error: {}".format(exc), file=sys.stderr)
        return 1
    except (OSError, ValueError, TypeError) as exc:  # local files, bad values
        print("ogpu-ipfs: error: {}".format(exc), file=sys.stderr)
        return 1 if isinstance(exc, OSError) else 2
    except KeyboardInterrupt:
        print("\nogpu-ipfs: interrupted", file=sys.stderr)
        return 130
    finally:
        if progress is not None:
            progress.close()
        _log.removeHandler(handler)
        _log.setLevel(old_level)


def _cli_path(path: str) -> "os.PathLike[str]":
    import pathlib

    return pathlib.Path(path)


def _cli_publish(args: Any, progress: Optional[_ProgressLine]) -> int:
    if args.path == "-":
        source = sys.stdin.buffer  # type: Any
        filename = args.filename or "stdin"
    else:
        source = _cli_path(args.path)
        filename = args.filename or os.path.basename(args.path)
    content_type = args.content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    link = publish_to_ipfs(
        source, filename, content_type, timeout=args.timeout, deadline=args.deadline,
        retries=args.retries, progress=progress, verify=args.verify,
    )
    if progress is not None:
        progress.close()
    print(link)
    return 0


def _cli_fetch(args: Any, progress: Optional[_ProgressLine]) -> int:
    options = {
        "timeout": args.timeout,
        "deadline": args.deadline,
        "retries": args.retries,
        "max_bytes": args.max_bytes,
        "gateways": args.gateway,
        "progress": progress,
        "verify": args.verify,
    }  # type: Dict[str, Any]
    if args.output and args.output != "-":
        fetch_ipfs_to_file(args.url, args.output, **options)
    else:
        out = sys.stdout.buffer
        fetch_ipfs_to_file(args.url, out, **options)
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

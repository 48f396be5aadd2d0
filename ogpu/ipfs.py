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

import _thread
import base64
import binascii
import contextlib
import email.utils
import functools
import hashlib
import http.client
import io
import json
import os
import random
import re
import socket
import ssl
import sys
import tempfile
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



class _Logger:
    """``logging.getLogger("ogpu.ipfs")``, imported only when it can matter.

    Importing :mod:`logging` (with the threading and traceback machinery it
    pulls in) costs more than everything else this module adds to the
    standard library it needs.  Until the program has imported it, nothing
    can have lowered the logger's level or given it a handler, so debug and
    info records would be dropped: they are skipped without the import.
    Warnings import it, so that they still reach ``logging.lastResort``.
    """

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        if "logging" in sys.modules:
            self._logger().debug(msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        if "logging" in sys.modules:
            self._logger().info(msg, *args, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._logger().warning(msg, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # level, addHandler, setLevel ...
        return getattr(self._logger(), name)

    @staticmethod
    def _logger() -> Any:
        import logging

        return logging.getLogger("ogpu.ipfs")


_log = _Logger()


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


def _decode_pbnode(block: Union[bytes, memoryview]) -> Tuple[List[_PbLink], Optional[memoryview]]:
    """Decode a dag-pb node into ``(links, data)``; ``data`` is None when absent.

    ``data`` is a view into ``block``, not a copy: UnixFS decodes it next, and
    copies out only the file bytes it holds.
    """
    links = []  # type: List[_PbLink]
    data = None  # type: Optional[memoryview]
    for field, wire_type, value in _pb_fields(block):
        if field == 2 and wire_type == 2 and data is None:
            links.append(_decode_pblink(value))
        elif field == 1 and wire_type == 2 and data is None:
            data = value
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
        self._frames = {}  # type: Dict[int, Tuple[bytes, bytes]]  # leaf length -> (head, tail)

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
        # dag-pb leaf: PBNode{Data: UnixFS{Type: File, Data: chunk, filesize}};
        # all full chunks share one framing, built once.
        frame = self._frames.get(length)
        if frame is None:
            inner_head = b"\x08\x02" + (_pb_key(2, 2) + _varint_encode(length) if length else b"")
            inner_tail = _pb_uint(3, length)
            inner_len = len(inner_head) + length + len(inner_tail)
            head = _pb_key(1, 2) + _varint_encode(inner_len) + inner_head
            frame = self._frames[length] = (head, inner_tail)
        head, inner_tail = frame
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
# CAR and verification (https://ipld.io/specs/transport/car/carv1/,
# https://specs.ipfs.tech/http-gateways/trustless-gateway/)
# ---------------------------------------------------------------------------
#
# Nothing here does I/O apart from the optional spool file of _BlockBuffer:
# the HTTP layer feeds bytes in and receives verified file bytes through an
# ``emit`` callback.  Every failure caused by the bytes received is an
# IPFSVerificationError made by _malformed(); the caller fills in url and cid.

# A CAR section is varint(len) | CID | block.  The CID adds at most ~150 bytes
# (version, codec, hash code, length, and a digest of _MAX_DIGEST_LEN bytes).
_MAX_CAR_SECTION = _MAX_BLOCK_SIZE + 256
# The CARv1 header is {"roots": [CID...], "version": 1}: three levels deep.
_MAX_CBOR_DEPTH = 16
_CBOR_TAG_CID = 42  # https://github.com/ipld/cid-cbor/ (tag 42, 0x00 prefix)
# How deep a file's DAG may be below its root.  Kubo's balanced layout with
# 174 links needs 7 levels of nodes for 2**64 bytes; 64 only stops hostile chains.
_MAX_DAG_DEPTH = 64
# Links known but not yet fetched.  An honest DAG has at most max_links per
# level pending (174 * 3 for a 1 TiB Kubo file); this caps the memory a hostile
# DAG of maximally wide 2 MiB nodes could make us commit.
_MAX_PENDING_LINKS = 1 << 17
# CIDs remembered as already consumed, so late duplicates are dropped rather
# than buffered; past this many, late duplicates are buffered (still bounded).
_MAX_CONSUMED_REMEMBERED = 1 << 16
# Blocks the file uses more than once (runs of zeros, above all) are kept in a
# small cache, a share of buffer_limit, after the walk stops needing them for
# now: a dups=n response sends each block once, however often the file repeats it.
_REPEAT_CACHE_SHARE = 8
# With max_bytes set, a response may carry this much beyond twice the file
# (the DAG's own nodes, duplicates): more means a flood, not a file.
_RECEIVED_SLACK = 1024 * 1024
_DEFAULT_BUFFER_LIMIT = 32 * 1024 * 1024


class _TooLarge(Exception):
    """The file is bigger than the caller's ``max_bytes``; the caller translates it."""

    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(size)


# -- dag-cbor, just enough for the CAR header --------------------------------
# https://ipld.io/specs/codecs/dag-cbor/spec/ (a strict subset of RFC 8949):
# definite lengths only, minimal integer encodings, map keys are text strings,
# and the only tag is 42 (a CID).  Map key order is not enforced: the header
# is untrusted and only diagnostic, so strictness there would gain nothing.

_CborValue = Any  # int | str | bytes | list | dict | _Cid


def _read_cbor_head(buf: memoryview, pos: int) -> Tuple[int, int, int]:
    """Read an item's initial byte and argument; return ``(new_pos, major, argument)``."""
    if pos >= len(buf):
        raise _malformed("truncated CBOR in CAR header")
    initial = buf[pos]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if info < 24:
        return pos, major, info
    if info > 27:  # 28-30 reserved; 31 is an indefinite length, banned in dag-cbor
        raise _malformed("unsupported CBOR length encoding in CAR header")
    width = 1 << (info - 24)  # 1, 2, 4 or 8 bytes, big-endian
    if pos + width > len(buf):
        raise _malformed("truncated CBOR in CAR header")
    value = int.from_bytes(bytes(buf[pos : pos + width]), "big")
    if value < (24 if width == 1 else 1 << (4 * width)):
        raise _malformed("non-minimal CBOR integer in CAR header")
    return pos + width, major, value


def _read_cbor(buf: memoryview, pos: int, depth: int = 0) -> Tuple[int, _CborValue]:
    """Read one dag-cbor item at ``pos``; return ``(new_pos, value)``."""
    if depth > _MAX_CBOR_DEPTH:
        raise _malformed("CAR header nested too deeply")
    pos, major, arg = _read_cbor_head(buf, pos)
    remaining = len(buf) - pos
    if major == 0:  # unsigned integer
        return pos, arg
    if major in (2, 3):  # byte string, text string
        if arg > remaining:
            raise _malformed("truncated CBOR string in CAR header")
        raw = bytes(buf[pos : pos + arg])
        if major == 2:
            return pos + arg, raw
        try:
            return pos + arg, raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed("CBOR text in CAR header is not UTF-8") from None
    if major == 4:  # array; every item takes at least one byte
        if arg > remaining:
            raise _malformed("truncated CBOR array in CAR header")
        items = []  # type: List[_CborValue]
        for _ in range(arg):
            pos, item = _read_cbor(buf, pos, depth + 1)
            items.append(item)
        return pos, items
    if major == 5:  # map
        if arg * 2 > remaining:
            raise _malformed("truncated CBOR map in CAR header")
        mapping = {}  # type: Dict[str, _CborValue]
        for _ in range(arg):
            pos, key = _read_cbor(buf, pos, depth + 1)
            if not isinstance(key, str):
                raise _malformed("CBOR map key in CAR header is not a string")
            if key in mapping:
                raise _malformed("duplicate key {!r} in CAR header".format(key[:40]))
            pos, mapping[key] = _read_cbor(buf, pos, depth + 1)
        return pos, mapping
    if major == 6 and arg == _CBOR_TAG_CID:
        pos, raw = _read_cbor(buf, pos, depth + 1)
        if not isinstance(raw, bytes) or raw[:1] != b"\x00":
            raise _malformed("CID in CAR header is not a 0x00-prefixed byte string")
        return pos, _cid_from_bytes(raw[1:])
    raise _malformed("unsupported CBOR item (major type {}) in CAR header".format(major))


def _decode_car_header(buf: memoryview) -> List[_Cid]:
    """Decode a CARv1 header ``{"roots": [CID...], "version": 1}``; return the roots."""
    pos, header = _read_cbor(buf, 0)
    if pos != len(buf):
        raise _malformed("trailing bytes in CAR header")
    if not isinstance(header, dict):
        raise _malformed("CAR header is not a map")
    version = header.get("version")
    if version != 1:
        raise _malformed("unsupported CAR version {!r}".format(version))
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(root, _Cid) for root in roots):
        raise _malformed("CAR header roots are not a list of CIDs")
    return roots


# -- CARv1 stream ------------------------------------------------------------


class _CarReader:
    """Split a CARv1 byte stream, fed in arbitrary pieces, into ``(cid, block)`` pairs.

    Frames are ``varint(length) | body``: the first body is the header, every
    later one a section ``CID | block``.  Only bytes of the frame being read
    (plus the rest of the last piece) are held.  The blocks are *not* checked
    against their CIDs here, and ``roots`` is for diagnostics only: the
    trustless-gateway spec has clients verify from the CID they asked for.
    """

    def __init__(self) -> None:
        self.roots = None  # type: Optional[List[_Cid]]
        self._buf = b""  # unparsed bytes start at self._buf[self._pos]
        self._pos = 0
        self._tail = []  # type: List[bytes]  # pieces not yet joined to _buf
        self._tail_len = 0
        self._want = 1  # bytes needed from _pos before parsing can progress

    def feed(self, data: Union[bytes, bytearray, memoryview]) -> List[Tuple[_Cid, bytes]]:
        """Take the next piece of the stream; return the blocks it completed."""
        if not len(data):
            return []
        self._tail.append(data if isinstance(data, bytes) else bytes(data))
        self._tail_len += len(data)
        # Join only once the frame under way is complete, so a large frame
        # arriving in small pieces costs linear, not quadratic, copying.
        if len(self._buf) - self._pos + self._tail_len < self._want:
            return []
        if self._pos == len(self._buf) and len(self._tail) == 1:
            self._buf = self._tail[0]  # the common case: no copy at all
        else:
            # One copy: join takes the unparsed rest as a view, not a slice.
            self._buf = b"".join([memoryview(self._buf)[self._pos :], *self._tail])
        self._pos = 0
        self._tail = []
        self._tail_len = 0
        view = memoryview(self._buf)
        blocks = []  # type: List[Tuple[_Cid, bytes]]
        while True:
            frame = self._next_frame(view)
            if frame is None:
                return blocks
            start, end = frame
            if self.roots is None:
                self.roots = _decode_car_header(view[start:end])
            else:
                blocks.append(self._read_section(view, start, end))

    def finish(self) -> None:
        """Check that the stream ended on a frame boundary, after the header."""
        if self.roots is None:
            raise _malformed("CAR ended before its header was complete")
        if len(self._buf) - self._pos + self._tail_len:
            raise _malformed("CAR truncated inside a block")

    def _next_frame(self, view: memoryview) -> Optional[Tuple[int, int]]:
        """Return ``(start, end)`` of the next complete frame body, or None for more input."""
        pos = self._pos
        available = len(view) - pos
        # 1. The length varint: complete once a byte without the 0x80 bit is in.
        for i in range(min(available, 9)):
            if not view[pos + i] & 0x80:
                break
        else:
            if available < 9:
                self._want = available + 1
                return None
            # Nine continuation bytes: _read_varint below reports it.
        start, length = _read_varint(view, pos)
        # 2. Limits, before waiting for (and buffering) the body.
        if self.roots is None:
            if length > _MAX_CAR_HEADER:
                raise _malformed("CAR header of {} bytes is too long".format(length))
        elif length == 0:
            raise _malformed("empty CAR section")
        elif length > _MAX_CAR_SECTION:
            raise _malformed("CAR section of {} bytes: block over 2 MiB".format(length))
        # 3. The body.
        end = start + length
        if end > len(view):
            self._want = end - pos
            return None
        self._pos = end
        self._want = 1
        return start, end

    @staticmethod
    def _read_section(view: memoryview, start: int, end: int) -> Tuple[_Cid, bytes]:
        body = view[start:end]  # bounds the CID to its section
        pos, cid = _read_cid(body, 0)
        block = bytes(body[pos:])
        if len(block) > _MAX_BLOCK_SIZE:
            raise _malformed("block over 2 MiB: {} has {} bytes".format(cid, len(block)))
        return cid, block


# -- blocks that arrived before they were needed -------------------------------


class _BlockBuffer:
    """Hold verified blocks until the walk reaches them: memory first, then a spool file.

    At most ``limit`` bytes are kept in memory and at most ``3 * limit`` bytes
    are ever written to the spool file (it is emptied whenever nothing in it
    is live), so everything held stays under ``4 * limit``.
    """

    def __init__(self, limit: int, spool_dir: Optional[str]) -> None:
        self.limit = limit
        self.spool_dir = spool_dir
        self._memory = {}  # type: Dict[_Cid, bytes]
        self._memory_bytes = 0
        self._spooled = {}  # type: Dict[_Cid, Tuple[int, int]]  # cid -> (offset, length)
        self._spool = None  # type: Optional[IO[bytes]]
        self._spool_end = 0

    def __contains__(self, cid: _Cid) -> bool:
        return cid in self._memory or cid in self._spooled

    def __len__(self) -> int:
        return len(self._memory) + len(self._spooled)

    def put(self, cid: _Cid, block: bytes) -> None:
        if cid in self:
            return
        size = len(block)
        if self._memory_bytes + size <= self.limit:
            self._memory[cid] = block
            self._memory_bytes += size
            return
        if self._spool_end + size > 3 * self.limit:
            raise _malformed("more than {} bytes of blocks arrived out of order".format(4 * self.limit))
        if self._spool is None:
            # OSError here (no space, bad spool_dir) is the environment's, not the input's.
            self._spool = tempfile.TemporaryFile(dir=self.spool_dir)  # noqa: SIM115 (closed in close())
        self._spool.seek(self._spool_end)
        self._spool.write(block)
        self._spooled[cid] = (self._spool_end, size)
        self._spool_end += size

    def get(self, cid: _Cid) -> Optional[bytes]:
        block = self._memory.get(cid)
        if block is not None or cid not in self._spooled:
            return block
        assert self._spool is not None
        offset, size = self._spooled[cid]
        self._spool.seek(offset)
        block = self._spool.read(size)
        # The bytes left our memory, so they are checked again on the way back.
        if len(block) != size or not cid.check(block):
            raise _malformed("block {} changed in the spool file".format(cid))
        return block

    def remove(self, cid: _Cid) -> None:
        block = self._memory.pop(cid, None)
        if block is not None:
            self._memory_bytes -= len(block)
        elif self._spooled.pop(cid, None) is not None and not self._spooled:
            self._spool_end = 0  # nothing live in the spool: reuse it from the start
            assert self._spool is not None
            self._spool.truncate(0)

    def close(self) -> None:
        self._memory.clear()
        self._memory_bytes = 0
        self._spooled.clear()
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.close()


# -- walking a UnixFS file from its root ------------------------------------

# One pending link: (cid, size the parent says it holds or None, depth below
# the target).  The target itself, and directories on the path, have None.
_Pending = Tuple[_Cid, Optional[int], int]


def _check_supported(cid: _Cid) -> None:
    """Reject CIDs this client cannot verify or read (issue 4: dag-pb/raw, sha2-256/identity)."""
    if cid.hash_code not in (_HASH_SHA2_256, _HASH_IDENTITY):
        raise _malformed("unsupported multihash code 0x{:x} in {}".format(cid.hash_code, cid))
    if cid.codec not in (_CODEC_DAG_PB, _CODEC_RAW):
        raise _malformed("unsupported codec 0x{:x} in {}".format(cid.codec, cid))


class _FileWalker:
    """Verify and reassemble one UnixFS file, block by block, from a trusted CID.

    The walk is the trustless-gateway DFS order (``order=dfs``): resolve the
    path segments through plain UnixFS directories, then visit the file's DAG
    depth first, left to right, emitting data as it is reached.  ``needed()``
    names the next block; ``offer()`` takes any block that arrived.  Blocks
    that arrive early (another order, or ``dups=n`` responses relying on the
    client to reuse a block it already has) are held in a bounded
    _BlockBuffer.  After any exception the walker must only be ``close()``d.
    """

    def __init__(
        self,
        root: _Cid,
        path: Sequence[str],
        emit: Callable[[bytes], None],
        *,
        max_bytes: Optional[int] = None,
        buffer_limit: int = _DEFAULT_BUFFER_LIMIT,
        spool_dir: Optional[str] = None,
    ) -> None:
        if len(path) > _MAX_PATH_DEPTH:
            raise _malformed("path deeper than {} segments".format(_MAX_PATH_DEPTH))
        for segment in path:
            if segment in ("", ".", "..") or "/" in segment:
                raise _malformed("invalid path segment {!r}".format(segment[:80]))
        _check_supported(root)
        self._segments = list(path)
        self._segment_index = 0  # segments resolved so far
        self._emit_callback = emit
        self.max_bytes = max_bytes
        self.received = 0  # bytes of all blocks offered
        self.emitted = 0  # bytes of file data emitted
        self.filesize = None  # type: Optional[int]  # the target's UnixFS size
        # The DFS stack (next link last) and how often each CID is on it.
        self._stack = [(root, None, 0)]  # type: List[_Pending]
        self._pending = {root: 1}  # type: Dict[_Cid, int]
        # Links of the dag-pb nodes held in the buffer: these blocks will be
        # needed once the buffered node is reached, so they are kept too.
        self._future = {}  # type: Dict[_Cid, int]
        self._buffer = _BlockBuffer(buffer_limit, spool_dir)
        self._consumed = {}  # type: Dict[bytes, int]  # binary CID -> times used
        self._repeats = {}  # type: Dict[_Cid, bytes]  # oldest first
        self._repeats_bytes = 0
        self._repeats_limit = buffer_limit // _REPEAT_CACHE_SHARE

    # -- public interface --

    def needed(self) -> Optional[_Cid]:
        """The CID of the next block the walk needs, or None when the file is complete."""
        self._advance()
        return self._stack[-1][0] if self._stack else None

    def offer(self, cid: _Cid, block: bytes) -> None:
        """Take a block that arrived for ``cid``: verify it, then use, hold or drop it."""
        self.received += len(block)
        if self.max_bytes is not None and self.received > 2 * self.max_bytes + _RECEIVED_SLACK:
            raise _malformed(
                "received {} bytes of blocks for a file of at most {} bytes".format(
                    self.received, self.max_bytes
                )
            )
        # 1. Verify before anything else looks at the bytes.
        _check_supported(cid)
        if len(block) > _MAX_BLOCK_SIZE:
            raise _malformed("block over 2 MiB: {} has {} bytes".format(cid, len(block)))
        if not cid.check(block):
            raise _malformed("block {} does not match its hash".format(cid))
        # 2. Use it now, keep it for later, or drop it.
        self._advance()
        if not self._stack:
            return  # the file is complete: anything more is surplus
        if cid == self._stack[-1][0]:
            self._consume(block)
            self._advance()
        elif self._wanted(cid) or cid.to_bytes() not in self._consumed:
            # Needed further on, or perhaps a child of a node not reached
            # yet: hold it (bounded).  Blocks of other DAGs wait here too
            # until finish(); only the buffer bound limits them.
            self._hold(cid, block)
        # else: a duplicate of a block already used and not needed again.

    def finish(self) -> int:
        """Check the file is complete and its size right; return the bytes emitted."""
        try:
            self._advance()
            if self._stack:
                raise _malformed("missing block {}".format(self._stack[-1][0]))
            if self.emitted != self.filesize:
                raise _malformed(
                    "reassembled size {} disagrees with UnixFS filesize {}".format(
                        self.emitted, self.filesize
                    )
                )
            return self.emitted
        finally:
            self.close()

    def close(self) -> None:
        """Release held blocks and the spool file; safe to call more than once."""
        self._buffer.close()
        self._future.clear()
        self._repeats.clear()
        self._repeats_bytes = 0

    # -- the walk --

    def _wanted(self, cid: _Cid) -> bool:
        return self._pending.get(cid, 0) + self._future.get(cid, 0) > 0

    def _advance(self) -> None:
        """Consume the blocks at the top of the stack that need no input."""
        while self._stack:
            cid = self._stack[-1][0]
            if cid.hash_code == _HASH_IDENTITY:
                block = cid.digest  # identity multihash: the CID carries the block
            else:
                held = self._buffer.get(cid)
                if held is None:
                    held = self._repeats.get(cid)
                if held is None:
                    return
                block = held
            self._consume(block)

    def _consume(self, block: bytes) -> None:
        """Process the verified block of the link at the top of the stack."""
        cid, expected, depth = self._stack.pop()
        self._pending[cid] -= 1
        if not self._pending[cid]:
            del self._pending[cid]
        key = cid.to_bytes()
        repeated = key in self._consumed
        if repeated or len(self._consumed) < _MAX_CONSUMED_REMEMBERED:
            self._consumed[key] = self._consumed.get(key, 0) + 1
        if cid.codec == _CODEC_RAW:
            self._raw_leaf(cid, block, expected)
        else:
            self._dag_pb_node(cid, block, expected, depth)
        # Keep the block while the walk will need it again (repeated content,
        # e.g. all-zero chunks, which dups=n responses send only once), and
        # a while longer if it has repeated already.
        if cid.hash_code != _HASH_IDENTITY:
            if self._wanted(cid):
                self._hold(cid, block)
                return
            if cid in self._buffer:
                self._release(cid)
            if repeated:
                self._remember(cid, block)

    def _raw_leaf(self, cid: _Cid, block: bytes, expected: Optional[int]) -> None:
        if self._segment_index < len(self._segments):
            raise _malformed("{} is not a directory".format(self._segment_name()))
        self._check_size(cid, len(block), expected)
        self._emit(block)

    def _dag_pb_node(self, cid: _Cid, block: bytes, expected: Optional[int], depth: int) -> None:
        # dag-pb spec: PBNode{Links, Data}; UnixFS keeps its Data protobuf in Data.
        links, data = _decode_pbnode(block)
        if data is None:
            raise _malformed("dag-pb node {} has no UnixFS data".format(cid))
        node = _decode_unixfs(data)
        if self._segment_index < len(self._segments):
            self._enter_directory(cid, links, node.type)
            return
        if node.type in (_UNIXFS_DIRECTORY, _UNIXFS_HAMT_SHARD):
            raise _malformed("{} is a directory, not a file".format(self._target_name(cid)))
        if node.type not in (_UNIXFS_FILE, _UNIXFS_RAW):
            raise _malformed(
                "{} is a UnixFS node of type {}, not a file".format(self._target_name(cid), node.type)
            )
        # UNIXFS.md: a file's blocksizes list the size of each child, in link
        # order; its filesize is its own data plus all of them.
        if len(node.blocksizes) != len(links):
            raise _malformed(
                "UnixFS node {} has {} links but {} blocksizes".format(cid, len(links), len(node.blocksizes))
            )
        size = len(node.data) + sum(node.blocksizes)
        if node.filesize is not None and node.filesize != size:
            raise _malformed(
                "reassembled size {} disagrees with UnixFS filesize {} (node {})".format(
                    size, node.filesize, cid
                )
            )
        self._check_size(cid, size, expected)
        if links:
            if depth >= _MAX_DAG_DEPTH:
                raise _malformed("file DAG deeper than {} levels".format(_MAX_DAG_DEPTH))
            if len(self._stack) + len(links) > _MAX_PENDING_LINKS:
                raise _malformed("more than {} pending links".format(_MAX_PENDING_LINKS))
            for link, blocksize in zip(reversed(links), reversed(node.blocksizes)):
                self._push(link.cid, blocksize, depth + 1)
        self._emit(node.data)

    def _enter_directory(self, cid: _Cid, links: List[_PbLink], unixfs_type: int) -> None:
        name = self._segments[self._segment_index]
        if unixfs_type == _UNIXFS_HAMT_SHARD:
            raise _malformed("HAMT-sharded directories are not supported (resolving {!r})".format(name[:80]))
        if unixfs_type != _UNIXFS_DIRECTORY:
            raise _malformed("{} is not a directory".format(self._segment_name()))
        matches = [link for link in links if link.name == name]
        if not matches:
            raise _malformed("no link named {!r} in directory {}".format(name[:80], cid))
        if len(matches) > 1:
            raise _malformed("directory {} has several links named {!r}".format(cid, name[:80]))
        self._segment_index += 1
        self._push(matches[0].cid, None, 0)

    def _push(self, cid: _Cid, expected: Optional[int], depth: int) -> None:
        _check_supported(cid)
        self._stack.append((cid, expected, depth))
        self._pending[cid] = self._pending.get(cid, 0) + 1

    def _check_size(self, cid: _Cid, size: int, expected: Optional[int]) -> None:
        if expected is None:  # the target's root: its size is the file's
            self.filesize = size
            if self.max_bytes is not None and size > self.max_bytes:
                raise _TooLarge(size)
        elif size != expected:
            raise _malformed(
                "block {} holds {} bytes but its parent's blocksizes say {}".format(cid, size, expected)
            )

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        if self.max_bytes is not None and self.emitted + len(data) > self.max_bytes:
            raise _TooLarge(self.emitted + len(data))
        self.emitted += len(data)
        self._emit_callback(data)

    # -- the buffer, and what it implies --

    def _remember(self, cid: _Cid, block: bytes) -> None:
        """Put a repeated block at the young end of the repeat cache, evicting the oldest."""
        old = self._repeats.pop(cid, None)
        if old is not None:
            self._repeats_bytes -= len(old)
        if len(block) > self._repeats_limit:
            return
        while self._repeats_bytes + len(block) > self._repeats_limit:
            oldest = next(iter(self._repeats))
            self._repeats_bytes -= len(self._repeats.pop(oldest))
        self._repeats[cid] = block
        self._repeats_bytes += len(block)

    def _hold(self, cid: _Cid, block: bytes) -> None:
        if cid in self._buffer:
            return
        self._buffer.put(cid, block)
        for link in self._links_of(cid, block):
            self._future[link] = self._future.get(link, 0) + 1

    def _release(self, cid: _Cid) -> None:
        # A worklist, not recursion: held nodes may form long chains.
        work = [cid]
        while work:
            cid = work.pop()
            block = self._buffer.get(cid)
            self._buffer.remove(cid)
            if block is None:
                continue
            for link in self._links_of(cid, block):
                count = self._future[link] - 1
                if count:
                    self._future[link] = count
                    continue
                del self._future[link]
                # Held only because this node would need it, and used before.
                if link in self._buffer and not self._wanted(link) and link.to_bytes() in self._consumed:
                    work.append(link)

    @staticmethod
    def _links_of(cid: _Cid, block: bytes) -> List[_Cid]:
        if cid.codec != _CODEC_DAG_PB:
            return []
        try:
            return [link.cid for link in _decode_pbnode(block)[0]]
        except IPFSVerificationError:
            return []  # reported if and when the walk reaches this node

    def _segment_name(self) -> str:
        return "/".join(self._segments[: self._segment_index]) or "the root"

    def _target_name(self, cid: _Cid) -> str:
        return "/".join(self._segments) if self._segments else str(cid)


# -- the two ways of feeding a walk --------------------------------------------


def _verify_car_stream(
    root: _Cid,
    path: Sequence[str],
    chunks: Iterable[bytes],
    emit: Callable[[bytes], None],
    get_block: Optional[Callable[[_Cid], bytes]] = None,
    **limits: Any,
) -> int:
    """Verify a CAR response for ``root``/``path``; emit the file; return its size.

    Blocks still needed when the CAR ends are an error, unless ``get_block``
    is given: then they are fetched one by one and verified like the rest.
    That completes a ``dups=n`` answer for a file repeating a block that the
    walk could not know it would need again.
    """
    reader = _CarReader()
    walker = _FileWalker(root, path, emit, **limits)
    try:
        for chunk in chunks:
            for cid, block in reader.feed(chunk):
                walker.offer(cid, block)
        reader.finish()
        if get_block is not None:
            _fetch_needed(walker, get_block)
        return walker.finish()
    finally:
        walker.close()


def _verify_by_blocks(
    root: _Cid,
    path: Sequence[str],
    get_block: Callable[[_Cid], bytes],
    emit: Callable[[bytes], None],
    **limits: Any,
) -> int:
    """Verify a file fetched one raw block at a time (``?format=raw``)."""
    walker = _FileWalker(root, path, emit, **limits)
    try:
        _fetch_needed(walker, get_block)
        return walker.finish()
    finally:
        walker.close()


def _fetch_needed(walker: _FileWalker, get_block: Callable[[_Cid], bytes]) -> None:
    cid = walker.needed()
    while cid is not None:
        walker.offer(cid, get_block(cid))
        cid = walker.needed()


# ---------------------------------------------------------------------------
# Content sources: what can be published or hashed, read in bounded chunks
# ---------------------------------------------------------------------------

_Progress = Callable[[int, Optional[int]], None]


class _Source:
    """Content of known size, read in chunks; each ``chunks()`` call starts over."""

    def __init__(
        self,
        size: int,
        data: Optional[memoryview] = None,
        fileobj: Optional[IO[bytes]] = None,
        owned: bool = False,
        in_memory: bool = True,
        text: Optional[str] = None,
    ) -> None:
        self.size = size
        self._data = data
        self._text = text  # ASCII only: its characters are its bytes
        self._file = fileobj
        self._owned = owned
        self._start = fileobj.tell() if fileobj is not None else 0
        self.in_memory = in_memory
        self._used = False

    @property
    def rewindable(self) -> bool:
        return self._data is not None or self._text is not None or self._file is not None

    def chunks(self, size: int = _IO_CHUNK) -> Iterator[Union[bytes, memoryview]]:
        if self._used and self._file is not None:
            self._file.seek(self._start)
        self._used = True
        if self._data is not None:
            data = self._data
            for pos in range(0, len(data), size):
                yield data[pos : pos + size]
            return
        if self._text is not None:
            text = self._text
            for pos in range(0, len(text), size):
                yield text[pos : pos + size].encode("ascii")
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
        # ASCII text (JSON as json.dumps writes it, say) is sent in slices
        # encoded on the way, never copied whole; str.isascii is Python 3.7+.
        isascii = getattr(data, "isascii", None)
        if isascii is not None and isascii():
            return _Source(len(data), text=data)
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


class _HTTPResponse(http.client.HTTPResponse):
    """http.client skips ``100 Continue`` only, and would take any other interim
    answer (``102 Processing``, ``103 Early Hints``) for the final one.  A client
    must read past unexpected 1xx answers (RFC 9110 section 15.2)."""

    def _read_status(self) -> Tuple[str, int, str]:
        version, status, reason = super()._read_status()  # type: ignore[misc]
        if 100 < status < 200 and status != 101:
            status = 100  # begin() then skips its headers and reads on, as for 100
        return version, status, reason


class _HTTPConnection(http.client.HTTPConnection):
    response_class = _HTTPResponse

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
        try:
            conn._tunnel()
        except BaseException:
            # Before 3.11 http.client leaves the proxy's answer to a refused
            # CONNECT open on the socket, and the error's traceback keeps it.
            sock.close()
            raise


class _HTTPSConnection(http.client.HTTPSConnection):
    response_class = _HTTPResponse

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


class _Request(urllib.request.Request):
    """A request that carries its call's deadline to the connection it opens."""

    def __init__(self, url: str, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.deadline = deadline


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        assert isinstance(req, _Request)
        factory = functools.partial(_HTTPConnection, deadline=req.deadline)
        return self.do_open(factory, req)


_stand_in_context = []  # type: List[ssl.SSLContext]


def _stand_in() -> ssl.SSLContext:
    # Made once: even a bare context takes OpenSSL 3 a fraction of a
    # millisecond, a good part of a small fetch.  Never used to connect.
    if not _stand_in_context:
        _stand_in_context.append(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    return _stand_in_context[0]


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, context: Optional[ssl.SSLContext]) -> None:
        # Given no context, urllib on 3.12+ builds a default one here, loading
        # the CA store (~0.1 s); https_open picks the real one.
        super().__init__(context=context or _stand_in())
        self._user_context = context

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        assert isinstance(req, _Request)
        context = self._user_context or _default_ssl_context()
        factory = functools.partial(_HTTPSConnection, deadline=req.deadline)
        return self.do_open(factory, req, context=context)


_ssl_cache = {}  # type: Dict[Tuple[Optional[str], ...], ssl.SSLContext]
_ssl_lock = _thread.allocate_lock()  # threading itself is not needed


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
            try:
                if bundle and os.path.isdir(bundle):
                    context = ssl.create_default_context(capath=bundle)
                elif bundle:
                    context = ssl.create_default_context(cafile=bundle)
                else:
                    context = ssl.create_default_context()
            except OSError as exc:  # ssl.SSLError included
                # A TLS error, so not retried (a bad bundle will not heal),
                # naming the variable to fix rather than a bare errno.
                detail = getattr(exc, "reason", None) or exc.strerror or str(exc)
                message = "cannot load CA certificates from REQUESTS_CA_BUNDLE={!r} ({})".format(
                    bundle, detail
                )
                # Two arguments: SSLError's str() is its strerror, or else repr(args).
                raise ssl.SSLError(exc.errno or 0, message) from exc
            _ssl_cache.clear()
            _ssl_cache[key] = context
        return context


_openers = {}  # type: Dict[Tuple[Any, ...], Any]
_MAX_OPENERS = 16  # distinct (TLS context, proxies) pairs kept; more start afresh


def _build_opener(context: Optional[ssl.SSLContext]) -> Any:
    # A private opener with exactly these handlers: no HTTPErrorProcessor (a
    # status is an answer, handled by _exchange), no redirect handler (followed
    # by _exchange under our own rules), never install_opener.  An opener
    # holds no state of a call (the deadline travels in each _Request), so
    # calls with the same TLS context and proxies share one: building it
    # takes longer than a small fetch over loopback.  The proxy variables are
    # still read on every call.
    proxies = urllib.request.getproxies()
    key = (context, tuple(sorted(proxies.items())))
    opener = _openers.get(key)
    if opener is None:
        opener = urllib.request.OpenerDirector()
        for handler in (
            urllib.request.ProxyHandler(proxies),
            urllib.request.UnknownHandler(),
            _HTTPHandler(),
            _HTTPSHandler(context),
        ):
            opener.add_handler(handler)
        if len(_openers) >= _MAX_OPENERS:
            _openers.clear()
        _openers[key] = opener
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
    if re.match(r"[0-9]+\Z", value):  # not isdigit(): float() refuses "\xb2"
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # 3.6-3.9 return None on garbage
        return None
    import datetime  # only here: rarely needed

    if when.tzinfo is None:
        # asctime() dates carry no zone; every HTTP-date is GMT (RFC 9110 section 5.6.7).
        when = when.replace(tzinfo=datetime.timezone.utc)

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


def _new_boundary() -> str:
    # 128 random bits from the OS, as secrets.token_hex(16) (not imported: it brings hmac).
    return "ogpu-ipfs-" + binascii.hexlify(os.urandom(16)).decode("ascii")


class _Multipart:
    """A single-file multipart body: head, content, tail; length known up front."""

    def __init__(self, source: _Source, filename: str, content_type: str) -> None:
        self.source = source
        boundary = _new_boundary()
        if source._data is not None:
            # In-memory content can be checked outright (re searches the buffer in
            # place, no copy); for streamed files the 128 random bits make a
            # collision practically impossible.
            while re.search(boundary.encode("ascii"), source._data):
                boundary = _new_boundary()
        while source._text is not None and boundary in source._text:
            boundary = _new_boundary()
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
        self.opener = _build_opener(ssl_context)


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
        request = _Request(target, call.deadline, data=data, headers=headers, method=method)
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
                # Every failure is a warning; the one that ends the call is
                # marked so that the CLI, which prints the error itself, can
                # leave it out.
                final = (
                    not failure.retryable
                    or (attempt == call.retries and url == urls[-1])
                    or call.deadline.expired()
                )
                _log.warning(
                    "%s %s failed: %s", call.method, _redact(url), failure.error,
                    extra={"ogpu_final": final},
                )
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
    if raw_length is not None and re.match(r"\s*[0-9]+\s*\Z", raw_length):  # int() refuses "\xb2"
        length = int(raw_length)
    identity = decoder.encoding == "identity"
    if identity and length is not None and max_bytes is not None and length > max_bytes:
        reason = "response of {} bytes exceeds max_bytes={}".format(length, max_bytes)
        raise _Failure(IPFSFetchError(shown, reason), False)
    if transfer is not None:
        transfer.start(length if decoder.encoding == "identity" else None)
    total = 0
    for piece in _decoded_chunks(call, resp, shown, decoder):
        total += len(piece)
        if max_bytes is not None and total > max_bytes:
            reason = "response exceeds max_bytes={}".format(max_bytes)
            raise _Failure(IPFSFetchError(shown, reason), False)
        write(piece)
        if transfer is not None:
            transfer.add(piece)
    return total


def _body_chunks(call: _Call, resp: Any, shown: str, retry: bool) -> Iterator[bytes]:
    """The raw body of ``resp``, chunk by chunk.

    A transport failure, or a body cut short of its Content-Length, raises
    _Failure (retryable when ``retry`` is set and the failure allows it).
    """
    received = 0
    while True:
        try:
            raw = resp.read1(_IO_CHUNK)
        except _TRANSPORT_ERRORS as exc:
            reason = _describe(exc, call.deadline, call.timeout)
            error = _chain(IPFSFetchError(shown, reason), exc)
            raise _Failure(error, retry and _is_retryable(exc)) from None
        if not raw:
            if getattr(resp, "length", None):
                # http.client's read1() ends quietly, without IncompleteRead, when
                # the server closes before Content-Length bytes have come.
                reason = "response body truncated after {} bytes".format(received)
                raise _Failure(IPFSFetchError(shown, reason), retry)
            return
        received += len(raw)
        yield raw


def _decoded_chunks(
    call: _Call, resp: Any, shown: str, decoder: Optional[_Decoder] = None
) -> Iterator[bytes]:
    """The body of ``resp``, Content-Encoding decoded, chunk by chunk."""
    if decoder is None:
        decoder = _Decoder(resp.headers.get("Content-Encoding", ""), shown)
    for raw in _body_chunks(call, resp, shown, retry=True):
        for piece in decoder.feed(raw):
            yield piece
    decoder.finish()


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
            call, [url], functools.partial(_consume_publish, call), body, transfer,
            accept="application/json",
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


def _consume_publish(call: _Call, resp: Any, shown: str) -> str:
    status = resp.status
    if status not in (200, 201):
        raise _Failure(IPFSGatewayError(shown, status, _read_excerpt(resp)), False)
    chunks = []  # type: List[bytes]
    size = 0
    # Not retried: the upload has been received by then.
    for raw in _body_chunks(call, resp, shown, retry=False):
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
    """Trustless fetch: a CAR verified block by block, else raw blocks one by one."""
    shown = _redact(target.urls[0])
    if target.cid is None:
        raise IPFSFetchError(shown, "verify=True needs a URL that names a CID")
    root = _parse_cid(target.cid)
    try:
        path = [urllib.parse.unquote(s, errors="strict") for s in target.path.split("/") if s]
    except UnicodeDecodeError:
        raise IPFSFetchError(shown, "path is not valid UTF-8") from None

    def emit(data: bytes) -> None:
        write(data)
        transfer.add(data)

    def failed(exc: BaseException, where: str) -> _Failure:
        if isinstance(exc, _TooLarge):
            reason = "content exceeds max_bytes={}".format(max_bytes)
            return _Failure(_chain(IPFSFetchError(where, reason), exc), False)
        assert isinstance(exc, IPFSVerificationError)
        error = IPFSVerificationError(exc.url or where, target.cid, exc.reason)
        return _Failure(_chain(error, exc), False)

    def consume_car(resp: Any, where: str) -> int:
        kind = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if resp.status != 200 or kind != "application/vnd.ipld.car":
            raise _NotCar(kind)
        reset()
        transfer.start(None)
        chunks = _decoded_chunks(call, resp, where)
        try:
            return _verify_car_stream(root, path, chunks, emit, max_bytes=max_bytes)
        except (IPFSVerificationError, _TooLarge) as exc:
            raise failed(exc, where) from None

    car_urls = [_with_query(url, "format=car&dag-scope=entity") for url in target.urls]
    try:
        return _exchange(call, car_urls, consume_car, accept=_CAR_ACCEPT)  # type: ignore[no-any-return]
    except _NotCar as exc:
        _log.info("no CAR from the gateway (%s); fetching raw blocks", exc.args[0] or "no type")
    except IPFSGatewayError as exc:
        if exc.status_code not in _CAR_REFUSED_STATUSES:
            raise
        _log.info("gateway refused a CAR (HTTP %s); fetching raw blocks", exc.status_code)

    bases = [_gateway_base(url) for url in target.urls]

    def get_block(cid: _Cid) -> bytes:
        urls = [base + "/ipfs/" + str(cid) + "?format=raw" for base in bases]

        def consume_raw(resp: Any, where: str) -> bytes:
            if resp.status != 200:
                raise _Failure(IPFSGatewayError(where, resp.status, _read_excerpt(resp)), False)
            block = bytearray()
            for piece in _decoded_chunks(call, resp, where):
                block += piece
                if len(block) > _MAX_BLOCK_SIZE:
                    error = IPFSVerificationError(where, str(cid), "block over 2 MiB")
                    raise _Failure(error, False)
            return bytes(block)

        return _exchange(call, urls, consume_raw, accept=_RAW_ACCEPT)  # type: ignore[no-any-return]

    reset()
    transfer.start(None)
    try:
        return _verify_by_blocks(root, path, get_block, emit, max_bytes=max_bytes)
    except (IPFSVerificationError, _TooLarge) as exc:
        if isinstance(exc, IPFSVerificationError) and exc.url is not None:
            raise
        raise failed(exc, shown).error from exc


_CAR_ACCEPT = "application/vnd.ipld.car; version=1; order=dfs; dups=y"
_RAW_ACCEPT = "application/vnd.ipld.raw"
# Answers to a CAR request that mean "not here, ask for blocks" (trustless
# gateways may serve only application/vnd.ipld.raw).
_CAR_REFUSED_STATUSES = frozenset((400, 406, 415, 501))


class _NotCar(Exception):
    """A 2xx answer to a CAR request that is not a CAR: fall back to raw blocks."""


def _with_query(url: str, query: str) -> str:
    parts = urllib.parse.urlsplit(url)
    joined = parts.query + "&" + query if parts.query else query
    return urllib.parse.urlunsplit(parts._replace(query=joined))


def _gateway_base(url: str) -> str:
    """The gateway's base URL: everything before ``/ipfs/`` (or the parent
    domain of a subdomain gateway)."""
    parts = urllib.parse.urlsplit(url)
    index = parts.path.find("/ipfs/")
    if index >= 0:
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path[:index], "", ""))
    netloc = parts.netloc
    marker = netloc.lower().find(".ipfs.")
    if marker >= 0:
        userinfo = netloc.rpartition("@")[0]
        host = netloc[marker + len(".ipfs.") :]
        netloc = (userinfo + "@" if userinfo else "") + host.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, netloc, "", "", ""))


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
        with contextlib.suppress(AttributeError, OSError, ValueError):
            if fileobj.seekable():
                start = fileobj.tell()
        dirty = [False]  # written to since the current attempt began

        def write_obj(data: bytes) -> None:
            dirty[0] = True
            fileobj.write(data)

        def reset_obj() -> None:
            # Only undo what an earlier attempt wrote (and /dev/null, say, is
            # seekable yet cannot be truncated: never touch it otherwise).
            if not dirty[0]:
                return
            if start is None:
                reason = "cannot retry into a destination that cannot seek back"
                raise _Failure(IPFSFetchError(_redact(url), reason), False)
            fileobj.seek(start)
            fileobj.truncate()
            dirty[0] = False

        return _fetch(url, write_obj, reset_obj, *common, verify=verify)
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

# Shown by `ogpu-ipfs COMMAND --help`; %(prog)s is "ogpu-ipfs COMMAND" there.
_CLI_COMMAND_EXAMPLES = {
    "publish": """\
examples:
  %(prog)s result.json                     Content-Type guessed: application/json
  %(prog)s model.bin --content-type application/x-model
  tar c data/ | %(prog)s - --filename data.tar
""",
    "fetch": """\
examples:
  %(prog)s https://gw.example/ipfs/QmCID > out.json
  %(prog)s ipfs://QmCID/path/in/dir -o file.bin --max-bytes 1000000
  %(prog)s QmCID --gateway https://a.example --gateway https://b.example
""",
    "cid": """\
examples:
  %(prog)s model.safetensors               CIDv0 (Qm...), as `ipfs add`
  %(prog)s --cid-version 1 - < data.bin    CIDv1 (bafk.../bafy...), raw leaves
""",
}


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
                                  description="Upload PATH (or stdin with -) and print the link.",
                                  epilog=_CLI_COMMAND_EXAMPLES["publish"],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    publish.add_argument("path", metavar="PATH|-")
    publish.add_argument("--filename", help="name sent with the upload (default: PATH's name)")
    publish.add_argument("--content-type",
                         help="guessed from the file name; application/octet-stream otherwise")
    publish.add_argument("--verify", action="store_true",
                         help="check the CID in the link against the content sent")

    fetch = commands.add_parser("fetch", parents=[common], help="download content",
                                description="Download URL (http(s)://, ipfs://, /ipfs/ or a CID).",
                                epilog=_CLI_COMMAND_EXAMPLES["fetch"],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    fetch.add_argument("url", metavar="URL")
    fetch.add_argument("-o", "--output", metavar="FILE",
                       help="write to FILE (atomically) instead of stdout")
    fetch.add_argument("--max-bytes", type=int, default=None, metavar="N",
                       help="fail if the content is larger than N bytes")
    fetch.add_argument("--verify", action="store_true",
                       help="trustless: check every byte against the CID")

    cid = commands.add_parser("cid", parents=[common], help="print the CID of a file",
                              description="Print the CID `ipfs add` gives for PATH (or stdin).",
                              epilog=_CLI_COMMAND_EXAMPLES["cid"],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
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
    import logging

    level = logging.ERROR if args.quiet else (
        logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ogpu-ipfs: %(message)s"))
    # The failure that ends a call comes back as the error printed below.
    handler.addFilter(lambda record: not getattr(record, "ogpu_final", False))
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
    import mimetypes  # only here: its tables are read on first use

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

# SPDX-License-Identifier: MIT
"""An offline stand-in for OGPU's pinning service and an IPFS gateway, for tests.

:class:`LocalGateway` serves HTTP (or HTTPS) on 127.0.0.1 with an ephemeral
port.  It accepts uploads as OGPU's pinning service does (``POST /file/create``,
multipart/form-data, answering ``{"link": ".../ipfs/<CID>"}``), serves what it
stores as an IPFS gateway does (``GET``/``HEAD /ipfs/<cid>[/path]``), including
the trustless responses of the IPFS trustless gateway spec (CAR files and raw
blocks), and can be told to misbehave: answer an error status, hang, drip,
cut a response short, lie about its length, send garbage, or tamper with the
blocks of a CAR.

Example::

    from ogpu import fetch_ipfs_json, publish_to_ipfs
    from ogpu.testing import LocalGateway

    with LocalGateway() as gateway, gateway.patch_publish():
        link = publish_to_ipfs({"result": "cat"})
        assert fetch_ipfs_json(link) == {"result": "cat"}
        gateway.fail(503, headers={"Retry-After": "1"})  # the next request gets a 503

Content is kept on disk and streamed in both directions, so uploads and
downloads of many GiB run at constant memory.  ``python -m ogpu.testing``
serves one in the foreground.

This module uses the content-addressing code of :mod:`ogpu.ipfs` to mint
CIDs; the multipart parser and the CAR writer are its own, so they check the
client rather than mirror it.
"""

import argparse
import contextlib
import email.utils
import hashlib
import http
import http.server
import io
import json
import logging
import os
import random
import shutil
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import zlib
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

from . import ipfs as _ipfs

__all__ = ["LocalGateway", "RequestRecord", "Upload", "main"]

_log = logging.getLogger("ogpu.testing")

# ---------------------------------------------------------------------------
# Constants and limits
# ---------------------------------------------------------------------------

UPLOAD_PATH = "/file/create"
IPFS_PREFIX = "/ipfs/"

CAR_CONTENT_TYPE = "application/vnd.ipld.car; version=1; order=dfs; dups=y"
RAW_CONTENT_TYPE = "application/vnd.ipld.raw"
_CAR_MEDIA_TYPE = "application/vnd.ipld.car"

_IO_CHUNK = 1024 * 1024  # bytes read from a socket or file per operation
_JSON_SNIFF_LIMIT = 64 * 1024 * 1024  # larger content is never parsed to pick a Content-Type
_MAX_PART_HEADERS = 16 * 1024  # bytes of headers per multipart part (generous: browsers send < 1 KiB)
_MAX_BOUNDARY = 70  # RFC 2046 section 5.1.1
_HANDLER_TIMEOUT = 60.0  # seconds a connection may sit idle before it is dropped
_JOIN_TIMEOUT = 10.0  # seconds close() waits, in total, for the server's threads

_CODEC_DAG_PB = 0x70  # multicodec table: https://github.com/multiformats/multicodec
_UNIXFS_DIRECTORY = 1  # UnixFS Data.DataType (https://specs.ipfs.tech/unixfs/)

# Faults that replace the whole response; the others change how one is sent.
_REPLACING_FAULTS = frozenset(("fail", "hang", "garbage", "disconnect", "endless"))
TAMPER_MODES = (
    "flip",
    "drop",
    "foreign",
    "duplicate",
    "reorder",
    "wrong_root",
    "truncate",
    "refuse_car",
)
# Tamper modes that also make sense for a single raw block.
_RAW_TAMPER_MODES = frozenset(("flip", "truncate", "foreign"))


# ---------------------------------------------------------------------------
# Records of what the gateway received
# ---------------------------------------------------------------------------


class _HeaderMap(Mapping[str, str]):
    """Read-only request headers: names as sent, looked up case-insensitively."""

    def __init__(self, items: Iterable[Tuple[str, str]]) -> None:
        self._items: Dict[str, Tuple[str, str]] = {}
        for name, value in items:
            key = name.lower()
            if key in self._items:
                # Repeated fields combine as RFC 9110 section 5.3 allows.
                value = self._items[key][1] + ", " + value
                name = self._items[key][0]
            self._items[key] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __repr__(self) -> str:
        return repr(dict(self._items.values()))


class RequestRecord(NamedTuple):
    """One request as the gateway received it.

    Attributes:
        method: The request method, e.g. ``"GET"``.
        path: The request target as sent, query string included.
        headers: The request headers; lookups ignore case
            (``record.headers["user-agent"]``).
    """

    method: str
    path: str
    headers: Mapping[str, str]


class Upload(object):
    """One file received by ``POST /file/create``.

    Attributes:
        filename: The part's ``filename`` parameter, decoded the way browsers
            encode it (``%22``, ``%0D`` and ``%0A`` back to ``"``, CR and LF),
            or None when the part had none.
        content_type: The part's ``Content-Type`` header as sent, or None.
        disposition: The part's raw ``Content-Disposition`` header value.
        size: The content's length in bytes.
        cid: The content's CIDv0 (``Qm…``), the one in the returned link.
        link: The link the gateway answered with.
        path: The file on disk holding the content (shared by identical
            uploads; removed when the gateway closes unless it was given a
            ``storage_dir``).
    """

    __slots__ = ("filename", "content_type", "disposition", "size", "cid", "link", "path")

    def __init__(
        self,
        filename: Optional[str],
        content_type: Optional[str],
        disposition: str,
        size: int,
        cid: str,
        link: str,
        path: str,
    ) -> None:
        self.filename = filename
        self.content_type = content_type
        self.disposition = disposition
        self.size = size
        self.cid = cid
        self.link = link
        self.path = path

    @property
    def data(self) -> bytes:
        """The content, read from :attr:`path` (all of it: mind big uploads)."""
        with open(self.path, "rb") as stream:
            return stream.read()

    def __repr__(self) -> str:
        return "Upload(filename={!r}, content_type={!r}, size={}, cid={!r})".format(
            self.filename, self.content_type, self.size, self.cid
        )


# ---------------------------------------------------------------------------
# multipart/form-data (RFC 7578, and the WHATWG HTML encoding of names)
# ---------------------------------------------------------------------------


class _MultipartError(ValueError):
    """The request body is not the multipart/form-data it claims to be."""


def _parse_header_params(value: str) -> Tuple[str, Dict[str, str]]:
    """Split ``type; name=value; name="quoted"`` into the type and its parameters.

    Quoted values end at the next double quote, as browsers write them (they
    escape ``"`` as ``%22`` rather than with a backslash).  Parameter names
    are lowercased; the first occurrence of a name wins.
    """
    head, sep, rest = value.partition(";")
    params: Dict[str, str] = {}
    pos = 0
    while sep and pos < len(rest):
        # 1. skip separators and whitespace
        while pos < len(rest) and rest[pos] in "; \t":
            pos += 1
        if pos >= len(rest):
            break
        # 2. the name, up to '=' (a name without a value is skipped)
        end = pos
        while end < len(rest) and rest[end] not in "=;":
            end += 1
        name = rest[pos:end].strip().lower()
        pos = end
        if pos >= len(rest) or rest[pos] == ";":
            continue
        pos += 1
        while pos < len(rest) and rest[pos] in " \t":
            pos += 1
        # 3. the value: a quoted string or a token
        if pos < len(rest) and rest[pos] == '"':
            end = rest.find('"', pos + 1)
            if end < 0:
                raise _MultipartError("unterminated quoted string in {!r}".format(value))
            param = rest[pos + 1 : end]
            pos = end + 1
        else:
            end = rest.find(";", pos)
            end = len(rest) if end < 0 else end
            param = rest[pos:end].strip()
            pos = end
        params.setdefault(name, param)
    return head.strip(), params


def _decode_form_name(value: str) -> str:
    """Undo the WHATWG escaping of a name or filename in Content-Disposition."""
    return value.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")


class _MultipartParser(object):
    """A streaming multipart body parser: feed it bytes, it calls back per part.

    Memory stays bounded whatever the body size: at most one fed chunk plus a
    delimiter's length is held.  Callbacks: ``on_part(headers)`` with the
    part's headers (names lowercased), ``on_data(data)`` for pieces of its
    body, ``on_part_end()`` when it ends.
    """

    _PREAMBLE, _AFTER_DELIMITER, _HEADERS, _BODY, _DONE = range(5)

    def __init__(
        self,
        boundary: bytes,
        on_part: Callable[[Dict[str, str]], None],
        on_data: Callable[[Union[bytes, memoryview]], None],
        on_part_end: Callable[[], None],
    ) -> None:
        self._delimiter = b"\r\n--" + boundary
        self._on_part = on_part
        self._on_data = on_data
        self._on_part_end = on_part_end
        self._state = self._PREAMBLE
        # A CRLF is put in front so that a delimiter at the very start of the
        # body (the usual case: no preamble) matches like every other one.
        self._buffer = b"\r\n"

    def feed(self, data: bytes) -> None:
        """Parse the next piece of the body."""
        if self._state == self._DONE:
            return  # the epilogue is ignored (RFC 2046 section 5.1.1)
        delimiter = self._delimiter
        keep = len(delimiter) - 1
        if (
            self._state == self._BODY
            and len(data) > keep
            and (self._buffer + data[:keep]).find(delimiter) < 0
            and data.find(delimiter) < 0
        ):
            # Fast path, for the bulk of a big part: no delimiter in sight,
            # so pass the data on as a view instead of copying it around.
            if self._buffer:
                self._on_data(self._buffer)
            self._on_data(memoryview(data)[: len(data) - keep])
            self._buffer = data[len(data) - keep :]
            return
        buffer = self._buffer + data
        while True:
            state = self._state
            if state == self._PREAMBLE:
                index = buffer.find(delimiter)
                if index < 0:
                    buffer = buffer[-keep:]
                    break
                buffer = buffer[index + len(delimiter) :]
                self._state = self._AFTER_DELIMITER
            elif state == self._AFTER_DELIMITER:
                if len(buffer) < 2:
                    break
                if buffer.startswith(b"--"):
                    self._state = self._DONE
                    buffer = b""
                    break
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > 1024:
                        raise _MultipartError("no line break after a boundary delimiter")
                    break
                if buffer[:end].strip(b" \t"):
                    raise _MultipartError("unexpected bytes after a boundary delimiter")
                buffer = buffer[end + 2 :]
                self._state = self._HEADERS
            elif state == self._HEADERS:
                if buffer.startswith(b"\r\n"):
                    raw_headers, buffer = b"", buffer[2:]
                else:
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0 and len(buffer) <= _MAX_PART_HEADERS:
                        break  # wait for more
                    if end < 0 or end > _MAX_PART_HEADERS:
                        raise _MultipartError("part headers longer than {} bytes".format(_MAX_PART_HEADERS))
                    raw_headers, buffer = buffer[:end], buffer[end + 4 :]
                self._on_part(self._parse_headers(raw_headers))
                self._state = self._BODY
            elif state == self._BODY:
                index = buffer.find(delimiter)
                if index < 0:
                    safe = len(buffer) - keep
                    if safe > 0:
                        self._on_data(buffer[:safe])
                        buffer = buffer[safe:]
                    break
                if index:
                    self._on_data(buffer[:index])
                self._on_part_end()
                buffer = buffer[index + len(delimiter) :]
                self._state = self._AFTER_DELIMITER
            else:
                buffer = b""
                break
        self._buffer = buffer

    def close(self) -> None:
        """Check that the body ended with the close delimiter."""
        if self._state != self._DONE:
            raise _MultipartError("body ends before the closing boundary delimiter")

    @staticmethod
    def _parse_headers(raw: bytes) -> Dict[str, str]:
        headers: Dict[str, str] = {}
        if not raw:
            return headers
        # Browsers send non-ASCII filenames as raw UTF-8.
        for line in raw.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip() or line[:1] in " \t":
                raise _MultipartError("malformed part header line {!r}".format(line[:100]))
            headers.setdefault(name.lower(), value.strip(" \t"))
        return headers


# ---------------------------------------------------------------------------
# Blocks: protobuf reading, dag-pb and UnixFS, CIDs, CAR
# ---------------------------------------------------------------------------


def _read_varint(buf: Union[bytes, memoryview], pos: int) -> Tuple[int, int]:
    """Read an unsigned varint at ``pos``; return ``(new_pos, value)``."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return pos, value
        shift += 7


def _pb_fields(buf: Union[bytes, memoryview]) -> Iterator[Tuple[int, int, memoryview]]:
    """Yield ``(field, int_value, bytes_value)`` for each field of a protobuf message.

    Only the wire types dag-pb and UnixFS use are read: varints (value in
    ``int_value``) and length-delimited fields (value in ``bytes_value``).
    The gateway reads only blocks it made itself, so this is not hardened.
    """
    view = memoryview(buf)
    pos = 0
    empty = view[:0]
    while pos < len(view):
        pos, key = _read_varint(view, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            pos, value = _read_varint(view, pos)
            yield field, value, empty
        elif wire_type == 2:
            pos, length = _read_varint(view, pos)
            yield field, 0, view[pos : pos + length]
            pos += length
        else:
            raise ValueError("unsupported protobuf wire type {}".format(wire_type))


def _pb_bytes(field: int, value: bytes) -> bytes:
    return _ipfs._varint_encode(field << 3 | 2) + _ipfs._varint_encode(len(value)) + value


def _pb_uint(field: int, value: int) -> bytes:
    return _ipfs._varint_encode(field << 3) + _ipfs._varint_encode(value)


class _Node(NamedTuple):
    """What the gateway needs to know of one block it stores."""

    size: int  # the block's length in bytes
    links: Tuple[Tuple[bytes, str], ...]  # (binary CID, name) of each dag-pb link
    unixfs_type: Optional[int]  # None for raw blocks and dag-pb nodes without UnixFS data
    filesize: int  # UnixFS filesize, or the block's length for raw blocks


def _decode_node(cid: bytes, block: bytes) -> _Node:
    """Read the links and UnixFS header of a block (raw blocks have neither)."""
    if _cid_codec(cid) != _CODEC_DAG_PB:
        return _Node(len(block), (), None, len(block))
    links: List[Tuple[bytes, str]] = []
    unixfs_type: Optional[int] = None
    filesize = 0
    for field, _, value in _pb_fields(block):
        if field == 2:  # PBNode.Links
            link_cid, name = b"", ""
            for link_field, _, link_value in _pb_fields(value):
                if link_field == 1:
                    link_cid = bytes(link_value)
                elif link_field == 2:
                    name = bytes(link_value).decode("utf-8", "replace")
            links.append((link_cid, name))
        elif field == 1:  # PBNode.Data: a UnixFS message
            for data_field, number, data_value in _pb_fields(value):
                if data_field == 1:
                    unixfs_type = number
                elif data_field == 2 and unixfs_type != _UNIXFS_DIRECTORY:
                    filesize = max(filesize, len(data_value))
                elif data_field == 3:
                    filesize = number
    return _Node(len(block), tuple(links), unixfs_type, filesize)


def _unixfs_payload(cid: bytes, block: bytes) -> bytes:
    """The file bytes a block carries itself (a raw block, or UnixFS Data)."""
    if _cid_codec(cid) != _CODEC_DAG_PB:
        return block
    for field, _, value in _pb_fields(block):
        if field == 1:
            for data_field, _, data_value in _pb_fields(value):
                if data_field == 2:
                    return bytes(data_value)
    return b""


def _cid_codec(cid: bytes) -> int:
    """The codec of a binary CID (a CIDv0 is always dag-pb)."""
    if cid[:2] == b"\x12\x20":
        return _CODEC_DAG_PB
    pos, _ = _read_varint(cid, 0)
    return _read_varint(cid, pos)[1]


def _block_key(cid: bytes) -> str:
    """The name a block is stored under: its codec and multihash, in hex.

    A CIDv0 and the CIDv1 dag-pb CID with the same multihash name the same
    block, so both find it.
    """
    if cid[:2] == b"\x12\x20":
        return "{:x}-{}".format(_CODEC_DAG_PB, cid.hex())
    pos, _ = _read_varint(cid, 0)
    pos, codec = _read_varint(cid, pos)
    return "{:x}-{}".format(codec, cid[pos:].hex())


def _cid_text(cid: bytes) -> str:
    return str(_ipfs._read_cid(cid, 0)[1])


def _raw_cid(block: bytes) -> bytes:
    """The binary CIDv1 (raw codec, sha2-256) of a block."""
    return b"\x01\x55\x12\x20" + hashlib.sha256(block).digest()


def _car_header(root: bytes) -> bytes:
    """A CARv1 header naming one root: varint length + dag-cbor ``{roots, version}``.

    dag-cbor sorts map keys by length first, so ``roots`` precedes
    ``version``; a CID is tag 42 over a byte string holding the binary CID
    behind a 0x00 (the identity multibase prefix).
    """
    link = b"\x00" + root
    if len(link) < 24:
        link_head = bytes([0x40 | len(link)])
    elif len(link) < 0x100:
        link_head = b"\x58" + bytes([len(link)])
    else:
        link_head = b"\x59" + len(link).to_bytes(2, "big")
    cbor = b"\xa2" + b"\x65roots" + b"\x81\xd8\x2a" + link_head + link + b"\x67version\x01"
    return _ipfs._varint_encode(len(cbor)) + cbor


# ---------------------------------------------------------------------------
# Responses, faults and tampering
# ---------------------------------------------------------------------------


class _Response(object):
    """A response before it is sent: status, headers and a body as chunks.

    ``length`` None means the length is not known up front (the body is then
    sent chunked).  ``body`` is closed after sending, so generators that hold
    files open release them even when a client goes away.
    """

    __slots__ = ("status", "headers", "body", "length", "compressible")

    def __init__(
        self,
        status: int,
        headers: Sequence[Tuple[str, str]] = (),
        body: Iterable[bytes] = (),
        length: Optional[int] = 0,
        compressible: bool = True,
    ) -> None:
        self.status = status
        self.headers = list(headers)
        self.body = body
        self.length = length
        self.compressible = compressible


def _bytes_response(
    status: int, body: bytes, content_type: str, headers: Sequence[Tuple[str, str]] = ()
) -> _Response:
    return _Response(status, [("Content-Type", content_type), *headers], [body], len(body))


def _json_response(status: int, value: object) -> _Response:
    return _bytes_response(status, json.dumps(value).encode("utf-8"), "application/json")


def _error_response(status: int, message: str) -> _Response:
    return _json_response(status, {"error": message})


class _Fault(object):
    """One queued misbehaviour: a kind, its options and how often it applies."""

    __slots__ = ("kind", "remaining", "options")

    def __init__(self, kind: str, times: Optional[int], options: Dict[str, Any]) -> None:
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every request)")
        self.kind = kind
        self.remaining = times
        self.options = options

    def __repr__(self) -> str:
        return "_Fault({!r}, remaining={!r}, {!r})".format(self.kind, self.remaining, self.options)


def _take(queue: List[_Fault], applies: Callable[[_Fault], bool]) -> Optional[_Fault]:
    """Consume one use of the queue's first fault if it applies (caller holds the lock)."""
    if not queue or not applies(queue[0]):
        return None
    fault = queue[0]
    if fault.remaining is not None:
        fault.remaining -= 1
        if fault.remaining == 0:
            del queue[0]
    return fault


def _compressed(chunks: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """Compress a body on the fly: gzip framing, or zlib framing for ``deflate``."""
    wbits = 31 if encoding == "gzip" else 15  # RFC 9110 section 8.4.1: "deflate" is zlib
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()


def _chunked(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Frame a body with HTTP/1.1 chunked transfer coding."""
    for chunk in chunks:
        if chunk:
            yield b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    yield b"0\r\n\r\n"


def _accepts(header: Optional[str], coding: str) -> bool:
    """True when an Accept-Encoding value allows ``coding`` (q=0 refuses it)."""
    for item in (header or "").split(","):
        name, _, params = item.partition(";")
        if name.strip().lower() in (coding, "*"):
            quality = params.strip().lower()
            try:
                return not quality.startswith("q=") or float(quality[2:]) > 0
            except ValueError:
                return False
    return False


# ---------------------------------------------------------------------------
# Content storage
# ---------------------------------------------------------------------------


class _Content(object):
    """One stored file: where its bytes are and what its DAGs are called."""

    __slots__ = ("path", "size", "cids", "tsizes", "built", "media_type", "lock")

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size
        self.cids: Dict[int, bytes] = {}  # CID version -> binary root CID
        self.tsizes: Dict[int, int] = {}  # CID version -> cumulative DAG size
        self.built: Set[int] = set()  # versions whose blocks are on disk
        self.media_type: Optional[str] = None
        self.lock = threading.Lock()


class _StopServing(Exception):
    """Raised inside a handler when the gateway is closing."""


# ---------------------------------------------------------------------------
# The HTTP server
# ---------------------------------------------------------------------------


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """A threading HTTP server that tracks its connections so it can stop them.

    ``socketserver`` before 3.7 cannot wait for its handler threads, so this
    server keeps its own table of live connections; :meth:`stop_connections`
    shuts their sockets down, which wakes any thread blocked on them.
    """

    daemon_threads = True
    block_on_close = False  # close() joins the threads itself, with a bound
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 would reset clients that connect all at once

    def __init__(
        self,
        address: Tuple[str, int],
        gateway: "LocalGateway",
        ssl_context: Optional[ssl.SSLContext],
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.gateway = gateway
        self.ssl_context = ssl_context
        self._lock = threading.Lock()
        self._connections: Dict[threading.Thread, socket.socket] = {}
        self._accepting = True
        http.server.HTTPServer.__init__(self, address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would also look the host name up in DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def get_request(self) -> Tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        if self.ssl_context is not None:
            # The handshake happens in the connection's thread, so a client
            # that never completes it cannot stall the accept loop.
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name="LocalGateway-{}-connection".format(self.server_address[1]),
        )
        thread.daemon = True
        with self._lock:
            if not self._accepting:
                self.shutdown_request(request)
                return
            self._connections[thread] = request
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            if isinstance(request, ssl.SSLSocket):
                request.settimeout(_HANDLER_TIMEOUT)
                request.do_handshake()
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._lock:
                self._connections.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (OSError, _StopServing)):
            # Clients going away (resets, broken pipes, TLS failures,
            # timeouts) are part of the tests, not server bugs.
            _log.debug("connection from %s ended: %r", client_address, error)
            return
        self.gateway._record_error(traceback.format_exc())

    def stop_connections(self, timeout: float) -> None:
        """Wake every connection thread and wait up to ``timeout`` seconds for all."""
        with self._lock:
            self._accepting = False
            connections = list(self._connections.items())
        for _, sock in connections:
            # socket.socket.shutdown, not SSLSocket's: that one also drops the
            # TLS state under the feet of the thread using it.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread, _ in connections:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Handler(http.server.BaseHTTPRequestHandler):
    """Turns each request into a :class:`_Response` and sends it, faults applied."""

    protocol_version = "HTTP/1.1"
    server_version = "ogpu-testing-LocalGateway"
    timeout = _HANDLER_TIMEOUT
    server: "_Server"

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s %s", self.address_string(), format % args)

    # -- request handling ----------------------------------------------------

    def _dispatch(self) -> None:
        gateway = self.server.gateway
        self.close_connection = True  # one request per connection keeps shutdown simple
        headers = _HeaderMap(self.headers.items())
        gateway._record_request(RequestRecord(self.command, self.path, headers))
        fault = gateway._take_fault()
        if fault is not None and fault.kind in _REPLACING_FAULTS:
            self._discard_body()
            self._misbehave(fault)
            return
        response = self._route(headers)
        self._send(response, fault)

    def _route(self, headers: Mapping[str, str]) -> _Response:
        gateway = self.server.gateway
        target = urllib.parse.urlsplit(self.path)
        if target.path == UPLOAD_PATH:
            if self.command != "POST":
                self._discard_body()
                return _error_response(405, "use POST to upload")
            return self._upload()
        self._discard_body()
        if target.path.startswith(IPFS_PREFIX):
            if self.command not in ("GET", "HEAD"):
                return _error_response(405, "only GET and HEAD are supported on /ipfs/")
            query = urllib.parse.parse_qs(target.query)
            return gateway._serve_ipfs(target.path[len(IPFS_PREFIX) :], query, headers)
        return _error_response(404, "not found: {}".format(target.path))

    def _content_length(self) -> Optional[int]:
        text = self.headers.get("Content-Length")
        if text is None:
            return None
        text = text.strip()
        if not text.isdigit():
            raise _MultipartError("invalid Content-Length {!r}".format(text))
        return int(text)

    def _discard_body(self) -> None:
        """Read and drop the request body, so closing does not reset the connection."""
        try:
            remaining = self._content_length() or 0
        except _MultipartError:
            return
        stop = self.server.gateway._stop
        while remaining > 0 and not stop.is_set():
            chunk = self.rfile.read(min(_IO_CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)

    def _upload(self) -> _Response:
        gateway = self.server.gateway
        try:
            length = self._content_length()
        except _MultipartError as exc:
            return _error_response(400, str(exc))
        if length is None:
            return _error_response(411, "Content-Length is required")
        media_type, params = _parse_header_params(self.headers.get("Content-Type", ""))
        boundary = params.get("boundary", "")
        problem = None
        if media_type.lower() != "multipart/form-data":
            problem = "Content-Type must be multipart/form-data, not {!r}".format(media_type)
        elif not 0 < len(boundary) <= _MAX_BOUNDARY:
            problem = "multipart boundary missing or longer than {} characters".format(_MAX_BOUNDARY)
        if problem is not None:
            self._discard_body()
            return _error_response(400, problem)
        return gateway._receive_upload(self.rfile, length, boundary.encode("latin-1", "replace"))

    # -- sending, faults applied -----------------------------------------------

    def _misbehave(self, fault: _Fault) -> None:
        gateway = self.server.gateway
        options = fault.options
        if fault.kind == "fail":
            status = options["status"]
            body = options["body"]
            headers = list(options["headers"])
            if not any(name.lower() == "content-type" for name, _ in headers):
                headers.append(("Content-Type", "text/plain; charset=utf-8"))
            self._send(_Response(status, headers, [body], len(body), compressible=False), None)
        elif fault.kind == "hang":
            gateway._stop.wait()
        elif fault.kind == "garbage":
            self.wfile.write(options["data"])
        elif fault.kind == "endless":
            head = [("Content-Type", options["content_type"])]
            self._send(_Response(200, head, self._endless_body(), None, compressible=False), None)
        # "disconnect": nothing at all; the connection is closed on return.

    def _endless_body(self) -> Iterator[bytes]:
        yield b'{"data": "'
        filler = b"x" * 65536
        while not self.server.gateway._stop.is_set():
            yield filler

    def _send(self, response: _Response, fault: Optional[_Fault]) -> None:
        gateway = self.server.gateway
        body = response.body
        try:
            headers = list(response.headers)
            length = response.length
            head_only = self.command == "HEAD"
            encoding = gateway.compress
            if (
                encoding is not None
                and response.status == 200
                and response.compressible
                and not head_only
                and _accepts(self.headers.get("Accept-Encoding"), encoding)
            ):
                body = _compressed(body, encoding)
                length = None
                headers += [("Content-Encoding", encoding), ("Vary", "Accept-Encoding")]
            announced = length
            if fault is not None and fault.kind == "wrong_length":
                if length is None:
                    whole = b"".join(body)
                    body, length = [whole], len(whole)
                announced = length + fault.options["extra"]
            if announced is not None:
                headers.append(("Content-Length", str(announced)))
                wire: Iterator[bytes] = iter(body)
            else:
                headers.append(("Transfer-Encoding", "chunked"))
                wire = _chunked(body)
            if head_only:
                wire = iter(())
            head = self._head(response.status, headers)
            if fault is None or fault.kind == "wrong_length":
                self.wfile.write(head)
                for chunk in wire:
                    self.wfile.write(chunk)
            elif fault.kind == "drip":
                self._drip(head, wire, fault.options["delay"])
            elif fault.kind == "close_mid_body":
                cut = fault.options["after"]
                if cut is None:
                    cut = length // 2 if length is not None else 1
                self.wfile.write(head)
                for chunk in wire:
                    if cut <= 0:
                        break
                    self.wfile.write(chunk[:cut])
                    cut -= len(chunk)
            self.wfile.flush()
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            close = getattr(response.body, "close", None)
            if close is not None:
                close()

    def _head(self, status: int, headers: Sequence[Tuple[str, str]]) -> bytes:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        lines = ["HTTP/1.1 {} {}".format(status, reason)]
        lines.append("Server: " + self.server_version)
        lines.append("Date: " + email.utils.formatdate(usegmt=True))
        lines.extend("{}: {}".format(name, value) for name, value in headers)
        lines.append("Connection: close")
        self.log_request(status)
        # UTF-8 rather than Latin-1, so tests can send any header value they like.
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

    def _drip(self, head: bytes, wire: Iterator[bytes], delay: float) -> None:
        stop = self.server.gateway._stop
        for piece in _prepend(head, wire):
            for index in range(len(piece)):
                self.wfile.write(piece[index : index + 1])
                if stop.wait(delay):
                    raise _StopServing()


def _prepend(first: bytes, rest: Iterable[bytes]) -> Iterator[bytes]:
    yield first
    for chunk in rest:
        yield chunk


# ---------------------------------------------------------------------------
# The gateway
# ---------------------------------------------------------------------------


class LocalGateway(object):
    """A local pinning service and IPFS gateway, started on construction.

    Use it as a context manager (``with LocalGateway() as gateway:``) or call
    :meth:`close` when done: closing stops the server, ends every connection
    (hanging and dripping ones included) and waits for its threads.

    Content comes in by upload or through :meth:`add`, :meth:`add_file` and
    :meth:`add_directory`.  Faults apply to the next requests, in the order
    they were queued: :meth:`fail`, :meth:`hang`, :meth:`drip`,
    :meth:`close_mid_body`, :meth:`wrong_length`, :meth:`garbage`,
    :meth:`disconnect`, :meth:`endless`; :meth:`tamper` corrupts trustless
    responses; :meth:`reset` drops whatever is still queued.

    Args:
        host: The address to listen on.
        port: The port; 0 picks a free one.
        ssl_context: A server-side :class:`ssl.SSLContext`; when given the
            gateway speaks HTTPS and :attr:`url` starts with ``https://``.
        storage_dir: Where stored content and blocks go.  By default a
            temporary directory, removed by :meth:`close`; a directory given
            here is left in place.

    Attributes:
        host: The address listened on, e.g. ``"127.0.0.1"``.
        port: The port listened on.
        url: The base URL, e.g. ``"http://127.0.0.1:41234"``.
        upload_url: ``url + "/file/create"``, the pinning service endpoint.
        uploads: :class:`Upload` records of received uploads, in order.
        requests: :class:`RequestRecord` of every request, in order.
        errors: Tracebacks of unexpected errors in the server's handlers
            (a client going away is not one); empty when all went well.
        compress: ``"gzip"``, ``"deflate"`` or None (the default): when set,
            successful responses are compressed on the fly, sent chunked,
            for clients whose ``Accept-Encoding`` allows it.
        storage_dir: The directory holding stored content and blocks.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: Optional[ssl.SSLContext] = None,
        storage_dir: Optional[str] = None,
    ) -> None:
        self.uploads: List[Upload] = []
        self.requests: List[RequestRecord] = []
        self.errors: List[str] = []
        self.compress: Optional[str] = None
        self._lock = threading.Lock()
        self._received = threading.Condition(self._lock)  # notified for every request
        self._stop = threading.Event()
        self._faults: List[_Fault] = []
        self._tampers: List[_Fault] = []
        self._contents: Dict[str, Tuple[_Content, int]] = {}  # block key -> (content, version)
        self._nodes: Dict[str, _Node] = {}  # block key -> what its block holds
        self._closed = False
        self._own_storage = storage_dir is None
        if storage_dir is None:
            storage_dir = tempfile.mkdtemp(prefix="ogpu-local-gateway-")
        self.storage_dir = storage_dir
        self._content_dir = os.path.join(storage_dir, "content")
        self._block_dir = os.path.join(storage_dir, "blocks")
        self._tmp_dir = os.path.join(storage_dir, "tmp")
        for directory in (self._content_dir, self._block_dir, self._tmp_dir):
            os.makedirs(directory, exist_ok=True)
        try:
            self._server = _Server((host, port), self, ssl_context)
        except BaseException:
            self._remove_storage()
            raise
        address = self._server.socket.getsockname()
        self.host = str(address[0])
        self.port = int(address[1])
        netloc = "[{}]".format(self.host) if ":" in self.host else self.host
        self.url = "{}://{}:{}".format("https" if ssl_context else "http", netloc, self.port)
        self.upload_url = self.url + UPLOAD_PATH
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="LocalGateway-{}".format(self.port),
        )
        self._thread.daemon = True
        self._thread.start()

    # -- lifecycle -------------------------------------------------------------

    def __enter__(self) -> "LocalGateway":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving, end all connections and wait for the threads (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()  # wakes hanging and dripping handlers
        self._server.shutdown()  # ends serve_forever; no connection is accepted after it
        self._thread.join(_JOIN_TIMEOUT)
        self._server.server_close()
        self._server.stop_connections(_JOIN_TIMEOUT)
        self._remove_storage()

    def _remove_storage(self) -> None:
        if self._own_storage:
            shutil.rmtree(self.storage_dir, ignore_errors=True)

    def __repr__(self) -> str:
        return "LocalGateway({!r}{})".format(self.url, ", closed" if self._closed else "")

    # -- helpers for tests -----------------------------------------------------

    def link(self, cid: str, path: str = "") -> str:
        """Return this gateway's URL for ``cid`` (and an optional ``path`` below it)."""
        return "{}/ipfs/{}{}".format(self.url, cid, "/" + path.lstrip("/") if path else "")

    @contextlib.contextmanager
    def patch_publish(self, module: Optional[object] = None) -> Iterator[str]:
        """Point a client module's publish endpoint at this gateway, for the ``with`` block.

        Args:
            module: The module whose ``_PUBLISH_URL`` to set; :mod:`ogpu.ipfs`
                by default.  Pass a vendored copy of it to patch that instead.

        Yields:
            :attr:`upload_url`.
        """
        target: Any = _ipfs if module is None else module
        saved = target._PUBLISH_URL
        target._PUBLISH_URL = self.upload_url
        try:
            yield self.upload_url
        finally:
            target._PUBLISH_URL = saved

    # -- storing content directly ----------------------------------------------

    def add(self, data: Union[bytes, bytearray, memoryview], *, cid_version: int = 0) -> str:
        """Store ``data`` as if it had been uploaded; return its CID.

        Args:
            data: The content.
            cid_version: 0 for the CIDv0 (``Qm…``, as uploads get), 1 for the
                CIDv1 of ``ipfs add --cid-version=1`` (raw leaves, base32).
                The content is served under both either way.
        """
        return self._add_stream([bytes(data)], cid_version)

    def add_file(self, path: Union[str, "os.PathLike[str]"], *, cid_version: int = 0) -> str:
        """Store a copy of the file at ``path``, streamed; return its CID (see :meth:`add`)."""
        with open(path, "rb") as stream:
            return self._add_stream(iter(lambda: stream.read(_IO_CHUNK), b""), cid_version)

    def add_directory(self, entries: Mapping[str, object], *, cid_version: int = 0) -> str:
        """Store a plain UnixFS directory; return its CID.

        Args:
            entries: Names mapped to content: bytes-like (a file), ``str``
                (a file of its UTF-8 encoding), an ``os.PathLike`` (a copy of
                that file), or another mapping (a subdirectory).
            cid_version: 0 for CIDv0 throughout, 1 for CIDv1 (files with raw
                leaves).

        Returns:
            The directory's CID; ``/ipfs/<cid>/<name>/...`` paths resolve
            through it, for plain and for trustless responses.

        Raises:
            ValueError: A name is empty, ``.``, ``..`` or contains ``/``.
            TypeError: A value is none of the above.
        """
        _check_version(cid_version)
        return _cid_text(self._add_directory(entries, cid_version)[0])

    def _add_directory(self, entries: Mapping[str, object], version: int) -> Tuple[bytes, int]:
        links = []
        total = 0
        for name in sorted(entries, key=lambda name: name.encode("utf-8")):
            if not name or "/" in name or name in (".", ".."):
                raise ValueError("invalid directory entry name {!r}".format(name))
            value = entries[name]
            if isinstance(value, Mapping):
                cid, tsize = self._add_directory(value, version)
            else:
                if isinstance(value, (bytes, bytearray, memoryview)):
                    chunks: Iterable[bytes] = [bytes(value)]
                elif isinstance(value, str):
                    chunks = [value.encode("utf-8")]
                elif isinstance(value, os.PathLike):
                    chunks = _read_chunks(os.fspath(value))
                else:
                    raise TypeError("unsupported directory entry {!r}: {}".format(name, type(value).__name__))
                content = self._store(chunks)
                cid = self._content_cid(content, version)
                tsize = content.tsizes[version]
            link = _pb_bytes(1, cid) + _pb_bytes(2, name.encode("utf-8")) + _pb_uint(3, tsize)
            links.append(_pb_bytes(2, link))
            total += tsize
        # PBNode: Links before Data (dag-pb canonical order); Data = UnixFS{Type: Directory}.
        block = b"".join(links) + _pb_bytes(1, _pb_uint(1, _UNIXFS_DIRECTORY))
        multihash = b"\x12\x20" + hashlib.sha256(block).digest()
        cid = multihash if version == 0 else b"\x01\x70" + multihash
        self._put_block(cid, block)
        return cid, total + len(block)

    def _add_stream(self, chunks: Iterable[bytes], version: int) -> str:
        _check_version(version)
        return _cid_text(self._content_cid(self._store(chunks), version))

    def _store(self, chunks: Iterable[bytes]) -> _Content:
        """Write content to the store, computing its CIDv0 on the way."""
        fd, tmp_path = tempfile.mkstemp(dir=self._tmp_dir)
        try:
            tsize = [0]

            def count(cid: "_ipfs._Cid", block: bytes) -> None:
                tsize[0] += len(block)

            builder = _ipfs._DagBuilder(0, on_block=count)
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    builder.write(chunk)
            return self._register(tmp_path, builder.size, builder.finish().to_bytes(), tsize[0])
        finally:
            if os.path.exists(tmp_path):
                os.unlink(tmp_path)

    def _register(self, tmp_path: str, size: int, cid: bytes, tsize: int) -> _Content:
        """Move a finished temporary file into the store under its CIDv0."""
        key = _block_key(cid)
        with self._lock:
            known = self._contents.get(key)
            if known is not None:
                return known[0]
            path = os.path.join(self._content_dir, _cid_text(cid))
            os.replace(tmp_path, path)
            content = _Content(path, size)
            content.cids[0] = cid
            content.tsizes[0] = tsize
            self._contents[key] = (content, 0)
            return content

    def _content_cid(self, content: _Content, version: int) -> bytes:
        """The binary root CID of a content's DAG of ``version``, computed once."""
        with content.lock:
            if version not in content.cids:
                tsize = [0]

                def count(cid: "_ipfs._Cid", block: bytes) -> None:
                    tsize[0] += len(block)

                builder = _ipfs._DagBuilder(version, on_block=count)
                self._feed(content, builder)
                content.cids[version] = builder.finish().to_bytes()
                content.tsizes[version] = tsize[0]
                with self._lock:
                    self._contents.setdefault(_block_key(content.cids[version]), (content, version))
            return content.cids[version]

    def _feed(self, content: _Content, builder: "_ipfs._DagBuilder") -> None:
        with open(content.path, "rb") as stream:
            for chunk in iter(lambda: stream.read(_IO_CHUNK), b""):
                if self._stop.is_set():
                    raise _StopServing()
                builder.write(chunk)

    # -- the blockstore --------------------------------------------------------

    def _put_block(self, cid: bytes, block: bytes) -> None:
        key = _block_key(cid)
        path = os.path.join(self._block_dir, key)
        if not os.path.exists(path):
            fd, tmp_path = tempfile.mkstemp(dir=self._tmp_dir)
            with os.fdopen(fd, "wb") as out:
                out.write(block)
            os.replace(tmp_path, path)  # atomic: concurrent writers write the same bytes
        node = _decode_node(cid, block)
        with self._lock:
            self._nodes[key] = node

    def _find_content(self, cid: bytes) -> Optional[Tuple[_Content, int]]:
        key = _block_key(cid)
        with self._lock:
            found = self._contents.get(key)
            pending = [c for c, _ in self._contents.values() if 1 not in c.cids] if found is None else []
        if found is None and cid[:1] == b"\x01":
            # CIDv1 roots are computed on demand: do it now for everything.
            for content in pending:
                self._content_cid(content, 1)
            with self._lock:
                found = self._contents.get(key)
        return found

    def _build_blocks(self, content: _Content, version: int) -> None:
        """Write every block of a content's DAG to the blockstore, once."""
        with content.lock:
            if version in content.built:
                return

            def store(cid: "_ipfs._Cid", block: bytes) -> None:
                self._put_block(cid.to_bytes(), block)

            builder = _ipfs._DagBuilder(version, on_block=store)
            self._feed(content, builder)
            root = builder.finish().to_bytes()
            content.cids.setdefault(version, root)
            content.built.add(version)

    def _node(self, cid: bytes) -> Optional[_Node]:
        """What the block ``cid`` holds, building its content's blocks if need be."""
        key = _block_key(cid)
        with self._lock:
            node = self._nodes.get(key)
        if node is not None:
            return node
        found = self._find_content(cid)
        if found is None:
            return None
        self._build_blocks(*found)
        with self._lock:
            return self._nodes.get(key)

    def _block(self, cid: bytes) -> bytes:
        with open(os.path.join(self._block_dir, _block_key(cid)), "rb") as stream:
            return stream.read()

    # -- serving /ipfs/ ----------------------------------------------------------

    def _serve_ipfs(self, path: str, query: Mapping[str, List[str]], headers: Mapping[str, str]) -> _Response:
        # 1. parse /ipfs/<cid>[/path]
        segments = [urllib.parse.unquote(part) for part in path.split("/")]
        try:
            root = _ipfs._parse_cid(segments[0]).to_bytes()
        except Exception:
            return _error_response(400, "invalid CID {!r}".format(segments[0][:100]))
        names = [name for name in segments[1:] if name]
        # 2. the response format asked for
        formats = query.get("format", [])
        if formats:
            wanted: Optional[str] = {"car": "car", "raw": "raw"}.get(formats[0])
            if wanted is None:
                return _error_response(400, "unsupported format {!r}".format(formats[0]))
        else:
            wanted = _accepted_format(headers.get("Accept", ""))
        # 3. resolve the path through UnixFS directories
        chain: List[bytes] = []
        target = root
        for name in names:
            node = self._node(target)
            if node is None or node.unixfs_type != _UNIXFS_DIRECTORY:
                return _error_response(404, "no directory {} on the path".format(_cid_text(target)))
            chain.append(target)
            child = next((link for link, link_name in node.links if link_name == name), None)
            if child is None:
                return _error_response(404, "no link named {!r}".format(name))
            target = child
        if wanted is None and self._find_content(target) is not None:
            return self._serve_content(target)
        node = self._node(target)
        if node is None:
            return _error_response(404, "not found: {}".format(_cid_text(target)))
        # 4. answer
        if wanted == "raw":
            return self._serve_raw(target)
        if wanted == "car":
            scope = query.get("dag-scope", ["all"])[0]
            if scope not in ("all", "entity", "block"):
                return _error_response(400, "unsupported dag-scope {!r}".format(scope))
            return self._serve_car(root, chain, target, scope)
        return self._serve_dag(target, node)

    def _serve_content(self, cid: bytes) -> _Response:
        """Serve a stored file from its copy on disk (the usual gateway response)."""
        found = self._find_content(cid)
        assert found is not None
        content = found[0]
        headers = [
            ("Content-Type", self._media_type(content)),
            ("Etag", '"{}"'.format(_cid_text(cid))),
            ("X-Ipfs-Path", "/ipfs/" + _cid_text(cid)),
            ("Cache-Control", "public, max-age=29030400, immutable"),
        ]
        return _Response(200, headers, _read_chunks(content.path), content.size)

    def _media_type(self, content: _Content) -> str:
        """``application/json`` for content that parses as JSON, else ``application/octet-stream``."""
        if content.media_type is None:
            content.media_type = "application/octet-stream"
            if content.size <= _JSON_SNIFF_LIMIT and _may_be_json(content.path):
                with open(content.path, "rb") as stream:
                    data = stream.read()
                try:
                    json.loads(data)  # bytes: UTF-8, -16 or -32, as clients read it
                except (ValueError, RecursionError):
                    pass
                else:
                    content.media_type = "application/json"
        return content.media_type

    def _serve_dag(self, cid: bytes, node: _Node) -> _Response:
        """Serve a file (or list a directory) that is only known as blocks."""
        if node.unixfs_type == _UNIXFS_DIRECTORY:
            lines = ["<!DOCTYPE html>", "<title>/ipfs/{}</title>".format(_cid_text(cid)), "<ul>"]
            for _, name in node.links:
                quoted = urllib.parse.quote(name)
                lines.append('<li><a href="{}">{}</a></li>'.format(quoted, _html_escape(name)))
            lines += ["</ul>", ""]
            body = "\n".join(lines).encode("utf-8")
            return _bytes_response(200, body, "text/html; charset=utf-8")
        return _Response(
            200, [("Content-Type", "application/octet-stream")], self._file_chunks(cid), node.filesize
        )

    def _file_chunks(self, root: bytes) -> Iterator[bytes]:
        stack = [root]
        while stack:
            cid = stack.pop()
            block = self._block(cid)
            yield _unixfs_payload(cid, block)
            node = _decode_node(cid, block)
            stack.extend(link for link, _ in reversed(node.links))

    def _serve_raw(self, cid: bytes) -> _Response:
        block = self._block(cid)
        with self._lock:
            tamper = _take(self._tampers, lambda fault: fault.kind in _RAW_TAMPER_MODES)
        if tamper is not None:
            options = tamper.options
            if tamper.kind == "flip":
                offset = options["at"] if options["at"] is not None else options["offset"]
                block = _flip(block, offset)
            elif tamper.kind == "truncate":
                block = block[: options["at"] if options["at"] is not None else len(block) // 2]
            elif tamper.kind == "foreign":
                block = options["data"]
        headers = [("Content-Type", RAW_CONTENT_TYPE), ("X-Content-Type-Options", "nosniff")]
        return _Response(200, headers, [block], len(block))

    def _serve_car(self, root: bytes, chain: List[bytes], target: bytes, scope: str) -> _Response:
        with self._lock:
            tamper = _take(self._tampers, lambda fault: True)
        options = tamper.options if tamper is not None else {}
        kind = tamper.kind if tamper is not None else None
        if kind == "refuse_car":
            if options["status"] != 200:
                return _error_response(options["status"], "CAR responses are not supported here")
            block = self._block(target)
            return _bytes_response(200, block, options["content_type"])
        # 1. the blocks, in DFS pre-order: the path, then the entity
        order: List[Tuple[bytes, Optional[bytes]]] = [(cid, None) for cid in chain]
        node = self._node(target)
        assert node is not None
        if scope == "block" or (scope == "entity" and node.unixfs_type == _UNIXFS_DIRECTORY):
            order.append((target, None))
        else:
            stack = [target]
            while stack:
                cid = stack.pop()
                order.append((cid, None))
                child = self._node(cid)
                assert child is not None
                stack.extend(link for link, _ in reversed(child.links))
        # 2. list-level tampering
        header_root = root
        if kind == "drop":
            if 0 <= options["block"] < len(order):
                del order[options["block"]]
        elif kind == "duplicate":
            if options["block"] is None:
                order = [item for item in order for _ in (0, 1)]
            elif 0 <= options["block"] < len(order):
                order.insert(options["block"] + 1, order[options["block"]])
        elif kind == "reorder":
            rest = order[1:]
            if options["seed"] is None:
                rest.reverse()
            else:
                random.Random(options["seed"]).shuffle(rest)
            order = order[:1] + rest
        elif kind == "foreign":
            data = options["data"]
            order.insert(min(options["block"], len(order)), (_raw_cid(data), data))
        elif kind == "wrong_root":
            header_root = options["cid"]
        # 3. sizes, so the response has a Content-Length
        header = _car_header(header_root)
        total = len(header)
        for cid, data in order:
            size = len(data) if data is not None else self._nodes_size(cid)
            total += len(_ipfs._varint_encode(len(cid) + size)) + len(cid) + size
        flip_block: Optional[int] = None
        flip_at: Optional[int] = None
        if kind == "flip":
            if options["at"] is not None:
                flip_at = options["at"]
            else:
                flip_block = options["block"]
        limit = total
        if kind == "truncate":
            limit = options["at"] if options["at"] is not None else total // 2
            limit = min(limit, total)
        body = self._car_chunks(header, order, flip_block, options.get("offset", 0), flip_at, limit)
        headers = [("Content-Type", CAR_CONTENT_TYPE), ("X-Content-Type-Options", "nosniff")]
        return _Response(200, headers, body, limit)

    def _nodes_size(self, cid: bytes) -> int:
        with self._lock:
            return self._nodes[_block_key(cid)].size

    def _car_chunks(
        self,
        header: bytes,
        order: List[Tuple[bytes, Optional[bytes]]],
        flip_block: Optional[int],
        flip_offset: int,
        flip_at: Optional[int],
        limit: int,
    ) -> Iterator[bytes]:
        """Yield the CAR: header, then varint + CID + data per block, tampered as asked."""

        def pieces() -> Iterator[bytes]:
            yield header
            for index, (cid, data) in enumerate(order):
                block = data if data is not None else self._block(cid)
                if index == flip_block:
                    if block:
                        block = _flip(block, flip_offset)
                    else:
                        cid = _flip(cid, len(cid) - 1)
                yield _ipfs._varint_encode(len(cid) + len(block)) + cid + block

        sent = 0
        for piece in pieces():
            if flip_at is not None and sent <= flip_at < sent + len(piece):
                piece = _flip(piece, flip_at - sent)
            if sent + len(piece) >= limit:
                yield piece[: limit - sent]
                return
            sent += len(piece)
            yield piece

    # -- uploads -----------------------------------------------------------------

    def _receive_upload(self, rfile: io.BufferedIOBase, length: int, boundary: bytes) -> _Response:
        """Stream a multipart upload to disk, computing the CIDv0 of its ``file`` part."""
        fd, tmp_path = tempfile.mkstemp(dir=self._tmp_dir)
        state: Dict[str, bool] = {"in_file": False, "found": False}
        disposition = [""]
        filename: List[Optional[str]] = [None]
        content_type: List[Optional[str]] = [None]
        tsize = [0]

        def count(cid: "_ipfs._Cid", block: bytes) -> None:
            tsize[0] += len(block)

        builder = _ipfs._DagBuilder(0, on_block=count)
        try:
            with os.fdopen(fd, "wb") as out:

                def on_part(headers: Dict[str, str]) -> None:
                    kind, params = _parse_header_params(headers.get("content-disposition", ""))
                    if kind.lower() != "form-data" or "name" not in params:
                        raise _MultipartError("part without a form-data Content-Disposition and name")
                    state["in_file"] = _decode_form_name(params["name"]) == "file"
                    if state["in_file"]:
                        if state["found"]:
                            raise _MultipartError("more than one part named 'file'")
                        state["found"] = True
                        disposition[0] = headers["content-disposition"]
                        if "filename" in params:
                            filename[0] = _decode_form_name(params["filename"])
                        content_type[0] = headers.get("content-type")

                def on_data(data: Union[bytes, memoryview]) -> None:
                    if state["in_file"]:
                        out.write(data)
                        builder.write(data)

                def on_part_end() -> None:
                    state["in_file"] = False

                parser = _MultipartParser(boundary, on_part, on_data, on_part_end)
                problem: Optional[str] = None
                remaining = length
                while remaining > 0:
                    if self._stop.is_set():
                        raise _StopServing()
                    chunk = rfile.read(min(_IO_CHUNK, remaining))
                    if not chunk:
                        raise ConnectionError("client closed the connection mid-upload")
                    remaining -= len(chunk)
                    if problem is None:
                        try:
                            parser.feed(chunk)
                        except _MultipartError as exc:
                            problem = str(exc)  # the rest of the body is still read
                if problem is None:
                    try:
                        parser.close()
                    except _MultipartError as exc:
                        problem = str(exc)
            if problem is None and not state["found"]:
                problem = "no part named 'file'"
            if problem is not None:
                return _error_response(400, problem)
            cid = builder.finish().to_bytes()
            content = self._register(tmp_path, builder.size, cid, tsize[0])
        finally:
            if os.path.exists(tmp_path):
                os.unlink(tmp_path)
        link = self.link(_cid_text(cid))
        upload = Upload(
            filename[0], content_type[0], disposition[0], content.size, _cid_text(cid), link, content.path
        )
        with self._lock:
            self.uploads.append(upload)
        return _json_response(201, {"link": link})

    # -- records ---------------------------------------------------------------

    def _record_request(self, record: RequestRecord) -> None:
        with self._received:
            self.requests.append(record)
            self._received.notify_all()

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until the gateway has received ``count`` requests in all.

        A request counts once its headers are read, before any fault applies,
        so this tells a test that a hanging or dripping request has arrived.

        Args:
            count: The number of requests (``len(self.requests)``) to wait for.
            timeout: The longest wait, in seconds.

        Returns:
            True if that many arrived in time, else False.
        """
        deadline = time.monotonic() + timeout
        with self._received:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._received.wait(remaining)
            return True

    def _record_error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)
        _log.error("LocalGateway handler error:\n%s", text)

    # -- fault injection -------------------------------------------------------

    def _take_fault(self) -> Optional[_Fault]:
        with self._lock:
            return _take(self._faults, lambda fault: True)

    def _queue(self, queue: List[_Fault], kind: str, times: Optional[int], **options: Any) -> None:
        fault = _Fault(kind, times, options)
        with self._lock:
            queue.append(fault)

    def fail(
        self,
        status: int,
        times: Optional[int] = 1,
        headers: Optional[Union[Mapping[str, str], Sequence[Tuple[str, str]]]] = None,
        body: bytes = b"",
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (None: every request).

        Args:
            status: The status code, e.g. 503.
            times: How many requests; None for all until :meth:`reset`.
            headers: Extra response headers, e.g. ``{"Retry-After": "2"}``.
            body: The response body (``text/plain`` unless ``headers`` say otherwise).

        Faults queue up: each request takes one use of the first queued fault.
        """
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
        self._queue(self._faults, "fail", times, status=status, headers=items, body=bytes(body))

    def hang(self, times: Optional[int] = 1) -> None:
        """Read the next requests, then never answer until the gateway closes."""
        self._queue(self._faults, "hang", times)

    def drip(self, delay: float = 1.0, times: Optional[int] = 1) -> None:
        """Send the next responses (status line and headers too) one byte per ``delay`` seconds."""
        self._queue(self._faults, "drip", times, delay=delay)

    def close_mid_body(self, times: Optional[int] = 1, after: Optional[int] = None) -> None:
        """Close the connection after ``after`` bytes of the body (default: half of it).

        The headers announce the full length, so the client sees a short body.
        """
        self._queue(self._faults, "close_mid_body", times, after=after)

    def wrong_length(self, times: Optional[int] = 1, extra: int = 100) -> None:
        """Announce a Content-Length ``extra`` bytes longer than the body, then close."""
        self._queue(self._faults, "wrong_length", times, extra=extra)

    def garbage(self, times: Optional[int] = 1, data: bytes = b"\x00\xffthis is not HTTP\r\n\r\n") -> None:
        """Answer the next requests with ``data`` instead of an HTTP response, then close."""
        self._queue(self._faults, "garbage", times, data=bytes(data))

    def disconnect(self, times: Optional[int] = 1) -> None:
        """Read the next requests, then close the connection without answering."""
        self._queue(self._faults, "disconnect", times)

    def endless(self, times: Optional[int] = 1, content_type: str = "application/json") -> None:
        """Answer 200 with a chunked body that never ends (until the client leaves or the gateway closes)."""
        self._queue(self._faults, "endless", times, content_type=content_type)

    def tamper(self, mode: str, times: Optional[int] = 1, **options: Any) -> None:
        """Misbehave in the next trustless (CAR or raw block) responses.

        Tampering queues like the faults, but only trustless responses take
        it; a raw block request takes only ``flip``, ``truncate`` and
        ``foreign`` and leaves other modes queued for the next CAR.  Block
        indexes count the blocks of the honest CAR, in its DFS order
        (0 is the root).

        Args:
            mode: One of:

                - ``"flip"``: invert a byte.  ``block=0, offset=0``: byte
                  ``offset`` of block ``block``'s data; or ``at=N``: byte N of
                  the whole response.
                - ``"drop"``: omit block ``block`` (default 1).
                - ``"foreign"``: insert an unrelated valid raw block at index
                  ``block`` (default 1); ``data=`` sets its bytes.  For a raw
                  request, send that block instead of the one asked for.
                - ``"duplicate"``: send every block twice, or only block
                  ``block=i`` when given.
                - ``"reorder"``: keep the first block, reverse the others
                  (or shuffle them with ``seed=N``).
                - ``"wrong_root"``: name another CID (``cid=`` text, default
                  an unrelated one) in the CAR header's roots.
                - ``"truncate"``: stop after ``at`` bytes (default half),
                  with a Content-Length saying that is all.
                - ``"refuse_car"``: answer CAR requests with ``status``
                  (default 406); with ``status=200``, send the requested
                  block alone as ``content_type`` (default
                  ``application/vnd.ipld.raw``), like gateways that only
                  serve blocks.  Raw block requests are not affected.

            times: How many responses; None for all until :meth:`reset`.
            **options: The mode's options above.

        Raises:
            ValueError: An unknown mode or option.
        """
        defaults: Dict[str, Dict[str, Any]] = {
            "flip": {"block": 0, "offset": 0, "at": None},
            "drop": {"block": 1},
            "foreign": {"block": 1, "data": b"a foreign block, unrelated to the request"},
            "duplicate": {"block": None},
            "reorder": {"seed": None},
            "wrong_root": {"cid": None},
            "truncate": {"at": None},
            "refuse_car": {"status": 406, "content_type": RAW_CONTENT_TYPE},
        }
        if mode not in defaults:
            raise ValueError("unknown tamper mode {!r}; use one of {}".format(mode, ", ".join(TAMPER_MODES)))
        unknown = set(options) - set(defaults[mode])
        if unknown:
            raise ValueError("unknown option(s) for {!r}: {}".format(mode, ", ".join(sorted(unknown))))
        merged = dict(defaults[mode], **options)
        if mode == "wrong_root":
            text = merged["cid"]
            merged["cid"] = _raw_cid(b"wrong root") if text is None else _ipfs._parse_cid(text).to_bytes()
        if mode == "foreign":
            merged["data"] = bytes(merged["data"])
        self._queue(self._tampers, mode, times, **merged)

    def reset(self) -> None:
        """Drop every queued fault and tamper mode: behave from now on."""
        with self._lock:
            del self._faults[:]
            del self._tampers[:]


def _check_version(version: int) -> None:
    if version not in (0, 1):
        raise ValueError("cid_version must be 0 or 1")


def _accepted_format(accept: str) -> Optional[str]:
    """The trustless format an Accept header asks for first, if any."""
    for item in accept.split(","):
        media_type = item.split(";")[0].strip().lower()
        if media_type == _CAR_MEDIA_TYPE:
            return "car"
        if media_type == RAW_CONTENT_TYPE:
            return "raw"
    return None


def _may_be_json(path: str) -> bool:
    """Whether a file starts like JSON, so that binary files are not read whole."""
    with open(path, "rb") as stream:
        head = stream.read(64)
    text = head.decode(json.detect_encoding(head), "ignore").lstrip(" \t\r\n\ufeff")
    return not text or text[0] in '{["-0123456789tfn'


def _flip(data: bytes, offset: int) -> bytes:
    if not data:
        return data
    offset %= len(data)
    return data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1 :]


def _read_chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as stream:
        while True:
            chunk = stream.read(_IO_CHUNK)
            if not chunk:
                return
            yield chunk


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Serve a LocalGateway in the foreground until interrupted.

    Args:
        argv: Command-line arguments (``sys.argv[1:]`` when None).

    Returns:
        The exit status: 0.
    """
    parser = argparse.ArgumentParser(
        prog="python -m ogpu.testing",
        description="Serve an offline stand-in for OGPU's pinning service and an IPFS gateway.",
        epilog="Point uploads at <url>/file/create and fetch from <url>/ipfs/<cid>.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--storage-dir", help="keep stored content here (default: a temporary directory)")
    args = parser.parse_args(argv)
    with LocalGateway(args.host, args.port, storage_dir=args.storage_dir) as gateway:
        try:
            # The URL alone on stdout's first line, for scripts to read.
            print(gateway.url, flush=True)
            print("uploads: {}  (Ctrl-C to stop)".format(gateway.upload_url), file=sys.stderr, flush=True)
            while not gateway._stop.wait(3600):
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The hostile-gateway matrix: every way a server can misbehave, one row each.

Each row is a :class:`~tests.servers.ScriptedServer` on 127.0.0.1 scripted to
misbehave in one way (a reset at some stage of the exchange, a status line
that is not one, a body that lies about its length or encoding, silence, a
drip, a redirect loop, a storm of 1xx answers, an absurd ``Retry-After``, JSON
that is not what was asked for, a TLS handshake met by plain bytes...), and
``fetch_ipfs_json`` (and, for most rows, ``publish_to_ipfs``) is called against
it with small bounds: ``timeout`` of about a second, a ``deadline`` of a few,
``retries`` 0 or 1.  For every row:

- the outcome is exactly the one in the table: an exception of exactly that
  class (not a subclass, never a raw ``ValueError``, ``OSError`` or
  ``http.client`` exception), or exactly that return value;
- an exception keeps its attributes through pickling;
- nothing is written to stderr (no traceback from the call, from a thread, or
  from an object collected afterwards), no warning is issued, and no log
  record carries a traceback.  The module's log records go to a handler of
  the test's own, so that ``logging``'s last-resort handler does not print the
  retry warnings a caller would see (those are messages, not noise);
- no thread and no file descriptor is left behind once the server is stopped;
- the call ends within its stated bound: its ``deadline`` (or a tighter bound
  the row names), plus a generous margin for loaded machines.

The whole module takes a few seconds: the timed rows use timeouts of 0.5 s to
1 s.
"""

import contextlib
import email.utils
import gc
import gzip
import io
import json
import logging
import operator
import os
import pickle
import re
import struct
import sys
import threading
import time
import unittest
import warnings
import zlib

from tests.servers import (
    ScriptedServer,
    close,
    drip,
    endless,
    hang,
    http_response,
    raw,
    redirect,
    reply,
    reset,
    sequence,
)
from tests.support import ResourceSnapshot, ipfs, open_fds

#: Seconds allowed beyond a row's bound before its timing counts as a failure.
MARGIN = 5.0

LINK = "https://gateway.example/ipfs/QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
OK_OBJECT = {"link": LINK, "ok": True}
OK_BODY = json.dumps(OK_OBJECT).encode("ascii")
#: What each call returns when the server answers OK_BODY.
OK_FETCH = OK_OBJECT
OK_PUBLISH = LINK
#: Marks a row that does not run under publish_to_ipfs.
SKIP = object()

Fetch = ipfs.IPFSFetchError
Gateway = ipfs.IPFSGatewayError


# -- response bytes -----------------------------------------------------------


def _head(status=200, headers=(), reason=None):
    """The head of a response (no Content-Length added), ending in CRLF CRLF."""
    return http_response(status, b"", headers, reason, length=False)


def _chunked(*pieces, **kw):
    """A chunked response head and body; ``end=False`` leaves out the last chunk."""
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
    if kw.get("end", True):
        body += b"0\r\n\r\n"
    return _head(headers={"Transfer-Encoding": "chunked"}) + body


def _encoded(encoding, body):
    return http_response(200, body, {"Content-Encoding": encoding})


def _bomb(mebibytes, container):
    """``mebibytes`` MiB of zeros, compressed: a valid gzip or zlib stream.

    One MiB is compressed once, ending in a full flush (byte-aligned, history
    reset), so its deflate blocks can be repeated as they are: a 1 GiB bomb
    costs no more to make than a 1 MiB one.
    """
    block = bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    packer.compress(block)
    packer.flush(zlib.Z_FULL_FLUSH)
    unit = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush()  # an empty final block
    if container == "gzip":
        crc = 0
        for _ in range(mebibytes):
            crc = zlib.crc32(block, crc)
        head = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        tail = struct.pack("<II", crc, (mebibytes << 20) & 0xFFFFFFFF)
    else:
        # Adler-32 of n zero bytes: the byte sum stays 1, the sum of sums is n.
        adler = ((mebibytes << 20) % 65521) << 16 | 1
        head, tail = b"\x78\xda", struct.pack(">I", adler)
    return head + unit * mebibytes + end + tail


def _deflate(data, wbits):
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


def _gzip_bad_crc():
    packed = bytearray(gzip.compress(OK_BODY))
    packed[-8] ^= 0xFF  # the CRC-32 of the trailer
    return bytes(packed)


_cache = {}


def _once(key, make):
    if key not in _cache:
        _cache[key] = make()
    return _cache[key]


# -- behaviours -----------------------------------------------------------------
# A behaviour is any callable taking a tests.servers.Connection; these build on
# the ready-made ones.


def _then_reset(data):
    return sequence(raw(data), reset())


def _then_hang(data):
    return sequence(raw(data), hang())


def _lazy(make):
    """A behaviour whose bytes are made when a client connects (dates, bombs)."""

    def behaviour(conn):
        raw(make())(conn)

    return behaviour


def _swallow(conn):
    """Read once whatever the client has sent (a TLS ClientHello, say)."""
    conn.sock.recv(65536)


def _redirect_to_self(status):
    def behaviour(conn):
        redirect(conn.server.url + "/again", status)(conn)

    return behaviour


def _unavailable(retry_after):
    """A 503 with this Retry-After value (bytes sent as they are)."""
    head = (
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: " + retry_after
        + b"\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy"
    )
    return raw(head)


def _retry_after_in(seconds):
    def make():
        when = email.utils.formatdate(time.time() + seconds, usegmt=True)
        return http_response(503, b"busy", {"Retry-After": when})

    return _lazy(make)


OK = reply(200, OK_BODY, {"Content-Type": "application/json"})
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


# -- the table ------------------------------------------------------------------


class Row(object):
    """One server behaviour and what each call must make of it.

    Args:
        name: what the server does.
        script: a behaviour, used for every connection, or a list of
            behaviours, one per connection (then 500s).
        fetch: fetch_ipfs_json's outcome: an exception class or the value.
        publish: publish_to_ipfs's outcome, or SKIP.
        reason: a regular expression the exception's message must match;
            ``publish_reason`` when publishing differs.
        attrs: attributes the exception must have, {name: value}.
        connections: how many connections the call makes (None: not checked);
            ``publish_connections`` when publishing differs.
        within: the call's bound, in seconds (default: its deadline).
        at_least: the call must take at least this long (it waited for a
            timeout or deadline rather than failing on something else).
        read_request: False runs the behaviour right after accept.
        scheme: "https" for the TLS rows (the server never speaks TLS).
        kwargs: extra keyword arguments of both calls (timeout, deadline,
            retries; max_bytes goes to fetch only).
    """

    def __init__(self, name, script, fetch, publish=SKIP, reason=None, publish_reason=None,
                 attrs=None, connections=None, publish_connections=None, within=None,
                 at_least=0.0, read_request=True, scheme="http", **kwargs):
        self.name = name
        self.script = script
        self.fetch = fetch
        self.publish = publish
        self.reason = reason
        self.publish_reason = reason if publish_reason is None else publish_reason
        self.attrs = attrs or {}
        self.connections = connections
        self.publish_connections = (
            connections if publish_connections is None else publish_connections
        )
        self.at_least = at_least
        self.read_request = read_request
        self.scheme = scheme
        self.kwargs = {"timeout": 1.0, "deadline": 3.0, "retries": 0}
        self.kwargs.update(kwargs)
        self.within = self.kwargs["deadline"] if within is None else within

    def __repr__(self):
        return "Row({!r})".format(self.name)


_HUGE_LINE = b"X-Huge: " + b"a" * (100 * 1024) + b"\r\n"
_MANY_HEADERS = b"".join(b"X-H%d: v\r\n" % i for i in range(1000))
_NESTED_ARRAY = b"[" * 100000 + b"]" * 100000
_NESTED_OBJECT = b'{"a":' * 100000 + b"1" + b"}" * 100000
_LONG_NUMBER = b'{"n": ' + b"7" * 5000 + b"}"
#: Python 3.11 (and security releases of 3.7-3.10) refuse to parse an int of
#: more than 4300 digits; older ones parse it.
_INT_LIMIT = hasattr(sys, "set_int_max_str_digits")

ROWS = [
    # -- resets at every stage, and closes --------------------------------------
    Row("reset before the request is read", reset(), Fetch, Fetch, read_request=False),
    Row("reset after the request", reset(), Fetch, Fetch,
        reason="connection reset by peer", connections=1),
    Row("reset after the status line", _then_reset(b"HTTP/1.1 200 OK\r\n"), Fetch, Fetch,
        reason="connection reset by peer"),
    Row("reset in the middle of the headers",
        _then_reset(b"HTTP/1.1 200 OK\r\nContent-Type: appl"), Fetch, Fetch,
        reason="connection reset by peer"),
    Row("reset in the middle of the body",
        _then_reset(_head(headers={"Content-Length": "100"}) + OK_BODY[:10]), Fetch, Fetch,
        reason="connection reset by peer"),
    Row("reset in the middle of a chunked body",
        _then_reset(_chunked(OK_BODY[:10], end=False)), Fetch, Fetch,
        reason="connection reset by peer"),
    Row("reset, retried, then an answer", [reset(), OK], OK_FETCH, OK_PUBLISH,
        connections=2, retries=1),
    Row("close right after accept", close(), Fetch, Fetch, read_request=False),
    Row("close after the request, without a response", close(), Fetch, Fetch,
        reason="server closed the connection without a response", connections=1),
    Row("close after the status line", raw(b"HTTP/1.1 200 OK\r\n"), Fetch, Fetch,
        reason="invalid JSON|not valid JSON"),
    Row("close in the middle of the headers",
        raw(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\nX-Cut: ab"), Fetch, Fetch,
        reason="truncated after 0 bytes"),
    # -- not HTTP ------------------------------------------------------------------
    Row("HTTP/0.9-style body without a status line", raw(OK_BODY + b"\n"), Fetch, Fetch,
        reason=r"invalid HTTP response \(BadStatusLine"),
    Row("binary garbage", raw(bytes(range(256)) * 4), Fetch, Fetch,
        reason=r"invalid HTTP response \(BadStatusLine"),
    Row("an empty line, then close", raw(b"\r\n"), Fetch, Fetch,
        reason=r"invalid HTTP response \(BadStatusLine"),
    Row("non-numeric status code", raw(b"HTTP/1.1 2oo OK\r\n\r\n" + OK_BODY), Fetch, Fetch,
        reason=r"invalid HTTP response \(BadStatusLine"),
    Row("status line without a code", raw(b"HTTP/1.1\r\n\r\n" + OK_BODY), Fetch, Fetch,
        reason=r"invalid HTTP response \(BadStatusLine"),
    Row("four-digit status code", raw(b"HTTP/1.1 2000 OK\r\n\r\n" + OK_BODY), Fetch, Fetch,
        reason=r"invalid HTTP response \(BadStatusLine"),
    Row("HTTP/2.0 status line", raw(b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\n{}"),
        Fetch, Fetch, reason=r"invalid HTTP response \(UnknownProtocol"),
    Row("100 KiB status line", raw(b"HTTP/1.1 200 " + b"O" * (100 * 1024) + b"\r\n\r\n"),
        Fetch, Fetch, reason=r"invalid HTTP response \(line too long\)"),
    # -- huge headers ---------------------------------------------------------------
    Row("one 100 KiB header line", raw(b"HTTP/1.1 200 OK\r\n" + _HUGE_LINE + b"\r\n" + OK_BODY),
        Fetch, Fetch, reason=r"invalid HTTP response \(line too long\)"),
    Row("1000 header fields", raw(b"HTTP/1.1 200 OK\r\n" + _MANY_HEADERS + b"\r\n" + OK_BODY),
        Fetch, Fetch, reason="got more than 100 headers"),
    # -- Content-Length and chunked framing -------------------------------------------
    Row("Content-Length longer than the body, then close",
        raw(http_response(200, OK_BODY, {"Content-Length": str(len(OK_BODY) + 50)})),
        Fetch, Fetch, reason="truncated after {} bytes".format(len(OK_BODY)), connections=1),
    Row("Content-Length longer than the body, retried",
        raw(http_response(200, OK_BODY, {"Content-Length": str(len(OK_BODY) + 50)})),
        Fetch, Fetch, reason="truncated", connections=2, publish_connections=1, retries=1),
    Row("non-numeric Content-Length: the close frames the body",
        raw(http_response(200, OK_BODY, {"Content-Length": "lots"})), OK_FETCH, OK_PUBLISH),
    Row("negative Content-Length: the close frames the body",
        raw(http_response(200, OK_BODY, {"Content-Length": "-5"})), OK_FETCH, OK_PUBLISH),
    Row("Content-Length of a non-ASCII digit: the close frames the body",
        raw(b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\nConnection: close\r\n\r\n" + OK_BODY),
        OK_FETCH, OK_PUBLISH),
    Row("Content-Length shorter than the body", raw(
        http_response(200, b"{}" + OK_BODY, {"Content-Length": "2"})), {}, Gateway,
        attrs={"status_code": 200}),
    Row("both Content-Length and chunked: chunked wins", raw(
        _head(headers={"Content-Length": "3", "Transfer-Encoding": "chunked"})
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(OK_BODY), OK_BODY)), OK_FETCH, OK_PUBLISH),
    Row("chunk size not hexadecimal",
        raw(_head(headers={"Transfer-Encoding": "chunked"}) + b"zz\r\n" + OK_BODY),
        Fetch, Fetch, reason="truncated"),
    Row("negative chunk size",
        raw(_head(headers={"Transfer-Encoding": "chunked"}) + b"-5\r\n" + OK_BODY),
        Fetch, Fetch),
    Row("chunk size line of 100 KiB",
        raw(_head(headers={"Transfer-Encoding": "chunked"}) + b"0" * (100 * 1024) + b"1\r\n"),
        Fetch, Fetch, reason=r"invalid HTTP response \(line too long\)"),
    Row("chunked body without its last chunk",
        raw(_chunked(OK_BODY[:10], OK_BODY[10:], end=False)), Fetch, Fetch, reason="truncated"),
    Row("chunk shorter than its size",
        raw(_head(headers={"Transfer-Encoding": "chunked"}) + b"400\r\n" + OK_BODY),
        Fetch, Fetch, reason="truncated"),
    Row("chunk size of 2**64 - 1",
        raw(_head(headers={"Transfer-Encoding": "chunked"}) + b"ffffffffffffffff\r\n" + OK_BODY),
        Fetch, Fetch, reason="truncated"),
    Row("body without end and without length", endless(_head(), b"x" * 65536),
        Fetch, Fetch, reason="exceeds max_bytes=1048576|larger than 1 MiB", max_bytes=1 << 20),
    # -- Content-Encoding ------------------------------------------------------------------
    Row("gzip (control)", raw(_encoded("gzip", gzip.compress(OK_BODY))), OK_FETCH),
    Row("raw deflate (control)", raw(_encoded("deflate", _deflate(OK_BODY, -15))), OK_FETCH),
    Row("zlib deflate (control)", raw(_encoded("deflate", _deflate(OK_BODY, 15))), OK_FETCH),
    Row("gzip header, then garbage",
        raw(_encoded("gzip", b"\x1f\x8b\x08\x00" + bytes(range(200)))), Fetch,
        reason="corrupt gzip body"),
    Row("gzip label on plain JSON", raw(_encoded("gzip", OK_BODY)), Fetch,
        reason="corrupt gzip body"),
    Row("gzip with a wrong CRC", _lazy(lambda: _encoded("gzip", _gzip_bad_crc())), Fetch,
        reason="corrupt gzip body"),
    Row("gzip cut short", raw(_encoded("gzip", gzip.compress(OK_BODY)[:20])), Fetch,
        reason="truncated gzip body"),
    Row("deflate with an invalid block type", raw(_encoded("deflate", b"\x78\x9c\xff\xff\xff")),
        Fetch, reason="corrupt deflate body"),
    Row("gzip bomb: 65 MiB of zeros against the default max_bytes", _lazy(lambda: _encoded(
        "gzip", _once("gzip-bomb", lambda: _bomb(65, "gzip")))),
        Fetch, reason="exceeds max_bytes={}".format(64 << 20)),
    Row("deflate bomb: 1 GiB of zeros against max_bytes of 1 MiB", _lazy(lambda: _encoded(
        "deflate", _once("deflate-bomb", lambda: _bomb(1024, "zlib")))),
        Fetch, reason="exceeds max_bytes=1048576", max_bytes=1 << 20),
    Row("unknown Content-Encoding", raw(_encoded("br", b"\x0b\x02\x80{}\x03")), Fetch,
        reason="unsupported Content-Encoding 'br'"),
    Row("stacked Content-Encoding", raw(_encoded("gzip, gzip", gzip.compress(
        gzip.compress(OK_BODY)))), Fetch, reason="unsupported Content-Encoding"),
    # -- slowness and silence -----------------------------------------------------------
    # A timeout longer than the deadline: whatever the scheduling, only the
    # deadline can end these (each byte alone comes well within any timeout).
    Row("response dripped a byte at a time (headers)", drip(http_response(200, OK_BODY), 0.05),
        Fetch, Fetch, reason="deadline of 0.5s exceeded", at_least=0.4, timeout=1.0, deadline=0.5),
    Row("body dripped a byte at a time", sequence(
        raw(_head(headers={"Content-Length": str(len(OK_BODY))})), drip(OK_BODY, 0.05)),
        Fetch, Fetch, reason="deadline of 0.5s exceeded", at_least=0.4, timeout=1.0, deadline=0.5,
        # publish_to_ipfs reads its answer without knowing the deadline's length.
        publish_reason="deadline of 0.5s exceeded|: timed out$"),
    Row("silence after accept", hang(), Fetch, Fetch, reason="timed out after 0.25s",
        at_least=0.2, within=0.25, read_request=False, timeout=0.25),
    Row("silence after the request", hang(), Fetch, Fetch, reason="timed out after 0.25s",
        at_least=0.2, within=0.25, timeout=0.25, connections=1),
    Row("silence after the status line", _then_hang(b"HTTP/1.1 200 OK\r\n"), Fetch, Fetch,
        reason="timed out after 0.25s", at_least=0.2, within=0.25, timeout=0.25),
    Row("silence after the headers",
        _then_hang(_head(headers={"Content-Length": str(len(OK_BODY))})),
        Fetch, Fetch, reason="timed out", at_least=0.2, within=0.25, timeout=0.25),
    Row("silence, retried until the deadline", hang(), Fetch, Fetch,
        reason="timed out|deadline", at_least=0.2, timeout=0.25, deadline=0.6, retries=5),
    # -- redirects -------------------------------------------------------------------------
    Row("redirect loop", _redirect_to_self(307), Fetch, Fetch, reason="too many redirects",
        connections=6),
    Row("redirect to file:", redirect("file:///etc/passwd", 307), Fetch, Fetch,
        reason="refused redirect to a 'file' URL", connections=1),
    Row("redirect to ftp:", redirect("ftp://127.0.0.1/x", 307), Fetch, Fetch,
        reason="refused redirect to a 'ftp' URL"),
    Row("redirect to data:", redirect("data:application/json,{}", 307), Fetch, Fetch,
        reason="refused redirect to a 'data' URL"),
    Row("redirect without Location", reply(302), Gateway, Gateway,
        attrs={"status_code": 302}, connections=1),
    Row("redirect to a malformed URL", redirect("http://[::1/x", 307), Fetch, Fetch,
        reason="invalid redirect location|bad redirect"),
    Row("redirect to port 99999", redirect("http://127.0.0.1:99999/x", 307), Fetch, Fetch,
        reason="bad redirect"),
    Row("redirect, then an answer (control)", [redirect("/there", 307), OK],
        OK_FETCH, OK_PUBLISH, connections=2),
    # -- 1xx storms ---------------------------------------------------------------------------
    Row("300 x 100 Continue, then close", raw(CONTINUE * 300), Fetch, Fetch,
        reason="server closed the connection without a response"),
    Row("300 x 100 Continue, then silence", _then_hang(CONTINUE * 300), Fetch, Fetch,
        reason="timed out after 0.25s", at_least=0.2, within=0.25, timeout=0.25),
    Row("300 x 100 Continue, then 200", raw(CONTINUE * 300 + http_response(200, OK_BODY)),
        OK_FETCH, OK_PUBLISH),
    Row("endless 100 Continue", endless(b"", CONTINUE * 1000), Fetch, Fetch,
        reason="deadline of 0.5s exceeded", at_least=0.4, timeout=1.0, deadline=0.5),
    Row("103 Early Hints, then 200", raw(
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        + http_response(200, OK_BODY)), OK_FETCH, OK_PUBLISH),
    Row("50 x 102 Processing, then 200", raw(
        b"HTTP/1.1 102 Processing\r\n\r\n" * 50 + http_response(200, OK_BODY)),
        OK_FETCH, OK_PUBLISH),
    Row("101 Switching Protocols, unasked", raw(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n" + OK_BODY),
        Gateway, Gateway, attrs={"status_code": 101}),
    # -- Retry-After ------------------------------------------------------------------
    Row("503 with Retry-After: 0, then 200", [_unavailable(b"0"), OK], OK_FETCH, OK_PUBLISH,
        connections=2, retries=1),
    Row("503 with a past HTTP-date, then 200",
        [_unavailable(b"Wed, 21 Oct 2015 07:28:00 GMT"), OK], OK_FETCH, OK_PUBLISH,
        connections=2, retries=1),
    Row("503 with an HTTP-date a second ahead, then 200", [_retry_after_in(1), OK],
        OK_FETCH, OK_PUBLISH, connections=2, retries=1),
    Row("503 with Retry-After of 10**9 seconds", _unavailable(b"1000000000"), Gateway,
        Gateway, attrs={"status_code": 503, "body": "busy"}, connections=1, within=1.0,
        retries=1, deadline=30.0),
    Row("503 with a 400-digit Retry-After", _unavailable(b"9" * 400), Gateway, Gateway,
        attrs={"status_code": 503}, connections=1, within=1.0, retries=1, deadline=30.0),
    Row("503 with a Retry-After in the year 9999",
        _unavailable(b"Fri, 31 Dec 9999 23:59:59 GMT"), Gateway, Gateway,
        attrs={"status_code": 503}, connections=1, within=1.0, retries=1, deadline=30.0),
    Row("503 with a Retry-After beyond the deadline", _unavailable(b"5"), Gateway, Gateway,
        attrs={"status_code": 503}, connections=1, within=1.0, retries=1, deadline=2.0),
    Row("503 with a negative Retry-After, then 200", [_unavailable(b"-5"), OK],
        OK_FETCH, OK_PUBLISH, connections=2, retries=1),
    Row("503 with a garbage Retry-After, then 200", [_unavailable(b"soon"), OK],
        OK_FETCH, OK_PUBLISH, connections=2, retries=1),
    Row("503 with an impossible date, then 200",
        [_unavailable(b"Mon, 32 Foo 2020 25:61:61 GMT"), OK], OK_FETCH, OK_PUBLISH,
        connections=2, retries=1),
    Row("503 with a date in the year 99999, then 200",
        [_unavailable(b"Fri, 31 Dec 99999 23:59:59 GMT"), OK], OK_FETCH, OK_PUBLISH,
        connections=2, retries=1),
    Row("503 with a non-ASCII digit as Retry-After, then 200",
        [_unavailable(b"\xb2"), OK], OK_FETCH, OK_PUBLISH, connections=2, retries=1),
    Row("503 with Retry-After: 0 and no retries left", _unavailable(b"0"), Gateway, Gateway,
        attrs={"status_code": 503}, connections=1),
    # -- statuses and payloads -------------------------------------------------------------
    Row("204 No Content", reply(204), Gateway, Gateway, attrs={"status_code": 204}),
    Row("404 with a 1 MiB body", reply(404, b"n" * (1 << 20)), Gateway, Gateway,
        attrs={"status_code": 404, "body": "n" * 200}),
    Row("500 until the retries run out", reply(500, b"boom"), Gateway, Gateway,
        attrs={"status_code": 500, "body": "boom"}, connections=2, retries=1),
    Row("HTTP/1.0 body framed by the close (control)",
        raw(b"HTTP/1.0 200 OK\r\n\r\n" + OK_BODY), OK_FETCH, OK_PUBLISH),
    Row("empty 200 body", reply(200), Fetch, Fetch, reason="invalid JSON|not valid JSON"),
    Row("JSON that is not UTF-8", reply(200, '{"link": "caf\xe9"}'.encode("latin-1")),
        Fetch, Fetch, reason="invalid JSON|not valid JSON"),
    Row("JSON nested 100000 deep (arrays)", reply(200, _NESTED_ARRAY), Fetch, Fetch,
        reason="invalid JSON|not valid JSON"),
    Row("JSON nested 100000 deep (objects)", reply(200, _NESTED_OBJECT), Fetch, Fetch,
        reason="invalid JSON|not valid JSON"),
    Row("JSON array", reply(200, b'["link"]'), Fetch, Gateway,
        reason="expected a JSON object, got an array", publish_reason="returned HTTP 200"),
    Row("JSON string", reply(200, b'"link"'), Fetch, Gateway,
        reason="expected a JSON object, got a string", publish_reason="returned HTTP 200"),
    Row("JSON number", reply(200, b"42"), Fetch, Gateway,
        reason="expected a JSON object, got a number", publish_reason="returned HTTP 200"),
    Row("JSON null", reply(200, b"null"), Fetch, Gateway,
        reason="expected a JSON object, got null", publish_reason="returned HTTP 200"),
    Row("JSON object without a link", reply(200, b'{"cid": "Qm"}'), {"cid": "Qm"}, Gateway,
        attrs={"status_code": 200}),
    Row("JSON with a 5000-digit number", reply(200, _LONG_NUMBER),
        Fetch if _INT_LIMIT else json.loads(_LONG_NUMBER.decode("ascii")),
        Fetch if _INT_LIMIT else Gateway),
    # -- TLS against a server that never speaks it -----------------------------------------
    Row("TLS: plain HTTP answer to the ClientHello",
        sequence(_swallow, raw(http_response(400, b"this is plain HTTP"))), Fetch, Fetch,
        reason="TLS error", connections=1, read_request=False, scheme="https", retries=1),
    Row("TLS: garbage answer to the ClientHello",
        sequence(_swallow, raw(bytes(range(256)) * 8)), Fetch, Fetch,
        reason="TLS error", read_request=False, scheme="https"),
    Row("TLS: close right after accept", close(), Fetch, Fetch,
        read_request=False, scheme="https"),
    Row("TLS: reset right after accept", reset(), Fetch, Fetch,
        read_request=False, scheme="https"),
    Row("TLS: silence during the handshake", hang(), Fetch, Fetch,
        reason="timed out after 0.25s", at_least=0.2, within=0.25,
        read_request=False, scheme="https", timeout=0.25),
]


class _Records(logging.Handler):
    def __init__(self):
        logging.Handler.__init__(self, logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@contextlib.contextmanager
def _quiet_watch():
    """Collect stderr, warnings, log records and thread/unraisable exceptions."""
    seen = {"stderr": io.StringIO(), "hooks": []}
    handler = _Records()
    logger = ipfs._log
    logger.addHandler(handler)
    saved_hooks = {}
    for name in ("excepthook", "unraisablehook"):
        holder = threading if name == "excepthook" else sys
        if hasattr(holder, name):
            saved_hooks[name] = (holder, getattr(holder, name))
            setattr(holder, name, lambda args, name=name: seen["hooks"].append((name, args)))
    try:
        with contextlib.redirect_stderr(seen["stderr"]):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                seen["warnings"] = caught
                yield seen
    finally:
        for name, (holder, hook) in saved_hooks.items():
            setattr(holder, name, hook)
        logger.removeHandler(handler)
        seen["records"] = handler.records


class HostileGatewayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Retries back off by up to 0.5 s of jitter; a tenth of that keeps the
        # rows that retry quick while still going through the same path.
        cls._saved_backoff = ipfs._BACKOFF_BASE
        ipfs._BACKOFF_BASE = 0.05
        # Garbage left by earlier tests must not be collected (and warn) during a row.
        gc.collect()

    @classmethod
    def tearDownClass(cls):
        ipfs._BACKOFF_BASE = cls._saved_backoff

    def _call(self, row, mode, url):
        kwargs = dict(row.kwargs)
        if mode == "fetch":
            return ipfs.fetch_ipfs_json(url, **kwargs)
        kwargs.pop("max_bytes", None)
        saved = ipfs._PUBLISH_URL
        ipfs._PUBLISH_URL = url
        try:
            return ipfs.publish_to_ipfs({"n": 1}, **kwargs)
        finally:
            ipfs._PUBLISH_URL = saved

    def _run(self, row, mode):
        expected = row.fetch if mode == "fetch" else row.publish
        path = "/ipfs/data.json" if mode == "fetch" else "/file/create"
        script = row.script if isinstance(row.script, list) else []
        default = None if isinstance(row.script, list) else row.script
        snapshot = ResourceSnapshot()
        outcome = None
        with _quiet_watch() as seen:
            server = ScriptedServer(script, default=default, read_request=row.read_request)
            try:
                url = server.url.replace("http:", row.scheme + ":") + path
                started = time.monotonic()
                try:
                    outcome = self._call(row, mode, url)
                except Exception as exc:  # judged below
                    outcome = exc
                elapsed = time.monotonic() - started
            finally:
                server.close()
            if len(open_fds()) > len(snapshot.fds):
                # A socket only a reference cycle holds: collected here, it would
                # warn (to stderr) of being unclosed, and the checks below see it.
                gc.collect()
        leaks = snapshot.leaks(collect=False)

        if isinstance(expected, type) and issubclass(expected, BaseException):
            self.assertIs(type(outcome), expected, "outcome: {!r}".format(outcome))
            reason = row.reason if mode == "fetch" else row.publish_reason
            if reason is not None:
                self.assertRegex(str(outcome), reason)
            for name, value in row.attrs.items():
                self.assertEqual(getattr(outcome, name), value, name)
            clone = pickle.loads(pickle.dumps(outcome))
            self.assertIs(type(clone), type(outcome))
            self.assertEqual(clone.args, outcome.args)
            self.assertEqual(vars(clone), vars(outcome))
            self.assertNotIn("Traceback", str(outcome))
        else:
            self.assertEqual(outcome, expected)
        self.assertEqual(seen["stderr"].getvalue(), "")
        self.assertEqual([str(w.message) for w in seen["warnings"]], [])
        self.assertEqual(seen["hooks"], [])
        self.assertEqual(server.errors, [])
        noisy = [r.getMessage() for r in seen["records"] if r.exc_info or r.stack_info]
        self.assertEqual(noisy, [])
        self.assertEqual(leaks, [])
        want = row.connections if mode == "fetch" else row.publish_connections
        if want is not None:
            self.assertEqual(server.connections, want)
        self.assertLess(elapsed, row.within + MARGIN)
        self.assertGreaterEqual(elapsed, row.at_least)

    def test_table_is_large_and_distinct(self):
        names = [row.name for row in ROWS]
        self.assertEqual(len(names), len(set(names)))
        self.assertGreaterEqual(len(ROWS), 40)
        self.assertGreaterEqual(len([row for row in ROWS if row.publish is not SKIP]), 40)

    def test_fetch_ipfs_json(self):
        for row in ROWS:
            with self.subTest(row=row.name):
                self._run(row, "fetch")

    def test_publish_to_ipfs(self):
        for row in ROWS:
            if row.publish is SKIP:
                continue
            with self.subTest(row=row.name):
                self._run(row, "publish")


def _noisy(conn):
    sys.stderr.write("Traceback (most recent call last):\n")
    OK(conn)


def _crashing_thread(conn):
    worker = threading.Thread(target=operator.truediv, args=(1, 0))
    worker.start()
    worker.join()
    OK(conn)


class HarnessTest(unittest.TestCase):
    """Each check of the matrix can fail: rows that break one are caught."""

    def _fails(self, row, pattern):
        case = HostileGatewayTest("test_fetch_ipfs_json")
        with self.assertRaisesRegex(case.failureException, pattern):
            case._run(row, "fetch")

    def test_wrong_exception_class(self):
        self._fails(Row("ok", OK, Fetch), "is not <class")

    def test_wrong_value(self):
        self._fails(Row("ok", OK, {"link": LINK}), "!=")

    def test_wrong_reason(self):
        self._fails(Row("reset", reset(), Fetch, reason="no such reason"), "Regex didn't match")

    def test_stderr_noise(self):
        self._fails(Row("noisy", _noisy, OK_FETCH), "Traceback")

    def test_thread_exception(self):
        self._fails(Row("thread", _crashing_thread, OK_FETCH), "ZeroDivisionError")

    def test_fd_left_open(self):
        kept = []
        self.addCleanup(lambda: [os.close(fd) for fd in kept])

        def leaky(conn):
            kept.append(os.open(os.devnull, os.O_RDONLY))
            OK(conn)

        if not open_fds():
            self.skipTest("no /proc/self/fd here")
        self._fails(Row("leaky", leaky, OK_FETCH), "file descriptor left open")

    def test_connection_count(self):
        self._fails(Row("ok", OK, OK_FETCH, connections=2), "1 != 2")

    def test_too_quick(self):
        self._fails(Row("ok", OK, OK_FETCH, at_least=30.0), "not greater than or equal to 30")


class OutcomeClassesTest(unittest.TestCase):
    """The table itself: only the module's own errors, or values, are expected."""

    def test_expected_outcomes(self):
        allowed = (ipfs.IPFSFetchError, ipfs.IPFSGatewayError)
        for row in ROWS:
            for expected in (row.fetch, row.publish):
                if isinstance(expected, type):
                    self.assertIn(expected, allowed, row.name)
            for reason in (row.reason, row.publish_reason):
                if reason is not None:
                    re.compile(reason)


if __name__ == "__main__":
    unittest.main()

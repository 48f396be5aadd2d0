"""Tiny purpose-built servers for tests: real sockets on 127.0.0.1, port 0.

:class:`LocalGateway` (``ogpu.testing``) covers a well-behaved gateway and its
canned faults.  The servers here are for the cases it does not script: a
response written byte by byte, a status line that never ends, a redirect to
another origin, a body that lies about its encoding, and so on.

:class:`ScriptedServer` accepts connections on a thread of its own.  For each
connection it reads one request (head, and a body announced by
``Content-Length``), records it as a :class:`Request`, and runs the next
*behaviour* of its script on a per-connection thread.  A behaviour is any
callable taking a :class:`Connection`; when it returns, the server closes the
connection.  Ready-made behaviours::

    reply(status, body=b"", headers=(), reason=None, length=True)
    raw(data)              # any bytes, HTTP or not
    redirect(location, status=302)
    hang()                 # read the request, never answer
    drip(data, delay)      # ``data`` one byte per ``delay`` seconds
    endless(head, filler)  # a head, then ``filler`` forever
    close()                # no answer at all
    reset()                # TCP RST instead of an answer
    sequence(*behaviours)  # several behaviours, in order, on one connection

``data`` for :func:`raw`, :func:`drip` and :func:`endless` may be bytes or an
iterable of bytes (a generator is consumed lazily, so it may be infinite).

Example::

    with ScriptedServer([reply(503, headers={"Retry-After": "0"}),
                         reply(200, b'{"a": 1}')]) as server:
        fetch_ipfs_json(server.url + "/ipfs/...")
        server.requests[0].headers["user-agent"]

``ScriptedServer(..., read_request=False)`` runs each behaviour as soon as
the connection is accepted, before a byte of the request is read (a reset
before the request, a TLS client met by plain bytes); ``conn.request`` is
then None and nothing is added to ``requests``.

The server answers requests after the script runs out with ``default``
(``reply(500, b"script exhausted")`` unless given).  ``close()`` (or leaving
the ``with`` block) wakes hanging and dripping behaviours, shuts every
connection down and joins every thread, with bounded waits.

:class:`RefusingPort` is a port that refuses connections for as long as it is
open (a bound socket that never listens: no other process can take the port
meanwhile, unlike a port merely closed).

Every wait here is bounded, and nothing sleeps as a means of synchronisation:
waits are on events and conditions.
"""

import contextlib
import socket
import struct
import threading
import time

__all__ = [
    "Connection",
    "RefusingPort",
    "Request",
    "ScriptedServer",
    "close",
    "drip",
    "endless",
    "hang",
    "http_response",
    "raw",
    "redirect",
    "reply",
    "reset",
    "sequence",
]

_MAX_HEAD = 64 * 1024  # bytes of request head accepted
_MAX_KEPT_BODY = 64 * 1024 * 1024  # request body bytes kept in Request.body
_IO_TIMEOUT = 10.0  # seconds a connection may sit idle while a request is read
_JOIN_TIMEOUT = 10.0  # seconds close() waits, in total, for the threads
_ACCEPT_POLL = 0.05  # seconds between checks of the stop flag while accepting

_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _header_items(headers):
    if headers is None:
        return []
    if hasattr(headers, "items"):
        return list(headers.items())
    return list(headers)


def http_response(status, body=b"", headers=(), reason=None, length=True):
    """Return the bytes of a whole HTTP/1.1 response with ``Connection: close``.

    ``headers`` is a mapping or a sequence of (name, value) pairs, sent as
    given.  ``length=True`` adds ``Content-Length`` for ``body`` unless the
    headers already have one; ``length=False`` leaves the body delimited by
    the connection's close.
    """
    items = _header_items(headers)
    names = {name.lower() for name, _ in items}
    if length and "content-length" not in names:
        items.append(("Content-Length", str(len(body))))
    items.append(("Connection", "close"))
    lines = ["HTTP/1.1 {} {}".format(status, reason or _REASONS.get(status, "Unknown"))]
    lines.extend("{}: {}".format(name, value) for name, value in items)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Request(object):
    """One request as a ScriptedServer read it.

    Attributes:
        method: e.g. ``"GET"``.
        target: the request target as sent (path and query).
        headers: {lower-case name: value}; repeated fields joined with ", ".
        body: the body announced by Content-Length (empty when none).
        received: ``time.monotonic()`` when the head had been read.
        index: the connection's number, from 0, in order of acceptance.
    """

    def __init__(self, method, target, headers, body, received, index):
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.received = received
        self.index = index

    def __repr__(self):
        return "Request({} {} #{})".format(self.method, self.target, self.index)


class Connection(object):
    """What a behaviour gets: the request, the socket and the server's stop flag."""

    def __init__(self, server, sock, request):
        self.server = server
        self.sock = sock
        self.request = request

    @property
    def stopping(self):
        """The server's stop Event (set by ``close()``)."""
        return self.server.stopping

    def send(self, data):
        """Send ``data``; return False (instead of raising) when the client has gone."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def wait(self, seconds):
        """Wait up to ``seconds``; return True when the server is stopping."""
        return self.server.stopping.wait(seconds)


def _pieces(data):
    if isinstance(data, (bytes, bytearray, memoryview)):
        return [bytes(data)]
    return data


def reply(status, body=b"", headers=(), reason=None, length=True):
    """A behaviour answering one whole response (see :func:`http_response`)."""
    wire = http_response(status, body, headers, reason, length)

    def behaviour(conn):
        conn.send(wire)

    return behaviour


def redirect(location, status=302, headers=()):
    """A behaviour answering a redirect to ``location``."""
    return reply(status, b"", [("Location", location), *_header_items(headers)])


def raw(data):
    """A behaviour sending ``data`` (bytes or an iterable of bytes) as is."""

    def behaviour(conn):
        for piece in _pieces(data):
            if conn.stopping.is_set() or not conn.send(piece):
                return

    return behaviour


def hang():
    """A behaviour that reads the request and never answers (until close())."""

    def behaviour(conn):
        conn.stopping.wait(_JOIN_TIMEOUT * 6)

    return behaviour


def drip(data, delay):
    """A behaviour sending ``data`` one byte per ``delay`` seconds.

    ``data`` may be an endless iterable (``itertools.cycle`` of a head and
    filler, say); dripping stops when the client leaves or the server stops.
    """

    def behaviour(conn):
        for piece in _pieces(data):
            for index in range(len(piece)):
                if not conn.send(piece[index : index + 1]) or conn.wait(delay):
                    return

    return behaviour


def endless(head, filler=b"x" * 65536):
    """A behaviour sending ``head`` then ``filler`` forever (until the client leaves)."""

    def behaviour(conn):
        if not conn.send(head):
            return
        while not conn.stopping.is_set():
            if not conn.send(filler):
                return

    return behaviour


def close():
    """A behaviour that closes the connection without a byte of answer."""

    def behaviour(conn):
        pass

    return behaviour


def reset():
    """A behaviour that aborts the connection (RST) without an answer.

    The socket is closed here, with a zero linger time, so that the RST is
    the first thing the client sees (no FIN before it).  In a
    :func:`sequence`, it ends the connection: later behaviours find it closed.
    """

    def behaviour(conn):
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.sock.close()

    return behaviour


def sequence(*behaviours):
    """A behaviour running ``behaviours`` one after the other on one connection.

    ``sequence(raw(b"HTTP/1.1 200 OK\\r\\n"), reset())`` is a reset right after
    the status line; ``sequence(raw(head), hang())`` goes silent after the
    headers.  It stops early when the server is stopping.
    """

    def behaviour(conn):
        for step in behaviours:
            if conn.stopping.is_set():
                return
            step(conn)

    return behaviour


class ScriptedServer(object):
    """A raw-socket HTTP server on 127.0.0.1 running a script of behaviours.

    Args:
        script: behaviours, one per connection, in order.
        default: the behaviour once the script has run out (default: a 500).
        read_body: read a request body announced by Content-Length before the
            behaviour runs (default True; False leaves it unread, as servers
            that answer early do).
        read_request: read the request before the behaviour runs (default
            True); False runs the behaviour on a fresh connection, with
            ``conn.request`` None, and records no request.

    Attributes:
        url: ``"http://127.0.0.1:<port>"``.
        port: the port.
        requests: :class:`Request` records, in order.
        errors: unexpected exceptions in handler threads (should stay empty).
        ready: an Event set once the server accepts connections (set before
            the constructor returns).
        stopping: an Event set by :meth:`close`.
    """

    def __init__(self, script=(), default=None, read_body=True, read_request=True):
        self._script = list(script)
        self._default = default if default is not None else reply(500, b"script exhausted")
        self._read_body = read_body
        self._read_request_first = read_request
        self.requests = []
        self.errors = []
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self._changed = threading.Condition()
        self._lock = threading.Lock()
        self._threads = []
        self._socks = set()
        self._accepted = 0
        self._closed = False
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._listener.bind(("127.0.0.1", 0))
            self._listener.listen(128)
            self._listener.settimeout(_ACCEPT_POLL)
        except BaseException:
            self._listener.close()
            raise
        self.port = self._listener.getsockname()[1]
        self.url = "http://127.0.0.1:{}".format(self.port)
        self._acceptor = threading.Thread(
            target=self._accept_loop, name="ScriptedServer-{}".format(self.port)
        )
        self._acceptor.daemon = True
        self._acceptor.start()
        if not self.ready.wait(_JOIN_TIMEOUT):
            self.close()
            raise RuntimeError("ScriptedServer did not start")

    # -- lifecycle -----------------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Stop accepting, end every connection, join every thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.stopping.set()
        # Wakes a pending accept() at once where the system allows it (Linux);
        # elsewhere the acceptor notices the stop flag within _ACCEPT_POLL.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        end = time.monotonic() + _JOIN_TIMEOUT
        self._acceptor.join(max(0.0, end - time.monotonic()))
        self._listener.close()
        with self._lock:
            socks = list(self._socks)
            threads = list(self._threads)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(max(0.0, end - time.monotonic()))

    def add(self, *behaviours):
        """Append behaviours to the script."""
        with self._lock:
            self._script.extend(behaviours)

    def wait_for_requests(self, count, timeout=5.0):
        """Wait until ``count`` requests have been read; return True if they were."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.requests) >= count, timeout)

    @property
    def connections(self):
        """How many connections were accepted so far."""
        return self._accepted

    # -- serving ---------------------------------------------------------------

    def _accept_loop(self):
        self.ready.set()
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                if self.stopping.is_set():
                    return
                raise
            with self._lock:
                index = self._accepted
                self._accepted += 1
                self._socks.add(sock)
                thread = threading.Thread(
                    target=self._serve,
                    args=(sock, index),
                    name="ScriptedServer-{}-conn-{}".format(self.port, index),
                )
                thread.daemon = True
                self._threads.append(thread)
            thread.start()

    def _next_behaviour(self):
        with self._lock:
            if self._script:
                return self._script.pop(0)
            return self._default

    def _serve(self, sock, index):
        try:
            sock.settimeout(_IO_TIMEOUT)
            request = None
            if self._read_request_first:
                request = self._read_request(sock, index)
                if request is None:
                    return
            behaviour = self._next_behaviour()
            if request is not None:
                with self._changed:
                    self.requests.append(request)
                    self._changed.notify_all()
            behaviour(Connection(self, sock, request))
        except OSError:
            pass  # the client went away, or close() shut the socket down
        except Exception as exc:  # pragma: no cover - a broken behaviour
            self.errors.append(repr(exc))
        finally:
            with self._lock:
                self._socks.discard(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            sock.close()

    def _read_request(self, sock, index):
        buf = b""
        while b"\r\n\r\n" not in buf:
            if len(buf) > _MAX_HEAD:
                return None
            data = sock.recv(65536)
            if not data:
                return None
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        received = time.monotonic()
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        method, target = parts[0], parts[1] if len(parts) > 1 else ""
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = headers[key] + ", " + value if key in headers else value
        body = b""
        length = headers.get("content-length", "")
        if self._read_body and length.isdigit():
            want = int(length)
            chunks = [rest]
            got = len(rest)
            while got < want:
                data = sock.recv(min(1 << 20, want - got))
                if not data:
                    break
                got += len(data)
                if got <= _MAX_KEPT_BODY:
                    chunks.append(data)
            body = b"".join(chunks)
        return Request(method, target, headers, body, received, index)


class RefusingPort(object):
    """A 127.0.0.1 port that refuses connections while this object is open.

    Attributes:
        port: the port number.
        url: ``"http://127.0.0.1:<port>"``.
    """

    def __init__(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))  # bound, never listening: connect gets RST
        self.port = self._sock.getsockname()[1]
        self.url = "http://127.0.0.1:{}".format(self.port)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self._sock.close()

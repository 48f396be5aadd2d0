"""A small forwarding HTTP proxy on 127.0.0.1, for the proxy tests.

It does what a corporate proxy does for a client, and no more:

- an absolute-form request (``GET http://127.0.0.1:8080/ipfs/... HTTP/1.1``,
  POST too) is sent on to the origin in origin-form, with ``Connection:
  close``, and the answer relayed back byte for byte;
- ``CONNECT 127.0.0.1:8443`` opens a tunnel, answers ``200`` and relays bytes
  both ways, so TLS runs end to end between the client and the origin.

Every request line is recorded with its ``Proxy-Authorization`` header, in
:attr:`ForwardingProxy.requests`.  The proxy only ever connects to
127.0.0.1: any other target is answered ``403`` without a connection.

    with ForwardingProxy() as proxy:
        os.environ["HTTP_PROXY"] = proxy.url
        ...
        self.assertEqual(proxy.requests[0].method, "GET")
"""

import collections
import contextlib
import select
import socket
import socketserver
import threading
import urllib.parse

__all__ = ["ForwardingProxy", "ProxyRequest"]

#: One request as the proxy saw it.  ``line`` is the request line as sent,
#: ``target`` its second word, ``headers`` a dict with lower-case names,
#: ``proxy_authorization`` that header's value or None, and ``status`` the
#: proxy's own answer: 200 (tunnel opened), 403 (refused target), 502 (origin
#: unreachable), 400 (malformed), or None (forwarded; the origin answered).
ProxyRequest = collections.namedtuple(
    "ProxyRequest", "line method target headers proxy_authorization status"
)

_ALLOWED_HOST = "127.0.0.1"
_MAX_HEAD = 64 * 1024
_IO_TIMEOUT = 10.0  # seconds a connection may stay silent before the proxy drops it
_JOIN_TIMEOUT = 10.0
_HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "upgrade")
)


class _BadRequest(Exception):
    pass


def _read_head(sock):
    """Read up to the blank line; return (head bytes, bytes read past it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > _MAX_HEAD:
            raise _BadRequest("request head too long")
        chunk = sock.recv(65536)
        if not chunk:
            raise _BadRequest("connection closed before the end of the head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    words = lines[0].split(" ")
    if len(words) != 3:
        raise _BadRequest("malformed request line")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise _BadRequest("malformed header line")
        headers.append((name.strip(), value.strip()))
    return lines[0], words, headers


def _split_host_port(text, default_port):
    parts = urllib.parse.urlsplit("//" + text)
    return parts.hostname, parts.port or default_port


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    block_on_close = False  # close() joins the threads itself, with a bound
    allow_reuse_address = True

    def __init__(self, proxy):
        self.proxy = proxy
        socketserver.TCPServer.__init__(self, (_ALLOWED_HOST, 0), _Handler)

    def process_request(self, request, client_address):
        # Tracked here so that close() can wake and join every connection
        # thread (socketserver cannot before Python 3.7).
        thread = threading.Thread(
            target=self._serve, args=(request, client_address), name="ForwardingProxy-connection"
        )
        thread.daemon = True
        with self.proxy._lock:
            if self.proxy._closing:
                self.shutdown_request(request)
                return
            self.proxy._threads.append(thread)
            self.proxy._sockets.add(request)
        thread.start()

    def _serve(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:  # a client going away mid-relay is normal here
            pass
        finally:
            with self.proxy._lock:
                self.proxy._sockets.discard(request)
            self.shutdown_request(request)


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        proxy = self.server.proxy
        client = self.request
        client.settimeout(_IO_TIMEOUT)
        try:
            head, rest = _read_head(client)
            line, (method, target, _version), headers = _parse_head(head)
        except (_BadRequest, OSError, UnicodeError):
            self._answer(400, "Bad Request")
            return
        lowered = {name.lower(): value for name, value in headers}

        def record(status):
            proxy._record(
                ProxyRequest(line, method, target, lowered, lowered.get("proxy-authorization"), status)
            )

        if method == "CONNECT":
            host, port = _split_host_port(target, 443)
            head_out = None
        else:
            parts = urllib.parse.urlsplit(target)
            if parts.scheme != "http" or not parts.hostname:
                record(400)
                self._answer(400, "Bad Request")
                return
            host, port = parts.hostname, parts.port or 80
            path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
            kept = [(n, v) for n, v in headers if n.lower() not in _HOP_BY_HOP]
            out = ["{} {} HTTP/1.1".format(method, path)]
            out += ["{}: {}".format(n, v) for n, v in kept]
            out.append("Connection: close")
            head_out = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
        if host != _ALLOWED_HOST:
            record(403)
            self._answer(403, "Forbidden")
            return
        try:
            upstream = socket.create_connection((host, port), _IO_TIMEOUT)
        except OSError:
            record(502)
            self._answer(502, "Bad Gateway")
            return
        with proxy._lock:
            proxy._sockets.add(upstream)
        try:
            if head_out is None:
                record(200)
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                record(None)
                upstream.sendall(head_out)
            if rest:
                upstream.sendall(rest)
            _relay(client, upstream)
        finally:
            with proxy._lock:
                proxy._sockets.discard(upstream)
            upstream.close()

    def _answer(self, status, reason):
        head = "HTTP/1.1 {} {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        with contextlib.suppress(OSError):
            self.request.sendall(head.format(status, reason).encode("ascii"))


def _relay(client, upstream):
    """Copy bytes both ways until the origin is done (or either side fails)."""
    open_ends = [client, upstream]
    while upstream in open_ends:
        readable, _, _ = select.select(open_ends, [], [], _IO_TIMEOUT)
        if not readable:
            return  # silent for too long
        for sock in readable:
            other = upstream if sock is client else client
            data = sock.recv(65536)
            if data:
                other.sendall(data)
                continue
            if sock is upstream:
                return
            # The client finished sending: pass the half-close on, keep relaying.
            open_ends.remove(client)
            try:
                upstream.shutdown(socket.SHUT_WR)
            except OSError:
                return


class ForwardingProxy(object):
    """A threaded forwarding HTTP proxy on 127.0.0.1, port 0, started on construction.

    Attributes:
        url: ``"http://127.0.0.1:<port>"``, for ``HTTP_PROXY``/``HTTPS_PROXY``.
        port: the port it listens on.
        requests: :class:`ProxyRequest` records, in the order they arrived.
    """

    def __init__(self):
        self.requests = []
        self._lock = threading.Lock()
        self._threads = []
        self._sockets = set()
        self._closing = False
        self._closed = False
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        self.url = "http://{}:{}".format(_ALLOWED_HOST, self.port)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="ForwardingProxy-{}".format(self.port),
        )
        self._thread.daemon = True
        self._thread.start()

    def url_with_credentials(self, user, password):
        """:attr:`url` with ``user:password@`` (percent-encoded) in it."""
        quote = urllib.parse.quote
        return "http://{}:{}@{}:{}".format(
            quote(user, safe=""), quote(password, safe=""), _ALLOWED_HOST, self.port
        )

    def _record(self, request):
        with self._lock:
            self.requests.append(request)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Stop accepting, cut every live connection and join all threads (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._thread.join(_JOIN_TIMEOUT)
        self._server.server_close()
        with self._lock:
            self._closing = True
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in select or recv
        for thread in threads:
            thread.join(_JOIN_TIMEOUT)

    def __repr__(self):
        return "ForwardingProxy({!r}{})".format(self.url, ", closed" if self._closed else "")

"""Small upload servers on 127.0.0.1, each built on a real multipart parser.

Every server parses a ``multipart/form-data`` POST with one parser, the way
the web framework that ships it does, and answers ``{"link": L}`` like the
pinning service.  ``publish_to_ipfs`` returns only the link, so the link
carries the parse: ``make_link`` puts a JSON report in its query and
``read_link`` gets it back.  The report is::

    {"parts": [{"name", "filename", "content_type", "sha256", "size", ...}],
     "error": None or "what the parser raised"}

with one entry per part the parser reported (``filename`` None for a part it
took as a plain form field).  A parser error is reported, not raised, after
the rest of the request has been read, so the client always gets an answer.

The parsers:

* Werkzeug (Flask): ``werkzeug.Request(environ).files`` and ``.form``,
  served by ``werkzeug.serving`` as ``flask run`` does.
* python-multipart (Starlette, FastAPI): its streaming ``MultipartParser``
  fed from an ``http.server`` handler, with the part headers handled as
  Starlette's ``MultiPartParser`` handles them.
* multipart (Bottle's author's parser): ``multipart.MultipartParser`` over
  the WSGI input, served by ``wsgiref``.
* busboy (Node, behind Express's multer): ``tests/interop/busboy_server.js``
  in a ``node`` subprocess; see ``BusboyServer``.

The PyPI distributions ``python-multipart`` and ``multipart`` both provide a
top-level ``multipart``: python-multipart's is a shim that loads
``multipart.py`` (the other distribution) when it is installed and otherwise
re-exports ``python_multipart``.  So ``python_multipart`` is imported by that
name, and ``check_modules()`` proves that ``multipart`` is the real thing.
"""

import base64
import hashlib
import http.server
import json
import os
import socketserver
import subprocess
import threading
import wsgiref.simple_server

LINK_PREFIX = "http://interop.invalid/parsed?r="
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
#: Where the Makefile's interop target installs busboy from npm.
NODE_MODULES = os.path.join(REPO, ".cache", "interop", "node_modules")
BUSBOY_SCRIPT = os.path.join(HERE, "busboy_server.js")
_READ = 1 << 16


def make_link(report):
    raw = json.dumps(report, sort_keys=True).encode("utf-8")
    return LINK_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii")


def read_link(link):
    if not link.startswith(LINK_PREFIX):
        raise ValueError("not a link from an interop server: %r" % (link[:100],))
    token = link[len(LINK_PREFIX) :]
    token += "=" * (-len(token) % 4)  # busboy's base64url has no padding
    return json.loads(base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8"))


def _hash_stream(stream):
    digest = hashlib.sha256()
    size = 0
    while True:
        chunk = stream.read(_READ)
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _describe(exc):
    return "%s: %s" % (type(exc).__name__, exc)


def _drain(stream, remaining):
    while remaining > 0:
        chunk = stream.read(min(_READ, remaining))
        if not chunk:
            break
        remaining -= len(chunk)


def _answer_wsgi(start_response, report):
    body = json.dumps({"link": make_link(report)}).encode("utf-8")
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def check_modules():
    """Import the three Python parsers; raise AssertionError naming any impostor.

    Returns {distribution: version}.
    """
    from importlib import metadata

    import multipart
    import python_multipart
    import werkzeug.formparser  # noqa: F401  (the parser Request.files uses)

    if not hasattr(multipart, "PushMultipartParser") or python_multipart.__name__ == multipart.__name__:
        raise AssertionError("`import multipart` gave %r, not the multipart distribution" % multipart)
    if getattr(multipart, "__author__", None) != "Marcel Hellkamp":
        raise AssertionError("`import multipart` gave %r, not the multipart distribution" % multipart)
    if not hasattr(python_multipart, "MultipartParser"):
        raise AssertionError("python_multipart is %r" % python_multipart)
    versions = {}
    for dist in ("werkzeug", "python-multipart", "multipart"):
        versions[dist] = metadata.version(dist)
    if versions["multipart"] != multipart.__version__:
        raise AssertionError(
            "multipart %s installed, %s imported" % (versions["multipart"], multipart.__version__)
        )
    if versions["python-multipart"] != python_multipart.__version__:
        raise AssertionError(
            "python-multipart %s installed, %s imported"
            % (versions["python-multipart"], python_multipart.__version__)
        )
    return versions


# -- WSGI apps ---------------------------------------------------------------


def werkzeug_app(environ, start_response):
    """Parse with Werkzeug's form parser, as a Flask view reading request.files."""
    import werkzeug

    report = {"parts": [], "error": None}
    request = werkzeug.Request(environ)
    try:
        for name, storage in request.files.items(multi=True):
            sha256, size = _hash_stream(storage.stream)
            report["parts"].append(
                {
                    "name": name,
                    "filename": storage.filename,
                    "content_type": storage.content_type,
                    "mimetype": storage.mimetype,
                    "sha256": sha256,
                    "size": size,
                }
            )
        for name, value in request.form.items(multi=True):
            raw = value.encode("utf-8")
            report["parts"].append(
                {
                    "name": name,
                    "filename": None,
                    "content_type": None,
                    "sha256": hashlib.sha256(raw).hexdigest(),
                    "size": len(raw),
                }
            )
    except Exception as exc:  # reported to the test, which compares it
        report["error"] = _describe(exc)
        _drain(request.stream, 1 << 62)
    finally:
        request.close()
    return _answer_wsgi(start_response, report)


def bottle_multipart_app(environ, start_response):
    """Parse with multipart.MultipartParser, default limits, as Bottle would."""
    import multipart

    report = {"parts": [], "error": None}
    stream = environ["wsgi.input"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    ctype, options = multipart.parse_options_header(environ.get("CONTENT_TYPE", ""))
    read = [0]

    class Input(object):
        # wsgiref's input is the raw socket file: stop at Content-Length.
        def read(self, size=-1):
            left = length - read[0]
            if size < 0 or size > left:
                size = left
            chunk = stream.read(size) if size else b""
            read[0] += len(chunk)
            return chunk

    parts = []
    try:
        if ctype != "multipart/form-data":
            raise ValueError("unexpected Content-Type %r" % (ctype,))
        parser = multipart.MultipartParser(Input(), options.get("boundary", ""), length)
        for part in parser:
            parts.append(part)
            sha256, size = _hash_stream(part.file)
            report["parts"].append(
                {
                    "name": part.name,
                    "filename": part.filename,
                    "content_type": part.content_type,
                    "charset": part._segment.charset,
                    "content_type_header": part.headers.get("Content-Type"),
                    "sha256": sha256,
                    "size": size,
                }
            )
    except Exception as exc:
        report["error"] = _describe(exc)
        _drain(stream, length - read[0])
    finally:
        for part in parts:
            part.close()
    return _answer_wsgi(start_response, report)


# -- python-multipart over http.server ----------------------------------------


class _PythonMultipartHandler(http.server.BaseHTTPRequestHandler):
    """Feeds the body to python_multipart.MultipartParser as it arrives.

    The callbacks follow Starlette's MultiPartParser: header names and values
    are collected as bytes, Content-Disposition is split with
    ``python_multipart.multipart.parse_options_header`` and its name and filename are
    decoded as UTF-8 (Starlette's ``_user_safe_decode``, with the form's
    default charset); the file's content type is the raw part header.
    """

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        import python_multipart
        from python_multipart.multipart import parse_options_header

        report = {"parts": [], "error": None}
        length = int(self.headers.get("Content-Length") or 0)
        received = 0
        state = {"field": b"", "value": b"", "headers": [], "hash": None, "size": 0}

        def on_part_begin():
            state["headers"] = []
            state["hash"] = hashlib.sha256()
            state["size"] = 0

        def on_header_field(data, start, end):
            state["field"] += data[start:end]

        def on_header_value(data, start, end):
            state["value"] += data[start:end]

        def on_header_end():
            state["headers"].append((state["field"].lower(), state["value"]))
            state["field"] = b""
            state["value"] = b""

        def on_part_data(data, start, end):
            state["hash"].update(data[start:end])
            state["size"] += end - start

        def on_part_end():
            headers = dict(state["headers"])
            _, options = parse_options_header(headers.get(b"content-disposition", b""))
            filename = options.get(b"filename")
            ctype = headers.get(b"content-type")
            report["parts"].append(
                {
                    "name": _user_safe_decode(options.get(b"name", b"")),
                    "filename": None if filename is None else _user_safe_decode(filename),
                    "content_type": None if ctype is None else ctype.decode("latin-1"),
                    "sha256": state["hash"].hexdigest(),
                    "size": state["size"],
                }
            )

        try:
            _, params = parse_options_header(self.headers.get("Content-Type", ""))
            parser = python_multipart.MultipartParser(
                params[b"boundary"],
                {
                    "on_part_begin": on_part_begin,
                    "on_header_field": on_header_field,
                    "on_header_value": on_header_value,
                    "on_header_end": on_header_end,
                    "on_part_data": on_part_data,
                    "on_part_end": on_part_end,
                },
            )
            while received < length:
                chunk = self.rfile.read(min(_READ, length - received))
                if not chunk:
                    raise ValueError("body ended after %d of %d bytes" % (received, length))
                received += len(chunk)
                parser.write(chunk)
            parser.finalize()
        except Exception as exc:
            report["error"] = _describe(exc)
            _drain(self.rfile, length - received)
        body = json.dumps({"link": make_link(report)}).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _user_safe_decode(raw):
    # Starlette's _user_safe_decode with its default charset, UTF-8.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# -- servers -----------------------------------------------------------------


class _ThreadingHTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = False  # server_close() joins the handler threads


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, wsgiref.simple_server.WSGIServer):
    daemon_threads = False


class _QuietWSGIHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


class _ThreadedServer(object):
    """Runs a socketserver on 127.0.0.1, port 0, in a thread; a context manager."""

    name = None

    def __init__(self):
        self.server = self._make_server()
        host, port = self.server.server_address[:2]
        self.upload_url = "http://%s:%d/file/create" % (host, port)
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name
        )
        self._thread.start()

    def _make_server(self):
        raise NotImplementedError

    def close(self):
        self.server.shutdown()
        self._thread.join(10)
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class WerkzeugServer(_ThreadedServer):
    name = "werkzeug"

    def _make_server(self):
        import werkzeug.serving

        class Quiet(werkzeug.serving.WSGIRequestHandler):
            def log(self, type, message, *args):
                pass

        return werkzeug.serving.make_server(
            "127.0.0.1", 0, werkzeug_app, threaded=True, request_handler=Quiet
        )


class BottleMultipartServer(_ThreadedServer):
    name = "multipart"

    def _make_server(self):
        server = _ThreadingWSGIServer(("127.0.0.1", 0), _QuietWSGIHandler)
        server.set_app(bottle_multipart_app)
        return server


class PythonMultipartServer(_ThreadedServer):
    name = "python-multipart"

    def _make_server(self):
        return _ThreadingHTTPServer(("127.0.0.1", 0), _PythonMultipartHandler)


class BusboyServer(object):
    """``node tests/interop/busboy_server.js`` with busboy from NODE_MODULES.

    Raises OSError when ``node`` is missing and RuntimeError when the server
    does not start (busboy not installed: run ``make interop``).
    """

    name = "busboy"

    def __init__(self, node="node"):
        env = dict(os.environ)
        env["NODE_PATH"] = NODE_MODULES
        self.process = subprocess.Popen(
            [node, BUSBOY_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        line = self.process.stdout.readline()
        if not line:
            err = self.process.stderr.read().decode("utf-8", "replace")
            self._reap()
            raise RuntimeError(
                "busboy server did not start (is busboy installed in %s? `make interop` installs it):\n%s"
                % (NODE_MODULES, err)
            )
        hello = json.loads(line.decode("utf-8"))
        self.versions = {"busboy": hello["busboy"], "node": hello["node"]}
        self.base_url = "http://127.0.0.1:%d" % hello["port"]
        self.upload_url = self.base_url + "/file/create"
        #: busboy with its default options (defParamCharset 'latin1').
        self.defaults_url = self.base_url + "/defaults"

    def _reap(self):
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process.stdout.close()
        self.process.stderr.close()

    def close(self):
        self._reap()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

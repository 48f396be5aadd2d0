"""The multipart/form-data upload of publish_to_ipfs, read back by independent parsers.

LocalGateway parses uploads with its own parser (not the client's encoder);
a capture server below keeps the raw request, which is checked byte by byte
and parsed a second time with the standard library's ``email`` package.
"""

import array
import email.parser
import email.policy
import http.server
import io
import json
import os
import pathlib
import re
import shutil
import tempfile
import threading
import unittest

from ogpu.testing import LocalGateway
from tests.support import ThreadAndFdCheck, content, ipfs, publishing_to

EMPTY_V0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
CAPTURE_LINK = "https://pin.example/ipfs/" + EMPTY_V0

TRICKY_FILENAMES = [
    "data.json",
    'say "hi".txt',
    '"',
    '""',
    "back\\slash.txt",
    "trailing\\",
    "semi;colon.txt",
    "a; filename=evil.txt",
    'x"; name="other',
    "carriage\rreturn",
    "line\nfeed",
    "crlf\r\nContent-Type: text/html\r\n\r\n",
    "\r\n",
    "tab\there",
    "  spaces  ",
    "\u732b\u306e\u753b\u50cf.png",  # CJK
    "\U0001f600\U0001f4e6.bin",  # emoji, outside the BMP
    "e\u0301te\u0301.txt",  # combining acute accents
    "caf\u00e9 \u00fcber na\u00efve",
    "\u05e9\u05dc\u05d5\u05dd.txt",  # right-to-left
    "x" * 1000,
    "\u732b" * 1000,
    "",
    "dir/sub/file.txt",
    "..\\..\\windows.ini",
    "=?utf-8?q?encoded?=",
    "percent %41 sign",
    "a=b",
    "'single'",
]

CONTENT_TYPES = [
    "application/json",
    "text/plain; charset=utf-8",
    'multipart/mixed; boundary="abc"',
    "application/octet-stream",
    "image/svg+xml",
    'text/plain;charset="utf-8";format=flowed',
    "",
    "x-custom/\u00e9",
]

BOUNDARY_LIKE = [
    b"--ogpu-ipfs-",
    b"--ogpu-ipfs-0123456789abcdef0123456789abcdef",
    b"\r\n--ogpu-ipfs-0123456789abcdef0123456789abcdef--\r\n",
    b"\r\n--",
    b"\r\n--\r\n",
    b"--",
    b"line one\r\n--ogpu-ipfs-\r\nline three\r\n",
    b"\r\n\r\n",
    b"\r\n",
    b"\n",
    b"\r",
    b"ends with CRLF\r\n",
    b"\r\nstarts with CRLF",
    b"\r\n--ogpu-ipfs-" + b"f" * 32 + b"--",
    (b"\r\n--ogpu-ipfs-" + b"0" * 32 + b"\r\n") * 1000,
]


def _content_of_every_byte():
    return bytes(range(256)) * 3 + bytes(range(255, -1, -1))


class _CaptureServer(object):
    """A plain HTTP server on 127.0.0.1 that keeps each raw request and answers 201."""

    def __init__(self):
        self.requests = []  # (request line, [(name, value)], body)
        captured = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 10  # a client sending less than it announced is not waited for long

            def do_POST(self):
                length = int(self.headers["Content-Length"])
                try:
                    body = self.rfile.read(length)
                except OSError:  # timed out: record what arrived as a short body
                    body = b""
                captured.append((self.requestline, list(self.headers.items()), body))
                answer = json.dumps({"link": CAPTURE_LINK}).encode("ascii")
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self._server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.upload_url = "http://127.0.0.1:{}/file/create".format(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="capture-server"
        )
        self._thread.daemon = True
        self._thread.start()

    def close(self):
        self._server.shutdown()
        self._thread.join(10)
        self._server.server_close()


def _header(headers, name):
    values = [value for key, value in headers if key.lower() == name.lower()]
    if len(values) != 1:
        raise AssertionError("expected one {} header, got {!r}".format(name, values))
    return values[0]


def _email_parse(content_type, body):
    """Parse a multipart body with the email package: an independent second parser."""
    raw = b"Content-Type: " + content_type.encode("ascii") + b"\r\nMIME-Version: 1.0\r\n\r\n" + body
    return email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)


class LocalGatewayReadBackTest(ThreadAndFdCheck, unittest.TestCase):
    """What was published is what LocalGateway's own parser reads back."""

    @classmethod
    def setUpClass(cls):
        cls.gateway = LocalGateway()

    @classmethod
    def tearDownClass(cls):
        cls.gateway.close()

    def setUp(self):
        super().setUp()
        patch = publishing_to(self.gateway)
        patch.__enter__()
        self.addCleanup(patch.__exit__, None, None, None)

    def publish(self, data, *args, **kwargs):
        before = len(self.gateway.uploads)
        kwargs.setdefault("retries", 0)
        kwargs.setdefault("timeout", 20)
        link = ipfs.publish_to_ipfs(data, *args, **kwargs)
        self.assertEqual(len(self.gateway.uploads), before + 1)
        upload = self.gateway.uploads[-1]
        self.assertEqual(link, upload.link)
        self.assertEqual(link, self.gateway.link(upload.cid))
        self.assertEqual(self.gateway.errors, [])
        return upload

    def test_tricky_filenames(self):
        self.assertTrue(TRICKY_FILENAMES)
        for name in TRICKY_FILENAMES:
            with self.subTest(filename=name):
                upload = self.publish(b"x", filename=name)
                self.assertEqual(upload.filename, name)
                self.assertEqual(upload.content_type, "application/json")
                self.assertEqual(upload.data, b"x")
                # Escaped as browsers do: no raw quote, CR or LF inside the value.
                self.assertNotIn("\r", upload.disposition)
                self.assertNotIn("\n", upload.disposition)
                self.assertEqual(upload.disposition.count('"'), 4)

    def test_default_filename_and_type(self):
        upload = self.publish({"a": 1})
        self.assertEqual((upload.filename, upload.content_type), ("data.json", "application/json"))

    def test_content_types(self):
        self.assertTrue(CONTENT_TYPES)
        for content_type in CONTENT_TYPES:
            with self.subTest(content_type=content_type):
                upload = self.publish(b"{}", "f.bin", content_type)
                self.assertEqual(upload.content_type, content_type)
                self.assertEqual(upload.filename, "f.bin")

    def test_bad_content_type_is_refused_before_any_io(self):
        bad = ["text/plain\r\nX-Evil: 1", "a\rb", "a\nb", "a\0b", "\r\n", "text/plain\r\n\r\n--x"]
        for content_type in bad:
            with self.subTest(content_type=content_type):
                requests = len(self.gateway.requests)
                with self.assertRaises(ValueError):
                    ipfs.publish_to_ipfs(b"data", "f.txt", content_type)
                self.assertEqual(len(self.gateway.requests), requests)

    def test_nul_in_filename_is_refused_before_any_io(self):
        requests = len(self.gateway.requests)
        with self.assertRaises(ValueError):
            ipfs.publish_to_ipfs(b"data", "a\0b.txt")
        self.assertEqual(len(self.gateway.requests), requests)

    def test_non_str_filename_or_type(self):
        requests = len(self.gateway.requests)
        for args in ((b"x", b"name.txt"), (b"x", "n", b"text/plain"), (b"x", None)):
            with self.subTest(args=args):
                with self.assertRaises(TypeError):
                    ipfs.publish_to_ipfs(*args)
        self.assertEqual(len(self.gateway.requests), requests)

    def test_boundary_like_content(self):
        self.assertTrue(BOUNDARY_LIKE)
        for data in BOUNDARY_LIKE:
            with self.subTest(data=data[:60]):
                upload = self.publish(data, "b.bin", "application/octet-stream")
                self.assertEqual(upload.data, data)
                self.assertEqual(upload.size, len(data))
                self.assertEqual(upload.cid, ipfs.compute_cid(data))

    def test_every_byte_value(self):
        data = _content_of_every_byte()
        upload = self.publish(data, "bytes.bin", "application/octet-stream")
        self.assertEqual(upload.data, data)
        self.assertEqual(set(upload.data), set(range(256)))

    def test_empty_content(self):
        for data in (b"", "", bytearray(), memoryview(b"")):
            with self.subTest(data=data):
                upload = self.publish(data, "empty", "text/plain")
                self.assertEqual(upload.data, b"")
                self.assertEqual(upload.size, 0)
                self.assertEqual(upload.cid, EMPTY_V0)

    def test_dict(self):
        document = {"result": "cat", "confidence": 0.97, "name": "caf\u00e9 \u732b", "list": [1, None]}
        upload = self.publish(document)
        self.assertEqual(upload.data, json.dumps(document).encode())
        self.assertEqual(upload.cid, ipfs.compute_cid(document))

    def test_non_ascii_str(self):
        text = "caf\u00e9 \u732b \U0001f600\r\n--ogpu-ipfs-\r\n"
        upload = self.publish(text, "t.txt", "text/plain; charset=utf-8")
        self.assertEqual(upload.data, text.encode("utf-8"))

    def test_bytes_like(self):
        data = content(70000)
        for value in (data, bytearray(data), memoryview(data), memoryview(b"zz" + data)[2:]):
            with self.subTest(type=type(value).__name__):
                self.assertEqual(self.publish(value, "c.bin").data, data)

    def test_memoryview_of_wider_items(self):
        words = array.array("I", range(5000))
        upload = self.publish(memoryview(words), "w.bin")
        self.assertEqual(upload.data, words.tobytes())

    def test_larger_than_one_chunk(self):
        data = content(262144 * 2 + 17)
        upload = self.publish(data, "big.bin", "application/octet-stream")
        self.assertEqual(upload.cid, ipfs.compute_cid(data))
        self.assertEqual(upload.data, data)

    def test_files_and_streams(self):
        data = b"\r\n--ogpu-ipfs-\r\n" + _content_of_every_byte() + content(300000)
        folder = tempfile.mkdtemp(prefix="ogpu-test-multipart-")
        self.addCleanup(shutil.rmtree, folder)
        path = os.path.join(folder, "payload.bin")
        with open(path, "wb") as stream:
            stream.write(data)
        self.assertEqual(self.publish(pathlib.Path(path), "p.bin").data, data)
        with open(path, "rb") as stream:
            self.assertEqual(self.publish(stream, "f.bin").data, data)
            self.assertFalse(stream.closed)
        self.assertEqual(self.publish(io.BytesIO(data), "m.bin").data, data)

    def test_pipe(self):
        data = content(600000) + b"\r\n--ogpu-ipfs-"
        read_fd, write_fd = os.pipe()
        reader = open(read_fd, "rb", buffering=0)  # noqa: SIM115 -- closed by the cleanup
        self.addCleanup(reader.close)

        def write():
            with open(write_fd, "wb") as writer:
                writer.write(data)

        thread = threading.Thread(target=write, name="pipe-writer")
        thread.start()
        try:
            upload = self.publish(reader, "pipe.bin", "application/octet-stream")
        finally:
            thread.join(30)
        self.assertFalse(thread.is_alive())
        self.assertEqual(upload.data, data)


class RawRequestTest(ThreadAndFdCheck, unittest.TestCase):
    """The request on the wire, checked byte by byte."""

    def setUp(self):
        super().setUp()
        self.server = _CaptureServer()
        self.addCleanup(self.server.close)
        self.saved_url = ipfs._PUBLISH_URL
        ipfs._PUBLISH_URL = self.server.upload_url
        self.addCleanup(setattr, ipfs, "_PUBLISH_URL", self.saved_url)

    def publish(self, data, *args, **kwargs):
        before = len(self.server.requests)
        # No retries and a short timeout: a broken request fails the test quickly.
        kwargs.setdefault("retries", 0)
        kwargs.setdefault("timeout", 20)
        self.assertEqual(ipfs.publish_to_ipfs(data, *args, **kwargs), CAPTURE_LINK)
        self.assertEqual(len(self.server.requests), before + 1)
        return self.server.requests[-1]

    def split(self, headers, body):
        """Check the framing; return (boundary, part head, content)."""
        content_type = _header(headers, "Content-Type")
        match = re.match(r"^multipart/form-data; boundary=([0-9A-Za-z'()+_,./:=?-]{1,70})$", content_type)
        self.assertIsNotNone(match, content_type)
        boundary = match.group(1).encode("ascii")
        self.assertEqual(int(_header(headers, "Content-Length")), len(body))
        opening = b"--" + boundary + b"\r\n"
        closing = b"\r\n--" + boundary + b"--\r\n"
        self.assertTrue(body.startswith(opening), body[:100])
        self.assertTrue(body.endswith(closing), body[-100:])
        inner = body[len(opening) : len(body) - len(closing)]
        head, sep, data = inner.partition(b"\r\n\r\n")
        self.assertEqual(sep, b"\r\n\r\n")
        # The boundary occurs exactly twice: at the start and in the close delimiter.
        self.assertEqual(body.count(boundary), 2)
        return boundary, head, data

    def test_framing(self):
        line, headers, body = self.publish(b"hello", "h.txt", "text/plain")
        self.assertEqual(line, "POST /file/create HTTP/1.1")
        _, head, data = self.split(headers, body)
        self.assertEqual(data, b"hello")
        self.assertEqual(
            head,
            b'Content-Disposition: form-data; name="file"; filename="h.txt"\r\nContent-Type: text/plain',
        )

    def test_user_agent(self):
        _, headers, _ = self.publish(b"x")
        self.assertEqual(_header(headers, "User-Agent"), "ogpu-ipfs/" + ipfs.__version__)
        self.assertNotIn("Python-urllib", str(headers))

    def test_filename_escaping_on_the_wire(self):
        cases = [
            ('say "hi"', b'filename="say %22hi%22"'),
            ("a\rb\nc\r\nd", b'filename="a%0Db%0Ac%0D%0Ad"'),
            ("back\\slash;semi", b'filename="back\\slash;semi"'),
            ("\u732b\U0001f600", b'filename="' + "\u732b\U0001f600".encode("utf-8") + b'"'),
            ("", b'filename=""'),
        ]
        for name, expected in cases:
            with self.subTest(filename=name):
                _, headers, body = self.publish(b"x", name)
                _, head, _ = self.split(headers, body)
                disposition = head.split(b"\r\n")[0]
                self.assertEqual(disposition, b'Content-Disposition: form-data; name="file"; ' + expected)

    def test_content_type_sent_as_given(self):
        _, headers, body = self.publish(b"x", "f", "text/plain; charset=utf-8")
        _, head, _ = self.split(headers, body)
        self.assertEqual(head.split(b"\r\n")[1], b"Content-Type: text/plain; charset=utf-8")

    def test_content_length_matches(self):
        for data in (b"", b"x", content(262144), content(262145 + 3), "\u732b" * 100, {"k": "v"}):
            with self.subTest(size=len(data)):
                _, headers, body = self.publish(data)
                _, _, sent = self.split(headers, body)
                if isinstance(data, dict):
                    expected = json.dumps(data).encode()
                elif isinstance(data, str):
                    expected = data.encode("utf-8")
                else:
                    expected = data
                self.assertEqual(sent, expected)

    def test_boundary_is_random_per_call(self):
        boundaries = set()
        for _ in range(5):
            _, headers, body = self.publish(b"same content", "same.txt")
            boundaries.add(self.split(headers, body)[0])
        self.assertEqual(len(boundaries), 5)
        for boundary in boundaries:
            # Enough randomness that a collision with streamed content is not a concern.
            self.assertGreaterEqual(len(re.sub(rb"[^0-9a-f]", b"", boundary.split(b"-")[-1])), 32)

    def test_boundary_never_in_content(self):
        # Content made of boundary-like lines: the chosen boundary still does not occur.
        for data in [*BOUNDARY_LIKE, _content_of_every_byte()]:
            with self.subTest(data=data[:60]):
                _, headers, body = self.publish(data)
                boundary, _, sent = self.split(headers, body)
                self.assertEqual(sent, data)
                self.assertNotIn(boundary, data)

    def test_memoryview_of_wider_items(self):
        words = array.array("I", range(5000))
        _, headers, body = self.publish(memoryview(words))
        self.assertEqual(self.split(headers, body)[2], words.tobytes())

    def test_file_upload_content_length(self):
        data = content(600000) + b"\r\n--"
        folder = tempfile.mkdtemp(prefix="ogpu-test-multipart-")
        self.addCleanup(shutil.rmtree, folder)
        path = os.path.join(folder, "f.bin")
        with open(path, "wb") as stream:
            stream.write(data)
        _, headers, body = self.publish(pathlib.Path(path), "f.bin", "application/octet-stream")
        self.assertEqual(self.split(headers, body)[2], data)

    def test_email_package_agrees(self):
        cases = [
            (b"hello", "plain.txt", "text/plain"),
            (b"a\r\nb\r\n--ogpu-ipfs-\r\n\r\n", "crlf.txt", "text/plain; charset=utf-8"),
            (_content_of_every_byte(), "bytes.bin", "application/octet-stream"),
            (b"", "empty.json", "application/json"),
            (json.dumps({"result": "cat"}).encode(), "data.json", "application/json"),
        ]
        for data, name, content_type in cases:
            with self.subTest(filename=name):
                _, headers, body = self.publish(data, name, content_type)
                message = _email_parse(_header(headers, "Content-Type"), body)
                self.assertTrue(message.is_multipart())
                self.assertEqual(message.defects, [])
                parts = message.get_payload()
                self.assertEqual(len(parts), 1)
                part = parts[0]
                self.assertEqual(part.defects, [])
                self.assertEqual(part.get_param("name", header="content-disposition"), "file")
                self.assertEqual(part.get_filename(), name)
                self.assertEqual(part.get_content_type(), content_type.split(";")[0])
                self.assertEqual(part.get_content_charset(), "utf-8" if "charset" in content_type else None)
                self.assertEqual(part.get_payload(decode=True), data)


if __name__ == "__main__":
    unittest.main()

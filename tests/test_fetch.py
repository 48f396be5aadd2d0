"""fetch_ipfs_json, fetch_ipfs_bytes and fetch_ipfs_to_file: bodies, files, encodings, URL forms."""

import gzip
import io
import json
import logging
import os
import pickle
import shutil
import tempfile
import time
import tracemalloc
import unittest
import zlib

from ogpu.testing import LocalGateway
from tests.servers import RefusingPort, ScriptedServer, hang, http_response, raw, reply
from tests.support import ThreadAndFdCheck, content, ipfs, publishing_to

SEED = {"result": "cat", "confidence": 0.97}
MiB = 1024 * 1024


_quiet = logging.NullHandler()


def setUpModule():
    # Failures are logged as warnings; without any handler logging would print
    # them to stderr between the test dots.  The library's logger stays bare.
    logging.getLogger().addHandler(_quiet)


def tearDownModule():
    logging.getLogger().removeHandler(_quiet)


class FetchTestCase(ThreadAndFdCheck, unittest.TestCase):
    def gateway(self, **kwargs):
        gateway = LocalGateway(**kwargs)
        self.addCleanup(gateway.close)
        return gateway

    def scripted(self, *script, **kwargs):
        server = ScriptedServer(script, **kwargs)
        self.addCleanup(server.close)
        return server

    def serve(self, data):
        """A gateway holding ``data``; return (gateway, link)."""
        gateway = self.gateway()
        return gateway, gateway.link(gateway.add(data))

    def folder(self):
        path = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, path)
        return path

    def assertFetchError(self, error, url, reason):
        self.assertIs(type(error), ipfs.IPFSFetchError)
        self.assertEqual(error.url, url)
        self.assertEqual(error.reason, reason)
        self.assertEqual(str(error), "Failed to fetch from IPFS {}: {}".format(url, reason))
        copy = pickle.loads(pickle.dumps(error))
        self.assertEqual((copy.url, copy.reason, str(copy)), (error.url, error.reason, str(error)))


# ---------------------------------------------------------------------------
# fetch_ipfs_json
# ---------------------------------------------------------------------------


class FetchJsonGoodTest(FetchTestCase):
    def test_seed_example(self):
        gateway = self.gateway()
        with publishing_to(gateway):
            link = ipfs.publish_to_ipfs(SEED)
        self.assertEqual(ipfs.fetch_ipfs_json(link), SEED)

    def test_unicode_encodings_and_boms(self):
        value = {"name": "caf\u00e9 \u2603 \U0001f431", "n": [1, 2.5, None, True]}
        text = json.dumps(value, ensure_ascii=False)
        gateway = self.gateway()
        for codec in ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be",
                      "utf-32", "utf-32-le", "utf-32-be"):
            with self.subTest(codec=codec):
                data = text.encode(codec)
                self.assertEqual(ipfs.fetch_ipfs_json(gateway.link(gateway.add(data))), value)

    def test_whitespace_around_the_object(self):
        _, link = self.serve(b' \r\n\t{"a": {}}\n ')
        self.assertEqual(ipfs.fetch_ipfs_json(link), {"a": {}})

    def test_nesting_the_parser_handles(self):
        depth = 200
        data = b'{"a":' * depth + b"1" + b"}" * depth
        _, link = self.serve(data)
        value = ipfs.fetch_ipfs_json(link)
        for _ in range(depth - 1):
            value = value["a"]
        self.assertEqual(value, {"a": 1})

    def test_body_of_exactly_max_bytes_is_accepted(self):
        data = b'{"a": "' + b"x" * 993 + b'"}'
        self.assertEqual(len(data), 1002)
        _, link = self.serve(data)
        self.assertEqual(ipfs.fetch_ipfs_json(link, max_bytes=1002), {"a": "x" * 993})


class FetchJsonBadTest(FetchTestCase):
    def test_json_values_that_are_not_objects(self):
        cases = [
            (b"[1, 2]", "an array"),
            (b"[]", "an array"),
            (b'"a string"', "a string"),
            (b"42", "a number"),
            (b"-1.5e3", "a number"),
            (b"null", "null"),
            (b"true", "a boolean"),
        ]
        gateway = self.gateway()
        for data, kind in cases:
            with self.subTest(data=data):
                link = gateway.link(gateway.add(data))
                with self.assertRaises(ipfs.IPFSFetchError) as caught:
                    ipfs.fetch_ipfs_json(link)
                self.assertFetchError(caught.exception, link, "expected a JSON object, got " + kind)

    def test_invalid_json(self):
        gateway = self.gateway()
        for data in (b"", b"{", b'{"a": 1} trailing', b"{'a': 1}", b"NaN-ish", b'{"a": 1,}'):
            with self.subTest(data=data):
                link = gateway.link(gateway.add(data))
                with self.assertRaises(ipfs.IPFSFetchError) as caught:
                    ipfs.fetch_ipfs_json(link)
                error = caught.exception
                self.assertEqual(error.url, link)
                self.assertTrue(error.reason.startswith("invalid JSON ("), error.reason)
                self.assertIsInstance(error.__cause__, ValueError)

    def test_invalid_utf8(self):
        _, link = self.serve(b'{"a": "\xff\xfe\xc3"}')
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.fetch_ipfs_json(link)
        self.assertTrue(caught.exception.reason.startswith("invalid JSON ("), caught.exception.reason)
        self.assertIsInstance(caught.exception.__cause__, UnicodeDecodeError)

    def test_nesting_100000_deep_is_a_fetch_error(self):
        for opener, closer in ((b'{"a":', b"}"), (b"[", b"]")):
            with self.subTest(opener=opener):
                _, link = self.serve(opener * 100000 + b"1" + closer * 100000)
                with self.assertRaises(ipfs.IPFSFetchError) as caught:
                    ipfs.fetch_ipfs_json(link)
                self.assertTrue(caught.exception.reason.startswith("invalid JSON ("))
                self.assertIsInstance(caught.exception.__cause__, RecursionError)

    def test_over_max_bytes_with_content_length(self):
        server, link = self.serve(b'{"a": "' + b"x" * 1000 + b'"}')
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.fetch_ipfs_json(link, max_bytes=1000)
        self.assertFetchError(caught.exception, link, "response of 1009 bytes exceeds max_bytes=1000")
        self.assertEqual(len(server.requests), 1)  # not retried

    def test_over_max_bytes_without_content_length(self):
        body = b'{"a": "' + b"x" * 1000 + b'"}'
        for name, wire in (
            ("close-delimited", http_response(200, body, length=False)),
            ("chunked", http_response(200, b"", {"Transfer-Encoding": "chunked"}, length=False)
             + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"),
        ):
            with self.subTest(framing=name):
                server = self.scripted(raw(wire))
                url = server.url + "/ipfs/x"
                with self.assertRaises(ipfs.IPFSFetchError) as caught:
                    ipfs.fetch_ipfs_json(url, max_bytes=1000)
                self.assertFetchError(caught.exception, url, "response exceeds max_bytes=1000")
                self.assertEqual(ipfs.fetch_ipfs_json(self.scripted(raw(wire)).url, max_bytes=1009),
                                 {"a": "x" * 1000})

    def test_endless_body_stops_at_the_cap(self):
        gateway = self.gateway()
        gateway.endless()
        url = gateway.link(ipfs.compute_cid(b"never stored"))
        started = time.monotonic()
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.fetch_ipfs_json(url, max_bytes=4 * MiB)
        self.assertLess(time.monotonic() - started, 10)
        self.assertFetchError(caught.exception, url, "response exceeds max_bytes=4194304")

    def test_404(self):
        gateway = self.gateway()
        link = gateway.link(ipfs.compute_cid(b"not stored here"))
        with self.assertRaises(ipfs.IPFSGatewayError) as caught:
            ipfs.fetch_ipfs_json(link)
        error = caught.exception
        self.assertEqual((error.gateway, error.status_code), (link, 404))
        self.assertIsInstance(error.body, str)
        self.assertEqual(str(error), "IPFS gateway {} returned HTTP 404".format(link))
        self.assertEqual(len(gateway.requests), 1)  # not retried
        copy = pickle.loads(pickle.dumps(error))
        self.assertEqual((copy.gateway, copy.status_code, copy.body), (link, 404, error.body))

    def test_other_success_statuses_are_not_content(self):
        server = self.scripted(reply(204), reply(206, b'{"a": 1}'))
        for status in (204, 206):
            with self.subTest(status=status):
                with self.assertRaises(ipfs.IPFSGatewayError) as caught:
                    ipfs.fetch_ipfs_json(server.url + "/ipfs/x", retries=0)
                self.assertEqual(caught.exception.status_code, status)


# ---------------------------------------------------------------------------
# fetch_ipfs_bytes and fetch_ipfs_to_file
# ---------------------------------------------------------------------------


class FetchBytesTest(FetchTestCase):
    def test_bytes_round_trip(self):
        gateway = self.gateway()
        for size in (0, 1, 262144, 262145, 3 * MiB + 5):
            with self.subTest(size=size):
                data = content(size)
                self.assertEqual(ipfs.fetch_ipfs_bytes(gateway.link(gateway.add(data))), data)

    def test_no_json_cap_by_default(self):
        data = content(65 * MiB)  # over fetch_ipfs_json's default cap
        _, link = self.serve(data)
        self.assertEqual(len(ipfs.fetch_ipfs_bytes(link)), len(data))
        with self.assertRaises(ipfs.IPFSFetchError):
            ipfs.fetch_ipfs_json(link)

    def test_max_bytes(self):
        _, link = self.serve(content(5000))
        self.assertEqual(ipfs.fetch_ipfs_bytes(link, max_bytes=5000), content(5000))
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.fetch_ipfs_bytes(link, max_bytes=4999)
        self.assertFetchError(caught.exception, link, "response of 5000 bytes exceeds max_bytes=4999")

    def test_truncated_body_is_an_error(self):
        gateway, link = self.serve(content(100000))
        gateway.close_mid_body(after=30000)
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.fetch_ipfs_bytes(link, retries=0)
        self.assertFetchError(caught.exception, link, "response body truncated after 30000 bytes")

    def test_truncated_body_is_retried_from_scratch(self):
        gateway, link = self.serve(content(100000))
        gateway.close_mid_body()
        calls = []
        with self.assertLogs("ogpu.ipfs", "WARNING"):
            data = ipfs.fetch_ipfs_bytes(link, retries=1, progress=lambda d, t: calls.append((d, t)))
        self.assertEqual(data, content(100000))
        self.assertEqual(calls[-1], (100000, 100000))

    def test_progress(self):
        data = content(2 * MiB + 3)
        _, link = self.serve(data)
        calls = []
        ipfs.fetch_ipfs_bytes(link, progress=lambda done, total: calls.append((done, total)))
        self.assertEqual(calls[0], (0, len(data)))
        self.assertEqual(calls[-1], (len(data), len(data)))
        done = [d for d, _ in calls]
        self.assertEqual(done, sorted(done))

    def test_bad_arguments(self):
        for kwargs, error in (({"max_bytes": -1}, ValueError), ({"max_bytes": 1.5}, ValueError),
                              ({"timeout": -1}, ValueError), ({"gateways": "http://x"}, TypeError)):
            with self.subTest(kwargs=kwargs):
                with self.assertRaises(error):
                    ipfs.fetch_ipfs_bytes("http://127.0.0.1:9/ipfs/x", **kwargs)
        with self.assertRaises(TypeError):
            ipfs.fetch_ipfs_bytes(b"http://127.0.0.1:9/ipfs/x")


class FetchToFileTest(FetchTestCase):
    def test_to_a_path(self):
        data = content(3 * MiB + 1)
        _, link = self.serve(data)
        folder = self.folder()
        dest = os.path.join(folder, "out.bin")
        self.assertEqual(ipfs.fetch_ipfs_to_file(link, dest), len(data))
        with open(dest, "rb") as stream:
            self.assertEqual(stream.read(), data)
        self.assertEqual(os.listdir(folder), ["out.bin"])

    def test_replaces_an_existing_file(self):
        _, link = self.serve(b"new")
        folder = self.folder()
        dest = os.path.join(folder, "out.bin")
        with open(dest, "wb") as stream:
            stream.write(b"old content, longer than the new")
        self.assertEqual(ipfs.fetch_ipfs_to_file(link, dest), 3)
        with open(dest, "rb") as stream:
            self.assertEqual(stream.read(), b"new")
        self.assertEqual(os.listdir(folder), ["out.bin"])

    def test_cut_download_leaves_dest_untouched(self):
        gateway, link = self.serve(content(2 * MiB))
        folder = self.folder()
        dest = os.path.join(folder, "out.bin")
        with open(dest, "wb") as stream:
            stream.write(b"previous")
        gateway.close_mid_body()
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.fetch_ipfs_to_file(link, dest, retries=0)
        self.assertEqual(caught.exception.reason, "response body truncated after 1048576 bytes")
        with open(dest, "rb") as stream:
            self.assertEqual(stream.read(), b"previous")
        self.assertEqual(os.listdir(folder), ["out.bin"])

    def test_failed_download_creates_nothing(self):
        gateway = self.gateway()
        folder = self.folder()
        dest = os.path.join(folder, "out.bin")
        with self.assertRaises(ipfs.IPFSGatewayError):
            ipfs.fetch_ipfs_to_file(gateway.link(ipfs.compute_cid(b"absent")), dest)
        self.assertEqual(os.listdir(folder), [])

    def test_keyboard_interrupt_in_progress_leaves_dest_untouched(self):
        _, link = self.serve(content(2 * MiB))
        folder = self.folder()
        dest = os.path.join(folder, "out.bin")
        with open(dest, "wb") as stream:
            stream.write(b"previous")
        seen = []

        def progress(done, total):
            seen.append(done)
            if done > 0:
                raise KeyboardInterrupt

        with self.assertRaises(KeyboardInterrupt):
            ipfs.fetch_ipfs_to_file(link, dest, progress=progress)
        self.assertEqual(len(seen), 2)  # (0, total) then the first chunk
        with open(dest, "rb") as stream:
            self.assertEqual(stream.read(), b"previous")
        self.assertEqual(os.listdir(folder), ["out.bin"])

    def test_to_a_file_object(self):
        data = content(300000)
        gateway, link = self.serve(data)
        sink = io.BytesIO()
        sink.write(b"header:")
        self.assertEqual(ipfs.fetch_ipfs_to_file(link, sink), len(data))
        self.assertEqual(sink.getvalue(), b"header:" + data)
        # A retried attempt starts over from where the first one began.
        sink = io.BytesIO(b"header:")
        sink.seek(0, io.SEEK_END)
        gateway.close_mid_body()
        with self.assertLogs("ogpu.ipfs", "WARNING"):
            self.assertEqual(ipfs.fetch_ipfs_to_file(link, sink, retries=1), len(data))
        self.assertEqual(sink.getvalue(), b"header:" + data)

    def test_dest_of_wrong_type(self):
        with self.assertRaises(TypeError):
            ipfs.fetch_ipfs_to_file("http://127.0.0.1:9/ipfs/x", 42)


# ---------------------------------------------------------------------------
# Content-Encoding
# ---------------------------------------------------------------------------


class _Sink(object):
    """A write-only, unseekable destination that only counts."""

    def __init__(self):
        self.size = 0

    def write(self, data):
        self.size += len(data)
        return len(data)

    def seekable(self):
        return False


def _gzip_bomb(size, block=MiB):
    """Yield a gzip stream of ``size`` zero bytes, compressed as it is consumed."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(block)
    for _ in range(size // block):
        out = compressor.compress(zeros)
        if out:
            yield out
    yield compressor.flush()


class ContentEncodingTest(FetchTestCase):
    def test_gateway_compression(self):
        data = json.dumps({"k": "v" * 100000}).encode()
        for encoding in ("gzip", "deflate"):
            with self.subTest(encoding=encoding):
                gateway = self.gateway()
                gateway.compress = encoding
                link = gateway.link(gateway.add(data))
                self.assertEqual(ipfs.fetch_ipfs_bytes(link), data)
                self.assertEqual(ipfs.fetch_ipfs_json(link), {"k": "v" * 100000})
                self.assertEqual(gateway.requests[-1].headers["Accept-Encoding"], "gzip, deflate")

    def test_encodings_from_a_scripted_server(self):
        data = content(500000)
        raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        cases = [
            ("gzip", gzip.compress(data)),
            ("x-gzip", gzip.compress(data)),
            ("GZIP", gzip.compress(data)),
            ("deflate", zlib.compress(data)),
            ("deflate", raw_deflate.compress(data) + raw_deflate.flush()),
            ("identity", data),
        ]
        for encoding, body in cases:
            with self.subTest(encoding=encoding, head=body[:2]):
                server = self.scripted(reply(200, body, {"Content-Encoding": encoding}))
                self.assertEqual(ipfs.fetch_ipfs_bytes(server.url + "/ipfs/x"), data)

    def test_max_bytes_counts_decoded_bytes(self):
        body = gzip.compress(b"y" * 2000)
        server = self.scripted(*[reply(200, body, {"Content-Encoding": "gzip"})] * 2)
        url = server.url + "/ipfs/x"
        self.assertEqual(ipfs.fetch_ipfs_bytes(url, max_bytes=2000), b"y" * 2000)
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.fetch_ipfs_bytes(url, max_bytes=1999)
        self.assertFetchError(caught.exception, url, "response exceeds max_bytes=1999")

    def test_corrupt_gzip(self):
        body = b"\x1f\x8b\x08\x00" + b"not gzip at all" * 10
        server = self.scripted(reply(200, body, {"Content-Encoding": "gzip"}))
        url = server.url + "/ipfs/x"
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.fetch_ipfs_bytes(url)
        error = caught.exception
        self.assertEqual(error.url, url)
        self.assertTrue(error.reason.startswith("corrupt gzip body ("), error.reason)
        self.assertIsInstance(error.__cause__, zlib.error)
        self.assertEqual(len(server.requests), 1)

    def test_truncated_gzip(self):
        body = gzip.compress(content(100000))[:-20]
        server = self.scripted(reply(200, body, {"Content-Encoding": "gzip"}))
        url = server.url + "/ipfs/x"
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.fetch_ipfs_bytes(url, retries=0)
        self.assertFetchError(caught.exception, url, "truncated gzip body")

    def test_unsupported_encoding(self):
        server = self.scripted(reply(200, b"\x0b\x02\x80", {"Content-Encoding": "br"}))
        url = server.url + "/ipfs/x"
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.fetch_ipfs_bytes(url)
        self.assertFetchError(caught.exception, url, "unsupported Content-Encoding 'br'")

    def test_gzip_bomb_stops_at_max_bytes_without_the_memory(self):
        head = http_response(200, b"", {"Content-Encoding": "gzip"}, length=False)
        bomb = _gzip_bomb(1024 * MiB)  # 1 GiB of zeros, about 1 MiB compressed
        server = self.scripted(raw(_prepend(head, bomb)))
        url = server.url + "/ipfs/bomb"
        sink = _Sink()
        tracemalloc.start()
        try:
            started = time.monotonic()
            with self.assertRaises(ipfs.IPFSFetchError) as caught:
                ipfs.fetch_ipfs_to_file(url, sink, max_bytes=64 * MiB)
            elapsed = time.monotonic() - started
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertFetchError(caught.exception, url, "response exceeds max_bytes=67108864")
        self.assertLessEqual(sink.size, 64 * MiB)
        self.assertGreater(sink.size, 63 * MiB)
        self.assertLess(peak, 8 * MiB)
        self.assertLess(elapsed, 10)


def _prepend(first, rest):
    yield first
    for item in rest:
        yield item


# ---------------------------------------------------------------------------
# URL forms and gateways
# ---------------------------------------------------------------------------


class UrlFormTest(FetchTestCase):
    def setUp(self):
        super(UrlFormTest, self).setUp()
        self.data = json.dumps(SEED).encode()
        self.gw = self.gateway()
        self.cid0 = self.gw.add(self.data)
        self.cid1 = ipfs.compute_cid(self.data, 1)
        self.assertEqual(self.gw.add(self.data, cid_version=1), self.cid1)
        saved = os.environ.pop(ipfs._GATEWAYS_ENV, None)
        if saved is not None:
            self.addCleanup(os.environ.__setitem__, ipfs._GATEWAYS_ENV, saved)

    def set_env(self, value):
        os.environ[ipfs._GATEWAYS_ENV] = value
        self.addCleanup(os.environ.pop, ipfs._GATEWAYS_ENV, None)

    def test_every_form_resolves(self):
        base = self.gw.url
        for cid in (self.cid0, self.cid1):
            forms = [
                base + "/ipfs/" + cid,
                "ipfs://" + cid,
                "IPFS://" + cid,
                "/ipfs/" + cid,
                cid,
                "  " + cid + "\n",
            ]
            for url in forms:
                with self.subTest(url=url):
                    before = len(self.gw.requests)
                    self.assertEqual(ipfs.fetch_ipfs_json(url, gateways=[base + "/"]), SEED)
                    (request,) = self.gw.requests[before:]
                    self.assertEqual(request.path, "/ipfs/" + cid)

    def test_paths_below_a_cid(self):
        root = self.gw.add_directory({"a": {"b.json": b'{"deep": true}'}})
        for url in ("ipfs://{}/a/b.json", "/ipfs/{}/a/b.json", "{}/a/b.json"):
            with self.subTest(url=url):
                self.assertEqual(ipfs.fetch_ipfs_json(url.format(root), gateways=[self.gw.url]),
                                 {"deep": True})
        self.assertEqual(self.gw.requests[-1].path, "/ipfs/{}/a/b.json".format(root))

    def test_gateways_tried_in_order_on_refused_timeout_and_503(self):
        busy = self.scripted(reply(503, b"busy"))
        silent = self.scripted(hang())
        with RefusingPort() as refused:
            gateways = [refused.url, silent.url, busy.url, self.gw.url, "http://127.0.0.1:9"]
            started = time.monotonic()
            with self.assertLogs("ogpu.ipfs", "WARNING") as logs:
                value = ipfs.fetch_ipfs_json(self.cid0, gateways=gateways, timeout=0.5, retries=0)
            self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(value, SEED)
        self.assertEqual([r.target for r in silent.requests], ["/ipfs/" + self.cid0])
        self.assertEqual([r.target for r in busy.requests], ["/ipfs/" + self.cid0])
        self.assertLess(silent.requests[0].received, busy.requests[0].received)
        self.assertEqual(len(self.gw.requests), 1)
        failures = [r.getMessage() for r in logs.records]
        self.assertIn("connection refused", failures[0])
        self.assertIn("timed out after 0.5s", failures[1])
        self.assertIn("returned HTTP 503", failures[2])

    def test_all_gateways_failing_reports_the_last(self):
        busy = self.scripted(reply(503, b"busy"))
        with RefusingPort() as refused:
            with self.assertLogs("ogpu.ipfs", "DEBUG"):
                with self.assertRaises(ipfs.IPFSGatewayError) as caught:
                    ipfs.fetch_ipfs_json("ipfs://" + self.cid0, gateways=[refused.url, busy.url],
                                         retries=0)
        self.assertEqual(caught.exception.gateway, busy.url + "/ipfs/" + self.cid0)
        self.assertEqual(caught.exception.status_code, 503)

    def test_a_404_does_not_fall_over(self):
        missing = self.gateway()
        with self.assertRaises(ipfs.IPFSGatewayError) as caught:
            ipfs.fetch_ipfs_json(self.cid0, gateways=[missing.url, self.gw.url])
        self.assertEqual(caught.exception.status_code, 404)
        self.assertEqual(self.gw.requests, [])

    def test_environment_gateways(self):
        with RefusingPort() as refused:
            self.set_env(" {} , ,{}/ ".format(refused.url, self.gw.url))
            with self.assertLogs("ogpu.ipfs", "WARNING"):
                self.assertEqual(ipfs.fetch_ipfs_json(self.cid0, retries=0), SEED)
            self.assertEqual(len(self.gw.requests), 1)
            # gateways= wins over the environment.
            self.set_env(refused.url)
            self.assertEqual(ipfs.fetch_ipfs_json("/ipfs/" + self.cid1, gateways=[self.gw.url]), SEED)

    def test_http_url_falls_over_to_gateways(self):
        with RefusingPort() as refused:
            url = refused.url + "/ipfs/" + self.cid0
            with self.assertLogs("ogpu.ipfs", "WARNING"):
                value = ipfs.fetch_ipfs_json(url, gateways=[self.gw.url], retries=0)
            self.assertEqual(value, SEED)
            # Without gateways= an http URL is only ever tried where it points.
            self.set_env(self.gw.url)
            with self.assertRaises(ipfs.IPFSFetchError) as caught:
                ipfs.fetch_ipfs_json(url, retries=0)
            self.assertFetchError(caught.exception, url, "connection refused")

    def test_unsupported_schemes_fail_before_any_io(self):
        server = self.scripted()
        port = server.port
        cases = [
            ("file:///etc/passwd", "file"),
            ("ftp://127.0.0.1:{}/ipfs/{}".format(port, self.cid0), "ftp"),
            ("data:application/json,{}", "data"),
            ("javascript:alert(1)", "javascript"),
            ("gopher://127.0.0.1:{}/".format(port), "gopher"),
        ]
        for url, scheme in cases:
            with self.subTest(url=url):
                for fetch in (ipfs.fetch_ipfs_json, ipfs.fetch_ipfs_bytes):
                    with self.assertRaises(ipfs.IPFSFetchError) as caught:
                        fetch(url, gateways=[server.url])
                    self.assertFetchError(
                        caught.exception, url,
                        "unsupported URL scheme {!r}: only http and https".format(scheme),
                    )
        self.assertEqual(server.connections, 0)

    def test_invalid_cid_forms(self):
        for url in ("ipfs://not-a-cid", "/ipfs/Qm123", "ipfs://"):
            with self.subTest(url=url):
                with self.assertRaises(ipfs.IPFSFetchError) as caught:
                    ipfs.fetch_ipfs_json(url, gateways=[self.gw.url])
                reason = caught.exception.reason
                self.assertTrue(reason.startswith("not a valid CID"), reason)
        self.assertEqual(self.gw.requests, [])


if __name__ == "__main__":
    unittest.main()

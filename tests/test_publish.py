"""publish_to_ipfs against LocalGateway and purpose-built misbehaving servers."""

import io
import json
import logging
import os
import pickle
import shutil
import tempfile
import threading
import time
import unittest

from ogpu.testing import LocalGateway
from tests.servers import RefusingPort, ScriptedServer, http_response, raw, redirect, reply
from tests.support import ThreadAndFdCheck, content, ipfs, publishing_to

SEED = {"result": "cat", "confidence": 0.97}


_quiet = logging.NullHandler()


def setUpModule():
    # Failures are logged as warnings; without any handler logging would print
    # them to stderr between the test dots.  The library's logger stays bare.
    logging.getLogger().addHandler(_quiet)


def tearDownModule():
    logging.getLogger().removeHandler(_quiet)


def json_reply(value, status=201, **kwargs):
    return reply(status, json.dumps(value).encode("utf-8"), {"Content-Type": "application/json"}, **kwargs)


class PublishTestCase(ThreadAndFdCheck, unittest.TestCase):
    """Runs every publish against servers started here, with _PUBLISH_URL restored."""

    def setUp(self):
        super(PublishTestCase, self).setUp()
        saved = ipfs._PUBLISH_URL
        self.addCleanup(setattr, ipfs, "_PUBLISH_URL", saved)

    def gateway(self):
        gateway = LocalGateway()
        self.addCleanup(gateway.close)
        return gateway

    def scripted(self, *script, **kwargs):
        server = ScriptedServer(script, **kwargs)
        self.addCleanup(server.close)
        return server

    def point_at(self, server, path="/file/create"):
        ipfs._PUBLISH_URL = server.url + path
        return ipfs._PUBLISH_URL

    def assertPickles(self, error, attributes):
        copy = pickle.loads(pickle.dumps(error))
        self.assertIs(type(copy), type(error))
        self.assertEqual(str(copy), str(error))
        for name in attributes:
            self.assertEqual(getattr(copy, name), getattr(error, name), name)


class PublishGoodTest(PublishTestCase):
    def test_seed_example_round_trips(self):
        gateway = self.gateway()
        with publishing_to(gateway):
            link = ipfs.publish_to_ipfs(SEED)
        self.assertEqual(link, gateway.link(ipfs.compute_cid(SEED)))
        self.assertEqual(ipfs.fetch_ipfs_json(link), SEED)
        (upload,) = gateway.uploads
        self.assertEqual(upload.data, json.dumps(SEED).encode("utf-8"))
        self.assertEqual(upload.filename, "data.json")
        self.assertEqual(upload.content_type, "application/json")

    def test_200_and_201_both_accepted(self):
        for status in (200, 201):
            with self.subTest(status=status):
                link = "http://gw.invalid/ipfs/" + ipfs.compute_cid(b"x")
                server = self.scripted(json_reply({"link": link}, status=status))
                self.point_at(server)
                self.assertEqual(ipfs.publish_to_ipfs(b"x", retries=0), link)
                (request,) = server.requests
                self.assertEqual(request.method, "POST")
                self.assertEqual(request.target, "/file/create")

    def test_link_returned_unchanged_with_extra_fields(self):
        server = self.scripted(json_reply({"link": "https://x.example/ipfs/abc", "size": 3}))
        self.point_at(server)
        self.assertEqual(ipfs.publish_to_ipfs("abc", retries=0), "https://x.example/ipfs/abc")

    def test_every_data_kind_uploads_its_bytes(self):
        gateway = self.gateway()
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        path = os.path.join(folder, "blob.bin")
        blob = content(300000)  # more than one 256 KiB read
        with open(path, "wb") as stream:
            stream.write(blob)

        class Path(object):  # any os.PathLike, not only pathlib
            def __fspath__(self):
                return path

        os.PathLike.register(Path)
        cases = [
            ("dict", SEED, json.dumps(SEED).encode("utf-8")),
            ("str", "h\u00e9llo \u2603", "h\u00e9llo \u2603".encode("utf-8")),
            ("bytes", blob, blob),
            ("bytearray", bytearray(b"\x00\x01\xff"), b"\x00\x01\xff"),
            ("memoryview", memoryview(blob)[10:20], blob[10:20]),
            ("path", Path(), blob),
            ("empty", b"", b""),
        ]
        with publishing_to(gateway):
            for name, data, expected in cases:
                with self.subTest(kind=name):
                    link = ipfs.publish_to_ipfs(data, retries=0)
                    self.assertEqual(gateway.uploads[-1].data, expected)
                    self.assertEqual(link, gateway.link(ipfs.compute_cid(expected)))
            with self.subTest(kind="file object"):
                with open(path, "rb") as stream:
                    stream.seek(1000)  # sent from the current position on
                    link = ipfs.publish_to_ipfs(stream, retries=0)
                    self.assertFalse(stream.closed)  # the caller's file stays open
                self.assertEqual(gateway.uploads[-1].data, blob[1000:])
                self.assertEqual(link, gateway.link(ipfs.compute_cid(blob[1000:])))

    def test_non_seekable_stream_is_spooled(self):
        gateway = self.gateway()
        blob = content(700000)  # far more than a pipe holds: the writer must block
        read_fd, write_fd = os.pipe()
        reader = os.fdopen(read_fd, "rb", buffering=0)
        self.addCleanup(reader.close)

        def write_all():
            with os.fdopen(write_fd, "wb") as writer:
                writer.write(blob)

        writer_thread = threading.Thread(target=write_all)
        writer_thread.start()
        self.addCleanup(writer_thread.join, 10)
        self.assertFalse(reader.seekable())
        with publishing_to(gateway):
            link = ipfs.publish_to_ipfs(reader, "blob.bin", "application/octet-stream", retries=0)
        writer_thread.join(10)
        self.assertEqual(gateway.uploads[-1].data, blob)
        self.assertEqual(gateway.uploads[-1].size, len(blob))
        self.assertEqual(link, gateway.link(ipfs.compute_cid(blob)))

    def test_unseekable_stream_is_resent_whole_on_retry(self):
        gateway = self.gateway()
        blob = content(1000)

        class OneWay(io.RawIOBase):
            def __init__(self):
                self._inner = io.BytesIO(blob)

            def readable(self):
                return True

            def seekable(self):
                return False

            def readinto(self, buffer):
                data = self._inner.read(len(buffer))
                buffer[: len(data)] = data
                return len(data)

        gateway.fail(503, headers={"Retry-After": "0"})
        with publishing_to(gateway), self.assertLogs("ogpu.ipfs", "WARNING"):
            ipfs.publish_to_ipfs(OneWay(), retries=1)
        self.assertEqual([u.data for u in gateway.uploads], [blob])
        self.assertEqual(len(gateway.requests), 2)

    def test_filename_and_content_type_sent(self):
        gateway = self.gateway()
        with publishing_to(gateway):
            ipfs.publish_to_ipfs(b"\x89PNG", 'a "cat"\r\n\u00e9.png', "image/png", retries=0)
        (upload,) = gateway.uploads
        self.assertEqual(upload.filename, 'a "cat"\r\n\u00e9.png')
        self.assertEqual(upload.content_type, "image/png")

    def test_progress_monotonic_ending_at_total(self):
        gateway = self.gateway()
        blob = content(1024 * 1024 + 7)
        calls = []
        with publishing_to(gateway):
            ipfs.publish_to_ipfs(blob, progress=lambda done, total: calls.append((done, total)), retries=0)
        self.assertGreater(len(calls), 2)
        self.assertEqual(calls[0], (0, len(blob)))
        self.assertEqual(calls[-1], (len(blob), len(blob)))
        self.assertEqual({total for _, total in calls}, {len(blob)})
        done = [d for d, _ in calls]
        self.assertEqual(done, sorted(done))

    def test_publish_url_is_read_at_call_time(self):
        first, second = self.gateway(), self.gateway()
        ipfs._PUBLISH_URL = first.upload_url
        link1 = ipfs.publish_to_ipfs({"n": 1}, retries=0)
        ipfs._PUBLISH_URL = second.upload_url
        link2 = ipfs.publish_to_ipfs({"n": 2}, retries=0)
        self.assertTrue(link1.startswith(first.url + "/ipfs/"), link1)
        self.assertTrue(link2.startswith(second.url + "/ipfs/"), link2)
        self.assertEqual([u.data for u in first.uploads], [b'{"n": 1}'])
        self.assertEqual([u.data for u in second.uploads], [b'{"n": 2}'])

    def test_retry_after_503_succeeds(self):
        gateway = self.gateway()
        gateway.fail(503, headers={"Retry-After": "0"}, body=b"busy")
        with publishing_to(gateway), self.assertLogs("ogpu.ipfs", "WARNING") as logs:
            link = ipfs.publish_to_ipfs(SEED, retries=1)
        self.assertIn("returned HTTP 503", logs.output[0])
        self.assertEqual(link, gateway.link(ipfs.compute_cid(SEED)))
        self.assertEqual([r.method for r in gateway.requests], ["POST", "POST"])
        self.assertEqual(len(gateway.uploads), 1)

    def test_307_and_308_resend_the_post(self):
        for status in (307, 308):
            with self.subTest(status=status):
                gateway = self.gateway()
                server = self.scripted(redirect(gateway.upload_url, status))
                self.point_at(server)
                link = ipfs.publish_to_ipfs(b"moved", retries=0)
                self.assertEqual(link, gateway.link(ipfs.compute_cid(b"moved")))
                self.assertEqual([u.data for u in gateway.uploads], [b"moved"])
                self.assertEqual(server.requests[0].method, "POST")
                self.assertIn(b"moved", server.requests[0].body)

    def test_verify_true_succeeds(self):
        gateway = self.gateway()
        blob = content(600000)  # several chunks: the CID is of a tree
        with publishing_to(gateway):
            link = ipfs.publish_to_ipfs(blob, verify=True, retries=0)
        self.assertEqual(link, gateway.link(ipfs.compute_cid(blob)))


class PublishBadTest(PublishTestCase):
    def test_connection_refused(self):
        with RefusingPort() as port:
            url = self.point_at(port)
            with self.assertRaises(ipfs.IPFSFetchError) as caught:
                ipfs.publish_to_ipfs(SEED, retries=0)
        error = caught.exception
        self.assertEqual(error.url, url)
        self.assertEqual(error.reason, "connection refused")
        self.assertEqual(str(error), "Failed to fetch from IPFS {}: connection refused".format(url))
        self.assertIsInstance(error.__cause__, OSError)
        self.assertPickles(error, ("url", "reason"))

    def test_connection_refused_is_retried(self):
        with RefusingPort() as port:
            self.point_at(port)
            with self.assertLogs("ogpu.ipfs", "DEBUG") as logs:
                with self.assertRaises(ipfs.IPFSFetchError):
                    ipfs.publish_to_ipfs(SEED, retries=1)
        failed = [r for r in logs.records if "connection refused" in r.getMessage()]
        self.assertEqual(len(failed), 2, logs.output)
        retrying = [r for r in logs.records if r.getMessage().startswith("retrying in ")]
        self.assertEqual([r.levelname for r in retrying], ["WARNING"])

    def test_non_json_body(self):
        server = self.scripted(reply(201, b"<html>hello</html>", {"Content-Type": "text/html"}))
        url = self.point_at(server)
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.publish_to_ipfs(SEED, retries=2)
        error = caught.exception
        self.assertEqual(error.url, url)
        self.assertTrue(error.reason.startswith("answer is not valid JSON ("), error.reason)
        self.assertEqual(len(server.requests), 1)  # an answer is not retried
        self.assertPickles(error, ("url", "reason"))

    def test_invalid_utf8_body(self):
        server = self.scripted(reply(201, b'{"link": "\xff"}'))
        self.point_at(server)
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.publish_to_ipfs(SEED, retries=0)
        self.assertTrue(caught.exception.reason.startswith("answer is not valid JSON"))

    def test_truncated_body(self):
        body = b'{"link": "http://gw.invalid/ipfs/QmX"}'
        server = self.scripted(raw(http_head(201, {"Content-Length": str(len(body))}) + body[:10]))
        url = self.point_at(server)
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.publish_to_ipfs(SEED, retries=0)
        self.assertEqual(caught.exception.url, url)
        self.assertEqual(caught.exception.reason, "response body truncated after 10 bytes")
        self.assertPickles(caught.exception, ("url", "reason"))

    def test_truncated_chunked_body(self):
        head = http_head(201, {"Transfer-Encoding": "chunked"})
        server = self.scripted(raw(head + b"20\r\n{\"link\": \"http://x"))
        self.point_at(server)
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.publish_to_ipfs(SEED, retries=0)
        self.assertIn("truncated", caught.exception.reason)

    def test_answer_not_http(self):
        server = self.scripted(raw(b"\x00\xffnot http at all\r\n\r\n"))
        url = self.point_at(server)
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.publish_to_ipfs(SEED, retries=0)
        self.assertEqual(caught.exception.url, url)
        self.assertTrue(caught.exception.reason.startswith("invalid HTTP response"), caught.exception.reason)

    def test_closed_without_answer(self):
        server = self.scripted(raw(b""))
        self.point_at(server)
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.publish_to_ipfs(SEED, retries=0)
        self.assertEqual(caught.exception.reason, "server closed the connection without a response")

    def test_json_not_an_object(self):
        cases = [b"[]", b'["http://x/ipfs/Qm"]', b'"http://x/ipfs/Qm"', b"42", b"null"]
        for body in cases:
            with self.subTest(body=body):
                server = self.scripted(reply(201, body, {"Content-Type": "application/json"}))
                url = self.point_at(server)
                with self.assertRaises(ipfs.IPFSGatewayError) as caught:
                    ipfs.publish_to_ipfs(SEED, retries=0)
                error = caught.exception
                self.assertEqual(error.gateway, url)
                self.assertEqual(error.status_code, 201)
                self.assertEqual(error.body, body.decode())
                self.assertEqual(str(error), "IPFS gateway {} returned HTTP 201".format(url))
                self.assertPickles(error, ("gateway", "status_code", "body"))

    def test_link_missing_empty_or_not_a_string(self):
        cases = [{}, {"Link": "http://x"}, {"link": ""}, {"link": "   "}, {"link": None},
                 {"link": 42}, {"link": ["http://x"]}, {"link": {"url": "http://x"}}]
        for answer in cases:
            with self.subTest(answer=answer):
                server = self.scripted(json_reply(answer, status=200))
                url = self.point_at(server)
                with self.assertRaises(ipfs.IPFSGatewayError) as caught:
                    ipfs.publish_to_ipfs(SEED, retries=0)
                error = caught.exception
                self.assertEqual((error.gateway, error.status_code), (url, 200))
                self.assertEqual(error.body, json.dumps(answer))
                self.assertPickles(error, ("gateway", "status_code", "body"))

    def test_error_statuses_carry_status_and_excerpt(self):
        for status in (400, 404, 500):
            with self.subTest(status=status):
                server = self.scripted(reply(status, b'  {"error": "quota exceeded"}\n'))
                url = self.point_at(server)
                with self.assertRaises(ipfs.IPFSGatewayError) as caught:
                    ipfs.publish_to_ipfs(SEED, retries=0)
                error = caught.exception
                self.assertEqual(error.gateway, url)
                self.assertEqual(error.status_code, status)
                self.assertEqual(error.body, '{"error": "quota exceeded"}')
                self.assertEqual(str(error), "IPFS gateway {} returned HTTP {}".format(url, status))
                self.assertIsNone(error.__cause__)
                self.assertPickles(error, ("gateway", "status_code", "body"))

    def test_client_errors_are_not_retried(self):
        server = self.scripted(reply(400, b"bad"), reply(404, b"gone"))
        self.point_at(server)
        with self.assertRaises(ipfs.IPFSGatewayError) as caught:
            ipfs.publish_to_ipfs(SEED, retries=3)
        self.assertEqual(caught.exception.status_code, 400)
        self.assertEqual(len(server.requests), 1)

    def test_error_body_excerpt_is_short_and_decoded(self):
        server = self.scripted(reply(500, "\u00e9".encode("utf-8") * 5000 + b"\xff"))
        self.point_at(server)
        with self.assertRaises(ipfs.IPFSGatewayError) as caught:
            ipfs.publish_to_ipfs(SEED, retries=0)
        self.assertEqual(caught.exception.body, "\u00e9" * 200)

    def test_empty_error_body_is_none(self):
        server = self.scripted(reply(500))
        self.point_at(server)
        with self.assertRaises(ipfs.IPFSGatewayError) as caught:
            ipfs.publish_to_ipfs(SEED, retries=0)
        self.assertIsNone(caught.exception.body)

    def test_302_for_post_is_a_gateway_error(self):
        for status in (301, 302, 303):
            with self.subTest(status=status):
                gateway = self.gateway()
                server = self.scripted(redirect(gateway.upload_url, status))
                url = self.point_at(server)
                with self.assertRaises(ipfs.IPFSGatewayError) as caught:
                    ipfs.publish_to_ipfs(SEED, retries=2)
                error = caught.exception
                self.assertEqual((error.gateway, error.status_code, error.body), (url, status, None))
                self.assertEqual(gateway.requests, [])  # never turned into a GET
                self.assertEqual(len(server.requests), 1)

    def test_retries_exhausted(self):
        busy = reply(503, b"busy", {"Retry-After": "0"})
        server = self.scripted(default=busy)
        url = self.point_at(server)
        started = time.monotonic()
        with self.assertLogs("ogpu.ipfs", "WARNING"):
            with self.assertRaises(ipfs.IPFSGatewayError) as caught:
                ipfs.publish_to_ipfs(SEED, retries=2)
        self.assertLess(time.monotonic() - started, 5)
        error = caught.exception
        self.assertEqual((error.gateway, error.status_code, error.body), (url, 503, "busy"))
        self.assertEqual(len(server.requests), 3)
        body = json.dumps(SEED).encode()
        for request in server.requests:  # every attempt sent the whole body again
            self.assertIn(body, request.body)

    def test_verify_mismatch_names_both_cids(self):
        other = ipfs.compute_cid(b"something else")
        link = "http://gw.invalid/ipfs/" + other
        server = self.scripted(json_reply({"link": link}))
        self.point_at(server)
        with self.assertRaises(ipfs.IPFSVerificationError) as caught:
            ipfs.publish_to_ipfs(SEED, verify=True, retries=0)
        error = caught.exception
        mine = ipfs.compute_cid(SEED)
        self.assertEqual(error.cid, mine)
        self.assertEqual(error.url, link)
        self.assertIn(other, error.reason)
        self.assertIn(mine, error.reason)
        self.assertIn("the upload happened", error.reason)
        self.assertEqual(len(server.requests), 1)
        self.assertPickles(error, ("url", "cid", "reason"))

    def test_verify_link_without_cid(self):
        server = self.scripted(json_reply({"link": "http://gw.invalid/file/42"}))
        self.point_at(server)
        with self.assertRaises(ipfs.IPFSVerificationError) as caught:
            ipfs.publish_to_ipfs(b"abc", verify=True, retries=0)
        self.assertEqual(caught.exception.cid, ipfs.compute_cid(b"abc"))
        self.assertIn("the upload happened", caught.exception.reason)

    def test_verify_accepts_the_cidv1_of_the_same_content(self):
        v0 = ipfs._parse_cid(ipfs.compute_cid(SEED))
        cid1 = str(ipfs._Cid(1, v0.codec, v0.hash_code, v0.digest))  # same node, CIDv1 text
        server = self.scripted(json_reply({"link": "http://gw.invalid/ipfs/" + cid1}))
        self.point_at(server)
        self.assertTrue(ipfs.publish_to_ipfs(SEED, verify=True, retries=0).endswith(cid1))


class PublishArgumentTest(PublishTestCase):
    def test_programming_errors_raise_before_any_io(self):
        server = self.scripted()
        self.point_at(server)
        cases = [
            (TypeError, (123,), {}),
            (TypeError, ([1, 2],), {}),
            (TypeError, (io.StringIO("text"),), {}),
            (TypeError, (b"x", b"name"), {}),
            (ValueError, (b"x", "f", "text/plain\r\nX-Evil: 1"), {}),
            (ValueError, (b"x", "f", "text/plain\n"), {}),
            (ValueError, (b"x", "f", "text/plain\0"), {}),
            (ValueError, (b"x",), {"headers": {"X-Token": "a\r\nX-Evil: 1"}}),
            (ValueError, (b"x",), {"headers": {"Bad Name": "v"}}),
            (ValueError, (b"x",), {"retries": -1}),
            (ValueError, (b"x",), {"timeout": 0}),
        ]
        for error, args, kwargs in cases:
            with self.subTest(args=args, kwargs=kwargs):
                with self.assertRaises(error):
                    ipfs.publish_to_ipfs(*args, **kwargs)
        self.assertEqual(server.connections, 0)


def http_head(status, headers):
    return http_response(status, b"", headers, length=False)


if __name__ == "__main__":
    unittest.main()

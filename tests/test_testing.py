"""Tests of ogpu.testing.LocalGateway itself, spoken to with raw http.client and sockets.

The gateway is the yardstick for the client's tests, so here it is checked
without the client: uploads are multipart bodies written out by hand, CARs
are compared byte for byte with ones Kubo's importer made (tests/data/car)
and taken apart with a few lines of parsing, and every fault is observed on
the wire.
"""

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import types
import unittest
import zlib

from ogpu import testing
from ogpu.testing import LocalGateway
from tests.support import ThreadAndFdCheck, content, ipfs, no_leaks

CAR_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "car")
BOUNDARY = "gateway-test-boundary-7f3a"
EMPTY_CID = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
TIMEOUT = 5.0


def request(gateway, method, path, body=None, headers=None, timeout=TIMEOUT):
    """Send one request; return (status, headers as a dict with lowercase names, body)."""
    connection = http.client.HTTPConnection(gateway.host, gateway.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        connection.close()


def raw_exchange(gateway, data, timeout=TIMEOUT):
    """Send raw bytes, return everything the gateway sends back before closing."""
    with socket.create_connection((gateway.host, gateway.port), timeout=timeout) as sock:
        sock.sendall(data)
        received = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(received)
            received.append(chunk)


def multipart(parts, boundary=BOUNDARY, preamble=b"", epilogue=b""):
    """A multipart/form-data body: parts are (header lines, content) pairs."""
    body = preamble
    for header_lines, data in parts:
        body += b"--" + boundary.encode() + b"\r\n"
        body += b"".join(line + b"\r\n" for line in header_lines) + b"\r\n"
        body += data + b"\r\n"
    return body + b"--" + boundary.encode() + b"--\r\n" + epilogue


def file_part(data, filename=b"data.json", content_type=b"application/json"):
    lines = [b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"']
    if content_type is not None:
        lines.append(b"Content-Type: " + content_type)
    return lines, data


def upload(gateway, body, content_type="multipart/form-data; boundary=" + BOUNDARY):
    return request(gateway, "POST", "/file/create", body, {"Content-Type": content_type})


def read_varint(buf, pos):
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return pos, value
        shift += 7


def split_car(car):
    """Return (header bytes, [(cid bytes, data bytes)]) of a CARv1."""
    pos, length = read_varint(car, 0)
    header = car[pos : pos + length]
    pos += length
    blocks = []
    while pos < len(car):
        pos, length = read_varint(car, pos)
        section = car[pos : pos + length]
        pos += length
        if section[:2] == b"\x12\x20":
            cid_length = 34
        else:
            cid_pos, _ = read_varint(section, 0)  # version
            cid_pos, _ = read_varint(section, cid_pos)  # codec
            cid_pos, _ = read_varint(section, cid_pos)  # hash code
            cid_pos, digest_length = read_varint(section, cid_pos)
            cid_length = cid_pos + digest_length
        blocks.append((section[:cid_length], section[cid_length:]))
    return header, blocks


def block_ok(cid, data):
    """True when a sha2-256 CID matches its block."""
    return cid[-32:] == hashlib.sha256(data).digest()


class GatewayTestCase(ThreadAndFdCheck, unittest.TestCase):
    """Each test gets a fresh gateway; no thread or descriptor may outlive it."""

    def setUp(self):
        super().setUp()
        self.gateway = LocalGateway()
        self.addCleanup(self.gateway.close)

    def tearDown(self):
        self.assertEqual(self.gateway.errors, [])
        super().tearDown()


class UploadTest(GatewayTestCase):
    def test_upload_then_read_back(self):
        # CRLF, and the boundary after a bare LF (only CRLF + "--" + boundary delimits).
        data = b'{"result": "cat"}\r\n\n--' + BOUNDARY.encode() + b"--\r\n\r\n--x"
        status, headers, body = upload(self.gateway, multipart([file_part(data)]))
        self.assertEqual(status, 201)
        self.assertEqual(headers["content-type"], "application/json")
        cid = ipfs.compute_cid(data)
        self.assertEqual(json.loads(body.decode()), {"link": self.gateway.url + "/ipfs/" + cid})
        (record,) = self.gateway.uploads
        self.assertEqual(
            (record.filename, record.content_type, record.size, record.cid, record.data),
            ("data.json", "application/json", len(data), cid, data),
        )
        status, headers, body = request(self.gateway, "GET", "/ipfs/" + cid)
        self.assertEqual((status, body), (200, data))
        self.assertEqual(headers["content-type"], "application/octet-stream")  # not JSON as a whole

    def test_json_content_type_and_head(self):
        data = json.dumps({"result": "cat", "confidence": 0.97}).encode()
        cid = self.gateway.add(data)
        status, headers, body = request(self.gateway, "GET", "/ipfs/" + cid)
        self.assertEqual((status, headers["content-type"], body), (200, "application/json", data))
        status, headers, body = request(self.gateway, "HEAD", "/ipfs/" + cid)
        self.assertEqual((status, headers["content-length"], body), (200, str(len(data)), b""))

    def test_filenames_decoded_as_browsers_encode_them(self):
        cases = [
            (b"plain.txt", "plain.txt"),
            (b"quote%22here.json", 'quote"here.json'),
            (b"line%0D%0Abreak", "line\r\nbreak"),
            ("caf\u00e9 \u2603.json".encode(), "caf\u00e9 \u2603.json"),
            (b"semi;colon=x", "semi;colon=x"),
        ]
        for sent, expected in cases:
            with self.subTest(filename=sent):
                status, _, _ = upload(self.gateway, multipart([file_part(b"x", filename=sent)]))
                self.assertEqual(status, 201)
                self.assertEqual(self.gateway.uploads[-1].filename, expected)
        self.assertEqual(len(self.gateway.uploads), len(cases))

    def test_preamble_other_fields_and_epilogue(self):
        parts = [
            ([b'Content-Disposition: form-data; name="note"'], b"ignored"),
            file_part(b"payload", content_type=None),
        ]
        body = multipart(parts, preamble=b"preamble text\r\n", epilogue=b"epilogue\r\n")
        status, _, _ = upload(self.gateway, body)
        self.assertEqual(status, 201)
        record = self.gateway.uploads[0]
        self.assertEqual((record.data, record.content_type), (b"payload", None))

    def test_empty_file(self):
        status, _, body = upload(self.gateway, multipart([file_part(b"")]))
        self.assertEqual(status, 201)
        self.assertTrue(json.loads(body.decode())["link"].endswith("/ipfs/" + EMPTY_CID))
        self.assertEqual(request(self.gateway, "GET", "/ipfs/" + EMPTY_CID)[2], b"")

    def test_body_sent_in_small_pieces(self):
        data = content(300000)
        body = multipart([file_part(data)])
        head = (
            "POST /file/create HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={}\r\n"
            "Content-Length: {}\r\n\r\n".format(BOUNDARY, len(body))
        ).encode()
        with socket.create_connection((self.gateway.host, self.gateway.port), timeout=TIMEOUT) as sock:
            sock.sendall(head)
            for start in range(0, len(body), 7777):
                sock.sendall(body[start : start + 7777])
            reply = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        self.assertTrue(reply.startswith(b"HTTP/1.1 201 "), reply[:100])
        self.assertEqual(self.gateway.uploads[0].data, data)
        self.assertEqual(self.gateway.uploads[0].cid, ipfs.compute_cid(data))

    def test_malformed_uploads(self):
        good = multipart([file_part(b"x")])
        cases = [
            ("text/plain", good, 400),
            ("multipart/form-data", good, 400),
            ("multipart/form-data; boundary=other", good, 400),
            ("multipart/form-data; boundary=" + BOUNDARY, good[:-8], 400),
            ("multipart/form-data; boundary=" + BOUNDARY, multipart([]), 400),
            ("multipart/form-data; boundary=" + BOUNDARY, multipart([file_part(b"a"), file_part(b"b")]), 400),
            (
                "multipart/form-data; boundary=" + BOUNDARY,
                multipart([([b"Content-Type: text/plain"], b"no disposition")]),
                400,
            ),
        ]
        for content_type, body, expected in cases:
            with self.subTest(content_type=content_type, body=body[-30:]):
                status, headers, reply = upload(self.gateway, body, content_type)
                self.assertEqual(status, expected)
                self.assertEqual(headers["content-type"], "application/json")
                self.assertIn("error", json.loads(reply.decode()))
        self.assertEqual(self.gateway.uploads, [])

    def test_missing_content_length(self):
        reply = raw_exchange(
            self.gateway,
            b"POST /file/create HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n\r\n",
        )
        self.assertTrue(reply.startswith(b"HTTP/1.1 411 "), reply[:100])


class MultipartParserTest(unittest.TestCase):
    def parse(self, body, boundary, piece):
        parts = []
        parser = testing._MultipartParser(
            boundary,
            lambda headers: parts.append([headers, b""]),
            lambda data: parts[-1].__setitem__(1, parts[-1][1] + data),
            lambda: None,
        )
        for start in range(0, len(body), piece):
            parser.feed(body[start : start + piece])
        parser.close()
        return parts

    def test_every_split_gives_the_same_parts(self):
        tricky = b"\r\n--" + BOUNDARY.encode()[:-1] + b"\r\n\r\n--\r\n"
        body = multipart([file_part(tricky), ([b"Content-Disposition: form-data; name=n"], b"v")])
        for piece in (1, 2, 3, 5, 64, len(body)):
            with self.subTest(piece=piece):
                parts = self.parse(body, BOUNDARY.encode(), piece)
                self.assertEqual([data for _, data in parts], [tricky, b"v"])
                self.assertEqual(parts[1][0], {"content-disposition": "form-data; name=n"})

    def test_bad_bodies(self):
        cases = [
            multipart([file_part(b"x")])[:-4],  # no close delimiter
            b"--" + BOUNDARY.encode() + b"junk\r\n\r\nx",  # bytes after a delimiter
            b"--" + BOUNDARY.encode() + b"\r\nno colon here\r\n\r\nx\r\n--" + BOUNDARY.encode() + b"--",
        ]
        for body in cases:
            with self.subTest(body=body), self.assertRaises(ValueError):
                self.parse(body, BOUNDARY.encode(), 3)


class ServeTest(GatewayTestCase):
    def test_unknown_and_invalid_cids(self):
        unknown = ipfs.compute_cid(b"never stored")
        cases = [(unknown, 404), (ipfs.compute_cid(b"never stored", cid_version=1), 404), ("notacid", 400)]
        for cid, expected in cases:
            with self.subTest(cid=cid):
                status, _, body = request(self.gateway, "GET", "/ipfs/" + cid)
                self.assertEqual(status, expected)
                self.assertIn("error", json.loads(body.decode()))
        self.assertEqual(request(self.gateway, "GET", "/elsewhere")[0], 404)
        self.assertEqual(request(self.gateway, "POST", "/ipfs/" + unknown, b"")[0], 405)

    def test_cidv0_and_cidv1_name_the_same_content(self):
        data = content(600000)
        cid0 = self.gateway.add(data)
        cid1 = ipfs.compute_cid(data, cid_version=1)
        self.assertEqual(cid0, ipfs.compute_cid(data))
        for cid in (cid0, cid1):
            with self.subTest(cid=cid):
                self.assertEqual(request(self.gateway, "GET", "/ipfs/" + cid)[2], data)
        self.assertEqual(self.gateway.add(data, cid_version=1), cid1)

    def test_compression(self):
        data = b'{"compress": "me"}' * 1000
        cid = self.gateway.add(data)
        self.assertEqual(
            request(self.gateway, "GET", "/ipfs/" + cid, headers={"Accept-Encoding": "gzip"})[2], data
        )
        for encoding, wbits in (("gzip", 31), ("deflate", 15)):
            with self.subTest(encoding=encoding):
                self.gateway.compress = encoding
                status, headers, body = request(
                    self.gateway, "GET", "/ipfs/" + cid, headers={"Accept-Encoding": "gzip, deflate"}
                )
                self.assertEqual(status, 200)
                self.assertEqual(headers["content-encoding"], encoding)
                self.assertEqual(headers["transfer-encoding"], "chunked")
                self.assertLess(len(body), len(data))
                self.assertEqual(zlib.decompress(body, wbits), data)
                plain = request(self.gateway, "GET", "/ipfs/" + cid, headers={"Accept-Encoding": "identity"})
                self.assertEqual(plain[2], data)

    def test_directory_paths(self):
        tree = {"a.json": b'{"x": 1}', "sub": {"b.bin": content(5000)}, "empty": b""}
        for version in (0, 1):
            with self.subTest(cid_version=version):
                root = self.gateway.add_directory(tree, cid_version=version)
                self.assertEqual(request(self.gateway, "GET", "/ipfs/{}/a.json".format(root))[2], b'{"x": 1}')
                self.assertEqual(
                    request(self.gateway, "GET", "/ipfs/{}/sub/b.bin".format(root))[2], content(5000)
                )
                self.assertEqual(request(self.gateway, "GET", "/ipfs/{}/nope".format(root))[0], 404)
                self.assertEqual(request(self.gateway, "GET", "/ipfs/{}/a.json/x".format(root))[0], 404)
                listing = request(self.gateway, "GET", "/ipfs/" + root)
                self.assertIn(b'href="sub"', listing[2])
        with self.assertRaises(ValueError):
            self.gateway.add_directory({"a/b": b""})

    def test_requests_are_recorded(self):
        request(self.gateway, "GET", "/ipfs/x?y=1", headers={"User-Agent": "probe/1", "X-Token": "t"})
        (record,) = self.gateway.requests
        self.assertEqual((record.method, record.path), ("GET", "/ipfs/x?y=1"))
        self.assertEqual(record.headers["user-agent"], "probe/1")
        self.assertEqual(record.headers["X-TOKEN"], "t")
        self.assertIn("User-Agent", list(record.headers))


class TrustlessTest(GatewayTestCase):
    def car(self, path, **headers):
        status, reply_headers, body = request(self.gateway, "GET", path, headers=headers)
        self.assertEqual(status, 200, body[:200])
        self.assertEqual(reply_headers["content-type"], testing.CAR_CONTENT_TYPE)
        self.assertEqual(int(reply_headers["content-length"]), len(body))
        return body

    def test_cars_match_kubo_importer_output(self):
        with open(os.path.join(CAR_DIR, "index.json")) as stream:
            index = {entry["file"]: entry for entry in json.load(stream)}
        tree = {"a.json": b'{"x": 1}', "sub": {"b.bin": content(5000)}, "empty": b""}
        cases = [
            ("file-1000-v0.car", lambda: self.gateway.add(content(1000))),
            ("file-300000-v0.car", lambda: self.gateway.add(content(300000))),
            ("dir-v0.car", lambda: self.gateway.add_directory(tree)),
            ("dir-v1.car", lambda: self.gateway.add_directory(tree, cid_version=1)),
        ]
        for name, add in cases:
            with self.subTest(car=name):
                root = add()
                self.assertEqual(root, index[name]["root"])
                with open(os.path.join(CAR_DIR, name), "rb") as stream:
                    expected = stream.read()
                self.assertEqual(self.car("/ipfs/{}?format=car".format(root)), expected)

    def test_car_by_accept_header_and_v1_dag(self):
        data = content(262144 * 3 + 5)
        cid1 = ipfs.compute_cid(data, cid_version=1)
        self.gateway.add(data)
        car = self.car("/ipfs/" + cid1, Accept="application/vnd.ipld.car; version=1; order=dfs; dups=y")
        header, blocks = split_car(car)
        self.assertIn(b"roots", header)
        self.assertEqual(len(blocks), 5)  # the root, then four raw leaves in file order
        self.assertTrue(all(block_ok(cid, block) for cid, block in blocks))
        self.assertEqual(blocks[0][0][:2], b"\x01\x70")  # dag-pb root
        self.assertEqual([cid[:2] for cid, _ in blocks[1:]], [b"\x01\x55"] * 4)
        self.assertEqual(b"".join(block for _, block in blocks[1:]), data)

    def test_raw_blocks(self):
        data = content(300000)
        cid = self.gateway.add(data)
        status, headers, root = request(self.gateway, "GET", "/ipfs/{}?format=raw".format(cid))
        self.assertEqual((status, headers["content-type"]), (200, "application/vnd.ipld.raw"))
        _, blocks = split_car(self.car("/ipfs/{}?format=car".format(cid)))
        self.assertEqual(root, blocks[0][1])
        leaf = ipfs._read_cid(blocks[1][0], 0)[1]
        status, _, body = request(
            self.gateway, "GET", "/ipfs/{}".format(leaf), headers={"Accept": "application/vnd.ipld.raw"}
        )
        self.assertEqual(body, blocks[1][1])

    def test_car_with_a_path_and_scopes(self):
        tree = {"a.json": b'{"x": 1}', "sub": {"b.bin": content(300000)}}
        root = self.gateway.add_directory(tree)
        _, whole = split_car(self.car("/ipfs/{}?format=car".format(root)))
        _, path_blocks = split_car(self.car("/ipfs/{}/sub/b.bin?format=car&dag-scope=entity".format(root)))
        # the root directory, then sub, then the file's root and its two leaves
        self.assertEqual(len(path_blocks), 5)
        self.assertEqual(path_blocks[0], whole[0])
        file_blocks = split_car(self.car("/ipfs/{}?format=car".format(ipfs.compute_cid(content(300000)))))[1]
        self.assertEqual(path_blocks[2:], file_blocks)
        _, entity = split_car(self.car("/ipfs/{}?format=car&dag-scope=entity".format(root)))
        self.assertEqual(entity, whole[:1])
        _, block = split_car(self.car("/ipfs/{}/sub/b.bin?format=car&dag-scope=block".format(root)))
        self.assertEqual(block, path_blocks[:3])


class TamperTest(GatewayTestCase):
    def setUp(self):
        super().setUp()
        self.data = content(262144 * 3)
        self.cid = self.gateway.add(self.data)
        self.path = "/ipfs/{}?format=car".format(self.cid)
        self.honest = self.fetch()

    def fetch(self, path=None):
        status, headers, body = request(self.gateway, "GET", path or self.path)
        self.assertEqual(status, 200)
        self.assertEqual(int(headers["content-length"]), len(body))
        return body

    def test_each_mode(self):
        header, blocks = split_car(self.honest)
        self.assertEqual(len(blocks), 4)
        cases = [
            ("flip", {"block": 2, "offset": 10}, lambda h, b: [block_ok(*x) for x in b] == [1, 1, 0, 1]),
            ("flip", {"at": len(self.honest) - 1}, lambda h, b: [block_ok(*x) for x in b] == [1, 1, 1, 0]),
            ("drop", {"block": 1}, lambda h, b: b == blocks[:1] + blocks[2:]),
            ("drop", {}, lambda h, b: len(b) == 3),
            (
                "foreign",
                {"data": b"stranger"},
                lambda h, b: (
                    len(b) == 5 and b[1][1] == b"stranger" and block_ok(*b[1]) and b[2:] == blocks[1:]
                ),
            ),
            ("duplicate", {}, lambda h, b: b == [x for x in blocks for _ in (0, 1)]),
            ("duplicate", {"block": 3}, lambda h, b: b == blocks + blocks[3:]),
            ("reorder", {}, lambda h, b: b == blocks[:1] + blocks[:0:-1]),
            ("reorder", {"seed": 7}, lambda h, b: b[0] == blocks[0] and sorted(b) == sorted(blocks)),
            ("wrong_root", {}, lambda h, b: h != header and b == blocks),
            ("wrong_root", {"cid": EMPTY_CID}, lambda h, b: ipfs._parse_cid(EMPTY_CID).to_bytes() in h),
        ]
        for mode, options, check in cases:
            with self.subTest(mode=mode, options=options):
                self.gateway.tamper(mode, **options)
                tampered = self.fetch()
                self.assertTrue(check(*split_car(tampered)))
                self.assertEqual(self.fetch(), self.honest)  # times=1: back to normal

    def test_truncate(self):
        self.gateway.tamper("truncate", at=1000)
        self.assertEqual(self.fetch(), self.honest[:1000])
        self.gateway.tamper("truncate")
        self.assertEqual(self.fetch(), self.honest[: len(self.honest) // 2])

    def test_refuse_car(self):
        self.gateway.tamper("refuse_car", times=2)
        status, _, _ = request(self.gateway, "GET", self.path)
        self.assertEqual(status, 406)
        raw = request(self.gateway, "GET", "/ipfs/{}?format=raw".format(self.cid))  # not taken by raw
        self.assertEqual(raw[0], 200)
        self.assertEqual(request(self.gateway, "GET", self.path)[0], 406)
        self.gateway.tamper("refuse_car", status=200)
        status, headers, body = request(self.gateway, "GET", self.path)
        self.assertEqual((status, headers["content-type"], body), (200, "application/vnd.ipld.raw", raw[2]))
        self.assertEqual(self.fetch(), self.honest)

    def test_raw_requests_take_only_raw_modes(self):
        path = "/ipfs/{}?format=raw".format(self.cid)
        good = request(self.gateway, "GET", path)[2]
        self.gateway.tamper("drop")
        self.gateway.tamper("flip", offset=3)
        self.assertEqual(request(self.gateway, "GET", path)[2], good)  # "drop" is not for raw
        self.assertEqual(
            split_car(self.fetch())[1], split_car(self.honest)[1][:1] + split_car(self.honest)[1][2:]
        )
        flipped = request(self.gateway, "GET", path)[2]
        self.assertEqual(len(flipped), len(good))
        self.assertNotEqual(flipped, good)
        self.assertEqual(request(self.gateway, "GET", "/ipfs/" + self.cid)[2], self.data)  # plain: untouched

    def test_unknown_mode_or_option(self):
        with self.assertRaises(ValueError):
            self.gateway.tamper("scramble")
        with self.assertRaises(ValueError):
            self.gateway.tamper("drop", offset=1)


class FaultTest(GatewayTestCase):
    def setUp(self):
        super().setUp()
        self.data = b'{"hello": "world"}'
        self.path = "/ipfs/" + self.gateway.add(self.data)

    def test_fail(self):
        self.gateway.fail(503, times=2, headers={"Retry-After": "7"}, body=b"busy")
        for _ in range(2):
            status, headers, body = request(self.gateway, "GET", self.path)
            self.assertEqual((status, headers["retry-after"], body), (503, "7", b"busy"))
        self.assertEqual(request(self.gateway, "GET", self.path)[::2], (200, self.data))

    def test_fail_an_upload(self):
        self.gateway.fail(500)
        status, _, _ = upload(self.gateway, multipart([file_part(b"x" * 100000)]))
        self.assertEqual(status, 500)
        self.assertEqual(self.gateway.uploads, [])
        self.assertEqual(upload(self.gateway, multipart([file_part(b"x")]))[0], 201)

    def test_faults_queue_in_order(self):
        self.gateway.fail(502)
        self.gateway.fail(429)
        statuses = [request(self.gateway, "GET", self.path)[0] for _ in range(3)]
        self.assertEqual(statuses, [502, 429, 200])
        self.gateway.fail(500, times=None)
        self.gateway.reset()
        self.assertEqual(request(self.gateway, "GET", self.path)[0], 200)

    def test_hang(self):
        self.gateway.hang()
        with self.assertRaises(socket.timeout):
            request(self.gateway, "GET", self.path, timeout=0.3)
        self.assertEqual(request(self.gateway, "GET", self.path)[2], self.data)

    def test_drip(self):
        self.gateway.drip(delay=0.005)
        with socket.create_connection((self.gateway.host, self.gateway.port), timeout=TIMEOUT) as sock:
            sock.sendall("GET {} HTTP/1.1\r\nHost: x\r\n\r\n".format(self.path).encode())
            pieces = []
            while True:
                piece = sock.recv(65536)
                if not piece:
                    break
                pieces.append(piece)
        reply = b"".join(pieces)
        self.assertTrue(reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(self.data))
        self.assertGreater(len(pieces), 10)  # byte by byte, give or take the scheduler

    def test_close_mid_body(self):
        self.gateway.close_mid_body(after=5)
        connection = http.client.HTTPConnection(self.gateway.host, self.gateway.port, timeout=TIMEOUT)
        self.addCleanup(connection.close)
        connection.request("GET", self.path)
        response = connection.getresponse()
        self.assertEqual(response.getheader("Content-Length"), str(len(self.data)))
        with self.assertRaises(http.client.IncompleteRead) as caught:
            response.read()
        self.assertEqual(caught.exception.partial, self.data[:5])

    def test_wrong_length(self):
        self.gateway.wrong_length(extra=10)
        connection = http.client.HTTPConnection(self.gateway.host, self.gateway.port, timeout=TIMEOUT)
        self.addCleanup(connection.close)
        connection.request("GET", self.path)
        response = connection.getresponse()
        self.assertEqual(response.getheader("Content-Length"), str(len(self.data) + 10))
        with self.assertRaises(http.client.IncompleteRead) as caught:
            response.read()
        self.assertEqual(caught.exception.partial, self.data)

    def test_garbage_and_disconnect(self):
        self.gateway.garbage(data=b"\x00\x01 nonsense")
        get = "GET {} HTTP/1.1\r\nHost: x\r\n\r\n".format(self.path).encode()
        self.assertEqual(raw_exchange(self.gateway, get), b"\x00\x01 nonsense")
        self.gateway.garbage()
        with self.assertRaises(http.client.BadStatusLine):
            request(self.gateway, "GET", self.path)
        self.gateway.disconnect()
        self.assertEqual(raw_exchange(self.gateway, get), b"")

    def test_endless(self):
        self.gateway.endless()
        connection = http.client.HTTPConnection(self.gateway.host, self.gateway.port, timeout=TIMEOUT)
        self.addCleanup(connection.close)
        connection.request("GET", self.path)
        response = connection.getresponse()
        self.assertEqual(response.status, 200)
        self.assertEqual(len(response.read(3 * 1024 * 1024)), 3 * 1024 * 1024)
        connection.close()
        self.assertEqual(request(self.gateway, "GET", self.path)[2], self.data)


class LifecycleTest(unittest.TestCase):
    def test_close_ends_hanging_and_dripping_connections(self):
        with no_leaks(self):
            gateway = LocalGateway()
            storage = gateway.storage_dir
            path = "/ipfs/" + gateway.add(b"x" * 1000)
            get = "GET {} HTTP/1.1\r\nHost: x\r\n\r\n".format(path).encode()
            hanging = socket.create_connection((gateway.host, gateway.port), timeout=TIMEOUT)
            dripping = socket.create_connection((gateway.host, gateway.port), timeout=TIMEOUT)
            idle = socket.create_connection((gateway.host, gateway.port), timeout=TIMEOUT)
            try:
                gateway.drip(delay=60)
                dripping.sendall(get)
                self.assertEqual(dripping.recv(100), b"H")  # dripping now
                gateway.hang()
                hanging.sendall(get)
                self.assertTrue(gateway.wait_for_requests(2))  # hanging now
                started = time.monotonic()
                gateway.close()
                self.assertLess(time.monotonic() - started, 2.0)
                self.assertEqual(hanging.recv(100), b"")
                self.assertEqual(dripping.recv(100), b"")
                self.assertEqual(idle.recv(100), b"")
            finally:
                for sock in (hanging, dripping, idle):
                    sock.close()
            gateway.close()  # idempotent
            self.assertFalse(os.path.exists(storage))
            with self.assertRaises(OSError):
                socket.create_connection((gateway.host, gateway.port), timeout=TIMEOUT).close()

    def test_addresses_and_storage_dir(self):
        storage = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, storage)
        with no_leaks(self), LocalGateway(storage_dir=storage) as gateway:
            self.assertEqual(gateway.url, "http://127.0.0.1:{}".format(gateway.port))
            self.assertEqual(gateway.upload_url, gateway.url + "/file/create")
            self.assertEqual(gateway.link("Qmx", "a/b"), gateway.url + "/ipfs/Qmx/a/b")
            cid = gateway.add(b"kept")
        self.assertTrue(os.path.exists(os.path.join(storage, "content", cid)))

    def test_patch_publish(self):
        with LocalGateway() as gateway:
            saved = testing._ipfs._PUBLISH_URL
            with gateway.patch_publish() as url:
                self.assertEqual(testing._ipfs._PUBLISH_URL, url)
                self.assertEqual(url, gateway.upload_url)
            self.assertEqual(testing._ipfs._PUBLISH_URL, saved)
            vendored = types.SimpleNamespace(_PUBLISH_URL="https://example.invalid/file/create")
            with self.assertRaises(KeyError), gateway.patch_publish(vendored):
                self.assertEqual(vendored._PUBLISH_URL, gateway.upload_url)
                raise KeyError("restored even on errors")
            self.assertEqual(vendored._PUBLISH_URL, "https://example.invalid/file/create")

    @unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
    def test_https(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(cert, key)
        client_context = ssl.create_default_context(cafile=cert)
        with no_leaks(self), LocalGateway(ssl_context=server_context) as gateway:
            self.assertTrue(gateway.url.startswith("https://127.0.0.1:"))
            cid = gateway.add(b"secret")
            connection = http.client.HTTPSConnection(
                gateway.host, gateway.port, timeout=TIMEOUT, context=client_context
            )
            try:
                connection.request("GET", "/ipfs/" + cid)
                self.assertEqual(connection.getresponse().read(), b"secret")
            finally:
                connection.close()
            # A client that rejects the certificate leaves the gateway working.
            with self.assertRaises(ssl.SSLError):
                http.client.HTTPSConnection(
                    gateway.host, gateway.port, timeout=TIMEOUT, context=ssl.create_default_context()
                ).request("GET", "/")
            self.assertEqual(gateway.errors, [])

    def test_command_line(self):
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        process = subprocess.Popen(
            [sys.executable, "-m", "ogpu.testing", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            url = process.stdout.readline().decode().strip()
            self.assertRegex(url, r"^http://127\.0\.0\.1:\d+$")
            host, port = url[len("http://") :].split(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
            connection.request("GET", "/ipfs/" + EMPTY_CID)
            self.assertEqual(connection.getresponse().status, 404)
            connection.close()
            process.send_signal(signal.SIGINT)
            self.assertEqual(process.wait(TIMEOUT), 0)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
            process.stderr.close()

    def test_concurrent_uploads_and_fetches(self):
        with no_leaks(self), LocalGateway() as gateway:
            results = {}

            def work(i):
                data = json.dumps({"n": i}).encode()
                status, _, body = upload(gateway, multipart([file_part(data)]))
                self.assertEqual(status, 201)
                link = json.loads(body.decode())["link"]
                results[i] = request(gateway, "GET", link[len(gateway.url) :])[2] == data

            threads = [threading.Thread(target=work, args=(i,)) for i in range(30)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(TIMEOUT)
            self.assertEqual(results, dict.fromkeys(range(30), True))
            self.assertEqual(len(gateway.uploads), 30)
            self.assertEqual(gateway.errors, [])


if __name__ == "__main__":
    unittest.main()

"""CID computation: compute_cid and _DagBuilder against vectors from Kubo and the
UnixFS importer (tests/data/cid_vectors.json, see tests/data/make_vectors.py).

The 45-91 MB vectors take seconds each on older interpreters: they are checked
by tests/big_cid.py, which `make check` runs.
"""

import array
import io
import json
import os
import pathlib
import random
import shutil
import tempfile
import threading
import unittest

from tests.support import ThreadAndFdCheck, content, ipfs

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
DEFAULT_CHUNK = 262144

# The two vectors of the issue, from a real Kubo.
EMPTY_V0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
C262145_V0 = "QmUSjGawaz4ptvREcMKSMJneWCa5j8dAz2wSAAvHtW2rnB"

# Vectors larger than this are fed from a generated stream, never held whole.
_BIG = 4 * 1024 * 1024
_PERIOD = bytes(range(251))
# A multiple of 251 bytes, so back-to-back copies continue content()'s pattern.
_PATTERN_BLOCK = _PERIOD * 4096


def _load_vectors():
    with open(os.path.join(DATA, "cid_vectors.json")) as stream:
        return json.load(stream)


VECTORS = _load_vectors()
SIZED = [v for v in VECTORS if "size" in v]
DEFAULT_SIZED = [v for v in SIZED if v["chunk_size"] == DEFAULT_CHUNK]
SMALL_CHUNK = [v for v in SIZED if v["chunk_size"] != DEFAULT_CHUNK]
HEX = [v for v in VECTORS if "content_hex" in v]


def _pattern_pieces(size):
    """content(size) as a sequence of memoryviews of one ~1 MB buffer."""
    view = memoryview(_PATTERN_BLOCK)
    left = size
    while left:
        take = min(left, len(view))
        yield view[:take]
        left -= take


class _PatternFile(io.RawIOBase):
    """A seekable binary file whose bytes are content(size), made on the fly."""

    def __init__(self, size):
        super().__init__()
        self._size = size
        self._pos = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer):
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        done = 0
        while done < want:
            start = (self._pos + done) % 251
            take = min(want - done, len(_PATTERN_BLOCK) - start)
            view[done : done + take] = _PATTERN_BLOCK[start : start + take]
            done += take
        self._pos += want
        return want


class _NonSeekable(io.RawIOBase):
    """A raw stream over bytes that says it cannot seek (like a pipe)."""

    def __init__(self, data, piece=1000):
        super().__init__()
        self._data = memoryview(data)
        self._piece = piece

    def readable(self):
        return True

    def seekable(self):
        return False

    def readinto(self, buffer):
        n = min(len(buffer), self._piece, len(self._data))
        buffer[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


class _TextLike(object):
    """Not an io.TextIOBase, but read() returns str: still not binary."""

    def __init__(self):
        self._done = False

    def seekable(self):
        return False

    def read(self, size=-1):
        if self._done:
            return ""
        self._done = True
        return "text"


def _built(data, version, chunk_size=DEFAULT_CHUNK, pieces=None):
    builder = ipfs._DagBuilder(version, chunk_size=chunk_size)
    for piece in pieces if pieces is not None else [data]:
        builder.write(piece)
    return str(builder.finish())


class VectorFileTest(unittest.TestCase):
    def test_vector_file(self):
        self.assertGreaterEqual(len(SIZED), 20)
        self.assertTrue(DEFAULT_SIZED)
        self.assertTrue(SMALL_CHUNK)
        self.assertTrue(HEX)
        # The Kubo vectors are among them, so the file agrees with Kubo.
        by_size = {v["size"]: v for v in DEFAULT_SIZED}
        self.assertEqual(by_size[0]["cidv0"], EMPTY_V0)
        self.assertEqual(by_size[262145]["cidv0"], C262145_V0)
        # Sizes at the chunk edge and past one level of 174 links are covered.
        sizes = set(by_size)
        for size in (262143, 262144, 262145, 174 * DEFAULT_CHUNK, 174 * DEFAULT_CHUNK + 1):
            self.assertIn(size, sizes)

    def test_content_helper(self):
        self.assertEqual(content(262145), bytes(i % 251 for i in range(262145)))
        self.assertEqual(b"".join(_pattern_pieces(3 * len(_PATTERN_BLOCK) + 7)),
                         content(3 * len(_PATTERN_BLOCK) + 7))
        stream = _PatternFile(len(_PATTERN_BLOCK) + 300)
        stream.seek(251 * 3 + 5)
        self.assertEqual(stream.read(), content(len(_PATTERN_BLOCK) + 300)[251 * 3 + 5 :])


class SeedVectorTest(unittest.TestCase):
    def test_empty(self):
        self.assertEqual(ipfs.compute_cid(b""), EMPTY_V0)
        self.assertEqual(ipfs.compute_cid(""), EMPTY_V0)

    def test_one_chunk_and_a_byte(self):
        self.assertEqual(ipfs.compute_cid(bytes(i % 251 for i in range(262145))), C262145_V0)


class DefaultChunkVectorTest(unittest.TestCase):
    """Every chunk_size 262144 vector through compute_cid, CIDv0 and CIDv1."""

    def test_small(self):
        cases = [v for v in DEFAULT_SIZED if v["size"] <= _BIG]
        self.assertTrue(cases)
        for vector in cases:
            data = content(vector["size"])
            for version, key in ((0, "cidv0"), (1, "cidv1")):
                with self.subTest(size=vector["size"], version=version):
                    self.assertEqual(ipfs.compute_cid(data, version), vector[key])
                    self.assertEqual(ipfs.compute_cid(data, cid_version=version), vector[key])

    def test_first_size_needing_two_levels(self):
        # 174 full chunks fill one node; one more byte needs a second level.  The
        # other 45-91 MB vectors are in tests/big_cid.py.
        size = 174 * DEFAULT_CHUNK + 1
        (vector,) = [v for v in DEFAULT_SIZED if v["size"] == size]
        self.assertEqual(ipfs.compute_cid(_PatternFile(size)), vector["cidv0"])

    def test_hex(self):
        for vector in HEX:
            data = bytes.fromhex(vector["content_hex"])
            for version, key in ((0, "cidv0"), (1, "cidv1")):
                with self.subTest(content=data, version=version):
                    self.assertEqual(ipfs.compute_cid(data, version), vector[key])


class OtherChunkSizeVectorTest(unittest.TestCase):
    """Vectors made with other fixed chunk sizes (--chunker=size-N), via _DagBuilder."""

    def test_vectors(self):
        self.assertTrue(SMALL_CHUNK)
        for vector in SMALL_CHUNK:
            data = content(vector["size"])
            for version, key in ((0, "cidv0"), (1, "cidv1")):
                with self.subTest(size=vector["size"], chunk=vector["chunk_size"], version=version):
                    self.assertEqual(_built(data, version, vector["chunk_size"]), vector[key])

    def test_default_chunk_vectors_through_the_builder(self):
        cases = [v for v in DEFAULT_SIZED if v["size"] <= _BIG]
        for vector in cases:
            for version, key in ((0, "cidv0"), (1, "cidv1")):
                with self.subTest(size=vector["size"], version=version):
                    pieces = _pattern_pieces(vector["size"])
                    self.assertEqual(_built(None, version, pieces=pieces), vector[key])


class DataTypeTest(ThreadAndFdCheck, unittest.TestCase):
    """What compute_cid accepts: the same types publish_to_ipfs does."""

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="ogpu-test-cid-")
        self.addCleanup(shutil.rmtree, self.tmp)

    def _file(self, data):
        path = os.path.join(self.tmp, "content.bin")
        with open(path, "wb") as stream:
            stream.write(data)
        return path

    def test_dict_is_hashed_as_published(self):
        for document in ({"result": "cat", "confidence": 0.97}, {"x": 1}, {},
                         {"name": "caf\u00e9 \u732b", "nested": {"a": [1, 2.5, None, True]}}):
            with self.subTest(document=document):
                expected = ipfs.compute_cid(json.dumps(document).encode("utf-8"))
                self.assertEqual(ipfs.compute_cid(document), expected)
                self.assertEqual(ipfs.compute_cid(document, 1),
                                 ipfs.compute_cid(json.dumps(document).encode("utf-8"), 1))

    def test_dict_vectors(self):
        # content_hex vectors that are the json.dumps of a dict.
        by_bytes = {bytes.fromhex(v["content_hex"]): v for v in HEX}
        for document in ({"x": 1}, {"result": "cat", "confidence": 0.97}):
            with self.subTest(document=document):
                vector = by_bytes[json.dumps(document).encode("utf-8")]
                self.assertEqual(ipfs.compute_cid(document), vector["cidv0"])
                self.assertEqual(ipfs.compute_cid(document, 1), vector["cidv1"])

    def test_str_is_utf8(self):
        self.assertEqual(ipfs.compute_cid("hello world\n"), "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
        text = "\u732b caf\u00e9 \U0001f600"
        self.assertEqual(ipfs.compute_cid(text), ipfs.compute_cid(text.encode("utf-8")))
        self.assertNotEqual(ipfs.compute_cid(text), ipfs.compute_cid(text.encode("utf-16")))

    def test_bytes_like(self):
        data = content(300000)
        expected = "QmWU4cq12z1Fq8kiWASSMzcpsxbQpY74z1X2koCz2TUnaU"
        self.assertEqual(ipfs.compute_cid(data), expected)
        self.assertEqual(ipfs.compute_cid(bytearray(data)), expected)
        self.assertEqual(ipfs.compute_cid(memoryview(data)), expected)
        self.assertEqual(ipfs.compute_cid(memoryview(b"xx" + data)[2:]), expected)

    def test_memoryview_of_wider_items(self):
        words = array.array("H", range(1000))
        self.assertEqual(ipfs.compute_cid(memoryview(words)), ipfs.compute_cid(words.tobytes()))

    def test_path(self):
        data = content(262145)
        path = self._file(data)
        self.assertEqual(ipfs.compute_cid(pathlib.Path(path)), C262145_V0)

        class Custom(os.PathLike):
            def __fspath__(self):
                return path

        self.assertEqual(ipfs.compute_cid(Custom()), C262145_V0)
        self.assertEqual(ipfs.compute_cid(pathlib.Path(self._file(b""))), EMPTY_V0)

    def test_str_is_content_not_a_path(self):
        path = self._file(b"not these bytes")
        self.assertEqual(ipfs.compute_cid(path), ipfs.compute_cid(path.encode("utf-8")))

    def test_missing_path(self):
        with self.assertRaises(FileNotFoundError):
            ipfs.compute_cid(pathlib.Path(self.tmp, "missing"))

    def test_binary_file(self):
        path = self._file(content(262145))
        with open(path, "rb") as stream:
            self.assertEqual(ipfs.compute_cid(stream), C262145_V0)
            self.assertFalse(stream.closed)
        with open(path, "rb", buffering=0) as stream:
            self.assertEqual(ipfs.compute_cid(stream), C262145_V0)
        self.assertEqual(ipfs.compute_cid(io.BytesIO(content(262145))), C262145_V0)

    def test_file_object_from_its_position(self):
        stream = io.BytesIO(b"skip me:" + content(1000))
        stream.seek(8)
        self.assertEqual(ipfs.compute_cid(stream), "QmPeaZux8qE8eZibqtC1v6h1pBFvVBz2YkSAdwU8VBXJNR")

    def test_pipe(self):
        data = content(700000)
        read_fd, write_fd = os.pipe()
        reader = open(read_fd, "rb", buffering=0)  # noqa: SIM115 -- closed by the cleanup
        self.addCleanup(reader.close)
        self.assertFalse(reader.seekable())

        def write():
            with open(write_fd, "wb") as writer:
                writer.write(data)

        thread = threading.Thread(target=write, name="pipe-writer")
        thread.start()
        try:
            got = ipfs.compute_cid(reader)
        finally:
            thread.join(30)
        self.assertFalse(thread.is_alive())
        self.assertEqual(got, ipfs.compute_cid(data))

    def test_non_seekable_stream(self):
        data = content(524289)
        stream = io.BufferedReader(_NonSeekable(data))
        self.assertFalse(stream.seekable())
        self.assertEqual(ipfs.compute_cid(stream), "QmePkCgTbAcZgGDqVBd5SVyL7mRdv5ctvdmkCZSoercCej")
        stream = io.BufferedReader(_NonSeekable(data))
        self.assertEqual(
            ipfs.compute_cid(stream, 1), "bafybeib2ym6g3qle2co2mwlypyzu65jqcpnkt5r7i7dijhq5echor6grza"
        )
        self.assertEqual(ipfs.compute_cid(io.BufferedReader(_NonSeekable(b""))), EMPTY_V0)


class DataTypeBadTest(ThreadAndFdCheck, unittest.TestCase):
    def test_unsupported_types(self):
        for data in (1, 1.5, None, [1, 2], (b"a",), {b"a"}, object(), True):
            with self.subTest(data=data):
                with self.assertRaises(TypeError):
                    ipfs.compute_cid(data)

    def test_text_files(self):
        with self.assertRaises(TypeError):
            ipfs.compute_cid(io.StringIO("text"))
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "t.txt")
            with open(path, "w") as stream:
                stream.write("text")
            with open(path) as stream:
                with self.assertRaises(TypeError):
                    ipfs.compute_cid(stream)
        with self.assertRaises(TypeError):
            ipfs.compute_cid(_TextLike())

    def test_bad_version(self):
        for version in (2, -1, 3):
            with self.subTest(version=version):
                with self.assertRaises(ValueError):
                    ipfs.compute_cid(b"x", version)
                with self.assertRaises(ValueError):
                    ipfs.compute_cid(b"x", cid_version=version)

    def test_bad_version_is_checked_before_the_data(self):
        with self.assertRaises(ValueError):
            ipfs.compute_cid(object(), 2)


class DagBuilderTest(unittest.TestCase):
    def test_split_writes_give_the_same_cid(self):
        rng = random.Random(20240601)
        cases = [(0, 1000, 64), (1, 1000, 64), (0, 70000, 1024), (1, 70000, 1024),
                 (0, 600000, DEFAULT_CHUNK), (1, 600000, DEFAULT_CHUNK), (0, 0, 1024)]
        for version, size, chunk in cases:
            data = content(size)
            whole = _built(data, version, chunk)
            for trial in range(4):
                with self.subTest(version=version, size=size, chunk=chunk, trial=trial):
                    pieces = []
                    pos = 0
                    while pos < size:
                        step = rng.choice((0, 1, 2, chunk - 1, chunk, chunk + 1, rng.randint(1, 3 * chunk)))
                        piece = data[pos : pos + step]
                        pieces.append(rng.choice((bytes, bytearray, memoryview))(piece))
                        pos += step
                    pieces.append(b"")
                    self.assertEqual(_built(None, version, chunk, pieces), whole)

    def test_byte_at_a_time(self):
        data = content(3000)
        self.assertEqual(_built(None, 0, 256, [data[i : i + 1] for i in range(len(data))]),
                         _built(data, 0, 256))

    def test_size_and_finish(self):
        builder = ipfs._DagBuilder(0)
        self.assertEqual(builder.size, 0)
        builder.write(b"abc")
        builder.write(bytearray(b"de"))
        self.assertEqual(builder.size, 5)
        root = builder.finish()
        self.assertEqual(str(root), ipfs.compute_cid(b"abcde"))
        self.assertIs(builder.finish(), root)  # finishing again gives the same root
        with self.assertRaises(ValueError):
            builder.write(b"more")

    def test_bad_arguments(self):
        for kwargs in ({"cid_version": 2}, {"chunk_size": 0}, {"max_links": 1}):
            with self.subTest(kwargs=kwargs):
                with self.assertRaises(ValueError):
                    ipfs._DagBuilder(**kwargs)


class OnBlockTest(unittest.TestCase):
    """on_block receives every block, each matching its CID, children first, root last."""

    def _collect(self, data, version, chunk, max_links=174, pieces=None):
        blocks = []

        def on_block(cid, block):
            self.assertIsInstance(block, bytes)
            blocks.append((cid, block))

        builder = ipfs._DagBuilder(version, chunk_size=chunk, max_links=max_links, on_block=on_block)
        for piece in pieces if pieces is not None else [data]:
            builder.write(piece)
        root = builder.finish()
        return root, blocks

    def _walk(self, cid, by_cid, seen_before):
        """Reassemble the file below ``cid``; check post-order on the way."""
        block = by_cid[cid]
        if cid.codec == 0x55:
            return block
        links, data = ipfs._decode_pbnode(block)
        unixfs = ipfs._decode_unixfs(data)
        self.assertEqual(unixfs.type, 2)  # File
        if not links:
            return unixfs.data
        self.assertEqual(unixfs.data, b"")
        self.assertEqual(len(unixfs.blocksizes), len(links))
        parts = []
        for link, size in zip(links, unixfs.blocksizes):
            self.assertLess(seen_before[link.cid], seen_before[cid], "child after parent")
            part = self._walk(link.cid, by_cid, seen_before)
            self.assertEqual(len(part), size)
            parts.append(part)
        joined = b"".join(parts)
        self.assertEqual(unixfs.filesize, len(joined))
        return joined

    def test_blocks(self):
        cases = [
            (0, 0, 1024, 174), (1, 0, 1024, 174), (0, 1, 1024, 174), (1, 1, 1024, 174),
            (0, 1024, 1024, 174), (0, 1025, 1024, 174),
            (0, 174 * 1024, 1024, 174), (1, 174 * 1024 + 1, 1024, 174),
            (0, 175 * 1024 + 5, 1024, 174), (1, 175 * 1024 + 5, 1024, 174),
            (0, 1000, 10, 3), (1, 1000, 10, 3), (0, 600000, DEFAULT_CHUNK, 174),
        ]
        for version, size, chunk, max_links in cases:
            with self.subTest(version=version, size=size, chunk=chunk, max_links=max_links):
                data = content(size)
                root, blocks = self._collect(data, version, chunk, max_links)
                self.assertTrue(blocks)
                self.assertEqual(blocks[-1][0], root)  # the root comes last
                for cid, block in blocks:
                    self.assertTrue(cid.check(block))
                    self.assertEqual(ipfs._Cid.for_block(block, cid.codec, cid.version), cid)
                    self.assertEqual(cid.version, version)
                by_cid = dict(blocks)
                order = {cid: i for i, (cid, _) in enumerate(blocks)}
                self.assertEqual(self._walk(root, by_cid, order), data)
                # One leaf block per chunk (identical chunks are delivered each time).
                leaves = [
                    cid for cid, block in blocks if cid.codec == 0x55 or not ipfs._decode_pbnode(block)[0]
                ]
                self.assertEqual(len(leaves), max(1, -(-size // chunk)))

    def test_single_chunk_is_the_root(self):
        root, blocks = self._collect(b"hello world\n", 0, DEFAULT_CHUNK)
        self.assertEqual(len(blocks), 1)
        self.assertEqual(str(root), "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
        root, blocks = self._collect(b"hello world\n", 1, DEFAULT_CHUNK)
        self.assertEqual(blocks, [(root, b"hello world\n")])  # a raw leaf is the chunk itself

    def test_same_blocks_however_split(self):
        data = content(50000)
        _, whole = self._collect(data, 0, 1000, 5)
        pieces = [data[i : i + 777] for i in range(0, len(data), 777)]
        _, split = self._collect(None, 0, 1000, 5, pieces)
        self.assertEqual(split, whole)


if __name__ == "__main__":
    unittest.main()

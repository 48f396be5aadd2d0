"""Tests of the I/O-free verification engine: CAR reader, file walker, glue.

Everything here feeds bytes in and reads bytes out; the HTTP side of trustless
fetching is tested elsewhere.  DAGs come from ``ipfs._DagBuilder`` with tiny
chunks and fan-out (so a few KiB make a tree several levels deep), CARs from a
writer below that follows the CARv1 spec, and real CARs from
``tests/data/car/`` (made by Kubo's importer; see tests/data/make_vectors.py).
"""

import importlib
import json
import os
import random
import tempfile
import unittest

from tests.support import content, ipfs, no_leaks

# The engine is written as ogpu/_verify_draft.py and then becomes a section of
# the module; prefer the module under test as soon as it has the engine.
if hasattr(ipfs, "_FileWalker"):
    engine = core = ipfs
else:  # pragma: no cover - only until the draft is spliced in
    try:
        engine = importlib.import_module("ogpu._verify_draft")
    except ImportError:
        raise unittest.SkipTest("the verification engine is not in the module yet") from None
    core = importlib.import_module("ogpu.ipfs")

VerificationError = core.IPFSVerificationError
DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "car")


# -- building DAGs and CARs ----------------------------------------------------


def build(data, version=0, chunk_size=100, max_links=4):
    """Return ``(root, store)`` for ``data``; ``store`` maps each CID to its block."""
    store = {}
    builder = core._DagBuilder(version, chunk_size, max_links, on_block=store.__setitem__)
    builder.write(data)
    return builder.finish(), store


def dfs(root, store, dups=True):
    """The blocks of a DAG in DFS pre-order, as a trustless gateway sends them."""
    out, seen, stack = [], set(), [root]
    while stack:
        cid = stack.pop()
        if cid.hash_code == core._HASH_IDENTITY or (not dups and cid in seen):
            continue
        seen.add(cid)
        block = store[cid]
        out.append((cid, block))
        if cid.codec == core._CODEC_DAG_PB:
            stack.extend(link.cid for link in reversed(core._decode_pbnode(block)[0]))
    return out


def cbor_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * width):
            return bytes([major << 5 | info]) + n.to_bytes(width, "big")
    raise ValueError(n)


def cbor_text(text):
    raw = text.encode()
    return cbor_head(3, len(raw)) + raw


def cbor_cid(cid):
    raw = b"\0" + cid.to_bytes()
    return cbor_head(6, 42) + cbor_head(2, len(raw)) + raw


def car_header(roots, version=1):
    """varint | dag-cbor {"roots": [...], "version": n}, keys in dag-cbor order."""
    body = cbor_head(5, 2) + cbor_text("roots") + cbor_head(4, len(roots))
    body += b"".join(cbor_cid(root) for root in roots)
    body += cbor_text("version") + cbor_head(0, version)
    return core._varint_encode(len(body)) + body


def car_section(cid, block):
    raw = cid.to_bytes()
    return core._varint_encode(len(raw) + len(block)) + raw + block


def make_car(roots, blocks):
    return car_header(roots) + b"".join(car_section(cid, block) for cid, block in blocks)


def car_of(data, version=0, dups=True, **options):
    root, store = build(data, version, **options)
    return root, make_car([root], dfs(root, store, dups))


def pieces(data, size):
    return [data[i : i + size] for i in range(0, len(data), size)]


def verify_car(root, car, path=(), piece=4096, **limits):
    out = []
    size = engine._verify_car_stream(root, path, pieces(car, piece), out.append, **limits)
    data = b"".join(out)
    assert size == len(data)
    return data


def verify_blocks(root, store, path=(), **limits):
    out = []
    size = engine._verify_by_blocks(root, path, store.__getitem__, out.append, **limits)
    data = b"".join(out)
    assert size == len(data)
    return data


def pb_link(cid, name, tsize=0):
    body = core._pb_bytes(1, cid.to_bytes()) + core._pb_bytes(2, name.encode()) + core._pb_uint(3, tsize)
    return core._pb_bytes(2, body)


def pb_node(links, unixfs):
    """A dag-pb block: links (already encoded) first, then Data, as the spec orders them."""
    return b"".join(links) + core._pb_bytes(1, unixfs)


def add_block(store, block, version=0):
    cid = core._Cid.for_block(block, core._CODEC_DAG_PB, version)
    store[cid] = block
    return cid


def directory(store, entries, unixfs=b"\x08\x01"):
    """A plain UnixFS directory (Type 1) over ``{name: cid}``, links sorted by name."""
    links = [pb_link(cid, name) for name, cid in sorted(entries.items())]
    return add_block(store, pb_node(links, unixfs))


def file_node(store, children, data=b"", filesize=None, blocksizes=None):
    """A UnixFS File node over ``[(cid, size)]`` with optionally wrong sizes."""
    sizes = [size for _, size in children] if blocksizes is None else blocksizes
    if filesize is None:
        filesize = len(data) + sum(sizes)
    unixfs = b"\x08\x02" + (core._pb_bytes(2, data) if data else b"") + core._pb_uint(3, filesize)
    unixfs += b"".join(core._pb_uint(4, size) for size in sizes)
    return add_block(store, pb_node([pb_link(cid, "") for cid, _ in children], unixfs))


def raw_leaf(store, data):
    cid = core._Cid.for_block(data, core._CODEC_RAW, 1)
    store[cid] = data
    return cid


# -- good input ---------------------------------------------------------------


class ReassemblyTest(unittest.TestCase):
    SIZES = [0, 1, 99, 100, 101, 399, 400, 401, 1600, 1601, 5000]

    def test_car_reassembles_exactly(self):
        self.assertTrue(self.SIZES)
        for version in (0, 1):
            for size in self.SIZES:
                with self.subTest(version=version, size=size):
                    data = content(size)
                    root, car = car_of(data, version)
                    self.assertEqual(verify_car(root, car), data)

    def test_any_piece_size(self):
        data = content(1601)
        root, car = car_of(data, 1)
        for piece in (1, 2, 3, 7, 64, 1000, len(car)):
            with self.subTest(piece=piece):
                self.assertEqual(verify_car(root, car, piece=piece), data)

    def test_by_blocks(self):
        for version in (0, 1):
            for size in self.SIZES:
                with self.subTest(version=version, size=size):
                    data = content(size)
                    root, store = build(data, version)
                    self.assertEqual(verify_blocks(root, store), data)

    def test_deep_tree(self):
        data = content(20000)  # 200 leaves, 2 links per node: 8 levels
        root, store = build(data, 0, 100, 2)
        self.assertEqual(verify_car(root, make_car([root], dfs(root, store))), data)

    def test_default_chunker(self):
        data = content(262144 * 2 + 1)
        root, store = build(data, 0, core._CHUNK_SIZE, core._MAX_LINKS)
        self.assertEqual(verify_car(root, make_car([root], dfs(root, store)), piece=65536), data)

    def test_walker_counts(self):
        data = content(1000)
        root, store = build(data, 1)
        out = []
        walker = engine._FileWalker(root, (), out.append)
        blocks = dfs(root, store)
        for cid, block in blocks:
            self.assertEqual(walker.needed(), cid)
            walker.offer(cid, block)
        self.assertIsNone(walker.needed())
        self.assertEqual(walker.finish(), 1000)
        self.assertEqual(walker.received, sum(len(block) for _, block in blocks))
        self.assertEqual(walker.filesize, 1000)
        walker.close()  # idempotent


class ReorderedTest(unittest.TestCase):
    def test_duplicates_and_repeated_content(self):
        data = bytes(3000) + content(250) + bytes(2000)  # all-zero chunks repeat
        for version in (0, 1):
            root, store = build(data, version)
            for dups in (True, False):
                with self.subTest(version=version, dups=dups):
                    blocks = dfs(root, store, dups)
                    self.assertEqual(verify_car(root, make_car([root], blocks)), data)
                    self.assertEqual(verify_blocks(root, store), data)

    def test_far_repeat_without_duplicates(self):
        # Leaf 0 comes back as leaf 15, under another parent: a dups=n CAR
        # sends it once, before the walk can know it is needed again.
        chunk = b"R" * 100
        data = chunk + content(1400) + chunk
        root, store = build(data)
        car = make_car([root], dfs(root, store, dups=False))
        with self.assertRaises(VerificationError) as caught:
            verify_car(root, car)
        self.assertIn("missing block", caught.exception.reason)
        fetched = []

        def get_block(cid):
            fetched.append(cid)
            return store[cid]

        out = []
        self.assertEqual(engine._verify_car_stream(root, (), [car], out.append, get_block), len(data))
        self.assertEqual(b"".join(out), data)
        self.assertEqual(len(fetched), 1)

    def test_every_block_sent_twice(self):
        data = content(1601)
        root, store = build(data)
        blocks = [pair for pair in dfs(root, store) for _ in range(2)]
        self.assertEqual(verify_car(root, make_car([root], blocks)), data)

    def test_reversed_leaves(self):
        data = content(1601)
        for version in (0, 1):
            with self.subTest(version=version):
                root, store = build(data, version)
                blocks = dfs(root, store)
                nodes = [
                    (cid, block)
                    for cid, block in blocks
                    if cid.codec == core._CODEC_DAG_PB and core._decode_pbnode(block)[0]
                ]
                leaves = [pair for pair in blocks if pair not in nodes]
                self.assertEqual(verify_car(root, make_car([root], nodes + leaves[::-1])), data)

    def test_children_before_parents(self):
        # _DagBuilder's own order: post-order, the root last.
        data = content(1601)
        root, store = build(data)
        self.assertEqual(verify_car(root, make_car([root], list(store.items()))), data)

    def test_spool_used_and_cleaned(self):
        data = content(5000)
        root, store = build(data)
        blocks = dfs(root, store)[::-1]  # everything waits for the root, which comes last
        self.assertGreater(sum(len(block) for _, block in blocks), 3000 * 2)
        with tempfile.TemporaryDirectory() as spool_dir, no_leaks(self):
            got = verify_car(root, make_car([root], blocks), buffer_limit=3000, spool_dir=spool_dir)
            self.assertEqual(got, data)
            self.assertEqual(os.listdir(spool_dir), [])

    def test_buffer_is_bounded(self):
        data = content(5000)
        root, store = build(data)
        car = make_car([root], dfs(root, store)[::-1])
        with tempfile.TemporaryDirectory() as spool_dir, no_leaks(self):
            with self.assertRaises(VerificationError) as caught:
                verify_car(root, car, buffer_limit=500, spool_dir=spool_dir)
            self.assertIn("out of order", caught.exception.reason)

    def test_foreign_blocks_tolerated(self):
        data = content(1601)
        root, store = build(data)
        other_root, other = build(content(700)[::-1], 1)
        blocks = dfs(root, store)
        mixed = list(other.items())[:3] + blocks[:5] + list(other.items())[3:] + blocks[5:]
        mixed += list(other.items())  # trailing surplus after completion
        self.assertEqual(verify_car(root, make_car([other_root], mixed)), data)

    def test_flood_is_bounded_by_max_bytes(self):
        data = content(1000)
        root, store = build(data)
        _, other = build(content(1200000)[::-1], 1, 65536, 8)  # over 2 * 10000 + 1 MiB
        car = make_car([root], list(other.items()) + dfs(root, store))
        with self.assertRaises(VerificationError) as caught:
            verify_car(root, car, max_bytes=10000)
        self.assertIn("received", caught.exception.reason)
        self.assertEqual(verify_car(root, car), data)

    def test_roots_are_not_trusted(self):
        data = content(1601)
        root, store = build(data)
        blocks = dfs(root, store)
        other_root, _ = build(b"something else")
        for roots in ([], [other_root], [other_root, root]):
            with self.subTest(roots=roots):
                self.assertEqual(verify_car(root, make_car(roots, blocks)), data)
        with self.assertRaises(VerificationError):
            verify_car(other_root, make_car([other_root], blocks))


class SpecialCidTest(unittest.TestCase):
    def test_identity_root(self):
        data = b'{"x": 1}'
        root = core._Cid(1, core._CODEC_RAW, core._HASH_IDENTITY, data)
        self.assertEqual(verify_car(root, car_header([root])), data)
        self.assertEqual(verify_car(root, make_car([root], [(root, data)])), data)
        self.assertEqual(verify_blocks(root, {}), data)

    def test_identity_leaf_in_file(self):
        store = {}
        inline = core._Cid(1, core._CODEC_RAW, core._HASH_IDENTITY, b"abc")
        leaf = raw_leaf(store, b"defg")
        root = file_node(store, [(inline, 3), (leaf, 4)])
        self.assertEqual(verify_blocks(root, store), b"abcdefg")

    def test_node_with_own_data_first(self):
        store = {}
        leaf = raw_leaf(store, b"world")
        root = file_node(store, [(leaf, 5)], data=b"hello ")
        self.assertEqual(verify_blocks(root, store), b"hello world")

    def test_unsupported_cids(self):
        sha = core._HASH_SHA2_256
        cases = [
            (core._Cid(1, 0x71, sha, bytes(32)), "unsupported codec 0x71"),
            (core._Cid(1, core._CODEC_RAW, 0x13, bytes(64)), "unsupported multihash code 0x13"),
        ]
        for cid, reason in cases:
            with self.subTest(reason=reason):
                with self.assertRaises(VerificationError) as caught:
                    verify_car(cid, car_header([cid]))
                self.assertIn(reason, caught.exception.reason)
                store = {}
                root = file_node(store, [(cid, 1)])
                with self.assertRaises(VerificationError) as caught:
                    verify_blocks(root, store)
                self.assertIn(reason, caught.exception.reason)


class PathTest(unittest.TestCase):
    def setUp(self):
        self.store = {}
        self.data_a = content(1601)
        self.a, blocks = build(self.data_a)
        self.store.update(blocks)
        self.b = raw_leaf(self.store, b"bee")
        self.sub = directory(self.store, {"b.bin": self.b})
        self.root = directory(self.store, {"a.txt": self.a, "sub": self.sub, "z": self.b})

    def test_paths(self):
        for path, expected in ((["a.txt"], self.data_a), (["sub", "b.bin"], b"bee"), (["z"], b"bee")):
            with self.subTest(path=path):
                car = make_car([self.root], dfs(self.root, self.store))
                self.assertEqual(verify_car(self.root, car, path), expected)
                self.assertEqual(verify_blocks(self.root, self.store, path), expected)

    def test_path_errors(self):
        hamt = directory(self.store, {"x": self.b}, unixfs=b"\x08\x05" + core._pb_uint(6, 256))
        top = directory(self.store, {"d": self.root, "h": hamt})
        cases = [
            (["nope"], "no link named 'nope'"),
            (["sub", "nope"], "no link named 'nope'"),
            (["sub"], "is a directory, not a file"),
            ([], "is a directory, not a file"),
            (["z", "more"], "z is not a directory"),
            (["a.txt", "more"], "a.txt is not a directory"),
            (["h", "x"], "HAMT-sharded directories are not supported"),
            (["d", ".."], "invalid path segment"),
            (["x"] * (core._MAX_PATH_DEPTH + 1), "path deeper than"),
        ]
        for path, reason in cases:
            with self.subTest(path=path):
                with self.assertRaises(VerificationError) as caught:
                    verify_blocks(top if path[:1] in (["h"], ["d"]) else self.root, self.store, path)
                self.assertIn(reason, caught.exception.reason)


class SizeAndLimitTest(unittest.TestCase):
    def test_wrong_sizes(self):
        store = {}
        leaf = raw_leaf(store, b"12345")
        leaf_node = file_node(store, [], data=b"12345")
        cases = [
            (
                file_node(store, [(leaf, 5)], filesize=6),
                "reassembled size 5 disagrees with UnixFS filesize 6",
            ),
            (file_node(store, [(leaf, 4)]), "holds 5 bytes but its parent's blocksizes say 4"),
            (file_node(store, [(leaf_node, 6)]), "holds 5 bytes but its parent's blocksizes say 6"),
            (file_node(store, [(leaf, 5)], blocksizes=[]), "1 links but 0 blocksizes"),
            (file_node(store, [(leaf, 5)], blocksizes=[5, 0]), "1 links but 2 blocksizes"),
        ]
        for root, reason in cases:
            with self.subTest(reason=reason):
                with self.assertRaises(VerificationError) as caught:
                    verify_blocks(root, store)
                self.assertIn(reason, caught.exception.reason)

    def test_other_unixfs_types(self):
        store = {}
        symlink = add_block(store, pb_node([], b"\x08\x04\x12\x01x"))
        no_data = add_block(store, b"")
        for root, reason in ((symlink, "type 4, not a file"), (no_data, "has no UnixFS data")):
            with self.subTest(reason=reason), self.assertRaises(VerificationError) as caught:
                verify_blocks(root, store)
            self.assertIn(reason, caught.exception.reason)

    def test_too_deep(self):
        store = {}
        cid, size = raw_leaf(store, b"x"), 1
        for _ in range(engine._MAX_DAG_DEPTH):
            cid = file_node(store, [(cid, size)])
        self.assertEqual(verify_blocks(cid, store), b"x")
        cid = file_node(store, [(cid, size)])
        with self.assertRaises(VerificationError) as caught:
            verify_blocks(cid, store)
        self.assertIn("deeper than", caught.exception.reason)

    def test_max_bytes(self):
        data = content(1601)
        root, store = build(data)
        car = make_car([root], dfs(root, store))
        self.assertEqual(verify_car(root, car, max_bytes=1601), data)
        out = []
        with self.assertRaises(engine._TooLarge) as caught:
            engine._verify_car_stream(root, (), [car], out.append, max_bytes=1600)
        self.assertEqual(caught.exception.size, 1601)
        self.assertEqual(out, [])  # the root's filesize says so before any byte

    def test_root_understating_its_size(self):
        # Sizes are checked node by node, so a root cannot declare less than it links to.
        store = {}
        leaf = raw_leaf(store, b"x" * 50)
        out = []
        for root in (file_node(store, [(leaf, 50)], filesize=10), file_node(store, [(leaf, 10)])):
            with self.subTest(root=root), self.assertRaises(VerificationError):
                engine._verify_by_blocks(root, (), store.__getitem__, out.append, max_bytes=10)
        self.assertEqual(out, [])


# -- bad input ----------------------------------------------------------------


def outcome(root, car, data):
    """'ok' when ``car`` reassembles to ``data``, 'error' on IPFSVerificationError."""
    try:
        got = verify_car(root, car, piece=97)
    except VerificationError:
        return "error"
    if got != data:
        raise AssertionError("wrong bytes returned")
    return "ok"


class TamperTest(unittest.TestCase):
    def setUp(self):
        self.data = content(1201)  # 13 leaves under 4 nodes under the root
        self.root, store = build(self.data)
        self.blocks = dfs(self.root, store)
        self.car = make_car([self.root], self.blocks)

    def block_data_offsets(self):
        """Offsets in self.car of every byte of every block (not CIDs, not lengths)."""
        pos = len(car_header([self.root]))
        offsets = []
        for cid, block in self.blocks:
            start = pos + len(car_section(cid, block)) - len(block)
            offsets.extend(range(start, start + len(block)))
            pos += len(car_section(cid, block))
        self.assertEqual(pos, len(self.car))
        return offsets

    def test_every_flip_in_block_data_is_caught(self):
        offsets = self.block_data_offsets()
        self.assertGreater(len(offsets), 1000)
        for offset in offsets:
            mask = 1 << offset % 8  # every bit position, across neighbouring offsets
            car = bytearray(self.car)
            car[offset] ^= mask
            with self.subTest(offset=offset, mask=mask):
                self.assertEqual(outcome(self.root, bytes(car), self.data), "error")

    def test_any_flip_never_yields_wrong_bytes(self):
        header_len = len(car_header([self.root]))
        results = {}
        for offset in range(len(self.car)):
            car = bytearray(self.car)
            car[offset] ^= 0x10
            with self.subTest(offset=offset):
                results[offset] = outcome(self.root, bytes(car), self.data)
        # Only a flip in the untrusted roots can be harmless.
        harmless = [offset for offset, result in results.items() if result == "ok"]
        self.assertTrue(all(offset < header_len for offset in harmless), harmless)

    def test_dropped_block(self):
        for index in range(len(self.blocks)):
            blocks = self.blocks[:index] + self.blocks[index + 1 :]
            with self.subTest(index=index):
                with self.assertRaises(VerificationError) as caught:
                    verify_car(self.root, make_car([self.root], blocks))
                self.assertIn("missing block " + str(self.blocks[index][0]), caught.exception.reason)

    def test_truncated_anywhere(self):
        for end in range(len(self.car)):
            with self.subTest(end=end):
                self.assertEqual(outcome(self.root, self.car[:end], self.data), "error")

    def test_block_swapped_for_another(self):
        cid, _ = self.blocks[3]
        blocks = list(self.blocks)
        blocks[3] = (cid, self.blocks[4][1])
        with self.assertRaises(VerificationError) as caught:
            verify_car(self.root, make_car([self.root], blocks))
        self.assertEqual(caught.exception.reason, "block {} does not match its hash".format(cid))


class CarFormatTest(unittest.TestCase):
    def reason(self, car):
        reader = engine._CarReader()
        with self.assertRaises(VerificationError) as caught:
            reader.feed(car)
            reader.finish()
        return caught.exception.reason

    def test_good_header(self):
        root, _ = build(b"x")
        reader = engine._CarReader()
        self.assertEqual(reader.feed(car_header([root, root])), [])
        reader.finish()
        self.assertEqual(reader.roots, [root, root])

    def test_bad_frames(self):
        root, _ = build(b"x")
        header = car_header([root])
        big = core._MAX_BLOCK_SIZE + 1
        over = core._varint_encode(big + 34) + root.to_bytes() + bytes(big)
        cases = [
            (b"", "before its header"),
            (header[:-1], "before its header"),
            (header + b"\x00", "empty CAR section"),
            (header + b"\x05ab", "truncated inside a block"),
            (header + b"\x80", "truncated inside a block"),
            (header + b"\xff" * 10, "varint longer"),
            (header + b"\x80\x00", "non-minimal varint"),
            (header + core._varint_encode(1 << 40), "block over 2 MiB"),
            (header + over, "block over 2 MiB"),
            (header + b"\x03\x01\x55\x00", "truncated"),  # CID runs past its section
            (core._varint_encode(core._MAX_CAR_HEADER + 1), "CAR header of"),
        ]
        for car, reason in cases:
            with self.subTest(reason=reason, car=car[:50]):
                self.assertIn(reason, self.reason(car))

    def test_bad_headers(self):
        root, _ = build(b"x")

        def frame(body):
            return core._varint_encode(len(body)) + body

        roots = cbor_text("roots") + cbor_head(4, 1) + cbor_cid(root)
        version = cbor_text("version") + cbor_head(0, 1)
        cases = [
            (cbor_head(5, 1) + version, "roots are not a list"),
            (cbor_head(5, 1) + roots, "unsupported CAR version None"),
            (cbor_head(5, 2) + roots + cbor_text("version") + cbor_head(0, 2), "unsupported CAR version 2"),
            (cbor_head(5, 2) + roots + version + b"\x00", "trailing bytes"),
            (cbor_head(5, 2) + roots + cbor_text("roots") + b"\x80", "duplicate key"),
            (cbor_head(4, 0), "not a map"),
            (b"\xbf", "unsupported CBOR length"),  # indefinite map
            (b"\xb8\x01" + roots, "non-minimal CBOR integer"),
            (b"\xb9\x00\x02", "non-minimal CBOR integer"),
            (cbor_head(5, 1) + cbor_head(0, 1) + cbor_head(0, 1), "key in CAR header is not a string"),
            (cbor_head(5, 1) + b"\x63a\xff\xfe" + b"\x01", "not UTF-8"),
            (cbor_head(5, 1) + cbor_text("roots") + b"\x81\xd8\x2a\x42\x01\x02", "0x00-prefixed"),
            (cbor_head(5, 1) + cbor_text("roots") + b"\x81\xd8\x2b\x41\x00", "major type 6"),
            (cbor_head(5, 1) + cbor_text("x") + b"\xf5", "major type 7"),
            (cbor_head(5, 1) + cbor_text("x") + b"\x20", "major type 1"),
            (cbor_head(5, 1) + cbor_text("x") + b"\x81" * 40 + b"\x00", "nested too deeply"),
            (cbor_head(5, 1) + cbor_text("x") + b"\x9b" + b"\xff" * 8, "truncated CBOR array"),
            (cbor_head(5, 1) + cbor_text("x") + b"\x5b" + b"\xff" * 8, "truncated CBOR string"),
            (cbor_head(5, 1) + cbor_text("x") + b"\xbb" + b"\xff" * 8, "truncated CBOR map"),
            (cbor_head(5, 1) + cbor_text("x") + b"\x19\x01", "truncated CBOR"),
        ]
        for body, reason in cases:
            with self.subTest(reason=reason, body=body[:40]):
                self.assertIn(reason, self.reason(frame(body)))

    def test_block_limit_exactly(self):
        block = bytes(core._MAX_BLOCK_SIZE)
        cid = core._Cid.for_block(block, core._CODEC_RAW, 1)
        reader = engine._CarReader()
        got = reader.feed(make_car([cid], [(cid, block)]))
        reader.finish()
        self.assertEqual(got, [(cid, block)])
        self.assertEqual(verify_car(cid, make_car([cid], [(cid, block)]), piece=1 << 20), block)


# -- random input ---------------------------------------------------------------


class FuzzTest(unittest.TestCase):
    """Random and mutated bytes reach every decoder: only IPFSVerificationError may escape."""

    ITERATIONS = 3000

    def random_bytes(self, rng, limit=200):
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(limit)))

    def expect_only_verification_errors(self, name, function, inputs):
        for data in inputs:
            try:
                function(data)
            except VerificationError:
                pass
            except Exception as exc:  # pragma: no cover - the failure being tested for
                self.fail("{} raised {!r} for {!r}".format(name, exc, data))

    def test_decoders(self):
        rng = random.Random(4)
        inputs = [self.random_bytes(rng) for _ in range(self.ITERATIONS)]
        # Biased inputs: plausible prefixes, so decoding gets past the first byte.
        inputs += [b"\x12\x20" + self.random_bytes(rng, 40) for _ in range(300)]
        inputs += [b"\x01\x70\x12\x20" + self.random_bytes(rng, 40) for _ in range(300)]
        inputs += [b"\x08\x02\x18" + self.random_bytes(rng, 40) for _ in range(300)]

        def car_reader(data):
            reader = engine._CarReader()
            for piece in pieces(data, 1 + len(data) % 7):
                reader.feed(piece)
            reader.finish()

        def header(data):
            reader = engine._CarReader()
            reader.feed(core._varint_encode(len(data)) + data)
            reader.finish()

        decoders = {
            "_read_varint": lambda data: core._read_varint(data, 0),
            "_read_cid": lambda data: core._read_cid(data, 0),
            "_read_cid(memoryview)": lambda data: core._read_cid(memoryview(data), 0),
            "_decode_pbnode": core._decode_pbnode,
            "_decode_unixfs": core._decode_unixfs,
            "_CarReader": car_reader,
            "header": header,
        }
        for name, function in decoders.items():
            with self.subTest(decoder=name):
                self.expect_only_verification_errors(name, function, inputs)

    def test_car_header_mutations(self):
        rng = random.Random(42)
        root, _ = build(b"x", 1)
        good = car_header([root, root])
        inputs = []
        for _ in range(self.ITERATIONS):
            car = bytearray(good)
            for _ in range(rng.randrange(1, 4)):
                car[rng.randrange(len(car))] = rng.getrandbits(8)
            inputs.append(bytes(car))

        def read(data):
            reader = engine._CarReader()
            reader.feed(data)
            reader.finish()

        self.expect_only_verification_errors("CAR header", read, inputs)

    def test_mutated_cars(self):
        # Repeated content, sent without duplicates and partly out of order,
        # so mutations also reach the buffer and the repeat cache.
        rng = random.Random(11)
        data = bytes(1000) + content(500) + bytes(800)
        root, store = build(data, 1)
        blocks = dfs(root, store, dups=False)
        good = make_car([root], blocks[:3] + blocks[3:][::-1])
        self.assertEqual(verify_car(root, good, buffer_limit=4000), data)
        for _ in range(self.ITERATIONS // 3):
            car = bytearray(good[: rng.randrange(len(good) - 50, len(good) + 1)])
            for _ in range(rng.randrange(1, 4)):
                car[rng.randrange(len(car))] ^= 1 << rng.randrange(8)
            out = []
            try:
                engine._verify_car_stream(
                    root, (), pieces(bytes(car), rng.randrange(1, 300)), out.append, buffer_limit=4000
                )
            except VerificationError:
                continue
            # Only a flip in the untrusted header roots can leave the file intact.
            self.assertEqual(b"".join(out), data)

    def test_mutated_nodes_as_trusted_roots(self):
        # The hash is recomputed, so the walker must survive the content itself.
        rng = random.Random(7)
        data = content(1601)
        _, store = build(data)
        nodes = [block for cid, block in store.items() if core._decode_pbnode(block)[0]]
        inputs = []
        for _ in range(self.ITERATIONS):
            block = bytearray(rng.choice(nodes))
            for _ in range(rng.randrange(1, 4)):
                block[rng.randrange(len(block))] = rng.getrandbits(8)
            inputs.append(bytes(block))

        def get_block(cid):
            if cid not in store:  # as a gateway's 404 would end the fetch
                raise VerificationError(None, None, "no such block")
            return store[cid]

        def walk(block):
            root = core._Cid.for_block(block, core._CODEC_DAG_PB, 0)
            engine._verify_by_blocks(root, (), lambda cid: block if cid == root else get_block(cid), len)

        self.expect_only_verification_errors("walker", walk, inputs)


# -- real CARs ------------------------------------------------------------------


def fixture_content(spec):
    if "hex" in spec:
        return bytes.fromhex(spec["hex"])
    assert spec["pattern"] == "i % 251", spec
    return content(spec["size"])


@unittest.skipUnless(os.path.exists(os.path.join(DATA_DIR, "index.json")), "no CAR fixtures")
class FixtureTest(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(DATA_DIR, "index.json")) as f:
            self.index = json.load(f)

    def read(self, name):
        with open(os.path.join(DATA_DIR, name), "rb") as f:
            return f.read()

    def test_fixtures_reassemble(self):
        self.assertTrue(self.index)
        for entry in self.index:
            car = self.read(entry["file"])
            root = core._parse_cid(entry["root"])
            if entry["kind"] == "file":
                targets = {"": entry["content"]}
            else:
                targets = entry["entries"]
            for path, spec in targets.items():
                with self.subTest(file=entry["file"], path=path):
                    segments = path.split("/") if path else []
                    expected = fixture_content(spec)
                    self.assertEqual(verify_car(root, car, segments, piece=65536), expected)
                    reader = engine._CarReader()
                    reader.feed(car)
                    self.assertIn(root, reader.roots)

    def test_every_flip_of_a_real_car(self):
        entry = next(item for item in self.index if item["file"] == "file-1000-v0.car")
        car, root = self.read(entry["file"]), core._parse_cid(entry["root"])
        data = fixture_content(entry["content"])
        body_start, body_len = core._read_varint(car, 0)
        header_len = body_start + body_len
        for offset in range(len(car)):
            flipped = bytearray(car)
            flipped[offset] ^= 0x04
            with self.subTest(offset=offset):
                result = outcome(root, bytes(flipped), data)
                if offset >= header_len:
                    self.assertEqual(result, "error")


if __name__ == "__main__":
    unittest.main()

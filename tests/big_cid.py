"""The 45-91 MB CID vectors (past one level of 174 links at 256 KiB chunks).

Kept out of `make test` because they take seconds on older interpreters;
`make check` runs them (the ``big_*.py`` pattern).  The content is generated
on the fly, so memory stays at about a megabyte whatever the size.
"""

import unittest

from tests.support import ipfs
from tests.test_cid import _BIG, DEFAULT_SIZED, _built, _pattern_pieces, _PatternFile

BIG = [v for v in DEFAULT_SIZED if v["size"] > _BIG]


class BigVectorTest(unittest.TestCase):
    def test_vectors_present(self):
        sizes = {v["size"] for v in BIG}
        full = 174 * 262144  # a root with 174 full leaves
        for size in (full - 1, full, full + 1, 175 * 262144, 2 * full + 5):
            self.assertIn(size, sizes)

    def test_compute_cid_streamed(self):
        # Through compute_cid's file-object path, at constant memory.
        for vector in BIG:
            for version, key in ((0, "cidv0"), (1, "cidv1")):
                with self.subTest(size=vector["size"], version=version):
                    stream = _PatternFile(vector["size"])
                    self.assertEqual(ipfs.compute_cid(stream, version), vector[key])
                    self.assertEqual(stream.tell(), vector["size"])
                    self.assertFalse(stream.closed)  # the caller's file stays open

    def test_builder_in_slices(self):
        for vector in BIG:
            with self.subTest(size=vector["size"]):
                self.assertEqual(_built(None, 0, pieces=_pattern_pieces(vector["size"])), vector["cidv0"])


if __name__ == "__main__":
    unittest.main()

"""Encodings and CIDs: unsigned varint, base32, base58btc, binary and text CIDs."""

import base64
import hashlib
import unittest

from tests.support import ipfs

EMPTY_V0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
# content(262145) with Kubo's defaults, and the CIDv1 of the same DAG (dag-pb root).
TREE_V1 = "bafybeiexg2oqkfnj56l7fcmawswqbijt5shq4b5rg6a546uwpkqqzwjioi"
# A single raw leaf: the empty file with --cid-version=1.
EMPTY_V1_RAW = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
# "hello world\n" with --cid-version=1 --inline: an identity multihash.
HELLO_INLINE = "bafkqaddimvwgy3zao5xxe3debi"

SHA256_EMPTY = hashlib.sha256(b"").digest()


def _b32(data):
    """The multibase base32 form written with the standard library alone."""
    return "b" + base64.b32encode(data).decode("ascii").lower().rstrip("=")


def _assert_malformed(testcase, reason, func, *args):
    with testcase.assertRaises(ipfs.IPFSVerificationError) as caught:
        func(*args)
    error = caught.exception
    testcase.assertEqual(error.reason, reason)
    testcase.assertIsNone(error.url)
    testcase.assertIsNone(error.cid)
    testcase.assertEqual(str(error), "Verification failed: " + reason)


# ---------------------------------------------------------------------------
# varint
# ---------------------------------------------------------------------------

VARINTS = [
    (0, b"\x00"),
    (1, b"\x01"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (255, b"\xff\x01"),
    (300, b"\xac\x02"),
    (16383, b"\xff\x7f"),
    (16384, b"\x80\x80\x01"),
    (0x70, b"\x70"),
    (262144, b"\x80\x80\x10"),
    (2 ** 63 - 1, b"\xff" * 8 + b"\x7f"),  # the largest value 9 bytes hold
]


class VarintGoodTest(unittest.TestCase):
    def test_vectors(self):
        self.assertTrue(VARINTS)
        for value, encoded in VARINTS:
            with self.subTest(value=value):
                self.assertEqual(ipfs._varint_encode(value), encoded)
                self.assertEqual(ipfs._read_varint(encoded, 0), (len(encoded), value))
                self.assertEqual(ipfs._read_varint(memoryview(encoded), 0), (len(encoded), value))

    def test_round_trip(self):
        values = [2 ** k + d for k in range(63) for d in (-1, 0, 1)] + list(range(0, 1000, 7))
        for value in values:
            if value < 0 or value >= 2 ** 63:
                continue
            with self.subTest(value=value):
                encoded = ipfs._varint_encode(value)
                self.assertLessEqual(len(encoded), 9)
                self.assertEqual(ipfs._read_varint(encoded, 0), (len(encoded), value))

    def test_offset_and_following_bytes(self):
        buf = b"\xaa\xbb" + b"\xac\x02" + b"\x01" + b"\xff"
        self.assertEqual(ipfs._read_varint(buf, 2), (4, 300))
        self.assertEqual(ipfs._read_varint(buf, 4), (5, 1))

    def test_negative_refused(self):
        with self.assertRaises(ValueError):
            ipfs._varint_encode(-1)


class VarintBadTest(unittest.TestCase):
    BAD = [
        (b"", "truncated varint"),
        (b"\x80", "truncated varint"),
        (b"\xff\xff", "truncated varint"),
        (b"\x80" * 8, "truncated varint"),
        (b"\x80\x00", "non-minimal varint"),
        (b"\x81\x00", "non-minimal varint"),
        (b"\xff\x80\x00", "non-minimal varint"),
        (b"\x80" * 8 + b"\x00", "non-minimal varint"),
        (b"\x80" * 9, "varint longer than 9 bytes"),
        (b"\xff" * 9 + b"\x01", "varint longer than 9 bytes"),
        (b"\x80" * 9 + b"\x01", "varint longer than 9 bytes"),
    ]

    def test_bad(self):
        self.assertTrue(self.BAD)
        for raw, reason in self.BAD:
            with self.subTest(raw=raw):
                _assert_malformed(self, reason, ipfs._read_varint, raw, 0)

    def test_ten_byte_encoding_is_not_read(self):
        encoded = ipfs._varint_encode(2 ** 63)
        self.assertEqual(len(encoded), 10)
        _assert_malformed(self, "varint longer than 9 bytes", ipfs._read_varint, encoded, 0)

    def test_truncated_at_offset(self):
        _assert_malformed(self, "truncated varint", ipfs._read_varint, b"\x01\x02", 2)


# ---------------------------------------------------------------------------
# base32 (RFC 4648, lower case, no padding) and base58btc
# ---------------------------------------------------------------------------

BASE32 = [
    (b"", ""),
    (b"f", "my"),
    (b"fo", "mzxq"),
    (b"foo", "mzxw6"),
    (b"foob", "mzxw6yq"),
    (b"fooba", "mzxw6ytb"),
    (b"foobar", "mzxw6ytboi"),
    (b"\x00", "aa"),
    (b"\xff" * 5, "77777777"),
]

# From the base58 IETF draft (draft-msporny-base58) and the Bitcoin test vectors.
BASE58 = [
    (b"", ""),
    (b"\x00", "1"),
    (b"\x00\x00", "11"),
    (b"a", "2g"),
    (b"Hello World!", "2NEpo7TZRRrLZSi2U"),
    (b"The quick brown fox jumps over the lazy dog.",
     "USm3fpXnKG5EUBx2ndxBDMPVciP5hGey2Jh4NDv6gmeo1LkMeiKrLJUUBk6Z"),
    (bytes.fromhex("0000287fb4cd"), "11233QC4"),
    (bytes.fromhex("61"), "2g"),
    (bytes.fromhex("626262"), "a3gV"),
    (bytes.fromhex("636363"), "aPEr"),
    (bytes.fromhex("516b6fcd0f"), "ABnLTmg"),
    (bytes.fromhex("bf4f89001e670274dd"), "3SEo3LWLoPntC"),
    (bytes.fromhex("572e4794"), "3EFU7m"),
    (bytes.fromhex("ecac89cad93923c02321"), "EJDM8drfXA6uyA"),
    (bytes.fromhex("10c8511e"), "Rt5zm"),
    (bytes.fromhex("00000000000000000000"), "1111111111"),
]


class BaseEncodingTest(unittest.TestCase):
    def test_base32_vectors(self):
        self.assertTrue(BASE32)
        for raw, text in BASE32:
            with self.subTest(raw=raw):
                self.assertEqual(ipfs._b32encode(raw), text)
                self.assertEqual(ipfs._b32decode(text), raw)
                self.assertEqual(ipfs._b32decode(text.upper()), raw)

    def test_base58_vectors(self):
        self.assertTrue(BASE58)
        for raw, text in BASE58:
            with self.subTest(raw=raw):
                self.assertEqual(ipfs._b58encode(raw), text)
                self.assertEqual(ipfs._b58decode(text), raw)

    def test_round_trips(self):
        samples = [bytes(range(n)) for n in range(0, 40)] + [b"\x00" * n + b"\x01\x02" for n in range(5)]
        samples.append(bytes(range(256)))
        for raw in samples:
            with self.subTest(raw=raw):
                self.assertEqual(ipfs._b32decode(ipfs._b32encode(raw)), raw)
                self.assertEqual(ipfs._b58decode(ipfs._b58encode(raw)), raw)


class BaseEncodingBadTest(unittest.TestCase):
    BAD32 = ["1", "m!", "my=x", "mzxw6ytb0", "a"]
    BAD58 = [("0", "0"), ("O", "O"), ("I", "I"), ("l", "l"), ("2g+", "+"), ("2NEpo 7", " ")]

    def test_base32(self):
        self.assertTrue(self.BAD32)
        for text in self.BAD32:
            with self.subTest(text=text):
                _assert_malformed(self, "invalid base32", ipfs._b32decode, text)

    def test_base58(self):
        self.assertTrue(self.BAD58)
        for text, char in self.BAD58:
            with self.subTest(text=text):
                reason = "invalid base58 character {!r}".format(char)
                _assert_malformed(self, reason, ipfs._b58decode, text)


# ---------------------------------------------------------------------------
# CIDs
# ---------------------------------------------------------------------------


class CidTextGoodTest(unittest.TestCase):
    def test_v0(self):
        cid = ipfs._parse_cid(EMPTY_V0)
        self.assertEqual((cid.version, cid.codec, cid.hash_code), (0, 0x70, 0x12))
        self.assertEqual(len(cid.digest), 32)
        self.assertEqual(cid.multihash, b"\x12\x20" + cid.digest)
        self.assertEqual(cid.to_bytes(), cid.multihash)
        self.assertEqual(str(cid), EMPTY_V0)

    def test_v1_base32(self):
        tree = ipfs._parse_cid(TREE_V1)
        self.assertEqual((tree.version, tree.codec, tree.hash_code), (1, 0x70, 0x12))
        self.assertEqual(str(tree), TREE_V1)
        self.assertEqual(_b32(tree.to_bytes()), TREE_V1)
        self.assertEqual(tree.to_bytes(), b"\x01\x70" + tree.multihash)

        leaf = ipfs._parse_cid(EMPTY_V1_RAW)
        self.assertEqual((leaf.version, leaf.codec, leaf.hash_code), (1, 0x55, 0x12))
        # A raw leaf's digest is the plain sha2-256 of its bytes.
        self.assertEqual(leaf.digest, SHA256_EMPTY)
        self.assertEqual(str(leaf), EMPTY_V1_RAW)

    def test_v1_upper_case_base32(self):
        upper = "B" + TREE_V1[1:].upper()
        cid = ipfs._parse_cid(upper)
        self.assertEqual(cid, ipfs._parse_cid(TREE_V1))
        self.assertEqual(str(cid), TREE_V1)  # printed in the canonical lower case

    def test_v1_base58btc(self):
        raw = base64.b32decode(TREE_V1[1:].upper() + "=" * (-len(TREE_V1[1:]) % 8))
        text = "z" + ipfs._b58encode(raw)
        cid = ipfs._parse_cid(text)
        self.assertEqual(cid.to_bytes(), raw)
        self.assertEqual(cid, ipfs._parse_cid(TREE_V1))
        self.assertEqual(str(cid), TREE_V1)

    def test_identity_multihash(self):
        cid = ipfs._parse_cid(HELLO_INLINE)
        self.assertEqual((cid.version, cid.codec, cid.hash_code), (1, 0x55, 0x00))
        self.assertEqual(cid.digest, b"hello world\n")
        self.assertTrue(cid.check(b"hello world\n"))
        self.assertFalse(cid.check(b"hello world"))
        self.assertEqual(str(cid), HELLO_INLINE)

    def test_equality_and_hash(self):
        a = ipfs._parse_cid(EMPTY_V0)
        b = ipfs._Cid(0, 0x70, 0x12, a.digest)
        self.assertEqual(a, b)
        self.assertEqual(hash(a), hash(b))
        self.assertEqual(len({a, b}), 1)
        v1 = ipfs._Cid(1, 0x70, 0x12, a.digest)
        self.assertNotEqual(a, v1)  # same multihash, different CID
        self.assertNotEqual(a, EMPTY_V0)
        self.assertEqual(repr(a), "_Cid({})".format(EMPTY_V0))

    def test_for_block_and_check(self):
        block = b"some block"
        cid = ipfs._Cid.for_block(block, 0x55, 1)
        self.assertEqual(cid.digest, hashlib.sha256(block).digest())
        self.assertTrue(cid.check(block))
        self.assertTrue(cid.check(memoryview(block)))
        self.assertFalse(cid.check(block + b"!"))

    def test_round_trip_through_text(self):
        digest = hashlib.sha256(b"x").digest()
        for cid in (ipfs._Cid(0, 0x70, 0x12, digest), ipfs._Cid(1, 0x70, 0x12, digest),
                    ipfs._Cid(1, 0x55, 0x12, digest), ipfs._Cid(1, 0x55, 0x00, b"tiny")):
            with self.subTest(cid=cid):
                self.assertEqual(ipfs._parse_cid(str(cid)), cid)
                self.assertEqual(ipfs._read_cid(cid.to_bytes(), 0), (len(cid.to_bytes()), cid))


class CidBinaryGoodTest(unittest.TestCase):
    def test_read_at_offset_with_trailing_bytes(self):
        for text in (EMPTY_V0, TREE_V1, EMPTY_V1_RAW, HELLO_INLINE):
            with self.subTest(cid=text):
                cid = ipfs._parse_cid(text)
                raw = cid.to_bytes()
                buf = b"\xff\xfe" + raw + b"trailing"
                pos, read = ipfs._read_cid(buf, 2)
                self.assertEqual(pos, 2 + len(raw))
                self.assertEqual(read, cid)
                self.assertEqual(str(read), text)
                pos, read = ipfs._read_cid(memoryview(buf), 2)
                self.assertEqual((pos, read), (2 + len(raw), cid))

    def test_v0_binary_is_the_multihash(self):
        raw = b"\x12\x20" + SHA256_EMPTY
        pos, cid = ipfs._read_cid(raw, 0)
        self.assertEqual((pos, cid.version, cid.codec), (34, 0, 0x70))
        self.assertEqual(cid.digest, SHA256_EMPTY)


def _v1(codec, code, digest, version=1):
    return ipfs._varint_encode(version) + ipfs._varint_encode(codec) + bytes([code, len(digest)]) + digest


class CidBadTest(unittest.TestCase):
    def bad_text(self):
        sha = SHA256_EMPTY
        v0_multihash = b"\x12\x20" + sha
        hex_cid = "f01701220" + sha.hex()
        return [
            ("", "not a CID: ''"),
            ("b", "not a CID: 'b'"),
            ("Qm" + "0" * 44, "invalid base58 character '0'"),
            ("x" + TREE_V1[1:], "not a CID (unsupported multibase 'x'): {!r}".format("x" + TREE_V1[1:])),
            (hex_cid, "not a CID (unsupported multibase 'f'): {!r}".format(hex_cid)),
            ("Q" * 200, "not a CID (unsupported multibase 'Q'): {!r}".format("Q" * 80)),
            ("b!!!", "invalid base32"),
            (TREE_V1[:-10], "truncated multihash"),
            ("z" + ipfs._b58encode(v0_multihash), "CIDv0 cannot carry a multibase prefix"),
            (_b32(v0_multihash), "CIDv0 cannot carry a multibase prefix"),
            (_b32(_v1(0x70, 0x12, sha, version=2)), "unsupported CID version 2"),
            (_b32(_v1(0x70, 0x12, sha, version=0)), "unsupported CID version 0"),
            (_b32(_v1(0x70, 0x12, sha) + b"\x00"), "trailing bytes after CID"),
            (_b32(_v1(0x70, 0x12, sha[:31])), "sha2-256 digest must be 32 bytes, not 31"),
            (_b32(b"\x01\x55\x00\x81\x01" + b"a" * 129), "multihash digest of 129 bytes is too long"),
            (_b32(b"\x01\x80"), "truncated varint"),
            (_b32(b"\x01\x80\x00\x12\x20" + sha), "non-minimal varint"),
            ("z" + ipfs._b58encode(v0_multihash + b"\x00"), "trailing bytes after CID"),
        ]

    def test_bad_text(self):
        cases = self.bad_text()
        self.assertTrue(cases)
        for text, reason in cases:
            with self.subTest(text=text):
                _assert_malformed(self, reason, ipfs._parse_cid, text)

    def test_bad_binary(self):
        sha = SHA256_EMPTY
        cases = [
            (b"", "truncated varint"),
            (b"\x12\x20" + sha[:10], "truncated multihash"),
            (b"\x02\x70\x12\x20" + sha, "unsupported CID version 2"),
            (b"\x01\x70\x12\x21" + sha + b"x", "sha2-256 digest must be 32 bytes, not 33"),
            (b"\x01\x70", "truncated varint"),
            (b"\x01\x70\x12", "truncated varint"),
        ]
        for raw, reason in cases:
            with self.subTest(raw=raw):
                _assert_malformed(self, reason, ipfs._read_cid, raw, 0)


if __name__ == "__main__":
    unittest.main()

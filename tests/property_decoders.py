"""Property tests of the binary decoders and the CAR verifier (hypothesis).

Run by ``make check`` (``make property``) with the dev tools' interpreter; not
part of ``make test``, which installs nothing.  Two properties:

1. Arbitrary bytes fed to the varint, CID, protobuf/dag-pb, UnixFS and CAR
   decoders raise nothing but ``IPFSVerificationError``.
2. Changing any one byte of an honest CAR never yields wrong content: the
   verified result is the original file, or ``IPFSVerificationError``.
"""

import contextlib
import unittest

from tests.support import content, ipfs

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - make check installs it
    raise unittest.SkipTest("hypothesis is not installed (make check installs it)") from None

EXAMPLES = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


def _car(root, blocks):
    """A CARv1 of ``blocks`` ((cid, bytes) in order) naming ``root``."""
    cid_bytes = root.to_bytes()
    # dag-cbor {"roots": [CID], "version": 1}; tag 42 wraps 0x00 + binary CID.
    tagged = b"\xd8\x2a" + bytes([0x58, len(cid_bytes) + 1]) + b"\x00" + cid_bytes
    header = b"\xa2\x65roots\x81" + tagged + b"\x67version\x01"
    out = [ipfs._varint_encode(len(header)), header]
    for cid, block in blocks:
        section = cid.to_bytes() + block
        out += [ipfs._varint_encode(len(section)), section]
    return b"".join(out)


def _dfs(root, store):
    """Blocks of the DAG under ``root`` in depth-first, parent-first order."""
    order = []
    stack = [root]
    while stack:
        cid = stack.pop()
        block = store[cid]
        order.append((cid, block))
        if cid.codec == ipfs._CODEC_DAG_PB:
            links, _ = ipfs._decode_pbnode(block)
            stack.extend(link.cid for link in reversed(links))
    return order


def _build(data, version, chunk_size=64, max_links=3):
    store = {}

    def keep(cid, block):
        store[cid] = block

    builder = ipfs._DagBuilder(version, chunk_size=chunk_size, max_links=max_links, on_block=keep)
    builder.write(data)
    root = builder.finish()
    return root, _car(root, _dfs(root, store))


def _verify(root, car, max_bytes=None):
    out = []
    ipfs._verify_car_stream(root, [], [car], out.append, max_bytes=max_bytes)
    return b"".join(out)


class DecoderFuzzTest(unittest.TestCase):
    """Arbitrary input: one error type, whatever the bytes."""

    @EXAMPLES
    @given(st.binary(max_size=64), st.integers(min_value=0, max_value=8))
    def test_varint(self, data, pos):
        try:
            new_pos, value = ipfs._read_varint(data, pos)
        except ipfs.IPFSVerificationError:
            return
        self.assertEqual(ipfs._varint_encode(value), data[pos:new_pos])

    @EXAMPLES
    @given(st.binary(max_size=200))
    def test_binary_cid(self, data):
        try:
            cid = ipfs._cid_from_bytes(data)
        except ipfs.IPFSVerificationError:
            return
        self.assertEqual(cid.to_bytes(), data)

    @EXAMPLES
    @given(st.text(max_size=120))
    def test_text_cid(self, text):
        with contextlib.suppress(ipfs.IPFSVerificationError):
            ipfs._parse_cid(text)

    @EXAMPLES
    @given(st.binary(max_size=512))
    def test_dag_pb_and_unixfs(self, data):
        for decode in (ipfs._decode_pbnode, ipfs._decode_unixfs):
            with contextlib.suppress(ipfs.IPFSVerificationError):
                decode(data)

    @EXAMPLES
    @given(st.binary(max_size=2048), st.integers(min_value=1, max_value=64))
    def test_car_reader(self, data, piece):
        reader = ipfs._CarReader()
        try:
            for start in range(0, len(data), piece):
                reader.feed(data[start : start + piece])
            reader.finish()
        except ipfs.IPFSVerificationError:
            pass

    @EXAMPLES
    @given(st.binary(max_size=2048))
    def test_verifier_on_noise(self, data):
        root, _ = _build(content(500), 0)
        try:
            _verify(root, data)
        except ipfs.IPFSVerificationError:
            return
        self.fail("noise verified as a file")


class TamperPropertyTest(unittest.TestCase):
    """One changed byte anywhere in a CAR never yields wrong content."""

    @EXAMPLES
    @given(
        st.integers(min_value=0, max_value=2000),
        st.sampled_from([0, 1]),
        st.integers(min_value=0, max_value=10**9),
        st.integers(min_value=1, max_value=255),
    )
    def test_single_byte_change(self, size, version, where, delta):
        data = content(size)
        root, car = _build(data, version)
        self.assertEqual(_verify(root, car), data)
        tampered = bytearray(car)
        index = where % len(tampered)
        tampered[index] = (tampered[index] + delta) % 256
        try:
            got = _verify(root, bytes(tampered))
        except ipfs.IPFSVerificationError:
            return
        self.assertEqual(got, data, "byte {} of {} changed the content".format(index, len(car)))


if __name__ == "__main__":
    unittest.main()

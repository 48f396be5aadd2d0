"""publish_to_ipfs against the multipart parsers that real upload servers use.

Run by ``make interop`` (part of ``make check``) with the dev venv, which has
Werkzeug (Flask), python-multipart (Starlette, FastAPI) and multipart
(Bottle's author's parser) pinned in requirements-dev.txt; the Makefile
installs busboy (Node, behind Express's multer) from npm into
.cache/interop.  The servers are in tests/interop/servers.py.

Every case of ``CASES`` is published to every parser, which must report one
part named ``file`` with the exact bytes (size and SHA-256), the filename and
the content type.  What "the filename" is depends on the parser: the client
escapes ``"``, CR and LF as ``%22``, ``%0D`` and ``%0A``, as browsers do
(WHATWG HTML, multipart/form-data), and sends everything else as UTF-8,
backslashes included; each parser decodes that its own documented way, which
``PARSERS`` states as a function of the name sent, with the reason.  Where a
parser cannot give the part back at all (a limit, a name its grammar
rejects), ``EXPECTED_DIFFERENCES`` records what it does instead and why.
Nothing is skipped: a missing parser, ``node`` or busboy is an error.
"""

import collections
import hashlib
import io
import json
import os
import pathlib
import re
import shutil
import tempfile
import unittest

from tests.interop import servers
from tests.support import ResourceSnapshot, ipfs, publishing_to

MiB = 1 << 20
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

#: The part's content when a case is about the name or the type.
TEXT = b"interop check\r\n"


# -- the corpus ----------------------------------------------------------------

Case = collections.namedtuple("Case", "id make_data payload filename content_type")


def _case(case_id, data=TEXT, filename="upload.txt", content_type="text/plain", payload=None):
    """A case publishing ``data`` (a value, or a callable making a fresh one)."""
    make = data if callable(data) else (lambda: data)
    if payload is None:
        sample = make()
        if isinstance(sample, dict):
            payload = json.dumps(sample).encode("utf-8")
        elif isinstance(sample, str):
            payload = sample.encode("utf-8")
        elif isinstance(sample, io.BytesIO):
            payload = sample.getvalue()
        else:
            payload = bytes(sample)
    return Case(case_id, make, payload, filename, content_type)


def _boundary_lookalikes():
    # Everything a sloppy boundary search could trip on: the client's boundary
    # prefix with and without the CRLF and dashes around it.
    pieces = [
        b"--ogpu-ipfs-",
        b"\r\n--ogpu-ipfs-" + b"0" * 32,
        b"\r\n--ogpu-ipfs-" + b"f" * 32 + b"--\r\n",
        b"\r\n--",
        b"--\r\n",
        b"\r\n\r\n",
        b"\r\n-",
        b"\r\n--ogpu-ipfs",
    ]
    return b"x".join(pieces) + b"\r\n--ogpu-ipfs-"


def _one_mib_and_one():
    block = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(MiB // 32))
    return block + b"\r"


ONE_MIB_AND_ONE = _one_mib_and_one()

#: The 50 MiB case's content is written to a file by setUpModule.
BIG = {"path": None, "size": 50 * MiB, "sha256": None, "dir": None}

CASES = [
    # Defaults: a dict as data.json, application/json.
    _case("defaults_dict", {"name": "interop", "values": [1, 2.5, None, True]}, None, None),
    # File names.
    _case("name_quotes", filename='say "hi".txt'),
    _case("name_only_quotes", filename='""'),
    _case("name_backslash", filename="back\\slash.txt"),
    _case("name_two_backslashes", filename="two\\\\backslashes.txt"),
    _case("name_trailing_backslash", filename="trailing\\"),
    _case("name_backslash_quote", filename='a\\"b.txt'),
    _case("name_windows_path", filename="C:\\Users\\me\\report.txt"),
    _case("name_unc_path", filename="\\\\server\\share\\f.txt"),
    _case("name_slashes", filename="dir/sub/file.txt"),
    _case("name_semicolons", filename='a;b; filename="evil.txt"; x=y'),
    _case("name_crlf", filename="line1\r\nline2.txt"),
    _case("name_lone_cr_lf", filename="cr\ronly lf\nonly"),
    _case("name_header_injection", filename='x.txt"\r\nContent-Type: text/html\r\n\r\n<h1>'),
    _case("name_percent", filename="100% 50%41.txt"),
    # A literal %22 in a name reads as an escaped quote: the format cannot
    # tell them apart, and browsers send it the same way.
    _case("name_escape_lookalike", filename="lit%22%0D%0A.txt"),
    _case("name_cjk", filename="\u6570\u636e\u6587\u4ef6_\u5831\u544a.json"),
    _case("name_emoji", filename="\U0001f4e6\U0001f680 \U0001f469\u200d\U0001f4bb.bin"),
    _case("name_combining_marks", filename="Cafe\u0301 Zoe\u0308 n\u0303.txt"),
    _case("name_bidi", filename="\u05e9\u05dc\u05d5\u05dd\u202etxt.exe"),
    _case("name_latin1_letters", filename="\u00ff\u00fe fa\u00e7ade \u00e9t\u00e9.txt"),
    _case("name_unicode_separators", filename="a\u2028b\u0085c\u00a0d.txt"),
    _case("name_tab_and_controls", filename="tab\there\x01\x1f\x7f.txt"),
    _case("name_spaces", filename="  lead and trail  "),
    _case("name_equals_commas", filename="a=b,c=d 'single'.txt"),
    _case("name_boundary_lookalike", filename="--ogpu-ipfs-" + "0" * 32 + "--"),
    _case("name_empty", filename=""),
    _case("name_dot_dot", filename=".."),
    _case("name_long_ascii", filename="n" * 296 + ".txt"),
    _case("name_long_cjk", filename="\u9577" * 300),
    # 4000 bytes of UTF-8: the Content-Disposition line stays under 4 KiB + 128.
    _case("name_long_emoji", filename="\U0001f600" * 1000),
    # 4500 bytes of UTF-8: over the header-line limit of two parsers.
    _case("name_over_4k", filename="\u540d" * 1500),
    # Content types.
    _case("type_text_charset", "h\u00e9llo w\u00f6rld \u2713\n", "hello.txt", "text/plain; charset=utf-8"),
    _case(
        "type_json_charset",
        {"\u043a\u043b\u044e\u0447": "\u0437\u043d\u0430\u0447\u0435\u043d\u0438\u0435", "e": "\U0001f600"},
        "data.json",
        "application/json; charset=utf-8",
    ),
    _case("type_quoted_params", filename="f.txt", content_type='text/plain; charset="utf-8"; format=flowed'),
    _case("type_mixed_case", b"<p>hi</p>", "page.html", "Text/HTML; Charset=UTF-8"),
    _case("type_structured_suffix", b'{"data": []}', "doc.json", "application/vnd.api+json"),
    _case(
        "type_multipart_lookalike",
        filename="inner.txt",
        content_type='multipart/mixed; boundary="ogpu-ipfs-x"',
    ),
    # Contents.
    _case("content_empty", b"", "empty.bin", "application/octet-stream"),
    _case("content_one_byte", b"\x00", "nul.bin", "application/octet-stream"),
    _case("content_one_dash", b"-", "dash.bin", "application/octet-stream"),
    _case("content_all_bytes", bytearray(range(256)), "bytes.bin", "application/octet-stream"),
    _case(
        "content_all_bytes_x64",
        memoryview(bytes(range(255, -1, -1)) * 64),
        "bytes64.bin",
        "application/octet-stream",
    ),
    _case("content_crlf_heavy", b"\r\n" * 4096 + b"\r\r\n\n\n\r" + b"\r\n\r\n", "crlf.txt", "text/plain"),
    _case("content_ends_crlf", b"last line\r\n", "end.txt", "text/plain"),
    _case("content_ends_cr", b"last line\r", "end-cr.txt", "text/plain"),
    _case("content_starts_crlf_dashes", b"\r\n--\r\nfirst", "start.txt", "text/plain"),
    _case("content_only_crlf_dashes", b"\r\n--", "dashes.bin", "application/octet-stream"),
    _case("content_boundary_lookalike", _boundary_lookalikes(), "lookalike.bin", "application/octet-stream"),
    _case(
        "content_str_utf8",
        "\u00e9\u00e8 \u6570\u636e \U0001f600\r\n--",
        "text.txt",
        "text/plain; charset=utf-8",
    ),
    _case(
        "content_file_object_1mib",
        lambda: io.BytesIO(ONE_MIB_AND_ONE),
        "stream.bin",
        "application/octet-stream",
        payload=ONE_MIB_AND_ONE,
    ),
    _case(
        "content_50mib_path",
        lambda: pathlib.Path(BIG["path"]),
        "big.bin",
        "application/octet-stream",
        payload=BIG,
    ),
]


def setUpModule():
    # 50 MiB of hash output with boundary look-alikes at every MiB.
    BIG["dir"] = tempfile.mkdtemp(prefix="ogpu-interop-")
    BIG["path"] = os.path.join(BIG["dir"], "big.bin")
    digest = hashlib.sha256()
    seed = b"".join(hashlib.sha256(b"big %d" % i).digest() for i in range(MiB // 32))
    with open(BIG["path"], "wb") as f:
        for i in range(BIG["size"] // MiB):
            mark = b"\r\n--ogpu-ipfs-%032d\r\n" % i
            block = mark + seed[len(mark) + i :] + seed[:i]
            f.write(block)
            digest.update(block)
    BIG["sha256"] = digest.hexdigest()
    assert os.path.getsize(BIG["path"]) == BIG["size"]


def tearDownModule():
    if BIG["dir"]:
        shutil.rmtree(BIG["dir"])


# -- what each parser reports --------------------------------------------------


def wire_name(name):
    """The filename as the client sends it: WHATWG escapes, the rest as is."""
    return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _looks_like_windows_path(name):
    return name[1:3] == ":\\" or name[:2] == "\\\\"


def werkzeug_filename(name):
    # Backslash escapes first, then %22; %0D and %0A stay.
    return re.sub(r"\\(.)", r"\1", wire_name(name)).replace("%22", '"')


def python_multipart_filename(name):
    value = wire_name(name).replace("\\\\", "\\").replace('\\"', '"')
    if _looks_like_windows_path(value):
        value = value.split("\\")[-1]
    return value


def multipart_filename(name):
    value = wire_name(name).replace("%0D", "\r").replace("%0A", "\n").replace("%22", '"')
    if _looks_like_windows_path(value):
        value = value.rpartition("\\")[2]
    return value


def busboy_filename(name):
    value = re.split(r"[/\\]", re.sub(r'\\([\\"])', r"\1", wire_name(name)))[-1]
    return "" if value in (".", "..") else value


def _media_type(content_type):
    return content_type.split(";", 1)[0].strip().lower()


def _charset(content_type):
    match = re.search(r';\s*charset\s*=\s*"?([^";]*)"?', content_type, re.I)
    return match.group(1) if match else None


Parser = collections.namedtuple("Parser", "filename filename_reason content_type content_type_reason")

PARSERS = {
    "werkzeug": Parser(
        werkzeug_filename,
        "werkzeug.http.parse_options_header (3.x) reads a quoted value as an RFC 9110 "
        "quoted-string, so a backslash escapes the next character and is dropped, then "
        "decodes the HTML form's %22 to a quote; %0D and %0A are left as sent. No "
        "Windows-path stripping: FileStorage.filename is the decoded value.",
        lambda ct: {"content_type": ct},
        "FileStorage.content_type is the part's Content-Type header as sent.",
    ),
    "python-multipart": Parser(
        python_multipart_filename,
        "python_multipart.multipart.parse_options_header (used by Starlette) unescapes only "
        "\\\\ and \\\" inside quotes and decodes none of the HTML form's %22, %0D, %0A; a "
        "name that looks like a Windows path (drive letter or UNC, after unescaping) keeps "
        "only its last component (its IE6 workaround).",
        lambda ct: {"content_type": ct},
        "Starlette's UploadFile.content_type is the part's Content-Type header as sent.",
    ),
    "multipart": Parser(
        multipart_filename,
        "multipart.parse_content_disposition follows the HTML form: no backslash escapes, "
        "%22, %0D and %0A decoded; a name that looks like a Windows path keeps only its "
        "last component (its IE6 workaround).",
        lambda ct: {"content_type": _media_type(ct), "charset": _charset(ct), "content_type_header": ct},
        "MultipartPart.content_type is the media type, lower-cased, without parameters "
        "(the charset is kept apart); the header itself is in part.headers.",
    ),
    "busboy": Parser(
        busboy_filename,
        'busboy unescapes \\\\ and \\" inside quotes (any other backslash stays), decodes '
        "none of the HTML form's %22, %0D, %0A, and by default "
        "(preservePath: false, as multer uses it) keeps only what follows the last / or \\, "
        "with '.' and '..' becoming ''.",
        lambda ct: {"content_type": _media_type(ct)},
        "busboy's info.mimeType is type/subtype, lower-cased; parameters are not reported for files.",
    ),
}

Difference = collections.namedtuple("Difference", "reason error part no_parts")


def _difference(reason, error=None, part=None, no_parts=False):
    return Difference(reason, error, part or {}, no_parts)


#: (parser, case id) -> what that parser does instead of giving the part back.
EXPECTED_DIFFERENCES = {
    ("werkzeug", "name_trailing_backslash"): _difference(
        "Read as a quoted-string, the final backslash escapes the closing quote: the "
        "filename parameter never ends and is discarded, so the part is a form field "
        "(request.form['file']), not a file. Browsers send such a name the same way.",
        part={"filename": None, "content_type": None},
    ),
    ("busboy", "name_trailing_backslash"): _difference(
        "Read as a quoted-string, the final backslash escapes the closing quote: busboy "
        "calls the Content-Disposition malformed and skips the part.",
        no_parts=True,
    ),
    ("busboy", "name_empty"): _difference(
        "busboy ignores an empty filename parameter, and a part without a filename whose "
        "type is not application/octet-stream is a text field.",
        part={"filename": None},
    ),
    ("busboy", "name_tab_and_controls"): _difference(
        "busboy's part-header parser accepts only field-value characters (RFC 9110: no "
        "control characters but HTAB); the C0 controls and DEL in the name, sent raw as "
        "browsers send them, make it fail the whole request with 'Malformed part header'.",
        error="Malformed part header",
        no_parts=True,
    ),
    ("python-multipart", "name_over_4k"): _difference(
        "python-multipart refuses a part header line over DEFAULT_MAX_HEADER_SIZE "
        "(4096 + 128 bytes); Starlette answers 400.",
        error="MultipartParseError: Maximum header size exceeded",
        no_parts=True,
    ),
    ("multipart", "name_over_4k"): _difference(
        "multipart refuses a part header line over headersize_limit (4096 + 128 bytes by default).",
        error="ParserLimitReached: Maximum segment header length exceeded",
        no_parts=True,
    ),
}


def expected_report(parser, case):
    """The report ``parser``'s server should send back for ``case``."""
    rules = PARSERS[parser]
    filename = "data.json" if case.filename is None else case.filename
    content_type = "application/json" if case.content_type is None else case.content_type
    if case.payload is BIG:
        sha256, size = BIG["sha256"], BIG["size"]
    else:
        sha256, size = hashlib.sha256(case.payload).hexdigest(), len(case.payload)
    part = {"name": "file", "filename": rules.filename(filename), "sha256": sha256, "size": size}
    part.update(rules.content_type(content_type))
    difference = EXPECTED_DIFFERENCES.get((parser, case.id))
    if difference is None:
        return {"error": None, "parts": [part]}
    part.update(difference.part)
    return {"error": difference.error, "parts": [] if difference.no_parts else [part]}


def _publish(server, case):
    kwargs = {"retries": 0, "timeout": 60}
    if case.filename is not None:
        kwargs["filename"] = case.filename
    if case.content_type is not None:
        kwargs["content_type"] = case.content_type
    with publishing_to(server):
        return servers.read_link(ipfs.publish_to_ipfs(case.make_data(), **kwargs))


# -- the tests -------------------------------------------------------------------


class _ParserTests(object):
    """One test per case against ``parser``'s server, started once per class."""

    parser = None

    @classmethod
    def start_server(cls):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        super(_ParserTests, cls).setUpClass()
        cls.resources = ResourceSnapshot()
        cls.server = cls.start_server()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        super(_ParserTests, cls).tearDownClass()
        problems = cls.resources.leaks()
        if problems:
            raise AssertionError("%s left behind:\n  %s" % (cls.parser, "\n  ".join(problems)))

    def check_case(self, case):
        got = _publish(self.server, case)
        want = expected_report(self.parser, case)
        self.assertEqual(got["error"], want["error"], "parser error")
        self.assertEqual(len(got["parts"]), len(want["parts"]), "number of parts: %r" % (got["parts"],))
        for got_part, want_part in zip(got["parts"], want["parts"]):
            shown = {key: got_part.get(key) for key in want_part}
            self.assertEqual(shown, want_part)


def _add_case_tests(cls):
    for case in CASES:

        def test(self, case=case):
            self.check_case(case)

        test.__name__ = "test_" + case.id
        test.__doc__ = None
        setattr(cls, test.__name__, test)
    return cls


_add_case_tests(_ParserTests)


class WerkzeugTest(_ParserTests, unittest.TestCase):
    parser = "werkzeug"

    @classmethod
    def start_server(cls):
        return servers.WerkzeugServer()


class PythonMultipartTest(_ParserTests, unittest.TestCase):
    parser = "python-multipart"

    @classmethod
    def start_server(cls):
        return servers.PythonMultipartServer()


class BottleMultipartTest(_ParserTests, unittest.TestCase):
    parser = "multipart"

    @classmethod
    def start_server(cls):
        return servers.BottleMultipartServer()


class BusboyTest(_ParserTests, unittest.TestCase):
    parser = "busboy"

    @classmethod
    def start_server(cls):
        # No skip when node or busboy is missing: setUpClass errors out.
        return servers.BusboyServer()

    def test_defaults_read_utf8_names_as_latin1(self):
        # busboy's own default, defParamCharset 'latin1', turns each byte of
        # the UTF-8 name into one character: documented, and the reason the
        # server sets 'utf8'.  Names that are ASCII are unaffected.
        class Defaults(object):
            upload_url = self.server.defaults_url

        for name in ["\u6570\u636e.json", "caf\u00e9.txt", "\U0001f4e6", "plain.txt"]:
            with self.subTest(name=name):
                case = _case("defaults", filename=name)
                got = _publish(Defaults, case)
                want = busboy_filename(name).encode("utf-8").decode("latin-1")
                self.assertEqual([part["filename"] for part in got["parts"]], [want])
                self.assertEqual(got["parts"][0]["sha256"], hashlib.sha256(TEXT).hexdigest())


class CorpusTest(unittest.TestCase):
    """The corpus and the tables are what the issue asks for, and consistent."""

    def test_at_least_30_cases_with_unique_ids(self):
        ids = [case.id for case in CASES]
        self.assertGreaterEqual(len(ids), 30)
        self.assertEqual(len(ids), len(set(ids)))

    def test_corpus_covers_the_issue(self):
        names = [case.filename or "" for case in CASES]
        self.assertTrue(any('"' in n for n in names))
        self.assertTrue(any("\\" in n for n in names))
        self.assertTrue(any(";" in n for n in names))
        self.assertTrue(any("\r\n" in n for n in names))
        self.assertTrue(any(re.search("[\u4e00-\u9fff]", n) for n in names))  # CJK
        self.assertTrue(any(re.search("[\U0001f300-\U0001faff]", n) for n in names))  # emoji
        self.assertTrue(any("\u0301" in n for n in names))  # combining mark
        self.assertTrue(any(len(n) >= 300 for n in names))
        types = [case.content_type or "" for case in CASES]
        self.assertIn("text/plain; charset=utf-8", types)
        self.assertIn("application/json; charset=utf-8", types)
        payloads = [case.payload for case in CASES if case.payload is not BIG]
        self.assertIn(b"", payloads)
        self.assertTrue(any(len(p) == 1 for p in payloads))
        self.assertIn(bytes(range(256)), payloads)
        self.assertTrue(any(p.count(b"\r\n") > 1000 for p in payloads))
        self.assertTrue(any(b"\r\n--ogpu-ipfs-" in p for p in payloads))
        self.assertIn(BIG, [case.payload for case in CASES])
        self.assertEqual(BIG["size"], 50 * MiB)

    def test_differences_name_known_parsers_and_cases_and_give_reasons(self):
        ids = {case.id for case in CASES}
        for (parser, case_id), difference in EXPECTED_DIFFERENCES.items():
            self.assertIn(parser, PARSERS)
            self.assertIn(case_id, ids)
            self.assertGreater(len(difference.reason), 40)
        for rules in PARSERS.values():
            self.assertGreater(len(rules.filename_reason), 40)
            self.assertGreater(len(rules.content_type_reason), 30)

    def test_the_pinned_parsers_are_the_ones_imported(self):
        # `import multipart` must be the multipart distribution, not
        # python-multipart's compatibility shim, and each at its pinned version.
        versions = servers.check_modules()
        with open(os.path.join(REPO, "requirements-dev.txt")) as f:
            pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", f.read(), re.M))
        pins = {name.lower(): version for name, version in pins.items()}
        for dist, version in versions.items():
            self.assertEqual(version, pins[dist], dist)

    def test_busboy_is_the_pinned_version(self):
        with open(os.path.join(REPO, "Makefile")) as f:
            pinned = re.search(r"^BUSBOY_VERSION\s*:?=\s*(\S+)", f.read(), re.M).group(1)
        with open(os.path.join(servers.NODE_MODULES, "busboy", "package.json")) as f:
            installed = json.load(f)["version"]
        self.assertEqual(installed, pinned)


if __name__ == "__main__":
    unittest.main()

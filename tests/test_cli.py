"""The command line, run the way users run it: in child processes.

Three ways of starting it, one test class each:

* ``python -m ogpu`` (the package's ``__main__``);
* ``python <module file>``: ``ogpu/ipfs.py`` itself, or the vendored copy the
  suite runs against (``OGPU_IPFS_UNDER_TEST``, see ``tests/support.py``);
* the module file copied alone to an empty folder as ``ogpu_ipfs.py`` and run
  with ``python -I -S ogpu_ipfs.py`` (no environment, no site-packages).

All three run :class:`EntryPointCases`; the last also runs :class:`AllCases`,
the rest of the behaviour (the entry points differ only in how they import the
one ``main()``, and every child costs an interpreter start).

A :class:`ogpu.testing.LocalGateway` in this process serves the content.  The
publish endpoint is a module constant that nothing outside the process can
change (on purpose), so the publish cases run a small driver in the child that
imports the module the same way, points ``_PUBLISH_URL`` at the gateway and
then calls ``main()`` with the command line in ``sys.argv``, exactly what the
entry points do.
"""

import errno
import json
import os
import pty
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from ogpu.testing import LocalGateway
from tests.support import ThreadAndFdCheck, content, ipfs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_FILE = os.path.abspath(ipfs.__file__)
VECTORS = os.path.join(REPO, "tests", "data", "cid_vectors.json")

CHILD_TIMEOUT = 60.0  # seconds a child may run; each finishes in well under one
BIG = 20 * 1024 * 1024  # large enough for the progress line (shown from 4 MiB)
ERROR_PREFIX = "ogpu-ipfs: error: "

# Variables that would change what the children do: proxies would catch the
# requests to 127.0.0.1, OGPU_IPFS_GATEWAYS the CID forms.
_SCRUBBED_ENV = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "OGPU_IPFS_GATEWAYS",
    "PYTHONSTARTUP",
)

# `python -m ogpu publish ...` with the publish endpoint moved: the same module
# object ogpu/__main__.py imports, run as __main__ by runpy as -m does.
# Arguments: upload_url, then the command line.
MODULE_PUBLISH_DRIVER = r"""
import runpy, sys
import ogpu.ipfs
ogpu.ipfs._PUBLISH_URL = sys.argv[1]
sys.argv = ["ogpu"] + sys.argv[2:]
runpy.run_module("ogpu", run_name="__main__", alter_sys=True)
"""

# `python <file> publish ...` with the publish endpoint moved: the file is
# imported from its folder (which is sys.path[0] when it runs as a script),
# then main() reads sys.argv as under `if __name__ == "__main__"`.
# Arguments: module file, upload_url, then the command line.
FILE_PUBLISH_DRIVER = r"""
import importlib, os, sys
path, upload_url = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.dirname(path))
module = importlib.import_module(os.path.splitext(os.path.basename(path))[0])
assert os.path.abspath(module.__file__) == path, module.__file__
module._PUBLISH_URL = upload_url
sys.argv = [path] + sys.argv[3:]
sys.exit(module.main())
"""


def _child_env(extra_pythonpath=None):
    env = dict(os.environ)
    for name in _SCRUBBED_ENV:
        env.pop(name, None)
        env.pop(name.upper(), None)
    env.pop("PYTHONPATH", None)
    if extra_pythonpath:
        env["PYTHONPATH"] = extra_pythonpath
    return env


def _cid_vector(size):
    with open(VECTORS) as stream:
        vectors = json.load(stream)
    found = [v for v in vectors if v.get("size") == size and v.get("chunk_size") == 262144]
    assert found, "no CID vector for {} bytes in {}".format(size, VECTORS)
    return found[0]


def _refused_port():
    """A port on 127.0.0.1 bound by no listener: connecting is refused.

    The socket stays bound (not listening) so nothing else takes the port
    until it is closed.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


class _Cli(object):
    """Runs the command line one way; subclasses say which."""

    name = ""

    def __init__(self, folder):
        self.folder = folder  # the children's working directory

    def argv(self, args):
        raise NotImplementedError

    def publish_argv(self, upload_url, args):
        raise NotImplementedError

    def env(self):
        return _child_env()


class _ModuleCli(_Cli):
    name = "python -m ogpu"

    def argv(self, args):
        return [sys.executable, "-m", "ogpu", *args]

    def publish_argv(self, upload_url, args):
        return [sys.executable, "-c", MODULE_PUBLISH_DRIVER, upload_url, *args]

    def env(self):
        return _child_env(REPO)


class _FileCli(_Cli):
    name = "python ipfs.py"

    def argv(self, args):
        return [sys.executable, MODULE_FILE, *args]

    def publish_argv(self, upload_url, args):
        return [sys.executable, "-c", FILE_PUBLISH_DRIVER, MODULE_FILE, upload_url, *args]


class _VendoredCli(_Cli):
    name = "python -I -S ogpu_ipfs.py"

    def __init__(self, folder):
        super(_VendoredCli, self).__init__(folder)
        self.path = os.path.join(folder, "ogpu_ipfs.py")
        shutil.copyfile(MODULE_FILE, self.path)

    def argv(self, args):
        return [sys.executable, "-I", "-S", self.path, *args]

    def publish_argv(self, upload_url, args):
        return [sys.executable, "-I", "-S", "-c", FILE_PUBLISH_DRIVER, self.path, upload_url, *args]


class _CliBase(ThreadAndFdCheck):
    """A gateway for the class, a scratch folder per test, ways to run and check.

    ``cli_class`` (set by each TestCase) says how the command line is started.
    """

    cli_class = None

    @classmethod
    def setUpClass(cls):
        super(_CliBase, cls).setUpClass()
        cls.class_dir = tempfile.mkdtemp(prefix="ogpu-cli-test-")
        cls.cli = cls.cli_class(cls.class_dir)
        cls.gateway = LocalGateway()
        cls.small = bytes(range(256)) * 3 + b"\r\n\n\r\x00\x1a end"  # every byte value, newlines
        cls.small_cid = cls.gateway.add(cls.small)
        cls.small_cid_v1 = ipfs.compute_cid(cls.small, cid_version=1)
        cls.big = content(BIG)
        cls.big_cid = cls.gateway.add(cls.big)

    @classmethod
    def tearDownClass(cls):
        cls.gateway.close()
        shutil.rmtree(cls.class_dir, ignore_errors=True)
        super(_CliBase, cls).tearDownClass()

    def setUp(self):
        super(_CliBase, self).setUp()
        self.gateway.reset()
        self.folder = tempfile.mkdtemp(prefix="work-", dir=self.class_dir)
        self.addCleanup(shutil.rmtree, self.folder, True)

    def run_argv(self, argv, input=b"", stdin=None):
        # Python 3.6 refuses a stdin keyword next to input, even stdin=None.
        feed = {"input": input} if stdin is None else {"stdin": stdin}
        return subprocess.run(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.folder,
            env=self.cli.env(),
            timeout=CHILD_TIMEOUT,
            **feed,
        )

    def run_cli(self, *args, **kwargs):
        return self.run_argv(self.cli.argv(args), **kwargs)

    def run_publish(self, *args, **kwargs):
        return self.run_argv(self.cli.publish_argv(self.gateway.upload_url, args), **kwargs)

    def write(self, name, data):
        path = os.path.join(self.folder, name)
        with open(path, "wb") as stream:
            stream.write(data)
        return path

    def assertSucceeded(self, proc, stderr=b""):
        self.assertEqual(proc.returncode, 0, proc.stderr.decode("utf-8", "replace"))
        if stderr is not None:
            self.assertEqual(proc.stderr, stderr)

    def assertOneLineError(self, proc, status, *fragments):
        """Exit ``status``, nothing on stdout, one ``ogpu-ipfs: error:`` line on stderr."""
        err = proc.stderr.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, status, err)
        self.assertEqual(proc.stdout, b"")
        self.assertNotIn("Traceback", err)
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertTrue(lines[0].startswith(ERROR_PREFIX), err)
        for fragment in fragments:
            self.assertIn(fragment, lines[0])
        return lines[0]

    def assertUsageError(self, proc, *fragments):
        err = proc.stderr.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 2, err)
        self.assertEqual(proc.stdout, b"")
        self.assertNotIn("Traceback", err)
        self.assertTrue(err.strip(), "a usage error says what is wrong")
        for fragment in fragments:
            self.assertIn(fragment, err)

    def assertOnlyEntries(self, folder, names):
        self.assertEqual(sorted(os.listdir(folder)), sorted(names))

    def _fetch_after_a_refused_gateway(self, *flags):
        refused = _refused_port()
        self.addCleanup(refused.close)
        dead = "http://127.0.0.1:{}".format(refused.getsockname()[1])
        proc = self.run_cli(
            "fetch",
            self.small_cid,
            "--gateway",
            dead,
            "--gateway",
            self.gateway.url,
            "--retries",
            "0",
            *flags,
        )
        self.assertSucceeded(proc, stderr=None)
        self.assertEqual(proc.stdout, self.small)
        return proc.stderr.decode("utf-8", "replace")

    def run_on_tty(self, argv):
        """Run ``argv`` with stderr on a pseudo-terminal.

        Returns ``(exit status, stdout bytes, terminal output as str)``.
        """
        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=slave,
                cwd=self.folder,
                env=self.cli.env(),
            )
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        os.close(slave)
        output = bytearray()
        end = time.monotonic() + CHILD_TIMEOUT
        try:
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    self.fail("the child did not finish within {}s".format(CHILD_TIMEOUT))
                ready, _, _ = select.select([master], [], [], left)
                if not ready:
                    continue
                try:
                    data = os.read(master, 65536)
                except OSError as exc:
                    if exc.errno == errno.EIO:  # Linux: every slave end closed
                        break
                    raise
                if not data:
                    break
                output += data
            stdout = proc.stdout.read()
            proc.wait(max(1.0, end - time.monotonic()))
        finally:
            os.close(master)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        return proc.returncode, stdout, output.decode("utf-8", "replace")

    def assertProgressLine(self, tty, label):
        self.assertNotIn("Traceback", tty)
        self.assertIn("\r", tty)
        self.assertIn("MiB", tty)
        line = r"\r{} +[\d.]+ (?:B|KiB|MiB) / 20\.0 MiB \(\d+%\)  [\d.]+ (?:B|KiB|MiB|GiB)/s".format(label)
        self.assertRegex(tty, line)
        # The last report is the whole transfer, and the line is ended.
        self.assertRegex(
            tty, r"\r{} 20\.0 MiB / 20\.0 MiB \(100%\)  [\d.]+ (?:B|KiB|MiB|GiB)/s *\r?\n".format(label)
        )


class EntryPointCases(_CliBase):
    """What every way of starting the command line must do."""

    def test_publish_path_prints_the_link(self):
        data = b'{"result": "cat", "confidence": 0.97}'
        path = self.write("result.json", data)
        before = len(self.gateway.uploads)
        proc = self.run_publish("publish", path)
        self.assertSucceeded(proc)
        link = self.gateway.link(ipfs.compute_cid(data))
        self.assertEqual(proc.stdout, link.encode("ascii") + b"\n")
        self.assertEqual(len(self.gateway.uploads), before + 1)
        upload = self.gateway.uploads[-1]
        self.assertEqual(upload.filename, "result.json")
        self.assertEqual(upload.content_type, "application/json")
        self.assertEqual(upload.data, data)
        self.assertEqual(upload.link, link)

    def test_publish_stdin_with_filename(self):
        data = bytes(range(256)) * 40
        proc = self.run_publish("publish", "-", "--filename", "photo.png", input=data)
        self.assertSucceeded(proc)
        self.assertEqual(proc.stdout.decode("ascii"), self.gateway.link(ipfs.compute_cid(data)) + "\n")
        upload = self.gateway.uploads[-1]
        self.assertEqual(upload.filename, "photo.png")
        self.assertEqual(upload.content_type, "image/png")
        self.assertEqual(upload.data, data)

    def test_fetch_to_stdout_exact_bytes(self):
        proc = self.run_cli("fetch", self.gateway.link(self.small_cid))
        self.assertSucceeded(proc)
        self.assertEqual(proc.stdout, self.small)

    def test_fetch_to_file(self):
        dest = os.path.join(self.folder, "out.bin")
        proc = self.run_cli("fetch", self.gateway.link(self.small_cid), "-o", dest)
        self.assertSucceeded(proc)
        self.assertEqual(proc.stdout, b"")
        with open(dest, "rb") as stream:
            self.assertEqual(stream.read(), self.small)
        self.assertOnlyEntries(self.folder, ["out.bin"])

    def test_max_bytes(self):
        link = self.gateway.link(self.small_cid)
        with self.subTest("one byte less, to stdout"):
            proc = self.run_cli("fetch", link, "--max-bytes", str(len(self.small) - 1))
            line = self.assertOneLineError(proc, 1)
            self.assertEqual(
                line,
                ERROR_PREFIX
                + "Failed to fetch from IPFS {}: response of {} bytes exceeds max_bytes={}".format(
                    link, len(self.small), len(self.small) - 1
                ),
            )
        with self.subTest("to a file"):
            dest = os.path.join(self.folder, "capped.bin")
            proc = self.run_cli("fetch", link, "--max-bytes", "10", "-o", dest)
            self.assertOneLineError(proc, 1, "exceeds max_bytes=10")
            self.assertOnlyEntries(self.folder, [])

    def test_not_found_is_exit_1(self):
        missing = self.gateway.link(_cid_vector(1)["cidv0"])
        proc = self.run_cli("fetch", missing)
        line = self.assertOneLineError(proc, 1)
        self.assertEqual(line, ERROR_PREFIX + "IPFS gateway {} returned HTTP 404".format(missing))

    def test_cid_of_a_path(self):
        vector = _cid_vector(262145)
        path = self.write("sample.bin", content(262145))
        for args, expected in [((), vector["cidv0"]), (("--cid-version", "1"), vector["cidv1"])]:
            with self.subTest(args=args):
                proc = self.run_cli("cid", path, *args)
                self.assertSucceeded(proc)
                self.assertEqual(proc.stdout, expected.encode("ascii") + b"\n")

    def test_usage_errors_exit_2(self):
        for args, fragment in [
            ((), "the following arguments are required: COMMAND"),
            (("bogus",), "invalid choice: 'bogus'"),
            (("fetch", "QmX", "--no-such-option"), "unrecognized arguments: --no-such-option"),
        ]:
            with self.subTest(args=args):
                self.assertUsageError(self.run_cli(*args), "usage: ogpu-ipfs", fragment)

    def test_help(self):
        proc = self.run_cli("--help")
        self.assertSucceeded(proc)
        out = proc.stdout.decode("utf-8")
        self.assertTrue(out.startswith("usage: ogpu-ipfs "), out)
        for text in (
            "publish",
            "fetch",
            "cid",
            "examples:",
            "ogpu-ipfs publish result.json",
            "ogpu-ipfs fetch ipfs://",
            "ogpu-ipfs cid ",
            "OGPU_IPFS_GATEWAYS",
            "exit status",
        ):
            self.assertIn(text, out)

    def test_progress_line_on_a_terminal(self):
        dest = os.path.join(self.folder, "big.bin")
        status, stdout, tty = self.run_on_tty(
            self.cli.argv(["fetch", self.gateway.link(self.big_cid), "-o", dest])
        )
        self.assertEqual(status, 0, tty)
        self.assertEqual(stdout, b"")
        self.assertProgressLine(tty, "fetch")
        self.assertEqual(os.path.getsize(dest), BIG)
        with open(dest, "rb") as stream:
            self.assertEqual(stream.read(), self.big)

    def test_no_progress_when_piped(self):
        dest = os.path.join(self.folder, "big.bin")
        proc = self.run_cli("fetch", self.gateway.link(self.big_cid), "-o", dest)
        self.assertSucceeded(proc)  # nothing at all on stderr
        self.assertEqual(proc.stdout, b"")
        self.assertEqual(os.path.getsize(dest), BIG)


class AllCases(EntryPointCases):
    """Everything else, run one way only (the copy under ``-I -S``), since
    the entry points differ only in how they import the one ``main()``."""

    def test_publish_relative_path(self):
        data = content(1000)
        self.write("sample.bin", data)
        proc = self.run_publish("publish", "sample.bin")
        self.assertSucceeded(proc)
        self.assertEqual(proc.stdout.decode("ascii").strip(), self.gateway.link(_cid_vector(1000)["cidv0"]))
        self.assertEqual(self.gateway.uploads[-1].filename, "sample.bin")

    def test_publish_stdin_from_a_regular_file(self):
        # `ogpu-ipfs publish - < file`: stdin is seekable, streamed without spooling.
        data = content(300000)
        path = self.write("input.bin", data)
        with open(path, "rb") as stdin:
            proc = self.run_publish("publish", "-", "--filename", "in.bin", stdin=stdin)
        self.assertSucceeded(proc)
        self.assertEqual(proc.stdout.decode("ascii"), self.gateway.link(ipfs.compute_cid(data)) + "\n")
        self.assertEqual(self.gateway.uploads[-1].data, data)

    def test_publish_stdin_without_filename(self):
        proc = self.run_publish("publish", "-", input=b"hello")
        self.assertSucceeded(proc)
        upload = self.gateway.uploads[-1]
        self.assertEqual(upload.filename, "stdin")
        self.assertEqual(upload.content_type, "application/octet-stream")
        self.assertEqual(upload.data, b"hello")

    def test_publish_content_type_guessed_from_the_name(self):
        cases = [
            ("data.json", "application/json"),
            ("image.png", "image/png"),
            ("weights.ogpu-unknown-extension", "application/octet-stream"),
        ]
        for name, expected in cases:
            with self.subTest(name=name):
                path = self.write(name, name.encode("ascii"))
                proc = self.run_publish("publish", path)
                self.assertSucceeded(proc)
                upload = self.gateway.uploads[-1]
                self.assertEqual(upload.filename, name)
                self.assertEqual(upload.content_type, expected)
                self.assertEqual(upload.data, name.encode("ascii"))

    def test_publish_explicit_content_type_and_filename_win(self):
        path = self.write("data.json", b"[1, 2]")
        proc = self.run_publish(
            "publish", path, "--filename", "renamed.txt", "--content-type", "application/x-ogpu-test"
        )
        self.assertSucceeded(proc)
        upload = self.gateway.uploads[-1]
        self.assertEqual(upload.filename, "renamed.txt")
        self.assertEqual(upload.content_type, "application/x-ogpu-test")

    def test_publish_with_verify(self):
        path = self.write("v.bin", content(262145))
        proc = self.run_publish("publish", path, "--verify")
        self.assertSucceeded(proc)
        self.assertEqual(proc.stdout.decode("ascii").strip(), self.gateway.link(_cid_vector(262145)["cidv0"]))

    def test_publish_missing_file_is_exit_1(self):
        missing = os.path.join(self.folder, "missing.json")
        before = len(self.gateway.requests)
        proc = self.run_publish("publish", missing)
        self.assertOneLineError(proc, 1, "No such file or directory", "missing.json")
        self.assertEqual(len(self.gateway.requests), before)

    def test_publish_gateway_error_is_exit_1(self):
        self.gateway.fail(400, body=b"bad upload")
        path = self.write("a.json", b"{}")
        proc = self.run_publish("publish", path, "--retries", "0")
        line = self.assertOneLineError(proc, 1, "returned HTTP 400")
        self.assertEqual(
            line, ERROR_PREFIX + "IPFS gateway {} returned HTTP 400".format(self.gateway.upload_url)
        )

    def test_fetch_dash_output_is_stdout(self):
        proc = self.run_cli("fetch", self.gateway.link(self.small_cid), "-o", "-")
        self.assertSucceeded(proc)
        self.assertEqual(proc.stdout, self.small)

    def test_fetch_to_relative_file_replaces_it(self):
        self.write("out.bin", b"old content")
        proc = self.run_cli("fetch", self.gateway.link(self.small_cid), "--output", "out.bin")
        self.assertSucceeded(proc)
        with open(os.path.join(self.folder, "out.bin"), "rb") as stream:
            self.assertEqual(stream.read(), self.small)
        self.assertOnlyEntries(self.folder, ["out.bin"])

    def test_fetch_url_forms_with_gateways_in_order(self):
        refused = _refused_port()
        self.addCleanup(refused.close)
        dead = "http://127.0.0.1:{}".format(refused.getsockname()[1])
        forms = [
            "ipfs://" + self.small_cid,
            self.small_cid,
            "/ipfs/" + self.small_cid,
            self.small_cid_v1,
        ]
        for form in forms:
            with self.subTest(form=form):
                before = len(self.gateway.requests)
                proc = self.run_cli(
                    "fetch", form, "--gateway", dead, "--gateway", self.gateway.url, "--retries", "0"
                )
                self.assertSucceeded(proc, stderr=None)
                self.assertEqual(proc.stdout, self.small)
                # The first gateway refused: a warning names it, then the second served.
                err = proc.stderr.decode("utf-8", "replace")
                self.assertNotIn("Traceback", err)
                self.assertNotIn(ERROR_PREFIX, err)
                self.assertRegex(
                    err,
                    r"^ogpu-ipfs: GET {}/ipfs/\S+ failed: .*connection refused\n$".format(re.escape(dead)),
                )
                paths = [record.path for record in self.gateway.requests[before:]]
                self.assertEqual(paths, ["/ipfs/" + form.rpartition("/")[2]])

    def test_fetch_gateway_url_falls_over_to_gateway(self):
        refused = _refused_port()
        self.addCleanup(refused.close)
        dead_link = "http://127.0.0.1:{}/ipfs/{}".format(refused.getsockname()[1], self.small_cid)
        proc = self.run_cli("fetch", dead_link, "--gateway", self.gateway.url, "--retries", "0", "-q")
        self.assertSucceeded(proc)
        self.assertEqual(proc.stdout, self.small)

    def test_fetch_bare_cid_without_gateway_uses_environment(self):
        env_gateways = "http://127.0.0.1:{}".format(self.gateway.port)
        argv = self.cli.argv(["fetch", self.small_cid])
        env = self.cli.env()
        env["OGPU_IPFS_GATEWAYS"] = env_gateways
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.folder,
            env=env,
            timeout=CHILD_TIMEOUT,
        )
        self.assertSucceeded(proc)
        self.assertEqual(proc.stdout, self.small)

    def test_max_bytes_equal_to_the_size(self):
        proc = self.run_cli("fetch", self.gateway.link(self.small_cid), "--max-bytes", str(len(self.small)))
        self.assertSucceeded(proc)
        self.assertEqual(proc.stdout, self.small)

    def test_max_bytes_of_compressed_answer(self):
        # Without a Content-Length up front the cap applies to the bytes decoded.
        self.gateway.compress = "gzip"
        self.addCleanup(setattr, self.gateway, "compress", None)
        proc = self.run_cli("fetch", self.gateway.link(self.small_cid), "--max-bytes", "100")
        err = proc.stderr.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 1, err)
        self.assertNotIn("Traceback", err)
        self.assertEqual(
            err.splitlines(),
            [
                ERROR_PREFIX
                + "Failed to fetch from IPFS {}: response exceeds max_bytes=100".format(
                    self.gateway.link(self.small_cid)
                )
            ],
        )
        # Whatever was decoded before the cap may have reached stdout, never more.
        self.assertLessEqual(len(proc.stdout), 100)
        self.assertEqual(proc.stdout, self.small[: len(proc.stdout)])

    def test_not_found_to_file_leaves_nothing(self):
        missing = self.gateway.link(_cid_vector(1)["cidv0"])
        proc = self.run_cli("fetch", missing, "-o", os.path.join(self.folder, "x.bin"))
        self.assertOneLineError(proc, 1, "returned HTTP 404")
        self.assertOnlyEntries(self.folder, [])

    def test_connection_refused_is_exit_1(self):
        refused = _refused_port()
        self.addCleanup(refused.close)
        url = "http://127.0.0.1:{}/ipfs/{}".format(refused.getsockname()[1], self.small_cid)
        proc = self.run_cli("fetch", url, "--retries", "0")
        line = self.assertOneLineError(proc, 1)
        self.assertEqual(line, ERROR_PREFIX + "Failed to fetch from IPFS {}: connection refused".format(url))

    def test_retried_failures_warn_then_error_once(self):
        refused = _refused_port()
        self.addCleanup(refused.close)
        url = "http://127.0.0.1:{}/ipfs/{}".format(refused.getsockname()[1], self.small_cid)
        proc = self.run_cli("fetch", url, "--retries", "1")
        err = proc.stderr.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 1, err)
        self.assertNotIn("Traceback", err)
        lines = err.splitlines()
        self.assertEqual(len(lines), 3, err)
        self.assertEqual(
            lines[0],
            "ogpu-ipfs: GET {} failed: Failed to fetch from IPFS {}: connection refused".format(url, url),
        )
        self.assertRegex(lines[1], r"^ogpu-ipfs: retrying in \d+\.\d\ds \(retry 1 of 1\)$")
        self.assertEqual(
            lines[2], ERROR_PREFIX + "Failed to fetch from IPFS {}: connection refused".format(url)
        )

    def test_invalid_url_is_exit_1(self):
        proc = self.run_cli("fetch", "ftp://example.invalid/x")
        line = self.assertOneLineError(proc, 1)
        self.assertEqual(
            line,
            ERROR_PREFIX + "Failed to fetch from IPFS ftp://example.invalid/x: "
            "unsupported URL scheme 'ftp': only http and https",
        )

    def test_credentials_sent_but_never_shown(self):
        url = "http://alice:s3cret@127.0.0.1:{}/ipfs/{}".format(self.gateway.port, _cid_vector(1)["cidv0"])
        proc = self.run_cli("fetch", url, "-vv")
        err = proc.stderr.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 1, err)
        self.assertIn("returned HTTP 404", err)
        self.assertNotIn("s3cret", err)
        self.assertNotIn("alice", err)
        self.assertEqual(self.gateway.requests[-1].headers["Authorization"], "Basic YWxpY2U6czNjcmV0")

    def test_quiet_suppresses_warnings(self):
        for flag in ("-q", "--quiet"):
            with self.subTest(flag=flag):
                self.assertEqual(self._fetch_after_a_refused_gateway(flag), "")

    def test_default_shows_warnings_only(self):
        err = self._fetch_after_a_refused_gateway()
        self.assertIn("connection refused", err)
        self.assertNotIn("succeeded", err)

    def test_verbose_shows_info(self):
        err = self._fetch_after_a_refused_gateway("-v")
        lines = err.splitlines()
        self.assertEqual(len(lines), 2, err)
        self.assertIn("connection refused", lines[0])
        self.assertRegex(
            lines[1],
            r"^ogpu-ipfs: GET {}/ipfs/{} succeeded in \d+\.\d{{3}}s$".format(
                re.escape(self.gateway.url), self.small_cid
            ),
        )

    def test_quiet_and_verbose_exclude_each_other(self):
        proc = self.run_cli("fetch", self.small_cid, "-q", "-v")
        self.assertUsageError(proc, "not allowed with argument")

    def test_cid_of_stdin(self):
        for size, version in [(0, 0), (262145, 0), (262145, 1)]:
            expected = _cid_vector(size)["cidv{}".format(version)]
            with self.subTest(size=size, version=version):
                proc = self.run_cli("cid", "-", "--cid-version", str(version), input=content(size))
                self.assertSucceeded(proc)
                self.assertEqual(proc.stdout, expected.encode("ascii") + b"\n")

    def test_cid_uses_no_network(self):
        before = len(self.gateway.requests)
        proc = self.run_cli("cid", "-", input=b"x")
        self.assertSucceeded(proc)
        self.assertEqual(len(self.gateway.requests), before)

    def test_cid_of_a_missing_file_is_exit_1(self):
        proc = self.run_cli("cid", os.path.join(self.folder, "nope.bin"))
        self.assertOneLineError(proc, 1, "No such file or directory", "nope.bin")

    def test_cid_of_a_folder_is_exit_1(self):
        proc = self.run_cli("cid", self.folder)
        self.assertOneLineError(proc, 1, "Is a directory")

    def test_more_usage_errors_exit_2(self):
        cases = [
            (("--no-such-option", "cid", "-"), "unrecognized arguments: --no-such-option"),
            (("fetch",), "required: URL"),
            (("publish",), "required: PATH|-"),
            (("fetch", "QmX", "--max-bytes", "lots"), "invalid int value: 'lots'"),
            (("cid", "-", "--cid-version", "2"), "invalid choice: 2"),
            (("fetch", "QmX", "a", "b"), "unrecognized arguments: a b"),
        ]
        for args, fragment in cases:
            with self.subTest(args=args):
                proc = self.run_cli(*args)
                self.assertUsageError(proc, "usage: ogpu-ipfs", fragment)

    def test_bad_values_exit_2(self):
        link = self.gateway.link(self.small_cid)
        for args, message in [
            (("--timeout", "-1"), "timeout must be a positive number of seconds or None"),
            (("--retries", "-1"), "retries must be a non-negative int"),
            (("--max-bytes", "-5"), "max_bytes must be a non-negative int or None"),
        ]:
            with self.subTest(args=args):
                before = len(self.gateway.requests)
                proc = self.run_cli("fetch", link, *args)
                self.assertOneLineError(proc, 2)
                self.assertEqual(proc.stderr.decode("utf-8").strip(), ERROR_PREFIX + message)
                self.assertEqual(len(self.gateway.requests), before, "nothing is sent")

    def test_help_of_each_command(self):
        expected = {
            "publish": [
                "PATH|-",
                "--filename",
                "--content-type",
                "--gateway",
                "--timeout",
                "--retries",
                "-q, --quiet",
                "-v, --verbose",
                "examples:",
                "ogpu-ipfs publish ",
            ],
            "fetch": [
                "URL",
                "-o",
                "--output",
                "FILE",
                "--max-bytes N",
                "--gateway URL",
                "--timeout",
                "--retries",
                "-q, --quiet",
                "-v, --verbose",
                "examples:",
                "ogpu-ipfs fetch ",
            ],
            "cid": ["PATH|-", "--cid-version {0,1}", "examples:", "ogpu-ipfs cid "],
        }
        for command, texts in sorted(expected.items()):
            with self.subTest(command=command):
                proc = self.run_cli(command, "-h")
                self.assertSucceeded(proc)
                out = proc.stdout.decode("utf-8")
                self.assertTrue(out.startswith("usage: ogpu-ipfs " + command), out)
                for text in texts:
                    self.assertIn(text, out)
                # Each example line of the command's help runs the command itself.
                examples = out.split("examples:", 1)[1].strip().splitlines()
                self.assertGreaterEqual(len(examples), 2)
                for line in examples:
                    self.assertIn("ogpu-ipfs " + command + " ", line)

    def test_version(self):
        proc = self.run_cli("--version")
        self.assertSucceeded(proc)
        self.assertEqual(proc.stdout.decode("ascii"), "ogpu-ipfs {}\n".format(ipfs.__version__))

    def test_progress_line_on_a_terminal_for_publish(self):
        path = self.write("big.bin", self.big)
        status, stdout, tty = self.run_on_tty(
            self.cli.publish_argv(self.gateway.upload_url, ["publish", path])
        )
        self.assertEqual(status, 0, tty)
        self.assertEqual(stdout.decode("ascii"), self.gateway.link(self.big_cid) + "\n")
        self.assertProgressLine(tty, "publish")

    def test_quiet_hides_the_progress_line(self):
        dest = os.path.join(self.folder, "big.bin")
        argv = self.cli.argv(["fetch", self.gateway.link(self.big_cid), "-o", dest, "-q"])
        status, _stdout, tty = self.run_on_tty(argv)
        self.assertEqual(status, 0, tty)
        self.assertEqual(tty, "")
        self.assertEqual(os.path.getsize(dest), BIG)

    def test_no_progress_line_for_small_transfers(self):
        status, stdout, tty = self.run_on_tty(self.cli.argv(["fetch", self.gateway.link(self.small_cid)]))
        self.assertEqual(status, 0, tty)
        self.assertEqual(stdout, self.small)
        self.assertEqual(tty, "")


class ModuleCliTest(EntryPointCases, unittest.TestCase):
    """``python -m ogpu ...``"""

    cli_class = _ModuleCli


class FileCliTest(EntryPointCases, unittest.TestCase):
    """``python ogpu/ipfs.py ...`` (or the vendored file under test)."""

    cli_class = _FileCli


class VendoredCliTest(AllCases, unittest.TestCase):
    """``python -I -S ogpu_ipfs.py ...`` from a folder holding that file alone."""

    cli_class = _VendoredCli

    def test_copy_runs_alone(self):
        # Nothing of this repository is importable by the child: only the copy.
        probe = (
            "import importlib.util, sys; "
            "print(importlib.util.find_spec('ogpu') is None, "
            "any('site-packages' in p for p in sys.path))"
        )
        proc = self.run_argv([sys.executable, "-I", "-S", "-c", probe])
        self.assertSucceeded(proc)
        self.assertEqual(proc.stdout, b"True False\n")
        # The copy's folder holds the copy and the tests' scratch folders only.
        others = [name for name in os.listdir(self.class_dir) if not name.startswith("work-")]
        self.assertEqual(others, ["ogpu_ipfs.py"])


if __name__ == "__main__":
    unittest.main()

"""Multi-GiB transfers at constant memory: a publish and a fetch of 2 GiB.

Slow (seconds per GiB, GiBs of disk), so not part of ``make test``: ``make
check`` runs it on every interpreter (``make big``; the ``big_*.py`` pattern)::

    python -m unittest discover -s tests -t . -p 'big_*.py'

The client runs in a child process that reports its resident set size: the
baseline after its imports, and the peak after the transfer (the high-water
mark VmHWM on Linux, ``getrusage(RUSAGE_SELF).ru_maxrss`` elsewhere; see
``_RSS_CODE`` for why not ru_maxrss on Linux, which is reported as well).  The
peak may exceed the baseline by at most ``RSS_BOUND`` (32 MiB) whatever the
size.  The LocalGateway runs in a second child process, so its memory is
measured on its own, under the same bound.

``OGPU_BIG_SIZE`` sets the size in bytes (default 2 GiB), for a quick run::

    OGPU_BIG_SIZE=$((256*1024*1024)) python -m unittest tests.big_memory

The figures (RSS baseline, peak and growth, throughput) go to stderr, so CI
logs show them.
"""

import hashlib
import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest

from tests.support import VENDORED, content, ipfs

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_FILE = os.path.abspath(ipfs.__file__)

MiB = 1024 * 1024
SIZE = int(os.environ.get("OGPU_BIG_SIZE", str(2048 * MiB)))
RSS_BOUND = 32 * MiB  # the bound: peak RSS within ~32 MiB of the baseline
CHILD_TIMEOUT = 900.0  # seconds for one child's transfer (slow, shared CI machines)

# The source: 1 MiB of test content, each copy stamped with its index so that
# no two MiB are equal and a misplaced chunk changes the hash.
_PATTERN = content(MiB)

# Shared by both children: resident memory now and at its peak, in bytes.
#
# getrusage's ru_maxrss is reported too, but on Linux it is not this program's
# own peak: the kernel carries the peak RSS of the address space that exec()
# replaced into it, and after fork() or vfork() that is the launching test
# process's memory (or its whole peak).  /proc/self/status VmHWM is the same
# high-water mark for this program's memory alone, so it is the one checked
# where it exists; elsewhere ru_maxrss is used (an upper bound).
_RSS_CODE = r"""
import os, resource, sys

def _status(field):
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return None

def maxrss():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # KiB on Linux

def rss_now():
    now = _status("VmRSS")
    return maxrss() if now is None else now

def rss_peak():
    peak = _status("VmHWM")
    return maxrss() if peak is None else peak
"""

# The client: imports the module under test, measures its baseline, runs one
# transfer, then prints one JSON line of figures.
# Arguments: sys.path entry, module name, then "publish" SOURCE UPLOAD_URL or
# "fetch" URL DEST.
CLIENT = (
    _RSS_CODE
    + r"""
import importlib, json, pathlib, time

sys.path.insert(0, sys.argv[1])
module = importlib.import_module(sys.argv[2])
operation = sys.argv[3]
baseline = rss_now()
started = time.monotonic()
if operation == "publish":
    module._PUBLISH_URL = sys.argv[5]
    result = module.publish_to_ipfs(
        pathlib.Path(sys.argv[4]), "big.bin", "application/octet-stream", timeout=120
    )
elif operation == "fetch":
    result = module.fetch_ipfs_to_file(sys.argv[4], sys.argv[5], timeout=120)
elif operation == "fetch-verified":
    result = module.fetch_ipfs_to_file(sys.argv[4], sys.argv[5], timeout=120, verify=True)
else:
    raise SystemExit("unknown operation " + operation)
elapsed = time.monotonic() - started
print(json.dumps({
    "module": module.__file__, "baseline": baseline,
    "peak": rss_peak(), "maxrss": maxrss(), "seconds": elapsed, "result": result,
}))
"""
)

# The gateway: serves from storage_dir (argv[2]) until stdin closes, answering
# one JSON line per command line read from stdin.  argv[1]: the repository.
GATEWAY = (
    _RSS_CODE
    + r"""
import json

sys.path.insert(0, sys.argv[1])
from ogpu.testing import LocalGateway

baseline = rss_now()
with LocalGateway(storage_dir=sys.argv[2]) as gateway:
    print(json.dumps({"url": gateway.url, "upload_url": gateway.upload_url}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "add_file":
            answer = {"cid": gateway.add_file(command["path"])}
        elif command["op"] == "stats":
            answer = {
                "baseline": baseline, "peak": rss_peak(), "maxrss": maxrss(), "errors": gateway.errors,
                "uploads": [[u.cid, u.size, u.filename] for u in gateway.uploads],
            }
        else:
            answer = {"error": "unknown op"}
        print(json.dumps(answer), flush=True)
"""
)


def _report(line):
    sys.stderr.write("\n  [big_memory {}] {}\n".format(sys.version.split()[0], line))
    sys.stderr.flush()


def _mib(n):
    return "{:.1f} MiB".format(n / MiB)


def _write_source(path, size):
    """Write ``size`` bytes of stamped pattern to ``path``; return their sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as stream:
        index = 0
        left = size
        while left:
            block = struct.pack(">Q", index) + _PATTERN[8:]
            block = block[:left]
            stream.write(block)
            digest.update(block)
            left -= len(block)
            index += 1
    return digest.hexdigest()


def _sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def _client_import():
    """(sys.path entry, module name) that import the module under test."""
    if VENDORED:
        return os.path.dirname(MODULE_FILE), os.path.splitext(os.path.basename(MODULE_FILE))[0]
    return REPO, "ogpu.ipfs"


@unittest.skipIf(resource is None, "needs the resource module (POSIX)")
class BigTransferTest(unittest.TestCase):
    """2 GiB (OGPU_BIG_SIZE) through a LocalGateway, client memory bounded."""

    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp(prefix="ogpu-big-")
        try:
            cls.source = os.path.join(cls.folder, "source.bin")
            started = time.monotonic()
            cls.source_sha256 = _write_source(cls.source, SIZE)
            _report("wrote {} source in {:.1f}s".format(_mib(SIZE), time.monotonic() - started))
            cls.gateway = subprocess.Popen(
                [sys.executable, "-I", "-c", GATEWAY, REPO, os.path.join(cls.folder, "gateway")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=cls.folder,
            )
            hello = cls._gateway_line()
            cls.gateway_url, cls.upload_url = hello["url"], hello["upload_url"]
        except BaseException:
            cls._stop_gateway()
            shutil.rmtree(cls.folder, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            stats = cls._gateway_command({"op": "stats"})
            _report(
                "gateway process: RSS baseline {}, peak {}, growth {} (ru_maxrss {})".format(
                    _mib(stats["baseline"]),
                    _mib(stats["peak"]),
                    _mib(stats["peak"] - stats["baseline"]),
                    _mib(stats["maxrss"]),
                )
            )
        finally:
            cls._stop_gateway()
            shutil.rmtree(cls.folder, ignore_errors=True)
        sys.stderr.write("\n")

    @classmethod
    def _stop_gateway(cls):
        gateway = getattr(cls, "gateway", None)
        if gateway is None:
            return
        gateway.stdin.close()
        try:
            gateway.wait(60)
        except subprocess.TimeoutExpired:
            gateway.kill()
            gateway.wait()
        gateway.stdout.close()
        cls.gateway = None

    @classmethod
    def _gateway_line(cls):
        line = cls.gateway.stdout.readline()
        if not line:
            raise AssertionError("the gateway process ended (exit {})".format(cls.gateway.wait()))
        return json.loads(line.decode("utf-8"))

    @classmethod
    def _gateway_command(cls, command):
        cls.gateway.stdin.write(json.dumps(command).encode("utf-8") + b"\n")
        cls.gateway.stdin.flush()
        return cls._gateway_line()

    def setUp(self):
        self.scratch = tempfile.mkdtemp(prefix="test-", dir=self.folder)

    def tearDown(self):
        shutil.rmtree(self.scratch, ignore_errors=True)

    def run_client(self, *args):
        entry, name = _client_import()
        proc = subprocess.run(
            [sys.executable, "-I", "-c", CLIENT, entry, name, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.scratch,
            timeout=CHILD_TIMEOUT,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr.decode("utf-8", "replace"))
        figures = json.loads(proc.stdout.decode("utf-8").strip().splitlines()[-1])
        self.assertEqual(os.path.abspath(figures["module"]), MODULE_FILE)
        return figures

    def check_figures(self, what, figures):
        growth = figures["peak"] - figures["baseline"]
        rate = SIZE / figures["seconds"] / 1e6
        _report(
            "{} {}: client RSS baseline {}, peak {}, growth {} (bound {}; ru_maxrss {}); "
            "{:.1f}s, {:.0f} MB/s".format(
                what,
                _mib(SIZE),
                _mib(figures["baseline"]),
                _mib(figures["peak"]),
                _mib(growth),
                _mib(RSS_BOUND),
                _mib(figures["maxrss"]),
                figures["seconds"],
                rate,
            )
        )
        self.assertLessEqual(
            growth, RSS_BOUND, "peak RSS grew by {} during the {}".format(_mib(growth), what)
        )

    def check_gateway(self):
        stats = self._gateway_command({"op": "stats"})
        self.assertEqual(stats["errors"], [])
        growth = stats["peak"] - stats["baseline"]
        self.assertLessEqual(growth, RSS_BOUND, "the gateway's peak RSS grew by {}".format(_mib(growth)))
        return stats

    def test_publish_a_path(self):
        figures = self.run_client("publish", self.source, self.upload_url)
        link = figures["result"]
        self.check_figures("publish", figures)
        started = time.monotonic()
        expected = ipfs.compute_cid(pathlib.Path(self.source))  # a str would be content
        _report("compute_cid of the source in {:.1f}s".format(time.monotonic() - started))
        self.assertEqual(link, "{}/ipfs/{}".format(self.gateway_url, expected))
        stats = self.check_gateway()
        self.assertIn([expected, SIZE, "big.bin"], stats["uploads"])

    def test_fetch_to_file(self):
        cid = self._gateway_command({"op": "add_file", "path": self.source})["cid"]
        dest = os.path.join(self.scratch, "fetched.bin")
        figures = self.run_client("fetch", "{}/ipfs/{}".format(self.gateway_url, cid), dest)
        self.assertEqual(figures["result"], SIZE)
        self.check_figures("fetch_ipfs_to_file", figures)
        self.assertEqual(os.path.getsize(dest), SIZE)
        self.assertEqual(_sha256_file(dest), self.source_sha256)
        self.assertEqual(sorted(os.listdir(self.scratch)), ["fetched.bin"], "no temporary file left")
        self.check_gateway()

    def test_verified_fetch_to_file(self):
        # Trustless: a CAR checked block by block; only the pending links and
        # a bounded out-of-order buffer are held.
        cid = self._gateway_command({"op": "add_file", "path": self.source})["cid"]
        dest = os.path.join(self.scratch, "verified.bin")
        url = "{}/ipfs/{}".format(self.gateway_url, cid)
        figures = self.run_client("fetch-verified", url, dest)
        self.assertEqual(figures["result"], SIZE)
        self.check_figures("verified fetch_ipfs_to_file", figures)
        self.assertEqual(_sha256_file(dest), self.source_sha256)
        self.assertEqual(sorted(os.listdir(self.scratch)), ["verified.bin"], "no temporary file left")
        self.check_gateway()


if __name__ == "__main__":
    unittest.main()

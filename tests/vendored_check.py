"""Prove that ``ogpu/ipfs.py`` works when copied alone into another project.

Run from the repository root (``make check`` does)::

    python3 -m tests.vendored_check [--suite] [PYTHON ...]

1. Copies ``ogpu/ipfs.py`` alone to a temporary folder as ``ogpu_ipfs.py``.
2. Starts a :class:`ogpu.testing.LocalGateway` in this process.
3. For each interpreter given (default: this one), runs a child under
   ``-I -S`` (no environment, no site-packages, no current folder) that
   imports ``ogpu_ipfs`` from the temporary folder, computes CIDs, publishes
   to the gateway and fetches the content back; then runs the copy's command
   line (``cid`` and ``fetch``) the same way.
4. With ``--suite``, runs the whole unittest suite against the copy (through
   ``OGPU_IPFS_UNDER_TEST``, see ``tests/support.py``) with this interpreter.

Exits 0 only if everything passed.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_NAME = "ogpu_ipfs"

# Runs in the child as `python -I -S -c CHILD <folder> <upload_url>`.  Written
# for Python 3.6 and for no site-packages: standard library only.
CHILD = r"""
import importlib.util, json, os, sys

folder, upload_url = sys.argv[1], sys.argv[2]
assert not any("site-packages" in p for p in sys.path), sys.path
sys.path.insert(0, folder)
assert importlib.util.find_spec("ogpu") is None, "the ogpu package must not be importable"

import ogpu_ipfs

assert os.path.dirname(os.path.abspath(ogpu_ipfs.__file__)) == os.path.abspath(folder)
assert not [m for m in sys.modules if m == "ogpu" or m.startswith("ogpu.")], sorted(sys.modules)

# Known answers from Kubo (`ipfs add`, default settings).
assert ogpu_ipfs.compute_cid(b"") == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
assert ogpu_ipfs.compute_cid(bytes(i % 251 for i in range(262145))) == \
    "QmUSjGawaz4ptvREcMKSMJneWCa5j8dAz2wSAAvHtW2rnB"

ogpu_ipfs._PUBLISH_URL = upload_url
document = {"result": "cat", "confidence": 0.97, "python": sys.version.split()[0]}
link = ogpu_ipfs.publish_to_ipfs(document)
cid = ogpu_ipfs.compute_cid(document)
assert link.endswith("/ipfs/" + cid), (link, cid)
assert ogpu_ipfs.fetch_ipfs_json(link) == document

blob = bytes(range(256)) * 1000
link = ogpu_ipfs.publish_to_ipfs(blob, filename="blob.bin", content_type="application/octet-stream")
assert link.endswith("/ipfs/" + ogpu_ipfs.compute_cid(blob)), link
assert ogpu_ipfs.fetch_ipfs_bytes(link) == blob

try:
    ogpu_ipfs.fetch_ipfs_json(link)
except ogpu_ipfs.IPFSFetchError as exc:
    assert isinstance(exc, ogpu_ipfs.OGPUError)
else:
    raise AssertionError("binary content parsed as JSON")

print(link)
"""


def _copy_module(folder):
    target = os.path.join(folder, MODULE_NAME + ".py")
    shutil.copyfile(os.path.join(REPO, "ogpu", "ipfs.py"), target)
    return target


def _run(argv, **kwargs):
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    kwargs.setdefault("timeout", 300)
    return subprocess.run(argv, **kwargs)


def _check_interpreter(python, folder, module_path, gateway):
    """Return a list of failure descriptions (empty when all is well)."""
    failures = []
    # The child runs in the copy's folder, so nothing of this repository is
    # reachable even where -I does not drop the current folder from sys.path.
    proc = _run([python, "-I", "-S", "-c", CHILD, folder, gateway.upload_url], cwd=folder)
    if proc.returncode != 0:
        failures.append("import/publish/fetch:\n" + proc.stderr.decode("utf-8", "replace"))
        return failures
    link = proc.stdout.decode().strip().splitlines()[-1]

    sample = os.path.join(folder, "sample.bin")
    data = bytes(i % 251 for i in range(262145))
    with open(sample, "wb") as f:
        f.write(data)
    proc = _run([python, "-I", "-S", module_path, "cid", sample], cwd=folder)
    out = proc.stdout.decode().strip()
    if proc.returncode != 0 or out != "QmUSjGawaz4ptvREcMKSMJneWCa5j8dAz2wSAAvHtW2rnB":
        failures.append(
            "CLI cid: exit %d, stdout %r, stderr %r"
            % (proc.returncode, out, proc.stderr.decode("utf-8", "replace"))
        )

    proc = _run([python, "-I", "-S", module_path, "fetch", link], cwd=folder)
    if proc.returncode != 0 or proc.stdout != bytes(range(256)) * 1000:
        failures.append(
            "CLI fetch: exit %d, %d bytes on stdout, stderr %r"
            % (proc.returncode, len(proc.stdout), proc.stderr.decode("utf-8", "replace"))
        )
    return failures


def _version(python):
    proc = _run([python, "-I", "-c", "import platform; print(platform.python_version())"])
    return proc.stdout.decode().strip() or python


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pythons", nargs="*", help="interpreters to check (default: this one)")
    parser.add_argument("--suite", action="store_true", help="also run the unittest suite against the copy")
    args = parser.parse_args(argv)

    sys.path.insert(0, REPO)
    from ogpu.testing import LocalGateway

    pythons = args.pythons or [sys.executable]
    results = []
    folder = tempfile.mkdtemp(prefix="ogpu-vendored-")
    try:
        module_path = _copy_module(folder)
        print("Copied ogpu/ipfs.py alone to %s" % module_path)
        with LocalGateway() as gateway:
            for python in pythons:
                version = _version(python)
                failures = _check_interpreter(python, folder, module_path, gateway)
                results.append((version, failures))
                print("  %-8s %s" % (version, "ok" if not failures else "FAILED"), flush=True)
                for failure in failures:
                    print("    " + failure.replace("\n", "\n    "))

        if args.suite:
            print(
                "\nThe unittest suite against %s (%s):" % (module_path, _version(sys.executable)), flush=True
            )
            env = dict(os.environ, OGPU_IPFS_UNDER_TEST=module_path)
            proc = subprocess.run(
                [sys.executable, "-m", "unittest", "discover", "-s", "tests", "-t", "."],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
            )
            results.append(("suite", ["unittest exited %d" % proc.returncode] if proc.returncode else []))
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    failed = [name for name, failures in results if failures]
    if failed:
        print("Vendored copy FAILED on: %s" % ", ".join(failed))
        return 1
    print("Vendored copy ok on: %s" % ", ".join(name for name, _ in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

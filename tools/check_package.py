"""Build the sdist and wheel, install the wheel into fresh venvs, use it there.

Used by ``make package``::

    python3 tools/check_package.py --build-python .venv/bin/python [PYTHON ...]

1. Builds both distributions with ``python -m build`` (the ``build`` package
   from .venv, which builds in an isolated environment from pyproject.toml
   as pip does) into ``dist/``.
2. Checks the sdist carries what a source user needs, and the wheel carries
   ``ogpu/py.typed`` and declares no dependencies.
3. For each interpreter given: creates a fresh venv, installs the wheel with
   ``--no-index`` (so any dependency would fail the install), and from a
   folder outside the checkout runs the demo, ``ogpu-ipfs --help``,
   ``python -m ogpu --help`` and ``ogpu-ipfs cid``.

Exits 0 only if everything passed.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SDIST_MUST_HAVE = [
    "README.rst",
    "setup.cfg",
    "pyproject.toml",
    "ogpu/__init__.py",
    "ogpu/ipfs.py",
    "ogpu/testing.py",
    "ogpu/py.typed",
    "tests/support.py",
    "examples/demo.py",
    "Makefile",
]
WHEEL_MUST_HAVE = [
    "ogpu/__init__.py",
    "ogpu/__main__.py",
    "ogpu/ipfs.py",
    "ogpu/testing.py",
    "ogpu/py.typed",
]
EMPTY_FILE_CID = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"


def _step(text):
    print("--> " + text, flush=True)


def _run(argv, **kwargs):
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("timeout", 600)
    return subprocess.run(argv, check=True, **kwargs)


def _output(argv, **kwargs):
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("timeout", 600)
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, **kwargs).stdout.decode()


def build(build_python, outdir):
    if os.path.isdir(outdir):
        shutil.rmtree(outdir)
    _step("building sdist and wheel with %s -m build" % build_python)
    _run([build_python, "-m", "build", "--quiet", "--outdir", outdir, REPO], cwd=REPO)
    sdists = glob.glob(os.path.join(outdir, "ogpu_ipfs-*.tar.gz")) + glob.glob(
        os.path.join(outdir, "ogpu-ipfs-*.tar.gz")
    )
    wheels = glob.glob(os.path.join(outdir, "ogpu_ipfs-*-py3-none-any.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise SystemExit(
            "expected one sdist and one py3-none-any wheel in %s, got %s" % (outdir, os.listdir(outdir))
        )
    return os.path.abspath(sdists[0]), os.path.abspath(wheels[0])


def inspect(sdist, wheel):
    problems = []
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    problems += ["sdist lacks " + name for name in SDIST_MUST_HAVE if name not in names]

    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        problems += ["wheel lacks " + name for name in WHEEL_MUST_HAVE if name not in names]
        problems += ["wheel carries " + name for name in names if name.startswith(("tests/", "examples/"))]
        metadata_name = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = whl.read(metadata_name[0]).decode("utf-8") if metadata_name else ""
        entry_points = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = whl.read(entry_points[0]).decode("utf-8") if entry_points else ""
    headers = metadata.split("\n\n", 1)[0].splitlines()
    problems += ["wheel declares a dependency: " + h for h in headers if h.startswith("Requires-Dist:")]
    if "Requires-Python: >=3.6" not in headers:
        problems.append("wheel metadata lacks Requires-Python: >=3.6")
    if "ogpu-ipfs = ogpu.ipfs:main" not in scripts:
        problems.append("wheel lacks the ogpu-ipfs console script")
    return problems


def try_interpreter(python, wheel, workdir):
    """Install the wheel into a fresh venv made by ``python`` and use it."""
    version = _output([python, "-I", "-c", "import platform; print(platform.python_version())"]).strip()
    _step("Python %s: fresh venv, install the wheel, run it" % version)
    venv = os.path.join(workdir, "venv-" + version)
    _run([python, "-m", "venv", venv])
    bindir = os.path.join(venv, "bin")
    vpython = os.path.join(bindir, "python")
    # Outside the checkout: old pips put the current folder on sys.path and
    # would take the checkout's ogpu_ipfs.egg-info for an installed copy.
    _run(
        [vpython, "-m", "pip", "install", "--quiet", "--no-index", "--disable-pip-version-check", wheel],
        cwd=workdir,
    )
    # Outside the checkout and with -I, only the installed copy is importable.
    where = _output([vpython, "-I", "-c", "import ogpu; print(ogpu.__file__)"], cwd=workdir).strip()
    if not where.startswith(venv):
        raise SystemExit("imported ogpu from %s, not from the venv" % where)
    _run([vpython, "-I", os.path.join(REPO, "examples", "demo.py")], cwd=workdir)
    _output([os.path.join(bindir, "ogpu-ipfs"), "--help"], cwd=workdir)
    _output([vpython, "-I", "-m", "ogpu", "--help"], cwd=workdir)
    empty = os.path.join(workdir, "empty")
    open(empty, "wb").close()
    cid = _output([os.path.join(bindir, "ogpu-ipfs"), "cid", empty], cwd=workdir).strip()
    if cid != EMPTY_FILE_CID:
        raise SystemExit("ogpu-ipfs cid of an empty file printed %r" % cid)
    return version


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-python", required=True, help="interpreter with the build package")
    parser.add_argument("--outdir", default=os.path.join(REPO, "dist"))
    parser.add_argument("pythons", nargs="*", help="interpreters to install into (default: this one)")
    args = parser.parse_args(argv)

    sdist, wheel = build(args.build_python, args.outdir)
    problems = inspect(sdist, wheel)
    for problem in problems:
        print("  " + problem)
    if problems:
        return 1
    print("built %s and %s" % (os.path.basename(sdist), os.path.basename(wheel)))

    workdir = tempfile.mkdtemp(prefix="ogpu-package-")
    done = []
    try:
        for python in args.pythons or [sys.executable]:
            done.append(try_interpreter(python, wheel, workdir))
    except subprocess.CalledProcessError as exc:
        print("FAILED: %s exited %d" % (" ".join(exc.cmd), exc.returncode))
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("The wheel installs and runs on: %s" % ", ".join(done))
    return 0


if __name__ == "__main__":
    sys.exit(main())

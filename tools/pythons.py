"""Find every CPython 3.6-3.13 on this machine and run commands with each.

Used by ``make check``::

    python3 tools/pythons.py list              # one interpreter path per line
    python3 tools/pythons.py run -- -m unittest discover -s tests -t .

``run`` executes the given arguments with every interpreter found, one after
the other, streams their output, and ends with a summary table (for a unittest
run, the number of tests and skips per interpreter).  The exit status is 0
only if every run succeeded.

Interpreters are looked for under ``$(pyenv root)/versions/3.X*/bin`` first,
then as ``python3.X`` on PATH; each candidate is executed once to confirm its
version, because pyenv's shims exist on PATH even for versions that are not
active and then fail when run.  Set ``OGPU_PYTHONS`` (space-separated paths or
commands) to use exactly those interpreters instead.

This script itself runs on any Python >= 3.6.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import time

WANTED = [(3, minor) for minor in range(6, 14)]

# unittest's closing lines: "Ran 12 tests in 0.3s", then "OK (skipped=2)" or
# "FAILED (failures=1, skipped=2)".
RAN_RE = re.compile(rb"^Ran (\d+) tests? in ([\d.]+)s", re.MULTILINE)
SKIPPED_RE = re.compile(rb"^(?:OK|FAILED) \(.*?skipped=(\d+)", re.MULTILINE)

PROBE = "import sys, platform; print('%d.%d %s' % (sys.version_info[:2] + (platform.python_version(),)))"


def _probe(command):
    """Return ((major, minor), full_version) for an interpreter, or None."""
    try:
        out = subprocess.run(
            [command, "-I", "-c", PROBE],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    try:
        short, full = out.stdout.decode("ascii").split()
        major, minor = (int(part) for part in short.split("."))
    except ValueError:
        return None
    return (major, minor), full


def _pyenv_root():
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            out = subprocess.run(
                [pyenv, "root"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                timeout=60,
            )
            root = out.stdout.decode().strip()
            if out.returncode == 0 and root:
                return root
        except (OSError, subprocess.SubprocessError):
            pass
    return os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")


def _candidates(version):
    major, minor = version
    name = "python%d.%d" % (major, minor)
    root = _pyenv_root()
    # Newest patch release first: "3.9.18" sorts after "3.9.2" numerically.
    dirs = glob.glob(os.path.join(root, "versions", "%d.%d.*" % (major, minor)))
    dirs.sort(
        key=lambda d: [int(p) if p.isdigit() else -1 for p in re.split(r"[.]", os.path.basename(d))],
        reverse=True,
    )
    for d in dirs:
        yield os.path.join(d, "bin", name)
    on_path = shutil.which(name)
    if on_path:
        yield on_path


def find():
    """Return a list of (command, full_version) for the interpreters to use."""
    override = os.environ.get("OGPU_PYTHONS", "").split()
    if override:
        found = []
        for command in override:
            probed = _probe(command)
            if probed is None:
                sys.exit("tools/pythons.py: OGPU_PYTHONS names %r, which does not run" % command)
            found.append((command, probed[1]))
        return found
    found = []
    for version in WANTED:
        for command in _candidates(version):
            probed = _probe(command)
            if probed is not None and probed[0] == version:
                found.append((command, probed[1]))
                break
    return found


def _report(found, stream):
    versions = {tuple(int(p) for p in full.split(".")[:2]) for _, full in found}
    print("Interpreters found (%d):" % len(found), file=stream)
    for command, full in found:
        print("  %-8s %s" % (full, command), file=stream)
    missing = [v for v in WANTED if v not in versions]
    if missing and not os.environ.get("OGPU_PYTHONS"):
        print(
            "WARNING: not found: %s (the supported range is 3.6-3.13)"
            % ", ".join("%d.%d" % v for v in missing),
            file=stream,
        )


def cmd_list(args):
    found = find()
    if args.verbose:
        _report(found, sys.stderr)
    elif found:
        # One line: `make check` lists the interpreters in full once, in `matrix`.
        print("Interpreters: %s" % " ".join(full for _, full in found), file=sys.stderr)
    if not found:
        print("ERROR: no CPython 3.6-3.13 found", file=sys.stderr)
        return 1
    for command, _ in found:
        print(command)
    return 0


def cmd_run(args):
    found = find()
    _report(found, sys.stdout)
    if not found:
        print("ERROR: no CPython 3.6-3.13 found")
        return 1
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    rows = []
    for command, full in found:
        print("\n=== Python %s: %s %s" % (full, command, " ".join(argv)), flush=True)
        started = time.monotonic()
        # Output is captured so it can be summarised, and echoed unchanged.
        proc = subprocess.Popen(
            [command, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        chunks = []
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            chunks.append(line)
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
        status = proc.wait()
        output = b"".join(chunks)
        ran = RAN_RE.findall(output)
        skipped = SKIPPED_RE.findall(output)
        rows.append(
            (
                full,
                "ok" if status == 0 else "FAILED (exit %d)" % status,
                str(sum(int(n) for n, _ in ran)) if ran else "-",
                str(sum(int(n) for n in skipped)) if ran else "-",
                "%.1fs" % (time.monotonic() - started),
            )
        )
    print("\nSummary: %s" % " ".join(argv))
    header = ("python", "result", "tests", "skipped", "time")
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
    return 0 if all(row[1] == "ok" for row in rows) else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    listing = sub.add_parser("list", help="print the interpreters found, one per line")
    listing.add_argument("-v", "--verbose", action="store_true", help="report each one on stderr")
    run = sub.add_parser("run", help="run the given arguments with every interpreter")
    run.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.command == "list":
        return cmd_list(args)
    if args.command == "run":
        return cmd_run(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""Shared test support: the module under test, test data, leak checks.

Every test module imports the module under test through one alias::

    from tests.support import ipfs

Normally ``ipfs`` is :mod:`ogpu.ipfs`.  When the environment variable
``OGPU_IPFS_UNDER_TEST`` names a file (say a vendored copy at
``/tmp/x/ogpu_ipfs.py``), that file is loaded as a top-level module named
after it (``ogpu_ipfs``) and ``ipfs`` is that module instead, so the same
suite proves the copy works on its own.  ``make check`` does this through
``tests/vendored_check.py``.
"""

import contextlib
import gc
import importlib.util
import os
import sys
import threading
import time

UNDER_TEST_ENV = "OGPU_IPFS_UNDER_TEST"


def _load_module_under_test():
    path = os.environ.get(UNDER_TEST_ENV)
    if not path:
        import ogpu.ipfs

        return ogpu.ipfs
    path = os.path.abspath(path)
    name = os.path.splitext(os.path.basename(path))[0]
    existing = sys.modules.get(name)
    if existing is not None and os.path.abspath(getattr(existing, "__file__", "") or "") == path:
        return existing
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError("%s=%r is not a loadable Python file" % (UNDER_TEST_ENV, path))
    module = importlib.util.module_from_spec(spec)
    # Registered before executing, as the import system does: pickling the
    # module's exceptions looks their module up in sys.modules by name.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


ipfs = _load_module_under_test()

#: True when the suite runs against a copied file rather than the package.
VENDORED = ipfs.__name__ != "ogpu.ipfs"


def content(n):
    """Return ``n`` bytes of deterministic test content.

    The pattern repeats every 251 bytes (a prime), so it never lines up with
    the 256 KiB chunk size, and ``content(262145)`` equals
    ``bytes(i % 251 for i in range(262145))`` from the issue's Kubo vector.
    """
    return (bytes(range(251)) * (n // 251 + 1))[:n]


@contextlib.contextmanager
def publishing_to(gateway):
    """Point the module under test's publish endpoint at ``gateway``.

    Unlike ``LocalGateway.patch_publish()``, which patches ``ogpu.ipfs``,
    this patches whichever module ``ipfs`` is, so it also works when the
    suite runs against a vendored copy.
    """
    saved = ipfs._PUBLISH_URL
    ipfs._PUBLISH_URL = gateway.upload_url
    try:
        yield gateway
    finally:
        ipfs._PUBLISH_URL = saved


# -- leak checks -------------------------------------------------------------

_FD_DIR = "/proc/self/fd"


def open_fds():
    """Return {fd: target} for this process's open file descriptors.

    Empty where /proc is not available (then fd checks are skipped).
    """
    try:
        names = os.listdir(_FD_DIR)
    except OSError:
        return {}
    fds = {}
    for name in names:
        try:
            fds[int(name)] = os.readlink(os.path.join(_FD_DIR, name))
        except OSError:
            # The descriptor listdir itself used, closed again by now.
            continue
    return fds


class ResourceSnapshot(object):
    """Threads and file descriptors at one moment, to compare with later."""

    def __init__(self):
        self.threads = set(threading.enumerate())
        self.fds = open_fds()

    def leaks(self, grace=5.0, collect=True):
        """Return descriptions of threads and fds opened since the snapshot.

        Threads that are still finishing (a server's handler thread, say)
        get up to ``grace`` seconds in total to end: each is joined with a
        bounded timeout, no sleeping.  ``collect`` runs the garbage collector
        first, so that sockets held only by reference cycles (a traceback)
        are closed before descriptors are counted.
        """
        end = time.monotonic() + grace
        for thread in set(threading.enumerate()) - self.threads:
            thread.join(max(0.0, end - time.monotonic()))
        if collect:
            gc.collect()
        problems = []
        for thread in sorted(set(threading.enumerate()) - self.threads, key=lambda t: t.name):
            if thread.is_alive():
                problems.append("thread left running: %r" % (thread,))
        if self.fds:
            now = open_fds()
            # Compared by count: a test may close a descriptor that existed
            # before and reuse its number.  More descriptors than before means
            # at least one number is new, and those are the ones listed.
            if len(now) > len(self.fds):
                for fd in sorted(set(now) - set(self.fds)):
                    problems.append("file descriptor left open: %d -> %s" % (fd, now[fd]))
        return problems


class ThreadAndFdCheck(object):
    """TestCase mixin: fail a test that leaves threads or descriptors behind.

    Put it before ``unittest.TestCase``::

        class HostileGatewayTest(ThreadAndFdCheck, unittest.TestCase):
            ...

    The snapshot is taken in ``setUp`` (after ``setUpClass``, so class-wide
    servers do not count) and checked in a cleanup registered first, which
    therefore runs last, after the test's own cleanups have stopped its
    servers.  Subclasses overriding ``setUp`` must call ``super().setUp()``.
    """

    leak_grace = 5.0

    def setUp(self):
        super(ThreadAndFdCheck, self).setUp()
        snapshot = ResourceSnapshot()
        self.addCleanup(self._check_leaks, snapshot)

    def _check_leaks(self, snapshot):
        problems = snapshot.leaks(grace=self.leak_grace)
        if problems:
            self.fail("resources leaked:\n  " + "\n  ".join(problems))


@contextlib.contextmanager
def no_leaks(testcase, grace=5.0):
    """Context-manager form of :class:`ThreadAndFdCheck` for one block."""
    snapshot = ResourceSnapshot()
    yield snapshot
    problems = snapshot.leaks(grace=grace)
    if problems:
        testcase.fail("resources leaked:\n  " + "\n  ".join(problems))


__all__ = [
    "VENDORED",
    "ResourceSnapshot",
    "ThreadAndFdCheck",
    "content",
    "ipfs",
    "no_leaks",
    "open_fds",
    "publishing_to",
]

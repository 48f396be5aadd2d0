"""The error tree of ogpu.ipfs: classes, attributes, messages, pickling, exports."""

import copy
import inspect
import multiprocessing
import pickle
import sys
import unittest
from multiprocessing.reduction import ForkingPickler

from tests.support import VENDORED, ipfs

FETCH_URL = "https://gateway.example/ipfs/QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
EMPTY_CID = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"


def _samples():
    """One instance of each error, with every attribute set to something distinct."""
    return [
        ipfs.IPFSFetchError(FETCH_URL, "connection refused"),
        ipfs.IPFSGatewayError("https://capi.example/file/create", 503),
        ipfs.IPFSGatewayError("https://capi.example/file/create", 429, "slow down, please"),
        ipfs.IPFSVerificationError(FETCH_URL, EMPTY_CID, "block 3 does not match its CID"),
        ipfs.IPFSVerificationError(None, None, "truncated varint"),
        ipfs.IPFSVerificationError(None, EMPTY_CID, "bad"),
        ipfs.IPFSVerificationError(FETCH_URL, None, "bad"),
    ]


_ATTRIBUTES = {
    "IPFSFetchError": ("url", "reason"),
    "IPFSGatewayError": ("gateway", "status_code", "body"),
    "IPFSVerificationError": ("url", "cid", "reason"),
}


def _state(error):
    """Type, message, args and named attributes: what a round trip must keep."""
    names = _ATTRIBUTES[type(error).__name__]
    return (type(error), str(error), error.args, {name: getattr(error, name) for name in names})


def _raise_in_worker(index):
    """Run in a pool worker: raise sample ``index`` so the pool pickles it back."""
    raise _samples()[index]


class HierarchyTest(unittest.TestCase):
    def test_tree(self):
        self.assertTrue(issubclass(ipfs.OGPUError, Exception))
        self.assertIs(ipfs.IPFSError.__bases__[0], ipfs.OGPUError)
        for cls in (ipfs.IPFSFetchError, ipfs.IPFSGatewayError, ipfs.IPFSVerificationError):
            with self.subTest(cls=cls.__name__):
                self.assertIs(cls.__bases__[0], ipfs.IPFSError)
                self.assertTrue(issubclass(cls, ipfs.OGPUError))
                self.assertTrue(issubclass(cls, Exception))

    def test_siblings_are_distinct(self):
        classes = (ipfs.IPFSFetchError, ipfs.IPFSGatewayError, ipfs.IPFSVerificationError)
        for cls in classes:
            for other in classes:
                if other is not cls:
                    self.assertFalse(issubclass(cls, other), (cls, other))

    def test_not_builtin_subclasses(self):
        # Callers catching OSError or ValueError must not swallow these by accident.
        for cls in (ipfs.OGPUError, ipfs.IPFSError, ipfs.IPFSFetchError, ipfs.IPFSGatewayError,
                    ipfs.IPFSVerificationError):
            with self.subTest(cls=cls.__name__):
                self.assertFalse(issubclass(cls, (OSError, ValueError, TypeError)))

    def test_caught_as_base(self):
        for error in _samples():
            with self.subTest(error=repr(error)):
                with self.assertRaises(ipfs.IPFSError):
                    raise error
                with self.assertRaises(ipfs.OGPUError):
                    raise error

    def test_module_of_classes(self):
        for name in ("OGPUError", "IPFSError", "IPFSFetchError", "IPFSGatewayError",
                     "IPFSVerificationError"):
            with self.subTest(name=name):
                self.assertEqual(getattr(ipfs, name).__module__, ipfs.__name__)


class FetchErrorTest(unittest.TestCase):
    def test_attributes_and_message(self):
        error = ipfs.IPFSFetchError(FETCH_URL, "timed out after 30s")
        self.assertEqual(error.url, FETCH_URL)
        self.assertEqual(error.reason, "timed out after 30s")
        self.assertEqual(str(error), "Failed to fetch from IPFS " + FETCH_URL + ": timed out after 30s")
        self.assertEqual(error.args, (str(error),))

    def test_keywords(self):
        error = ipfs.IPFSFetchError(url="http://h/x", reason="r")
        self.assertEqual((error.url, error.reason), ("http://h/x", "r"))
        self.assertEqual(str(error), "Failed to fetch from IPFS http://h/x: r")

    def test_needs_both_arguments(self):
        with self.assertRaises(TypeError):
            ipfs.IPFSFetchError("http://h/x")  # pylint: disable=no-value-for-parameter


class GatewayErrorTest(unittest.TestCase):
    def test_attributes_and_message(self):
        error = ipfs.IPFSGatewayError("https://gw.example/ipfs/x", 404)
        self.assertEqual(error.gateway, "https://gw.example/ipfs/x")
        self.assertEqual(error.status_code, 404)
        self.assertIsNone(error.body)
        self.assertEqual(str(error), "IPFS gateway https://gw.example/ipfs/x returned HTTP 404")
        self.assertEqual(error.args, (str(error),))

    def test_body(self):
        error = ipfs.IPFSGatewayError("http://h", 500, body="internal trouble")
        self.assertEqual(error.body, "internal trouble")
        # The body is an attribute, not part of the SDK-compatible message.
        self.assertEqual(str(error), "IPFS gateway http://h returned HTTP 500")

    def test_positional_body(self):
        error = ipfs.IPFSGatewayError("http://h", 502, "bad gateway")
        self.assertEqual((error.gateway, error.status_code, error.body), ("http://h", 502, "bad gateway"))


class VerificationErrorTest(unittest.TestCase):
    MESSAGES = [
        ((FETCH_URL, EMPTY_CID, "r"), "Verification of {} from {} failed: r".format(EMPTY_CID, FETCH_URL)),
        ((None, EMPTY_CID, "r"), "Verification of {} failed: r".format(EMPTY_CID)),
        ((FETCH_URL, None, "r"), "Verification from {} failed: r".format(FETCH_URL)),
        ((None, None, "non-minimal varint"), "Verification failed: non-minimal varint"),
    ]

    def test_messages(self):
        self.assertTrue(self.MESSAGES)
        for args, message in self.MESSAGES:
            with self.subTest(args=args):
                error = ipfs.IPFSVerificationError(*args)
                self.assertEqual(str(error), message)
                self.assertEqual((error.url, error.cid, error.reason), args)


class PicklingTest(unittest.TestCase):
    def test_pickle_every_protocol(self):
        for error in _samples():
            for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
                with self.subTest(error=repr(error), protocol=protocol):
                    clone = pickle.loads(pickle.dumps(error, protocol))
                    self.assertIsNot(clone, error)
                    self.assertEqual(_state(clone), _state(error))

    def test_forking_pickler(self):
        # What multiprocessing uses to send a worker's exception back.
        for error in _samples():
            with self.subTest(error=repr(error)):
                clone = ForkingPickler.loads(bytes(ForkingPickler.dumps(error)))
                self.assertEqual(_state(clone), _state(error))

    def test_copy(self):
        for error in _samples():
            with self.subTest(error=repr(error)):
                self.assertEqual(_state(copy.copy(error)), _state(error))
                self.assertEqual(_state(copy.deepcopy(error)), _state(error))

    def test_clone_raises_and_is_caught(self):
        error = pickle.loads(pickle.dumps(ipfs.IPFSGatewayError("http://h", 503, "busy")))
        with self.assertRaises(ipfs.IPFSError) as caught:
            raise error
        self.assertEqual(caught.exception.status_code, 503)

    @unittest.skipUnless(
        "fork" in multiprocessing.get_all_start_methods(), "needs the fork start method"
    )
    def test_across_a_process_pool(self):
        # Provider code runs jobs in pools: an error raised in a worker must come
        # back with its attributes.  fork: the worker shares the module under test.
        context = multiprocessing.get_context("fork")
        samples = _samples()
        pool = context.Pool(1)
        try:
            results = [pool.apply_async(_raise_in_worker, (i,)) for i in range(len(samples))]
            for error, result in zip(samples, results):
                with self.subTest(error=repr(error)):
                    with self.assertRaises(type(error)) as caught:
                        result.get(timeout=60)
                    self.assertEqual(_state(caught.exception), _state(error))
        finally:
            pool.close()
            pool.join()


class ExportsTest(unittest.TestCase):
    ERRORS = ("OGPUError", "IPFSError", "IPFSFetchError", "IPFSGatewayError", "IPFSVerificationError")
    FUNCTIONS = ("publish_to_ipfs", "fetch_ipfs_json", "fetch_ipfs_bytes", "fetch_ipfs_to_file",
                 "compute_cid", "main")

    def test_all_lists_the_public_api(self):
        self.assertEqual(len(ipfs.__all__), len(set(ipfs.__all__)), "duplicates in __all__")
        self.assertEqual(set(ipfs.__all__), set(self.ERRORS + self.FUNCTIONS))
        for name in ipfs.__all__:
            with self.subTest(name=name):
                self.assertTrue(hasattr(ipfs, name))

    def test_all_is_complete(self):
        # Every public class or function defined in the module is in __all__.
        defined = set()
        for name, value in vars(ipfs).items():
            if name.startswith("_"):
                continue
            if (inspect.isclass(value) or inspect.isfunction(value)) and (
                getattr(value, "__module__", None) == ipfs.__name__
            ):
                defined.add(name)
        self.assertEqual(defined, set(ipfs.__all__))

    def test_star_import(self):
        namespace = {}
        exec("from {} import *".format(ipfs.__name__), namespace)
        namespace.pop("__builtins__", None)
        self.assertEqual(set(namespace), set(ipfs.__all__))
        for name in ipfs.__all__:
            self.assertIs(namespace[name], getattr(ipfs, name))

    def test_version(self):
        self.assertRegex(ipfs.__version__, r"^\d+\.\d+\.\d+")

    def test_package_reexports(self):
        if VENDORED:
            self.skipTest("the module under test is a vendored copy, not part of the ogpu package")
        import ogpu
        import ogpu.ipfs

        self.assertIs(ipfs, sys.modules["ogpu.ipfs"])
        for name in self.ERRORS + self.FUNCTIONS[:-1]:  # main is the CLI, not package API
            with self.subTest(name=name):
                self.assertIn(name, ogpu.__all__)
                self.assertIs(getattr(ogpu, name), getattr(ogpu.ipfs, name))
        self.assertEqual(ogpu.__version__, ogpu.ipfs.__version__)
        for name in ogpu.__all__:
            with self.subTest(name=name):
                self.assertTrue(hasattr(ogpu, name))

    def test_from_imports(self):
        if VENDORED:
            self.skipTest("the module under test is a vendored copy, not part of the ogpu package")
        from ogpu import IPFSFetchError as from_package
        from ogpu.ipfs import IPFSFetchError as from_module

        self.assertIs(from_package, from_module)
        self.assertIs(from_module, ipfs.IPFSFetchError)


if __name__ == "__main__":
    unittest.main()

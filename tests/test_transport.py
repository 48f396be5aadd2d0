"""The transport: time bounds, retries and Retry-After, logging, security rules, concurrency."""

import base64
import email.utils
import itertools
import json
import logging
import os
import pickle
import random
import shutil
import tempfile
import threading
import time
import unittest

from ogpu.testing import LocalGateway
from tests.servers import (
    RefusingPort,
    ScriptedServer,
    drip,
    endless,
    hang,
    http_response,
    redirect,
    reply,
)
from tests.support import ThreadAndFdCheck, content, ipfs, no_leaks, publishing_to

MARGIN = 5.0  # seconds of slack on every upper time bound (loaded CI machines)
OK_JSON = reply(200, b'{"ok": true}', {"Content-Type": "application/json"})


_quiet = logging.NullHandler()


def setUpModule():
    # Failures are logged as warnings; without any handler logging would print
    # them to stderr between the test dots.  The library's logger stays bare.
    logging.getLogger().addHandler(_quiet)


def tearDownModule():
    logging.getLogger().removeHandler(_quiet)


class TransportTestCase(ThreadAndFdCheck, unittest.TestCase):
    def setUp(self):
        super(TransportTestCase, self).setUp()
        saved = ipfs._PUBLISH_URL
        self.addCleanup(setattr, ipfs, "_PUBLISH_URL", saved)

    def gateway(self):
        gateway = LocalGateway()
        self.addCleanup(gateway.close)
        return gateway

    def scripted(self, *script, **kwargs):
        server = ScriptedServer(script, **kwargs)
        self.addCleanup(server.close)
        return server

    def assertRoughly(self, elapsed, low, high):
        self.assertGreaterEqual(elapsed, low)
        self.assertLess(elapsed, high)


# ---------------------------------------------------------------------------
# Time bounds
# ---------------------------------------------------------------------------


class TimeBoundTest(TransportTestCase):
    def test_silent_server_times_out(self):
        server = self.scripted(default=hang())
        url = server.url + "/ipfs/x"
        started = time.monotonic()
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.fetch_ipfs_json(url, timeout=0.5, retries=0)
        self.assertRoughly(time.monotonic() - started, 0.4, 0.5 + MARGIN)
        self.assertEqual(caught.exception.url, url)
        self.assertEqual(caught.exception.reason, "timed out after 0.5s")
        self.assertEqual(len(server.requests), 1)

    def test_silent_server_times_out_a_publish(self):
        server = self.scripted(default=hang())
        ipfs._PUBLISH_URL = server.url + "/file/create"
        started = time.monotonic()
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.publish_to_ipfs({"a": 1}, timeout=0.5, retries=0)
        self.assertRoughly(time.monotonic() - started, 0.4, 0.5 + MARGIN)
        self.assertEqual(caught.exception.reason, "timed out after 0.5s")

    def test_timeouts_are_retried_within_the_deadline(self):
        server = self.scripted(default=hang())
        started = time.monotonic()
        with self.assertLogs("ogpu.ipfs", "WARNING"):
            with self.assertRaises(ipfs.IPFSFetchError) as caught:
                ipfs.fetch_ipfs_json(server.url + "/ipfs/x", timeout=0.3, retries=20, deadline=1.0)
        self.assertRoughly(time.monotonic() - started, 0.6, 1.0 + MARGIN)
        self.assertGreaterEqual(len(server.requests), 2)
        self.assertIn(caught.exception.reason, ("timed out after 0.3s", "deadline of 1s exceeded"))

    def test_drip_is_bounded_by_the_deadline(self):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\": \""
        server = self.scripted(default=drip(itertools.chain([head], itertools.repeat(b"x")), 0.2))
        url = server.url + "/ipfs/x"
        started = time.monotonic()
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.fetch_ipfs_json(url, timeout=1, deadline=2, retries=0)
        self.assertRoughly(time.monotonic() - started, 1.5, 2 + MARGIN)
        self.assertEqual(caught.exception.reason, "deadline of 2s exceeded")

    def test_drip_of_the_body_is_bounded_by_the_deadline(self):
        data = content(10000)
        gateway = self.gateway()
        link = gateway.link(gateway.add(data))
        gateway.drip(delay=0.05)
        started = time.monotonic()
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.fetch_ipfs_bytes(link, timeout=1, deadline=1, retries=3)
        self.assertRoughly(time.monotonic() - started, 0.9, 1 + MARGIN)
        self.assertEqual(caught.exception.reason, "deadline of 1s exceeded")

    def test_endless_body_with_max_bytes(self):
        head = http_response(200, b"", {"Content-Type": "application/json"}, length=False)
        server = self.scripted(endless(head + b'{"a": "'))
        url = server.url + "/ipfs/x"
        started = time.monotonic()
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.fetch_ipfs_bytes(url, max_bytes=8 * 1024 * 1024)
        self.assertLess(time.monotonic() - started, MARGIN)
        self.assertEqual(caught.exception.reason, "response exceeds max_bytes=8388608")
        self.assertEqual(len(server.requests), 1)


# ---------------------------------------------------------------------------
# Retries
# ---------------------------------------------------------------------------


class RetryTest(TransportTestCase):
    def test_retry_after_seconds_is_honoured(self):
        server = self.scripted(reply(503, b"", {"Retry-After": "1"}), OK_JSON)
        with self.assertLogs("ogpu.ipfs", "WARNING") as logs:
            self.assertEqual(ipfs.fetch_ipfs_json(server.url + "/ipfs/x"), {"ok": True})
        first, second = server.requests
        # Backoff alone is at most 0.5 s for the first retry.
        self.assertGreaterEqual(second.received - first.received, 0.9)
        self.assertIn("retrying in 1.00s (retry 1 of 3)", logs.output[-1])

    def test_retry_after_http_date_is_honoured(self):
        when = email.utils.formatdate(time.time() + 2, usegmt=True)
        server = self.scripted(reply(429, b"", {"Retry-After": when}), OK_JSON)
        with self.assertLogs("ogpu.ipfs", "WARNING"):
            self.assertEqual(ipfs.fetch_ipfs_json(server.url + "/ipfs/x"), {"ok": True})
        first, second = server.requests
        # The date has whole seconds: 2 s ahead is more than 1 s ahead.
        self.assertGreaterEqual(second.received - first.received, 0.8)

    def test_retry_after_beyond_the_deadline_fails_at_once(self):
        server = self.scripted(default=reply(503, b"later", {"Retry-After": "30"}))
        started = time.monotonic()
        with self.assertLogs("ogpu.ipfs", "DEBUG"):
            with self.assertRaises(ipfs.IPFSGatewayError) as caught:
                ipfs.fetch_ipfs_json(server.url + "/ipfs/x", deadline=5, retries=3)
        self.assertLess(time.monotonic() - started, 2)
        self.assertEqual((caught.exception.status_code, caught.exception.body), (503, "later"))
        self.assertEqual(len(server.requests), 1)

    def test_huge_retry_after_without_deadline_fails_at_once(self):
        server = self.scripted(default=reply(503, b"", {"Retry-After": "86400"}))
        started = time.monotonic()
        with self.assertLogs("ogpu.ipfs", "DEBUG"):
            with self.assertRaises(ipfs.IPFSGatewayError):
                ipfs.fetch_ipfs_bytes(server.url + "/ipfs/x", deadline=None, retries=3)
        self.assertLess(time.monotonic() - started, 2)
        self.assertEqual(len(server.requests), 1)

    def test_retryable_statuses(self):
        for status in (408, 429, 500, 502, 503, 504):
            with self.subTest(status=status):
                server = self.scripted(reply(status, b"", {"Retry-After": "0"}), OK_JSON)
                with self.assertLogs("ogpu.ipfs", "WARNING"):
                    self.assertEqual(ipfs.fetch_ipfs_json(server.url + "/ipfs/x"), {"ok": True})
                self.assertEqual(len(server.requests), 2)

    def test_non_retryable_statuses(self):
        for status in (400, 401, 403, 404, 410, 501):
            with self.subTest(status=status):
                server = self.scripted(reply(status), OK_JSON)
                with self.assertRaises(ipfs.IPFSGatewayError) as caught:
                    ipfs.fetch_ipfs_json(server.url + "/ipfs/x")
                self.assertEqual(caught.exception.status_code, status)
                self.assertEqual(len(server.requests), 1)

    def test_logging(self):
        server = self.scripted(reply(503, b"", {"Retry-After": "0"}), OK_JSON)
        url = server.url + "/ipfs/x"
        with self.assertLogs("ogpu.ipfs", "DEBUG") as logs:
            ipfs.fetch_ipfs_json(url)
        levels = [(r.levelname, r.getMessage()) for r in logs.records]
        self.assertEqual(levels[0], ("DEBUG", "GET {} (0 bytes)".format(url)))
        failed = "GET {} failed: IPFS gateway {} returned HTTP 503".format(url, url)
        self.assertEqual(levels[1], ("WARNING", failed))
        self.assertEqual(levels[2][0], "WARNING")
        self.assertRegex(levels[2][1], r"^retrying in 0\.\d\ds \(retry 1 of 3\)$")
        self.assertEqual(levels[3], ("DEBUG", "GET {} (0 bytes)".format(url)))
        self.assertEqual(levels[4][0], "INFO")
        self.assertRegex(levels[4][1], r"^GET {} succeeded in \d+\.\d{{3}}s$".format(url))
        self.assertEqual(len(levels), 5)

    def test_publish_debug_log_gives_the_size(self):
        gateway = self.gateway()
        with publishing_to(gateway), self.assertLogs("ogpu.ipfs", "DEBUG") as logs:
            ipfs.publish_to_ipfs(b"12345")
        self.assertEqual(logs.records[0].getMessage(), "POST {} (5 bytes)".format(gateway.upload_url))
        self.assertEqual(logs.records[-1].levelname, "INFO")

    def test_library_installs_no_handlers(self):
        self.assertEqual(logging.getLogger("ogpu.ipfs").handlers, [])


class RetryPolicyTest(unittest.TestCase):
    """The pure helpers, with tables."""

    def test_parse_retry_after(self):
        now = time.time()
        cases = [
            (None, None),
            ("", None),
            ("0", 0.0),
            ("7", 7.0),
            (" 12 ", 12.0),
            ("86400", 86400.0),
            ("-1", None),
            ("1.5", None),
            ("soon", None),
            ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),  # a date in the past: now
            ("Sunday, 06-Nov-94 08:49:37 GMT", 0.0),  # RFC 850 form
            ("Sun Nov  6 08:49:37 1994", 0.0),  # asctime form
        ]
        for value, expected in cases:
            with self.subTest(value=value):
                self.assertEqual(ipfs._parse_retry_after(value), expected)
        future = email.utils.formatdate(now + 100, usegmt=True)
        self.assertTrue(98 <= ipfs._parse_retry_after(future) <= 101)
        asctime = time.asctime(time.gmtime(now + 100))
        self.assertTrue(98 <= ipfs._parse_retry_after(asctime) <= 101, asctime)

    def test_backoff_full_jitter_is_bounded_and_reproducible(self):
        caps = [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (10, 8.0)]
        rng, twin = random.Random(1234), random.Random(1234)
        for attempt, cap in caps:
            with self.subTest(attempt=attempt):
                delay = ipfs._backoff(attempt, None, rng)
                self.assertEqual(delay, twin.uniform(0, cap))
                self.assertTrue(0 <= delay <= cap)

    def test_backoff_spreads_over_the_whole_range(self):
        rng = random.Random(99)
        delays = [ipfs._backoff(3, None, rng) for _ in range(2000)]
        self.assertLess(min(delays), 0.05)
        self.assertGreater(max(delays), 3.95)
        self.assertLessEqual(max(delays), 4.0)

    def test_retry_after_is_a_lower_bound(self):
        rng = random.Random(7)
        cases = [(0, 0.0, 0.0, 0.5), (0, 3.0, 3.0, 3.0), (4, 2.0, 2.0, 8.0), (4, 20.0, 20.0, 20.0)]
        for attempt, retry_after, low, high in cases:
            with self.subTest(attempt=attempt, retry_after=retry_after):
                for _ in range(50):
                    delay = ipfs._backoff(attempt, retry_after, rng)
                    self.assertTrue(low <= delay <= high, delay)


# ---------------------------------------------------------------------------
# Security
# ---------------------------------------------------------------------------


class SecurityTest(TransportTestCase):
    def test_user_agent_on_every_request(self):
        gateway = self.gateway()
        hop = self.scripted(redirect(gateway.url + "/ipfs/" + ipfs.compute_cid(b"{}"), 302))
        gateway.add(b"{}")
        with publishing_to(gateway):
            link = ipfs.publish_to_ipfs({"a": 1})
        ipfs.fetch_ipfs_json(link)
        ipfs.fetch_ipfs_bytes(hop.url + "/ipfs/x")
        agents = [r.headers["User-Agent"] for r in gateway.requests] + [
            r.headers["user-agent"] for r in hop.requests
        ]
        self.assertEqual(len(agents), 4)
        self.assertEqual(set(agents), {"ogpu-ipfs/" + ipfs.__version__})

    def test_redirect_to_other_schemes_is_refused(self):
        for location in ("file:///etc/passwd", "ftp://127.0.0.1/x", "data:,{}", "javascript:alert(1)"):
            with self.subTest(location=location):
                server = self.scripted(redirect(location, 302))
                url = server.url + "/ipfs/x"
                with self.assertRaises(ipfs.IPFSFetchError) as caught:
                    ipfs.fetch_ipfs_json(url)
                scheme = location.split(":")[0]
                self.assertEqual(caught.exception.url, url)
                self.assertEqual(caught.exception.reason, "refused redirect to a {!r} URL".format(scheme))
                self.assertEqual(len(server.requests), 1)

    def test_follow_rules(self):
        follow = ipfs._follow
        good = [
            ("http://a/x", "/y", 302, "GET", "http://a/y"),
            ("http://a/x/y", "z", 301, "GET", "http://a/x/z"),
            ("http://a/x", "https://b/y", 307, "POST", "https://b/y"),
            ("https://a/x", "https://b:8443/y?q=1", 308, "GET", "https://b:8443/y?q=1"),
            ("https://a/x", "//b/y", 302, "GET", "https://b/y"),
            ("http://a/x", "http://user:pw@b/y", 302, "GET", "http://b/y"),  # credentials dropped
        ]
        for current, location, status, method, expected in good:
            with self.subTest(location=location):
                self.assertEqual(follow(current, location, status, method, current), expected)
        bad = [
            ("https://a/x", "http://a/y", 302, "GET", "refused redirect from https to http"),
            ("https://a/x", "HTTP://b/y", 307, "GET", "refused redirect from https to http"),
            ("http://a/x", "file:///etc/passwd", 302, "GET", "refused redirect to a 'file' URL"),
            ("https://a/x", "ftp://a/y", 302, "GET", "refused redirect to a 'ftp' URL"),
        ]
        for current, location, status, method, reason in bad:
            with self.subTest(location=location):
                with self.assertRaises(ipfs._Failure) as caught:
                    follow(current, location, status, method, current)
                error = caught.exception.error
                self.assertIs(type(error), ipfs.IPFSFetchError)
                self.assertEqual((error.url, error.reason), (current, reason))
                self.assertFalse(caught.exception.retryable)

    def test_redirect_loop(self):
        server = ScriptedServer(default=redirect("/ipfs/again", 302))
        self.addCleanup(server.close)
        url = server.url + "/ipfs/start"
        with self.assertRaises(ipfs.IPFSFetchError) as caught:
            ipfs.fetch_ipfs_json(url, retries=3)
        self.assertEqual((caught.exception.url, caught.exception.reason), (url, "too many redirects"))
        self.assertEqual(len(server.requests), ipfs._MAX_REDIRECTS + 1)

    def test_five_redirects_are_followed(self):
        hops = [redirect("/ipfs/hop{}".format(i), 301) for i in range(5)]
        server = self.scripted(*hops, OK_JSON)
        self.assertEqual(ipfs.fetch_ipfs_json(server.url + "/ipfs/start"), {"ok": True})
        self.assertEqual(server.requests[-1].target, "/ipfs/hop4")

    def test_credentials_become_basic_auth(self):
        server = self.scripted(OK_JSON)
        url = server.url.replace("http://", "http://alice:p%40ss%3Aword@") + "/ipfs/x"
        self.assertEqual(ipfs.fetch_ipfs_json(url), {"ok": True})
        expected = "Basic " + base64.b64encode(b"alice:p@ss:word").decode()
        self.assertEqual(server.requests[0].headers["authorization"], expected)
        self.assertNotIn("alice", server.requests[0].headers["host"])

    def test_credentials_never_leak(self):
        secret, token = "hunter2secret", base64.b64encode(b"bob:hunter2secret").decode()
        busy = self.scripted(default=reply(503, b"no", {"Retry-After": "0"}))
        missing = self.scripted(default=reply(404, b"gone"))
        bad_json = self.scripted(default=reply(200, b"[1]"))

        def with_creds(base):
            return base.replace("http://", "http://bob:" + secret + "@") + "/ipfs/x"

        with RefusingPort() as refused:
            cases = [
                (with_creds(refused.url), ipfs.IPFSFetchError),
                (with_creds(busy.url), ipfs.IPFSGatewayError),
                (with_creds(missing.url), ipfs.IPFSGatewayError),
                (with_creds(bad_json.url), ipfs.IPFSFetchError),
            ]
            for url, kind in cases:
                with self.subTest(url=url.split("@")[1]):
                    with self.assertLogs("ogpu.ipfs", "DEBUG") as logs:
                        with self.assertRaises(kind) as caught:
                            # One retry where it is retried: its warning is checked too.
                            ipfs.fetch_ipfs_json(url, retries=1 if kind is ipfs.IPFSGatewayError else 0)
                    error = caught.exception
                    texts = [str(error), repr(error), repr(error.args), repr(vars(error)),
                             repr(pickle.dumps(error)), str(pickle.loads(pickle.dumps(error)))]
                    texts += [record.getMessage() for record in logs.records]
                    texts += [repr(record.args) for record in logs.records]
                    for text in texts:
                        self.assertNotIn(secret, text)
                        self.assertNotIn(token, text)
                    where = getattr(error, "url", None) or error.gateway
                    self.assertTrue(where.startswith("http://"), where)
                    self.assertTrue(where.endswith(url.split("@")[1]), where)
        self.assertEqual(busy.requests[0].headers["authorization"], "Basic " + token)

    def test_auth_and_headers_not_forwarded_to_another_host(self):
        other = self.scripted(OK_JSON)
        first = self.scripted(redirect(other.url + "/ipfs/y", 302))
        url = first.url.replace("http://", "http://u:pw@") + "/ipfs/x"
        self.assertEqual(ipfs.fetch_ipfs_json(url, headers={"X-Token": "t0k"}), {"ok": True})
        sent, forwarded = first.requests[0].headers, other.requests[0].headers
        self.assertEqual(sent["authorization"], "Basic " + base64.b64encode(b"u:pw").decode())
        self.assertEqual(sent["x-token"], "t0k")
        self.assertNotIn("authorization", forwarded)
        self.assertNotIn("x-token", forwarded)
        self.assertEqual(forwarded["user-agent"], "ogpu-ipfs/" + ipfs.__version__)

    def test_auth_and_headers_kept_on_the_same_origin(self):
        server = self.scripted(redirect("/ipfs/y", 307), OK_JSON)
        url = server.url.replace("http://", "http://u:pw@") + "/ipfs/x"
        ipfs.fetch_ipfs_json(url, headers={"X-Token": "t0k"})
        for request in server.requests:
            self.assertEqual(request.headers["x-token"], "t0k")
            self.assertTrue(request.headers["authorization"].startswith("Basic "))

    def test_redirect_back_to_the_first_host_gets_the_headers_again(self):
        # Only the origin the caller named gets them; a hop elsewhere does not
        # lose them for the way back.
        first = self.scripted()
        other = self.scripted(redirect(first.url + "/ipfs/z", 302))
        first.add(redirect(other.url + "/ipfs/y", 302), OK_JSON)
        ipfs.fetch_ipfs_json(first.url + "/ipfs/x", headers={"X-Token": "t0k"})
        self.assertEqual([r.headers.get("x-token") for r in first.requests], ["t0k", "t0k"])
        self.assertNotIn("x-token", other.requests[0].headers)

    def test_header_values_with_cr_or_lf(self):
        server = self.scripted()
        ipfs._PUBLISH_URL = server.url + "/file/create"
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        for value in ("a\r\nX-Evil: 1", "a\nb", "a\rb", "a\0b"):
            with self.subTest(value=value):
                with self.assertRaises(ValueError):
                    ipfs.fetch_ipfs_json(server.url + "/ipfs/x", headers={"X-Token": value})
                with self.assertRaises(ValueError):
                    ipfs.fetch_ipfs_to_file(server.url + "/ipfs/x", os.path.join(folder, "f"),
                                            headers={"X-Token": value})
                with self.assertRaises(ValueError):
                    ipfs.publish_to_ipfs(b"x", headers={"X-Token": value})
                with self.assertRaises(ValueError):
                    ipfs.publish_to_ipfs(b"x", content_type="text/plain" + value[1:])
        self.assertEqual(server.connections, 0)
        self.assertEqual(os.listdir(folder), [])

    def test_control_characters_in_url(self):
        server = self.scripted()
        for url in (server.url + "/ipfs/x\r\nHost: evil", server.url + "/ipfs/x y", server.url + "/\x00"):
            with self.subTest(url=url):
                with self.assertRaises(ipfs.IPFSFetchError) as caught:
                    ipfs.fetch_ipfs_json(url)
                self.assertEqual(caught.exception.reason, "URL contains whitespace or control characters")
        self.assertEqual(server.connections, 0)


# ---------------------------------------------------------------------------
# Concurrency and resources
# ---------------------------------------------------------------------------


class ConcurrencyTest(TransportTestCase):
    def test_50_threads_publish_and_fetch(self):
        gateway = self.gateway()
        results = {}
        errors = []
        start = threading.Event()

        def work(index):
            start.wait(10)
            try:
                value = {"thread": index, "pad": "x" * (index * 1000)}
                link = ipfs.publish_to_ipfs(value, retries=0)
                results[index] = (link, ipfs.fetch_ipfs_json(link, retries=0), value)
            except Exception as exc:  # collected, reported below
                errors.append((index, repr(exc)))

        with publishing_to(gateway):
            threads = [threading.Thread(target=work, args=(i,)) for i in range(50)]
            for thread in threads:
                thread.start()
            start.set()
            for thread in threads:
                thread.join(30)
        self.assertFalse(any(thread.is_alive() for thread in threads))
        self.assertEqual(errors, [])
        self.assertEqual(sorted(results), list(range(50)))
        for link, fetched, value in results.values():
            self.assertEqual(fetched, value)
            self.assertEqual(link, gateway.link(ipfs.compute_cid(value)))
        self.assertEqual(len(gateway.uploads), 50)
        self.assertEqual(gateway.errors, [])

    def test_no_leaks_after_every_kind_of_failure(self):
        with no_leaks(self):
            gateway = LocalGateway()
            link = gateway.link(gateway.add(json.dumps({"a": 1}).encode()))
            silent = ScriptedServer(default=hang())
            try:
                with RefusingPort() as refused:
                    attempts = [
                        lambda: ipfs.fetch_ipfs_json(refused.url + "/ipfs/x", retries=0),
                        lambda: ipfs.fetch_ipfs_json(silent.url + "/ipfs/x", timeout=0.2, retries=0),
                        lambda: ipfs.fetch_ipfs_json(gateway.link(ipfs.compute_cid(b"none"))),
                        lambda: ipfs.fetch_ipfs_json(link, max_bytes=3),
                    ]
                    for attempt in attempts:
                        with self.assertRaises(ipfs.IPFSError):
                            attempt()
                    gateway.close_mid_body()
                    with self.assertRaises(ipfs.IPFSFetchError):
                        ipfs.fetch_ipfs_json(link, retries=0)
                    gateway.garbage()
                    with self.assertRaises(ipfs.IPFSFetchError):
                        ipfs.fetch_ipfs_json(link, retries=0)
                    self.assertEqual(ipfs.fetch_ipfs_json(link), {"a": 1})
            finally:
                silent.close()
                gateway.close()


if __name__ == "__main__":
    unittest.main()

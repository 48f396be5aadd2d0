"""TLS verification, CA bundles from the environment, private-gateway
credentials, and HTTP(S) proxies: HTTPS LocalGateways with the test CA of
tests/data/tls/ (see make_certs.sh there) and the forwarding proxy of
tests/proxy.py, all on 127.0.0.1.

Every test starts with no proxy and no CA variables in the environment (the
machine running the suite may set SSL_CERT_FILE, REQUESTS_CA_BUNDLE or a
proxy) and sets only what it exercises; the environment is restored after.
"""

import base64
import io
import logging
import os
import pickle
import re
import ssl
import sys
import time
import traceback
import unittest

from ogpu.testing import LocalGateway
from tests.proxy import ForwardingProxy
from tests.servers import RefusingPort, ScriptedServer, drip, hang
from tests.support import ThreadAndFdCheck, ipfs, open_fds, publishing_to

TLS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tls")
CA_FILE = os.path.join(TLS_DIR, "ca.pem")
CA_DIR = os.path.join(TLS_DIR, "capath")
OTHER_CA_FILE = os.path.join(TLS_DIR, "other_ca.pem")

_CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")

if sys.version_info >= (3, 7):
    # OpenSSL's own words, via SSLCertVerificationError.verify_message.
    UNTRUSTED = "TLS certificate verification failed (unable to get local issuer certificate)"
    WRONG_HOST = (
        "TLS certificate verification failed "
        "(IP address mismatch, certificate is not valid for '127.0.0.1'.)"
    )
else:
    # 3.6 has no verify_message; it checks host names itself, in Python.
    UNTRUSTED = "TLS certificate verification failed (certificate verify failed)"
    WRONG_HOST = (
        "TLS certificate verification failed "
        "(hostname '127.0.0.1' doesn't match 'wrong-host.invalid')"
    )

CONTENT = b"weights \x00\x01\x02 and other binary payloads\n" * 50


def server_context(name):
    """A server-side context presenting tests/data/tls/<name>.pem."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(
        os.path.join(TLS_DIR, name + ".pem"), os.path.join(TLS_DIR, name + ".key")
    )
    return context


def client_context(cafile=CA_FILE):
    return ssl.create_default_context(cafile=cafile)


def basic(user, password):
    token = "{}:{}".format(user, password).encode("utf-8")
    return "Basic " + base64.b64encode(token).decode("ascii")


def _is_network_variable(name):
    return name.lower().endswith("_proxy") or name in _CA_VARIABLES


class NetworkTestCase(ThreadAndFdCheck, unittest.TestCase):
    """Clean proxy and CA environment; helpers to start servers for one test."""

    def setUp(self):
        super(NetworkTestCase, self).setUp()
        saved = {k: v for k, v in os.environ.items() if _is_network_variable(k)}
        for name in saved:
            del os.environ[name]
        self.addCleanup(self._restore_environment, saved)

    @staticmethod
    def _restore_environment(saved):
        for name in [k for k in os.environ if _is_network_variable(k)]:
            del os.environ[name]
        os.environ.update(saved)

    def setenv(self, name, value):
        os.environ[name] = value

    def gateway(self, cert="server"):
        """An HTTPS LocalGateway presenting ``cert`` (None: plain HTTP), closed after the test."""
        context = None if cert is None else server_context(cert)
        gateway = LocalGateway(ssl_context=context)
        self.addCleanup(gateway.close)
        return gateway

    def proxy(self):
        proxy = ForwardingProxy()
        self.addCleanup(proxy.close)
        return proxy

    def assertPickles(self, error):
        copy = pickle.loads(pickle.dumps(error))
        self.assertIs(type(copy), type(error))
        self.assertEqual(copy.args, error.args)
        self.assertEqual(copy.__dict__, error.__dict__)

    def assertTlsFailure(self, cm, url, reason):
        error = cm.exception
        self.assertIs(type(error), ipfs.IPFSFetchError)
        self.assertEqual(error.url, url)
        self.assertEqual(error.reason, reason)
        self.assertEqual(str(error), "Failed to fetch from IPFS {}: {}".format(url, reason))
        self.assertPickles(error)


# ---------------------------------------------------------------------------
# Whom the client trusts
# ---------------------------------------------------------------------------


class TrustedTest(NetworkTestCase):
    """The test CA is trusted by a context, SSL_CERT_FILE/DIR or REQUESTS_CA_BUNDLE."""

    def setUp(self):
        super(TrustedTest, self).setUp()
        self.server = self.gateway()
        self.cid = self.server.add(CONTENT)
        self.link = self.server.link(self.cid)

    def test_gateway_speaks_https(self):
        self.assertTrue(self.server.url.startswith("https://127.0.0.1:"), self.server.url)

    def test_fetch_with_ssl_context(self):
        got = ipfs.fetch_ipfs_bytes(self.link, ssl_context=client_context())
        self.assertEqual(got, CONTENT)
        self.assertEqual([(r.method, r.path) for r in self.server.requests], [("GET", "/ipfs/" + self.cid)])

    def test_fetch_json_and_to_file_with_ssl_context(self):
        cid = self.server.add(b'{"result": "cat"}')
        context = client_context()
        self.assertEqual(
            ipfs.fetch_ipfs_json(self.server.link(cid), ssl_context=context), {"result": "cat"}
        )
        sink = io.BytesIO()
        written = ipfs.fetch_ipfs_to_file(self.link, sink, ssl_context=context)
        self.assertEqual((written, sink.getvalue()), (len(CONTENT), CONTENT))

    def test_publish_with_ssl_context(self):
        with publishing_to(self.server):
            link = ipfs.publish_to_ipfs(
                b"published over TLS", "r.bin", "application/octet-stream",
                ssl_context=client_context(),
            )
        self.assertEqual(len(self.server.uploads), 1)
        upload = self.server.uploads[0]
        self.assertEqual(upload.data, b"published over TLS")
        self.assertEqual(link, upload.link)
        self.assertTrue(link.startswith(self.server.url + "/ipfs/"), link)

    def test_ssl_cert_file(self):
        self.setenv("SSL_CERT_FILE", CA_FILE)
        self.assertEqual(ipfs.fetch_ipfs_bytes(self.link), CONTENT)
        with publishing_to(self.server):
            ipfs.publish_to_ipfs({"via": "SSL_CERT_FILE"})
        self.assertEqual(self.server.uploads[0].data, b'{"via": "SSL_CERT_FILE"}')

    def test_ssl_cert_dir(self):
        self.setenv("SSL_CERT_DIR", CA_DIR)
        self.assertEqual(ipfs.fetch_ipfs_bytes(self.link), CONTENT)

    def test_requests_ca_bundle_file(self):
        self.setenv("REQUESTS_CA_BUNDLE", CA_FILE)
        self.assertEqual(ipfs.fetch_ipfs_bytes(self.link), CONTENT)
        with publishing_to(self.server):
            ipfs.publish_to_ipfs("via REQUESTS_CA_BUNDLE", "a.txt", "text/plain")
        self.assertEqual(self.server.uploads[0].data, b"via REQUESTS_CA_BUNDLE")

    def test_requests_ca_bundle_directory(self):
        self.setenv("REQUESTS_CA_BUNDLE", CA_DIR)
        self.assertEqual(ipfs.fetch_ipfs_bytes(self.link), CONTENT)

    def test_requests_ca_bundle_wins_over_ssl_cert_file(self):
        # Like requests: when REQUESTS_CA_BUNDLE is set, it is the whole trust store.
        self.setenv("SSL_CERT_FILE", CA_FILE)
        self.setenv("REQUESTS_CA_BUNDLE", OTHER_CA_FILE)
        with self.assertRaises(ipfs.IPFSFetchError) as cm:
            ipfs.fetch_ipfs_bytes(self.link, retries=0)
        self.assertTlsFailure(cm, self.link, UNTRUSTED)

    def test_environment_is_read_at_each_call(self):
        # The client caches contexts keyed on these variables: a change between
        # calls must take effect, in either direction.
        steps = [
            ({"SSL_CERT_FILE": CA_FILE}, True),
            ({}, False),
            ({"REQUESTS_CA_BUNDLE": OTHER_CA_FILE}, False),
            ({"REQUESTS_CA_BUNDLE": CA_FILE}, True),
            ({"SSL_CERT_DIR": CA_DIR}, True),
            ({"SSL_CERT_FILE": OTHER_CA_FILE}, False),
        ]
        for variables, trusted in steps:
            with self.subTest(variables=variables):
                for name in _CA_VARIABLES:
                    os.environ.pop(name, None)
                os.environ.update(variables)
                if trusted:
                    self.assertEqual(ipfs.fetch_ipfs_bytes(self.link, retries=0), CONTENT)
                else:
                    with self.assertRaises(ipfs.IPFSFetchError) as cm:
                        ipfs.fetch_ipfs_bytes(self.link, retries=0)
                    self.assertTlsFailure(cm, self.link, UNTRUSTED)

    def test_ssl_context_wins_over_environment(self):
        self.setenv("REQUESTS_CA_BUNDLE", CA_FILE)
        with self.assertRaises(ipfs.IPFSFetchError) as cm:
            ipfs.fetch_ipfs_bytes(self.link, retries=0, ssl_context=client_context(OTHER_CA_FILE))
        self.assertTlsFailure(cm, self.link, UNTRUSTED)

    def test_localhost_name_matches(self):
        url = "https://localhost:{}/ipfs/{}".format(self.server.port, self.cid)
        self.assertEqual(ipfs.fetch_ipfs_bytes(url, ssl_context=client_context()), CONTENT)


class UntrustedTest(NetworkTestCase):
    """Verification failures: IPFSFetchError saying so, never retried, nothing sent."""

    def test_default_context_does_not_know_the_test_ca(self):
        server = self.gateway()
        link = server.link(server.add(CONTENT))
        for call in (ipfs.fetch_ipfs_bytes, ipfs.fetch_ipfs_json):
            with self.subTest(call=call.__name__):
                with self.assertRaises(ipfs.IPFSFetchError) as cm:
                    call(link)
                self.assertTlsFailure(cm, link, UNTRUSTED)
        self.assertEqual(server.requests, [])

    def test_publish_without_the_test_ca(self):
        server = self.gateway()
        with publishing_to(server):
            with self.assertRaises(ipfs.IPFSFetchError) as cm:
                ipfs.publish_to_ipfs({"a": 1})
        self.assertTlsFailure(cm, server.upload_url, UNTRUSTED)
        self.assertEqual(server.uploads, [])
        self.assertEqual(server.requests, [])

    def test_server_certificate_from_another_ca(self):
        server = self.gateway("other_server")
        link = server.link(server.add(CONTENT))
        self.setenv("SSL_CERT_FILE", CA_FILE)
        for context in (None, client_context()):
            with self.subTest(ssl_context=context):
                with self.assertRaises(ipfs.IPFSFetchError) as cm:
                    ipfs.fetch_ipfs_bytes(link, ssl_context=context)
                self.assertTlsFailure(cm, link, UNTRUSTED)
        self.assertEqual(server.requests, [])
        # ... and that server is fine for a client trusting its own CA.
        got = ipfs.fetch_ipfs_bytes(link, ssl_context=client_context(OTHER_CA_FILE))
        self.assertEqual(got, CONTENT)

    def test_certificate_for_another_host(self):
        server = self.gateway("wrong_host")
        link = server.link(server.add(CONTENT))
        with self.assertRaises(ipfs.IPFSFetchError) as cm:
            ipfs.fetch_ipfs_bytes(link, ssl_context=client_context())
        self.assertTlsFailure(cm, link, WRONG_HOST)
        self.assertEqual(server.requests, [])

    def test_verification_failure_is_not_retried(self):
        # Each attempt through a proxy is one CONNECT: a single one means the
        # failure was final at once, despite retries=3.
        server = self.gateway("other_server")
        proxy = self.proxy()
        self.setenv("HTTPS_PROXY", proxy.url)
        link = server.link(server.add(CONTENT))
        with self.assertRaises(ipfs.IPFSFetchError) as cm:
            ipfs.fetch_ipfs_bytes(link, retries=3, ssl_context=client_context())
        self.assertTlsFailure(cm, link, UNTRUSTED)
        self.assertEqual([r.method for r in proxy.requests], ["CONNECT"])

    def test_unusable_ca_bundle(self):
        # A bundle that is missing, or is not certificates, is a TLS error that
        # names the variable, and is not retried (the proxy counts attempts).
        server = self.gateway()
        link = server.link(server.add(CONTENT))
        proxy = self.proxy()
        self.setenv("HTTPS_PROXY", proxy.url)
        missing = os.path.join(TLS_DIR, "no-such-bundle.pem")
        not_pem = os.path.join(TLS_DIR, "make_certs.sh")
        cases = [
            (missing, r"No such file or directory"),
            # OpenSSL's reason code (3.8+), or its whole message (3.6, 3.7).
            (not_pem, r"NO_CERTIFICATE_OR_CRL_FOUND|\[X509\] no certificate or crl found \(_ssl\.c:\d+\)"),
        ]
        for bundle, detail in cases:
            with self.subTest(bundle=os.path.basename(bundle)):
                self.setenv("REQUESTS_CA_BUNDLE", bundle)
                with self.assertRaises(ipfs.IPFSFetchError) as cm:
                    ipfs.fetch_ipfs_bytes(link, retries=3)
                error = cm.exception
                self.assertIs(type(error), ipfs.IPFSFetchError)
                self.assertEqual(error.url, link)
                pattern = r"TLS error \(cannot load CA certificates from REQUESTS_CA_BUNDLE={} \(({})\)\)\Z"
                self.assertRegex(error.reason, pattern.format(re.escape(repr(bundle)), detail))
                self.assertPickles(error)
        # Both failed before connecting anywhere.
        self.assertEqual(proxy.requests, [])
        self.assertEqual(server.requests, [])


# ---------------------------------------------------------------------------
# Credentials in the URL, private headers, redirects
# ---------------------------------------------------------------------------

USER = "provider"
SECRET = "s3cr:t@pw"  # ':' and '@' percent-encoded in the URL
QUOTED_SECRET = "s3cr%3At%40pw"
TOKEN = "token-d41d8cd98f00b204"


class CredentialsTest(NetworkTestCase):
    def setUp(self):
        super(CredentialsTest, self).setUp()
        self.server = self.gateway()
        self.cid = self.server.add(CONTENT)
        self.netloc = "127.0.0.1:{}".format(self.server.port)
        self.secret_url = "https://{}:{}@{}/ipfs/{}".format(USER, QUOTED_SECRET, self.netloc, self.cid)
        # Errors name the URL without its credentials: the one requested (an
        # answer, a TLS failure), or as the caller gave it, redacted.
        self.bare_url = "https://{}/ipfs/{}".format(self.netloc, self.cid)
        self.shown_url = "https://***@{}/ipfs/{}".format(self.netloc, self.cid)

    def assertNoSecret(self, error, records=()):
        texts = [str(error), repr(error), repr(error.__dict__), repr(pickle.dumps(error))]
        texts.append("".join(traceback.format_exception(type(error), error, error.__traceback__)))
        texts += [record.getMessage() for record in records]
        for text in texts:
            self.assertNotIn(QUOTED_SECRET, text)
            self.assertNotIn(SECRET, text)
            self.assertNotIn(basic(USER, SECRET)[6:], text)

    def test_credentials_become_basic_auth(self):
        got = ipfs.fetch_ipfs_bytes(self.secret_url, ssl_context=client_context())
        self.assertEqual(got, CONTENT)
        (request,) = self.server.requests
        self.assertEqual(request.path, "/ipfs/" + self.cid)
        self.assertEqual(request.headers["Authorization"], basic(USER, SECRET))

    def test_credentials_when_publishing(self):
        url = "https://{}:{}@{}/file/create".format(USER, QUOTED_SECRET, self.netloc)
        saved = ipfs._PUBLISH_URL
        ipfs._PUBLISH_URL = url
        try:
            ipfs.publish_to_ipfs(b"private", "p.bin", ssl_context=client_context())
        finally:
            ipfs._PUBLISH_URL = saved
        (request,) = self.server.requests
        self.assertEqual(request.headers["Authorization"], basic(USER, SECRET))
        self.assertEqual(self.server.uploads[0].data, b"private")

    def test_credentials_never_in_a_gateway_error(self):
        self.server.fail(403, body=b"no")
        with self.assertLogs("ogpu.ipfs", logging.DEBUG) as logs:
            with self.assertRaises(ipfs.IPFSGatewayError) as cm:
                ipfs.fetch_ipfs_bytes(self.secret_url, ssl_context=client_context())
        error = cm.exception
        self.assertEqual(error.gateway, self.bare_url)
        self.assertEqual(error.status_code, 403)
        self.assertEqual(error.body, "no")
        self.assertNoSecret(error, logs.records)
        self.assertPickles(error)

    def test_credentials_never_in_a_tls_error(self):
        with self.assertLogs("ogpu.ipfs", logging.DEBUG) as logs:
            with self.assertRaises(ipfs.IPFSFetchError) as cm:
                ipfs.fetch_ipfs_bytes(self.secret_url, ssl_context=client_context(OTHER_CA_FILE))
        self.assertTlsFailure(cm, self.bare_url, UNTRUSTED)
        self.assertNoSecret(cm.exception, logs.records)

    def test_credentials_and_headers_stay_with_their_host_on_redirect(self):
        other = self.gateway()
        self.assertNotEqual(other.port, self.server.port)
        other.add(CONTENT)
        self.server.fail(302, headers={"Location": other.link(self.cid)})
        got = ipfs.fetch_ipfs_bytes(
            self.secret_url, headers={"X-Gateway-Token": TOKEN}, ssl_context=client_context()
        )
        self.assertEqual(got, CONTENT)
        (first,) = self.server.requests
        self.assertEqual(first.headers["Authorization"], basic(USER, SECRET))
        self.assertEqual(first.headers["X-Gateway-Token"], TOKEN)
        (second,) = other.requests
        self.assertEqual(second.path, "/ipfs/" + self.cid)
        self.assertNotIn("Authorization", second.headers)
        self.assertNotIn("X-Gateway-Token", second.headers)

    def test_redirect_from_https_to_http_is_refused(self):
        plain = self.gateway(cert=None)
        plain.add(CONTENT)
        self.server.fail(302, headers={"Location": plain.link(self.cid)})
        with self.assertLogs("ogpu.ipfs", logging.DEBUG) as logs:
            with self.assertRaises(ipfs.IPFSFetchError) as cm:
                ipfs.fetch_ipfs_bytes(
                    self.secret_url, headers={"X-Gateway-Token": TOKEN}, ssl_context=client_context()
                )
        self.assertTlsFailure(cm, self.shown_url, "refused redirect from https to http")
        self.assertNoSecret(cm.exception, logs.records)
        self.assertEqual(len(self.server.requests), 1)
        self.assertEqual(plain.requests, [])


# ---------------------------------------------------------------------------
# Proxies
# ---------------------------------------------------------------------------


class ProxyTest(NetworkTestCase):
    def setUp(self):
        super(ProxyTest, self).setUp()
        self.plain = self.gateway(cert=None)
        self.secure = self.gateway()
        self.plain_cid = self.plain.add(CONTENT)
        self.secure_cid = self.secure.add(CONTENT)
        self.via = self.proxy()

    def fetch_both(self):
        """Fetch from the plain and the HTTPS gateway; return the proxy's records."""
        self.assertEqual(ipfs.fetch_ipfs_bytes(self.plain.link(self.plain_cid), retries=0), CONTENT)
        got = ipfs.fetch_ipfs_bytes(
            self.secure.link(self.secure_cid), retries=0, ssl_context=client_context()
        )
        self.assertEqual(got, CONTENT)
        return [(r.method, r.target, r.status) for r in self.via.requests]

    def test_http_proxy_gets_absolute_form(self):
        for name in ("HTTP_PROXY", "http_proxy"):
            with self.subTest(variable=name):
                del self.via.requests[:], self.plain.requests[:]
                self.setenv(name, self.via.url)
                self.addCleanup(os.environ.pop, name, None)
                link = self.plain.link(self.plain_cid)
                self.assertEqual(ipfs.fetch_ipfs_bytes(link), CONTENT)
                (seen,) = self.via.requests
                self.assertEqual(seen.line, "GET {} HTTP/1.1".format(link))
                self.assertIsNone(seen.proxy_authorization)
                self.assertIsNone(seen.status)
                self.assertEqual([r.path for r in self.plain.requests], ["/ipfs/" + self.plain_cid])
                del os.environ[name]

    def test_http_proxy_is_not_used_for_https(self):
        self.setenv("HTTP_PROXY", self.via.url)
        records = self.fetch_both()
        self.assertEqual(records, [("GET", self.plain.link(self.plain_cid), None)])

    def test_https_proxy_tunnels_with_connect(self):
        for name in ("HTTPS_PROXY", "https_proxy"):
            with self.subTest(variable=name):
                del self.via.requests[:], self.secure.requests[:]
                self.setenv(name, self.via.url)
                self.addCleanup(os.environ.pop, name, None)
                got = ipfs.fetch_ipfs_bytes(self.secure.link(self.secure_cid), ssl_context=client_context())
                self.assertEqual(got, CONTENT)
                (seen,) = self.via.requests
                target = "127.0.0.1:{}".format(self.secure.port)
                self.assertEqual(seen.method, "CONNECT")
                self.assertEqual(seen.target, target)
                # HTTP/1.0 up to 3.11, HTTP/1.1 from 3.12 on.
                self.assertRegex(seen.line, r"\ACONNECT {} HTTP/1\.[01]\Z".format(re.escape(target)))
                self.assertEqual(seen.status, 200)
                # Through the tunnel: an origin-form request, TLS end to end.
                (request,) = self.secure.requests
                self.assertEqual((request.method, request.path), ("GET", "/ipfs/" + self.secure_cid))
                del os.environ[name]

    def test_tls_is_verified_end_to_end_through_the_tunnel(self):
        self.setenv("HTTPS_PROXY", self.via.url)
        link = self.secure.link(self.secure_cid)
        with self.assertRaises(ipfs.IPFSFetchError) as cm:
            ipfs.fetch_ipfs_bytes(link)  # the default context does not know the test CA
        self.assertTlsFailure(cm, link, UNTRUSTED)
        self.assertEqual([(r.method, r.status) for r in self.via.requests], [("CONNECT", 200)])
        self.assertEqual(self.secure.requests, [])

    def test_publish_through_http_proxy(self):
        self.setenv("HTTP_PROXY", self.via.url)
        with publishing_to(self.plain):
            link = ipfs.publish_to_ipfs(CONTENT, "c.bin", "application/octet-stream")
        self.assertEqual(link, self.plain.uploads[0].link)
        self.assertEqual(self.plain.uploads[0].data, CONTENT)
        (seen,) = self.via.requests
        self.assertEqual(seen.line, "POST {} HTTP/1.1".format(self.plain.upload_url))
        self.assertEqual(seen.headers["content-length"], self.plain.requests[0].headers["Content-Length"])

    def test_publish_through_https_proxy(self):
        self.setenv("HTTPS_PROXY", self.via.url)
        with publishing_to(self.secure):
            ipfs.publish_to_ipfs(CONTENT, "c.bin", ssl_context=client_context())
        self.assertEqual(self.secure.uploads[0].data, CONTENT)
        self.assertEqual([(r.method, r.status) for r in self.via.requests], [("CONNECT", 200)])

    def test_no_proxy_bypasses(self):
        values = ["127.0.0.1", "localhost,127.0.0.1", " example.org , 127.0.0.1 ", "*"]
        for name in ("NO_PROXY", "no_proxy"):
            for value in values:
                with self.subTest(variable=name, value=value):
                    del self.via.requests[:]
                    for variable in ("HTTP_PROXY", "HTTPS_PROXY"):
                        self.setenv(variable, self.via.url)
                    self.setenv(name, value)
                    self.assertEqual(self.fetch_both(), [])
                    del os.environ[name]

    def test_no_proxy_for_other_hosts_does_not_bypass(self):
        self.setenv("HTTP_PROXY", self.via.url)
        self.setenv("HTTPS_PROXY", self.via.url)
        self.setenv("NO_PROXY", "example.org,localhost")
        records = self.fetch_both()
        self.assertEqual(
            records,
            [
                ("GET", self.plain.link(self.plain_cid), None),
                ("CONNECT", "127.0.0.1:{}".format(self.secure.port), 200),
            ],
        )

    def test_proxy_credentials(self):
        url = self.via.url_with_credentials("agent", "pr:xy@pw")
        self.setenv("HTTP_PROXY", url)
        self.setenv("HTTPS_PROXY", url)
        self.assertEqual(len(self.fetch_both()), 2)
        expected = basic("agent", "pr:xy@pw")
        self.assertEqual([r.proxy_authorization for r in self.via.requests], [expected, expected])
        # Meant for the proxy alone: the CONNECT carries it, not the tunnelled request.
        (inside,) = self.secure.requests
        self.assertNotIn("Proxy-Authorization", inside.headers)

    def test_proxy_refusing_the_tunnel(self):
        # The proxy refuses any host but 127.0.0.1, and so a CONNECT to localhost.
        self.setenv("HTTPS_PROXY", self.via.url)
        link = "https://localhost:{}/ipfs/{}".format(self.secure.port, self.secure_cid)
        before = set(open_fds())
        with self.assertRaises(ipfs.IPFSFetchError) as cm:
            ipfs.fetch_ipfs_bytes(link, retries=0, ssl_context=client_context())
        self.assertEqual(cm.exception.url, link)
        self.assertEqual(cm.exception.reason, "Tunnel connection failed: 403 Forbidden")
        self.assertPickles(cm.exception)
        self.assertEqual([(r.method, r.status) for r in self.via.requests], [("CONNECT", 403)])
        # The error (and its traceback) kept alive must not keep the socket
        # open.  The proxy's side of it is closed (and joined) first.
        self.via.close()
        self.assertEqual(set(open_fds()) - before, set())

    def test_proxy_silent_after_connect(self):
        # The tunnel is read on the deadline socket too: timeout bounds it.
        with ScriptedServer([hang()]) as silent:
            self.setenv("HTTPS_PROXY", silent.url)
            link = self.secure.link(self.secure_cid)
            started = time.monotonic()
            with self.assertRaises(ipfs.IPFSFetchError) as cm:
                ipfs.fetch_ipfs_bytes(link, timeout=0.5, retries=0, ssl_context=client_context())
            elapsed = time.monotonic() - started
            self.assertEqual([(r.method, r.target) for r in silent.requests],
                             [("CONNECT", "127.0.0.1:{}".format(self.secure.port))])
        self.assertEqual(cm.exception.url, link)
        self.assertEqual(cm.exception.reason, "timed out after 0.5s")
        self.assertLess(elapsed, 0.5 + 5)

    def test_proxy_dripping_its_answer_to_connect(self):
        # One byte every 0.1 s would reset a plain socket timeout forever;
        # the deadline ends it.
        answer = b"HTTP/1.1 200 Connection established\r\nX-Pad: " + b"x" * 200
        with ScriptedServer([drip(answer, 0.1)]) as slow:
            self.setenv("HTTPS_PROXY", slow.url)
            link = self.secure.link(self.secure_cid)
            started = time.monotonic()
            with self.assertRaises(ipfs.IPFSFetchError) as cm:
                ipfs.fetch_ipfs_bytes(
                    link, timeout=5, deadline=1, retries=0, ssl_context=client_context()
                )
            elapsed = time.monotonic() - started
        self.assertEqual(cm.exception.url, link)
        self.assertEqual(cm.exception.reason, "deadline of 1s exceeded")
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 1 + 5)

    def test_unreachable_proxy(self):
        with RefusingPort() as dead:
            self.setenv("HTTP_PROXY", dead.url)
            link = self.plain.link(self.plain_cid)
            with self.assertRaises(ipfs.IPFSFetchError) as cm:
                ipfs.fetch_ipfs_bytes(link, retries=0)
        self.assertEqual(cm.exception.url, link)
        self.assertEqual(cm.exception.reason, "connection refused")
        self.assertEqual(self.plain.requests, [])


if __name__ == "__main__":
    unittest.main()

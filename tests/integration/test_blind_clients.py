"""Blind mode with real clients: each one, run under `kz run --blind`, makes one
authenticated HTTPS request to a local API (tests/servers/echo_api.py, certificate from
a CA made for the run). The client only ever holds a KZ_TOK_ token; the server must
receive the real value. What the client printed and its environment must show the
token only.

OpenSSL clients: curl, /usr/bin/python3 (urllib, requests, httpx). GnuTLS clients: git
(libcurl-gnutls) and wget. A client is skipped only when it is not installed
(scripts/setup installs all of them).
"""
import importlib.util
import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from kzt import PY, BlindTestCase  # noqa: E402

# >= 24 bytes, so the token has exactly its length. Characters that change under
# base64/hex/percent-encoding so every form of assertNoSecret differs.
CANARY = "kzCANARY/7f3a+9c1e_5b2d4f6a8c0e.d1X"

URLLIB = r'''
import os, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + os.environ["API_KEY"]})
with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
    print("status", r.status, r.read().decode())
'''

REQUESTS = r'''
import os, sys, requests
r = requests.get(sys.argv[1], headers={"Authorization": "Bearer " + os.environ["API_KEY"]},
                 verify=sys.argv[2], timeout=20)
print("status", r.status_code, r.text)
r.raise_for_status()
'''

HTTPX = r'''
import os, sys, httpx
with httpx.Client(verify=sys.argv[2], timeout=20) as c:
    r = c.get(sys.argv[1], headers={"Authorization": "Bearer " + os.environ["API_KEY"]})
    print("status", r.status_code, r.text, r.http_version)
    r.raise_for_status()
'''


def have_module(name):
    return importlib.util.find_spec(name) is not None


def need_binary(name):
    return unittest.skipUnless(shutil.which(name), "%s is not installed (scripts/setup installs it)" % name)


class BlindClientsTest(BlindTestCase):
    def setUp(self):
        super().setUp()
        self.port, self.rec = self.echo_server("tls")
        self.blind_config({"API_KEY": {"ref": "KZT_API_KEY_SRC", "hosts": ["localhost"]}})
        self.kenv = self.env(KZT_API_KEY_SRC=CANARY, GIT_TERMINAL_PROMPT="0")
        self.url = "https://localhost:%d" % self.port

    def check_client(self, name, command, path, exe_part, alpn=("http/1.1", None), must_succeed=True):
        """Runs `env; COMMAND` under kz run --blind and checks what the server and the
        client saw. Returns (kz result, token, server record)."""
        r = self.sh("env; echo '--- client output'; " + command, env=self.kenv)
        out = r.stdout + r.stderr
        diag = "%s: kz exit %d\nstdout:\n%s\nstderr:\n%s" % (name, r.returncode, r.stdout[-3000:], r.stderr[-3000:])
        if must_succeed:
            self.assertEqual(r.returncode, 0, diag)
        tok = self.tokens_in(r.stdout, "API_KEY")["API_KEY"]
        self.assertToken(tok, len(CANARY))
        self.assertNotExposed(out, CANARY, name + " output and environment")

        recs = self.records(self.rec, path)
        self.assertTrue(recs, "%s: the server received no request for %s\n%s" % (name, path, diag))
        rec = recs[0]
        got = self.auth_of(rec)
        if got == "Bearer " + tok:
            self.fail("%s: the server received the token unchanged, not the value (alpn %r, exe %s)\n%s\naudit:\n%s"
                      % (name, rec.get("alpn"), exe_part, diag, self.audit_dump()))
        self.assertEqual(got, "Bearer " + CANARY, "%s: the server did not receive the real value" % name)
        self.assertIn(rec.get("alpn"), alpn, "%s: negotiated ALPN %r" % (name, rec.get("alpn")))
        self.assertTrue(rec["complete"] and rec["framing_ok"], rec.get("error"))

        swaps = self.assertAudited("swap", decision="allow", secret="API_KEY", host="localhost")
        self.assertTrue(any(exe_part in str(s.get("exe", "")) for s in swaps),
                        "%s: no allowed swap audited for an executable like %r: %r" % (
                            name, exe_part, [s.get("exe") for s in swaps]))
        for s in swaps:
            self.assertIsInstance(s.get("pid"), int)
            self.assertIn("token_id", s)
        with open(self.audit_path) as f:
            log = f.read()
        self.assertNoSecret(log, CANARY, "audit log")
        self.assertNotIn(tok, log, "the audit log holds the token itself")
        return r, tok, rec

    # -- the environment ------------------------------------------------------------
    def test_child_environment_holds_tokens_and_the_shim(self):
        r = self.sh("env", env=self.kenv)
        self.assertEqual(r.returncode, 0, r.stderr)
        tok = self.tokens_in(r.stdout, "API_KEY")["API_KEY"]
        self.assertToken(tok, len(CANARY))
        self.assertNotExposed(r.stdout + r.stderr, CANARY, "child env")
        env = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
        self.assertIn("libkz_preload.so", env.get("LD_PRELOAD", ""))
        for p in env["LD_PRELOAD"].replace(":", " ").split():
            if "libkz_preload" in p:
                self.assertTrue(os.path.isabs(p) and os.path.exists(p), "LD_PRELOAD entry %r" % p)
        self.assertTrue(env.get("KZ_BROKER"), "KZ_BROKER is not set")
        self.assertNotIn("KZT_API_KEY_SRC", env, "the env provider's source variable reached the child")
        self.assertAudited("run.start", mode="blind")

    # -- curl (OpenSSL) ---------------------------------------------------------------
    @need_binary("curl")
    def test_curl_http11(self):
        self.check_client("curl --http1.1",
                          'curl -sS --fail --max-time 20 --http1.1 --cacert "%s" -H "Authorization: Bearer $API_KEY" '
                          '%s/v1/curl-http11' % (self.ca["ca"], self.url), "/v1/curl-http11", "curl")

    @need_binary("curl")
    def downgrade(self):
        """[blind] http2 = false against a server that offers h2 first but speaks only
        HTTP/1.1: the shim must take h2 out of the client's offer. (HTTP/2 itself, the
        default: test_blind_http2.)"""
        self.port, self.rec = self.echo_server("tls", alpn="h2,http/1.1")
        self.url = "https://localhost:%d" % self.port
        self.blind_config({"API_KEY": {"ref": "KZT_API_KEY_SRC", "hosts": ["localhost"]}}, extra="http2 = false\n")

    def test_curl_default_protocol(self):
        # curl offers h2 over TLS by default: with http2 = false the shim takes it out.
        self.downgrade()
        self.check_client("curl", 'curl -sS --fail --max-time 20 --cacert "%s" -H "Authorization: Bearer $API_KEY" '
                          '%s/v1/curl-default' % (self.ca["ca"], self.url), "/v1/curl-default", "curl",
                          alpn=("http/1.1",))

    @need_binary("curl")
    def test_curl_http2_falls_back_to_http11(self):
        self.downgrade()
        _, _, rec = self.check_client(
            "curl --http2", 'curl -sS --fail --max-time 20 --http2 --cacert "%s" -H "Authorization: Bearer $API_KEY" '
            '%s/v1/curl-http2' % (self.ca["ca"], self.url), "/v1/curl-http2", "curl", alpn=("http/1.1",))
        self.assertEqual(rec["version"], "HTTP/1.1")
        self.assertFalse([x for x in self.records(self.rec) if x["method"] == "PRI"],
                         "curl --http2 spoke HTTP/2 to the server: h2 was not removed from the ALPN offer")

    # -- Python (OpenSSL through the ssl module) --------------------------------------
    def test_python_urllib(self):
        script = self.write("client_urllib.py", URLLIB)
        r, tok, _ = self.check_client("urllib", '%s %s %s/v1/urllib "%s"' % (PY, script, self.url, self.ca["ca"]),
                                      "/v1/urllib", "python")
        self.assertIn("status 200", r.stdout)

    @unittest.skipUnless(have_module("requests"), "python3-requests is not installed (scripts/setup installs it)")
    def test_python_requests(self):
        script = self.write("client_requests.py", REQUESTS)
        r, _, _ = self.check_client("requests", '%s %s %s/v1/requests "%s"' % (PY, script, self.url, self.ca["ca"]),
                                    "/v1/requests", "python")
        self.assertIn("status 200", r.stdout)

    @unittest.skipUnless(have_module("httpx"), "python3-httpx is not installed (scripts/setup installs it)")
    def test_python_httpx(self):
        script = self.write("client_httpx.py", HTTPX)
        r, _, _ = self.check_client("httpx", '%s %s %s/v1/httpx "%s"' % (PY, script, self.url, self.ca["ca"]),
                                    "/v1/httpx", "python")
        self.assertIn("status 200", r.stdout)

    # -- GnuTLS clients ------------------------------------------------------------------
    @need_binary("git")
    def test_git_https(self):
        # git's default: libcurl-gnutls offering h2 (http2 = false takes it out). The server
        # answers 200 with JSON, so git fails after the request ("not a git repository"):
        # only the request matters.
        self.downgrade()
        self.check_client(
            "git", 'git -c http.extraHeader="Authorization: Bearer $API_KEY" -c http.sslCAInfo="%s" '
            'ls-remote %s/repo.git; echo "git exit $?"' % (self.ca["ca"], self.url),
            "/repo.git/info/refs", "git", alpn=("http/1.1",))

    @need_binary("git")
    def test_git_https_http11(self):
        self.check_client(
            "git http/1.1", 'git -c http.version=HTTP/1.1 -c http.extraHeader="Authorization: Bearer $API_KEY" '
            '-c http.sslCAInfo="%s" ls-remote %s/repo.git; echo "git exit $?"' % (self.ca["ca"], self.url),
            "/repo.git/info/refs", "git")

    @need_binary("wget")
    def test_wget(self):
        r, _, _ = self.check_client(
            "wget", 'wget -q -O - --timeout=20 --tries=1 --ca-certificate="%s" '
            '--header="Authorization: Bearer $API_KEY" %s/v1/wget' % (self.ca["ca"], self.url),
            "/v1/wget", "wget")
        self.assertIn('"ok": true', r.stdout)


if __name__ == "__main__":
    unittest.main()

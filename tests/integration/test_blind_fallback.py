"""Blind mode's fallback: clients the shim cannot serve (node 20 with its own OpenSSL,
Java 17, a Go program built with CGO_ENABLED=0, a C client linked statically against
libssl.a) run under `kz run --blind` with no proxy variables. Their connections are
redirected to kz's TLS proxy (eBPF when root, and the seccomp supervisor, forced with
--redirector=seccomp), which swaps the token for the value on the way to the bound host.
`--blind=proxy` does the same for curl and Debian's python3 requests.

The clients are built by tests/clients/build_clients.sh (Go, the C clients, Java); one
that cannot be built or is not installed is skipped with the reason.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from kzt import PY, SRC, BlindTestCase  # noqa: E402

CANARY = "kzCANARY/fb3a+9c1e_5b2d4f6a8c0e.q7Z"
OTHER = "kzOTHER/0a1b+2c3d_4e5f6a7b8c9d.r8Y"
CLIENTS = os.path.join(SRC, "tests", "clients")

REQUESTS = r'''
import os, sys, requests
r = requests.get(sys.argv[1], headers={"Authorization": "Bearer " + os.environ["API_KEY"]}, timeout=20)
print("status", r.status_code, r.text)
'''


def kz_doctor():
    kz = os.environ.get("KZ_BIN")
    r = subprocess.run([kz, "doctor"], capture_output=True, text=True, timeout=60)
    return r.stdout


def redirect_available(name):
    for line in kz_doctor().splitlines():
        if line.startswith("redirect: %s " % name):
            return "available" in line and "unavailable" not in line, line
    return False, "kz doctor has no redirect line for %s" % name


class Clients:
    """The client programs, built once per test run into a temporary directory (all of
    them, or with only="go" the Go programs alone)."""
    out = None
    log = ""
    built = set()

    @classmethod
    def build(cls, only=None):
        if cls.out is None:
            cls.out = tempfile.mkdtemp(prefix="kz-clients-")
        if only not in cls.built and None not in cls.built:
            r = subprocess.run(["bash", os.path.join(CLIENTS, "build_clients.sh"), cls.out] + ([only] if only else []),
                               capture_output=True, text=True, timeout=900)
            cls.log = r.stdout + r.stderr
            cls.built.add(only)
        return cls.out

    @classmethod
    def command(cls, kind, url, var="API_KEY"):
        """argv for one client, or None (with the reason in cls.log)."""
        out = cls.build()
        if kind in ("node-https", "node-fetch"):
            node = shutil.which("node")
            return [node, os.path.join(CLIENTS, "node_client.mjs"), kind.split("-")[1], url, var] if node else None
        if kind == "java":
            java = shutil.which("java")
            cls_dir = os.path.join(out, "java")
            ok = java and os.path.exists(os.path.join(cls_dir, "JavaClient.class"))
            return [java, "-cp", cls_dir, "JavaClient", url, var] if ok else None
        path = os.path.join(out, {"go": "go_client", "static": "static_client"}[kind])
        return [path, url, var] if os.path.exists(path) else None


def tearDownModule():
    if Clients.out:
        shutil.rmtree(Clients.out, True)


class FallbackCases:
    """The cases, run once per redirector by the classes at the end."""
    REDIRECTOR = None

    def setUp(self):
        super().setUp()
        ok, why = redirect_available(self.REDIRECTOR)
        if not ok:
            print("SKIP: %s redirect unavailable: %s" % (self.REDIRECTOR, why))
            self.skipTest(why)
        self.port, self.rec = self.echo_server("tls")
        self.url = "https://localhost:%d" % self.port
        self.kenv = self.env(KZT_API_KEY_SRC=CANARY, KZT_OTHER_SRC=OTHER)
        self.write_config()

    def write_config(self, extra_ports=()):
        ports = ", ".join(str(p) for p in (self.port, *extra_ports))
        self.blind_config({"API_KEY": {"ref": "KZT_API_KEY_SRC", "hosts": ["localhost"]},
                           "OTHER_KEY": {"ref": "KZT_OTHER_SRC", "hosts": ["api.example"]}},
                          extra="proxy_ports = [%s]\n" % ports)

    def run_client(self, argv, flags=(), env=None):
        flags = ["--redirector=" + self.REDIRECTOR, "-v", *flags]
        script = 'env; echo "--- client output"; exec "$@"'
        return self.run_blind("/bin/sh", "-c", script, "sh", *argv, flags=flags, env=env or self.kenv,
                              timeout=180)

    def check_swapped(self, r, path, exe_part):
        """The server got the value; the client and its environment only the token."""
        out = r.stdout + r.stderr
        diag = "kz exit %d\nstdout:\n%s\nstderr:\n%s\naudit:\n%s" % (
            r.returncode, r.stdout[-3000:], r.stderr[-3000:], self.audit_dump())
        self.assertEqual(r.returncode, 0, diag)
        tok = self.tokens_in(r.stdout, "API_KEY")["API_KEY"]
        self.assertToken(tok, len(CANARY))
        self.assertNotExposed(out, CANARY, "client output and environment")
        env = r.stdout.split("--- client output")[0]
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
            self.assertNotIn(var + "=", env, "a proxy variable reached the client")
        recs = self.records(self.rec, path)
        self.assertTrue(recs, "the server received no request for %s\n%s" % (path, diag))
        self.assertEqual(self.auth_of(recs[0]), "Bearer " + CANARY,
                         "the server did not receive the real value\n" + diag)
        swaps = self.assertAudited("swap", decision="allow", secret="API_KEY", host="localhost")
        self.assertTrue(any(exe_part in str(s.get("exe", "")) for s in swaps),
                        "no allowed swap audited for %r: %r" % (exe_part, [s.get("exe") for s in swaps]))
        routes = [x for x in self.audit_events("route", route="proxy") if exe_part in str(x.get("exe", ""))]
        self.assertTrue(routes, "no route record sending %s to the proxy\n%s" % (exe_part, self.audit_dump()))
        self.assertIn("→ proxy", r.stderr, "kz run -v does not show the routing decision")
        with open(self.audit_path) as f:
            self.assertNoSecret(f.read(), CANARY, "audit log")
        return tok

    def client_case(self, kind, exe_part):
        path = "/v1/%s-%s" % (kind, self.REDIRECTOR)
        argv = Clients.command(kind, self.url + path)
        if argv is None:
            print("SKIP: %s client unavailable\n%s" % (kind, Clients.log[-2000:]))
            self.skipTest("%s client unavailable" % kind)
        self.check_swapped(self.run_client(argv), path, exe_part)

    # -- clients the shim cannot serve, under plain --blind ----------------------------
    def test_node_https_request(self):
        self.client_case("node-https", "node")

    def test_node_fetch(self):
        self.client_case("node-fetch", "node")

    def test_java_http_client(self):
        self.client_case("java", "java")

    def test_go_static(self):
        self.client_case("go", "go_client")

    def test_c_static_libssl(self):
        self.client_case("static", "static_client")

    # -- --blind=proxy: every program through the proxy ----------------------------------
    def test_blind_proxy_curl_and_requests(self):
        r = self.run_blind("/bin/sh", "-c", 'env; echo "--- client output"; curl -sS --fail --max-time 20 '
                           '-H "Authorization: Bearer $API_KEY" %s/v1/proxy-curl2' % self.url,
                           flags=["--blind=proxy", "--redirector=" + self.REDIRECTOR, "-v"], env=self.kenv)
        self.check_swapped(r, "/v1/proxy-curl2", "curl")
        env = r.stdout.split("--- client output")[0]
        # No shim swaps under --blind=proxy: there is no broker. With the sensors on the
        # shim is preloaded as the in-process witness only (test_sensor_witness).
        self.assertNotIn("KZ_BROKER", env)
        self.assertNotIn("KZ_PRELOAD=", env)
        if "LD_PRELOAD=" in env:
            self.assertIn("KZ_WITNESS=", env, "--blind=proxy loaded the shim for something but witnessing")
        py = self.write("req.py", REQUESTS)
        r = self.run_client([PY, py, self.url + "/v1/proxy-requests"], flags=["--blind=proxy"])
        self.check_swapped(r, "/v1/proxy-requests", "python3")

    # -- exfiltration through the proxy ---------------------------------------------------
    def test_token_for_another_host_is_refused(self):
        # OTHER_KEY is bound to api.example: through the proxy to localhost it stays a token.
        argv = Clients.command("go", self.url + "/v1/exfil-other", var="OTHER_KEY")
        if argv is None:
            self.skipTest("go client unavailable")
        r = self.run_client(argv)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        tok = self.tokens_in(r.stdout, "OTHER_KEY")["OTHER_KEY"]
        rec = self.records(self.rec, "/v1/exfil-other")[0]
        self.assertEqual(self.auth_of(rec), "Bearer " + tok, "the token must arrive unchanged")
        self.assertAudited("swap", decision="refuse", secret="OTHER_KEY", host="localhost")

    def test_plain_http_is_refused(self):
        pport, prec = self.echo_server("plain")
        self.write_config(extra_ports=(pport,))
        argv = Clients.command("go", "http://127.0.0.1:%d/v1/plain" % pport)
        if argv is None:
            self.skipTest("go client unavailable")
        r = self.run_client(argv)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        tok = self.tokens_in(r.stdout, "API_KEY")["API_KEY"]
        self.assertEqual(self.auth_of(self.records(prec, "/v1/plain")[0]), "Bearer " + tok)
        self.assertAudited("swap", decision="refuse", secret="API_KEY", channel="plain")

    def test_unverified_upstream_is_passed_through_and_refused(self):
        rport, rrec = self.echo_server("rogue")
        self.write_config(extra_ports=(rport,))
        # curl -k: a client that would accept any certificate still never gets the value
        # swapped in, and it sees the rogue certificate itself, not one of kz's.
        r = self.run_blind("/bin/sh", "-c", 'curl -sS -k --http1.1 --max-time 20 -H "Authorization: Bearer $API_KEY" '
                           '-w "\\nissuer=%%{certs}" https://localhost:%d/v1/rogue; echo; env' % rport,
                           flags=["--blind=proxy", "--redirector=" + self.REDIRECTOR], env=self.kenv)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        tok = self.tokens_in(r.stdout, "API_KEY")["API_KEY"]
        self.assertEqual(self.auth_of(self.records(rrec, "/v1/rogue")[0]), "Bearer " + tok)
        self.assertNotIn("KeyZero ephemeral CA", r.stdout, "the client was shown a certificate minted by kz")
        recs = [x for x in self.audit_events("proxy", decision="refuse") if "verif" in x.get("reason", "")]
        self.assertTrue(recs, "no audited refusal for the unverified upstream\n" + self.audit_dump())

    def test_unbound_tls_passes_through_untouched(self):
        # No secret is bound to 127.0.0.1: the proxy splices, and the client sees the
        # server's own certificate (issued by the test CA, which it trusts through
        # SSL_CERT_FILE; kz's bundle keeps it and adds the run's CA).
        env = dict(self.kenv, SSL_CERT_FILE=self.ca["ca"])
        r = self.run_blind("/bin/sh", "-c", "echo | openssl s_client -connect 127.0.0.1:%d -verify_return_error "
                           "2>&1 | grep -E '^(issuer|Verify return code)'" % self.port,
                           flags=["--blind=proxy", "--redirector=" + self.REDIRECTOR], env=env)
        self.assertIn("KeyZero Test CA", r.stdout, r.stdout + r.stderr)
        self.assertIn("Verify return code: 0", r.stdout)
        self.assertAudited("proxy", decision="passthrough")


class FallbackEbpfTest(FallbackCases, BlindTestCase):
    REDIRECTOR = "ebpf"


class FallbackSeccompTest(FallbackCases, BlindTestCase):
    REDIRECTOR = "seccomp"


class FallbackStartupTest(BlindTestCase):
    def test_ebpf_asked_for_but_unavailable_is_an_error_before_resolution(self):
        ok, _ = redirect_available("ebpf")
        if ok:
            self.skipTest("eBPF is available here")
        self.blind_config({"API_KEY": {"ref": "KZT_API_KEY_SRC", "hosts": ["localhost"]}})
        r = self.run_blind("true", flags=["--redirector=ebpf"], env=self.env(KZT_API_KEY_SRC=CANARY))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("eBPF redirect is not available", r.stderr)
        self.assertFalse(self.audit_events("resolve"), "a secret was resolved before the set-up failed")

    def test_trust_bundles_are_removed_when_the_run_ends(self):
        self.blind_config({"API_KEY": {"ref": "KZT_API_KEY_SRC", "hosts": ["localhost"]}})
        # While the run lasts: a 0700 directory of 0600 files, none holding a private key
        # (the CA's key exists only in kz's memory).
        script = ('echo "$SSL_CERT_FILE"; d=$(dirname "$SSL_CERT_FILE"); stat -c "%a %n" "$d" "$d"/*; '
                  '! grep -l "PRIVATE KEY" "$d"/* && test -r "$SSL_CERT_FILE"')
        r = self.run_blind("/bin/sh", "-c", script, env=self.env(KZT_API_KEY_SRC=CANARY))
        if "no redirect" in r.stderr:
            self.skipTest("no redirector on this machine")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.strip().splitlines()
        path = lines[0]
        self.assertTrue(path.startswith("/"), path)
        modes = [l.split()[0] for l in lines[1:]]
        self.assertEqual(modes[0], "700", r.stdout)
        self.assertTrue(len(modes) >= 3 and all(m == "600" for m in modes[1:]), r.stdout)
        self.assertFalse(os.path.exists(path), "the run's CA bundle outlived the run")
        self.assertFalse(os.path.exists(os.path.dirname(path)))


if __name__ == "__main__":
    unittest.main()

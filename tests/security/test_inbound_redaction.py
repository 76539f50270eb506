"""Inbound redaction (issue 15, "Also found"): a bound host that echoes the credential
back must not hand the value to the agent, in whatever form the server spells it.

The agent is a curl, python3 or wget (GnuTLS) client under `kz run --blind` (the shim) and under
`--blind=proxy` (kz's TLS proxy); the server (tests/servers/reflect_api.py, a real TLS
server on loopback with the test CA) reflects the value of the Authorization header:
  - in every encoded form: raw, base64 (standard and URL-safe, with and without padding),
    hex (lower and upper case), percent-encoded (upper- and lower-case hex), JSON-escaped
    (with and without \/);
  - split across two chunks of a chunked body;
  - split across two TCP writes (two TLS records, so two reads) with a flush between;
  - compressed (gzip, deflate, br) although the request asked for identity: the read
    fails (EPROTO) and the refusal is audited;
  - compressed only when asked: the request that carries the value asks for identity.
Each test asserts that the agent's output never holds the value in any encoding, and
holds the token (in the same form) instead.
"""
import base64
import binascii
import json
import os
import re
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from kzt import PY, BlindTestCase, ServerProcess  # noqa: E402
from test_blind_fallback import redirect_available  # noqa: E402

# >= 24 bytes (its token has its length); '/', '+' and '"' make the percent and JSON
# forms differ from the raw value.
CANARY = 'kzCANARY/fb3a+9c1e"5b2d4f6a8c0e.q7Zx'

# The forms the reflecting server writes the value in (one definition for both sides).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "servers"))
from reflect_api import FORMS as ENCODE  # noqa: E402


def b64any(s):
    s = s.replace("-", "+").replace("_", "/")
    return base64.b64decode(s + "=" * (-len(s) % 4))


DECODE = {
    "raw": lambda s: s,
    "base64": lambda s: b64any(s).decode(),
    "base64nopad": lambda s: b64any(s).decode(),
    "base64url": lambda s: b64any(s).decode(),
    "base64urlnopad": lambda s: b64any(s).decode(),
    "hexlower": lambda s: binascii.unhexlify(s).decode(),
    "hexupper": lambda s: binascii.unhexlify(s).decode(),
    "percent": urllib.parse.unquote,
    "json": lambda s: json.loads('"' + s + '"'),
    "percentlower": urllib.parse.unquote,
    "jsonslash": lambda s: json.loads('"' + s + '"'),
}

# The agent's python3 client: reads the response in small pieces (http.client over
# the ssl module: SSL_read_ex), prints status and body.
PY_CLIENT = r'''
import http.client, os, ssl, sys
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = http.client.HTTPSConnection(host, port, context=ssl.create_default_context(cafile=os.environ["CA"]), timeout=20)
c.request("GET", path, headers={"Authorization": "Bearer " + os.environ["API_KEY"], "Accept-Encoding": "identity"})
r = c.getresponse()
body = b""
while True:
    piece = r.read(7)
    if not piece:
        break
    body += piece
print("status", r.status)
print(body.decode(errors="replace"))
'''


# Review 27b, finding 1: two pipelined requests in one write, POST /echo (its answer ends
# with the value, split across two TLS records) then a HEAD whose query holds a token
# (the request the last token was bound to). The POST's answer must be framed as a
# POST's: framed as the HEAD's (no body), its body was taken for the next head, the
# stream went opaque and scanned each record alone, and the halves went through.
PIPELINE_CLIENT = r'''
import os, socket, ssl, sys
host, port = sys.argv[1], int(sys.argv[2])
tok = os.environ["API_KEY"]
ctx = ssl.create_default_context(cafile=os.environ["CA"])
s = ctx.wrap_socket(socket.create_connection((host, port), timeout=20), server_hostname=host)
body = ("pad:" + "x" * 64 + " " + tok + "\n").encode()   # the newline ends the token
hp = "Host: %s:%d\r\n" % (host, port)
req = ("POST /echo HTTP/1.1\r\n" + hp + "Authorization: Bearer " + tok + "\r\nContent-Type: text/plain\r\n"
       "Content-Length: %d\r\n\r\n" % len(body)).encode() + body
req += ("HEAD /reflect/raw/cl?q=" + tok + " HTTP/1.1\r\n" + hp + "Connection: close\r\n\r\n").encode()
s.sendall(req)
out = b""
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
    rc = 0
except (OSError, ssl.SSLError) as e:
    rc = 1
    print("read failed:", type(e).__name__)
sys.stdout.write(out.decode(errors="replace"))
print()
print("rc=%d" % rc)
'''

# Review 27b, finding 2: thread A waits in SSL_read on a fresh connection (no value on it
# yet); thread B then writes a request with the token. The server's answer (head and
# echo in one record) returns to A's read, which started before the value went out: it
# must still be redacted. A is seen waiting in the read system call (/proc), no sleep.
CONCURRENT_CLIENT = r'''
import os, platform, socket, ssl, sys, threading
host, port = sys.argv[1], int(sys.argv[2])
tok = os.environ["API_KEY"]
ctx = ssl.create_default_context(cafile=os.environ["CA"])
s = ctx.wrap_socket(socket.create_connection((host, port)), server_hostname=host)
s.settimeout(None)   # A blocks in the read system call itself (no poll)
READS = {"x86_64": {"0", "45"}, "aarch64": {"63", "207"}}.get(platform.machine(), {"0", "45", "63", "207"})
out, err, tid = [], [], []
started = threading.Event()
def reader():
    tid.append(threading.get_native_id())
    started.set()
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out.append(d)
    except (OSError, ssl.SSLError) as e:
        err.append(type(e).__name__)
a = threading.Thread(target=reader)
a.start()
started.wait()
path = "/proc/self/task/%d/syscall" % tid[0]
polls = 0
while True:   # until A waits in read(2)/recvfrom(2) on the socket, inside SSL_read
    with open(path) as f:
        fields = f.read().split()
    polls += 1
    if fields and fields[0] in READS and len(fields) > 1 and int(fields[1], 16) == s.fileno():
        break
    if polls > 10000000:
        print("reader never blocked"); sys.exit(3)
    os.sched_yield()
req = ("GET /reflect/raw/onewrite HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
       "Connection: close\r\n\r\n" % (host, port, tok)).encode()
s.sendall(req)
a.join(30)
sys.stdout.write(b"".join(out).decode(errors="replace"))
print()
print("errors", err)
print("rc=%d" % (0 if not err and not a.is_alive() else 1))
'''


class InboundCases:
    """The cases; the classes at the end run them with the shim and with the proxy."""
    FLAGS = ()
    PROXY = False

    def setUp(self):
        super().setUp()
        if self.PROXY:
            ok, why = redirect_available("seccomp")
            if not ok:
                print("SKIP: seccomp redirect unavailable: %s" % why)
                self.skipTest(why)
        self.record = os.path.join(self.srv, "reflect.jsonl")
        s = ServerProcess("reflect_api.py", "--record", self.record, "--cert", self.ca["server"],
                          "--key", self.ca["server_key"])
        self.addCleanup(s.stop)
        self.port = s.port
        self.url = "https://localhost:%d" % self.port
        self.kenv = self.env(KZT_API_KEY_SRC=CANARY, CA=self.ca["ca"])
        extra = "proxy_ports = [%d]\n" % self.port if self.PROXY else ""
        self.blind_config({"API_KEY": {"ref": "KZT_API_KEY_SRC", "hosts": ["localhost"]}}, extra=extra)

    # -- clients -----------------------------------------------------------------------
    def run_agent(self, script):
        r = self.run_blind("/bin/sh", "-c", 'echo "API_KEY=$API_KEY"; echo "--- agent"; ' + script,
                           flags=self.FLAGS, env=self.kenv, timeout=120)
        return r

    def curl(self, path, compressed=False):
        ca = "" if self.PROXY else '--cacert "$CA" '
        return self.run_agent('curl -sS --max-time 20 %s%s-H "Authorization: Bearer $API_KEY" "%s%s"; echo "rc=$?"' % (
            "--compressed " if compressed else "", ca, self.url, path))

    def wget(self, path):
        """Debian's wget: GnuTLS (the shim's gnutls_record_recv path)."""
        # Under the proxy: the run's trust bundle, which kz names in SSL_CERT_FILE.
        ca = '--ca-certificate="${SSL_CERT_FILE:-$CA}" ' if self.PROXY else '--ca-certificate="$CA" '
        return self.run_agent('wget -q -O - --timeout=20 --tries=1 %s--header="Authorization: Bearer $API_KEY" '
                              '"%s%s"; echo "rc=$?"' % (ca, self.url, path))

    def python(self, path):
        py = self.write("client.py", PY_CLIENT)
        # Under the proxy the client must trust the run's CA: kz points SSL_CERT_FILE at it.
        pre = 'CA="${SSL_CERT_FILE:-$CA}" ' if self.PROXY else ""
        return self.run_agent('%s"%s" "%s" localhost %d "%s"; echo "rc=$?"' % (pre, PY, py, self.port, path))

    # -- checks ------------------------------------------------------------------------
    def assertNoValue(self, r):
        out = r.stdout + r.stderr
        for name, enc in ENCODE.items():
            self.assertNotIn(enc(CANARY.encode()).decode(), out, "the agent saw the value (%s form)\n%s" % (name, out[-3000:]))
        self.assertNotExposed(out, CANARY, "agent output")

    def assertEchoedToken(self, r, form):
        self.assertNoValue(r)
        diag = "kz exit %d\nstdout:\n%s\nstderr:\n%s\naudit:\n%s" % (r.returncode, r.stdout[-3000:], r.stderr[-3000:],
                                                                     self.audit_dump())
        tok = self.tokens_in(r.stdout, "API_KEY")["API_KEY"]
        self.assertToken(tok, len(CANARY))
        m = re.search(r"echo:(\S+)", r.stdout.split("--- agent")[1])
        self.assertIsNotNone(m, "no echo in the agent's output\n" + diag)
        self.assertIn(tok, DECODE[form](m.group(1)), "the echo is not the token in the %s form\n%s" % (form, diag))
        self.assertIn("rc=0", r.stdout, diag)
        self.assertAudited("redact", decision="allow", secret="API_KEY")

    def assertCodedRefused(self, r, coding):
        self.assertNoValue(r)
        out = r.stdout.split("--- agent")[1]
        self.assertNotIn("echo:", out, "the agent got the decoded body")
        self.assertNotIn("rc=0", out, "the read of a %s response did not fail" % coding)
        recs = self.assertAudited("redact", decision="refuse")
        self.assertTrue(any(coding in r.get("reason", "") for r in recs), self.audit_dump())

    # -- every form, one read ----------------------------------------------------------
    def form_case(self, form):
        self.assertEchoedToken(self.curl("/reflect/%s/cl" % form), form)

    def test_raw(self): self.form_case("raw")
    def test_base64(self): self.form_case("base64")
    def test_base64_no_padding(self): self.form_case("base64nopad")
    def test_base64url(self): self.form_case("base64url")
    def test_base64url_no_padding(self): self.form_case("base64urlnopad")
    def test_hex_lower(self): self.form_case("hexlower")
    def test_hex_upper(self): self.form_case("hexupper")
    def test_percent(self): self.form_case("percent")
    def test_json(self): self.form_case("json")
    def test_percent_lower_case(self): self.form_case("percentlower")
    def test_json_escaped_slash(self): self.form_case("jsonslash")

    # -- split ---------------------------------------------------------------------------
    def test_value_split_across_chunks(self):
        for form in ("raw", "base64"):
            self.assertEchoedToken(self.curl("/reflect/%s/chunked" % form), form)

    def test_value_split_across_two_reads_curl(self):
        for form in ("raw", "hexlower"):
            self.assertEchoedToken(self.curl("/reflect/%s/split" % form), form)

    def test_value_split_across_two_reads_python(self):
        r = self.python("/reflect/raw/split")
        self.assertEchoedToken(r, "raw")
        self.assertIn("status 200", r.stdout)

    def test_value_split_across_two_reads_gnutls(self):
        for form in ("raw", "base64url"):
            self.assertEchoedToken(self.wget("/reflect/%s/split" % form), form)

    def test_value_split_across_chunks_gnutls(self):
        self.assertEchoedToken(self.wget("/reflect/json/chunked"), "json")

    # -- content codings -----------------------------------------------------------------
    def test_gzip_response_fails(self):
        self.assertCodedRefused(self.curl("/reflect/raw/gzip", compressed=True), "gzip")

    def test_deflate_response_fails(self):
        self.assertCodedRefused(self.curl("/reflect/raw/deflate", compressed=True), "deflate")

    def test_br_response_fails(self):
        self.assertCodedRefused(self.curl("/reflect/raw/br", compressed=True), "br")

    def test_request_with_the_value_asks_for_identity(self):
        r = self.curl("/reflect/raw/negotiate", compressed=True)
        self.assertEchoedToken(r, "raw")
        with open(self.record) as f:
            recs = [json.loads(l) for l in f if l.strip()]
        self.assertTrue(recs)
        self.assertNotIn("gzip", recs[-1].get("accept_encoding") or "", "the request still asked for gzip")

    # -- response sync (review 27b) ------------------------------------------------------
    def raw_client(self, name, source):
        py = self.write(name, source)
        pre = 'CA="${SSL_CERT_FILE:-$CA}" ' if self.PROXY else ""
        return self.run_agent('%s"%s" "%s" localhost %d; echo "exit=$?"' % (pre, PY, py, self.port))

    def test_pipelined_head_does_not_unframe_the_answer_before_it(self):
        r = self.raw_client("pipeline.py", PIPELINE_CLIENT)
        self.assertNoValue(r)
        diag = "kz exit %d\nstdout:\n%s\nstderr:\n%s" % (r.returncode, r.stdout[-3000:], r.stderr[-3000:])
        tok = self.tokens_in(r.stdout, "API_KEY")["API_KEY"]
        out = r.stdout.split("--- agent")[1]
        # Both answers, the echo holding the token where the value was.
        self.assertIn("pad:" + "x" * 64 + " " + tok, out, diag)
        self.assertEqual(out.count("HTTP/1.1 200"), 2, diag)
        self.assertIn("rc=0", out, diag)
        with open(self.record) as f:
            recs = [json.loads(l) for l in f if l.strip()]
        self.assertEqual([x.get("method") for x in recs], ["POST", "HEAD"], "the server did not get the pipeline")
        self.assertAudited("redact", decision="allow", secret="API_KEY")


class ShimInboundTest(InboundCases, BlindTestCase):
    FLAGS = ()

    def test_read_waiting_when_the_value_goes_out_is_redacted(self):
        r = self.raw_client("concurrent.py", CONCURRENT_CLIENT)
        self.assertNoValue(r)
        diag = "kz exit %d\nstdout:\n%s\nstderr:\n%s" % (r.returncode, r.stdout[-3000:], r.stderr[-3000:])
        tok = self.tokens_in(r.stdout, "API_KEY")["API_KEY"]
        out = r.stdout.split("--- agent")[1]
        self.assertIn("echo:" + tok, out, diag)
        self.assertIn("rc=0", out, diag)
        self.assertAudited("redact", decision="allow", secret="API_KEY")


class ProxyInboundTest(InboundCases, BlindTestCase):
    FLAGS = ("--blind=proxy", "--redirector=seccomp")
    PROXY = True


if __name__ == "__main__":
    unittest.main()

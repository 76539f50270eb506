"""Blind mode's security properties end to end (DESIGN.md invariants 1-3 and 5):

- a token becomes its value only inside TLS whose peer verified, for a host the secret
  is bound to, and (when configured) for an allowed method and path; everything else
  (another host, plain HTTP, an unverified peer, a split token that cannot be swapped
  whole) sends the token unchanged and is audited as a refusal;
- start-up refuses secrets without hosts (unless the catalogue or --allow-any-host says);
- the value never reaches the child (environment, stdout/stderr, inbound responses),
  kz's own output, the audit log or any file;
- tokens: per run, >= 96 bits, the secret's length (>= 24);
- framing: Basic auth, short secrets in JSON bodies (Content-Length and chunked);
- concurrency (threads, forks) and the audit log's hash chain and summary.
"""
import base64
import json
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from kzt import KZ, PY, BlindTestCase  # noqa: E402

CANARY = "kzCANARY/7f3a+9c1e_5b2d4f6a8c0e.d1X"     # 35 bytes: token of the same length
SHORT = "sk-short-1234"                               # 13 bytes: token of 24 bytes

CURL = 'curl -sS --max-time 20 --http1.1 --cacert "%s" '

PLAIN_PY = r'''
import http.client, os, sys
c = http.client.HTTPConnection("localhost", int(sys.argv[1]), timeout=20)
c.request("GET", "/v1/plain-python", headers={"Authorization": "Bearer " + os.environ["API_KEY"]})
print("status", c.getresponse().status)
'''

NOVERIFY_PY = r'''
import os, ssl, sys, urllib.request
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + os.environ["API_KEY"]})
with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
    print("status", r.status)
'''

ECHO_PY = r'''
import os, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + os.environ["API_KEY"]})
with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
    print("echo:", r.read().decode())
'''

JSON_REQUESTS = r'''
import os, sys, requests
r = requests.post(sys.argv[1], json={"key": os.environ["API_KEY"], "n": 1}, verify=sys.argv[2], timeout=20)
print("status", r.status_code, r.text)
'''

JSON_HTTPX = r'''
import os, sys, httpx
with httpx.Client(verify=sys.argv[2], timeout=20) as c:
    r = c.post(sys.argv[1], json={"key": os.environ["API_KEY"], "n": 1})
    print("status", r.status_code, r.text)
'''

CHUNKED_REQUESTS = r'''
import os, sys, requests
def body():
    yield b'{"key": "'
    yield os.environ["API_KEY"].encode()
    yield b'", "n": 1}'
r = requests.post(sys.argv[1], data=body(), verify=sys.argv[2], timeout=20,
                  headers={"Content-Type": "application/json"})
print("status", r.status_code, r.text)
'''

BASIC_REQUESTS = r'''
import os, sys, requests
r = requests.get(sys.argv[1], auth=("user", os.environ["API_KEY"]), verify=sys.argv[2], timeout=20)
print("status", r.status_code)
'''

# A token split across TLS writes. mode "token": "...Bearer KZ_TOK_abc" then the rest;
# "prefix": "...Bearer KZ_T" then "OK_..."; "three": three writes through the token.
SPLIT = r'''
import os, socket, ssl, sys
port, ca, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
tok = os.environ["API_KEY"]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
head = "GET /v1/split-%s HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " % mode
tail = "\r\nConnection: close\r\n\r\n"
if mode == "token":
    parts = [head + tok[:10], tok[10:] + tail]
elif mode == "prefix":
    parts = [head + tok[:4], tok[4:] + tail]
else:
    parts = [head + tok[:9], tok[9:20], tok[20:] + tail]
for p in parts:
    s.sendall(p.encode())
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
print("response:", data.split(b"\r\n", 1)[0].decode())
'''

THREADS = r'''
import os, sys, requests
from concurrent.futures import ThreadPoolExecutor
url, ca = sys.argv[1], sys.argv[2]
def one(i):
    r = requests.get("%s/v1/thread/%d" % (url, i), headers={"Authorization": "Bearer " + os.environ["API_KEY"]},
                     verify=ca, timeout=30)
    return r.status_code
with ThreadPoolExecutor(max_workers=8) as ex:
    codes = list(ex.map(one, range(16)))
print("codes", codes)
sys.exit(0 if codes == [200] * 16 else 1)
'''


# fork() without exec: the child inherits the parent's broker connection (its thread
# talked to the broker first) and must not use it; parent and child then swap at the
# same time, each over its own connection.
FORK_NO_EXEC = r"""
import os, ssl, sys, urllib.request
url, ca = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
def get(path):
    req = urllib.request.Request(url + path, headers={"Authorization": "Bearer " + os.environ["API_KEY"]})
    with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
        return r.status
assert get("/v1/forked/parent-0") == 200
rd, wr = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(rd)
    code = 1
    try:
        first = get("/v1/forked/child-0") == 200
        os.write(wr, b"x")   # the parent goes on while the child is still asking
        code = 0 if first and all(get("/v1/forked/child-%d" % i) == 200 for i in (1, 2)) else 1
    finally:
        os._exit(code)
os.close(wr)
os.read(rd, 1)
ok = all(get("/v1/forked/parent-%d" % i) == 200 for i in (1, 2))
_, status = os.waitpid(pid, 0)
print("parent", ok, "child", os.waitstatus_to_exitcode(status))
sys.exit(0 if ok and os.waitstatus_to_exitcode(status) == 0 else 1)
"""

# TLS whose keys reach the agent: ctx.keylog_filename (Python's key-log callback on the
# SSL_CTX) with no SSLKEYLOGFILE in the environment. mode "before": set before the
# connection; "after": two requests on one keep-alive connection, the first granted,
# the callback set between them (a grant must not skip the check).
KEYLOG_CTX = r"""
import http.client, os, ssl, sys
port, ca, mode, keys = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
assert "SSLKEYLOGFILE" not in os.environ
ctx = ssl.create_default_context(cafile=ca)
if mode == "before":
    ctx.keylog_filename = keys
c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=20)
def get(path):
    c.request("GET", path, headers={"Authorization": "Bearer " + os.environ["API_KEY"]})
    r = c.getresponse()
    r.read()
    return r.status
print("first", get("/v1/keylog-%s-1" % mode))
if mode == "after":
    ctx.keylog_filename = keys
    print("second", get("/v1/keylog-after-2"))
"""

REQUESTS_GET = r"""
import os, sys, requests
r = requests.get(sys.argv[1], headers={"Authorization": "Bearer " + os.environ["API_KEY"]}, verify=sys.argv[2],
                 timeout=20)
print("status", r.status_code)
"""

# Python's ssl.MemoryBIO: the TLS object writes into memory; the agent holds the
# ciphertext and pumps it to the server itself.
MEMORY_BIO = r"""
import os, socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
sock = socket.create_connection(("127.0.0.1", port))
def pump_out():
    data = outgoing.read()
    if data:
        sock.sendall(data)
def pump_in():
    data = sock.recv(65536)
    if not data:
        raise SystemExit("server closed")
    incoming.write(data)
while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        pump_out()
        pump_in()
pump_out()
tls.write(("GET /v1/memory-bio HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n"
           "Connection: close\r\n\r\n" % os.environ["API_KEY"]).encode())
held = outgoing.read()   # the ciphertext is the agent's before it is sent, if ever
sock.sendall(held)
reply = b""
while b"\r\n" not in reply:
    pump_in()
    try:
        reply += tls.read(65536)
    except ssl.SSLWantReadError:
        pass
print("response:", reply.split(b"\r\n", 1)[0].decode())
"""

# HTTP/2 negotiated through libssl's own SSL_set_alpn_protos (a handle on libssl, not
# the global scope the shim's filter sits in); the rest through the global scope, as a
# program linked against libssl would call it. The server speaks HTTP/1.1 under "h2".
ALPN_H2_REAL_SYMBOL = r"""
import ctypes, os, socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
own = ctypes.CDLL("libssl.so.3", mode=os.RTLD_GLOBAL)   # a handle: libssl's own definitions
glob = ctypes.CDLL(None)                # what a program calls: the shim's hooks first
P = ctypes.c_void_p
for lib in (own, glob):
    for name, res, args in (("TLS_client_method", P, []), ("SSL_CTX_new", P, [P]),
                            ("SSL_CTX_load_verify_locations", ctypes.c_int, [P, ctypes.c_char_p, ctypes.c_char_p]),
                            ("SSL_new", P, [P]), ("SSL_set_fd", ctypes.c_int, [P, ctypes.c_int]),
                            ("SSL_ctrl", ctypes.c_long, [P, ctypes.c_int, ctypes.c_long, P]),
                            ("SSL_set_alpn_protos", ctypes.c_int, [P, ctypes.c_char_p, ctypes.c_uint]),
                            ("SSL_connect", ctypes.c_int, [P]),
                            ("SSL_get0_alpn_selected", None, [P, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_uint)]),
                            ("SSL_write", ctypes.c_int, [P, ctypes.c_char_p, ctypes.c_int]),
                            ("SSL_read", ctypes.c_int, [P, ctypes.c_char_p, ctypes.c_int])):
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
sctx = glob.SSL_CTX_new(glob.TLS_client_method())
assert glob.SSL_CTX_load_verify_locations(sctx, ca.encode(), None) == 1
s = glob.SSL_new(sctx)
sock = socket.create_connection(("127.0.0.1", port))
glob.SSL_set_fd(s, sock.fileno())
host = ctypes.create_string_buffer(b"localhost")
glob.SSL_ctrl(s, 55, 0, ctypes.cast(host, P))          # SSL_set_tlsext_host_name
assert own.SSL_set_alpn_protos(s, b"\x02h2", 3) == 0   # past the shim's ALPN filter
assert glob.SSL_connect(s) == 1
proto, plen = ctypes.c_char_p(), ctypes.c_uint()
glob.SSL_get0_alpn_selected(s, ctypes.byref(proto), ctypes.byref(plen))
print("alpn", (proto.value or b"")[:plen.value].decode())
req = ("GET /v1/h2-behind-the-shim HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n"
       "Connection: close\r\n\r\n" % os.environ["API_KEY"]).encode()
assert glob.SSL_write(s, req, len(req)) == len(req)
buf = ctypes.create_string_buffer(4096)
n = glob.SSL_read(s, buf, 4096)
print("response:", buf.raw[:max(n, 0)].split(b"\r\n", 1)[0].decode())
"""


def have_module(name):
    import importlib.util
    return importlib.util.find_spec(name) is not None


class BlindSecurityBase(BlindTestCase):
    def setUp(self):
        super().setUp()
        self.kenv = self.env(KZT_API_KEY_SRC=CANARY, KZT_SHORT_SRC=SHORT)

    def bind(self, hosts=("localhost",), **restrict):
        s = {"ref": "KZT_API_KEY_SRC", "hosts": list(hosts)}
        s.update(restrict)
        self.blind_config({"API_KEY": s})

    def curl(self):
        return CURL % self.ca["ca"]

    def run_ok(self, script, **kw):
        r = self.sh("env; echo '--- client output'; " + script, env=kw.pop("env", self.kenv), **kw)
        self.assertEqual(r.returncode, 0, "kz exit %d\nstdout:\n%s\nstderr:\n%s" % (
            r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
        self.assertNotExposed(r.stdout + r.stderr, CANARY, "child and kz output")
        return r

    def token(self, r, name="API_KEY"):
        return self.tokens_in(r.stdout, name)[name]

    def one_record(self, rec_path, path):
        recs = self.records(rec_path, path)
        self.assertEqual(len(recs), 1, "expected one request for %s, the server got %d" % (path, len(recs)))
        return recs[0]

    def assertSwapped(self, rec, value=CANARY, scheme="Bearer "):
        self.assertEqual(self.auth_of(rec), scheme + value,
                         "the server did not get the real value for %s\naudit:\n%s" % (rec["path"], self.audit_dump()))

    def assertSentUnchanged(self, rec, tok, scheme="Bearer "):
        got = self.auth_of(rec)
        self.assertNotEqual(got, scheme + CANARY, "the value was sent for %s: it must not have been" % rec["path"])
        self.assertEqual(got, scheme + tok, "the token must go out unchanged for %s" % rec["path"])

    def refusals(self, secret="API_KEY"):
        return [r for r in self.audit() if r.get("decision") == "refuse"
                and (secret is None or r.get("secret") == secret)]

    def assertRefusalAudited(self, reason_re, host=None, secret="API_KEY"):
        refs = self.refusals(secret)
        if host is not None:
            refs = [r for r in refs if r.get("host") == host]
        self.assertTrue(refs, "no refusal audited (secret %s, host %s):\n%s" % (secret, host, self.audit_dump()))
        self.assertTrue(any(re.search(reason_re, str(r.get("reason", "")), re.I) for r in refs),
                        "no refusal reason matches %r: %r" % (reason_re, [r.get("reason") for r in refs]))
        for r in refs:
            self.assertIn("pid", r)
            self.assertIn("exe", r)
        return refs


class ExfiltrationTest(BlindSecurityBase):
    def test_unbound_host_gets_the_token(self):
        # 127.0.0.1 verifies (the leaf covers it) but the secret is bound to localhost only.
        self.bind()
        port, rec = self.echo_server("tls")
        r = self.run_ok(self.curl() + '-H "Authorization: Bearer $API_KEY" https://127.0.0.1:%d/v1/unbound-curl;'
                        'wget -q -O - --timeout=20 --tries=1 --ca-certificate="%s" '
                        '--header="Authorization: Bearer $API_KEY" https://127.0.0.1:%d/v1/unbound-wget'
                        % (port, self.ca["ca"], port))
        tok = self.token(r)
        self.assertSentUnchanged(self.one_record(rec, "/v1/unbound-curl"), tok)
        self.assertSentUnchanged(self.one_record(rec, "/v1/unbound-wget"), tok)
        refs = self.assertRefusalAudited(r"host|bound|allow", host="127.0.0.1")
        exes = " ".join(str(x.get("exe")) for x in refs)
        self.assertIn("curl", exes)
        self.assertIn("wget", exes)

    def test_plain_http_gets_the_token(self):
        self.bind()
        port, rec = self.echo_server("plain")
        script = self.write("plain.py", PLAIN_PY)
        r = self.run_ok('curl -sS --max-time 20 -H "Authorization: Bearer $API_KEY" '
                        'http://localhost:%d/v1/plain-curl; %s %s %d' % (port, PY, script, port))
        tok = self.token(r)
        self.assertSentUnchanged(self.one_record(rec, "/v1/plain-curl"), tok)
        self.assertSentUnchanged(self.one_record(rec, "/v1/plain-python"), tok)
        refs = self.assertRefusalAudited(r"plain|tls")
        exes = " ".join(str(x.get("exe")) for x in refs)
        self.assertIn("curl", exes)
        self.assertIn("python", exes)

    def test_unverified_peer_gets_the_token(self):
        # The rogue server has a self-signed leaf for localhost: the client is told not to
        # verify (curl -k, CERT_NONE), kz's own verification still fails.
        self.bind()
        port, rec = self.echo_server("rogue")
        script = self.write("noverify.py", NOVERIFY_PY)
        r = self.run_ok('curl -sS -k --max-time 20 --http1.1 -H "Authorization: Bearer $API_KEY" '
                        'https://localhost:%d/v1/rogue-curl; %s %s https://localhost:%d/v1/rogue-python'
                        % (port, PY, script, port))
        tok = self.token(r)
        self.assertSentUnchanged(self.one_record(rec, "/v1/rogue-curl"), tok)
        self.assertSentUnchanged(self.one_record(rec, "/v1/rogue-python"), tok)
        self.assertRefusalAudited(r"verif|certif|trust")

    def test_methods_and_paths(self):
        self.bind(methods=["GET"], paths=["/v1/*"])
        port, rec = self.echo_server("tls")
        base = "https://localhost:%d" % port
        h = '-H "Authorization: Bearer $API_KEY" '
        r = self.run_ok(
            self.curl() + h + base + "/v1/allowed; " +
            self.curl() + h + "'" + base + "/v1/deep/er?q=1'; " +
            self.curl() + h + "-X POST -d x " + base + "/v1/posted; " +
            self.curl() + h + base + "/admin/users; " +
            self.curl() + h + base + "/v10/not-a-prefix-match")
        tok = self.token(r)
        self.assertSwapped(self.one_record(rec, "/v1/allowed"))
        self.assertSwapped(self.one_record(rec, "/v1/deep/er"))
        self.assertSentUnchanged(self.one_record(rec, "/v1/posted"), tok)
        self.assertSentUnchanged(self.one_record(rec, "/admin/users"), tok)
        self.assertSentUnchanged(self.one_record(rec, "/v10/not-a-prefix-match"), tok)
        self.assertRefusalAudited(r"method")
        self.assertRefusalAudited(r"path")

    def test_path_traversal_does_not_escape_the_allowed_prefix(self):
        # A server resolves /v1/../admin to /admin: the allowed prefix must not let it through.
        self.bind(paths=["/v1/*"])
        port, rec = self.echo_server("tls")
        base = "https://localhost:%d" % port
        h = '-H "Authorization: Bearer $API_KEY" '
        r = self.run_ok(self.curl() + "--path-as-is " + h + base + "/v1/../admin/dotdot; " +
                        self.curl() + "--path-as-is " + h + base + "/v1/%2e%2e/admin/encoded")
        tok = self.token(r)
        for rr in self.records(rec):
            self.assertIn("admin", rr["target"])
            self.assertSentUnchanged(rr, tok)
        self.assertEqual(len(self.records(rec)), 2)


class StartupTest(BlindSecurityBase):
    def test_secret_without_hosts_refuses_to_start(self):
        self.blind_config({"UNBOUND_KEY": {"ref": "KZT_API_KEY_SRC"}})
        marker = os.path.join(self.dir, "started")
        r = self.run_blind("touch", marker, env=self.kenv)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("UNBOUND_KEY", r.stderr)
        self.assertFalse(os.path.exists(marker), "the command ran although start-up was refused")
        self.assertNotExposed(r.stdout + r.stderr, CANARY, "kz's error")
        # Plain `kz run` ignores hosts and still runs.
        self.assertEqual(self.kz("run", "--", "true", env=self.kenv).returncode, 0)

    def test_catalogue_secrets_start_and_stay_bound_to_their_service(self):
        self.config('[secrets]\n'
                    'OPENAI_API_KEY = { provider = "env", ref = "KZT_API_KEY_SRC" }\n'
                    'ANTHROPIC_API_KEY = { provider = "env", ref = "KZT_API_KEY_SRC" }\n'
                    'GITHUB_TOKEN = { provider = "env", ref = "KZT_API_KEY_SRC" }\n'
                    '[blind]\nca_file = "%s"\n' % self.ca["ca"])
        port, rec = self.echo_server("tls")
        r = self.run_ok(self.curl() + '-H "Authorization: Bearer $OPENAI_API_KEY" https://localhost:%d/v1/openai'
                        % port)
        toks = self.tokens_in(r.stdout, "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GITHUB_TOKEN")
        for t in toks.values():
            self.assertToken(t, len(CANARY))
        self.assertEqual(len(set(toks.values())), 3, "secrets share a token")
        # api.openai.com is not localhost: the token goes out unchanged.
        self.assertSentUnchanged(self.one_record(rec, "/v1/openai"), toks["OPENAI_API_KEY"])
        self.assertRefusalAudited(r".", secret="OPENAI_API_KEY")

    def test_allow_any_host(self):
        self.blind_config({"ANY_KEY": {"ref": "KZT_API_KEY_SRC"}})
        tls_port, tls_rec = self.echo_server("tls")
        plain_port, plain_rec = self.echo_server("plain")
        h = '-H "Authorization: Bearer $ANY_KEY" '
        r = self.run_ok(self.curl() + h + "https://127.0.0.1:%d/v1/any; " % tls_port +
                        "curl -sS --max-time 20 " + h + "http://localhost:%d/v1/any-plain" % plain_port,
                        flags=["--allow-any-host"])
        self.assertRegex(r.stderr, re.compile(r"warn|any.host", re.I), "no warning about --allow-any-host")
        tok = self.token(r, "ANY_KEY")
        # Any host, but still only inside verified TLS.
        self.assertSwapped(self.one_record(tls_rec, "/v1/any"))
        self.assertSentUnchanged(self.one_record(plain_rec, "/v1/any-plain"), tok)
        self.assertRefusalAudited(r"plain|tls", secret="ANY_KEY")
        # Without the flag, the same config does not start.
        r2 = self.run_blind("true", env=self.kenv)
        self.assertEqual(r2.returncode, 2)
        self.assertIn("ANY_KEY", r2.stderr)

    def test_tokens_are_fresh_unguessable_and_length_preserving(self):
        long_value = "L" * 10 + CANARY + "x" * 160   # 205 bytes
        self.blind_config({"API_KEY": {"ref": "KZT_API_KEY_SRC", "hosts": ["localhost"]},
                           "SHORT_KEY": {"ref": "KZT_SHORT_SRC", "hosts": ["localhost"]},
                           "LONG_KEY": {"ref": "KZT_LONG_SRC", "hosts": ["localhost"]}})
        env = self.env(KZT_API_KEY_SRC=CANARY, KZT_SHORT_SRC=SHORT, KZT_LONG_SRC=long_value)
        seen = []
        for _ in range(3):
            r = self.run_ok("true", env=env)
            toks = self.tokens_in(r.stdout, "API_KEY", "SHORT_KEY", "LONG_KEY")
            self.assertToken(toks["API_KEY"], len(CANARY))
            self.assertToken(toks["SHORT_KEY"], len(SHORT))
            self.assertToken(toks["LONG_KEY"], len(long_value))
            self.assertEqual(len(toks["SHORT_KEY"]), 24)
            self.assertEqual(len(set(toks.values())), 3)
            self.assertNoSecret(r.stdout, long_value, "env")
            self.assertNoSecret(r.stdout, SHORT, "env")
            seen.append(toks)
        for name in ("API_KEY", "SHORT_KEY", "LONG_KEY"):
            self.assertEqual(len({s[name] for s in seen}), 3, "%s got the same token in two runs" % name)
        # No shared structure beyond the prefix: the random parts of one secret's tokens differ early.
        a, b = seen[0]["API_KEY"], seen[1]["API_KEY"]
        self.assertNotEqual(a[7:15], b[7:15])

    def test_canary_appears_nowhere(self):
        self.bind()
        tls_port, tls_rec = self.echo_server("tls")
        plain_port, _ = self.echo_server("plain")
        rogue_port, _ = self.echo_server("rogue")
        echo = self.write("echo.py", ECHO_PY)
        script = ("env; " + self.curl() + '-H "Authorization: Bearer $API_KEY" https://localhost:%d/v1/ok; '
                  "curl -sS --max-time 20 -H \"Authorization: Bearer $API_KEY\" http://localhost:%d/v1/plain; "
                  "curl -sS -k --max-time 20 -H \"Authorization: Bearer $API_KEY\" https://localhost:%d/v1/rogue; "
                  "%s %s https://localhost:%d/echo \"%s\"; "
                  "cat /proc/self/environ | tr '\\0' '\\n'"
                  % (tls_port, plain_port, rogue_port, PY, echo, tls_port, self.ca["ca"]))
        for flags in ([], ["-v"], ["-vv"]):
            r = self.run_blind("/bin/sh", "-c", script, flags=flags, env=self.kenv)
            self.assertEqual(r.returncode, 0, r.stderr[-2000:])
            self.assertNotExposed(r.stdout, CANARY, "stdout %s" % flags)
            self.assertNotExposed(r.stderr, CANARY, "stderr (child and kz) %s" % flags)
        self.assertSwapped(self.records(tls_rec, "/v1/ok")[0])   # the value did flow where allowed
        for path in self.files_under(self.dir):
            with open(path, "rb") as f:
                data = f.read().decode("latin-1")
            self.assertNoSecret(data, CANARY, "file " + path)
        with open(self.audit_path) as f:
            log = f.read()
        self.assertNoSecret(log, CANARY, "audit log")
        self.assertNotIn("KZ_TOK_", log, "the audit log holds a token")


class EncodingTest(BlindSecurityBase):
    def test_basic_auth(self):
        self.bind()
        port, rec = self.echo_server("tls")
        cmds = [self.curl() + '-u "user:$API_KEY" https://localhost:%d/v1/basic-curl' % port]
        if have_module("requests"):
            script = self.write("basic.py", BASIC_REQUESTS)
            cmds.append('%s %s https://localhost:%d/v1/basic-requests "%s"' % (PY, script, port, self.ca["ca"]))
        r = self.run_ok("; ".join(cmds))
        tok = self.token(r)
        expect = base64.b64encode(("user:" + CANARY).encode()).decode()
        for path in ("/v1/basic-curl", "/v1/basic-requests")[:len(cmds)]:
            got = self.auth_of(self.one_record(rec, path))
            self.assertNotEqual(got, "Basic " + base64.b64encode(("user:" + tok).encode()).decode(),
                                "%s: the token went out base64-encoded, not swapped" % path)
            self.assertEqual(got, "Basic " + expect, path)
        self.assertAudited("swap", decision="allow", secret="API_KEY")

    def test_inbound_echo_is_redacted(self):
        self.bind()
        port, rec = self.echo_server("tls")
        echo = self.write("echo.py", ECHO_PY)
        r = self.run_ok(
            self.curl() + '-H "Authorization: Bearer $API_KEY" https://localhost:%d/echo/curl; echo; '
            '%s %s https://localhost:%d/echo/python "%s"; '
            'wget -q -O - --timeout=20 --tries=1 --ca-certificate="%s" --header="Authorization: Bearer $API_KEY" '
            'https://localhost:%d/echo/wget'
            % (port, PY, echo, port, self.ca["ca"], self.ca["ca"], port))
        tok = self.token(r)
        for path in ("/echo/curl", "/echo/python", "/echo/wget"):
            self.assertSwapped(self.one_record(rec, path))
            self.assertIn('"path": "%s"' % path, r.stdout)
        out = r.stdout.split("--- client output", 1)[1]
        self.assertEqual(out.count('"you_sent": "Bearer %s"' % tok), 3,
                         "each client must read the token where the server echoed the value:\n" + out)
        self.assertAudited("redact", secret="API_KEY")

    def check_json_body(self, script_text, name, path):
        self.blind_config({"API_KEY": {"ref": "KZT_SHORT_SRC", "hosts": ["localhost"]}})
        port, rec = self.echo_server("tls")
        script = self.write(name + ".py", script_text)
        # Only the variable the config names: kz drops it from the child; an unrelated
        # one would be inherited as any other variable is.
        r = self.run_ok('%s %s https://localhost:%d%s "%s"' % (PY, script, port, path, self.ca["ca"]),
                        env=self.env(KZT_SHORT_SRC=SHORT))
        tok = self.token(r)
        self.assertToken(tok, len(SHORT))
        self.assertNoSecret(r.stdout + r.stderr, SHORT, "child output")
        got = self.one_record(rec, path)
        self.assertIsNone(got.get("error"), "framing broken: %s" % got.get("error"))
        self.assertTrue(got["complete"] and got["framing_ok"])
        if got["content_length"] is not None:
            self.assertEqual(got["content_length"], got["body_length"],
                             "Content-Length was not fixed after a %d-byte token became a %d-byte value"
                             % (len(tok), len(SHORT)))
        self.assertEqual(json.loads(got["body"]), {"key": SHORT, "n": 1})
        self.assertIn("status 200", r.stdout)
        return got

    @unittest.skipUnless(have_module("requests"), "python3-requests is not installed (scripts/setup installs it)")
    def test_short_secret_in_json_body_requests(self):
        got = self.check_json_body(JSON_REQUESTS, "json_requests", "/v1/json-requests")
        self.assertIsNotNone(got["content_length"])

    @unittest.skipUnless(have_module("httpx"), "python3-httpx is not installed (scripts/setup installs it)")
    def test_short_secret_in_json_body_httpx(self):
        got = self.check_json_body(JSON_HTTPX, "json_httpx", "/v1/json-httpx")
        self.assertIsNotNone(got["content_length"])

    @unittest.skipUnless(have_module("requests"), "python3-requests is not installed (scripts/setup installs it)")
    def test_short_secret_in_chunked_body(self):
        got = self.check_json_body(CHUNKED_REQUESTS, "chunked", "/v1/chunked")
        self.assertTrue(got["chunked"])

    def test_token_split_across_writes(self):
        self.bind()
        port, rec = self.echo_server("tls")
        script = self.write("split.py", SPLIT)
        for mode in ("token", "prefix", "three"):
            with self.subTest(mode=mode):
                before = len(self.refusals(None))
                r = self.run_ok('%s %s %d "%s" %s' % (PY, script, port, self.ca["ca"], mode))
                tok = self.token(r)
                got = self.one_record(rec, "/v1/split-" + mode)
                self.assertTrue(got["complete"] and got["framing_ok"], got.get("error"))
                auth = self.auth_of(got)
                self.assertIn(auth, ("Bearer " + CANARY, "Bearer " + tok),
                              "a split token must be swapped whole or sent unchanged, never half-swapped")
                if auth == "Bearer " + tok:
                    self.assertGreater(len(self.refusals(None)), before,
                                       "the split token went out unchanged without an audited refusal")
                else:
                    self.assertAudited("swap", decision="allow", secret="API_KEY")


class ConcurrencyAndAuditTest(BlindSecurityBase):
    def verify(self, path=None):
        return subprocess.run([KZ, "audit", "verify", path or self.audit_path], capture_output=True, text=True,
                              env=self.env(), timeout=30)

    @unittest.skipUnless(have_module("requests"), "python3-requests is not installed (scripts/setup installs it)")
    def test_threads(self):
        self.bind()
        port, rec = self.echo_server("tls")
        script = self.write("threads.py", THREADS)
        r = self.run_ok('%s %s https://localhost:%d "%s"' % (PY, script, port, self.ca["ca"]))
        recs = self.records(rec, "/v1/thread/")
        self.assertEqual(len(recs), 16)
        for x in recs:
            self.assertSwapped(x)
        allows = self.audit_events("swap", decision="allow", secret="API_KEY")
        self.assertGreaterEqual(len(allows), 16)
        v = self.verify()
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertNotIn("KZ_TOK_", open(self.audit_path).read())
        del r

    def test_forks_and_audit_chain(self):
        self.bind()
        port, rec = self.echo_server("tls")
        plain_port, _ = self.echo_server("plain")
        self.run_ok('for i in 1 2 3 4 5; do ' + self.curl() +
                    '-H "Authorization: Bearer $API_KEY" https://localhost:%d/v1/fork/$i; done; ' % port +
                    'curl -sS --max-time 20 -H "Authorization: Bearer $API_KEY" http://localhost:%d/v1/plain'
                    % plain_port)
        recs = self.records(rec, "/v1/fork/")
        self.assertEqual(len(recs), 5)
        for x in recs:
            self.assertSwapped(x)
        allows = [a for a in self.audit_events("swap", decision="allow", secret="API_KEY")
                  if "curl" in str(a.get("exe"))]
        self.assertGreaterEqual(len({a.get("pid") for a in allows}), 5, "one pid per curl process")

        v = self.verify()
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("OK", v.stdout)

        with open(self.audit_path) as f:
            lines = f.readlines()
        # Edit one field of one swap record, keeping valid JSON.
        i = next(n for n, l in enumerate(lines) if '"swap"' in l and '"allow"' in l)
        edited = list(lines)
        edited[i] = edited[i].replace('"allow"', '"refuse"', 1)
        self.assertNotEqual(edited[i], lines[i])
        bad = self.write("edited.jsonl", "".join(edited))
        v = self.verify(bad)
        self.assertNotEqual(v.returncode, 0, "an edited audit log verified:\n" + v.stdout)
        # Dropping a line breaks the chain too.
        dropped = self.write("dropped.jsonl", "".join(lines[:i] + lines[i + 1:]))
        self.assertNotEqual(self.verify(dropped).returncode, 0, "an audit log with a line removed verified")

    def test_fork_without_exec(self):
        self.bind()
        port, rec = self.echo_server("tls")
        script = self.write("fork_no_exec.py", FORK_NO_EXEC)
        self.run_ok('%s %s https://localhost:%d "%s"' % (PY, script, port, self.ca["ca"]))
        recs = self.records(rec, "/v1/forked/")
        self.assertEqual(sorted(r["path"] for r in recs),
                         sorted(["/v1/forked/parent-%d" % i for i in range(3)] +
                                ["/v1/forked/child-%d" % i for i in range(3)]))
        for x in recs:
            self.assertSwapped(x)
        # The broker records the pid it read with SO_PEERCRED when the connection was
        # accepted: a child that kept using its parent's broker connection would have its
        # swaps recorded under the parent's pid.
        pids = {"parent": set(), "child": set()}
        for a in self.audit_events("swap", decision="allow", secret="API_KEY"):
            side = a.get("path", "").rsplit("/", 1)[-1].split("-")[0]
            if side in pids:
                pids[side].add(a.get("pid"))
        self.assertEqual(len(pids["parent"]), 1, pids)
        self.assertEqual(len(pids["child"]), 1, pids)
        self.assertNotEqual(pids["parent"], pids["child"], "the child asked on its parent's broker connection")

    def test_audit_records_and_summary(self):
        self.bind()
        port, rec = self.echo_server("tls")
        plain_port, _ = self.echo_server("plain")
        echo = self.write("echo.py", ECHO_PY)
        self.run_ok(self.curl() + '-H "Authorization: Bearer $API_KEY" https://localhost:%d/v1/a; ' % port +
                    self.curl() + '-H "Authorization: Bearer $API_KEY" https://127.0.0.1:%d/v1/b; ' % port +
                    'curl -sS --max-time 20 -H "Authorization: Bearer $API_KEY" http://localhost:%d/v1/c; '
                    % plain_port + '%s %s https://localhost:%d/echo "%s"' % (PY, echo, port, self.ca["ca"]))
        recs = self.audit()
        events = [x.get("event") for x in recs]
        self.assertEqual(events[0], "run.start")
        self.assertEqual(recs[0].get("mode"), "blind")
        self.assertEqual(events[-1], "run.stop")
        self.assertAudited("resolve", secret="API_KEY")
        allow = self.assertAudited("swap", decision="allow", secret="API_KEY", host="localhost")[0]
        for field in ("pid", "exe", "token_id"):
            self.assertIn(field, allow)
        refuse = self.refusals()
        self.assertGreaterEqual(len(refuse), 2)
        for x in refuse:
            self.assertTrue(x.get("reason"), "refusal without a reason: %r" % x)
        self.assertAudited("redact", secret="API_KEY")

        s = subprocess.run([KZ, "audit", "summary", self.audit_path], capture_output=True, text=True,
                           env=self.env(), timeout=30)
        self.assertEqual(s.returncode, 0, s.stderr)
        out = s.stdout
        for needle in ("API_KEY", "localhost", "127.0.0.1", "curl", "python"):
            self.assertIn(needle, out)
        m = re.search(r"refusals[^:\n]*:\s*(\d+)", out)
        self.assertTrue(m and int(m.group(1)) >= 2, "summary does not count the refusals:\n" + out)
        refusal_lines = out[m.end():]
        self.assertIn("API_KEY", refusal_lines)
        self.assertNoSecret(out, CANARY, "audit summary")


SUBPROCESS_EMPTY_ENV = r'''
import os, subprocess, sys
# The agent starts a tool with an empty environment: the shim must follow it.
cmd = ["/usr/bin/curl", "-sS", "--max-time", "20", "--http1.1", "--cacert", sys.argv[2],
       "-H", "Authorization: Bearer " + os.environ["API_KEY"], sys.argv[1]]
sys.exit(subprocess.run(cmd, env={}).returncode)
'''


class ShimRobustnessTest(BlindSecurityBase):
    def test_children_keep_the_shim_when_the_agent_cleans_its_environment(self):
        self.bind()
        port, rec = self.echo_server("tls")
        script = self.write("empty_env.py", SUBPROCESS_EMPTY_ENV)
        base = "https://localhost:%d" % port
        r = self.run_ok(
            # env -i: execve with an empty environment
            "env -i /usr/bin/" + self.curl() + '-H "Authorization: Bearer $API_KEY" ' + base + "/v1/env-i; "
            # the shell drops the variables itself, then execs (execve with its environ)
            "(unset LD_PRELOAD KZ_BROKER KZ_PRELOAD; exec " + self.curl() +
            '-H "Authorization: Bearer $API_KEY" ' + base + "/v1/unset); "
            # Python's subprocess with env={} (posix_spawn / fork+execve)
            '%s %s %s/v1/subprocess "%s"' % (PY, script, base, self.ca["ca"]))
        for path in ("/v1/env-i", "/v1/unset", "/v1/subprocess"):
            self.assertSwapped(self.one_record(rec, path))

    def test_unreachable_broker_fails_closed_with_one_line(self):
        # The agent points its tool at a broker that is not there: the token goes out
        # unchanged (useless), the tool still works, and says so once on stderr.
        self.bind()
        port, rec = self.echo_server("tls")
        r = self.run_ok("KZ_BROKER=%s/no-such-broker.sock " % self.dir + self.curl() +
                        '-H "Authorization: Bearer $API_KEY" https://localhost:%d/v1/nobroker '
                        '-H "X-Second: $API_KEY"' % port)
        tok = self.token(r)
        self.assertSentUnchanged(self.one_record(rec, "/v1/nobroker"), tok)
        lines = [l for l in r.stderr.splitlines() if l.startswith("kz: blind mode")]
        self.assertEqual(len(lines), 1, "expected one stderr line from the shim:\n" + r.stderr)
        self.assertIn("broker", lines[0])
        self.assertNotIn("KZ_TOK_", r.stderr)


KEEPALIVE = r'''
import http.client, os, ssl, sys
port, ca, n, prefix = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=20)
codes = []
for i in range(n):
    c.request("GET", "%s/%d" % (prefix, i), headers={"Authorization": "Bearer " + os.environ["API_KEY"]})
    r = c.getresponse()
    r.read()
    codes.append(r.status)
print("codes", codes)
'''


class GrantTest(BlindSecurityBase):
    """A secret with nothing to check per request (no methods/paths) is granted for the
    connection: the broker answers once, the shim swaps the following requests itself
    and reports their uses, so the audit still counts every use."""

    def uses_of(self, recs):
        return sum(r.get("uses", 1) for r in recs)

    def test_keepalive_requests_are_swapped_and_every_use_counted(self):
        self.bind()
        port, rec = self.echo_server("tls")
        script = self.write("keepalive.py", KEEPALIVE)
        self.run_ok('%s %s %d "%s" 5 /v1/keep' % (PY, script, port, self.ca["ca"]))
        recs = self.records(rec, "/v1/keep/")
        self.assertEqual(len(recs), 5)
        self.assertEqual(len({r["conn"] for r in recs}), 1, "the requests did not share a connection")
        for r in recs:
            self.assertSwapped(r)
        allows = self.audit_events("swap", decision="allow", secret="API_KEY")
        grants = [r for r in allows if r.get("grant") == "connection"]
        self.assertEqual(len(grants), 1, "expected one granting answer:\n" + self.audit_dump())
        self.assertEqual(self.uses_of(allows), 5, "uses under the grant were not all reported:\n" + self.audit_dump())
        for r in allows:
            self.assertEqual(r.get("host"), "localhost")
            self.assertIn("python", r.get("exe", ""))
        s = subprocess.run([KZ, "audit", "summary", self.audit_path], capture_output=True, text=True,
                           env=self.env(), timeout=30)
        self.assertRegex(s.stdout, r"uses per secret[^\n]*\n\s+API_KEY\s+5\b", s.stdout)

    def test_reuse_request_makes_the_broker_decide_every_request(self):
        self.blind_config({"API_KEY": {"ref": "KZT_API_KEY_SRC", "hosts": ["localhost"]}},
                          extra='reuse = "request"\n')
        port, rec = self.echo_server("tls")
        script = self.write("keepalive.py", KEEPALIVE)
        self.run_ok('%s %s %d "%s" 3 /v1/each' % (PY, script, port, self.ca["ca"]))
        for r in self.records(rec, "/v1/each/"):
            self.assertSwapped(r)
        allows = self.audit_events("swap", decision="allow", secret="API_KEY")
        self.assertEqual(len(allows), 3)
        self.assertFalse(any("grant" in r or "uses" in r for r in allows), self.audit_dump())

    def test_a_paths_rule_means_the_broker_decides_every_request(self):
        self.bind(paths=["/v1/"])
        port, rec = self.echo_server("tls")
        script = self.write("keepalive.py", KEEPALIVE)
        self.run_ok('%s %s %d "%s" 3 /v1/ask' % (PY, script, port, self.ca["ca"]))
        for r in self.records(rec, "/v1/ask/"):
            self.assertSwapped(r)
        allows = self.audit_events("swap", decision="allow", secret="API_KEY")
        self.assertEqual(len(allows), 3)
        self.assertFalse(any("grant" in r or "uses" in r for r in allows), self.audit_dump())


class UnsafeTlsTest(BlindSecurityBase):
    """The shim never swaps where the TLS session would hand the value to the agent
    anyway (key logging, memory BIOs) or where it cannot parse the protocol (h2)."""

    def assertRefusedAt(self, rec_path, path, tok, reason_re):
        self.assertSentUnchanged(self.one_record(rec_path, path), tok)
        refs = [r for r in self.refusals() if r.get("path") == path]
        self.assertTrue(refs, "no refusal audited for %s:\n%s" % (path, self.audit_dump()))
        self.assertTrue(any(re.search(reason_re, str(r.get("reason", "")), re.I) for r in refs),
                        "%s: no refusal reason matches %r: %r" % (path, reason_re, [r.get("reason") for r in refs]))
        for r in refs:
            self.assertEqual(r.get("host"), "localhost")
            self.assertIn("pid", r)
            self.assertIn("exe", r)
        return refs

    def test_blind_run_drops_sslkeylogfile(self):
        self.bind()
        env = dict(self.kenv, SSLKEYLOGFILE=os.path.join(self.dir, "keys.log"))
        r = self.run_ok("true", env=env)
        self.assertNotIn("SSLKEYLOGFILE", r.stdout)

    def test_key_logging_is_refused(self):
        self.bind()
        port, rec = self.echo_server("tls")
        keys = os.path.join(self.dir, "keys.log")
        base = "https://localhost:%d" % port
        cmds = ['SSLKEYLOGFILE="%s" ' % keys + self.curl() + '-H "Authorization: Bearer $API_KEY" '
                + base + "/v1/keylog-curl",
                'SSLKEYLOGFILE="%s" wget -q -O - --timeout=20 --tries=1 --ca-certificate="%s" '
                '--header="Authorization: Bearer $API_KEY" %s/v1/keylog-wget' % (keys, self.ca["ca"], base),
                '%s %s %d "%s" before "%s"' % (PY, self.write("keylog.py", KEYLOG_CTX), port, self.ca["ca"], keys)]
        paths = ["/v1/keylog-curl", "/v1/keylog-wget", "/v1/keylog-before-1"]
        if have_module("requests"):
            cmds.append('SSLKEYLOGFILE="%s" %s %s %s/v1/keylog-requests "%s"'
                        % (keys, PY, self.write("get.py", REQUESTS_GET), base, self.ca["ca"]))
            paths.append("/v1/keylog-requests")
        r = self.run_ok("; ".join(cmds))
        tok = self.token(r)
        for path in paths:
            self.assertRefusedAt(rec, path, tok, r"key logging")
        exes = " ".join(str(x.get("exe")) for x in self.refusals())
        for name in ("curl", "wget", "python"):
            self.assertIn(name, exes)

    def test_key_logging_set_after_a_grant_is_refused(self):
        self.bind()
        port, rec = self.echo_server("tls")
        keys = os.path.join(self.dir, "keys.log")
        r = self.run_ok('%s %s %d "%s" after "%s"' % (PY, self.write("keylog.py", KEYLOG_CTX), port,
                                                       self.ca["ca"], keys))
        tok = self.token(r)
        self.assertSwapped(self.one_record(rec, "/v1/keylog-after-1"))
        self.assertRefusedAt(rec, "/v1/keylog-after-2", tok, r"key logging")

    def test_memory_bio_is_refused(self):
        self.bind()
        port, rec = self.echo_server("tls")
        r = self.run_ok('%s %s %d "%s"' % (PY, self.write("membio.py", MEMORY_BIO), port, self.ca["ca"]))
        self.assertIn("response: HTTP/1.1", r.stdout)
        self.assertRefusedAt(rec, "/v1/memory-bio", self.token(r), r"memory BIO")

    def test_h2_negotiated_past_the_alpn_filter_is_refused(self):
        self.bind()
        port, rec = self.echo_server("tls", alpn="h2")
        r = self.run_ok('%s %s %d "%s"' % (PY, self.write("h2.py", ALPN_H2_REAL_SYMBOL), port, self.ca["ca"]))
        self.assertIn("alpn h2", r.stdout)
        self.assertEqual(self.one_record(rec, "/v1/h2-behind-the-shim").get("alpn"), "h2")
        self.assertRefusedAt(rec, "/v1/h2-behind-the-shim", self.token(r), r"ALPN.*http/1\.1")


if __name__ == "__main__":
    unittest.main()

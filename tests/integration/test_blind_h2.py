"""HTTP/2 and gRPC through blind mode's fallback proxy, without downgrading (issue 18).

Real clients that carry their own TLS (so `kz run --blind` redirects them to kz's proxy),
each against a local HTTP/2 TLS server on 127.0.0.1 that records what it received:
node's http2 module, node's fetch (undici: node 20's fetch speaks HTTP/1.1 only, and the
test says so), a Go net/http program (CGO_ENABLED=0, built at test time), gRPC with
@grpc/grpc-js client and server (scripts/setup-grpc-tools), and Debian's python3-grpcio
(its TLS is the system libssl on a memory BIO, which the shim does not swap on, so it
runs under --blind=proxy).

For each: the connection is HTTP/2 end to end (the proxy answered the client's ALPN with
the server's h2), one connection carries many concurrent streams, streams with the
token of a secret bound to this host reach the server with the real value (in
`authorization`, in `x-api-key`, which the client's HPACK encoder puts in its dynamic
table and later streams only refer to, and in the body or gRPC message), streams with
the token of a secret bound elsewhere keep their token, and the value is nowhere in the
client's output (the server's echo of it is redacted on the way back), kz's output or the
audit log.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from kzt import KZ, PY, SRC, BlindTestCase, NodeServer  # noqa: E402
from test_blind_fallback import Clients  # noqa: E402

# Both >= 24 characters: their tokens have the same length, so a gRPC message carrying
# one keeps its length prefix whether or not the token is swapped.
CANARY = "kzH2CANARY/fb3a+9c1e_5b2d4f6a8c0e.q7Z"
OTHER = "kzH2OTHER/0a1b+2c3d_4e5f6a7b8c9d.r8Yx"
# Shorter than 24: its token is longer than the value, so it cannot be swapped exactly
# inside a DATA frame (the stream is refused instead).
SHORT = "kzH2SHORT-9d8c7b"
CLIENTS = os.path.join(SRC, "tests", "clients")
SERVERS = os.path.join(SRC, "tests", "servers")
GRPC_JS = os.path.join(SRC, "tests", "grpc-js")
STREAMS = 16


def redirect_unavailable():
    """Why no redirector can send a program to the proxy here, or None."""
    r = subprocess.run([KZ, "doctor"], capture_output=True, text=True, timeout=60)
    lines = [l for l in r.stdout.splitlines() if l.startswith("redirect: ")]
    if any("available" in l and "unavailable" not in l for l in lines):
        return None
    return "no redirector available: %s" % lines


def go_client():
    """tests/clients/go_h2_client, built at test time (CGO_ENABLED=0), or None."""
    p = os.path.join(Clients.build("go"), "go_h2_client")
    return p if os.path.exists(p) else None


def tearDownModule():
    if Clients.out:
        shutil.rmtree(Clients.out, True)


# node's http2 client with Basic credentials (user "agent", the token as password).
NODE_BASIC_CLIENT = r'''
import http2 from 'node:http2';
const url = new URL(process.argv[2]);
const session = http2.connect(url.origin);
session.on('error', (e) => { process.stderr.write(`error: ${e.message}\n`); process.exit(1); });
const auth = 'Basic ' + Buffer.from('agent:' + process.env.API_KEY).toString('base64');
const req = session.request({ ':method': 'GET', ':path': url.pathname, authorization: auth });
let status = 0, body = '';
req.on('response', (h) => { status = h[':status']; });
req.setEncoding('utf8');
req.on('data', (c) => { body += c; });
req.on('end', () => {
  console.log('RESULT ' + JSON.stringify({ status, body }));
  session.close();
});
req.end();
'''


class Http2Case(BlindTestCase):
    """Servers, runs and checks shared by the cases below."""

    def setUp(self):
        super().setUp()
        if not shutil.which("node"):
            self.skipTest("node is not installed")
        why = redirect_unavailable()
        if why:
            print("SKIP: " + why)
            self.skipTest(why)
        self.record = os.path.join(self.srv, "h2.jsonl")
        self.kenv = self.env(KZT_API_KEY_SRC=CANARY, KZT_OTHER_SRC=OTHER, KZT_SHORT_SRC=SHORT)

    # -- servers and runs --------------------------------------------------------------
    def start(self, argv):
        s = NodeServer(argv)
        self.addCleanup(s.stop)
        self.port = s.port
        self.blind_config({"API_KEY": {"ref": "KZT_API_KEY_SRC", "hosts": ["localhost"]},
                           "OTHER_KEY": {"ref": "KZT_OTHER_SRC", "hosts": ["api.example"]},
                           "SHORT_KEY": {"ref": "KZT_SHORT_SRC", "hosts": ["localhost"]}},
                          extra="proxy_ports = [%d]\n" % self.port)

    def h2_server(self, h1=False):
        self.start([os.path.join(SERVERS, "h2_record_server.mjs"), "--cert", self.ca["server"],
                    "--key", self.ca["server_key"], "--record", self.record] + (["--h1"] if h1 else []))
        return "https://localhost:%d" % self.port

    def grpc_server(self):
        modules = os.path.join(GRPC_JS, "node_modules", "@grpc", "grpc-js")
        self.assertTrue(os.path.isdir(modules), "@grpc/grpc-js is not installed: run scripts/setup-grpc-tools")
        self.start([os.path.join(GRPC_JS, "grpc_server.cjs"), self.ca["server"], self.ca["server_key"], self.record])
        return "localhost:%d" % self.port

    def run_client(self, argv, flags=()):
        script = 'env; echo "--- client output"; exec "$@"'
        r = self.run_blind("/bin/sh", "-c", script, "sh", *argv, flags=["-v", *flags], env=self.kenv, timeout=180)
        self.diag = "kz exit %d\nstdout:\n%s\nstderr:\n%s\naudit:\n%s" % (
            r.returncode, r.stdout[-3000:], r.stderr[-3000:], self.audit_dump())
        self.assertEqual(r.returncode, 0, self.diag)
        toks = self.tokens_in(r.stdout, "API_KEY", "OTHER_KEY")
        self.assertToken(toks["API_KEY"], len(CANARY))
        self.assertToken(toks["OTHER_KEY"], len(OTHER))
        self.tok, self.other_tok = toks["API_KEY"], toks["OTHER_KEY"]
        out = r.stdout.split("--- client output", 1)[1]
        results = [l for l in out.splitlines() if l.startswith("RESULT ")]
        self.assertTrue(results, "the client printed no result\n" + self.diag)
        self.output = r.stdout + r.stderr
        return out, json.loads(results[0][len("RESULT "):])

    def require_python_modules(self, modules, package):
        if subprocess.run([PY, "-c", "import " + modules], capture_output=True).returncode != 0:
            self.skipTest("%s is not installed (scripts/setup)" % package)

    def recs(self):
        with open(self.record) as f:
            return [json.loads(l) for l in f if l.strip()]

    # -- what every client must show -----------------------------------------------------
    def check_common(self, exe_part):
        """The value nowhere the agent or an auditor can read; swaps and refusals audited."""
        self.assertNotExposed(self.output, CANARY, "client output, its environment and kz's output")
        self.assertNotExposed(self.output, OTHER, "client output, its environment and kz's output")
        self.assertNoSecret(self.output, SHORT, "client output, its environment and kz's output")
        with open(self.audit_path) as f:
            text = f.read()
        self.assertNoSecret(text, CANARY, "audit log")
        self.assertNoSecret(text, OTHER, "audit log")
        self.assertNoSecret(text, SHORT, "audit log")
        swaps = self.assertAudited("swap", decision="allow", secret="API_KEY", host="localhost")
        self.assertTrue(any(exe_part in str(s.get("exe", "")) for s in swaps),
                        "no allowed swap audited for %r: %r" % (exe_part, [s.get("exe") for s in swaps]))
        self.assertAudited("swap", decision="refuse", secret="OTHER_KEY", host="localhost")

    def check_h2_requests(self, results, count):
        """count requests on ONE HTTP/2 connection: even i bound (value), odd i not (token)."""
        recs = self.recs()
        self.assertEqual(len(recs), count, "the server received %d requests, not %d\n%s" % (len(recs), count, self.diag))
        self.assertEqual({r["version"] for r in recs}, {"2.0"}, "the connection was downgraded\n" + self.diag)
        self.assertEqual({r["alpn"] for r in recs}, {"h2"})
        self.assertEqual(len({r["conn"] for r in recs}), 1, "the streams did not share one connection")
        self.assertEqual(len({r["stream"] for r in recs}), count)
        for r in recs:
            i = int(r["path"].rsplit("/", 1)[1])
            value = CANARY if i % 2 == 0 else self.other_tok
            self.assertEqual(r["headers"].get("authorization"), "Bearer " + value, "stream %d: %s" % (r["stream"], r))
            self.assertEqual(r["headers"].get("x-api-key"), value, "stream %d (indexed header)" % r["stream"])
            self.assertEqual(json.loads(r["body"]), {"i": i, "key": value}, "stream %d body" % r["stream"])
            self.assertEqual(r["authority"], "localhost:%d" % self.port)
        self.assertEqual(sorted(x["i"] for x in results), list(range(count)))
        for x in results:
            self.assertEqual(x["status"], 200, x)
            echo = json.loads(x["body"])["authorization"]
            # The server echoes what it received: the value comes back as the token.
            self.assertEqual(echo, "Bearer " + (self.tok if x["i"] % 2 == 0 else self.other_tok), x)

    def check_grpc(self, results, count):
        recs = self.recs()
        self.assertEqual(len(recs), count, self.diag)
        for r in recs:
            i = int(r["message"].split()[1])
            value = CANARY if i % 2 == 0 else self.other_tok
            self.assertEqual(r["metadata"].get("authorization"), "Bearer " + value, r)
            self.assertEqual(r["metadata"].get("x-api-key"), value, r)
            # The message went through whole: gRPC's length prefix still frames it.
            self.assertEqual(r["message"], "msg %d key=%s" % (i, value), r)
        self.assertEqual(len({r["peer"] for r in recs}), 1, "the calls did not share one connection")
        for x in results:
            tok = self.tok if x["i"] % 2 == 0 else self.other_tok
            self.assertEqual(x["reply"], "echo:msg %d key=%s" % (x["i"], tok), x)


class BlindHttp2(Http2Case):
    def test_node_http2(self):
        url = self.h2_server()
        out, results = self.run_client(["node", os.path.join(CLIENTS, "node_h2_client.mjs"), url + "/node", str(STREAMS)])
        self.assertIn("ALPN h2", out)
        self.check_h2_requests(results, STREAMS)
        self.check_common("node")

    def test_node_http2_basic_credentials(self):
        # authorization: Basic base64(user:TOKEN) through the proxy's HTTP/2 engine:
        # decoded, swapped on the bound host, re-encoded.
        url = self.h2_server()
        script = os.path.join(self.dir, "basic.mjs")
        with open(script, "w") as f:
            f.write(NODE_BASIC_CLIENT)
        out, res = self.run_client(["node", script, url + "/basic"])
        self.assertEqual(res["status"], 200, res)
        rec = self.recs()[0]
        self.assertEqual((rec["version"], rec["alpn"]), ("2.0", "h2"))
        b64 = lambda v: base64.b64encode(v.encode()).decode()
        self.assertEqual(rec["headers"].get("authorization"), "Basic " + b64("agent:" + CANARY), self.diag)
        # The server's echo of the credential comes back as the token's.
        self.assertEqual(json.loads(res["body"])["authorization"], "Basic " + b64("agent:" + self.tok))
        self.assertNotExposed(self.output, CANARY, "client output, its environment and kz's output")
        self.assertNotIn(b64("agent:" + CANARY), self.output)
        with open(self.audit_path) as f:
            self.assertNoSecret(f.read(), CANARY, "audit log")
        swaps = self.assertAudited("swap", decision="allow", secret="API_KEY", host="localhost")
        self.assertTrue(any("node" in str(s.get("exe", "")) for s in swaps), swaps)

    def test_go_net_http(self):
        go = go_client()
        if go is None:
            print("SKIP: go_h2_client unavailable\n" + Clients.log[-2000:])
            self.skipTest("go_h2_client unavailable")
        url = self.h2_server()
        out, results = self.run_client([go, url + "/go", str(STREAMS)])
        self.assertIn("PROTO HTTP/2.0", out)
        self.check_h2_requests(results, STREAMS)
        self.check_common("go_h2_client")

    def test_node_fetch_says_what_it_negotiates(self):
        # node 20's fetch (undici) offers HTTP/1.1 only: through the proxy it stays
        # HTTP/1.1 against a server that speaks both, and the token is swapped there.
        url = self.h2_server(h1=True)
        script = os.path.join(CLIENTS, "node_client.mjs")
        r = self.run_blind("/bin/sh", "-c", 'env; echo "--- client output"; exec "$@"', "sh", "node", script, "fetch",
                           url + "/fetch", "API_KEY", flags=["-v"], env=self.kenv, timeout=180)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        recs = self.recs()
        self.assertEqual(len(recs), 1, recs)
        print("node fetch negotiated %s (HTTP/%s)" % (recs[0]["alpn"], recs[0]["version"]))
        self.assertEqual(recs[0]["alpn"], "http/1.1")
        self.assertEqual(recs[0]["headers"]["authorization"], "Bearer " + CANARY)
        self.assertNotExposed(r.stdout + r.stderr, CANARY, "fetch output")

    def grpc_case(self, client, exe_part, flags=()):
        """client: the gRPC client's argv before its target and call count."""
        target = self.grpc_server()
        out, results = self.run_client(client + [target, str(STREAMS)], flags=flags)
        self.check_grpc(results, STREAMS)
        self.check_common(exe_part)

    def test_grpc_js(self):
        self.grpc_case(["node", os.path.join(GRPC_JS, "grpc_client.cjs")], "node")

    def test_python_grpcio(self):
        self.require_python_modules("grpc", "python3-grpcio")
        self.grpc_case([PY, os.path.join(CLIENTS, "grpc_python_client.py")], "python3", flags=["--blind=proxy"])

    def test_continuation_dynamic_table_and_a_refused_stream(self):
        # python3-h2 (its own HPACK encoder): a token in a CONTINUATION frame, a token
        # that later streams send only as a dynamic-table index, and a stream that cannot
        # be swapped exactly (a short value's token in DATA) refused on its own while the
        # other streams of the connection complete. The server's decoder (nghttp2, in
        # node) decodes every block: the tables on both sides agree.
        self.require_python_modules("h2, hpack", "python3-h2")
        self.h2_server()
        out, results = self.run_client([PY, os.path.join(CLIENTS, "h2_frames_client.py"), "localhost",
                                        str(self.port)], flags=["--blind=proxy"])
        recs = {r["path"]: r for r in self.recs()}
        self.assertEqual(len(recs), 5, self.diag)
        self.assertEqual({r["conn"] for r in recs.values()}, {1}, self.diag)
        self.assertEqual({r["version"] for r in recs.values()}, {"2.0"})
        split = recs["/split"]["headers"]
        self.assertEqual(split.get("authorization"), "Bearer " + CANARY, "the token in the CONTINUATION frame")
        self.assertEqual(split.get("x-api-key"), CANARY)
        self.assertEqual(split.get("x-pad"), "p" * 20000)
        self.assertEqual(recs["/indexed"]["headers"].get("x-api-key"), CANARY, "a dynamic-table reference")
        self.assertEqual(recs["/indexed-again"]["headers"].get("x-api-key"), CANARY)
        self.assertEqual(json.loads(recs["/indexed-again"]["body"]), {"key": CANARY})
        self.assertEqual(recs["/other"]["headers"].get("x-api-key"), self.other_tok)
        # The refused stream: reset toward the client, never completed at the server with
        # a half-swapped or wrong-length body; the others answered.
        self.assertIn("reset", results["/short-in-body"], results)
        refused = recs.get("/short-in-body", {})
        self.assertTrue(refused.get("reset"), "the refused stream was not reset at the server: %s" % refused)
        self.assertEqual(refused.get("body"), "", "a refused stream's DATA reached the server")
        for path in ("/split", "/indexed", "/other", "/indexed-again"):
            self.assertEqual(results[path].get("status"), 200, results)
        self.assertAudited("swap", decision="refuse", secret="SHORT_KEY")
        self.check_common("python3")


# A client that writes its requests once and then only reads (python3-hpack, frames by
# hand): its connection window stays the default 65535 bytes, which the server's refused
# /coded body fills exactly. /after can then come only once kz gives the server the
# credit of the bytes it dropped, without the client writing anything more.
ONLY_READS_CLIENT = r'''
import json, os, socket, ssl, sys, hpack
host, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
ctx.set_alpn_protocols(["h2"])
s = ctx.wrap_socket(socket.create_connection((host, port)), server_hostname=host)
def frame(t, f, sid, p=b""):
    return len(p).to_bytes(3, "big") + bytes([t, f]) + sid.to_bytes(4, "big") + p
buf = b""
def read_frame():
    global buf
    while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
        d = s.recv(65536)
        if not d:
            raise EOFError
        buf += d
    n = int.from_bytes(buf[:3], "big")
    f = (buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff, buf[9:9 + n])
    buf = buf[9 + n:]
    return f
# Stream windows of 1 MiB (SETTINGS_INITIAL_WINDOW_SIZE); the connection's stays 65535.
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, (4).to_bytes(2, "big") + (1 << 20).to_bytes(4, "big")))
while True:
    t, f, sid, p = read_frame()
    if t == 4 and not f & 1:
        break
s.sendall(frame(4, 1, 0))
enc = hpack.Encoder()
def req(path, extra=()):
    return enc.encode([(":method", "GET"), (":scheme", "https"), (":authority", "%s:%d" % (host, port)),
                       (":path", path)] + list(extra))
s.sendall(frame(1, 0x5, 1, req("/coded", [("authorization", "Bearer " + os.environ["API_KEY"])])) +
          frame(1, 0x5, 3, req("/after")))
# From here on the client only reads.
s.settimeout(15)
res = {"after_bytes": 0, "after_done": False, "coded_rst": None, "coded_bytes": 0}
try:
    while not res["after_done"]:
        t, f, sid, p = read_frame()
        if t == 0 and sid == 3:
            res["after_bytes"] += len(p)
            res["after_done"] = bool(f & 1)
        elif t == 0 and sid == 1:
            res["coded_bytes"] += len(p)
        elif t == 3 and sid == 1:
            res["coded_rst"] = int.from_bytes(p, "big")
except (socket.timeout, EOFError) as e:
    res["stalled"] = type(e).__name__
print("RESULT " + json.dumps(res))
'''


class OnlyReads(Http2Case):
    def test_refused_stream_credit_reaches_a_client_that_only_reads(self):
        # The proxy refuses /coded (a content-coded answer on a connection that carries a
        # value) and drops its 65535 bytes: their credit (and the stream's RST_STREAM) must
        # reach the server from the proxy's read side, not wait for a client write that
        # never comes.
        self.start([os.path.join(SERVERS, "h2_coded_window_server.mjs"), "--cert", self.ca["server"],
                    "--key", self.ca["server_key"]])
        py = os.path.join(self.dir, "only_reads.py")
        with open(py, "w") as f:
            f.write(ONLY_READS_CLIENT)
        out, res = self.run_client([PY, py, "localhost", str(self.port)], flags=["--blind=proxy"])
        self.assertEqual(res["coded_rst"], 8, "the coded stream was not reset toward the client: %s" % res)
        self.assertEqual(res["coded_bytes"], 0, res)
        self.assertEqual(res.get("stalled"), None, "the server's window stayed shut: %s\n%s" % (res, self.diag))
        self.assertEqual((res["after_bytes"], res["after_done"]), (20000, True), res)
        self.assertAudited("swap", decision="allow", secret="API_KEY", host="localhost")


class BlindHttp2Off(Http2Case):
    """[blind] http2 = false: the proxy keeps clients on HTTP/1.1 (one that offers h2
    and http/1.1 is answered with http/1.1; an h2-only client gets no ALPN answer)."""

    def start(self, argv):
        super().start(argv)
        with open(os.path.join(self.dir, ".keyzero.toml"), "a") as f:
            f.write("http2 = false\n")

    def test_go_net_http(self):
        go = go_client()
        if go is None:
            self.skipTest("go_h2_client unavailable")
        url = self.h2_server(h1=True)
        out, results = self.run_client([go, url + "/go", "4"])
        self.assertIn("PROTO HTTP/1.1", out)
        recs = self.recs()
        self.assertEqual({r["alpn"] for r in recs}, {"http/1.1"})
        self.assertEqual({r["headers"]["authorization"] for r in recs if r["path"].endswith(("/0", "/2"))},
                         {"Bearer " + CANARY})


if __name__ == "__main__":
    unittest.main()

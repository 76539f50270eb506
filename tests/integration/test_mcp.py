"""The MCP server end to end: `kz server start --mcp` (Streamable HTTP) and `kz mcp`
(stdio) with a bundle made at test time, driven by the official TypeScript SDK client
(tests/mcp/sdk_client.mjs) and by raw JSON-RPC for what a well-behaved client never
sends. The target APIs are real HTTPS servers on loopback with certificates from a test
CA: tests/servers/demo_api.py accepts only the real credential and echoes it back,
tests/servers/fetch_target.py redirects and echoes. The agent side (every byte the
client received) never holds the value; the API does; every call is audited.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from kzt import KZ, SRC, KzServer, KzTestCase, ServerProcess, encodings, make_test_ca, mcp_post, read_jsonl  # noqa: E402
import mint_jwt  # noqa: E402

VALUE = "mcp-demo-VALUE-5d2f9e0c7a41b3"
REVEAL_VALUE = "mcp-reveal-VALUE-0a9b8c7d6e"
ISSUER = "https://auth.kz.test"
AUDIENCE = "keyzero"
MCP_DIR = os.path.join(SRC, "tests", "mcp")
NODE = "node"

BUNDLE = """
identity:
  issuers:
    - issuer: "%(issuer)s"
      audience: "%(audience)s"
      jwks_file: ./jwks.json
secrets:
  DEMO_KEY: { provider: env, ref: KZ_MCP_DEMO_VALUE, hosts: ["127.0.0.1"] }
  REVEALABLE: { provider: env, ref: KZ_MCP_REVEAL_VALUE, hosts: ["127.0.0.1"] }
policies:
- match: "KZ_MCP_DEMO_VALUE"
  rules:
  - cel: "identity.service == 'agent'"
    effect: allow
- match: "KZ_MCP_REVEAL_VALUE"
  rules:
  - cel: "identity.service == 'agent'"
    effect: allow
    reveal: true
mcp:
  token_ttl: 10m
  fetch:
    %(allow)s
    ca_file: ./ca.pem
    timeout: 20s
"""


def setup_node_tools():
    subprocess.run([os.path.join(SRC, "scripts", "setup-mcp-tools")], check=True, timeout=600)


class McpTest(KzTestCase):
    @classmethod
    def setUpClass(cls):
        setup_node_tools()
        cls.dir = tempfile.mkdtemp(prefix="kz-mcp-")
        cls.ca = make_test_ca(os.path.join(cls.dir, "ca"))
        shutil.copy(cls.ca["ca"], os.path.join(cls.dir, "ca.pem"))
        mint_jwt.keys(cls.dir)
        cls.expected = os.path.join(cls.dir, "expected")
        with open(cls.expected, "w") as f:
            f.write(VALUE)
        cls.api_record = os.path.join(cls.dir, "api-record.txt")
        tls = ["--cert", cls.ca["server"], "--key", cls.ca["server_key"]]
        cls.api = ServerProcess("demo_api.py", *tls, "--expected-file", cls.expected, "--record", cls.api_record)
        cls.target = ServerProcess("fetch_target.py", *tls)
        cls.rogue = ServerProcess("fetch_target.py", "--cert", cls.ca["rogue"], "--key", cls.ca["rogue_key"])
        cls.plain = ServerProcess("fetch_target.py", "--plain")
        cls.bundle = cls.write_bundle("bundle.yaml", "allow_addresses: [loopback]")
        cls.strict_bundle = cls.write_bundle("strict.yaml", "max_redirects: 5")
        cls.audit_log = os.path.join(cls.dir, "audit.jsonl")
        cls.server_env = dict(os.environ, KZ_MCP_DEMO_VALUE=VALUE, KZ_MCP_REVEAL_VALUE=REVEAL_VALUE)
        cls.server = KzServer(cls.bundle, "--mcp", "--audit-log", cls.audit_log, env=cls.server_env)
        cls.url = cls.server.url + "/mcp"
        now = int(time.time())
        base = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 900}
        cls.agent = mint_jwt.token(cls.dir, dict(base, sub="agent-1", service="agent"))
        cls.intruder = mint_jwt.token(cls.dir, dict(base, sub="intruder-1", service="intruder"))
        cls.agent_file = os.path.join(cls.dir, "agent.jwt")
        with open(cls.agent_file, "w") as f:
            f.write(cls.agent)

    @classmethod
    def write_bundle(cls, name, allow):
        path = os.path.join(cls.dir, name)
        with open(path, "w") as f:
            f.write(BUNDLE % {"issuer": ISSUER, "audience": AUDIENCE, "allow": allow})
        return path

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
        finally:
            for s in (cls.api, cls.target, cls.rogue, cls.plain):
                s.stop()
            shutil.rmtree(cls.dir, True)

    # -- raw Streamable HTTP ------------------------------------------------------------

    def post(self, body, token=None, session=None, headers=None, method="POST"):
        return mcp_post(self.url, body, token, session, headers, method)

    def session(self, token):
        status, headers, reply = self.post({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                                       "clientInfo": {"name": "kz-test", "version": "1"}}}, token)
        self.assertEqual(status, 200, reply)
        sid = headers.get("Mcp-Session-Id") or headers.get("mcp-session-id")
        self.assertTrue(sid)
        status, _, _ = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, token, sid)
        self.assertEqual(status, 202)
        return sid

    def call(self, tool, args, token=None, sid=None):
        token = token or self.agent
        sid = sid or self.session(token)
        status, _, reply = self.post({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                                      "params": {"name": tool, "arguments": args}}, token, sid)
        self.assertEqual(status, 200, reply)
        return reply

    def token_for(self, name="DEMO_KEY", token=None):
        r = self.call("resolve", {"name": name}, token)
        self.assertFalse(r["result"].get("isError"), r)
        return r["result"]["structuredContent"]["token"]

    def text_of(self, reply):
        return " ".join(c.get("text", "") for c in reply["result"]["content"])

    def audit(self):
        # The decision log is written by its own thread: wait for the record we expect
        # by polling the file for up to a few seconds (no fixed sleep).
        return read_jsonl(self.audit_log)

    def wait_audit(self, pred, what):
        deadline = time.time() + 10
        while time.time() < deadline:
            recs = [r for r in self.audit() if pred(r)]
            if recs:
                return recs
            time.sleep(0.05)
        self.fail("no audit record: " + what)

    def assertRefused(self, reply, *fragments):
        self.assertTrue(reply["result"].get("isError"), reply)
        text = self.text_of(reply)
        for f in fragments:
            self.assertIn(f, text)
        self.assertNotIn(VALUE, json.dumps(reply))

    def api_url(self, path="/check", host="127.0.0.1", server=None):
        return "https://%s:%d%s" % (host, (server or self.api).port, path)

    # -- the official SDK client ----------------------------------------------------------

    def sdk(self, mode_args, steps, env=None):
        steps_file = os.path.join(self.dir, "steps-%d.json" % time.monotonic_ns())
        with open(steps_file, "w") as f:
            json.dump(steps, f)
        p = subprocess.run([NODE, os.path.join(MCP_DIR, "sdk_client.mjs"), "--steps", steps_file] + mode_args,
                           capture_output=True, text=True, timeout=120, env=env or os.environ.copy())
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout, json.loads(p.stdout)

    def check_sdk_transcript(self, raw, out):
        names = sorted(t["name"] for t in out["tools"])
        self.assertEqual(names, ["fetch", "resolve"])
        for t in out["tools"]:
            self.assertTrue(t["description"])
            self.assertEqual(t["inputSchema"]["type"], "object")
        resolved = out["steps"][0]["result"]["structuredContent"]
        self.assertTrue(resolved["token"].startswith("KZ_TOK_"))
        self.assertEqual(resolved["hosts"], ["127.0.0.1"])
        self.assertNotIn("value", resolved)
        fetched = out["steps"][1]["result"]["structuredContent"]
        self.assertEqual(fetched["status"], 200, fetched)
        # The API checked the real credential, and echoed it: the agent sees the token.
        body = json.loads(fetched["body"])
        self.assertEqual(body["you_sent"], "Bearer " + resolved["token"])
        self.assertGreaterEqual(fetched["redacted"], 1)
        for form in encodings(VALUE).values():
            self.assertNotIn(form, raw)
        with open(self.api_record) as f:
            self.assertIn("Authorization: Bearer " + VALUE, f.read())

    STEPS = [{"tool": "resolve", "arguments": {"name": "DEMO_KEY"}},
             {"tool": "fetch", "arguments": {"url": "%s", "headers": {"Authorization": "Bearer {{0.token}}"}}}]

    def steps(self):
        s = json.loads(json.dumps(self.STEPS))
        s[1]["arguments"]["url"] = self.api_url()
        return s

    def test_sdk_client_over_streamable_http(self):
        raw, out = self.sdk(["--http", self.url, "--bearer-file", self.agent_file], self.steps())
        self.assertEqual(out["serverInfo"]["name"], "keyzero")
        self.assertTrue(out["sessionId"])
        self.check_sdk_transcript(raw, out)
        recs = self.wait_audit(lambda r: r.get("event") == "mcp.call" and r.get("tool") == "fetch"
                               and r.get("transport") == "http" and r.get("status") == 200, "http fetch")
        self.assertEqual(recs[-1]["secrets"], ["DEMO_KEY"])
        self.assertEqual(recs[-1]["sub"], "agent-1")

    def test_sdk_client_over_stdio(self):
        audit = os.path.join(self.dir, "stdio-audit.jsonl")
        stderr = os.path.join(self.dir, "stdio-stderr.txt")
        env = dict(self.server_env)
        raw, out = self.sdk(["--stdio", "--server-stderr", stderr, "--", KZ, "mcp", "--bundle", self.bundle,
                             "--identity-token-file", self.agent_file, "--audit-log", audit], self.steps(), env)
        self.check_sdk_transcript(raw, out)
        recs = read_jsonl(audit)
        calls = [r for r in recs if r.get("event") == "mcp.call"]
        self.assertEqual([r["tool"] for r in calls], ["resolve", "fetch"])
        self.assertTrue(all(r["decision"] == "allow" and r["transport"] == "stdio" for r in calls), calls)
        with open(audit) as f:
            self.assertNoSecret(f.read(), VALUE, "stdio audit log")
        with open(stderr) as f:
            self.assertNoSecret(f.read(), VALUE, "kz mcp stderr")
        summary = subprocess.run([KZ, "audit", "summary", audit], capture_output=True, text=True, timeout=30)
        self.assertEqual(summary.returncode, 0, summary.stderr)
        self.assertRegex(summary.stdout, r"uses per secret.*\n\s+DEMO_KEY\s+1\n")
        self.assertIn("kz (MCP fetch for agent-1)", summary.stdout)
        verify = subprocess.run([KZ, "audit", "verify", audit], capture_output=True, text=True, timeout=30)
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)

    # -- resolve --------------------------------------------------------------------------

    def test_resolve_by_ref_and_reveal_rule(self):
        r = self.call("resolve", {"ref": "KZ_MCP_DEMO_VALUE"})
        self.assertEqual(r["result"]["structuredContent"]["name"], "DEMO_KEY")
        self.assertNotIn(VALUE, json.dumps(r))
        r = self.call("resolve", {"name": "REVEALABLE"})
        self.assertEqual(r["result"]["structuredContent"]["value"], REVEAL_VALUE)
        rec = self.wait_audit(lambda x: x.get("tool") == "resolve" and x.get("secret") == "REVEALABLE", "reveal")
        self.assertTrue(rec[-1]["revealed"])

    def test_identity_that_policy_denies(self):
        r = self.call("resolve", {"name": "DEMO_KEY"}, token=self.intruder)
        self.assertRefused(r, "denied by policy")
        self.wait_audit(lambda x: x.get("tool") == "resolve" and x.get("sub") == "intruder-1"
                        and x.get("decision") == "deny", "policy denial")

    def test_token_of_another_identity_is_refused(self):
        tok = self.token_for()
        r = self.call("fetch", {"url": self.api_url(), "headers": {"Authorization": "Bearer " + tok}},
                      token=self.intruder)
        self.assertRefused(r, "another identity")

    # -- fetch refusals -------------------------------------------------------------------

    def test_fetch_to_unbound_host(self):
        tok = self.token_for()
        r = self.call("fetch", {"url": self.api_url(host="localhost"), "headers": {"Authorization": "Bearer " + tok}})
        self.assertRefused(r, "may not be sent to localhost")
        self.wait_audit(lambda x: x.get("tool") == "fetch" and x.get("decision") == "deny"
                        and x.get("host") == "localhost", "unbound host")

    def test_fetch_plain_http_refused(self):
        tok = self.token_for()
        r = self.call("fetch", {"url": "http://127.0.0.1:%d/echo" % self.plain.port,
                                "headers": {"Authorization": "Bearer " + tok}})
        self.assertRefused(r, "https")
        self.wait_audit(lambda x: x.get("tool") == "fetch" and x.get("decision") == "deny"
                        and "https" in x.get("reason", ""), "plain http")

    def test_fetch_unverified_peer_refused(self):
        tok = self.token_for()
        r = self.call("fetch", {"url": self.api_url("/echo", server=self.rogue),
                                "headers": {"Authorization": "Bearer " + tok}})
        self.assertRefused(r, "TLS")
        self.wait_audit(lambda x: x.get("tool") == "fetch" and x.get("decision") == "error"
                        and "TLS" in x.get("reason", ""), "unverified peer")

    def test_redirect_to_unbound_host_refused(self):
        tok = self.token_for()
        away = "https://localhost:%d/echo" % self.target.port
        r = self.call("fetch", {"url": self.api_url("/redirect?to=" + urllib.request.quote(away, safe=""),
                                                    server=self.target),
                                "headers": {"Authorization": "Bearer " + tok}})
        self.assertRefused(r, "redirect to localhost refused")
        self.wait_audit(lambda x: x.get("tool") == "fetch" and "redirect to localhost" in x.get("reason", ""),
                        "redirect refusal")

    def test_redirect_on_bound_host_followed_with_credential(self):
        tok = self.token_for()
        r = self.call("fetch", {"url": self.api_url("/redirect?to=/echo&code=307", server=self.target),
                                "method": "POST", "body": "key=" + tok, "headers": {"X-Key": tok}})
        sc = r["result"]["structuredContent"]
        self.assertEqual((sc["status"], sc["redirects"]), (200, 1), sc)
        echoed = json.loads(sc["body"])
        # The server got the value (in the header and the body); the agent sees the token.
        self.assertIn(["X-Key", tok], echoed["headers"])
        self.assertEqual(echoed["body"], "key=" + tok)
        self.assertNotIn(VALUE, json.dumps(r))

    def test_response_echoing_the_secret_is_redacted(self):
        tok = self.token_for()
        r = self.call("fetch", {"url": self.api_url("/echo", server=self.target),
                                "headers": {"Authorization": "Basic " + __import__("base64").b64encode(
                                    ("user:" + tok).encode()).decode()}})
        sc = r["result"]["structuredContent"]
        self.assertEqual(sc["status"], 200)
        self.assertGreaterEqual(sc.get("redacted", 0), 1, sc)
        for form in encodings(VALUE).values():
            self.assertNotIn(form, json.dumps(r))
        self.wait_audit(lambda x: x.get("tool") == "fetch" and x.get("decision") == "allow"
                        and x.get("redacted", 0) >= 1 and x.get("path") == "/echo", "redacted echo")

    def test_cookies_and_auth_headers_are_not_returned(self):
        r = self.call("fetch", {"url": self.api_url("/set-cookie", server=self.target)})
        headers = r["result"]["structuredContent"]["headers"]
        self.assertNotIn("set-cookie", headers)
        self.assertEqual(headers["content-type"], "application/json")

    def test_binary_body_is_base64_and_large_body_truncated(self):
        r = self.call("fetch", {"url": self.api_url("/binary", server=self.target)})
        sc = r["result"]["structuredContent"]
        self.assertEqual(sc["body_encoding"], "base64")
        self.assertEqual(__import__("base64").b64decode(sc["body"]), bytes(range(256)))
        r = self.call("fetch", {"url": self.api_url("/big?n=%d" % (2 << 20), server=self.target)})
        sc = r["result"]["structuredContent"]
        self.assertTrue(sc["truncated"])
        self.assertEqual(len(sc["body"]), 1 << 20)

    def test_metadata_and_loopback_addresses(self):
        r = self.call("fetch", {"url": "https://169.254.169.254/latest/meta-data/", "timeout_ms": 5000})
        self.assertRefused(r, "metadata")
        # A bundle that does not allow loopback: the same API is refused after DNS.
        lines = [{"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
                 {"jsonrpc": "2.0", "method": "notifications/initialized"},
                 {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                  "params": {"name": "fetch", "arguments": {"url": "https://localhost:%d/echo" % self.target.port}}}]
        replies = self.stdio([json.dumps(x) for x in lines], bundle=self.strict_bundle)
        self.assertTrue(replies[1]["result"]["isError"])
        self.assertIn("loopback", replies[1]["result"]["content"][0]["text"])

    def test_tokens_in_url_and_bad_headers_refused(self):
        tok = self.token_for()
        r = self.call("fetch", {"url": self.api_url("/echo?k=" + tok, server=self.target)})
        self.assertRefused(r, "never in the URL")
        sid = self.session(self.agent)
        status, _, reply = self.post({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                      "params": {"name": "fetch", "arguments": {
                                          "url": self.api_url("/echo", server=self.target),
                                          "headers": {"X-A": "1\r\nX-Injected: yes"}}}}, self.agent, sid)
        self.assertEqual(reply["error"]["code"], -32602)   # 2025-06-18: a protocol error
        self.assertIn("CR, LF", reply["error"]["message"])

    # -- protocol errors ------------------------------------------------------------------

    def test_malformed_json_rpc_over_http(self):
        sid = self.session(self.agent)
        status, _, reply = self.post(b"{not json", self.agent, sid)
        self.assertEqual((status, reply["error"]["code"]), (400, -32700))
        status, _, reply = self.post([{"jsonrpc": "2.0", "id": 1, "method": "ping"}], self.agent, sid)
        self.assertEqual(reply["error"]["code"], -32600)
        status, _, reply = self.post({"jsonrpc": "2.0", "id": 2, "method": "no/such"}, self.agent, sid)
        self.assertEqual(reply["error"]["code"], -32601)
        status, _, reply = self.post({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                      "params": {"name": "nope"}}, self.agent, sid)
        self.assertEqual(reply["error"]["code"], -32602)
        status, _, reply = self.post({"jsonrpc": "1.0", "id": 4, "method": "ping"}, self.agent, sid)
        self.assertEqual(reply["error"]["code"], -32600)
        status, _, reply = self.post({"jsonrpc": "2.0", "id": 5, "method": "ping", "params": {"pad": "x" * (2 << 20)}},
                                     self.agent, sid)
        self.assertEqual((status, reply["error"]["code"]), (413, -32600))
        # HTTP-level refusals.
        status, headers, _ = self.post({"jsonrpc": "2.0", "id": 6, "method": "ping"}, None, sid)
        self.assertEqual(status, 401)
        self.assertIn("Bearer", headers.get("WWW-Authenticate", ""))
        status, _, _ = self.post({"jsonrpc": "2.0", "id": 7, "method": "ping"}, self.agent, sid,
                                 {"Host": "evil.example.com", "Origin": "http://evil.example.com"})
        self.assertEqual(status, 403)
        status, _, _ = self.post({"jsonrpc": "2.0", "id": 8, "method": "ping"}, self.agent)
        self.assertEqual(status, 400)
        status, _, _ = self.post({"jsonrpc": "2.0", "id": 9, "method": "ping"}, self.agent, "f" * 48)
        self.assertEqual(status, 404)
        status, _, _ = self.post({"jsonrpc": "2.0", "id": 10, "method": "ping"}, self.intruder, sid)
        self.assertEqual(status, 404, "another identity's session")
        status, _, _ = self.post({"jsonrpc": "2.0", "id": 11, "method": "ping"}, self.agent, sid,
                                 {"MCP-Protocol-Version": "1999-01-01"})
        self.assertEqual(status, 400)
        status, _, _ = self.post(None, self.agent, sid, method="GET")
        self.assertEqual(status, 405)
        # And the server goes on serving.
        status, _, reply = self.post({"jsonrpc": "2.0", "id": 12, "method": "ping"}, self.agent, sid)
        self.assertEqual((status, reply), (200, {"jsonrpc": "2.0", "id": 12, "result": {}}))
        recs = self.wait_audit(lambda x: x.get("event") == "mcp.refused" and x.get("code") == -32700, "parse error")
        self.assertEqual(recs[-1]["sub"], "agent-1")
        self.wait_audit(lambda x: x.get("event") == "mcp.auth", "401")
        status, _, _ = self.post(None, self.agent, sid, method="DELETE")
        self.assertEqual(status, 200)
        status, _, _ = self.post({"jsonrpc": "2.0", "id": 13, "method": "ping"}, self.agent, sid)
        self.assertEqual(status, 404)

    def stdio(self, lines, bundle=None, token=None):
        env = dict(self.server_env, KZ_IDENTITY_TOKEN=token or self.agent)
        audit = os.path.join(self.dir, "stdio-raw-%d.jsonl" % time.monotonic_ns())
        p = subprocess.run([KZ, "mcp", "--bundle", bundle or self.bundle, "--audit-log", audit],
                           input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn(VALUE, p.stdout + p.stderr)
        self.stdio_audit = read_jsonl(audit)
        return [json.loads(l) for l in p.stdout.splitlines()]

    def test_malformed_json_rpc_over_stdio(self):
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        replies = self.stdio([json.dumps(init), "{oops", "x" * (5 << 20),
                              json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
                              json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                          "params": {"name": "fetch", "arguments": {"url": 5}}}),
                              json.dumps({"jsonrpc": "2.0", "id": 4, "method": "ping"})])
        self.assertEqual(replies[0]["result"]["protocolVersion"], "2025-11-25")
        self.assertEqual(replies[1]["error"]["code"], -32700)
        self.assertEqual(replies[2]["error"]["code"], -32600)
        self.assertIn("too large", replies[2]["error"]["message"])
        self.assertEqual(len(replies[3]["result"]["tools"]), 2)
        # 2025-11-25: input validation errors are tool results the model can read.
        self.assertTrue(replies[4]["result"]["isError"])
        self.assertIn("url must be a string", replies[4]["result"]["content"][0]["text"])
        self.assertEqual(replies[5]["result"], {})
        codes = sorted(r["code"] for r in self.stdio_audit if r.get("event") == "mcp.refused")
        self.assertEqual(codes, [-32700, -32602, -32600])

    def test_stdio_refuses_a_bad_identity_token(self):
        env = dict(self.server_env, KZ_IDENTITY_TOKEN=self.agent[:-4] + "AAAA")
        p = subprocess.run([KZ, "mcp", "--bundle", self.bundle, "--audit-log", os.path.join(self.dir, "x.jsonl")],
                           input="", capture_output=True, text=True, timeout=30, env=env)
        self.assertEqual(p.returncode, 2)
        self.assertIn("identity token refused", p.stderr)
        self.assertEqual(p.stdout, "")

    def test_audit_log_holds_no_value(self):
        self.token_for()
        self.wait_audit(lambda x: x.get("tool") == "resolve", "a resolve")
        with open(self.audit_log) as f:
            text = f.read()
        for form in encodings(VALUE).values():
            self.assertNotIn(form, text)
        # (REVEAL_VALUE is shown to the agent by design, but never written to the log.)
        self.assertNotIn(REVEAL_VALUE, text)


if __name__ == "__main__":
    unittest.main()

"""Approvals at the PDP (issue 19, part 5): a bundle rule with `effect: approve` makes a
decision wait for a person, asked through the bundle's approvals webhook (a real HTTPS
server of the test's own, tests/servers/approval_webhook.py). The decision API answers
approved/denied/timeout (or pending with "wait": false), the MCP fetch tool waits for
the same answer, and the decision log holds the "approve" records.
"""
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from kzt import KzServer, KzTestCase, ServerProcess, make_test_ca, mcp_post, read_jsonl  # noqa: E402
import mint_jwt  # noqa: E402

ISSUER = "https://auth.kz.test"
AUDIENCE = "keyzero"

BUNDLE = """
identity:
  issuers:
    - issuer: "%(issuer)s"
      audience: "%(audience)s"
      jwks_file: ./jwks.json
approvals:
  webhook: "https://localhost:%(port)d/approve"
  timeout: 1500ms
  ca_file: ./ca.pem
policies:
- match: "payments/**"
  rules:
  - cel: "identity.service == 'billing-agent'"
    effect: allow
  - cel: "has(request.method) && request.method == 'POST'"
    effect: approve
"""

# The MCP tools under the same kind of rule: fetch POSTs wait for the approver.
MCP_BUNDLE = """
identity:
  issuers:
    - issuer: "%(issuer)s"
      audience: "%(audience)s"
      jwks_file: ./jwks.json
approvals:
  webhook: "https://localhost:%(port)d/approve"
  timeout: 1500ms
  ca_file: ./ca.pem
secrets:
  STRIPE: { provider: env, ref: KZ_PDP_APPROVE_VALUE, hosts: ["127.0.0.1"] }
policies:
- match: "KZ_PDP_APPROVE_VALUE"
  rules:
  - cel: "identity.service == 'billing-agent'"
    effect: allow
  - cel: "has(request.method) && request.method == 'POST'"
    effect: approve
mcp:
  fetch: { allow_addresses: [loopback], ca_file: ./ca.pem, timeout: 20s }
"""
MCP_VALUE = "mcp-approve-VALUE-0f1e2d3c4b5a"

SECRET = {"name": "STRIPE", "provider": "env", "ref": "payments/stripe"}
USE = {"host": "api.stripe.com", "method": "POST", "path": "/v1/charges"}


class PdpFixture(KzTestCase):
    """A test CA, a JWKS and an identity (billing-agent) for a kz server per test."""

    @classmethod
    def setUpClass(cls):
        cls.pdir = tempfile.mkdtemp(prefix="kz-pdp-approve-")
        cls.ca = make_test_ca(os.path.join(cls.pdir, "ca"))
        shutil.copy(cls.ca["ca"], os.path.join(cls.pdir, "ca.pem"))
        mint_jwt.keys(cls.pdir)
        now = int(time.time())
        cls.token = mint_jwt.token(cls.pdir, {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600,
                                              "sub": "billing-1", "service": "billing-agent"})

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pdir, True)

    def stop_server(self):
        if self.running:
            self.running = False
            self.server.stop()

    def records(self, event):
        self.stop_server()   # the decision log is written in batches; stopping flushes it
        return [r for r in read_jsonl(self.log) if r.get("event") == event]


class PdpApprovalTest(PdpFixture):
    def start(self, answers):
        self.asks = os.path.join(self.dir, "asks.jsonl")
        hook = ServerProcess("approval_webhook.py", "--cert", self.ca["server"], "--key", self.ca["server_key"],
                             "--answers", answers, "--record", self.asks)
        self.addCleanup(hook.stop)
        bundle = os.path.join(self.pdir, "bundle.yaml")
        with open(bundle, "w") as f:
            f.write(BUNDLE % {"issuer": ISSUER, "audience": AUDIENCE, "port": hook.port})
        self.log = os.path.join(self.dir, "decisions.jsonl")
        self.server = KzServer(bundle, "--audit-log", self.log)
        self.running = True
        self.addCleanup(self.stop_server)
        self.url = self.server.url

    def decide(self, request, wait=None):
        body = {"secrets": [SECRET], "request": request}
        if wait is not None:
            body["wait"] = wait
        req = urllib.request.Request(self.url + "/v1/decide", data=json.dumps(body).encode())
        req.add_header("Authorization", "Bearer " + self.token)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def test_approved(self):
        self.start("approve")
        status, j = self.decide(USE)
        self.assertEqual(status, 200, j)
        res = j["results"][0]
        self.assertTrue(res["allow"], res)
        self.assertEqual(res["approval"]["status"], "approved")
        self.assertEqual(res["approval"]["by"], "webhook: test approver")
        self.assertEqual(res["rule"], "policies[0].rules[1]")
        ask = read_jsonl(self.asks)[0]["ask"]
        self.assertEqual((ask["sub"], ask["ref"], ask["host"], ask["method"], ask["path"]),
                         ("billing-1", "payments/stripe", "api.stripe.com", "POST", "/v1/charges"))
        self.assertEqual(ask["request_hash"], res["approval"]["request_hash"])
        self.assertEqual(ask["decision_id"], j["decision_id"])
        recs = self.records("approve")
        self.assertEqual([r["decision"] for r in recs], ["asked", "approved"])
        for r in recs:
            self.assertEqual((r["channel"], r["sub"], r["ref"], r["decision_id"]),
                             ("pdp", "billing-1", "payments/stripe", j["decision_id"]))
        dec = [r for r in read_jsonl(self.log) if r.get("event") == "decision"]
        self.assertEqual(dec[0]["result"][0]["approval"]["status"], "approved")

    def test_the_hash_binds_the_identity_and_the_decision(self):
        # An answer names the request's hash: the hash covers iss, sub and the decision id,
        # so a stored approval of one identity's (or one decision's) request answers no other.
        self.start("approve,approve")
        hashes = []
        for _ in range(2):
            _, j = self.decide(USE)
            res = j["results"][0]
            scope = "".join("%d:%s;" % (len(p.encode()), p)
                            for p in ("payments/stripe", ISSUER, "billing-1", j["decision_id"]))
            want = hashlib.sha256("\0".join([scope, "POST", "api.stripe.com", "/v1/charges", ""]).encode()
                                  + b"\0").hexdigest()
            self.assertEqual(res["approval"]["request_hash"], want)
            hashes.append(want)
        self.assertNotEqual(hashes[0], hashes[1])

    def assertRefusedAs(self, answers, status):
        self.start(answers)
        _, j = self.decide(USE)
        res = j["results"][0]
        self.assertFalse(res["allow"], res)
        self.assertEqual(res["approval"]["status"], status)
        self.assertEqual([r["decision"] for r in self.records("approve")], ["asked", status])

    def test_denied(self):
        self.assertRefusedAs("deny", "denied")

    def test_timeout_fails_closed(self):
        self.assertRefusedAs("hang", "timeout")

    def test_an_answer_for_another_request_denies(self):
        self.start("wrong-hash")
        _, j = self.decide(USE)
        self.assertFalse(j["results"][0]["allow"])
        self.assertIn("another request", j["results"][0]["approval"]["by"])

    def test_pending_without_wait_and_no_ask_when_not_needed(self):
        self.start("approve")
        _, j = self.decide(USE, wait=False)
        res = j["results"][0]
        self.assertFalse(res["allow"])
        self.assertEqual(res["approval"], {"status": "pending"})
        # A GET is not held by the rule: allowed, nobody asked.
        _, j = self.decide(dict(USE, method="GET"))
        self.assertTrue(j["results"][0]["allow"])
        self.assertNotIn("approval", j["results"][0])
        self.assertFalse(os.path.exists(self.asks))
        self.assertEqual(self.records("approve"), [])


class McpFetchApprovalTest(PdpFixture):
    def start_mcp(self, answers):
        self.asks = os.path.join(self.dir, "asks.jsonl")
        hook = ServerProcess("approval_webhook.py", "--cert", self.ca["server"], "--key", self.ca["server_key"],
                             "--answers", answers, "--record", self.asks)
        self.addCleanup(hook.stop)
        self.api_record = os.path.join(self.dir, "api.jsonl")
        api = ServerProcess("echo_api.py", "--cert", self.ca["server"], "--key", self.ca["server_key"],
                            "--record", self.api_record, "--alpn", "http/1.1")
        self.addCleanup(api.stop)
        self.api_port = api.port
        bundle = os.path.join(self.pdir, "mcp-bundle.yaml")
        with open(bundle, "w") as f:
            f.write(MCP_BUNDLE % {"issuer": ISSUER, "audience": AUDIENCE, "port": hook.port})
        self.log = os.path.join(self.dir, "decisions.jsonl")
        self.server = KzServer(bundle, "--mcp", "--audit-log", self.log,
                               env=dict(os.environ, KZ_PDP_APPROVE_VALUE=MCP_VALUE))
        self.running = True
        self.addCleanup(self.stop_server)
        self.mcp = self.server.url + "/mcp"

    def call(self, tool, args):
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "kz-test", "version": "1"}}}
        status, headers, _ = mcp_post(self.mcp, init, self.token)
        self.assertEqual(status, 200)
        sid = headers.get("Mcp-Session-Id") or headers.get("mcp-session-id")
        mcp_post(self.mcp, {"jsonrpc": "2.0", "method": "notifications/initialized"}, self.token, sid)
        status, _, reply = mcp_post(self.mcp, {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                                               "params": {"name": tool, "arguments": args}}, self.token, sid)
        self.assertEqual(status, 200, reply)
        return reply

    def fetch(self, method, query="", body="amount=1"):
        r = self.call("resolve", {"name": "STRIPE"})
        self.assertFalse(r["result"].get("isError"), r)
        token = r["result"]["structuredContent"]["token"]
        return self.call("fetch", {"url": "https://127.0.0.1:%d/v1/charges%s" % (self.api_port, query),
                                   "method": method, "headers": {"Authorization": "Bearer " + token}, "body": body})

    def sent(self):
        return [r["header"].get("authorization") for r in read_jsonl(self.api_record)]

    def test_fetch_waits_for_the_approval(self):
        self.start_mcp("approve")
        r = self.fetch("POST")
        self.assertFalse(r["result"].get("isError"), r)
        self.assertEqual(self.sent(), ["Bearer " + MCP_VALUE])
        ask = read_jsonl(self.asks)[0]["ask"]
        self.assertEqual((ask["name"], ask["method"], ask["host"], ask["path"]), ("STRIPE", "POST", "127.0.0.1", "/v1/charges"))
        self.assertEqual([x["decision"] for x in self.records("approve")], ["asked", "approved"])

    def test_the_hash_covers_the_query_the_body_and_each_ask(self):
        # review 27, finding 4: an approver that remembers answers by request_hash must not
        # approve another query, another body or a later request with the same facts.
        self.start_mcp("approve,approve,approve,approve")
        asked = [("?amount=1", "to=me"), ("?amount=1000000", "to=me"), ("?amount=1", "to=attacker"),
                 ("?amount=1", "to=me")]
        for query, body in asked:
            r = self.fetch("POST", query, body)
            self.assertFalse(r["result"].get("isError"), r)
        asks = [a["ask"] for a in read_jsonl(self.asks)]
        self.assertEqual(len(asks), 4)
        for (query, body), ask in zip(asked, asks):
            self.assertEqual(ask["path"], "/v1/charges")
            self.assertEqual(ask["target"], "/v1/charges" + query)   # the approver sees the query
            self.assertEqual(ask["body_sha256"], hashlib.sha256(body.encode()).hexdigest())
            self.assertTrue(ask["decision_id"].startswith("ask-"), ask)
            scope = "".join("%d:%s;" % (len(p.encode()), p)
                            for p in ("KZ_PDP_APPROVE_VALUE", ISSUER, "billing-1", ask["decision_id"]))
            want = hashlib.sha256("\0".join([scope, "POST", "127.0.0.1", "/v1/charges" + query,
                                             ask["body_sha256"]]).encode() + b"\0").hexdigest()
            self.assertEqual(ask["request_hash"], want)
        hashes = [a["request_hash"] for a in asks]
        self.assertEqual(len(set(hashes)), 4, hashes)   # the 4th repeats the 1st: a fresh id
        self.assertEqual(len({a["decision_id"] for a in asks}), 4)
        recs = self.records("approve")
        self.assertEqual(sorted({r["request_hash"] for r in recs}), sorted(hashes))
        self.assertNotIn(MCP_VALUE, json.dumps(recs))

    def test_fetch_denied_sends_nothing(self):
        self.start_mcp("deny")
        r = self.fetch("POST")
        self.assertTrue(r["result"].get("isError"), r)
        self.assertIn("was not approved (denied", json.dumps(r))
        self.assertEqual(self.sent(), [])
        self.assertNotIn(MCP_VALUE, json.dumps(r))

    def test_get_is_not_held(self):
        self.start_mcp("deny")
        r = self.fetch("GET")
        self.assertFalse(r["result"].get("isError"), r)
        self.assertEqual(self.sent(), ["Bearer " + MCP_VALUE])
        self.assertFalse(os.path.exists(self.asks))


if __name__ == "__main__":
    unittest.main()

"""Approvals at the PDP (issue 19, part 5): a bundle rule with `effect: approve` makes a
decision wait for a person, asked through the bundle's approvals webhook (a real HTTPS
server of the test's own, tests/servers/approval_webhook.py). The decision API answers
approved/denied/timeout (or pending with "wait": false), the MCP fetch tool waits for
the same answer, and the decision log holds the "approve" records.
"""
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
from kzt import KzServer, KzTestCase, ServerProcess, make_test_ca, read_jsonl  # noqa: E402
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

SECRET = {"name": "STRIPE", "provider": "env", "ref": "payments/stripe"}
USE = {"host": "api.stripe.com", "method": "POST", "path": "/v1/charges"}


class PdpApprovalTest(KzTestCase):
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

    def stop_server(self):
        if self.running:
            self.running = False
            self.server.stop()

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

    def records(self, event):
        self.stop_server()   # the decision log is written in batches; stopping flushes it
        return [r for r in read_jsonl(self.log) if r.get("event") == event]

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

    def test_denied(self):
        self.start("deny")
        status, j = self.decide(USE)
        res = j["results"][0]
        self.assertFalse(res["allow"], res)
        self.assertEqual(res["approval"]["status"], "denied")
        self.assertEqual([r["decision"] for r in self.records("approve")], ["asked", "denied"])

    def test_timeout_fails_closed(self):
        self.start("hang")
        status, j = self.decide(USE)
        res = j["results"][0]
        self.assertFalse(res["allow"], res)
        self.assertEqual(res["approval"]["status"], "timeout")
        self.assertEqual([r["decision"] for r in self.records("approve")], ["asked", "timeout"])

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


if __name__ == "__main__":
    unittest.main()

"""Approvals (issue 19, part 5): a secret with `approve = ...` holds the swap of its token
until a person approves that request; denial and timeout fail closed (the server gets the
useless token); every ask and answer is an "approve" audit record.

Real components on loopback: an HTTPS API that records what arrived (echo_api.py), an
HTTPS approval webhook of the test's own (approval_webhook.py) for `--approve-via`, the
agent a Python program using http.client (OpenSSL, served by the shim). The terminal
channel is driven through a pseudo-terminal (test_approvals_pty.py).
"""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from kzt import KZ, PY, BlindTestCase, ServerProcess, read_jsonl, toml_str  # noqa: E402

REAL = "real-approval-value-0123456789abcdef"
OTHER = "other-free-value-0123456789abcdef"

# The agent: one HTTPS request per argument "METHOD:PATH:VAR", each on its own connection,
# in order; "&" before an argument runs it in a thread started first (it may be held).
AGENT = r'''
import http.client, os, ssl, sys, threading
port, ca = int(sys.argv[1]), sys.argv[2]
# "-": the system's trust (under --blind=proxy, kz's run CA is added to it).
ctx = ssl.create_default_context() if ca == "-" else ssl.create_default_context(cafile=ca)
def one(spec):
    if spec.startswith("wait:"):   # lets an approval's time to live run out
        import time
        time.sleep(float(spec[5:]))
        return
    m, p, var = spec.split(":")
    c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=120)
    c.request(m, p, body=b"x" if m == "POST" else None, headers={"Authorization": "Bearer " + os.environ[var]})
    r = c.getresponse()
    r.read()
    c.close()
    print("done", m, p, r.status, flush=True)
threads = []
for spec in sys.argv[3:]:
    if spec.startswith("&"):
        t = threading.Thread(target=one, args=(spec[1:],))
        t.start()
        threads.append(t)
    else:
        one(spec)
for t in threads:
    t.join()
print("agent-done", flush=True)
'''


class ApprovalTestCase(BlindTestCase):
    def setUp(self):
        super().setUp()
        self.port, self.record = self.echo_server(alpn="http/1.1")
        self.agent = self.write("agent.py", AGENT)
        self.asks = os.path.join(self.srv, "asks.jsonl")

    def webhook(self, answers):
        s = ServerProcess("approval_webhook.py", "--cert", self.ca["server"], "--key", self.ca["server_key"],
                          "--answers", answers, "--record", self.asks)
        self.addCleanup(s.stop)
        return "https://localhost:%d/approve" % s.port

    def configure(self, approve, ttl=None, extra_secret=True):
        lines = ["[secrets.API_KEY]", 'provider = "env"', 'ref = "KZ_TEST_REAL"', 'hosts = ["localhost"]',
                 "approve = %s" % approve]
        if ttl is not None:
            lines.append("approve_ttl = %s" % toml_str(ttl))
        if extra_secret:
            lines += ["", "[secrets.FREE_KEY]", 'provider = "env"', 'ref = "KZ_TEST_OTHER"', 'hosts = ["localhost"]']
        lines += ["", "[blind]", "ca_file = %s" % toml_str(self.ca["ca"]), "proxy_ports = [%d]" % self.port, ""]
        self.config("\n".join(lines))

    MODE = ()   # extra `kz run` flags of a subclass (the proxy's)

    def run_agent(self, *requests, via=None, timeout="60s", extra=()):
        flags = ["--approve-timeout", timeout, *self.MODE, *extra]
        if via:
            flags += ["--approve-via", via]
        ca = "-" if self.MODE else self.ca["ca"]
        return self.run_blind(PY, self.agent, str(self.port), ca, *requests, flags=flags,
                              env=self.env(KZ_TEST_REAL=REAL, KZ_TEST_OTHER=OTHER))

    def sent(self, path):
        """The Authorization headers the API received for a path, in order."""
        return [r["header"].get("authorization") for r in self.records(self.record) if r.get("path") == path]

    def approvals(self, **match):
        return self.audit_events("approve", **match)

    def assertClean(self, r):
        """No value in kz's output, the audit log, or any file of the test directory."""
        self.assertNotExposed(r.stdout + r.stderr, REAL, "kz output")
        for path in self.files_under(self.dir):
            with open(path, "rb") as f:
                data = f.read().decode("latin-1")
            if not path.endswith(("agent.py",)):
                self.assertNoSecret(data, REAL, path)


class WebhookApprovalTest(ApprovalTestCase):
    def test_approved_request_gets_the_value(self):
        url = self.webhook("approve")
        self.configure("true")
        r = self.run_agent("GET:/v1/charges:API_KEY", via=url)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertIn("done GET /v1/charges 200", r.stdout)
        self.assertEqual(self.sent("/v1/charges"), ["Bearer " + REAL])
        # What the approver was asked: the facts and the request's hash, never a value or token.
        asks = read_jsonl(self.asks)
        self.assertEqual(len(asks), 1)
        ask = asks[0]["ask"]
        self.assertEqual((ask["secret"], ask["host"], ask["method"], ask["path"]), ("API_KEY", "localhost", "GET", "/v1/charges"))
        self.assertRegex(ask["request_hash"], r"^[0-9a-f]{64}$")
        self.assertNotIn(REAL, json.dumps(asks))
        self.assertNotIn("KZ_TOK_", json.dumps(asks))
        asked = self.approvals(decision="asked", secret="API_KEY")
        self.assertEqual(len(asked), 1, self.audit_dump())
        self.assertEqual((asked[0]["host"], asked[0]["method"], asked[0]["path"], asked[0]["channel"]),
                         ("localhost", "GET", "/v1/charges", "webhook"))
        done = self.approvals(decision="approved", secret="API_KEY")
        self.assertEqual(len(done), 1)
        self.assertEqual(done[0]["request_hash"], ask["request_hash"])
        self.assertEqual(done[0]["by"], "webhook: test approver")
        self.assertEqual(done[0]["channel"], "webhook")
        swap = self.assertAudited("swap", secret="API_KEY", decision="allow")[0]
        self.assertIn("approved by webhook: test approver", swap["reason"])
        self.assertClean(r)

    def test_denied_request_gets_the_token(self):
        url = self.webhook("deny")
        self.configure("true")
        r = self.run_agent("GET:/v1/charges:API_KEY", via=url)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        got = self.sent("/v1/charges")
        self.assertEqual(len(got), 1)
        self.assertNotIn(REAL, got[0])
        self.assertRegex(got[0], r"^Bearer KZ_TOK_[0-9A-Za-z]+$")
        self.assertEqual(len(self.approvals(decision="denied", secret="API_KEY", channel="webhook")), 1, self.audit_dump())
        swap = self.assertAudited("swap", secret="API_KEY", decision="refuse")[0]
        self.assertIn("approval was denied", swap["reason"])
        self.assertFalse(self.audit_events("swap", secret="API_KEY", decision="allow"))
        self.assertClean(r)

    def test_timeout_fails_closed(self):
        url = self.webhook("hang")
        self.configure("true")
        r = self.run_agent("GET:/v1/charges:API_KEY", via=url, timeout="1500ms")
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        got = self.sent("/v1/charges")
        self.assertEqual(len(got), 1)
        self.assertNotIn(REAL, got[0])
        self.assertEqual(len(self.approvals(decision="timeout", secret="API_KEY")), 1, self.audit_dump())
        swap = self.assertAudited("swap", secret="API_KEY", decision="refuse")[0]
        self.assertIn("no approval in time", swap["reason"])
        self.assertClean(r)

    def test_an_answer_for_another_request_denies(self):
        url = self.webhook("wrong-hash")
        self.configure("true")
        r = self.run_agent("GET:/v1/charges:API_KEY", via=url)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertNotIn("Bearer " + REAL, self.sent("/v1/charges"))
        denied = self.approvals(decision="denied", secret="API_KEY")
        self.assertEqual(len(denied), 1, self.audit_dump())
        self.assertIn("another request", denied[0]["by"])

    def test_first_use_approval_covers_the_secret(self):
        # approve = true: the first use is asked; approved, later requests go (no new ask).
        url = self.webhook("approve,deny")
        self.configure("true")
        r = self.run_agent("GET:/a:API_KEY", "POST:/b:API_KEY", via=url)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertEqual(self.sent("/a"), ["Bearer " + REAL])
        self.assertEqual(self.sent("/b"), ["Bearer " + REAL])
        self.assertEqual(len(read_jsonl(self.asks)), 1)

    def test_every_use_asks_each_time(self):
        # approve = "every": an approval covers that one request: the same request again
        # is asked again (an approval is never replayed), another path too (denied here).
        url = self.webhook("approve,approve,deny")
        self.configure('"every"')
        r = self.run_agent("GET:/a:API_KEY", "GET:/a:API_KEY", "GET:/b:API_KEY", via=url)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertEqual(self.sent("/a"), ["Bearer " + REAL] * 2)
        got_b = self.sent("/b")
        self.assertEqual(len(got_b), 1)
        self.assertNotIn(REAL, got_b[0])
        asks = [a["ask"] for a in read_jsonl(self.asks)]
        self.assertEqual([a["path"] for a in asks], ["/a", "/a", "/b"])
        self.assertEqual(asks[0]["request_hash"], asks[1]["request_hash"])
        self.assertNotEqual(asks[0]["request_hash"], asks[2]["request_hash"])

    def test_every_approval_is_single_use(self):
        # One approval, then the same request again: the webhook denies the second ask,
        # so the repeat goes out with the useless token (before: it reused the approval).
        url = self.webhook("approve,deny")
        self.configure('"every"')
        r = self.run_agent("GET:/a:API_KEY", "GET:/a:API_KEY", via=url)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        got = self.sent("/a")
        self.assertEqual(got[0], "Bearer " + REAL)
        self.assertNotIn(REAL, got[1])
        self.assertEqual(len(read_jsonl(self.asks)), 2)

    def test_ttl_expires_approvals(self):
        # approve_ttl = "1s": the same request after its approval lapsed is asked again
        # (the agent waits the TTL out: time passing is what is tested).
        url = self.webhook("approve,deny")
        self.configure('{ methods = ["GET"] }', ttl="1s")
        r = self.run_agent("GET:/a:API_KEY", "wait:1.3", "GET:/a:API_KEY", via=url)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        got = self.sent("/a")
        self.assertEqual(got[0], "Bearer " + REAL)
        self.assertNotIn(REAL, got[1])
        self.assertEqual(len(read_jsonl(self.asks)), 2)

    def test_method_and_path_filter(self):
        # Only POSTs under /v1/charges wait; a GET there and a POST elsewhere go at once.
        url = self.webhook("deny")
        self.configure('{ methods = ["POST", "DELETE"], paths = ["/v1/charges*"] }')
        r = self.run_agent("GET:/v1/charges:API_KEY", "POST:/v1/refunds:API_KEY", "POST:/v1/charges/ch_1:API_KEY",
                           via=url)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertEqual(self.sent("/v1/charges"), ["Bearer " + REAL])
        self.assertEqual(self.sent("/v1/refunds"), ["Bearer " + REAL])
        held = self.sent("/v1/charges/ch_1")
        self.assertEqual(len(held), 1)
        self.assertNotIn(REAL, held[0])
        self.assertEqual([a["ask"]["path"] for a in read_jsonl(self.asks)], ["/v1/charges/ch_1"])

    def test_a_held_write_does_not_hold_other_connections(self):
        # API_KEY's request waits (the webhook never answers; 20 s, then refused) while
        # the same process sends FREE_KEY on another connection, and a second process
        # too: both are answered while the first is still held.
        url = self.webhook("hang")
        self.configure("true")
        r = self.run_agent("&GET:/held:API_KEY", "GET:/free:FREE_KEY", via=url, timeout="20s")
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        lines = [l for l in r.stdout.splitlines() if l.startswith("done")]
        self.assertEqual(lines[0], "done GET /free 200", r.stdout)
        self.assertEqual(self.sent("/free"), ["Bearer " + OTHER])
        self.assertNotIn("Bearer " + REAL, self.sent("/held"))
        self.assertTrue(self.approvals(decision="timeout", secret="API_KEY"), self.audit_dump())

    def test_the_agent_cannot_answer_the_webhook_for_kz(self):
        # The approver's answer travels on kz's own connection to the webhook. The agent
        # posting "approve" to the webhook itself (or anywhere) approves nothing.
        url = self.webhook("hang")
        self.configure("true")
        self_approve = self.write("self_approve.py", r'''
import json, os, ssl, subprocess, sys, threading, urllib.request
url, ca, port = sys.argv[1], sys.argv[2], sys.argv[3]
held = subprocess.Popen([sys.executable, sys.argv[4], port, ca, "GET:/held:API_KEY"])
body = json.dumps({"decision": "approve", "request_hash": "0" * 64, "by": "agent"}).encode()
ctx = ssl.create_default_context(cafile=ca)
for _ in range(3):
    try:
        urllib.request.urlopen(urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}),
                               context=ctx, timeout=1)
    except Exception as e:
        print("post:", type(e).__name__, flush=True)
held.wait()
print("agent-done", flush=True)
''')
        r = self.run_blind(PY, self_approve, url, self.ca["ca"], str(self.port), self.agent,
                           flags=["--approve-via", url, "--approve-timeout", "3s"],
                           env=self.env(KZ_TEST_REAL=REAL, KZ_TEST_OTHER=OTHER))
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertIn("agent-done", r.stdout)
        self.assertNotIn("Bearer " + REAL, self.sent("/held"))
        self.assertFalse(self.approvals(decision="approved"), self.audit_dump())
        self.assertTrue(self.approvals(decision="timeout", secret="API_KEY"))


class ApprovalConfigTest(ApprovalTestCase):
    def test_config_errors_name_the_field(self):
        for value, msg in (('"sometimes"', "approve must be true"),
                           ('{ verbs = ["GET"] }', 'unknown key "verbs"'),
                           ('{ methods = ["get"] }', "upper-case HTTP methods"),
                           ("{}", "give methods")):
            with self.subTest(value=value):
                self.configure(value, extra_secret=False)
                r = self.kz("check")
                self.assertNotEqual(r.returncode, 0)
                self.assertIn(".keyzero.toml:5:", r.stderr)
                self.assertIn("secrets.API_KEY.approve", r.stderr)
                self.assertIn(msg, r.stderr)
        self.configure("true", ttl="forever", extra_secret=False)
        r = self.kz("check")
        self.assertIn("secrets.API_KEY.approve_ttl", r.stderr)
        # "every" is single-use: a TTL would have nothing to cover.
        self.configure('"every"', ttl="5m", extra_secret=False)
        r = self.kz("check")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("secrets.API_KEY.approve_ttl", r.stderr)
        self.assertIn("never reused", r.stderr)

    def test_no_channel_refuses_to_start(self):
        # No terminal (a pipe, no controlling tty) and no webhook: nobody could approve.
        self.configure("true")
        r = subprocess.run(["setsid", "-w", KZ, "run", "--blind", "--", "true"],
                           cwd=self.dir, env=self.env(KZ_TEST_REAL=REAL, KZ_TEST_OTHER=OTHER),
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--approve-via", r.stderr)


class ProxyApprovalTest(WebhookApprovalTest):
    """The same cases with every program's TLS through the fallback proxy (--blind=proxy):
    the proxy holds the connection's write on its thread until the person answers, while
    its other connections go on (proxy/held_io.h). No broker runs: the proxy records the
    asks and the answers itself."""
    MODE = ("--blind=proxy",)

    def test_many_held_connections_do_not_stall_the_proxy(self):
        # More held connections than the proxy has I/O threads (at most 4), all waiting at
        # once, and a free connection after them: it is answered while they all still
        # wait; then each held one times out, refused.
        url = self.webhook("hang")
        self.configure('"every"')
        held = ["&GET:/held-%d:API_KEY" % i for i in range(6)]
        r = self.run_agent(*held, "GET:/free:FREE_KEY", via=url, timeout="15s")
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        lines = [l for l in r.stdout.splitlines() if l.startswith("done")]
        self.assertEqual(lines[0], "done GET /free 200", r.stdout)
        self.assertEqual(self.sent("/free"), ["Bearer " + OTHER])
        for i in range(6):
            got = self.sent("/held-%d" % i)
            self.assertEqual(len(got), 1, i)
            self.assertNotIn(REAL, got[0])
        self.assertEqual(len(self.approvals(decision="asked", secret="API_KEY")), 6, self.audit_dump())
        self.assertEqual(len(self.approvals(decision="timeout", secret="API_KEY")), 6, self.audit_dump())
        self.assertClean(r)

    def test_held_requests_are_capped_and_asked_once(self):
        # approve = true: identical requests all join one ask, so the gate's 16-ask cap
        # does not bound them; the proxy holds at most 64 at once (each costs a thread)
        # and refuses the rest without asking. One "asked" and one answer record for the
        # ask, however many waited on it.
        url = self.webhook("hang")
        self.configure("true", extra_secret=False)
        r = self.run_agent(*(["&GET:/same:API_KEY"] * 70), via=url, timeout="6s")
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        got = self.sent("/same")
        self.assertEqual(len(got), 70)
        self.assertFalse([g for g in got if REAL in g])
        over = [s for s in self.audit_events("swap", secret="API_KEY", decision="refuse")
                if "64 in the proxy" in s.get("reason", "")]
        self.assertEqual(len(over), 6, self.audit_dump())
        self.assertEqual(len(self.approvals(decision="asked", secret="API_KEY")), 1, self.audit_dump())
        self.assertEqual(len(self.approvals(decision="timeout", secret="API_KEY")), 1, self.audit_dump())
        self.assertClean(r)


if __name__ == "__main__":
    unittest.main()

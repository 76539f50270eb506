"""MCP replicas (issue 19, part 6): two `kz server start --mcp` processes with the same
bundle, behind a round-robin HTTP balancer (tests/servers/round_robin.py: every request
to the next replica, no affinity), serve one agent. Tokens and sessions are sealed with
AES-256-GCM under a key both replicas read from the bundle's file provider, so the
replica that answers initialize need not be the one that serves a fetch.

Driven by the official MCP SDK client (tests/mcp/sdk_client.mjs) through the balancer,
and by raw JSON-RPC for what a client never sends: a tampered token, an expired one
(sealed here with the same key, with a past expiry), a revoked one (its id in the deny
list the bundle names, refused by both replicas).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from kzt import KZ, SRC, KzServer, ServerProcess, make_test_ca, mcp_post, read_jsonl  # noqa: E402
import mint_jwt  # noqa: E402

VALUE = "replica-VALUE-9f8e7d6c5b4a3921"
ISSUER = "https://auth.kz.test"
AUDIENCE = "keyzero"

BUNDLE = """
identity:
  issuers:
    - issuer: "%(issuer)s"
      audience: "%(audience)s"
      jwks_file: ./jwks.json
secrets:
  DEMO_KEY: { provider: env, ref: KZ_REPLICA_VALUE, hosts: ["127.0.0.1"] }
policies:
- match: "KZ_REPLICA_VALUE"
  rules:
  - cel: "identity.service == 'agent'"
    effect: allow
mcp:
  token_ttl: 10m
  fetch:
    allow_addresses: [loopback]
    ca_file: ./ca.pem
  replicas:
    key_provider: file
    key_ref: %(key)s
    deny_list: ./deny.txt
    session_ttl: 60m
"""


class McpReplicasTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        subprocess.run([os.path.join(SRC, "scripts", "setup-mcp-tools")], check=True, timeout=600)
        cls.dir = tempfile.mkdtemp(prefix="kz-replicas-")
        cls.ca = make_test_ca(os.path.join(cls.dir, "ca"))
        shutil.copy(cls.ca["ca"], os.path.join(cls.dir, "ca.pem"))
        mint_jwt.keys(cls.dir)
        cls.key = os.urandom(32)
        key_file = os.path.join(cls.dir, "seal.key")
        with open(key_file, "w") as f:
            f.write(cls.key.hex() + "\n")
        os.chmod(key_file, 0o600)
        cls.deny = os.path.join(cls.dir, "deny.txt")
        open(cls.deny, "w").close()   # must exist: nothing revoked yet
        cls.bundle = os.path.join(cls.dir, "bundle.yaml")
        with open(cls.bundle, "w") as f:
            f.write(BUNDLE % {"issuer": ISSUER, "audience": AUDIENCE, "key": key_file})
        expected = os.path.join(cls.dir, "expected")
        with open(expected, "w") as f:
            f.write(VALUE)
        cls.api_record = os.path.join(cls.dir, "api-record.txt")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.api = ServerProcess("demo_api.py", "--cert", cls.ca["server"], "--key", cls.ca["server_key"],
                                "--expected-file", expected, "--record", cls.api_record)
        cls.addClassCleanup(cls.api.stop)
        env = dict(os.environ, KZ_REPLICA_VALUE=VALUE)
        cls.audit_logs = [os.path.join(cls.dir, "audit-r%d.jsonl" % i) for i in (1, 2)]
        cls.replicas = []
        for i in (0, 1):
            cls.replicas.append(KzServer(cls.bundle, "--mcp", "--audit-log", cls.audit_logs[i],
                                         "--replica-id", "r%d" % (i + 1), env=env))
            cls.addClassCleanup(cls.replicas[-1].stop)
        cls.lb_log = os.path.join(cls.dir, "balancer.jsonl")
        cls.lb = ServerProcess("round_robin.py", "--backend", cls.replicas[0].url, "--backend", cls.replicas[1].url,
                               "--log", cls.lb_log)
        cls.addClassCleanup(cls.lb.stop)
        cls.url = "http://127.0.0.1:%d/mcp" % cls.lb.port
        now = int(time.time())
        cls.agent = mint_jwt.token(cls.dir, {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 900,
                                             "sub": "agent-1", "service": "agent"})
        cls.agent_file = os.path.join(cls.dir, "agent.jwt")
        with open(cls.agent_file, "w") as f:
            f.write(cls.agent)

    # -- raw JSON-RPC -------------------------------------------------------------------

    def post(self, body, session=None, url=None):
        return mcp_post(url or self.url, body, self.agent, session)

    def session(self):
        status, headers, reply = self.post({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                                       "clientInfo": {"name": "kz-test", "version": "1"}}})
        self.assertEqual(status, 200, reply)
        sid = headers.get("Mcp-Session-Id") or headers.get("mcp-session-id")
        self.assertTrue(sid)
        return sid

    def call(self, sid, tool, args, url=None):
        status, _, reply = self.post({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                                      "params": {"name": tool, "arguments": args}}, sid, url)
        self.assertEqual(status, 200, reply)
        return reply["result"]

    def fetch_with(self, sid, token, url=None):
        return self.call(sid, "fetch", {"url": "https://127.0.0.1:%d/check" % self.api.port,
                                        "headers": {"Authorization": "Bearer " + token}}, url)

    def resolve(self, sid):
        r = self.call(sid, "resolve", {"name": "DEMO_KEY"})
        self.assertFalse(r.get("isError"), r)
        return r["structuredContent"]["token"]

    def wait_audit(self, i, pred, what):
        deadline = time.time() + 10
        while time.time() < deadline:
            recs = [r for r in read_jsonl(self.audit_logs[i]) if pred(r)]
            if recs:
                return recs
            time.sleep(0.05)
        self.fail("no audit record in replica %d's log: %s" % (i + 1, what))

    def seal(self, claims):
        """A token sealed as kz seals one (replica_seal.h), here with any claims."""
        nonce = os.urandom(12)
        ct = AESGCM(self.key).encrypt(nonce, json.dumps(claims).encode(), b"kz mcp token v1")
        return "KZ_TOK_" + (b"\x01" + nonce + ct).hex()

    # -- the official SDK client through the balancer ---------------------------------------

    def test_sdk_client_across_replicas(self):
        fetch = {"tool": "fetch", "arguments": {"url": "https://127.0.0.1:%d/check" % self.api.port,
                                                "headers": {"Authorization": "Bearer {{0.token}}"}}}
        steps = [{"tool": "resolve", "arguments": {"name": "DEMO_KEY"}}, fetch, fetch]
        steps_file = os.path.join(self.dir, "steps.json")
        with open(steps_file, "w") as f:
            json.dump(steps, f)
        start = len(read_jsonl(self.lb_log))
        p = subprocess.run(["node", os.path.join(SRC, "tests", "mcp", "sdk_client.mjs"), "--steps", steps_file,
                            "--http", self.url, "--bearer-file", self.agent_file],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        token = out["steps"][0]["result"]["structuredContent"]["token"]
        self.assertTrue(token.startswith("KZ_TOK_01"), token[:12])
        for step in out["steps"][1:]:
            sc = step["result"]["structuredContent"]
            self.assertEqual(sc["status"], 200, sc)
            self.assertEqual(json.loads(sc["body"])["you_sent"], "Bearer " + token)   # echoed value redacted
        self.assertNotIn(VALUE, p.stdout)
        # The balancer sent initialize to one replica and a fetch to the other.
        log = read_jsonl(self.lb_log)[start:]
        init = [e["backend"] for e in log if e.get("rpc") == "initialize"]
        fetches = [e["backend"] for e in log if e.get("tool") == "fetch"]
        self.assertEqual(len(init), 1, log)
        self.assertEqual(sorted(set(fetches)), [0, 1], log)
        self.assertIn(1 - init[0], fetches)
        # Each replica's log names itself, and the fetch each one served.
        for i in (0, 1):
            recs = self.wait_audit(i, lambda r: r.get("event") == "mcp.call" and r.get("tool") == "fetch"
                                   and r.get("decision") == "allow", "an allowed fetch")
            self.assertEqual(recs[-1]["replica"], "r%d" % (i + 1))
            self.assertEqual(recs[-1]["secrets"], ["DEMO_KEY"])
        with open(self.api_record) as f:
            self.assertIn("Bearer " + VALUE, f.read())

    # -- tokens that must not verify --------------------------------------------------------

    def test_tampered_token_and_session_refused(self):
        sid = self.session()
        token = self.resolve(sid)
        last = token[-1]
        tampered = token[:-1] + ("0" if last != "0" else "1")
        for url in (r.url + "/mcp" for r in self.replicas):
            r = self.fetch_with(sid, tampered, url)
            self.assertTrue(r.get("isError"), r)
            self.assertIn("does not verify", r["content"][0]["text"])
        self.wait_audit(0, lambda r: r.get("tool") == "fetch" and "does not verify" in r.get("reason", ""), "tampered")
        self.wait_audit(1, lambda r: r.get("tool") == "fetch" and "does not verify" in r.get("reason", ""), "tampered")
        # A session id with one flipped bit is no session at all.
        bad_sid = sid[:-1] + ("0" if sid[-1] != "0" else "1")
        status, _, _ = self.post({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, bad_sid)
        self.assertEqual(status, 404)

    def test_expired_token_refused(self):
        sid = self.session()
        expired = self.seal({"o": ISSUER + " agent-1", "n": "DEMO_KEY", "p": "env", "r": "KZ_REPLICA_VALUE",
                             "s": "", "e": int(time.time()) - 5})
        fresh = self.seal({"o": ISSUER + " agent-1", "n": "DEMO_KEY", "p": "env", "r": "KZ_REPLICA_VALUE",
                           "s": "", "e": int(time.time()) + 300})
        for url in (r.url + "/mcp" for r in self.replicas):
            r = self.fetch_with(sid, expired, url)
            self.assertTrue(r.get("isError"), r)
            self.assertIn("expired", r["content"][0]["text"])
            # The same claims with a future expiry are served: the seal is kz's own format.
            r = self.fetch_with(sid, fresh, url)
            self.assertFalse(r.get("isError"), r)
            self.assertEqual(r["structuredContent"]["status"], 200)

    def test_another_identitys_token_refused_on_both(self):
        sid = self.session()
        theirs = self.seal({"o": ISSUER + " agent-2", "n": "DEMO_KEY", "p": "env", "r": "KZ_REPLICA_VALUE",
                            "s": "", "e": int(time.time()) + 300})
        for url in (r.url + "/mcp" for r in self.replicas):
            r = self.fetch_with(sid, theirs, url)
            self.assertTrue(r.get("isError"), r)
            self.assertIn("issued to another identity", r["content"][0]["text"])

    def test_a_missing_deny_list_stops_the_start(self):
        bundle = os.path.join(self.dir, "bundle-missing-deny.yaml")
        with open(self.bundle) as f:
            text = f.read().replace("deny_list: ./deny.txt", "deny_list: ./no-such-deny.txt")
        with open(bundle, "w") as f:
            f.write(text)
        r = subprocess.run([KZ, "server", "start", "--bundle", bundle, "--mcp", "--listen", "127.0.0.1:0"],
                           capture_output=True, text=True, timeout=60, env=dict(os.environ, KZ_REPLICA_VALUE=VALUE))
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("mcp.replicas.deny_list", r.stderr)
        self.assertIn("no-such-deny.txt", r.stderr)
        self.assertNotIn(VALUE, r.stdout + r.stderr)

    def test_revoked_token_refused_on_both(self):
        sid = self.session()
        token = self.resolve(sid)
        other = self.resolve(sid)
        self.assertFalse(self.fetch_with(sid, token, self.replicas[0].url + "/mcp").get("isError"))
        token_id = hashlib.sha256(token.encode()).hexdigest()[:12]
        with open(self.deny, "a") as f:
            f.write("# revoked by the test\n%s\n" % token_id)
        for i, rep in enumerate(self.replicas):
            r = self.fetch_with(sid, token, rep.url + "/mcp")
            self.assertTrue(r.get("isError"), r)
            self.assertIn("revoked", r["content"][0]["text"])
            self.wait_audit(i, lambda x: x.get("tool") == "fetch" and token_id in x.get("reason", ""), "revoked")
            # Another token of the same session is not affected.
            self.assertFalse(self.fetch_with(sid, other, rep.url + "/mcp").get("isError"))

    def test_revoked_session_refused_on_both(self):
        sid = self.session()
        token = self.resolve(sid)
        token_id = hashlib.sha256(token.encode()).hexdigest()[:12]
        # The audit records name a session by its short id (inside the sealed one).
        found = []
        for i in (0, 1):
            found += [r for r in read_jsonl(self.audit_logs[i]) if r.get("token_id") == token_id]
        deadline = time.time() + 10
        while not found and time.time() < deadline:
            time.sleep(0.05)
            for i in (0, 1):
                found += [r for r in read_jsonl(self.audit_logs[i]) if r.get("token_id") == token_id]
        self.assertTrue(found, "no resolve record for the token")
        short = found[0]["session"]
        self.assertNotIn(short, ("", sid))
        with open(self.deny, "a") as f:
            f.write("%s\n" % short)
        for rep in self.replicas:
            status, _, _ = self.post({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}, sid, rep.url + "/mcp")
            self.assertEqual(status, 404)
        # Tokens issued in a revoked session go with it.
        fresh = self.session()
        r = self.fetch_with(fresh, token, self.replicas[1].url + "/mcp")
        self.assertTrue(r.get("isError"), r)
        self.assertIn("revoked", r["content"][0]["text"])

if __name__ == "__main__":
    unittest.main()

"""Issue 17: the MCP `fetch` tool signs AWS SigV4 requests with a key the agent never sees.

`kz server start --mcp` with a bundle made at test time, driven by the official MCP
TypeScript SDK client (tests/mcp/sdk_client.mjs, installed by scripts/setup-mcp-tools),
against tests/servers/aws_api.py, which verifies every signature exactly as AWS does
(tests/servers/sigv4_verify.py) and needs the session token too. The agent names the
secret and the credential scope and gives the request; kz adds the date, the payload
hash, the session token and Authorization. Shown: Secrets Manager GetSecretValue and S3
PutObject/GetObject accepted; a key bound to another host, a service outside
`services` and a header kz owns refused (and never sent); every decision is a `sign`
record; the key and the session token appear in none of what the client received, the
audit log or kz's stderr. A key whose id and session token come from a JSON credential
set (format = "aws-credentials") signs the same way.
"""
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from kzt import KZ, SRC, KzServer, KzTestCase, ServerProcess, encodings, make_test_ca, read_jsonl  # noqa: E402
import mint_jwt  # noqa: E402

AKID = "ASIAKZTESTMCPSIGN001"
KEY = secrets.token_urlsafe(40).replace("-", "+").replace("_", "/")[:40]
SESSION = "FwoGZXIvYXdzE" + secrets.token_urlsafe(120).replace("-", "+").replace("_", "/") + "=="
SM_SECRET = "db-password-from-secrets-manager-via-mcp"
ISSUER = "https://auth.kz.test"
AUDIENCE = "keyzero"
MCP_DIR = os.path.join(SRC, "tests", "mcp")

BUNDLE = """
identity:
  issuers:
    - issuer: "%(issuer)s"
      audience: "%(audience)s"
      jwks_file: ./jwks.json
secrets:
  AWS_SECRET_ACCESS_KEY: { provider: env, ref: KZT_MCP_AWS_KEY, hosts: ["localhost"], sign: sigv4,
                           access_key_id: "%(akid)s", services: [s3, secretsmanager],
                           session_token: AWS_SESSION_TOKEN }
  AWS_SESSION_TOKEN: { provider: env, ref: KZT_MCP_AWS_TOKEN, hosts: ["localhost"] }
  AWS_SET: { provider: file, ref: "%(creds)s", format: aws-credentials, sign: sigv4, hosts: ["localhost"] }
  ELSEWHERE_KEY: { provider: env, ref: KZT_MCP_AWS_KEY, hosts: ["aws.elsewhere.test"], sign: sigv4,
                   access_key_id: "%(akid)s", session_token: AWS_SESSION_TOKEN }
policies:
- match: "**"
  rules:
  - cel: "identity.service == 'agent'"
    effect: allow
mcp:
  fetch:
    allow_addresses: [loopback]
    ca_file: ./ca.pem
    timeout: 20s
"""


class McpSigV4(KzTestCase):
    @classmethod
    def setUpClass(cls):
        subprocess.run([os.path.join(SRC, "scripts", "setup-mcp-tools")], check=True, timeout=600)
        cls.dir = tempfile.mkdtemp(prefix="kz-mcp-sigv4-")
        cls.ca = make_test_ca(os.path.join(cls.dir, "ca"))
        shutil.copy(cls.ca["ca"], os.path.join(cls.dir, "ca.pem"))
        mint_jwt.keys(cls.dir)
        for name, text in (("key", KEY), ("token", SESSION)):
            with open(os.path.join(cls.dir, name), "w") as f:
                f.write(text)
        # credential_process output, as an exec or aws-sm provider would hand it over.
        with open(os.path.join(cls.dir, "creds.json"), "w") as f:
            json.dump({"Version": 1, "AccessKeyId": AKID, "SecretAccessKey": KEY, "SessionToken": SESSION,
                       "Expiration": "2099-01-01T00:00:00Z"}, f)
        cls.record = os.path.join(cls.dir, "aws.jsonl")
        cls.aws = ServerProcess("aws_api.py", "--cert", cls.ca["server"], "--key", cls.ca["server_key"],
                                "--record", cls.record, "--access-key-id", AKID,
                                "--secret-key-file", os.path.join(cls.dir, "key"),
                                "--session-token-file", os.path.join(cls.dir, "token"),
                                "--secrets", json.dumps({"prod/db": SM_SECRET}))
        cls.bundle = os.path.join(cls.dir, "bundle.yaml")
        with open(cls.bundle, "w") as f:
            f.write(BUNDLE % {"issuer": ISSUER, "audience": AUDIENCE, "akid": AKID,
                             "creds": os.path.join(cls.dir, "creds.json")})
        cls.audit_log = os.path.join(cls.dir, "audit.jsonl")
        env = dict(os.environ, KZT_MCP_AWS_KEY=KEY, KZT_MCP_AWS_TOKEN=SESSION)
        cls.server = KzServer(cls.bundle, "--mcp", "--audit-log", cls.audit_log, env=env)
        now = int(time.time())
        cls.agent_file = os.path.join(cls.dir, "agent.jwt")
        with open(cls.agent_file, "w") as f:
            f.write(mint_jwt.token(cls.dir, {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 900,
                                             "sub": "agent-1", "service": "agent"}))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server_stderr = cls.server.stop()
        finally:
            cls.aws.stop()
            shutil.rmtree(cls.dir, True)

    def url(self, path):
        return "https://localhost:%d%s" % (self.aws.port, path)

    def sdk(self, steps):
        steps_file = os.path.join(self.dir, "steps-%d.json" % time.monotonic_ns())
        with open(steps_file, "w") as f:
            json.dump(steps, f)
        p = subprocess.run(["node", os.path.join(MCP_DIR, "sdk_client.mjs"), "--steps", steps_file,
                            "--http", self.server.url + "/mcp", "--bearer-file", self.agent_file],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        for secret in (KEY, SESSION):
            for form in encodings(secret).values():
                self.assertNotIn(form, p.stdout)
        return [s.get("result", s) for s in json.loads(p.stdout)["steps"]]

    @staticmethod
    def signed(secret, service, **fetch):
        return {"tool": "fetch", "arguments": dict(fetch, sign={"secret": secret, "service": service,
                                                                "region": "us-east-1"})}

    def sign_records(self, pred):
        deadline = time.time() + 10
        while time.time() < deadline:
            recs = [r for r in read_jsonl(self.audit_log) if r.get("event") == "sign" and pred(r)]
            if recs:
                return recs
            time.sleep(0.05)
        self.fail("no sign record")

    def accepted(self):
        return [(r["method"], r.get("service"), r["path"]) for r in read_jsonl(self.record) if r["accepted"]]

    def test_get_secret_value_and_put_object_are_signed(self):
        sm_headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.GetSecretValue"}
        results = self.sdk([
            self.signed("AWS_SECRET_ACCESS_KEY", "secretsmanager", url=self.url("/"), method="POST",
                        headers=sm_headers, body=json.dumps({"SecretId": "prod/db"})),
            self.signed("AWS_SECRET_ACCESS_KEY", "s3", url=self.url("/kzbucket/from%20mcp.txt"), method="PUT",
                        headers={"Content-Type": "text/plain"}, body="hello from the MCP agent"),
            self.signed("AWS_SECRET_ACCESS_KEY", "s3", url=self.url("/kzbucket/from%20mcp.txt?x-id=GetObject")),
        ])
        sm, put, get = (r["structuredContent"] for r in results)
        self.assertEqual(sm["status"], 200, sm)
        self.assertEqual(json.loads(sm["body"])["SecretString"], SM_SECRET)
        self.assertEqual(put["status"], 200, put)
        self.assertEqual(get["status"], 200, get)
        self.assertEqual(get["body"], "hello from the MCP agent")
        accepted = self.accepted()
        self.assertIn(("POST", "secretsmanager", "/"), accepted)
        self.assertIn(("PUT", "s3", "/kzbucket/from%20mcp.txt"), accepted)
        self.assertIn(("GET", "s3", "/kzbucket/from%20mcp.txt"), accepted)
        recs = self.sign_records(lambda r: r["decision"] == "allow" and r["path"] == "/kzbucket/from%20mcp.txt")
        self.assertEqual({(r["service"], r["region"], r["channel"]) for r in recs}, {("s3", "us-east-1", "mcp")})
        self.assertEqual(recs[0]["secret"], "AWS_SECRET_ACCESS_KEY")

    def test_credential_set_gives_id_and_session_token(self):
        (r,) = self.sdk([self.signed("AWS_SET", "secretsmanager", url=self.url("/"), method="POST",
                                     headers={"X-Amz-Target": "secretsmanager.GetSecretValue",
                                              "Content-Type": "application/x-amz-json-1.1"},
                                     body=json.dumps({"SecretId": "prod/db"}))])
        self.assertEqual(r["structuredContent"]["status"], 200, r)
        self.sign_records(lambda x: x["decision"] == "allow" and x["secret"] == "AWS_SET")

    def test_host_service_and_owned_headers_refused(self):
        before = len(read_jsonl(self.record))
        elsewhere, sts, owned, not_a_key = self.sdk([
            self.signed("ELSEWHERE_KEY", "s3", url=self.url("/kzbucket/x.txt")),
            self.signed("AWS_SECRET_ACCESS_KEY", "sts", url=self.url("/?Action=GetCallerIdentity&Version=2011-06-15")),
            self.signed("AWS_SECRET_ACCESS_KEY", "s3", url=self.url("/kzbucket/x.txt"),
                        headers={"Authorization": "AWS4-HMAC-SHA256 Credential=x"}),
            self.signed("AWS_SESSION_TOKEN", "s3", url=self.url("/kzbucket/x.txt")),
        ])
        self.assertTrue(elsewhere["isError"], elsewhere)
        self.assertIn("ELSEWHERE_KEY may not be sent to localhost", elsewhere["content"][0]["text"])
        self.assertTrue(sts["isError"], sts)
        self.assertIn("may not sign for the service sts", sts["content"][0]["text"])
        # An argument error: a JSON-RPC error or an isError result, as the protocol version wants.
        self.assertTrue(owned.get("isError") or "error" in owned, owned)
        self.assertIn("Authorization is set by kz", json.dumps(owned))
        self.assertTrue(not_a_key["isError"], not_a_key)
        self.assertIn("is not a signing key", not_a_key["content"][0]["text"])
        # Nothing was sent for any of them.
        self.assertEqual(len(read_jsonl(self.record)), before)
        self.sign_records(lambda r: r["decision"] == "refuse" and r["secret"] == "ELSEWHERE_KEY"
                          and "localhost" in r["reason"])
        self.sign_records(lambda r: r["decision"] == "refuse" and r.get("service") == "sts")

    def test_zz_audit_and_stderr_hold_no_key(self):
        self.test_get_secret_value_and_put_object_are_signed()
        with open(self.audit_log) as f:
            text = f.read()
        for secret in (KEY, SESSION):
            self.assertNoSecret(text, secret, "audit log")
        verify = subprocess.run([KZ, "audit", "verify", self.audit_log], capture_output=True, text=True, timeout=30)
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)
        summary = subprocess.run([KZ, "audit", "summary", self.audit_log], capture_output=True, text=True, timeout=30)
        self.assertEqual(summary.returncode, 0, summary.stderr)
        self.assertIn("AWS_SECRET_ACCESS_KEY", summary.stdout)


if __name__ == "__main__":
    unittest.main()

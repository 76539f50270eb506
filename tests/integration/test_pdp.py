"""The policy decision point end to end: `kz server start --bundle` on loopback with the
issue's example bundle, a JWKS made at test time, a local Vault (tests/servers/
vault_server.py) behind it, and `kz run` with [server] url as two identities. Each
identity gets exactly what the bundle allows; a reload to a broken bundle keeps the old
one serving; the decision log holds no value and no token.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from kzt import KZ, KzServer, KzTestCase, ServerProcess, make_test_ca, read_jsonl  # noqa: E402
import mint_jwt  # noqa: E402

PROD_VALUE = "prod-db-VALUE-7c1e9a0b55d3"
STAGING_VALUE = "staging-db-VALUE-42f0aa91"
ISSUER = "https://auth.kz.test"
AUDIENCE = "keyzero"

BUNDLE = """
identity:
  issuers:
    - issuer: "%(issuer)s"
      audience: "%(audience)s"
      jwks_file: ./jwks.json
providers:
  vault: { address: "https://127.0.0.1:%(vault_port)d", token_file: ./vault-token, ca_cert: ./ca.pem }
policies:
- match: "secret/data/prod/**"
  rules:
  - cel: "identity.service == 'data-pipeline-agent'"
    effect: allow
  - cel: "identity.service == 'support-agent'"
    effect: deny
- match: "secret/data/staging/**"
  rules:
  - cel: "identity.env == 'staging'"
    effect: allow
"""


class PdpTest(KzTestCase):
    @classmethod
    def setUpClass(cls):
        cls.pdir = tempfile.mkdtemp(prefix="kz-pdp-")
        cls.ca = make_test_ca(os.path.join(cls.pdir, "ca"))
        data = os.path.join(cls.pdir, "vault-data.json")
        with open(data, "w") as f:
            json.dump({"kv2": {"secret": {"prod/db": {"password": PROD_VALUE},
                                          "staging/db": {"password": STAGING_VALUE}}}}, f)
        cls.vault = ServerProcess("vault_server.py", "--data", data, "--token", "vault-root-token",
                                  "--cert", cls.ca["server"], "--key", cls.ca["server_key"])
        with open(os.path.join(cls.pdir, "vault-token"), "w") as f:
            f.write("vault-root-token\n")
        shutil.copy(cls.ca["ca"], os.path.join(cls.pdir, "ca.pem"))
        mint_jwt.keys(cls.pdir)
        cls.bundle = os.path.join(cls.pdir, "bundle.yaml")
        cls.good_bundle = BUNDLE % {"issuer": ISSUER, "audience": AUDIENCE, "vault_port": cls.vault.port}
        with open(cls.bundle, "w") as f:
            f.write(cls.good_bundle)
        cls.decisions = os.path.join(cls.pdir, "decisions.jsonl")
        cls.server = KzServer(cls.bundle, "--audit-log", cls.decisions)
        cls.pdp = cls.server.proc
        cls.url = cls.server.url
        now = int(time.time())
        base = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
        cls.pipeline = mint_jwt.token(cls.pdir, dict(base, sub="pipeline-1", service="data-pipeline-agent", env="prod"))
        cls.support = mint_jwt.token(cls.pdir, dict(base, sub="support-1", service="support-agent", env="staging"))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
        finally:
            cls.vault.stop()
            shutil.rmtree(cls.pdir, True)

    def setUp(self):
        super().setUp()
        self.config('[server]\nurl = "%s"\n\n[secrets]\n'
                    'PROD_DB = { provider = "vault", ref = "secret/data/prod/db#password" }\n'
                    'STAGING_DB = { provider = "vault", ref = "secret/data/staging/db#password" }\n' % self.url)

    def run_as(self, token, name, expect):
        script = 'test "$%s" = "%s" && echo MATCH' % (name, expect)
        return self.kz("run", "--only", name, "--", "/bin/sh", "-c", script, env=self.env(KZ_IDENTITY_TOKEN=token))

    def api(self, path, token=None, body=None):
        req = urllib.request.Request(self.url + path, data=None if body is None else json.dumps(body).encode())
        if token:
            req.add_header("Authorization", "Bearer " + token)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def test_each_identity_gets_exactly_what_the_bundle_allows(self):
        r = self.run_as(self.pipeline, "PROD_DB", PROD_VALUE)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "MATCH"), r.stderr)
        r = self.run_as(self.pipeline, "STAGING_DB", STAGING_VALUE)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("no allow rule", r.stderr)
        r = self.run_as(self.support, "PROD_DB", PROD_VALUE)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("denied by policies[0].rules[1]", r.stderr)
        r = self.run_as(self.support, "STAGING_DB", STAGING_VALUE)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "MATCH"), r.stderr)
        for text in (r.stdout, r.stderr):
            self.assertNotIn(STAGING_VALUE, text)

    def test_a_bad_or_missing_identity_is_refused(self):
        r = self.run_as(self.pipeline[:-4] + "AAAA", "PROD_DB", PROD_VALUE)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("bad_signature", r.stderr)
        self.assertNotIn(self.pipeline[:20], r.stderr)
        r = self.kz("run", "--only", "PROD_DB", "--", "true")
        self.assertEqual(r.returncode, 2)
        self.assertIn("KZ_IDENTITY_TOKEN", r.stderr)
        status, body = self.api("/v1/decide", None, {"secrets": [{"provider": "vault", "ref": "secret/data/prod/x"}]})
        self.assertEqual(status, 401, body)

    def test_decide_health_metrics_and_bad_requests(self):
        status, body = self.api("/v1/decide", self.support,
                                {"secrets": [{"name": "P", "provider": "vault", "ref": "secret/data/prod/db#password"},
                                             {"name": "S", "provider": "vault", "ref": "secret/data/staging/db"}]})
        self.assertEqual(status, 200, body)
        j = json.loads(body)
        self.assertEqual([r["allow"] for r in j["results"]], [False, True])
        self.assertEqual(j["results"][0]["rule"], "policies[0].rules[1]")
        self.assertNotIn("value", j["results"][1], "decide never returns values")
        status, body = self.api("/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(len(json.loads(body)["revision"]), 64)
        status, body = self.api("/metrics")
        self.assertIn('kz_pdp_decisions_total{effect="allow"}', body)
        self.assertIn("kz_pdp_request_duration_seconds_bucket", body)
        for bad in ({}, {"secrets": []}, {"secrets": [{"ref": "x"}]}, {"secrets": "x"}, {"other": 1}):
            status, body = self.api("/v1/decide", self.support, bad)
            self.assertEqual(status, 400, (bad, body))
        status, _ = self.api("/nope")
        self.assertEqual(status, 404)

    def test_a_changed_bundle_file_is_picked_up_without_a_signal(self):
        def revision():
            return json.loads(self.api("/healthz")[1])["revision"]

        before = revision()
        try:
            with open(self.bundle, "w") as f:
                f.write(self.good_bundle + "\n# edited\n")
            deadline = time.time() + 20   # the server checks the file every second
            while time.time() < deadline and revision() == before:
                time.sleep(0.05)
            self.assertNotEqual(revision(), before)
        finally:
            with open(self.bundle, "w") as f:
                f.write(self.good_bundle)
            deadline = time.time() + 20
            while time.time() < deadline and revision() != before:
                time.sleep(0.05)

    def test_policy_check_and_test_offline(self):
        r = self.kz("policy", "check", self.bundle)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("policies   2, rules 3 (0 shadow)", r.stdout)
        claims = self.write("claims.json", json.dumps({"service": "support-agent"}))
        r = self.kz("policy", "test", self.bundle, "--claims", claims, "--ref", "secret/data/prod/db#password")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("DENY: denied by policies[0].rules[1]", r.stdout)
        r = self.kz("policy", "test", self.bundle, "--claims", claims, "--ref", "secret/data/prod/db", "--json")
        self.assertEqual(json.loads(r.stdout)["rule"], "policies[0].rules[1]")
        bad = self.write("bad.yaml", "policies:\n- match: '**'\n  rules:\n  - cel: 'identity.x =='\n    effect: allow\n")
        r = self.kz("policy", "check", bad)
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"bad\.yaml:4:\d+: policies\[0\]\.rules\[0\]\.cel: offset \d+")

    def test_oversized_body_is_refused_and_the_server_keeps_serving(self):
        # The server answers 413 as soon as the body passes its limit and closes; a client
        # still sending may see the close (a reset) before it reads the answer.
        try:
            status, _ = self.api("/v1/decide", self.support, {"secrets": [{"provider": "v", "ref": "x" * (2 << 20)}]})
            self.assertEqual(status, 413)
        except (BrokenPipeError, ConnectionResetError, urllib.error.URLError):
            pass
        self.assertEqual(self.api("/healthz")[0], 200)

    def test_https_listener(self):
        audit = os.path.join(self.dir, "tls-decisions.jsonl")
        p = subprocess.Popen([KZ, "server", "start", "--bundle", self.bundle, "--listen", "127.0.0.1:0",
                              "--tls-cert", self.ca["server"], "--tls-key", self.ca["server_key"],
                              "--audit-log", audit], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline()
            m = re.search(r"listening on https://127\.0\.0\.1:(\d+)", line)
            self.assertIsNotNone(m, line + p.stderr.read() if p.poll() is not None else line)
            import ssl
            ctx = ssl.create_default_context(cafile=self.ca["ca"])
            req = urllib.request.Request("https://localhost:%s/v1/decide" % m.group(1),
                                         data=json.dumps({"secrets": [{"provider": "vault",
                                                                       "ref": "secret/data/staging/db"}]}).encode(),
                                         headers={"Authorization": "Bearer " + self.support,
                                                  "Content-Type": "application/json"})
            with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
                self.assertTrue(json.loads(r.read())["results"][0]["allow"])
        finally:
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(timeout=20), 0)
            p.stdout.close()
            p.stderr.close()

    def test_decision_log_has_ids_and_no_values_or_tokens(self):
        self.assertEqual(self.run_as(self.pipeline, "PROD_DB", PROD_VALUE).returncode, 0)
        deadline = time.time() + 20
        recs = []
        while time.time() < deadline:   # the log is written by its own thread
            recs = [r for r in read_jsonl(self.decisions) if r.get("event") == "decision"]
            if recs:
                break
            time.sleep(0.05)
        self.assertTrue(recs)
        r = recs[-1]
        self.assertEqual(len(r["decision_id"]), 32)
        self.assertEqual(len(r["revision"]), 64)
        self.assertEqual(r["input"]["identity"]["sub"], "pipeline-1")
        with open(self.decisions) as f:
            text = f.read()
        for secret in (PROD_VALUE, STAGING_VALUE, self.pipeline, self.support, "vault-root-token"):
            self.assertNotIn(secret, text)
        r = self.kz("audit", "verify", self.decisions)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_reload_keeps_the_old_bundle_when_the_new_one_is_broken(self):
        def revision():
            return json.loads(self.api("/healthz")[1])["revision"]

        before = revision()
        try:
            with open(self.bundle, "w") as f:
                f.write(self.good_bundle.replace("identity.env == 'staging'", "identity.env == "))
            self.pdp.send_signal(signal.SIGHUP)
            deadline = time.time() + 20
            while time.time() < deadline:
                if any(r.get("event") == "pdp.reload" and r.get("decision") == "error"
                       for r in read_jsonl(self.decisions)):
                    break
                time.sleep(0.05)
            self.assertEqual(revision(), before)
            r = self.run_as(self.support, "STAGING_DB", STAGING_VALUE)
            self.assertEqual((r.returncode, r.stdout.strip()), (0, "MATCH"), r.stderr)
            # A good new bundle is taken: staging for everyone in env prod too.
            with open(self.bundle, "w") as f:
                f.write(self.good_bundle.replace("identity.env == 'staging'", "identity.env in ['staging', 'prod']"))
            self.pdp.send_signal(signal.SIGHUP)
            deadline = time.time() + 20
            while time.time() < deadline and revision() == before:
                time.sleep(0.05)
            self.assertNotEqual(revision(), before)
            r = self.run_as(self.pipeline, "STAGING_DB", STAGING_VALUE)
            self.assertEqual((r.returncode, r.stdout.strip()), (0, "MATCH"), r.stderr)
        finally:
            with open(self.bundle, "w") as f:
                f.write(self.good_bundle)
            self.pdp.send_signal(signal.SIGHUP)
            deadline = time.time() + 20
            while time.time() < deadline and revision() != before:
                time.sleep(0.05)


if __name__ == "__main__":
    unittest.main()

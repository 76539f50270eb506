"""Minted credentials (issue 19, part 2).

1. kind = "oauth2-client-credentials": kz fetches an access token from a token endpoint
   (RFC 6749 4.4, client_secret_basic or client_secret_post), gives the agent one stable
   token for it in blind mode, swaps in the current access token, and renews it before
   it expires; a bad client secret stops the run with the endpoint's error.
2. A client secret with mint_hosts: the agent calls the token endpoint itself; the
   access token in the JSON answer is replaced by a new kz token (same length) before
   the agent reads it, and the value, sealed in kz, goes only to the mint_hosts.

Servers: tests/servers/oauth_server.py (token endpoint and resource server in one, TLS
with the test CA's leaf for localhost and 127.0.0.1), which checks client authentication
exactly, issues short-lived tokens and records every issue and resource call (never a
token; the tokens it issued go to a file outside the agent's reach). The agent is
/usr/bin/python3 (urllib over OpenSSL) or curl under `kz run --blind`. Waiting is on
those records, never on a sleep.
"""
import json
import os
import re
import secrets
import string
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from kzt import PY, BlindTestCase, ServerProcess, read_jsonl, toml_list, toml_str  # noqa: E402

CLIENT_ID = "kz-test-client"
CLIENT_SECRET = "cs_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))
# kz's own token requests use a secret with characters that form encoding must escape
# (RFC 6749 2.3.1: the id and the secret are form-encoded before Basic joins them).
MINT_SECRET = "cs+/=:%&" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))

# The agent: GET /api/data with $API_TOKEN; then, asked to, waits until kz has renewed
# the access token (the `mint` record with source "refresh" in the audit log, written once
# the new value is in use) and calls again.
MINTED_AGENT = r'''
import json, os, ssl, sys, time, urllib.request, urllib.error
ctx = ssl.create_default_context(cafile=os.environ["CA"])
def call(url, tok):
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + tok})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, None
def renewed():
    try:
        with open(os.environ["AUDIT"]) as f:
            return sum(1 for l in f if '"event":"mint"' in l and '"source":"refresh"' in l and '"decision":"ok"' in l)
    except OSError:
        return 0
tok = os.environ["API_TOKEN"]
print("TOKEN=" + tok)
url = "https://localhost:%s/api/data" % os.environ["PORT"]
print("CALL1", *call(url, tok))
if os.environ.get("WANT"):
    # A renewal after CALL1 (on a loaded machine one may already have come before it).
    before = renewed()
    deadline = time.monotonic() + 40
    while renewed() <= before and time.monotonic() < deadline:
        time.sleep(0.05)   # polling kz's audit log for the renewal: the event we wait on
    print("RENEWED", renewed())
    print("CALL2", *call(url, os.environ["API_TOKEN"]))
print("ENV_HAS_TOKEN", os.environ["API_TOKEN"] == tok)
if os.environ.get("PRINT_FILE"):   # every access token issued so far, read past kz
    with open(os.environ["PRINT_FILE"]) as f:
        print("ISSUED", f.read().replace("\n", " "))
'''

# The agent calls the token endpoint itself with its tokenised client secret (Basic),
# then uses the access token it got at the bound host and at an unbound one. Shared with
# tests/security/test_oauth_sealing.py (which reads the agent's memory afterwards).
SELF_AGENT_CALLS = r'''
import base64, json, os, ssl, urllib.parse, urllib.request, urllib.error
ctx = ssl.create_default_context()   # SSL_CERT_FILE: the test CA (and, under the proxy, the run's)
port = os.environ["PORT"]
def send(req):
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
cred = base64.b64encode(("%s:%s" % (os.environ["CLIENT_ID"], os.environ["OAUTH_CLIENT_SECRET"])).encode()).decode()
status, body = send(urllib.request.Request(
    "https://127.0.0.1:%s/oauth/token" % port, data=b"grant_type=client_credentials",
    headers={"Authorization": "Basic " + cred, "Content-Type": "application/x-www-form-urlencoded"}))
calls = []
def answer(b):   # JSON ("access_token", or "token") or form-encoded, as the endpoint answers
    t = b.decode()
    if t.startswith("{"):
        return json.loads(t)
    return {k: v[0] for k, v in urllib.parse.parse_qs(t, keep_blank_values=True).items()}
if status == 200:
    a = answer(body)
    at = a.get("access_token") or a.get("token")
    calls = [(h, send(urllib.request.Request("https://%s:%s/api/data" % (h, port),
                                             headers={"Authorization": "Bearer " + at}))[0])
             for h in ("localhost", "127.0.0.1")]
    echo = send(urllib.request.Request("https://localhost:%s/api/echo" % port,
                                       headers={"Authorization": "Bearer " + at}))[1].decode()
'''
SELF_AGENT = SELF_AGENT_CALLS + r'''
print("TOKEN_STATUS", status)
print("TOKEN_BODY", body.decode(errors="replace"))
for h, s in calls:
    print("CALL", h, s)
if calls:
    print("ECHO", echo)
'''


class OAuthTestCase(BlindTestCase):
    SECRET = CLIENT_SECRET

    def oauth_server(self, *extra):
        self.record = os.path.join(self.srv, "oauth.jsonl")
        self.issued_path = os.path.join(self.srv, "issued.txt")
        s = ServerProcess("oauth_server.py", "--cert", self.ca["server"], "--key", self.ca["server_key"],
                          "--client-id", CLIENT_ID, "--client-secret", self.SECRET,
                          "--record", self.record, "--issued", self.issued_path, *extra)
        self.addCleanup(s.stop)
        self.port = s.port
        return s

    @staticmethod
    def read_file(path):
        with open(path) as f:
            return f.read()

    def audit_text(self):
        return self.read_file(self.audit_path)

    def events(self, event):
        return [r for r in read_jsonl(self.record) if r["event"] == event]

    def issued_tokens(self):
        if not os.path.exists(self.issued_path):
            return []
        with open(self.issued_path) as f:
            return [l.strip() for l in f if l.strip()]

    def assertNoAccessToken(self, text, where):
        for t in self.issued_tokens():
            self.assertNotExposed(text, t, where)


class MintedCredentialTest(OAuthTestCase):
    SECRET = MINT_SECRET
    def minted_config(self, *, client_auth=None, expires_skew=None, scopes=("read", "write"), audience=None):
        lines = ["[secrets.API_TOKEN]",
                 'kind = "oauth2-client-credentials"',
                 "token_url = %s" % toml_str("https://127.0.0.1:%d/oauth/token" % self.port),
                 "client_id = %s" % toml_str(CLIENT_ID),
                 'client_secret = { provider = "env", ref = "KZ_TEST_CLIENT_SECRET" }',
                 "scopes = %s" % toml_list(scopes),
                 "ca_file = %s" % toml_str(self.ca["ca"]),
                 'hosts = ["localhost"]']
        if client_auth:
            lines.append("client_auth = %s" % toml_str(client_auth))
        if audience:
            lines.append("audience = %s" % toml_str(audience))
        if expires_skew:
            lines.append("refresh_skew = %s" % toml_str(expires_skew))
        lines += ["", "[blind]", "ca_file = %s" % toml_str(self.ca["ca"]), ""]
        return self.config("\n".join(lines))

    def agent_env(self, **extra):
        return self.env(KZ_TEST_CLIENT_SECRET=MINT_SECRET, CA=self.ca["ca"], PORT=str(self.port),
                        AUDIT=self.audit_path, **extra)

    def test_blind_agent_holds_one_token_and_kz_renews_the_access_token(self):
        self.oauth_server("--expires-in", "3", "--scope", "read write")
        self.minted_config()
        r = self.run_blind(PY, "-c", MINTED_AGENT, env=self.agent_env(WANT="2"))
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        out = r.stdout
        tok = re.search(r"^TOKEN=(.*)$", out, re.M).group(1)
        self.assertToken(tok)
        # The first call used the first access token, the second (after kz renewed it
        # behind the same token) a later one: the resource server accepted both.
        m1 = re.search(r"^CALL1 (\d+) (.*)$", out, re.M)
        m2 = re.search(r"^CALL2 (\d+) (.*)$", out, re.M)
        self.assertEqual(m1.group(1), "200", out)
        self.assertEqual(m2.group(1), "200", out + self.audit_dump())
        seq1 = int(re.search(r"'seq': (\d+)", m1.group(2)).group(1))
        seq2 = int(re.search(r"'seq': (\d+)", m2.group(2)).group(1))
        self.assertGreater(seq2, seq1, "the second call still used the first call's access token")
        self.assertIn("ENV_HAS_TOKEN True", out)
        # The agent saw no access token, nor the client secret.
        self.assertNoAccessToken(out + r.stderr, "the agent's output")
        self.assertNotExposed(out + r.stderr, MINT_SECRET, "the agent's output")
        # The audit log: the first mint, at least one renewal, swaps; no values.
        self.assertAudited("mint", secret="API_TOKEN", source="start", decision="ok")
        ren = self.assertAudited("mint", secret="API_TOKEN", source="refresh", decision="ok")
        self.assertEqual(ren[0].get("expires_in"), 3)
        self.assertGreaterEqual(len(self.audit_events("swap", secret="API_TOKEN", decision="allow")), 2)
        dump = self.audit_text()
        self.assertNoAccessToken(dump, "the audit log")
        self.assertNotExposed(dump, MINT_SECRET, "the audit log")
        # Every access token reached the resource server through kz, never a kz token.
        res = self.events("resource")
        self.assertTrue(res and all(e["status"] == 200 and not e["kz_token"] for e in res), res)

    def test_a_renewed_access_token_is_masked_in_the_output_without_refresh(self):
        """The agent reads the access tokens from somewhere kz does not guard (here the
        token endpoint's own file) and prints them: the renewed one is masked as the
        first is. (Before: the output streams learned new masks only in a run with a
        `refresh` secret, so a renewal in a run without one was printed in clear.)"""
        self.oauth_server("--expires-in", "3", "--scope", "read write")
        self.minted_config()
        r = self.run_blind(PY, "-c", MINTED_AGENT, env=self.agent_env(WANT="2", PRINT_FILE=self.issued_path))
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        issued = self.issued_tokens()
        self.assertGreaterEqual(len(issued), 2, "no renewal happened")
        line = re.search(r"^ISSUED (.*)$", r.stdout, re.M).group(1)
        for t in issued:
            self.assertNotIn(t, r.stdout + r.stderr)
        self.assertGreaterEqual(line.count("<concealed by kz>"), 2, line)

    def test_client_secret_post_scope_and_audience(self):
        self.oauth_server("--client-auth", "post", "--scope", "read", "--audience", "https://api.test")
        self.minted_config(client_auth="post", scopes=("read",), audience="https://api.test")
        r = self.run_blind(PY, "-c", MINTED_AGENT, env=self.agent_env())
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertRegex(r.stdout, r"(?m)^CALL1 200 ")
        self.assertEqual(self.events("refused"), [])

    def test_basic_auth_to_a_post_client_is_refused_with_the_endpoints_error(self):
        # The server expects client_secret_post; kz's default Basic is refused exactly.
        self.oauth_server("--client-auth", "post", "--scope", "read write")
        self.minted_config()
        r = self.run_blind(PY, "-c", "print('agent ran')", env=self.agent_env())
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn("agent ran", r.stdout)
        self.assertIn("invalid_client", r.stderr)
        self.assertIn("API_TOKEN", r.stderr)

    def test_bad_client_secret_stops_the_run_with_a_clear_error(self):
        self.oauth_server("--scope", "read write")
        self.minted_config()
        wrong = "cs_wrong_" + "x" * 30
        r = self.run_blind(PY, "-c", "print('agent ran')",
                           env=self.env(KZ_TEST_CLIENT_SECRET=wrong, CA=self.ca["ca"], PORT=str(self.port)))
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn("agent ran", r.stdout)
        err = r.stderr
        self.assertIn("API_TOKEN", err)
        self.assertIn(".keyzero.toml:", err)                    # file:line of the secret
        self.assertIn("token endpoint https://127.0.0.1:%d/oauth/token" % self.port, err)
        self.assertIn("HTTP 401: invalid_client (Client authentication failed", err)
        self.assertNotIn(wrong, err + r.stdout)
        self.assertNotIn(MINT_SECRET, err + r.stdout)
        rec = self.assertAudited("mint", secret="API_TOKEN", source="start", decision="error")
        self.assertIn("invalid_client", rec[0]["reason"])
        self.assertNotIn(wrong, self.audit_text())

    def test_standard_mode_gets_the_access_token(self):
        self.oauth_server("--scope", "read write")
        self.minted_config()
        r = self.kz("run", "--", PY, "-c", MINTED_AGENT, env=self.agent_env())
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertRegex(r.stdout, r"(?m)^CALL1 200 ")
        self.assertEqual(len(self.issued_tokens()), 1)

    def test_config_errors_name_file_line_and_field(self):
        self.port = 1
        cases = [
            ('token_url = "http://example.com/token"', "secrets.API_TOKEN.token_url must be an https:// URL"),
            ('client_auth = "jwt"', "secrets.API_TOKEN.client_auth must be"),
            ('scopes = ["a b"]', "secrets.API_TOKEN.scopes"),
        ]
        for line, want in cases:
            with self.subTest(line=line):
                self.minted_config()
                text = self.read_file(os.path.join(self.dir, ".keyzero.toml"))
                key = line.split(" ")[0]
                text = re.sub(r"(?m)^%s = .*$" % key, line, text) if re.search(r"(?m)^%s = " % key, text) else \
                    text.replace('hosts = ["localhost"]', 'hosts = ["localhost"]\n' + line)
                self.config(text)
                r = self.kz("check")
                self.assertNotEqual(r.returncode, 0)
                self.assertRegex(r.stderr, r"\.keyzero\.toml:\d+:\d+: ")
                self.assertIn(want, r.stderr)
        self.config('[secrets.API_TOKEN]\nkind = "oauth2-client-credentials"\ntoken_url = "https://a.test/t"\n'
                    'client_id = "x"\n')
        r = self.kz("check")
        self.assertIn('missing required key "client_secret"', r.stderr)


class SealedResponseTest(OAuthTestCase):
    """The agent calls the token endpoint itself (blind mode)."""

    def self_config(self, mint_hosts=("localhost",)):
        lines = ["[secrets.OAUTH_CLIENT_SECRET]",
                 'provider = "env"', 'ref = "KZ_TEST_CLIENT_SECRET"',
                 'hosts = ["127.0.0.1"]']
        if mint_hosts:
            lines.append("mint_hosts = %s" % toml_list(mint_hosts))
        lines += ["", "[blind]", "ca_file = %s" % toml_str(self.ca["ca"]), ""]
        return self.config("\n".join(lines))

    def run_self_agent(self, *server_flags, mint_hosts=("localhost",), flags=()):
        self.oauth_server(*server_flags)
        self.self_config(mint_hosts)
        r = self.run_blind(PY, "-c", SELF_AGENT, flags=flags,
                           env=self.env(KZ_TEST_CLIENT_SECRET=CLIENT_SECRET, SSL_CERT_FILE=self.ca["ca"],
                                        PORT=str(self.port), CLIENT_ID=CLIENT_ID))
        return r

    def check_sealed(self, r, keys=("access_token",)):
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        out = r.stdout
        self.assertIn("TOKEN_STATUS 200", out, out + r.stderr[-2000:])
        text = re.search(r"^TOKEN_BODY (.*)$", out, re.M).group(1)
        if text.startswith("{"):
            body = json.loads(text)
        else:
            body = {k: v[0] for k, v in urllib.parse.parse_qs(text, keep_blank_values=True).items()}
        issued = self.issued_tokens()
        self.assertEqual(len(issued), 1)
        for k in keys:
            self.assertToken(body[k])
        # Same length as the real token: the body's framing never changed.
        self.assertEqual(len(body[keys[0]]), len(issued[0]))
        self.assertNoAccessToken(out + r.stderr, "the agent's output")
        self.assertNotExposed(out + r.stderr, CLIENT_SECRET, "the agent's output")
        # The sealed token works at the bound host (the resource server got the real
        # access token) and is refused toward the unbound one (it got the kz token).
        # A server that reflects the credential hands back the sealed token, not the value.
        self.assertIn("ECHO " + json.dumps({"you_sent": "Bearer " + body[keys[0]]}), out)
        self.assertIn("CALL localhost 200", out)
        self.assertIn("CALL 127.0.0.1 401", out)
        res = self.events("resource")
        self.assertEqual([(e["status"], e["kz_token"]) for e in res], [(200, False), (401, True)], res)
        self.assertAudited("mint", secret="OAUTH_CLIENT_SECRET/sealed", source="response", decision="ok")
        self.assertAudited("swap", secret="OAUTH_CLIENT_SECRET/sealed", decision="allow", host="localhost")
        self.assertAudited("swap", secret="OAUTH_CLIENT_SECRET/sealed", decision="refuse", host="127.0.0.1")
        dump = self.audit_text()
        self.assertNoAccessToken(dump, "the audit log")

    def test_widened_mint_hosts_or_token_url_need_kz_trust(self):
        # An agent that edits the workspace's config to send sealed tokens (or the
        # client secret) elsewhere is stopped at the next blind run.
        r = self.run_self_agent()
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.self_config(("localhost", "evil.test"))
        r = self.run_blind(PY, "-c", "print('agent ran')", env=self.env(KZ_TEST_CLIENT_SECRET=CLIENT_SECRET))
        self.assertEqual(r.returncode, 2, r.stderr[-3000:])
        self.assertNotIn("agent ran", r.stdout)
        self.assertIn("mint_hosts evil.test,localhost", r.stderr)

    def test_access_token_is_sealed_content_length(self):
        self.check_sealed(self.run_self_agent("--refresh-token"), keys=("access_token", "refresh_token"))

    def test_access_token_is_sealed_chunked_split_inside_the_token(self):
        self.check_sealed(self.run_self_agent("--chunked"))

    def test_form_encoded_answer_is_sealed(self):
        # The agent writes the request, so it picks the answer's format: GitHub answers
        # form-encoded without Accept: application/json. The token is sealed all the same.
        self.check_sealed(self.run_self_agent("--answer", "form", "--refresh-token"),
                          keys=("access_token", "refresh_token"))

    def test_token_under_another_member_name_is_sealed(self):
        self.check_sealed(self.run_self_agent("--answer", "token"), keys=("token",))

    def test_without_mint_hosts_nothing_is_sealed(self):
        # The control: the same exchange without mint_hosts hands the agent the real
        # access token (what sealing exists to prevent).
        r = self.run_self_agent(mint_hosts=())
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertIn(self.issued_tokens()[0], r.stdout)

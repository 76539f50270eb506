"""Tokens that look right, with the vendors' own clients (issue 19, part 3). In blind mode
each key is given to the agent as a class-shaped token: the value's vendor prefix (or a
JWT's header and payload) kept, then as many characters as the rest of the value, each
of the class of the value's character at that position (digit, lower, upper; '-' and
'_' kept), starting with a marker the scanners find.

The agent is node with the vendor SDKs (tests/shape-js: openai, @slack/web-api,
@octokit/core, installed by scripts/setup-shape-js-tools) calling tests/servers/echo_api.py
on https://localhost (the test CA's leaf). Checked:
- every token passes the strict format check of its vendor. Of the SDKs only
  @octokit/auth-token checks a shape (a JWT, three base64url parts, is an "app" token
  sent as "bearer <jwt>"; anything else is sent as "token <t>"); openai and
  @slack/web-api take any non-empty string. So the test also applies the formats the
  vendors publish: GitHub `ghp_` + 36 [A-Za-z0-9]; Slack `xoxb-` digits `-` digits `-`
  24 [A-Za-z0-9]; OpenAI `sk-proj-` + [A-Za-z0-9_-]; a JWT's three base64url parts with
  its header and payload decodable (the agent reads `exp` as an SDK does);
- the server on loopback receives the real value, and the agent's environment holds
  only the token (the value is nowhere in its output);
- a canary (`canary = true`) gets the same shape and is still caught when sent.
On main (tokens `prefix + KZ_TOK_…`, JWTs plain) the strict formats fail and octokit
sends the JWT's token as "token KZ_TOK_…".
"""
import base64
import json
import os
import re
import secrets
import shutil
import string
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from kzt import BlindTestCase  # noqa: E402

SHAPE_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shape-js")
ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"


def rand(n, abc=ALNUM):
    return "".join(secrets.choice(abc) for _ in range(n))


def b64url(obj):
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


EXP = 4102444800
GITHUB = "ghp_" + rand(36)
SLACK = "xoxb-%s-%s-%s" % (rand(12, string.digits), rand(13, string.digits), rand(24))
OPENAI = "sk-proj-" + rand(20) + rand(100, B64URL) + rand(12)
# An HS256 JWT: 43 signature characters, the last one canonical (its 2 low bits unused).
JWT = "%s.%s.%s" % (b64url({"alg": "HS256", "typ": "JWT"}), b64url({"iss": "12345", "exp": EXP}),
                    rand(42, B64URL) + secrets.choice("AEIMQUYcgkosw048"))

# The vendors' published formats (module docstring).
STRICT = {
    "GITHUB_TOKEN": (GITHUB, r"^ghp_[A-Za-z0-9]{36}$"),
    "SLACK_BOT_TOKEN": (SLACK, r"^xoxb-[0-9]{10,13}-[0-9]{10,13}-[A-Za-z0-9]{24}$"),
    "OPENAI_API_KEY": (OPENAI, r"^sk-proj-[A-Za-z0-9_-]+$"),
    "GITHUB_APP_JWT": (JWT, r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"),
}


def char_class(c):
    return "d" if c.isdigit() else "l" if c.islower() else "u" if c.isupper() else c


@unittest.skipUnless(shutil.which("node"), "node is not installed")
class ShapedSdkTest(BlindTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.isdir(os.path.join(SHAPE_JS, "node_modules", "@octokit", "core")),
                        "the vendor SDKs are not installed: run scripts/setup-shape-js-tools")
        self.port, self.record = self.echo_server(alpn="http/1.1")

    def run_agent(self, canary=False):
        secrets_cfg = {n: {"ref": "KZ_TEST_" + n, "hosts": ["localhost"]} for n in STRICT}
        # node carries its own TLS library: its connections to the test API's port go
        # through kz's fallback proxy (proxy_ports), as port 443 would.
        extra = "proxy_ports = [%d]\n" % self.port
        if canary:
            extra += "\n[secrets.STRIPE_SECRET_KEY]\ncanary = true\n"
        self.blind_config(secrets_cfg, extra=extra)
        script = ('for v in GITHUB_TOKEN SLACK_BOT_TOKEN OPENAI_API_KEY GITHUB_APP_JWT STRIPE_SECRET_KEY; do '
                  'eval "echo $v=\\$$v"; done; exec node "$AGENT"')
        env = self.env(PORT=str(self.port), AGENT=os.path.join(SHAPE_JS, "agent.mjs"),
                       NODE_EXTRA_CA_CERTS=self.ca["ca"], **{"KZ_TEST_" + n: v for n, (v, _) in STRICT.items()})
        r = self.sh(script, env=env)
        self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-3000:])
        lines = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
        self.assertEqual(len(lines), 1, r.stdout[-3000:] + r.stderr[-3000:])
        return r, json.loads(lines[0][len("RESULT "):])

    def auth_at(self, prefix):
        recs = self.records(self.record, prefix)
        self.assertTrue(recs, "nothing reached %s" % prefix)
        return {r["header"].get("authorization", "") for r in recs}

    def test_vendor_sdks_get_tokens_of_the_values_shape_and_the_server_the_value(self):
        r, res = self.run_agent()
        toks = self.tokens_in(r.stdout, *STRICT)
        for name, (value, strict) in STRICT.items():
            tok = toks[name]
            with self.subTest(name):
                self.assertNotEqual(tok, value)
                self.assertEqual(len(tok), len(value))
                self.assertRegex(tok, strict)
                self.assertNotIn("KZ_TOK_", tok)
                # Class per position after the kept prefix (the marker's 7 or 10 bytes
                # are of the value's first run's class).
                keep = JWT.rsplit(".", 1)[0] + "." if name == "GITHUB_APP_JWT" else \
                    re.match(r"^(ghp_|xoxb-|sk-proj-)", value).group(1)
                self.assertTrue(tok.startswith(keep), tok[:len(keep) + 4])
                marker = 10 if name == "SLACK_BOT_TOKEN" else 7
                for i in range(len(keep) + marker, len(value)):
                    self.assertEqual(char_class(tok[i]), char_class(value[i]), "position %d of %s" % (i, name))
        # @octokit/auth-token's own shape check: the JWT is an app token, the PAT oauth.
        self.assertEqual(res["token_type"], {"github": "oauth", "github_app": "app"}, res)
        self.assertEqual(res["jwt_exp"], EXP)
        # The server on loopback received each real value, in each SDK's own header form.
        self.assertEqual(self.auth_at("/openai/"), {"Bearer " + OPENAI}, res)
        self.assertEqual(self.auth_at("/slack/"), {"Bearer " + SLACK}, res)
        self.assertEqual(self.auth_at("/github/"), {"token " + GITHUB}, res)
        self.assertEqual(self.auth_at("/github-app/"), {"bearer " + JWT}, res)
        for name in STRICT:
            self.assertAudited("swap", secret=name, decision="allow", via="proxy")
        # The agent held only the tokens.
        for value, _ in STRICT.values():
            self.assertNotIn(value, r.stdout + r.stderr)
            self.assertNotIn(value.rsplit(".", 1)[-1] if value is JWT else value[8:], r.stdout + r.stderr)

    def test_a_shaped_canary_passes_the_strict_format_and_is_caught(self):
        r, res = self.run_agent(canary=True)
        tok = self.tokens_in(r.stdout, "STRIPE_SECRET_KEY")["STRIPE_SECRET_KEY"]
        self.assertRegex(tok, r"^sk_live_[A-Za-z0-9]{32}$")
        self.assertNotIn("KZ_TOK_", tok)
        # Sent (here by curl, to the bound host of a real key): a canary record.
        sent = self.sh('curl -s --http1.1 --cacert "$CA" -H "Authorization: Bearer $STRIPE_SECRET_KEY" '
                       '"https://localhost:%d/stripe/v1/charges"' % self.port,
                       env=self.env(CA=self.ca["ca"], **{"KZ_TEST_" + n: v for n, (v, _) in STRICT.items()}))
        self.assertEqual(sent.returncode, 0, sent.stderr[-2000:])
        self.assertAudited("canary", secret="STRIPE_SECRET_KEY")


if __name__ == "__main__":
    unittest.main()

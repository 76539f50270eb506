"""Tokens that look right (issue 19, part 3): in blind mode a secret whose value starts
with a known vendor prefix (OpenAI `sk-proj-`, Slack `xoxb-`, ...) is given to the agent
as that prefix followed by a class-shaped kz token, exactly as long as the value, each
character of the class of the value's at that position. SDKs that check a key's format
accept it; the shim finds the marker the token starts with as it finds any token and
swaps it for the rest of the value, so the bound host receives the real
value and any other host the token; a response that echoes the value comes back as the
agent's own copy (redaction in place, same length).

The servers are tests/servers/echo_api.py with the test CA's leaf (localhost,
127.0.0.1); the client is curl under `kz run --blind`.
"""
import base64
import binascii
import os
import re
import secrets
import string
import sys

sys.path.insert(0, os.path.dirname(__file__))
from kzt import BlindTestCase, ServerProcess  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "servers"))
from reflect_api import FORMS as ENCODE  # noqa: E402

ALNUM = string.ascii_letters + string.digits


def rand(n, abc=ALNUM):
    return "".join(secrets.choice(abc) for _ in range(n))


OPENAI = "sk-proj-" + rand(48)
SLACK = "xoxb-%s-%s-%s" % (rand(13, string.digits), rand(13, string.digits), rand(24))
JWT = "eyJhbGciOiJIUzI1NiJ9.%s.%s" % (rand(40), rand(43))

# What SDKs and secret scanners check before a key is used: the vendor's strict format
# (the vendor SDK test, test_shaped_sdks.py, checks more shapes).
SHAPES = {
    "OPENAI_API_KEY": (OPENAI, r"^sk-proj-kztokqx[A-Za-z0-9]{%d}$" % (len(OPENAI) - 15)),
    "SLACK_BOT_TOKEN": (SLACK, r"^xoxb-7306195284[0-9]{3}-[0-9]{13}-[A-Za-z0-9]{24}$"),
}

AGENT = r'''
set -e
for k in openai:OPENAI_API_KEY slack:SLACK_BOT_TOKEN; do
  name=${k%%:*}; var=${k#*:}; eval "v=\$$var"
  echo "$var=$v"
  curl -s --http1.1 --cacert "$CA" -H "Authorization: Bearer $v" "https://localhost:$PORT/echo/$name"; echo
  curl -s --http1.1 --cacert "$CA" -H "Authorization: Bearer $v" "https://127.0.0.1:$PORT/elsewhere/$name"; echo
done
echo "JWT_TOKEN=$JWT_TOKEN"
'''


class ShapedTokenTest(BlindTestCase):
    def setUp(self):
        super().setUp()
        self.port, self.record = self.echo_server(alpn="http/1.1")

    def run_agent(self, blind=""):
        self.blind_config({"OPENAI_API_KEY": {"ref": "KZ_TEST_OPENAI", "hosts": ["localhost"]},
                           "SLACK_BOT_TOKEN": {"ref": "KZ_TEST_SLACK", "hosts": ["localhost"]},
                           "JWT_TOKEN": {"ref": "KZ_TEST_JWT", "hosts": ["localhost"]}}, extra=blind)
        r = self.sh(AGENT, env=self.env(KZ_TEST_OPENAI=OPENAI, KZ_TEST_SLACK=SLACK, KZ_TEST_JWT=JWT,
                                        CA=self.ca["ca"], PORT=str(self.port)))
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        return r

    def auth_at(self, path):
        recs = self.records(self.record, path)
        self.assertEqual(len(recs), 1, recs)
        return recs[0]["header"].get("authorization", "")

    def test_tokens_keep_prefix_length_and_swap_in_place(self):
        r = self.run_agent()
        toks = self.tokens_in(r.stdout, "OPENAI_API_KEY", "SLACK_BOT_TOKEN", "JWT_TOKEN")
        for name, (value, shape) in SHAPES.items():
            tok = toks[name]
            with self.subTest(name):
                self.assertNotEqual(tok, value)
                self.assertEqual(len(tok), len(value))
                self.assertRegex(tok, shape)
                short = name.split("_")[0].lower()
                # The bound host got the value; another host (127.0.0.1) got the token.
                self.assertEqual(self.auth_at("/echo/" + short), "Bearer " + value)
                self.assertEqual(self.auth_at("/elsewhere/" + short), "Bearer " + tok)
                # The echoed value came back as the agent's own copy, nothing else.
                self.assertIn('"you_sent": "Bearer %s"' % tok, r.stdout)
                self.assertAudited("swap", secret=name, decision="allow")
                self.assertAudited("swap", secret=name, decision="refuse")
        # A JWT keeps its header and payload; its signature is the token.
        jwt = toks["JWT_TOKEN"]
        self.assertEqual(len(jwt), len(JWT))
        self.assertEqual(jwt.rsplit(".", 1)[0], JWT.rsplit(".", 1)[0])
        self.assertRegex(jwt.rsplit(".", 1)[1], r"^kztokqx[A-Za-z0-9]{36}$")
        self.assertNotIn(OPENAI, r.stdout)
        self.assertNotIn(SLACK, r.stdout)

    def test_plain_switch(self):
        r = self.run_agent('token_shape = "plain"\n')
        toks = self.tokens_in(r.stdout, "OPENAI_API_KEY", "SLACK_BOT_TOKEN")
        self.assertToken(toks["OPENAI_API_KEY"], len(OPENAI))
        self.assertToken(toks["SLACK_BOT_TOKEN"], len(SLACK))
        self.assertEqual(self.auth_at("/echo/openai"), "Bearer " + OPENAI)
        self.assertEqual(self.auth_at("/echo/slack"), "Bearer " + SLACK)

    def test_bad_switch_is_a_config_error(self):
        self.blind_config({"OPENAI_API_KEY": {"ref": "KZ_TEST_OPENAI", "hosts": ["localhost"]}},
                          extra='token_shape = "fancy"\n')
        r = self.run_blind("/bin/true", env=self.env(KZ_TEST_OPENAI=OPENAI))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('blind.token_shape must be "auto" or "plain"', r.stderr)


class ShapedInboundTest(BlindTestCase):
    """A server that echoes the key back (tests/servers/reflect_api.py), raw and encoded:
    the agent reads its own shaped copy in that form, never the value."""

    DECODE = {"raw": lambda s: s, "base64": lambda s: base64.b64decode(s).decode(),
              "hexlower": lambda s: binascii.unhexlify(s).decode()}

    def test_echoed_value_comes_back_as_the_shaped_token(self):
        s = ServerProcess("reflect_api.py", "--record", os.path.join(self.srv, "reflect.jsonl"),
                          "--cert", self.ca["server"], "--key", self.ca["server_key"])
        self.addCleanup(s.stop)
        self.blind_config({"OPENAI_API_KEY": {"ref": "KZ_TEST_OPENAI", "hosts": ["localhost"]}})
        script = 'echo "OPENAI_API_KEY=$OPENAI_API_KEY"'
        for form in self.DECODE:
            script += ('; echo "--- %s"; curl -sS --max-time 20 --cacert "$CA" -H "Authorization: Bearer '
                       '$OPENAI_API_KEY" "https://localhost:%d/reflect/%s/cl"; echo' % (form, s.port, form))
        r = self.sh(script, env=self.env(KZ_TEST_OPENAI=OPENAI, CA=self.ca["ca"]))
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        out = r.stdout + r.stderr
        for name, enc in ENCODE.items():
            self.assertNotIn(enc(OPENAI.encode()).decode(), out, "the agent saw the value (%s form)" % name)
        tok = self.tokens_in(r.stdout, "OPENAI_API_KEY")["OPENAI_API_KEY"]
        self.assertTrue(tok.startswith("sk-proj-kztokqx"), tok[:16])
        for form, decode in self.DECODE.items():
            with self.subTest(form):
                m = re.search(r"--- %s\necho:(\S+)" % form, r.stdout)
                self.assertIsNotNone(m, r.stdout)
                self.assertEqual(decode(m.group(1)), tok)
        self.assertAudited("redact", decision="allow", secret="OPENAI_API_KEY")


if __name__ == "__main__":
    import unittest
    unittest.main()

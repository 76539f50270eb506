"""An agent that calls an OAuth token endpoint itself with its tokenised client secret
(issue 19, part 2): with mint_hosts on the client secret, the access token in the
endpoint's answer is sealed (a kz token of the same length in its place). The agent's
output, environment and, under --blind=proxy, its whole memory (/proc/PID/mem, as root)
never hold the real access token; the resource server accepts the swapped value at the
bound host, and the sealed token goes out unchanged (refused, audited) to another host.

With the shim the answer's plaintext passes through the TLS library's record buffer in
the agent's process before the shim seals it (docs/configuration.md, "The agent's own
token requests"); the memory check there is of the run as it ends (the token request's
connection closed); under --blind=proxy kz's proxy terminates the TLS and the value never
enters the agent. Servers: tests/servers/oauth_server.py with the test CA's leaf.
"""
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from agent_kit import Control, agent_program, finish, start_blind  # noqa: E402
from hostile import redirect_line  # noqa: E402
from kzt import BlindTestCase, ServerProcess, read_jsonl, toml_str  # noqa: E402
from test_oauth_mint import CLIENT_ID, CLIENT_SECRET, SELF_AGENT_CALLS  # noqa: E402
from test_sigv4_resign import memory_holds  # noqa: E402

DEBIAN_PY = "/usr/bin/python3"

AGENT = SELF_AGENT_CALLS + r'''
import sys
out = {"token_status": status, "body": body.decode(errors="replace"), "calls": [s for _, s in calls]}
body = status = None
out["env"] = dict(os.environ)
print("RESULT " + json.dumps(out))
sys.stdout.flush()
say({"pid": os.getpid()})
wait()
'''


class OAuthSealing(BlindTestCase):
    ANSWER = "json"   # the token endpoint's answer format (oauth_server.py --answer)

    def setUp(self):
        super().setUp()
        self.record = os.path.join(self.srv, "oauth.jsonl")
        self.issued_path = os.path.join(self.srv, "issued.txt")
        s = ServerProcess("oauth_server.py", "--cert", self.ca["server"], "--key", self.ca["server_key"],
                          "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET, "--record", self.record,
                          "--issued", self.issued_path, "--refresh-token", "--answer", self.ANSWER)
        self.addCleanup(s.stop)
        self.port = s.port
        self.config("\n".join([
            "[secrets]",
            'OAUTH_CLIENT_SECRET = { provider = "env", ref = "KZT_CLIENT_SECRET", hosts = ["127.0.0.1"], '
            'mint_hosts = ["localhost"] }',
            "", "[blind]", "ca_file = %s" % toml_str(self.ca["ca"]),
            "proxy_ports = [%d]" % self.port, ""]))

    def issued(self):
        with open(self.issued_path) as f:
            return [l.strip() for l in f if l.strip()]

    def run_agent(self, flags):
        ctl_path = os.path.join(self.dir, "ctl.sock")
        ctl = Control(ctl_path)
        self.addCleanup(ctl.close)
        prog = self.write("agent.py", agent_program(AGENT, ctl_path))
        env = self.env(KZT_CLIENT_SECRET=CLIENT_SECRET, CLIENT_ID=CLIENT_ID, SSL_CERT_FILE=self.ca["ca"],
                       PORT=str(self.port))
        run = start_blind(self, [DEBIAN_PY, prog], env, flags)
        hello = ctl.hear(run)
        issued = self.issued()
        in_memory = memory_holds(hello["pid"], [t.encode() for t in issued]) if os.geteuid() == 0 else None
        ctl.answer()
        rc, out, err = finish(run)
        self.assertEqual(rc, 0, "kz exit %d\nstdout:\n%s\nstderr:\n%s" % (rc, out[-3000:], err[-3000:]))
        line = [l for l in out.splitlines() if l.startswith("RESULT ")]
        self.assertTrue(line, "the agent printed no result:\n%s\n%s" % (out[-3000:], err[-3000:]))
        return json.loads(line[0][7:]), out + err, issued, in_memory

    def check(self, flags, memory):
        res, text, issued, in_memory = self.run_agent(flags)
        self.assertEqual(res["token_status"], 200, res)
        self.assertEqual(len(issued), 1)
        if self.ANSWER == "form":
            body = {k: v[0] for k, v in urllib.parse.parse_qs(res["body"], keep_blank_values=True).items()}
        else:
            body = json.loads(res["body"])
        self.assertTrue(body["access_token"].startswith("KZ_TOK_"), body)
        self.assertTrue(body["refresh_token"].startswith("KZ_TOK_"), body)
        self.assertEqual(len(body["access_token"]), len(issued[0]))
        self.assertEqual(res["calls"], [200, 401], self.audit_dump())
        # The resource server got the real token at the bound host, the kz token elsewhere.
        calls = [(r["status"], r["kz_token"]) for r in read_jsonl(self.record) if r["event"] == "resource"]
        self.assertEqual(calls, [(200, False), (401, True)])
        for t in issued:
            self.assertNotExposed(text, t, "the agent's output and environment")
            with open(self.audit_path) as f:
                self.assertNotIn(t, f.read(), "the audit log holds the access token")
        self.assertNotExposed(text, CLIENT_SECRET, "the agent's output and environment")
        if not memory:
            return
        if in_memory is None:
            print("SKIP memory read: not root (the agent is non-dumpable)")
        else:
            self.assertEqual(in_memory, set(), "the agent's memory held the real access token")

    def test_shim(self):
        self.check([], memory=True)

    def test_proxy_memory_never_holds_the_access_token(self):
        red = redirect_line()
        if red is None:
            print("SKIP: --blind=proxy needs a redirector; kz doctor shows none available")
            self.skipTest("no redirector for --blind=proxy")
        self.check(["--blind=proxy", "--redirector=" + red], memory=True)


class OAuthSealingFormEncoded(OAuthSealing):
    """The same with a form-encoded answer (GitHub's /login/oauth/access_token without
    Accept: application/json): the agent picks the format, the token is sealed all the same."""
    ANSWER = "form"

"""Issue 15, class 1: broker impersonation.

A program of the agent's own opens $KZ_BROKER and speaks the broker protocol
(kz/wire/protocol.h; here tests/support/broker_probe.cpp plays that program).

- The Redact operation must not be a silent oracle: every miss is audited (who asked,
  for which host, never the bytes) and a connection is closed after 16 misses.
- The strong mode is one line of configuration: `[blind] mode = "proxy"` makes a plain
  `kz run --blind` run as `--blind=proxy`: no shim and no broker socket in the agent's
  reach, and the value is still swapped (by kz's proxy).

What remains (docs/hostile/broker-lifetime.md): in shim mode a program that presents a
token, a bound host and that host's public certificate chain to the broker gets the
value. The broker cannot tell such a program from the shim (both run in the agent's
processes, with the agent's credentials); `[blind] mode = "proxy"` closes it."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from agent_kit import PROBE, parse_probe  # noqa: E402
from test_blind_fallback import redirect_available  # noqa: E402
from kzt import PY, ServerProcess, toml_str  # noqa: E402
from test_blind_security import CANARY, BlindSecurityBase  # noqa: E402

# An agent that gets a request approved, reads the answer (the server echoes what it
# got), then searches every readable mapping of its own memory for the value.
APPROVED_THEN_LOOK = r'''
import http.client, os, re, ssl, sys
c = http.client.HTTPSConnection("localhost", int(sys.argv[1]), context=ssl.create_default_context(), timeout=60)
c.request("GET", "/v1/approved", headers={"Authorization": "Bearer " + os.environ["API_KEY"]})
r = c.getresponse()
body = r.read()
print("status", r.status, flush=True)
# The value arrives shifted by one in every byte, and each region is shifted the same way
# before the search: the search itself never puts the value in memory.
needle = os.environ["KZT_NEEDLE_SHIFTED"].encode()
shift = bytes((b + 1) % 256 for b in range(256))
found = False
with open("/proc/self/maps") as f, open("/proc/self/mem", "rb", buffering=0) as mem:
    for line in f:
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) r", line)
        if not m or "[vvar]" in line:
            continue
        try:
            mem.seek(int(m.group(1), 16))
            if needle in mem.read(int(m.group(2), 16) - int(m.group(1), 16)).translate(shift):
                found = True
        except (OSError, ValueError, OverflowError):
            pass
print("memory searched", flush=True)
if found:
    print("VALUE IN MEMORY", flush=True)
'''

GUESS = "kzCANARY/7f3a+9c1e_5b2d4f6a8c0e.d1?"   # the value's length, one character off


class BrokerImpersonationTest(BlindSecurityBase):
    def setUp(self):
        super().setUp()
        self.assertTrue(os.access(PROBE, os.X_OK), "the broker protocol client is not built: " + PROBE)

    def test_redact_guesses_are_audited_and_the_connection_closed(self):
        self.assertEqual(len(GUESS), len(CANARY))
        self.bind()
        r = self.run_ok('"%s" --socket "$KZ_BROKER" --op redact --data "%s" --vary --count 20 --host localhost'
                        % (PROBE, GUESS))
        replies, closed = parse_probe(r.stdout)
        self.assertTrue(replies, "the probe got no answer at all:\n" + r.stdout[-2000:])
        self.assertFalse(any(x["decision"] == "allow" for x in replies), "a guess was confirmed")
        self.assertEqual(len(replies), 16, "the broker must answer at most 16 misses on a connection:\n" + r.stdout)
        self.assertEqual(closed, 16, "the broker must close the connection after 16 misses:\n" + r.stdout)

        misses = [x for x in self.audit_events("redact", decision="refuse") if "kz_broker_probe" in x.get("exe", "")]
        self.assertEqual(len(misses), 16, "every redact miss must be audited:\n" + self.audit_dump())
        for m in misses:
            self.assertEqual(m.get("host"), "localhost")
            self.assertIn("pid", m)
            self.assertRegex(m.get("reason", ""), r"redact miss \d+ of 16")
        self.assertIn("connection closed", misses[-1]["reason"])
        with open(self.audit_path) as f:
            log = f.read()
        self.assertNotIn(GUESS[:-1], log, "the guessed bytes must not be in the audit log")

    def test_config_mode_proxy_takes_the_broker_out_of_the_agents_reach(self):
        ok, why = redirect_available("ebpf" if os.geteuid() == 0 else "seccomp")
        if not ok:
            print("SKIP: no redirector for the proxy: %s" % why)
            self.skipTest(why)
        port, rec = self.echo_server("tls")
        self.blind_config({"API_KEY": {"ref": "KZT_API_KEY_SRC", "hosts": ["localhost"]}},
                          extra='mode = "proxy"\nproxy_ports = [%d]\n' % port)
        r = self.run_ok('echo "--- probe"; "%s" --socket "${KZ_BROKER:-/nonexistent}" --op swap --data "$API_KEY" '
                        '--host localhost --chain "%s"; ' % (PROBE, self.ca["server"]) +
                        # No --cacert: the proxy's CA reaches curl through the run's trust bundle.
                        'curl -sS --fail --max-time 20 -H "Authorization: Bearer $API_KEY" '
                        'https://localhost:%d/v1/proxy-mode' % port)
        env = r.stdout.split("--- client output")[0]
        self.assertNotIn("KZ_BROKER", env, '[blind] mode = "proxy" must not give the agent a broker socket')
        # No shim swaps: with the sensors on it is preloaded as their witness only.
        self.assertNotIn("KZ_PRELOAD=", env, '[blind] mode = "proxy" must not load the swapping shim')
        if "LD_PRELOAD=" in env:
            self.assertIn("KZ_WITNESS=", env, '[blind] mode = "proxy" loaded the shim for something but witnessing')
        replies, closed = parse_probe(r.stdout.split("--- probe")[1])
        self.assertEqual((replies, closed), ([], 0), "the agent reached a broker:\n" + r.stdout[-2000:])
        self.assertEqual(self.audit_events("run.start")[0].get("mode"), "blind-proxy")
        self.assertSwapped(self.one_record(rec, "/v1/proxy-mode"))
        self.assertAudited("swap", decision="allow", secret="API_KEY", via="proxy")

    def test_an_approval_in_proxy_mode_never_gives_the_agent_the_value(self):
        # approve = "every" and an approver that says yes to everything: under the proxy
        # the approved request is sent by kz, and the agent, which asks the broker (there
        # is none), makes the approved request and then searches its own memory, never
        # holds the value. (In shim mode the approved value reaches the asking process:
        # the documented limit this mode closes.)
        ok, why = redirect_available("ebpf" if os.geteuid() == 0 else "seccomp")
        if not ok:
            print("SKIP: no redirector for the proxy: %s" % why)
            self.skipTest(why)
        port, rec = self.echo_server("tls")
        hook = ServerProcess("approval_webhook.py", "--cert", self.ca["server"], "--key", self.ca["server_key"],
                             "--answers", "approve", "--record", os.path.join(self.srv, "asks.jsonl"))
        self.addCleanup(hook.stop)
        self.config("\n".join([
            "[secrets.API_KEY]", 'provider = "env"', 'ref = "KZT_API_KEY_SRC"', 'hosts = ["localhost"]',
            'approve = "every"', "", "[blind]", "ca_file = %s" % toml_str(self.ca["ca"]), 'mode = "proxy"',
            "proxy_ports = [%d]" % port, ""]))
        agent = self.write("approved_then_look.py", APPROVED_THEN_LOOK)
        r = self.run_ok('echo "--- probe"; "%s" --socket "${KZ_BROKER:-/nonexistent}" --op swap --data "$API_KEY" '
                        '--host localhost --chain "%s"; echo "--- agent"; %s %s %d'
                        % (PROBE, self.ca["server"], PY, agent, port),
                        flags=["--approve-via", "https://localhost:%d/approve" % hook.port],
                        env=dict(self.kenv, KZT_NEEDLE_SHIFTED="".join(chr((ord(c) + 1) % 256) for c in CANARY)))
        replies, closed = parse_probe(r.stdout.split("--- probe")[1].split("--- agent")[0])
        self.assertEqual((replies, closed), ([], 0), "the agent reached a broker:\n" + r.stdout[-2000:])
        self.assertIn("status 200", r.stdout)
        self.assertIn("memory searched", r.stdout)
        self.assertNotIn("VALUE IN MEMORY", r.stdout)
        self.assertSwapped(self.one_record(rec, "/v1/approved"))
        self.assertAudited("approve", decision="asked", secret="API_KEY")
        self.assertAudited("approve", decision="approved", secret="API_KEY")
        swap = self.assertAudited("swap", decision="allow", secret="API_KEY", via="proxy")[0]
        self.assertIn("approved by webhook", swap["reason"])

    def test_blind_shim_on_the_command_line_overrides_the_config_mode(self):
        self.blind_config({"API_KEY": {"ref": "KZT_API_KEY_SRC", "hosts": ["localhost"]}}, extra='mode = "proxy"\n')
        r = self.run_ok("true", flags=["--blind=shim"])
        self.assertIn("KZ_BROKER=", r.stdout.split("--- client output")[0])
        self.assertEqual(self.audit_events("run.start")[0].get("mode"), "blind")


if __name__ == "__main__":
    unittest.main()

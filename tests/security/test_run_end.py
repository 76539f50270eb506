"""Issue 15, class 11: a daemon that outlives the run.

The agent double-forks a daemon (setsid, stdio closed) that opens its own TLS
connection, gets a connection grant while kz runs, and then keeps writing the token on
that granted connection. When the run ends:
- by default kz ends the run's surviving processes (SIGTERM, then SIGKILL after 1 s) and
  lists them in run.stop; the daemon is gone and the server gets nothing more;
- with --keep-survivors the daemon lives on and run.stop names it, but kz's broker is
  gone: the daemon's shim drops its grants and sends the token unchanged.
Either way the server never receives the value after the run's end."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from agent_kit import PY, AGENT_CONTROL, Control, finish, start_blind  # noqa: E402
from test_blind_security import CANARY, BlindSecurityBase  # noqa: E402

DAEMON = r'''
import http.client, os, ssl, sys
port, ca, ctl_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
if sys.argv[4:] == ["stubborn"]:
    import signal
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
# The agent (the command) ends only once the daemon holds its grant: the run then ends
# with a granted daemon alive.
ready_r, ready_w = os.pipe()
if os.fork() > 0:
    os.close(ready_w)
    os.read(ready_r, 1)
    os._exit(0)
os.close(ready_r)
os.setsid()
if os.fork() > 0:
    os._exit(0)
devnull = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(devnull, fd)
CONTROL
ctx = ssl.create_default_context(cafile=ca)
c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=20)
def get(path):
    c.request("GET", path, headers={"Authorization": "Bearer " + os.environ["API_KEY"]})
    r = c.getresponse()
    r.read()
    return r.status
status = get("/v1/daemon/during-run")
say({"pid": os.getpid(), "status": status})
os.write(ready_w, b"x")
os.close(ready_w)
i = 0
while True:
    if wait() != "go":
        break
    i += 1
    try:
        say({"status": get("/v1/daemon/after-run-%d" % i)})
    except Exception as e:
        say({"error": type(e).__name__})
'''


def daemon_program(ctl_path):
    control = AGENT_CONTROL.replace("CONTROL_PATH", repr(ctl_path))
    return DAEMON.replace("CONTROL\n", control)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class RunEndTest(BlindSecurityBase):
    def start(self, flags=(), stubborn=False):
        self.bind()
        self.port, self.rec = self.echo_server("tls")
        self.ctl = Control(os.path.join(self.dir, "ctl.sock"))
        self.addCleanup(self.ctl.close)
        daemon = self.write("daemon.py", daemon_program(self.ctl.path))
        self.run = start_blind(self, [PY, daemon, str(self.port), self.ca["ca"], self.ctl.path] +
                               (["stubborn"] if stubborn else []), self.kenv, flags=flags)
        first = self.ctl.hear(self.run)
        self.assertEqual(first.get("status"), 200, first)
        self.pid = first["pid"]
        self.addCleanup(self.kill_daemon)
        # The run ends when the agent (the daemon's grandparent) has exited.
        code, out, err = finish(self.run)
        self.assertEqual(code, 0, "kz exit %d\nstdout:\n%s\nstderr:\n%s" % (code, out[-3000:], err[-3000:]))
        self.assertNotExposed(out + err, CANARY, "kz output")
        self.err = err
        self.assertSwapped(self.one_record(self.rec, "/v1/daemon/during-run"))
        self.assertTrue(self.audit_events("swap", decision="allow", grant="connection"), self.audit_dump())

    def kill_daemon(self):
        if alive(self.pid):
            os.kill(self.pid, 9)

    def stop_record(self):
        stops = self.audit_events("run.stop")
        self.assertEqual(len(stops), 1, self.audit_dump())
        return stops[0]

    def after_run(self):
        return [r for r in self.records(self.rec, "/v1/daemon/after-run")]

    def test_survivors_are_ended_with_the_run(self):
        self.start()
        self.assertFalse(alive(self.pid), "the daemon outlived the run")
        survivors = self.stop_record().get("survivors", [])
        self.assertTrue(any(s.startswith("%d " % self.pid) for s in survivors),
                        "run.stop does not name the daemon: %r" % survivors)
        # Its control connection is closed: it can do nothing more.
        try:
            self.ctl.answer()
            line = self.ctl.file.readline()
        except OSError:
            line = ""
        self.assertEqual(line, "", "the daemon still answers after the run")
        self.assertEqual(self.after_run(), [])
        self.assertIn(str(self.pid), self.err, "kz must say which processes it ended")

    def test_a_survivor_that_ignores_sigterm_is_killed(self):
        self.start(stubborn=True)
        self.assertFalse(alive(self.pid), "a daemon that ignores SIGTERM outlived the run")
        survivors = self.stop_record().get("survivors", [])
        self.assertIn("%d " % self.pid, " ".join(survivors))
        self.assertTrue(any(s.startswith("%d " % self.pid) and "(killed)" in s for s in survivors), survivors)
        self.assertEqual(self.after_run(), [])

    def test_kept_survivors_swap_nothing_after_the_run(self):
        self.start(flags=["--keep-survivors"])
        self.assertTrue(alive(self.pid), "--keep-survivors must leave the daemon running")
        survivors = self.stop_record().get("survivors", [])
        self.assertTrue(any(s.startswith("%d " % self.pid) and "kept" in s for s in survivors),
                        "run.stop does not name the kept daemon: %r" % survivors)
        for _ in range(3):
            self.ctl.answer("go")
            self.ctl.hear()
        recs = self.after_run()
        self.assertEqual(len(recs), 3, "the daemon's requests after the run did not reach the server")
        for r in recs:
            self.assertNotEqual(self.auth_of(r), "Bearer " + CANARY,
                                "a survivor swapped the value after the run ended: %s" % r["path"])
        self.ctl.answer("stop")


if __name__ == "__main__":
    unittest.main()

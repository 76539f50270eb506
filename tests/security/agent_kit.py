"""Shared pieces of the broker-lifetime security tests (issue 15, classes 1, 4, 5, 11):
a blind run kept in the background while the test plays the attacker, a control socket
that the agent program and the test use to take turns (no sleeps), and the broker
protocol client (tests/support/broker_probe.cpp) that plays the agent's own program."""
import json
import os
import re
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from kzt import KZ, PY  # noqa: E402,F401

PROBE = os.environ.get("KZ_BROKER_PROBE") or os.path.join(os.path.dirname(os.path.abspath(KZ)), "kz_broker_probe")

# The agent's half of the control channel, pasted into each agent program: say(obj)
# sends one JSON line to the test, wait() blocks until the test answers one line.
AGENT_CONTROL = r'''
import json as _json, socket as _socket
_ctl = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
_ctl.connect(CONTROL_PATH)
_ctl_file = _ctl.makefile("rw")
def say(obj):
    _ctl_file.write(_json.dumps(obj) + "\n")
    _ctl_file.flush()
def wait():
    return _json.loads(_ctl_file.readline() or "null")
'''


def agent_program(body, control_path):
    """An agent program: the control channel, then body."""
    return AGENT_CONTROL.replace("CONTROL_PATH", repr(control_path)) + body


def _output_of(run):
    if run is None:
        return ""
    run.kill()
    out, err = run.communicate()
    return "\nkz stdout:\n%s\nkz stderr:\n%s" % (out[-3000:], err[-3000:])


class Control:
    """The test's half: accepts the agent's connection; hear() reads one JSON line,
    answer() sends one. Every wait has a timeout, so a dead agent fails the test."""

    def __init__(self, path, timeout=90):
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(4)
        self.listener.settimeout(timeout)
        self.timeout = timeout
        self.conn = None
        self.file = None

    def hear(self, run=None):
        if self.conn is None:
            try:
                self.conn, _ = self.listener.accept()
            except OSError as e:
                raise AssertionError("the agent program never reached the test (%s)%s" % (e, _output_of(run)))
            self.conn.settimeout(self.timeout)
            self.file = self.conn.makefile("rw")
        line = self.file.readline()
        if not line:
            raise AssertionError("the agent program closed its control channel without a word")
        return json.loads(line)

    def answer(self, obj="go"):
        self.file.write(json.dumps(obj) + "\n")
        self.file.flush()

    def close(self):
        for s in (self.file, self.conn, self.listener):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass


def start_blind(case, cmd, env, flags=()):
    """`kz run --blind --audit-log case.audit_path FLAGS -- CMD` in the background."""
    p = subprocess.Popen([KZ, "run", "--blind", "--audit-log", case.audit_path, *flags, "--", *cmd],
                         cwd=case.dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    case.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
    return p


def finish(p, timeout=120):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def parse_probe(text):
    """The probe's lines: [{"i", "decision", "reason", "data"}], and whether the broker
    closed the connection (and after how many answers)."""
    replies, closed = [], None
    for line in text.splitlines():
        m = re.match(r"reply (\d+) decision=(\w+) reason=(.*) data_hex=([0-9a-f]*)$", line)
        if m:
            replies.append({"i": int(m.group(1)), "decision": m.group(2), "reason": m.group(3),
                            "data": bytes.fromhex(m.group(4))})
            continue
        m = re.match(r"closed after (\d+)$", line)
        if m:
            closed = int(m.group(1))
    return replies, closed

"""Approvals on the terminal that started `kz run --blind` (issue 19, part 5): kz opens
/dev/tty itself and prompts with the secret, host, method and path; the person types the
one-time code the prompt shows (or n), or answers with `kz approve CODE` from another
shell. The test is that person, on a pseudo-terminal (Python's pty module).

The attacker test: the agent shares the terminal (kz's stdout is a pipe, so the command
keeps kz's session and terminal as its stdin) and tries to answer its own prompt: it
writes "y" to its stdin and stdout, pushes "y", guesses and the word "approve" into the
terminal's input queue with TIOCSTI (its controlling terminal, kz's), and runs `kz approve`.
None of it approves; the held request fails closed.
"""
import fcntl
import os
import pty
import re
import select
import subprocess
import sys
import termios
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from kzt import KZ, PY  # noqa: E402
from test_approvals import REAL, ApprovalTestCase  # noqa: E402

PROMPT = re.compile(rb"type ([a-z2-9]{8}) and Enter to approve")

ATTACKER = r'''
import fcntl, os, subprocess, sys, termios, threading, time
kz, agent, port, ca = sys.argv[1:5]
held = subprocess.Popen([sys.executable, agent, port, ca, "GET:/held:API_KEY"])
results = []
def inject(path, text):
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return
    try:
        for ch in text.encode():
            fcntl.ioctl(fd, termios.TIOCSTI, bytes([ch]))
        results.append("injected " + path)
    except OSError as e:
        results.append("tiocsti refused " + path + " " + str(e.errno))
    finally:
        os.close(fd)
# Until the held request is answered: every trick, again and again (the prompt flushes
# what came before it, so an attacker keeps trying).
while held.poll() is None:
    print("y", flush=True)
    try:
        os.write(0, b"y\n")
    except OSError:
        pass
    # Its controlling terminal is kz's terminal. (Only that one: the test machine's other
    # terminals belong to other people.)
    for path in ["/dev/tty"]:
        inject(path, "y\r")
        inject(path, "approve\r")
        inject(path, "aaaaaaaa\r")
    for args in (["approve"], ["approve", "aaaaaaaa"]):
        r = subprocess.run([kz, *args], capture_output=True, text=True)
        results.append("kz approve: " + (r.stdout + r.stderr).strip())
    time.sleep(0.2)
held.wait()
print("\n".join(sorted(set(results))), flush=True)
print("attacker-done", flush=True)
'''


class TerminalApprovalTest(ApprovalTestCase):
    def env(self, **extra):
        # The approval sockets under the test's own directory (XDG_RUNTIME_DIR).
        extra.setdefault("XDG_RUNTIME_DIR", self.dir)
        extra.setdefault("TERM", "xterm")
        return super().env(**extra)

    def on_terminal(self, argv, react, stdout_pipe=False, limit=90):
        """Runs kz on a new pseudo-terminal; react(code, write) is called once the prompt
        shows its code. Returns (exit code, terminal output, piped stdout)."""
        rfd = wfd = None
        if stdout_pipe:
            rfd, wfd = os.pipe()
        pid, fd = pty.fork()
        if pid == 0:
            os.chdir(self.dir)
            if wfd is not None:
                os.dup2(wfd, 1)
            os.execve(KZ, [KZ, *argv], self.env(KZ_TEST_REAL=REAL))
        if wfd is not None:
            os.close(wfd)
        out, piped = b"", b""
        reacted = False
        deadline = time.monotonic() + limit
        fds = [fd] + ([rfd] if rfd is not None else [])
        while fds and time.monotonic() < deadline:
            r, _, _ = select.select(fds, [], [], 1.0)
            for f in r:
                try:
                    chunk = os.read(f, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    fds.remove(f)
                    continue
                if f == fd:
                    out += chunk
                else:
                    piped += chunk
            m = PROMPT.search(out)
            if m and not reacted:
                reacted = True
                react(m.group(1).decode(), lambda b: os.write(fd, b))
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        if rfd is not None:
            os.close(rfd)
        return os.waitstatus_to_exitcode(status), out.decode(errors="replace"), piped.decode(errors="replace")

    def blind_argv(self, *requests, timeout="60s"):
        return ["run", "--blind", "--audit-log", self.audit_path, "--approve-timeout", timeout, "--",
                PY, self.agent, str(self.port), self.ca["ca"], *requests]

    def test_typing_the_code_approves(self):
        self.configure("true", extra_secret=False)
        code, out, _ = self.on_terminal(self.blind_argv("POST:/v1/charges:API_KEY"),
                                        lambda c, write: write(c.encode() + b"\r"))
        self.assertEqual(code, 0, out)
        # The prompt names the secret, the method, the host and the path.
        self.assertIn("approval needed: API_KEY for POST https://localhost/v1/charges", out)
        self.assertIn("done POST /v1/charges 200", out)
        self.assertEqual(self.sent("/v1/charges"), ["Bearer " + REAL])
        rec = self.approvals(decision="approved")
        self.assertEqual(len(rec), 1, self.audit_dump())
        self.assertEqual((rec[0]["channel"], rec[0]["by"]), ("tty", "terminal"))
        self.assertNotIn(REAL, out)

    def test_n_denies(self):
        self.configure("true", extra_secret=False)
        code, out, _ = self.on_terminal(self.blind_argv("GET:/v1/charges:API_KEY"), lambda c, write: write(b"n\r"))
        self.assertEqual(code, 0, out)
        got = self.sent("/v1/charges")
        self.assertEqual(len(got), 1)
        self.assertNotIn(REAL, got[0])
        self.assertEqual(len(self.approvals(decision="denied", channel="tty")), 1, self.audit_dump())

    def test_kz_approve_from_another_shell(self):
        self.configure("true", extra_secret=False)
        answers = []

        def approve(c, write):
            r = subprocess.run([KZ, "approve", c], env=self.env(), capture_output=True, text=True, timeout=30)
            answers.append(r)

        code, out, _ = self.on_terminal(self.blind_argv("GET:/v1/charges:API_KEY"), approve)
        self.assertEqual(code, 0, out)
        self.assertEqual(answers[0].returncode, 0, answers[0].stdout + answers[0].stderr)
        self.assertIn("approved: API_KEY for GET https://localhost/v1/charges", answers[0].stdout)
        self.assertEqual(self.sent("/v1/charges"), ["Bearer " + REAL])
        rec = self.approvals(decision="approved")
        self.assertEqual(rec[0]["channel"], "socket")
        self.assertRegex(rec[0]["by"], r"^kz approve \(pid \d+\)$")

    def test_timeout_on_the_terminal_fails_closed(self):
        self.configure("true", extra_secret=False)
        code, out, _ = self.on_terminal(self.blind_argv("GET:/v1/charges:API_KEY", timeout="1500ms"),
                                        lambda c, write: None)
        self.assertEqual(code, 0, out)
        self.assertNotIn("Bearer " + REAL, self.sent("/v1/charges"))
        self.assertEqual(len(self.approvals(decision="timeout")), 1, self.audit_dump())

    def test_the_agent_cannot_approve_its_own_request(self):
        self.configure("true", extra_secret=False)
        attacker = self.write("attacker.py", ATTACKER)
        argv = ["run", "--blind", "--audit-log", self.audit_path, "--approve-timeout", "8s", "--",
                PY, attacker, KZ, self.agent, str(self.port), self.ca["ca"]]
        # Nobody answers: only the agent's tricks could.
        code, out, piped = self.on_terminal(argv, lambda c, write: None, stdout_pipe=True)
        self.assertEqual(code, 0, out + piped)
        self.assertIn("attacker-done", piped)
        self.assertIn("approval needed: API_KEY", out)
        # The agent reached the terminal's input queue (where the kernel lets it: root, or
        # dev.tty.legacy_tiocsti), and the run's socket answered it.
        self.assertTrue("injected /dev/tty" in piped or "tiocsti refused /dev/tty" in piped, piped)
        self.assertIn("kz approve: refused: a process of the run cannot answer its own approvals", piped)
        self.assertNotIn("Bearer " + REAL, self.sent("/held"))
        self.assertFalse(self.approvals(decision="approved"), self.audit_dump())
        ends = self.approvals(secret="API_KEY")
        self.assertIn(ends[-1]["decision"], ("denied", "timeout"), self.audit_dump())
        self.assertFalse(self.audit_events("swap", secret="API_KEY", decision="allow"))


if __name__ == "__main__":
    unittest.main()

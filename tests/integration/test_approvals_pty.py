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
import shutil
import socket
import subprocess
import sys
import termios
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from kzt import KZ, PY  # noqa: E402
from test_approvals import REAL, ApprovalTestCase  # noqa: E402

PROMPT = re.compile(rb"type ([a-z2-9]{8}) and Enter to approve")
RUN = re.compile(rb"kz approve --run ([0-9]+-[0-9a-f]+) ")

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
    # The run's socket is in a directory of this user: the agent finds its name there.
    d = os.path.join(os.environ["XDG_RUNTIME_DIR"], "kz-approvals-%d" % os.getuid())
    runs = [n[:-5] for n in os.listdir(d) if n.endswith(".sock")] if os.path.isdir(d) else []
    for args in [["approve", "--run", r, "aaaaaaaa"] for r in runs] + [["approve", "--run", r] for r in runs]:
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
                r = RUN.search(out)
                self.run_name = r.group(1).decode() if r else None
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
            r = subprocess.run([KZ, "approve", "--run", self.run_name, c], env=self.env(), capture_output=True,
                               text=True, timeout=30)
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
        self.assertIn("kz approve: refused: a process of the run (or one that exited) cannot answer", piped)
        self.assertNotIn("Bearer " + REAL, self.sent("/held"))
        self.assertFalse(self.approvals(decision="approved"), self.audit_dump())
        ends = self.approvals(secret="API_KEY")
        self.assertIn(ends[-1]["decision"], ("denied", "timeout"), self.audit_dump())
        self.assertFalse(self.audit_events("swap", secret="API_KEY", decision="allow"))

    def test_the_prompt_shows_the_query_and_escapes_the_program_name(self):
        """The request target comes from the agent: the prompt shows all of it, query
        included (where the dangerous part of a request often is), and says the body is
        not covered. The program's name comes from the agent too (it names the file it
        runs): escape sequences in it, which could move the cursor and rewrite the prompt,
        are shown as \\xNN."""
        self.configure("true", extra_secret=False)
        raw = self.write("raw.py", RAW)
        # /proc/PID/exe resolves links: the agent's interpreter is a copy under that name.
        evil = os.path.join(self.dir, "py\x1b[1A\x1b[2Kok")
        shutil.copy(os.path.realpath(PY), evil)
        target = "/v1/charges?to=acct_evil&amount=100000"
        argv = ["run", "--blind", "--audit-log", self.audit_path, "--approve-timeout", "60s", "--",
                evil, raw, str(self.port), self.ca["ca"], target]
        code, out, piped = self.on_terminal(argv, lambda c, write: write(b"n\r"), stdout_pipe=True)
        self.assertEqual(code, 0, out + piped)
        self.assertIn("approval needed: API_KEY for GET https://localhost" + target, out)
        self.assertIn("the request body is not shown and not covered", out)
        self.assertIn("py\\x1b[1A\\x1b[2Kok", out)
        prompt = out[out.index("approval needed"):out.index("to approve")]
        self.assertNotIn("\x1b", prompt)
        self.assertEqual(len(self.approvals(decision="denied", channel="tty")), 1, self.audit_dump())

    def test_terminal_controls_in_the_target_never_reach_the_prompt(self):
        """A request target carrying escape sequences (which could move the cursor and
        rewrite the prompt: ESC, or the one-byte C1 CSI) or other bytes outside printable
        ASCII is not a request kz can identify: the token goes unswapped, audited, and no
        prompt is drawn at all. (The prompt also escapes what it shows, prompt_text_test.)"""
        self.configure("true", extra_secret=False)
        raw = self.write("raw.py", RAW)
        for target in ["/v1/charges?x=\x1b[1A\x1b[2Kok", "/v1/charges?x=\u009b1A"]:
            with self.subTest(target=target):
                argv = ["run", "--blind", "--audit-log", self.audit_path, "--approve-timeout", "60s", "--",
                        PY, raw, str(self.port), self.ca["ca"], target]
                code, out, piped = self.on_terminal(argv, lambda c, write: write(b"n\r"), stdout_pipe=True)
                self.assertEqual(code, 0, out + piped)
                self.assertIn("raw-done", piped)
                self.assertNotIn("approval needed", out)
                self.assertNotIn("\x1b", out)
                refused = [r for r in self.audit_events("swap", secret="API_KEY", decision="refuse")
                           if "could not be identified" in r.get("reason", "")]
                self.assertTrue(refused, self.audit_dump())
        self.assertNotIn("Bearer " + REAL, self.sent("/v1/charges"))
        self.assertFalse(self.approvals(), self.audit_dump())

    def test_the_commands_output_waits_while_the_prompt_is_up(self):
        """pty mode: the command writes cursor movements and a fake prompt while its request
        is held; none of it reaches the terminal before the prompt is answered."""
        self.configure("true", extra_secret=False)
        fifo = os.path.join(self.dir, "wrote.fifo")
        os.mkfifo(fifo)
        painter = self.write("painter.py", PAINTER)
        argv = self.blind_argv("GET:/v1/charges:API_KEY")
        argv[argv.index(PY) + 1:argv.index(PY) + 2] = [painter, fifo, self.agent]

        def answer_after_painting(c, write):
            # The command has written three fake prompts since the real one showed.
            with open(fifo) as f:
                for _ in range(3):
                    self.assertTrue(f.readline())
            write(b"n\r")

        code, out, _ = self.on_terminal(argv, answer_after_painting)
        self.assertEqual(code, 0, out)
        shown = out.index("approval needed")
        answered = out.index("n\r\n", shown)
        self.assertIn("FAKE-PROMPT", out[answered:])
        self.assertNotIn("FAKE-PROMPT", out[shown:answered])

    def test_planted_sockets_never_see_the_code(self):
        """The agent (same user) binds sockets in the approvals directory: one under a name
        of its own, one in place of the run's socket (unlinked). `kz approve` sends only to
        the socket the prompt names, and only when its listener is kz's pid: the agent's
        listeners never receive a code. (Before: it sent the code to every *.sock there
        and read each reply without a timeout.)"""
        self.configure("true", extra_secret=False)
        planted = []

        def plant(path):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(path)
            s.listen(4)
            planted.append(s)

        answers = []

        def attack_then_answer(c, write):
            d = os.path.join(self.dir, "kz-approvals-%d" % os.getuid())
            plant(os.path.join(d, "%d-00ff00ff00ff00ff.sock" % os.getpid()))
            real = os.path.join(d, self.run_name + ".sock")
            os.unlink(real)
            plant(real)
            r = subprocess.run([KZ, "approve", "--run", self.run_name, c], env=self.env(),
                               capture_output=True, text=True, timeout=30)
            answers.append(r)
            write(b"n\r")

        code, out, _ = self.on_terminal(self.blind_argv("GET:/v1/charges:API_KEY"), attack_then_answer)
        self.assertEqual(code, 0, out)
        self.assertEqual(len(answers), 1)
        for r in answers:
            self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("is not held by kz", r.stderr)
        # What reached the agent's listeners: nothing (a connection at most, never a line).
        for s in planted:
            s.settimeout(0)
            try:
                conn, _ = s.accept()
            except BlockingIOError:
                continue
            conn.settimeout(2)
            try:
                self.assertEqual(conn.recv(4096), b"")
            finally:
                conn.close()
        for s in planted:
            s.close()
        self.assertEqual(len(self.approvals(decision="denied", channel="tty")), 1, self.audit_dump())

    def test_a_connection_handed_to_an_orphan_is_refused(self):
        """A process of the run connects, forks, and exits (reaped, its pid gone); its child
        writes "approve CODE" on the inherited connection. The peer kz sees is dead: refused."""
        self.configure("true", extra_secret=False)
        fifo = os.path.join(self.dir, "code.fifo")
        os.mkfifo(fifo)
        attacker = self.write("orphan.py", ORPHAN)
        argv = ["run", "--blind", "--audit-log", self.audit_path, "--approve-timeout", "6s", "--",
                PY, attacker, fifo, self.agent, str(self.port), self.ca["ca"]]

        def feed(c, write):
            with open(fifo, "w") as f:
                f.write("%s %s\n" % (self.run_name, c))

        code, out, piped = self.on_terminal(argv, feed, stdout_pipe=True)
        self.assertEqual(code, 0, out + piped)
        self.assertIn("orphan said: refused: a process of the run (or one that exited)", piped)
        self.assertNotIn("Bearer " + REAL, self.sent("/held"))
        self.assertFalse(self.approvals(decision="approved"), self.audit_dump())


# The agent sends its request target byte for byte (http.client refuses control bytes).
RAW = r'''
import os, socket, ssl, sys
port, ca, target = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
with socket.create_connection(("localhost", port)) as s:
    with ctx.wrap_socket(s, server_hostname="localhost") as t:
        t.sendall(("GET " + target + " HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
                   + os.environ["API_KEY"] + "\r\nConnection: close\r\n\r\n").encode())
        while t.recv(4096):
            pass
print("raw-done", flush=True)
'''


# Starts the held request, then paints over the terminal until it is answered, telling
# the test (a FIFO) after each paint.
PAINTER = r'''
import os, subprocess, sys
fifo, agent = sys.argv[1:3]
held = subprocess.Popen([sys.executable, agent, *sys.argv[3:]])
fd = os.open(fifo, os.O_WRONLY)   # until the test (which saw the prompt) listens
while held.poll() is None:
    os.write(1, b"\x1b[2A\x1b[2KFAKE-PROMPT type aaaaaaaa to approve\n")
    try:
        os.write(fd, b"painted\n")
    except BrokenPipeError:
        break
os.close(fd)
held.wait()
'''


ORPHAN = r'''
import os, socket, subprocess, sys
fifo, agent, port, ca = sys.argv[1:5]
held = subprocess.Popen([sys.executable, agent, port, ca, "GET:/held:API_KEY"])
with open(fifo) as f:
    run, code = f.read().split()
path = os.path.join(os.environ["XDG_RUNTIME_DIR"], "kz-approvals-%d" % os.getuid(), run + ".sock")
go_r, go_w = os.pipe()
said_r, said_w = os.pipe()
c = os.fork()
if c == 0:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    if os.fork() == 0:
        os.close(go_w)
        os.read(go_r, 1)   # until C is reaped
        s.sendall(("approve " + code + "\n").encode())
        reply = b""
        while True:
            b = s.recv(512)
            if not b:
                break
            reply += b
        os.write(said_w, reply)
        os._exit(0)
    os._exit(0)
os.waitpid(c, 0)
os.write(go_w, b"x")
os.close(go_w)
os.close(said_w)
said = b""
while True:
    b = os.read(said_r, 512)
    if not b:
        break
    said += b
print("orphan said:", said.decode().strip(), flush=True)
held.wait()
print("attacker-done", flush=True)
'''


if __name__ == "__main__":
    unittest.main()

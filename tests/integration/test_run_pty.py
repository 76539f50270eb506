"""kz run when stdout is a terminal: the child runs on a pseudo-terminal (isatty is
true, colours and prompts work) and its output is still masked."""
import os
import pty
import select
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from kzt import KZ, KzTestCase  # noqa: E402

SECRET = "pty-secret-value-0042"


class PtyTest(KzTestCase):
    def run_on_terminal(self, args, send=b""):
        pid, fd = pty.fork()
        if pid == 0:
            os.chdir(self.dir)
            os.execve(KZ, [KZ, *args], self.env(TERM="xterm"))
        out = b""
        sent = False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 1.0)
            if not r:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:   # EIO: the terminal's other side closed
                break
            if not chunk:
                break
            out += chunk
            if send and not sent and b"ready>" in out:
                os.write(fd, send)
                sent = True
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        return os.waitstatus_to_exitcode(status), out.decode(errors="replace")

    def test_child_sees_a_terminal_and_output_is_masked(self):
        self.config('[secrets]\nS = { provider = "exec", ref = "printf %s" }\n' % SECRET)
        code, out = self.run_on_terminal(
            ["run", "--", "sh", "-c", 'test -t 1 && echo "tty:yes"; printf "\\033[31m%s\\033[0m\\n" "$S"'])
        self.assertEqual(code, 0, out)
        self.assertIn("tty:yes", out)
        self.assertIn("\x1b[31m<concealed by kz>\x1b[0m", out)
        self.assertNotIn(SECRET, out)

    def test_interactive_input_through_the_terminal(self):
        self.config('[secrets]\nS = { provider = "exec", ref = "printf %s" }\n' % SECRET)
        code, out = self.run_on_terminal(
            ["run", "--", "sh", "-c", 'test -t 0 && printf "ready>"; read line; echo "[$line|$S]"'],
            send=b"hello\r")
        self.assertEqual(code, 0, out)
        self.assertIn("[hello|<concealed by kz>]", out)
        self.assertNotIn(SECRET, out)

    def test_no_pty_flag_uses_pipes(self):
        self.config('[secrets]\nS = { provider = "exec", ref = "printf %s" }\n' % SECRET)
        code, out = self.run_on_terminal(["run", "--no-pty", "--", "sh", "-c", 'test -t 1 || echo "tty:no"'])
        self.assertEqual(code, 0, out)
        self.assertIn("tty:no", out)


if __name__ == "__main__":
    unittest.main()

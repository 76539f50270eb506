"""Canary: a secret value reaches the child's environment in standard mode, and nowhere
else: not kz's stdout/stderr (masked, in every encoding), not kz's own diagnostics at
any verbosity, not any file kz wrote, not the error messages of failures."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from kzt import KzTestCase, encodings  # noqa: E402

# Characters that percent-encoding and JSON escaping change, so every form differs.
CANARY = 'kz"CANARY/7f3a+9c1e 5b2d4f6a8c0e'

PRINT_ALL = (
    'import base64, json, os, sys, urllib.parse\n'
    'v = os.environ["CANARY"]\n'
    'assert v == %r, "child did not receive the value"\n'
    'forms = [v, base64.b64encode(v.encode()).decode(), base64.urlsafe_b64encode(v.encode()).decode(),\n'
    '         urllib.parse.quote(v, safe=""), json.dumps({"k": v}), v.encode().hex(),\n'
    '         "Authorization: Basic " + base64.b64encode(("user:" + v).encode()).decode()]\n'
    'for f in forms:\n'
    '    print("out", f)\n'
    '    print("err", f, file=sys.stderr)\n'
    'sys.stdout.write(v[:10]); sys.stdout.flush(); sys.stdout.write(v[10:] + "\\n")\n'
    'print("child-done")\n' % CANARY)


class CanaryTest(KzTestCase):
    def setUp(self):
        super().setUp()
        self.write("canary.txt", CANARY + "\n")
        self.config('[secrets]\n'
                    'CANARY = { provider = "file", ref = "canary.txt" }\n'
                    'OTHER = { provider = "exec", ref = "printf other-value-1234" }\n')
        self.script = self.write("print_all.py", PRINT_ALL)

    def scan_files(self):
        for path in self.files_under(self.dir):
            if path.endswith(("canary.txt", "print_all.py")):
                continue
            with open(path, "rb") as f:
                data = f.read().decode("latin-1")
            self.assertNoSecret(data, CANARY, "file " + path)

    def test_every_verbosity(self):
        for flags in ([], ["-q"], ["-v"], ["-vv"]):
            with self.subTest(flags=flags):
                r = self.kz(*flags, "run", "--", "/usr/bin/python3", self.script)
                self.assertEqual(r.returncode, 0, r.stderr.replace(CANARY, "<canary>"))
                self.assertIn("child-done", r.stdout)
                self.assertIn("<concealed by kz>", r.stdout)
                self.assertNoSecret(r.stdout, CANARY, "stdout %s" % flags)
                self.assertNoSecret(r.stderr, CANARY, "stderr %s" % flags)
        self.scan_files()

    def test_check_resolve(self):
        for flags in ([], ["-vv"]):
            r = self.kz(*flags, "check", "--resolve")
            self.assertEqual(r.returncode, 0)
            self.assertNoSecret(r.stdout + r.stderr, CANARY, "kz check --resolve %s" % flags)

    def test_failures_do_not_leak(self):
        # A run that fails after the canary resolved: every message is checked.
        self.config('[secrets]\n'
                    'CANARY = { provider = "file", ref = "canary.txt" }\n'
                    'BROKEN = { provider = "exec", ref = "echo oops >&2; exit 3" }\n'
                    'MISSING = { provider = "file", ref = "nope.txt" }\n')
        for flags in ([], ["-vv"]):
            r = self.kz(*flags, "run", "--", "true")
            self.assertEqual(r.returncode, 2)
            self.assertIn("BROKEN", r.stderr)
            self.assertIn("MISSING", r.stderr)
            self.assertNoSecret(r.stdout + r.stderr, CANARY, "failure output %s" % flags)
        # A command that cannot start.
        r = self.kz("-vv", "run", "--only", "CANARY", "--", "./not-there")
        self.assertEqual(r.returncode, 127)
        self.assertNoSecret(r.stdout + r.stderr, CANARY, "exec failure")
        self.scan_files()

    def test_encodings_helper_is_sane(self):
        self.assertEqual(len(set(encodings(CANARY).values())), 6)


if __name__ == "__main__":
    unittest.main()

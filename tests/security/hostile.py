"""Shared pieces of the tests/security/ tests: the secret and its canary value, a base
class over the integration helpers (kzt.py), C programs compiled at test time, and the
fallback proxy's availability (for the --blind=proxy variants)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from kzt import KZ, PY, BlindTestCase  # noqa: E402,F401

CANARY = "kzCANARY/9d1e+7a3c_2b4d6f8a0c1e.s5W"
PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs")


def compile_c(name, out_dir, libs=("-lssl", "-lcrypto")):
    """Builds programs/NAME.c against the system's TLS libraries (dynamically: the shim's
    hooks apply). Returns the path, or None with the compiler's message."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None, "no C compiler"
    out = os.path.join(out_dir, name)
    r = subprocess.run([cc, "-O2", "-Wall", "-pthread", "-o", out, os.path.join(PROGRAMS, name + ".c"), *libs],
                       capture_output=True, text=True, timeout=120)
    return (out, "") if r.returncode == 0 else (None, r.stderr[-2000:])


def compile_or_skip(name, out_dir, libs=("-lssl", "-lcrypto")):
    """compile_c for a test class: no compiler skips it, a program that does not build
    fails it."""
    out, why = compile_c(name, out_dir, libs)
    if out is None and why == "no C compiler":
        raise unittest.SkipTest(why)
    if out is None:
        raise RuntimeError("programs/%s.c does not build:\n%s" % (name, why))
    return out


class OneProgramCase(BlindTestCase):
    """Tests of one C program of programs/ (PROGRAM, built once per class with LIBS), run
    with API_KEY bound to localhost, its value the class's VALUE."""
    PROGRAM = None
    LIBS = ("-lssl", "-lcrypto", "-ldl")
    VALUE = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bindir = tempfile.mkdtemp(prefix="kz-sec-bin-")
        cls.prog = compile_or_skip(cls.PROGRAM, cls.bindir, cls.LIBS)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.bindir, True)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.kenv = self.env(KZT_API_KEY_SRC=self.VALUE)
        # No methods or paths: the broker grants reuse on the connection.
        self.blind_config({"API_KEY": {"ref": "KZT_API_KEY_SRC", "hosts": ["localhost"]}})


_doctor = None


def redirect_line():
    """kz doctor's redirect line for the redirector kz picks by default, or None."""
    global _doctor
    if _doctor is None:
        r = subprocess.run([KZ, "doctor"], capture_output=True, text=True, timeout=60)
        _doctor = r.stdout
    for name in ("ebpf", "seccomp"):
        for line in _doctor.splitlines():
            if line.startswith("redirect: %s " % name) and "available" in line and "unavailable" not in line:
                return name
    return None


class HostileBase(BlindTestCase):
    """A run with API_KEY (the canary) bound to localhost, optionally narrowed."""

    MODES = ("shim", "proxy")

    def setUp(self):
        super().setUp()
        self.kenv = self.env(KZT_API_KEY_SRC=CANARY)
        self.port, self.rec = self.echo_server("tls")

    def bind(self, **restrict):
        s = {"ref": "KZT_API_KEY_SRC", "hosts": ["localhost"]}
        s.update(restrict)
        self.blind_config({"API_KEY": s}, extra="proxy_ports = [%d]\n" % self.port)

    def mode_flags(self, mode):
        if mode == "shim":
            return []
        red = redirect_line()
        if red is None:
            print("SKIP: --blind=proxy needs a redirector; kz doctor shows none available")
            self.skipTest("no redirector for --blind=proxy")
        return ["--blind=proxy", "--redirector=" + red]

    def run_agent(self, mode, script, timeout=180):
        """Runs `sh -c script` as the agent; asserts kz and the script succeeded and that
        the value reached nothing the agent can read. Returns (result, token)."""
        r = self.run_blind("/bin/sh", "-c", "env; echo '--- agent output'; " + script,
                           flags=self.mode_flags(mode), env=self.kenv, timeout=timeout)
        self.assertEqual(r.returncode, 0, "kz exit %d\nstdout:\n%s\nstderr:\n%s\naudit:\n%s" % (
            r.returncode, r.stdout[-3000:], r.stderr[-3000:], self.audit_dump()))
        self.assertNotExposed(r.stdout + r.stderr, CANARY, "the agent's output")
        with open(self.audit_path) as f:
            self.assertNoSecret(f.read(), CANARY, "audit log")
        return r, self.tokens_in(r.stdout, "API_KEY")["API_KEY"]

    def valued(self, recs):
        """The requests that carried the real value (anywhere: headers, target, body)."""
        out = []
        for rec in recs:
            text = "%s %s %s" % (rec.get("target", ""), rec.get("headers", ""), rec.get("body", ""))
            if CANARY in text:
                out.append(rec)
        return out

    def swaps(self, decision):
        return [r for r in self.audit() if r.get("event") == "swap" and r.get("decision") == decision
                and r.get("secret") == "API_KEY"]

    def assertRefusal(self, reason_re, **match):
        refs = [r for r in self.swaps("refuse") if all(r.get(k) == v for k, v in match.items())]
        self.assertTrue(any(re.search(reason_re, str(r.get("reason", "")), re.I) for r in refs),
                        "no refusal matching %r with %r; refusals: %r\n%s" % (
                            reason_re, match, [(r.get("path"), r.get("reason")) for r in self.swaps("refuse")],
                            self.audit_dump()))
        for r in refs:
            self.assertIn("pid", r)
            self.assertIn("exe", r)
        return refs

    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="kz-sec-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

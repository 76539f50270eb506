"""Helpers for the kz end-to-end tests (Python unittest, run by ctest).

KZ_BIN points at build/bin/kz. Every test works in its own temporary directory, which
is also HOME and TMPDIR for the kz process, so the canary tests can scan every file kz
could have written.
"""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import unittest
import urllib.parse

KZ = os.environ.get("KZ_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "bin", "kz")
SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def encodings(value):
    """The forms of a value that must never appear in kz's output."""
    b = value.encode()
    return {
        "raw": value,
        "base64": base64.b64encode(b).decode(),
        "base64url": base64.urlsafe_b64encode(b).decode().rstrip("="),
        "percent": urllib.parse.quote(value, safe=""),
        "json": json.dumps(value)[1:-1],
        "hex": b.hex(),
    }


class KzTestCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="kz-it-")
        self.home = os.path.join(self.dir, "home")
        os.makedirs(self.home)
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write(self, name, content, mode=0o600):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(content)
        os.chmod(path, mode)
        return path

    def config(self, text):
        return self.write(".keyzero.toml", text)

    def env(self, **extra):
        e = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.home,
            "TMPDIR": self.dir,
            "LANG": "C.UTF-8",
        }
        e.update(extra)
        return e

    def kz(self, *args, env=None, input=None, timeout=60, cwd=None):
        return subprocess.run([KZ, *args], cwd=cwd or self.dir, env=env or self.env(),
                              input=input, capture_output=True, text=True, timeout=timeout)

    def assertNoSecret(self, text, value, where):
        for name, form in encodings(value).items():
            self.assertNotIn(form, text, "%s form of the canary appears in %s" % (name, where))

    def files_under(self, root):
        for d, _, files in os.walk(root):
            for f in files:
                yield os.path.join(d, f)

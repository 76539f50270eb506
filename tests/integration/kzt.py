"""Helpers for the kz end-to-end tests (Python unittest, run by ctest).

KZ_BIN points at build/bin/kz. Every test works in its own temporary directory, which
is also HOME and TMPDIR for the kz process, so the canary tests can scan every file kz
could have written.
"""
import base64
import json
import os
import re
import shutil
import signal
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


# ---------------------------------------------------------------------------------------
# Blind mode (`kz run --blind`): local servers, a test CA, the audit log, tokens.

import re  # noqa: E402
import sys  # noqa: E402

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
SERVERS = os.path.join(SRC, "tests", "servers")
TOKEN_RE = re.compile(r"KZ_TOK_[0-9A-Za-z]+")
BASE62 = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
MASK_MARK = "concealed by kz"


def without_sensors(events):
    """Event names minus the eBPF sensors' own records ("sensor.summary"), which a run
    as root adds and a run elsewhere does not."""
    return [e for e in events if not e.startswith("sensor.")]


def make_test_ca(directory):
    """tests/support/make_test_ca.sh DIR: ca.pem, server.pem/.key (localhost, 127.0.0.1,
    ::1), rogue.pem/.key (self-signed). Returns {name: path}."""
    subprocess.run([os.path.join(SRC, "tests", "support", "make_test_ca.sh"), directory],
                   check=True, capture_output=True, timeout=60)
    names = {"ca": "ca.pem", "ca_key": "ca.key", "server": "server.pem", "server_key": "server.key",
             "rogue": "rogue.pem", "rogue_key": "rogue.key"}
    return {k: os.path.join(directory, v) for k, v in names.items()}


def make_leaf(ca, directory, san):
    """A server leaf signed by the test CA for one subjectAltName ("DNS:unbound.test",
    "IP:127.0.0.2"): it verifies, so only the binding can stop a value. Returns (pem, key)."""
    stem = os.path.join(directory, re.sub(r"[^A-Za-z0-9.-]", "-", san))
    key, csr, pem, ext = (stem + s for s in (".key", ".csr", ".pem", ".ext"))
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
                "subjectAltName=%s\n" % san)
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", "/CN=" + san.split(":", 1)[1], "-keyout", key, "-out", csr], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca["ca"], "-CAkey", ca["ca_key"],
                    "-CAcreateserial", "-CAserial", os.path.join(directory, "ca.srl"), "-days", "2",
                    "-extfile", ext, "-out", pem], check=True, capture_output=True)
    return pem, key


class ServerProcess:
    """A tests/servers/*.py server: stdin is a pipe we hold (the server exits when it
    closes), its first stdout line is "PORT n"."""

    def __init__(self, script, *args, env=None):
        self.proc = subprocess.Popen([PY, os.path.join(SERVERS, script), *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            err = self.proc.stderr.read().decode() if self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError("%s did not start: %r %s" % (script, line, err))
        self.port = int(line.split()[1])

    def stop(self):
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()


class NodeServer:
    """A node server script (tests/servers/*.mjs, tests/grpc-js/*.cjs): its first stdout
    line is "PORT n"; it exits when its stdin (a pipe we hold) closes."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(["node", *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            err = self.proc.stderr.read().decode() if self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError("%s did not start: %r %s" % (argv[0], line, err))
        self.port = int(line.split()[1])

    def stop(self):
        ServerProcess.stop(self)


class KzServer:
    """`kz server start --bundle BUNDLE --listen 127.0.0.1:0 ARGS...`: url is what it says
    it listens on (its first stdout line); stop() sends SIGTERM, waits, and returns its
    stderr."""

    def __init__(self, bundle, *args, env=None):
        self.proc = subprocess.Popen([KZ, "server", "start", "--bundle", bundle, "--listen", "127.0.0.1:0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError("kz server did not start: %r %s" % (line, self.proc.stderr.read()))
        self.url = m.group(1)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            err = self.proc.stderr.read()
            self.proc.stdout.close()
            self.proc.stderr.close()
        return err


def mcp_post(url, body, token=None, session=None, headers=None, method="POST"):
    """One Streamable HTTP request to an MCP endpoint: (status, headers, JSON reply or None)."""
    import urllib.error
    import urllib.request
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    req.add_header("Accept", "application/json, text/event-stream")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if session:
        req.add_header("Mcp-Session-Id", session)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read().decode()
            return r.status, dict(r.headers), json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        return e.code, dict(e.headers), json.loads(text) if text else None


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line))
    return out


def toml_str(s):
    return json.dumps(s)  # a JSON string is a valid TOML basic string for our values


def toml_list(items):
    return "[" + ", ".join(toml_str(i) for i in items) + "]"


class BlindTestCase(KzTestCase):
    """A test directory (self.dir: HOME, TMPDIR, the config, the audit log; scanned for
    the canary) plus a server directory outside it (self.srv: CA and server records,
    which do hold the real value since the servers receive it)."""

    @classmethod
    def setUpClass(cls):
        cls.cadir = tempfile.mkdtemp(prefix="kz-it-ca-")
        cls.ca = make_test_ca(cls.cadir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.cadir, True)

    def setUp(self):
        super().setUp()
        self.srv = tempfile.mkdtemp(prefix="kz-it-srv-")
        self.addCleanup(shutil.rmtree, self.srv, True)
        self.audit_path = os.path.join(self.dir, "audit.jsonl")
        self._servers = 0

    def env(self, **extra):
        e = super().env(**extra)
        if os.environ.get("KZ_PRELOAD_LIB") and "KZ_PRELOAD_LIB" not in extra:
            e["KZ_PRELOAD_LIB"] = os.environ["KZ_PRELOAD_LIB"]   # a shim from elsewhere, if asked for
        return e

    # -- servers -------------------------------------------------------------------
    def echo_server(self, kind="tls", alpn=None, extra=()):
        """Starts tests/servers/echo_api.py; kind: "tls" (test CA leaf), "plain" or
        "rogue" (self-signed leaf). Returns (port, record_path)."""
        self._servers += 1
        record = os.path.join(self.srv, "echo-%s-%d.jsonl" % (kind, self._servers))
        args = ["--record", record]
        if kind == "tls":
            args += ["--cert", self.ca["server"], "--key", self.ca["server_key"]]
        elif kind == "rogue":
            args += ["--cert", self.ca["rogue"], "--key", self.ca["rogue_key"]]
        elif kind != "plain":
            raise ValueError(kind)
        if alpn:
            args += ["--alpn", alpn]
        s = ServerProcess("echo_api.py", *args, *extra)
        self.addCleanup(s.stop)
        return s.port, record

    def records(self, record_path, path_prefix=None):
        recs = read_jsonl(record_path)
        if path_prefix is not None:
            recs = [r for r in recs if r.get("path", "").startswith(path_prefix)]
        return recs

    # -- config and runs -----------------------------------------------------------
    def blind_config(self, secrets, extra=""):
        """secrets: {NAME: {"ref": SRCVAR, "hosts": [...], "methods": [...], "paths": [...],
        "provider": "env"}}. Writes .keyzero.toml with [blind] ca_file = the test CA."""
        lines = ["[secrets]"]
        for name, s in secrets.items():
            fields = ['provider = %s' % toml_str(s.get("provider", "env")),
                      'ref = %s' % toml_str(s["ref"])]
            for key in ("hosts", "methods", "paths"):
                if s.get(key) is not None:
                    fields.append("%s = %s" % (key, toml_list(s[key])))
            lines.append("%s = { %s }" % (name, ", ".join(fields)))
        lines += ["", "[blind]", "ca_file = %s" % toml_str(self.ca["ca"]), ""]
        return self.config("\n".join(lines) + extra)

    def run_blind(self, *cmd, flags=(), env=None, audit=True, timeout=120, input=None):
        args = ["run", "--blind"]
        if audit:
            args += ["--audit-log", self.audit_path]
        args += list(flags) + ["--", *cmd]
        return self.kz(*args, env=env, timeout=timeout, input=input)

    def sh(self, script, **kw):
        return self.run_blind("/bin/sh", "-c", script, **kw)

    # -- tokens and the audit log --------------------------------------------------
    def tokens_in(self, text, *names):
        """{NAME: token} from `env` output (NAME=KZ_TOK_...) for each name."""
        out = {}
        for n in names:
            m = re.search(r"^%s=(.*)$" % re.escape(n), text, re.M)
            self.assertIsNotNone(m, "%s is not in the child's environment:\n%s" % (n, text[:3000]))
            out[n] = m.group(1)
        return out

    def assertToken(self, tok, secret_len=None):
        self.assertRegex(tok, r"^KZ_TOK_[0-9A-Za-z]+$", "not a kz token: %r" % tok[:12])
        rand = tok[len("KZ_TOK_"):]
        self.assertTrue(set(rand) <= BASE62)
        # >= 96 bits: 62^17 > 2^101
        self.assertGreaterEqual(len(rand), 17, "token carries fewer than 96 random bits")
        if secret_len is not None:
            self.assertEqual(len(tok), max(secret_len, 24),
                             "token length must be the secret's length (>= 24) or 24")

    def audit(self):
        return read_jsonl(self.audit_path)

    def audit_events(self, event, **match):
        return [r for r in self.audit() if r.get("event") == event
                and all(r.get(k) == v for k, v in match.items())]

    def assertAudited(self, event, msg=None, **match):
        recs = self.audit_events(event, **match)
        self.assertTrue(recs, msg or "no %s audit record matching %r; the log has:\n%s" % (
            event, match, self.audit_dump()))
        return recs

    def audit_dump(self):
        try:
            with open(self.audit_path) as f:
                return f.read()[-6000:]
        except OSError:
            return "(no audit log)"

    def assertNotExposed(self, text, value, where):
        """The value in none of its encodings, and nothing that kz's masking concealed
        (if the child had seen the value, masking would have hidden the evidence)."""
        self.assertNoSecret(text, value, where)
        self.assertNotIn(MASK_MARK, text, "%s: kz masked something, so the child saw a value" % where)

    def auth_of(self, rec):
        return rec.get("header", {}).get("authorization")

"""Rotation without restart (issue 19 part 1): secrets with `refresh` are re-read in the
background while the run goes on.

Real components on loopback: the Vault and AWS Secrets Manager stand-ins
(tests/servers/vault_server.py, aws_sm_server.py) change a value through the vendors' own
write APIs (KV v2 POST .../data/PATH, PutSecretValue), seal to fail, and issue database
credentials under short leases; curl under `kz run --blind` talks to echo_api.py over TLS,
which records the Authorization header it received.

Synchronisation is by observable events only: the command under kz reads one line of
its stdin per request and prints a line when it is done, kz writes audit records, the
servers write their records, and SIGHUP to kz refreshes now. Every wait has a timeout.
"""
import datetime
import hashlib
import hmac
import json
import os
import queue
import signal
import subprocess
import threading
import time
import unittest
import urllib.request
import ssl

from kzt import (KZ, BlindTestCase, ServerProcess, read_jsonl, toml_str)

VAULT_TOKEN = "vault-root-token"
WAIT = 30   # seconds: the longest any one event may take on a loaded machine


class Session:
    """kz run ... -- COMMAND, with stdin and stdout held: lines() arrive on a thread."""

    def __init__(self, args, env, cwd):
        self.proc = subprocess.Popen([KZ, *args], cwd=cwd, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.seen = []
        self.stderr = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()

    @staticmethod
    def _pump(f, q):
        for line in f:
            q.put(line.rstrip("\n"))
        q.put(None)

    def _drain(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def send(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def expect(self, prefix, timeout=WAIT):
        """The next stdout line that starts with prefix (others are kept in seen)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("no line starting %r within %ss; stdout so far: %r; stderr: %s" % (
                    prefix, timeout, self.seen, "".join(self.stderr)[-3000:]))
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError("kz ended before %r; stdout: %r; stderr: %s" % (
                    prefix, self.seen, "".join(self.stderr)[-3000:]))
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def finish(self, timeout=WAIT):
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        rc = self.proc.wait(timeout=timeout)
        while True:   # what the pump read after the last expect
            try:
                line = self.lines.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_for(what, check, timeout=WAIT):
    """check() until it returns something true; polls files the servers and kz write."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(0.05)   # polling an observable file, not waiting for time to pass
    raise AssertionError("timed out waiting for " + what)


class RotationTestCase(BlindTestCase):
    def setUp(self):
        super().setUp()
        self.v1 = "rot-v1-" + os.urandom(12).hex()
        self.v2 = "rot-v2-" + os.urandom(12).hex()
        data = os.path.join(self.srv, "vault-data.json")
        with open(data, "w") as f:
            json.dump({"kv2": {"secret": {"api": {"value": self.v1}}},
                       "database": {"database": {"app": {"default_ttl": 10}}}}, f)
        self.creds_record = os.path.join(self.srv, "vault-creds.jsonl")
        self.vault = ServerProcess("vault_server.py", "--data", data, "--token", VAULT_TOKEN,
                                   "--cert", self.ca["server"], "--key", self.ca["server_key"],
                                   "--record", self.creds_record)
        self.addCleanup(self.vault.stop)
        self.token_file = os.path.join(self.srv, "vault-token")
        with open(self.token_file, "w") as f:
            f.write(VAULT_TOKEN + "\n")

    def vault_call(self, method, path, body=None):
        ctx = ssl.create_default_context(cafile=self.ca["ca"])
        req = urllib.request.Request("https://127.0.0.1:%d/v1/%s" % (self.vault.port, path), method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"X-Vault-Token": VAULT_TOKEN, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=ctx, timeout=WAIT) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def vault_providers(self):
        return ('\n[providers.vault]\naddress = "https://127.0.0.1:%d"\ntoken_file = %s\nca_cert = %s\n'
                % (self.vault.port, toml_str(self.token_file), toml_str(self.ca["ca"])))

    def start(self, args, command):
        s = Session(list(args) + ["--audit-log", self.audit_path, "--", "/bin/sh", "-c", command],
                    self.env(), self.dir)
        self.addCleanup(s.kill)
        return s

    def audited(self, event, **match):
        return wait_for("a %s record matching %r; the log has:\n%s" % (event, match, self.audit_dump()),
                        lambda: self.audit_events(event, **match))

    def assertClean(self, session, *values):
        """No value in kz's output, its audit log or anything under the test directory."""
        text = "\n".join(session.seen) + "".join(session.stderr)
        with open(self.audit_path) as f:
            text += f.read()
        for v in values:
            self.assertNoSecret(text, v, "kz's output or audit log")
            for path in self.files_under(self.dir):
                with open(path, "rb") as f:
                    self.assertNotIn(v.encode(), f.read(), path)


class BlindRotation(RotationTestCase):
    """--blind: the agent keeps one token; the value behind it changes."""

    def curl_loop(self, port, var="API_KEY"):
        # One request per stdin line; prints the token it sent, so the test sees it never changed.
        return ('while read n; do curl -sS --cacert %s -o /dev/null -H "Authorization: Bearer $%s" '
                'https://localhost:%d/n$n; echo "did $n $%s"; done' % (self.ca["ca"], var, port, var))

    def test_new_value_behind_the_same_token(self):
        port, record = self.echo_server()
        self.config('[secrets]\nAPI_KEY = { provider = "vault", ref = "secret/data/api#value", '
                    'hosts = ["localhost"], refresh = "1h" }\n\n[blind]\nca_file = %s\n'
                    % toml_str(self.ca["ca"]) + self.vault_providers())
        s = self.start(["run", "--blind"], self.curl_loop(port) + "; cat %s/later.txt" % self.srv)
        s.send("1")
        first = s.expect("did 1 ").split()[2]
        self.assertToken(first)
        self.assertEqual(self.auth_of(self.records(record, "/n1")[0]), "Bearer " + self.v1)

        # The vendor's own write API makes version 2; SIGHUP makes kz read it now.
        self.assertEqual(self.vault_call("POST", "secret/data/api", {"data": {"value": self.v2}})["data"]["version"], 2)
        s.hup()
        rot = self.audited("rotate", secret="API_KEY", decision="ok")[0]
        self.assertEqual(rot["version"], "2")
        self.assertTrue(rot["changed"])
        self.assertEqual(rot["provider"], "vault")
        self.assertEqual(rot["token_id"], self.audit_events("token", secret="API_KEY")[0]["token_id"])

        s.send("2")
        second = s.expect("did 2 ").split()[2]
        self.assertEqual(second, first, "the agent's token changed with the value")
        self.assertEqual(self.auth_of(self.records(record, "/n2")[0]), "Bearer " + self.v2)
        # Both values are masked in the command's output: the new one, and still the old one.
        with open(os.path.join(self.srv, "later.txt"), "w") as f:
            f.write("old %s new %s\n" % (self.v1, self.v2))
        self.assertEqual(s.finish(), 0, "".join(s.stderr))
        later = [l for l in s.seen if l.startswith("old ")]
        self.assertEqual(later, ["old <concealed by kz> new <concealed by kz>"], s.seen)
        swaps = self.audit_events("swap", secret="API_KEY", decision="allow")
        self.assertEqual(len(swaps), 2, "each request is decided by the broker (no connection grant)")
        self.assertTrue(all("grant" not in r for r in swaps))
        self.assertClean(s, self.v1, self.v2)
        summary = self.kz("audit", "summary", self.audit_path)
        self.assertEqual(summary.returncode, 0, summary.stderr)
        self.assertRegex(summary.stdout, r"rotations per secret[^\n]*\n\s+API_KEY\s+1")

    def test_failed_refresh_keeps_the_lease_then_fails_closed(self):
        port, record = self.echo_server()
        self.config('[secrets]\nDB_PASS = { provider = "vault", ref = "database/creds/app#password", '
                    'hosts = ["localhost"], refresh = "lease" }\n\n[blind]\nca_file = %s\n'
                    % toml_str(self.ca["ca"]) + self.vault_providers())
        s = self.start(["run", "--blind"], self.curl_loop(port, "DB_PASS"))
        s.send("1")
        s.expect("did 1 ")
        issued = read_jsonl(self.creds_record)
        self.assertEqual(len(issued), 1)
        self.assertEqual(self.auth_of(self.records(record, "/n1")[0]), "Bearer " + issued[0]["password"])

        self.vault_call("PUT", "sys/seal")
        s.hup()
        failed = self.audited("rotate", secret="DB_PASS", decision="error")[0]
        self.assertIn("sealed", failed["reason"])
        self.assertIn("expires", failed)
        # Before the lease ends the last good value is still used (the lease is 10 s; if
        # this machine took longer than that to get here, the expiry below says so).
        s.send("2")
        s.expect("did 2 ")
        if not self.audit_events("rotate", secret="DB_PASS", decision="expired"):
            self.assertEqual(self.auth_of(self.records(record, "/n2")[0]), "Bearer " + issued[0]["password"])

        # The lease ends with no good refresh: swaps are refused, the token goes out as is.
        expired = self.audited("rotate", secret="DB_PASS", decision="expired")[0]
        self.assertIn("fail closed", expired["reason"])
        s.send("3")
        s.expect("did 3 ")
        sent = self.auth_of(self.records(record, "/n3")[0])
        self.assertRegex(sent, r"^Bearer KZ_TOK_", "an expired value was sent")
        refused = [r for r in self.audit_events("swap", secret="DB_PASS", decision="refuse") if "expired" in r["reason"]]
        self.assertTrue(refused, self.audit_dump())

        # Unsealed: the next refresh brings a new lease, and swaps resume with its value.
        self.vault_call("PUT", "sys/unseal", {"key": "k"})
        s.hup()
        back = self.audited("rotate", secret="DB_PASS", decision="ok")[0]
        self.assertEqual(back["lease_s"], 10)
        s.send("4")
        s.expect("did 4 ")
        latest = read_jsonl(self.creds_record)[-1]["password"]
        self.assertEqual(self.auth_of(self.records(record, "/n4")[0]), "Bearer " + latest)
        self.assertEqual(s.finish(), 0, "".join(s.stderr))
        self.assertClean(s, *[c["password"] for c in read_jsonl(self.creds_record)])
        summary = self.kz("audit", "summary", self.audit_path)
        # The SIGHUP's read, the lease's own reads while sealed, and the expiry.
        self.assertRegex(summary.stdout, r"failed or expired refreshes per secret[^\n]*\n\s+DB_PASS\s+[2-9]")


class AwsRotation(RotationTestCase):
    """aws-sm: PutSecretValue moves AWSCURRENT; the refresh re-reads that stage."""

    AKID, SECRET_KEY, REGION = "AKIAROTATIONTEST0001", "rotation-test-secret-key", "us-east-1"

    def put_secret_value(self, port, secret_id, value):
        body = json.dumps({"SecretId": secret_id, "SecretString": value,
                           "ClientRequestToken": "ver-2-" + os.urandom(4).hex()}).encode()
        now = datetime.datetime.now(datetime.timezone.utc)
        amz, date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        host = "127.0.0.1:%d" % port
        headers = {"content-type": "application/x-amz-json-1.1", "host": host, "x-amz-date": amz,
                   "x-amz-target": "secretsmanager.PutSecretValue"}
        signed = ";".join(sorted(headers))
        creq = "\n".join(["POST", "/", "", "".join("%s:%s\n" % (k, headers[k]) for k in sorted(headers)), signed,
                          hashlib.sha256(body).hexdigest()])
        scope = "%s/%s/secretsmanager/aws4_request" % (date, self.REGION)
        sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
        key = ("AWS4" + self.SECRET_KEY).encode()
        for part in (date, self.REGION, "secretsmanager", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        req = urllib.request.Request("https://%s/" % host, data=body, method="POST", headers=dict(
            headers, authorization="AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s"
            % (self.AKID, scope, signed, sig)))
        ctx = ssl.create_default_context(cafile=self.ca["ca"])
        with urllib.request.urlopen(req, context=ctx, timeout=WAIT) as r:
            return json.loads(r.read())

    def test_awscurrent_is_read_again(self):
        secrets_file = os.path.join(self.srv, "sm.json")
        with open(secrets_file, "w") as f:
            json.dump({"prod/api": {"SecretString": self.v1, "VersionId": "ver-1"}}, f)
        sm = ServerProcess("aws_sm_server.py", "--secrets", secrets_file, "--access-key-id", self.AKID,
                           "--secret-access-key", self.SECRET_KEY, "--cert", self.ca["server"],
                           "--key", self.ca["server_key"])
        self.addCleanup(sm.stop)
        port, record = self.echo_server()
        self.config('[secrets]\nAPI_KEY = { provider = "aws-sm", ref = "prod/api", hosts = ["localhost"], '
                    'refresh = "1h" }\n\n[blind]\nca_file = %s\n\n[providers.aws-sm]\nregion = "%s"\n'
                    'endpoint = "https://127.0.0.1:%d"\nca_cert = %s\n'
                    % (toml_str(self.ca["ca"]), self.REGION, sm.port, toml_str(self.ca["ca"])))
        env = self.env(AWS_ACCESS_KEY_ID=self.AKID, AWS_SECRET_ACCESS_KEY=self.SECRET_KEY)
        s = Session(["run", "--blind", "--audit-log", self.audit_path, "--", "/bin/sh", "-c",
                     BlindRotation.curl_loop(self, port)], env, self.dir)
        self.addCleanup(s.kill)
        s.send("1")
        s.expect("did 1 ")
        self.assertEqual(self.auth_of(self.records(record, "/n1")[0]), "Bearer " + self.v1)
        put = self.put_secret_value(sm.port, "prod/api", self.v2)
        s.hup()
        rot = self.audited("rotate", secret="API_KEY", decision="ok")[0]
        self.assertEqual(rot["version"], put["VersionId"])
        s.send("2")
        s.expect("did 2 ")
        self.assertEqual(self.auth_of(self.records(record, "/n2")[0]), "Bearer " + self.v2)
        self.assertEqual(s.finish(), 0, "".join(s.stderr))
        self.assertClean(s, self.v1, self.v2)


class RestartOnChange(RotationTestCase):
    """Standard mode: --restart-on-change ends the command and starts it with the new env."""

    def hashed(self, v):
        return hashlib.sha256(v.encode()).hexdigest()[:16]

    def config_api(self):
        self.config('[secrets]\nAPI_KEY = { provider = "vault", ref = "secret/data/api#value", refresh = "1h" }\n'
                    + self.vault_providers())

    def test_restart_with_the_new_value(self):
        self.config_api()
        # Prints who it is and a digest of its value (the value itself would be masked),
        # then the file the test wrote for that value, if any, then waits to be told to end.
        script = ('h=$(printf %%s "$API_KEY" | sha256sum | cut -c1-16); echo "start $$ $h"; '
                  'trap \'echo "term $$"; kill $p 2>/dev/null; exit 0\' TERM; '
                  'cat %s/print-$h.txt 2>/dev/null; sleep 300 & p=$!; wait $p' % self.srv)
        s = self.start(["run", "--restart-on-change", "--restart-grace", "5s"], script)
        first = s.expect("start ").split()
        self.assertEqual(first[2], self.hashed(self.v1))
        # What the restarted command prints: the old value and the new one, both masked.
        with open(os.path.join(self.srv, "print-%s.txt" % self.hashed(self.v2)), "w") as f:
            f.write("values %s %s\n" % (self.v1, self.v2))
        self.vault_call("POST", "secret/data/api", {"data": {"value": self.v2}})
        s.hup()
        s.expect("term %s" % first[1])
        second = s.expect("start ").split()
        self.assertNotEqual(second[1], first[1], "the command was not started again")
        self.assertEqual(second[2], self.hashed(self.v2), "the new command did not get the new value")
        s.expect("values ")
        restart = self.audited("run.restart")[0]
        self.assertEqual(restart["secrets"], ["API_KEY"])
        self.assertEqual(restart["signal"], "SIGTERM")
        self.assertEqual(restart["outcome"], "exited")
        self.assertEqual(str(restart["old_pid"]), first[1])
        self.assertEqual(str(restart["new_pid"]), second[1])
        self.assertEqual(restart["status"], 0)
        s.proc.send_signal(signal.SIGTERM)   # forwarded: the command ends, and so does the run
        self.assertEqual(s.finish(), 0, "".join(s.stderr))
        printed = [l for l in s.seen if l.startswith("values ")]
        self.assertEqual(printed, ["values <concealed by kz> <concealed by kz>"], s.seen)
        self.assertClean(s, self.v1, self.v2)
        self.assertAudited("rotate", secret="API_KEY", decision="ok", version="2")
        summary = self.kz("audit", "summary", self.audit_path)
        self.assertIn("restarts for changed values (--restart-on-change): 1", summary.stdout)

    def test_a_command_that_ignores_the_signal_is_killed_after_the_grace(self):
        self.config_api()
        script = ('trap "" TERM; echo "start $$ $(printf %s "$API_KEY" | sha256sum | cut -c1-16)"; '
                  'while read line; do :; done')
        s = self.start(["run", "--restart-on-change", "--restart-grace", "500ms", "--restart-signal", "SIGUSR1"],
                       "trap '' USR1; " + script)
        first = s.expect("start ").split()
        self.vault_call("POST", "secret/data/api", {"data": {"value": self.v2}})
        s.hup()
        second = s.expect("start ").split()
        self.assertEqual(second[2], self.hashed(self.v2))
        restart = self.audited("run.restart")[0]
        self.assertEqual(restart["outcome"], "killed")
        self.assertEqual(restart["signal"], "SIGUSR1")
        self.assertEqual(restart["grace_ms"], 500)
        self.assertEqual(restart["status"], 128 + signal.SIGKILL)
        self.assertEqual(str(restart["old_pid"]), first[1])
        self.assertEqual(s.finish(), 0, "".join(s.stderr))

    def test_unchanged_value_does_not_restart(self):
        self.config_api()
        s = self.start(["run", "--restart-on-change"], 'echo "start $$"; while read line; do echo "got $line"; done')
        s.expect("start ")
        s.hup()
        # The same value: no restart, and the command still answers.
        s.send("a")
        s.expect("got a")
        self.assertEqual(s.finish(), 0, "".join(s.stderr))
        self.assertEqual(len([l for l in s.seen if l.startswith("start ")]), 1, s.seen)
        self.assertFalse(self.audit_events("run.restart"))
        self.assertFalse(self.audit_events("rotate"))


class RotationConfig(RotationTestCase):
    def test_bad_durations_name_file_line_and_field(self):
        for text, want in (('"5x"', 'is not a duration'), ('"1s"', 'shorter than the minimum, 5s'),
                           ('5', 'must be a string'), ('"-3m"', 'is not a duration')):
            path = self.config('[secrets]\n\nAPI_KEY = { provider = "env", ref = "X", refresh = %s }\n' % text)
            r = self.kz("run", "--", "/bin/true", env=self.env(X="x"))
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("%s:3:" % path, r.stderr)
            self.assertIn("secrets.API_KEY.refresh", r.stderr)
            self.assertIn(want, r.stderr)
        self.config('[secrets]\nAPI_KEY = { provider = "env", ref = "X", max_stale = "1h" }\n')
        r = self.kz("run", "--", "/bin/true", env=self.env(X="x"))
        self.assertIn("max_stale needs refresh", r.stderr)

    def test_restart_on_change_is_refused_in_blind_mode(self):
        self.config('[secrets]\nAPI_KEY = { provider = "env", ref = "X", hosts = ["localhost"], refresh = "1m" }\n')
        r = self.kz("run", "--blind", "--restart-on-change", "--", "/bin/true", env=self.env(X="x" * 30))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--restart-on-change is for standard mode", r.stderr)


if __name__ == "__main__":
    unittest.main()

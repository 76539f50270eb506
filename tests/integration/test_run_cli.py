"""kz run / check / doctor end to end, with the env, file and exec providers."""
import json
import os
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from kzt import KZ, KzTestCase, without_sensors  # noqa: E402


class RunTest(KzTestCase):
    def basic_config(self):
        self.write("secret.txt", "file-secret-value-123\n")
        return self.config(
            '[secrets]\n'
            'FROM_ENV = { provider = "env", ref = "UPSTREAM_VAR" }\n'
            'FROM_FILE = { provider = "file", ref = "secret.txt" }\n'
            'FROM_CMD = { provider = "exec", ref = "printf cmd-secret-value-456" }\n')

    def test_child_gets_values_in_environment(self):
        self.basic_config()
        r = self.kz("run", "--", "sh", "-c",
                    'test "$FROM_ENV" = env-secret-value-789 && test "$FROM_FILE" = file-secret-value-123 '
                    '&& test "$FROM_CMD" = cmd-secret-value-456 && echo all-present',
                    env=self.env(UPSTREAM_VAR="env-secret-value-789"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "all-present\n")

    def test_config_found_in_parent_directory(self):
        self.basic_config()
        sub = os.path.join(self.dir, "a", "b")
        os.makedirs(sub)
        r = self.kz("run", "--", "sh", "-c", 'test -n "$FROM_CMD" && echo found', cwd=sub,
                    env=self.env(UPSTREAM_VAR="x-value-1234"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "found\n")

    def test_output_is_masked(self):
        self.basic_config()
        r = self.kz("run", "--", "sh", "-c", 'echo "out:$FROM_FILE"; echo "err:$FROM_CMD" >&2',
                    env=self.env(UPSTREAM_VAR="env-secret-value-789"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "out:<concealed by kz>\n")
        self.assertIn("err:<concealed by kz>\n", r.stderr)

    def test_no_masking_flag(self):
        self.basic_config()
        r = self.kz("run", "--no-masking", "--", "sh", "-c", 'echo "$FROM_FILE"',
                    env=self.env(UPSTREAM_VAR="v-12345"))
        self.assertEqual(r.stdout, "file-secret-value-123\n")

    def test_custom_replacement(self):
        self.basic_config()
        r = self.kz("run", "--mask-replacement", "***", "--", "sh", "-c", 'echo "$FROM_FILE"',
                    env=self.env(UPSTREAM_VAR="v-12345"))
        self.assertEqual(r.stdout, "***\n")

    def test_exit_code_passthrough(self):
        self.basic_config()
        env = self.env(UPSTREAM_VAR="v-12345")
        self.assertEqual(self.kz("run", "--", "sh", "-c", "exit 7", env=env).returncode, 7)
        self.assertEqual(self.kz("run", "--", "sh", "-c", "kill -TERM $$", env=env).returncode, 128 + 15)
        self.assertEqual(self.kz("run", "--no-masking", "--", "sh", "-c", "kill -KILL $$", env=env).returncode,
                         128 + 9)

    def test_command_not_found_and_not_executable(self):
        self.basic_config()
        env = self.env(UPSTREAM_VAR="v-12345")
        r = self.kz("run", "--", "no-such-command-kz", env=env)
        self.assertEqual(r.returncode, 127)
        self.assertIn("no-such-command-kz", r.stderr)
        noexec = self.write("noexec.sh", "#!/bin/sh\necho hi\n", mode=0o600)
        self.assertEqual(self.kz("run", "--", noexec, env=env).returncode, 126)

    def test_resolution_failure_stops_before_command(self):
        self.basic_config()
        marker = os.path.join(self.dir, "started")
        r = self.kz("run", "--", "touch", marker)   # UPSTREAM_VAR unset
        self.assertEqual(r.returncode, 2)
        self.assertIn("FROM_ENV", r.stderr)
        self.assertIn("provider env", r.stderr)
        self.assertIn("UPSTREAM_VAR", r.stderr)
        self.assertFalse(os.path.exists(marker), "command ran although a secret failed")

    def test_only(self):
        self.basic_config()
        r = self.kz("run", "--only", "FROM_CMD,FROM_FILE", "--", "sh", "-c",
                    'test -z "$FROM_ENV" && test -n "$FROM_CMD" && test -n "$FROM_FILE" && echo ok')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "ok\n")
        r = self.kz("run", "--only", "NOPE", "--", "true")
        self.assertEqual(r.returncode, 2)
        self.assertIn("NOPE", r.stderr)

    def test_secret_replaces_inherited_variable(self):
        self.config('[secrets]\nTOKEN = { provider = "exec", ref = "printf resolved-token-value" }\n')
        r = self.kz("run", "--no-masking", "--", "sh", "-c", 'echo "$TOKEN"',
                    env=self.env(TOKEN="inherited-value"))
        self.assertEqual(r.stdout, "resolved-token-value\n")

    def test_env_file_and_clash(self):
        self.config('[secrets]\nTOKEN = { provider = "exec", ref = "printf resolved-token-value" }\n')
        plain = self.write("plain.env", "# comment\nexport PLAIN=hello\nQUOTED=\"a b\\n\"\n")
        r = self.kz("run", "--env-file", plain, "--", "sh", "-c", 'printf "%s|%s" "$PLAIN" "$QUOTED"')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "hello|a b\n")
        clash = self.write("clash.env", "TOKEN=from-file\n")
        r = self.kz("run", "--env-file", clash, "--", "true")
        self.assertEqual(r.returncode, 2)
        self.assertIn("clash.env:1", r.stderr)
        self.assertIn("TOKEN", r.stderr)
        r = self.kz("run", "--override", "--env-file", clash, "--no-masking", "--", "sh", "-c", 'echo "$TOKEN"')
        self.assertEqual(r.stdout, "from-file\n")
        bad = self.write("bad.env", "OK=1\nnot a line\n")
        r = self.kz("run", "--env-file", bad, "--", "true")
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad.env:2", r.stderr)

    def test_clean_env(self):
        self.config('[secrets]\nTOKEN = { provider = "exec", ref = "printf resolved-token-value" }\n')
        r = self.kz("run", "--clean-env", "--keep-env", "KEEPME", "--", "env",
                    env=self.env(KEEPME="1", DROPME="1"))
        names = sorted(line.split("=", 1)[0] for line in r.stdout.splitlines())
        self.assertIn("KEEPME", names)
        self.assertIn("TOKEN", names)
        self.assertIn("PATH", names)
        self.assertNotIn("DROPME", names)
        self.assertNotIn("TMPDIR", names)

    def test_child_cannot_dump_core(self):
        self.config('[secrets]\nTOKEN = { provider = "exec", ref = "printf resolved-token-value" }\n')
        r = self.kz("run", "--", "grep", "Max core file size", "/proc/self/limits")
        self.assertRegex(r.stdout, r"Max core file size\s+0\s+0\s")

    def test_signal_forwarding(self):
        self.config('[secrets]\nTOKEN = { provider = "exec", ref = "printf resolved-token-value" }\n')
        script = self.write("trap.py",
                            "import signal, sys\n"
                            "got = []\n"
                            "for s in (signal.SIGUSR1, signal.SIGHUP, signal.SIGWINCH):\n"
                            "    signal.signal(s, lambda n, f: got.append(n))\n"
                            "print('ready', flush=True)\n"
                            "while len(got) < 3: signal.pause()\n"
                            "print('got', sorted(got), flush=True)\n"
                            "signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
                            "signal.pause()\n")
        p = subprocess.Popen([KZ, "run", "--", "/usr/bin/python3", script], cwd=self.dir, env=self.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(p.stdout.readline(), "ready\n")
        for s in (signal.SIGUSR1, signal.SIGHUP, signal.SIGWINCH):
            p.send_signal(s)
        self.assertEqual(p.stdout.readline(), "got %s\n" % sorted([int(signal.SIGUSR1), int(signal.SIGHUP),
                                                                   int(signal.SIGWINCH)]))
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=30), 128 + signal.SIGTERM)
        p.stdout.close()
        p.stderr.close()

    def test_interactive_output_not_held_back(self):
        # A prompt without newline that ends in a character that could begin a secret
        # must still reach the reader while the child waits for input.
        self.config('[secrets]\nTOKEN = { provider = "exec", ref = "printf Pass-secret-value" }\n')
        p = subprocess.Popen([KZ, "run", "--", "sh", "-c", 'printf "Enter P"; read x; echo "got $x"'],
                             cwd=self.dir, env=self.env(), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.stdout.read(7), b"Enter P")   # arrives although "P" starts the secret
        p.stdin.write(b"yes\n")
        p.stdin.close()
        self.assertEqual(p.stdout.read(), b"got yes\n")
        self.assertEqual(p.wait(timeout=30), 0)
        p.stdout.close()
        p.stderr.close()


class CheckDoctorTest(KzTestCase):
    def test_check_prints_lengths_not_values(self):
        self.config('[secrets]\nA = { provider = "exec", ref = "printf check-secret-value" }\n')
        r = self.kz("check")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)
        r = self.kz("check", "--resolve")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("A", r.stdout)
        self.assertIn("(18 bytes)", r.stdout)
        self.assertNotIn("check-secret-value", r.stdout + r.stderr)

    def test_check_reports_position(self):
        self.config('[secrets]\nA = { provider = "exec", ref = "true" }\nB = { provider = "nope", ref = "x" }\n')
        r = self.kz("check")
        self.assertEqual(r.returncode, 2)
        self.assertIn(".keyzero.toml:3:", r.stderr)
        self.assertIn("unknown provider", r.stderr)

    def test_no_config(self):
        r = self.kz("check")
        self.assertEqual(r.returncode, 2)
        self.assertIn(".keyzero.toml", r.stderr)

    def test_doctor(self):
        r = self.kz("doctor")
        self.assertEqual(r.returncode, 0, r.stderr)
        for key in ("kernel", "BTF", "cgroup v2", "lockdown", "capabilities", "libssl", "GnuTLS"):
            self.assertIn(key, r.stdout)
        # Blind mode: where the shim is, and how HTTP/2 is served.
        self.assertRegex(r.stdout, r"blind: shim\s+/\S+/libkz_preload\.so")
        self.assertRegex(r.stdout, r"blind: HTTP/2\s+swapped by the shim: h2 stays in ALPN offers")
        self.assertIn("blind: decisions", r.stdout)

    def test_help_teaches(self):
        r = self.kz("run", "--help")
        self.assertEqual(r.returncode, 0)
        for word in ("--only", "--no-masking", "--env-file", "--clean-env", "concealed by kz", "--blind",
                     "--allow-any-host", "hosts = [...]"):
            self.assertIn(word, r.stdout)


if __name__ == "__main__":
    unittest.main()


class AuditTest(KzTestCase):
    def test_runs_are_audited_and_verify(self):
        self.config('[secrets]\nTOKEN = { provider = "exec", ref = "printf audited-secret-value" }\n'
                    'BAD = { provider = "env", ref = "KZ_UNSET_FOR_TEST" }\n')
        self.assertEqual(self.kz("run", "--only", "TOKEN", "--", "true").returncode, 0)
        self.assertEqual(self.kz("run", "--", "true").returncode, 2)
        log = os.path.join(self.home, ".local", "state", "keyzero", "audit.jsonl")
        self.assertEqual(os.stat(log).st_mode & 0o777, 0o600)
        with open(log) as f:
            text = f.read()
        self.assertNotIn("audited-secret-value", text)
        events = without_sensors([json.loads(l)["event"] for l in text.splitlines()])
        self.assertEqual(events, ["run.start", "resolve", "run.stop", "run.start", "resolve", "resolve", "run.stop"])
        r = self.kz("audit", "verify", log)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("OK: %d record(s)" % len(text.splitlines()), r.stdout)
        r = self.kz("audit", "summary", log)
        self.assertIn("TOKEN", r.stdout)
        self.assertIn("KZ_UNSET_FOR_TEST", r.stdout)   # the refusal's reason (no value in it)
        with open(log, "w") as f:
            f.write(text.replace('"exit":0', '"exit":1'))
        r = self.kz("audit", "verify", log)
        self.assertEqual(r.returncode, 1)
        # The first run.stop record was changed: the line after it no longer chains.
        changed = next(i for i, l in enumerate(text.splitlines(), 1) if '"exit":0' in l)
        self.assertIn(":%d: hash chain broken" % (changed + 1), r.stderr)

    def test_audit_path_from_config_and_flag(self):
        self.config('[audit]\npath = "logs/kz.jsonl"\n[secrets]\nT = { provider = "exec", ref = "printf x-value-1" }\n')
        self.assertEqual(self.kz("run", "--", "true").returncode, 0)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "logs", "kz.jsonl")))
        other = os.path.join(self.dir, "other.jsonl")
        self.assertEqual(self.kz("run", "--audit-log", other, "--", "true").returncode, 0)
        self.assertTrue(os.path.exists(other))


class CredentialHygieneTest(KzTestCase):
    def test_provider_credentials_and_env_sources_not_inherited(self):
        self.write("v.txt", "vault-value-12345\n")
        # The source variable of an env secret does not reach the command (it would be
        # the value under another name); unrelated variables do.
        self.config('[secrets]\nFROM_ENV = { provider = "env", ref = "UPSTREAM" }\n'
                    'F = { provider = "file", ref = "v.txt" }\n')
        r = self.kz("run", "--", "sh", "-c", 'echo "UPSTREAM=${UPSTREAM-unset} OTHER=${OTHER-unset}"',
                    env=self.env(UPSTREAM="env-source-value-1", OTHER="kept"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "UPSTREAM=unset OTHER=kept\n")
        r = self.kz("run", "--keep-env", "UPSTREAM", "--no-masking", "--", "sh", "-c", 'echo "${UPSTREAM-unset}"',
                    env=self.env(UPSTREAM="env-source-value-1"))
        self.assertEqual(r.stdout, "env-source-value-1\n")

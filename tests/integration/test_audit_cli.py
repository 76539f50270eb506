"""`kz audit query|verify` and the audit sinks, on logs written by real `kz run`s."""
import json
import os
import unittest

from kzt import KzTestCase, ServerProcess, read_jsonl, without_sensors

CONFIG = ('[secrets]\n'
          'ALPHA = { provider = "exec", ref = "printf alpha-secret-value" }\n'
          'BETA = { provider = "exec", ref = "printf beta-secret-value" }\n'
          'MISSING = { provider = "env", ref = "KZ_UNSET_FOR_AUDIT_TEST" }\n')


class AuditQueryTest(KzTestCase):
    def setUp(self):
        super().setUp()
        self.config(CONFIG)
        self.log = os.path.join(self.dir, "audit.jsonl")
        ok = self.kz("run", "--audit-log", self.log, "--only", "ALPHA,BETA", "--", "true")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        bad = self.kz("run", "--audit-log", self.log, "--only", "MISSING", "--", "true")
        self.assertEqual(bad.returncode, 2, bad.stderr)
        with open(self.log) as f:
            self.lines = f.read().splitlines()
        self.records = [json.loads(l) for l in self.lines]

    def query(self, *args):
        r = self.kz("audit", "query", self.log, *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def json_query(self, *args):
        out = self.query("--json", *args).stdout.splitlines()
        for line in out:
            self.assertIn(line, self.lines)   # exactly the log's lines, unchanged
        return [json.loads(l) for l in out]

    def test_filters(self):
        got = self.json_query("--secret", "ALPHA")
        self.assertEqual([(r["event"], r["secret"]) for r in got], [("resolve", "ALPHA")])
        got = self.json_query("--event", "resolve")
        # (one run resolves its secrets concurrently: their order is not fixed)
        self.assertEqual(sorted(r["secret"] for r in got), ["ALPHA", "BETA", "MISSING"])
        got = self.json_query("--event", "resolve", "--decision", "error")
        self.assertEqual([r["secret"] for r in got], ["MISSING"])
        first_run = self.records[0]["run"]
        got = self.json_query("--run", first_run)
        self.assertEqual(without_sensors([r["event"] for r in got]), ["run.start", "resolve", "resolve", "run.stop"])
        pid = self.records[-1]["pid"]
        got = self.json_query("--pid", str(pid))
        self.assertTrue(got)
        self.assertTrue(all(r["pid"] == pid for r in got))
        # Time windows: relative and RFC 3339.
        self.assertEqual(len(self.json_query("--since", "1h")), len(self.records))
        self.assertEqual(self.json_query("--since", "2999-01-01T00:00:00Z"), [])
        self.assertEqual(self.json_query("--until", "2000-01-01T00:00:00Z"), [])
        self.assertEqual(len(self.json_query("--since", self.records[0]["ts"], "--until",
                                             self.records[-1]["ts"])), len(self.records))
        # Filters combine (AND).
        self.assertEqual(self.json_query("--secret", "ALPHA", "--decision", "error"), [])

    def test_readable_output(self):
        r = self.query("--secret", "MISSING")
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 1)
        rec = [x for x in self.records if x.get("secret") == "MISSING"][0]
        self.assertTrue(lines[0].startswith(rec["ts"] + " resolve error secret=MISSING"), lines[0])
        self.assertIn("pid=%d" % rec["pid"], lines[0])
        self.assertIn("KZ_UNSET_FOR_AUDIT_TEST", lines[0])   # the reason
        self.assertIn("1 record(s) matched", r.stderr)
        for v in ("alpha-secret-value", "beta-secret-value"):
            self.assertNotIn(v, self.query().stdout)

    def test_bad_arguments(self):
        r = self.kz("audit", "query", self.log, "--since", "yesterday")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--since", r.stderr)
        self.assertIn("RFC 3339", r.stderr)
        r = self.kz("audit", "query", self.log, "--pid", "abc")
        self.assertEqual(r.returncode, 2)

    def test_verify_detects_truncation_at_the_end(self):
        r = self.kz("audit", "verify", self.log)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("OK: %d record(s), hash chain intact, matches its head" % len(self.lines), r.stdout)
        head = self.log + ".head"
        self.assertEqual(os.stat(head).st_mode & 0o777, 0o600)
        with open(self.log, "w") as f:
            f.write("\n".join(self.lines[:-2]) + "\n")
        r = self.kz("audit", "verify", self.log)
        self.assertEqual(r.returncode, 1)
        self.assertIn("truncated: the head records %d records" % len(self.lines), r.stderr)
        self.assertIn("the log has %d" % (len(self.lines) - 2), r.stderr)
        # A log without a head (from an older kz) verifies, with a note.
        os.unlink(head)
        r = self.kz("audit", "verify", self.log)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("no head file", r.stdout)

    def test_summary_counts_leaks(self):
        r = self.kz("audit", "summary", self.log)
        self.assertEqual(r.returncode, 0)
        self.assertIn("refusals, leaks and errors: 2 (leaks: 0, exfiltration attempts seen by the TLS tap: 0)", r.stdout)


class AuditSinkTest(KzTestCase):
    def run_with_collector(self, *server_args):
        rec = os.path.join(self.dir, "collector.jsonl")
        srv = ServerProcess("siem_server.py", "--record", rec, *server_args)
        self.addCleanup(srv.stop)
        log = os.path.join(self.dir, "audit.jsonl")
        self.config(CONFIG + '\n[audit]\npath = "audit.jsonl"\nhttp_url = "http://127.0.0.1:%d/ingest"\n'
                    'http_token_env = "KZ_SIEM_TOKEN"\nhttp_flush_ms = 50\n' % srv.port)
        r = self.kz("run", "--only", "ALPHA", "--", "sh", "-c", 'echo "token:${KZ_SIEM_TOKEN:-unset}"',
                    env=self.env(KZ_SIEM_TOKEN="siem-token-0815"))
        return r, log, rec

    def test_records_reach_the_collector(self):
        r, log, rec = self.run_with_collector()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("token:unset", r.stdout)   # the collector's token is not the command's
        posts = read_jsonl(rec)
        self.assertTrue(posts)
        self.assertTrue(all(p["authorization"] == "Bearer siem-token-0815" for p in posts))
        got = [x for p in posts for x in p["records"]]
        self.assertEqual(got, read_jsonl(log))
        self.assertEqual(without_sensors([x["event"] for x in got]), ["run.start", "resolve", "run.stop"])

    def test_stalled_collector_loses_nothing_from_the_file(self):
        r, log, rec = self.run_with_collector("--stall")
        self.assertEqual(r.returncode, 0, r.stderr)
        records = read_jsonl(log)
        self.assertEqual(without_sensors([x["event"] for x in records]), ["run.start", "resolve", "run.stop", "audit.sink"])
        self.assertEqual(records[-1]["sink"], "http")
        # Every record before the sink's own report (a run as root adds the sensors' summary).
        lost = len(records) - 1
        self.assertEqual(records[-1]["dropped"], lost)
        self.assertIn("audit sink http: %d record(s) not delivered" % lost, r.stderr)
        v = self.kz("audit", "verify", log)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)

    def test_missing_token_variable_stops_the_run(self):
        self.config(CONFIG + '\n[audit]\nhttp_url = "https://siem.example/ingest"\n'
                    'http_token_env = "KZ_SIEM_TOKEN_UNSET"\n')
        r = self.kz("run", "--audit-log", os.path.join(self.dir, "a.jsonl"), "--", "true")
        self.assertEqual(r.returncode, 2)
        self.assertIn("KZ_SIEM_TOKEN_UNSET is not set", r.stderr)

    def test_plain_http_only_to_loopback(self):
        self.config(CONFIG + '\n[audit]\nhttp_url = "http://siem.example/ingest"\n')
        r = self.kz("check")
        self.assertEqual(r.returncode, 2)
        self.assertIn("audit.http_url must be an https:// URL", r.stderr)
        self.assertIn(".keyzero.toml:7", r.stderr)


if __name__ == "__main__":
    unittest.main()

"""Issue 17: AWS SigV4 re-signing in blind mode. The AWS secret access key never enters
the agent's processes: the agent's SDK signs with a kz token as its key, and kz (the
broker, or the fallback proxy) writes the real key's signature over the token's.

Real clients, unchanged, under `kz run --blind`: Debian's python3-boto3 and the AWS
CLI v2 (Debian's awscli), against tests/servers/aws_api.py, which verifies SigV4 as AWS
does (tests/servers/sigv4_verify.py, itself checked against the published vectors by
tests/integration/test_sigv4_verifier.py). Each test shows: the server accepted the
signatures; the key is in none of the agent's environment, output, and (read through
/proc/PID/mem at the end of the run, as root) memory; a key bound elsewhere is refused
and audited, and the server then refuses the token's signature."""
import json
import os
import secrets
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from agent_kit import PY, Control, agent_program, finish, start_blind  # noqa: E402
from kzt import BlindTestCase, ServerProcess, read_jsonl, toml_list, toml_str  # noqa: E402

AKID = "AKIAKZTESTSIGV40001"
# A 40-character key as AWS issues them (base64 alphabet), new for each test run.
KEY = secrets.token_urlsafe(40).replace("-", "+").replace("_", "/")[:40]
SM_SECRET = "db-password-from-secrets-manager"
# Temporary credentials' session token: long, with the base64 characters STS uses.
SESSION = "FwoGZXIvYXdzE" + secrets.token_urlsafe(180).replace("-", "+").replace("_", "/") + "=="
DEBIAN_PY = "/usr/bin/python3"
AWS_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws-js")

BOTO_AGENT = r'''
import os, subprocess, sys
import boto3
from botocore.config import Config
port, ca = sys.argv[1], sys.argv[2]
url = "https://localhost:%s" % port
kw = dict(endpoint_url=url, region_name="us-east-1", verify=ca)
out = {}
try:
    sm = boto3.client("secretsmanager", **kw)
    out["sm"] = sm.get_secret_value(SecretId="prod/db")["SecretString"]
except Exception as e:
    out["sm"] = "error: %s" % e
# SigV4 (botocore 1.29 still presigns S3 with SigV2 unless told; SigV2 is not re-signed).
s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"), **kw)
try:
    s3.put_object(Bucket="kzbucket", Key="hello.txt", Body=b"hello from the agent")
    out["s3"] = s3.get_object(Bucket="kzbucket", Key="hello.txt")["Body"].read().decode()
except Exception as e:
    out["s3"] = "error: %s" % e
# The agent tries to have the key itself sent: its token as an object's body.
try:
    s3.put_object(Bucket="kzbucket", Key="exfil.txt", Body=os.environ["AWS_SECRET_ACCESS_KEY"].encode())
    out["exfil"] = s3.get_object(Bucket="kzbucket", Key="exfil.txt")["Body"].read().decode()
except Exception as e:
    out["exfil"] = "error: %s" % e
# And in a JSON body written with its head (S3's body above follows a 100 Continue).
try:
    sm.get_secret_value(SecretId=os.environ["AWS_SECRET_ACCESS_KEY"])
except Exception as e:
    out["exfil_sm"] = type(e).__name__
url = s3.generate_presigned_url("get_object", Params={"Bucket": "kzbucket", "Key": "hello.txt"}, ExpiresIn=300)
out["presigned"] = subprocess.run(["curl", "-sS", "--http1.1", "--cacert", ca, url], capture_output=True,
                                  text=True).stdout
try:
    out["sts"] = boto3.client("sts", **kw).get_caller_identity()["Account"]
except Exception as e:
    out["sts"] = "error: %s" % e
out["env"] = dict(os.environ)
print("RESULT " + __import__("json").dumps(out))
say({"pid": os.getpid()})
wait()
'''


def memory_holds(pid, needles):
    """Which of needles (bytes) occur in the readable mappings of pid (as root)."""
    found = set()
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except OSError:
                continue
            for n in needles:
                if n in data:
                    found.add(n)
    return found


class SigV4Resign(BlindTestCase):
    def setUp(self):
        super().setUp()
        self.record = os.path.join(self.srv, "aws.jsonl")
        self.kenv = self.env(KZT_AWS_KEY_SRC=KEY, KZT_AWS_TOKEN_SRC=SESSION, AWS_EC2_METADATA_DISABLED="true",
                             AWS_DEFAULT_REGION="us-east-1", AWS_CA_BUNDLE=self.ca["ca"], AWS_PAGER="",
                             AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent")

    def start_server(self, session=False):
        key_file = os.path.join(self.srv, "key")
        with open(key_file, "w") as f:
            f.write(KEY)
        args = []
        if session:
            args = ["--session-token-file", os.path.join(self.srv, "token")]
            with open(args[1], "w") as f:
                f.write(SESSION)
        s = ServerProcess("aws_api.py", "--cert", self.ca["server"], "--key", self.ca["server_key"],
                          "--record", self.record, "--access-key-id", AKID, "--secret-key-file", key_file,
                          "--secrets", json.dumps({"prod/db": SM_SECRET}), *args)
        self.addCleanup(s.stop)
        self.port = s.port

    def configure(self, hosts=("localhost",), services=("s3", "secretsmanager", "sts"), session=False,
                  proxy_port=False):
        self.start_server(session)
        # node is redirected to the fallback proxy on 443 and the proxy_ports listed.
        extra = "proxy_ports = [%d]\n" % self.port if proxy_port else ""
        token = ", session_token = \"AWS_SESSION_TOKEN\"" if session else ""
        lines = ["[secrets]",
                 "AWS_SECRET_ACCESS_KEY = { provider = \"env\", ref = \"KZT_AWS_KEY_SRC\", hosts = %s, sign = \"sigv4\", "
                 "access_key_id = %s, services = %s%s }" % (toml_list(hosts), toml_str(AKID), toml_list(services), token)]
        if session:
            lines.append("AWS_SESSION_TOKEN = { provider = \"env\", ref = \"KZT_AWS_TOKEN_SRC\", hosts = %s }"
                         % toml_list(hosts))
        self.config("\n".join(lines + ["", "[blind]", "ca_file = %s" % toml_str(self.ca["ca"]), extra]))

    def accepted(self):
        return [(r["method"], r.get("service"), r.get("presigned")) for r in read_jsonl(self.record) if r["accepted"]]

    def refused(self):
        return [r for r in read_jsonl(self.record) if not r["accepted"]]

    def signs(self, decision):
        return [r for r in self.audit_events("sign") if r.get("decision") == decision]

    def run_agent(self, script, *flags):
        ctl_path = os.path.join(self.dir, "ctl.sock")
        ctl = Control(ctl_path)
        self.addCleanup(ctl.close)
        prog = self.write("agent.py", agent_program(script, ctl_path))
        run = start_blind(self, [DEBIAN_PY, prog, str(self.port), self.ca["ca"]], self.kenv, flags)
        hello = ctl.hear(run)
        in_memory = memory_holds(hello["pid"], [KEY.encode()]) if os.geteuid() == 0 else None
        ctl.answer()
        rc, out, err = finish(run)
        self.assertEqual(rc, 0, "kz exit %d\nstdout:\n%s\nstderr:\n%s" % (rc, out[-3000:], err[-3000:]))
        line = [l for l in out.splitlines() if l.startswith("RESULT ")]
        self.assertTrue(line, "the agent printed no result:\n%s\n%s" % (out[-3000:], err[-3000:]))
        return json.loads(line[0][7:]), out + err, in_memory

    def assertKeyNowhere(self, text, in_memory, memory_read=True):
        self.assertNotExposed(text, KEY, "agent and kz output")
        with open(self.audit_path) as f:
            self.assertNotIn(KEY, f.read(), "the audit log holds the key")
        if not memory_read:
            return
        if in_memory is None:
            print("SKIP memory read: not root (the shim makes the agent non-dumpable)")
        else:
            self.assertEqual(in_memory, set(), "the agent's memory held the real secret access key")

    def test_boto3_signed_by_kz(self):
        self.configure()
        res, text, in_memory = self.run_agent(BOTO_AGENT)
        self.assertEqual(res["sm"], SM_SECRET, "GetSecretValue: %s\n%s" % (res, self.audit_dump()))
        self.assertEqual(res["s3"], "hello from the agent", "PutObject/GetObject: %s\n%s" % (res, self.audit_dump()))
        self.assertEqual(res["presigned"], "hello from the agent", "presigned GET by curl: %s" % res)
        self.assertEqual(res["sts"], "123456789012", "GetCallerIdentity: %s" % res)
        # The agent's environment: the key id, and a token (of the key's length) for the key.
        self.assertEqual(res["env"]["AWS_ACCESS_KEY_ID"], AKID)
        self.assertToken(res["env"]["AWS_SECRET_ACCESS_KEY"], len(KEY))
        self.assertNotIn("KZT_AWS_KEY_SRC", res["env"])
        # The key's token in a request body stays the token: a signing key is never sent.
        self.assertEqual(res["exfil"], res["env"]["AWS_SECRET_ACCESS_KEY"], "the stored object: %r" % res["exfil"][:8])
        refused = self.audit_events("swap", decision="refuse", secret="AWS_SECRET_ACCESS_KEY")
        self.assertTrue([r for r in refused if r.get("path") == "/" and "is a signing key" in r["reason"]],
                        self.audit_dump())
        self.assertTrue([r for r in refused if r.get("path") in ("/kzbucket/exfil.txt", None)], self.audit_dump())
        acc = self.accepted()
        for want in [("POST", "secretsmanager", False), ("PUT", "s3", False), ("GET", "s3", False),
                     ("GET", "s3", True), ("POST", "sts", False)]:
            self.assertIn(want, acc, "the server did not accept %r; it accepted %r, refused %r" % (
                want, acc, self.refused()))
        self.assertEqual(self.refused(), [])
        allowed = self.signs("allow")
        self.assertEqual({r["service"] for r in allowed}, {"s3", "secretsmanager", "sts"})
        self.assertTrue(all(r["secret"] == "AWS_SECRET_ACCESS_KEY" and r["region"] == "us-east-1" and
                            r["host"] == "localhost" for r in allowed), allowed)
        self.assertKeyNowhere(text, in_memory)
        summary = self.kz("audit", "summary", self.audit_path, env=self.kenv).stdout
        self.assertRegex(summary, r"requests signed per secret \(AWS SigV4\):\n\s+AWS_SECRET_ACCESS_KEY\s+%d\n"
                         % len(allowed), summary)

    def test_boto3_with_a_session_token(self):
        # Temporary credentials: the SDK signs x-amz-security-token holding the token's
        # token; kz signs the request with the real token swapped in.
        self.configure(session=True)
        res, text, in_memory = self.run_agent(BOTO_AGENT)
        self.assertEqual(res["env"]["AWS_SESSION_TOKEN"][:7], "KZ_TOK_")
        self.assertEqual(res["sm"], SM_SECRET, "GetSecretValue: %s\n%s" % (res, self.audit_dump()))
        self.assertEqual(res["s3"], "hello from the agent", res)
        self.assertEqual(res["sts"], "123456789012", res)
        acc = self.accepted()
        for want in [("POST", "secretsmanager", False), ("PUT", "s3", False), ("GET", "s3", False),
                     ("POST", "sts", False)]:
            self.assertIn(want, acc, "refused: %r" % self.refused())
        # The presigned URL carries the token in X-Amz-Security-Token; curl sends it and
        # the shim swaps it and signs the URL as sent.
        self.assertEqual(res["presigned"], "hello from the agent", res)
        self.assertEqual(self.refused(), [])
        self.assertKeyNowhere(text, in_memory)

    # -- a credential set from one source (format = "aws-credentials") ----------------------

    def configure_set(self, provider_lines, ref):
        """The key, its id and its session token from one JSON credential set that `ref`
        gives; no access_key_id written in the config."""
        self.start_server(session=True)
        # No env provider here: the agent's environment must not carry the values either.
        for name in ("KZT_AWS_KEY_SRC", "KZT_AWS_TOKEN_SRC"):
            self.kenv.pop(name, None)
        self.config("\n".join(["[secrets]",
                               "AWS_SECRET_ACCESS_KEY = { provider = %s, ref = %s, format = \"aws-credentials\", "
                               "sign = \"sigv4\", hosts = [\"localhost\"], session_token = \"AWS_SESSION_TOKEN\" }"
                               % (toml_str(provider_lines[0]), toml_str(ref)),
                               "AWS_SESSION_TOKEN = { from = \"AWS_SECRET_ACCESS_KEY\", hosts = [\"localhost\"] }",
                               *provider_lines[1:],
                               "", "[blind]", "ca_file = %s" % toml_str(self.ca["ca"])]))

    def check_set_run(self):
        res, text, in_memory = self.run_agent(BOTO_AGENT)
        self.assertEqual(res["env"]["AWS_ACCESS_KEY_ID"], AKID)
        self.assertToken(res["env"]["AWS_SECRET_ACCESS_KEY"], len(KEY))
        self.assertEqual(res["env"]["AWS_SESSION_TOKEN"][:7], "KZ_TOK_")
        self.assertEqual(res["sm"], SM_SECRET, "GetSecretValue: %s\n%s" % (res, self.audit_dump()))
        self.assertEqual(res["s3"], "hello from the agent", res)
        self.assertEqual(res["sts"], "123456789012", res)
        for want in [("POST", "secretsmanager", False), ("PUT", "s3", False), ("GET", "s3", False)]:
            self.assertIn(want, self.accepted(), "refused: %r" % self.refused())
        self.assertKeyNowhere(text, in_memory)
        self.assertNotExposed(text, SESSION, "agent and kz output")
        with open(self.audit_path) as f:
            self.assertNotIn(SESSION, f.read())

    def test_boto3_with_a_credential_process_set(self):
        # An exec provider printing what credential_process prints (aws-vault export,
        # a vendor's CLI): id, key and session token of one set.
        creds = self.write("creds.json", json.dumps({"Version": 1, "AccessKeyId": AKID, "SecretAccessKey": KEY,
                                                     "SessionToken": SESSION, "Expiration": "2099-01-01T00:00:00Z"}))
        self.configure_set(["exec"], "cat " + creds)
        self.check_set_run()

    def test_boto3_with_a_vault_aws_engine_set(self):
        # Vault's AWS secrets engine answers aws/creds/ROLE with access_key, secret_key and
        # security_token; `#*` hands kz the whole set.
        data = self.write("vault-data.json", json.dumps(
            {"kv1": {"aws": {"creds/ci": {"access_key": AKID, "secret_key": KEY, "security_token": SESSION}}}}))
        vault = ServerProcess("vault_server.py", "--data", data, "--token", "vault-root-token",
                              "--cert", self.ca["server"], "--key", self.ca["server_key"])
        self.addCleanup(vault.stop)
        token = self.write("vault-token", "vault-root-token\n")
        self.configure_set(["vault", "", "[providers.vault]", "address = %s" % toml_str("https://127.0.0.1:%d" % vault.port),
                            "token_file = %s" % toml_str(token), "ca_cert = %s" % toml_str(self.ca["ca"])],
                           "aws/creds/ci#*")
        self.check_set_run()

    def test_bound_elsewhere_is_refused(self):
        self.configure(hosts=("s3.amazonaws.com",))
        res, text, in_memory = self.run_agent(BOTO_AGENT)
        self.assertTrue(res["sm"].startswith("error"), res)
        self.assertTrue(res["s3"].startswith("error"), res)
        self.assertEqual(self.accepted(), [], "the server accepted a request kz must not have signed")
        refused = self.signs("refuse")
        self.assertTrue(refused, self.audit_dump())
        self.assertTrue(all("localhost" in r["reason"] for r in refused), refused)
        self.assertEqual(self.signs("allow"), [])
        self.assertKeyNowhere(text, in_memory)

    def test_service_not_allowed_is_refused(self):
        self.configure(services=("s3",))
        res, _, _ = self.run_agent(BOTO_AGENT)
        self.assertEqual(res["s3"], "hello from the agent", res)
        self.assertTrue(res["sm"].startswith("error"), res)
        self.assertTrue(any("secretsmanager" in r["reason"] for r in self.signs("refuse")), self.audit_dump())

    def test_node_sdk_through_the_proxy(self):
        modules = os.path.join(AWS_JS, "node_modules")
        self.assertTrue(os.path.isdir(os.path.join(modules, "@aws-sdk", "client-s3")),
                        "the AWS SDK for JavaScript is not installed: run scripts/setup-aws-js-tools")
        self.configure(proxy_port=True)
        self.kenv["NODE_PATH"] = modules
        self.kenv["NODE_EXTRA_CA_CERTS"] = self.ca["ca"]
        ctl_path = os.path.join(self.dir, "ctl.sock")
        ctl = Control(ctl_path)
        self.addCleanup(ctl.close)
        run = start_blind(self, ["node", os.path.join(AWS_JS, "agent.cjs"), str(self.port), ctl_path], self.kenv)
        hello = ctl.hear(run)
        in_memory = memory_holds(hello["pid"], [KEY.encode()]) if os.geteuid() == 0 else None
        ctl.answer()
        rc, out, err = finish(run)
        self.assertEqual(rc, 0, "kz exit %d\nstdout:\n%s\nstderr:\n%s" % (rc, out[-3000:], err[-3000:]))
        res = json.loads([l for l in out.splitlines() if l.startswith("RESULT ")][0][7:])
        self.assertEqual(res, {"sm": SM_SECRET, "s3": "hello from node", "sts": "123456789012"},
                         "%s\n%s" % (res, self.audit_dump()))
        self.assertEqual(self.refused(), [])
        allowed = self.signs("allow")
        self.assertEqual({r["service"] for r in allowed}, {"s3", "secretsmanager", "sts"})
        self.assertTrue(all(r.get("via") == "proxy" for r in allowed), allowed)
        self.assertKeyNowhere(out + err, in_memory)

    def test_aws_cli(self):
        self.configure()
        script = ("/usr/bin/aws --endpoint-url https://localhost:{p} secretsmanager get-secret-value --secret-id prod/db "
                  "--query SecretString --output text && "
                  "echo cli-body > {d}/body.txt && "
                  "/usr/bin/aws --endpoint-url https://localhost:{p} s3api put-object --bucket kzbucket --key cli.txt "
                  "--body {d}/body.txt >/dev/null && "
                  "/usr/bin/aws --endpoint-url https://localhost:{p} s3api get-object --bucket kzbucket --key cli.txt "
                  "{d}/got.txt >/dev/null && cat {d}/got.txt && "
                  "/usr/bin/aws --endpoint-url https://localhost:{p} sts get-caller-identity --query Account --output text"
                  ).format(p=self.port, d=self.dir)
        r = self.sh(script, env=self.kenv, flags=())
        self.assertEqual(r.returncode, 0, "stdout:\n%s\nstderr:\n%s\naudit:\n%s" % (
            r.stdout[-3000:], r.stderr[-3000:], self.audit_dump()))
        self.assertEqual(r.stdout.split(), [SM_SECRET, "cli-body", "123456789012"])
        self.assertEqual(self.refused(), [])
        self.assertEqual({r["service"] for r in self.signs("allow")}, {"s3", "secretsmanager", "sts"})
        # Each aws process ends with its command; the agent memory read is the boto3 test's
        # (the same botocore under the same shim).
        self.assertKeyNowhere(r.stdout + r.stderr, None, memory_read=False)
        self.assertNotIn(KEY, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()

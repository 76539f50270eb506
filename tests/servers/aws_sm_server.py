#!/usr/bin/env python3
"""Local AWS Secrets Manager for tests (JSON 1.1 protocol: GetSecretValue, and
PutSecretValue to rotate a secret).

It checks the SigV4 signature of every request itself (recomputed with hashlib/hmac from
the request as received and the credentials given by flags) and answers like AWS:
  * unknown access key id, or a session token that does not match
    -> 400 UnrecognizedClientException
  * signature mismatch, malformed Authorization, skewed/missing X-Amz-Date
    -> 400 InvalidSignatureException / IncompleteSignatureException
  * unknown secret or version -> 400 ResourceNotFoundException
  * unknown X-Amz-Target -> 400 UnknownOperationException

Secrets come from a JSON file (--secrets):
  {"prod/db": {"SecretString": "...", "ARN": "arn:...:secret:prod/db-AbCdEf",
               "VersionId": "v2", "Previous": {"SecretString": "...", "VersionId": "v1"}},
   "bin/key": {"SecretBinary": "<base64>"}}
"ARN" and "VersionId" are optional (derived from the name). "Previous" is served for
VersionStage AWSPREVIOUS (or its VersionId).

PutSecretValue {SecretId, SecretString | SecretBinary, ClientRequestToken?} stores a new
version and, as AWS does when VersionStages is not given, moves AWSCURRENT to it (the
version that had it becomes AWSPREVIOUS); the VersionId is ClientRequestToken, else a new
UUID. Answers {ARN, Name, VersionId, VersionStages}.

Behaviour switches, by secret name:
  slow/...       sleep --slow-seconds (default 10) before answering (client timeouts)
  malformed/...  answer 200 with a body that is not valid JSON
"""
import datetime
import hashlib
import hmac
import json
import re
import sys
import threading
import time
import uuid

# The test servers' one SigV4 canonicalisation (sigv4_verify.py).
from sigv4_verify import canonical_query, uri_encode
from sigv4_verify import normalize as normalize_path
from tls_server_base import JsonHandler, common_args, serve

ACCOUNT = "123456789012"
AMZ_JSON = "application/x-amz-json-1.1"


def collapse(v):
    return " ".join(v.split())


class Handler(JsonHandler):
    def aws_error(self, status, type_, message):
        self.send_json(status, {"__type": type_, "Message": message}, content_type=AMZ_JSON)

    # ------------------------------------------------------------ SigV4 verification
    def verify_signature(self, body):
        cfg = self.server.cfg
        auth = self.headers.get("Authorization", "")
        m = re.match(r"^AWS4-HMAC-SHA256 Credential=([^/,]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,"
                     r"\s*SignedHeaders=([a-z0-9;\-]+),\s*Signature=([0-9a-f]{64})$", auth)
        if not m:
            if not auth:
                return (400, "MissingAuthenticationTokenException", "Missing Authentication Token")
            return (400, "IncompleteSignatureException",
                    "Authorization header requires Credential, SignedHeaders and Signature")
        akid, date, region, service, signed, signature = m.groups()
        if akid != cfg.access_key_id:
            return (400, "UnrecognizedClientException",
                    "The security token included in the request is invalid.")
        if cfg.session_token is not None and \
                self.headers.get("X-Amz-Security-Token") != cfg.session_token:
            return (400, "UnrecognizedClientException",
                    "The security token included in the request is invalid.")
        if service != "secretsmanager" or region != cfg.region:
            return (400, "InvalidSignatureException",
                    "Credential should be scoped to a valid region/service.")
        amz_date = self.headers.get("X-Amz-Date", "")
        try:
            when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.timezone.utc)
        except ValueError:
            return (400, "IncompleteSignatureException", "X-Amz-Date is missing or malformed")
        if amz_date[:8] != date:
            return (400, "InvalidSignatureException", "Credential date does not match X-Amz-Date")
        skew = abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds())
        if skew > 15 * 60:
            return (400, "InvalidSignatureException", "Signature expired")
        names = signed.split(";")
        for required in ("host", "x-amz-date"):
            if required not in names:
                return (400, "InvalidSignatureException", "%s must be signed" % required)
        if "x-amz-security-token" in self.headers and "x-amz-security-token" not in names:
            return (400, "InvalidSignatureException", "x-amz-security-token must be signed")
        lines = []
        for n in names:
            values = self.headers.get_all(n)
            if values is None:
                return (400, "InvalidSignatureException", "signed header %s is missing" % n)
            lines.append("%s:%s\n" % (n, ",".join(collapse(v) for v in values)))
        path, _, query = self.path.partition("?")
        creq = "\n".join([
            self.command,
            # The wire path is encoded once already; AWS encodes it again (non-S3).
            uri_encode(normalize_path(path), True),
            canonical_query(query),
            "".join(lines),
            signed,
            hashlib.sha256(body).hexdigest(),
        ])
        scope = "%s/%s/%s/aws4_request" % (date, region, service)
        sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
        key = ("AWS4" + cfg.secret_access_key).encode()
        for part in (date, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        want = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, signature):
            return (400, "InvalidSignatureException",
                    "The request signature we calculated does not match the signature you "
                    "provided. Check your AWS Secret Access Key and signing method. Consult "
                    "the service documentation for details.")
        return None

    # ------------------------------------------------------------ dispatch
    def do_POST(self):
        body = self.read_body()
        failure = self.verify_signature(body)
        if failure:
            return self.aws_error(*failure)
        target = self.headers.get("X-Amz-Target", "")
        if self.headers.get("Content-Type", "").split(";")[0].strip() != AMZ_JSON:
            return self.aws_error(400, "SerializationException",
                                  "Content-Type must be " + AMZ_JSON)
        if target == "secretsmanager.GetSecretValue":
            return self.get_secret_value(body)
        if target == "secretsmanager.PutSecretValue":
            return self.put_secret_value(body)
        return self.aws_error(400, "UnknownOperationException", "Unknown operation " + target)

    def do_GET(self):
        self.aws_error(400, "UnknownOperationException", "Use POST")

    def put_secret_value(self, body):
        try:
            req = json.loads(body)
        except ValueError:
            return self.aws_error(400, "SerializationException", "body is not JSON")
        name, entry = self.server.lookup(req.get("SecretId") or "")
        if entry is None:
            return self.aws_error(400, "ResourceNotFoundException",
                                  "Secrets Manager can't find the specified secret.")
        if ("SecretString" in req) == ("SecretBinary" in req):
            return self.aws_error(400, "InvalidParameterException",
                                  "You must provide either SecretString or SecretBinary.")
        if "VersionStages" in req and req["VersionStages"] != ["AWSCURRENT"]:
            return self.aws_error(400, "InvalidParameterException",
                                  "this test server moves only AWSCURRENT")
        vid = req.get("ClientRequestToken") or str(uuid.uuid4())
        with self.server.lock:
            previous = {k: v for k, v in entry.items() if k in ("SecretString", "SecretBinary", "VersionId")}
            previous["VersionId"] = self.server.version_id(name, entry, "AWSCURRENT")
            for k in ("SecretString", "SecretBinary"):
                entry.pop(k, None)
            entry.update({k: req[k] for k in ("SecretString", "SecretBinary") if k in req})
            entry["VersionId"] = vid
            entry["Previous"] = previous
        out = {"ARN": self.server.arn(name, entry), "Name": name, "VersionId": vid, "VersionStages": ["AWSCURRENT"]}
        return self.send_json(200, out, content_type=AMZ_JSON)

    def get_secret_value(self, body):
        try:
            req = json.loads(body)
        except ValueError:
            return self.aws_error(400, "SerializationException", "body is not JSON")
        secret_id = req.get("SecretId")
        if not isinstance(secret_id, str) or not secret_id:
            return self.aws_error(400, "InvalidParameterException", "SecretId is required")
        name, entry = self.server.lookup(secret_id)
        if entry is None:
            return self.aws_error(400, "ResourceNotFoundException",
                                  "Secrets Manager can't find the specified secret.")
        if name.startswith("slow/"):
            time.sleep(self.server.cfg.slow_seconds)
        if name.startswith("malformed/"):
            junk = b'{"ARN": "arn:aws:secretsmanager", "SecretString": "unterminated'
            self.send_response(200)
            self.send_header("Content-Type", AMZ_JSON)
            self.send_header("Content-Length", str(len(junk)))
            self.end_headers()
            self.wfile.write(junk)
            return
        stage = req.get("VersionStage")
        version_id = req.get("VersionId")
        versions = [(entry, ["AWSCURRENT"])]
        if isinstance(entry.get("Previous"), dict):
            versions.append((entry["Previous"], ["AWSPREVIOUS"]))
        chosen = None
        for ver, stages in versions:
            vid = self.server.version_id(name, ver, stages[0])
            if version_id is not None and version_id != vid:
                continue
            if stage is not None and stage not in stages:
                continue
            if stage is None and version_id is None and "AWSCURRENT" not in stages:
                continue
            chosen = (ver, stages, vid)
            break
        if chosen is None:
            return self.aws_error(400, "ResourceNotFoundException",
                                  "Secrets Manager can't find the specified secret value for "
                                  "staging label: %s" % (stage or version_id))
        ver, stages, vid = chosen
        out = {"ARN": self.server.arn(name, entry), "Name": name, "VersionId": vid,
               "VersionStages": stages, "CreatedDate": 1.523477145713E9}
        if "SecretString" in ver:
            out["SecretString"] = ver["SecretString"]
        elif "SecretBinary" in ver:
            out["SecretBinary"] = ver["SecretBinary"]
        self.send_response(200)
        data = json.dumps(out).encode()
        self.send_header("Content-Type", AMZ_JSON)
        self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main():
    ap = common_args("local AWS Secrets Manager (GetSecretValue) with SigV4 verification")
    ap.add_argument("--secrets", required=True, help="JSON file: name -> secret entry")
    ap.add_argument("--access-key-id", required=True)
    ap.add_argument("--secret-access-key", required=True)
    ap.add_argument("--session-token", default=None,
                    help="when given, requests must carry this X-Amz-Security-Token")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--slow-seconds", type=float, default=10.0)
    args = ap.parse_args()
    with open(args.secrets) as f:
        secrets = json.load(f)

    def arn(name, entry):
        return entry.get("ARN") or "arn:aws:secretsmanager:%s:%s:secret:%s-%s" % (
            args.region, ACCOUNT, name, hashlib.sha256(name.encode()).hexdigest()[:6])

    def lookup(secret_id):
        if secret_id in secrets:
            return secret_id, secrets[secret_id]
        for name, entry in secrets.items():
            if secret_id == arn(name, entry):
                return name, entry
        return secret_id, None

    def version_id(name, ver, stage):
        return ver.get("VersionId") or hashlib.sha256((name + "/" + stage).encode()).hexdigest()[:32]

    serve(Handler, args, cfg=args, arn=arn, lookup=lookup, version_id=version_id, lock=threading.Lock())


if __name__ == "__main__":
    sys.exit(main())

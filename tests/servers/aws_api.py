#!/usr/bin/env python3
"""A local AWS endpoint for the SigV4 re-signing tests (issue 17): Secrets Manager
GetSecretValue (JSON 1.1), S3 PutObject/GetObject (path-style), STS GetCallerIdentity
(query API, POST form or GET), on one TLS port.

Every request must carry a SigV4 signature made with the real secret key (--secret-key)
for --access-key-id, checked by sigv4_verify.py exactly as AWS checks it (clock skew,
presigned expiry, x-amz-content-sha256 against the body), and the session token when
--session-token is given. Each request is recorded in --record (JSON lines: method,
path, service, presigned, accepted, error) so a test can show what the server accepted.
Neither the key nor the token is ever recorded.
"""
import json
import os
import sys
import threading
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sigv4_verify import SigError, parse, verify  # noqa: E402
from tls_server_base import JsonHandler, common_args, serve  # noqa: E402

ACCOUNT = "123456789012"
LOCK = threading.Lock()


class Handler(JsonHandler):
    def record(self, entry):
        with LOCK, open(self.server.record, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def reply(self, status, body, content_type):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", "kz-test")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, service, status, code, message):
        if service == "secretsmanager":
            self.reply(status, json.dumps({"__type": code, "Message": message}), "application/x-amz-json-1.1")
        elif service == "sts":
            self.reply(status, "<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message>"
                       "</Error><RequestId>kz-test</RequestId></ErrorResponse>" % (code, message), "text/xml")
        else:
            self.reply(status, "<Error><Code>%s</Code><Message>%s</Message></Error>" % (code, message),
                       "application/xml")

    def handle_any(self):
        body = self.read_body()
        headers = list(self.headers.items())
        entry = {"method": self.command, "path": self.path.split("?")[0], "accepted": False}
        service = "s3"
        try:
            p = parse(self.command, self.path, headers)
            service = p["service"]
            entry.update(service=service, region=p["region"], presigned=p["presigned"],
                         signed_headers=p["signed"])
            if p["access_key"] != self.server.access_key_id:
                raise SigError("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist.")
            if self.server.session_token is not None:
                tokens = [v for (k, v) in headers if k.lower() == "x-amz-security-token"]
                tokens += [p["params"]["X-Amz-Security-Token"]] if "X-Amz-Security-Token" in p["params"] else []
                if tokens != [self.server.session_token]:
                    raise SigError("InvalidClientTokenId", "The security token included in the request is invalid.")
                if "x-amz-security-token" not in p["signed"] and not p["presigned"]:
                    raise SigError("InvalidSignatureException", "x-amz-security-token must be signed")
            verify(p, body, self.server.secret_key)
        except SigError as e:
            entry["error"] = e.code
            self.record(entry)
            return self.error(service, 403 if service == "s3" else 400, e.code, e.message)
        entry["accepted"] = True
        self.record(entry)
        if service == "secretsmanager":
            return self.secretsmanager(body)
        if service == "sts":
            return self.sts(body)
        if service == "s3":
            return self.s3(body)
        return self.error(service, 400, "UnknownService", "no such service here")

    def secretsmanager(self, body):
        target = self.headers.get("X-Amz-Target", "")
        if target != "secretsmanager.GetSecretValue":
            return self.error("secretsmanager", 400, "UnknownOperationException", target)
        req = json.loads(body or b"{}")
        name = req.get("SecretId", "")
        if name not in self.server.secrets:
            return self.error("secretsmanager", 400, "ResourceNotFoundException", "Secrets Manager can't find it")
        out = {"ARN": "arn:aws:secretsmanager:us-east-1:%s:secret:%s-AbCdEf" % (ACCOUNT, name), "Name": name,
               "SecretString": self.server.secrets[name], "VersionId": "v1", "VersionStages": ["AWSCURRENT"],
               "CreatedDate": 1700000000}
        self.reply(200, json.dumps(out), "application/x-amz-json-1.1")

    def sts(self, body):
        params = dict(urllib.parse.parse_qsl(body.decode() if self.command == "POST" else self.path.partition("?")[2]))
        if params.get("Action") != "GetCallerIdentity":
            return self.error("sts", 400, "InvalidAction", "unknown action")
        self.reply(200, "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
                   "<GetCallerIdentityResult><Arn>arn:aws:iam::%s:user/kz-test</Arn><UserId>AIDAKZTEST</UserId>"
                   "<Account>%s</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>kz-test"
                   "</RequestId></ResponseMetadata></GetCallerIdentityResponse>" % (ACCOUNT, ACCOUNT), "text/xml")

    def s3(self, body):
        key = urllib.parse.unquote(self.path.split("?")[0])
        if self.command == "PUT":
            with LOCK:
                self.server.objects[key] = body
            self.send_response(200)
            self.send_header("ETag", '"kz"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if self.command in ("GET", "HEAD"):
            with LOCK:
                data = self.server.objects.get(key)
            if data is None:
                return self.error("s3", 404, "NoSuchKey", "The specified key does not exist.")
            return self.reply(200, data, "application/octet-stream")
        return self.error("s3", 405, "MethodNotAllowed", self.command)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_any


def main():
    ap = common_args(__doc__)
    ap.add_argument("--record", required=True)
    ap.add_argument("--access-key-id", required=True)
    ap.add_argument("--secret-key-file", required=True, help="file holding the real secret access key")
    ap.add_argument("--session-token-file")
    ap.add_argument("--secrets", default="{}", help="JSON {SecretId: SecretString} for GetSecretValue")
    args = ap.parse_args()
    with open(args.secret_key_file) as f:
        secret_key = f.read().strip()
    session_token = None
    if args.session_token_file:
        with open(args.session_token_file) as f:
            session_token = f.read().strip()
    serve(Handler, args, record=args.record, access_key_id=args.access_key_id, secret_key=secret_key,
          session_token=session_token, secrets=json.loads(args.secrets), objects={})


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""An OAuth 2.0 token endpoint (client credentials grant, RFC 6749 section 4.4) and a
resource server that accepts only the access tokens it issued, until they expire.

POST /oauth/token   grant_type=client_credentials, application/x-www-form-urlencoded;
                    client auth checked exactly: --client-auth basic (Authorization: Basic
                    base64(urlenc(id) ":" urlenc(secret)), RFC 6749 2.3.1) or post
                    (client_id and client_secret in the body); never both. --scope and
                    --audience, when given, must be what the request asks for. 200:
                    {"access_token", "token_type": "Bearer", "expires_in", "scope"}
                    (also "refresh_token" with --refresh-token); 401: {"error":
                    "invalid_client", "error_description"}. --chunked sends the 200 body
                    chunked (a chunk boundary inside the access token). --answer form
                    answers form-encoded (access_token=...&token_type=bearer&scope=, as
                    GitHub does without Accept: application/json); --answer token names
                    the JSON member "token" instead of "access_token".
GET  /api/data      Authorization: Bearer <a live access token>: 200 {"ok": true, "seq": n};
                    anything else 401.
GET  /api/echo      200 {"you_sent": <the Authorization header>} (a server that reflects it).

--record FILE: one JSON line per event, never a token: {"event": "issue", "seq": n,
"expires_in": s} / {"event": "refused", "reason": ...} / {"event": "resource", "status":
200|401, "seq": n|null, "kz_token": bool}. --issued FILE: the access tokens issued, one
per line (the test reads them to prove the agent never saw one; keep it outside the
agent's directory).
"""
import base64
import json
import os
import secrets
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tls_server_base as base  # noqa: E402

lock = threading.Lock()
issued = {}   # token -> (seq, expires_at)
counter = [0]


def record(path, obj):
    if not path:
        return
    with lock:
        with open(path, "a") as f:
            f.write(json.dumps(obj) + "\n")


class Handler(base.JsonHandler):
    def refuse(self, status, error, desc):
        record(self.server.opts.record, {"event": "refused", "error": error, "reason": desc})
        body = json.dumps({"error": error, "error_description": desc}).encode()
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="kz-test"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def client_ok(self, form):
        a = self.server.opts
        auth = self.headers.get("Authorization")
        in_body = "client_secret" in form or "client_id" in form
        if a.client_auth == "basic":
            if in_body:
                return "client credentials in the body (this client uses client_secret_basic)"
            if not auth or not auth.startswith("Basic "):
                return "no Basic client authentication"
            try:
                user, _, pw = base64.b64decode(auth[6:], validate=True).decode().partition(":")
            except Exception:
                return "malformed Basic credential"
            if urllib.parse.unquote_plus(user) != a.client_id or urllib.parse.unquote_plus(pw) != a.client_secret:
                return "wrong client id or secret"
            return None
        if auth:
            return "an Authorization header (this client uses client_secret_post)"
        if form.get("client_id") != [a.client_id] or form.get("client_secret") != [a.client_secret]:
            return "wrong client id or secret"
        return None

    def do_POST(self):
        a = self.server.opts
        if self.path != "/oauth/token":
            return self.refuse(404, "not_found", "no such endpoint")
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return self.refuse(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
        form = urllib.parse.parse_qs(self.read_body().decode(), keep_blank_values=True)
        why = self.client_ok(form)
        if why:
            return self.refuse(401, "invalid_client", "Client authentication failed: " + why)
        if form.get("grant_type") != ["client_credentials"]:
            return self.refuse(400, "unsupported_grant_type", "only client_credentials")
        if a.scope is not None and form.get("scope") != [a.scope]:
            return self.refuse(400, "invalid_scope", "scope must be %r" % a.scope)
        if a.audience is not None and form.get("audience") != [a.audience]:
            return self.refuse(400, "invalid_request", "audience must be %r" % a.audience)
        with lock:
            counter[0] += 1
            seq = counter[0]
        token = "at%d_%s" % (seq, secrets.token_urlsafe(30))
        with lock:
            issued[token] = (seq, time.time() + a.expires_in)
        if a.issued:
            with lock:
                with open(a.issued, "a") as f:
                    f.write(token + "\n")
        body = {"access_token": token, "token_type": "Bearer", "expires_in": a.expires_in}
        if a.scope is not None:
            body["scope"] = a.scope
        if a.refresh_token:
            body["refresh_token"] = "rt%d_%s" % (seq, secrets.token_urlsafe(30))
        ctype = "application/json"
        if a.answer == "token":
            body["token"] = body.pop("access_token")
        data = json.dumps(body).encode()
        if a.answer == "form":
            ctype = "application/x-www-form-urlencoded; charset=utf-8"
            data = urllib.parse.urlencode(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-store")
        if a.chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            cut = data.index(token.encode()) + len(token) // 2   # a chunk boundary inside the token
            for part in (data[:cut], data[cut:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        record(a.record, {"event": "issue", "seq": seq, "expires_in": a.expires_in})

    def do_GET(self):
        a = self.server.opts
        if self.path.startswith("/api/echo"):   # a debug endpoint that reflects the credential
            return self.send_json(200, {"you_sent": self.headers.get("Authorization") or ""})
        if not self.path.startswith("/api/data"):
            return self.refuse(404, "not_found", "no such endpoint")
        auth = self.headers.get("Authorization") or ""
        tok = auth[7:] if auth.startswith("Bearer ") else ""
        with lock:
            hit = issued.get(tok)
        ok = hit is not None and time.time() < hit[1]
        record(a.record, {"event": "resource", "status": 200 if ok else 401, "seq": hit[0] if hit else None,
                          "kz_token": tok.startswith("KZ_TOK_"), "host": self.headers.get("Host")})
        if ok:
            self.send_json(200, {"ok": True, "seq": hit[0]})
        else:
            self.send_json(401, {"error": "invalid_token"})


def main():
    ap = base.common_args(__doc__)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--client-secret", required=True)
    ap.add_argument("--client-auth", choices=["basic", "post"], default="basic")
    ap.add_argument("--scope")
    ap.add_argument("--audience")
    ap.add_argument("--expires-in", type=int, default=3600)
    ap.add_argument("--refresh-token", action="store_true")
    ap.add_argument("--chunked", action="store_true")
    ap.add_argument("--answer", choices=["json", "form", "token"], default="json")
    ap.add_argument("--record")
    ap.add_argument("--issued")
    args = ap.parse_args()
    base.serve(Handler, args, opts=args)


if __name__ == "__main__":
    main()

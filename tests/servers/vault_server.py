#!/usr/bin/env python3
"""Local HashiCorp Vault for tests: KV v1/v2 reads and writes, database dynamic
credentials with leases, seal/unseal, and AppRole login.

Data file (--data):
  {"kv2": {"<mount>": {"<path>": {field: value, ...}}},
   "kv1": {"<mount>": {"<path>": {field: value, ...}}},
   "database": {"<mount>": {"<role>": {"default_ttl": SECONDS}}}}

  GET /v1/<kv2 mount>/data/<path>   -> {"data": {"data": {...}, "metadata": {..., "version": N}}}
  POST|PUT /v1/<kv2 mount>/data/<path> {"data": {...}} -> a new version (N+1):
                                       {"data": {"created_time", "deletion_time", "destroyed", "version"}}
  GET /v1/<kv1 mount>/<path>        -> {"data": {...}}
  GET /v1/<database mount>/creds/<role> -> new credentials each read, under a lease:
        {"lease_id": "<mount>/creds/<role>/<id>", "renewable": true,
         "lease_duration": default_ttl, "data": {"username", "password"}}
        (--record FILE: one JSON line per credential issued: lease_id, username, password)
  POST|PUT /v1/sys/seal             -> 204; from then on every request but sys/unseal
                                       gets 503 {"errors": ["Vault is sealed"]}
  POST|PUT /v1/sys/unseal {"key"}   -> {"sealed": false, ...} (any key unseals)
  POST /v1/auth/<approle mount>/login {"role_id", "secret_id"} -> auth.client_token

Requests need X-Vault-Token: the --token value or a token issued by an AppRole login.
With --namespace, requests without a matching X-Vault-Namespace get 403.
Unknown paths: 404 {"errors": []}; bad token: 403 {"errors": ["permission denied"]}.
Mount "slow": sleep --slow-seconds (default 3) before answering.
Mount "broken": 200 with a body that is not valid JSON.
Mount "sealed": 503 {"errors": ["Vault is sealed"]}.
"""
import json
import secrets
import sys
import threading
import time
import uuid

from tls_server_base import JsonHandler, common_args, serve


def envelope(data=None, auth=None):
    return {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False,
            "lease_duration": 0 if auth is None else 0, "data": data, "wrap_info": None,
            "warnings": None, "auth": auth}


class Handler(JsonHandler):
    def vault_error(self, status, errors):
        self.send_json(status, {"errors": errors})

    def namespace_ok(self):
        ns = self.server.cfg.namespace
        if not ns:
            return True
        got = (self.headers.get("X-Vault-Namespace") or "").strip("/")
        return got == ns.strip("/")

    def token_ok(self):
        tok = self.headers.get("X-Vault-Token")
        return tok is not None and (tok == self.server.cfg.token or tok in self.server.issued)

    def do_PUT(self):
        return self.do_POST()

    def do_POST(self):
        body = self.read_body()
        path = self.path.split("?", 1)[0]
        cfg = self.server.cfg
        if not self.namespace_ok():
            return self.vault_error(403, ["permission denied"])
        if path == "/v1/sys/unseal":
            self.server.sealed = False
            return self.send_json(200, {"type": "shamir", "initialized": True, "sealed": False, "t": 1, "n": 1,
                                        "progress": 0, "version": "1.15.0"})
        if self.server.sealed:
            return self.vault_error(503, ["Vault is sealed"])
        if path == "/v1/sys/seal":
            if not self.token_ok():
                return self.vault_error(403, ["permission denied"])
            self.server.sealed = True
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path.startswith("/v1/") and self.kv2_write(path[len("/v1/"):], body):
            return
        if path == "/v1/auth/%s/login" % cfg.approle_mount and cfg.role_id:
            try:
                req = json.loads(body)
            except ValueError:
                return self.vault_error(400, ["failed to parse JSON input"])
            if req.get("role_id") != cfg.role_id or req.get("secret_id") != cfg.secret_id:
                return self.vault_error(400, ["invalid role or secret ID"])
            token = "hvs.approle-" + secrets.token_hex(12)
            with self.server.lock:
                self.server.issued.add(token)
                self.server.logins += 1
            auth = {"client_token": token, "accessor": "acc-" + secrets.token_hex(4),
                    "policies": ["default"], "token_policies": ["default"], "metadata": {},
                    "lease_duration": 2764800, "renewable": True, "entity_id": "",
                    "token_type": "service", "orphan": True}
            return self.send_json(200, envelope(None, auth))
        return self.vault_error(405, ["unsupported operation"])

    def kv2_write(self, api_path, body):
        """POST /v1/<kv2 mount>/data/<path>: a new version. False when not a KV v2 path."""
        parts = api_path.split("/", 2)
        kv2 = self.server.data.get("kv2", {})
        if len(parts) < 3 or parts[0] not in kv2 or parts[1] != "data":
            return False
        if not self.token_ok():
            self.vault_error(403, ["permission denied"])
            return True
        try:
            req = json.loads(body)
        except ValueError:
            self.vault_error(400, ["failed to parse JSON input"])
            return True
        if not isinstance(req.get("data"), dict):
            self.vault_error(400, ["no data provided"])
            return True
        with self.server.lock:
            kv2[parts[0]][parts[2]] = req["data"]
            key = (parts[0], parts[2])
            self.server.versions[key] = self.server.versions.get(key, 1) + 1
            version = self.server.versions[key]
        self.send_json(200, envelope({"created_time": "2024-01-01T00:00:00.000000Z", "custom_metadata": None,
                                      "deletion_time": "", "destroyed": False, "version": version}))
        return True

    def database_creds(self, mount, rest):
        """GET /v1/<database mount>/creds/<role>: new credentials under a lease."""
        roles = self.server.data.get("database", {}).get(mount, {})
        role = rest[len("creds/"):] if rest.startswith("creds/") else None
        if role not in roles:
            return self.vault_error(400, ["unknown role: %s" % role])
        with self.server.lock:
            self.server.issued_creds += 1
            n = self.server.issued_creds
        lease_id = "%s/creds/%s/%s" % (mount, role, secrets.token_hex(12))
        creds = {"username": "v-token-%s-%d-%s" % (role, n, secrets.token_hex(4)),
                 "password": "A1a-%d-%s" % (n, secrets.token_urlsafe(24))}
        if self.server.cfg.record:
            with self.server.lock, open(self.server.cfg.record, "a") as f:
                f.write(json.dumps(dict(creds, lease_id=lease_id, n=n)) + "\n")
        out = envelope(creds)
        out["lease_id"] = lease_id
        out["renewable"] = True
        out["lease_duration"] = int(roles[role].get("default_ttl", 3600))
        return self.send_json(200, out)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/v1/sys/test/logins":   # test hook: how many AppRole logins happened
            return self.send_json(200, {"logins": self.server.logins})
        if self.server.sealed:
            return self.vault_error(503, ["Vault is sealed"])
        if not self.namespace_ok():
            return self.vault_error(403, ["permission denied"])
        if not self.token_ok():
            return self.vault_error(403, ["permission denied"])
        if not path.startswith("/v1/"):
            return self.vault_error(404, [])
        parts = path[len("/v1/"):].split("/", 1)
        mount = parts[0]
        rest = parts[1] if len(parts) > 1 else ""
        if mount == "slow":
            time.sleep(self.server.cfg.slow_seconds)
        if mount == "broken":
            junk = b'{"request_id": "x", "data": {"value": "unterminated'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(junk)))
            self.end_headers()
            self.wfile.write(junk)
            return
        if mount == "sealed":
            return self.vault_error(503, ["Vault is sealed"])
        data = self.server.data
        if mount in data.get("database", {}):
            return self.database_creds(mount, rest)
        kv2 = data.get("kv2", {})
        kv1 = data.get("kv1", {})
        if mount in kv2:
            if not rest.startswith("data/"):
                return self.vault_error(404, [])
            secret = kv2[mount].get(rest[len("data/"):])
            if secret is None:
                return self.vault_error(404, [])
            meta = {"created_time": "2024-01-01T00:00:00.000000Z", "custom_metadata": None,
                    "deletion_time": "", "destroyed": False,
                    "version": self.server.versions.get((mount, rest[len("data/"):]), 1)}
            return self.send_json(200, envelope({"data": secret, "metadata": meta}))
        if mount in kv1:
            secret = kv1[mount].get(rest)
            if secret is None:
                return self.vault_error(404, [])
            out = envelope(secret)
            out["lease_duration"] = 2764800
            return self.send_json(200, out)
        return self.vault_error(404, [])


def main():
    ap = common_args("local HashiCorp Vault (KV v1/v2, AppRole)")
    ap.add_argument("--data", required=True, help="JSON file with kv1/kv2 mounts")
    ap.add_argument("--token", required=True, help="root token accepted in X-Vault-Token")
    ap.add_argument("--namespace", default="")
    ap.add_argument("--role-id", default="")
    ap.add_argument("--secret-id", default="")
    ap.add_argument("--approle-mount", default="approle")
    ap.add_argument("--slow-seconds", type=float, default=3.0)
    ap.add_argument("--record", default="", help="append each database credential issued (JSON lines)")
    args = ap.parse_args()
    with open(args.data) as f:
        data = json.load(f)
    serve(Handler, args, cfg=args, data=data, issued=set(), logins=0, lock=threading.Lock(), versions={},
          issued_creds=0, sealed=False)


if __name__ == "__main__":
    sys.exit(main())

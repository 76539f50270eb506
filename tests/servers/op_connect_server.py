#!/usr/bin/env python3
"""Local 1Password Connect server for tests (the read endpoints used by kz).

Data file (--data):
  {"<vault name>": {"<item title>": {"fields": [{"label": ..., "value": ...,
                                                 "section": "<section label>"?, "id"?: ...}]}}}
Vault, item, field and section ids are derived from the names (26 lowercase characters) unless
given as "id" keys. Items may appear twice under one title (a list of items) to test ambiguity.

  GET /v1/vaults?filter=name eq "NAME"
  GET /v1/vaults/{vault id}/items?filter=title eq "TITLE"
  GET /v1/vaults/{vault id}/items/{item id}

Every request needs "Authorization: Bearer <--token>", else 401
{"status": 401, "message": "Invalid token signature"}. Unknown vault/item ids: 404.
Behaviour switches: a vault named "Slow" sleeps --slow-seconds (default 3) on every item
request; an item titled "broken" is served as malformed JSON.
"""
import hashlib
import json
import re
import sys
import time
import urllib.parse

from tls_server_base import JsonHandler, common_args, serve


def make_id(*parts):
    h = hashlib.sha256("/".join(parts).encode()).hexdigest()
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[int(h[i:i + 2], 16) % 36] for i in range(0, 52, 2))


def build(data):
    vaults = []
    for vname, items in data.items():
        vid = make_id("vault", vname)
        out_items = []
        for title, spec in items.items():
            for n, one in enumerate(spec if isinstance(spec, list) else [spec]):
                iid = one.get("id") or make_id("item", vname, title, str(n))
                sections, fields = {}, []
                for k, f in enumerate(one.get("fields", [])):
                    field = {"id": f.get("id") or make_id("field", iid, f["label"], str(k)),
                             "label": f["label"], "type": f.get("type", "CONCEALED"),
                             "purpose": f.get("purpose", "")}
                    if "value" in f:
                        field["value"] = f["value"]
                    if f.get("section"):
                        sid = sections.setdefault(f["section"], make_id("section", iid, f["section"]))
                        field["section"] = {"id": sid}
                    fields.append(field)
                out_items.append({
                    "id": iid, "title": title, "vault": {"id": vid}, "category": "LOGIN",
                    "version": 1, "createdAt": "2024-01-01T00:00:00Z",
                    "updatedAt": "2024-01-01T00:00:00Z",
                    "sections": [{"id": sid, "label": label} for label, sid in sections.items()],
                    "fields": fields})
        vaults.append({"id": vid, "name": vname, "items": out_items})
    return vaults


def parse_filter(query, attr):
    q = urllib.parse.parse_qs(query)
    f = q.get("filter", [None])[0]
    if f is None:
        return None
    m = re.match(r'^%s eq "((?:[^"\\]|\\.)*)"$' % attr, f)
    if not m:
        return False
    return re.sub(r'\\(.)', r'\1', m.group(1))


class Handler(JsonHandler):
    def op_error(self, status, message):
        self.send_json(status, {"status": status, "message": message})

    def do_GET(self):
        if self.headers.get("Authorization") != "Bearer " + self.server.cfg.token:
            return self.op_error(401, "Invalid token signature")
        path, _, query = self.path.partition("?")
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        vaults = self.server.vaults
        if parts == ["v1", "vaults"]:
            name = parse_filter(query, "name")
            if name is False:
                return self.op_error(400, "Invalid filter")
            out = [{k: v for k, v in vt.items() if k != "items"} for vt in vaults
                   if name is None or vt["name"] == name]
            return self.send_json(200, out)
        if len(parts) >= 4 and parts[:2] == ["v1", "vaults"] and parts[3] == "items":
            vault = next((vt for vt in vaults if vt["id"] == parts[2]), None)
            if vault is None:
                return self.op_error(404, "vault not found")
            if vault["name"] == "Slow":
                time.sleep(self.server.cfg.slow_seconds)
            if len(parts) == 4:
                title = parse_filter(query, "title")
                if title is False:
                    return self.op_error(400, "Invalid filter")
                out = [{k: v for k, v in it.items() if k not in ("fields", "sections")}
                       for it in vault["items"] if title is None or it["title"] == title]
                return self.send_json(200, out)
            if len(parts) == 5:
                item = next((it for it in vault["items"] if it["id"] == parts[4]), None)
                if item is None:
                    return self.op_error(404, "item not found")
                if item["title"] == "broken":
                    junk = b'{"id": "x", "fields": [{"label": "password", "value": "unterminated'
                    return self.send_json(200, junk)
                return self.send_json(200, item)
        return self.op_error(404, "not found")


def main():
    ap = common_args("local 1Password Connect server")
    ap.add_argument("--data", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--slow-seconds", type=float, default=3.0)
    args = ap.parse_args()
    with open(args.data) as f:
        data = json.load(f)
    serve(Handler, args, cfg=args, vaults=build(data))


if __name__ == "__main__":
    sys.exit(main())

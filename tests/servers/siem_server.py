"""A SIEM-like collector for the audit sink tests: accepts POSTed JSON arrays of audit
records and appends one JSON object per request to --record FILE:
{"path", "authorization", "content_type", "records": [...]}.

--stall: record the request (with "records": null) and then never answer, like a
collector that has stopped responding. --status N: answer N instead of 200.
Prints "PORT <n>" and exits when stdin closes (tls_server_base).
"""
import json
import threading

import tls_server_base as base

LOCK = threading.Lock()


class Handler(base.JsonHandler):
    def do_POST(self):
        body = self.read_body()
        stall = self.server.stall
        entry = {
            "path": self.path,
            "authorization": self.headers.get("Authorization"),
            "content_type": self.headers.get("Content-Type"),
            "records": None if stall else json.loads(body),
        }
        with LOCK, open(self.server.record, "a") as f:
            f.write(json.dumps(entry) + "\n")
        if stall:
            threading.Event().wait()   # never answers; the daemon thread dies with the server
        self.send_json(self.server.status, {"ok": True})


def main():
    ap = base.common_args(__doc__)
    ap.add_argument("--record", required=True)
    ap.add_argument("--stall", action="store_true")
    ap.add_argument("--status", type=int, default=200)
    args = ap.parse_args()
    base.serve(Handler, args, record=args.record, stall=args.stall, status=args.status)


if __name__ == "__main__":
    main()

"""A small HTTPS "API" for the demo and the end-to-end tests: it accepts requests whose
Authorization header carries the expected bearer credential, records every
Authorization header it receives (one line each, to --record), and answers with JSON
that echoes the header back, as careless APIs do in error messages."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from tls_server_base import JsonHandler, common_args, serve  # noqa: E402


class Handler(JsonHandler):
    def handle_any(self):
        body = self.read_body()
        auth = self.headers.get("Authorization", "")
        with open(self.server.record, "a") as f:
            f.write("%s %s Authorization: %s\n" % (self.command, self.path, auth))
        expected = "Bearer " + open(self.server.expected_file).read().strip()
        if auth != expected:
            self.send_json(401, {"error": "unauthorized", "you_sent": auth})
            return
        self.send_json(200, {"ok": True, "path": self.path, "you_sent": auth, "body_bytes": len(body)})

    do_GET = handle_any
    do_POST = handle_any


def main():
    ap = common_args("demo API")
    ap.add_argument("--expected-file", required=True, help="file holding the credential to accept")
    ap.add_argument("--record", required=True, help="append received Authorization headers here")
    args = ap.parse_args()
    serve(Handler, args, record=args.record, expected_file=args.expected_file)


if __name__ == "__main__":
    main()

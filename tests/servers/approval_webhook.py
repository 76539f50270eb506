"""An approval webhook for the approval tests (kz run --approve-via=URL, and a bundle's
approvals: webhook). kz POSTs the facts of a request that waits for a person; the answer
is the response: {"decision": "approve"|"deny", "request_hash": ..., "by": ...}.

--answers A,B,...: the answer to the 1st, 2nd, ... ask (the last one repeats):
  approve      approve, naming the request's own hash
  deny         deny
  wrong-hash   "approve", naming another request's hash (kz must deny)
  hang         no answer until kz gives up (or this server exits)
--record FILE: one JSON line per ask (what kz sent), written before the answer.
TLS with --cert/--key (the test CA's leaf). Prints "PORT n"; exits when stdin closes.
"""
import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
from tls_server_base import JsonHandler, common_args, serve  # noqa: E402

STOP = threading.Event()


class Handler(JsonHandler):
    def do_POST(self):
        body = self.read_body()
        try:
            ask = json.loads(body)
        except ValueError:
            self.send_json(400, {"error": "not JSON"})
            return
        with self.server.lock:
            n = self.server.count
            self.server.count += 1
            if self.server.record:
                with open(self.server.record, "a") as f:
                    f.write(json.dumps({"path": self.path, "ask": ask, "headers": dict(self.headers)}) + "\n")
        answers = self.server.answers
        answer = answers[min(n, len(answers) - 1)]
        if answer == "hang":
            STOP.wait(600)
            return
        h = ask.get("request_hash", "")
        if answer == "approve":
            self.send_json(200, {"decision": "approve", "request_hash": h, "by": "test approver"})
        elif answer == "wrong-hash":
            self.send_json(200, {"decision": "approve", "request_hash": "0" * 64, "by": "test approver"})
        else:
            self.send_json(200, {"decision": "deny", "request_hash": h, "by": "test approver"})


def main():
    ap = common_args(__doc__)
    ap.add_argument("--answers", default="approve")
    ap.add_argument("--record")
    args = ap.parse_args()
    try:
        serve(Handler, args, answers=args.answers.split(","), record=args.record, count=0, lock=threading.Lock())
    finally:
        STOP.set()


if __name__ == "__main__":
    main()

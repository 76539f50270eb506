"""Issue 15, class 8: request smuggling past `paths`.

API_KEY may be used only under /v1/. The agent writes raw HTTP/1.1 so that the request
carrying the token is not the one a naive check looks at: two requests in one write, a
head split just before the token, a POST with Content-Length: 0 followed by a second
request, a write that starts with CRLF, conflicting framing headers, and path spellings
a server may resolve outside /v1/ (%2e%2e, %252e%252e, ..;, overlong UTF-8 %c0%ae, //).
kz follows each connection's request boundaries and decides every token against the
request it belongs to: the value reaches only canonical paths under /v1/, and each
refusal is audited with the path that carried the token. For the shim (--blind) and the
fallback proxy (--blind=proxy).
"""
import json
import os
import unittest

from hostile import CANARY, PROGRAMS, PY, HostileBase

RAW = os.path.join(PROGRAMS, "raw_tls.py")
H = "Host: localhost\r\n"
AUTH = "Authorization: Bearer {TOK}\r\n"


def req(path, extra="", token=True, method="GET"):
    return "%s %s HTTP/1.1\r\n%s%s%s\r\n" % (method, path, H, AUTH if token else "", extra)


# Paths a server may resolve outside /v1/ (each also tried as is: never swapped).
SPELLINGS = ["/v1/%2e%2e/admin/enc", "/v1/%252e%252e/admin/double", "/v1/..;/admin/semicolon",
             "/v1/%c0%ae%c0%ae/admin/overlong", "/v1//admin/slashes", "/v1/..%5cadmin/backslash"]


class RequestSmugglingTest(HostileBase):
    def plan(self):
        return [
            # Two requests in one write: the first may carry the value, the second not.
            [{"write": req("/v1/ok/two-first") + req("/admin/two-second")}, {"read": 2}],
            # A head split just before the token, after a complete request in the same write.
            [{"write": req("/v1/ok/split-first", token=False) + "GET /admin/split HTTP/1.1\r\n" + H +
              "Authorization: Bearer "}, {"write": "{TOK}\r\n\r\n"}, {"read": 2}],
            # POST with Content-Length: 0, then a second request in the same write.
            [{"write": req("/v1/ok/cl0", "Content-Length: 0\r\n", token=False, method="POST") +
              req("/admin/cl0")}, {"read": 2}],
            # A write that starts with CRLF before the next request line.
            [{"write": req("/v1/ok/crlf-first", token=False)}, {"read": 1},
             {"write": "\r\n" + req("/admin/crlf")}, {"read": 1}],
            # Content-Length and Transfer-Encoding together: servers disagree on the body.
            [{"write": req("/v1/ok/te", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", token=False,
                           method="POST") + "0\r\n\r\n" + req("/admin/te")}, {"read": 2}],
            # A body on the allowed path: the token in it goes there (the control).
            # (The token has the value's length: the body's length is known before it.)
            [{"write": "POST /v1/ok/body HTTP/1.1\r\n" + H + "Content-Length: %d\r\n\r\n" % (
                len('{"key":""}') + len(CANARY))}, {"write": '{"key":"{TOK}"}'}, {"read": 1}],
        ] + [[{"write": req(p)}, {"read": 1}] for p in SPELLINGS]

    def smuggle(self, mode):
        self.bind(paths=["/v1/*"])
        ca = self.ca["ca"] if mode == "shim" else "-"
        plan = self.plan()
        r, tok = self.run_agent(mode, "%s %s localhost %d %s '%s'" % (PY, RAW, self.port, ca, json.dumps(plan)))
        recs = self.records(self.rec)
        valued = sorted(rec["target"] for rec in self.valued(recs))
        # Only canonical paths under /v1/ ever got the value, and those that should did.
        self.assertEqual(valued, ["/v1/ok/body", "/v1/ok/two-first"],
                         "the value went to %r\nagent:\n%s\naudit:\n%s" % (valued, r.stdout[-2000:], self.audit_dump()))
        # Each refusal names the path that carried the token.
        for path in ("/admin/two-second", "/admin/split", "/admin/cl0", "/admin/crlf"):
            self.assertRefusal(r"may not be used for %s" % path, path=path)
        for p in SPELLINGS:
            self.assertRefusal(r"may not be used for .*(canonical|allowed paths)", path=p)
        self.assertRefusal(r"could not be identified")
        exes = " ".join(str(x.get("exe")) for x in self.swaps("refuse"))
        self.assertIn("python", exes)

    def test_shim(self):
        self.smuggle("shim")

    def test_blind_proxy(self):
        self.smuggle("proxy")


if __name__ == "__main__":
    unittest.main()

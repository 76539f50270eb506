"""Issue 15, class 7: domain fronting.

The TLS connection verifies for the bound host (SNI localhost), but the request names
another host: a Host header (curl -H "Host: ...", or a second Host header), or an
absolute-form target ("GET https://evil.example/... HTTP/1.1"). A server (or a CDN in
front of many) routes by those names, so the value must not be swapped in: the token goes
out unchanged and the refusal is audited with the Host the request carried. A connection
the broker granted reuse for must not carry the value to a later request fronted for
another host either. For the shim (--blind) and the fallback proxy (--blind=proxy).
"""
import json
import os
import unittest

from hostile import CANARY, PROGRAMS, PY, HostileBase

RAW = os.path.join(PROGRAMS, "raw_tls.py")


def get(path, host_lines="Host: localhost\r\n", target=None):
    return ("GET %s HTTP/1.1\r\n%sAuthorization: Bearer {TOK}\r\n\r\n"
            % (target or path, host_lines))


class DomainFrontingTest(HostileBase):
    def raw(self, mode, plan):
        ca = self.ca["ca"] if mode == "shim" else "-"
        return "%s %s localhost %d %s '%s'" % (PY, RAW, self.port, ca, json.dumps(plan))

    def fronting(self, mode):
        self.bind()
        curl_ca = '--cacert "%s" ' % self.ca["ca"] if mode == "shim" else ""
        base = "https://localhost:%d" % self.port
        plan = [
            # The control: the request names the verified host.
            [{"write": get("/v1/fronting-control")}, {"read": 1}],
            # A second Host header naming another host.
            [{"write": get("/v1/fronting-dup", "Host: localhost\r\nHost: evil.example\r\n")}, {"read": 1}],
            # Absolute form naming another host (the Host header agrees with the SNI).
            [{"write": get("/v1/fronting-absolute", target="https://evil.example/v1/fronting-absolute")},
             {"read": 1}],
            # One keep-alive connection: the first request is granted (no paths rule),
            # the second names another host on the same connection.
            [{"write": get("/v1/fronting-grant-ok")}, {"read": 1},
             {"write": get("/v1/fronting-grant-evil", "Host: evil.example\r\n")}, {"read": 1}],
        ]
        script = ('curl -sS --http1.1 --max-time 20 %s-H "Host: evil.example" -H "Authorization: Bearer $API_KEY" '
                  '%s/v1/fronting-curl; echo; %s' % (curl_ca, base, self.raw(mode, plan)))
        fronted = ["/v1/fronting-curl", "/v1/fronting-dup", "/v1/fronting-grant-evil"]
        if mode == "shim":
            # GnuTLS (Debian's wget) through the shim's other hook.
            script += ('; wget -q -O - --timeout=20 --tries=1 --ca-certificate="%s" --header="Host: evil.example" '
                       '--header="Authorization: Bearer $API_KEY" %s/v1/fronting-wget; echo' % (self.ca["ca"], base))
            fronted.append("/v1/fronting-wget")
        r, tok = self.run_agent(mode, script)
        recs = {rec["path"]: rec for rec in self.records(self.rec)}
        for path in fronted:
            self.assertIn(path, recs, "the server never got %s\n%s" % (path, r.stdout[-2000:]))
            self.assertEqual(self.auth_of(recs[path]), "Bearer " + tok,
                             "%s: the value went to a request for another host" % path)
        absolute = [rec for rec in self.records(self.rec) if rec["target"].startswith("https://evil.example")]
        self.assertEqual(len(absolute), 1)
        self.assertEqual(self.auth_of(absolute[0]), "Bearer " + tok, "absolute form: the value was sent")
        # The same client, naming the verified host, still gets its value swapped.
        self.assertEqual(self.auth_of(recs["/v1/fronting-control"]), "Bearer " + CANARY)
        self.assertEqual(self.auth_of(recs["/v1/fronting-grant-ok"]), "Bearer " + CANARY)
        # Audited: the real host the request named, for curl and python.
        refs = self.assertRefusal(r"evil\.example.*not localhost|more than one Host")
        self.assertTrue(any(x.get("http_host", "").startswith("evil.example") for x in refs), refs)
        self.assertRefusal(r"evil\.example", path="/v1/fronting-grant-evil")
        self.assertRefusal(r"evil\.example", path="/v1/fronting-curl", http_host="evil.example")
        self.assertRefusal(r"more than one Host", path="/v1/fronting-dup")
        exes = " ".join(str(x.get("exe")) for x in refs)
        self.assertIn("curl", exes)
        self.assertIn("python", exes)
        if mode == "shim":
            self.assertRefusal(r"evil\.example", path="/v1/fronting-wget", channel="gnutls")
        for x in [x for x in self.swaps("allow") if x.get("uses") is None]:
            self.assertEqual(x.get("http_host"), "localhost", "an allowed swap for another Host: %r" % x)

    def test_shim(self):
        self.fronting("shim")

    def test_blind_proxy(self):
        self.fronting("proxy")


if __name__ == "__main__":
    unittest.main()

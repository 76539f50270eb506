"""Issue 15, class 6: a grant moving to another TLS object.

A connection grant (the broker's "reuse this answer on this connection") is kept by the
shim under the TLS object's address. The agent frees a session through the TLS library's
own symbol (past the shim's hook), makes a new session until it sits at the same address,
and points it at a host the secret is not bound to. The unbound host must get the token,
never the value; the refusal is audited with that host.

Runs with GnuTLS and OpenSSL, each two ways: the new session made through the normal
(hooked) call, and entirely past the hooks (for OpenSSL also with every SSL ex-data
free callback removed), which leaves only the grant's peer check (SNI + chain) to stop it.
For OpenSSL also without a new object: the same SSL readied for a new connection with the
library's own SSL_clear.
"""
import os
import unittest

from hostile import OneProgramCase
from kzt import make_leaf

CANARY = "kzCANARY/6e1b+2d9f_grant4reuse.x7Q"
UNBOUND = "unbound.test"


class GrantIdentityTest(OneProgramCase):
    PROGRAM = "grant_reuse"
    LIBS = ("-lgnutls", "-lssl", "-lcrypto", "-ldl")
    VALUE = CANARY

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.unbound_cert = make_leaf(cls.ca, cls.cadir, "DNS:" + UNBOUND)

    def unbound_server(self):
        self._servers += 1
        rec = os.path.join(self.srv, "unbound-%d.jsonl" % self._servers)
        from kzt import ServerProcess
        s = ServerProcess("echo_api.py", "--record", rec, "--cert", self.unbound_cert[0],
                          "--key", self.unbound_cert[1])
        self.addCleanup(s.stop)
        return s.port, rec

    def attempt(self, lib, variant, refused_host=UNBOUND):
        bport, brec = self.echo_server("tls")
        self.bound_record = brec
        uport, urec = self.unbound_server()
        r = self.run_blind(self.prog, lib, variant, self.ca["ca"], "localhost", str(bport), UNBOUND, str(uport),
                           env=self.kenv)
        self.assertEqual(r.returncode, 0, "kz exit %d\nstdout:\n%s\nstderr:\n%s" % (
            r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
        self.assertNotExposed(r.stdout + r.stderr, CANARY, "the program's and kz's output")
        self.assertIn("SAME_POINTER 1", r.stdout,
                      "the new session did not get the freed one's address; the test proves nothing")
        first = self.records(brec, "/first")
        self.assertEqual(len(first), 1)
        self.assertTrue(self.auth_of(first[0]) == "Bearer " + CANARY,
                        "the bound host did not get the value: no grant was made\n" + self.audit_dump())
        grants = [a for a in self.audit_events("swap", decision="allow") if a.get("grant") == "connection"]
        self.assertTrue(grants, "the broker gave no connection grant:\n" + self.audit_dump())
        second = self.records(urec, "/second")
        self.assertEqual(len(second), 1, "the unbound server got no request")
        got = self.auth_of(second[0])
        # assertTrue, not assertNotEqual: a failure message must not print the value.
        self.assertTrue(got != "Bearer " + CANARY, "the unbound host received the value (%s, %s)" % (lib, variant))
        self.assertTrue(got.startswith("Bearer KZ_TOK_"), "the unbound host should see the token")
        refusals = [a for a in self.audit_events("swap", decision="refuse") if a.get("host") == refused_host]
        self.assertTrue(refusals, "no refusal audited for %s:\n%s" % (refused_host, self.audit_dump()))
        self.assertIn("grant_reuse", refusals[0].get("exe", ""))

    def test_gnutls_new_session_through_the_hook(self):
        self.attempt("gnutls", "hooked-new")

    def test_gnutls_everything_past_the_hooks(self):
        self.attempt("gnutls", "bypass-all")

    def test_openssl_new_session_through_the_hook(self):
        self.attempt("openssl", "hooked-new")

    def test_openssl_everything_past_the_hooks_and_ex_data(self):
        self.attempt("openssl", "bypass-all")

    def test_openssl_same_object_cleared_past_the_hook(self):
        self.attempt("openssl", "clear-past-hook")

    def test_openssl_cleared_object_keeping_the_bound_session_and_name(self):
        # Until its handshake runs, the object reports the bound peer's chain and name: a
        # grant's recheck must not take them for the live connection's. The request names
        # the bound host (SNI localhost, Host localhost), so the refusal is audited for it.
        self.attempt("openssl", "clear-keep-session", refused_host="localhost")
        again = self.records(self.bound_record, "/again")
        self.assertEqual(len(again), 1)
        self.assertTrue(self.auth_of(again[0]) == "Bearer " + CANARY, "the grant did not answer the second request")


if __name__ == "__main__":
    unittest.main()

"""Class 3 (memory BIOs), after the handshake: the agent completes a verified handshake
on a socket, then swaps the object's write BIO for a memory BIO (SSL_set0_wbio). Its next
SSL_write lands as records in memory the agent holds. The shim must refuse the swap: the
object's handshake was seen writing to a TCP socket, and before 2026-12-08 that was
taken for where every later record goes, so the value was swapped into the agent's
memory BIO. Also with one memory BIO as both read and write BIO.

The server must get the token, never the value, and the refusal must be audited with the
memory BIO as its reason.
"""
import unittest

from hostile import OneProgramCase

CANARY = "kzCANARY/0b7e+5c2a_wbio9swap.Qm"


class WriteBioSwapTest(OneProgramCase):
    PROGRAM = "wbio_swap"
    LIBS = ("-lssl", "-lcrypto")
    VALUE = CANARY

    def test_a_memory_write_bio_set_after_the_handshake_is_refused(self):
        self.refused("write-only")

    def test_one_memory_bio_for_both_directions_is_refused(self):
        # Read and write BIO are one object, as a program's own BIO over a socket is; it
        # is OpenSSL's memory buffer all the same.
        self.refused("same-memory")

    def refused(self, variant):
        port, rec = self.echo_server("tls")
        r = self.run_blind(self.prog, variant, self.ca["ca"], str(port), env=self.kenv, timeout=60)
        self.assertEqual(r.returncode, 0, "kz exit %d\nstdout:\n%s\nstderr:\n%s" % (
            r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
        self.assertIn("DONE", r.stdout)
        self.assertNotExposed(r.stdout + r.stderr, CANARY, "the program's and kz's output")
        got = self.records(rec, "/wbio-swap")
        self.assertEqual(len(got), 1)
        auth = self.auth_of(got[0])
        # assertTrue, not assertEqual: a failure message must not print the value.
        self.assertTrue(auth != "Bearer " + CANARY, "the value was swapped into a memory BIO")
        self.assertTrue(auth.startswith("Bearer KZ_TOK_"), "the server should see the token")
        refusals = [a for a in self.audit_events("swap", decision="refuse") if a.get("secret") == "API_KEY"]
        self.assertTrue(refusals, "no refusal audited:\n" + self.audit_dump())
        self.assertIn("memory BIO", refusals[0].get("reason", ""))
        self.assertEqual(refusals[0].get("host"), "localhost")


if __name__ == "__main__":
    unittest.main()

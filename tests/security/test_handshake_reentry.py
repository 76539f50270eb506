"""A TLS handshake run inside a library call the shim makes under a connection's lock.

OpenSSL starts every first handshake with SSL_clear, called through the PLT, so the
shim's SSL_clear hook runs inside whatever call started the handshake. When that call was
the shim's own (writing a carried fragment, reading a connection's inbound stream), the
hook waited for the lock its own thread held: the program hung for good (review 53 #2).
A program that leaves its handshake to its first write is enough: Python's
`do_handshake_on_connect=False`, then a request head, hung under `kz run --blind` (the
shim sends every request head itself). A head split over writes was lost instead: the
shim held it, and the handshake the next write ran dropped it with the state (the server
got the token as the method). A hostile program clears its object past the hooks, then
reads first or writes on a connection that was HTTP/2.

Each case must finish, the bound host must get the value, and nothing the program or kz
printed may hold it.
"""
import os
import sys
import unittest

from hostile import OneProgramCase

CANARY = "kzCANARY/4c0d+91aa_hs5reentry.Zt"


# Two connections, each with its handshake left to the first sendall: one request without
# a token, then one with it.
LAZY_HANDSHAKE = r'''
import os, socket, ssl, sys
ca, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context(cafile=ca)
for path, auth in (("/plain", b""), ("/token", b"Authorization: Bearer " + os.environ["API_KEY"].encode() + b"\r\n")):
    s = ctx.wrap_socket(socket.create_connection(("localhost", port)), server_hostname="localhost",
                        do_handshake_on_connect=False)
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n" + auth + b"\r\n")
    print(s.recv(4096).split(b"\r\n")[0].decode())
    s.close()
'''


# ssl.MemoryBIO, and the handshake left to the first write: the object has no socket, so
# only this program moves the handshake's bytes (the write raises SSLWantReadError until
# it has pumped them).
LAZY_MEMORY_BIO = r'''
import os, socket, ssl, sys
ca, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context(cafile=ca)
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
sock = socket.create_connection(("127.0.0.1", port))
def pump_in():
    data = sock.recv(65536)
    if not data:
        raise SystemExit("server closed")
    incoming.write(data)
req = ("GET /memory-bio HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n\r\n"
       % os.environ["API_KEY"]).encode()
while True:
    try:
        tls.write(req)
        break
    except ssl.SSLWantReadError:
        sock.sendall(outgoing.read())
        pump_in()
sock.sendall(outgoing.read())
reply = b""
while b"\r\n" not in reply:
    pump_in()
    try:
        reply += tls.read(65536)
    except ssl.SSLWantReadError:
        pass
print(reply.split(b"\r\n", 1)[0].decode())
'''


class HandshakeReentryTest(OneProgramCase):
    PROGRAM = "handshake_reentry"
    VALUE = CANARY

    def ran(self, *cmd):
        """Runs cmd + [CA, port of a new echo server] under kz run --blind; it must end,
        with status 0 and nothing of the value in what it or kz printed. Returns the
        result and the server's record."""
        port, rec = self.echo_server("tls")
        # A hang is the failure this guards against: well short of the 120 s default.
        r = self.run_blind(*cmd, self.ca["ca"], str(port), env=self.kenv, timeout=60)
        self.assertEqual(r.returncode, 0, "kz exit %d\nstdout:\n%s\nstderr:\n%s" % (
            r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
        self.assertNotExposed(r.stdout + r.stderr, CANARY, "the program's and kz's output")
        return r, rec

    def script_finishes(self, name, source):
        script = os.path.join(self.dir, name)
        with open(script, "w") as f:
            f.write(source)
        return self.ran(sys.executable, script)

    def finishes(self, variant, paths):
        r, rec = self.ran(self.prog, variant)
        self.assertIn("DONE", r.stdout)
        for path in paths:
            got = self.records(rec, path)
            self.assertEqual(len(got), 1, "the server got no request for %s" % path)
            # assertTrue, not assertEqual: a failure message must not print the value.
            self.assertTrue(self.auth_of(got[0]) == "Bearer " + CANARY, "the bound host did not get the value")

    def test_first_write_ending_like_a_token_with_the_handshake_left_to_it(self):
        self.finishes("first-write-carry", ["/after"])

    def test_python_leaving_the_handshake_to_its_first_send(self):
        # ssl's do_handshake_on_connect=False: the first sendall runs the handshake. A
        # request head without a token is one the shim sends itself (it tracks every head).
        r, rec = self.script_finishes("lazy_handshake.py", LAZY_HANDSHAKE)
        self.assertEqual(r.stdout.count("HTTP/1.1 200"), 2, r.stdout)
        self.assertEqual(len(self.records(rec, "/plain")), 1)
        got = self.records(rec, "/token")
        self.assertEqual(len(got), 1)
        self.assertTrue(self.auth_of(got[0]) == "Bearer " + CANARY, "the bound host did not get the value")

    def test_memory_bio_leaving_the_handshake_to_its_first_write(self):
        # The shim cannot finish this handshake (no socket to wait on) and must not let the
        # library run it under a lock: the write goes out as it is, the token unswapped
        # (a memory BIO is never swapped into) and reported.
        r, rec = self.script_finishes("lazy_memory_bio.py", LAZY_MEMORY_BIO)
        self.assertIn("HTTP/1.1 200", r.stdout)
        got = self.records(rec, "/memory-bio")
        self.assertEqual(len(got), 1)
        auth = self.auth_of(got[0])
        self.assertTrue(auth != "Bearer " + CANARY, "a memory BIO got the value")
        self.assertTrue(auth.startswith("Bearer KZ_TOK_"), auth)
        refusals = [a for a in self.audit_events("swap", decision="refuse") if a.get("secret") == "API_KEY"]
        self.assertTrue(refusals, "the unswapped token was not audited:\n" + self.audit_dump())
        self.assertIn("could not be identified", refusals[0].get("reason", ""))
        self.assertEqual(refusals[0].get("host"), "localhost")

    def test_own_bio_leaving_the_handshake_to_its_first_write_still_swaps(self):
        # The socket under a program's own BIO is learnt during the handshake: the one the
        # shim completes before the write counts, so this connection is followed.
        self.finishes("own-bio-lazy", ["/own-bio"])

    def test_read_first_on_an_object_cleared_past_the_hook(self):
        self.finishes("clear-then-read", ["/first", "/second"])

    def test_a_write_after_http2_on_an_object_cleared_past_the_hook(self):
        self.finishes("clear-after-h2", [])


if __name__ == "__main__":
    unittest.main()

"""Issue 15, class 9: time-of-check/time-of-use on the caller's buffer.

A second thread of the agent flips the request's path between an allowed spelling
(/v1/ok) and a forbidden one of the same length (/zz/no) while SSL_write runs. The shim
copies the buffer once and parses, decides and sends only that copy, so whatever version
it checked is the version that goes out: over 40+ tries the value never reaches a path
outside /v1/. (Before the fix the request line was checked in the caller's buffer and the
bytes were read again to build the rewrite: 14 of 40 tries sent the value to /zz/no.)

Under --blind=proxy the agent's buffer never meets a value (kz's proxy decides on the
bytes it received); the same race is run there too.
"""
import shutil
import tempfile
import unittest

from hostile import HostileBase, compile_c

TRIES = 48


class ToctouTest(HostileBase):
    def race(self, mode):
        self.bind(paths=["/v1/*"])
        prog, why = compile_c_once(self)
        if prog is None:
            self.skipTest("cannot build the race program: " + why)
        ca = ' "%s"' % self.ca["ca"] if mode == "shim" else ""
        self.run_agent(mode, '"%s" localhost %d %d%s' % (prog, self.port, TRIES, ca))
        recs = self.records(self.rec)
        self.assertEqual(len(recs), TRIES, "the server did not get every request")
        leaked = [r["path"] for r in self.valued(recs) if not r["path"].startswith("/v1/")]
        self.assertEqual(leaked, [], "the value reached a forbidden path in %d of %d tries" % (len(leaked), TRIES))
        # The race really happened: both spellings reached the server, and the forbidden
        # one is in the audit as a refusal naming that path.
        forbidden = sorted({r["path"] for r in recs if not r["path"].startswith("/v1/")})
        self.assertTrue(forbidden, "the flipper never won: the test proved nothing")
        self.assertTrue(self.valued(recs), "no request carried the value: the allowed path must still work")
        refused = {r.get("path") for r in self.swaps("refuse")}
        self.assertTrue(refused & set(forbidden), "no refusal audited for %r: %r" % (forbidden, refused))
        self.assertRefusal(r"may not be used for /(?!v1/)", path=sorted(refused & set(forbidden))[0])

    def test_shim(self):
        self.race("shim")

    def test_blind_proxy(self):
        self.race("proxy")


_built = {}


def compile_c_once(case):
    if "race" not in _built:
        _built["dir"] = tempfile.mkdtemp(prefix="kz-sec-bin-")
        _built["race"] = compile_c("race_write", _built["dir"])
    return _built["race"]


def tearDownModule():
    if "dir" in _built:
        shutil.rmtree(_built["dir"], True)


if __name__ == "__main__":
    unittest.main()

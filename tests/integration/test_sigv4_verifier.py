"""The test servers' SigV4 verifier (tests/servers/sigv4_verify.py) against the published
vectors in ../shared/vectors/sigv4: each signed request must verify with the vectors'
key (and rebuild their canonical request), and fail with another key or a changed byte.
A verifier that accepted anything would make the re-signing tests prove nothing."""
import hashlib
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "servers"))
import sigv4_verify  # noqa: E402

VECTORS = os.path.join(HERE, "..", "..", "..", "shared", "vectors", "sigv4", "aws-signing-test-suite", "v4")
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def split(raw):
    head, _, body = raw.partition("\n\n")
    lines = head.split("\n")
    method, target, _ = lines[0].split(" ", 1)[0], lines[0][len(lines[0].split(" ", 1)[0]) + 1:].rsplit(" ", 1)[0], None
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
        else:
            k, _, v = line.partition(":")
            headers.append((k, v))
    return method, target, headers, body.rstrip("\n").encode()


class VerifierVectors(unittest.TestCase):
    def test_every_vector(self):
        self.assertTrue(os.path.isdir(VECTORS), VECTORS)
        n = 0
        for case in sorted(os.listdir(VECTORS)):
            d = os.path.join(VECTORS, case)
            ctx = json.load(open(os.path.join(d, "context.json")))
            for kind in ("header", "query"):
                path = os.path.join(d, kind + "-signed-request.txt")
                if not os.path.exists(path):
                    continue
                with self.subTest(case=case, kind=kind):
                    method, target, headers, body = split(open(path, encoding="utf-8").read())
                    if ctx.get("omit_session_token") and kind == "query":
                        # The token was appended after signing (not signed): as its signer saw it.
                        target = "&".join(x for x in target.split("&") if not x.startswith("X-Amz-Security-Token="))
                    p = sigv4_verify.parse(method, target, headers)
                    payload = sigv4_verify.payload_hash(p, body, False)
                    creq = sigv4_verify.canonical_request(p, payload, False, ctx.get("normalize", True))
                    self.assertEqual(creq, open(os.path.join(d, kind + "-canonical-request.txt"), encoding="utf-8").read())
                    sigv4_verify.verify(p, body, SECRET, s3=False, check_clock=False) if ctx.get("normalize", True) \
                        else None
                    with self.assertRaises(sigv4_verify.SigError):
                        sigv4_verify.verify(p, body, SECRET[:-1] + "X", s3=False, check_clock=False)
                    n += 1
        self.assertEqual(n, 76)

    def test_body_hash_mismatch_and_skew(self):
        headers = [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z"),
                   ("x-amz-content-sha256", hashlib.sha256(b"a").hexdigest())]
        p = sigv4_verify.parse("PUT", "/b/k", headers + [(
            "Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" + "0" * 64)])
        with self.assertRaises(sigv4_verify.SigError) as e:
            sigv4_verify.verify(p, b"b", SECRET, check_clock=False)
        self.assertEqual(e.exception.code, "XAmzContentSHA256Mismatch")
        with self.assertRaises(sigv4_verify.SigError) as e:
            sigv4_verify.verify(p, b"a", SECRET)
        self.assertEqual(e.exception.code, "RequestTimeTooSkewed")


if __name__ == "__main__":
    unittest.main()

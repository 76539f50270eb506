"""A TLS server that echoes the credential a request carried back in its response: the
server half of the inbound-redaction tests (tests/security/test_inbound_redaction.py).

GET /reflect/FORM/MODE reads "Authorization: Bearer VALUE" and answers "echo:" + VALUE in
FORM + "\n", framed by MODE:
  FORM  raw base64 base64nopad base64url base64urlnopad hexlower hexupper percent json
        percentlower jsonslash
  MODE  cl        Content-Length, one write
        split     Content-Length, two writes (two TLS records) split inside the value,
                  with a flush between them
        chunked   chunked, the value split across two chunks
        gzip deflate br
                  the raw value compressed with that coding, whatever the request asked
                  for (br: two uncompressed brotli meta-blocks, so the value is never
                  contiguous on the wire)
        negotiate gzip when the request's Accept-Encoding names it, else identity (cl)
        onewrite  Content-Length, head and body in one write (one TLS record)
HEAD /reflect/...: the head a GET would get (Content-Length of a body not sent).
POST /echo: answers the request body (Content-Length), in two writes (two TLS records)
split 10 bytes before its end (inside a value the body ends with).
Every request is recorded (path, Accept-Encoding; never the value) to --record.
"""
import base64
import gzip
import json
import re
import os
import sys
import urllib.parse
import zlib

sys.path.insert(0, os.path.dirname(__file__))
from tls_server_base import JsonHandler, common_args, serve  # noqa: E402

FORMS = {
    "raw": lambda b: b,
    "base64": base64.b64encode,
    "base64nopad": lambda b: base64.b64encode(b).rstrip(b"="),
    "base64url": base64.urlsafe_b64encode,
    "base64urlnopad": lambda b: base64.urlsafe_b64encode(b).rstrip(b"="),
    "hexlower": lambda b: b.hex().encode(),
    "hexupper": lambda b: b.hex().upper().encode(),
    "percent": lambda b: urllib.parse.quote_from_bytes(b, safe="").encode(),
    "json": lambda b: json.dumps(b.decode())[1:-1].encode(),
    "percentlower": lambda b: re.sub(rb"%[0-9A-F]{2}", lambda m: m.group(0).lower(),
                                     urllib.parse.quote_from_bytes(b, safe="").encode()),
    "jsonslash": lambda b: json.dumps(b.decode())[1:-1].replace("/", "\\/").encode(),
}


def brotli_uncompressed(data, cut):
    """A brotli stream of two uncompressed meta-blocks (data[:cut], data[cut:]) and an
    empty last one (RFC 7932 section 9.2), written bit by bit."""
    bits = []

    def put(v, n):
        for i in range(n):
            bits.append((v >> i) & 1)

    def pad():
        while len(bits) % 8:
            bits.append(0)

    out = bytearray()

    def flush():
        pad()
        for i in range(0, len(bits), 8):
            out.append(sum(bits[i + k] << k for k in range(8)))
        bits.clear()

    put(0, 1)   # WBITS = 16
    for part in (data[:cut], data[cut:]):
        put(0, 1)               # ISLAST = 0
        put(0, 2)               # MNIBBLES = 4
        put(len(part) - 1, 16)  # MLEN - 1
        put(1, 1)               # ISUNCOMPRESSED
        flush()
        out.extend(part)
    put(1, 1)   # ISLAST
    put(1, 1)   # ISLASTEMPTY
    flush()
    return bytes(out)


class Handler(JsonHandler):
    def do_GET(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        auth = self.headers.get("Authorization") or ""
        accept = self.headers.get("Accept-Encoding")
        with open(self.server.record, "a") as f:
            f.write(json.dumps({"path": self.path, "accept_encoding": accept}) + "\n")
        if len(parts) != 3 or parts[0] != "reflect" or parts[1] not in FORMS or not auth.startswith("Bearer "):
            return self.send_json(404, {"error": "no such reflection"})
        value = auth[len("Bearer "):].encode()
        form, mode = parts[1], parts[2]
        enc = FORMS[form](value)
        body = b"echo:" + enc + b"\n"
        half = 5 + len(enc) // 2   # inside the value
        if mode == "negotiate":
            mode = "gzip" if "gzip" in (accept or "") else "cl"
        if mode == "onewrite":
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body)
            self.wfile.write(head + body)
            self.wfile.flush()
            return
        if mode in ("cl", "split"):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if mode == "cl":
                self.wfile.write(body)
            else:
                self.wfile.write(body[:half])
                self.wfile.flush()
                self.wfile.write(body[half:])
        elif mode == "chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (body[:half], body[half:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif mode in ("gzip", "deflate", "br"):
            raw = b"echo:" + value + b"\n"
            if mode == "gzip":
                coded = gzip.compress(raw)
            elif mode == "deflate":
                coded = zlib.compress(raw)
            else:
                coded = brotli_uncompressed(raw, half)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Encoding", mode)
            self.send_header("Content-Length", str(len(coded)))
            self.end_headers()
            self.wfile.write(coded)
        else:
            return self.send_json(404, {"error": "no such mode"})
        self.wfile.flush()

    def do_HEAD(self):
        with open(self.server.record, "a") as f:
            f.write(json.dumps({"path": self.path.split("?")[0], "method": "HEAD"}) + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "1000")
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with open(self.server.record, "a") as f:
            f.write(json.dumps({"path": self.path, "method": "POST"}) + "\n")
        if self.path != "/echo":
            return self.send_json(404, {"error": "no such endpoint"})
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = max(len(body) - 10, 0)
        self.wfile.write(body[:cut])
        self.wfile.flush()
        self.wfile.write(body[cut:])
        self.wfile.flush()


def main():
    ap = common_args(__doc__.split("\n\n")[0])
    ap.add_argument("--record", required=True)
    args = ap.parse_args()
    serve(Handler, args, record=args.record)


if __name__ == "__main__":
    main()

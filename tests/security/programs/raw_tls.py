"""A hostile agent's raw HTTP/1.1 over TLS: it writes exactly the bytes it is given, in
the writes it is given, so a test controls framing, Host headers and write boundaries.

usage: raw_tls.py HOST PORT CAFILE|- PLAN_JSON
PLAN_JSON: a list of connections; each a list of steps:
  {"write": "text"}  one SSL_write of the text ("{TOK}" becomes $API_KEY)
  {"read": n}        read n HTTP/1.1 responses (Content-Length framed) and print their status
The TLS connection verifies HOST (SNI = HOST) against CAFILE, or the default store ("-",
which honours SSL_CERT_FILE: kz's proxy CA under --blind=proxy)."""
import json
import os
import socket
import ssl
import sys


def read_response(f):
    line = f.readline()
    if not line:
        return None
    length = 0
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    f.read(length)
    return line.decode("latin-1").strip()


def main():
    host, port, cafile, plan = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
    ctx = ssl.create_default_context(cafile=None if cafile == "-" else cafile)
    ctx.set_alpn_protocols(["http/1.1"])
    tok = os.environ["API_KEY"]
    for steps in plan:
        with socket.create_connection((host, port), timeout=20) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as s:
                f = s.makefile("rb")
                for step in steps:
                    if "write" in step:
                        s.sendall(step["write"].replace("{TOK}", tok).encode("latin-1"))
                    else:
                        for _ in range(step["read"]):
                            print("response:", read_response(f))
                f.close()


if __name__ == "__main__":
    main()

"""An HTTPS target for the MCP fetch engine's tests (tests/integration/fetch_engine_test.cpp).

- TLS with --cert/--key (the test CA's leaf, or the self-signed rogue leaf); plain HTTP
  with --plain or without --cert.
- Listens on 127.0.0.1 and, when the machine has it, on ::1 with the same port, so
  "localhost" reaches this server whichever address a client tries first. Prints
  "PORT <n>" once it accepts connections and exits when its stdin closes.

Routes (any method; the request body is always read first):
  /echo...                 200, JSON {method, target, headers: [[name, value], ...], body}
  /redirect?to=URL&code=N  N (default 302) with "Location: URL" (URL may be relative)
  /no-location?code=N      N (default 302) without a Location header
  /loop                    302 to itself (a relative Location), forever
  /big?n=BYTES             200 with BYTES bytes of "0123456789" repeated
  /binary                  200 with the 256 byte values 0..255, application/octet-stream
  /set-cookie              200 with two Set-Cookie headers and a padded header value
  /interim                 a 103 Early Hints block, then 200 with "X-Final: yes"
  /stall                   never answers (until the server exits)
  /gzip                    200 with a gzip-coded body, whatever the request accepts
  anything else            404
"""
import argparse
import json
import socket
import ssl
import sys
import threading
import urllib.parse

import http.server
import socketserver

STALL = threading.Event()  # never set: /stall waits on it until the process exits


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Server6(Server):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kz-fetch-target"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(n) if n else b""
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        path = url.path
        if path.startswith("/echo"):
            obj = {"method": self.command, "target": self.path,
                   "headers": [[k, v] for k, v in self.headers.items()],
                   "body": received.decode("utf-8", errors="replace")}
            self.reply(200, json.dumps(obj).encode(), [("Content-Type", "application/json")])
        elif path == "/redirect":
            self.reply(int(q.get("code", "302")), b"", [("Location", q.get("to", "/echo"))])
        elif path == "/no-location":
            self.reply(int(q.get("code", "302")), b"moved, but not saying where")
        elif path == "/loop":
            self.reply(302, b"", [("Location", "/loop")])
        elif path == "/big":
            n = int(q.get("n", "0"))
            body = (b"0123456789" * (n // 10 + 1))[:n]
            self.reply(200, body, [("Content-Type", "text/plain")])
        elif path == "/binary":
            self.reply(200, bytes(range(256)), [("Content-Type", "application/octet-stream")])
        elif path == "/set-cookie":
            self.reply(200, b"{}", [("Set-Cookie", "a=1; Secure"), ("Set-Cookie", "b=2"),
                                    ("X-Padded", "  padded value  "), ("Content-Type", "application/json")])
        elif path == "/interim":
            self.send_response_only(103)
            self.send_header("Link", "</style.css>; rel=preload")
            self.end_headers()
            self.reply(200, b"final", [("X-Final", "yes")])
        elif path == "/gzip":
            import gzip
            self.reply(200, gzip.compress(b"compressed"), [("Content-Encoding", "gzip"), ("Content-Type", "text/plain")])
        elif path == "/stall":
            STALL.wait()
        else:
            self.reply(404, b"not found\n")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any


def main():
    ap = argparse.ArgumentParser(description="HTTPS target for the fetch engine tests")
    ap.add_argument("--cert", help="PEM certificate (TLS); plain HTTP when absent")
    ap.add_argument("--key", help="PEM private key")
    ap.add_argument("--plain", action="store_true", help="plain HTTP even if --cert is given")
    args = ap.parse_args()

    ctx = None
    if args.cert and not args.plain:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
    servers = [Server(("127.0.0.1", 0), Handler)]
    port = servers[0].server_address[1]
    try:
        servers.append(Server6(("::1", port), Handler))
    except OSError:
        pass  # no ::1 (or the port is taken there): clients fall back to 127.0.0.1
    for s in servers:
        if ctx is not None:
            s.socket = ctx.wrap_socket(s.socket, server_side=True)
        threading.Thread(target=s.serve_forever, daemon=True).start()
    sys.stdout.write("PORT %d\n" % port)
    sys.stdout.flush()
    sys.stdin.read()  # returns when the parent closes our stdin or dies


if __name__ == "__main__":
    main()

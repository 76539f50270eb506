"""Shared plumbing for the local vendor-API test servers.

Each server binds 127.0.0.1 on a free port, optionally wraps the socket in TLS with a
certificate from the test CA, prints "PORT <n>" on stdout once it accepts connections,
and exits when its stdin closes (so a crashed test never leaves a server behind).

Servers are plain http.server handlers; they follow the vendor's documented request and
response shapes. Behaviour switches (delays, failure modes) come from command-line flags
or from the request itself, never from sleeps in the tests.
"""
import argparse
import http.server
import json
import os
import socketserver
import ssl
import sys
import threading


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class JsonHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kz-test-server"

    def log_message(self, fmt, *args):  # keep test output quiet
        if os.environ.get("KZ_TEST_SERVER_VERBOSE"):
            sys.stderr.write("%s\n" % (fmt % args))

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send_json(self, status, obj, content_type="application/json"):
        body = obj if isinstance(obj, (bytes, bytearray)) else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def common_args(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--cert", help="PEM certificate (TLS); plain HTTP when absent")
    ap.add_argument("--key", help="PEM private key")
    ap.add_argument("--port", type=int, default=0)
    return ap


def serve(handler_cls, args, **server_attrs):
    httpd = Server(("127.0.0.1", args.port), handler_cls)
    for k, v in server_attrs.items():
        setattr(httpd, k, v)
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    sys.stdout.write("PORT %d\n" % httpd.server_address[1])
    sys.stdout.flush()
    try:
        sys.stdin.read()  # returns when the parent closes our stdin or dies
    finally:
        httpd.shutdown()

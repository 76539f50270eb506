"""A loopback HTTP forwarding proxy that adds "Authorization: Bearer <token>".

The MCP conformance suite cannot send an Authorization header, and kz's MCP endpoint
requires one; this sits between them:

  python3 bearer_proxy.py --upstream http://127.0.0.1:P --token-file jwt.txt [--port 0]

It binds 127.0.0.1 (port 0: a free one), prints "PORT <n>" on stdout once it accepts
connections (like tests/servers/), and forwards every request, whatever its method, to the
upstream with the same path and query, every header exactly as received (Host and Origin
included, so the upstream's Host/Origin checks see what the client sent) except the
hop-by-hop ones, Authorization replaced by the bearer token (the file is read once, at
start, whitespace trimmed), and the body. The upstream's status, headers (less Connection,
Keep-Alive, Transfer-Encoding) and body come back with Content-Length set; a
text/event-stream answer is relayed as it arrives (chunked) instead. Upstream unreachable:
502. It exits when its stdin closes (so a crashed test never leaves it behind) or on
SIGTERM. Python 3 standard library only.
"""
import argparse
import http.client
import http.server
import os
import signal
import sys
import threading
import urllib.parse

# Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded in either direction; Content-Length
# is recomputed, Authorization replaced, and Expect dropped (the body is read before
# forwarding, so http.server has already answered any 100-continue).
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-connection", "proxy-authenticate", "proxy-authorization"}


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kz-bearer-proxy"

    def log_message(self, fmt, *args):  # quiet unless asked
        if os.environ.get("KZ_TEST_SERVER_VERBOSE"):
            sys.stderr.write("bearer_proxy: %s\n" % (fmt % args))

    # Any method: BaseHTTPRequestHandler dispatches to do_<METHOD>.
    def __getattr__(self, name):
        if name.startswith("do_"):
            return self.forward
        raise AttributeError(name)

    def read_request_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)  # CRLF after the chunk
            return b"".join(parts)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def forward(self):
        try:
            self.forward_one()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away: nothing to answer

    def forward_one(self):
        try:
            body = self.read_request_body()
        except (ValueError, OSError):
            self.send_error(400, "bad request body")
            return
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port or 80, timeout=self.server.timeout_s)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() in HOP_BY_HOP or k.lower() in ("authorization", "content-length", "expect"):
                    continue
                conn.putheader(k, v)
            conn.putheader("Authorization", "Bearer " + self.server.token)
            if body or self.command in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if body else None)
            resp = conn.getresponse()
        except OSError as e:
            conn.close()
            self.relay_error(502, "bearer_proxy: upstream %s: %s\n" % (self.server.upstream_text, e))
            return
        try:
            self.relay(resp)
        finally:
            conn.close()

    def relay_error(self, status, text):
        data = text.encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def relay(self, resp):
        headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
        no_body = self.command == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
        streaming = not no_body and "text/event-stream" in (resp.getheader("Content-Type") or "")
        self.send_response_only(resp.status, resp.reason)
        if no_body:
            # HEAD keeps the upstream's Content-Length: it describes the GET's body.
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            return
        for k, v in headers:
            if k.lower() != "content-length":
                self.send_header(k, v)
        if streaming:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            while True:
                chunk = resp.read1(65536)
                if not chunk:
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        data = resp.read()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)


def main():
    ap = argparse.ArgumentParser(description="Forward HTTP to --upstream, adding a bearer token.")
    ap.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--token-file", required=True, help="file holding the bearer token")
    ap.add_argument("--port", type=int, default=0, help="port to bind on 127.0.0.1 (0: a free one)")
    ap.add_argument("--timeout", type=float, default=120.0, help="upstream socket timeout, seconds")
    args = ap.parse_args()

    up = urllib.parse.urlsplit(args.upstream)
    if up.scheme != "http" or not up.hostname or (up.path not in ("", "/")):
        ap.error("--upstream must be http://HOST:PORT")
    with open(args.token_file) as f:
        token = f.read().strip()
    if not token:
        ap.error("--token-file %s is empty" % args.token_file)

    httpd = Server(("127.0.0.1", args.port), ProxyHandler)
    httpd.upstream = up
    httpd.upstream_text = args.upstream
    httpd.token = token
    httpd.timeout_s = args.timeout

    def on_term(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, on_term)

    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    sys.stdout.write("PORT %d\n" % httpd.server_address[1])
    sys.stdout.flush()
    try:
        sys.stdin.read()  # returns when the parent closes our stdin or dies
    except KeyboardInterrupt:
        pass
    finally:
        httpd.shutdown()
        httpd.server_close()


if __name__ == "__main__":
    main()

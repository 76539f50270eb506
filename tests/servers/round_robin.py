"""A round-robin HTTP load balancer for the MCP replica tests: every request (not every
connection: a client keeps its connection alive) goes to the next backend in turn, as an
L7 balancer without session affinity does. Bodies and headers pass through unchanged
(hop-by-hop headers aside).

  round_robin.py --backend http://127.0.0.1:P1 --backend http://127.0.0.1:P2 --log FILE

Prints "PORT n" once it listens on 127.0.0.1 and exits when its stdin closes. The log
gets one JSON line per request: the backend's index, the HTTP method, and for a
JSON-RPC body its method and (tools/call) the tool's name.
"""
import argparse
import http.client
import http.server
import itertools
import json
import socketserver
import sys
import threading
import urllib.parse

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length", "host"}


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_handler(backends, log_path):
    turn = itertools.count()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def relay(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with lock:
                index = next(turn) % len(backends)
            host, port = backends[index]
            entry = {"backend": index, "http": self.command}
            try:
                msg = json.loads(body) if body else None
                if isinstance(msg, dict):
                    entry["rpc"] = msg.get("method")
                    if msg.get("method") == "tools/call":
                        entry["tool"] = (msg.get("params") or {}).get("name")
            except ValueError:
                pass
            with lock, open(log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")
            conn = http.client.HTTPConnection(host, port, timeout=120)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Host"] = "%s:%d" % (host, port)
            try:
                conn.request(self.command, self.path, body=body if body or self.command == "POST" else None,
                             headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except OSError as e:
                self.send_error(502, "backend %d: %s" % (index, e))
                return
            finally:
                conn.close()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in HOP_BY_HOP:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = relay

    return Handler


def main():
    ap = argparse.ArgumentParser(description="round-robin HTTP load balancer (tests)")
    ap.add_argument("--backend", action="append", required=True, help="http://HOST:PORT (repeat)")
    ap.add_argument("--log", required=True, help="one JSON line per request relayed")
    args = ap.parse_args()
    backends = []
    for b in args.backend:
        u = urllib.parse.urlsplit(b)
        backends.append((u.hostname, u.port))
    server = Server(("127.0.0.1", 0), make_handler(backends, args.log))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdout.write("PORT %d\n" % server.server_address[1])
    sys.stdout.flush()
    sys.stdin.read()  # returns when the parent closes our stdin or dies


if __name__ == "__main__":
    main()

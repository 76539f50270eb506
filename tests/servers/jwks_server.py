"""Serves a JWKS for the JWT verifier's jwks_url tests.

GET /jwks.json answers with the current contents of --file (re-read on every request, so
a test rotates keys by rewriting the file); GET /count answers with the number of JWKS
requests served so far; /status/NNN answers NNN. TLS with --cert/--key (tls_server_base).
"""
import threading

from tls_server_base import JsonHandler, common_args, serve

lock = threading.Lock()
count = 0


class Handler(JsonHandler):
    def do_GET(self):
        global count
        if self.path == "/jwks.json":
            with lock:
                count += 1
            with open(self.server.jwks_file, "rb") as f:
                self.send_json(200, f.read())
        elif self.path == "/count":
            with lock:
                n = count
            self.send_json(200, {"count": n})
        elif self.path.startswith("/status/"):
            self.send_json(int(self.path[len("/status/"):]), {"error": "as asked"})
        else:
            self.send_json(404, {"error": "not found"})


if __name__ == "__main__":
    ap = common_args("JWKS test server")
    ap.add_argument("--file", required=True)
    args = ap.parse_args()
    serve(Handler, args, jwks_file=args.file)

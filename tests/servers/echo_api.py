"""An HTTP/1.1 test API for the blind-mode end-to-end tests. It records exactly what
arrived on the wire, so the tests can tell what a client under `kz run --blind` really
sent (a real value, a token, a broken frame).

- TLS with --cert/--key (the test CA's leaf, or the self-signed rogue leaf), plain HTTP
  with --plain (or without --cert).
- Listens on 127.0.0.1 and, when the machine has it, on ::1 with the same port, so a
  client that resolves "localhost" to ::1 first reaches this server and nothing else.
  Prints "PORT <n>" once both accept connections and exits when its stdin closes.
- ALPN: offers "http/1.1" only by default (it speaks only HTTP/1.1; since issue 18 the
  shim leaves h2 in clients' offers). With --alpn h2,http/1.1 it offers h2 first but
  still speaks only HTTP/1.1: an HTTP/2 client is recorded (method "PRI", alpn "h2") and
  disconnected. That is how the tests see whether `[blind] http2 = false` removed h2.
- Keep-alive (HTTP/1.1 default, "Connection: close" honoured), Content-Length and chunked
  request bodies. A body shorter than its Content-Length is recorded as incomplete after
  --body-timeout seconds (the client would otherwise hang), then answered with 400.
- --record FILE: one JSON object per request, written before the response is sent:
  conn, seq (request number on the connection), tls, alpn, sni, peer, method, target,
  path, version, headers ([[name, value], ...] as received), header ({lower-case name:
  value}), content_length (declared, or null), body_length (bytes actually received),
  chunked, chunks (sizes), framing_ok, complete, body (text, the first 64 KiB,
  undecodable bytes as U+FFFD), body_truncated, error.

Routes (any method): /echo... answers with the Authorization header it received (as a
careless API does in an error message); /status/NNN answers NNN; everything else
answers 200 with a small JSON summary.
"""
import argparse
import json
import os
import socket
import ssl
import sys
import threading

MAX_KEEP = 64 * 1024
MAX_HEADER = 64 * 1024


class BadRequest(Exception):
    pass


class Recorder:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def write(self, rec):
        if not self.path:
            return
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        with self.lock:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()


class Conn:
    """One accepted connection; reads requests off a buffered file until it closes."""

    counter = 0
    counter_lock = threading.Lock()

    def __init__(self, server, sock, peer):
        self.server = server
        self.sock = sock
        self.peer = peer
        with Conn.counter_lock:
            Conn.counter += 1
            self.id = Conn.counter
        self.tls = False
        self.alpn = None
        self.sni = None

    def run(self):
        try:
            self.sock.settimeout(self.server.args.idle_timeout)
            if self.server.ctx is not None:
                sni_box = {}
                self.sock = self.server.wrap(self.sock, sni_box)
                self.tls = True
                self.alpn = self.sock.selected_alpn_protocol()
                self.sni = sni_box.get("sni")
            self.rfile = self.sock.makefile("rb")
            seq = 0
            while True:
                seq += 1
                if not self.one_request(seq):
                    break
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def base_record(self, seq):
        return {"conn": self.id, "seq": seq, "tls": self.tls, "alpn": self.alpn, "sni": self.sni,
                "peer": "%s:%d" % (self.peer[0], self.peer[1])}

    def readline(self):
        line = self.rfile.readline(MAX_HEADER + 1)
        if len(line) > MAX_HEADER:
            raise BadRequest("header line too long")
        return line

    def one_request(self, seq):
        try:
            line = self.readline()
        except (socket.timeout, TimeoutError):
            return False
        # RFC 9112, 2.2: a server ignores empty lines before a request line (so a
        # client's stray CRLF cannot hide the request that follows from the tests).
        for _ in range(4):
            if line not in (b"\r\n", b"\n"):
                break
            line = self.readline()
        if not line:
            return False
        rec = self.base_record(seq)
        request_line = line.decode("latin-1").rstrip("\r\n")
        parts = request_line.split(" ")
        rec.update(method=parts[0], target=parts[1] if len(parts) > 1 else "",
                   version=parts[2] if len(parts) > 2 else "")
        rec["path"] = rec["target"].split("?", 1)[0]
        if rec["method"] == "PRI":  # HTTP/2 connection preface: we only speak HTTP/1.1
            rec.update(headers=[], header={}, content_length=None, body_length=0, chunked=False,
                       chunks=[], framing_ok=False, complete=False, body="", body_truncated=False,
                       error="HTTP/2 preface on a connection that speaks HTTP/1.1")
            self.server.recorder.write(rec)
            return False
        headers = []
        try:
            while True:
                h = self.readline()
                if not h:
                    raise BadRequest("connection closed inside the header")
                if h in (b"\r\n", b"\n"):
                    break
                text = h.decode("latin-1").rstrip("\r\n")
                name, sep, value = text.partition(":")
                if not sep:
                    raise BadRequest("malformed header line %r" % text[:80])
                headers.append([name.strip(), value.strip()])
        except BadRequest as e:
            rec.update(headers=headers, header={k.lower(): v for k, v in headers}, error=str(e),
                       complete=False, framing_ok=False, body="", body_length=0, chunks=[],
                       chunked=False, content_length=None, body_truncated=False)
            self.server.recorder.write(rec)
            return False
        hmap = {}
        for k, v in headers:
            hmap[k.lower()] = v if k.lower() not in hmap else hmap[k.lower()] + ", " + v
        rec.update(headers=headers, header=hmap)
        body, info = self.read_body(hmap)
        rec.update(info)
        if rec["path"].startswith("/sink"):
            rec["body"], rec["body_truncated"] = "", info["body_length"] > 0
        else:
            rec["body"] = body[:MAX_KEEP].decode("utf-8", errors="replace")
            rec["body_truncated"] = len(body) > MAX_KEEP
        self.server.recorder.write(rec)
        keep = (hmap.get("connection", "").lower() != "close" and rec["version"] == "HTTP/1.1"
                and rec["complete"] and rec["framing_ok"])
        self.respond(rec, keep)
        return keep

    def read_exact(self, n, sink):
        """Reads n bytes (or what arrives before the body timeout). Returns bytes read."""
        got = 0
        self.sock.settimeout(self.server.args.body_timeout)
        try:
            while got < n:
                chunk = self.rfile.read1(min(n - got, 1 << 20)) if hasattr(self.rfile, "read1") \
                    else self.rfile.read(min(n - got, 1 << 20))
                if not chunk:
                    break
                got += len(chunk)
                sink(chunk)
        except (socket.timeout, TimeoutError):
            pass
        finally:
            self.sock.settimeout(self.server.args.idle_timeout)
        return got

    def read_body(self, hmap):
        kept = bytearray()
        info = {"content_length": None, "body_length": 0, "chunked": False, "chunks": [],
                "framing_ok": True, "complete": True, "error": None}

        def sink(b):
            if len(kept) < MAX_KEEP + 1:
                kept.extend(b[:MAX_KEEP + 1 - len(kept)])

        if "chunked" in hmap.get("transfer-encoding", "").lower():
            info["chunked"] = True
            total = 0
            self.sock.settimeout(self.server.args.body_timeout)
            try:
                while True:
                    size_line = self.readline()
                    if not size_line:
                        info.update(complete=False, framing_ok=False, error="closed inside chunked body")
                        break
                    try:
                        size = int(size_line.split(b";", 1)[0].strip(), 16)
                    except ValueError:
                        info.update(complete=False, framing_ok=False,
                                    error="bad chunk size line %r" % size_line[:40].decode("latin-1"))
                        break
                    info["chunks"].append(size)
                    if size == 0:
                        while True:  # trailers
                            t = self.readline()
                            if t in (b"\r\n", b"\n", b""):
                                break
                        break
                    got = self.read_exact(size, sink)
                    total += got
                    if got < size:
                        info.update(complete=False, framing_ok=False, error="chunk shorter than its size")
                        break
                    crlf = self.rfile.read(2)
                    if crlf != b"\r\n":
                        info.update(framing_ok=False, error="chunk data longer than its size (%r)" % crlf)
                        break
            except (socket.timeout, TimeoutError):
                info.update(complete=False, framing_ok=False, error="timeout inside chunked body")
            finally:
                self.sock.settimeout(self.server.args.idle_timeout)
            info["body_length"] = total
        elif "content-length" in hmap:
            try:
                n = int(hmap["content-length"])
            except ValueError:
                info.update(framing_ok=False, complete=False, error="bad Content-Length")
                return bytes(kept), info
            info["content_length"] = n
            got = self.read_exact(n, sink)
            info["body_length"] = got
            if got < n:
                info.update(complete=False, framing_ok=False,
                            error="body has %d byte(s), Content-Length says %d" % (got, n))
        return bytes(kept), info

    def respond(self, rec, keep):
        path = rec["path"]
        auth = rec["header"].get("authorization", "")
        status = 200
        if not rec["complete"] or not rec["framing_ok"]:
            status, obj = 400, {"error": rec["error"]}
        elif path.startswith("/echo"):
            obj = {"you_sent": auth, "method": rec["method"], "path": path}
        elif path.startswith("/status/"):
            try:
                status = int(path.split("/")[2])
            except ValueError:
                status = 400
            obj = {"status": status}
        else:
            obj = {"ok": True, "method": rec["method"], "path": path, "body_bytes": rec["body_length"]}
        body = (json.dumps(obj) + "\n").encode()
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
                  404: "Not Found"}.get(status, "Status")
        head = ("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                "Connection: %s\r\n\r\n" % (status, reason, len(body), "keep-alive" if keep else "close"))
        self.sock.sendall(head.encode() + body)


class EchoServer:
    def __init__(self, args):
        self.args = args
        self.recorder = Recorder(args.record)
        self.ctx = None
        if args.cert and not args.plain:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(args.cert, args.key)
            if args.alpn:
                self.ctx.set_alpn_protocols(args.alpn.split(","))
            self.ctx.sni_callback = _sni_callback
        self.listeners = []

    def wrap(self, sock, sni_box):
        # A per-connection context would cost a key load each time; read SNI through
        # a callback on the shared context, keyed by the SSLObject.
        return _wrap_with_sni(self.ctx, sock, sni_box)

    def listen(self, port):
        for _ in range(50):
            s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s4.bind((self.args.bind4, port))
            s4.listen(128)
            bound = s4.getsockname()[1]
            if self.args.no_ipv6 or not socket.has_ipv6:
                return [s4], bound
            try:
                s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s6.bind(("::1", bound))
                s6.listen(128)
                return [s4, s6], bound
            except OSError:
                s6.close()
                if port or not _has_ipv6_loopback():  # fixed port, or no ::1 at all
                    return [s4], bound
                s4.close()  # ::1:<bound> is taken by someone else: try another port
        raise SystemExit("echo_api: no port free on both 127.0.0.1 and ::1")

    def accept_loop(self, lsock):
        while True:
            try:
                c, peer = lsock.accept()
            except OSError:
                return
            threading.Thread(target=Conn(self, c, peer).run, daemon=True).start()

    def serve(self):
        self.listeners, port = self.listen(self.args.port)
        for l in self.listeners:
            threading.Thread(target=self.accept_loop, args=(l,), daemon=True).start()
        sys.stdout.write("PORT %d\n" % port)
        sys.stdout.flush()
        try:
            sys.stdin.read()
        finally:
            for l in self.listeners:
                l.close()


_sni_lock = threading.Lock()
_sni_by_obj = {}


def _sni_callback(sslobj, server_name, ctx):
    with _sni_lock:
        box = _sni_by_obj.get(id(sslobj))
    if box is not None:
        box["sni"] = server_name
    return None


def _wrap_with_sni(ctx, sock, sni_box):
    tls = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    with _sni_lock:
        _sni_by_obj[id(tls)] = sni_box
    try:
        tls.do_handshake()
    finally:
        with _sni_lock:
            _sni_by_obj.pop(id(tls), None)
    return tls


def _has_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind(("::1", 0))
            return True
        finally:
            s.close()
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser(description="recording HTTP/1.1 echo API for blind-mode tests")
    ap.add_argument("--cert", help="PEM certificate (TLS); plain HTTP when absent")
    ap.add_argument("--key", help="PEM private key")
    ap.add_argument("--plain", action="store_true", help="plain HTTP even if --cert is given")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--record", help="append one JSON line per request here")
    ap.add_argument("--alpn", default="http/1.1", help="ALPN protocols offered (server preference)")
    ap.add_argument("--no-ipv6", action="store_true", help="listen on 127.0.0.1 only")
    ap.add_argument("--bind4", default="127.0.0.1",
                    help="IPv4 address to listen on (another loopback address, e.g. 127.0.0.2, is a host "
                         "that is not kz's proxy; use with --no-ipv6)")
    ap.add_argument("--body-timeout", type=float, default=3.0,
                    help="seconds to wait for missing body bytes before recording the body as short")
    ap.add_argument("--idle-timeout", type=float, default=60.0)
    args = ap.parse_args()
    EchoServer(args).serve()


if __name__ == "__main__":
    main()

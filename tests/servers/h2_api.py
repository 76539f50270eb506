"""An HTTP/2 server over TLS on loopback that records what it received, frame by frame.

It offers ALPN h2 and http/1.1. On an h2 connection every byte the client sent is also
parsed here independently of the h2 library that answers: frames are split by hand,
header blocks (HEADERS/PUSH_PROMISE + CONTINUATION) reassembled and decoded with a
python-hpack Decoder of this connection, so the record shows exactly what the server's
HPACK decoder saw, including how many entries its dynamic table holds after each block
(kz re-encodes without indexing: always 0). One JSON line per request:

  {"conn": n, "alpn": "h2", "stream": 1, "headers": [[name, value], ...], "data": "...",
   "continuation": bool, "dyn_entries": 0, "max_frame": n}

and one per RST_STREAM received ({"conn", "rst": stream, "code"}), and per connection
error ({"conn", "error": ...}). On http/1.1 a request's record has "alpn": "http/1.1".

Answers: /echo -> 200 with the request's headers as JSON; /reflect -> 200 with the
Authorization value in an "x-echo" response header and in the body (inbound redaction);
anything else -> 200 "ok". Usage: h2_api.py --cert C --key K --record FILE
"""
import json
import os
import socket
import ssl
import sys
import threading

import h2.config
import h2.connection
import h2.events
import hpack

sys.path.insert(0, os.path.dirname(__file__))
from tls_server_base import common_args  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
lock = threading.Lock()


def record(path, obj):
    with lock, open(path, "a") as f:
        f.write(json.dumps(obj) + "\n")
        f.flush()


class RawView:
    """The client's bytes, parsed by hand: frames and header blocks (python-hpack)."""

    def __init__(self):
        self.buf = b""
        self.preface = False
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 65536
        self.block = None        # [stream, bytes, continuation_seen]
        self.by_stream = {}      # stream -> (headers, continuation, dyn_entries) of its first block
        self.data = {}
        self.rst = []
        self.max_frame = 0

    def feed(self, data):
        self.buf += data
        if not self.preface:
            if len(self.buf) < len(PREFACE):
                return
            if not self.buf.startswith(PREFACE):
                raise ValueError("no preface")
            self.buf = self.buf[len(PREFACE):]
            self.preface = True
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                return
            typ, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            p = self.buf[9:9 + n]
            self.buf = self.buf[9 + n:]
            self.max_frame = max(self.max_frame, n)
            self.frame(typ, flags, sid, p)

    def frame(self, typ, flags, sid, p):
        if self.block is not None:
            if typ != 9 or sid != self.block[0]:
                raise ValueError("frame between HEADERS and CONTINUATION")
            self.block[1] += p
            self.block[2] = True
            if flags & 0x4:
                self.end_block()
            return
        if typ == 1:
            off, pad = 0, 0
            if flags & 0x8:
                pad, off = p[0], 1
            if flags & 0x20:
                off += 5
            self.block = [sid, p[off:len(p) - pad], False]
            if flags & 0x4:
                self.end_block()
        elif typ == 0:
            off, pad = 0, 0
            if flags & 0x8:
                pad, off = p[0], 1
            self.data[sid] = self.data.get(sid, b"") + p[off:len(p) - pad]
        elif typ == 3:
            self.rst.append((sid, int.from_bytes(p[:4], "big")))

    def end_block(self):
        sid, block, cont = self.block
        self.block = None
        headers = self.decoder.decode(block, raw=True)
        self.by_stream.setdefault(sid, ([[n.decode("latin-1"), v.decode("latin-1")] for n, v in headers], cont,
                                        len(self.decoder.header_table.dynamic_entries)))


def serve_h2(tls, conn_id, rec_path):
    view = RawView()
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False, header_encoding=None))
    conn.initiate_connection()
    tls.sendall(conn.data_to_send())
    rst_seen = 0
    try:
        while True:
            data = tls.recv(65536)
            if not data:
                break
            view.feed(data)
            for sid, code in view.rst[rst_seen:]:
                record(rec_path, {"conn": conn_id, "rst": sid, "code": code})
            rst_seen = len(view.rst)
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    answer(conn, ev.stream_id, view, conn_id, rec_path)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    break
            out = conn.data_to_send()
            if out:
                tls.sendall(out)
    except Exception as e:  # noqa: BLE001 - the record says what broke
        record(rec_path, {"conn": conn_id, "error": "%s: %s" % (type(e).__name__, e)})


def answer(conn, sid, view, conn_id, rec_path):
    hdrs, cont, dyn = view.by_stream.pop(sid, ([], False, -1))
    data = view.data.pop(sid, b"")
    rec = {"conn": conn_id, "alpn": "h2", "stream": sid, "headers": hdrs, "continuation": cont,
           "dyn_entries": dyn, "data": data.decode("latin-1"), "max_frame": view.max_frame}
    record(rec_path, rec)
    h = dict(hdrs)
    path = h.get(":path", "")
    if path.startswith("/echo"):
        body = json.dumps(hdrs).encode()
        extra = []
    elif path.startswith("/reflect"):
        auth = h.get("authorization", "")
        body = ("echo:" + auth + "\n").encode("latin-1")
        extra = [("x-echo", auth)]
    else:
        body, extra = b"ok\n", []
    conn.send_headers(sid, [(":status", "200"), ("content-length", str(len(body)))] + extra)
    conn.send_data(sid, body, end_stream=True)


def serve_h1(tls, conn_id, rec_path):
    f = tls.makefile("rb")
    line = f.readline().decode("latin-1").rstrip("\r\n")
    headers = []
    while True:
        h = f.readline().decode("latin-1").rstrip("\r\n")
        if not h:
            break
        n, _, v = h.partition(":")
        headers.append([n.strip().lower(), v.strip()])
    method, target = (line.split(" ") + ["", ""])[:2]
    record(rec_path, {"conn": conn_id, "alpn": "http/1.1", "headers": [[":method", method], [":path", target]] + headers})
    body = b"ok\n"
    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n" + body)


def main():
    ap = common_args("HTTP/2 recording server")
    ap.add_argument("--record", required=True)
    args = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", args.port))
    lsock.listen(64)
    counter = [0]

    def handle(sock, conn_id):
        try:
            tls = ctx.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            record(args.record, {"conn": conn_id, "error": "handshake: %s" % e})
            sock.close()
            return
        try:
            if tls.selected_alpn_protocol() == "h2":
                serve_h2(tls, conn_id, args.record)
            else:
                serve_h1(tls, conn_id, args.record)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def accept_loop():
        while True:
            try:
                sock, _ = lsock.accept()
            except OSError:
                return
            counter[0] += 1
            threading.Thread(target=handle, args=(sock, counter[0]), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    sys.stdout.write("PORT %d\n" % lsock.getsockname()[1])
    sys.stdout.flush()
    sys.stdin.read()


if __name__ == "__main__":
    main()

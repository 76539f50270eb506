"""An HTTP/2 client that controls its frames (python3-h2, Debian's; its own HPACK encoder
from python3-hpack), for the HTTP/2 blind-mode tests of the cases that real clients do
not reliably produce. Python's ssl is the system libssl: under `kz run --blind=proxy`
it goes through kz's fallback proxy.

    /usr/bin/python3 h2_frames_client.py HOST PORT

Trusts the bundle named by SSL_CERT_FILE; tokens from API_KEY, OTHER_KEY, SHORT_KEY. On
one connection, at once (all streams open before any answer is read):
  stream 1 "/split": x-api-key $API_KEY (indexed: enters the encoder's dynamic table),
           x-pad of 20000 bytes, then "authorization: Bearer $API_KEY": the header block
           is larger than a frame, so the authorization lands in a CONTINUATION frame
  stream 3 "/indexed": x-api-key by dynamic-table index only
  stream 5 "/short-in-body": body {"key": $SHORT_KEY} (a value shorter than its token:
           the stream cannot be swapped exactly and is refused)
  stream 7 "/other": x-api-key $OTHER_KEY (bound elsewhere: unchanged)
  stream 9 "/indexed-again": x-api-key by index again, body {"key": $API_KEY}
Prints "RESULT " + JSON {path: {"status": n, "body": text} or {"reset": error code}}.
"""
import json
import os
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events
from hpack import NeverIndexedHeaderTuple


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    api, other, short = os.environ["API_KEY"], os.environ["OTHER_KEY"], os.environ["SHORT_KEY"]
    ctx = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    ctx.set_alpn_protocols(["h2"])
    sock = ctx.wrap_socket(socket.create_connection((host, port), timeout=30), server_hostname=host)
    if sock.selected_alpn_protocol() != "h2":
        sys.stderr.write("error: ALPN %r, not h2\n" % sock.selected_alpn_protocol())
        return 1
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())

    def base(path, method="GET"):
        return [(":method", method), (":scheme", "https"), (":authority", "%s:%d" % (host, port)), (":path", path)]

    streams = {}

    def request(path, headers, body=None):
        sid = conn.get_next_available_stream_id()
        method = "POST" if body is not None else "GET"
        conn.send_headers(sid, base(path, method) + headers, end_stream=body is None)
        if body is not None:
            conn.send_data(sid, body.encode(), end_stream=True)
        streams[sid] = path
        sock.sendall(conn.data_to_send())

    # x-pad is never indexed: an entry larger than the table would empty it.
    request("/split", [("x-api-key", api), NeverIndexedHeaderTuple("x-pad", "p" * 20000),
                       ("authorization", "Bearer " + api)])
    request("/indexed", [("x-api-key", api)])
    request("/short-in-body", [("content-type", "application/json")], json.dumps({"key": short}))
    request("/other", [("x-api-key", other)])
    request("/indexed-again", [("x-api-key", api), ("content-type", "application/json")], json.dumps({"key": api}))

    results, bodies = {}, {}
    sock.settimeout(30)
    while len(results) < len(streams):
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                bodies[ev.stream_id] = (int(dict(ev.headers)[":status"]), b"")
            elif isinstance(ev, h2.events.DataReceived):
                st, b = bodies[ev.stream_id]
                bodies[ev.stream_id] = (st, b + ev.data)
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                st, b = bodies[ev.stream_id]
                results[streams[ev.stream_id]] = {"status": st, "body": b.decode()}
            elif isinstance(ev, h2.events.StreamReset):
                results[streams[ev.stream_id]] = {"reset": int(ev.error_code)}
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
    conn.close_connection()
    sock.sendall(conn.data_to_send())
    sock.close()
    print("RESULT " + json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

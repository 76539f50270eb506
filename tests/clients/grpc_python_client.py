"""A gRPC client in Python (Debian's python3-grpcio: grpc core's own HTTP/2 and HPACK, TLS
through the system libssl on a memory BIO) for the HTTP/2 blind-mode tests.

    /usr/bin/python3 grpc_python_client.py HOST:PORT COUNT

COUNT unary calls to /kz.test.Echo/Echo (raw bytes, no protobuf schema) at once on one
channel, call i with metadata authorization "Bearer $API_KEY" and x-api-key $API_KEY
(even i) or $OTHER_KEY (odd i), message "msg <i> key=<key>". Trusts the bundle named by
SSL_CERT_FILE (kz points it at the system store plus the run's CA). Prints "RESULT " +
JSON [{i, reply}]; exits 1 on an error.
"""
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import grpc


def main():
    target, count = sys.argv[1], int(sys.argv[2])
    keys = [os.environ["API_KEY"], os.environ["OTHER_KEY"]]
    with open(os.environ["SSL_CERT_FILE"], "rb") as f:
        roots = f.read()
    channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=roots))
    echo = channel.unary_unary("/kz.test.Echo/Echo")

    def one(i):
        key = keys[i % 2]
        reply = echo(("msg %d key=%s" % (i, key)).encode(), timeout=30,
                     metadata=(("authorization", "Bearer " + key), ("x-api-key", key)))
        return {"i": i, "reply": reply.decode()}

    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            results = list(pool.map(one, range(count)))
    except grpc.RpcError as e:
        sys.stderr.write("error: %s %s\n" % (e.code(), e.details()))
        return 1
    print("RESULT " + json.dumps(results))
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

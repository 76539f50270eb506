// A gRPC server (@grpc/grpc-js over node's http2, TLS with the test CA's leaf) that
// records every call it receives, for the HTTP/2 blind-mode tests.
//
//   node grpc_server.cjs CERT KEY RECORD
//
// Binds 127.0.0.1 on a free port, prints "PORT n" once it serves, exits when stdin
// closes. One unary method, /kz.test.Echo/Echo, with raw bytes as messages (no protobuf
// schema: grpc-js frames them exactly as any message, a 5-byte length prefix in DATA).
// Each call becomes one JSON line in RECORD before it is answered: metadata (name ->
// first value; binary -bin values base64), message (the request bytes, UTF-8), peer.
// The answer is the bytes "echo:" + message.
const fs = require('node:fs');
const { grpc, service } = require('./echo_service.cjs');

const [cert, key, record] = process.argv.slice(2);
if (!record) {
  process.stderr.write('usage: node grpc_server.cjs CERT KEY RECORD\n');
  process.exit(2);
}
const server = new grpc.Server();
server.addService(service, {
  Echo(call, callback) {
    const metadata = {};
    for (const [k, v] of Object.entries(call.metadata.getMap())) {
      metadata[k] = Buffer.isBuffer(v) ? v.toString('base64') : v;
    }
    fs.appendFileSync(record, JSON.stringify({ metadata, message: call.request.toString('utf8'), peer: call.getPeer() }) + '\n');
    callback(null, Buffer.concat([Buffer.from('echo:'), call.request]));
  },
});
const creds = grpc.ServerCredentials.createSsl(null, [{ private_key: fs.readFileSync(key), cert_chain: fs.readFileSync(cert) }], false);
server.bindAsync('127.0.0.1:0', creds, (err, port) => {
  if (err) {
    process.stderr.write(`grpc_server: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`PORT ${port}\n`);
});
process.stdin.on('data', () => {});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));

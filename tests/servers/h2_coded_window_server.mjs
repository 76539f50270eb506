// A local HTTP/2 TLS server for the test of the owed credit of refused streams
// (test_blind_h2.py, test_refused_stream_credit_reaches_a_client_that_only_reads).
//
//   node h2_coded_window_server.mjs --cert PEM --key PEM
//
// Listens on 127.0.0.1 on a free port, prints "PORT n", exits when its stdin closes.
//   /coded: 200 with content-encoding: gzip and BYTES (65535) bytes of body: exactly the
//           client's default connection window. kz refuses a coded response on a
//           connection that carries a value, so these bytes never reach the client, and
//           only kz can give the server their credit back.
//   /after: answered once /coded's body has been handed on in full: 20000 bytes, which
//           can go only once the connection window has been credited again.
import fs from 'node:fs';
import http2 from 'node:http2';

function arg(name) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) {
    process.stderr.write(`h2_coded_window_server: ${name} is required\n`);
    process.exit(2);
  }
  return process.argv[i + 1];
}

const BYTES = 65535;
const server = http2.createSecureServer({ key: fs.readFileSync(arg('--key')), cert: fs.readFileSync(arg('--cert')),
                                          ALPNProtocols: ['h2'] });
let codedDone;
const coded = new Promise((resolve) => { codedDone = resolve; });

server.on('stream', (stream, headers) => {
  const path = headers[':path'];
  stream.on('error', () => {});
  if (path === '/coded') {
    stream.respond({ ':status': 200, 'content-encoding': 'gzip', 'content-type': 'application/octet-stream' });
    stream.end(Buffer.alloc(BYTES, 0x61), () => codedDone());
    stream.on('close', () => codedDone());
  } else {
    coded.then(() => {
      if (stream.destroyed) return;
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      stream.end(Buffer.alloc(20000, 0x62));
    });
  }
});

server.listen(0, '127.0.0.1', () => process.stdout.write(`PORT ${server.address().port}\n`));
process.stdin.on('data', () => {});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));

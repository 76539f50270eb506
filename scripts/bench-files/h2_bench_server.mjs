// The HTTP/2 benchmark server of scripts/bench-h2 (node's http2: TLS, ALPN h2 only).
//
//   node h2_bench_server.mjs CERT KEY EXPECT_FILE
//
// Answers every request 200 "ok" when its authorization header is "Bearer <the value
// in EXPECT_FILE>", and 403 "no" otherwise, so h2load's 2xx count proves that every
// request carried the real value. Listens on 127.0.0.1 on a free port, prints "PORT n",
// exits when its stdin closes.
import fs from 'node:fs';
import http2 from 'node:http2';

const [cert, key, expectFile] = process.argv.slice(2);
const want = `Bearer ${fs.readFileSync(expectFile, 'utf8').trim()}`;
const server = http2.createSecureServer({
  cert: fs.readFileSync(cert),
  key: fs.readFileSync(key),
  settings: { maxConcurrentStreams: 1000 },
});
server.on('stream', (stream, headers) => {
  const ok = headers.authorization === want;
  stream.respond({ ':status': ok ? 200 : 403, 'content-type': 'text/plain', 'content-length': 2 });
  stream.end(ok ? 'ok' : 'no');
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`PORT ${server.address().port}\n`));
process.stdin.on('data', () => {});
process.stdin.on('end', () => process.exit(0));

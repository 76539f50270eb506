// A real node (20) HTTP/2 client (node:http2, which encodes HPACK with nghttp2: Huffman
// where shorter, a dynamic table) for the HTTP/2 blind-mode tests. Under `kz run --blind`
// its connection goes to kz's fallback proxy (node carries its own OpenSSL); it trusts
// the run's CA through NODE_EXTRA_CA_CERTS only.
//
//   node node_h2_client.mjs URL COUNT
//
// Opens ONE HTTP/2 session to URL and sends COUNT POST requests on it at once (concurrent
// streams), request i to URL/<i>:
//   even i: "authorization: Bearer $API_KEY", "x-api-key: $API_KEY", body {"i":i,"key":$API_KEY}
//   odd i:  the same with $OTHER_KEY
// x-api-key is indexed by the encoder (dynamic table), so later requests refer to the
// entry; authorization is never indexed by nghttp2 (a literal each time).
// Prints "RESULT " + JSON [{i, status, body}] on stdout and the session's ALPN protocol
// as "ALPN h2"; exits 1 on an error (printed on stderr), 2 on bad usage.
import http2 from 'node:http2';

const TIMEOUT_MS = 30000;
const [url, countArg] = process.argv.slice(2);
if (!url || !countArg) {
  process.stderr.write('usage: node node_h2_client.mjs URL COUNT\n');
  process.exit(2);
}
const count = Number(countArg);
const keys = [process.env.API_KEY, process.env.OTHER_KEY];
if (keys.some((k) => k === undefined)) {
  process.stderr.write('node_h2_client: API_KEY and OTHER_KEY must be set\n');
  process.exit(2);
}

function fail(err) {
  process.stderr.write(`error: ${err.code ?? ''} ${err.message}\n`);
  process.exit(1);
}

const timer = setTimeout(() => fail(new Error('timed out')), TIMEOUT_MS);
const session = http2.connect(url);
session.on('error', fail);

function one(i) {
  return new Promise((resolve, reject) => {
    const key = keys[i % 2];
    const body = JSON.stringify({ i, key });
    const req = session.request({
      ':method': 'POST',
      ':path': `${new URL(url).pathname.replace(/\/$/, '')}/${i}`,
      authorization: `Bearer ${key}`,
      'x-api-key': key,
      'content-type': 'application/json',
    });
    let status = 0;
    const chunks = [];
    req.on('response', (h) => { status = h[':status']; });
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve({ i, status, body: Buffer.concat(chunks).toString() }));
    req.on('error', reject);
    req.end(body);
  });
}

session.on('connect', async () => {
  try {
    const results = await Promise.all(Array.from({ length: count }, (_, i) => one(i)));
    process.stdout.write(`ALPN ${session.alpnProtocol}\n`);
    process.stdout.write(`RESULT ${JSON.stringify(results)}\n`);
    clearTimeout(timer);
    session.close();
  } catch (err) {
    fail(err);
  }
});

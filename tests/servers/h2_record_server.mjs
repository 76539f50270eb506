// A local HTTP/2 TLS server (node's http2 module, which decodes HPACK with its own
// nghttp2) that records every request it receives, for the HTTP/2 blind-mode tests.
//
//   node h2_record_server.mjs --cert PEM --key PEM --record FILE [--h1]
//
// Listens on 127.0.0.1 on a free port, prints "PORT n" once it accepts connections, and
// exits when its stdin closes. ALPN: h2 only, or h2 and http/1.1 with --h1 (allowHTTP1,
// for clients that speak only HTTP/1.1, such as node 20's fetch).
//
// Each request, once its body is complete, becomes one JSON line in FILE (appended before
// the response is sent, so a client that has its answer finds its record):
//   conn (a number per TLS connection), alpn, version ("2.0" / "1.1"), stream (the h2
//   stream id, 0 for HTTP/1.1), method, path, authority, headers (lower-case name ->
//   value, repeated fields joined with ", "), body (UTF-8); reset (the RST_STREAM error
//   code) for a stream the client reset before its end.
// The answer is 200, application/json: {"stream": id, "authorization": <the request's
// authorization header>, "bytes": <body length>} — the echo lets a test see that a value
// coming back is redacted to the token before the client reads it.
import fs from 'node:fs';
import http2 from 'node:http2';

function arg(name, required = true) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) {
    if (required) {
      process.stderr.write(`h2_record_server: ${name} is required\n`);
      process.exit(2);
    }
    return undefined;
  }
  return process.argv[i + 1];
}

const record = arg('--record');
const h1 = process.argv.includes('--h1');
const server = http2.createSecureServer({
  key: fs.readFileSync(arg('--key')),
  cert: fs.readFileSync(arg('--cert')),
  allowHTTP1: h1,
  ALPNProtocols: h1 ? ['h2', 'http/1.1'] : ['h2'],
  // Many concurrent streams on one connection (the tests open dozens).
  settings: { maxConcurrentStreams: 1000 },
});

const connIds = new WeakMap();
let nextConn = 1;
function connOf(socket) {
  if (!connIds.has(socket)) connIds.set(socket, nextConn++);
  return connIds.get(socket);
}

server.on('request', (req, res) => {
  // The connection's facts now: a stream that has ended may no longer name its session.
  const h2 = req.httpVersion === '2.0';
  const socket = h2 ? req.stream.session.socket : req.socket;
  const conn = connOf(h2 ? req.stream.session : socket);
  const alpn = socket.alpnProtocol || null;
  const stream = h2 ? req.stream.id : 0;
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const headers = {};
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i].toLowerCase();
      if (name.startsWith(':')) continue;
      headers[name] = name in headers ? `${headers[name]}, ${req.rawHeaders[i + 1]}` : req.rawHeaders[i + 1];
    }
    const rec = {
      conn,
      alpn,
      version: req.httpVersion,
      stream,
      method: req.method,
      path: req.url,
      authority: h2 ? req.headers[':authority'] : req.headers.host,
      headers,
      body: body.toString('utf8'),
    };
    // A stream the client reset ends too: recorded with its error code (and the body
    // so far), and not answered.
    if (h2 && req.stream.rstCode) {
      rec.reset = req.stream.rstCode;
      fs.appendFileSync(record, JSON.stringify(rec) + '\n');
      return;
    }
    fs.appendFileSync(record, JSON.stringify(rec) + '\n');
    const answer = JSON.stringify({ stream: rec.stream, authorization: headers.authorization ?? null, bytes: body.length });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
    res.end(answer);
  });
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});
process.stdin.on('data', () => {});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));

// A real node (20) HTTPS client for the blind-mode end-to-end tests. Node bundles its own
// OpenSSL, so kz's shim cannot reach it: under `kz run --blind` its connections go to
// kz's fallback proxy, and it trusts the run's CA only through NODE_EXTRA_CA_CERTS.
//
//   node node_client.mjs https|fetch URL ENVVAR [BODY]
//
// Sends one request to URL (GET, or POST with BODY as application/json) with
// "Authorization: Bearer $ENVVAR", using node:https ("https") or the global fetch
// ("fetch", undici). Prints "status N" and the response body on stdout; exits 0 on any
// HTTP response, 1 on a connection/TLS error (printed on stderr), 2 on bad usage.
// Default trust only: no rejectUnauthorized, no custom CA, no proxy, no agent tweaks.
import https from 'node:https';

const TIMEOUT_MS = 20000;

function usage(msg) {
  process.stderr.write(`node_client: ${msg}\nusage: node node_client.mjs https|fetch URL ENVVAR [BODY]\n`);
  process.exit(2);
}

// The error and its causes (fetch wraps the TLS error as `cause`), with the codes that
// tell a refused connection from an untrusted certificate.
function describe(err) {
  const parts = [];
  for (let e = err; e; e = e.cause) {
    parts.push(e.code ? `${e.code}: ${e.message}` : String(e.message ?? e));
    if (parts.length > 5) break;
  }
  return parts.join(' <- ');
}

function fail(err) {
  process.stderr.write(`error: ${describe(err)}\n`);
  process.exit(1);
}

function viaHttps(url, value, body) {
  const headers = { Authorization: `Bearer ${value}` };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = Buffer.byteLength(body);
  }
  const req = https.request(url, { method: body === undefined ? 'GET' : 'POST', headers, timeout: TIMEOUT_MS }, (res) => {
    const chunks = [];
    res.on('data', (c) => chunks.push(c));
    res.on('end', () => {
      process.stdout.write(`status ${res.statusCode}\n${Buffer.concat(chunks).toString()}`);
    });
    res.on('error', fail);
  });
  req.on('timeout', () => req.destroy(new Error('timed out')));
  req.on('error', fail);
  req.end(body);
}

async function viaFetch(url, value, body) {
  const init = {
    method: body === undefined ? 'GET' : 'POST',
    headers: { Authorization: `Bearer ${value}` },
    signal: AbortSignal.timeout(TIMEOUT_MS),
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = body;
  }
  try {
    const res = await fetch(url, init);
    const text = await res.text();
    process.stdout.write(`status ${res.status}\n${text}`);
  } catch (err) {
    fail(err);
  }
}

const [mode, url, envName, body] = process.argv.slice(2);
if (!mode || !url || !envName || process.argv.length > 6) usage('wrong arguments');
const value = process.env[envName];
if (value === undefined) usage(`${envName} is not set`);
if (mode === 'https') viaHttps(url, value, body);
else if (mode === 'fetch') await viaFetch(url, value, body);
else usage(`unknown mode ${mode}`);

#!/usr/bin/env node
// An MCP client built on the official TypeScript SDK, for testing kz's MCP server with a
// client that kz's own code had no hand in.
//
//   node sdk_client.mjs --http URL --bearer-file FILE --steps steps.json
//   node sdk_client.mjs --stdio [--server-stderr FILE] --steps steps.json -- CMD ARG...
//
// Options:
//   --steps FILE              JSON array of {"tool": NAME, "arguments": OBJ}; "-" reads stdin
//   --bearer-file FILE        (HTTP) sends "Authorization: Bearer <file contents, trimmed>"
//   --server-stderr FILE      (stdio) the server's stderr goes to FILE instead of ours
//   --protocol-version V      ask for V in initialize instead of the SDK's latest
//   --request-timeout-ms N    per-request timeout (default 60000, the SDK's)
//
// It connects (initialize + notifications/initialized), lists tools, and calls the tools of
// the steps in order. A string anywhere inside a step's arguments may hold placeholders
// {{N.FIELD}}: replaced by structuredContent.FIELD of step N's result (0-based; FIELD may be
// a dotted path; a non-string value is inserted as JSON). A placeholder that cannot be
// resolved fails that step (an "error" with code null) without calling the tool.
//
// stdout gets one JSON object:
//   {"serverInfo", "protocolVersion", "capabilities", "instructions"?, "sessionId"? (HTTP),
//    "tools": [tool objects as listed],
//    "steps": [{"tool", "arguments" (after substitution), "result"}
//              | {"tool", "arguments", "error": {"code", "message", "data"?}}]}
// "error" is a JSON-RPC error from the server (code null: a local or transport failure).
// The SDK's own check of structuredContent against the tool's outputSchema is kept apart
// from the result: when it fails, the step also has "outputSchemaError": MESSAGE.
//
// Then it closes (HTTP: DELETE ends the session; stdio: stdin closed, then SIGTERM after
// 2 s, as the SDK does). Exit status: 0 done; 1 tools/list or the session's end failed
// (message on stderr, stdout JSON printed if it got that far); 2 usage error or connection
// failure (message on stderr).
import fs from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, McpError } from '@modelcontextprotocol/sdk/types.js';

const PROG = 'sdk_client';

function die(code, msg) {
  process.stderr.write(`${PROG}: ${msg}\n`);
  process.exit(code);
}

function parseArgs(argv) {
  const o = { mode: null, command: null, requestTimeoutMs: 60000 };
  const need = (i, name) => {
    if (i + 1 >= argv.length) die(2, `${name} needs a value`);
    return argv[i + 1];
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--http':
        if (o.mode) die(2, '--http and --stdio exclude each other');
        o.mode = 'http'; o.url = need(i, a); i++; break;
      case '--stdio':
        if (o.mode) die(2, '--http and --stdio exclude each other');
        o.mode = 'stdio'; break;
      case '--bearer-file': o.bearerFile = need(i, a); i++; break;
      case '--steps': o.steps = need(i, a); i++; break;
      case '--server-stderr': o.serverStderr = need(i, a); i++; break;
      case '--protocol-version': o.protocolVersion = need(i, a); i++; break;
      case '--request-timeout-ms': {
        const n = Number(need(i, a)); i++;
        if (!Number.isInteger(n) || n <= 0) die(2, `${a} must be a positive integer`);
        o.requestTimeoutMs = n;
        break;
      }
      case '--': o.command = argv.slice(i + 1); i = argv.length; break;
      case '-h': case '--help':
        process.stdout.write('usage: sdk_client.mjs --http URL --bearer-file FILE --steps FILE\n' +
          '       sdk_client.mjs --stdio [--server-stderr FILE] --steps FILE -- CMD ARG...\n' +
          '       [--protocol-version V] [--request-timeout-ms N]\n');
        process.exit(0);
      default: die(2, `unknown argument: ${a}`);
    }
  }
  if (!o.mode) die(2, 'one of --http URL or --stdio is required');
  if (!o.steps) die(2, '--steps FILE is required');
  if (o.mode === 'http') {
    if (o.command) die(2, '-- CMD is for --stdio only');
    if (o.serverStderr) die(2, '--server-stderr is for --stdio only');
  } else {
    if (!o.command || o.command.length === 0) die(2, '--stdio needs -- CMD ARG...');
    if (o.bearerFile) die(2, '--bearer-file is for --http only');
  }
  return o;
}

function readSteps(file) {
  let text;
  try {
    text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    die(2, `cannot read steps ${file}: ${e.message}`);
  }
  let steps;
  try {
    steps = JSON.parse(text);
  } catch (e) {
    die(2, `steps ${file}: not JSON: ${e.message}`);
  }
  if (!Array.isArray(steps)) die(2, `steps ${file}: expected a JSON array`);
  steps.forEach((s, i) => {
    if (!s || typeof s !== 'object' || typeof s.tool !== 'string') die(2, `steps[${i}]: needs "tool": NAME`);
    if (s.arguments !== undefined && (typeof s.arguments !== 'object' || s.arguments === null || Array.isArray(s.arguments))) {
      die(2, `steps[${i}].arguments must be an object`);
    }
  });
  return steps;
}

class PlaceholderError extends Error {}

const PLACEHOLDER = /\{\{(\d+)\.([^{}]+)\}\}/g;

function lookup(done, index, path) {
  if (index >= done.length) throw new PlaceholderError(`{{${index}.${path}}}: step ${index} has not run yet`);
  const sc = done[index].result?.structuredContent;
  if (sc === undefined || sc === null) throw new PlaceholderError(`{{${index}.${path}}}: step ${index} has no structuredContent`);
  let v = sc;
  for (const k of path.split('.')) {
    if (v === null || typeof v !== 'object' || !(k in v)) throw new PlaceholderError(`{{${index}.${path}}}: step ${index} has no structuredContent.${path}`);
    v = v[k];
  }
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function substitute(value, done) {
  if (typeof value === 'string') return value.replace(PLACEHOLDER, (_, n, path) => lookup(done, Number(n), path));
  if (Array.isArray(value)) return value.map(v => substitute(v, done));
  if (value && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = substitute(v, done);
    return out;
  }
  return value;
}

// An error's message with its causes (fetch's "fetch failed" hides ECONNREFUSED there).
function describe(e) {
  let text = e instanceof Error ? e.message : String(e);
  for (let c = e?.cause, n = 0; c && n < 3; c = c.cause, n++) text += `: ${c.message ?? c.code ?? String(c)}`;
  return text;
}

function errorObject(e) {
  if (e instanceof McpError) {
    // McpError prefixes its message with "MCP error <code>: "; report the server's text.
    const prefix = `MCP error ${e.code}: `;
    const message = e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message;
    const err = { code: e.code, message };
    if (e.data !== undefined) err.data = e.data;
    return err;
  }
  return { code: null, message: describe(e) };
}

// Rewrites the protocolVersion of the outgoing initialize request.
function askForVersion(transport, version) {
  const send = transport.send.bind(transport);
  transport.send = (message, options) => {
    if (message && message.method === 'initialize' && message.params) {
      message = { ...message, params: { ...message.params, protocolVersion: version } };
    }
    return send(message, options);
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const steps = readSteps(opts.steps);

  let transport;
  let negotiated;
  if (opts.mode === 'http') {
    let url;
    try {
      url = new URL(opts.url);
    } catch {
      die(2, `not a URL: ${opts.url}`);
    }
    const headers = {};
    if (opts.bearerFile) {
      let token;
      try {
        token = fs.readFileSync(opts.bearerFile, 'utf8').trim();
      } catch (e) {
        die(2, `cannot read bearer file ${opts.bearerFile}: ${e.message}`);
      }
      headers.Authorization = `Bearer ${token}`;
    }
    transport = new StreamableHTTPClientTransport(url, { requestInit: { headers } });
  } else {
    let stderr = 'inherit';
    if (opts.serverStderr) {
      try {
        stderr = fs.openSync(opts.serverStderr, 'a');
      } catch (e) {
        die(2, `cannot open ${opts.serverStderr}: ${e.message}`);
      }
    }
    transport = new StdioClientTransport({
      command: opts.command[0],
      args: opts.command.slice(1),
      env: { ...process.env },
      stderr,
    });
    // The client hands the negotiated version to transports that take one (HTTP does);
    // give stdio the same hook so both modes report it the same way.
    transport.setProtocolVersion = v => { negotiated = v; };
  }
  if (opts.protocolVersion) askForVersion(transport, opts.protocolVersion);

  const client = new Client({ name: 'kz-sdk-test-client', version: '1.0.0' }, { capabilities: {} });
  const reqOpts = { timeout: opts.requestTimeoutMs };
  try {
    await client.connect(transport, reqOpts);
  } catch (e) {
    try { await client.close(); } catch { /* already failing */ }
    die(2, `connection failed: ${describe(e)}`);
  }
  if (opts.mode === 'http') negotiated = transport.protocolVersion;

  const out = {
    serverInfo: client.getServerVersion() ?? null,
    protocolVersion: negotiated ?? null,
    capabilities: client.getServerCapabilities() ?? null,
  };
  const instructions = client.getInstructions();
  if (instructions !== undefined) out.instructions = instructions;
  if (opts.mode === 'http' && transport.sessionId !== undefined) out.sessionId = transport.sessionId;

  let exitCode = 0;
  try {
    const listed = await client.listTools(undefined, reqOpts);
    out.tools = listed.tools;
  } catch (e) {
    process.stderr.write(`${PROG}: tools/list failed: ${JSON.stringify(errorObject(e))}\n`);
    out.tools = null;
    exitCode = 1;
  }

  out.steps = [];
  for (const step of exitCode === 0 ? steps : []) {
    const entry = { tool: step.tool, arguments: step.arguments ?? {} };
    try {
      entry.arguments = substitute(entry.arguments, out.steps);
    } catch (e) {
      if (!(e instanceof PlaceholderError)) throw e;
      entry.error = { code: null, message: e.message };
      out.steps.push(entry);
      continue;
    }
    try {
      // client.request rather than client.callTool: callTool turns an outputSchema mismatch
      // into a thrown McpError, which would look like a JSON-RPC error from the server.
      entry.result = await client.request({ method: 'tools/call', params: { name: step.tool, arguments: entry.arguments } },
        CallToolResultSchema, reqOpts);
      const validator = client.getToolOutputValidator?.(step.tool);
      if (validator && !entry.result.isError) {
        if (!entry.result.structuredContent) {
          entry.outputSchemaError = 'the tool has an outputSchema but returned no structuredContent';
        } else {
          const v = validator(entry.result.structuredContent);
          if (!v.valid) entry.outputSchemaError = v.errorMessage;
        }
      }
    } catch (e) {
      entry.error = errorObject(e);
    }
    out.steps.push(entry);
  }

  process.stdout.write(JSON.stringify(out) + '\n');

  if (opts.mode === 'http') {
    try {
      await transport.terminateSession();
    } catch (e) {
      process.stderr.write(`${PROG}: ending the session (DELETE) failed: ${describe(e)}\n`);
      exitCode = 1;
    }
  }
  try {
    await client.close();
  } catch (e) {
    process.stderr.write(`${PROG}: close failed: ${describe(e)}\n`);
    exitCode = 1;
  }
  return exitCode;
}

main().then(code => {
  // Let stdout drain, then leave even if a handle (a timer, a socket) is still open.
  process.stdout.write('', () => process.exit(code));
}, e => die(1, e instanceof Error ? e.stack || e.message : String(e)));

// A gRPC client (@grpc/grpc-js; node's own OpenSSL and http2) for the HTTP/2 blind-mode
// tests. Under `kz run --blind` its connection goes to kz's fallback proxy; it trusts the
// run's CA through NODE_EXTRA_CA_CERTS (grpc.credentials.createSsl() with no roots uses
// node's default store).
//
//   node grpc_client.cjs HOST:PORT COUNT
//
// COUNT unary calls to /kz.test.Echo/Echo at once on one channel (one HTTP/2
// connection, concurrent streams), call i with metadata
//   even i: "authorization: Bearer $API_KEY", "x-api-key: $API_KEY", message "msg <i> key=$API_KEY"
//   odd i:  the same with $OTHER_KEY
// Prints "RESULT " + JSON [{i, reply}] on stdout; exits 1 on an error, 2 on bad usage.
const { grpc, service } = require('./echo_service.cjs');

const [target, countArg] = process.argv.slice(2);
const count = Number(countArg);
const keys = [process.env.API_KEY, process.env.OTHER_KEY];
if (!target || !(count >= 1) || keys.some((k) => !k)) {
  process.stderr.write('usage: API_KEY=.. OTHER_KEY=.. node grpc_client.cjs HOST:PORT COUNT\n');
  process.exit(2);
}
const Client = grpc.makeGenericClientConstructor(service);
const client = new Client(target, grpc.credentials.createSsl());
const deadline = () => new Date(Date.now() + 30000);

function one(i) {
  return new Promise((resolve, reject) => {
    const key = keys[i % 2];
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${key}`);
    md.set('x-api-key', key);
    client.Echo(Buffer.from(`msg ${i} key=${key}`), md, { deadline: deadline() }, (err, reply) => {
      if (err) reject(err);
      else resolve({ i, reply: reply.toString('utf8') });
    });
  });
}

Promise.all(Array.from({ length: count }, (_, i) => one(i))).then(
  (results) => {
    process.stdout.write(`RESULT ${JSON.stringify(results)}\n`);
    client.close();
  },
  (err) => {
    process.stderr.write(`error: ${err.code ?? ''} ${err.details ?? err.message}\n`);
    process.exit(1);
  },
);

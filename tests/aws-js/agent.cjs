// The AWS SDK for JavaScript v3, unchanged, as an agent under `kz run --blind`
// (tests/security/test_sigv4_resign.py). node carries its own OpenSSL, so its TLS goes
// through kz's fallback proxy, which re-signs. argv: PORT CONTROL_SOCKET.
// Credentials come from the environment kz gives it: AWS_ACCESS_KEY_ID and a token as
// AWS_SECRET_ACCESS_KEY.
const net = require("net");
const { SecretsManagerClient, GetSecretValueCommand } = require("@aws-sdk/client-secrets-manager");
const { S3Client, PutObjectCommand, GetObjectCommand } = require("@aws-sdk/client-s3");
const { STSClient, GetCallerIdentityCommand } = require("@aws-sdk/client-sts");

const [port, control] = process.argv.slice(2);
const cfg = { endpoint: `https://localhost:${port}`, region: "us-east-1" };

async function attempt(f) {
  try {
    return await f();
  } catch (e) {
    return "error: " + (e.name || "") + " " + e.message;
  }
}

(async () => {
  const out = {};
  out.sm = await attempt(async () =>
    (await new SecretsManagerClient(cfg).send(new GetSecretValueCommand({ SecretId: "prod/db" }))).SecretString);
  const s3 = new S3Client({ ...cfg, forcePathStyle: true });
  out.s3 = await attempt(async () => {
    await s3.send(new PutObjectCommand({ Bucket: "kzbucket", Key: "js.txt", Body: "hello from node" }));
    return (await s3.send(new GetObjectCommand({ Bucket: "kzbucket", Key: "js.txt" }))).Body.transformToString();
  });
  out.sts = await attempt(async () => (await new STSClient(cfg).send(new GetCallerIdentityCommand({}))).Account);
  console.log("RESULT " + JSON.stringify(out));
  // Tell the test our pid, and wait for it to read our memory.
  const c = net.createConnection(control, () => c.write(JSON.stringify({ pid: process.pid }) + "\n"));
  c.on("data", () => process.exit(0));   // the SDK's keep-alive sockets would hold the process open
})();

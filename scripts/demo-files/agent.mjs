// The same careless agent in node, whose TLS (its own bundled OpenSSL) the preload shim
// cannot reach: under `kz run --blind` its connection is redirected to kz's TLS proxy,
// which swaps the token on the way to the bound host. No proxy variables are involved.
const key = process.env.DEMO_API_KEY ?? "";
console.log(`node agent: my DEMO_API_KEY is ${key}`);
const r = await fetch(`${process.env.DEMO_API_URL}/v1/node`, {
  method: "POST",
  headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
  body: JSON.stringify({ prompt: "hello from node" }),
});
console.log(`node agent: the API answered ${r.status}: ${(await r.text()).trim()}`);
process.exit(r.ok ? 0 : 1);

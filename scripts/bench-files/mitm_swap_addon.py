"""mitmproxy addon for scripts/bench-proxy, mode (c): the token swap that kz's proxy does,
done the smallest way mitmproxy allows, so the benchmark compares proxies, not features.

For every request, each header value that contains the token (env KZ_BENCH_TOKEN) gets
it replaced by the value (env KZ_BENCH_VALUE). Nothing else: no host binding, no audit,
no response redaction. Written for mitmproxy 8 (Debian's 8.1), loaded with
`mitmdump -s mitm_swap_addon.py`.
"""
import os

from mitmproxy import http


class TokenSwap:
    def __init__(self):
        self.token = os.environ["KZ_BENCH_TOKEN"]
        self.value = os.environ["KZ_BENCH_VALUE"]
        if not self.token or not self.value:
            raise ValueError("KZ_BENCH_TOKEN and KZ_BENCH_VALUE must be set")

    def request(self, flow: http.HTTPFlow) -> None:
        headers = flow.request.headers
        for name in list(headers.keys()):
            values = headers.get_all(name)
            if any(self.token in v for v in values):
                headers.set_all(name, [v.replace(self.token, self.value) for v in values])


addons = [TokenSwap()]

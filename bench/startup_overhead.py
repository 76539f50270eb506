#!/usr/bin/python3
"""kz's own start-up overhead: `kz run -- true` versus `true`, interleaved, same machine,
same moment. Secrets come from the env provider, so no provider latency is measured.

usage: bench/startup_overhead.py [KZ_BIN] [RUNS]
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

kz = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "build", "bin", "kz")
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 200

with tempfile.TemporaryDirectory() as d:
    cfg = os.path.join(d, ".keyzero.toml")
    with open(cfg, "w") as f:
        f.write("[secrets]\n" + "".join(
            'S%d = { provider = "env", ref = "BENCH_%d" }\n' % (i, i) for i in range(8)))
    env = dict(os.environ, **{"BENCH_%d" % i: "bench-secret-value-%04d" % i for i in range(8)})
    true = "/bin/true"
    cases = {
        "direct": [true],
        "kz run (masking)": [kz, "--config", cfg, "run", "--", true],
        "kz run --no-masking": [kz, "--config", cfg, "run", "--no-masking", "--", true],
    }
    times = {k: [] for k in cases}
    for _ in range(runs):
        for name, argv in cases.items():
            t0 = time.perf_counter()
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
            times[name].append((time.perf_counter() - t0) * 1e3)

base = statistics.median(times["direct"])
print("%-22s %10s %10s %12s" % ("case", "median ms", "p99 ms", "overhead ms"))
for name, t in times.items():
    t.sort()
    med = statistics.median(t)
    p99 = t[min(len(t) - 1, int(len(t) * 0.99))]
    print("%-22s %10.2f %10.2f %12.2f" % (name, med, p99, med - base))

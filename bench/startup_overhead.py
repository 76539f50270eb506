#!/usr/bin/python3
"""kz's own start-up overhead: `kz run -- true` versus `true`, interleaved, same machine,
same moment. Secrets come from the env provider, so no provider latency is measured.

Cases: kz's default configuration (as root with BPF that starts the sensors: the process
tree, the shim's TLS witness, uprobes for the processes it does not serve),
`--sensors=full` (uprobes on every write of the run; when this kz has the option),
`--no-sensors`, and `--no-masking --no-sensors` (the bare launcher); `kz run --blind`
(default configuration and `--no-sensors`: tokens minted, the broker, the fallback
proxy and its redirect; informational, no target), when blind mode runs here. And the floor: `true`
started by scripts/bench-files/spawn_floor.c (posix_spawn + waitpid, nothing else; built
with cc when there is one), the least any launcher adds; `kz --version`, which loads kz
and does nothing: the part of the overhead that is loading the binary; and an empty C
program linked against kz's shared libraries (from ldd), the part of that loading no
code of kz's can change.

Besides wall time (median, p99, and the overhead over `true` run directly), each case's
CPU per run: user + system time of the case's whole process tree (getrusage of the
children, so kz, its threads and `true`). On a loaded machine wall time is mostly waiting
for a CPU; CPU per run is the number to compare builds by there.

usage: bench/startup_overhead.py [KZ_BIN] [RUNS] [--json FILE]
"""
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

argv = [a for a in sys.argv[1:]]
json_path = None
if "--json" in argv:
    i = argv.index("--json")
    json_path = argv[i + 1]
    del argv[i:i + 2]
kz = argv[0] if argv else os.path.join(os.path.dirname(__file__), "..", "build", "bin", "kz")
runs = int(argv[1]) if len(argv) > 1 else 200

with tempfile.TemporaryDirectory() as d:
    cfg = os.path.join(d, ".keyzero.toml")
    with open(cfg, "w") as f:
        f.write("[secrets]\n" + "".join(
            'S%d = { provider = "env", ref = "BENCH_%d" }\n' % (i, i) for i in range(8)))
    blind_cfg = os.path.join(d, "blind.toml")
    with open(blind_cfg, "w") as f:
        f.write("[secrets]\n" + "".join(
            'S%d = { provider = "env", ref = "BENCH_%d", hosts = ["api.example.com"] }\n' % (i, i)
            for i in range(8)))
    env = dict(os.environ, **{"BENCH_%d" % i: "bench-secret-value-%04d" % i for i in range(8)})
    true = "/bin/true"
    floor = None
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        floor = os.path.join(d, "spawn_floor")
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "bench-files", "spawn_floor.c")
        if subprocess.run([cc, "-O2", "-o", floor, src]).returncode != 0:
            floor = None
    cases = {
        "direct": [true],
        "kz run (default)": [kz, "--config", cfg, "run", "--", true],
        "kz run --no-sensors": [kz, "--config", cfg, "run", "--no-sensors", "--", true],
        "kz run --no-masking --no-sensors": [kz, "--config", cfg, "run", "--no-masking", "--no-sensors", "--", true],
    }
    if floor:
        cases["floor (fork/exec/wait in C)"] = [floor, true]
    # Loading kz alone (its binary and shared libraries, relocations, static initialisers)
    # and nothing else: what any `kz run` pays before it reads its configuration.
    cases["kz --version (loading kz only)"] = [kz, "--version"]
    # And the part of that no code of kz's can change: an empty program linked against
    # the same shared libraries (the dynamic loader maps and relocates them all).
    if cc:
        libs = []
        for line in subprocess.run(["ldd", kz], capture_output=True, text=True).stdout.splitlines():
            if "=>" in line and "(" in line and "not found" not in line:
                path = line.split("=>", 1)[1].split("(", 1)[0].strip()
                if path.startswith("/") and "/libc.so" not in path and "ld-linux" not in path:
                    libs.append(path)
        empty_src = os.path.join(d, "empty.c")
        with open(empty_src, "w") as f:
            f.write("int main(void) { return 0; }\n")
        empty = os.path.join(d, "empty_with_kz_libs")
        if libs and subprocess.run([cc, "-O2", "-o", empty, empty_src, "-Wl,--no-as-needed", *libs]).returncode == 0:
            cases["floor (empty program, kz's libraries)"] = [empty]
    help_text = subprocess.run([kz, "run", "--help"], capture_output=True, text=True).stdout
    if "--sensors" in help_text.replace("--no-sensors", ""):
        cases["kz run --sensors=full"] = [kz, "--config", cfg, "run", "--sensors=full", "--", true]
    for name, extra in (("kz run --blind (default)", []), ("kz run --blind --no-sensors", ["--no-sensors"])):
        cmd = [kz, "--config", blind_cfg, "run", "--blind", *extra, "--", true]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode == 0:
            cases[name] = cmd
        else:
            print("SKIP: %s: %s" % (name, (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]))
    times = {k: [] for k in cases}
    cpu = {k: 0.0 for k in cases}

    def children_cpu():
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime

    for _ in range(runs):
        for name, cmd in cases.items():
            c0 = children_cpu()
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
            times[name].append((time.perf_counter() - t0) * 1e3)
            cpu[name] += children_cpu() - c0

base = statistics.median(times["direct"])
out = {}
print("%-34s %10s %10s %12s %12s" % ("case", "median ms", "p99 ms", "overhead ms", "CPU ms/run"))
for name, t in times.items():
    t.sort()
    med = statistics.median(t)
    p99 = t[min(len(t) - 1, int(len(t) * 0.99))]
    cpu_ms = cpu[name] * 1e3 / len(t)
    out[name] = {"median_ms": med, "p99_ms": p99, "overhead_ms": med - base, "cpu_ms": cpu_ms}
    print("%-34s %10.2f %10.2f %12.2f %12.2f" % (name, med, p99, med - base, cpu_ms))
if json_path:
    with open(json_path, "w") as f:
        json.dump(out, f, indent=2)

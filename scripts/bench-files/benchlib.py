"""Shared pieces of the wrk-over-TLS benchmark drivers (scripts/bench-proxy,
scripts/bench-sensors): the test server (blind_bench.c's `server`, built here with cc),
the wrk Lua script that counts response bodies, and the checks that turn a run whose
requests did not carry the real credential into an error rather than a result.

The server answers 200 "ok" only when the Authorization header is "Bearer <the value>"
and 200 "no" otherwise, so wrk's "Non-2xx or 3xx" count alone would prove nothing:
CHECK_LUA counts the bodies and prints one machine-readable KZBENCH line, and
check_bodies() requires every completed request to have got "ok".

Imported with scripts/bench-files on sys.path; stdlib only.
"""
import os
import platform
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BENCH_FILES = os.path.join(ROOT, "scripts", "bench-files")

# Counts the response bodies ("ok" = the server got the real value) over all threads and
# prints one machine-readable line; the latency percentiles are wrk's, in microseconds.
CHECK_LUA = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) good = 0; bad = 0 end
function response(status, headers, body)
  if status == 200 and body == "ok\n" then good = good + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local g, b = 0, 0
  for _, t in ipairs(threads) do g = g + t:get("good"); b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    "KZBENCH requests=%d duration_us=%d good=%d bad=%d connect=%d read=%d write=%d status=%d timeout=%d "
    .. "p50_us=%d p99_us=%d mean_us=%.2f max_us=%d\n",
    summary.requests, summary.duration, g, b, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
"""


def prog():
    return os.path.basename(sys.argv[0]) or "bench"


def die(msg, code=1):
    sys.stderr.write("%s: %s\n" % (prog(), msg))
    sys.exit(code)


def warn(msg):
    sys.stderr.write("%s: warning: %s\n" % (prog(), msg))


def run(cmd, env=None, check=True, timeout=900):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        die("%s failed (exit %d)\n%s%s" % (shlex.join(cmd), r.returncode, r.stdout, r.stderr))
    return r


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc, what, timeout=120.0):
    """Polls a TCP connect to 127.0.0.1:port until it succeeds (no fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            die("%s exited (%d) before listening" % (what, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    die("%s did not listen on port %d within %.0f s" % (what, port, timeout))


def loadavg():
    return open("/proc/loadavg").read().split()[:3]


def warn_if_loaded(extra=""):
    load = float(loadavg()[0])
    if load > (os.cpu_count() or 1):
        warn("load average %.1f on %d CPU(s): other work shares the machine, so the numbers will be noisy%s"
             % (load, os.cpu_count() or 1, extra))


def tools(need_mitmdump=False):
    """(wrk, cc[, mitmdump]) paths; exits with the install hint when one is missing."""
    wrk = shutil.which("wrk")
    cc = shutil.which("cc") or shutil.which("gcc")
    if not wrk:
        die("no wrk (apt-get install wrk)")
    if not cc:
        die("no C compiler (scripts/setup installs build-essential)")
    if not need_mitmdump:
        return wrk, cc
    mitmdump = shutil.which("mitmdump")
    if not mitmdump:
        die("no mitmdump (apt-get install mitmproxy)")
    return wrk, cc, mitmdump


class Bench:
    """The fixture in a work directory: a test CA (tests/support/make_test_ca.sh), the
    credential's value, blind_bench built with cc and its server running on a free
    port, and the wrk Lua script. close() stops the server."""

    def __init__(self, work, cc, own_libssl=False):
        """own_libssl: link OpenSSL statically into the server, so that it does not share
        the system's libssl.so.3 with the client (as a remote server would not)."""
        self.work = work
        exe = os.path.join(work, "blind_bench")
        ssl = (["-Wl,-Bstatic", "-lssl", "-lcrypto", "-Wl,-Bdynamic", "-ldl"] if own_libssl
               else ["-lssl", "-lcrypto"])
        run([cc, "-O2", "-o", exe, os.path.join(BENCH_FILES, "blind_bench.c"), *ssl, "-pthread"])
        run([os.path.join(ROOT, "tests", "support", "make_test_ca.sh"), os.path.join(work, "ca")])
        self.ca = os.path.join(work, "ca", "ca.pem")
        self.value = "sk-bench-" + os.urandom(20).hex()
        expect = os.path.join(work, "expect")
        with open(expect, "w") as f:
            f.write(self.value + "\n")
        os.chmod(expect, 0o600)
        self.lua = os.path.join(work, "check.lua")
        with open(self.lua, "w") as f:
            f.write(CHECK_LUA)
        self.server = subprocess.Popen([exe, "server", "--cert", os.path.join(work, "ca", "server.pem"),
                                        "--key", os.path.join(work, "ca", "server.key"), "--expect-file", expect],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.server.stdout.readline()
        if not line.startswith("PORT "):
            self.close()
            die("the server did not start")
        self.port = int(line.split()[1])

    def close(self):
        """The server exits when its stdin closes."""
        if self.server.stdin:
            self.server.stdin.close()
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()


def wrk_args(wrk, lua, threads, connections, seconds):
    return [wrk, "-t", str(threads), "-c", str(connections), "-d", "%ds" % seconds,
            "--timeout", "%ds" % max(10, 2 * seconds), "--latency", "-s", lua]


def parse_wrk(text):
    for line in text.splitlines():
        if line.startswith("KZBENCH "):
            return {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", line)}
    return None


def check_bodies(what, cmd, r, warmup=False, why=""):
    """The KZBENCH result of one wrk run (completed process r), with "errors" (socket
    errors) and "rps" added. Exits when wrk (or the kz around it) failed, or when any
    completed request did not reach the server with the real value: that is no result."""
    res = parse_wrk(r.stdout)
    if r.returncode != 0 or res is None:
        die("%s: %s exited %d without a result\n%s%s" % (what, shlex.join(cmd[:1]), r.returncode, r.stdout, r.stderr))
    if ((res["good"] == 0 and not warmup) or res["bad"] > 0 or res["status"] > 0
            or res["good"] != res["requests"]):
        die("%s: the server received the real value in %d of %d request(s) (%d non-2xx)%s, so this is "
            "no measurement.\n%s%s" % (what, res["good"], res["requests"], res["status"], why, r.stdout, r.stderr))
    res["errors"] = res["connect"] + res["read"] + res["write"] + res["timeout"]
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    return res


def child_cpu_seconds(stdout):
    """User + system seconds of a shell's children (wrk), from the last line `times` printed
    ("0m1.250000s 0m0.330000s"): run wrk as `sh -c 'wrk ... && times'`. Exits when the line
    is missing: no measurement without it."""
    lines = [ln for ln in stdout.splitlines() if re.fullmatch(r"\s*\d+m[\d.]+s \d+m[\d.]+s\s*", ln)]
    if len(lines) < 2:
        die("sh's `times` printed no CPU times after wrk's output:\n%s" % stdout)
    return sum(int(m) * 60 + float(sec) for m, sec in re.findall(r"(\d+)m([\d.]+)s", lines[-1]))


def process_cpu_seconds(pid):
    """User + system seconds a running process (all its threads) has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def version(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    return ((r.stdout or r.stderr).strip().splitlines() or ["?"])[0]


def host_line(load_before, load_after):
    """OpenSSL and wrk versions, CPU, kernel and load averages: one line for a report."""
    return ("%s; %s; %s, %d CPU(s), kernel %s; load average %s before, %s after"
            % (version(["openssl", "version"]), version(["wrk", "--version"]).split(" Copyright")[0],
               platform.machine(), os.cpu_count(), platform.release(), "/".join(load_before), "/".join(load_after)))


def progress(ch):
    sys.stderr.write(ch)
    sys.stderr.flush()


def write_json(path, result):
    """Writes one driver's headline numbers for scripts/bench (its --json FILE)."""
    if not path:
        return
    import json
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


def sensors_state(kz):
    """Whether `kz run` starts the eBPF sensors by default on this machine (root with BPF),
    from `kz doctor`: the drivers report it, since it changes what a default run costs."""
    r = subprocess.run([kz, "doctor"], capture_output=True, text=True)
    for line in (r.stdout + r.stderr).splitlines():
        if line.startswith("sensor: TLS tap") and " active" in line:
            return "on"
    return "off"

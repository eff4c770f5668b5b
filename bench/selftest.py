#!/usr/bin/env python3
"""Checks the benchmark harness's pieces without running a benchmark: the generator's output,
the config writer, and stats polling against the real test Loki server (fed a hand-encoded,
snappy-framed push request). Runs in a few seconds; exit status 0 when all checks pass.

  bench/selftest.py [--build BUILD_DIR]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_lines  # noqa: E402
import run as bench  # noqa: E402

FAILS = []


def check(cond, what):
    print("%s %s" % ("ok  " if cond else "FAIL", what))
    if not cond:
        FAILS.append(what)


# ---- a minimal protobuf + snappy writer, enough for one PushRequest -------------------------

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, payload):
    """Length-delimited field."""
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def field_varint(num, v):
    return varint(num << 3) + varint(v)


def push_request(labels, lines, ts_ns):
    entries = b""
    for i, ln in enumerate(lines):
        t = ts_ns + i
        ts = field_varint(1, t // 10**9) + field_varint(2, t % 10**9)
        entries += field(2, field(1, ts) + field(2, ln.encode()))
    return field(1, field(1, labels.encode()) + entries)


def snappy_literal(data):
    """Snappy block format using literals only (valid, just not compressed)."""
    out = bytearray(varint(len(data)))
    for off in range(0, len(data), 65536):
        chunk = data[off:off + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        else:
            out.append(61 << 2)
            out += n.to_bytes(2, "little")
        out += chunk
    return bytes(out)


# ---- checks -----------------------------------------------------------------------------

def check_generator(tmp):
    plain = os.path.join(tmp, "p.log")
    n = 3000
    size = gen_lines.write_file(plain, n, seed=7, base_ns=1_700_000_000 * 10**9)
    with open(plain, encoding="utf-8") as f:
        lines = f.read().split("\n")
    check(lines[-1] == "" and len(lines) == n + 1, "plain: %d newline-terminated lines" % n)
    lines = lines[:-1]
    avg = size / n
    check(130 <= avg <= 175, "plain: average line length %.1f bytes is about 150" % avg)
    seqs = []
    for ln in lines:
        m = re.search(r'(?:seq=|"seq":)(\d+)', ln)
        seqs.append(int(m.group(1)) if m else -1)
    check(seqs == list(range(n)), "plain: every line carries its sequence number, in order")
    kinds = {"nginx": 0, "json": 0, "daemon": 0}
    rx = re.compile(bench.PIPELINE_4.split("expression: '")[1].split("'\n")[0])
    matched = 0
    for ln in lines:
        m = rx.match(ln)
        if m:
            matched += 1
            msg = m.group("msg")
            kinds["json" if msg.startswith("{") else "nginx" if m.group("app") == "nginx"
                  else "daemon"] += 1
    check(matched == n, "plain: the pipeline scenario's regex matches every line (%d/%d)"
          % (matched, n))
    check(all(v > n // 6 for v in kinds.values()), "plain: a real mix of kinds %r" % kinds)
    again = os.path.join(tmp, "p2.log")
    gen_lines.write_file(again, n, seed=7, base_ns=1_700_000_000 * 10**9)
    check(open(plain, "rb").read() == open(again, "rb").read(), "plain: same seed, same bytes")
    other = os.path.join(tmp, "p3.log")
    gen_lines.write_file(other, n, seed=8, base_ns=1_700_000_000 * 10**9)
    check(open(plain, "rb").read() != open(other, "rb").read(), "plain: other seed, other bytes")

    dock = os.path.join(tmp, "d.log")
    gen_lines.write_file(dock, n, docker=True, seed=7, base_ns=1_700_000_000 * 10**9)
    ok, streams = True, set()
    tsrx = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
    with open(dock, encoding="utf-8") as f:
        for i, ln in enumerate(f):
            rec = json.loads(ln)
            streams.add(rec["stream"])
            good = (set(rec) == {"log", "stream", "time"} and rec["log"].endswith("\n")
                    and "\n" not in rec["log"][:-1] and tsrx.match(rec["time"])
                    and re.search(r'(?:seq=|"seq":)%d\b' % i, rec["log"]))
            ok = ok and bool(good)
    check(ok, "docker: every record is json-file shaped with its sequence number")
    check(streams == {"stdout", "stderr"}, "docker: both streams present")


def check_config(tmp, build):
    cfg = os.path.join(tmp, "c.yaml")
    text = bench.write_config(cfg, tmp, "http://127.0.0.1:1/loki/api/v1/push", 0,
                              "/nonexistent/*.log", bench.PIPELINE_4, batchwait="100ms")
    for want in ("http_listen_port: 0", "batchwait: 100ms", "batchsize: 1048576",
                 "filename: %s" % os.path.join(tmp, "positions.yaml"),
                 "__path__: /nonexistent/*.log", "- regex:", "- output:"):
        check(want in text, "config has %r" % want)
    check("\t" not in text, "config has no tabs (YAML)")
    binary = os.path.join(build, "bpftail")
    if os.access(binary, os.X_OK):
        r = subprocess.run([binary, "-config.file", cfg, "-check-syntax"], capture_output=True,
                           text=True, timeout=30)
        if "not wired" in r.stderr:
            print("skip bpftail -check-syntax: this build's bpftail is a placeholder")
        else:
            check(r.returncode == 0, "bpftail -check-syntax accepts the config (%s)"
                  % (r.stderr.strip().splitlines() or ["ok"])[-1])
    else:
        print("skip bpftail -check-syntax: %s not built" % binary)


class FakeAgent:
    p = type("P", (), {"returncode": None})()

    def alive(self):
        return True

    def log_tail(self):
        return ""


def check_fake_loki(build):
    binary = os.path.join(build, "tests", "bt-fake-loki")
    if not os.access(binary, os.X_OK):
        check(False, "bt-fake-loki built at %s" % binary)
        return
    loki = bench.FakeLoki(binary, discard=True)
    try:
        check(loki.stats().get("entries") == 0, "fake Loki starts with 0 entries")
        body = snappy_literal(push_request('{job="bench"}', ["a seq=0", "b seq=1", "c seq=2"],
                                           1_700_000_000 * 10**9))
        req = urllib.request.Request(loki.push_url, data=body, method="POST",
                                     headers={"Content-Type": "application/x-protobuf"})
        with urllib.request.urlopen(req, timeout=10) as r:
            check(r.status == 204, "hand-encoded push accepted with 204")
        t = bench.wait_entries(loki, FakeAgent(), 3, timeout=10, stall=10)
        check(t > 0, "wait_entries sees all 3 entries")
        st = loki.stats()
        check(st.get("entries") == 3 and st.get("requests") == 1, "stats: %r" % st)
    finally:
        loki.stop()


MOCK_AGENT = r"""#!/usr/bin/env python3
# Stand-in for bpftail: answers the runner's readiness checks (/metrics, /targets), waits for
# a file matching the config's __path__ and pushes its lines to the client URL.
import glob, http.server, os, re, sys, threading, time, urllib.request
sys.path.insert(0, %r)
import selftest
text = open(sys.argv[sys.argv.index("-config.file") + 1]).read()
url = re.search(r"- url: (\S+)", text).group(1)
pattern = re.search(r"__path__: (\S+)", text).group(1)
port = int(re.search(r"http_listen_port: (\d+)", text).group(1))
class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"bpftail_build_info 1\n" if self.path == "/metrics" else b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", port), Ready)
threading.Thread(target=srv.serve_forever, daemon=True).start()
while not glob.glob(pattern):
    time.sleep(0.02)
lines = open(glob.glob(pattern)[0]).read().splitlines()
for i in range(0, len(lines), 500):
    body = selftest.snappy_literal(selftest.push_request('{job="bench"}', lines[i:i + 500],
                                                         time.time_ns()))
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/x-protobuf"})
    urllib.request.urlopen(req, timeout=10).read()
time.sleep(3600)
"""


def check_runner(tmp, build):
    """The whole throughput flow (generate, fake server, config, start, wait, sample, stop)
    with a stand-in agent, so the runner is known to work before bpftail itself does."""
    if not os.access(os.path.join(build, "tests", "bt-fake-loki"), os.X_OK):
        return
    mock = os.path.join(tmp, "mock-agent")
    with open(mock, "w") as f:
        f.write(MOCK_AGENT % HERE)
    os.chmod(mock, 0o755)
    args = bench.parse_args(["--lines", "2000", "--build", build, "--agent", mock,
                             "--workdir", tmp, "--timeout", "60", "--stall", "30"])
    run = bench.Run(args)
    try:
        run.check_binaries()
        r = bench.scenario_plain(run)
    finally:
        run.cleanup()
    check(r["lines"] == 2000 and r["wall_s"] > 0 and r["bytes"] > 2000 * 100,
          "runner: plain scenario with a stand-in agent delivered %d lines" % r["lines"])
    check(r["cpu_s"] is not None and r["peak_rss_mib"] > 1, "runner: CPU %.2fs, peak RSS %.1f MiB"
          % (r["cpu_s"], r["peak_rss_mib"]))
    check(r["exit_code"] is not None, "runner: agent stopped (exit %s)" % r["exit_code"])
    check(len(r["cpu_s_runs"]) == 3 and len(r["floor_cpu_s_runs"]) == 3,
          "runner: 3 rounds of agent and floor (%r, %r)" % (r["cpu_s_runs"],
                                                             r.get("floor_cpu_s_runs")))
    check(r["floor_cpu_s"] is not None and r["floor_ratio"] is not None,
          "runner: floor CPU %s s, ratio %s" % (r["floor_cpu_s"], r["floor_ratio"]))
    check(r["wakeups_per_s"] is not None, "runner: wake-ups/s %s" % r["wakeups_per_s"])
    row = bench.table_row(r)
    check(row.startswith("| plain | 2000 |") and row.count("|") == 15, "runner: table row %r"
          % row.strip())
    check_floor_modes(run_args=args)


def check_floor_modes(run_args):
    """The floor delivers every line of the docker and pipeline data sets too: the fake server
    decodes each push and counts the entries (a wrong encoding, label set or timestamp parse
    would lose or reject some)."""
    run = bench.Run(run_args)
    try:
        for name, kind in (("docker", "docker"), ("pipeline", "plain")):
            f = bench.floor_once(run, name, kind)
            check(f["cpu_s"] >= 0 and f["wall_s"] > 0, "floor: %s mode delivered %d lines"
                  % (name, run_args.lines))
    except bench.BenchError as e:
        check(False, "floor: %s" % e)
    finally:
        run.cleanup()


def check_latencies():
    written = [0.0, 0.1, 0.2]
    samples = [(0.05, 0), (0.15, 1), (0.25, 1), (0.35, 3)]
    lat = bench.latencies(written, samples)
    check([round(x) for x in lat] == [150, 150, 250], "latencies from count samples %r" % lat)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(HERE), "build"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bpftail-bench-selftest-") as tmp:
        check_generator(tmp)
        check_config(tmp, os.path.abspath(a.build))
        check_fake_loki(os.path.abspath(a.build))
        check_runner(tmp, os.path.abspath(a.build))
        check_latencies()
    print("%d failed" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())

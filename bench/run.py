#!/usr/bin/env python3
"""Runs bpftail benchmark scenarios against the project's test Loki server and reports
throughput, CPU and memory. Benchmarks report; they never fail a test run.

  bench/run.py                          # plain, docker, pipeline with 1,000,000 lines
  bench/run.py --scenario plain --lines 200000
  bench/run.py --out bench/RESULTS.md   # also append a dated table
  bench/run.py --scenario idle --idle-seconds 60

See bench/README.md for what each number means.
"""
import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import gen_lines  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
SCENARIOS = ["plain", "docker", "pipeline", "latency", "steady", "idle", "startup",
             "docker-plugin", "syslog", "gelf", "push", "slow-push"]
DEFAULT_SCENARIOS = ["plain", "docker", "pipeline"]

PIPELINE_4 = r"""    pipeline_stages:
      - regex:
          expression: '^(?P<time>\S+) (?P<host>\S+) (?P<app>[^\[:]+)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)$'
      - labels:
          app:
      - timestamp:
          source: time
          format: RFC3339Nano
      - output:
          source: msg
"""
PIPELINE_DOCKER = """    pipeline_stages:
      - docker: {}
"""


class BenchError(Exception):
    pass


# ---- small helpers ---------------------------------------------------------------------

def http_get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_cpu_seconds(pid):
    """user+sys CPU seconds of a live process, from /proc/<pid>/stat (fields 14 and 15)."""
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith(key + ":"):
                return int(ln.split()[1])
    return None


def proc_ctx_switches(pid):
    """(voluntary, involuntary) context switches summed over the process's threads."""
    vol = invol = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for ln in f:
                    if ln.startswith("voluntary_ctxt_switches:"):
                        vol += int(ln.split()[1])
                    elif ln.startswith("nonvoluntary_ctxt_switches:"):
                        invol += int(ln.split()[1])
        except OSError:
            pass
    return vol, invol


def proc_run_ns(pid):
    """CPU time of the process's live threads in ns, from /proc/<pid>/task/*/schedstat (exact,
    unlike the 10 ms ticks of /proc/<pid>/stat; threads that ended are not counted)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def proc_ctx_switches_total(pid):
    """Voluntary + involuntary context switches summed over the process's live threads: how
    often the agent's threads were put to sleep or preempted (a proxy of wake-ups)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for ln in f:
                    if ln.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                        total += int(ln.split()[1])
        except OSError:
            pass
    return total


def host_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    model = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%d CPUs (%s), Linux %s" % (os.cpu_count() or 0, model, os.uname().release)


def source_dir(build):
    """The source tree a build directory was configured from (CMakeCache.txt), else ROOT."""
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            for ln in f:
                if ln.startswith("CMAKE_HOME_DIRECTORY:"):
                    return ln.split("=", 1)[1].strip()
    except OSError:
        pass
    return ROOT


def git_commit(tree):
    """Short commit of tree, with +dirty when tracked files changed."""
    try:
        out = subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", tree, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return (out.stdout.strip() or "?") + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


# ---- the test Loki server ----------------------------------------------------------------

class FakeLoki:
    def __init__(self, binary, discard=True, delay_ms=0):
        args = [binary, "--port", "0", "--quiet"] + (["--discard"] if discard else [])
        if delay_ms:
            args += ["--delay-ms", str(delay_ms)]
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True)
        line = self.p.stdout.readline()
        m = re.search(r"listening on ([\d.]+):(\d+)", line)
        if not m:
            self.stop()
            raise BenchError("bt-fake-loki did not start (first line %r)" % line)
        self.base = "http://%s:%s" % (m.group(1), m.group(2))
        self.push_url = self.base + "/loki/api/v1/push"

    def stats(self):
        st, body = http_get(self.base + "/control/stats")
        if st != 200:
            raise BenchError("fake Loki /control/stats answered %d" % st)
        return json.loads(body)

    def dump(self):
        st, body = http_get(self.base + "/control/dump", timeout=120)
        if st != 200:
            raise BenchError("fake Loki /control/dump answered %d" % st)
        return [json.loads(ln) for ln in body.decode("utf-8", "replace").splitlines() if ln.strip()]

    def cpu_seconds(self):
        try:
            return proc_cpu_seconds(self.p.pid)
        except OSError:
            return None

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


# ---- bpftail -----------------------------------------------------------------------------

BATCHSIZE = 1048576  # the bench client's batchsize, also the floor's


def write_config(path, workdir, push_url, http_port, file_glob, stages="", batchwait="1s",
                 batchsize=BATCHSIZE, client_extra=""):
    """Writes a promtail-style config shipping file_glob to push_url. Returns the text."""
    text = """server:
  http_listen_address: 127.0.0.1
  http_listen_port: {port}
  grpc_listen_port: 0
  log_level: warn
positions:
  filename: {pos}
clients:
  - url: {url}
    batchwait: {bw}
    batchsize: {bs}
{client_extra}scrape_configs:
  - job_name: bench
    static_configs:
      - targets: [localhost]
        labels:
          job: bench
          __path__: {glob}
{stages}""".format(port=http_port, pos=os.path.join(workdir, "positions.yaml"), url=push_url,
                   bw=batchwait, bs=batchsize, glob=file_glob, stages=stages,
                   client_extra=client_extra)
    with open(path, "w") as f:
        f.write(text)
    return text


class Agent:
    def __init__(self, binary, config, log_path):
        self.log_path = log_path
        self.logf = open(log_path, "wb")
        self.t0 = time.monotonic()
        self.p = subprocess.Popen([binary, "-config.file", config], stdout=self.logf,
                                  stderr=self.logf)
        self.rusage = None
        self.exit_status = None

    def alive(self):
        return self.p.poll() is None

    def sample(self):
        """CPU seconds and peak RSS (KiB) of the running agent."""
        return proc_cpu_seconds(self.p.pid), proc_status_kib(self.p.pid, "VmHWM")

    def stop(self, timeout=30):
        """SIGTERM, then wait (SIGKILL after timeout). Keeps the final rusage."""
        if self.p.returncode is None:
            try:
                self.p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                pid, status, ru = os.wait4(self.p.pid, os.WNOHANG)
                if pid:
                    self.exit_status, self.rusage = status, ru
                    break
                time.sleep(0.02)
            else:
                self.p.kill()
                _, self.exit_status, self.rusage = os.wait4(self.p.pid, 0)
            self.p.returncode = os.waitstatus_to_exitcode(self.exit_status)
        self.logf.close()

    def log_tail(self, n=15):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def wait_entries(loki, agent, want, timeout, stall, marks=None):
    """Polls the fake server until it counted `want` entries. Returns the monotonic time then.
    marks (optional dict {fraction: None}) gets the first time each fraction of want was seen."""
    end = time.monotonic() + timeout
    last, last_change = -1, time.monotonic()
    while True:
        now = time.monotonic()
        got = loki.stats().get("entries", 0)
        for frac in (marks or {}):
            if marks[frac] is None and got >= frac * want:
                marks[frac] = now
        if got >= want:
            return now
        if not agent.alive():
            raise BenchError("bpftail exited (%s) after %d of %d entries; log tail:\n%s"
                             % (agent.p.returncode, got, want, agent.log_tail()))
        if got != last:
            last, last_change = got, now
        if now - last_change > stall:
            raise BenchError("no progress for %ds at %d of %d entries; log tail:\n%s"
                             % (stall, got, want, agent.log_tail()))
        if now > end:
            raise BenchError("timed out after %ds at %d of %d entries" % (timeout, got, want))
        time.sleep(0.02)


# ---- scenarios ---------------------------------------------------------------------------

class Run:
    """Shared state of one invocation: binaries, work dir, generated files."""

    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.bpftail = os.path.abspath(args.agent) if args.agent else os.path.join(self.build,
                                                                                    "bpftail")
        self.fake = os.path.join(self.build, "tests", "bt-fake-loki")
        self.floor = None if args.no_floor else os.path.join(self.build, "bench", "floor")
        self.work = tempfile.mkdtemp(prefix="bpftail-bench-", dir=args.workdir)
        self.files = {}

    def check_binaries(self, need_agent=True):
        need = ([self.bpftail] if need_agent else []) + [self.fake]
        if need_agent and self.floor:
            need.append(self.floor)
        missing = [p for p in need if not os.access(p, os.X_OK)]
        if missing:
            raise BenchError("missing binaries: %s\nbuild first: cmake -S %s -B %s && "
                             "cmake --build %s -j2" % (", ".join(missing), ROOT, self.build,
                                                        self.build))

    def data(self, kind):
        """Generates (once per invocation) the input file for kind 'plain' or 'docker'."""
        if kind not in self.files:
            path = os.path.join(self.work, "data", "%s.log" % kind)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            t = time.monotonic()
            size = gen_lines.write_file(path, self.args.lines, docker=(kind == "docker"),
                                        seed=self.args.seed)
            print("  generated %s: %d lines, %.1f MB in %.1fs" % (
                kind, self.args.lines, size / 1e6, time.monotonic() - t), flush=True)
            self.files[kind] = (path, size)
        return self.files[kind]

    def scenario_dir(self, name):
        d = os.path.join(self.work, name)
        os.makedirs(d, exist_ok=True)
        return d

    def cleanup(self):
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            print("kept work dir %s" % self.work)


def throughput_once(run, name, kind, stages, rnd=0):
    """Ships a pre-written file from offset 0 and times delivery of every line. Each round
    has its own directory: a positions file left by the last one would start at the end.
    The agent starts on an empty directory; once it has settled (HTTP up, the BPF watcher
    loaded in the background: seconds of verifier time, a cost of the start, not of the
    bytes), the file is hard-linked into it and the clock starts. The start's CPU is
    reported apart (start_cpu_s), and cpu_s_from_exec is the two together."""
    path, size = run.data(kind)
    n = run.args.lines
    d = run.scenario_dir(name if not rnd else "%s-%d" % (name, rnd + 1))
    inbox = os.path.join(d, "in")
    os.makedirs(inbox, exist_ok=True)
    loki = FakeLoki(run.fake, discard=True)
    agent = None
    try:
        port = free_port()
        cfg = os.path.join(d, "bpftail.yaml")
        write_config(cfg, d, loki.push_url, port, os.path.join(inbox, "*.log"), stages)
        agent = Agent(run.bpftail, cfg, os.path.join(d, "bpftail.log"))
        end = time.monotonic() + 30
        while time.monotonic() < end and agent_metric(port, "bpftail_build_info") == 0:
            if not agent.alive():
                raise BenchError("bpftail exited at start; log tail:\n%s" % agent.log_tail())
            time.sleep(0.05)
        while time.monotonic() < end + 30 and watcher_pending(port):
            time.sleep(0.05)
        time.sleep(0.3)
        cpu0, _ = agent.sample()
        t0 = time.monotonic()
        os.link(path, os.path.join(inbox, "data.log"))
        marks = {0.1: None, 0.9: None}
        t_done = wait_entries(loki, agent, n, run.args.timeout, run.args.stall, marks)
        cpu_all, hwm = agent.sample()
        cpu = cpu_all - cpu0
        csw = proc_ctx_switches_total(agent.p.pid)
        wall = t_done - t0
        span = (marks[0.9] - marks[0.1]) if marks[0.1] and marks[0.9] else 0
        loki_cpu = loki.cpu_seconds()
        agent.stop()
        ru = agent.rusage
        return {
            "scenario": name, "lines": n, "bytes": size, "wall_s": wall,
            "lines_per_s": n / wall, "mb_per_s": size / 1e6 / wall,
            "steady_lines_per_s": (0.8 * n / span) if span > 0.1 else None,
            "cpu_s": cpu, "mb_per_cpu_s": (size / 1e6 / cpu) if cpu else None,
            "cpu_s_per_gb": cpu / (size / 1e9) if size else None,
            "peak_rss_mib": (hwm or 0) / 1024,
            "ctx_switches": csw, "wakeups_per_s": csw / wall if wall > 0 else None,
            "start_cpu_s": cpu0, "cpu_s_from_exec": cpu_all,
            "cpu_s_total": (ru.ru_utime + ru.ru_stime) if ru else None,
            "maxrss_mib_total": (ru.ru_maxrss / 1024) if ru else None,
            "fake_loki_cpu_s": loki_cpu,
            "exit_code": agent.p.returncode,
        }
    finally:
        if agent:
            agent.stop()
        loki.stop()


def floor_once(run, name, kind):
    """Runs bench/floor on the same file against a fresh test Loki (entries with the file's
    own timestamps would be duplicates on a server that has seen them). Returns its CPU
    seconds (user + sys from rusage: it runs to completion) and wall seconds."""
    path, _ = run.data(kind)
    n = run.args.lines
    loki = FakeLoki(run.fake, discard=True)
    try:
        t0 = time.monotonic()
        p = subprocess.Popen([run.floor, "--url", loki.push_url, "--file", path, "--mode", name,
                              "--batchsize", str(BATCHSIZE)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            _, status, ru = os.wait4(p.pid, 0)
        except BaseException:
            p.kill()
            p.wait()
            raise
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        out, err = p.stdout.read(), p.stderr.read()
        p.stdout.close()
        p.stderr.close()
        if p.returncode != 0:
            raise BenchError("floor exited %d: %s" % (p.returncode, (err or out).decode(
                "utf-8", "replace").strip()))
        got = loki.stats().get("entries", 0)
        if got != n:
            raise BenchError("floor delivered %d of %d entries" % (got, n))
        return {"cpu_s": ru.ru_utime + ru.ru_stime, "wall_s": wall,
                "peak_rss_mib": ru.ru_maxrss / 1024}
    finally:
        loki.stop()


def median(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def throughput(run, name, kind, stages):
    """--rounds runs of bpftail, each after a run of the floor on the same data (interleaved,
    so both see the same machine). The result is bpftail's median run (by CPU s) with every
    round's CPU s, and the floor's median CPU s and bpftail's ratio to it."""
    runs, floors = [], []
    for rnd in range(run.args.rounds):
        if run.floor:
            floors.append(floor_once(run, name, kind))
        runs.append(throughput_once(run, name, kind, stages, rnd))
    ordered = sorted(runs, key=lambda r: r["cpu_s"])
    res = dict(ordered[(len(ordered) - 1) // 2])
    res["cpu_s_runs"] = [r["cpu_s"] for r in runs]
    res["start_cpu_s_runs"] = [r["start_cpu_s"] for r in runs]
    res["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
    if floors:
        fc = median([f["cpu_s"] for f in floors])
        res["floor_cpu_s_runs"] = [f["cpu_s"] for f in floors]
        res["floor_cpu_s"] = fc
        res["floor_mb_per_cpu_s"] = res["bytes"] / 1e6 / fc if fc else None
        res["floor_ratio"] = res["cpu_s"] / fc if fc else None
    return res


def split_lines(path, parts, outdir):
    """Cuts a generated file into `parts` files of consecutive lines (one stream each)."""
    with open(path, "rb") as f:
        lines = f.readlines()
    os.makedirs(outdir, exist_ok=True)
    per = (len(lines) + parts - 1) // parts
    for i in range(parts):
        with open(os.path.join(outdir, "part%02d.log" % i), "wb") as f:
            f.writelines(lines[i * per:(i + 1) * per])
    return os.path.join(outdir, "part*.log")


def scenario_slow_push(run):
    """The plain data as --slow-push-files files (one stream each) to a test Loki that answers
    every push --slow-push-delay-ms late, once per value of --slow-push-inflight."""
    path, size = run.data("plain")
    n = run.args.lines
    glob = split_lines(path, run.args.slow_push_files, os.path.join(run.work, "data", "split"))
    out = []
    for k in run.args.slow_push_inflight:
        name = "slow-push-%d" % k
        d = run.scenario_dir(name)
        loki = FakeLoki(run.fake, discard=True, delay_ms=run.args.slow_push_delay_ms)
        agent = None
        try:
            port = free_port()
            cfg = os.path.join(d, "bpftail.yaml")
            write_config(cfg, d, loki.push_url, port, glob,
                         client_extra="    max_in_flight: %d\n" % k)
            agent = Agent(run.bpftail, cfg, os.path.join(d, "bpftail.log"))
            marks = {0.1: None, 0.9: None}
            t_done = wait_entries(loki, agent, n, run.args.timeout, run.args.stall, marks)
            cpu, hwm = agent.sample()
            wall = t_done - agent.t0
            span = (marks[0.9] - marks[0.1]) if marks[0.1] and marks[0.9] else 0
            st = loki.stats()
            loki_cpu = loki.cpu_seconds()
            agent.stop()
            out.append({
                "scenario": name, "lines": n, "bytes": size, "wall_s": wall,
                "lines_per_s": n / wall, "mb_per_s": size / 1e6 / wall,
                "steady_lines_per_s": (0.8 * n / span) if span > 0.1 else None,
                "cpu_s": cpu, "mb_per_cpu_s": (size / 1e6 / cpu) if cpu else None,
                "cpu_s_per_gb": cpu / (size / 1e9) if size else None,
                "peak_rss_mib": (hwm or 0) / 1024, "max_in_flight": k,
                "delay_ms": run.args.slow_push_delay_ms, "files": run.args.slow_push_files,
                "requests": st.get("requests"), "max_concurrent": st.get("max_concurrent"),
                "fake_loki_cpu_s": loki_cpu,
                "exit_code": agent.p.returncode,
            })
        finally:
            if agent:
                agent.stop()
            loki.stop()
    return out


def scenario_plain(run):
    return throughput(run, "plain", "plain", "")


def scenario_docker(run):
    return throughput(run, "docker", "docker", PIPELINE_DOCKER)


def scenario_pipeline(run):
    return throughput(run, "pipeline", "plain", PIPELINE_4)


# ---- receivers ---------------------------------------------------------------------------

RECEIVER_CONFIG = """server:
  http_listen_address: 127.0.0.1
  http_listen_port: {port}
  grpc_listen_port: 0
  log_level: warn
positions:
  filename: {work}/positions.yaml
clients:
  - url: {url}
    batchwait: 1s
    batchsize: 1048576
bpftail:
  spool_dir: {work}/spool
  spool_max_bytes: 1GiB
scrape_configs:
  - job_name: bench
{receiver}      labels:
        job: bench
"""


def agent_metric(port, name):
    try:
        st, body = http_get("http://127.0.0.1:%d/metrics" % port, timeout=5)
    except OSError:
        return 0
    total = 0.0
    for ln in body.decode().splitlines():
        if ln.startswith(name + "{") or ln.startswith(name + " "):
            total += float(ln.rsplit(" ", 1)[1])
    return total


def watcher_pending(port):
    try:
        st, body = http_get("http://127.0.0.1:%d/targets" % port, timeout=5)
    except OSError:
        return True
    return st != 200 or b'"watcher_next"' in body


def send_syslog(port, lines, stamp):
    """RFC 5424, octet-counted, one TCP connection. Returns the bytes sent."""
    blob = bytearray()
    for ln in lines:
        m = b"<14>1 " + stamp + b" benchhost app - - - " + ln
        blob += b"%d " % len(m) + m
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(blob)
    s.close()
    return len(blob)


def send_gelf(port, lines, ts, http_port):
    """One uncompressed GELF datagram per line, at most `window` ahead of what bpftail queued
    (UDP has no backpressure: the bench measures the receiver, not the kernel's drops)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent, window, total = 0, 4000, 0
    for ln in lines:
        d = json.dumps({"version": "1.1", "host": "benchhost", "timestamp": ts,
                        "short_message": ln.decode("utf-8", "replace")}).encode()
        s.sendto(d, ("127.0.0.1", port))
        total += len(d)
        sent += 1
        if sent % 1000 == 0:
            while sent - agent_metric(http_port, "bpftail_gelf_target_entries_total") > window:
                time.sleep(0.002)
    return total


def send_push(port, lines, ts_ns, per_request=1000):
    """JSON pushes of per_request entries on one keep-alive connection."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    total = 0
    for i in range(0, len(lines), per_request):
        vals = [[str(ts_ns + i + k), ln.decode("utf-8", "replace")]
                for k, ln in enumerate(lines[i:i + per_request])]
        body = json.dumps({"streams": [{"stream": {"src": "bench"}, "values": vals}]}).encode()
        while True:
            c.request("POST", "/loki/api/v1/push", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            if r.status == 204:
                break
            if r.status != 429:
                raise BenchError("push answered %d" % r.status)
            time.sleep(0.05)
        total += len(body)
    c.close()
    return total


def receiver(run, name):
    """Sends the plain data set's lines to a receiver and times their delivery to Loki; input
    MB is what went over the wire (frames, datagrams or request bodies)."""
    path, _ = run.data("plain")
    with open(path, "rb") as f:
        lines = f.read().splitlines()
    n = len(lines)
    d = run.scenario_dir(name)
    loki = FakeLoki(run.fake, discard=True)
    agent = None
    rport, port = free_port(), free_port()
    block = {"syslog": "    syslog:\n      listen_address: 127.0.0.1:%d\n"
                       "      max_message_length: 65536\n",
             "gelf": "    gelf:\n      listen_address: 127.0.0.1:%d\n",
             "push": "    loki_push_api:\n      server:\n        http_listen_port: %d\n"}[name]
    try:
        cfg = os.path.join(d, "bpftail.yaml")
        with open(cfg, "w") as f:
            f.write(RECEIVER_CONFIG.format(port=port, work=d, url=loki.push_url,
                                           receiver=block % rport))
        agent = Agent(run.bpftail, cfg, os.path.join(d, "bpftail.log"))
        end = time.monotonic() + 20
        while time.monotonic() < end and agent_metric(port, "bpftail_build_info") == 0:
            time.sleep(0.05)
        # The BPF watcher loads in the background at start (seconds of verifier time); the
        # receiver's cost is measured once it has settled.
        while time.monotonic() < end + 30 and watcher_pending(port):
            time.sleep(0.05)
        t0 = time.monotonic()
        cpu0, _ = agent.sample()
        now = time.time()
        if name == "syslog":
            size = send_syslog(rport, lines, time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                          time.gmtime(now)).encode())
        elif name == "gelf":
            size = send_gelf(rport, lines, now, port)
        else:
            size = send_push(rport, lines, int(now * 1e9))
        t_done = wait_entries(loki, agent, n, run.args.timeout, run.args.stall)
        cpu, hwm = agent.sample()
        cpu -= cpu0
        wall = t_done - t0
        agent.stop()
        return {
            "scenario": name, "lines": n, "bytes": size, "wall_s": wall,
            "lines_per_s": n / wall, "mb_per_s": size / 1e6 / wall, "steady_lines_per_s": None,
            "cpu_s": cpu, "mb_per_cpu_s": (size / 1e6 / cpu) if cpu else None,
            "cpu_s_per_gb": cpu / (size / 1e9) if size else None,
            "peak_rss_mib": (hwm or 0) / 1024, "exit_code": agent.p.returncode,
        }
    finally:
        if agent:
            agent.stop()
        loki.stop()


def scenario_syslog(run):
    return receiver(run, "syslog")


def scenario_gelf(run):
    return receiver(run, "gelf")


def scenario_push(run):
    return receiver(run, "push")


def scenario_latency(run):
    """Write-to-push latency with batchwait 100ms. A writer appends lines (each carrying its
    write time as wts=<unix ns>) at a steady rate while a poller samples the fake server's
    entry count every few ms. One file and one client deliver in order, so line i has
    arrived once the count passes i: its latency is the first sample time after that minus
    its write time (resolution: the poll interval, a few ms)."""
    rate, secs = run.args.latency_rate, run.args.latency_seconds
    d = run.scenario_dir("latency")
    path = os.path.join(d, "latency.log")
    open(path, "w").close()
    loki = FakeLoki(run.fake, discard=True)
    agent = None
    samples = []  # (monotonic time, entries)
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            n = loki.stats().get("entries", 0)
            samples.append((time.monotonic(), n))
            time.sleep(0.002)

    try:
        cfg = os.path.join(d, "bpftail.yaml")
        write_config(cfg, d, loki.push_url, free_port(), path, batchwait="100ms")
        agent = Agent(run.bpftail, cfg, os.path.join(d, "bpftail.log"))
        time.sleep(1.0)  # let it open the empty file
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        g = gen_lines.Gen(run.args.seed)
        total = int(rate * secs)
        written = []
        t0 = time.monotonic()
        with open(path, "a") as f:
            for i in range(total):
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                line = g.plain(i, wts=time.time_ns())
                written.append(time.monotonic())
                f.write(line)
                f.flush()
        wait_entries(loki, agent, total, run.args.timeout, run.args.stall)
        time.sleep(0.05)
        stop.set()
        poller.join()
        cpu, hwm = agent.sample()
        agent.stop()
        lat = latencies(written, samples)
        res = {"scenario": "latency", "lines": total, "bytes": os.path.getsize(path),
               "cpu_s": cpu, "peak_rss_mib": (hwm or 0) / 1024, "rate": rate}
        if lat:
            res.update({"lat_p50_ms": lat[len(lat) // 2], "lat_p99_ms": lat[int(len(lat) * 0.99)],
                        "lat_max_ms": lat[-1]})
        else:
            res["note"] = "no latency samples"
        return res
    finally:
        stop.set()
        if agent:
            agent.stop()
        loki.stop()


def scenario_steady(run):
    """Cost of a steady stream: a writer appends --steady-rate lines/s to one file (in 10 ms
    chunks) for --steady-seconds with the default client settings (batchwait 1s); after 2 s of
    warm-up, bpftail's CPU over the window as a share of one core, its context switches per
    second (voluntary + involuntary, all threads: every wake-up counts), and RSS."""
    rate, secs = run.args.steady_rate, run.args.steady_seconds
    d = run.scenario_dir("steady")
    path = os.path.join(d, "steady.log")
    open(path, "w").close()
    loki = FakeLoki(run.fake, discard=True)
    agent = None
    try:
        port = free_port()
        cfg = os.path.join(d, "bpftail.yaml")
        write_config(cfg, d, loki.push_url, port, path)
        agent = Agent(run.bpftail, cfg, os.path.join(d, "bpftail.log"))
        time.sleep(1.0)  # let it open the empty file
        g = gen_lines.Gen(run.args.seed)
        chunk = max(1, rate // 100)
        warm = 2.0
        total = int(rate * (secs + warm))
        lines = [g.plain(i) for i in range(total)]
        nbytes = sum(len(s) for s in lines)
        t0 = time.monotonic()
        s0 = None
        with open(path, "a") as f:
            for i in range(0, total, chunk):
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if s0 is None and i >= rate * warm:
                    s0 = (time.monotonic(), agent.sample()[0], proc_ctx_switches(agent.p.pid),
                          wakeups(port))
                f.write("".join(lines[i:i + chunk]))
                f.flush()
        t1 = time.monotonic()
        cpu1, _ = agent.sample()
        cs1, wake1 = proc_ctx_switches(agent.p.pid), wakeups(port)
        rss = proc_status_kib(agent.p.pid, "VmRSS")
        wait_entries(loki, agent, total, run.args.timeout, run.args.stall)
        _, hwm = agent.sample()
        agent.stop()
        win = t1 - s0[0]
        res = {"scenario": "steady", "rate": rate, "window_s": win, "lines": total,
               "bytes": nbytes, "cpu_s": cpu1 - s0[1], "cpu_pct": 100.0 * (cpu1 - s0[1]) / win,
               "voluntary_per_s": (cs1[0] - s0[2][0]) / win,
               "involuntary_per_s": (cs1[1] - s0[2][1]) / win,
               "rss_mib": (rss or 0) / 1024, "peak_rss_mib": (hwm or 0) / 1024}
        res["ctx_switches_per_s"] = res["voluntary_per_s"] + res["involuntary_per_s"]
        if wake1 is not None and s0[3] is not None:
            res["wakeups_per_s"] = (wake1 - s0[3]) / win
        return res
    finally:
        if agent:
            agent.stop()
        loki.stop()


def latencies(written, samples):
    """Sorted per-line latencies in ms: written[i] is line i's write time; samples are
    (time, entries received) pairs in time order."""
    out = []
    j = 0
    for i, tw in enumerate(written):
        while j < len(samples) and samples[j][1] <= i:
            j += 1
        if j == len(samples):
            break
        out.append(max(0.0, (samples[j][0] - tw) * 1000))
    out.sort()
    return out


def scenario_idle(run):
    """CPU used while nothing happens: 1,000 watched files, all read, then a quiet window."""
    nfiles, secs = run.args.idle_files, run.args.idle_seconds
    d = run.scenario_dir("idle")
    logs = os.path.join(d, "logs")
    os.makedirs(logs)
    g = gen_lines.Gen(run.args.seed)
    for i in range(nfiles):
        with open(os.path.join(logs, "f%04d.log" % i), "w") as f:
            f.write(g.plain(i))
    loki = FakeLoki(run.fake, discard=True)
    agent = None
    try:
        port = free_port()
        cfg = os.path.join(d, "bpftail.yaml")
        write_config(cfg, d, loki.push_url, port, os.path.join(logs, "*.log"))
        agent = Agent(run.bpftail, cfg, os.path.join(d, "bpftail.log"))
        wait_entries(loki, agent, nfiles, run.args.timeout, run.args.stall)
        time.sleep(3.0)  # let the last batch and position sync settle
        wake0, cs0 = wakeups(port), proc_ctx_switches(agent.p.pid)
        cpu0, _ = agent.sample()
        ns0 = proc_run_ns(agent.p.pid)
        time.sleep(secs)
        ns1 = proc_run_ns(agent.p.pid)
        cpu1, hwm = agent.sample()
        wake1, cs1 = wakeups(port), proc_ctx_switches(agent.p.pid)
        rss = proc_status_kib(agent.p.pid, "VmRSS")
        agent.stop()
        res = {"scenario": "idle", "files": nfiles, "window_s": secs,
               "idle_cpu_s": cpu1 - cpu0, "idle_cpu_pct": 100.0 * (cpu1 - cpu0) / secs,
               "peak_rss_mib": (hwm or 0) / 1024, "rss_mib": (rss or 0) / 1024,
               "idle_sched_cpu_s": (ns1 - ns0) / 1e9,
               "idle_sched_cpu_pct": 100.0 * (ns1 - ns0) / 1e9 / secs,
               "ctx_switches_per_s": (cs1[0] - cs0[0] + cs1[1] - cs0[1]) / secs,
               "involuntary_per_s": (cs1[1] - cs0[1]) / secs}
        if wake0 is not None and wake1 is not None:
            res["wakeups_per_s"] = (wake1 - wake0) / secs
        return res
    finally:
        if agent:
            agent.stop()
        loki.stop()


def docker_engine():
    """The integration suites' private Docker engine helper (root; dockerd from Debian)."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "docker"))
    import docker_logs_engine
    return docker_logs_engine


BENCH_PLUGIN = "bpftail-bench"


def container_wall(eng, name, script, driver, opts):
    """Runs a busybox container printing to stdout with `driver`; seconds from `docker run -d`
    to `docker wait` returning (dockerd has copied every line to the driver by then)."""
    args = ["run", "-d", "--network", "none", "--name", name, "--log-driver", driver]
    for o in opts:
        args += ["--log-opt", o]
    t0 = time.monotonic()
    cid = eng.docker(*(args + [eng_image(), "sh", "-c", script]), timeout=600).stdout.strip()
    code = eng.docker("wait", cid, timeout=1800).stdout.strip()
    wall = time.monotonic() - t0
    if code != "0":
        raise BenchError("container %s exited with %s" % (name, code))
    return cid, wall


def eng_image():
    return docker_engine().IMAGE


def scenario_docker_plugin(run):
    """One container printing --lines lines as fast as it can, through the plugin and through
    json-file on the same private engine: container wall time, the plugin's CPU seconds and
    peak RSS (from /proc of its process), and when the test Loki server had every line."""
    if os.geteuid() != 0:
        raise BenchError("docker-plugin needs root (it starts a private dockerd)")
    de = docker_engine()
    eng = de.engine()
    t = time.monotonic()
    de.bpftail_image(ROOT)
    p = subprocess.run([os.path.join(ROOT, "scripts", "docker-plugin.sh"), "create", BENCH_PLUGIN,
                        "--replace"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=1800, env=eng.env())
    if p.returncode != 0:
        raise BenchError("scripts/docker-plugin.sh create failed:\n%s" % p.stdout[-2000:])
    eng.docker("plugin", "enable", BENCH_PLUGIN, timeout=120)
    print("  plugin built and enabled in %.1fs" % (time.monotonic() - t), flush=True)
    n = run.args.lines
    pad = "x" * 100
    script = "awk 'BEGIN{for(i=0;i<%d;i++) print \"bench seq=\" i \" %s\"}'" % (n, pad)
    size = sum(len("bench seq=%d %s\n" % (i, pad)) for i in range(n))  # bytes printed
    loki = FakeLoki(run.fake, discard=True)
    names = []
    try:
        pid = eng.plugin_pid(BENCH_PLUGIN)
        if not pid:
            raise BenchError("the plugin's process was not found")
        cpu0 = de.proc_cpu_seconds(pid)
        tag = "%d" % os.getpid()
        names.append("bench-plugin-%s" % tag)
        t0 = time.monotonic()
        _, wall_plugin = container_wall(eng, names[-1], script, BENCH_PLUGIN,
                                        ["loki-url=%s" % loki.push_url])
        t_done = wait_entries(loki, _NoAgent(), n, run.args.timeout, run.args.stall)
        cpu = de.proc_cpu_seconds(pid) - cpu0
        hwm = de.proc_status(pid, "VmHWM")
        names.append("bench-jsonfile-%s" % tag)
        _, wall_json = container_wall(eng, names[-1], script, "json-file", [])
        return {"scenario": "docker-plugin", "lines": n, "bytes": size,
                "wall_plugin_s": wall_plugin, "wall_json_file_s": wall_json,
                "ratio": wall_plugin / wall_json if wall_json else None,
                "delivered_s": t_done - t0, "cpu_s": cpu,
                "mb_per_cpu_s": (size / 1e6 / cpu) if cpu else None,
                "peak_rss_mib": (hwm or 0) / 2**20}
    finally:
        loki.stop()
        for nm in names:
            eng.docker("rm", "-f", nm, check=False, timeout=120)
        eng.docker("plugin", "disable", "-f", BENCH_PLUGIN, check=False, timeout=60)
        eng.docker("plugin", "rm", "-f", BENCH_PLUGIN, check=False, timeout=60)


class _NoAgent:
    """wait_entries' agent for a sender that is not a child process (the plugin)."""
    p = None

    def alive(self):
        return True

    def log_tail(self):
        return "(the plugin logs to dockerd's log)"


def first_line_ms(binary, cfg, marker):
    """Milliseconds from exec to bpftail printing (in -dry-run) the line holding marker, and
    to its log saying the BPF watcher took over (None if it did not within 30 s)."""
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "-config.file", cfg, "-dry-run"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    got = {}
    done = threading.Event()

    def reader():
        for ln in p.stdout:
            now = (time.monotonic() - t0) * 1000
            if "first" not in got and marker in ln and "level=" not in ln:
                got["first"] = now
            if "bpf" not in got and "file watcher ready" in ln and "backend=bpf" in ln:
                got["bpf"] = now
            if len(got) == 2:
                done.set()
        done.set()
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    done.wait(30)
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    th.join(5)
    return got.get("first"), got.get("bpf")


def scenario_startup(run):
    """Exec to first line read, with the BPF load in the background (watcher auto) and, for
    comparison, loaded before anything is read (watcher: bpf, the behaviour before). Runs one
    after the other, so each start also meets the previous run's programs being detached."""
    d = run.scenario_dir("startup")
    log = os.path.join(d, "app.log")
    with open(log, "w") as f:
        f.write("startup-marker first line\n")
    out = {"scenario": "startup", "runs": run.args.startup_runs}
    # The floor: exec, dynamic linking and exit of the same binary, doing nothing.
    base = []
    for _ in range(run.args.startup_runs):
        t0 = time.monotonic()
        subprocess.run([run.bpftail, "-version"], capture_output=True, timeout=30)
        base.append((time.monotonic() - t0) * 1000)
    out["exec_version_ms"] = sorted(base)
    for mode in ("auto", "bpf"):
        cfg = os.path.join(d, "bpftail-%s.yaml" % mode)
        text = write_config(cfg, d, "http://127.0.0.1:9/loki/api/v1/push", free_port(), log)
        with open(cfg, "w") as f:  # info: the switch to bpf is an info line
            f.write(text.replace("log_level: warn", "log_level: info"))
            f.write("bpftail:\n  watcher: %s\n" % mode)
        firsts, bpfs = [], []
        for _ in range(run.args.startup_runs):
            first, bpf = first_line_ms(run.bpftail, cfg, "startup-marker")
            if first is None:
                raise BenchError("no line read in the %s run" % mode)
            firsts.append(first)
            if bpf is not None:
                bpfs.append(bpf)
        out["first_line_ms_" + mode] = sorted(firsts)
        out["bpf_ready_ms_" + mode] = sorted(bpfs)
    return out


def wakeups(port):
    """The agent's loop wake-up counter from /metrics, if it exports one."""
    try:
        st, body = http_get("http://127.0.0.1:%d/metrics" % port, timeout=5)
    except OSError:
        return None
    if st != 200:
        return None
    for ln in body.decode(errors="replace").splitlines():
        if not ln.startswith("#") and "wakeups" in ln.split(" ")[0]:
            try:
                return float(ln.rsplit(" ", 1)[1])
            except ValueError:
                return None
    return None


# ---- reporting ---------------------------------------------------------------------------

def fmt(v, spec):
    return "-" if v is None else format(v, spec)


TABLE_HEAD = ("| scenario | lines | input MB | wall s | lines/s | MB/s | steady lines/s | CPU s "
              "| MB per CPU-s | CPU s per GB | peak RSS MiB | wake-ups/s | floor CPU s "
              "| x floor |\n"
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")


def table_row(r):
    if r["scenario"] in ("plain", "docker", "pipeline", "syslog", "gelf", "push") or \
            r["scenario"].startswith("slow-push-"):
        return "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n" % (
            r["scenario"], r["lines"], fmt(r["bytes"] / 1e6, ".1f"), fmt(r["wall_s"], ".2f"),
            fmt(r["lines_per_s"], ",.0f"), fmt(r["mb_per_s"], ".1f"),
            fmt(r.get("steady_lines_per_s"), ",.0f"), fmt(r["cpu_s"], ".2f"),
            fmt(r["mb_per_cpu_s"], ".1f"), fmt(r["cpu_s_per_gb"], ".2f"),
            fmt(r["peak_rss_mib"], ".1f"), fmt(r.get("wakeups_per_s"), ",.0f"),
            fmt(r.get("floor_cpu_s"), ".2f"), fmt(r.get("floor_ratio"), ".2f"))
    return None


def other_rows(results):
    out = []
    for r in results:
        if "cpu_s_runs" in r and len(r["cpu_s_runs"]) > 1:
            out.append("- %s, CPU s of each round: bpftail %s; floor %s%s\n" % (
                r["scenario"], ", ".join("%.2f" % v for v in r["cpu_s_runs"]),
                ", ".join("%.2f" % v for v in r.get("floor_cpu_s_runs", [])) or "-",
                "; bpftail's start before the file came (not counted above) %s" % ", ".join(
                    "%.2f" % v for v in r["start_cpu_s_runs"]) if r.get("start_cpu_s_runs")
                else ""))
        if r["scenario"] == "latency":
            if "lat_p50_ms" in r:
                out.append("- latency (batchwait 100ms, %d lines/s): p50 %.1f ms, p99 %.1f ms, "
                           "max %.1f ms\n" % (r["rate"], r["lat_p50_ms"], r["lat_p99_ms"],
                                               r["lat_max_ms"]))
            else:
                out.append("- latency: %s\n" % r["note"])
        elif r["scenario"] == "idle":
            w = (", %.2f loop wake-ups/s" % r["wakeups_per_s"]) if "wakeups_per_s" in r else ""
            out.append("- idle (%d files, %d s window): %.3f CPU s (%.4f%% of one CPU; from "
                       "schedstat %.4f s, %.4f%%), %.2f thread wake-ups/s%s, RSS %.1f MiB (peak "
                       "%.1f MiB)\n"
                       % (r["files"], r["window_s"], r["idle_cpu_s"], r["idle_cpu_pct"],
                          r["idle_sched_cpu_s"], r["idle_sched_cpu_pct"],
                          r["ctx_switches_per_s"], w, r.get("rss_mib", 0), r["peak_rss_mib"]))
        elif r["scenario"] == "steady":
            w = (", %.1f loop wake-ups/s" % r["wakeups_per_s"]) if "wakeups_per_s" in r else ""
            out.append("- steady (%d lines/s, %.0f s window, batchwait 1s): %.2f CPU s (%.2f%% of "
                       "one CPU), %.1f thread wake-ups/s (%.1f involuntary)%s, RSS %.1f MiB "
                       "(peak %.1f MiB)\n"
                       % (r["rate"], r["window_s"], r["cpu_s"], r["cpu_pct"],
                          r["ctx_switches_per_s"], r["involuntary_per_s"], w, r["rss_mib"],
                          r["peak_rss_mib"]))
        elif r["scenario"] == "startup" and "error" not in r:
            def span(v):
                return "%.0f-%.0f ms (median %.0f)" % (v[0], v[-1], v[len(v) // 2]) if v else "-"
            out.append("- startup, exec to first line read (%d runs each): BPF loaded in the "
                       "background %s, BPF watcher ready at %s; BPF loaded first (watcher: bpf) "
                       "%s; floor, `bpftail -version` exec to exit %s\n"
                       % (r["runs"], span(r["first_line_ms_auto"]), span(r["bpf_ready_ms_auto"]),
                          span(r["first_line_ms_bpf"]), span(r["exec_version_ms"])))
        elif r["scenario"] == "docker-plugin" and "error" not in r:
            out.append("- docker-plugin (one busybox container printing %d lines of ~%d bytes, "
                       "%.1f MB, on a private dockerd with vfs): container wall %.2f s through the "
                       "plugin vs %.2f s with json-file (ratio %.2f, target <= 1.5); the test Loki "
                       "had every line %.2f s after `docker run`; plugin CPU %.2f s, %.1f MB per "
                       "CPU-s, peak RSS %.1f MiB\n"
                       % (r["lines"], r["bytes"] // r["lines"], r["bytes"] / 1e6, r["wall_plugin_s"],
                          r["wall_json_file_s"], r["ratio"], r["delivered_s"], r["cpu_s"],
                          r["mb_per_cpu_s"] or 0, r["peak_rss_mib"]))
        elif r["scenario"].startswith("slow-push-") and "error" not in r:
            out.append("- %s: %d files (streams), test Loki answering %d ms late, max_in_flight "
                       "%d: %d requests, at most %s at once; the test Loki's own CPU %s s\n"
                       % (r["scenario"], r["files"], r["delay_ms"], r["max_in_flight"],
                          r["requests"], r["max_concurrent"], fmt(r["fake_loki_cpu_s"], ".2f")))
        elif "error" in r:
            out.append("- %s: FAILED: %s\n" % (r["scenario"], r["error"].splitlines()[0]))
    return out


def report(results, args):
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    agent = "" if not args.agent else "; agent %s (not bpftail)" % os.path.basename(args.agent)
    text = "## %s, commit %s\n\n%s; %d lines per throughput run, seed %d%s.\n\n" % (
        when, git_commit(source_dir(os.path.abspath(args.build))), host_info(), args.lines,
        args.seed, agent)
    rows = [table_row(r) for r in results if "error" not in r]
    rows = [r for r in rows if r]
    if rows:
        text += TABLE_HEAD + "".join(rows) + "\n"
    extra = other_rows(results)
    if extra:
        text += "".join(extra) + "\n"
    return text


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="bpftail benchmarks")
    ap.add_argument("--scenario", action="append", choices=SCENARIOS + ["all"],
                    help="scenario to run (repeatable; default plain, docker, pipeline)")
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines per throughput run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="build directory")
    ap.add_argument("--agent", help="agent binary (default BUILD/bpftail)")
    ap.add_argument("--out", help="append a dated results table to this file (e.g. bench/RESULTS.md)")
    ap.add_argument("--json", help="also write raw results as JSON here")
    ap.add_argument("--workdir", help="parent directory for temp files (default $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep generated files, configs and logs")
    ap.add_argument("--timeout", type=int, default=900, help="max seconds per scenario")
    ap.add_argument("--stall", type=int, default=60, help="abort after this long without progress")
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs per throughput scenario, each after a floor run (median reported)")
    ap.add_argument("--no-floor", action="store_true",
                    help="do not run bench/floor beside the throughput scenarios")
    ap.add_argument("--idle-files", type=int, default=1000)
    ap.add_argument("--startup-runs", type=int, default=5, help="starts per mode (startup)")
    ap.add_argument("--idle-seconds", type=int, default=60)
    ap.add_argument("--latency-rate", type=int, default=200, help="lines per second written")
    ap.add_argument("--latency-seconds", type=int, default=10)
    ap.add_argument("--steady-rate", type=int, default=20000, help="lines per second written")
    ap.add_argument("--steady-seconds", type=int, default=30)
    ap.add_argument("--slow-push-delay-ms", type=int, default=50,
                    help="slow-push: the test Loki's delay before every answer")
    ap.add_argument("--slow-push-files", type=int, default=8,
                    help="slow-push: files (streams) the data is cut into")
    ap.add_argument("--slow-push-inflight", type=int, action="append",
                    help="slow-push: max_in_flight values to run (repeatable; default 1 and 4)")
    args = ap.parse_args(argv)
    if args.lines <= 0:
        ap.error("--lines must be > 0")
    if args.rounds <= 0:
        ap.error("--rounds must be > 0")
    if not args.slow_push_inflight:
        args.slow_push_inflight = [1, 4]
    return args


def main():
    args = parse_args()
    names = args.scenario or DEFAULT_SCENARIOS
    if "all" in names:
        names = SCENARIOS
    names = [n for n in SCENARIOS if n in names]

    run = Run(args)
    try:
        run.check_binaries()
    except BenchError as e:
        print("error: %s" % e, file=sys.stderr)
        run.cleanup()
        return 2
    results = []
    try:
        for name in names:
            print("== %s" % name, flush=True)
            try:
                r = globals()["scenario_" + name.replace("-", "_")](run)
            except BenchError as e:
                print("  FAILED: %s" % e, file=sys.stderr)
                r = {"scenario": name, "error": str(e)}
            for one in (r if isinstance(r, list) else [r]):
                results.append(one)
                print("  " + json.dumps({k: (round(v, 3) if isinstance(v, float) else v)
                                         for k, v in one.items()}), flush=True)
    finally:
        run.cleanup()
    text = report(results, args)
    print()
    print(text, end="")
    if args.out:
        new = not os.path.exists(args.out) or os.path.getsize(args.out) == 0
        with open(args.out, "a") as f:
            if new:
                f.write("# bpftail benchmark results\n\nAppended by `bench/run.py --out`; see "
                        "bench/README.md for what the columns mean.\n\n")
            f.write(text)
        print("appended to %s" % args.out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

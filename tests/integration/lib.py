"""Helpers for bpftail's integration suites: the test Loki server, the agent, files, waiting.

Everything runs on this machine against loopback addresses and temporary directories.
Each suite is a module test_*.py with functions test_*(ctx), run by pytest (see conftest.py).
"""
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request


class Skip(Exception):
    """Raised by a test that cannot run here. conftest.py reports it loudly and counts it failed."""


class Ctx:
    def __init__(self, build):
        self.build = os.path.abspath(build)
        self.bpftail = os.path.join(self.build, "bpftail")
        self.fake_loki = os.path.join(self.build, "tests", "bt-fake-loki")
        self.root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.cleanups = []
        self.tmp = None

    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="bpftail-it-")
        self.cleanups.append(lambda: shutil.rmtree(d, ignore_errors=True))
        return d

    def cleanup(self):
        while self.cleanups:
            try:
                self.cleanups.pop()()
            except Exception:
                pass


def wait_until(cond, timeout, interval=0.05, what="condition"):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last=%r)" % (timeout, what, last))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http(method, url, body=None, timeout=10):
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class FakeLoki:
    """The project's Loki-compatible test server (tests/helpers/fake_loki_main.c).

    It stores what a real Loki stores: duplicates (same stream, timestamp and line) are dropped
    silently, entries too far behind the stream's newest, too long lines and streams with
    invalid labels are rejected (see fake_loki.h). entries() and count() are about what was
    STORED; received() counts every entry decoded from a push. Limits are Loki's defaults
    unless given as keyword arguments with Loki's names, e.g. max_line_size=1024,
    max_line_size_truncate=True, max_chunk_age_ms=0 (no out-of-order window)."""

    def __init__(self, ctx, discard=False, port=0, **limits):
        if not os.path.exists(ctx.fake_loki):
            raise AssertionError("test Loki server not built: %s" % ctx.fake_loki)
        args = [ctx.fake_loki, "--port", str(port), "--quiet"]
        if discard:
            args.append("--discard")
        for k, v in limits.items():
            flag = "--" + k.replace("_", "-")
            if v is True:
                args.append(flag)
            elif v is not False:
                args += [flag, str(int(v))]
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.p.stdout.readline()
        m = re.search(r"listening on ([\d.]+):(\d+)", line)
        if not m:
            self.p.kill()
            raise AssertionError("bt-fake-loki did not start: %r" % line)
        self.port = int(m.group(2))
        self.base = "http://127.0.0.1:%d" % self.port
        self.url = self.base + "/loki/api/v1/push"
        ctx.cleanups.append(self.stop)

    @classmethod
    def at(cls, base):
        """The control and query API of a test Loki server started elsewhere (e.g. in a
        container), at base (http://host:port); stop() does nothing."""
        f = cls.__new__(cls)
        f.p = None
        f.base = base.rstrip("/")
        f.port = int(f.base.rsplit(":", 1)[1])
        f.url = f.base + "/loki/api/v1/push"
        return f

    def stop(self):
        if self.p is not None and self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def script(self, spec):
        st, body = http("POST", self.base + "/control/script", spec.encode())
        assert st in (200, 204), (st, body)

    def set_default(self, status):
        st, body = http("POST", self.base + "/control/default?status=%d" % status, b"")
        assert st in (200, 204), (st, body)

    def reset(self):
        http("POST", self.base + "/control/reset", b"")

    def set_limits(self, **limits):
        """Changes limits for later pushes (Loki's names, as for the constructor)."""
        q = "&".join("%s=%d" % (k, int(v)) for k, v in limits.items())
        st, body = http("POST", self.base + "/control/limits?" + q, b"")
        assert st in (200, 204), (st, body)

    def stats(self):
        st, body = http("GET", self.base + "/control/stats")
        assert st == 200, (st, body)
        return json.loads(body)

    def entries(self):
        st, body = http("GET", self.base + "/control/dump", timeout=60)
        assert st == 200, (st, body)
        out = []
        for ln in body.decode("utf-8", "surrogateescape").splitlines():
            if ln.strip():
                out.append(json.loads(ln))
        return out

    def count(self):
        """Entries stored."""
        return self.stats().get("entries", 0)

    def received(self):
        """Entries received (decoded from pushes), stored or not."""
        return self.stats().get("received_entries", 0)


class Agent:
    """bpftail itself, started with a generated config."""

    def __init__(self, ctx, config_text, name="bpftail.yaml", extra_args=(), env=None, log=None,
                 nofile=None):
        self.ctx = ctx
        self.nofile = nofile  # soft and hard RLIMIT_NOFILE for the process, None = inherited
        self.dir = ctx.tmpdir()
        self.config = os.path.join(self.dir, name)
        with open(self.config, "w") as f:
            f.write(config_text)
        self.extra = list(extra_args)
        self.env = env
        self.log_path = log or os.path.join(self.dir, "bpftail.log")
        self.p = None
        ctx.cleanups.append(self.kill)

    def start(self):
        if not os.path.exists(self.ctx.bpftail):
            raise AssertionError("bpftail not built: %s" % self.ctx.bpftail)
        logf = open(self.log_path, "ab")
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        preexec = None
        if self.nofile:
            n = self.nofile

            def preexec():
                resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        self.p = subprocess.Popen([self.ctx.bpftail, "-config.file", self.config] + self.extra,
                                  stdout=logf, stderr=logf, env=env, preexec_fn=preexec)
        logf.close()
        return self

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def stop(self, timeout=30):
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                raise AssertionError("bpftail did not stop within %ss after SIGTERM" % timeout)
        return self.p.returncode if self.p else None

    def kill(self):
        if self.alive():
            self.p.kill()
            self.p.wait()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def metrics(self, port):
        st, body = http("GET", "http://127.0.0.1:%d/metrics" % port)
        assert st == 200, st
        return body.decode()


def metric_value(text, name, **labels):
    """Sum of the samples of metric `name` whose labels include all of `labels`."""
    total = 0.0
    found = False
    for ln in text.splitlines():
        if ln.startswith("#") or not ln.startswith(name):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$', ln)
        if not m or m.group(1) != name:
            continue
        lab = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(lab.get(k) == v for k, v in labels.items()):
            total += float(m.group(4))
            found = True
    return total if found else None


def agent_config(loki_url, path_glob, positions, port, job="varlogs", batchwait="200ms",
                 batchsize=1048576, extra_client="", extra_top="", extra_scrape="",
                 min_backoff="50ms", max_backoff="500ms", max_retries=10):
    return """server:
  http_listen_port: %(port)d
  grpc_listen_port: 0
  log_level: info
positions:
  filename: %(positions)s
  sync_period: 1s
clients:
  - url: %(url)s
    batchwait: %(batchwait)s
    batchsize: %(batchsize)d
    backoff_config:
      min_period: %(minb)s
      max_period: %(maxb)s
      max_retries: %(retries)d
%(extra_client)s
target_config:
  sync_period: 1s
%(extra_top)s
scrape_configs:
  - job_name: %(job)s
    static_configs:
      - targets: [localhost]
        labels:
          job: %(job)s
          __path__: %(glob)s
%(extra_scrape)s
""" % dict(port=port, positions=positions, url=loki_url, batchwait=batchwait,
           batchsize=batchsize, extra_client=extra_client, extra_top=extra_top, job=job,
           glob=path_glob, extra_scrape=extra_scrape, minb=min_backoff, maxb=max_backoff,
           retries=max_retries)


class SeqWriter:
    """Writes sequence-numbered lines 'seq=<n> <padding>' to a file, with rotation helpers."""

    def __init__(self, path, width=80):
        self.path = path
        self.n = 0
        self.width = width
        self.f = open(path, "a", buffering=1)

    def line(self, i):
        s = "seq=%08d tag=%s " % (i, os.path.basename(self.path))
        return s + "x" * max(0, self.width - len(s))

    def write(self, count, flush_every=1000):
        for _ in range(count):
            self.f.write(self.line(self.n) + "\n")
            self.n += 1
            if self.n % flush_every == 0:
                self.f.flush()
        self.f.flush()

    def reopen(self):
        self.f.close()
        self.f = open(self.path, "a", buffering=1)

    def close(self):
        self.f.close()


def seqs(entries, tag=None):
    out = []
    for e in entries:
        m = re.match(r"seq=(\d+) tag=(\S+)", e["line"])
        if m and (tag is None or m.group(2) == tag):
            out.append(int(m.group(1)))
    return out


def check_exactly_once(got, n, allow_dups=0):
    """Every sequence number 0..n-1 present; returns (lost, dups)."""
    seen = {}
    for s in got:
        seen[s] = seen.get(s, 0) + 1
    lost = [i for i in range(n) if i not in seen]
    dups = sum(c - 1 for c in seen.values())
    return lost, dups

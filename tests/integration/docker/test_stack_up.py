"""The docker-compose stack, started for real on the suite's Docker engine.

The project's image is built from the Dockerfile (classic builder, local Debian base images,
docker_logs_engine.bpftail_image), the test Loki server is put in a local image, and
docker-compose.yml is brought up with Debian's docker-compose v1 and a test-only override:

* `loki` runs the test Loki server image (same port, 3100; it stores what Loki would store and
  lets the test read it back), Grafana and the stack's Prometheus image are left out (no image
  can be had without a registry);
* Docker's containers directory is this engine's data root instead of /var/lib/docker.

Everything else is the stack's own: the compose project's network (bpftail reaches `loki:3100`
by name; the engine has no default bridge, but compose makes the project's own network and
removes it at `down`), the published ports 3100 and 9080 (which must be free on the host), its
bpftail config (config/stack.yaml, with its jobs and labels), volumes, capabilities and pid
namespace. Lines written to a file in the host's
/var/log and a json-file container's lines must arrive exactly once with the stack's labels.
Then every PromQL query of grafana/dashboards/*.json is run against Debian's Prometheus,
started here with the stack's config/prometheus.yml (targets pointed at the host) scraping that
bpftail, and each must return at least one series.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import docker_logs_engine as dockerd  # noqa: E402
import lib  # noqa: E402

LOKI_PORT = 3100      # docker-compose.yml publishes the test Loki's port like Loki's
BPFTAIL_PORT = 9080   # config/stack.yaml: server.http_listen_port
HOST_LABEL = "bt-stack-host"
N_VARLOG = 500
N_CTR = 500

OVERRIDE = """# Test-only override of docker-compose.yml (tests/integration/docker/test_stack_up.py).
version: "3.7"
services:
  loki:
    image: %(loki_image)s
    command: ["--listen-any", "--quiet"]
    restart: "no"
  bpftail:
    volumes:
      - %(containers)s:/var/lib/docker/containers:ro
    restart: "no"
"""

# Grafana's variables, as a dashboard with the stack's Prometheus would fill them in.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m",
                "$job": "bpftail", "$instance": ".*"}


def port_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def compose(stack, *args, timeout=180, check=True):
    eng = stack["engine"]
    cmd = [stack["compose"], "-p", stack["project"], "--project-directory", stack["root"],
           "-f", os.path.join(stack["root"], "docker-compose.yml"), "-f", stack["override"]]
    p = subprocess.run(cmd + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout, env=eng.env(HOSTNAME=HOST_LABEL))
    if check and p.returncode != 0:
        raise AssertionError("docker-compose %s failed (%d):\n%s" % (
            " ".join(args), p.returncode, p.stdout[-3000:]))
    return p.stdout


@pytest.fixture(scope="module")
def stack(request):
    """The stack up: {engine, root, project, override, loki (lib.FakeLoki.at), ...}."""
    build = request.config.getoption("--build")
    ctx = lib.Ctx(build)
    eng = dockerd.engine()
    t0 = time.monotonic()
    dockerd.bpftail_image(ctx.root)
    t_img = time.monotonic()
    dockerd.fake_loki_image(ctx.root, ctx.fake_loki)
    for port in (LOKI_PORT, BPFTAIL_PORT):
        if not port_free(port):
            raise AssertionError("port %d is taken on this host; the stack needs it" % port)
    exe = shutil.which("docker-compose")
    if not exe:
        raise AssertionError("docker-compose not installed (scripts/deps.sh docker installs it)")
    d = tempfile.mkdtemp(prefix="bt-stack-")
    st = {"engine": eng, "root": ctx.root, "compose": exe, "dir": d,
          "project": "btstack%s" % uuid.uuid4().hex[:6],
          "override": os.path.join(d, "docker-compose.test.yml")}
    with open(st["override"], "w") as f:
        f.write(OVERRIDE % dict(loki_image=dockerd.TEST_LOKI_IMAGE, containers=eng.containers))
    try:
        compose(st, "up", "-d", "--no-build", "bpftail")
        st["loki"] = lib.FakeLoki.at("http://127.0.0.1:%d" % LOKI_PORT)
        lib.wait_until(lambda: _ready(BPFTAIL_PORT), 60, 0.2, "bpftail's /ready in the stack")
        lib.wait_until(lambda: _loki_up(st["loki"]), 30, 0.2, "the test Loki in the stack")
        st["up_seconds"] = time.monotonic() - t_img
        print("stack: image %.1fs, up %.1fs" % (t_img - t0, st["up_seconds"]))
        yield st
    finally:
        out = compose(st, "logs", "--no-color", "--tail", "40", timeout=60, check=False)
        if request.session.testsfailed:
            print(out[-6000:])
        compose(st, "down", "-v", "--timeout", "5", timeout=120, check=False)
        shutil.rmtree(d, ignore_errors=True)


def _ready(port):
    try:
        st, _ = lib.http("GET", "http://127.0.0.1:%d/ready" % port, timeout=2)
        return st == 200
    except OSError:
        return False


def _loki_up(loki):
    try:
        loki.stats()
        return True
    except (OSError, AssertionError):
        return False


def labels_of(entry):
    return dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', entry["labels"]))


def seqs_of(entries, tag):
    out = []
    for e in entries:
        m = re.match(r"%s seq=(\d+)$" % re.escape(tag), e["line"])
        if m:
            out.append((int(m.group(1)), labels_of(e)))
    return out


def check_once(ctx, scenario, got, n):
    lost, dups = lib.check_exactly_once([s for s, _ in got], n)
    ctx.table.append([scenario, n, len(got), dups, len(lost)])
    assert not lost and not dups, "%s: lost %d (first %r), duplicated %d" % (
        scenario, len(lost), lost[:5], dups)


def test_stack_ships_host_varlog_and_container_lines_with_its_labels(ctx, stack):
    eng, loki = stack["engine"], stack["loki"]
    tag = "bt-stack-%s" % uuid.uuid4().hex[:8]
    path = "/var/log/%s.log" % tag
    ctx.cleanups.append(lambda: os.path.exists(path) and os.unlink(path))
    with open(path, "w") as f:
        for i in range(N_VARLOG):
            f.write("%s seq=%d\n" % (tag, i))
    name = "bt-stack-ctr-%s" % uuid.uuid4().hex[:6]
    cid = eng.run(name, "awk 'BEGIN{for(i=0;i<%d;i++) print \"%s seq=\" i}'" % (N_CTR, name))
    ctx.cleanups.append(lambda: eng.rm(cid))
    assert eng.wait(cid, timeout=60) == 0

    def arrived():
        ents = loki.entries()
        return (len(seqs_of(ents, tag)) >= N_VARLOG and len(seqs_of(ents, name)) >= N_CTR) and ents
    try:
        ents = lib.wait_until(arrived, 60, 0.5, "the stack to ship the varlog file and the container")
    except AssertionError:
        ents = loki.entries()
    time.sleep(1.0)  # anything sent twice would come right behind
    ents = loki.entries()

    host = seqs_of(ents, tag)
    check_once(ctx, "stack: host /var/log file", host, N_VARLOG)
    for _, lab in host:
        assert lab == {"job": "varlogs", "filename": path, "host": HOST_LABEL}, lab

    ctr = seqs_of(ents, name)
    check_once(ctx, "stack: json-file container", ctr, N_CTR)
    want_file = "/var/lib/docker/containers/%s/%s-json.log" % (cid, cid)
    for _, lab in ctr:
        assert lab == {"job": "containers", "filename": want_file, "stream": "stdout",
                       "host": HOST_LABEL}, lab


def dashboard_queries(root):
    """[(dashboard, panel title, expr, datasource type)] of every panel target."""
    out = []
    ddir = os.path.join(root, "grafana", "dashboards")
    for fn in sorted(os.listdir(ddir)):
        if not fn.endswith(".json"):
            continue
        with open(os.path.join(ddir, fn)) as f:
            d = json.load(f)

        def walk(panels):
            for p in panels:
                walk(p.get("panels", []))
                for t in p.get("targets", []):
                    if not t.get("expr"):
                        continue
                    ds = t.get("datasource") or p.get("datasource") or {}
                    kind = ds.get("type") if isinstance(ds, dict) else str(ds)
                    out.append((fn, p.get("title", ""), t["expr"], (kind or "").lower()))
        walk(d.get("panels", []))
    return out


def fill_vars(expr):
    for k in sorted(GRAFANA_VARS, key=len, reverse=True):
        expr = expr.replace(k, GRAFANA_VARS[k]).replace("${%s}" % k[1:], GRAFANA_VARS[k])
    assert "$" not in expr, "a dashboard variable the test does not know: %s" % expr
    return expr


def prom_query(base, q):
    st, body = lib.http("GET", base + "/api/v1/query?" + urllib.parse.urlencode({"query": q}),
                        timeout=10)
    return st, json.loads(body) if body else {}


@pytest.fixture
def prometheus(ctx, stack):
    """Debian's Prometheus with the stack's config/prometheus.yml, its targets pointed at the
    host and a 1s scrape interval: the base URL of its HTTP API."""
    exe = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not os.path.exists(exe):
        raise AssertionError("prometheus not installed (scripts/deps.sh docker installs it)")
    with open(os.path.join(ctx.root, "config", "prometheus.yml")) as f:
        cfg = f.read()
    assert '"bpftail:9080"' in cfg and "job_name: bpftail" in cfg, "config/prometheus.yml changed"
    cfg = cfg.replace('"bpftail:9080"', '"127.0.0.1:%d"' % BPFTAIL_PORT)
    cfg = cfg.replace('"loki:3100"', '"127.0.0.1:%d"' % LOKI_PORT)
    cfg = re.sub(r"scrape_interval: \S+", "scrape_interval: 1s", cfg)
    d = ctx.tmpdir()
    with open(os.path.join(d, "prometheus.yml"), "w") as f:
        f.write(cfg)
    port = lib.free_port()
    log = open(os.path.join(d, "prometheus.log"), "wb")
    p = subprocess.Popen([exe, "--config.file=" + os.path.join(d, "prometheus.yml"),
                          "--storage.tsdb.path=" + os.path.join(d, "data"),
                          "--web.listen-address=127.0.0.1:%d" % port],
                         stdout=log, stderr=subprocess.STDOUT)
    log.close()

    def stop():
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    ctx.cleanups.append(stop)
    base = "http://127.0.0.1:%d" % port

    def up():
        if p.poll() is not None:
            raise AssertionError("prometheus exited: %s" % open(os.path.join(d, "prometheus.log")).read()[-2000:])
        try:
            st, r = prom_query(base, 'up{job="bpftail"}')
        except OSError:
            return False
        return st == 200 and any(x["value"][1] == "1" for x in r.get("data", {}).get("result", []))
    lib.wait_until(up, 60, 0.5, "prometheus to scrape the stack's bpftail")
    return base


def test_every_dashboard_promql_query_returns_a_series(ctx, stack, prometheus):
    queries = dashboard_queries(ctx.root)
    prom = [q for q in queries if q[3] == "prometheus"]
    logql = [q for q in queries if q[3] == "loki"]
    other = [q for q in queries if q[3] not in ("prometheus", "loki")]
    assert not other, "panels with a datasource the test does not know: %r" % other
    assert prom, "no PromQL query found in grafana/dashboards"
    # Keep the stack busy so rates over the last minute have samples of a working agent.
    path = "/var/log/bt-stack-prom-%s.log" % uuid.uuid4().hex[:8]
    ctx.cleanups.append(lambda: os.path.exists(path) and os.unlink(path))
    with open(path, "w", buffering=1) as f:
        for i in range(20):
            f.write("prom-load seq=%d\n" % i)
            time.sleep(0.25)
    time.sleep(3)  # a few more scrapes after the last line

    results, empty = [], []
    for fn, title, expr, _ in prom:
        q = fill_vars(expr)
        st, r = prom_query(prometheus, q)
        assert st == 200 and r.get("status") == "success", "%s %r: %s" % (fn, q, r)
        series = r["data"]["result"]
        if r["data"]["resultType"] == "scalar":
            series = [r["data"]["result"]]
        vals = [s["value"][1] for s in series if isinstance(s, dict)]
        results.append((fn, title, q, len(series), vals[:3]))
        if not series:
            empty.append("%s / %s: %s" % (fn, title, q))
    print("dashboard queries: %d PromQL run against Prometheus, %d LogQL (Loki's, not run here)"
          % (len(prom), len(logql)))
    for fn, title, q, n, vals in results:
        print("  %-20s %-34s series=%d %s  %s" % (fn, title[:34], n, vals, q))
    assert not empty, "PromQL queries that return no series:\n  " + "\n  ".join(empty)

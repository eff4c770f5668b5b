"""The promtail compatibility corpus (tests/compat): each config of configs/ is checked against
its row of expectations.txt, which says whether bpftail starts with it, starts with a warning,
refuses it with a given reason, or runs it and ships a line. Seconds in all: -check-syntax for
most rows, a short -dry-run for the `run` rows.
"""
import os
import signal
import subprocess
import time

import pytest

import lib

HERE = os.path.dirname(os.path.abspath(__file__))
COMPAT = os.path.join(os.path.dirname(HERE), "compat")
CONFIGS = os.path.join(COMPAT, "configs")
OUTCOMES = ("start", "warn", "refuse", "run")
# The line the `run` rows ship: promtail's pipelines example format.
RUN_LINE = "2024-01-01T00:00:00Z level=info ts=2024-01-01T00:00:00.123Z component=api msg=hello\n"


def read_table():
    rows = []
    with open(os.path.join(COMPAT, "expectations.txt")) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 2)
            rows.append((parts[0], parts[1] if len(parts) > 1 else "",
                         parts[2] if len(parts) > 2 else "", n))
    return rows


ROWS = read_table()


def test_every_config_has_exactly_one_expectation():
    files = sorted(f for f in os.listdir(CONFIGS) if f.endswith(".yaml"))
    named = [r[0] for r in ROWS]
    assert sorted(set(named)) == sorted(named), "a config is named twice in expectations.txt"
    assert sorted(named) == files, ("configs without a row: %s; rows without a config: %s" %
                                    (sorted(set(files) - set(named)),
                                     sorted(set(named) - set(files))))
    for name, outcome, text, n in ROWS:
        assert outcome in OUTCOMES, "expectations.txt:%d: outcome %r" % (n, outcome)
        assert outcome == "start" or text, "expectations.txt:%d: %s needs a text" % (n, outcome)


def run_check(ctx, name, workdir):
    env = dict(os.environ, COMPAT_DIR=workdir)
    return subprocess.run([ctx.bpftail, "-config.expand-env=true",
                           "-config.file=" + os.path.join(CONFIGS, name), "-check-syntax"],
                          env=env, capture_output=True, text=True, timeout=30)


def run_dry(ctx, name, workdir, want):
    os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)
    with open(os.path.join(workdir, "logs", "app.log"), "w") as f:
        f.write(RUN_LINE)
    env = dict(os.environ, COMPAT_DIR=workdir)
    out_path = os.path.join(workdir, "stdout")
    with open(out_path, "w") as out, open(os.path.join(workdir, "stderr"), "w") as err:
        p = subprocess.Popen([ctx.bpftail, "-config.expand-env=true",
                              "-config.file=" + os.path.join(CONFIGS, name), "-dry-run"],
                             env=env, stdout=out, stderr=err)
    try:
        deadline = time.time() + 10
        while time.time() < deadline and p.poll() is None:
            with open(out_path) as f:
                if want in f.read():
                    break
            time.sleep(0.05)
        alive = p.poll() is None
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    with open(out_path) as f:
        stdout = f.read()
    with open(os.path.join(workdir, "stderr")) as f:
        stderr = f.read()
    return alive, rc, stdout, stderr


@pytest.mark.parametrize("name,outcome,text,lineno", ROWS, ids=[r[0] for r in ROWS])
def test_compat(ctx, name, outcome, text, lineno):
    workdir = ctx.tmpdir()
    text = text.replace("${COMPAT_DIR}", workdir)
    where = "expectations.txt:%d: %s" % (lineno, name)
    if outcome == "run":
        alive, rc, out, err = run_dry(ctx, name, workdir, text)
        assert alive, "%s: bpftail exited early (rc %s)\n%s" % (where, rc, err)
        assert text in out, "%s: stdout lacks %r\nstdout:\n%s\nstderr:\n%s" % (where, text, out, err)
        assert rc == 0, "%s: exit status %d after SIGTERM\n%s" % (where, rc, err)
        assert "level=error" not in err, "%s: errors logged\n%s" % (where, err)
        return
    r = run_check(ctx, name, workdir)
    if outcome == "refuse":
        assert r.returncode == 1, "%s: expected a refusal, got exit %d\n%s%s" % (
            where, r.returncode, r.stdout, r.stderr)
        first = r.stderr.strip().splitlines()[0] if r.stderr.strip() else ""
        prefix = "bpftail: " + os.path.join(CONFIGS, name) + ":"
        assert first.startswith(prefix), "%s: the error does not name FILE:LINE:COL: %s" % (
            where, first)
        assert text in first, "%s: error lacks %r:\n%s" % (where, text, first)
        return
    assert r.returncode == 0, "%s: exit %d\n%s" % (where, r.returncode, r.stderr)
    assert "Valid config file! No syntax issues found" in r.stdout, where
    warnings = [l for l in r.stderr.splitlines() if "level=warn" in l or "level=error" in l]
    if outcome == "warn":
        assert any(text in l for l in warnings), "%s: no warning with %r:\n%s" % (
            where, text, r.stderr)
    else:
        assert not warnings, "%s: unexpected warnings:\n%s" % (where, "\n".join(warnings))


def test_http_path_prefix_and_tls_serve_the_endpoints(ctx, agent):
    """server.http_path_prefix and server.http_tls_config with the real binary: HTTPS, every
    endpoint under the prefix, nothing at the root."""
    import ssl
    import urllib.error
    import urllib.request
    tls = os.path.join(os.path.dirname(HERE), "data", "tls")
    d = ctx.tmpdir()
    port = lib.free_port()
    cfg = """server:
  http_listen_address: 127.0.0.1
  http_listen_port: %d
  http_path_prefix: /agent/
  http_tls_config:
    cert_file: %s
    key_file: %s
positions: {filename: %s/positions.yaml}
clients: [{url: "http://127.0.0.1:1/loki/api/v1/push"}]
bpftail: {watcher: inotify}
scrape_configs:
  - job_name: a
    static_configs: [{labels: {job: a, __path__: "%s/*.log"}}]
""" % (port, os.path.join(tls, "server.pem"), os.path.join(tls, "server.key"), d, d)
    agent(cfg, extra_args=["-dry-run"])
    sslctx = ssl.create_default_context(cafile=os.path.join(tls, "server.pem"))

    def status(path):
        try:
            with urllib.request.urlopen("https://127.0.0.1:%d%s" % (port, path), timeout=5,
                                        context=sslctx) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except (urllib.error.URLError, ConnectionError):
            return None

    lib.wait_until(lambda: status("/agent/ready") is not None, 10, what="HTTPS server up")
    assert status("/agent/metrics") == 200
    assert status("/agent/targets") == 200
    assert status("/metrics") == 404
    assert status("/ready") == 404

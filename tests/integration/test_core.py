"""Core pipeline, end to end: files written while bpftail runs reach the test Loki server exactly
once, in order per file, through rotation, crashes and server errors."""
import os
import random
import signal
import subprocess
import time

from lib import (Agent, FakeLoki, SeqWriter, agent_config, check_exactly_once, free_port,
                 metric_value, seqs, wait_until)


def start(ctx, loki, d, **kw):
    port = free_port()
    cfg = agent_config(loki.url, os.path.join(d, "*.log"), os.path.join(d, "positions.yaml"),
                       port, **kw)
    a = Agent(ctx, cfg).start()
    a.port = port
    wait_until(lambda: a.alive() and _ready(port), 15, what="bpftail HTTP server")
    return a


def _ready(port):
    import urllib.request
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=1).read()
        return True
    except Exception:
        return False


def record(ctx, name, written, got, dups, lost):
    ctx.table.append((name, written, got, dups, lost))


def assert_all(ctx, loki, n, name, tag=None, allow_dups=0, timeout=60):
    wait_until(lambda: len(set(seqs(loki.entries(), tag))) >= n, timeout,
               interval=0.3, what="%d lines at the server" % n)
    time.sleep(0.5)
    got = seqs(loki.entries(), tag)
    lost, dups = check_exactly_once(got, n)
    record(ctx, name, n, len(got), dups, len(lost))
    assert not lost, "%s: lost %d lines, first %s" % (name, len(lost), lost[:10])
    assert dups <= allow_dups, "%s: %d duplicates (allowed %d)" % (name, dups, allow_dups)
    return got


def test_100k_lines_written_while_running_arrive_once_in_order(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    a = start(ctx, loki, d)
    w = SeqWriter(os.path.join(d, "app.log"))
    for _ in range(100):
        w.write(1000)
        time.sleep(0.005)
    got = assert_all(ctx, loki, 100000, "100k lines while running")
    assert got == sorted(got), "lines of one file arrived out of order"
    labels = {e["labels"] for e in loki.entries()[:10]}
    expect = '{filename="%s", job="varlogs"}' % os.path.join(d, "app.log")
    assert labels == {expect}, labels
    assert a.stop() == 0


def test_rename_create_rotation_while_writing_loses_nothing(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    start(ctx, loki, d)
    path = os.path.join(d, "app.log")
    w = SeqWriter(path)
    for r in range(5):
        w.write(4000)
        os.rename(path, path + ".%d" % r)  # not matched by *.log
        w.write(10)  # the writer still holds the old file for a moment
        w.reopen()
    w.write(4000)
    assert_all(ctx, loki, w.n, "rename+create rotation x5")


def test_copytruncate_rotation_while_writing_loses_nothing(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    start(ctx, loki, d)
    path = os.path.join(d, "app.log")
    w = SeqWriter(path)
    for r in range(3):
        w.write(3000)
        # Wait until bpftail read what is there, then copy and truncate as logrotate does.
        wait_until(lambda: len(seqs(loki.entries())) >= w.n, 30, interval=0.2,
                   what="catch-up before copytruncate")
        subprocess.check_call(["cp", path, path + ".%d" % r])
        with open(path, "r+") as f:
            f.truncate(0)
    w.write(3000)
    assert_all(ctx, loki, w.n, "copytruncate x3")


def test_truncate_and_delete_recreate(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    start(ctx, loki, d)
    path = os.path.join(d, "app.log")
    w = SeqWriter(path)
    w.write(2000)
    wait_until(lambda: len(seqs(loki.entries())) >= 2000, 30, interval=0.2, what="first part")
    os.unlink(path)
    w.write(5)  # writes to the deleted file are still read (fd held)
    w.close()
    time.sleep(0.5)
    w2 = SeqWriter(path)
    w2.n = w.n
    w2.write(2000)
    assert_all(ctx, loki, w2.n, "delete while open + recreate")


def test_kill9_and_restart_never_skips_a_line(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    path = os.path.join(d, "app.log")
    w = SeqWriter(path)
    port = free_port()
    cfg = agent_config(loki.url, os.path.join(d, "*.log"), os.path.join(d, "positions.yaml"), port,
                       batchwait="100ms", batchsize=64 * 1024)
    a = Agent(ctx, cfg)
    rnd = random.Random(7)
    rounds = 5
    for r in range(rounds):
        a.start()
        w.write(5000)
        time.sleep(rnd.uniform(0.2, 1.2))
        a.kill()
    a.start()
    w.write(1000)
    # At-least-once: duplicates allowed only for batches in flight at each kill (batches of
    # at most 64 KiB = ~800 lines of ~80 bytes, a few per kill).
    assert_all(ctx, loki, w.n, "kill -9 x%d" % rounds, allow_dups=rounds * 5000, timeout=90)
    a.stop()


def test_server_500_for_10s_then_204_gets_every_line(ctx):
    loki = FakeLoki(ctx)
    loki.set_default(500)
    d = ctx.tmpdir()
    a = start(ctx, loki, d, min_backoff="100ms", max_backoff="1s", max_retries=0)
    w = SeqWriter(os.path.join(d, "app.log"))
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10:
        w.write(500)
        time.sleep(0.2)
    st = loki.stats()
    assert st["by_status"].get("500", 0) >= 1, st  # the outage was really seen by bpftail
    loki.set_default(204)
    assert_all(ctx, loki, w.n, "500 for 10s then 204", timeout=60)
    m = a.metrics(a.port)
    assert (metric_value(m, "bpftail_batch_retries_total") or 0) > 0, "retries not counted"


def test_400_answers_are_dropped_and_counted(ctx):
    loki = FakeLoki(ctx)
    loki.script("400:body=entry for stream has timestamp too old")
    d = ctx.tmpdir()
    a = start(ctx, loki, d, batchwait="100ms")
    w = SeqWriter(os.path.join(d, "app.log"))
    w.write(10)
    wait_until(lambda: (metric_value(a.metrics(a.port), "bpftail_dropped_entries_total",
                                     reason="too_old") or 0) >= 1, 20, what="drop counted")
    m = a.metrics(a.port)
    dropped = metric_value(m, "bpftail_dropped_entries_total", reason="too_old")
    w.write(10)
    # The batch after the 400 goes through; the dropped one is not retried.
    wait_until(lambda: len(seqs(loki.entries())) + dropped >= 20, 20, what="second batch")
    st = loki.stats()
    assert st["by_status"].get("400", 0) == 1, st


def test_check_syntax_accepts_promtail_configs_and_names_line_of_errors(ctx):
    data = os.path.join(ctx.root, "tests", "data", "configs")
    good = sorted(f for f in os.listdir(data) if f.startswith("promtail-"))
    bad = sorted(f for f in os.listdir(data) if f.startswith("bad-"))
    assert good and bad, "no sample configs in %s" % data
    for f in good:
        r = subprocess.run([ctx.bpftail, "-config.file", os.path.join(data, f), "-check-syntax"],
                           capture_output=True, text=True)
        assert r.returncode == 0, "%s rejected: %s" % (f, r.stderr)
    for f in bad:
        r = subprocess.run([ctx.bpftail, "-config.file", os.path.join(data, f), "-check-syntax"],
                           capture_output=True, text=True)
        assert r.returncode == 1, "%s accepted" % f
        assert "%s:" % f in r.stderr and any(ch.isdigit() for ch in r.stderr), \
            "%s: error does not name file and line: %s" % (f, r.stderr)


def test_default_config_without_loki_says_so_and_shows_what_it_would_ship(ctx):
    # The README's first command: no -config.file, no Loki at $LOKI_URL.
    d = ctx.tmpdir()
    port = free_port()  # nothing listens here
    env = dict(os.environ, LOKI_URL="http://127.0.0.1:%d" % port)
    p = subprocess.Popen([ctx.bpftail, "-server.http-listen-port", "0",
                          "-positions.file", os.path.join(d, "pos.yaml")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        import select
        out = ""
        end = time.monotonic() + 15
        while time.monotonic() < end and "varlogs" not in out:
            r, _, _ = select.select([p.stdout], [], [], 0.5)
            if r:
                out += p.stdout.readline()
    finally:
        p.terminate()
        _, err = p.communicate(timeout=10)
    assert "no Loki answers" in err, err[-2000:]
    assert err.count("no Loki answers") == 1
    assert any(os.path.isfile(os.path.join("/var/log", f)) and f.endswith("log")
               for f in os.listdir("/var/log")), \
        "no /var/log/*log file on this machine: the default config has nothing to show"
    assert 'job="varlogs"' in out, "nothing shown from /var/log/*log: %r" % out[:500]

"""Fault injection: sequence-numbered lines through rotation, crashes, outages and slow or
rate-limiting servers. Each scenario checks that every line arrived exactly once (duplicates only
where at-least-once allows them, and says how many) and records a row in the summary table."""
import os
import random
import signal
import subprocess
import threading
import time

from lib import (Agent, FakeLoki, SeqWriter, agent_config, check_exactly_once, free_port,
                 metric_value, seqs, wait_until)


def _metrics_ok(port):
    import urllib.request
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=1).read()
        return True
    except Exception:
        return False


def make_agent(ctx, loki, d, glob="*.log", extra_top="", nofile=None, **kw):
    port = free_port()
    cfg = agent_config(loki.url, os.path.join(d, glob), os.path.join(d, "positions.yaml"), port,
                       extra_top=extra_top, **kw)
    a = Agent(ctx, cfg, nofile=nofile)
    a.port = port
    return a


def started(a):
    a.start()
    wait_until(lambda: a.alive() and _metrics_ok(a.port), 20, what="bpftail up")
    return a


def verify(ctx, loki, n, name, tag=None, allow_dups=0, timeout=90, note=""):
    try:
        wait_until(lambda: len(set(seqs(loki.entries(), tag))) >= n, timeout, interval=0.5,
                   what="%d lines" % n)
    except AssertionError:
        pass
    time.sleep(0.5)
    got = seqs(loki.entries(), tag)
    lost, dups = check_exactly_once(got, n)
    ctx.table.append((name + note, n, len(got), dups, len(lost)))
    assert not lost, "%s: lost %d lines (first %s)" % (name, len(lost), lost[:10])
    assert dups <= allow_dups, "%s: %d duplicates > %d allowed" % (name, dups, allow_dups)
    return dups


class RateWriter(threading.Thread):
    """Writes lines at about `rate` per second for `seconds`, calling rotate() every `every` s."""

    def __init__(self, w, rate, seconds, rotate=None, every=1.0):
        super().__init__(daemon=True)
        self.w, self.rate, self.seconds, self.rotate, self.every = w, rate, seconds, rotate, every

    def run(self):
        t0 = time.monotonic()
        next_rot = t0 + self.every
        chunk = max(1, self.rate // 100)
        while time.monotonic() - t0 < self.seconds:
            self.w.write(chunk)
            if self.rotate and time.monotonic() >= next_rot:
                self.rotate()
                next_rot += self.every
            time.sleep(0.01)


def test_rename_rotation_while_writing_20k_lines_per_second(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    started(make_agent(ctx, loki, d))
    path = os.path.join(d, "app.log")
    w = SeqWriter(path)
    gen = [0]

    def rotate():
        gen[0] += 1
        os.rename(path, "%s.%d" % (path, gen[0]))
        w.reopen()

    t = RateWriter(w, 20000, 8, rotate, every=1.0)
    t.start()
    t.join()
    verify(ctx, loki, w.n, "rename rotation @20k lines/s")


def test_copytruncate_while_writing(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    started(make_agent(ctx, loki, d))
    path = os.path.join(d, "app.log")
    w = SeqWriter(path)
    gen = [0]

    def rotate():
        gen[0] += 1
        subprocess.check_call(["cp", path, "%s.%d" % (path, gen[0])])
        with open(path, "r+") as f:
            f.truncate(0)

    t = RateWriter(w, 5000, 6, rotate, every=1.5)
    t.start()
    t.join()
    verify(ctx, loki, w.n, "copytruncate while writing")


def test_rotation_twice_while_server_down(ctx):
    loki = FakeLoki(ctx)
    loki.set_default(503)
    d = ctx.tmpdir()
    started(make_agent(ctx, loki, d, max_retries=0, min_backoff="100ms", max_backoff="500ms"))
    path = os.path.join(d, "app.log")
    w = SeqWriter(path)
    for r in range(2):
        w.write(5000)
        time.sleep(0.5)
        os.rename(path, "%s.%d" % (path, r + 1))
        w.reopen()
    w.write(5000)
    time.sleep(2)
    loki.set_default(204)
    verify(ctx, loki, w.n, "rotated twice while server down")


def test_rotation_while_stopped_resumes_rotated_file(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    a = started(make_agent(ctx, loki, d, glob="app.log*"))
    path = os.path.join(d, "app.log")
    w = SeqWriter(path)
    w.write(3000)
    wait_until(lambda: len(seqs(loki.entries())) >= 3000, 30, what="first part")
    assert a.stop() == 0
    w.write(2000)  # written while bpftail is down, then rotated away
    os.rename(path, path + ".1")
    w.reopen()
    w.write(2000)
    started(a)
    verify(ctx, loki, w.n, "rotation while stopped")


def test_kill9_at_random_moments_20_rounds(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    a = make_agent(ctx, loki, d, batchwait="100ms", batchsize=32 * 1024)
    path = os.path.join(d, "app.log")
    w = SeqWriter(path)
    rnd = random.Random(20)
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            w.write(200)
            time.sleep(0.01)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    rounds = 20
    for _ in range(rounds):
        a.start()
        time.sleep(rnd.uniform(0.1, 0.8))
        a.kill()
    stop.set()
    t.join()
    started(a)
    # Batches are at most 32 KiB (~400 lines); at most a few are in flight at each kill.
    dups = verify(ctx, loki, w.n, "kill -9 x20", allow_dups=rounds * 4000)
    ctx.table[-1] = (ctx.table[-1][0] + " (dups=at-least-once)",) + tuple(ctx.table[-1][1:])
    assert dups >= 0


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def test_server_down_60s_memory_stays_under_ceiling(ctx):
    loki = FakeLoki(ctx)
    loki.set_default(503)
    d = ctx.tmpdir()
    ceiling = 8 << 20
    a = started(make_agent(ctx, loki, d, max_retries=0, min_backoff="200ms", max_backoff="2s",
                           extra_top="bpftail:\n  memory_limit: %d\n" % ceiling))
    path = os.path.join(d, "app.log")
    w = SeqWriter(path, width=200)
    base = rss_kb(a.p.pid)
    peak = base
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        w.write(5000)  # ~1 MB per round, ~60 MB over the outage: far past the ceiling
        peak = max(peak, rss_kb(a.p.pid))
        time.sleep(0.1)
    m = a.metrics(a.port)
    inflight = metric_value(m, "bpftail_inflight_bytes") or 0
    paused = metric_value(m, "bpftail_backpressure_pauses_total") or 0
    loki.set_default(204)
    verify(ctx, loki, w.n, "server down 60s", timeout=180,
           note=" (rss %d->%d KiB)" % (base, peak))
    assert paused >= 1, "sources were never paused"
    assert inflight <= ceiling * 1.2, "inflight %d over ceiling %d" % (inflight, ceiling)
    # Held bytes are bounded by the ceiling; allow the process baseline plus 2x ceiling of
    # allocator and encode overhead.
    assert (peak - base) * 1024 < 3 * ceiling, "RSS grew by %d KiB" % (peak - base)


def test_429_storm(ctx):
    loki = FakeLoki(ctx)
    loki.script(",".join(["429:retry-after=1"] * 3 + ["429"] * 10))
    d = ctx.tmpdir()
    a = started(make_agent(ctx, loki, d, max_retries=0, min_backoff="50ms", max_backoff="300ms"))
    w = SeqWriter(os.path.join(d, "app.log"))
    w.write(20000)
    verify(ctx, loki, w.n, "429 storm")
    assert (metric_value(a.metrics(a.port), "bpftail_batch_retries_total") or 0) >= 13


def test_slow_server_5s_per_request(ctx):
    loki = FakeLoki(ctx)
    loki.script(",".join(["delay=5000"] * 3))
    d = ctx.tmpdir()
    started(make_agent(ctx, loki, d, extra_client="    timeout: 20s"))
    w = SeqWriter(os.path.join(d, "app.log"))
    w.write(30000)
    verify(ctx, loki, w.n, "slow server (5s/request)", timeout=120)


def test_inode_reuse_detected_by_fingerprint(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    a = started(make_agent(ctx, loki, d))
    path = os.path.join(d, "app.log")
    w = SeqWriter(path, width=120)
    w.write(1000)
    wait_until(lambda: len(seqs(loki.entries())) >= 1000, 30, what="first file")
    assert a.stop() == 0
    w.close()
    ino = os.stat(path).st_ino
    os.unlink(path)
    # Recreate until the kernel hands the same inode back (usual on ext4/tmpfs right after free).
    for _ in range(50):
        f = open(path, "w")
        if os.fstat(f.fileno()).st_ino == ino:
            break
        f.close()
        os.unlink(path)
    f.close()
    w2 = SeqWriter(path, width=60)  # shorter lines: old offset would land mid-line
    w2.n = 1000
    w2.write(1500)
    started(a)
    verify(ctx, loki, w2.n, "inode reuse")


def test_ten_thousand_files(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    files = 10000
    for i in range(files):
        with open(os.path.join(d, "f%05d.log" % i), "w") as f:
            f.write("seq=%08d tag=f%05d.log first\n" % (0, i))
    # Debian's default soft limit: the open-file budget must keep bpftail under it.
    a = started(make_agent(ctx, loki, d, batchsize=1 << 20, nofile=1024))
    peak = [0]

    def count_first():
        peak[0] = max(peak[0], len(os.listdir("/proc/%d/fd" % a.p.pid)))
        return loki.count() >= files
    wait_until(count_first, 120, interval=1, what="first line of every file")
    # Append a second line to a sample of files: each must arrive once.
    for i in range(0, files, 97):
        with open(os.path.join(d, "f%05d.log" % i), "a") as f:
            f.write("seq=%08d tag=f%05d.log second\n" % (1, i))
    wait_until(lambda: loki.count() >= files + len(range(0, files, 97)), 60, interval=1,
               what="second lines")
    got = loki.entries()
    per = {}
    for e in got:
        per[e["line"]] = per.get(e["line"], 0) + 1
    dups = sum(c - 1 for c in per.values())
    want = files + len(range(0, files, 97))
    ctx.table.append(("10,000 files", want, len(got), dups, max(0, want - len(per))))
    assert len(per) == want and dups == 0
    assert peak[0] <= 1024, "open descriptors peaked at %d" % peak[0]
    assert a.stop() == 0
    with open(a.log_path, errors="replace") as f:
        log = f.read()
    assert "Too many open files" not in log, "bpftail ran out of descriptors"


def test_shutdown_within_deadline_while_server_hangs(ctx):
    loki = FakeLoki(ctx)
    loki.script("hang")
    d = ctx.tmpdir()
    a = started(make_agent(ctx, loki, d, extra_top="bpftail:\n  shutdown_timeout: 2s\n",
                           extra_client="    timeout: 60s"))
    w = SeqWriter(os.path.join(d, "app.log"))
    w.write(1000)
    time.sleep(1.5)  # the first push is now hanging
    t0 = time.monotonic()
    rc = a.stop(timeout=15)
    took = time.monotonic() - t0
    assert rc == 0, "exit status %s" % rc
    # The deadline is 2s; the slack covers process exit on a loaded machine, not flushing.
    assert took < 5.0, "shutdown took %.1fs with a 2s deadline" % took
    # Nothing was acknowledged, so after a restart against a good server everything arrives.
    loki2 = FakeLoki(ctx)
    cfg = open(a.config).read().replace(loki.url, loki2.url)
    open(a.config, "w").write(cfg)
    started(a)
    verify(ctx, loki2, w.n, "restart after shutdown with hung server")


DROP_CASES = [
    # (reason, fake server script, extra client yaml)
    ("too_old", "400:body=entry for stream '{job=\"x\"}' has timestamp too old: 2020", ""),
    ("too_new", "400:body=entry for stream '{job=\"x\"}' has timestamp too new: 2099", ""),
    ("line_too_long", "400:body=Max entry size '10' bytes exceeded for stream", ""),
    ("out_of_order", "400:body=entry out of order for stream {job=\"x\"}", ""),
    ("invalid_labels", "400:body=error parsing labels '{x}' with error: bad", ""),
    ("http_4xx", "400:body=something else entirely", ""),
    ("request_too_large", "413:body=request too large", ""),
    ("rate_limited", "429:body=Ingestion rate limit exceeded",
     "    drop_rate_limited_batches: true"),
    ("ingester_error", "500,500,500", ""),
]


def test_every_drop_reason_is_counted(ctx):
    d0 = ctx.tmpdir()
    for reason, script, extra in DROP_CASES:
        loki = FakeLoki(ctx)
        loki.script(script)
        d = os.path.join(d0, reason)
        os.makedirs(d)
        a = started(make_agent(ctx, loki, d, extra_client=extra, max_retries=3,
                               min_backoff="10ms", max_backoff="20ms", batchwait="100ms"))
        w = SeqWriter(os.path.join(d, "app.log"))
        w.write(5)
        wait_until(lambda: (metric_value(a.metrics(a.port), "bpftail_dropped_entries_total",
                                         reason=reason) or 0) >= 5, 20,
                   what="drop reason %s counted" % reason)
        a.kill()


def test_client_side_drops_are_counted(ctx):
    # max_line_size (dropped and truncated), max_age, global rate limiter, stream limit.
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    top = ("limits_config:\n  max_line_size: 100\n  max_line_size_truncate: false\n"
           "  readline_rate_enabled: true\n  readline_rate: 10\n  readline_burst: 10\n")
    a = started(make_agent(ctx, loki, d, extra_top=top, batchwait="100ms"))
    with open(os.path.join(d, "app.log"), "w") as f:
        f.write("x" * 500 + "\n")
        for i in range(100):
            f.write("short %d\n" % i)
    m = lambda: a.metrics(a.port)
    wait_until(lambda: (metric_value(m(), "bpftail_dropped_entries_total",
                                     reason="line_too_long") or 0) >= 1, 20, what="line_too_long")
    wait_until(lambda: (metric_value(m(), "bpftail_dropped_entries_total",
                                     reason="global_rate_limiter_drop") or 0) >= 50, 20,
               what="rate limiter drops")


def test_corrupt_positions_files_never_stop_the_agent(ctx):
    """Offsets beyond EOF, a NUL-filled file and a file cut mid-record: the agent starts, keeps
    the valid records, reads the rest per file, and warns once."""
    loki = FakeLoki(ctx)
    line = 81  # SeqWriter: 80 characters and a newline
    cases = [
        ("beyond", lambda p: ('positions:\n  "%s": "999999999"\n' % p).encode(), 0,
         "stored offset beyond the end"),
        ("nul", lambda p: b"\0" * 4096, 0, "positions file is damaged"),
        ("trunc", lambda p: ('positions:\n  "%s": "%d"\n  "/var/log/other.log": "12'
                             % (p, 500 * line)).encode(), 500, "positions file is damaged"),
    ]
    for name, content, resume, warning in cases:
        d = ctx.tmpdir()
        path = os.path.join(d, name + ".log")
        w = SeqWriter(path)
        w.write(1000)
        with open(os.path.join(d, "positions.yaml"), "wb") as f:
            f.write(content(path))
        a = started(make_agent(ctx, loki, d))
        tag = name + ".log"
        wait_until(lambda: len(set(seqs(loki.entries(), tag))) >= 1000 - resume, 30,
                   what="%s: lines after a corrupt positions file" % name)
        w.write(200)
        wait_until(lambda: len(set(seqs(loki.entries(), tag))) >= 1200 - resume, 30,
                   what="%s: lines written after start" % name)
        time.sleep(0.5)
        got = seqs(loki.entries(), tag)
        want = set(range(resume, 1200))
        dups = len(got) - len(set(got))
        lost = want - set(got)
        ctx.table.append(("corrupt positions: " + name, len(want), len(got), dups, len(lost)))
        assert not lost and dups == 0 and set(got) == want, (name, sorted(lost)[:10], dups)
        assert a.alive()
        assert a.log().count(warning) == 1, "%s: want one warning %r" % (name, warning)
        assert a.stop() == 0

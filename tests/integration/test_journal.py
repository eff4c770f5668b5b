"""The `journal` scrape config end to end, on real journal files: systemd-journal-remote turns
journal export-format text made here into .journal files in a directory that bpftail reads as
the scrape config's `path`. Checks labels (promtail's __journal_* names through relabel_configs),
lines, timestamps, exactly-once delivery across a restart (the cursor in the positions file) and
a second journal file appearing while bpftail runs (rotation)."""
import os
import shutil
import signal
import subprocess
import time

import lib
from lib import Agent, FakeLoki, free_port, metric_value, wait_until

BOOT = "0123456789abcdef0123456789abcdef"
BOOT_AT_US = (time.time_ns() // 1000) - 86400 * 1_000_000  # the boot began a day ago


def journal_remote():
    for p in (shutil.which("systemd-journal-remote"), "/lib/systemd/systemd-journal-remote",
              "/usr/lib/systemd/systemd-journal-remote"):
        if p and os.access(p, os.X_OK):
            return p
    raise lib.Skip("systemd-journal-remote is not installed (scripts/deps.sh test installs it)")


def write_journal(path, entries):
    """entries: list of dicts of fields; __REALTIME_TIMESTAMP (usec) is required in each.

    All entries are of one boot, whose monotonic clock follows the realtime one: sd-journal
    orders entries of one boot across files by their monotonic timestamps, as journald's are."""
    out = []
    for e in entries:
        mono = int(e["__REALTIME_TIMESTAMP"]) - BOOT_AT_US
        fields = {"__MONOTONIC_TIMESTAMP": str(mono), "_BOOT_ID": BOOT}
        fields.update(e)
        for k, v in fields.items():
            assert "\n" not in str(v)
            out.append("%s=%s\n" % (k, v))
        out.append("\n")
    tmp = path + ".tmp.journal"
    r = subprocess.run([journal_remote(), "-o", tmp, "-"], input="".join(out).encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert r.returncode == 0, r.stdout
    # Complete files appear at once, as journald's rotation renames a finished file.
    os.rename(tmp, path)


def now_us():
    return time.time_ns() // 1000


def config(loki, d, port, job="sysjournal", journal_extra=""):
    return """server:
  http_listen_port: %(port)d
  grpc_listen_port: 0
positions:
  filename: %(pos)s
  sync_period: 200ms
clients:
  - url: %(url)s
    batchwait: 100ms
scrape_configs:
  - job_name: %(job)s
    journal:
      path: %(dir)s
      max_age: 1h
%(jextra)s      labels:
        job: systemd-journal
    relabel_configs:
      - source_labels: [__journal__systemd_unit]
        target_label: unit
      - source_labels: [__journal_priority_keyword]
        target_label: level
      - source_labels: [__journal_syslog_identifier]
        target_label: ident
""" % dict(port=port, pos=os.path.join(d, "positions.yaml"), url=loki.url, job=job,
           dir=os.path.join(d, "journal"), jextra=journal_extra)


def start(ctx, loki, d, **kw):
    os.makedirs(os.path.join(d, "journal"), exist_ok=True)
    port = free_port()
    a = Agent(ctx, config(loki, d, port, **kw)).start()
    a.port = port
    return a


def seq_entries(t0, n, first=0, unit="app.service"):
    return [{"__REALTIME_TIMESTAMP": t0 + i, "MESSAGE": "seq=%d" % (first + i),
             "_SYSTEMD_UNIT": unit, "PRIORITY": "6"} for i in range(n)]


def seqs(loki):
    return sorted(int(e["line"][4:]) for e in loki.entries() if e["line"].startswith("seq="))


def test_journal_labels_line_and_timestamp(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    t0 = now_us() - 5_000_000
    os.makedirs(os.path.join(d, "journal"))
    write_journal(os.path.join(d, "journal", "a.journal"), [
        {"__REALTIME_TIMESTAMP": t0 - 2 * 3600 * 1_000_000, "MESSAGE": "older than max_age",
         "_SYSTEMD_UNIT": "old.service"},
        {"__REALTIME_TIMESTAMP": t0, "MESSAGE": "disk <full>", "PRIORITY": "3",
         "_SYSTEMD_UNIT": "foo.service", "SYSLOG_IDENTIFIER": "foo"},
        {"__REALTIME_TIMESTAMP": t0 + 1, "CODE_LINE": "12", "PRIORITY": "6"},  # no MESSAGE
        {"__REALTIME_TIMESTAMP": t0 + 2, "MESSAGE": "started", "PRIORITY": "6",
         "_SYSTEMD_UNIT": "bar.service"},
    ])
    a = start(ctx, loki, d)
    wait_until(lambda: loki.count() >= 2, 20, interval=0.2, what="2 journal entries")
    time.sleep(0.5)
    got = sorted(loki.entries(), key=lambda e: e["ts"])
    assert [(e["labels"], e["line"], e["ts"]) for e in got] == [
        ('{ident="foo", job="systemd-journal", level="error", unit="foo.service"}',
         "disk <full>", t0 * 1000),
        ('{job="systemd-journal", level="info", unit="bar.service"}', "started",
         (t0 + 2) * 1000),
    ], got
    m = a.metrics(a.port)
    assert metric_value(m, "bpftail_journal_target_lines_total", job="sysjournal") == 2, m
    assert metric_value(m, "bpftail_journal_target_parsing_errors_total",
                        error="no_message") == 1, m
    assert a.stop() == 0
    with open(os.path.join(d, "positions.yaml")) as f:
        pos = f.read()
    assert '"journal-sysjournal": "s=' in pos, pos


def test_journal_json_lines(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    os.makedirs(os.path.join(d, "journal"))
    t0 = now_us()
    write_journal(os.path.join(d, "journal", "a.journal"),
                  [{"__REALTIME_TIMESTAMP": t0, "MESSAGE": "a \"b\"", "PRIORITY": "4"}])
    a2 = start(ctx, loki, d, journal_extra="      json: true\n")
    wait_until(lambda: loki.count() >= 1, 20, interval=0.2, what="a JSON journal entry")
    lines = {e["line"] for e in loki.entries()}
    want = ('{"MESSAGE":"a \\"b\\"","PRIORITY":"4","_BOOT_ID":"%s"}' % BOOT)
    assert want in lines, lines
    assert a2.stop() == 0


def test_journal_exactly_once_across_restart_and_rotation(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    jd = os.path.join(d, "journal")
    os.makedirs(jd)
    t0 = now_us() - 60_000_000
    write_journal(os.path.join(jd, "a.journal"), seq_entries(t0, 300))
    a = start(ctx, loki, d)
    wait_until(lambda: len(seqs(loki)) >= 300, 30, interval=0.2, what="300 entries")
    # Rotation while running: a second journal file appears in the directory.
    write_journal(os.path.join(jd, "b.journal"), seq_entries(t0 + 1000, 200, first=300))
    wait_until(lambda: len(seqs(loki)) >= 500, 30, interval=0.2,
               what="500 entries after the second journal file")
    assert a.stop() == 0
    # Restart in the middle: more entries written while bpftail is down.
    write_journal(os.path.join(jd, "c.journal"), seq_entries(t0 + 2000, 100, first=500))
    a = start(ctx, loki, d)
    wait_until(lambda: len(seqs(loki)) >= 600, 30, interval=0.2, what="600 entries")
    time.sleep(1.0)
    assert a.stop() == 0
    got = seqs(loki)
    assert got == list(range(600)), "lost %s" % sorted(set(range(600)) - set(got))
    # The test Loki drops exact duplicates silently: count what was pushed.
    assert loki.received() == 600, "pushed %d entries for 600" % loki.received()
    ctx.table.append(("journal restart + rotation", 600, len(got), loki.received() - 600,
                      600 - len(set(got))))


def test_journal_cursor_waits_for_loki_across_restart(ctx):
    """Entries read but refused by Loki (503, retried) when bpftail stops are not behind the
    saved cursor: the next run sends them, and nothing accepted is sent twice."""
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    jd = os.path.join(d, "journal")
    os.makedirs(jd)
    t0 = now_us() - 60_000_000
    write_journal(os.path.join(jd, "a.journal"), seq_entries(t0, 100))
    a = start(ctx, loki, d)
    wait_until(lambda: len(seqs(loki)) >= 100, 30, interval=0.2, what="100 entries")
    loki.set_default(503)
    refused = loki.stats().get("by_status", {}).get("503", 0)
    write_journal(os.path.join(jd, "b.journal"), seq_entries(t0 + 1000, 100, first=100))
    wait_until(lambda: loki.stats().get("by_status", {}).get("503", 0) > refused, 30,
               interval=0.2, what="the refused push of the second file")
    assert a.stop() == 0  # in the middle: 100 entries read, none accepted
    with open(os.path.join(d, "positions.yaml")) as f:
        pos = f.read()
    assert '"journal-sysjournal": "s=' in pos, pos
    loki.set_default(204)
    stored = loki.count()
    a = start(ctx, loki, d)
    wait_until(lambda: len(seqs(loki)) >= 200, 30, interval=0.2, what="200 entries")
    time.sleep(1.0)
    assert a.stop() == 0
    got = seqs(loki)
    assert got == list(range(200)), "lost %s" % sorted(set(range(200)) - set(got))
    assert stored == 100 and loki.count() == 200
    ctx.table.append(("journal restart with pushes refused", 200, len(got), 0,
                      200 - len(set(got))))


def test_journal_reload_resumes_at_the_cursor(ctx):
    """A config reload (SIGHUP) closes and reopens the journal: it resumes after the committed
    cursor, so nothing is pushed twice and nothing written meanwhile is lost."""
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    jd = os.path.join(d, "journal")
    os.makedirs(jd)
    t0 = now_us() - 60_000_000
    write_journal(os.path.join(jd, "a.journal"), seq_entries(t0, 100))
    a = start(ctx, loki, d)
    wait_until(lambda: len(seqs(loki)) >= 100, 30, interval=0.2, what="100 entries")
    a.p.send_signal(signal.SIGHUP)
    wait_until(lambda: "config reloaded" in a.log(), 20, interval=0.2, what="the reload")
    write_journal(os.path.join(jd, "b.journal"), seq_entries(t0 + 1000, 100, first=100))
    wait_until(lambda: len(seqs(loki)) >= 200, 30, interval=0.2, what="200 entries")
    time.sleep(1.0)
    assert a.stop() == 0
    assert seqs(loki) == list(range(200))
    assert loki.received() == 200, "pushed %d entries for 200" % loki.received()

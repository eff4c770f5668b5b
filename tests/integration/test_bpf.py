"""BPF through the real binary: the watcher in use, the fallback when BPF is refused or the
capabilities are missing, and file-integrity events reaching the test Loki server."""
import json
import re
import os
import subprocess
import time
import urllib.request

from lib import Agent, FakeLoki, SeqWriter, agent_config, free_port, seqs, wait_until


def targets(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/targets" % port, timeout=2) as r:
        return json.loads(r.read())


def up(a, port, settled=True):
    """/targets once it answers; with settled, once the background BPF load has ended (the
    watcher switched or stayed, FIM started or not)."""
    def ok():
        try:
            t = targets(port)
        except Exception:
            return None
        if settled and ("watcher_next" in t or t.get("fim") == "starting"):
            return None
        return t
    return wait_until(lambda: a.alive() and ok(), 30, what="bpftail /targets")


def events_only(ctx):
    """The test Loki, a directory, a port and a config tailing *.log there whose reconcile runs
    once a minute: within a test's time only file events can deliver lines."""
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    port = free_port()
    cfg = agent_config(loki.url, os.path.join(d, "*.log"), os.path.join(d, "pos.yaml"), port,
                       batchwait="100ms")
    return loki, d, port, cfg.replace("target_config:\n  sync_period: 1s",
                                      "target_config:\n  sync_period: 60s")


def run_and_ship(ctx, env=None, wrap=None):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    port = free_port()
    cfg = agent_config(loki.url, os.path.join(d, "*.log"), os.path.join(d, "pos.yaml"), port,
                       batchwait="100ms")
    a = Agent(ctx, cfg, env=env)
    if wrap:
        orig = ctx.bpftail
        script = os.path.join(a.dir, "wrap.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\nexec %s %s \"$@\"\n" % (wrap, orig))
        os.chmod(script, 0o755)
        ctx.bpftail = script
        a.start()
        ctx.bpftail = orig
    else:
        a.start()
    t = up(a, port)
    w = SeqWriter(os.path.join(d, "app.log"))
    w.write(2000)
    wait_until(lambda: len(set(seqs(loki.entries()))) >= 2000, 30, what="lines")
    assert sorted(seqs(loki.entries())) == list(range(2000))
    a.stop()
    return t, a.log()


def test_bpf_watcher_is_used_and_reported(ctx):
    t, log = run_and_ship(ctx)
    assert t["watcher"] == "bpf", "watcher in use: %s (BPF must load here as root)\n%s" % (
        t["watcher"], log[-2000:])


def test_fallback_when_bpf_loading_is_refused_by_option(ctx):
    t, log = run_and_ship(ctx, env={"BPFTAIL_BPF_REFUSE": "1"})
    assert t["watcher"] in ("fanotify", "inotify"), t["watcher"]
    assert log.count("bpf") >= 1 and "level=warn" in log, log[-2000:]


def test_fallback_without_bpf_capabilities(ctx):
    # root, but with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN out of the bounding set
    t, log = run_and_ship(ctx, wrap="setpriv --bounding-set=-bpf,-perfmon,-sys_admin")
    assert t["watcher"] in ("fanotify", "inotify"), t["watcher"]


def test_fim_events_reach_loki_with_process_fields(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    secret = os.path.join(d, "secret.conf")
    with open(secret, "w") as f:
        f.write("a=1\n")
    port = free_port()
    fim = """fim:
  host: test-host
  labels: {env: ci}
  rules:
    - paths: [%s]
      ops: [write, rename, unlink, truncate, chmod]
""" % secret
    cfg = agent_config(loki.url, os.path.join(d, "*.log"), os.path.join(d, "pos.yaml"), port,
                       batchwait="100ms", extra_top=fim)
    a = Agent(ctx, cfg).start()
    t = up(a, port)
    assert t.get("fim") == "bpf", t
    p = subprocess.run(["sh", "-c", "echo b=2 >> %s; chmod 600 %s" % (secret, secret)])
    assert p.returncode == 0
    wait_until(lambda: any('job="fim"' in e["labels"] for e in loki.entries()), 20,
               what="FIM entries")
    time.sleep(0.5)
    fims = [e for e in loki.entries() if 'job="fim"' in e["labels"]]
    ops = {e["labels"] for e in fims}
    assert any('op="write"' in l for l in ops) and any('op="chmod"' in l for l in ops), ops
    w = [e for e in fims if 'op="write"' in e["labels"]][0]
    assert 'host="test-host"' in w["labels"] and 'env="ci"' in w["labels"], w["labels"]
    for field in ("path=%s" % secret, "pid=", "uid=0", "comm=", "inode="):
        assert field in w["line"], (field, w["line"])
    assert a.stop() == 0


def test_metrics_report_watcher_and_per_file_lag_in_bytes_and_seconds(ctx):
    from lib import metric_value
    loki = FakeLoki(ctx)
    loki.set_default(503)
    d = ctx.tmpdir()
    port = free_port()
    cfg = agent_config(loki.url, os.path.join(d, "*.log"), os.path.join(d, "pos.yaml"), port,
                       batchwait="100ms", max_retries=0, min_backoff="100ms", max_backoff="200ms")
    a = Agent(ctx, cfg).start()
    up(a, port)
    m = a.metrics(port)
    assert metric_value(m, "bpftail_watcher_info", backend="bpf") == 1, \
        [l for l in m.splitlines() if "watcher" in l]
    path = os.path.join(d, "app.log")
    w = SeqWriter(path)
    w.write(100)
    wait_until(lambda: (metric_value(a.metrics(port), "bpftail_position_lag_seconds",
                                     path=path) or 0) >= 1.0, 20, what="lag seconds while down")
    assert (metric_value(a.metrics(port), "bpftail_position_lag_bytes", path=path) or 0) > 0
    loki.set_default(204)
    wait_until(lambda: metric_value(a.metrics(port), "bpftail_position_lag_seconds",
                                    path=path) == 0, 20, what="lag back to 0")
    assert metric_value(a.metrics(port), "bpftail_position_lag_bytes", path=path) == 0
    assert a.stop() == 0


def test_bpf_start_reads_at_once_and_switches_without_loss_or_duplicate(ctx):
    """Lines written before and while BPF loads are read by the interim watcher; after the
    switch, writes wake the tailer through BPF (the reconcile timer is 60 s, so only an event
    can deliver them in time), each line exactly once."""
    from lib import check_exactly_once, metric_value
    loki, d, port, cfg = events_only(ctx)
    w = SeqWriter(os.path.join(d, "app.log"))
    w.write(100)  # before the start
    a = Agent(ctx, cfg).start()
    t = up(a, port, settled=False)
    interim = t["watcher"]
    # While BPF loads: keep writing, in small bursts.
    while "watcher_next" in targets(port):
        w.write(10)
        time.sleep(0.01)
    t = up(a, port)
    assert t["watcher"] == "bpf", t
    log = a.log()
    if interim != "bpf":
        assert "until=bpf" in log and "previous=%s" % interim in log, log[-2000:]
        m = a.metrics(port)
        assert metric_value(m, "bpftail_watcher_info", backend="bpf") == 1
        assert metric_value(m, "bpftail_watcher_info", backend=interim) == 0
    before = w.n
    wait_until(lambda: len(set(seqs(loki.entries()))) >= before, 20, what="lines before switch")
    # After the switch: single lines, each must arrive through an event, well before 60 s.
    for _ in range(20):
        n = w.n
        t0 = time.monotonic()
        w.write(1)
        wait_until(lambda: n in set(seqs(loki.entries())), 5, interval=0.01,
                   what="line %d after the switch" % n)
        assert time.monotonic() - t0 < 5
    w.write(500)
    wait_until(lambda: len(set(seqs(loki.entries()))) >= w.n, 20, what="all lines")
    time.sleep(0.5)
    lost, dups = check_exactly_once(seqs(loki.entries()), w.n)
    assert not lost and dups == 0, (lost[:10], dups, interim, before)
    assert "capabilities dropped" in a.log(), a.log()[-2000:]
    assert a.stop() == 0


def test_fim_follows_the_inode_after_hard_link_and_rename(ctx):
    """A write through a hard link, a chmod, a rename and the unlink of the renamed file are
    four entries about the watched path, each naming the process and its full executable."""
    import sys
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    etc = os.path.join(d, "etc")
    os.mkdir(etc)
    secret = os.path.join(etc, "secret")
    with open(secret, "w") as f:
        f.write("a=1\n")
    port = free_port()
    fim = """fim:
  host: test-host
  rules:
    - paths: [%s]
""" % secret
    cfg = agent_config(loki.url, os.path.join(d, "*.log"), os.path.join(d, "pos.yaml"), port,
                       batchwait="100ms", extra_top=fim)
    a = Agent(ctx, cfg).start()
    t = up(a, port)
    assert t.get("fim") == "bpf", t
    link = os.path.join(d, "alias")
    moved = os.path.join(etc, "secret.moved")
    script = """
import os, sys, time
secret, link, moved = sys.argv[1:4]
os.link(secret, link)
with open(link, "a") as f:
    f.write("b=2\\n")
time.sleep(0.3)
os.chmod(secret, 0o600)
time.sleep(0.3)
os.rename(secret, moved)
time.sleep(0.5)
os.unlink(moved)
print(os.getpid(), flush=True)
time.sleep(2)
"""
    p = subprocess.run([sys.executable, "-c", script, secret, link, moved],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    pid = int(p.stdout.split()[0])
    exe = os.path.realpath(sys.executable)

    def fims():
        return [e for e in loki.entries() if 'job="fim"' in e["labels"]]
    wait_until(lambda: len(fims()) >= 4, 20, what="four FIM entries")
    time.sleep(0.5)
    got = {}
    for e in fims():
        for op in ("write", "chmod", "rename", "unlink"):
            if 'op="%s"' % op in e["labels"]:
                got.setdefault(op, []).append(e["line"])
    assert sorted(got) == ["chmod", "rename", "unlink", "write"], got
    assert all(len(v) == 1 for v in got.values()), got
    for op, (line,) in got.items():
        for field in ("path=%s " % secret, "pid=%d " % pid, "comm=python", "exe=%s " % exe):
            assert field in line + " ", (op, field, line)
    assert "via=alias" in got["write"][0], got["write"]
    assert "new_path=%s" % moved in got["rename"][0], got["rename"]
    assert "via=%s" % moved in got["unlink"][0], got["unlink"]
    assert a.stop() == 0


def test_fim_follows_a_new_hard_link_made_to_a_watched_file(ctx):
    """link(2) to a watched file is an entry with new_path, and what is later done by path
    under the new name (chmod, unlink) is reported under the watched path with via."""
    import sys
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    etc = os.path.join(d, "etc")
    os.mkdir(etc)
    secret = os.path.join(etc, "secret")
    with open(secret, "w") as f:
        f.write("a=1\n")
    port = free_port()
    fim = """fim:
  host: test-host
  rules:
    - paths: [%s]
""" % secret
    cfg = agent_config(loki.url, os.path.join(d, "*.log"), os.path.join(d, "pos.yaml"), port,
                       batchwait="100ms", extra_top=fim)
    a = Agent(ctx, cfg).start()
    t = up(a, port)
    assert t.get("fim") == "bpf", t
    alias = os.path.join(d, "alias")
    # The pauses let the agent see each record before the next call, as for a rename: the new
    # name is followed once the link's record has been read.
    script = """
import os, sys, time
secret, alias = sys.argv[1:3]
os.link(secret, alias)
time.sleep(0.5)
os.chmod(alias, 0o600)
time.sleep(0.3)
os.unlink(alias)
time.sleep(0.3)
os.unlink(secret)
print(os.getpid(), flush=True)
time.sleep(2)
"""
    p = subprocess.run([sys.executable, "-c", script, secret, alias],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    pid = int(p.stdout.split()[0])
    exe = os.path.realpath(sys.executable)

    def fims():
        return [e for e in loki.entries() if 'job="fim"' in e["labels"]]
    wait_until(lambda: len(fims()) >= 4, 20, what="four FIM entries")
    time.sleep(0.5)
    got = {}
    for e in fims():
        for op in ("link", "chmod", "unlink"):
            if 'op="%s"' % op in e["labels"]:
                got.setdefault(op, []).append(e["line"])
    assert sorted(got) == ["chmod", "link", "unlink"], got
    assert len(got["link"]) == 1 and len(got["chmod"]) == 1, got
    assert len(got["unlink"]) == 2, got
    for op, lines in got.items():
        for line in lines:
            for field in ("path=%s " % secret, "pid=%d " % pid, "comm=python", "exe=%s " % exe):
                assert field in line + " ", (op, field, line)
    assert "new_path=%s " % alias in got["link"][0] + " ", got["link"]
    assert "via=%s " % alias in got["chmod"][0] + " ", got["chmod"]
    via = [line for line in got["unlink"] if "via=%s " % alias in line + " "]
    plain = [line for line in got["unlink"] if "via=" not in line]
    assert len(via) == 1 and len(plain) == 1, got["unlink"]
    assert a.stop() == 0


def test_generations_rotated_on_before_their_create_event_is_handled_are_read(ctx):
    """A writer that rotates faster than bpftail handles events, as docker's json-file does at
    max-size under load: when a file's create event is handled, the watched name already holds
    a later file and this one is at name.1 or name.2, or deleted. Each generation still there
    is found by its inode and read whole under the watched name, exactly once; one deleted
    unread is counted in bpftail_files_missed_total. bpftail is stopped (SIGSTOP) while the
    writer rotates, so the events wait in the BPF ring and this happens every time."""
    import signal
    from lib import check_exactly_once, metric_value
    # A walk of *.log would not match app.log.1 anyway.
    loki, d, port, cfg = events_only(ctx)
    a = Agent(ctx, cfg).start()
    t = up(a, port)
    assert t["watcher"] == "bpf", t
    path = os.path.join(d, "app.log")
    w = SeqWriter(path)
    w.write(100)
    wait_until(lambda: len(set(seqs(loki.entries()))) >= 100, 20, what="the first 100 lines")

    def rotate():  # docker's json-file with max-file=3
        if os.path.exists(path + ".2"):
            os.unlink(path + ".2")
        if os.path.exists(path + ".1"):
            os.rename(path + ".1", path + ".2")
        os.rename(path, path + ".1")
        w.reopen()

    gens = []
    hold = None
    os.kill(a.p.pid, signal.SIGSTOP)
    try:
        for g in range(4):
            rotate()
            first = w.n
            w.write(1000)
            gens.append(range(first, w.n))
            if g == 0:
                # Keeps generation 1's inode number from being given to generation 4 once it is
                # deleted: with the same number, its create event looks like generation 4's and
                # nothing can tell that a file was missed.
                hold = open(path, "rb")
    finally:
        os.kill(a.p.pid, signal.SIGCONT)
    # Generation 1 was deleted by the fourth rotation, never opened; 0 (open), 2, 3 and 4 stay.
    missed = set(gens[0])
    want = w.n - len(missed)
    wait_until(lambda: len(set(seqs(loki.entries()))) >= want, 30, what="%d lines" % want)
    time.sleep(1.0)
    got = seqs(loki.entries())
    assert not missed & set(got)
    lost, dups = check_exactly_once([s for s in got] + sorted(missed), w.n)
    assert not lost and dups == 0, (lost[:10], dups)
    names = {re.search(r'filename="([^"]*)"', e["labels"]).group(1) for e in loki.entries()}
    assert names == {path}, names
    m = a.metrics(port)
    assert metric_value(m, "bpftail_files_missed_total") == 1, a.log()[-3000:]
    assert "reading a file that left its name before it was opened" in a.log()
    assert a.stop() == 0
    hold.close()

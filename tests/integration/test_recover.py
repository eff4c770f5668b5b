"""Rotation while bpftail is not watching: a file renamed out of the glob, or copied and
truncated, while the agent is stopped (SIGTERM) or dead (SIGKILL). The unread tail of the old
content must still arrive, once, under the original path's labels."""
import os
import random
import subprocess
import threading
import time

from lib import SeqWriter, FakeLoki, metric_value, seqs, wait_until
from test_delivery import make_agent, started, verify


def _first_part(loki, a, w, n=1000):
    w.write(n)
    wait_until(lambda: len(set(seqs(loki.entries()))) >= w.n, 30, interval=0.2,
               what="first part")
    time.sleep(1.5)  # let the positions file catch up with what Loki accepted


def _stopped_rotation(ctx, name, rotate, kill=False):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    a = started(make_agent(ctx, loki, d))
    path = os.path.join(d, "app.log")
    w = SeqWriter(path)
    _first_part(loki, a, w)
    if kill:
        a.kill()
    else:
        assert a.stop() == 0
    w.write(1000)  # written while bpftail is not watching, then rotated out of the glob
    rotate(path)
    w.reopen()
    w.write(1000)
    started(a)
    verify(ctx, loki, w.n, name)
    labels = {tuple(sorted(e["labels"].items())) if isinstance(e["labels"], dict) else e["labels"]
              for e in loki.entries()}
    assert len(labels) == 1, "one stream expected (the original path's labels): %r" % labels
    m = a.metrics(a.port)
    rec = metric_value(m, "bpftail_recovered_bytes_total") or 0
    assert rec >= 1000 * 81, "recovered bytes %r" % rec
    return a


def _rename(path):
    os.rename(path, path + ".1")


def _copytruncate(path):
    subprocess.check_call(["cp", path, path + ".1"])
    with open(path, "r+") as f:
        f.truncate(0)


def test_rename_out_of_glob_while_stopped(ctx):
    _stopped_rotation(ctx, "rename out of glob while stopped", _rename)


def test_copytruncate_while_stopped(ctx):
    _stopped_rotation(ctx, "copytruncate while stopped", _copytruncate)


def test_rename_out_of_glob_after_kill9(ctx):
    _stopped_rotation(ctx, "rename out of glob after kill -9", _rename, kill=True)


def test_copytruncate_after_kill9(ctx):
    _stopped_rotation(ctx, "copytruncate after kill -9", _copytruncate, kill=True)


def _kill_rounds(ctx, name, mode, rounds=20, seed=7):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    a = make_agent(ctx, loki, d, batchwait="100ms", batchsize=32 * 1024)
    path = os.path.join(d, "app.log")
    w = SeqWriter(path)
    rnd = random.Random(seed)
    stop = threading.Event()
    lock = threading.Lock()
    gen = [0]

    def writer():
        # ~6,000 lines/s: 60 lines every 10 ms.
        while not stop.is_set():
            with lock:
                w.write(60)
            time.sleep(0.01)

    def rotate():
        with lock:
            gen[0] += 1
            if mode == "rename":
                os.rename(path, "%s.%d" % (path, gen[0]))
                w.reopen()
            else:
                subprocess.check_call(["cp", path, "%s.%d" % (path, gen[0])])
                with open(path, "r+") as f:
                    f.truncate(0)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    # A file bpftail never saw cannot be found again: let it record the first one.
    started(a)
    wait_until(lambda: len(seqs(loki.entries())) > 0, 30, what="first lines")
    time.sleep(1.0)
    a.kill()
    for _ in range(rounds):
        # Up first: a file created and renamed away before bpftail ever scanned it is out of
        # anyone's reach (no record names it), which is not what this test measures.
        started(a)
        if rnd.random() < 0.5:
            # Rotated while it runs, killed at a random moment after (even mid-drain).
            time.sleep(rnd.uniform(0.3, 1.0))
            rotate()
            time.sleep(rnd.uniform(0.0, 0.5))
            a.kill()
        else:
            # Killed at a random moment, rotated while dead. It must have lived long enough
            # to record the current file (a file never seen is out of reach after a rename).
            time.sleep(rnd.uniform(0.8, 1.5))
            a.kill()
            rotate()
    stop.set()
    t.join()
    started(a)
    dups = verify(ctx, loki, w.n, name, allow_dups=w.n, timeout=120)
    ctx.table[-1] = (ctx.table[-1][0] + " (dups=at-least-once)",) + tuple(ctx.table[-1][1:])
    print("%s: %d lines, %d duplicates" % (name, w.n, dups))


def test_rename_rotation_kill9_20_rounds(ctx):
    _kill_rounds(ctx, "rename rotation, kill -9 x20", "rename")


def test_copytruncate_rotation_kill9_20_rounds(ctx):
    _kill_rounds(ctx, "copytruncate, kill -9 x20", "copytruncate")

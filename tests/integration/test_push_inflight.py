"""Several push requests in flight per client (clients[].max_in_flight): against a slow test
Loki, requests overlap, yet each stream's entries are stored in the order they were read,
nothing is lost, nothing is stored twice, a retried request is not overtaken on its stream,
and shutdown drains every request in flight. Assertions are on what the test Loki stored and
on the most requests it saw at once, never on timing."""
import os

from lib import (Agent, FakeLoki, SeqWriter, agent_config, check_exactly_once, free_port,
                 metric_value, wait_until)

import re


def _up(port):
    import urllib.request
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=1).read()
        return True
    except Exception:
        return False


def start_agent(ctx, loki, d, max_in_flight, **kw):
    port = free_port()
    extra = "    max_in_flight: %d" % max_in_flight
    if kw.get("extra_client"):
        extra += "\n" + kw.pop("extra_client")
    cfg = agent_config(loki.url, os.path.join(d, "*.log"), os.path.join(d, "positions.yaml"),
                       port, extra_client=extra, **kw)
    a = Agent(ctx, cfg)
    a.port = port
    a.start()
    wait_until(lambda: a.alive() and _up(a.port), 20, what="bpftail up")
    return a


def write_files(d, names, lines):
    ws = [SeqWriter(os.path.join(d, n + ".log")) for n in names]
    for w in ws:
        w.write(lines)
    return ws


def per_stream(entries):
    """{labels: [(ts, tag, seq), ...]} in the order the test Loki stored them."""
    out = {}
    for e in entries:
        m = re.match(r"seq=(\d+) tag=(\S+)", e["line"])
        if m:
            out.setdefault(e["labels"], []).append((int(e["ts"]), m.group(2), int(m.group(1))))
    return out


def check_streams(loki, ws):
    """Every line of every file stored once, each stream in read order."""
    streams = per_stream(loki.entries())
    assert len(streams) == len(ws), "streams: %s" % sorted(streams)
    for labels, got in streams.items():
        tags = {t for _, t, _ in got}
        assert len(tags) == 1, "one file per stream: %s %s" % (labels, tags)
        ts = [t for t, _, _ in got]
        sq = [s for _, _, s in got]
        assert all(a < b for a, b in zip(ts, ts[1:])), "%s: timestamps out of order" % labels
        assert all(a < b for a, b in zip(sq, sq[1:])), "%s: lines stored out of order" % labels
    for w in ws:
        tag = os.path.basename(w.path)
        got = [s for lst in streams.values() for _, t, s in lst if t == tag]
        lost, dups = check_exactly_once(got, w.n)
        assert not lost and not dups, "%s: lost %d (first %s), %d duplicates" % (
            tag, len(lost), lost[:5], dups)


def stored_all(loki, n):
    return lambda: loki.count() >= n


def test_requests_overlap_against_a_slow_loki_and_streams_keep_their_order(ctx):
    loki = FakeLoki(ctx, delay_ms=100)
    d = ctx.tmpdir()
    ws = write_files(d, ["f%d" % i for i in range(8)], 3000)
    start_agent(ctx, loki, d, 4, batchsize=32768)
    wait_until(stored_all(loki, 8 * 3000), 120, interval=0.5, what="24000 lines stored")
    st = loki.stats()
    assert st["max_concurrent"] > 1, "requests went one at a time: %s" % st
    assert st["max_concurrent"] <= 4, st
    assert st["duplicates"] == 0, st
    check_streams(loki, ws)


def test_one_in_flight_keeps_one_request_at_a_time(ctx):
    loki = FakeLoki(ctx, delay_ms=50)
    d = ctx.tmpdir()
    ws = write_files(d, ["f%d" % i for i in range(4)], 2000)
    start_agent(ctx, loki, d, 1, batchsize=32768)
    wait_until(stored_all(loki, 4 * 2000), 120, interval=0.5, what="8000 lines stored")
    assert loki.stats()["max_concurrent"] == 1
    check_streams(loki, ws)


def test_failing_requests_are_retried_without_reordering_their_streams(ctx):
    loki = FakeLoki(ctx, delay_ms=50)
    # Every third request fails at first: retries of several streams interleave with
    # requests of the others.
    loki.script(",".join(["500", "204", "204", "503", "204", "429", "204", "204"] * 4))
    d = ctx.tmpdir()
    ws = write_files(d, ["f%d" % i for i in range(6)], 2000)
    a = start_agent(ctx, loki, d, 4, batchsize=16384, min_backoff="100ms", max_backoff="400ms")
    wait_until(stored_all(loki, 6 * 2000), 120, interval=0.5, what="12000 lines stored")
    assert (metric_value(a.metrics(a.port), "bpftail_batch_retries_total") or 0) >= 8
    assert loki.stats()["max_concurrent"] > 1
    check_streams(loki, ws)


def test_shutdown_drains_every_request_in_flight(ctx):
    loki = FakeLoki(ctx, delay_ms=400)
    d = ctx.tmpdir()
    ws = write_files(d, ["f%d" % i for i in range(6)], 3000)
    # One read round turns the files into many small batches at once; give the drain the time
    # they take at 400 ms a request, four at a time.
    top = "bpftail:\n  shutdown_timeout: 60s\n"
    a = start_agent(ctx, loki, d, 4, batchsize=16384, extra_top=top)
    wait_until(lambda: loki.stats()["max_concurrent"] > 1, 60, what="requests in flight")
    assert a.stop(timeout=90) == 0
    log = a.log()
    assert "abandoned" not in log, log[-2000:]
    before = loki.count()
    # What was acknowledged is in the positions; a new run reads only the rest. Had a request
    # in flight been abandoned, its lines would be read again under new timestamps and stored
    # twice.
    start_agent(ctx, loki, d, 4, batchsize=16384, extra_top=top)
    wait_until(stored_all(loki, 6 * 3000), 120, interval=0.5, what="18000 lines stored")
    assert before > 0
    check_streams(loki, ws)

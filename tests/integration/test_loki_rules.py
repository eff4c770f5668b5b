"""What a real Loki stores, end to end: Loki drops an entry whose stream, timestamp and line
equal an earlier entry's (answering 204), so bpftail must give every entry of a stream its own
timestamp. The test Loki server applies the same rule, and these tests count what it STORED."""
import calendar
import json
import os
import time

from lib import Agent, FakeLoki, agent_config, free_port, wait_until

HEALTHZ = "GET /healthz 200 0.001"


def ship(ctx, loki, d, extra_scrape="", glob="*.log"):
    port = free_port()
    cfg = agent_config(loki.url, os.path.join(d, glob), os.path.join(d, "pos.yaml"), port,
                       batchwait="200ms", extra_scrape=extra_scrape)
    return Agent(ctx, cfg).start()


def settle(loki, want, what):
    """Waits until want entries were received and nothing more arrives; returns the stats."""
    wait_until(lambda: loki.received() >= want, 30, what=what)
    time.sleep(0.5)
    return loki.stats()


def assert_distinct_increasing(entries):
    ts = [e["ts"] for e in entries]
    assert len(set(ts)) == len(ts), "%d timestamps, %d distinct" % (len(ts), len(set(ts)))
    assert ts == sorted(ts), "timestamps not increasing in arrival order"


def test_5000_identical_lines_are_all_stored(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    # Written before the agent starts, so large reads give thousands of lines one read time.
    with open(os.path.join(d, "app.log"), "w") as f:
        f.write((HEALTHZ + "\n") * 5000)
    ship(ctx, loki, d)
    st = settle(loki, 5000, "5000 entries received")
    assert st["received_entries"] == 5000, st
    assert st["entries"] == 5000, "Loki would store %d of 5000 identical lines: %r" % (
        st["entries"], st)
    assert st["duplicates"] == 0, st
    got = loki.entries()
    assert len(got) == 5000 and all(e["line"] == HEALTHZ for e in got)
    assert_distinct_increasing(got)
    # Read time: close to now, not moved into the future by more than the 5,000 bumps.
    now = time.time_ns()
    assert now - 60 * 10**9 < got[0]["ts"] <= got[-1]["ts"] < now + 10**6, (got[0], got[-1], now)


def test_identical_lines_appended_while_running_are_all_stored(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    path = os.path.join(d, "app.log")
    open(path, "w").close()
    ship(ctx, loki, d)
    time.sleep(1)
    with open(path, "a") as f:
        for _ in range(10):
            f.write((HEALTHZ + "\n") * 500)
            f.flush()
            time.sleep(0.05)
    st = settle(loki, 5000, "5000 entries received")
    assert st["entries"] == 5000 and st["duplicates"] == 0, st
    assert_distinct_increasing(loki.entries())


TS_STAGES = """    pipeline_stages:
      - regex:
          expression: '^(?P<ts>\\S+) (?P<msg>.*)$'
      - timestamp:
          source: ts
          format: RFC3339Nano
      - output:
          source: msg
"""


def test_equal_timestamps_from_a_timestamp_stage_are_bumped_not_lost(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    stamp = "2026-03-04T05:06:07Z"
    t0 = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) * 10**9
    with open(os.path.join(d, "app.log"), "w") as f:
        f.write(("%s %s\n" % (stamp, HEALTHZ)) * 1000)
        # A later second, then an older one: kept as they are (within Loki's window).
        f.write("2026-03-04T05:06:08Z later\n")
        f.write("2026-03-04T05:06:06Z older\n")
    ship(ctx, loki, d, extra_scrape=TS_STAGES)
    st = settle(loki, 1002, "1002 entries received")
    assert st["entries"] == 1002 and st["duplicates"] == 0, st
    got = loki.entries()
    same = sorted(e["ts"] for e in got if e["line"] == HEALTHZ)
    assert same == list(range(t0, t0 + 1000)), (same[:3], same[-3:], t0)
    by_line = {e["line"]: e["ts"] for e in got}
    assert by_line["later"] == t0 + 10**9, by_line["later"]
    assert by_line["older"] == t0 - 10**9, "an older explicit timestamp must not move"


def test_equal_docker_times_in_one_stream_are_all_stored(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    t = "2026-03-04T05:06:07.123456789Z"
    rec = json.dumps({"log": HEALTHZ + "\n", "stream": "stdout", "time": t}) + "\n"
    with open(os.path.join(d, "c1-json.log"), "w") as f:
        f.write(rec * 800)
    ship(ctx, loki, d, extra_scrape="    pipeline_stages:\n      - docker: {}\n",
         glob="*-json.log")
    st = settle(loki, 800, "800 entries received")
    assert st["entries"] == 800 and st["duplicates"] == 0, st
    assert_distinct_increasing(loki.entries())

"""Pipeline stages end to end: a promtail-style chain runs in the real binary and what reaches
the test Loki server carries the labels, timestamps and lines the stages made."""
import calendar
import json
import os
import subprocess
import time

from lib import Agent, FakeLoki, agent_config, free_port, metric_value, wait_until

# The docker stage keeps Docker's trailing newline, as promtail does, and in Go's regexp `$` is
# the end of the text, not "before a final newline": hence the \n? before it.
STAGES = """    pipeline_stages:
      - docker: {}
      - regex:
          expression: '^(?P<ts>\\S+) (?P<level>[A-Z]+) (?P<component>\\w+): (?P<msg>.*)\\n?$'
      - labels:
          level:
          component:
      - timestamp:
          source: ts
          format: RFC3339Nano
      - match:
          selector: '{level="DEBUG"}'
          action: drop
          drop_counter_reason: debug_noise
      - drop:
          expression: 'healthcheck'
          drop_counter_reason: healthcheck
      - output:
          source: msg
"""


def docker_record(line, stream, t):
    return json.dumps({"log": line + "\n", "stream": stream, "time": t}) + "\n"


def test_docker_regex_labels_timestamp_match_drop_output_chain(ctx, fake_loki, agent):
    loki = fake_loki()
    d = ctx.tmpdir()
    port = free_port()
    cfg = agent_config(loki.url, os.path.join(d, "*-json.log"), os.path.join(d, "pos.yaml"), port,
                       job="containers", batchwait="100ms", extra_scrape=STAGES)
    a = agent(cfg)
    rows = []
    with open(os.path.join(d, "c1-json.log"), "w") as f:
        for i in range(300):
            level = ["INFO", "WARN", "DEBUG"][i % 3]
            msg = "healthcheck ok" if i % 10 == 0 else "request %d done" % i
            ts = "2026-11-29T06:15:%02d.%09dZ" % (i % 60, i)
            line = "%s %s api: %s" % (ts, level, msg)
            f.write(docker_record(line, "stderr" if i % 2 else "stdout",
                                  "2026-11-29T06:20:00.000000001Z"))
            rows.append((i, level, msg, ts))
    keep = [r for r in rows if r[1] != "DEBUG" and "healthcheck" not in r[2]]
    wait_until(lambda: loki.count() >= len(keep), 30, what="%d entries" % len(keep))
    time.sleep(0.5)
    got = loki.entries()
    assert len(got) == len(keep), (len(got), len(keep))
    by_line = {e["line"]: e for e in got}
    for i, level, msg, ts in keep:
        e = by_line.get(msg)
        assert e is not None, "missing %r" % msg
        lab = e["labels"]
        assert 'level="%s"' % level in lab and 'component="api"' in lab, lab
        assert 'stream="std' in lab and 'job="containers"' in lab, lab
        # timestamp from the line, not Docker's time or the read time
        want = (calendar.timegm((2026, 11, 29, 6, 15, i % 60)) * 10**9) + i
        assert e["ts"] == want, (e["ts"], want, ts)
    m = Agent.metrics(a, port)
    assert metric_value(m, "bpftail_dropped_entries_total", reason="debug_noise") == 100
    healthy_not_debug = len([r for r in rows if r[1] != "DEBUG" and "healthcheck" in r[2]])
    assert metric_value(m, "bpftail_dropped_entries_total",
                        reason="healthcheck") == healthy_not_debug
    assert a.stop() == 0


def test_dry_run_prints_entries_after_the_pipeline_and_pushes_nothing(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    with open(os.path.join(d, "app.log"), "w") as f:
        f.write("2026-11-29T06:15:00Z INFO api: hello world\n")
    cfg = agent_config(loki.url, os.path.join(d, "*.log"), os.path.join(d, "pos.yaml"), 0,
                       extra_scrape="""    pipeline_stages:
      - regex:
          expression: '^\\S+ (?P<level>[A-Z]+) '
      - labels:
          level:
""")
    path = os.path.join(d, "c.yaml")
    open(path, "w").write(cfg)
    p = subprocess.Popen([ctx.bpftail, "-config.file", path, "-dry-run"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
    finally:
        p.terminate()
        p.wait(10)
    assert 'level="INFO"' in line and "hello world" in line, line
    st = loki.stats()
    assert st["requests"] == 0 and st["received_entries"] == 0, "dry-run pushed: %r" % st
    assert not os.path.exists(os.path.join(d, "pos.yaml")), "dry-run wrote positions"


# promtail's pipelines documentation example, verbatim. Its regex is Go syntax: in [T\d-:.Z] the
# `-` after \d is a literal, which a PCRE engine refuses as an invalid range.
PROMTAIL_DOC_STAGES = r"""    pipeline_stages:
      - regex:
          expression: '.*level=(?P<level>[a-zA-Z]+).*ts=(?P<timestamp>[T\d-:.Z]*).*component=(?P<component>[a-zA-Z]+)'
      - labels:
          level:
          component:
          timestamp:
"""


def test_promtail_doc_regex_with_go_class_syntax_makes_labels(ctx, fake_loki, agent):
    loki = fake_loki()
    d = ctx.tmpdir()
    port = free_port()
    cfg = agent_config(loki.url, os.path.join(d, "*.log"), os.path.join(d, "pos.yaml"), port,
                       batchwait="100ms", extra_scrape=PROMTAIL_DOC_STAGES)
    a = agent(cfg)
    line = ("level=info ts=2019-12-03T20:02:23.125Z caller=main.go:112 component=ingester "
            "msg=\"starting\"")
    with open(os.path.join(d, "app.log"), "w") as f:
        f.write(line + "\n")
        f.write("no fields here\n")
    wait_until(lambda: loki.count() >= 2, 30, what="2 entries")
    got = {e["line"]: e["labels"] for e in loki.entries()}
    lab = got[line]
    assert 'level="info"' in lab and 'component="ingester"' in lab, lab
    assert 'timestamp="2019-12-03T20:02:23.125Z"' in lab, lab
    assert "level=" not in got["no fields here"], got["no fields here"]
    assert a.stop() == 0

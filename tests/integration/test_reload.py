"""SIGHUP and POST /reload: a target added by a reload is read, files tailed before and after it
continue at their committed offsets (nothing lost, nothing read twice), and a broken config is
rejected while the old one keeps running."""
import os
import signal
import threading
import time

from lib import (Agent, FakeLoki, SeqWriter, agent_config, check_exactly_once, free_port, http,
                 metric_value, seqs, wait_until)


SECOND_JOB = """  - job_name: second
    static_configs:
      - targets: [localhost]
        labels:
          job: second
          __path__: %s
"""


def _config(loki, d, port, second=False):
    extra = SECOND_JOB % os.path.join(d, "b*.log") if second else ""
    return agent_config(loki.url, os.path.join(d, "a*.log"), os.path.join(d, "positions.yaml"),
                        port, extra_scrape=extra)


def _metric(a, name):
    return metric_value(a.metrics(a.port), name) or 0


def _up(a):
    try:
        a.metrics(a.port)
        return a.alive()
    except Exception:
        return False


def _verify(ctx, loki, w, name, tag):
    wait_until(lambda: len(set(seqs(loki.entries(), tag))) >= w.n, 60, interval=0.5,
               what="%d lines of %s" % (w.n, tag))
    time.sleep(0.5)
    got = seqs(loki.entries(), tag)
    lost, dups = check_exactly_once(got, w.n)
    ctx.table.append((name, w.n, len(got), dups, len(lost)))
    assert not lost, "%s: lost %d lines (first %s)" % (name, len(lost), lost[:10])
    assert not dups, "%s: %d duplicates" % (name, dups)


def _write_config(a, text):
    tmp = a.config + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, a.config)


def test_sighup_adds_a_target_without_losing_or_repeating_lines(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    port = free_port()
    a = Agent(ctx, _config(loki, d, port))
    a.port = port
    wa = SeqWriter(os.path.join(d, "a.log"))
    wb = SeqWriter(os.path.join(d, "b.log"))
    wa.write(2000)
    wb.write(500)  # not tailed yet: read from the start once the reload adds its target
    a.start()
    wait_until(lambda: _up(a), 20, what="bpftail up")
    wait_until(lambda: len(set(seqs(loki.entries(), "a.log"))) >= 2000, 30, what="first lines")
    assert len(seqs(loki.entries(), "b.log")) == 0, "b.log read before its target existed"

    # Reload while a.log is being written: lines in flight must neither be lost nor re-sent.
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            wa.write(100)
            time.sleep(0.01)
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    time.sleep(0.3)
    _write_config(a, _config(loki, d, port, second=True))
    a.p.send_signal(signal.SIGHUP)
    wait_until(lambda: _up(a) and _metric(a, "bpftail_config_reload_success_total") >= 1, 20,
               what="reload applied")
    time.sleep(0.3)
    stop.set()
    t.join()
    wa.write(1000)
    wb.write(1000)
    _verify(ctx, loki, wa, "reload: old target", "a.log")
    _verify(ctx, loki, wb, "reload: added target", "b.log")
    b_entries = [e for e in loki.entries() if "tag=b.log" in e["line"]]
    assert b_entries and all('job="second"' in e["labels"] for e in b_entries), \
        "b.log lines carry job=second"

    # A broken config is rejected; the running one keeps going.
    _write_config(a, "scrape_configs: [\n  - job_name: x\n    bogus: {\n")
    a.p.send_signal(signal.SIGHUP)
    wait_until(lambda: _metric(a, "bpftail_config_reload_fail_total") >= 1, 20,
               what="reload rejected")
    assert a.alive()
    assert a.log().count("config reload rejected") == 1
    wa.write(500)
    wb.write(500)
    _verify(ctx, loki, wa, "broken reload: old target", "a.log")
    _verify(ctx, loki, wb, "broken reload: added target", "b.log")
    assert _metric(a, "bpftail_config_reload_success_total") == 1
    assert a.stop() == 0


def test_post_reload_applies_when_runtime_reload_is_enabled(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    port = free_port()
    enable = "\n  enable_runtime_reload: true"

    def cfg(second):
        return _config(loki, d, port, second).replace("grpc_listen_port: 0",
                                                      "grpc_listen_port: 0" + enable)
    a = Agent(ctx, cfg(False))
    a.port = port
    wa = SeqWriter(os.path.join(d, "a.log"))
    wb = SeqWriter(os.path.join(d, "b.log"))
    wa.write(300)
    wb.write(300)
    a.start()
    wait_until(lambda: _up(a), 20, what="bpftail up")
    wait_until(lambda: len(set(seqs(loki.entries(), "a.log"))) >= 300, 30, what="first lines")
    _write_config(a, cfg(True))
    st, body = http("POST", "http://127.0.0.1:%d/reload" % port)
    assert st == 200, (st, body)
    wa.write(300)
    _verify(ctx, loki, wa, "POST /reload: old target", "a.log")
    _verify(ctx, loki, wb, "POST /reload: added target", "b.log")
    _write_config(a, "clients: 7\n")
    st, body = http("POST", "http://127.0.0.1:%d/reload" % port)
    assert st == 500 and b"reload failed" in body, (st, body)
    assert a.alive()
    assert a.stop() == 0

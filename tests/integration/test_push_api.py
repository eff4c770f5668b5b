"""The `loki_push_api` scrape config end to end: bpftail as a relay between another bpftail (or
any Loki client) and the test Loki server. 100,000 lines through the relay exactly once; JSON,
gzip, the raw endpoint, structured metadata and the tenant; a gzip bomb refused; 429 once the
durable queue is full; and nothing answered 204 lost when the relay dies by SIGKILL."""
import gzip
import json
import os
import socket
import time
import zlib

import lib
from lib import Agent, FakeLoki, SeqWriter, free_port, http, metric_value, wait_until


def relay_config(loki, d, http_port, push_port, spool_max="256MiB", extra="", server_extra=""):
    return """server:
  http_listen_port: %(hp)d
  grpc_listen_port: 0
positions:
  filename: %(pos)s
clients:
  - url: %(url)s
    batchwait: 200ms
    batchsize: 1048576
    backoff_config:
      min_period: 50ms
      max_period: 300ms
      max_retries: 1000000
bpftail:
  spool_dir: %(spool)s
  spool_max_bytes: %(smax)s
scrape_configs:
  - job_name: pushed
    loki_push_api:
      server:
        http_listen_address: 127.0.0.1
        http_listen_port: %(pp)d
        grpc_listen_port: 0
%(sx)s      labels:
        relay: r1
      use_incoming_timestamp: true
%(extra)s    relabel_configs:
      - source_labels: [__tenant_id__]
        target_label: never_set
""" % dict(hp=http_port, pp=push_port, pos=os.path.join(d, "positions.yaml"), url=loki.url,
           spool=os.path.join(d, "spool"), smax=spool_max, extra=extra, sx=server_extra)


def push_json(port, streams, tenant=None, encoding=None, raw=False, body=None):
    if body is None:
        body = json.dumps({"streams": streams}).encode()
    if encoding == "gzip":
        body = gzip.compress(body)
    elif encoding == "deflate":
        body = zlib.compress(body)
    import urllib.request
    import urllib.error
    url = "http://127.0.0.1:%d/loki/api/v1/%s" % (port, "raw" if raw else "push")
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Content-Type", "text/plain" if raw else "application/json")
    if tenant:
        req.add_header("X-Scope-OrgID", tenant)
    if encoding:
        req.add_header("Content-Encoding", encoding)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(port):
    wait_until(lambda: _ready(port), 20, interval=0.1, what="push receiver /ready")


def _ready(port):
    try:
        st, body = http("GET", "http://127.0.0.1:%d/ready" % port, timeout=1)
        return st == 200
    except OSError:
        return False


def test_push_api_relays_100k_lines_exactly_once(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    hp, pp = free_port(), free_port()
    relay = Agent(ctx, relay_config(loki, d, hp, pp)).start()
    wait_ready(pp)
    src = os.path.join(d, "app.log")
    w = SeqWriter(src)
    w.write(100_000)
    shp = free_port()
    cfg = lib.agent_config("http://127.0.0.1:%d/loki/api/v1/push" % pp, src,
                           os.path.join(d, "sender-positions.yaml"), shp, job="app",
                           extra_client="    tenant_id: t1\n")
    sender = Agent(ctx, cfg).start()
    wait_until(lambda: loki.count() >= 100_000, 120, interval=0.5,
               what="100,000 lines through the relay")
    time.sleep(1.0)
    got = loki.entries()
    lost, dups = lib.check_exactly_once(lib.seqs(got), 100_000)
    assert not lost, "lost %d (first %s)" % (len(lost), lost[:5])
    assert loki.received() == 100_000, "pushed %d entries for 100,000" % loki.received()
    e = got[0]
    assert e["tenant"] == "t1", e
    assert e["labels"] == '{filename="%s", job="app", relay="r1"}' % src, e
    m = relay.metrics(hp)
    assert metric_value(m, "bpftail_push_target_entries_total", job="pushed") == 100_000, m
    ctx.table.append(("push relay 100k", 100_000, len(got), loki.received() - 100_000, len(lost)))
    assert sender.stop() == 0
    assert relay.stop() == 0


def test_push_api_json_gzip_raw_metadata_tenant_and_bomb(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    hp, pp = free_port(), free_port()
    relay = Agent(ctx, relay_config(loki, d, hp, pp,
                                    extra="      max_decompressed_bytes: 1MiB\n")).start()
    wait_ready(pp)
    t0 = (int(time.time()) - 60) * 1_000_000_000
    st, body = push_json(pp, [{"stream": {"app": "a", "__hidden": "x"},
                               "values": [[str(t0), "json one", {"trace_id": "abc"}],
                                          [str(t0 + 1), "json two"]]}], tenant="t2")
    assert st == 204, (st, body)
    st, body = push_json(pp, [{"stream": {"app": "gz"}, "values": [[str(t0), "gzipped"]]}],
                         encoding="gzip")
    assert st == 204, (st, body)
    st, body = push_json(pp, [{"stream": {"app": "zl"}, "values": [[str(t0), "deflated"]]}],
                         encoding="deflate")
    assert st == 204, (st, body)
    st, body = push_json(pp, None, raw=True, body=b"raw one\nraw two\n")
    assert st == 204, (st, body)
    bomb = b"{" + b" " * (64 << 20) + b"}"
    st, body = push_json(pp, None, body=bomb, encoding="gzip")
    assert st == 413, (st, body)
    st, body = push_json(pp, None, body=b"{not json")
    assert st == 400, (st, body)
    st, body = push_json(pp, [{"stream": {"0bad": "x"}, "values": [[str(t0), "x"]]}])
    assert st == 400, (st, body)
    wait_until(lambda: loki.count() >= 6, 20, interval=0.2, what="6 entries")
    time.sleep(0.5)
    got = {e["line"]: e for e in loki.entries()}
    assert set(got) == {"json one", "json two", "gzipped", "deflated", "raw one", "raw two"}, got
    assert got["json one"]["tenant"] == "t2"
    assert got["json one"]["labels"] == '{app="a", relay="r1"}'
    assert got["json one"]["ts"] == t0
    assert got["json one"]["meta"] == {"trace_id": "abc"}, got["json one"]
    assert got["json two"]["ts"] == t0 + 1
    assert got["gzipped"]["labels"] == '{app="gz", relay="r1"}'
    assert got["raw one"]["labels"] == '{relay="r1"}'
    assert got["raw one"]["tenant"] == ""
    m = relay.metrics(hp)
    assert metric_value(m, "bpftail_push_target_requests_total", status="413") == 1, m
    assert metric_value(m, "bpftail_push_target_requests_total", status="400") == 2, m
    st, body = http("GET", "http://127.0.0.1:%d/targets" % hp)
    assert json.loads(body)["receivers"] == [{
        "job": "pushed", "type": "loki_push_api", "port": pp, "connections": -1,
        "queue_bytes": json.loads(body)["receivers"][0]["queue_bytes"],
        "queue_committed": json.loads(body)["receivers"][0]["queue_end"],
        "queue_end": json.loads(body)["receivers"][0]["queue_end"]}], body
    assert relay.stop() == 0


def test_push_api_429_when_full_and_nothing_acknowledged_lost_on_sigkill(ctx):
    loki = FakeLoki(ctx)
    loki.set_default(503)
    d = ctx.tmpdir()
    hp, pp = free_port(), free_port()
    cfg = relay_config(loki, d, hp, pp, spool_max="1MiB")
    relay = Agent(ctx, cfg).start()
    wait_ready(pp)
    t0 = (int(time.time()) - 60) * 1_000_000_000
    acked = []
    refused = 0
    for i in range(2000):
        lines = ["seq=%d %s" % (i * 10 + k, "x" * 200) for k in range(10)]
        st, body = push_json(pp, [{"stream": {"app": "q"},
                                   "values": [[str(t0 + i * 10 + k), ln]
                                              for k, ln in enumerate(lines)]}])
        if st == 204:
            acked += range(i * 10, i * 10 + 10)
        elif st == 429:
            refused += 1
            if refused >= 3:
                break
        else:
            raise AssertionError((st, body))
    assert refused >= 3, "never refused after %d entries" % len(acked)
    assert 2000 < len(acked) < 10000, len(acked)
    relay.kill()  # SIGKILL
    loki.set_default(204)
    relay = Agent(ctx, cfg).start()
    wait_until(lambda: loki.count() >= len(acked), 60, interval=0.3,
               what="%d acknowledged entries after SIGKILL" % len(acked))
    time.sleep(1.0)
    got = [int(e["line"].split()[0][4:]) for e in loki.entries()]
    lost, dups = lib.check_exactly_once(got, len(acked))
    assert not lost, "lost %d of %d answered 204 (first %s)" % (len(lost), len(acked), lost[:5])
    assert loki.received() == len(got), (loki.received(), len(got))
    ctx.table.append(("push relay 429 + SIGKILL", len(acked), len(got), dups, len(lost)))
    assert relay.stop() == 0


def test_push_api_sender_retries_429_until_loki_returns(ctx):
    """Loki down: the relay's 1 MiB queue fills and it answers the sending bpftail 429; the
    sender keeps its batches and retries. Loki back: all 20,000 lines arrive exactly once."""
    loki = FakeLoki(ctx)
    loki.set_default(503)
    d = ctx.tmpdir()
    hp, pp = free_port(), free_port()
    relay = Agent(ctx, relay_config(loki, d, hp, pp, spool_max="1MiB")).start()
    wait_ready(pp)
    src = os.path.join(d, "app.log")
    w = SeqWriter(src, width=200)
    w.write(20_000)
    cfg = lib.agent_config("http://127.0.0.1:%d/loki/api/v1/push" % pp, src,
                           os.path.join(d, "sender-positions.yaml"), free_port(), job="app",
                           batchsize=65536, max_retries=1000000)
    sender = Agent(ctx, cfg).start()
    wait_until(lambda: (metric_value(relay.metrics(hp), "bpftail_push_target_requests_total",
                                     status="429") or 0) >= 3, 60, interval=0.3,
               what="the relay answering 429")
    accepted = metric_value(relay.metrics(hp), "bpftail_push_target_entries_total", job="pushed")
    assert 2000 < accepted < 20_000, accepted
    loki.set_default(204)
    wait_until(lambda: loki.count() >= 20_000, 120, interval=0.5, what="20,000 lines")
    time.sleep(1.0)
    got = loki.entries()
    lost, dups = lib.check_exactly_once(lib.seqs(got), 20_000)
    assert not lost, "lost %d (first %s)" % (len(lost), lost[:5])
    assert loki.received() == 20_000, loki.received()
    ctx.table.append(("push relay 429, sender retries", 20_000, len(got),
                      loki.received() - 20_000, len(lost)))
    assert sender.stop() == 0
    assert relay.stop() == 0


def test_push_api_relay_sigkilled_mid_stream_loses_nothing(ctx):
    """A second bpftail pushes 100,000 lines; the relay is killed with SIGKILL while they flow
    and started again on the same queue. Every line arrives: what the relay answered 204 for
    was in its queue, and what it did not answer the sender retries. Lines the relay had
    delivered but not yet committed to disk are pushed again; Loki keeps one of each."""
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    hp, pp = free_port(), free_port()
    cfg = relay_config(loki, d, hp, pp)
    relay = Agent(ctx, cfg).start()
    wait_ready(pp)
    src = os.path.join(d, "app.log")
    w = SeqWriter(src)
    w.write(100_000)
    cfg_s = lib.agent_config("http://127.0.0.1:%d/loki/api/v1/push" % pp, src,
                             os.path.join(d, "sender-positions.yaml"), free_port(), job="app",
                             batchsize=131072, max_retries=1000000)
    sender = Agent(ctx, cfg_s).start()
    wait_until(lambda: loki.count() >= 20_000, 60, interval=0.05, what="20,000 lines")
    relay.kill()
    at_kill = loki.count()
    time.sleep(1.0)  # the sender meets a closed port and retries
    relay = Agent(ctx, cfg).start()
    wait_until(lambda: loki.count() >= 100_000, 120, interval=0.5,
               what="100,000 lines after the relay's SIGKILL")
    time.sleep(1.0)
    got = loki.entries()
    lost, dups = lib.check_exactly_once(lib.seqs(got), 100_000)
    assert not lost, "lost %d (first %s)" % (len(lost), lost[:5])
    assert at_kill < 100_000, "the kill came too late to test anything"
    ctx.table.append(("push relay SIGKILL mid-stream", 100_000, len(got),
                      loki.received() - 100_000, len(lost)))
    assert sender.stop() == 0
    assert relay.stop() == 0


def _get_ready(sock):
    """One keep-alive GET /ready on sock; returns once the answer is read."""
    sock.sendall(b"GET /ready HTTP/1.1\r\nHost: t\r\n\r\n")
    got = b""
    while b"Ready" not in got:
        chunk = sock.recv(4096)
        assert chunk, "closed before answering: %r" % got
        got += chunk


def _closed_by_peer(sock, timeout):
    sock.settimeout(timeout)
    try:
        return sock.recv(10) == b""
    except ConnectionResetError:
        return True


def test_push_api_limits_counted_and_serving_after(ctx):
    """Every limit of the push receiver counts its hits: connections past max_connections are
    closed at once, bodies past max_request_bytes and bodies that inflate past
    max_decompressed_bytes get 413, and connections silent for server.http_server_idle_timeout
    are closed (never used, idle after a request, or stuck in a request's headers). Once the
    connections that filled the server close, it serves pushes again."""
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    hp, pp, ip = free_port(), free_port(), free_port()
    cfg = relay_config(loki, d, hp, pp,
                       extra=("      max_connections: 4\n      max_request_bytes: 64KiB\n"
                              "      max_decompressed_bytes: 1MiB\n"))
    cfg += """  - job_name: idle
    loki_push_api:
      server:
        http_listen_address: 127.0.0.1
        http_listen_port: %d
        http_server_idle_timeout: 1s
""" % ip
    relay = Agent(ctx, cfg).start()
    wait_ready(pp)

    def hits(job, limit):
        return metric_value(relay.metrics(hp), "bpftail_push_limit_hits_total", job=job,
                            limit=limit)

    assert hits("pushed", "connections") == 0
    conns = [socket.create_connection(("127.0.0.1", pp), timeout=10) for _ in range(4)]
    for c in conns:
        _get_ready(c)  # accepted and kept alive
    extra = socket.create_connection(("127.0.0.1", pp), timeout=10)
    assert _closed_by_peer(extra, 10), "a fifth connection was served past max_connections: 4"
    extra.close()
    assert hits("pushed", "connections") == 1
    for c in conns:
        c.close()
    t0 = (int(time.time()) - 60) * 1_000_000_000

    def pushed():
        try:
            return push_json(pp, [{"stream": {"app": "after"},
                                   "values": [[str(t0), "served again"]]}])[0] == 204
        except OSError:
            return False  # the closed connections not seen yet: refused again

    wait_until(pushed, 20, interval=0.2, what="a push once the connections closed")
    wait_until(lambda: loki.count() >= 1, 20, interval=0.2, what="the entry pushed after")
    assert loki.entries()[0]["line"] == "served again"

    st, _ = push_json(pp, None, body=b"{" + b" " * (100 << 10) + b"}")
    assert st == 413, st
    assert hits("pushed", "request_size") == 1
    st, _ = push_json(pp, None, body=b"{" + b" " * (2 << 20) + b"}", encoding="gzip")
    assert st == 413, st
    assert hits("pushed", "decompressed_size") == 1
    m = relay.metrics(hp)
    assert metric_value(m, "bpftail_push_target_requests_total", job="pushed", status="413") == 2

    wait_ready(ip)
    never = socket.create_connection(("127.0.0.1", ip), timeout=10)
    after = socket.create_connection(("127.0.0.1", ip), timeout=10)
    _get_ready(after)
    stuck = socket.create_connection(("127.0.0.1", ip), timeout=10)
    stuck.sendall(b"POST /loki/api/v1/push HTTP/1.1\r\nHost: t\r\n")
    for c in (never, after, stuck):
        assert _closed_by_peer(c, 30), "an idle connection was never closed"
        c.close()
    wait_until(lambda: hits("idle", "idle_timeout") == 3, 20, interval=0.2,
               what="three idle timeouts counted")
    assert hits("pushed", "idle_timeout") == 0
    assert relay.stop() == 0

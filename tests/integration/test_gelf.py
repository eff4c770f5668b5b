"""The `gelf` scrape config with hand-made datagrams: plain, gzip and zlib JSON; a chunked
message reassembled from chunks sent out of order (and duplicated); a chunked message that
never completes and one that grows past the size limit are dropped and counted; labels
(promtail's __gelf_* names through relabel_configs) and timestamps. Docker's own gelf driver
is in docker/test_docker_gelf.py."""
import gzip
import json
import os
import random
import socket
import time
import zlib

from lib import Agent, FakeLoki, free_port, metric_value, wait_until


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def gelf_config(loki, d, hp, port, extra=""):
    return """server:
  http_listen_port: %(hp)d
  grpc_listen_port: 0
positions:
  filename: %(pos)s
clients:
  - url: %(url)s
    batchwait: 100ms
bpftail:
  spool_dir: %(spool)s
scrape_configs:
  - job_name: gelf
    gelf:
      listen_address: 127.0.0.1:%(port)d
      use_incoming_timestamp: true
%(extra)s      labels:
        job: gelf
    relabel_configs:
      - source_labels: [__gelf_message_level]
        target_label: level
      - source_labels: [__gelf_message_host]
        target_label: host
      - source_labels: [__gelf_message_version]
        target_label: version
      - source_labels: [__gelf_message_facility]
        target_label: facility
""" % dict(hp=hp, port=port, pos=os.path.join(d, "positions.yaml"), url=loki.url,
           spool=os.path.join(d, "spool"), extra=extra)


def chunks(payload, size, msg_id):
    parts = [payload[i:i + size] for i in range(0, len(payload), size)]
    assert len(parts) <= 128
    return [b"\x1e\x0f" + msg_id + bytes([i, len(parts)]) + p for i, p in enumerate(parts)]


def test_gelf_plain_compressed_chunked_and_limits(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    hp, port = free_port(), free_udp_port()
    a = Agent(ctx, gelf_config(loki, d, hp, port,
                               extra="      max_message_bytes: 200KiB\n")).start()
    wait_until(lambda: a.log().find("gelf listening") >= 0, 20, interval=0.1,
               what="gelf listening")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dst = ("127.0.0.1", port)
    ts = time.time() - 60

    def msg(text, **kw):
        m = {"version": "1.1", "host": "h1", "short_message": text, "timestamp": ts,
             "level": 3}
        m.update(kw)
        return json.dumps(m).encode()

    s.sendto(msg("plain one", facility="app"), dst)
    s.sendto(gzip.compress(msg("gzipped one")), dst)
    s.sendto(zlib.compress(msg("zlib one", level=6)), dst)
    big = msg("chunked " + "x" * 40000, _extra="e")
    cs = chunks(gzip.compress(big, 0), 1400, b"ABCDEFGH")
    assert len(cs) > 20
    order = list(range(len(cs)))
    random.Random(1).shuffle(order)
    for i in order[:-1] + order[:3] + order[-1:]:  # out of order, with duplicates
        s.sendto(cs[i], dst)
    # never completes: one chunk of three
    s.sendto(chunks(msg("lost " + "y" * 3000), 1400, b"IJKLMNOP")[0], dst)
    # completes past the 200 KiB limit
    for c in chunks(msg("huge " + "z" * 250000), 8000, b"QRSTUVWX"):
        s.sendto(c, dst)
        time.sleep(0.0005)
    s.sendto(b"{not json", dst)
    wait_until(lambda: loki.count() >= 4, 20, interval=0.2, what="4 GELF messages")
    time.sleep(6.5)  # the incomplete one expires after 5 s
    got = {json.loads(e["line"])["short_message"][:7]: e for e in loki.entries()}
    assert set(got) == {"plain o", "gzipped", "zlib on", "chunked"}, set(got)
    want_ts = int(ts * 1e9)
    assert got["plain o"]["labels"] == ('{facility="app", host="h1", job="gelf", '
                                        'level="error", version="1.1"}'), got["plain o"]
    assert abs(got["plain o"]["ts"] - want_ts) < 1000, (got["plain o"]["ts"], want_ts)
    assert got["zlib on"]["labels"] == '{host="h1", job="gelf", level="informational", version="1.1"}'
    assert json.loads(got["chunked"]["line"]) == json.loads(big)
    m = a.metrics(hp)
    assert metric_value(m, "bpftail_gelf_target_entries_total", job="gelf") == 4, m
    assert metric_value(m, "bpftail_gelf_target_parsing_errors_total", job="gelf") == 1, m
    assert metric_value(m, "bpftail_dropped_entries_total", reason="gelf_incomplete") == 1, m
    assert metric_value(m, "bpftail_dropped_entries_total", reason="gelf_too_large") == 1, m
    hits = {lim: metric_value(m, "bpftail_gelf_limit_hits_total", job="gelf", limit=lim)
            for lim in ("message_size", "decompressed_size", "pending", "reassembly_timeout")}
    assert hits == {"message_size": 1, "decompressed_size": 0, "pending": 0,
                    "reassembly_timeout": 1}, hits
    assert a.stop() == 0


def test_gelf_every_limit_counted(ctx):
    """Each limit of the GELF receiver counts its hits beside the drops: a datagram past
    max_message_bytes, a compressed one that inflates past it (a gzip bomb), a chunked message
    pushed out past max_pending, and chunked messages whose chunks stop coming (5 s)."""
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    hp, port = free_port(), free_udp_port()
    a = Agent(ctx, gelf_config(loki, d, hp, port,
                               extra="      max_message_bytes: 10KiB\n      max_pending: 2\n"
                               )).start()
    wait_until(lambda: a.log().find("gelf listening") >= 0, 20, interval=0.1,
               what="gelf listening")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dst = ("127.0.0.1", port)

    def msg(text):
        return json.dumps({"version": "1.1", "host": "h1", "short_message": text}).encode()

    s.sendto(msg("x" * 20000), dst)
    bomb = gzip.compress(msg("y" * 200000))
    assert len(bomb) < 10 << 10
    s.sendto(bomb, dst)
    for ident in (b"AAAAAAAA", b"BBBBBBBB", b"CCCCCCCC"):
        s.sendto(chunks(msg("z" * 3000), 1400, ident)[0], dst)
    s.sendto(msg("fits"), dst)
    wait_until(lambda: loki.count() >= 1, 20, interval=0.2, what="the message that fits")

    def hits(lim):
        return metric_value(a.metrics(hp), "bpftail_gelf_limit_hits_total", job="gelf",
                            limit=lim)

    wait_until(lambda: hits("reassembly_timeout") == 2, 30, interval=0.2,
               what="the two pending messages expired")
    assert hits("message_size") == 1
    assert hits("decompressed_size") == 1
    assert hits("pending") == 1
    m = a.metrics(hp)
    assert metric_value(m, "bpftail_dropped_entries_total", reason="gelf_too_large") == 2, m
    assert metric_value(m, "bpftail_dropped_entries_total", reason="gelf_incomplete") == 3, m
    assert [json.loads(e["line"])["short_message"] for e in loki.entries()] == ["fits"]
    assert a.stop() == 0


def test_gelf_unusual_json_read_as_jansson_reads_it(ctx):
    """Common messages are read without jansson; every other shape goes to jansson, so both
    take and refuse the same payloads: escapes and non-ASCII in labels, nested fields, a level
    that is not an integer, and the errors (a number as short_message, trailing bytes, a
    leading zero, an overflowing exponent, an array, invalid UTF-8)."""
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    hp, port = free_port(), free_udp_port()
    a = Agent(ctx, gelf_config(loki, d, hp, port)).start()
    wait_until(lambda: a.log().find("gelf listening") >= 0, 20, interval=0.1,
               what="gelf listening")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    good = [
        rb'{"short_message":"esc \"q\" \\ ok","host":"h\u00e9"}',
        b'{"short_message":"nested","_x":{"a":[1,2.5e3]},"host":"n"}',
        b' {"short_message" : "lvl", "level":"3", "_t":true, "_f":false, "_n":null}\n',
        b'{"short_message":"real","level":5,"timestamp":-1.25,"host":"r\\tt"}',
        '{"short_message":"\u00e9 raw","host":"h\u00e9","level":6}'.encode(),
        b'{"short_message":"dup","host":"first","host":"second","level":7}',
    ]
    bad = [b'{"short_message":1}', b'{"short_message":"x"} x', b'{"short_message":"x","n":01}',
           b'{"short_message":"x","n":1e999}', b'[{"short_message":"x"}]',
           b'{"short_message":"\xff"}', b'{"short_message":"x",}', b'{"host":"no message"}']
    for p in good + bad:
        s.sendto(p, ("127.0.0.1", port))
    wait_until(lambda: loki.count() >= len(good), 20, interval=0.2, what="the good messages")
    wait_until(lambda: metric_value(a.metrics(hp), "bpftail_gelf_target_parsing_errors_total",
                                    job="gelf") == len(bad), 20, interval=0.2,
               what="every bad message counted")
    time.sleep(0.5)
    got = {json.loads(e["line"])["short_message"]: e["labels"] for e in loki.entries()}
    assert got == {
        'esc "q" \\ ok': '{host="h\u00e9", job="gelf", level="alert"}',
        "nested": '{host="n", job="gelf", level="alert"}',
        "lvl": '{job="gelf", level="alert"}',
        "real": '{host="r\\tt", job="gelf", level="notice"}',  # a tab, quoted as Go quotes
        "\u00e9 raw": '{host="h\u00e9", job="gelf", level="informational"}',
        "dup": '{host="second", job="gelf", level="debug"}',
    }, got
    assert a.stop() == 0

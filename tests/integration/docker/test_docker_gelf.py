"""Docker's own `gelf` log driver on the test dockerd (docker_logs_engine.py) sending to
bpftail's `gelf` receiver: 10,000 lines and a 40 KiB line of random letters (Docker cuts it
into 16 KiB messages, which the driver gzips and sends in chunks), every message exactly once,
with __gelf_message_host relabelled and the driver's _container_name field in the line."""
import json
import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import docker_logs_engine as dockerd  # noqa: E402
import lib  # noqa: E402
from lib import Agent, FakeLoki, free_port, metric_value, wait_until  # noqa: E402

N = 10000


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def test_docker_gelf_driver_every_line_once(ctx):
    eng = dockerd.engine()
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    hp, port = free_port(), free_udp_port()
    cfg = """server:
  http_listen_port: %d
  grpc_listen_port: 0
positions:
  filename: %s
clients:
  - url: %s
    batchwait: 200ms
bpftail:
  spool_dir: %s
scrape_configs:
  - job_name: dgelf
    gelf:
      listen_address: 127.0.0.1:%d
      use_incoming_timestamp: true
      labels:
        job: dgelf
    relabel_configs:
      - source_labels: [__gelf_message_host]
        target_label: host
""" % (hp, os.path.join(d, "positions.yaml"), loki.url, os.path.join(d, "spool"), port)
    a = Agent(ctx, cfg).start()
    wait_until(lambda: "gelf listening" in a.log(), 20, interval=0.1, what="gelf listening")
    # Docker closes a gelf logger's socket as the container exits, even with lines still
    # queued in the daemon ("use of closed network connection" in its log): the container
    # stays up a few seconds after its output so the driver can send everything.
    script = ("awk 'BEGIN{for(i=0;i<%d;i++) print \"gelf seq=\" i}'; "
              "echo before-long; awk 'BEGIN{srand(7); for(i=0;i<40000;i++) "
              "printf \"%%c\", 97+int(rand()*26); print \"\"}'; echo after-long; "
              "sleep 5" % N)
    name = "gelfsrc"
    eng.docker("rm", "-f", name, check=False)
    out = eng.docker("run", "--network", "none", "--name", name, "--log-driver", "gelf",
                     "--log-opt", "gelf-address=udp://127.0.0.1:%d" % port, "-d", dockerd.IMAGE,
                     "sh", "-c", script).stdout.strip()
    cid = out.splitlines()[-1]
    try:
        assert eng.wait(cid) == 0
        wait_until(lambda: loki.count() >= N + 5, 120, interval=0.5,
                   what="%d GELF lines from Docker" % (N + 5))
        import time
        time.sleep(1.0)
        got = loki.entries()
        msgs = [json.loads(e["line"]) for e in got]
        seqs = [int(m["short_message"].split("=")[1]) for m in msgs
                if m["short_message"].startswith("gelf seq=")]
        lost, dups = lib.check_exactly_once(seqs, N)
        longs = [m["short_message"] for m in msgs if len(m["short_message"]) > 1000]
        ctx.table.append(("docker gelf driver", N + 5, len(got), dups, len(lost)))
        assert not lost, "lost %d (first %s)" % (len(lost), lost[:5])
        assert dups == 0 and loki.received() == len(got), (dups, loki.received(), len(got))
        # Docker cuts a line at 16 KiB and its gelf driver sends the pieces as messages of
        # their own; random letters compress poorly, so each piece goes out in chunks
        assert [len(x) for x in longs] == [16384, 16384, 7232], [len(x) for x in longs]
        assert all(c.islower() for c in "".join(longs))
        assert msgs[0]["_container_name"] == name, msgs[0]
        host = socket.gethostname()
        assert got[0]["labels"] == '{host="%s", job="dgelf"}' % host, got[0]
        m = a.metrics(hp)
        assert metric_value(m, "bpftail_gelf_target_entries_total", job="dgelf") == N + 5, m
        assert metric_value(m, "bpftail_gelf_target_chunked_messages_total", job="dgelf") >= 3, m
    finally:
        eng.rm(cid)
    assert a.stop() == 0

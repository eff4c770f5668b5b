"""bpftail -docker-plugin against Docker's logging-plugin protocol, without dockerd.

The test plays dockerd: it makes the FIFO (os.mkfifo), holds it open read-write as dockerd
does, POSTs Capabilities/StartLogging/StopLogging over the plugin's unix socket, writes frames
([u32 BE length][protobuf LogEntry], encoded here by hand) and closes its end after
StopLogging. What arrives is checked in the test Loki server, which stores what Loki stores.
"""
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

import lib

CID = "4f6e7d8c9b0a11223344556677889900aabbccddeeff00112233445566778899"


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, wire, payload):
    key = varint((num << 3) | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + varint(payload)


def frame(line, source="stdout", ts=None, partial=None):
    """One FIFO frame; partial = (id, ordinal, last) for a chunk of a long line."""
    if isinstance(line, str):
        line = line.encode()
    msg = field(1, 2, source.encode()) + field(2, 0, ts or time.time_ns())
    if line:
        msg += field(3, 2, line)
    if partial:
        pid, ordinal, last = partial
        meta = (field(1, 0, 1) if last else b"") + field(2, 2, pid.encode()) + field(3, 0, ordinal)
        msg += field(4, 0, 1) + field(5, 2, meta)
    return struct.pack(">I", len(msg)) + msg


class Plugin:
    def __init__(self, ctx, state=None, spool_max=None):
        self.ctx = ctx
        self.dir = ctx.tmpdir()
        self.sock = os.path.join(self.dir, "bpftail.sock")
        self.state = state or os.path.join(self.dir, "state")
        self.port = lib.free_port()
        self.spool_max = spool_max
        self.log_path = os.path.join(self.dir, "plugin.log")
        self.p = None
        ctx.cleanups.append(self.kill)

    def start(self):
        args = [self.ctx.bpftail, "-docker-plugin", "-plugin.socket", self.sock,
                "-plugin.state-dir", self.state, "-plugin.metrics-addr", "127.0.0.1:%d" % self.port]
        if self.spool_max:
            args += ["-plugin.spool-max", str(self.spool_max)]
        logf = open(self.log_path, "ab")
        self.p = subprocess.Popen(args, stdout=logf, stderr=logf)
        logf.close()
        lib.wait_until(lambda: self.post("LogDriver.Capabilities", b"", check=False) is not None,
                       10, what="the plugin's socket")
        return self

    def post(self, method, body, check=True):
        """(status, reply JSON, seconds) or None when nothing answers."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        t = time.monotonic()
        try:
            c = UnixHTTP(self.sock)
            c.request("POST", "/" + method, body=body,
                      headers={"Accept": "application/vnd.docker.plugins.v1.2+json"})
            r = c.getresponse()
            data = r.read()
            c.close()
        except OSError:
            if check:
                raise
            return None
        return r.status, json.loads(data), time.monotonic() - t

    def start_logging(self, fifo, config, cid=CID, name="/web-1", labels=None, env=None,
                      raw=None):
        body = raw or {"File": fifo, "Info": {
            "Config": config, "ContainerID": cid, "ContainerName": name,
            "ContainerEntrypoint": "sh", "ContainerArgs": ["-c", "echo hi"],
            "ContainerImageID": "sha256:0123456789abcdef0123", "ContainerImageName": "bb:latest",
            "ContainerCreated": "2026-11-29T06:14:58.408231772Z", "ContainerEnv": env or [],
            "ContainerLabels": labels or {}, "LogPath": "", "DaemonName": "docker"}}
        return self.post("LogDriver.StartLogging", body)

    def stop_logging(self, fifo):
        return self.post("LogDriver.StopLogging", {"File": fifo})

    def metrics(self):
        st, body = lib.http("GET", "http://127.0.0.1:%d/metrics" % self.port)
        assert st == 200, st
        return body.decode()

    def metric(self, name, **labels):
        return lib.metric_value(self.metrics(), name, **labels)

    def stop(self, timeout=30):
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            self.p.wait(timeout)
        return self.p.returncode

    def kill(self):
        if self.p and self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


class Fifo:
    """The FIFO as dockerd holds it: created, opened read-write, written with blocking writes."""

    def __init__(self, ctx, name="fifo"):
        self.path = os.path.join(ctx.tmpdir(), name)
        os.mkfifo(self.path, 0o600)
        self.fd = os.open(self.path, os.O_RDWR)
        self.max_write = 0.0
        ctx.cleanups.append(self.close)

    def write(self, data):
        t = time.monotonic()
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.max_write = max(self.max_write, time.monotonic() - t)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def loki_config(loki, **extra):
    cfg = {"loki-url": loki.url, "loki-batch-wait": "100ms", "loki-min-backoff": "50ms",
           "loki-max-backoff": "300ms", "loki-retries": "0"}
    cfg.update(extra)
    return cfg


def seq_lines(tag, start, n, width=60):
    out = []
    for i in range(start, start + n):
        s = "seq=%08d tag=%s " % (i, tag)
        out.append(s + "x" * max(0, width - len(s)))
    return out


def write_lines(fifo, lines, source="stdout", per_write=200):
    for i in range(0, len(lines), per_write):
        fifo.write(b"".join(frame(ln, source) for ln in lines[i:i + per_write]))


def stored_seqs(loki, tag):
    return lib.seqs(loki.entries(), tag)


def wait_state_gone(plugin, timeout=20):
    lib.wait_until(lambda: not any(d.startswith("c-") for d in os.listdir(plugin.state)), timeout,
                   what="the container's state directory to go")


def test_plugin_lines_labels_partials(ctx, fake_loki):
    loki = fake_loki()
    pl = Plugin(ctx).start()
    st, rep, _ = pl.post("LogDriver.Capabilities", b"")
    assert st == 200 and rep["Cap"] == {"ReadLogs": False}, rep
    st, rep, _ = pl.post("Plugin.Activate", b"")
    assert rep == {"Implements": ["LogDriver"]}, rep
    fifo = Fifo(ctx)
    labels = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web",
              "team": "a<b&c>"}
    # Docker's JSON escapes <, > and & as \u003c, \u0026, \u003e.
    body = json.dumps({"File": fifo.path, "Info": {
        "Config": loki_config(loki, **{"labels": "team", "env": "APP_ENV", "mode": "non-blocking",
                                       "max-buffer-size": "4m", "foo": "bar"}),
        "ContainerID": CID, "ContainerName": "/web-1", "ContainerImageName": "bb:latest",
        "ContainerImageID": "sha256:0123456789abcdef", "ContainerEnv": ["APP_ENV=prod", "X=1"],
        "ContainerLabels": labels, "DaemonName": "docker"}})
    body = body.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    assert "\\u003c" in body
    st, rep, secs = pl.post("LogDriver.StartLogging", body.encode())
    assert st == 200 and rep.get("Err", "") == "", rep
    out = seq_lines("out", 0, 3000)
    err = seq_lines("err", 0, 700)
    write_lines(fifo, out[:1500])
    write_lines(fifo, err, source="stderr")
    fifo.write(frame("") + frame("   \t ") + frame("tty line\r"))
    write_lines(fifo, out[1500:])
    # A 40 KiB line in 16 KiB chunks, then output that ends without a newline.
    long = ("L" * 40000).encode()
    ts = time.time_ns()
    fifo.write(frame(long[:16384], ts=ts, partial=("p1", 1, False)) +
               frame(long[16384:32768], ts=ts, partial=("p1", 2, False)) +
               frame(long[32768:], ts=ts, partial=("p1", 3, True)) +
               frame("no-newline-at-end", partial=("p2", 1, False)))
    st, rep, secs = pl.stop_logging(fifo.path)
    assert st == 200 and rep.get("Err", "") == "" and secs < 0.1, (rep, secs)
    fifo.close()  # dockerd closes its end after StopLogging returns
    total = 3000 + 700 + 3
    lib.wait_until(lambda: loki.count() >= total, 30, what="every line in Loki")
    time.sleep(0.5)
    entries = loki.entries()
    assert len(entries) == total, len(entries)
    lost, dups = lib.check_exactly_once(lib.seqs(entries, "out"), 3000)
    assert not lost and not dups, (lost[:5], dups)
    lost, dups = lib.check_exactly_once(lib.seqs(entries, "err"), 700)
    assert not lost and not dups, (lost[:5], dups)
    by_line = {e["line"]: e for e in entries}
    assert "tty line" in by_line, "one trailing \\r is cut"
    assert by_line.get("L" * 40000) is not None, "the 40 KiB line arrives joined"
    assert "no-newline-at-end" in by_line
    lab = by_line[out[0]]["labels"]
    for want in ['container_name="web-1"', 'source="stdout"', 'compose_project="shop"',
                 'compose_service="web"', 'team="a<b&c>"', 'APP_ENV="prod"',
                 'container_id="%s"' % CID, 'image="bb:latest"',
                 'filename="/var/log/docker/%s/json.log"' % CID,
                 'host="%s"' % socket.gethostname()]:
        assert want in lab, (want, lab)
    assert 'source="stderr"' in by_line[err[0]]["labels"]
    m = pl.metrics()
    assert lib.metric_value(m, "bpftail_dropped_entries_total", reason="empty_line") == 2, m
    wait_state_gone(pl)
    assert "unknown log-opt ignored" in pl.log() and "key=foo" in pl.log()
    assert pl.stop() == 0


def test_plugin_refuses_unknown_loki_option(ctx, fake_loki):
    loki = fake_loki()
    pl = Plugin(ctx).start()
    fifo = Fifo(ctx)
    st, rep, _ = pl.start_logging(fifo.path, loki_config(loki, **{"loki-batchsize": "10"}))
    assert st == 200 and "loki-batchsize" in rep["Err"], rep
    st, rep, _ = pl.start_logging(fifo.path, loki_config(loki, **{"loki-batch-wait": "soon"}))
    assert "loki-batch-wait" in rep["Err"], rep
    st, rep, _ = pl.start_logging(fifo.path, {"loki-batch-wait": "1s"})
    assert "loki-url" in rep["Err"], rep
    st, rep, _ = pl.start_logging(fifo.path, loki_config(
        loki, **{"loki-external-labels": "job=a,bad-name=x"}))
    assert "bad-name" in rep["Err"], rep
    # Docker's own options and unknown non-loki keys are accepted.
    st, rep, _ = pl.start_logging(fifo.path, loki_config(
        loki, **{"mode": "non-blocking", "cache-disabled": "false", "tag": "{{.Name}}",
                 "compress": "true", "max-size": "10m", "max-file": "3", "no-file": "true",
                 "keep-file": "false"}))
    assert rep.get("Err", "") == "", rep
    st, rep, _ = pl.start_logging(fifo.path, loki_config(loki))
    assert "already" in rep["Err"], rep
    assert pl.stop_logging(fifo.path)[1].get("Err", "") == ""
    fifo.close()
    wait_state_gone(pl)
    assert pl.stop() == 0


def test_plugin_loki_down_never_blocks_writer(ctx, fake_loki):
    loki = fake_loki()
    loki.set_default(503)
    pl = Plugin(ctx).start()
    fifo = Fifo(ctx)
    st, rep, secs = pl.start_logging(fifo.path, loki_config(loki))
    assert rep.get("Err", "") == "" and secs < 0.1, (rep, secs)
    n = 100000
    lines = seq_lines("down", 0, n)
    write_lines(fifo, lines, per_write=500)
    assert fifo.max_write < 1.0, fifo.max_write
    lib.wait_until(lambda: (pl.metric("bpftail_plugin_fifo_lines_total") or 0) >= n, 30,
                   what="the plugin to read every line while Loki is down")
    st, rep, secs = pl.stop_logging(fifo.path)
    assert rep.get("Err", "") == "" and secs < 0.1, (rep, secs)
    fifo.close()
    assert loki.count() == 0
    loki.set_default(204)
    lib.wait_until(lambda: loki.count() >= n, 60, what="every line after Loki came back")
    time.sleep(0.5)
    lost, dups = lib.check_exactly_once(stored_seqs(loki, "down"), n)
    assert not lost and not dups, (len(lost), dups)
    ctx.table.append(["plugin: loki down, 100k lines", n, loki.count(), dups, len(lost)])
    wait_state_gone(pl)
    assert pl.stop() == 0


def test_plugin_sigkill_reattaches(ctx, fake_loki):
    loki = fake_loki()
    pl = Plugin(ctx).start()
    state = pl.state
    fifo = Fifo(ctx)
    assert pl.start_logging(fifo.path, loki_config(loki))[1].get("Err", "") == ""
    lines = seq_lines("kill", 0, 30000)
    write_lines(fifo, lines[:15000])
    time.sleep(0.3)
    pl.p.kill()
    pl.p.wait()
    # dockerd keeps writing; the pipe buffer (64 KiB) takes what fits until the plugin is back.
    writer = threading.Thread(target=write_lines, args=(fifo, lines[15000:]))
    writer.start()
    time.sleep(0.5)
    pl2 = Plugin(ctx, state=state).start()
    writer.join(30)
    assert not writer.is_alive(), "the writer stayed blocked after the restart"
    assert pl2.stop_logging(fifo.path)[1].get("Err", "") == ""
    fifo.close()
    lib.wait_until(lambda: loki.count() >= 30000, 30, what="every line after the restart")
    time.sleep(0.5)
    lost, dups = lib.check_exactly_once(stored_seqs(loki, "kill"), 30000)
    assert not lost and not dups, (lost[:5], dups)
    st = loki.stats()
    ctx.table.append(["plugin: SIGKILL + re-attach", 30000, loki.count(), st.get("duplicates", 0),
                      len(lost)])
    assert "taken up again" in pl2.log()
    wait_state_gone(pl2)
    assert pl2.stop() == 0


@pytest.mark.parametrize("bound", ["global", "container"])
def test_plugin_spool_bound_counts_drops(ctx, fake_loki, bound):
    loki = fake_loki()
    loki.set_default(503)
    # The bound of all spools (BPFTAIL_SPOOL_MAX), or the container's own (max-size x max-file).
    pl = Plugin(ctx, spool_max=256 * 1024 if bound == "global" else None).start()
    fifo = Fifo(ctx)
    # Small batches: what waits in memory for Loki (two sealed batches and an open one) stays
    # small next to what the spool has to drop.
    cfg = loki_config(loki, **{"loki-batch-size": "16384"})
    if bound == "container":
        cfg.update({"max-size": "64k", "max-file": "4"})
    assert pl.start_logging(fifo.path, cfg)[1].get("Err", "") == ""
    n = 40000  # about 3 MiB spooled: far past the bound
    write_lines(fifo, seq_lines("bound", 0, n))
    lib.wait_until(lambda: (pl.metric("bpftail_plugin_fifo_lines_total") or 0) >= n, 30,
                   what="the plugin to read every line")
    assert pl.stop_logging(fifo.path)[1].get("Err", "") == ""
    fifo.close()
    dropped = pl.metric("bpftail_dropped_entries_total", reason="spool_full")
    assert dropped and dropped > n / 2, dropped
    loki.set_default(204)
    lib.wait_until(lambda: loki.count() + dropped >= n, 30, what="the rest of the lines")
    wait_state_gone(pl)
    got = stored_seqs(loki, "bound")
    assert len(got) == len(set(got))
    assert len(got) + dropped == n, (len(got), dropped)
    assert n - 1 in got, "the newest lines are kept"
    assert pl.metric("bpftail_dropped_entries_total", reason="spool_full") == dropped
    assert pl.stop() == 0


def test_plugin_start_stop_fast_with_loki_down(ctx, fake_loki):
    loki = fake_loki()
    loki.script("hang")
    loki.set_default(503)
    pl = Plugin(ctx).start()
    times = []
    for i in range(5):
        fifo = Fifo(ctx, "f%d" % i)
        st, rep, secs = pl.start_logging(fifo.path, loki_config(loki), cid=CID[:-1] + str(i))
        assert rep.get("Err", "") == "", rep
        times.append(secs)
        write_lines(fifo, seq_lines("fast%d" % i, 0, 2000))
        st, rep, secs = pl.stop_logging(fifo.path)
        times.append(secs)
        fifo.close()
    assert max(times) < 0.1, times
    assert pl.stop() == 0


def test_plugin_pipeline_stages_and_one_client_for_equal_options(ctx, fake_loki):
    loki = fake_loki()
    pl = Plugin(ctx).start()
    stages = "- drop:\n    expression: drop-me\n- static_labels:\n    stage: applied\n"
    fifos = []
    for i in range(3):
        fifo = Fifo(ctx, "c%d" % i)
        cfg = loki_config(loki)
        if i == 0:
            cfg["loki-pipeline-stages"] = stages
        st, rep, _ = pl.start_logging(fifo.path, cfg, cid=CID[:-1] + str(i), name="/app-%d" % i)
        assert rep.get("Err", "") == "", rep
        fifos.append(fifo)
    for i, fifo in enumerate(fifos):
        lines = seq_lines("app%d" % i, 0, 1000)
        lines[10] = "drop-me please"
        write_lines(fifo, lines)
        pl.stop_logging(fifo.path)
        fifo.close()
    lib.wait_until(lambda: loki.count() >= 2999, 30, what="the lines of three containers")
    wait_state_gone(pl)
    entries = loki.entries()
    assert len(entries) == 2999, len(entries)
    assert not any(e["line"] == "drop-me please" and 'container_name="app-0"' in e["labels"]
                   for e in entries), "the pipeline of app-0 dropped it"
    for e in entries:
        if 'container_name="app-0"' in e["labels"]:
            assert 'stage="applied"' in e["labels"], e
        else:
            assert 'stage=' not in e["labels"], e
    assert pl.log().count("push client started") == 1, "equal client options share one client"
    assert pl.stop() == 0


def test_plugin_answers_a_request_shaped_like_dockerds(ctx):
    """dockerd's Go client sends an empty Host header, no Content-Type, Accept v1.2."""
    pl = Plugin(ctx).start()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(pl.sock)
    s.sendall(b"POST /LogDriver.Capabilities HTTP/1.1\r\nHost: \r\n"
              b"User-Agent: Go-http-client/1.1\r\nContent-Length: 0\r\n"
              b"Accept: application/vnd.docker.plugins.v1.2+json\r\n"
              b"Accept-Encoding: gzip\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"Content-Type: application/vnd.docker.plugins.v1.1+json" in head, head
    assert json.loads(body) == {"Cap": {"ReadLogs": False}, "Err": ""}
    st, rep, _ = pl.post("LogDriver.ReadLogs", {"Info": {}, "Config": {}})
    assert "cache" in rep["Err"], rep
    st, rep, _ = pl.post("LogDriver.Nothing", b"{}")
    assert st == 404 and rep["Err"], rep
    assert pl.stop() == 0


def test_plugin_restart_drains_the_spool_of_a_container_gone_meanwhile(ctx, fake_loki):
    loki = fake_loki()
    loki.set_default(503)
    pl = Plugin(ctx).start()
    fifo = Fifo(ctx)
    assert pl.start_logging(fifo.path, loki_config(loki))[1].get("Err", "") == ""
    write_lines(fifo, seq_lines("gone", 0, 5000))
    lib.wait_until(lambda: (pl.metric("bpftail_plugin_fifo_lines_total") or 0) >= 5000, 20,
                   what="the lines in the spool")
    pl.p.kill()
    pl.p.wait()
    # The container stopped while the plugin was dead: dockerd closed and removed the FIFO.
    fifo.close()
    os.unlink(fifo.path)
    loki.set_default(204)
    pl2 = Plugin(ctx, state=pl.state).start()
    lib.wait_until(lambda: loki.count() >= 5000, 30, what="the spooled lines")
    wait_state_gone(pl2)
    lost, dups = lib.check_exactly_once(stored_seqs(loki, "gone"), 5000)
    assert not lost and not dups, (lost[:5], dups)
    assert "FIFO is gone" in pl2.log()
    assert pl2.stop() == 0

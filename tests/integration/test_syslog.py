"""The `syslog` scrape config end to end: util-linux `logger` sends RFC 5424 and RFC 3164 over
TCP (newline and octet-counted framing) and UDP; every message arrives once with promtail's
__syslog_* labels (through relabel_configs) and the right timestamp. Then the durable queue: with
Loki refusing pushes, a TCP sender is held back once the queue is full (and UDP drops are
counted), bpftail killed with SIGKILL loses nothing it queued, and everything arrives once Loki
answers again. Limits (connections, message length, idle timeout) are counted."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import lib
from lib import Agent, FakeLoki, free_port, metric_value, wait_until

RELABEL = """    relabel_configs:
      - source_labels: [__syslog_message_hostname]
        target_label: host
      - source_labels: [__syslog_message_app_name]
        target_label: app
      - source_labels: [__syslog_message_severity]
        target_label: severity
      - source_labels: [__syslog_message_facility]
        target_label: facility
      - source_labels: [__syslog_message_msg_id]
        target_label: msgid
      - source_labels: [__syslog_message_proc_id]
        target_label: pid
      - source_labels: [__syslog_connection_ip_address]
        target_label: ip
      - source_labels: [__syslog_message_sd_test_1_k]
        target_label: sd_k
"""


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def job(name, port, proto, fmt, extra=""):
    return """  - job_name: %(name)s
    syslog:
      listen_address: 127.0.0.1:%(port)d
      listen_protocol: %(proto)s
      syslog_format: %(fmt)s
      label_structured_data: true
      use_incoming_timestamp: true
%(extra)s      labels:
        job: %(name)s
%(relabel)s""" % dict(name=name, port=port, proto=proto, fmt=fmt, extra=extra, relabel=RELABEL)


def config(loki, d, http_port, jobs, spool_max="64MiB", extra_client=""):
    return """server:
  http_listen_port: %(hp)d
  grpc_listen_port: 0
positions:
  filename: %(pos)s
clients:
  - url: %(url)s
    batchwait: 100ms
    backoff_config:
      min_period: 50ms
      max_period: 300ms
      max_retries: 1000000
%(extra_client)s
bpftail:
  spool_dir: %(spool)s
  spool_max_bytes: %(smax)s
scrape_configs:
%(jobs)s""" % dict(hp=http_port, pos=os.path.join(d, "positions.yaml"), url=loki.url,
                   spool=os.path.join(d, "spool"), smax=spool_max, jobs="".join(jobs),
                   extra_client=extra_client)


def logger(port, proto, fmt, msg, tag="app", extra=()):
    if not shutil.which("logger"):
        raise lib.Skip("util-linux logger is not installed")
    args = ["logger", "-n", "127.0.0.1", "-P", str(port), "-t", tag, "--id=4242",
            "-p", "local3.warning", "--" + fmt] + list(extra)
    args.append("-T" if proto == "tcp" else "-d")
    r = subprocess.run(args + [msg], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
    assert r.returncode == 0, r.stdout


def seqs_syslog(loki):
    return [int(e["line"].split()[0][4:]) for e in loki.entries() if e["line"].startswith("seq=")]


def wait_port(port, proto):
    def ok():
        if proto == "udp":
            return True
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            return False
    wait_until(ok, 20, interval=0.1, what="syslog port %d" % port)


def test_syslog_logger_rfc5424_and_rfc3164_tcp_udp(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    hp = free_port()
    ports = {"t5424": free_port(), "u5424": free_udp_port(), "t3164": free_port(),
             "u3164": free_udp_port()}
    jobs = [job("t5424", ports["t5424"], "tcp", "rfc5424"),
            job("u5424", ports["u5424"], "udp", "rfc5424"),
            job("t3164", ports["t3164"], "tcp", "rfc3164"),
            job("u3164", ports["u3164"], "udp", "rfc3164")]
    a = Agent(ctx, config(loki, d, hp, jobs)).start()
    for name, p in ports.items():
        wait_port(p, "tcp" if name[0] == "t" else "udp")
    host = socket.gethostname()
    t_before = time.time_ns()
    n = 0
    for name, p in ports.items():
        proto = "tcp" if name[0] == "t" else "udp"
        fmt = "rfc5424" if name.endswith("5424") else "rfc3164"
        for i in range(20):
            extra = []
            if fmt == "rfc5424":
                extra = ["--sd-id", "test@1", "--sd-param", 'k="v%d"' % i, "--msgid", "M%d" % i]
            if proto == "tcp" and fmt == "rfc5424" and i % 2:
                extra.append("--octet-count")
            logger(p, proto, fmt, "%s seq=%d hello world" % (name, i), extra=extra)
            n += 1
    t_after = time.time_ns()
    wait_until(lambda: loki.count() >= n, 30, interval=0.2, what="%d syslog messages" % n)
    time.sleep(0.5)
    got = loki.entries()
    assert len(got) == n, [e["line"] for e in got]
    lines = {e["line"]: e for e in got}
    for name in ports:
        fmt = "rfc5424" if name.endswith("5424") else "rfc3164"
        for i in range(20):
            e = lines.get("%s seq=%d hello world" % (name, i))
            assert e, "missing %s seq=%d" % (name, i)
            want = {"job": name, "host": host, "app": "app", "pid": "4242",
                    "severity": "warning", "facility": "local3", "ip": "127.0.0.1"}
            if fmt == "rfc5424":
                want.update(msgid="M%d" % i, sd_k="v%d" % i)
            want_s = "{" + ", ".join('%s="%s"' % kv for kv in sorted(want.items())) + "}"
            assert e["labels"] == want_s, (e["labels"], want_s)
            # logger stamps each message itself (RFC 5424 to the microsecond, RFC 3164 to
            # the second), use_incoming_timestamp takes that stamp; the batcher adds 1 ns to
            # each equal stamp in a stream (docs/timestamps.md)
            lo = t_before - (1_000_000_000 if fmt == "rfc3164" else 0)
            assert lo <= e["ts"] <= t_after, (name, i, e["ts"], t_before, t_after)
            if fmt == "rfc3164":
                assert e["ts"] % 1_000_000_000 < 20, e["ts"]
            else:
                assert e["ts"] % 1000 < 20, e["ts"]
    m = a.metrics(hp)
    assert metric_value(m, "bpftail_syslog_target_entries_total") == n, m
    st, body = lib.http("GET", "http://127.0.0.1:%d/targets" % hp)
    recv = {r["job"]: r for r in json.loads(body)["receivers"]}
    assert sorted(recv) == sorted(ports), recv
    for name, p in ports.items():
        assert recv[name]["type"] == "syslog" and recv[name]["port"] == p, recv[name]
        assert recv[name]["queue_end"] > 0, recv[name]
    assert a.stop() == 0


def test_syslog_exact_timestamps_structured_data_and_framing(ctx):
    """Hand-made messages with known stamps, several per TCP segment, split across writes."""
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    hp, p5, p3 = free_port(), free_port(), free_port()
    jobs = [job("a", p5, "tcp", "rfc5424"), job("b", p3, "tcp", "rfc3164"),
            job("c", free_port(), "tcp", "rfc5424", extra="      use_rfc5424_message: true\n")]
    a = Agent(ctx, config(loki, d, hp, jobs)).start()
    wait_port(p5, "tcp")
    wait_port(p3, "tcp")
    ts = int(time.time()) - 600
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
    m1 = '<165>1 %s.123456Z h1 ap1 77 ID1 [test@1 k="a \\"q\\" \\]"] first' % stamp
    m2 = "<13>1 %s+02:00 h1 ap1 - - - second\r" % stamp
    m3 = "<13>1 %s.5Z h1 ap1 - - - \xef\xbb\xbfthird" % stamp
    framed = ("%d %s" % (len(m1.encode()), m1)).encode() + (m2 + "\n").encode() + \
        ("%d %s" % (len(m3.encode("latin-1")), m3)).encode("latin-1")
    s = socket.create_connection(("127.0.0.1", p5))
    for i in range(0, len(framed), 7):  # split anywhere, even inside the octet count
        s.sendall(framed[i:i + 7])
        time.sleep(0.005)
    s.close()
    bsd = time.strftime("%b %e %H:%M:%S", time.gmtime(ts))
    s = socket.create_connection(("127.0.0.1", p3))
    s.sendall(("<38>%s h3 sshd[9]: bsd one\n<38>%s h3 cron: bsd two\n" % (bsd, bsd)).encode())
    s.close()
    wait_until(lambda: loki.count() >= 5, 30, interval=0.2, what="5 messages")
    got = {e["line"]: e for e in loki.entries()}
    e = got['first']
    assert e["ts"] == ts * 1_000_000_000 + 123456000, e
    assert e["labels"] == ('{app="ap1", facility="local4", host="h1", ip="127.0.0.1", job="a", '
                           'msgid="ID1", pid="77", sd_k="a \\"q\\" ]", severity="notice"}'), e
    assert got["second"]["ts"] == (ts - 7200) * 1_000_000_000, got["second"]
    assert got["third"]["ts"] == ts * 1_000_000_000 + 500_000_000
    assert got["bsd one"]["ts"] == ts * 1_000_000_000
    assert got["bsd one"]["labels"] == ('{app="sshd", facility="auth", host="h3", '
                                        'ip="127.0.0.1", job="b", pid="9", severity="informational"}')
    assert got["bsd two"]["labels"] == ('{app="cron", facility="auth", host="h3", '
                                        'ip="127.0.0.1", job="b", severity="informational"}')
    assert a.stop() == 0


def test_syslog_limits_counted(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    hp, p, pu = free_port(), free_port(), free_udp_port()
    extra = ("      max_message_length: 100\n      max_connections: 2\n"
             "      idle_timeout: 500ms\n")
    a = Agent(ctx, config(loki, d, hp, [
        job("lim", p, "tcp", "rfc5424", extra=extra),
        job("limu", pu, "udp", "rfc5424", extra="      max_message_length: 100\n")])).start()
    wait_port(p, "tcp")
    wait_until(lambda: a.log().count("syslog listening") >= 2, 20, interval=0.1,
               what="both syslog jobs listening")
    time.sleep(0.7)  # wait_port's probe connection is idle-closed
    c1 = socket.create_connection(("127.0.0.1", p))
    c2 = socket.create_connection(("127.0.0.1", p))
    time.sleep(0.1)
    c3 = socket.create_connection(("127.0.0.1", p))
    c3.settimeout(5)
    assert c3.recv(10) == b""  # closed at once: third connection
    long = "<13>1 - h a - - - " + "x" * 200
    c1.sendall((long + "\n<13>1 - h a - - - short one\n").encode())
    c1.sendall(("300 " + "y" * 300 + "<13>1 - h a - - - short two\n").encode())
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(long.encode(), ("127.0.0.1", pu))
    u.sendto(b"<13>1 - h a - - - short udp", ("127.0.0.1", pu))
    u.close()
    wait_until(lambda: loki.count() >= 3, 20, interval=0.1, what="the three short messages")
    assert sorted(e["line"] for e in loki.entries()) == ["short one", "short two", "short udp"]
    time.sleep(1.5)  # both idle past 500ms: closed by bpftail
    c2.settimeout(5)
    assert c2.recv(10) == b""
    m = a.metrics(hp)
    def hits(j, lim):
        return metric_value(m, "bpftail_syslog_limit_hits_total", job=j, limit=lim)
    assert hits("lim", "connections") == 1, m
    assert hits("lim", "message_length") == 2, m
    assert hits("lim", "idle_timeout") >= 2, m
    assert hits("limu", "message_length") == 1, m  # a datagram past the limit
    assert a.stop() == 0


def test_syslog_queue_full_holds_tcp_sender_and_survives_sigkill(ctx):
    """Loki refuses everything: the queue (1 MiB) fills, then the TCP sender is held back and
    UDP messages are dropped and counted. bpftail is killed with SIGKILL and restarted; once
    Loki accepts, every TCP message arrives exactly once."""
    loki = FakeLoki(ctx)
    loki.set_default(503)
    d = ctx.tmpdir()
    hp, pt, pu = free_port(), free_port(), free_udp_port()
    jobs = [job("tq", pt, "tcp", "rfc5424"), job("uq", pu, "udp", "rfc5424")]
    cfg = config(loki, d, hp, jobs, spool_max="1MiB")
    a = Agent(ctx, cfg).start()
    wait_port(pt, "tcp")
    s = socket.create_connection(("127.0.0.1", pt))
    s.setblocking(False)
    pad = "p" * 400
    sent = 0
    blocked_at = None
    deadline = time.time() + 60
    pending = b""
    while time.time() < deadline:
        if not pending:
            pending = ("<13>1 - h app - - - seq=%d %s\n" % (sent, pad)).encode()
        try:
            k = s.send(pending)
            pending = pending[k:]
            if not pending:
                sent += 1
            blocked_at = None
        except BlockingIOError:
            if blocked_at is None:
                blocked_at = time.time()
            elif time.time() - blocked_at > 2.0:
                break  # held back for 2 s: backpressure
            time.sleep(0.05)
    assert blocked_at is not None, "sender never held back after %d messages" % sent
    # ~1 MiB of queue holds ~2,000 of these; the socket buffers hold some more
    assert 1000 < sent < 20000, sent
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(6000):  # the UDP job's own queue fills too: later datagrams are dropped
        u.sendto(("<13>1 - h app - - - udp=%d %s\n" % (i, pad)).encode(), ("127.0.0.1", pu))
        if i % 100 == 0:
            time.sleep(0.01)
    wait_until(lambda: (metric_value(a.metrics(hp), "bpftail_dropped_entries_total",
                                     reason="relay_full") or 0) >= 1, 10, interval=0.2,
               what="UDP drops counted")
    m = a.metrics(hp)
    assert metric_value(m, "bpftail_relay_full_total", job="tq") >= 1, m
    queued = metric_value(m, "bpftail_syslog_target_entries_total", job="tq")
    a.kill()  # SIGKILL: what was queued must survive
    s.close()  # what the sender still had buffered is lost with the connection (never acked)
    received_before = loki.received()
    loki.set_default(204)
    a = Agent(ctx, cfg).start()
    wait_until(lambda: len(seqs_syslog(loki)) >= queued, 60, interval=0.3,
               what="%d queued messages after SIGKILL" % queued)
    time.sleep(1.0)
    got = seqs_syslog(loki)
    lost, dups = lib.check_exactly_once(got, int(queued))
    assert not lost, "lost %d of %d (first %s)" % (len(lost), queued, lost[:5])
    assert dups == 0, dups
    # the UDP job's queued datagrams arrive too; nothing at all is pushed twice
    assert loki.received() - received_before == loki.count(), (loki.received(), loki.count())
    ctx.table.append(("syslog queue full + SIGKILL", int(queued), len(got), dups, len(lost)))
    assert a.stop() == 0


def rsyslogd():
    p = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    if not os.access(p, os.X_OK):
        raise lib.Skip("rsyslog is not installed (scripts/deps.sh test installs it)")
    return p


def test_syslog_rsyslog_forwarder_octet_counted_rfc5424(ctx):
    """rsyslog, run by the test with a private config, takes 2,000 lines from logger on its
    own unix socket and forwards them with omfwd over TCP, octet-counted, in RFC 5424
    (RSYSLOG_SyslogProtocol23Format): every line arrives once with the sender's tag, rsyslog's
    host name and the priority logger gave, stamped with the second logger wrote it."""
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    hp, p = free_port(), free_port()
    a = Agent(ctx, config(loki, d, hp, [job("fwd", p, "tcp", "rfc5424")])).start()
    wait_port(p, "tcp")
    rd = ctx.tmpdir()
    os.makedirs(os.path.join(rd, "work"))
    sock = os.path.join(rd, "log.sock")
    conf = os.path.join(rd, "rsyslog.conf")
    with open(conf, "w") as f:
        f.write("""global(workDirectory="%(rd)s/work")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="%(sock)s" CreatePath="on" RateLimit.Interval="0")
*.* action(type="omfwd" target="127.0.0.1" port="%(port)d" protocol="tcp"
           TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
           queue.type="LinkedList" action.resumeRetryCount="-1" action.resumeInterval="1")
""" % dict(rd=rd, sock=sock, port=p))
    r = subprocess.Popen([rsyslogd(), "-n", "-f", conf, "-i", os.path.join(rd, "pid")],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ctx.cleanups.append(lambda: (r.poll() is None and r.kill(), r.wait()))
    wait_until(lambda: os.path.exists(sock), 20, interval=0.1, what="rsyslog's socket")
    n = 2000
    src = os.path.join(rd, "lines.txt")
    with open(src, "w") as f:
        for i in range(n):
            f.write("fwd seq=%d via rsyslog\n" % i)
    t_before = time.time_ns()
    out = subprocess.run(["logger", "-u", sock, "-t", "fwdapp", "--id=77", "-p", "daemon.err",
                          "-f", src], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=60)
    assert out.returncode == 0, out.stdout
    t_after = time.time_ns()
    wait_until(lambda: loki.count() >= n, 60, interval=0.3, what="%d forwarded lines" % n)
    time.sleep(1.0)
    got = loki.entries()
    seqs = sorted(int(e["line"].split()[1][4:]) for e in got)
    assert seqs == list(range(n)), "lost %s" % sorted(set(range(n)) - set(seqs))[:10]
    assert loki.received() == n, loki.received()
    host = socket.gethostname()
    want = ('{app="fwdapp", facility="daemon", host="%s", ip="127.0.0.1", job="fwd", pid="77", '
            'severity="error"}' % host)
    bad = [e for e in got if e["labels"] != want]
    assert not bad, (bad[:2], want)
    for e in got:
        assert t_before - 1_000_000_000 <= e["ts"] <= t_after + 1_000_000_000, e
    ctx.table.append(("rsyslog omfwd octet-counted", n, len(got), loki.received() - n,
                      n - len(set(seqs))))
    r.terminate()
    r.wait(10)
    assert a.stop() == 0


def test_syslog_receiver_survives_a_reload(ctx):
    """SIGHUP rebuilds the jobs: the receiver closes and binds again, its queue stays; what was
    sent before and after arrives (at least once; here nothing was in flight: exactly once)."""
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    hp, p = free_port(), free_port()
    a = Agent(ctx, config(loki, d, hp, [job("rl", p, "tcp", "rfc5424")])).start()
    wait_port(p, "tcp")

    def send(first, n):
        s = socket.create_connection(("127.0.0.1", p))
        s.sendall("".join("<13>1 - h app - - - seq=%d\n" % i
                          for i in range(first, first + n)).encode())
        s.close()
    send(0, 100)
    wait_until(lambda: loki.count() >= 100, 20, interval=0.2, what="100 before the reload")
    a.p.send_signal(signal.SIGHUP)
    wait_until(lambda: "reload" in a.log() and a.log().count("syslog listening") >= 2, 20,
               interval=0.1, what="the reload")
    wait_port(p, "tcp")
    send(100, 100)
    wait_until(lambda: loki.count() >= 200, 20, interval=0.2, what="200 after the reload")
    time.sleep(0.5)
    assert sorted(seqs_syslog(loki)) == list(range(200))
    assert loki.received() == 200, loki.received()
    assert a.alive()
    assert a.stop() == 0


def make_test_ca(d):
    """A test CA, a server certificate for 127.0.0.1 and a client certificate, with openssl."""
    if not shutil.which("openssl"):
        raise lib.Skip("the openssl command is not installed")

    def run(*args):
        r = subprocess.run(["openssl"] + list(args), cwd=d, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        assert r.returncode == 0, r.stdout
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=bpftail test CA")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                      ("client", "extendedKeyUsage=clientAuth")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
            name + ".csr", "-subj", "/CN=" + name)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext + "\n")
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext")
    return {k: os.path.join(d, k) for k in ("ca.crt", "server.crt", "server.key", "client.crt",
                                             "client.key")}


def test_syslog_tls_with_client_certificates(ctx):
    """tls_config with a CA: a client with a certificate of that CA delivers octet-counted RFC
    5424 over TLS; a client without one is refused at the handshake and counted."""
    import ssl
    certs = make_test_ca(ctx.tmpdir())
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    hp, p = free_port(), free_port()
    tls = ("      tls_config:\n        cert_file: %s\n        key_file: %s\n"
           "        ca_file: %s\n" % (certs["server.crt"], certs["server.key"], certs["ca.crt"]))
    a = Agent(ctx, config(loki, d, hp, [job("tls", p, "tcp", "rfc5424", extra=tls)])).start()
    wait_until(lambda: "tls=client-certificates" in a.log(), 20, interval=0.1,
               what="the TLS listener")
    good = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=certs["ca.crt"])
    good.load_cert_chain(certs["client.crt"], certs["client.key"])
    n = 500
    with socket.create_connection(("127.0.0.1", p)) as raw:
        with good.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            for i in range(n):
                m = "<13>1 - h app - - - tls seq=%d" % i
                s.sendall(("%d %s" % (len(m), m)).encode())
    nocert = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=certs["ca.crt"])
    refused = False
    try:
        with socket.create_connection(("127.0.0.1", p)) as raw:
            with nocert.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"<13>1 - h app - - - tls must not arrive\n")
                s.recv(10)  # TLS 1.3: the refusal comes after the client's handshake
    except (ssl.SSLError, ConnectionError, OSError):
        refused = True
    assert refused, "a client without a certificate was served"
    wait_until(lambda: loki.count() >= n, 30, interval=0.2, what="%d messages over TLS" % n)
    time.sleep(0.5)
    got = sorted(int(e["line"].split("=")[1]) for e in loki.entries())
    assert got == list(range(n)), got[:10]
    m = a.metrics(hp)
    assert metric_value(m, "bpftail_syslog_tls_errors_total", job="tls") >= 1, m
    assert a.stop() == 0


def test_syslog_rsyslog_forwarder_over_tls(ctx):
    """rsyslog forwards over TLS (omfwd, the ossl stream driver, its client certificate from
    the test CA, octet-counted RFC 5424): 1,000 lines arrive once."""
    rs = rsyslogd()
    if not os.path.exists("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so") and \
            not os.path.exists("/usr/lib/rsyslog/lmnsd_ossl.so"):
        raise lib.Skip("rsyslog's OpenSSL driver is not installed (rsyslog-openssl)")
    certs = make_test_ca(ctx.tmpdir())
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    hp, p = free_port(), free_port()
    tls = ("      tls_config:\n        cert_file: %s\n        key_file: %s\n"
           "        ca_file: %s\n" % (certs["server.crt"], certs["server.key"], certs["ca.crt"]))
    a = Agent(ctx, config(loki, d, hp, [job("rtls", p, "tcp", "rfc5424", extra=tls)])).start()
    wait_until(lambda: "tls=client-certificates" in a.log(), 20, interval=0.1,
               what="the TLS listener")
    rd = ctx.tmpdir()
    os.makedirs(os.path.join(rd, "work"))
    sock = os.path.join(rd, "log.sock")
    conf = os.path.join(rd, "rsyslog.conf")
    with open(conf, "w") as f:
        f.write("""global(workDirectory="%(rd)s/work"
       DefaultNetstreamDriverCAFile="%(ca)s"
       DefaultNetstreamDriverCertFile="%(crt)s"
       DefaultNetstreamDriverKeyFile="%(key)s")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="%(sock)s" CreatePath="on" RateLimit.Interval="0")
*.* action(type="omfwd" target="127.0.0.1" port="%(port)d" protocol="tcp"
           StreamDriver="ossl" StreamDriverMode="1" StreamDriverAuthMode="x509/certvalid"
           TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
           queue.type="LinkedList" action.resumeRetryCount="-1" action.resumeInterval="1")
""" % dict(rd=rd, sock=sock, port=p, ca=certs["ca.crt"], crt=certs["client.crt"],
           key=certs["client.key"]))
    r = subprocess.Popen([rs, "-n", "-f", conf, "-i", os.path.join(rd, "pid")],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ctx.cleanups.append(lambda: (r.poll() is None and r.kill(), r.wait()))
    wait_until(lambda: os.path.exists(sock), 20, interval=0.1, what="rsyslog's socket")
    n = 1000
    src = os.path.join(rd, "lines.txt")
    with open(src, "w") as f:
        for i in range(n):
            f.write("tls seq=%d via rsyslog\n" % i)
    out = subprocess.run(["logger", "-u", sock, "-t", "tlsapp", "-f", src],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert out.returncode == 0, out.stdout
    try:
        wait_until(lambda: loki.count() >= n, 60, interval=0.3, what="%d lines over TLS" % n)
    except AssertionError:
        r.kill()
        raise AssertionError("%d of %d; bpftail: %s\nrsyslog: %s" % (
            loki.count(), n, a.log()[-1500:], r.communicate()[0][-1500:]))
    time.sleep(1.0)
    got = loki.entries()
    seqs = sorted(int(e["line"].split()[1][4:]) for e in got)
    assert seqs == list(range(n)), "lost %s" % sorted(set(range(n)) - set(seqs))[:10]
    assert loki.received() == n, loki.received()
    assert all('app="tlsapp"' in e["labels"] for e in got), got[0]
    ctx.table.append(("rsyslog omfwd over TLS", n, len(got), loki.received() - n,
                      n - len(set(seqs))))
    r.terminate()
    r.wait(10)
    assert a.stop() == 0


def test_syslog_connection_hostname_by_reverse_dns_tcp_udp(ctx):
    """__syslog_connection_hostname is the sender's name by reverse DNS, as getnameinfo gives it
    for 127.0.0.1 (from /etc/hosts: no query leaves the machine), for TCP and UDP."""
    try:
        want = socket.getnameinfo(("127.0.0.1", 0), socket.NI_NAMEREQD)[0].rstrip(".")
    except OSError:
        raise lib.Skip("127.0.0.1 has no name on this machine: nothing to compare with")
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    hp = free_port()
    ports = {"tcp": free_port(), "udp": free_udp_port()}
    jobs = ["""  - job_name: dns%(proto)s
    syslog:
      listen_address: 127.0.0.1:%(port)d
      listen_protocol: %(proto)s
      labels:
        job: dns%(proto)s
    relabel_configs:
      - source_labels: [__syslog_connection_hostname]
        target_label: conn_host
""" % dict(proto=proto, port=port) for proto, port in ports.items()]
    a = Agent(ctx, config(loki, d, hp, jobs)).start()
    for proto, p in ports.items():
        wait_port(p, proto)
    msg = "<13>1 2024-01-01T00:00:00Z h app - - - %s seq=%d hello\n"
    for i in range(5):
        with socket.create_connection(("127.0.0.1", ports["tcp"]), 5) as s:
            s.sendall((msg % ("tcp", i)).encode())
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto((msg % ("udp", i)).encode(), ("127.0.0.1", ports["udp"]))
        u.close()
    wait_until(lambda: loki.count() >= 10, 30, interval=0.2, what="10 syslog messages")
    time.sleep(0.3)
    got = loki.entries()
    assert len(got) == 10, [e["line"] for e in got]
    for e in got:
        proto = e["line"].split()[0]
        want_s = '{conn_host="%s", job="dns%s"}' % (want, proto)
        assert e["labels"] == want_s, (e["labels"], want_s)
    m = a.metrics(hp)
    assert metric_value(m, "bpftail_resolver_lookups_total") >= 1, m
    assert metric_value(m, "bpftail_resolver_timeouts_total") == 0, m
    assert a.stop() == 0

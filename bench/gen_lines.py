#!/usr/bin/env python3
"""Writes realistic log lines for bpftail benchmarks.

Plain mode (default) writes what a busy /var/log/syslog looks like: RFC 3339 timestamps with
microseconds, a host and a program tag, then a message that is one of
  - a classic daemon message (sshd, cron, kernel, systemd),
  - an nginx access-log line (forwarded through syslog),
  - a JSON application log object.
Docker mode wraps the same messages (without the syslog framing) in Docker's json-file format:
  {"log":"<message>\\n","stream":"stdout","time":"2026-11-29T07:00:00.123456789Z"}

Every line carries its sequence number (`seq=N` in text, "seq":N in JSON) so a consumer can
check order and completeness, and can carry its write time (`wts=<unix ns>`) for latency runs.
Content is deterministic for a given --seed; timestamps start at --base-time (default: now,
whole seconds) and advance 1 ms per line. Average line length is about 150 bytes.

Usage:
  gen_lines.py --lines 1000000 --out /tmp/plain.log
  gen_lines.py --lines 1000000 --docker --out /tmp/ctr-json.log
"""
import argparse
import datetime as dt
import json
import random
import sys
import time

HOSTS = ["web01", "web02", "db01", "app01", "app02", "edge1"]
USERS = ["alice", "deploy", "backup", "root", "ci"]
PATHS = ["/", "/index.html", "/api/v1/orders", "/api/v1/orders/{id}", "/api/v1/users/{id}",
         "/static/app.{id}.js", "/healthz", "/metrics", "/login", "/search?q=term{id}"]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
          "curl/8.5.0", "Prometheus/2.53.0", "Go-http-client/1.1",
          "Mozilla/5.0 (Macintosh) Safari/605.1.15"]
STATUSES = [200] * 14 + [201, 204, 301, 304, 400, 401, 403, 404, 404, 500, 502, 503]
LEVELS = ["info"] * 6 + ["debug", "debug", "warn", "error"]
SERVICES = ["orders", "billing", "auth", "search"]
APP_MSGS = ["order created", "payment authorised", "cache miss", "user logged in",
            "retrying upstream request", "slow query", "token refreshed", "queue drained"]
DAEMON = [
    ("sshd", "Accepted publickey for {user} from 10.0.{a}.{b} port {port} ssh2: ED25519 SHA256:{hex}"),
    ("sshd", "Disconnected from user {user} 10.0.{a}.{b} port {port}"),
    ("CRON", "({user}) CMD (/usr/local/bin/rotate-reports --keep {a} >/dev/null 2>&1)"),
    ("kernel", "[{up}.{frac}] eth0: Link is Up - 10Gbps/Full - flow control rx/tx, Network ok"),
    ("systemd", "Started session-{port}.scope - Session {port} of User {user} (network target)."),
    ("systemd", "logrotate.service: Deactivated successfully, consumed {a}.{b}ms CPU time."),
]


def ts_rfc3339(ns, digits):
    """UTC timestamp with `digits` fractional digits and a Z or +00:00 suffix."""
    sec, frac = divmod(ns, 1_000_000_000)
    base = dt.datetime.fromtimestamp(sec, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return "%s.%s" % (base, ("%09d" % frac)[:digits])


class Gen:
    def __init__(self, seed=1, base_ns=None, step_ns=1_000_000):
        self.rng = random.Random(seed)
        if base_ns is None:
            base_ns = int(time.time()) * 1_000_000_000
        self.base_ns = base_ns
        self.step_ns = step_ns

    def message(self, seq, wts=None):
        """Returns (program, pid or None, message) for line seq."""
        r = self.rng
        tag = "seq=%d" % seq if wts is None else "seq=%d wts=%d" % (seq, wts)
        kind = r.random()
        if kind < 0.40:
            path = r.choice(PATHS).replace("{id}", str(r.randrange(100000)))
            sec = (self.base_ns + seq * self.step_ns) // 1_000_000_000
            msg = '10.%d.%d.%d - - [%s] "%s %s HTTP/1.1" %d %d "-" "%s" %s' % (
                r.randrange(256), r.randrange(256), r.randrange(256),
                time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(sec)),
                r.choice(["GET", "GET", "GET", "POST", "PUT"]), path, r.choice(STATUSES),
                r.randrange(120, 60000), r.choice(AGENTS), tag)
            return "nginx", None, msg
        if kind < 0.70:
            obj = {"level": r.choice(LEVELS), "svc": r.choice(SERVICES),
                   "msg": r.choice(APP_MSGS), "order_id": r.randrange(10**6),
                   "took_ms": r.randrange(1, 900), "seq": seq}
            if wts is not None:
                obj["wts"] = wts
            return obj["svc"], r.randrange(100, 32000), json.dumps(obj, separators=(",", ":"))
        prog, fmt = r.choice(DAEMON)
        msg = fmt.format(user=r.choice(USERS), a=r.randrange(256), b=r.randrange(256),
                         port=r.randrange(1024, 65535), hex="%016x" % r.getrandbits(64),
                         up=r.randrange(100000), frac="%06d" % r.randrange(10**6))
        return prog, (None if prog == "kernel" else r.randrange(100, 32000)), msg + " " + tag

    def plain(self, seq, wts=None):
        prog, pid, msg = self.message(seq, wts)
        ts = ts_rfc3339(self.base_ns + seq * self.step_ns, 6) + "+00:00"
        host = HOSTS[seq % len(HOSTS)]
        tag = prog if pid is None else "%s[%d]" % (prog, pid)
        return "%s %s %s: %s\n" % (ts, host, tag, msg)

    def docker(self, seq, wts=None):
        _, _, msg = self.message(seq, wts)
        ts = ts_rfc3339(self.base_ns + seq * self.step_ns, 9) + "Z"
        stream = "stderr" if seq % 10 == 9 else "stdout"
        return json.dumps({"log": msg + "\n", "stream": stream, "time": ts},
                          separators=(",", ":")) + "\n"


def write_file(path, lines, docker=False, seed=1, base_ns=None):
    """Writes `lines` lines to path; returns the number of bytes written."""
    g = Gen(seed, base_ns)
    make = g.docker if docker else g.plain
    total = 0
    with open(path, "w", encoding="utf-8") as f:
        chunk = []
        for i in range(lines):
            chunk.append(make(i))
            if len(chunk) == 4096:
                s = "".join(chunk)
                total += len(s.encode())
                f.write(s)
                chunk = []
        s = "".join(chunk)
        total += len(s.encode())
        f.write(s)
    return total


def parse_base(s):
    if s in (None, "now"):
        return None
    if s.isdigit():
        return int(s) * 1_000_000_000
    d = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return int(d.timestamp()) * 1_000_000_000


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=1000, help="number of lines (default 1000)")
    ap.add_argument("--out", required=True, help="file to write ('-' for stdout)")
    ap.add_argument("--docker", action="store_true", help="Docker json-file records")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--base-time", default="now",
                    help="first timestamp: 'now', unix seconds or ISO 8601 (default now)")
    a = ap.parse_args()
    if a.lines < 0:
        ap.error("--lines must be >= 0")
    base = parse_base(a.base_time)
    if a.out == "-":
        g = Gen(a.seed, base)
        make = g.docker if a.docker else g.plain
        for i in range(a.lines):
            sys.stdout.write(make(i))
        return 0
    n = write_file(a.out, a.lines, a.docker, a.seed, base)
    print("wrote %d lines, %d bytes (%.1f bytes/line) to %s"
          % (a.lines, n, n / a.lines if a.lines else 0, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

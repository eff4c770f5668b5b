"""TLS and authentication to Loki for real: Debian's nginx terminates TLS in front of the test
Loki server, with certificates made here by openssl, and checks basic auth, bearer tokens, a
custom header and client certificates. A tiny CONNECT proxy in this file stands for a corporate
proxy. Failure cases (wrong CA, expired certificate, wrong password) must be logged, counted in
bpftail_push_failures_total, keep every line, and deliver each exactly once after the fix.
Secrets never appear in the agent's log or on /config.
"""
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import threading

import lib
from lib import Agent, FakeLoki, SeqWriter, agent_config, free_port, http, metric_value, seqs, \
    wait_until

NGINX = "/usr/sbin/nginx"
USER, PASSWORD = "pusher", "s3cret-Passw0rd-xyzzy"
TOKEN = "tok-9f2c1e7d5b"
PROXY_USER, PROXY_PASSWORD = "proxyuser", "pr0xy-Secret-plugh"
HEADER, HEADER_VALUE = "X-Bpftail-Check", "hdr-value-42"


def _openssl(d, *args):
    r = subprocess.run(["openssl"] + list(args), cwd=d, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    return r.stdout.decode(errors="replace")


def make_pki(d):
    """Two CAs (the right one and another), server certificates for 127.0.0.1 and for the name
    loki.test only, an expired server certificate, a client certificate, and an htpasswd file."""
    if not shutil.which("openssl"):
        raise lib.Skip("the openssl command is not installed (scripts/deps.sh test installs it)")
    for ca in ("ca", "other-ca"):
        _openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca + ".key",
                 "-out", ca + ".crt", "-days", "2", "-subj", "/CN=bpftail test " + ca)
    leaves = (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
              ("named", "subjectAltName=DNS:loki.test"),
              ("client", "extendedKeyUsage=clientAuth"))
    for name, ext in leaves:
        _openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
                 name + ".csr", "-subj", "/CN=" + name)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext + "\n")
        _openssl(d, "x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext")
    # An expired certificate of the right CA, for the right address: only its dates are wrong.
    # `openssl ca` is the tool of this OpenSSL that takes explicit start and end dates.
    os.makedirs(os.path.join(d, "newcerts"))
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("1000\n")
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca = tca\n[tca]\ndir = .\ndatabase = index.txt\n"
                "new_certs_dir = newcerts\nserial = serial\ndefault_md = sha256\npolicy = pol\n"
                "x509_extensions = ext\nunique_subject = no\n[pol]\ncommonName = supplied\n"
                "[ext]\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n")
    _openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "expired.key", "-out",
             "expired.csr", "-subj", "/CN=expired")
    _openssl(d, "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key",
             "-in", "expired.csr", "-out", "expired.crt", "-notext", "-startdate",
             "20200101000000Z", "-enddate", "20200102000000Z")
    assert "notAfter=Jan  2 00:00:00 2020" in _openssl(d, "x509", "-in", "expired.crt",
                                                       "-noout", "-enddate")
    hashed = _openssl(d, "passwd", "-apr1", PASSWORD).strip()
    with open(os.path.join(d, "htpasswd"), "w") as f:
        f.write("%s:%s\n" % (USER, hashed))
    return {k: os.path.join(d, k) for k in os.listdir(d)}


class Nginx:
    """Debian's nginx with its own config, pid file and logs in a temp dir, on loopback ports:
    basic  TLS (server.crt), basic auth from htpasswd and the custom header required
    bearer TLS (server.crt), "Authorization: Bearer TOKEN" required
    mtls   TLS (server.crt), a client certificate of ca.crt required
    named  TLS with a certificate for loki.test only
    dated  TLS with the certificate in dated.crt/dated.key (the test swaps it and reloads)
    Every server proxies to the test Loki server. Stopped at the end of the test."""

    def __init__(self, ctx, pki, loki_port):
        if not os.path.exists(NGINX):
            raise lib.Skip("nginx is not installed (scripts/deps.sh test installs nginx-light)")
        self.d = ctx.tmpdir()
        self.ports = {k: free_port() for k in ("basic", "bearer", "mtls", "named", "dated")}
        shutil.copy(pki["expired.crt"], os.path.join(self.d, "dated.crt"))
        shutil.copy(pki["expired.key"], os.path.join(self.d, "dated.key"))
        tls = "ssl_certificate %s; ssl_certificate_key %s;"
        good = tls % (pki["server.crt"], pki["server.key"])
        proxy = "proxy_pass http://127.0.0.1:%d; proxy_http_version 1.1;" % loki_port
        hdr = "$http_" + HEADER.lower().replace("-", "_")
        servers = {
            "basic": good + ' location / { if (%s != "%s") { return 403; } auth_basic "loki"; '
                            'auth_basic_user_file %s; %s }' % (hdr, HEADER_VALUE, pki["htpasswd"],
                                                                proxy),
            "bearer": good + ' location / { if ($http_authorization != "Bearer %s") '
                             '{ return 401; } %s }' % (TOKEN, proxy),
            "mtls": good + " ssl_verify_client on; ssl_client_certificate %s; "
                           "location / { %s }" % (pki["ca.crt"], proxy),
            "named": tls % (pki["named.crt"], pki["named.key"]) + " location / { %s }" % proxy,
            "dated": tls % (os.path.join(self.d, "dated.crt"), os.path.join(self.d, "dated.key"))
            + " location / { %s }" % proxy,
        }
        conf = ["daemon off;", "master_process on;", "worker_processes 1;",
                "pid %s/nginx.pid;" % self.d, "error_log %s/error.log info;" % self.d,
                "events { worker_connections 128; }", "http {",
                "  access_log %s/access.log;" % self.d, "  client_max_body_size 16m;"]
        if os.geteuid() == 0:
            conf.insert(0, "user root;")  # the workers read the temp dir's htpasswd
        for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            conf.append("  %s_temp_path %s/%s;" % (t, self.d, t))
        for name, body in servers.items():
            conf.append("  server { listen 127.0.0.1:%d ssl; server_name _; %s }"
                        % (self.ports[name], body))
        conf.append("}")
        self.conf = os.path.join(self.d, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        r = subprocess.run([NGINX, "-t", "-c", self.conf, "-p", self.d], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        assert r.returncode == 0, "nginx -t: %s" % r.stdout.decode(errors="replace")
        self.p = subprocess.Popen([NGINX, "-c", self.conf, "-p", self.d],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ctx.cleanups.append(self.stop)
        for port in self.ports.values():
            wait_until(lambda: self._listening(port), 20, what="nginx on port %d" % port)

    @staticmethod
    def _listening(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def url(self, name, host="127.0.0.1"):
        return "https://%s:%d/loki/api/v1/push" % (host, self.ports[name])

    def renew_dated(self, pki):
        """Puts a valid certificate in place of the expired one and reloads nginx (SIGHUP)."""
        old = self.error_log().count("gracefully shutting down")
        shutil.copy(pki["server.crt"], os.path.join(self.d, "dated.crt"))
        shutil.copy(pki["server.key"], os.path.join(self.d, "dated.key"))
        self.p.send_signal(signal.SIGHUP)
        wait_until(lambda: self.error_log().count("gracefully shutting down") > old, 20,
                   what="nginx to reload its certificates")

    def error_log(self):
        try:
            with open(os.path.join(self.d, "error.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGQUIT)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


class ConnectProxy:
    """A forward proxy that only does CONNECT (as HTTPS through a proxy needs), requires
    Proxy-Authorization basic credentials, and counts the tunnels it opened."""

    def __init__(self, ctx, user, password):
        import base64
        self.want = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        self.tunnels = []
        self.refused = 0
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()
        ctx.cleanups.append(self.stop)

    def stop(self):
        self.stopping = True
        self.srv.close()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 16384:
                b = c.recv(4096)
                if not b:
                    return
                head += b
            lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ")[:2]
            hdrs = {k.strip().lower(): v.strip() for k, v in
                    (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
            if method != "CONNECT":
                c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            if hdrs.get("proxy-authorization") != self.want:
                self.refused += 1
                c.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                          b"Proxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 0\r\n\r\n")
                return
            host, port = target.rsplit(":", 1)
            up = socket.create_connection((host, int(port)), timeout=10)
            self.tunnels.append(target)
            c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            socks = [c, up]
            while True:
                r, _, _ = select.select(socks, [], [], 30)
                if not r:
                    break
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        up.close()
                        return
                    (up if s is c else c).sendall(data)
        except OSError:
            pass
        finally:
            c.close()


def _tls(**kv):
    out = "    tls_config:\n"
    for k, v in kv.items():
        out += "      %s: %s\n" % (k, "true" if v is True else v)
    return out


def _client(url, name, body):
    return ("  - url: %s\n    external_labels:\n      client: %s\n    batchwait: 200ms\n"
            "    backoff_config:\n      min_period: 50ms\n      max_period: 300ms\n"
            "      max_retries: 1000\n%s" % (url, name, body))


def _config(d, port, clients, log_level="info"):
    return """server:
  http_listen_address: 127.0.0.1
  http_listen_port: %d
  grpc_listen_port: 0
  log_level: %s
positions:
  filename: %s/positions.yaml
  sync_period: 200ms
bpftail:
  shutdown_timeout: 1s
clients:
%s
scrape_configs:
  - job_name: tls
    static_configs:
      - targets: [localhost]
        labels:
          job: tls
          __path__: %s/*.log
""" % (port, log_level, d, "".join(clients), d)


def _secrets_hidden(a, port, secrets):
    """No secret in the agent's log nor on /config (which must answer)."""
    st, body = http("GET", "http://127.0.0.1:%d/config" % port)
    assert st == 200, (st, body[:200])
    text = body.decode(errors="replace")
    log = a.log()
    for s in secrets:
        assert s not in log, "secret %r in the agent's log" % s
        assert s not in text, "secret %r on /config" % s
    return text


def test_tls_and_auth_matrix_through_nginx(ctx):
    """Every way to reach Loki behind nginx delivers every line once: ca_file, server_name,
    insecure_skip_verify, a client certificate (mTLS), basic auth with password and with
    password_file, bearer_token and bearer_token_file, a custom header, and proxy_url through a
    CONNECT proxy with credentials. No push fails, and no secret shows in the log or /config."""
    pki = make_pki(ctx.tmpdir())
    loki = FakeLoki(ctx)
    ng = Nginx(ctx, pki, loki.port)
    proxy = ConnectProxy(ctx, PROXY_USER, PROXY_PASSWORD)
    d = ctx.tmpdir()
    secret_dir = ctx.tmpdir()
    pw_file = os.path.join(secret_dir, "password")
    tok_file = os.path.join(secret_dir, "token")
    with open(pw_file, "w") as f:
        f.write(PASSWORD + "\n")
    with open(tok_file, "w") as f:
        f.write(TOKEN + "\n")
    ca = _tls(ca_file=pki["ca.crt"])
    basic = "    basic_auth:\n      username: %s\n      password: %s\n" % (USER, PASSWORD)
    header = "    headers:\n      %s: %s\n" % (HEADER, HEADER_VALUE)
    clients = {
        "basic_password": _client(ng.url("basic"), "basic_password", ca + basic + header),
        "basic_password_file": _client(
            ng.url("basic"), "basic_password_file",
            ca + header + "    basic_auth:\n      username: %s\n      password_file: %s\n"
            % (USER, pw_file)),
        "bearer_token": _client(ng.url("bearer"), "bearer_token",
                                ca + "    bearer_token: %s\n" % TOKEN),
        "bearer_token_file": _client(ng.url("bearer"), "bearer_token_file",
                                     ca + "    bearer_token_file: %s\n" % tok_file),
        "mtls": _client(ng.url("mtls"), "mtls",
                        _tls(ca_file=pki["ca.crt"], cert_file=pki["client.crt"],
                             key_file=pki["client.key"])),
        "server_name": _client(ng.url("named"), "server_name",
                               _tls(ca_file=pki["ca.crt"], server_name="loki.test")),
        "insecure_skip_verify": _client(ng.url("named"), "insecure_skip_verify",
                                        _tls(insecure_skip_verify=True)),
        "proxy_url": _client(ng.url("basic"), "proxy_url",
                             ca + basic + header + "    proxy_url: http://%s:%s@127.0.0.1:%d\n"
                             % (PROXY_USER, PROXY_PASSWORD, proxy.port)),
    }
    port = free_port()
    # Debug logging: not even the most verbose log may carry a secret.
    a = Agent(ctx, _config(d, port, clients.values(), "debug")).start()
    n = 300
    w = SeqWriter(os.path.join(d, "app.log"))
    w.write(n)
    want = n * len(clients)
    try:
        wait_until(lambda: loki.count() >= want, 90, interval=0.2,
                   what="%d entries through nginx" % want)
    except AssertionError:
        raise AssertionError("stored %d of %d; agent log tail:\n%s\nnginx error log tail:\n%s"
                             % (loki.count(), want, a.log()[-3000:], ng.error_log()[-2000:]))
    by_client = {}
    for e in loki.entries():
        by_client.setdefault(_label(e, "client"), []).append(e)
    for name in clients:
        lost, dups = lib.check_exactly_once(seqs(by_client.get(name, [])), n)
        assert not lost and not dups, "%s: lost %d, duplicates %d" % (name, len(lost), dups)
        ctx.table.append(["tls/nginx " + name, n, len(by_client.get(name, [])), dups, len(lost)])
    assert loki.received() == want, "every entry received once: %d != %d" % (loki.received(), want)
    assert proxy.tunnels and all(t == "127.0.0.1:%d" % ng.ports["basic"] for t in proxy.tunnels)
    assert proxy.refused == 0
    m = a.metrics(port)
    assert metric_value(m, "bpftail_push_failures_total") is None, \
        "no push failed: %s" % [ln for ln in m.splitlines() if "push_failures" in ln]
    assert not metric_value(m, "bpftail_dropped_entries_total")
    text = _secrets_hidden(a, port, [PASSWORD, TOKEN, PROXY_PASSWORD])
    assert "<secret>" in text
    assert a.stop() == 0
    assert not _secrets_hidden_log_only(a, [PASSWORD, TOKEN, PROXY_PASSWORD])


def _secrets_hidden_log_only(a, secrets):
    log = a.log()
    return [s for s in secrets if s in log]


def _label(e, name):
    m = re.search(r'%s="([^"]*)"' % name, e["labels"])
    return m.group(1) if m else None


def _failure_then_fix(ctx, loki, a, port, d, n, reason, log_words, fix):
    """Writes n lines; waits until pushes failed with `reason` at least 3 times and the log
    said so; checks nothing was stored or dropped; applies fix(); then every line arrives once."""
    w = SeqWriter(os.path.join(d, "app.log"))
    w.write(n)

    def failures():
        if not a.alive():
            raise AssertionError("bpftail exited:\n%s" % a.log()[-3000:])
        try:
            m = a.metrics(port)
        except OSError:  # not listening yet
            return 0
        return metric_value(m, "bpftail_push_failures_total", reason=reason) or 0
    wait_until(lambda: failures() >= 3, 60, interval=0.2,
               what="3 push failures with reason=%s" % reason)
    log = a.log()
    assert "push failed, will retry" in log and "reason=%s" % reason in log, log[-3000:]
    for word in log_words:
        assert word in log, "the log names the cause (%r):\n%s" % (word, log[-3000:])
    m = a.metrics(port)
    assert not metric_value(m, "bpftail_dropped_entries_total"), "nothing dropped"
    assert metric_value(m, "bpftail_batch_retries_total") >= 3
    assert loki.received() == 0, "nothing got through before the fix"
    fix()
    w.write(n)  # lines written after the fix arrive as well
    try:
        wait_until(lambda: loki.count() >= 2 * n, 90, interval=0.2,
                   what="%d entries after the fix" % (2 * n))
    except AssertionError:
        raise AssertionError("stored %d of %d; agent log tail:\n%s"
                             % (loki.count(), 2 * n, a.log()[-3000:]))
    lost, dups = lib.check_exactly_once(seqs(loki.entries()), 2 * n)
    assert not lost and not dups, "lost %d, duplicates %d" % (len(lost), dups)
    assert loki.received() == 2 * n, "each line received once: %d" % loki.received()
    assert not metric_value(a.metrics(port), "bpftail_dropped_entries_total")
    ctx.table.append(["tls/nginx %s then fixed" % reason, 2 * n, loki.count(), dups, len(lost)])


def _rewrite_and_hup(a, text):
    with open(a.config, "w") as f:
        f.write(text)
    before = a.log().count("config reloaded")
    a.p.send_signal(signal.SIGHUP)
    wait_until(lambda: a.log().count("config reloaded") > before, 30, what="the reload")


def test_wrong_ca_keeps_the_lines_until_the_config_is_fixed(ctx):
    """ca_file of another CA: every push fails verification (logged, counted as reason=tls),
    nothing is dropped; after the right ca_file and SIGHUP every line arrives once."""
    pki = make_pki(ctx.tmpdir())
    loki = FakeLoki(ctx)
    ng = Nginx(ctx, pki, loki.port)
    d = ctx.tmpdir()
    port = free_port()

    def cfg(ca):
        return _config(d, port, [_client(ng.url("mtls"), "mtls",
                                         _tls(ca_file=ca, cert_file=pki["client.crt"],
                                              key_file=pki["client.key"]))])
    a = Agent(ctx, cfg(pki["other-ca.crt"])).start()
    _failure_then_fix(ctx, loki, a, port, d, 500, "tls", ["certificate"],
                      lambda: _rewrite_and_hup(a, cfg(pki["ca.crt"])))
    assert a.stop() == 0


def test_expired_certificate_keeps_the_lines_until_nginx_has_a_valid_one(ctx):
    """nginx serves an expired certificate of the right CA: pushes fail (logged as expired,
    counted as reason=tls) and nothing is dropped; once nginx reloads a valid certificate the
    retries deliver every line once, without touching the agent."""
    pki = make_pki(ctx.tmpdir())
    loki = FakeLoki(ctx)
    ng = Nginx(ctx, pki, loki.port)
    d = ctx.tmpdir()
    port = free_port()
    a = Agent(ctx, _config(d, port, [_client(ng.url("dated"), "dated",
                                             _tls(ca_file=pki["ca.crt"]))])).start()
    _failure_then_fix(ctx, loki, a, port, d, 500, "tls", ["expired"],
                      lambda: ng.renew_dated(pki))
    assert a.stop() == 0


def test_wrong_password_keeps_the_lines_until_the_config_is_fixed(ctx):
    """A wrong basic_auth password: nginx answers 401, which bpftail retries (credentials, not
    the batch, are wrong; counted as reason=unauthorized) and never drops; after the right
    password and SIGHUP every line arrives once. Neither password is ever logged or shown."""
    pki = make_pki(ctx.tmpdir())
    loki = FakeLoki(ctx)
    ng = Nginx(ctx, pki, loki.port)
    d = ctx.tmpdir()
    port = free_port()
    wrong = "wr0ng-Passw0rd-quux"

    def cfg(pw):
        return _config(d, port, [_client(
            ng.url("basic"), "basic",
            _tls(ca_file=pki["ca.crt"]) + "    headers:\n      %s: %s\n" % (HEADER, HEADER_VALUE)
            + "    basic_auth:\n      username: %s\n      password: %s\n" % (USER, pw))], "debug")
    a = Agent(ctx, cfg(wrong)).start()
    _failure_then_fix(ctx, loki, a, port, d, 500, "unauthorized", ["status=401"],
                      lambda: (_secrets_hidden(a, port, [wrong]),
                               _rewrite_and_hup(a, cfg(PASSWORD))))
    _secrets_hidden(a, port, [wrong, PASSWORD])
    assert a.stop() == 0
    assert not _secrets_hidden_log_only(a, [wrong, PASSWORD])


def test_refused_credentials_are_retried_not_dropped_and_delivered_after_reload(ctx):
    """nginx refuses three clients: the custom header missing (403), a wrong bearer token (401)
    and no client certificate for mTLS (nginx's 400 "No required SSL certificate was sent").
    Each is counted as reason=unauthorized on its host and nothing is dropped; after the config
    gets the header, the token and the certificate (SIGHUP) every client delivers every line
    once. This also proves nginx really checks what the matrix test passes."""
    pki = make_pki(ctx.tmpdir())
    loki = FakeLoki(ctx)
    ng = Nginx(ctx, pki, loki.port)
    d = ctx.tmpdir()
    port = free_port()
    ca = _tls(ca_file=pki["ca.crt"])
    basic = "    basic_auth:\n      username: %s\n      password: %s\n" % (USER, PASSWORD)

    def cfg(fixed):
        return _config(d, port, [
            _client(ng.url("basic"), "header", ca + basic + (
                "    headers:\n      %s: %s\n" % (HEADER, HEADER_VALUE) if fixed else "")),
            _client(ng.url("bearer"), "bearer",
                    ca + "    bearer_token: %s\n" % (TOKEN if fixed else "not-the-token")),
            _client(ng.url("mtls"), "mtls", _tls(ca_file=pki["ca.crt"], cert_file=pki["client.crt"],
                                                 key_file=pki["client.key"]) if fixed else ca),
        ])
    a = Agent(ctx, cfg(False)).start()
    n = 300
    w = SeqWriter(os.path.join(d, "app.log"))
    w.write(n)

    def refused(name):
        try:
            m = a.metrics(port)
        except OSError:
            return 0
        return metric_value(m, "bpftail_push_failures_total", reason="unauthorized",
                            host="127.0.0.1:%d" % ng.ports[name]) or 0
    for name in ("basic", "bearer", "mtls"):
        wait_until(lambda: refused(name) >= 2, 60, interval=0.2,
                   what="2 refused pushes to nginx's %s server:\n%s" % (name, a.log()[-2000:]))
    m = a.metrics(port)
    assert not metric_value(m, "bpftail_dropped_entries_total"), "nothing dropped"
    assert loki.received() == 0
    log = a.log()
    for status in ("status=401", "status=403", "status=400"):
        assert status in log, "%s logged:\n%s" % (status, log[-3000:])
    _rewrite_and_hup(a, cfg(True))
    wait_until(lambda: loki.count() >= 3 * n, 90, interval=0.2,
               what="%d entries after the fix:\n%s" % (3 * n, a.log()[-2000:]))
    by_client = {}
    for e in loki.entries():
        by_client.setdefault(_label(e, "client"), []).append(e)
    for name in ("header", "bearer", "mtls"):
        got = seqs(by_client.get(name, []))
        lost, dups = lib.check_exactly_once(got, n)
        assert not lost and not dups, "%s: lost %d, duplicates %d" % (name, len(lost), dups)
        ctx.table.append(["tls/nginx refused %s then fixed" % name, n, len(got), dups, len(lost)])
    assert loki.received() == 3 * n
    assert not metric_value(a.metrics(port), "bpftail_dropped_entries_total")
    _secrets_hidden(a, port, [TOKEN, PASSWORD, "not-the-token"])
    assert a.stop() == 0

"""The agent's own HTTP server as an exposed service: http_listen_address binds only where it is
told (127.0.0.1 is not reachable on another address), /reload exists only with
enable_runtime_reload, request bodies and open connections are capped and every refusal is
counted in bpftail_http_refused_total, and with http_tls_config nothing is served in clear.
(HTTPS itself and http_path_prefix: test_compat.py.)"""
import os
import socket
import ssl

from lib import Agent, free_port, http, metric_value, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
TLS = os.path.join(os.path.dirname(HERE), "data", "tls")


def _config(d, port, address=None, extra=""):
    return """server:
%s  http_listen_port: %d
  grpc_listen_port: 0%s
positions:
  filename: %s/positions.yaml
clients:
  - url: http://127.0.0.1:1/loki/api/v1/push
scrape_configs:
  - job_name: x
    static_configs:
      - targets: [localhost]
        labels:
          job: x
          __path__: %s/*.log
""" % ("  http_listen_address: %s\n" % address if address is not None else "", port, extra, d, d)


def _up(a, port, scheme="http", ctx=None):
    def ok():
        if not a.alive():
            raise AssertionError("bpftail exited:\n%s" % a.log()[-2000:])
        try:
            if ctx is not None:
                import urllib.request
                with urllib.request.urlopen("https://127.0.0.1:%d/metrics" % port, timeout=2,
                                            context=ctx) as r:
                    return r.status == 200
            return http("GET", "%s://127.0.0.1:%d/metrics" % (scheme, port), timeout=2)[0] == 200
        except OSError:
            return False
    wait_until(ok, 30, interval=0.1, what="the agent's HTTP server")


def _reachable(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def test_listen_address_127_0_0_1_is_not_reachable_on_other_addresses(ctx):
    d = ctx.tmpdir()
    port = free_port()
    a = Agent(ctx, _config(d, port, "127.0.0.1")).start()
    _up(a, port)
    assert _reachable("127.0.0.1", port)
    assert not _reachable("127.0.0.2", port), "bound to 127.0.0.1 only, yet 127.0.0.2 answers"
    assert "HTTP server listening" in a.log()
    # The control: without an address (promtail's default) every address answers.
    port2 = free_port()
    b = Agent(ctx, _config(ctx.tmpdir(), port2)).start()
    _up(b, port2)
    assert _reachable("127.0.0.2", port2)
    assert a.stop() == 0 and b.stop() == 0


def test_reload_endpoint_exists_only_when_enabled(ctx):
    d = ctx.tmpdir()
    port = free_port()
    a = Agent(ctx, _config(d, port, "127.0.0.1")).start()
    _up(a, port)
    for method in ("POST", "GET"):
        st, body = http(method, "http://127.0.0.1:%d/reload" % port, b"" if method == "POST"
                        else None)
        assert st == 404, (method, st, body)
    m = http("GET", "http://127.0.0.1:%d/metrics" % port)[1].decode()
    assert not metric_value(m, "bpftail_config_reload_success_total")
    assert "reloading config" not in a.log()
    assert a.stop() == 0


def test_request_bodies_over_the_cap_are_refused_and_counted(ctx):
    d = ctx.tmpdir()
    port = free_port()
    a = Agent(ctx, _config(d, port, "127.0.0.1", "\n  enable_runtime_reload: true")).start()
    _up(a, port)
    # Raw: the server answers 413 as soon as it sees the length, and closes while a client
    # library would still be writing the body.
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (1 << 20)
              + b"x" * 4096)
    got = s.recv(4096)
    s.close()
    assert got.startswith(b"HTTP/1.1 413"), got[:200]
    assert "reloading config" not in a.log(), "an oversized request must not reach /reload"
    m = http("GET", "http://127.0.0.1:%d/metrics" % port)[1].decode()
    assert metric_value(m, "bpftail_http_refused_total", reason="body_too_large") >= 1, \
        [ln for ln in m.splitlines() if "refused" in ln]
    st, _ = http("POST", "http://127.0.0.1:%d/reload" % port, b"")
    assert st == 200, st
    assert a.stop() == 0


def test_connections_past_the_limit_are_closed_and_counted(ctx):
    """64 connections that never finish their request hold every slot; the next one is closed
    at once (not queued), counted, and once the slots are free the server answers again."""
    d = ctx.tmpdir()
    port = free_port()
    a = Agent(ctx, _config(d, port, "127.0.0.1")).start()
    _up(a, port)
    held = []
    try:
        for _ in range(64):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n")  # headers never end
            held.append(s)
        extra = socket.create_connection(("127.0.0.1", port), timeout=20)
        extra.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            got = extra.recv(4096)
        except ConnectionResetError:
            got = b""
        assert got == b"", "the 65th connection was served: %r" % got[:100]
        extra.close()
    finally:
        for s in held:
            s.close()

    def metrics():
        try:
            st, body = http("GET", "http://127.0.0.1:%d/metrics" % port, timeout=5)
        except OSError:
            return None
        return body.decode() if st == 200 else None
    m = wait_until(metrics, 30, interval=0.2, what="/metrics once the slots are free")
    assert metric_value(m, "bpftail_http_refused_total", reason="connection_limit") >= 1, \
        [ln for ln in m.splitlines() if "refused" in ln]
    assert "connection limit reached" in a.log()
    assert a.stop() == 0


def test_tls_server_serves_nothing_in_clear(ctx):
    d = ctx.tmpdir()
    port = free_port()
    extra = "\n  http_tls_config:\n    cert_file: %s\n    key_file: %s" % (
        os.path.join(TLS, "server.pem"), os.path.join(TLS, "server.key"))
    a = Agent(ctx, _config(d, port, "127.0.0.1", extra)).start()
    sslctx = ssl.create_default_context(cafile=os.path.join(TLS, "server.pem"))
    sslctx.check_hostname = False
    _up(a, port, ctx=sslctx)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    try:
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
    except OSError:
        pass
    s.close()
    assert b"bpftail_" not in got and not got.startswith(b"HTTP/1.1 200"), got[:200]
    assert a.stop() == 0

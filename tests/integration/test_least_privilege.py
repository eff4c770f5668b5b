"""Least privilege with the real binary: bpftail runs under setpriv as uid/gid 65534 with only
ambient capabilities, as the systemd unit in config/ runs it.

- CAP_DAC_READ_SEARCH alone: it ships a root-owned 0600 file in a 0700 root directory, BPF is
  refused (no CAP_BPF/CAP_PERFMON), it says so in its log and runs on fanotify or inotify, shown
  by bpftail_watcher_info; it holds no other capability.
- CAP_DAC_READ_SEARCH + CAP_BPF + CAP_PERFMON: it loads BPF, and once loaded keeps only
  CAP_DAC_READ_SEARCH in every thread.
- No capability: the root-only file is refused and the refusal is logged (so the first case
  really depends on the capability).

The test itself runs as root (it makes the root-only file and switches user with setpriv).
"""
import os
import shutil
import subprocess

import lib
from lib import Agent, FakeLoki, SeqWriter, agent_config, free_port, metric_value, seqs, wait_until

NOBODY = 65534
CAP_DAC_READ_SEARCH = 2
CAP_PERFMON = 38
CAP_BPF = 39


def _need_root_and_setpriv():
    if os.geteuid() != 0:
        raise lib.Skip("the least-privilege tests switch to uid 65534 with setpriv: run as root")
    if not shutil.which("setpriv"):
        raise lib.Skip("setpriv (util-linux) is not installed")


def _setpriv_agent(ctx, caps, cfg):
    """An Agent whose binary runs as uid/gid 65534 with exactly `caps` (setpriv names) as
    ambient, inheritable and bounding set."""
    wrapped = ctx.bpftail
    # The build tree must be reachable by uid 65534 (it is under a world-searchable path here).
    r = subprocess.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
                        "test", "-x", wrapped])
    assert r.returncode == 0, "uid 65534 cannot execute %s; build somewhere it can" % wrapped
    a = Agent(ctx, cfg)
    os.chmod(a.dir, 0o755)
    os.chmod(a.config, 0o644)
    script = os.path.join(a.dir, "setpriv.sh")
    capl = ",".join("+" + c for c in caps)
    bounding = ("-all," + capl) if caps else "-all"
    with open(script, "w") as f:
        f.write("#!/bin/sh\nexec setpriv --reuid=%d --regid=%d --clear-groups "
                "--inh-caps=%s --ambient-caps=%s --bounding-set=%s -- %s \"$@\"\n"
                % (NOBODY, NOBODY, capl or "-all", capl or "-all", bounding, wrapped))
    os.chmod(script, 0o755)
    ctx.bpftail = script
    try:
        a.start()
    finally:
        ctx.bpftail = wrapped
    return a


def _status(pid, tid=None):
    path = "/proc/%d/status" % pid if tid is None else "/proc/%d/task/%d/status" % (pid, tid)
    out = {}
    with open(path) as f:
        for ln in f:
            k, _, v = ln.partition(":")
            out[k] = v.strip()
    return out


def _caps_of_every_thread(pid):
    return {int(t): int(_status(pid, int(t))["CapEff"], 16)
            for t in os.listdir("/proc/%d/task" % pid)}


def _setup(ctx):
    """A root-only log directory (0700) with a 0600 file, a positions directory uid 65534 may
    write, and the test Loki server."""
    loki = FakeLoki(ctx)
    logs = ctx.tmpdir()
    os.chmod(logs, 0o700)
    state = ctx.tmpdir()
    os.chown(state, NOBODY, NOBODY)
    path = os.path.join(logs, "secret.log")
    with open(path, "w"):
        pass
    os.chmod(path, 0o600)
    return loki, logs, state, path


def _config(loki, logs, state, port):
    return agent_config(loki.url, os.path.join(logs, "*.log"),
                        os.path.join(state, "positions.yaml"), port, batchwait="100ms")


def _settled(a, port):
    """/metrics once the background BPF load has ended (a watcher other than the interim one is
    final, or the log says the load failed)."""
    def ok():
        if not a.alive():
            raise AssertionError("bpftail exited:\n%s" % a.log()[-3000:])
        try:
            m = a.metrics(port)
        except Exception:
            return None
        log = a.log()
        if metric_value(m, "bpftail_watcher_info", backend="bpf") == 1:
            return m
        if "file watcher stays" in log or "bpf" in log and "level=warn" in log:
            return m
        return None
    return wait_until(ok, 60, interval=0.1, what="the BPF load to end")


def _ships(ctx, a, loki, path, name, n=2000):
    w = SeqWriter(path)
    w.write(n)
    wait_until(lambda: len(set(seqs(loki.entries()))) >= n, 60, interval=0.2,
               what="%d lines of the root-only file" % n)
    got = seqs(loki.entries())
    lost, dups = lib.check_exactly_once(got, n)
    assert not lost and not dups, "lost %d, duplicates %d" % (len(lost), dups)
    ctx.table.append(["least privilege: " + name, n, len(got), dups, len(lost)])


def test_uid_65534_with_only_dac_read_search_tails_a_root_only_file_and_falls_back(ctx):
    _need_root_and_setpriv()
    loki, logs, state, path = _setup(ctx)
    port = free_port()
    a = _setpriv_agent(ctx, ["dac_read_search"], _config(loki, logs, state, port))
    m = _settled(a, port)
    st = _status(a.p.pid)
    assert st["Uid"].split()[:2] == [str(NOBODY)] * 2, st["Uid"]
    assert st["Gid"].split()[0] == str(NOBODY), st["Gid"]
    assert st["NoNewPrivs"] in ("0", "1")
    for tid, eff in _caps_of_every_thread(a.p.pid).items():
        assert eff == 1 << CAP_DAC_READ_SEARCH, "thread %d holds %#x" % (tid, eff)
    backend = [b for b in ("fanotify", "inotify", "poll")
               if metric_value(m, "bpftail_watcher_info", backend=b) == 1]
    assert backend and backend[0] in ("fanotify", "inotify"), \
        [ln for ln in m.splitlines() if "watcher_info" in ln]
    assert metric_value(m, "bpftail_watcher_info", backend="bpf") in (None, 0)
    log = a.log()
    assert "CAP_BPF" in log, "the log says why BPF is not used:\n%s" % log[-3000:]
    _ships(ctx, a, loki, path, "uid 65534 + CAP_DAC_READ_SEARCH")
    with open(os.path.join(state, "positions.yaml")) as f:
        assert "secret.log" in f.read()
    assert a.stop() == 0


def test_uid_65534_with_bpf_capabilities_loads_bpf_then_keeps_only_dac_read_search(ctx):
    _need_root_and_setpriv()
    loki, logs, state, path = _setup(ctx)
    port = free_port()
    a = _setpriv_agent(ctx, ["dac_read_search", "bpf", "perfmon"],
                       _config(loki, logs, state, port))
    m = _settled(a, port)
    assert metric_value(m, "bpftail_watcher_info", backend="bpf") == 1, \
        "BPF must load with CAP_BPF + CAP_PERFMON as uid 65534:\n%s" % a.log()[-3000:]
    # Capabilities are dropped on the loop thread after the load; push threads never had them.
    wait_until(lambda: all(e == 1 << CAP_DAC_READ_SEARCH
                           for e in _caps_of_every_thread(a.p.pid).values()), 20,
               what="every thread down to CAP_DAC_READ_SEARCH (%s)"
               % {t: hex(e) for t, e in _caps_of_every_thread(a.p.pid).items()})
    perm = int(_status(a.p.pid)["CapPrm"], 16)
    assert perm == 1 << CAP_DAC_READ_SEARCH, "permitted set %#x" % perm
    _ships(ctx, a, loki, path, "uid 65534 + BPF caps")
    assert a.stop() == 0


def test_uid_65534_without_capabilities_cannot_read_the_root_only_file_and_says_so(ctx):
    """The control case: without CAP_DAC_READ_SEARCH the same file is refused, and the refusal
    is logged with the path (so the first test proves the capability is what reads it)."""
    _need_root_and_setpriv()
    loki, logs, state, path = _setup(ctx)
    with open(path, "w") as f:
        f.write("seq=00000000 tag=secret.log must not be read\n")
    os.chmod(logs, 0o755)  # the directory is listable: only the file's mode stops it
    port = free_port()
    a = _setpriv_agent(ctx, [], _config(loki, logs, state, port))
    wait_until(lambda: "ermission denied" in a.log(), 30, interval=0.1,
               what="a logged permission error:\n%s" % a.log()[-2000:])
    denied = [ln for ln in a.log().splitlines() if "ermission denied" in ln]
    assert any("secret.log" in ln for ln in denied), denied
    assert a.alive(), "a file it may not read must not stop the agent"
    assert loki.received() == 0
    assert a.stop() == 0

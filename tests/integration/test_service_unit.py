"""The systemd unit in config/: it passes `systemd-analyze verify`, keeps the least-privilege
settings the docs promise (no root, three ambient capabilities, the sandbox), and its
`systemd-analyze security` exposure stays at the level recorded in docs/security.md.

systemd checks that ExecStart's binary exists, so both commands run on a copy of the unit whose
ExecStart names the built binary instead of /usr/bin/bpftail; nothing else is changed.
"""
import os
import re
import shutil
import subprocess

import lib

HERE = os.path.dirname(os.path.abspath(__file__))
UNIT = os.path.join(os.path.dirname(os.path.dirname(HERE)), "config", "bpftail.service")
# The score recorded in docs/security.md; a change to the unit that raises it fails here.
MAX_EXPOSURE = 2.2


def _settings():
    out = {}
    with open(UNIT) as f:
        for ln in f:
            ln = ln.strip()
            if ln and not ln.startswith(("#", "[")) and "=" in ln:
                k, v = ln.split("=", 1)
                out.setdefault(k, []).append(v)
    return out


def _copy(ctx):
    if not shutil.which("systemd-analyze"):
        raise lib.Skip("systemd-analyze is not installed (package systemd)")
    if not os.path.exists(ctx.bpftail):
        raise AssertionError("bpftail not built: %s" % ctx.bpftail)
    d = ctx.tmpdir()
    with open(UNIT) as f:
        text = f.read()
    assert "ExecStart=/usr/bin/bpftail " in text
    path = os.path.join(d, "bpftail.service")
    with open(path, "w") as f:
        f.write(text.replace("ExecStart=/usr/bin/bpftail ", "ExecStart=%s " % ctx.bpftail))
    return d, path


def test_unit_keeps_the_least_privilege_settings(ctx):
    s = _settings()
    one = {k: v[-1] for k, v in s.items()}
    assert one.get("DynamicUser") == "yes" or one.get("User") not in (None, "root", "0")
    assert "User" not in one or one["User"] not in ("root", "0")
    caps = set(one["AmbientCapabilities"].split())
    assert caps == {"CAP_DAC_READ_SEARCH", "CAP_BPF", "CAP_PERFMON"}, caps
    assert set(one["CapabilityBoundingSet"].split()) == caps
    for k, v in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                 ("ProtectKernelTunables", "yes"), ("ProtectKernelModules", "yes"),
                 ("ProtectControlGroups", "yes"), ("RestrictNamespaces", "yes"),
                 ("StateDirectory", "bpftail"), ("SystemCallArchitectures", "native")):
        assert one.get(k) == v, "%s=%s, want %s" % (k, one.get(k), v)
    assert one.get("ProtectHome") in ("yes", "read-only", "tmpfs")
    assert "-positions.file=/var/lib/bpftail/" in one["ExecStart"], \
        "positions must go to the state directory, the only writable place"
    fams = set(one["RestrictAddressFamilies"].split())
    assert fams <= {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}, fams
    assert any(v.startswith("@system-service") for v in s["SystemCallFilter"])


def test_systemd_analyze_verify_passes(ctx):
    d, path = _copy(ctx)
    r = subprocess.run(["systemd-analyze", "verify", path], cwd=d, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out
    assert "bpftail.service" not in out, "verify warns about the unit:\n%s" % out


def test_systemd_analyze_security_exposure(ctx):
    d, path = _copy(ctx)
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", path],
                       cwd=d, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    out = r.stdout.decode(errors="replace")
    if r.returncode != 0 and "offline" in out and "unrecognized" in out:
        raise lib.Skip("this systemd-analyze has no --offline (systemd >= 250 needed)")
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert m, out[-2000:]
    score = float(m.group(1))
    assert score <= MAX_EXPOSURE, "exposure %.1f > %.1f recorded in docs/security.md:\n%s" % (
        score, MAX_EXPOSURE, out)

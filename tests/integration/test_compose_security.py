"""docker-compose.yml is not an open door (no Docker needed: the file is read with PyYAML).

Every published port is bound to 127.0.0.1 unless STACK_BIND_ADDRESS says otherwise, Grafana has
no anonymous access, keeps its login form and sign-up closed, and takes its admin password from
GRAFANA_ADMIN_PASSWORD; bpftail runs with only the capabilities it needs. When docker-compose is
installed, its own rendering of the file is checked too (with and without STACK_BIND_ADDRESS).
"""
import os
import re
import shutil
import subprocess

import lib

BIND = re.compile(r"^\$\{STACK_BIND_ADDRESS:-127\.0\.0\.1\}:(\d+):(\d+)$")


def _compose(ctx):
    try:
        import yaml
    except ImportError:
        raise lib.Skip("PyYAML is missing (python3-yaml; scripts/deps.sh test installs it)")
    with open(os.path.join(ctx.root, "docker-compose.yml")) as f:
        return yaml.safe_load(f)


def test_every_published_port_is_bound_to_localhost_by_default(ctx):
    doc = _compose(ctx)
    published = []
    for name, svc in doc["services"].items():
        for p in svc.get("ports", []):
            assert isinstance(p, str), "%s: long port syntax not expected: %r" % (name, p)
            m = BIND.match(p)
            assert m, "%s publishes %r: want ${STACK_BIND_ADDRESS:-127.0.0.1}:HOST:CONTAINER" % (
                name, p)
            published.append((name, int(m.group(1))))
        assert svc.get("network_mode") != "host", "%s on the host's network publishes all" % name
    assert sorted(published) == [("bpftail", 9080), ("grafana", 3000), ("loki", 3100),
                                 ("prometheus", 9090)], published


def test_grafana_has_no_anonymous_access_and_a_login_with_a_password_from_the_environment(ctx):
    env = _compose(ctx)["services"]["grafana"]["environment"]
    anon = str(env.get("GF_AUTH_ANONYMOUS_ENABLED", "false")).lower()
    if anon == "true":
        assert env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer", env
    else:
        assert anon == "false", env
    assert str(env.get("GF_AUTH_DISABLE_LOGIN_FORM", "false")).lower() == "false", env
    assert str(env.get("GF_USERS_ALLOW_SIGN_UP", "false")).lower() == "false", env
    assert env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") not in ("Admin", "Editor"), env
    pw = env.get("GF_SECURITY_ADMIN_PASSWORD", "")
    assert re.match(r"^\$\{GRAFANA_ADMIN_PASSWORD:-[^}]+\}$", pw), \
        "the admin password must come from GRAFANA_ADMIN_PASSWORD: %r" % pw
    default = pw[len("${GRAFANA_ADMIN_PASSWORD:-"):-1]
    with open(os.path.join(ctx.root, "docker-compose.yml")) as f:
        text = f.read()
    assert "GRAFANA_ADMIN_PASSWORD" in text.split("services:")[0] and "change" in text, \
        "the header comment documents the password and that its default %r is to change" % default
    with open(os.path.join(ctx.root, "README.md")) as f:
        readme = f.read()
    for word in ("GRAFANA_ADMIN_PASSWORD", "STACK_BIND_ADDRESS"):
        assert word in readme, "README documents %s" % word


def test_bpftail_in_the_stack_has_only_the_capabilities_it_needs(ctx):
    svc = _compose(ctx)["services"]["bpftail"]
    assert svc.get("privileged") is not True
    assert svc.get("cap_drop") == ["ALL"], svc.get("cap_drop")
    assert set(svc.get("cap_add", [])) <= {"SYS_ADMIN", "BPF", "PERFMON", "DAC_READ_SEARCH"}
    assert "no-new-privileges:true" in svc.get("security_opt", [])
    assert svc.get("user") in ("root", "0"), "the image is not root by default; the stack asks"
    with open(os.path.join(ctx.root, "Dockerfile")) as f:
        users = [ln.split()[1] for ln in f if ln.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the image runs as non-root: %s" % users
    # The stack's root keeps no CAP_DAC_OVERRIDE or CAP_FOWNER: the state directory (a named
    # volume takes the image's owner and mode) must stay root's to write.
    with open(os.path.join(ctx.root, "Dockerfile")) as f:
        text = f.read()
    assert "chown root:bpftail /var/lib/bpftail" in text and "chmod 0770 /var/lib/bpftail" in text
    for v in svc.get("volumes", []):
        src, dst = v.split(":")[:2]
        if src.startswith("/"):  # host paths are read-only
            assert v.endswith(":ro"), "host path mounted writable: %s" % v


def test_docker_compose_renders_localhost_by_default_and_the_given_address(ctx):
    exe = shutil.which("docker-compose")
    if not exe:
        raise lib.Skip("docker-compose is not installed (scripts/deps.sh docker installs it)")
    import yaml

    def render(**env):
        e = {k: v for k, v in os.environ.items()
             if k not in ("STACK_BIND_ADDRESS", "GRAFANA_ADMIN_PASSWORD")}
        e.update(env)
        r = subprocess.run([exe, "-f", os.path.join(ctx.root, "docker-compose.yml"), "config"],
                           cwd=ctx.tmpdir(), env=e, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return yaml.safe_load(r.stdout)["services"]

    def ports(svcs):
        return sorted(p if isinstance(p, str) else "%s:%s:%s" % (
            p.get("host_ip", ""), p["published"], p["target"])
            for s in svcs.values() for p in s.get("ports", []))
    dflt = render()
    assert all(p.startswith("127.0.0.1:") for p in ports(dflt)), ports(dflt)
    assert dflt["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "admin"
    opened = render(STACK_BIND_ADDRESS="0.0.0.0", GRAFANA_ADMIN_PASSWORD="s3cret-x")
    assert all(p.startswith("0.0.0.0:") for p in ports(opened)), ports(opened)
    assert opened["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "s3cret-x"

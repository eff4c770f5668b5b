"""The docker-compose stack's files: dashboard queries parse with Grafana's LogQL grammar, the
compose file and provisioning are consistent."""
import json
import os
import shutil
import subprocess

from lib import Skip


def test_dashboard_queries_parse_with_grafanas_logql_grammar(ctx):
    stack = os.path.join(ctx.root, "tests", "stack")
    if not shutil.which("npm") or not shutil.which("node"):
        raise Skip("node and npm are needed to fetch @grafana/lezer-logql (apt-get install nodejs npm)")
    if not os.path.isdir(os.path.join(stack, "node_modules", "@grafana", "lezer-logql")):
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=stack,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, "npm install failed: %s" % r.stderr[-2000:]
    r = subprocess.run(["node", os.path.join(stack, "check_logql.cjs"),
                        os.path.join(ctx.root, "grafana", "dashboards")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "bad" in r.stdout and " 0 bad" in r.stdout, r.stdout


def test_explore_query_from_readme_is_in_a_dashboard(ctx):
    found = False
    ddir = os.path.join(ctx.root, "grafana", "dashboards")
    for f in os.listdir(ddir):
        d = json.load(open(os.path.join(ddir, f)))
        for p in d["panels"]:
            for t in p.get("targets", []):
                if t.get("expr") == '{job="varlogs"} |= "Network"':
                    found = True
    assert found


def test_compose_mounts_every_provisioned_file(ctx):
    compose = open(os.path.join(ctx.root, "docker-compose.yml")).read()
    for rel in ["./config/loki.yaml", "./config/stack.yaml", "./config/prometheus.yml",
                "./grafana/provisioning", "./grafana/dashboards"]:
        assert rel in compose, rel
        assert os.path.exists(os.path.join(ctx.root, rel)), rel

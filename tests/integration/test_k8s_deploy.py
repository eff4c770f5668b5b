"""The Kubernetes deployment files (deploy/kubernetes): kubectl accepts them (a client-side dry
run against the test API server's discovery), every field they use is a field of its kind with
the right type (a schema of the Kubernetes API fields used, written from the API reference),
the names that refer to each other match, and the ConfigMap's config is one bpftail accepts."""
import os
import re
import shutil
import subprocess

import yaml

from k8s_api import FakeKubeAPI

HERE = os.path.dirname(os.path.abspath(__file__))
DEPLOY = os.path.join(os.path.dirname(os.path.dirname(HERE)), "deploy", "kubernetes")

STR, INT, BOOL = str, int, bool
QUANTITY = (str, int)
META = {"name": STR, "namespace": STR, "labels": {"*": STR}, "annotations": {"*": STR}}
CAPS = {"AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE",
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER",
        "KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN",
        "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP", "SETGID",
        "SETPCAP", "SETUID", "SYSLOG", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE",
        "SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME",
        "SYS_TTY_CONFIG", "WAKE_ALARM", "ALL"}
PROBE = {"httpGet": {"path": STR, "port": (str, int), "scheme": ("HTTP", "HTTPS")},
         "initialDelaySeconds": INT, "periodSeconds": INT, "timeoutSeconds": INT,
         "failureThreshold": INT, "successThreshold": INT}
CONTAINER = {
    "name": STR, "image": STR, "imagePullPolicy": ("Always", "IfNotPresent", "Never"),
    "args": [STR], "command": [STR],
    "env": [{"name": STR, "value": STR,
             "valueFrom": {"fieldRef": {"fieldPath": STR, "apiVersion": STR}}}],
    "ports": [{"name": STR, "containerPort": INT, "protocol": ("TCP", "UDP", "SCTP")}],
    "readinessProbe": PROBE, "livenessProbe": PROBE,
    "resources": {"requests": {"cpu": QUANTITY, "memory": QUANTITY},
                  "limits": {"cpu": QUANTITY, "memory": QUANTITY}},
    "securityContext": {"runAsUser": INT, "runAsGroup": INT, "runAsNonRoot": BOOL,
                        "readOnlyRootFilesystem": BOOL, "allowPrivilegeEscalation": BOOL,
                        "privileged": BOOL,
                        "capabilities": {"add": [tuple(sorted(CAPS))],
                                         "drop": [tuple(sorted(CAPS))]}},
    "volumeMounts": [{"name": STR, "mountPath": STR, "readOnly": BOOL}],
}
SCHEMA = {
    ("v1", "Namespace"): {"metadata": META},
    ("v1", "ServiceAccount"): {"metadata": META},
    ("v1", "ConfigMap"): {"metadata": META, "data": {"*": STR}},
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): {
        "metadata": META,
        "rules": [{"apiGroups": [STR], "resources": [STR], "verbs": [STR]}]},
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): {
        "metadata": META,
        "roleRef": {"apiGroup": STR, "kind": ("ClusterRole", "Role"), "name": STR},
        "subjects": [{"kind": ("ServiceAccount", "User", "Group"), "name": STR,
                      "namespace": STR}]},
    ("apps/v1", "DaemonSet"): {
        "metadata": META,
        "spec": {
            "selector": {"matchLabels": {"*": STR}},
            "updateStrategy": {"type": ("RollingUpdate", "OnDelete"),
                               "rollingUpdate": {"maxUnavailable": (str, int),
                                                 "maxSurge": (str, int)}},
            "template": {
                "metadata": META,
                "spec": {
                    "serviceAccountName": STR, "priorityClassName": STR,
                    "terminationGracePeriodSeconds": INT, "hostPID": BOOL, "hostNetwork": BOOL,
                    "tolerations": [{"operator": ("Exists", "Equal"), "key": STR, "value": STR,
                                     "effect": ("NoSchedule", "PreferNoSchedule", "NoExecute")}],
                    "containers": [CONTAINER],
                    "volumes": [{"name": STR, "configMap": {"name": STR},
                                 "hostPath": {"path": STR, "type": (
                                     "", "DirectoryOrCreate", "Directory", "FileOrCreate",
                                     "File", "Socket", "CharDevice", "BlockDevice")}}],
                }}}},
}


def check(node, schema, where, errors):
    if isinstance(schema, dict):
        if not isinstance(node, dict):
            errors.append("%s: expected a map" % where)
            return
        for k, v in node.items():
            sub = schema.get(k, schema.get("*"))
            if sub is None:
                errors.append("%s.%s: not a field of this object" % (where, k))
            else:
                check(v, sub, "%s.%s" % (where, k), errors)
    elif isinstance(schema, list):
        if not isinstance(node, list):
            errors.append("%s: expected a list" % where)
            return
        for i, v in enumerate(node):
            check(v, schema[0], "%s[%d]" % (where, i), errors)
    elif isinstance(schema, tuple) and all(isinstance(x, str) for x in schema):
        if node not in schema:
            errors.append("%s: %r is not one of %s" % (where, node, ", ".join(schema)))
    elif isinstance(schema, tuple):
        if not isinstance(node, schema) or isinstance(node, bool) and bool not in schema:
            errors.append("%s: %r has the wrong type" % (where, node))
    elif schema is INT:
        if not isinstance(node, int) or isinstance(node, bool):
            errors.append("%s: %r is not an integer" % (where, node))
    elif not isinstance(node, schema):
        errors.append("%s: %r is not a %s" % (where, node, schema.__name__))


def manifests():
    docs = []
    for name in sorted(os.listdir(DEPLOY)):
        if name.endswith(".yaml"):
            with open(os.path.join(DEPLOY, name)) as f:
                docs += [(name, d) for d in yaml.safe_load_all(f) if d]
    return docs


def kubectl():
    k = os.environ.get("BT_KUBECTL") or shutil.which("kubectl")
    if not k:
        raise AssertionError("kubectl not found: install Debian's kubernetes-client "
                             "(scripts/deps.sh test) or set BT_KUBECTL")
    return k


def test_k8s_manifests_pass_kubectl_dry_run(ctx):
    api = FakeKubeAPI().start()
    ctx.cleanups.append(api.stop)
    k = kubectl()
    ver = subprocess.run([k, "version", "--client"], capture_output=True, text=True)
    r = subprocess.run([k, "--server", api.url, "apply", "--dry-run=client", "--validate=false",
                        "-f", DEPLOY], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (ver.stdout, r.stdout, r.stderr)
    for kind in ("namespace", "serviceaccount", "clusterrole.rbac.authorization.k8s.io",
                 "clusterrolebinding.rbac.authorization.k8s.io", "configmap",
                 "daemonset.apps"):
        assert "%s/bpftail created (dry run)" % kind in r.stdout, r.stdout


def test_k8s_manifests_fields_and_references(ctx):
    docs = manifests()
    errors = []
    by_kind = {}
    for name, d in docs:
        key = (d.get("apiVersion"), d.get("kind"))
        assert key in SCHEMA, "%s: unexpected %s" % (name, key)
        body = {k: v for k, v in d.items() if k not in ("apiVersion", "kind")}
        check(body, SCHEMA[key], "%s %s" % (name, d["kind"]), errors)
        by_kind[d["kind"]] = d
    assert not errors, "\n".join(errors)
    assert set(by_kind) == {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                            "ConfigMap", "DaemonSet"}
    ns = by_kind["Namespace"]["metadata"]["name"]
    for kind in ("ServiceAccount", "ConfigMap", "DaemonSet"):
        assert by_kind[kind]["metadata"]["namespace"] == ns, kind

    rules = by_kind["ClusterRole"]["rules"]
    granted = {(g, res, verb) for r in rules for g in r["apiGroups"] for res in r["resources"]
               for verb in r["verbs"]}
    # What each role of kubernetes_sd_configs lists and watches (k8s_sd.h), read-only.
    for g, res in (("", "pods"), ("", "nodes"), ("", "services"), ("", "endpoints"),
                   ("discovery.k8s.io", "endpointslices"), ("networking.k8s.io", "ingresses")):
        for verb in ("get", "list", "watch"):
            assert (g, res, verb) in granted, (g, res, verb)
    assert {verb for _, _, verb in granted} == {"get", "list", "watch"}, \
        "the agent only reads the API"
    b = by_kind["ClusterRoleBinding"]
    assert b["roleRef"]["name"] == by_kind["ClusterRole"]["metadata"]["name"]
    assert b["subjects"][0] == {"kind": "ServiceAccount", "namespace": ns,
                                "name": by_kind["ServiceAccount"]["metadata"]["name"]}

    ds = by_kind["DaemonSet"]["spec"]
    assert ds["selector"]["matchLabels"].items() <= ds["template"]["metadata"]["labels"].items()
    assert ds["updateStrategy"]["type"] == "RollingUpdate"
    pod = ds["template"]["spec"]
    assert pod["serviceAccountName"] == by_kind["ServiceAccount"]["metadata"]["name"]
    assert {"operator": "Exists"} in pod["tolerations"], "must run on every node"
    c = pod["containers"][0]
    vols = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    for m in c["volumeMounts"]:
        assert m["name"] in vols, m
    for p in ("/var/log/pods", "/var/lib/docker/containers"):
        assert mounts[p].get("readOnly") is True, p
        assert vols[mounts[p]["name"]]["hostPath"]["path"] == p
    caps = c["securityContext"]["capabilities"]
    assert {"BPF", "PERFMON", "DAC_READ_SEARCH"} <= set(caps["add"]) and caps["drop"] == ["ALL"]
    env = {e["name"]: e for e in c["env"]}
    assert env["HOSTNAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    for q in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][q]), q
    cm = by_kind["ConfigMap"]
    conf_vol = [v for v in pod["volumes"] if "configMap" in v][0]
    assert conf_vol["configMap"]["name"] == cm["metadata"]["name"]
    conf_dir = [m["mountPath"] for m in c["volumeMounts"] if m["name"] == conf_vol["name"]][0]
    cfg_file = [a.split("=", 1)[1] for a in c["args"] if a.startswith("-config.file=")][0]
    assert os.path.dirname(cfg_file) == conf_dir
    cfg = yaml.safe_load(cm["data"][os.path.basename(cfg_file)])
    port = cfg["server"]["http_listen_port"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    probe = c["readinessProbe"]["httpGet"]
    assert probe["path"] == "/ready"
    assert ports[probe["port"]] == port
    pos_dir = os.path.dirname(cfg["positions"]["filename"])
    assert pos_dir in mounts and "hostPath" in vols[mounts[pos_dir]["name"]], pos_dir
    assert not mounts[pos_dir].get("readOnly")
    job = cfg["scrape_configs"][0]
    assert job["job_name"] == "kubernetes-pods" and job["pipeline_stages"] == [{"cri": {}}]
    assert job["kubernetes_sd_configs"][0]["role"] == "pod"
    paths = [r["replacement"] for r in job["relabel_configs"]
             if r.get("target_label") == "__path__"]
    assert paths and all(p.startswith("/var/log/pods/") for p in paths)
    targets = {r.get("target_label") for r in job["relabel_configs"]}
    assert {"namespace", "pod", "container", "app", "job", "__path__"} <= targets


def test_k8s_configmap_config_is_accepted(ctx):
    cm = [d for _, d in manifests() if d["kind"] == "ConfigMap"][0]
    d = ctx.tmpdir()
    path = os.path.join(d, "config.yaml")
    with open(path, "w") as f:
        f.write(cm["data"]["config.yaml"])
    env = dict(os.environ, HOSTNAME="node1")
    env.pop("KUBERNETES_SERVICE_HOST", None)
    r = subprocess.run([ctx.bpftail, "-config.file", path, "-config.expand-env=true",
                        "-check-syntax"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([ctx.bpftail, "-config.file", path, "-config.expand-env=true",
                        "-print-config-stderr", "-check-syntax"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert re.search(r"spec\.nodeName=node1", r.stderr), r.stderr

"""kubernetes_sd_configs end to end, against a test API server that replays responses recorded
from a real cluster (k8s_api.py, tests/data/k8s): the promtail Helm chart's kubernetes-pods job
(cri stage, its relabel rules) tails a fake /var/log/pods tree built from a real CRI log. Pods
appear, change labels and go away; a deleted pod's file is read to its end; a 410 Gone leads to
a re-list and nothing is sent twice."""
import json
import os
import shutil
import time
from datetime import datetime, timezone

from k8s_api import DATA, FakeKubeAPI, load, load_events
from lib import Agent, FakeLoki, free_port, metric_value, wait_until

TOKEN = "test-token-1"


def chart_config(loki, d, port, api, extra_sd=""):
    """The chart's kubernetes-pods job as the chart writes it; only the /var/log/pods root, the
    API server address and the token file are this test's."""
    return """server:
  http_listen_port: %(port)d
  grpc_listen_port: 0
positions:
  filename: %(d)s/positions.yaml
  sync_period: 200ms
clients:
  - url: %(url)s
    batchwait: 100ms
bpftail:
  rotate_grace: 1s
scrape_configs:
  - job_name: kubernetes-pods
    pipeline_stages:
      - cri: {}
    kubernetes_sd_configs:
      - role: pod
        api_server: %(api)s
        bearer_token_file: %(d)s/token
        selectors:
          - role: pod
            field: spec.nodeName=${HOSTNAME}
%(extra_sd)s    relabel_configs:
      - source_labels:
          - __meta_kubernetes_pod_controller_name
        regex: ([0-9a-z-.]+?)(-[0-9a-f]{8,10})?
        action: replace
        target_label: __tmp_controller_name
      - source_labels:
          - __meta_kubernetes_pod_label_app_kubernetes_io_name
          - __meta_kubernetes_pod_label_app
          - __tmp_controller_name
          - __meta_kubernetes_pod_name
        regex: ^;*([^;]+)(;.*)?$
        action: replace
        target_label: app
      - source_labels:
          - __meta_kubernetes_pod_label_app_kubernetes_io_instance
          - __meta_kubernetes_pod_label_instance
        regex: ^;*([^;]+)(;.*)?$
        action: replace
        target_label: instance
      - source_labels:
          - __meta_kubernetes_pod_label_app_kubernetes_io_component
          - __meta_kubernetes_pod_label_component
        regex: ^;*([^;]+)(;.*)?$
        action: replace
        target_label: component
      - action: replace
        source_labels:
          - __meta_kubernetes_pod_node_name
        target_label: node_name
      - action: replace
        source_labels:
          - __meta_kubernetes_namespace
        target_label: namespace
      - action: replace
        replacement: $1
        separator: /
        source_labels:
          - namespace
          - app
        target_label: job
      - action: replace
        source_labels:
          - __meta_kubernetes_pod_name
        target_label: pod
      - action: replace
        source_labels:
          - __meta_kubernetes_pod_container_name
        target_label: container
      - action: replace
        replacement: %(pods)s/*$1/*.log
        separator: /
        source_labels:
          - __meta_kubernetes_pod_uid
          - __meta_kubernetes_pod_container_name
        target_label: __path__
      - action: replace
        regex: true/(.*)
        replacement: %(pods)s/*$1/*.log
        separator: /
        source_labels:
          - __meta_kubernetes_pod_annotationpresent_kubernetes_io_config_hash
          - __meta_kubernetes_pod_annotation_kubernetes_io_config_hash
          - __meta_kubernetes_pod_container_name
        target_label: __path__
""" % dict(port=port, d=d, url=loki.url, api=api.url, pods=os.path.join(d, "pods"),
           extra_sd=extra_sd)


def cri(text, stream="stdout"):
    ts = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    return "%s %s F %s\n" % (ts, stream, text)


class Tree:
    """/var/log/pods/<namespace>_<pod>_<uid>/<container>/0.log, as the kubelet lays it out."""

    def __init__(self, root):
        self.root = root

    def path(self, pod, container):
        md = pod["metadata"]
        return os.path.join(self.root, "%s_%s_%s" % (md["namespace"], md["name"], md["uid"]),
                            container, "0.log")

    def write(self, pod, container, *texts):
        p = self.path(pod, container)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "a") as f:
            for t in texts:
                f.write(cri(t))


def pods_by_name(name):
    return {p["metadata"]["name"]: p for p in load(name)["items"]}


def entries_by_line(loki):
    return {e["line"]: e for e in loki.entries()}


def labels_of(e):
    import re
    return dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', e["labels"]))


def start(ctx, api, d, extra_sd=""):
    loki = FakeLoki(ctx)
    with open(os.path.join(d, "token"), "w") as f:
        f.write(TOKEN + "\n")
    port = free_port()
    agent = Agent(ctx, chart_config(loki, d, port, api, extra_sd),
                  extra_args=["-config.expand-env=true"], env={"HOSTNAME": "node1"}).start()
    return loki, agent, port


def test_k8s_chart_config_pods_appear_change_and_go(ctx):
    api = FakeKubeAPI(token=TOKEN, page=2).start()  # the list comes in pages of two pods
    ctx.cleanups.append(api.stop)
    api.load_list("pods_list_node1_running.json")
    d = ctx.tmpdir()
    tree = Tree(os.path.join(d, "pods"))
    pods = pods_by_name("pods_list_node1_running.json")
    for name, pod in pods.items():
        for c in pod["spec"]["containers"]:
            if c["name"] != "sidecar":
                tree.write(pod, c["name"], "%s/%s line 1" % (name, c["name"]))
    # The sidecar's log is the real one containerd wrote.
    side = tree.path(pods["web-1"], "sidecar")
    os.makedirs(os.path.dirname(side))
    shutil.copy(os.path.join(DATA, "var-log-pods", "cri-sample-0.log"), side)

    loki, agent, port = start(ctx, api, d)
    want = {"api-1/api": "api", "db-1/db": "db", "log-agent-gj4ql/agent": "log-agent",
            "web-1/web": "web"}
    wait_until(lambda: all(k + " line 1" in entries_by_line(loki) for k in want), 30,
               interval=0.2, what="the first line of every container")
    got = entries_by_line(loki)
    for k, app in want.items():
        pod, container = k.split("/")
        lab = labels_of(got[k + " line 1"])
        assert lab["namespace"] == "logs" and lab["pod"] == pod and lab["container"] == container, lab
        assert lab["app"] == app and lab["job"] == "logs/" + app, lab
        assert lab["node_name"] == "node1", lab
        assert lab["filename"] == tree.path(pods[pod], container), lab
        assert "stream" not in lab or lab["stream"] == "stdout"
    wait_until(lambda: sum(1 for e in loki.entries() if e["line"] == "sidecar tick") == 20, 20,
               interval=0.2, what="the 20 lines of the recorded CRI log")
    side_e = [e for e in loki.entries() if e["line"] == "sidecar tick"]
    assert labels_of(side_e[0])["container"] == "sidecar"
    assert labels_of(side_e[0])["app"] == "web"
    # The chart's field selector, from $HOSTNAME, and a watch with bookmarks from the list.
    assert api.count(lambda r: r[1].get("fieldSelector") == "spec.nodeName=node1" and
                     "watch" not in r[1] and r[1].get("limit") == "500") >= 1
    assert api.count(lambda r: r[1].get("continue") == "2") >= 1, "the second page"
    wait_until(lambda: api.count(lambda r: r[1].get("watch") == "1" and
                                 r[1].get("allowWatchBookmarks") == "true" and
                                 r[1].get("resourceVersion") == "449"), 10, what="a watch")

    # A pod appears: cache-1 is Pending (no IP, no target), then Running.
    events = load_events("pods_watch_node1_running.jsonl")
    cache = events[2]["object"]
    tree.write(cache, "cache", "cache-1 line 1")
    for ev in events[:3]:
        api.push(ev)
    wait_until(lambda: "cache-1 line 1" in entries_by_line(loki), 20, interval=0.2,
               what="the new pod's line")
    lab = labels_of(entries_by_line(loki)["cache-1 line 1"])
    assert lab["pod"] == "cache-1" and lab["app"] == "cache" and lab["job"] == "logs/cache", lab

    # A pod's labels change: its file goes on under the new labels, each line once.
    web = json.loads(json.dumps(pods["web-1"]))
    web["metadata"]["labels"]["app"] = "web-v2"
    tree.write(pods["web-1"], "web", "web-1 before relabel")
    wait_until(lambda: "web-1 before relabel" in entries_by_line(loki), 20, interval=0.2,
               what="a line before the label change")
    api.push({"type": "MODIFIED", "object": web})
    wait_until(lambda: "handed to the target's new labels" in agent.log(), 20, interval=0.2,
               what="the file to move to the new label set")
    tree.write(pods["web-1"], "web", "web-1 after relabel")
    wait_until(lambda: "web-1 after relabel" in entries_by_line(loki), 20, interval=0.2,
               what="a line after the label change")
    lab = labels_of(entries_by_line(loki)["web-1 after relabel"])
    assert lab["app"] == "web-v2" and lab["job"] == "logs/web-v2", lab
    assert labels_of(entries_by_line(loki)["web-1 before relabel"])["app"] == "web"

    # A pod is deleted while its container still writes: every line written before its file
    # goes quiet is read; after that, the target is gone.
    for ev in events[3:6]:  # graceful deletion: MODIFIED with deletionTimestamp
        api.push(ev)
    for i in range(5):
        tree.write(pods["db-1"], "db", "db-1 during deletion %d" % i)
    api.push(events[6])  # DELETED
    wait_until(lambda: "target retired" in agent.log(), 20, interval=0.2, what="the retirement")
    for i in range(10):  # still growing after the DELETED event
        tree.write(pods["db-1"], "db", "db-1 after DELETED %d" % i)
        time.sleep(0.1)
    db_uid = pods["db-1"]["metadata"]["uid"]
    wait_until(lambda: any("retired target removed" in ln and db_uid in ln
                           for ln in agent.log().splitlines()), 20, interval=0.2,
               what="the deleted pod's file read to its end")
    got = entries_by_line(loki)
    for i in range(5):
        assert "db-1 during deletion %d" % i in got
    for i in range(10):
        assert "db-1 after DELETED %d" % i in got, "line %d written after DELETED is lost" % i
    tree.write(pods["db-1"], "db", "db-1 long after deletion")
    tree.write(pods["api-1"], "api", "api-1 marker")
    wait_until(lambda: "api-1 marker" in entries_by_line(loki), 20, interval=0.2, what="marker")
    time.sleep(0.5)
    assert "db-1 long after deletion" not in entries_by_line(loki)

    # 410 Gone: the watch expired; bpftail lists again; no target is added twice.
    before = loki.received()
    lists = api.count(lambda r: "watch" not in r[1])
    api.expire()
    wait_until(lambda: api.count(lambda r: "watch" not in r[1]) > lists, 20, interval=0.2,
               what="a new list after 410")
    assert "410 Gone" in agent.log()
    tree.write(pods["api-1"], "api", "api-1 after relist")
    wait_until(lambda: "api-1 after relist" in entries_by_line(loki), 20, interval=0.2,
               what="a line after the re-list")
    time.sleep(0.5)
    assert loki.received() == before + 1, "the re-list made something be sent again"
    m = agent.metrics(port)
    assert metric_value(m, "bpftail_kubernetes_sd_relists_total") >= 1
    assert metric_value(m, "bpftail_kubernetes_sd_events_total", type="DELETED") == 1
    assert metric_value(m, "bpftail_kubernetes_sd_events_total", type="ERROR") == 1  # the 410
    assert metric_value(m, "bpftail_kubernetes_sd_targets") == 5  # 5 containers + cache - db
    assert agent.stop() == 0
    assert loki.received() == loki.count(), "duplicates were pushed"
    assert api.unauthorized == 0


def test_k8s_token_rotation_http_410_and_backoff(ctx):
    """A wrong token is refused (401) and retried with backoff; the rotated token file is read
    again for the next request. A watch answered with HTTP 410 lists again."""
    api = FakeKubeAPI(token=TOKEN, http_410_on_watch=True).start()
    ctx.cleanups.append(api.stop)
    api.load_list("pods_list_node1_running.json")
    d = ctx.tmpdir()
    tree = Tree(os.path.join(d, "pods"))
    pods = pods_by_name("pods_list_node1_running.json")
    tree.write(pods["api-1"], "api", "api-1 first")
    loki, agent, port = start(ctx, api, d)
    wait_until(lambda: "api-1 first" in entries_by_line(loki), 30, interval=0.2,
               what="the pod's first line")
    wait_until(lambda: api.count(lambda r: r[1].get("watch") == "1"), 10, what="a watch")
    time.sleep(1.5)  # a watch that ends at once is a failure (backoff), not a reason to watch on
    lists = api.count(lambda r: "watch" not in r[1])
    api.expire()  # the watch ends; the next one, from its old version, is answered HTTP 410
    wait_until(lambda: api.count(lambda r: "watch" not in r[1]) > lists, 20, interval=0.2,
               what="a new list after HTTP 410")
    wait_until(lambda: "HTTP 410" in agent.log(), 10, what="the 410 in the log")
    with open(os.path.join(d, "token"), "w") as f:
        f.write("expired-token\n")
    api.expire()  # the watch ends; the next requests carry the bad token
    wait_until(lambda: api.unauthorized >= 2, 20, interval=0.2, what="refused requests")
    assert "msg=\"list failed\"" in agent.log() or "msg=\"watch failed\"" in agent.log()
    with open(os.path.join(d, "token.tmp"), "w") as f:
        f.write(TOKEN + "\n")
    os.rename(os.path.join(d, "token.tmp"), os.path.join(d, "token"))
    refused = api.unauthorized
    watches = api.count(lambda r: r[1].get("watch") == "1")
    wait_until(lambda: api.count(lambda r: r[1].get("watch") == "1") > watches + 0, 40,
               interval=0.2, what="a watch once the token is good again")
    refused = api.unauthorized
    tree.write(pods["api-1"], "api", "api-1 second")
    wait_until(lambda: "api-1 second" in entries_by_line(loki), 20, interval=0.2,
               what="a later line")
    time.sleep(3)
    assert api.unauthorized == refused, "the rotated token was not used"
    # A line that is not an event: the stream is not trusted any more, the pods are listed again.
    lists = api.count(lambda r: "watch" not in r[1])
    api.push_raw('{"type":"MODIFIED","object":{"kind":"Pod","metadata":{"na')
    wait_until(lambda: api.count(lambda r: "watch" not in r[1]) > lists, 20, interval=0.2,
               what="a list after a broken event")
    assert "watch event not understood, listing again" in agent.log()
    tree.write(pods["api-1"], "api", "api-1 third")
    wait_until(lambda: "api-1 third" in entries_by_line(loki), 20, interval=0.2,
               what="a line after the re-list")
    m = agent.metrics(port)
    assert metric_value(m, "bpftail_kubernetes_sd_failures_total") >= 1
    assert agent.stop() == 0
    assert loki.received() == loki.count(), "duplicates were pushed"


def test_k8s_other_roles_start_and_unknown_ones_are_refused(ctx):
    """Configs with the roles service, endpoints, endpointslice and ingress pass the check, as
    in promtail; a role Prometheus does not know is refused with its name."""
    for role, ok in (("service", True), ("endpoints", True), ("endpointslice", True),
                     ("ingress", True), ("endpoint", False)):
        cfg = """clients:
  - url: http://127.0.0.1:1/loki/api/v1/push
scrape_configs:
  - job_name: j
    kubernetes_sd_configs:
      - role: %s
        api_server: http://127.0.0.1:1
""" % role
        agent = Agent(ctx, cfg, extra_args=["-check-syntax"]).start()
        rc = agent.p.wait(20)
        assert (rc == 0) == ok, (role, agent.log())
        if not ok:
            assert "unknown role endpoint" in agent.log(), agent.log()


def test_k8s_role_endpoints_targets_carry_service_and_pod_labels(ctx):
    """Role endpoints: one target per address and port, with the endpoint labels, the labels
    of the Service of the same name and those of the Pod an address refers to (both watched
    too): a service or pod label change reaches the targets."""
    api = FakeKubeAPI().start()
    ctx.cleanups.append(api.stop)
    api.load_list("pods_list_node1_running.json")  # pods must not show up as endpoints
    # The endpoints' second address is pod web-2: made of web-1 as the cluster would run it.
    web2 = json.loads(json.dumps(pods_by_name("pods_list_node1_running.json")["web-1"]))
    web2["metadata"].update(name="web-2", uid="6d1f0c8b-2e3a-4b5c-8d7e-1f2a3b4c5d06")
    web2["metadata"]["labels"]["tier"] = "back"
    web2["status"]["podIP"] = "10.88.0.23"
    with api.cond:
        api.pods["logs/web-2"] = web2
    api.load_objects("Service", load("services_list.json"))
    api.load_objects("Endpoints", load("endpoints_list.json"))
    port = free_port()
    d = ctx.tmpdir()
    os.makedirs(os.path.join(d, "ep"))
    for name in ("web-1", "web-2"):
        with open(os.path.join(d, "ep", name + ".log"), "w") as f:
            f.write("from %s\n" % name)
    loki = FakeLoki(ctx)
    cfg = """server:
  http_listen_port: %(port)d
  grpc_listen_port: 0
positions:
  filename: %(d)s/positions.yaml
clients:
  - url: %(url)s
    batchwait: 100ms
scrape_configs:
  - job_name: endpoints
    kubernetes_sd_configs:
      - role: endpoints
        api_server: %(api)s
        namespaces:
          names: [logs]
        selectors:
          - {role: service, label: app.kubernetes.io/part-of}
          - {role: pod, field: spec.nodeName=node1}
    relabel_configs:
      - source_labels: [__meta_kubernetes_endpoint_port_name]
        regex: http
        action: keep
      - source_labels: [__address__]
        target_label: addr
      - source_labels: [__meta_kubernetes_endpoint_ready]
        target_label: ready
      - source_labels: [__meta_kubernetes_endpoints_name]
        target_label: endpoints
      - source_labels: [__meta_kubernetes_service_label_app_kubernetes_io_part_of]
        target_label: part
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      - source_labels: [__meta_kubernetes_pod_container_name]
        target_label: container
      - source_labels: [__meta_kubernetes_pod_label_tier]
        target_label: tier
      - source_labels: [__meta_kubernetes_endpoint_address_target_name]
        replacement: %(d)s/ep/$1.log
        target_label: __path__
""" % dict(d=d, url=loki.url, api=api.url, port=port)
    agent = Agent(ctx, cfg).start()

    def shop_lines():
        return {ln: labels_of(e) for ln, e in entries_by_line(loki).items()}
    wait_until(lambda: "from web-1" in shop_lines() and "from web-2" in shop_lines() and
               shop_lines()["from web-1"].get("part") == "shop", 20, interval=0.2,
               what="both endpoint targets with the service's labels")
    l1, l2 = shop_lines()["from web-1"], shop_lines()["from web-2"]
    assert l1["addr"] == "10.88.0.19:8080" and l1["ready"] == "true", l1
    assert l1["endpoints"] == "web" and l1["part"] == "shop", l1
    assert l2["addr"] == "10.88.0.23:8080" and l2["ready"] == "false", l2
    assert (l1["pod"], l1["container"], l1["tier"]) == ("web-1", "web", "front"), l1
    assert (l2["pod"], l2["container"], l2["tier"]) == ("web-2", "web", "back"), l2
    assert api.count(lambda r: r[0] == "/api/v1/namespaces/logs/pods" and
                     r[1].get("watch") == "1") >= 1
    # The role pod's selector is for the pods watched for their labels.
    assert all(r[1].get("fieldSelector") == "spec.nodeName=node1"
               for r in api.requests if r[0].endswith("/pods"))
    assert api.count(lambda r: r[0] == "/api/v1/namespaces/logs/services" and
                     r[1].get("watch") == "1") >= 1
    assert api.count(lambda r: r[0] == "/api/v1/namespaces/logs/endpoints" and
                     r[1].get("watch") == "1") >= 1
    # The role service's selector is for the services, not for the endpoints.
    assert all(r[1].get("labelSelector") == "app.kubernetes.io/part-of"
               for r in api.requests if r[0].endswith("/services"))
    assert not any("labelSelector" in r[1] or "fieldSelector" in r[1]
                   for r in api.requests if r[0].endswith("/endpoints"))
    svc = json.loads(json.dumps(load("services_list.json")["items"][0]))
    svc["kind"] = "Service"
    svc["metadata"]["labels"]["app.kubernetes.io/part-of"] = "outlet"
    api.push({"type": "MODIFIED", "object": svc})
    wait_until(lambda: metric_value(agent.metrics(port), "bpftail_kubernetes_sd_events_total",
                                    type="MODIFIED") >= 1, 20, interval=0.2,
               what="the service's MODIFIED event")
    with open(os.path.join(d, "ep", "web-1.log"), "a") as f:
        f.write("web-1 after the service changed\n")
    wait_until(lambda: "web-1 after the service changed" in shop_lines(), 20, interval=0.2,
               what="a line after the service change")
    assert shop_lines()["web-1 after the service changed"]["part"] == "outlet"
    web1 = json.loads(json.dumps(pods_by_name("pods_list_node1_running.json")["web-1"]))
    web1["kind"] = "Pod"
    web1["metadata"]["labels"]["tier"] = "middle"
    api.push({"type": "MODIFIED", "object": web1})
    wait_until(lambda: metric_value(agent.metrics(port), "bpftail_kubernetes_sd_events_total",
                                    type="MODIFIED") >= 2, 20, interval=0.2,
               what="the pod's MODIFIED event")
    with open(os.path.join(d, "ep", "web-1.log"), "a") as f:
        f.write("web-1 after the pod changed\n")
    wait_until(lambda: "web-1 after the pod changed" in shop_lines(), 20, interval=0.2,
               what="a line after the pod change")
    after = shop_lines()["web-1 after the pod changed"]
    assert (after["tier"], after["part"]) == ("middle", "outlet"), after
    assert agent.stop() == 0
    assert loki.received() == loki.count(), "duplicates were pushed"


def test_k8s_role_node_targets(ctx):
    """Role node: one target per node with an address, its labels for relabeling; a node
    added by a watch event becomes a target too."""
    api = FakeKubeAPI().start()
    ctx.cleanups.append(api.stop)
    nodes = load("nodes_list.json")
    node = nodes["items"][0]
    node["status"]["addresses"] = [{"type": "InternalIP", "address": "192.0.2.2"},
                                   {"type": "Hostname", "address": "node1"}]
    node["status"]["daemonEndpoints"] = {"kubeletEndpoint": {"Port": 10250}}
    api.load_nodes(nodes)
    api.load_list("pods_list_node1_running.json")  # pods must not show up as nodes
    d = ctx.tmpdir()
    os.makedirs(os.path.join(d, "nodes"))
    with open(os.path.join(d, "nodes", "node1.log"), "w") as f:
        f.write("from node1\n")
    loki = FakeLoki(ctx)
    cfg = """server:
  http_listen_port: 0
  grpc_listen_port: 0
positions:
  filename: %(d)s/positions.yaml
clients:
  - url: %(url)s
    batchwait: 100ms
scrape_configs:
  - job_name: nodes
    kubernetes_sd_configs:
      - role: node
        api_server: %(api)s
    relabel_configs:
      - source_labels: [__meta_kubernetes_node_name]
        target_label: node
      - source_labels: [__meta_kubernetes_node_label_kubernetes_io_os]
        target_label: os
      - source_labels: [__address__]
        target_label: addr
      - source_labels: [__meta_kubernetes_node_name]
        replacement: %(d)s/nodes/$1.log
        target_label: __path__
""" % dict(d=d, url=loki.url, api=api.url)
    agent = Agent(ctx, cfg).start()
    wait_until(lambda: "from node1" in entries_by_line(loki), 20, interval=0.2, what="node1")
    lab = labels_of(entries_by_line(loki)["from node1"])
    assert lab["node"] == "node1" and lab["os"] == "linux" and lab["addr"] == "192.0.2.2:10250"
    assert lab["instance"] == "node1", lab
    with open(os.path.join(d, "nodes", "node2.log"), "w") as f:
        f.write("from node2\n")
    n2 = json.loads(json.dumps(node))
    n2["metadata"]["name"] = "node2"
    n2["kind"] = "Node"
    api.push({"type": "ADDED", "object": n2})
    wait_until(lambda: "from node2" in entries_by_line(loki), 20, interval=0.2, what="node2")
    assert api.count(lambda r: r[0] == "/api/v1/nodes" and r[1].get("watch") == "1") >= 1
    assert agent.stop() == 0
    assert loki.received() == loki.count() == 2


def test_k8s_reload_keeps_pod_targets_and_reads_pods_gone_meanwhile(ctx):
    """A reload (SIGHUP) builds a new discovery, which lists pods only later: the targets are
    kept meanwhile, nothing is read twice, and a pod deleted during the reload is read to the
    end of its file."""
    import signal
    api = FakeKubeAPI(token=TOKEN).start()
    ctx.cleanups.append(api.stop)
    api.load_list("pods_list_node1_running.json")
    d = ctx.tmpdir()
    tree = Tree(os.path.join(d, "pods"))
    pods = pods_by_name("pods_list_node1_running.json")
    for name in ("api-1", "db-1"):
        c = pods[name]["spec"]["containers"][0]["name"]
        tree.write(pods[name], c, "%s before reload" % name)
    loki, agent, port = start(ctx, api, d)
    wait_until(lambda: all("%s before reload" % n in entries_by_line(loki)
                           for n in ("api-1", "db-1")), 30, interval=0.2, what="first lines")
    lists = api.count(lambda r: "watch" not in r[1])
    events = load_events("pods_watch_node1_running.jsonl")
    agent.p.send_signal(signal.SIGHUP)
    api.push(events[6])  # db-1 DELETED while the new discovery has not listed yet
    for i in range(5):
        tree.write(pods["db-1"], "db", "db-1 during reload %d" % i)
        tree.write(pods["api-1"], "api", "api-1 during reload %d" % i)
        time.sleep(0.1)
    wait_until(lambda: "config reloaded" in agent.log(), 20, interval=0.2, what="the reload")
    wait_until(lambda: api.count(lambda r: "watch" not in r[1]) > lists, 20, interval=0.2,
               what="the new discovery's list")
    wait_until(lambda: all("%s during reload %d" % (n, i) in entries_by_line(loki)
                           for n in ("api-1", "db-1") for i in range(5)), 30, interval=0.2,
               what="every line written during the reload")
    assert "target retired" in agent.log()
    tree.write(pods["api-1"], "api", "api-1 after reload")
    wait_until(lambda: "api-1 after reload" in entries_by_line(loki), 20, interval=0.2,
               what="a line after the reload")
    lab = labels_of(entries_by_line(loki)["api-1 after reload"])
    assert lab["pod"] == "api-1" and lab["app"] == "api", lab
    assert agent.stop() == 0
    assert loki.received() == loki.count(), "duplicates were pushed"


def test_k8s_in_cluster_config_over_tls_with_own_namespace(ctx):
    """No api_server: the in-cluster config (KUBERNETES_SERVICE_HOST/PORT, the service account's
    token, CA and namespace) reaches an API server over TLS that only the service account's CA
    can verify, and own_namespace lists that namespace's pods. A target whose __host__ is not
    this host ($HOSTNAME) is dropped, as promtail does."""
    import subprocess
    d = ctx.tmpdir()
    sa = os.path.join(d, "serviceaccount")
    os.makedirs(sa)
    cert, key = os.path.join(d, "api.crt"), os.path.join(d, "api.key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=kubernetes", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    shutil.copy(cert, os.path.join(sa, "ca.crt"))
    with open(os.path.join(sa, "token"), "w") as f:
        f.write(TOKEN)
    with open(os.path.join(sa, "namespace"), "w") as f:
        f.write("logs")
    api = FakeKubeAPI(token=TOKEN).start(cert, key)
    ctx.cleanups.append(api.stop)
    api.load_list("pods_list_node1_running.json")
    tree = Tree(os.path.join(d, "pods"))
    pods = pods_by_name("pods_list_node1_running.json")
    tree.write(pods["api-1"], "api", "api-1 over tls")
    tree.write(pods["db-1"], "db", "db-1 is another host's")
    loki = FakeLoki(ctx)
    cfg = """server:
  http_listen_port: 0
  grpc_listen_port: 0
positions:
  filename: %(d)s/positions.yaml
clients:
  - url: %(url)s
    batchwait: 100ms
scrape_configs:
  - job_name: in-cluster
    pipeline_stages:
      - cri: {}
    kubernetes_sd_configs:
      - role: pod
        namespaces:
          own_namespace: true
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      - source_labels: [__meta_kubernetes_pod_label_app]
        regex: db
        replacement: elsewhere
        target_label: __host__
      - source_labels: [__meta_kubernetes_pod_uid, __meta_kubernetes_pod_container_name]
        separator: /
        replacement: %(pods)s/*$1/*.log
        target_label: __path__
""" % dict(d=d, url=loki.url, pods=os.path.join(d, "pods"))
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.port),
           "BPFTAIL_K8S_SERVICEACCOUNT_DIR": sa, "HOSTNAME": "node1"}
    agent = Agent(ctx, cfg, env=env).start()
    wait_until(lambda: "api-1 over tls" in entries_by_line(loki), 20, interval=0.2,
               what="a line found through the in-cluster config")
    assert api.count(lambda r: r[0] == "/api/v1/namespaces/logs/pods") >= 2  # list and watch
    assert api.unauthorized == 0
    time.sleep(0.5)
    assert "db-1 is another host's" not in entries_by_line(loki)
    assert agent.stop() == 0

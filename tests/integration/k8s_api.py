"""A test Kubernetes API server that answers LIST and WATCH requests as kube-apiserver does: pods,
nodes, services, endpoints, endpointslices (discovery.k8s.io/v1) and ingresses
(networking.k8s.io/v1).

It serves the objects recorded from a real cluster (tests/data/k8s): a PodList with its
resourceVersion, and watch streams as chunked HTTP responses of newline-separated JSON events,
held open until the test ends them or timeoutSeconds passes. The test drives it:

  api = FakeKubeAPI(token="secret").start()
  api.load_list("pods_list_node1_running.json")   # the cluster state a LIST returns
  api.load_objects("Service", doc)                 # a ServiceList (or other kind's list)
  api.push(event)                                  # one recorded {"type", "object"} event
  api.expire()                                     # ends open watches; a watch from an older
                                                   # resourceVersion gets a 410 Expired ERROR

Requests are checked for the bearer token (401 otherwise) and recorded in api.requests as
(path, query dict) for assertions (selectors, allowWatchBookmarks, resourceVersion).
"""
import json
import os
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "k8s")


def load(name):
    with open(os.path.join(DATA, name)) as f:
        return json.load(f)


def load_events(name):
    with open(os.path.join(DATA, name)) as f:
        return [json.loads(ln) for ln in f if ln.strip()]


VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
# Discovery of the kinds the deployment manifests use, as kube-apiserver lists them: kubectl
# maps each manifest's kind to its resource with these before a client-side dry run.
RESOURCES = {
    "v1": [("namespaces", "Namespace", False), ("serviceaccounts", "ServiceAccount", True),
           ("configmaps", "ConfigMap", True), ("pods", "Pod", True), ("nodes", "Node", False)],
    "apps/v1": [("daemonsets", "DaemonSet", True)],
    "rbac.authorization.k8s.io/v1": [("clusterroles", "ClusterRole", False),
                                     ("clusterrolebindings", "ClusterRoleBinding", False)],
}


def discovery(path):
    """The body kube-apiserver answers for a discovery path, or None."""
    if path == "/version":
        return load("version.json")
    if path == "/api":
        return load("api.json")
    if path == "/apis":
        groups = []
        for gv in RESOURCES:
            if "/" in gv:
                g, v = gv.split("/")
                ver = {"groupVersion": gv, "version": v}
                groups.append({"name": g, "versions": [ver], "preferredVersion": ver})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    gv = path[len("/api/"):] if path.startswith("/api/") else path[len("/apis/"):]
    if path.startswith(("/api/", "/apis/")) and gv in RESOURCES:
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": [{"name": n, "singularName": "", "namespaced": ns, "kind": k,
                               "verbs": VERBS} for n, k, ns in RESOURCES[gv]]}
    return None


# (API prefix, resource) -> kind, for the LIST and WATCH paths served.
KINDS = {("/api/v1", "pods"): "Pod", ("/api/v1", "nodes"): "Node",
         ("/api/v1", "services"): "Service", ("/api/v1", "endpoints"): "Endpoints",
         ("/apis/discovery.k8s.io/v1", "endpointslices"): "EndpointSlice",
         ("/apis/networking.k8s.io/v1", "ingresses"): "Ingress"}


def route(path):
    """(kind, namespace or None) of a LIST/WATCH path, or None."""
    for (prefix, res), kind in KINDS.items():
        if path == "%s/%s" % (prefix, res):
            return kind, None
        rest = path[len(prefix):] if path.startswith(prefix + "/namespaces/") else ""
        parts = rest.strip("/").split("/")
        if kind != "Node" and len(parts) == 3 and parts[2] == res:
            return kind, parts[1]
    return None


def key_of(pod):
    return "%s/%s" % (pod["metadata"].get("namespace", ""), pod["metadata"]["name"])


class FakeKubeAPI:
    def __init__(self, token=None, http_410_on_watch=False, page=0):
        self.token = token
        self.page = page  # with a limit, LIST answers pages of this many objects (0: all)
        self.http_410 = http_410_on_watch  # answer an expired watch with HTTP 410, not an event
        self.cond = threading.Condition()
        self.pods = {}
        self.nodes = {}
        self.others = {}  # kind -> {key: object} for the kinds other than pods and nodes
        self.rv = 0
        self.history = []  # (rv, event) in order
        self.expired_below = 0  # a watch from a resourceVersion below this gets 410
        self.epoch = 0  # bumped by expire(): open watches end
        self.requests = []
        self.unauthorized = 0
        self.srv = None

    # ---- test side ----
    def start(self, cert=None, key=None):
        """Serves on a loopback port; with cert and key (PEM files), over TLS."""
        api = self

        class H(Handler):
            pass
        H.api = api
        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        if cert:
            import ssl
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(cert, key)
            self.srv.socket = tls.wrap_socket(self.srv.socket, server_side=True)
            self.url = "https://127.0.0.1:%d" % self.port
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        return self

    def stop(self):
        with self.cond:
            self.epoch += 1
            self.cond.notify_all()
        if self.srv:
            self.srv.shutdown()
            self.srv.server_close()

    def load_list(self, name):
        doc = load(name)
        with self.cond:
            self.pods = {key_of(p): p for p in doc["items"]}
            self.rv = max(self.rv, int(doc["metadata"]["resourceVersion"]))

    def load_nodes(self, doc):
        """A NodeList (a dict) as the nodes a LIST returns."""
        with self.cond:
            self.nodes = {key_of(n): n for n in doc["items"]}
            self.rv = max(self.rv, int(doc["metadata"]["resourceVersion"]))

    def load_objects(self, kind, doc):
        """A list (a dict, e.g. a ServiceList) as the objects of kind a LIST returns."""
        with self.cond:
            for o in doc["items"]:
                o.setdefault("kind", kind)
            self.others[kind] = {key_of(o): o for o in doc["items"]}
            self.rv = max(self.rv, int(doc["metadata"]["resourceVersion"]))

    def store(self, kind):
        if kind == "Node":
            return self.nodes
        if kind == "Pod":
            return self.pods
        return self.others.setdefault(kind, {})

    def push(self, ev):
        """Applies one watch event to the cluster state and sends it to open watches."""
        obj = ev["object"]
        with self.cond:
            rv = int(obj["metadata"]["resourceVersion"])
            if rv <= self.rv:  # events made up by a test: give them the next version
                rv = self.rv + 1
                obj = json.loads(json.dumps(obj))
                obj["metadata"]["resourceVersion"] = str(rv)
                ev = {"type": ev["type"], "object": obj}
            self.rv = rv
            store = self.store(obj.get("kind", "Pod"))
            if ev["type"] == "DELETED":
                store.pop(key_of(obj), None)
            else:
                store[key_of(obj)] = obj
            self.history.append((rv, ev))
            self.cond.notify_all()

    def push_raw(self, text):
        """A line that is not a watch event (a broken proxy, a truncated object)."""
        with self.cond:
            self.rv += 1
            self.history.append((self.rv, {"type": "RAW", "raw": text}))
            self.cond.notify_all()

    def bookmark(self):
        with self.cond:
            self.rv += 1
            self.history.append((self.rv, {"type": "BOOKMARK", "object": {
                "kind": "Pod", "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.rv)}}}))
            self.cond.notify_all()

    def expire(self):
        """The server's watch cache moved on: every resourceVersion seen so far is too old."""
        with self.cond:
            self.rv += 5
            self.expired_below = self.rv
            self.epoch += 1
            self.cond.notify_all()

    def count(self, pred):
        return sum(1 for r in list(self.requests) if pred(r))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api = None

    def log_message(self, *a):
        pass

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        api = self.api
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        api.requests.append((u.path, q))
        if api.token and self.headers.get("Authorization") != "Bearer " + api.token:
            api.unauthorized += 1
            return self.send_json(401, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                        "message": "Unauthorized", "reason": "Unauthorized",
                                        "code": 401})
        disc = discovery(u.path)
        if disc is not None:
            return self.send_json(200, disc)
        r = route(u.path)
        if r is None:
            # Nothing else exists here: kubectl apply finds no object and would create it.
            return self.send_json(404, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                        "status": "Failure", "message": "not found",
                                        "reason": "NotFound", "code": 404})
        kind, ns = r
        node = None
        fs = q.get("fieldSelector", "")
        if fs.startswith("spec.nodeName="):
            node = fs.split("=", 1)[1]

        def match(p):
            if kind == "Node":
                return p.get("kind", "Node") == "Node"
            if kind != "Pod":
                return p.get("kind") == kind and \
                    (ns is None or p["metadata"].get("namespace") == ns)
            return p.get("kind", "Pod") == "Pod" and \
                (ns is None or p["metadata"].get("namespace") == ns) and \
                (node is None or p["spec"].get("nodeName") == node)
        if q.get("watch") in ("1", "true"):
            return self.watch(q, match)
        with api.cond:
            store = api.store(kind)
            items = [store[k] for k in sorted(store) if match(store[k])]
            rv = api.rv
        md = {"resourceVersion": str(rv)}
        if api.page and q.get("limit"):  # pages of at most min(limit, page) objects
            start = int(q.get("continue") or 0)
            n = min(int(q["limit"]), api.page)
            if start + n < len(items):
                md["continue"] = str(start + n)
            items = items[start:start + n]
        self.send_json(200, {"kind": kind + "List", "apiVersion": "v1", "metadata": md,
                             "items": items})

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, q, match):
        api = self.api
        since = int(q.get("resourceVersion") or 0)
        timeout = float(q.get("timeoutSeconds") or 300)
        with api.cond:
            expired = since < api.expired_below
            epoch = api.epoch
        if expired and api.http_410:
            return self.send_json(410, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                        "message": "too old resource version", "reason": "Expired",
                                        "code": 410})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            if expired:
                ev = load_events("pods_watch_410_expired.jsonl")[0]
                self.chunk((json.dumps(ev) + "\n").encode())
                self.chunk(b"")
                return
            sent = since
            end = time.monotonic() + timeout
            while True:
                with api.cond:
                    out = [(rv, ev) for rv, ev in api.history if rv > sent]
                    if not out:
                        if api.epoch != epoch or time.monotonic() >= end:
                            break
                        api.cond.wait(0.2)
                        continue
                for rv, ev in out:
                    if ev["type"] == "RAW":
                        self.chunk((ev["raw"] + "\n").encode())
                    elif ev["type"] == "BOOKMARK" or match(ev["object"]):
                        self.chunk((json.dumps(ev) + "\n").encode())
                    sent = max(sent, rv)
            self.chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            pass

#include "source/k8s_svc.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/labels.h"

#define M "__meta_kubernetes_"

static const char *str_at(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* Namespace, <kind>_name and the metadata labels and annotations of obj. */
static int object_labels(struct bt_labels *l, const json_t *obj, const char *kind)
{
    const json_t *md = json_object_get(obj, "metadata");
    char n[64], lv[64], lp[64], av[64], ap[64];
    snprintf(n, sizeof(n), M "%s_name", kind);
    snprintf(lv, sizeof(lv), M "%s_label_", kind);
    snprintf(lp, sizeof(lp), M "%s_labelpresent_", kind);
    snprintf(av, sizeof(av), M "%s_annotation_", kind);
    snprintf(ap, sizeof(ap), M "%s_annotationpresent_", kind);
    int rc = 0;
    rc |= bt_labels_set(l, M "namespace", str_at(md, "namespace"));
    rc |= bt_labels_set(l, n, str_at(md, "name"));
    rc |= bt_k8s_map_labels(l, json_object_get(md, "labels"), lv, lp);
    rc |= bt_k8s_map_labels(l, json_object_get(md, "annotations"), av, ap);
    return rc ? -ENOMEM : 0;
}

static bool named(const json_t *obj)
{
    return json_is_object(obj) && *str_at(json_object_get(obj, "metadata"), "name");
}

/* host:port as Go's net.JoinHostPort writes it (an IPv6 address in brackets). */
static void join_host_port(char *out, size_t outlen, const char *host, long long port)
{
    snprintf(out, outlen, strchr(host, ':') ? "[%s]:%lld" : "%s:%lld", host, port);
}

/* A pod an endpoint address pointed at, and the ports its endpoint targets covered. */
struct seen_pod {
    const json_t *pod;
    long long *ports;
    size_t n;
};

/* A copy of base with the per-target labels still to be set; fn called by emit. */
struct walk {
    struct bt_labels base, t;
    bt_k8s_target_fn fn;
    void *ctx;
    bt_k8s_pod_lookup_fn pods; /* endpoints, endpointslice: NULL, no pod labels */
    void *pctx;
    struct seen_pod *seen;
    size_t n_seen;
    int n;
};

static int walk_begin(struct walk *w)
{
    bt_labels_clear(&w->t);
    return bt_labels_copy(&w->t, &w->base) < 0 ? -ENOMEM : 0;
}

static int walk_emit(struct walk *w)
{
    w->n++;
    return w->fn(w->ctx, &w->t);
}

static int walk_end(struct walk *w, int rc)
{
    for (size_t i = 0; i < w->n_seen; i++)
        free(w->seen[i].ports);
    free(w->seen);
    bt_labels_free(&w->t);
    bt_labels_free(&w->base);
    return rc ? rc : w->n;
}

/* ---- pods behind endpoint addresses ---- */

#define PC M "pod_container_"

/* Container c's port labels; init says whether it is an init container. */
static int container_port_labels(struct bt_labels *l, const json_t *c, const json_t *cport,
                                 bool init)
{
    char nb[24];
    snprintf(nb, sizeof(nb), "%lld",
             (long long)json_integer_value(json_object_get(cport, "containerPort")));
    const char *proto = str_at(cport, "protocol");
    int r = 0;
    r |= bt_labels_set(l, PC "name", str_at(c, "name"));
    r |= bt_labels_set(l, PC "image", str_at(c, "image"));
    r |= bt_labels_set(l, PC "port_name", str_at(cport, "name"));
    r |= bt_labels_set(l, PC "port_number", nb);
    r |= bt_labels_set(l, PC "port_protocol", *proto ? proto : "TCP");
    r |= bt_labels_set(l, PC "init", init ? "true" : "false");
    return r ? -ENOMEM : 0;
}

/* Calls fn(w, container, port, init) for every declared port of the pod's containers, init
 * containers after the others, as Prometheus walks them. */
static int each_container_port(struct walk *w, const json_t *pod, long long only,
                               int (*fn)(struct walk *, const json_t *, const json_t *, bool,
                                         const struct seen_pod *),
                               const struct seen_pod *sp)
{
    static const char *const lists[2] = {"containers", "initContainers"};
    const json_t *spec = json_object_get(pod, "spec");
    for (int k = 0; k < 2; k++) {
        size_t i, j;
        json_t *c, *p;
        json_array_foreach(json_object_get(spec, lists[k]), i, c)
        {
            json_array_foreach(json_object_get(c, "ports"), j, p)
            {
                if (only >= 0 && json_integer_value(json_object_get(p, "containerPort")) != only)
                    continue;
                int rc = fn(w, c, p, k == 1, sp);
                if (rc)
                    return rc;
                if (only >= 0)
                    break; /* the first port of a container that matches */
            }
        }
    }
    return 0;
}

static int label_matching_port(struct walk *w, const json_t *c, const json_t *p, bool init,
                               const struct seen_pod *sp)
{
    (void)sp;
    return container_port_labels(&w->t, c, p, init);
}

static struct seen_pod *seen_pod_of(struct walk *w, const json_t *pod)
{
    for (size_t i = 0; i < w->n_seen; i++)
        if (w->seen[i].pod == pod)
            return &w->seen[i];
    struct seen_pod *n = realloc(w->seen, (w->n_seen + 1) * sizeof(*n));
    if (!n)
        return NULL;
    w->seen = n;
    n[w->n_seen] = (struct seen_pod){.pod = pod};
    return &n[w->n_seen++];
}

/* The target in w->t is for an address whose targetRef is ref and for port (-1: none): when
 * ref is a Pod that is known, the target gets the pod's labels and, if one of its containers
 * declares that port, the container's; the port is noted as covered. */
static int join_pod(struct walk *w, const json_t *ref, long long port)
{
    if (!w->pods || strcmp(str_at(ref, "kind"), "Pod") != 0)
        return 0;
    const json_t *pod = w->pods(w->pctx, str_at(ref, "namespace"), str_at(ref, "name"));
    if (!pod)
        return 0;
    struct seen_pod *sp = seen_pod_of(w, pod);
    if (!sp || bt_k8s_pod_labels(&w->t, pod) < 0)
        return -ENOMEM;
    if (port < 0)
        return 0;
    long long *n = realloc(sp->ports, (sp->n + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    sp->ports = n;
    sp->ports[sp->n++] = port;
    return each_container_port(w, pod, port, label_matching_port, NULL);
}

static int uncovered_port(struct walk *w, const json_t *c, const json_t *p, bool init,
                          const struct seen_pod *sp)
{
    long long port = (long long)json_integer_value(json_object_get(p, "containerPort"));
    for (size_t i = 0; i < sp->n; i++)
        if (sp->ports[i] == port)
            return 0;
    int rc = walk_begin(w);
    if (rc)
        return rc;
    char addr[300];
    join_host_port(addr, sizeof(addr), str_at(json_object_get(sp->pod, "status"), "podIP"), port);
    if (bt_labels_set(&w->t, "__address__", addr) < 0 || bt_k8s_pod_labels(&w->t, sp->pod) < 0 ||
        container_port_labels(&w->t, c, p, init) < 0)
        return -ENOMEM;
    return walk_emit(w);
}

/* After the endpoint targets: a target for every container port of the pods seen that no
 * endpoint port covered (a pod without an IP has none). */
static int uncovered_ports(struct walk *w)
{
    for (size_t i = 0; i < w->n_seen; i++) {
        const struct seen_pod *sp = &w->seen[i];
        if (!*str_at(json_object_get(sp->pod, "status"), "podIP"))
            continue;
        int rc = each_container_port(w, sp->pod, -1, uncovered_port, sp);
        if (rc)
            return rc;
    }
    return 0;
}

static bool ref_is(const json_t *ref, const char *ns, const char *name)
{
    return strcmp(str_at(ref, "kind"), "Pod") == 0 && strcmp(str_at(ref, "name"), name) == 0 &&
           strcmp(str_at(ref, "namespace"), ns) == 0;
}

bool bt_k8s_refers_to_pod(const struct json_t *obj, const char *ns, const char *name)
{
    static const char *const lists[2] = {"addresses", "notReadyAddresses"};
    size_t i, k;
    json_t *s, *a;
    json_array_foreach(json_object_get(obj, "subsets"), i, s)
    {
        for (int l = 0; l < 2; l++)
            json_array_foreach(json_object_get(s, lists[l]), k, a)
            {
                if (ref_is(json_object_get(a, "targetRef"), ns, name))
                    return true;
            }
    }
    json_array_foreach(json_object_get(obj, "endpoints"), i, s)
    {
        if (ref_is(json_object_get(s, "targetRef"), ns, name))
            return true;
    }
    return false;
}

/* ---- service ---- */

/* spec.loadBalancerIP, as Prometheus reads it; that field is deprecated and mostly unset, so
 * else the first address the load balancer reports (status.loadBalancer.ingress[0].ip). */
static const char *loadbalancer_ip(const json_t *svc)
{
    const char *ip = str_at(json_object_get(svc, "spec"), "loadBalancerIP");
    if (*ip)
        return ip;
    const json_t *ing =
        json_object_get(json_object_get(json_object_get(svc, "status"), "loadBalancer"), "ingress");
    return str_at(json_array_get(ing, 0), "ip");
}

int bt_k8s_service_targets(const struct json_t *svc, bt_k8s_target_fn fn, void *ctx)
{
    if (!named(svc))
        return -EINVAL;
    const json_t *md = json_object_get(svc, "metadata"), *spec = json_object_get(svc, "spec");
    struct walk w = {.fn = fn, .ctx = ctx};
    bt_labels_init(&w.base);
    bt_labels_init(&w.t);
    const char *type = str_at(spec, "type");
    int rc = object_labels(&w.base, svc, "service");
    if (rc == 0 && bt_labels_set(&w.base, M "service_type", type) < 0)
        rc = -ENOMEM;
    if (rc == 0 && strcmp(type, "ExternalName") == 0)
        rc = bt_labels_set(&w.base, M "service_external_name", str_at(spec, "externalName"));
    else if (rc == 0)
        rc = bt_labels_set(&w.base, M "service_cluster_ip", str_at(spec, "clusterIP"));
    if (rc == 0 && strcmp(type, "LoadBalancer") == 0)
        rc = bt_labels_set(&w.base, M "service_loadbalancer_ip", loadbalancer_ip(svc));
    if (rc < 0)
        rc = -ENOMEM;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(spec, "ports"), i, p)
    {
        if (rc || (rc = walk_begin(&w)))
            break;
        long long port = (long long)json_integer_value(json_object_get(p, "port"));
        char host[600], addr[700], nb[24];
        snprintf(host, sizeof(host), "%s.%s.svc", str_at(md, "name"), str_at(md, "namespace"));
        join_host_port(addr, sizeof(addr), host, port);
        snprintf(nb, sizeof(nb), "%lld", port);
        const char *proto = str_at(p, "protocol");
        int r = 0;
        r |= bt_labels_set(&w.t, "__address__", addr);
        r |= bt_labels_set(&w.t, M "service_port_name", str_at(p, "name"));
        r |= bt_labels_set(&w.t, M "service_port_number", nb);
        r |= bt_labels_set(&w.t, M "service_port_protocol", *proto ? proto : "TCP");
        rc = r ? -ENOMEM : walk_emit(&w);
    }
    return walk_end(&w, rc);
}

/* The labels a Service adds to endpoint targets: its name, labels and annotations. */
static int service_labels(struct bt_labels *l, const json_t *svc)
{
    if (!named(svc))
        return 0;
    const json_t *md = json_object_get(svc, "metadata");
    int rc = 0;
    rc |= bt_labels_set(l, M "service_name", str_at(md, "name"));
    rc |= bt_k8s_map_labels(l, json_object_get(md, "labels"), M "service_label_",
                            M "service_labelpresent_");
    rc |= bt_k8s_map_labels(l, json_object_get(md, "annotations"), M "service_annotation_",
                            M "service_annotationpresent_");
    return rc ? -ENOMEM : 0;
}

/* ---- endpoints ---- */

static int endpoints_address(struct walk *w, const json_t *a, const json_t *ports, bool ready)
{
    const char *ip = str_at(a, "ip");
    const json_t *ref = json_object_get(a, "targetRef");
    size_t i;
    json_t *p;
    json_array_foreach(ports, i, p)
    {
        int rc = walk_begin(w);
        if (rc)
            return rc;
        char addr[300];
        join_host_port(addr, sizeof(addr), ip,
                       (long long)json_integer_value(json_object_get(p, "port")));
        const char *proto = str_at(p, "protocol");
        int r = 0;
        r |= bt_labels_set(&w->t, "__address__", addr);
        r |= bt_labels_set(&w->t, M "endpoint_hostname", str_at(a, "hostname"));
        r |= bt_labels_set(&w->t, M "endpoint_node_name", str_at(a, "nodeName"));
        r |= bt_labels_set(&w->t, M "endpoint_ready", ready ? "true" : "false");
        r |= bt_labels_set(&w->t, M "endpoint_port_name", str_at(p, "name"));
        r |= bt_labels_set(&w->t, M "endpoint_port_protocol", *proto ? proto : "TCP");
        r |= bt_labels_set(&w->t, M "endpoint_port_app_protocol", str_at(p, "appProtocol"));
        r |= bt_labels_set(&w->t, M "endpoint_address_target_kind", str_at(ref, "kind"));
        r |= bt_labels_set(&w->t, M "endpoint_address_target_name", str_at(ref, "name"));
        if (r)
            return -ENOMEM;
        if ((rc = join_pod(w, ref, (long long)json_integer_value(json_object_get(p, "port")))) ||
            (rc = walk_emit(w)))
            return rc;
    }
    return 0;
}

int bt_k8s_endpoints_targets(const struct json_t *ep, const struct json_t *svc,
                             bt_k8s_pod_lookup_fn pods, void *pctx, bt_k8s_target_fn fn, void *ctx)
{
    if (!named(ep))
        return -EINVAL;
    struct walk w = {.fn = fn, .ctx = ctx, .pods = pods, .pctx = pctx};
    bt_labels_init(&w.base);
    bt_labels_init(&w.t);
    int rc = object_labels(&w.base, ep, "endpoints");
    if (rc == 0)
        rc = service_labels(&w.base, svc);
    size_t i, k;
    json_t *s, *a;
    json_array_foreach(json_object_get(ep, "subsets"), i, s)
    {
        const json_t *ports = json_object_get(s, "ports");
        json_array_foreach(json_object_get(s, "addresses"), k, a)
        {
            if (rc || (rc = endpoints_address(&w, a, ports, true)))
                break;
        }
        json_array_foreach(json_object_get(s, "notReadyAddresses"), k, a)
        {
            if (rc || (rc = endpoints_address(&w, a, ports, false)))
                break;
        }
    }
    if (rc == 0)
        rc = uncovered_ports(&w);
    return walk_end(&w, rc);
}

/* ---- endpointslice ---- */

#define ES M "endpointslice_"

const char *bt_k8s_endpointslice_service(const struct json_t *es)
{
    const char *s = json_string_value(json_object_get(
        json_object_get(json_object_get(es, "metadata"), "labels"), "kubernetes.io/service-name"));
    return s && *s ? s : NULL;
}

static const char *cond(const json_t *conds, const char *name)
{
    const json_t *v = json_object_get(conds, name);
    return json_is_boolean(v) ? (json_is_true(v) ? "true" : "false") : "";
}

static int slice_endpoint(struct walk *w, const json_t *e, const json_t *ports)
{
    const json_t *ref = json_object_get(e, "targetRef"), *c = json_object_get(e, "conditions");
    size_t i, k;
    json_t *a, *p;
    json_array_foreach(json_object_get(e, "addresses"), i, a)
    {
        const char *addr = json_string_value(a);
        if (!addr)
            continue;
        json_array_foreach(ports, k, p)
        {
            int rc = walk_begin(w);
            if (rc)
                return rc;
            /* A port without a number (all ports) leaves the address alone, as in Prometheus. */
            const json_t *pn = json_object_get(p, "port");
            long long port = json_is_integer(pn) ? (long long)json_integer_value(pn) : -1;
            char hp[300], nb[24] = "";
            if (port >= 0) {
                join_host_port(hp, sizeof(hp), addr, port);
                snprintf(nb, sizeof(nb), "%lld", port);
            } else {
                snprintf(hp, sizeof(hp), "%s", addr);
            }
            const char *proto = str_at(p, "protocol");
            int r = 0;
            r |= bt_labels_set(&w->t, "__address__", hp);
            r |= bt_labels_set(&w->t, ES "address_target_kind", str_at(ref, "kind"));
            r |= bt_labels_set(&w->t, ES "address_target_name", str_at(ref, "name"));
            r |= bt_labels_set(&w->t, ES "endpoint_conditions_ready", cond(c, "ready"));
            r |= bt_labels_set(&w->t, ES "endpoint_conditions_serving", cond(c, "serving"));
            r |= bt_labels_set(&w->t, ES "endpoint_conditions_terminating", cond(c, "terminating"));
            r |= bt_labels_set(&w->t, ES "endpoint_hostname", str_at(e, "hostname"));
            r |= bt_labels_set(&w->t, ES "endpoint_node_name", str_at(e, "nodeName"));
            r |= bt_labels_set(&w->t, ES "endpoint_zone", str_at(e, "zone"));
            r |= bt_k8s_map_labels(&w->t, json_object_get(e, "deprecatedTopology"),
                                   ES "endpoint_topology_", ES "endpoint_topology_present_");
            r |= bt_labels_set(&w->t, ES "port", nb);
            r |= bt_labels_set(&w->t, ES "port_name", str_at(p, "name"));
            r |= bt_labels_set(&w->t, ES "port_protocol", *proto ? proto : "TCP");
            r |= bt_labels_set(&w->t, ES "port_app_protocol", str_at(p, "appProtocol"));
            if (r)
                return -ENOMEM;
            if ((rc = join_pod(w, ref, port)) || (rc = walk_emit(w)))
                return rc;
        }
    }
    return 0;
}

int bt_k8s_endpointslice_targets(const struct json_t *es, const struct json_t *svc,
                                 bt_k8s_pod_lookup_fn pods, void *pctx, bt_k8s_target_fn fn,
                                 void *ctx)
{
    if (!named(es))
        return -EINVAL;
    struct walk w = {.fn = fn, .ctx = ctx, .pods = pods, .pctx = pctx};
    bt_labels_init(&w.base);
    bt_labels_init(&w.t);
    int rc = object_labels(&w.base, es, "endpointslice");
    if (rc == 0 && bt_labels_set(&w.base, ES "address_type", str_at(es, "addressType")) < 0)
        rc = -ENOMEM;
    if (rc == 0)
        rc = service_labels(&w.base, svc);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(es, "endpoints"), i, e)
    {
        if (rc || (rc = slice_endpoint(&w, e, json_object_get(es, "ports"))))
            break;
    }
    if (rc == 0)
        rc = uncovered_ports(&w);
    return walk_end(&w, rc);
}

/* ---- ingress ---- */

/* Whether host is one of the tls hosts; "*.example.com" matches one label in front. */
static bool tls_host(const json_t *tls, const char *host)
{
    size_t i, k;
    json_t *t, *h;
    json_array_foreach(tls, i, t)
    {
        json_array_foreach(json_object_get(t, "hosts"), k, h)
        {
            const char *p = json_string_value(h);
            if (!p)
                continue;
            if (strcmp(p, host) == 0)
                return true;
            const char *dot = strchr(host, '.');
            if (strncmp(p, "*.", 2) == 0 && dot && strcmp(p + 1, dot) == 0)
                return true;
        }
    }
    return false;
}

static int ingress_path(struct walk *w, const char *host, const char *scheme, const char *path)
{
    int rc = walk_begin(w);
    if (rc)
        return rc;
    int r = 0;
    r |= bt_labels_set(&w->t, "__address__", host);
    r |= bt_labels_set(&w->t, M "ingress_host", host);
    r |= bt_labels_set(&w->t, M "ingress_scheme", scheme);
    r |= bt_labels_set(&w->t, M "ingress_path", *path ? path : "/");
    return r ? -ENOMEM : walk_emit(w);
}

int bt_k8s_ingress_targets(const struct json_t *ing, bt_k8s_target_fn fn, void *ctx)
{
    if (!named(ing))
        return -EINVAL;
    const json_t *spec = json_object_get(ing, "spec");
    struct walk w = {.fn = fn, .ctx = ctx};
    bt_labels_init(&w.base);
    bt_labels_init(&w.t);
    int rc = object_labels(&w.base, ing, "ingress");
    const char *cls = str_at(spec, "ingressClassName");
    if (!*cls)
        cls = str_at(json_object_get(json_object_get(ing, "metadata"), "annotations"),
                     "kubernetes.io/ingress.class");
    if (rc == 0 && bt_labels_set(&w.base, M "ingress_class_name", cls) < 0)
        rc = -ENOMEM;
    size_t i, k;
    json_t *rule, *p;
    json_array_foreach(json_object_get(spec, "rules"), i, rule)
    {
        if (rc)
            break;
        const char *host = str_at(rule, "host");
        const char *scheme = tls_host(json_object_get(spec, "tls"), host) ? "https" : "http";
        const json_t *paths = json_object_get(json_object_get(rule, "http"), "paths");
        if (!json_array_size(paths)) {
            rc = ingress_path(&w, host, scheme, "/");
            continue;
        }
        json_array_foreach(paths, k, p)
        {
            if ((rc = ingress_path(&w, host, scheme, str_at(p, "path"))))
                break;
        }
    }
    return walk_end(&w, rc);
}

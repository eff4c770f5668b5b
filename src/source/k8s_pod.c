#include "source/k8s_pod.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/labels.h"

#define P "__meta_kubernetes_pod_"

static const char *str_at(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* prefix + name with every character outside [a-zA-Z0-9_] made '_'. */
int bt_k8s_set_sanitized(struct bt_labels *l, const char *prefix, const char *name,
                         const char *value)
{
    char buf[512];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "%s", prefix);
    for (const char *p = name; *p && n + 1 < sizeof(buf); p++) {
        char c = *p;
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        buf[n++] = ok ? c : '_';
    }
    buf[n] = '\0';
    return bt_labels_set(l, buf, value);
}

int bt_k8s_map_labels(struct bt_labels *l, const struct json_t *map, const char *vprefix,
                      const char *pprefix)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)map, k, v)
    {
        const char *s = json_string_value(v);
        if (bt_k8s_set_sanitized(l, vprefix, k, s ? s : "") < 0 ||
            bt_k8s_set_sanitized(l, pprefix, k, "true"))
            return -ENOMEM;
    }
    return 0;
}

static const char *ready_of(const json_t *status)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(status, "conditions"), i, c)
    {
        if (strcmp(str_at(c, "type"), "Ready") != 0)
            continue;
        const char *s = str_at(c, "status");
        return strcmp(s, "True") == 0 ? "true" : strcmp(s, "False") == 0 ? "false" : "unknown";
    }
    return "unknown";
}

int bt_k8s_pod_labels(struct bt_labels *l, const struct json_t *pod)
{
    const json_t *md = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec"),
                 *st = json_object_get(pod, "status");
    int rc = 0;
    rc |= bt_labels_set(l, "__meta_kubernetes_namespace", str_at(md, "namespace"));
    rc |= bt_labels_set(l, P "name", str_at(md, "name"));
    rc |= bt_labels_set(l, P "uid", str_at(md, "uid"));
    rc |= bt_labels_set(l, P "node_name", str_at(spec, "nodeName"));
    rc |= bt_labels_set(l, P "ip", str_at(st, "podIP"));
    rc |= bt_labels_set(l, P "host_ip", str_at(st, "hostIP"));
    rc |= bt_labels_set(l, P "phase", str_at(st, "phase"));
    rc |= bt_labels_set(l, P "ready", ready_of(st));
    rc |= bt_k8s_map_labels(l, json_object_get(md, "labels"), P "label_", P "labelpresent_");
    rc |= bt_k8s_map_labels(l, json_object_get(md, "annotations"), P "annotation_",
                            P "annotationpresent_");
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(md, "ownerReferences"), i, o)
    {
        if (!json_is_true(json_object_get(o, "controller")))
            continue;
        rc |= bt_labels_set(l, P "controller_kind", str_at(o, "kind"));
        rc |= bt_labels_set(l, P "controller_name", str_at(o, "name"));
        break;
    }
    return rc ? -ENOMEM : 0;
}

static const char *container_id(const json_t *statuses, const char *name)
{
    size_t i;
    json_t *s;
    json_array_foreach(statuses, i, s)
    {
        if (strcmp(str_at(s, "name"), name) == 0)
            return str_at(s, "containerID");
    }
    return "";
}

struct walk {
    const struct bt_labels *base;
    struct bt_labels t;
    const char *ip;
    bt_k8s_target_fn fn;
    void *ctx;
    int n;
};

static int one_container(struct walk *w, const json_t *c, const json_t *statuses, bool init)
{
    const char *name = str_at(c, "name");
    const json_t *ports = json_object_get(c, "ports");
    size_t np = json_array_size(ports);
    for (size_t k = 0; k < (np ? np : 1); k++) {
        bt_labels_clear(&w->t);
        if (bt_labels_copy(&w->t, w->base) < 0)
            return -ENOMEM;
        int rc = 0;
        rc |= bt_labels_set(&w->t, P "container_name", name);
        rc |= bt_labels_set(&w->t, P "container_id", container_id(statuses, name));
        rc |= bt_labels_set(&w->t, P "container_image", str_at(c, "image"));
        rc |= bt_labels_set(&w->t, P "container_init", init ? "true" : "false");
        if (!np) {
            /* No port: the IP alone, an IPv6 one in brackets (RFC 3986), as Prometheus does. */
            char addr[300];
            snprintf(addr, sizeof(addr), strchr(w->ip, ':') ? "[%s]" : "%s", w->ip);
            rc |= bt_labels_set(&w->t, "__address__", addr);
        } else {
            const json_t *p = json_array_get(ports, k);
            json_int_t num = json_integer_value(json_object_get(p, "containerPort"));
            char nb[24], addr[300];
            snprintf(nb, sizeof(nb), "%lld", (long long)num);
            /* Go's net.JoinHostPort: an IPv6 address goes in brackets. */
            snprintf(addr, sizeof(addr), strchr(w->ip, ':') ? "[%s]:%s" : "%s:%s", w->ip, nb);
            rc |= bt_labels_set(&w->t, "__address__", addr);
            rc |= bt_labels_set(&w->t, P "container_port_name", str_at(p, "name"));
            rc |= bt_labels_set(&w->t, P "container_port_number", nb);
            const char *proto = str_at(p, "protocol");
            rc |= bt_labels_set(&w->t, P "container_port_protocol", *proto ? proto : "TCP");
        }
        if (rc)
            return -ENOMEM;
        w->n++;
        if ((rc = w->fn(w->ctx, &w->t)) != 0)
            return rc;
    }
    return 0;
}

int bt_k8s_pod_targets(const struct json_t *pod, bt_k8s_target_fn fn, void *ctx)
{
    const json_t *md = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec"),
                 *st = json_object_get(pod, "status");
    if (!json_is_object(pod) || !*str_at(md, "name"))
        return -EINVAL;
    struct walk w = {.ip = str_at(st, "podIP"), .fn = fn, .ctx = ctx};
    if (!*w.ip)
        return 0; /* not started or evicted: no address yet, no targets (as Prometheus) */
    struct bt_labels base;
    bt_labels_init(&base);
    bt_labels_init(&w.t);
    w.base = &base;
    int rc = bt_k8s_pod_labels(&base, pod);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(spec, "containers"), i, c)
    {
        if (rc)
            break;
        rc = one_container(&w, c, json_object_get(st, "containerStatuses"), false);
    }
    json_array_foreach(json_object_get(spec, "initContainers"), i, c)
    {
        if (rc)
            break;
        rc = one_container(&w, c, json_object_get(st, "initContainerStatuses"), true);
    }
    bt_labels_free(&w.t);
    bt_labels_free(&base);
    return rc ? rc : w.n;
}

#define N "__meta_kubernetes_node_"

int bt_k8s_node_targets(const struct json_t *node, bt_k8s_target_fn fn, void *ctx)
{
    const json_t *md = json_object_get(node, "metadata"), *st = json_object_get(node, "status");
    const char *name = str_at(md, "name");
    if (!json_is_object(node) || !*name)
        return -EINVAL;
    static const char *const order[] = {"InternalIP",  "InternalDNS",  "ExternalIP",
                                        "ExternalDNS", "LegacyHostIP", "Hostname"};
    const json_t *addrs = json_object_get(st, "addresses");
    const char *host = NULL;
    for (size_t o = 0; o < sizeof(order) / sizeof(order[0]) && !host; o++) {
        size_t i;
        json_t *a;
        json_array_foreach(addrs, i, a)
        {
            if (strcmp(str_at(a, "type"), order[o]) == 0 && *str_at(a, "address")) {
                host = str_at(a, "address");
                break;
            }
        }
    }
    if (!host)
        return 0; /* no address: Prometheus makes no target either */
    struct bt_labels l;
    bt_labels_init(&l);
    int rc = 0;
    rc |= bt_labels_set(&l, N "name", name);
    rc |= bt_labels_set(&l, N "provider_id", str_at(json_object_get(node, "spec"), "providerID"));
    rc |= bt_labels_set(&l, "instance", name);
    rc |= bt_k8s_map_labels(&l, json_object_get(md, "labels"), N "label_", N "labelpresent_");
    rc |= bt_k8s_map_labels(&l, json_object_get(md, "annotations"), N "annotation_",
                            N "annotationpresent_");
    size_t i;
    json_t *a;
    json_array_foreach(addrs, i, a)
    {
        char ln[256];
        snprintf(ln, sizeof(ln), N "address_%s", str_at(a, "type"));
        if (!bt_labels_get(&l, ln) &&
            bt_k8s_set_sanitized(&l, N "address_", str_at(a, "type"), str_at(a, "address")) < 0)
            rc = -ENOMEM;
    }
    json_int_t port = json_integer_value(json_object_get(
        json_object_get(json_object_get(st, "daemonEndpoints"), "kubeletEndpoint"), "Port"));
    char addr[300];
    snprintf(addr, sizeof(addr), strchr(host, ':') ? "[%s]:%lld" : "%s:%lld", host,
             (long long)port);
    rc |= bt_labels_set(&l, "__address__", addr);
    if (rc == 0)
        rc = fn(ctx, &l);
    else
        rc = -ENOMEM;
    bt_labels_free(&l);
    return rc ? rc : 1;
}

static int targets_text(const char *text, size_t len, const char *list_kind,
                        int (*one)(const json_t *, bt_k8s_target_fn, void *), bt_k8s_target_fn fn,
                        void *ctx)
{
    json_t *doc = json_loadb(text, len, 0, NULL);
    if (!doc)
        return -EINVAL;
    int rc = 0;
    if (strcmp(str_at(doc, "kind"), list_kind) == 0) {
        size_t i;
        json_t *pod;
        json_array_foreach(json_object_get(doc, "items"), i, pod)
        {
            int r = one(pod, fn, ctx);
            if (r < 0) {
                rc = r;
                break;
            }
            rc += r;
        }
    } else {
        rc = one(doc, fn, ctx);
    }
    json_decref(doc);
    return rc;
}

int bt_k8s_pod_targets_text(const char *text, size_t len, bt_k8s_target_fn fn, void *ctx)
{
    return targets_text(text, len, "PodList", bt_k8s_pod_targets, fn, ctx);
}

int bt_k8s_node_targets_text(const char *text, size_t len, bt_k8s_target_fn fn, void *ctx)
{
    return targets_text(text, len, "NodeList", bt_k8s_node_targets, fn, ctx);
}

const char *bt_k8s_pod_key(const struct json_t *pod, char *out, size_t outlen)
{
    const json_t *md = json_object_get(pod, "metadata");
    const char *name = str_at(md, "name");
    if (!*name)
        return NULL;
    snprintf(out, outlen, "%s/%s", str_at(md, "namespace"), name);
    return out;
}

#include "source/k8s_sd_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/labels.h"
#include "core/metrics.h"
#include "source/k8s_pod.h"
#include "source/k8s_svc.h"
#include "source/relabel.h"

#define COMP "kubernetes_sd"

/* A target reported to the caller, shared by the pod targets that map to the same labels. */
struct k8s_rtarget {
    struct bt_labels l;
    size_t refs;
};

static int on_pod_target(void *ctx, struct bt_labels *l);

struct k8s_obj {
    const void *owner;
    uint64_t gen;
    char **keys; /* rtarget keys this pod holds one reference on each */
    size_t n;
    json_t *json; /* endpoints, endpointslice: the object, to remake it when its service changes */
};

/* A Service or Pod known to the endpoints and endpointslice roles for its labels. */
struct k8s_svc {
    const void *owner;
    uint64_t gen;
    json_t *json;
};

const char *k8s_role_name(enum k8s_role r)
{
    static const char *const n[] = {"pod",       "node",          "service",
                                    "endpoints", "endpointslice", "ingress"};
    return n[r];
}

const char *k8s_role_api(enum k8s_role r)
{
    return r == K8S_ENDPOINTSLICE ? "/apis/discovery.k8s.io/v1"
           : r == K8S_INGRESS     ? "/apis/networking.k8s.io/v1"
                                  : "/api/v1";
}

const char *k8s_role_resource(enum k8s_role r)
{
    static const char *const n[] = {"pods",      "nodes",          "services",
                                    "endpoints", "endpointslices", "ingresses"};
    return n[r];
}

bool k8s_role_joins_services(enum k8s_role r)
{
    return r == K8S_ENDPOINTS || r == K8S_ENDPOINTSLICE;
}

/* The Service an endpoints or endpointslice object belongs to, if known. */
static const json_t *service_of(struct k8s_targets *tg, const json_t *obj)
{
    const json_t *md = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = tg->role == K8S_ENDPOINTSLICE
                           ? bt_k8s_endpointslice_service(obj)
                           : json_string_value(json_object_get(md, "name"));
    if (!name)
        return NULL;
    char key[512];
    snprintf(key, sizeof(key), "%s/%s", ns ? ns : "", name);
    struct k8s_svc *s = bt_hmap_get(&tg->svcs, key, strlen(key));
    return s ? s->json : NULL;
}

static const json_t *pod_lookup(void *ctx, const char *ns, const char *name)
{
    struct k8s_targets *tg = ctx;
    char key[512];
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    struct k8s_svc *p = bt_hmap_get(&tg->pods, key, strlen(key));
    return p ? p->json : NULL;
}

static int object_targets(struct k8s_targets *tg, const json_t *obj)
{
    switch (tg->role) {
    case K8S_NODE: return bt_k8s_node_targets(obj, on_pod_target, tg);
    case K8S_SERVICE: return bt_k8s_service_targets(obj, on_pod_target, tg);
    case K8S_ENDPOINTS:
        return bt_k8s_endpoints_targets(obj, service_of(tg, obj), pod_lookup, tg, on_pod_target,
                                        tg);
    case K8S_ENDPOINTSLICE:
        return bt_k8s_endpointslice_targets(obj, service_of(tg, obj), pod_lookup, tg, on_pod_target,
                                            tg);
    case K8S_INGRESS: return bt_k8s_ingress_targets(obj, on_pod_target, tg);
    case K8S_POD: break;
    }
    return bt_k8s_pod_targets(obj, on_pod_target, tg);
}

/* The key of a reduced label set: Loki's canonical string plus __path__ and __path_exclude__. */
static char *target_key(struct bt_labels *l)
{
    size_t n;
    const char *canon = bt_labels_canon(l, &n);
    const char *p = bt_labels_get(l, "__path__"), *x = bt_labels_get(l, "__path_exclude__");
    char *k = NULL;
    if (asprintf(&k, "%.*s\x1f%s\x1f%s", (int)n, canon ? canon : "", p ? p : "", x ? x : "") < 0)
        return NULL;
    return k;
}

static void target_ref(struct k8s_targets *tg, const char *key, const struct bt_labels *l)
{
    struct k8s_rtarget *t = bt_hmap_get(&tg->targets, key, strlen(key));
    if (t) {
        t->refs++;
        return;
    }
    t = calloc(1, sizeof(*t));
    if (!t)
        return;
    bt_labels_init(&t->l);
    t->refs = 1;
    if (bt_labels_copy(&t->l, l) < 0 || bt_hmap_put(&tg->targets, key, strlen(key), t, NULL) < 0) {
        bt_labels_free(&t->l);
        free(t);
        return;
    }
    bt_gauge_set(tg->m_targets, (double)tg->targets.n);
    tg->fn(tg->ctx, &t->l, true);
}

static void target_unref(struct k8s_targets *tg, const char *key)
{
    struct k8s_rtarget *t = bt_hmap_get(&tg->targets, key, strlen(key));
    if (!t || --t->refs)
        return;
    bt_hmap_del(&tg->targets, key, strlen(key));
    bt_gauge_set(tg->m_targets, (double)tg->targets.n);
    if (!tg->closing)
        tg->fn(tg->ctx, &t->l, false);
    bt_labels_free(&t->l);
    free(t);
}

/* One target of a pod: relabel, filter and reduce as promtail does, then note its key. */
static int on_pod_target(void *ctx, struct bt_labels *l)
{
    struct k8s_targets *tg = ctx;
    if (bt_relabel_apply(tg->relabel, l) != BT_RELABEL_KEEP)
        return 0;
    const char *path = bt_labels_get(l, "__path__");
    const char *host = bt_labels_get(l, "__host__");
    if (!path || !*path || (host && strcmp(host, tg->host) != 0))
        return 0;
    /* Only the labels a file target uses stay: the visible ones and the path glob. */
    for (size_t i = 0; i < l->n;) {
        const char *name = l->v[i].name;
        if (name[0] == '_' && name[1] == '_' && strcmp(name, "__path__") != 0 &&
            strcmp(name, "__path_exclude__") != 0)
            bt_labels_del(l, name);
        else
            i++;
    }
    char *k = target_key(l);
    if (!k)
        return -ENOMEM;
    for (size_t i = 0; i < tg->nk_n; i++)
        if (strcmp(tg->nk[i], k) == 0) { /* another port of the same container */
            free(k);
            return 0;
        }
    if (tg->nk_n == tg->nk_cap) {
        size_t nc = tg->nk_cap ? tg->nk_cap * 2 : 8;
        char **n = realloc(tg->nk, nc * sizeof(*n));
        if (n)
            tg->nk = n;
        struct bt_labels *nl = n ? realloc(tg->nl, nc * sizeof(*nl)) : NULL;
        if (!nl) {
            free(k);
            return -ENOMEM;
        }
        tg->nl = nl;
        for (size_t i = tg->nk_cap; i < nc; i++)
            bt_labels_init(&tg->nl[i]);
        tg->nk_cap = nc;
    }
    bt_labels_clear(&tg->nl[tg->nk_n]);
    if (bt_labels_copy(&tg->nl[tg->nk_n], l) < 0) {
        free(k);
        return -ENOMEM;
    }
    tg->nk[tg->nk_n++] = k;
    return 0;
}

static bool has_key(char **keys, size_t n, const char *k)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i], k) == 0)
            return true;
    return false;
}

static void pod_release(struct k8s_targets *tg, struct k8s_obj *p)
{
    for (size_t i = 0; i < p->n; i++) {
        target_unref(tg, p->keys[i]);
        free(p->keys[i]);
    }
    free(p->keys);
    p->keys = NULL;
    p->n = 0;
}

/* ADDED, MODIFIED or listed: the pod's targets now. A target that did not change is never
 * removed and added again (a re-list changes nothing); targets that did are removed first, then
 * the new ones added, so that the file source hands a file from the old label set to the new
 * one (bt_files_retire_target, then bt_files_add_target) instead of reading it twice. */
void k8s_object_update(struct k8s_targets *tg, const void *owner, uint64_t gen,
                       const struct json_t *obj)
{
    char key[512];
    if (!bt_k8s_pod_key(obj, key, sizeof(key)))
        return;
    struct k8s_obj *p = bt_hmap_get(&tg->objs, key, strlen(key));
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p || bt_hmap_put(&tg->objs, key, strlen(key), p, NULL) < 0) {
            free(p);
            BT_WARN(COMP, "out of memory, pod left out", "job=%s pod=%s", tg->job, key);
            return;
        }
    }
    p->owner = owner;
    p->gen = gen;
    tg->nk_n = 0;
    if (k8s_role_joins_services(tg->role) && p->json != obj) {
        json_decref(p->json);
        p->json = json_incref((json_t *)obj);
    }
    if (tg->hold)
        return; /* made by k8s_services_synced */
    int rc = object_targets(tg, obj);
    uint64_t sup;
    if (rc < 0 && bt_ratelimit_ok(&tg->rl_bad, &sup))
        BT_WARN(COMP, "object not understood", "job=%s object=%s err=%s suppressed=%llu", tg->job,
                key, strerror(-rc), (unsigned long long)sup);
    char **old = p->keys;
    size_t oldn = p->n;
    char **keys = tg->nk_n ? malloc(tg->nk_n * sizeof(char *)) : NULL;
    size_t n = keys ? tg->nk_n : 0;
    for (size_t i = 0; i < oldn; i++) /* gone or changed */
        if (!has_key(tg->nk, n, old[i]))
            target_unref(tg, old[i]);
    for (size_t i = 0; i < tg->nk_n; i++) {
        if (keys) {
            keys[i] = tg->nk[i];
            target_ref(tg, keys[i], &tg->nl[i]);
        } else {
            free(tg->nk[i]); /* no memory to remember it: left out */
        }
    }
    for (size_t i = 0; i < oldn; i++) { /* unchanged: the reference just taken replaces it */
        if (has_key(keys, n, old[i]))
            target_unref(tg, old[i]);
        free(old[i]);
    }
    free(old);
    p->keys = keys;
    p->n = n;
    tg->nk_n = 0;
}

static void pod_forget(struct k8s_targets *tg, const char *key)
{
    struct k8s_obj *p = bt_hmap_del(&tg->objs, key, strlen(key));
    if (!p)
        return;
    pod_release(tg, p);
    json_decref(p->json);
    free(p);
}

void k8s_object_delete(struct k8s_targets *tg, const struct json_t *obj)
{
    char key[512];
    if (bt_k8s_pod_key(obj, key, sizeof(key)))
        pod_forget(tg, key);
}

void k8s_objects_sweep(struct k8s_targets *tg, const void *owner, uint64_t gen)
{
    size_t it = 0, ngone = 0;
    struct bt_hmap_slot *s;
    char **gone = NULL;
    while ((s = bt_hmap_next(&tg->objs, &it))) {
        struct k8s_obj *p = s->val;
        if (p->owner != owner || p->gen == gen)
            continue;
        char **n = realloc(gone, (ngone + 1) * sizeof(*n));
        if (!n)
            break;
        gone = n;
        gone[ngone] = strndup(s->key, s->klen);
        if (gone[ngone])
            ngone++;
    }
    for (size_t k = 0; k < ngone; k++) {
        pod_forget(tg, gone[k]);
        free(gone[k]);
    }
    free(gone);
}

void k8s_targets_init(struct k8s_targets *tg, enum k8s_role role, struct bt_relabel *relabel,
                      const char *job, bt_k8s_sd_fn fn, void *ctx)
{
    memset(tg, 0, sizeof(*tg));
    tg->role = role;
    tg->relabel = relabel;
    tg->job = job;
    tg->fn = fn;
    tg->ctx = ctx;
    tg->rl_bad = (struct bt_ratelimit)BT_RATELIMIT_INIT(10);
    bt_hmap_init(&tg->objs);
    bt_hmap_init(&tg->targets);
    bt_hmap_init(&tg->svcs);
    bt_hmap_init(&tg->pods);
    const char *h = getenv("HOSTNAME");
    if (h && *h)
        snprintf(tg->host, sizeof(tg->host), "%s", h);
    else if (gethostname(tg->host, sizeof(tg->host) - 1) < 0)
        tg->host[0] = '\0';
}

void k8s_targets_free(struct k8s_targets *tg)
{
    tg->closing = true;
    size_t it = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&tg->objs, &it))) {
        struct k8s_obj *p = s->val;
        for (size_t i = 0; i < p->n; i++)
            free(p->keys[i]);
        free(p->keys);
        json_decref(p->json);
        free(p);
    }
    bt_hmap_free(&tg->objs);
    struct bt_hmap *joins[2] = {&tg->svcs, &tg->pods};
    for (int j = 0; j < 2; j++) {
        it = 0;
        while ((s = bt_hmap_next(joins[j], &it))) {
            struct k8s_svc *v = s->val;
            json_decref(v->json);
            free(v);
        }
        bt_hmap_free(joins[j]);
    }
    it = 0;
    while ((s = bt_hmap_next(&tg->targets, &it))) {
        struct k8s_rtarget *t = s->val;
        bt_labels_free(&t->l);
        free(t);
    }
    bt_hmap_free(&tg->targets);
    free(tg->nk);
    for (size_t i = 0; i < tg->nk_cap; i++)
        bt_labels_free(&tg->nl[i]);
    free(tg->nl);
}

/* Whether the object's targets carry the labels of joined object ns/name. */
static bool joined_to(struct k8s_targets *tg, enum k8s_join j, const json_t *obj, const char *ns,
                      const char *name)
{
    if (j == K8S_JOIN_POD)
        return bt_k8s_refers_to_pod(obj, ns, name);
    const json_t *md = json_object_get(obj, "metadata");
    const char *ons = json_string_value(json_object_get(md, "namespace"));
    const char *svc = tg->role == K8S_ENDPOINTSLICE
                          ? bt_k8s_endpointslice_service(obj)
                          : json_string_value(json_object_get(md, "name"));
    return svc && strcmp(svc, name) == 0 && strcmp(ons ? ons : "", ns) == 0;
}

/* Makes again the targets of the objects joined to Service or Pod ns/name. */
static void join_changed(struct k8s_targets *tg, enum k8s_join j, const char *ns, const char *name)
{
    if (tg->hold)
        return; /* k8s_joins_synced makes them all */
    size_t it = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&tg->objs, &it))) {
        struct k8s_obj *p = s->val;
        if (!p->json || !joined_to(tg, j, p->json, ns, name))
            continue;
        /* An update of an existing key changes nothing in objs: the walk stays valid. */
        json_t *o = json_incref(p->json);
        k8s_object_update(tg, p->owner, p->gen, o);
        json_decref(o);
    }
}

static bool obj_name(const json_t *obj, char *key, size_t keylen, const char **ns,
                     const char **name)
{
    const json_t *md = json_object_get(obj, "metadata");
    *ns = json_string_value(json_object_get(md, "namespace"));
    *name = json_string_value(json_object_get(md, "name"));
    if (!*name || !**name)
        return false;
    *ns = *ns ? *ns : "";
    snprintf(key, keylen, "%s/%s", *ns, *name);
    return true;
}

/* What is kept of a joined object: all of it but metadata.managedFields, which no label
 * comes from and which is often most of a pod's JSON. A new reference, NULL without memory. */
static json_t *slim(const json_t *obj)
{
    const json_t *md = json_object_get(obj, "metadata");
    if (!json_object_get(md, "managedFields"))
        return json_incref((json_t *)obj);
    json_t *o = json_copy((json_t *)obj), *m = json_copy((json_t *)md);
    if (!o || !m || json_object_del(m, "managedFields") < 0) {
        json_decref(o);
        json_decref(m);
        return NULL;
    }
    if (json_object_set_new(o, "metadata", m) < 0) { /* m is freed either way */
        json_decref(o);
        return NULL;
    }
    return o;
}

static struct bt_hmap *join_map(struct k8s_targets *tg, enum k8s_join j)
{
    return j == K8S_JOIN_POD ? &tg->pods : &tg->svcs;
}

void k8s_join_update(struct k8s_targets *tg, enum k8s_join j, const void *owner, uint64_t gen,
                     const struct json_t *obj)
{
    char key[512];
    const char *ns, *name;
    if (!obj_name(obj, key, sizeof(key), &ns, &name))
        return;
    struct bt_hmap *m = join_map(tg, j);
    struct k8s_svc *v = bt_hmap_get(m, key, strlen(key));
    if (!v) {
        v = calloc(1, sizeof(*v));
        if (!v || bt_hmap_put(m, key, strlen(key), v, NULL) < 0) {
            free(v);
            BT_WARN(COMP, "out of memory, object left out", "job=%s object=%s", tg->job, key);
            return;
        }
    }
    v->owner = owner;
    v->gen = gen;
    json_t *keep = slim(obj);
    if (!keep) {
        BT_WARN(COMP, "out of memory, object change left out", "job=%s object=%s", tg->job, key);
        return;
    }
    if (v->json && json_equal(v->json, keep)) {
        json_decref(keep);
        return; /* a re-list: nothing changed */
    }
    json_decref(v->json);
    v->json = keep;
    join_changed(tg, j, ns, name);
}

static void join_forget(struct k8s_targets *tg, enum k8s_join j, const char *key)
{
    struct k8s_svc *v = bt_hmap_del(join_map(tg, j), key, strlen(key));
    if (!v)
        return;
    const char *slash = strchr(key, '/');
    char ns[256];
    snprintf(ns, sizeof(ns), "%.*s", (int)(slash - key), key);
    join_changed(tg, j, ns, slash + 1);
    json_decref(v->json);
    free(v);
}

void k8s_join_delete(struct k8s_targets *tg, enum k8s_join j, const struct json_t *obj)
{
    char key[512];
    const char *ns, *name;
    if (obj_name(obj, key, sizeof(key), &ns, &name))
        join_forget(tg, j, key);
}

void k8s_joins_sweep(struct k8s_targets *tg, enum k8s_join j, const void *owner, uint64_t gen)
{
    size_t it = 0, ngone = 0;
    struct bt_hmap_slot *s;
    char **gone = NULL;
    while ((s = bt_hmap_next(join_map(tg, j), &it))) {
        struct k8s_svc *v = s->val;
        if (v->owner != owner || v->gen == gen)
            continue;
        char **n = realloc(gone, (ngone + 1) * sizeof(*n));
        if (!n)
            break;
        gone = n;
        gone[ngone] = strndup(s->key, s->klen);
        if (gone[ngone])
            ngone++;
    }
    for (size_t k = 0; k < ngone; k++) {
        join_forget(tg, j, gone[k]);
        free(gone[k]);
    }
    free(gone);
}

void k8s_joins_synced(struct k8s_targets *tg)
{
    if (!tg->hold)
        return;
    tg->hold = false;
    size_t it = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&tg->objs, &it))) {
        struct k8s_obj *p = s->val;
        if (!p->json)
            continue;
        json_t *o = json_incref(p->json);
        k8s_object_update(tg, p->owner, p->gen, o);
        json_decref(o);
    }
}

/*
 * Kubernetes API objects (source/k8s_pod.c, k8s_svc.c): the input is the JSON text of an
 * object or a list as the API server (or anyone impersonating it) sends it; it goes through the
 * targets of every role. The first byte picks the role, so each gets its own share of inputs.
 */
#include <jansson.h>
#include <string.h>

#include "fuzz_common.h"
#include "source/k8s_pod.h"
#include "source/k8s_svc.h"

static int on_target(void *ctx, struct bt_labels *l)
{
    size_t n;
    const char *c = bt_labels_canon(l, &n);
    volatile unsigned char x = 0;
    for (size_t i = 0; c && i < n; i++)
        x ^= (unsigned char)c[i];
    (void)x;
    (*(int *)ctx)++;
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    return 0;
}

/* The endpoint roles' pod join: the pods are the object's own "pods" member (any shape). */
static const json_t *pod_lookup(void *ctx, const char *ns, const char *name)
{
    json_t *pods = ctx;
    size_t i;
    json_t *p;
    if (!json_is_array(pods))
        return NULL;
    json_array_foreach(pods, i, p)
    {
        json_t *md = json_object_get(p, "metadata");
        const char *pn = json_string_value(json_object_get(md, "namespace"));
        const char *nm = json_string_value(json_object_get(md, "name"));
        if (pn && nm && strcmp(pn, ns) == 0 && strcmp(nm, name) == 0)
            return p;
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int role = data[0] % 6, n = 0;
    const char *text = (const char *)data + 1;
    size--;
    if (role == 0) {
        (void)bt_k8s_pod_targets_text(text, size, on_target, &n);
        return 0;
    }
    if (role == 1) {
        (void)bt_k8s_node_targets_text(text, size, on_target, &n);
        return 0;
    }
    json_error_t je;
    json_t *o = json_loadb(text, size, JSON_DECODE_ANY, &je);
    if (!o)
        return 0;
    /* A list's items, or the object itself; the service for endpoints is the object's own
     * "service" member when there is one (any shape). */
    json_t *items = json_object_get(o, "items");
    size_t count = json_is_array(items) ? json_array_size(items) : 1;
    json_t *svc = json_object_get(o, "service");
    json_t *pods = json_object_get(o, "pods");
    for (size_t i = 0; i < count; i++) {
        json_t *it = json_is_array(items) ? json_array_get(items, i) : o;
        char key[256];
        (void)bt_k8s_pod_key(it, key, sizeof(key));
        switch (role) {
        case 2: (void)bt_k8s_service_targets(it, on_target, &n); break;
        case 3: (void)bt_k8s_endpoints_targets(it, svc, pod_lookup, pods, on_target, &n); break;
        case 4:
            (void)bt_k8s_endpointslice_service(it);
            (void)bt_k8s_endpointslice_targets(it, svc, pod_lookup, pods, on_target, &n);
            (void)bt_k8s_refers_to_pod(it, "default", "web-1");
            break;
        default: (void)bt_k8s_ingress_targets(it, on_target, &n); break;
        }
    }
    json_decref(o);
    return 0;
}

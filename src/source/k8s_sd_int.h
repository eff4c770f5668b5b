/*
 * k8s_sd_int: what k8s_sd.c (requests, watch, targets) and k8s_conf.c (the config item, the
 * kubeconfig file and the in-cluster config) share. Private to src/source/k8s_*.c.
 */
#ifndef BT_K8S_SD_INT_H
#define BT_K8S_SD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "source/k8s_sd.h"
#include "util/hmap.h"
#include "util/log.h"

struct bt_labels;
struct bt_node;
struct bt_relabel;
struct bt_series;
struct json_t;

/* How to reach and authenticate to the API server. Strings owned; NULL when not set. */
struct k8s_conn {
    char *server; /* scheme://host[:port][/prefix], no trailing slash */
    char *ca_file, *cert_file, *key_file;
    char *ca_pem, *cert_pem, *key_pem; /* inline PEM (tls_config ca/cert/key, kubeconfig *-data) */
    size_t ca_len, cert_len, key_len;
    bool insecure;     /* insecure_skip_verify */
    char *auth_scheme; /* "Bearer" unless authorization.type says otherwise */
    char *auth_cred, *auth_cred_file;
    char *user, *user_file, *pass, *pass_file;
    char *proxy;
};

enum k8s_role { K8S_POD, K8S_NODE, K8S_SERVICE, K8S_ENDPOINTS, K8S_ENDPOINTSLICE, K8S_INGRESS };

/* The role's name, its API path below the server ("/api/v1", "/apis/<group>/<version>"), its
 * resource, and whether it is namespaced. */
const char *k8s_role_name(enum k8s_role r);
const char *k8s_role_api(enum k8s_role r);
const char *k8s_role_resource(enum k8s_role r);
/* Roles whose targets carry the labels of a Service and of the Pods behind their addresses:
 * they watch services and pods too. */
bool k8s_role_joins_services(enum k8s_role r);

struct k8s_conf {
    struct k8s_conn conn;
    enum k8s_role role;
    char **ns; /* namespaces to watch; none: all */
    size_t n_ns;
    char *label_sel, *field_sel;         /* selectors of the role, joined with ',' */
    char *svc_label_sel, *svc_field_sel; /* endpoints, endpointslice: role service's */
    char *pod_label_sel, *pod_field_sel; /* endpoints, endpointslice: role pod's */
    bool check;                          /* config check only: no service-account files read */
};

/* Reads one kubernetes_sd_configs item (kubeconfig and, unless check, service-account files
 * included). 0 or -EINVAL/-ENOMEM with "file:line:col: kubernetes_sd_configs: ..." in err. */
int k8s_conf_parse(struct k8s_conf *c, const struct bt_node *cfg, bool check, char *err,
                   size_t errlen);
void k8s_conf_free(struct k8s_conf *c);
/* Reads a small secret file (a token, a password) into out, surrounding whitespace removed.
 * 0, -errno, or -E2BIG past outlen - 1 bytes. */
int k8s_read_secret(const char *path, char *out, size_t outlen);

/* k8s_targets.c: the targets of the objects seen, reference-counted by label set, and the
 * caller's add/remove calls. An object belongs to an owner (one LIST + WATCH) and carries the
 * generation of the owner's list that last saw it. */
struct k8s_targets {
    enum k8s_role role;
    struct bt_relabel *relabel; /* borrowed */
    bt_k8s_sd_fn fn;
    void *ctx;
    const char *job;        /* borrowed */
    char host[256];         /* __host__ must be this ($HOSTNAME, else gethostname) */
    struct bt_hmap objs;    /* "ns/name" -> struct k8s_obj */
    struct bt_hmap targets; /* label-set key -> struct k8s_rtarget */
    struct bt_hmap svcs;    /* endpoints, endpointslice: "ns/name" -> struct k8s_svc */
    struct bt_hmap pods;    /* endpoints, endpointslice: "ns/name" -> struct k8s_svc (a Pod) */
    char **nk;              /* targets being built for one object: keys and label sets */
    struct bt_labels *nl;
    size_t nk_n, nk_cap;
    struct bt_series *m_targets;
    struct bt_ratelimit rl_bad;
    bool closing; /* freeing: nothing is reported */
    bool hold;    /* endpoints, endpointslice: services or pods not listed yet, no targets */
};

void k8s_targets_init(struct k8s_targets *t, enum k8s_role role, struct bt_relabel *relabel,
                      const char *job, bt_k8s_sd_fn fn, void *ctx);
/* Frees everything without reporting removals. */
void k8s_targets_free(struct k8s_targets *t);
/* ADDED, MODIFIED or listed: the object's targets are now those it makes. */
void k8s_object_update(struct k8s_targets *t, const void *owner, uint64_t gen,
                       const struct json_t *obj);
/* DELETED: its targets go. */
void k8s_object_delete(struct k8s_targets *t, const struct json_t *obj);
/* After owner's list of generation gen: objects of owner it did not have are gone. */
void k8s_objects_sweep(struct k8s_targets *t, const void *owner, uint64_t gen);
/* What roles endpoints and endpointslice join to their objects: Services and Pods. */
enum k8s_join { K8S_JOIN_SERVICE, K8S_JOIN_POD };
/* Roles endpoints and endpointslice: a Service or Pod was added or changed (update), deleted,
 * or is gone after a list (sweep); the targets of the objects joined to it (a Service: of the
 * same name or its endpointslices; a Pod: an address refers to it) are made again with its
 * labels (or without them). */
void k8s_join_update(struct k8s_targets *t, enum k8s_join j, const void *owner, uint64_t gen,
                     const struct json_t *obj);
void k8s_join_delete(struct k8s_targets *t, enum k8s_join j, const struct json_t *obj);
void k8s_joins_sweep(struct k8s_targets *t, enum k8s_join j, const void *owner, uint64_t gen);
/* Every service and pod watcher has listed once: the objects held back (hold) get their
 * targets, so that no file is read under labels that lack its service's or pod's. */
void k8s_joins_synced(struct k8s_targets *t);

#endif

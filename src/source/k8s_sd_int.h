/*
 * k8s_sd_int: what k8s_sd.c (requests, watch, targets) and k8s_conf.c (the config item, the
 * kubeconfig file and the in-cluster config) share. Private to src/source/k8s_*.c.
 */
#ifndef BT_K8S_SD_INT_H
#define BT_K8S_SD_INT_H

#include <stdbool.h>
#include <stddef.h>

struct bt_node;

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

enum k8s_role { K8S_POD, K8S_NODE };

struct k8s_conf {
    struct k8s_conn conn;
    enum k8s_role role;
    char **ns; /* namespaces to watch; none: all */
    size_t n_ns;
    char *label_sel, *field_sel; /* selectors of the role, joined with ',' */
    bool check;                  /* config check only: no service-account files read */
};

/* Reads one kubernetes_sd_configs item (kubeconfig and, unless check, service-account files
 * included). 0 or -EINVAL/-ENOMEM with "file:line:col: kubernetes_sd_configs: ..." in err. */
int k8s_conf_parse(struct k8s_conf *c, const struct bt_node *cfg, bool check, char *err,
                   size_t errlen);
void k8s_conf_free(struct k8s_conf *c);
/* Reads a small secret file (a token, a password) into out, surrounding whitespace removed.
 * 0, -errno, or -E2BIG past outlen - 1 bytes. */
int k8s_read_secret(const char *path, char *out, size_t outlen);

#endif

#include "source/k8s_sd_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/node.h"
#include "util/buf.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define PEM_MAX (1u << 20)

static int fail(char *err, size_t errlen, const struct bt_node *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, const struct bt_node *n, const char *fmt, ...)
{
    char where[256], msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s: kubernetes_sd_configs: %s", bt_node_where(n, where, sizeof(where)),
             msg);
    return -EINVAL;
}

int k8s_read_secret(const char *path, char *out, size_t outlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, out, outlen);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    if ((size_t)n >= outlen)
        return -E2BIG;
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        n--;
    out[n] = '\0';
    size_t lead = strspn(out, " \t\r\n");
    memmove(out, out + lead, (size_t)n - lead + 1);
    return 0;
}

static int set_str(char **dst, const char *s)
{
    free(*dst);
    *dst = s ? strdup(s) : NULL;
    return s && !*dst ? -ENOMEM : 0;
}

/* A scalar value (a string), else an error naming the key. */
static int scalar(const struct bt_node *v, const char *key, char **dst, char *err, size_t errlen)
{
    if (bt_node_is_null(v))
        return 0;
    if (v->type != BT_NODE_SCALAR)
        return fail(err, errlen, v, "%s must be a string", key);
    return set_str(dst, v->str);
}

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Standard base64 (kubeconfig's *-data); whitespace skipped, '=' ends it. */
static int b64_decode(const char *s, char **out, size_t *outlen)
{
    size_t n = strlen(s);
    char *o = malloc(n / 4 * 3 + 4);
    if (!o)
        return -ENOMEM;
    size_t len = 0;
    unsigned acc = 0;
    int bits = 0;
    for (const char *p = s; *p && *p != '='; p++) {
        if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
            continue;
        int v = b64val((unsigned char)*p);
        if (v < 0) {
            free(o);
            return -EINVAL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[len++] = (char)((acc >> bits) & 0xff);
        }
    }
    o[len] = '\0';
    *out = o;
    *outlen = len;
    return 0;
}

static int pem_inline(const struct bt_node *v, const char *key, char **dst, size_t *len, char *err,
                      size_t errlen)
{
    int rc = scalar(v, key, dst, err, errlen);
    if (rc == 0 && *dst)
        *len = strlen(*dst);
    return rc;
}

static int parse_tls(struct k8s_conn *cn, const struct bt_node *t, char *err, size_t errlen)
{
    if (bt_node_is_null(t))
        return 0;
    if (t->type != BT_NODE_MAP)
        return fail(err, errlen, t, "tls_config must be a map");
    for (size_t i = 0; i < t->n; i++) {
        const struct bt_node *k = bt_node_key(t, i), *v = bt_node_val(t, i);
        const char *key = k->str ? k->str : "";
        int rc = 0;
        if (strcmp(key, "ca_file") == 0)
            rc = scalar(v, key, &cn->ca_file, err, errlen);
        else if (strcmp(key, "cert_file") == 0)
            rc = scalar(v, key, &cn->cert_file, err, errlen);
        else if (strcmp(key, "key_file") == 0)
            rc = scalar(v, key, &cn->key_file, err, errlen);
        else if (strcmp(key, "ca") == 0)
            rc = pem_inline(v, key, &cn->ca_pem, &cn->ca_len, err, errlen);
        else if (strcmp(key, "cert") == 0)
            rc = pem_inline(v, key, &cn->cert_pem, &cn->cert_len, err, errlen);
        else if (strcmp(key, "key") == 0)
            rc = pem_inline(v, key, &cn->key_pem, &cn->key_len, err, errlen);
        else if (strcmp(key, "insecure_skip_verify") == 0) {
            if (bt_node_bool(v, &cn->insecure))
                rc = fail(err, errlen, v, "insecure_skip_verify must be true or false");
        } else if (strcmp(key, "min_version") == 0 || strcmp(key, "max_version") == 0)
            ; /* libcurl negotiates TLS 1.2 or later already */
        else
            rc = fail(err, errlen, k, "tls_config: %s is not supported", key);
        if (rc)
            return rc;
    }
    return 0;
}

static int parse_map_auth(struct k8s_conn *cn, const struct bt_node *m, bool basic, char *err,
                          size_t errlen)
{
    if (m->type != BT_NODE_MAP)
        return fail(err, errlen, m, "%s must be a map", basic ? "basic_auth" : "authorization");
    for (size_t i = 0; i < m->n; i++) {
        const struct bt_node *k = bt_node_key(m, i), *v = bt_node_val(m, i);
        const char *key = k->str ? k->str : "";
        int rc;
        if (basic && strcmp(key, "username") == 0)
            rc = scalar(v, key, &cn->user, err, errlen);
        else if (basic && strcmp(key, "username_file") == 0)
            rc = scalar(v, key, &cn->user_file, err, errlen);
        else if (basic && strcmp(key, "password") == 0)
            rc = scalar(v, key, &cn->pass, err, errlen);
        else if (basic && strcmp(key, "password_file") == 0)
            rc = scalar(v, key, &cn->pass_file, err, errlen);
        else if (!basic && strcmp(key, "type") == 0)
            rc = scalar(v, key, &cn->auth_scheme, err, errlen);
        else if (!basic && strcmp(key, "credentials") == 0)
            rc = scalar(v, key, &cn->auth_cred, err, errlen);
        else if (!basic && strcmp(key, "credentials_file") == 0)
            rc = scalar(v, key, &cn->auth_cred_file, err, errlen);
        else
            rc = fail(err, errlen, k, "%s: unknown key %s", basic ? "basic_auth" : "authorization",
                      key);
        if (rc)
            return rc;
    }
    return 0;
}

static int add_ns(struct k8s_conf *c, const char *ns)
{
    for (size_t i = 0; i < c->n_ns; i++)
        if (strcmp(c->ns[i], ns) == 0)
            return 0;
    char **n = realloc(c->ns, (c->n_ns + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    c->ns = n;
    if (!(c->ns[c->n_ns] = strdup(ns)))
        return -ENOMEM;
    c->n_ns++;
    return 0;
}

static const char *sa_dir(void)
{
    const char *d = getenv("BPFTAIL_K8S_SERVICEACCOUNT_DIR");
    return d && *d ? d : SA_DIR;
}

static int parse_namespaces(struct k8s_conf *c, const struct bt_node *m, char *err, size_t errlen)
{
    if (bt_node_is_null(m))
        return 0;
    if (m->type != BT_NODE_MAP)
        return fail(err, errlen, m, "namespaces must be a map with names and own_namespace");
    for (size_t i = 0; i < m->n; i++) {
        const struct bt_node *k = bt_node_key(m, i), *v = bt_node_val(m, i);
        const char *key = k->str ? k->str : "";
        if (strcmp(key, "names") == 0) {
            if (bt_node_is_null(v))
                continue;
            if (v->type != BT_NODE_SEQ)
                return fail(err, errlen, v, "namespaces.names must be a list");
            for (size_t j = 0; j < v->n; j++) {
                if (v->items[j]->type != BT_NODE_SCALAR || !v->items[j]->len)
                    return fail(err, errlen, v->items[j], "a namespace name must be a string");
                if (add_ns(c, v->items[j]->str) < 0)
                    return -ENOMEM;
            }
        } else if (strcmp(key, "own_namespace") == 0) {
            bool own = false;
            if (bt_node_bool(v, &own))
                return fail(err, errlen, v, "own_namespace must be true or false");
            if (!own || c->check)
                continue;
            char path[4096], ns[256];
            snprintf(path, sizeof(path), "%s/namespace", sa_dir());
            int rc = k8s_read_secret(path, ns, sizeof(ns));
            if (rc < 0 || !ns[0])
                return fail(err, errlen, v, "own_namespace: cannot read %s: %s", path,
                            rc < 0 ? strerror(-rc) : "empty");
            if (add_ns(c, ns) < 0)
                return -ENOMEM;
        } else {
            return fail(err, errlen, k, "namespaces: unknown key %s", key);
        }
    }
    return 0;
}

static int join_sel(char **dst, const char *s)
{
    if (!*dst)
        return set_str(dst, s);
    char *n = NULL;
    if (asprintf(&n, "%s,%s", *dst, s) < 0)
        return -ENOMEM;
    free(*dst);
    *dst = n;
    return 0;
}

static int parse_selectors(struct k8s_conf *c, const struct bt_node *l, char *err, size_t errlen)
{
    if (bt_node_is_null(l))
        return 0;
    if (l->type != BT_NODE_SEQ)
        return fail(err, errlen, l, "selectors must be a list of {role, label, field}");
    for (size_t i = 0; i < l->n; i++) {
        const struct bt_node *s = l->items[i];
        if (s->type != BT_NODE_MAP)
            return fail(err, errlen, s, "each selector must be a map with role, label, field");
        const struct bt_node *role = NULL, *label = NULL, *field = NULL;
        for (size_t j = 0; j < s->n; j++) {
            const struct bt_node *k = bt_node_key(s, j), *v = bt_node_val(s, j);
            const char *key = k->str ? k->str : "";
            if (v->type != BT_NODE_SCALAR && !bt_node_is_null(v))
                return fail(err, errlen, v, "selector %s must be a string", key);
            if (strcmp(key, "role") == 0)
                role = v;
            else if (strcmp(key, "label") == 0)
                label = v;
            else if (strcmp(key, "field") == 0)
                field = v;
            else
                return fail(err, errlen, k, "selectors: unknown key %s", key);
        }
        if (!role || bt_node_is_null(role))
            return fail(err, errlen, s, "a selector needs a role");
        char **ls = &c->label_sel, **fs = &c->field_sel;
        if (k8s_role_joins_services(c->role) && strcmp(role->str, "service") == 0) {
            ls = &c->svc_label_sel; /* for the services watched for their labels */
            fs = &c->svc_field_sel;
        } else if (k8s_role_joins_services(c->role) && strcmp(role->str, "pod") == 0) {
            ls = &c->pod_label_sel; /* for the pods watched for their labels */
            fs = &c->pod_field_sel;
        } else if (strcmp(role->str, k8s_role_name(c->role)) != 0) {
            continue; /* Prometheus uses a selector only for its role's objects */
        }
        int rc = 0;
        if (label && !bt_node_is_null(label) && label->len)
            rc = join_sel(ls, label->str);
        if (rc == 0 && field && !bt_node_is_null(field) && field->len)
            rc = join_sel(fs, field->str);
        if (rc)
            return rc;
    }
    return 0;
}

/* kubeconfig: the named entry of a list like clusters: [{name: x, cluster: {...}}]. */
static const struct bt_node *kc_find(const struct bt_node *root, const char *list,
                                     const char *inner, const char *name)
{
    const struct bt_node *l = bt_node_get(root, list);
    for (size_t i = 0; l && l->type == BT_NODE_SEQ && i < l->n; i++) {
        const struct bt_node *n = bt_node_get(l->items[i], "name");
        if (n && n->type == BT_NODE_SCALAR && strcmp(n->str, name) == 0)
            return bt_node_get(l->items[i], inner);
    }
    return NULL;
}

static const char *kc_str(const struct bt_node *m, const char *key)
{
    const struct bt_node *v = bt_node_get(m, key);
    return v && v->type == BT_NODE_SCALAR && v->len ? v->str : NULL;
}

/* A path of the kubeconfig, relative to the file's directory as kubectl reads it. */
static int kc_path(char **dst, const char *kcfile, const char *p)
{
    if (!p)
        return 0;
    if (p[0] == '/')
        return set_str(dst, p);
    const char *slash = strrchr(kcfile, '/');
    free(*dst);
    *dst = NULL;
    if (asprintf(dst, "%.*s%s", slash ? (int)(slash - kcfile + 1) : 0, kcfile, p) < 0) {
        *dst = NULL;
        return -ENOMEM;
    }
    return 0;
}

static int kc_data(char **dst, size_t *len, const char *b64, const struct bt_node *at,
                   const char *key, char *err, size_t errlen)
{
    if (!b64)
        return 0;
    free(*dst);
    *dst = NULL;
    int rc = b64_decode(b64, dst, len);
    if (rc == -EINVAL)
        return fail(err, errlen, at, "kubeconfig: %s is not base64", key);
    return rc;
}

static int parse_kubeconfig(struct k8s_conn *cn, const struct bt_node *v, char *err, size_t errlen)
{
    if (v->type != BT_NODE_SCALAR || !v->len)
        return fail(err, errlen, v, "kubeconfig_file must be a path");
    char perr[512];
    struct bt_node *root = bt_yaml_parse_file(v->str, perr, sizeof(perr));
    if (!root)
        return fail(err, errlen, v, "kubeconfig_file: %s", perr);
    int rc = 0;
    const char *ctxname = kc_str(root, "current-context");
    const struct bt_node *ctx = ctxname ? kc_find(root, "contexts", "context", ctxname) : NULL;
    const char *cl = kc_str(ctx, "cluster"), *us = kc_str(ctx, "user");
    const struct bt_node *cluster = cl ? kc_find(root, "clusters", "cluster", cl) : NULL;
    const struct bt_node *user = us ? kc_find(root, "users", "user", us) : NULL;
    if (!ctx || !cluster || !kc_str(cluster, "server")) {
        rc = fail(err, errlen, v, "kubeconfig %s: no current-context with a cluster and server",
                  v->str);
        goto out;
    }
    const struct bt_node *ins = bt_node_get(cluster, "insecure-skip-tls-verify");
    if (ins && bt_node_bool(ins, &cn->insecure))
        cn->insecure = false;
    if (bt_node_get(user, "exec") || bt_node_get(user, "auth-provider")) {
        rc = fail(err, errlen, v,
                  "kubeconfig %s: user %s: exec and auth-provider credentials are "
                  "not supported (use a token, a token file or a client certificate)",
                  v->str, us);
        goto out;
    }
    if (kc_str(cluster, "tls-server-name")) {
        rc = fail(err, errlen, v, "kubeconfig %s: tls-server-name is not supported", v->str);
        goto out;
    }
    rc = set_str(&cn->server, kc_str(cluster, "server"));
    rc = rc ? rc : set_str(&cn->proxy, kc_str(cluster, "proxy-url"));
    rc = rc ? rc : kc_path(&cn->ca_file, v->str, kc_str(cluster, "certificate-authority"));
    rc = rc ? rc
            : kc_data(&cn->ca_pem, &cn->ca_len, kc_str(cluster, "certificate-authority-data"), v,
                      "certificate-authority-data", err, errlen);
    rc = rc ? rc : kc_path(&cn->cert_file, v->str, kc_str(user, "client-certificate"));
    rc = rc ? rc
            : kc_data(&cn->cert_pem, &cn->cert_len, kc_str(user, "client-certificate-data"), v,
                      "client-certificate-data", err, errlen);
    rc = rc ? rc : kc_path(&cn->key_file, v->str, kc_str(user, "client-key"));
    rc = rc ? rc
            : kc_data(&cn->key_pem, &cn->key_len, kc_str(user, "client-key-data"), v,
                      "client-key-data", err, errlen);
    rc = rc ? rc : set_str(&cn->auth_cred, kc_str(user, "token"));
    rc = rc ? rc : kc_path(&cn->auth_cred_file, v->str, kc_str(user, "tokenFile"));
    rc = rc ? rc : set_str(&cn->user, kc_str(user, "username"));
    rc = rc ? rc : set_str(&cn->pass, kc_str(user, "password"));
out:
    bt_node_free(root);
    return rc;
}

static int in_cluster(struct k8s_conn *cn, const struct bt_node *at, char *err, size_t errlen)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
    if (!host || !*host || !port || !*port)
        return fail(err, errlen, at,
                    "no api_server or kubeconfig_file, and not running in a cluster "
                    "(KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set)");
    char *s = NULL;
    if (asprintf(&s, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host, port) < 0)
        return -ENOMEM;
    free(cn->server);
    cn->server = s;
    const char *d = sa_dir();
    char *tok = NULL, *ca = NULL;
    if (asprintf(&tok, "%s/token", d) < 0 || asprintf(&ca, "%s/ca.crt", d) < 0) {
        free(tok);
        return -ENOMEM;
    }
    if (access(tok, R_OK) != 0) {
        int rc = fail(err, errlen, at, "in-cluster config: cannot read the token %s: %s", tok,
                      strerror(errno));
        free(tok);
        free(ca);
        return rc;
    }
    if (!cn->auth_cred && !cn->auth_cred_file)
        cn->auth_cred_file = tok;
    else
        free(tok);
    if (!cn->ca_file && !cn->ca_pem)
        cn->ca_file = ca;
    else
        free(ca);
    return 0;
}

static int check_role(struct k8s_conf *c, const struct bt_node *v, char *err, size_t errlen)
{
    if (!v || v->type != BT_NODE_SCALAR || !v->len)
        return fail(err, errlen, v,
                    "role is required (pod, node, service, endpoints, endpointslice or ingress)");
    for (int r = K8S_POD; r <= K8S_INGRESS; r++)
        if (strcmp(v->str, k8s_role_name((enum k8s_role)r)) == 0) {
            c->role = (enum k8s_role)r;
            return 0;
        }
    return fail(err, errlen, v,
                "unknown role %s (node, pod, service, endpoints, "
                "endpointslice or ingress)",
                v->str);
}

static int parse_key(struct k8s_conf *c, const struct bt_node *k, const struct bt_node *v,
                     char *err, size_t errlen)
{
    struct k8s_conn *cn = &c->conn;
    const char *key = k->str ? k->str : "";
    if (strcmp(key, "role") == 0 || strcmp(key, "kubeconfig_file") == 0)
        return 0; /* read first, by the caller */
    if (strcmp(key, "api_server") == 0)
        return scalar(v, key, &cn->server, err, errlen);
    if (strcmp(key, "namespaces") == 0)
        return parse_namespaces(c, v, err, errlen);
    if (strcmp(key, "selectors") == 0)
        return parse_selectors(c, v, err, errlen);
    if (strcmp(key, "tls_config") == 0)
        return parse_tls(cn, v, err, errlen);
    if (strcmp(key, "bearer_token") == 0)
        return scalar(v, key, &cn->auth_cred, err, errlen);
    if (strcmp(key, "bearer_token_file") == 0)
        return scalar(v, key, &cn->auth_cred_file, err, errlen);
    if (strcmp(key, "basic_auth") == 0)
        return bt_node_is_null(v) ? 0 : parse_map_auth(cn, v, true, err, errlen);
    if (strcmp(key, "authorization") == 0)
        return bt_node_is_null(v) ? 0 : parse_map_auth(cn, v, false, err, errlen);
    if (strcmp(key, "proxy_url") == 0)
        return scalar(v, key, &cn->proxy, err, errlen);
    if (strcmp(key, "follow_redirects") == 0 || strcmp(key, "enable_http2") == 0) {
        bool b;
        if (bt_node_bool(v, &b))
            return fail(err, errlen, v, "%s must be true or false", key);
        return 0; /* redirects are followed and HTTP/2 used when offered anyway */
    }
    if (strcmp(key, "attach_metadata") == 0) {
        const struct bt_node *n = bt_node_get(v, "node");
        bool b = false;
        if (n && bt_node_bool(n, &b) == 0 && !b)
            return 0;
        return fail(err, errlen, v, "attach_metadata: node metadata is not supported yet");
    }
    return fail(err, errlen, k, "%s is not supported", key);
}

int k8s_conf_parse(struct k8s_conf *c, const struct bt_node *cfg, bool check, char *err,
                   size_t errlen)
{
    if (!cfg || cfg->type != BT_NODE_MAP)
        return fail(err, errlen, cfg, "each item must be a map with at least role");
    int rc = check_role(c, bt_node_get(cfg, "role"), err, errlen);
    if (rc)
        return rc;
    c->check = check;
    const struct bt_node *kc = bt_node_get(cfg, "kubeconfig_file");
    if (kc && !bt_node_is_null(kc)) {
        if (bt_node_get(cfg, "api_server"))
            return fail(err, errlen, kc, "kubeconfig_file and api_server cannot both be set");
        if ((rc = parse_kubeconfig(&c->conn, kc, err, errlen)))
            return rc;
    }
    for (size_t i = 0; i < cfg->n; i++)
        if ((rc = parse_key(c, bt_node_key(cfg, i), bt_node_val(cfg, i), err, errlen)))
            return rc == -ENOMEM ? fail(err, errlen, cfg, "out of memory") : rc;
    struct k8s_conn *cn = &c->conn;
    if (!cn->server && check && !(cn->server = strdup("https://kubernetes.default.svc")))
        return -ENOMEM; /* a config check outside the cluster: the files are read at start */
    if (!cn->server && (rc = in_cluster(cn, cfg, err, errlen)))
        return rc;
    size_t sl = strlen(cn->server);
    while (sl && cn->server[sl - 1] == '/')
        cn->server[--sl] = '\0';
    if (strncmp(cn->server, "http://", 7) != 0 && strncmp(cn->server, "https://", 8) != 0)
        return fail(err, errlen, cfg, "api_server must be an http:// or https:// URL, not %s",
                    cn->server);
    if ((cn->auth_cred || cn->auth_cred_file) && (cn->user || cn->user_file))
        return fail(err, errlen, cfg, "basic_auth and a bearer token cannot both be set");
    if (cn->auth_cred && cn->auth_cred_file)
        return fail(err, errlen, cfg, "a token and a token file cannot both be set");
    if (!cn->auth_scheme && (cn->auth_scheme = strdup("Bearer")) == NULL)
        return -ENOMEM;
    if (c->role == K8S_NODE) { /* nodes belong to no namespace: Prometheus ignores the list */
        for (size_t i = 0; i < c->n_ns; i++)
            free(c->ns[i]);
        c->n_ns = 0;
    }
    return 0;
}

void k8s_conf_free(struct k8s_conf *c)
{
    struct k8s_conn *cn = &c->conn;
    char **all[] = {&cn->server,      &cn->ca_file,        &cn->cert_file,    &cn->key_file,
                    &cn->ca_pem,      &cn->cert_pem,       &cn->key_pem,      &cn->auth_scheme,
                    &cn->auth_cred,   &cn->auth_cred_file, &cn->user,         &cn->user_file,
                    &cn->pass,        &cn->pass_file,      &cn->proxy,        &c->label_sel,
                    &c->field_sel,    &c->svc_label_sel,   &c->svc_field_sel, &c->pod_label_sel,
                    &c->pod_field_sel};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        free(*all[i]);
        *all[i] = NULL;
    }
    for (size_t i = 0; i < c->n_ns; i++)
        free(c->ns[i]);
    free(c->ns);
    c->ns = NULL;
    c->n_ns = 0;
}

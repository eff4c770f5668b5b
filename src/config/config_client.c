/* The clients[] block (and promtail's single `client:` form); see config_decode.h. */
#include "config/config_decode.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/labels.h"
#include "util/timeutil.h"

#define BT_MAX_HEADERS 64
#define BT_MAX_TENANT 150

#define CL(m) offsetof(struct bt_client_config, m)

static int dec_external_labels(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    return bt_cfg_labels(c, v, at);
}

static bool header_name_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s <= 0x20 || *s >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", *s))
            return false;
    return true;
}

/* Headers bpftail itself sets on every push; promtail silently skips custom ones with these
 * names, we say so at start-up instead. */
static const char *reserved_header(const char *name)
{
    static const char *const names[] = {"Content-Type", "Content-Encoding", "Content-Length",
                                        "User-Agent", "X-Scope-OrgID"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i]) == 0)
            return names[i];
    return NULL;
}

static int dec_headers(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    struct bt_client_config *cl = (struct bt_client_config *)((char *)at - CL(headers));
    if (bt_node_is_null(v))
        return 0;
    if (v->type != BT_NODE_MAP)
        return bt_cfg_fail(c, v, "expected a map of header names to values, got %s",
                           bt_cfg_kind_name(v));
    if (v->n > BT_MAX_HEADERS)
        return bt_cfg_fail(c, v, "at most %d headers", BT_MAX_HEADERS);
    struct bt_header *h = calloc(v->n ? v->n : 1, sizeof(*h));
    if (!h)
        return bt_cfg_oom(c, v);
    bt_cfg_headers_free(cl->headers, cl->n_headers);
    cl->headers = h;
    cl->n_headers = 0;
    for (size_t i = 0; i < v->n; i++) {
        const struct bt_node *k = bt_node_key(v, i), *val = bt_node_val(v, i);
        if (k->type != BT_NODE_SCALAR || !header_name_ok(k->str))
            return bt_cfg_fail(c, k, "invalid header name \"%s\"",
                               k->type == BT_NODE_SCALAR ? k->str : "?");
        const char *r = reserved_header(k->str);
        if (r)
            return bt_cfg_fail(c, k, "header %s is set by bpftail%s", r,
                               strcasecmp(r, "X-Scope-OrgID") == 0 ? "; use tenant_id" : "");
        if (!bt_node_is_null(val) && val->type != BT_NODE_SCALAR)
            return bt_cfg_fail(c, val, "header %s: expected a string, got %s", k->str,
                               bt_cfg_kind_name(val));
        const char *s = bt_node_is_null(val) ? "" : val->str;
        if (strpbrk(s, "\r\n") || (!bt_node_is_null(val) && strlen(s) != val->len))
            return bt_cfg_fail(c, val, "header %s: value must not contain CR, LF or NUL", k->str);
        h[i].name = strdup(k->str);
        h[i].value = strdup(s);
        cl->n_headers = i + 1;
        if (!h[i].name || !h[i].value)
            return bt_cfg_oom(c, val);
    }
    return 0;
}

/* A map of names to string values (endpoint_params). Replaces *arr. */
static int dec_string_map(struct bt_cfg_ctx *c, const struct bt_node *v, struct bt_header **arr,
                          size_t *n)
{
    if (bt_node_is_null(v))
        return 0;
    if (v->type != BT_NODE_MAP)
        return bt_cfg_fail(c, v, "expected a map of names to values, got %s", bt_cfg_kind_name(v));
    if (v->n > BT_MAX_HEADERS)
        return bt_cfg_fail(c, v, "at most %d entries", BT_MAX_HEADERS);
    struct bt_header *h = calloc(v->n ? v->n : 1, sizeof(*h));
    if (!h)
        return bt_cfg_oom(c, v);
    bt_cfg_headers_free(*arr, *n);
    *arr = h;
    *n = 0;
    for (size_t i = 0; i < v->n; i++) {
        const struct bt_node *k = bt_node_key(v, i), *val = bt_node_val(v, i);
        if (k->type != BT_NODE_SCALAR || !k->str[0])
            return bt_cfg_fail(c, k, "expected a non-empty name");
        if (!bt_node_is_null(val) && val->type != BT_NODE_SCALAR)
            return bt_cfg_fail(c, val, "%s: expected a string, got %s", k->str,
                               bt_cfg_kind_name(val));
        h[i].name = strdup(k->str);
        h[i].value = strdup(bt_node_is_null(val) ? "" : val->str);
        *n = i + 1;
        if (!h[i].name || !h[i].value)
            return bt_cfg_oom(c, val);
    }
    return 0;
}

/* proxy_connect_header: header name to a list of values, each sent as its own line. */
static int dec_proxy_connect_header(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    struct bt_client_config *cl =
        (struct bt_client_config *)((char *)at - CL(proxy_connect_headers));
    if (bt_node_is_null(v))
        return 0;
    if (v->type != BT_NODE_MAP)
        return bt_cfg_fail(c, v, "expected a map of header names to lists of values, got %s",
                           bt_cfg_kind_name(v));
    size_t total = 0;
    for (size_t i = 0; i < v->n; i++) {
        const struct bt_node *k = bt_node_key(v, i), *val = bt_node_val(v, i);
        if (k->type != BT_NODE_SCALAR || !header_name_ok(k->str))
            return bt_cfg_fail(c, k, "invalid header name \"%s\"",
                               k->type == BT_NODE_SCALAR ? k->str : "?");
        if (!bt_node_is_null(val) && val->type != BT_NODE_SEQ)
            return bt_cfg_fail(c, val, "header %s: expected a list of values, got %s", k->str,
                               bt_cfg_kind_name(val));
        total += bt_node_is_null(val) ? 0 : val->n;
    }
    if (total > BT_MAX_HEADERS)
        return bt_cfg_fail(c, v, "at most %d header values", BT_MAX_HEADERS);
    struct bt_header *h = calloc(total ? total : 1, sizeof(*h));
    if (!h)
        return bt_cfg_oom(c, v);
    bt_cfg_headers_free(cl->proxy_connect_headers, cl->n_proxy_connect_headers);
    cl->proxy_connect_headers = h;
    cl->n_proxy_connect_headers = 0;
    for (size_t i = 0; i < v->n; i++) {
        const struct bt_node *k = bt_node_key(v, i), *val = bt_node_val(v, i);
        for (size_t j = 0; !bt_node_is_null(val) && j < val->n; j++) {
            const struct bt_node *it = val->items[j];
            if (it->type != BT_NODE_SCALAR || strpbrk(it->str, "\r\n") ||
                strlen(it->str) != it->len)
                return bt_cfg_fail(c, it, "header %s: expected a string without CR, LF or NUL",
                                   k->str);
            struct bt_header *e = &h[cl->n_proxy_connect_headers++];
            e->name = strdup(k->str);
            e->value = strdup(it->str);
            if (!e->name || !e->value)
                return bt_cfg_oom(c, it);
        }
    }
    return 0;
}

static const struct bt_cfg_field backoff_fields[] = {
    {.key = "min_period", .kind = BT_CFG_DURATION, .off = CL(min_backoff_ns)},
    {.key = "max_period", .kind = BT_CFG_DURATION, .off = CL(max_backoff_ns)},
    {.key = "max_retries", .kind = BT_CFG_INT, .off = CL(max_retries), .lo = 0, .hi = INT_MAX},
    {0},
};

/* Prometheus' secret references name a secret manager bpftail does not have. */
#define SECRET_REF(k)                                                                              \
    {                                                                                              \
        .key = k, .kind = BT_CFG_UNSUPPORTED,                                                      \
        .note = "secret references need a secret manager; use the _file form"                      \
    }

static const struct bt_cfg_field basic_auth_fields[] = {
    {.key = "username", .kind = BT_CFG_STR, .off = CL(basic_username)},
    {.key = "password", .kind = BT_CFG_STR, .off = CL(basic_password)},
    {.key = "password_file", .kind = BT_CFG_STR, .off = CL(basic_password_file)},
    {.key = "username_file", .kind = BT_CFG_STR, .off = CL(basic_username_file)},
    SECRET_REF("username_ref"),
    SECRET_REF("password_ref"),
    {0},
};

static const struct bt_cfg_field authorization_fields[] = {
    {.key = "type", .kind = BT_CFG_STR, .off = CL(auth_type)},
    {.key = "credentials", .kind = BT_CFG_STR, .off = CL(auth_credentials)},
    {.key = "credentials_file", .kind = BT_CFG_STR, .off = CL(auth_credentials_file)},
    SECRET_REF("credentials_ref"),
    {0},
};

static int dec_authorization(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    struct bt_client_config *cl = at;
    if (bt_node_is_null(v))
        return 0;
    cl->auth_set = true;
    return bt_cfg_decode(c, v, authorization_fields, cl);
}

static int dec_tls_version(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    static const char *const names[] = {"TLS10", "TLS11", "TLS12", "TLS13"};
    if (bt_node_is_null(v))
        return 0;
    for (size_t i = 0; v->type == BT_NODE_SCALAR && i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(v->str, names[i]) == 0)
            return bt_cfg_str(c, v, at);
    return bt_cfg_fail(c, v, "expected one of TLS10, TLS11, TLS12, TLS13");
}

#define TLS(m) offsetof(struct bt_tls_config, m)
static const struct bt_cfg_field tls_fields[] = {
    {.key = "ca_file", .kind = BT_CFG_STR, .off = TLS(ca_file)},
    {.key = "cert_file", .kind = BT_CFG_STR, .off = TLS(cert_file)},
    {.key = "key_file", .kind = BT_CFG_STR, .off = TLS(key_file)},
    {.key = "ca", .kind = BT_CFG_STR, .off = TLS(ca)},
    {.key = "cert", .kind = BT_CFG_STR, .off = TLS(cert)},
    {.key = "key", .kind = BT_CFG_STR, .off = TLS(key)},
    {.key = "server_name", .kind = BT_CFG_STR, .off = TLS(server_name)},
    {.key = "insecure_skip_verify", .kind = BT_CFG_BOOL, .off = TLS(insecure_skip_verify)},
    {.key = "min_version", .kind = BT_CFG_FN, .off = TLS(min_version), .fn = dec_tls_version},
    {.key = "max_version", .kind = BT_CFG_FN, .off = TLS(max_version), .fn = dec_tls_version},
    SECRET_REF("key_ref"),
    {0},
};

static int dec_scopes(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    struct bt_oauth2_config *o =
        (struct bt_oauth2_config *)((char *)at - offsetof(struct bt_oauth2_config, scopes));
    int rc = bt_cfg_expect_seq(c, v);
    if (rc || bt_node_is_null(v))
        return rc;
    if (v->n > BT_MAX_HEADERS)
        return bt_cfg_fail(c, v, "at most %d scopes", BT_MAX_HEADERS);
    char **s = calloc(v->n ? v->n : 1, sizeof(*s));
    if (!s)
        return bt_cfg_oom(c, v);
    for (size_t i = 0; i < o->n_scopes; i++)
        free(o->scopes[i]);
    free(o->scopes);
    o->scopes = s;
    o->n_scopes = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (v->items[i]->type != BT_NODE_SCALAR || bt_node_is_null(v->items[i]))
            return bt_cfg_fail(c, v->items[i], "expected a string, got %s",
                               bt_cfg_kind_name(v->items[i]));
        if (!(s[i] = strdup(v->items[i]->str)))
            return bt_cfg_oom(c, v->items[i]);
        o->n_scopes = i + 1;
    }
    return 0;
}

static int dec_params(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    struct bt_oauth2_config *o =
        (struct bt_oauth2_config *)((char *)at - offsetof(struct bt_oauth2_config, params));
    return dec_string_map(c, v, &o->params, &o->n_params);
}

#define OA(m) offsetof(struct bt_oauth2_config, m)
static const struct bt_cfg_field oauth2_fields[] = {
    {.key = "client_id", .kind = BT_CFG_STR, .off = OA(client_id)},
    {.key = "client_secret", .kind = BT_CFG_STR, .off = OA(client_secret)},
    {.key = "client_secret_file", .kind = BT_CFG_STR, .off = OA(client_secret_file)},
    {.key = "scopes", .kind = BT_CFG_FN, .off = OA(scopes), .fn = dec_scopes},
    {.key = "token_url", .kind = BT_CFG_STR, .off = OA(token_url)},
    {.key = "endpoint_params", .kind = BT_CFG_FN, .off = OA(params), .fn = dec_params},
    {.key = "tls_config", .kind = BT_CFG_SUB, .off = OA(tls), .sub = tls_fields},
    {.key = "proxy_url", .kind = BT_CFG_STR, .off = OA(proxy_url)},
    {.key = "no_proxy", .kind = BT_CFG_STR, .off = OA(no_proxy)},
    {.key = "proxy_from_environment", .kind = BT_CFG_BOOL, .off = OA(proxy_from_environment)},
    {.key = "proxy_connect_header",
     .kind = BT_CFG_UNSUPPORTED,
     .note = "not for the token endpoint; set it on the client"},
    SECRET_REF("client_secret_ref"),
    {0},
};

static int dec_oauth2(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    struct bt_oauth2_config *o = at;
    if (bt_node_is_null(v))
        return 0;
    o->set = true;
    return bt_cfg_decode(c, v, oauth2_fields, o);
}

static const struct bt_cfg_field client_fields[] = {
    {.key = "url", .kind = BT_CFG_STR, .off = CL(url)},
    {.key = "name", .kind = BT_CFG_STR, .off = CL(name)},
    {.key = "batchwait", .kind = BT_CFG_DURATION, .off = CL(batchwait_ns)},
    {.key = "batchsize", .kind = BT_CFG_BYTES, .off = CL(batchsize)},
    {.key = "backoff_config", .kind = BT_CFG_SUB, .sub = backoff_fields},
    {.key = "timeout", .kind = BT_CFG_DURATION, .off = CL(timeout_ns)},
    {.key = "tenant_id", .kind = BT_CFG_STR, .off = CL(tenant_id)},
    {.key = "external_labels",
     .kind = BT_CFG_FN,
     .off = CL(external_labels),
     .fn = dec_external_labels},
    {.key = "basic_auth", .kind = BT_CFG_SUB, .sub = basic_auth_fields},
    {.key = "authorization", .kind = BT_CFG_FN, .fn = dec_authorization},
    {.key = "oauth2", .kind = BT_CFG_FN, .off = CL(oauth2), .fn = dec_oauth2},
    {.key = "bearer_token", .kind = BT_CFG_STR, .off = CL(bearer_token)},
    {.key = "bearer_token_file", .kind = BT_CFG_STR, .off = CL(bearer_token_file)},
    {.key = "proxy_url", .kind = BT_CFG_STR, .off = CL(proxy_url)},
    {.key = "no_proxy", .kind = BT_CFG_STR, .off = CL(no_proxy)},
    {.key = "proxy_from_environment", .kind = BT_CFG_BOOL, .off = CL(proxy_from_environment)},
    {.key = "proxy_connect_header",
     .kind = BT_CFG_FN,
     .off = CL(proxy_connect_headers),
     .fn = dec_proxy_connect_header},
    {.key = "follow_redirects", .kind = BT_CFG_BOOL, .off = CL(follow_redirects)},
    {.key = "enable_http2", .kind = BT_CFG_BOOL, .off = CL(enable_http2)},
    {.key = "tls_config", .kind = BT_CFG_SUB, .off = CL(tls), .sub = tls_fields},
    {.key = "headers", .kind = BT_CFG_FN, .off = CL(headers), .fn = dec_headers},
    {.key = "http_headers", .kind = BT_CFG_UNSUPPORTED, .note = "use headers"},
    {.key = "drop_rate_limited_batches", .kind = BT_CFG_BOOL, .off = CL(drop_rate_limited_batches)},
    {.key = "max_age", .kind = BT_CFG_DURATION, .off = CL(max_age_ns)},
    {.key = "max_in_flight", .kind = BT_CFG_INT, .off = CL(max_in_flight), .lo = 1, .hi = 64},
    {.key = "stream_lag_labels",
     .kind = BT_CFG_UNSUPPORTED,
     .note = "removed in promtail 2.8; see options.stream_lag_labels"},
    {0},
};

void bt_cfg_client_defaults(struct bt_client_config *cl)
{
    memset(cl, 0, sizeof(*cl));
    cl->batchwait_ns = 1 * BT_NS_PER_SEC;
    cl->batchsize = 1048576;
    cl->min_backoff_ns = 500 * BT_NS_PER_MS;
    cl->max_backoff_ns = 300 * BT_NS_PER_SEC;
    cl->max_retries = 10;
    cl->max_in_flight = 4;
    cl->timeout_ns = 10 * BT_NS_PER_SEC;
    cl->follow_redirects = true;
    bt_labels_init(&cl->external_labels);
}

void bt_cfg_headers_free(struct bt_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
}

static void tls_free(struct bt_tls_config *t)
{
    free(t->ca_file);
    free(t->cert_file);
    free(t->key_file);
    free(t->server_name);
    free(t->ca);
    free(t->cert);
    free(t->key);
    free(t->min_version);
    free(t->max_version);
}

static void oauth2_free(struct bt_oauth2_config *o)
{
    free(o->client_id);
    free(o->client_secret);
    free(o->client_secret_file);
    free(o->token_url);
    for (size_t i = 0; i < o->n_scopes; i++)
        free(o->scopes[i]);
    free(o->scopes);
    bt_cfg_headers_free(o->params, o->n_params);
    tls_free(&o->tls);
    free(o->proxy_url);
    free(o->no_proxy);
}

void bt_cfg_client_free(struct bt_client_config *cl)
{
    free(cl->url);
    free(cl->name);
    free(cl->tenant_id);
    bt_labels_free(&cl->external_labels);
    free(cl->basic_username);
    free(cl->basic_password);
    free(cl->basic_password_file);
    free(cl->bearer_token);
    free(cl->bearer_token_file);
    free(cl->basic_username_file);
    free(cl->auth_type);
    free(cl->auth_credentials);
    free(cl->auth_credentials_file);
    oauth2_free(&cl->oauth2);
    free(cl->proxy_url);
    free(cl->no_proxy);
    bt_cfg_headers_free(cl->proxy_connect_headers, cl->n_proxy_connect_headers);
    tls_free(&cl->tls);
    bt_cfg_headers_free(cl->headers, cl->n_headers);
    memset(cl, 0, sizeof(*cl));
}

int bt_cfg_client_decode(struct bt_cfg_ctx *c, const struct bt_node *v, struct bt_client_config *cl)
{
    if (bt_node_is_null(v) || v->type != BT_NODE_MAP)
        return bt_cfg_fail(c, v, "expected a map with at least url, got %s", bt_cfg_kind_name(v));
    return bt_cfg_decode(c, v, client_fields, cl);
}

/* Returns the length of the scheme prefix ("http://" or "https://") or 0. */
static size_t http_scheme(const char *url)
{
    if (strncasecmp(url, "http://", 7) == 0)
        return 7;
    if (strncasecmp(url, "https://", 8) == 0)
        return 8;
    return 0;
}

/* host[:port] of an http(s) URL, without user info. */
static char *url_host(const char *url)
{
    const char *h = url + http_scheme(url);
    size_t n = strcspn(h, "/?#");
    const char *at = memrchr(h, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - h);
        h = at + 1;
    }
    return strndup(h, n);
}

static int check_url(struct bt_cfg_ctx *c, const struct bt_node *at, const char *key,
                     const char *url)
{
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return bt_cfg_fail(c, at, "%s \"%s\" contains a space or control character", key, url);
    size_t s = http_scheme(url);
    if (!s && strstr(url, "${"))
        return bt_cfg_fail(
            c, at, "%s \"%s\" holds an unexpanded ${...}: pass -config.expand-env=true", key, url);
    if (!s)
        return bt_cfg_fail(c, at, "%s \"%s\" must start with http:// or https://", key, url);
    char *host = url_host(url);
    if (!host)
        return bt_cfg_oom(c, at);
    bool empty = host[0] == '\0';
    free(host);
    if (empty)
        return bt_cfg_fail(c, at, "%s \"%s\" has no host", key, url);
    return 0;
}

static int check_tenant(struct bt_cfg_ctx *c, const struct bt_node *at, const char *t)
{
    if (strlen(t) > BT_MAX_TENANT)
        return bt_cfg_fail(c, at, "tenant_id is longer than %d characters", BT_MAX_TENANT);
    for (const char *p = t; *p; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || strchr("!-_.*'()", *p);
        if (!ok)
            return bt_cfg_fail(
                c, at, "tenant_id \"%s\": only letters, digits and !-_.*'() are allowed", t);
    }
    if (strcmp(t, ".") == 0 || strcmp(t, "..") == 0)
        return bt_cfg_fail(c, at, "tenant_id must not be \".\" or \"..\"");
    return 0;
}

/* The rules of Prometheus' HTTP client config, with its messages. */
static int check_auth(struct bt_cfg_ctx *c, const struct bt_node *at,
                      const struct bt_client_config *cl)
{
    bool basic = cl->basic_username || cl->basic_password || cl->basic_password_file ||
                 cl->basic_username_file;
    bool bearer = cl->bearer_token || cl->bearer_token_file;
    if (cl->basic_password && cl->basic_password_file)
        return bt_cfg_fail(c, at, "basic_auth: at most one of password and password_file");
    if (cl->basic_username && cl->basic_username_file)
        return bt_cfg_fail(c, at, "basic_auth: at most one of username and username_file");
    if (cl->bearer_token && cl->bearer_token_file)
        return bt_cfg_fail(c, at, "at most one of bearer_token and bearer_token_file");
    if ((basic + cl->oauth2.set + bearer) > 1)
        return bt_cfg_fail(c, at,
                           "at most one of basic_auth, bearer_token, bearer_token_file and "
                           "oauth2 may be configured");
    if (cl->auth_set && bearer)
        return bt_cfg_fail(c, at,
                           "authorization is not compatible with bearer_token and "
                           "bearer_token_file");
    if ((basic + cl->oauth2.set + cl->auth_set) > 1)
        return bt_cfg_fail(c, at,
                           "at most one of basic_auth, oauth2 and authorization may be "
                           "configured");
    if (!cl->auth_set)
        return 0;
    if (cl->auth_credentials && cl->auth_credentials_file)
        return bt_cfg_fail(c, at, "authorization: at most one of credentials and credentials_file");
    if (cl->auth_type && strcasecmp(cl->auth_type, "basic") == 0)
        return bt_cfg_fail(c, at, "authorization: type cannot be \"Basic\", use basic_auth");
    if (cl->auth_type && !header_name_ok(cl->auth_type))
        return bt_cfg_fail(c, at, "authorization: type \"%s\" is not a valid scheme name",
                           cl->auth_type);
    if (cl->auth_credentials && strpbrk(cl->auth_credentials, "\r\n"))
        return bt_cfg_fail(c, at, "authorization: credentials must not contain CR or LF");
    return 0;
}

static int check_proxy_fields(struct bt_cfg_ctx *c, const struct bt_node *at, const char *proxy,
                              const char *no_proxy, bool from_env, bool connect_headers)
{
    int rc;
    if (proxy && proxy[0] && (rc = check_url(c, at, "proxy_url", proxy)))
        return rc;
    bool have = proxy && proxy[0];
    if (no_proxy && no_proxy[0] && !have)
        return bt_cfg_fail(c, at, "no_proxy needs proxy_url");
    if (from_env && have)
        return bt_cfg_fail(c, at, "proxy_from_environment and proxy_url exclude each other");
    if (connect_headers && !have && !from_env)
        return bt_cfg_fail(c, at, "proxy_connect_header needs proxy_url or proxy_from_environment");
    return 0;
}

static int check_proxy(struct bt_cfg_ctx *c, const struct bt_node *at,
                       const struct bt_client_config *cl)
{
    return check_proxy_fields(c, at, cl->proxy_url, cl->no_proxy, cl->proxy_from_environment,
                              cl->n_proxy_connect_headers > 0);
}

static int check_tls(struct bt_cfg_ctx *c, const struct bt_node *at, const char *name,
                     const struct bt_tls_config *t)
{
    if (t->ca && t->ca_file)
        return bt_cfg_fail(c, at, "%s: at most one of ca and ca_file", name);
    if (t->cert && t->cert_file)
        return bt_cfg_fail(c, at, "%s: at most one of cert and cert_file", name);
    if (t->key && t->key_file)
        return bt_cfg_fail(c, at, "%s: at most one of key and key_file", name);
    if (!(t->cert || t->cert_file) != !(t->key || t->key_file))
        return bt_cfg_fail(c, at, "%s: cert_file and key_file (or cert and key) go together", name);
    /* Names sort like the versions they stand for (TLS10 < TLS11 < ...). */
    if (t->min_version && t->max_version && strcmp(t->min_version, t->max_version) > 0)
        return bt_cfg_fail(c, at, "%s: min_version %s is above max_version %s", name,
                           t->min_version, t->max_version);
    return 0;
}

static int check_oauth2(struct bt_cfg_ctx *c, const struct bt_node *at,
                        const struct bt_oauth2_config *o)
{
    int rc;
    if (o->client_secret && o->client_secret_file)
        return bt_cfg_fail(c, at, "oauth2: at most one of client_secret and client_secret_file");
    /* promtail would start and fail every push; a token URL is what the grant needs. */
    if (!o->token_url || !o->token_url[0])
        return bt_cfg_fail(c, at, "oauth2: token_url is required");
    if ((rc = check_url(c, at, "oauth2.token_url", o->token_url)))
        return rc;
    if ((rc = check_proxy_fields(c, at, o->proxy_url, o->no_proxy, o->proxy_from_environment,
                                 false)))
        return rc;
    if (o->tls.server_name)
        return bt_cfg_fail(c, at,
                           "oauth2.tls_config.server_name: not supported by bpftail for the token "
                           "endpoint; the token_url host is verified");
    return check_tls(c, at, "oauth2.tls_config", &o->tls);
}

static int check_client(struct bt_cfg_ctx *c, const struct bt_node *at,
                        const struct bt_client_config *cl)
{
    int rc;
    if (!cl->url || !cl->url[0])
        return bt_cfg_fail(c, at, "url is required");
    if ((rc = check_url(c, at, "url", cl->url)))
        return rc;
    if (cl->tenant_id && (rc = check_tenant(c, at, cl->tenant_id)))
        return rc;
    if ((rc = check_auth(c, at, cl)) || (rc = check_proxy(c, at, cl)) ||
        (rc = check_tls(c, at, "tls_config", &cl->tls)))
        return rc;
    if (cl->oauth2.set && (rc = check_oauth2(c, at, &cl->oauth2)))
        return rc;
    if (cl->batchwait_ns <= 0)
        return bt_cfg_fail(c, at, "batchwait must be greater than 0");
    if (cl->batchsize == 0)
        return bt_cfg_fail(c, at, "batchsize must be greater than 0");
    if (cl->timeout_ns <= 0)
        return bt_cfg_fail(c, at, "timeout must be greater than 0");
    if (cl->min_backoff_ns <= 0 || cl->max_backoff_ns < cl->min_backoff_ns)
        return bt_cfg_fail(c, at, "backoff_config: need 0 < min_period <= max_period");
    return 0;
}

static int replace_str(char **dst, const char *s)
{
    char *n = strdup(s);
    if (!n)
        return -ENOMEM;
    free(*dst);
    *dst = n;
    return 0;
}

static bool name_taken(const struct bt_config *cfg, size_t upto, const char *name)
{
    for (size_t j = 0; j < upto; j++)
        if (cfg->clients[j].name && strcmp(cfg->clients[j].name, name) == 0)
            return true;
    return false;
}

/* Names left out default to the URL's host[:port]; clients that share a host (two tenants on
 * one Loki) get "-2", "-3" ... so that names stay unique in metrics and logs. */
static int derive_name(struct bt_config *cfg, size_t i)
{
    struct bt_client_config *cl = &cfg->clients[i];
    char *base = url_host(cl->url);
    if (!base)
        return -ENOMEM;
    char *name = base;
    for (size_t k = 2; name_taken(cfg, cfg->n_clients, name); k++) {
        if (name != base)
            free(name);
        if (asprintf(&name, "%s-%zu", base, k) < 0) {
            free(base);
            return -ENOMEM;
        }
    }
    if (name != base)
        free(base);
    cl->name = name;
    return 0;
}

int bt_cfg_clients_finish(struct bt_cfg_ctx *c, struct bt_config *cfg)
{
    if (c->url_override && cfg->n_clients == 0) {
        struct bt_client_config *cl = calloc(1, sizeof(*cl));
        if (!cl)
            return bt_cfg_oom(c, NULL);
        bt_cfg_client_defaults(cl);
        cfg->clients = cl;
        cfg->n_clients = 1;
    }
    if (cfg->n_clients == 0)
        return bt_cfg_fail(c, cfg->root,
                           "no clients configured: add a clients: list with a url, or pass "
                           "-client.url");
    int rc = 0;
    for (size_t i = 0; i < cfg->n_clients && !rc; i++) {
        struct bt_client_config *cl = &cfg->clients[i];
        const struct bt_node *at = i < c->n_client_nodes ? c->client_nodes[i] : NULL;
        size_t mark = bt_cfg_push_key(c, "clients");
        bt_cfg_push_idx(c, i);
        if ((c->url_override && replace_str(&cl->url, c->url_override)) ||
            (c->tenant_override && replace_str(&cl->tenant_id, c->tenant_override)))
            rc = bt_cfg_oom(c, at);
        if (!rc)
            rc = check_client(c, at, cl);
        if (!rc && cl->name && name_taken(cfg, i, cl->name))
            rc = bt_cfg_fail(c, at, "duplicate client name \"%s\"", cl->name);
        if (!rc)
            bt_cfg_pop(c, mark);
    }
    for (size_t i = 0; i < cfg->n_clients && !rc; i++)
        if (!cfg->clients[i].name && derive_name(cfg, i))
            rc = bt_cfg_oom(c, NULL);
    return rc;
}

void bt_client_config_init(struct bt_client_config *cl)
{
    bt_cfg_client_defaults(cl);
}

void bt_client_config_free(struct bt_client_config *cl)
{
    bt_cfg_client_free(cl);
}

int bt_client_config_check(struct bt_client_config *cl, char *err, size_t errlen)
{
    struct bt_cfg_ctx c = {.err = err, .errlen = errlen};
    int rc = check_client(&c, NULL, cl);
    if (rc == 0 && !cl->name && !(cl->name = url_host(cl->url))) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
    }
    return rc;
}

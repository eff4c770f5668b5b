/* StartLogging requests, log-opts and container labels; see plugin_opts.h. */
#include "plugin/plugin_opts.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/node.h"
#include "source/relabel.h"
#include "util/buf.h"
#include "util/gotemplate.h"
#include "util/regex.h"
#include "util/timeutil.h"

#define DEFAULT_EXTERNAL_LABELS "container_name={{.Name}}"
#define MAX_LABEL_VALUE 2048

/* ---- the request ------------------------------------------------------------------------ */

static int dup_str(json_t *o, const char *key, char **dst, bool required, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required) {
            snprintf(err, errlen, "%s is missing", key);
            return -EINVAL;
        }
        return 0;
    }
    if (!json_is_string(v)) {
        snprintf(err, errlen, "%s must be a string", key);
        return -EINVAL;
    }
    *dst = strndup(json_string_value(v), json_string_length(v));
    if (!*dst) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

static int dup_list(json_t *o, const char *key, char ***dst, size_t *n, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v)) {
        snprintf(err, errlen, "%s must be a list of strings", key);
        return -EINVAL;
    }
    *dst = calloc(json_array_size(v) + 1, sizeof(char *));
    if (!*dst)
        return -ENOMEM;
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s)) {
            snprintf(err, errlen, "%s must be a list of strings", key);
            return -EINVAL;
        }
        if (!((*dst)[(*n)++] = strndup(json_string_value(s), json_string_length(s))))
            return -ENOMEM;
    }
    return 0;
}

/* A JSON object of strings, in the order jansson keeps (insertion order). */
static int dup_map(json_t *o, const char *key, struct bt_plugin_kv **dst, size_t *n, char *err,
                   size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v)) {
        snprintf(err, errlen, "%s must be a map of strings", key);
        return -EINVAL;
    }
    *dst = calloc(json_object_size(v) + 1, sizeof(**dst));
    if (!*dst)
        return -ENOMEM;
    const char *k;
    json_t *val;
    json_object_foreach(v, k, val)
    {
        if (!json_is_string(val)) {
            snprintf(err, errlen, "%s.%s must be a string", key, k);
            return -EINVAL;
        }
        struct bt_plugin_kv *kv = &(*dst)[(*n)++];
        kv->key = strdup(k);
        kv->value = strndup(json_string_value(val), json_string_length(val));
        if (!kv->key || !kv->value)
            return -ENOMEM;
    }
    return 0;
}

static json_t *load(const char *json, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        snprintf(err, errlen, "expected a JSON object");
        return NULL;
    }
    return root;
}

int bt_plugin_info_parse(const char *json, size_t len, struct bt_plugin_info *out, char *err,
                         size_t errlen)
{
    memset(out, 0, sizeof(*out));
    json_t *root = load(json, len, err, errlen);
    if (!root)
        return -EINVAL;
    int rc = dup_str(root, "File", &out->file, true, err, errlen);
    json_t *info = json_object_get(root, "Info");
    if (rc == 0 && !json_is_object(info)) {
        snprintf(err, errlen, "Info is missing");
        rc = -EINVAL;
    }
    char *name = NULL;
    if (rc == 0)
        rc = dup_str(info, "ContainerID", &out->container_id, true, err, errlen);
    if (rc == 0 && !out->container_id[0]) {
        snprintf(err, errlen, "must provide container id in log context");
        rc = -EINVAL;
    }
    if (rc == 0)
        rc = dup_str(info, "ContainerName", &name, false, err, errlen);
    if (rc == 0)
        rc = dup_str(info, "ContainerEntrypoint", &out->entrypoint, false, err, errlen);
    if (rc == 0)
        rc = dup_list(info, "ContainerArgs", &out->args, &out->n_args, err, errlen);
    if (rc == 0)
        rc = dup_str(info, "ContainerImageID", &out->image_id, false, err, errlen);
    if (rc == 0)
        rc = dup_str(info, "ContainerImageName", &out->image_name, false, err, errlen);
    if (rc == 0)
        rc = dup_str(info, "DaemonName", &out->daemon_name, false, err, errlen);
    if (rc == 0)
        rc = dup_str(info, "ContainerCreated", &out->created, false, err, errlen);
    if (rc == 0)
        rc = dup_list(info, "ContainerEnv", &out->env, &out->n_env, err, errlen);
    if (rc == 0)
        rc = dup_map(info, "ContainerLabels", &out->labels, &out->n_labels, err, errlen);
    if (rc == 0)
        rc = dup_map(info, "Config", &out->config, &out->n_config, err, errlen);
    if (rc == 0) {
        out->container_name = strdup(name ? name + (name[0] == '/') : "");
        if (!out->container_name)
            rc = -ENOMEM;
    }
    if (rc == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    free(name);
    json_decref(root);
    return rc;
}

static void free_kvs(struct bt_plugin_kv *kv, size_t n)
{
    for (size_t i = 0; kv && i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

static void free_list(char **l, size_t n)
{
    for (size_t i = 0; l && i < n; i++)
        free(l[i]);
    free(l);
}

void bt_plugin_info_free(struct bt_plugin_info *in)
{
    free(in->file);
    free(in->container_id);
    free(in->container_name);
    free(in->entrypoint);
    free_list(in->args, in->n_args);
    free(in->image_id);
    free(in->image_name);
    free(in->daemon_name);
    free(in->created);
    free_list(in->env, in->n_env);
    free_kvs(in->labels, in->n_labels);
    free_kvs(in->config, in->n_config);
    memset(in, 0, sizeof(*in));
}

char *bt_plugin_parse_file(const char *json, size_t len, char *err, size_t errlen)
{
    json_t *root = load(json, len, err, errlen);
    if (!root)
        return NULL;
    char *f = NULL;
    if (dup_str(root, "File", &f, true, err, errlen) == 0 && !f[0]) {
        snprintf(err, errlen, "File is empty");
        free(f);
        f = NULL;
    }
    json_decref(root);
    return f;
}

const char *bt_plugin_info_opt(const struct bt_plugin_info *in, const char *key)
{
    for (size_t i = 0; i < in->n_config; i++)
        if (strcmp(in->config[i].key, key) == 0)
            return in->config[i].value;
    return NULL;
}

/* ---- value syntax ----------------------------------------------------------------------- */

int bt_plugin_parse_size(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || isspace((unsigned char)*s) || *s == '-')
        return -EINVAL;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -EINVAL;
    const char *u = end;
    double mul = 1;
    static const char units[] = "kmgtp";
    const char *k = *u ? strchr(units, tolower((unsigned char)*u)) : NULL;
    if (k) {
        for (const char *p = units; p <= k; p++)
            mul *= 1024;
        u++;
        if (tolower((unsigned char)*u) == 'i' && tolower((unsigned char)u[1]) == 'b')
            u += 2;
        else if (tolower((unsigned char)*u) == 'b')
            u++;
    } else if (tolower((unsigned char)*u) == 'b') {
        u++;
    }
    if (*u)
        return -EINVAL;
    v *= mul;
    if (v >= 9.2e18)
        return -EINVAL;
    *out = (int64_t)v;
    return 0;
}

static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

/* ---- options ---------------------------------------------------------------------------- */

enum opt_kind {
    O_STR,      /* char * in the client config */
    O_DUR,      /* int64_t ns in the client config, > 0 */
    O_INT,      /* int in the client config */
    O_BYTES,    /* uint64_t in the client config (Atoi) */
    O_TLS_BOOL, /* tls.insecure_skip_verify */
    O_URL,
    O_EXTERNAL,
    O_STAGES,
    O_STAGE_FILE,
    O_RELABEL,
    O_BOOL_NOFILE,
    O_BOOL_KEEPFILE,
    O_MAXSIZE,
    O_MAXFILE,
    O_DOCKER, /* Docker's own option: accepted, dockerd or label building reads it */
};

#define CC(m) offsetof(struct bt_client_config, m)
static const struct opt {
    const char *key;
    enum opt_kind kind;
    size_t off;
} opts[] = {
    {"loki-url", O_URL, 0},
    {"loki-tenant-id", O_STR, CC(tenant_id)},
    {"loki-batch-wait", O_DUR, CC(batchwait_ns)},
    {"loki-batch-size", O_BYTES, CC(batchsize)},
    {"loki-timeout", O_DUR, CC(timeout_ns)},
    {"loki-min-backoff", O_DUR, CC(min_backoff_ns)},
    {"loki-max-backoff", O_DUR, CC(max_backoff_ns)},
    {"loki-retries", O_INT, CC(max_retries)},
    {"loki-external-labels", O_EXTERNAL, 0},
    {"loki-pipeline-stages", O_STAGES, 0},
    {"loki-pipeline-stage-file", O_STAGE_FILE, 0},
    {"loki-relabel-config", O_RELABEL, 0},
    {"loki-tls-ca-file", O_STR, CC(tls.ca_file)},
    {"loki-tls-cert-file", O_STR, CC(tls.cert_file)},
    {"loki-tls-key-file", O_STR, CC(tls.key_file)},
    {"loki-tls-server-name", O_STR, CC(tls.server_name)},
    {"loki-tls-insecure-skip-verify", O_TLS_BOOL, 0},
    {"loki-proxy-url", O_STR, CC(proxy_url)},
    {"no-file", O_BOOL_NOFILE, 0},
    {"keep-file", O_BOOL_KEEPFILE, 0},
    {"max-size", O_MAXSIZE, 0},
    {"max-file", O_MAXFILE, 0},
    {"mode", O_DOCKER, 0},
    {"max-buffer-size", O_DOCKER, 0},
    {"tag", O_DOCKER, 0},
    {"labels", O_DOCKER, 0},
    {"labels-regex", O_DOCKER, 0},
    {"env", O_DOCKER, 0},
    {"env-regex", O_DOCKER, 0},
    {"cache-disabled", O_DOCKER, 0},
    {"cache-max-size", O_DOCKER, 0},
    {"cache-max-file", O_DOCKER, 0},
    {"cache-compress", O_DOCKER, 0},
};

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes n bytes of s (Go's url.User gives decoded userinfo). NULL on a bad escape. */
static char *pct_decode(const char *s, size_t n)
{
    char *o = malloc(n + 1), *w = o;
    if (!o)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int h = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int l = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (h < 0 || l < 0) {
                free(o);
                return NULL;
            }
            *w++ = (char)(h * 16 + l);
            i += 2;
        } else {
            *w++ = s[i];
        }
    }
    *w = '\0';
    return o;
}

/* loki-url: userinfo moves to basic auth, as Loki's driver does (promtail's client reads
 * url.User). */
static int set_url(struct bt_client_config *c, const char *v, char *err, size_t errlen)
{
    const char *hs = strstr(v, "://");
    const char *host = hs ? hs + 3 : v;
    size_t hl = strcspn(host, "/?#");
    const char *at = memrchr(host, '@', hl);
    free(c->url);
    c->url = NULL;
    if (!at) {
        c->url = strdup(v);
        return c->url ? 0 : -ENOMEM;
    }
    const char *colon = memchr(host, ':', (size_t)(at - host));
    size_t ul = colon ? (size_t)(colon - host) : (size_t)(at - host);
    c->basic_username = pct_decode(host, ul);
    if (colon)
        c->basic_password = pct_decode(colon + 1, (size_t)(at - colon - 1));
    if (!c->basic_username || (colon && !c->basic_password)) {
        snprintf(err, errlen, "loki-url: bad %% escape in the user info");
        return -EINVAL;
    }
    if (asprintf(&c->url, "%.*s%s", (int)(host - v), v, at + 1) < 0) {
        c->url = NULL;
        return -ENOMEM;
    }
    return 0;
}

/* The stage list of a YAML text: either the list itself (loki-pipeline-stages) or a map with
 * pipeline_stages (loki-pipeline-stage-file, as Loki's driver reads it). */
static int load_stages(struct bt_plugin_opts *o, struct bt_node *doc, const char *key, char *err,
                       size_t errlen)
{
    o->stages_doc = doc;
    const struct bt_node *l = doc;
    if (doc && doc->type == BT_NODE_MAP && strcmp(key, "loki-pipeline-stage-file") == 0)
        l = bt_node_get(doc, "pipeline_stages");
    if (!l || bt_node_is_null(l)) {
        o->stages = NULL;
        return 0;
    }
    if (l->type != BT_NODE_SEQ) {
        snprintf(err, errlen, "%s: expected a list of pipeline stages", key);
        return -EINVAL;
    }
    o->stages = l;
    return 0;
}

static int set_opt(const struct opt *op, const char *v, struct bt_plugin_opts *o, char *err,
                   size_t errlen)
{
    struct bt_client_config *c = &o->client;
    char *at = (char *)c + op->off;
    char yerr[1024];
    long long n;
    int64_t ns;
    bool b;
    switch (op->kind) {
    case O_URL: return set_url(c, v, err, errlen);
    case O_STR:
        free(*(char **)at);
        *(char **)at = v[0] ? strdup(v) : NULL;
        return v[0] && !*(char **)at ? -ENOMEM : 0;
    case O_DUR:
        if (bt_parse_duration(v, &ns) < 0 || ns <= 0)
            goto bad;
        *(int64_t *)at = ns;
        return 0;
    case O_INT:
        if (parse_int(v, 0, INT_MAX, &n) < 0)
            goto bad;
        *(int *)at = (int)n;
        return 0;
    case O_BYTES:
        if (parse_int(v, 1, INT_MAX, &n) < 0)
            goto bad;
        *(uint64_t *)at = (uint64_t)n;
        return 0;
    case O_TLS_BOOL:
        if (bt_parse_bool(v, &b) < 0)
            goto bad;
        c->tls.insecure_skip_verify = b;
        return 0;
    case O_EXTERNAL: o->external_labels = v; return 0;
    case O_STAGES:
    case O_STAGE_FILE: {
        if (o->stages_doc) {
            snprintf(err, errlen,
                     "only one of loki-pipeline-stages and loki-pipeline-stage-file may be set");
            return -EINVAL;
        }
        struct bt_node *doc = op->kind == O_STAGES
                                  ? bt_yaml_parse(v, strlen(v), op->key, yerr, sizeof(yerr))
                                  : bt_yaml_parse_file(v, yerr, sizeof(yerr));
        if (!doc && yerr[0]) {
            snprintf(err, errlen, "%s: %s", op->key, yerr);
            return -EINVAL;
        }
        return load_stages(o, doc, op->key, err, errlen);
    }
    case O_RELABEL:
        bt_node_free(o->relabel_doc);
        yerr[0] = '\0';
        o->relabel_doc = bt_yaml_parse(v, strlen(v), op->key, yerr, sizeof(yerr));
        if (!o->relabel_doc && yerr[0]) {
            snprintf(err, errlen, "%s: %s", op->key, yerr);
            return -EINVAL;
        }
        return 0;
    case O_BOOL_NOFILE:
    case O_BOOL_KEEPFILE:
        if (bt_parse_bool(v, &b) < 0)
            goto bad;
        *(op->kind == O_BOOL_NOFILE ? &o->no_file : &o->keep_file) = b;
        return 0;
    case O_MAXSIZE:
        if (bt_plugin_parse_size(v, &ns) < 0 || ns <= 0)
            goto bad;
        o->max_size = ns;
        return 0;
    case O_MAXFILE:
        if (parse_int(v, 1, INT_MAX, &n) < 0)
            goto bad;
        o->max_file = (int)n;
        return 0;
    case O_DOCKER: return 0;
    }
bad:
    snprintf(err, errlen, "invalid value \"%s\" for log-opt %s", v, op->key);
    return -EINVAL;
}

int bt_plugin_opts_parse(const struct bt_plugin_info *in, struct bt_plugin_opts *o,
                         bt_plugin_unknown_fn unknown, void *ctx, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    bt_client_config_init(&o->client);
    o->external_labels = DEFAULT_EXTERNAL_LABELS;
    o->max_size = -1;
    o->max_file = 1;
    for (size_t i = 0; i < in->n_config; i++) {
        const char *k = in->config[i].key, *v = in->config[i].value;
        const struct opt *op = NULL;
        for (size_t j = 0; j < sizeof(opts) / sizeof(opts[0]) && !op; j++)
            if (strcmp(opts[j].key, k) == 0)
                op = &opts[j];
        if (!op && strncmp(k, "loki-", 5) == 0) {
            snprintf(err, errlen,
                     "unknown log-opt %s (bpftail knows the loki-* options of "
                     "Loki's Docker driver)",
                     k);
            return -EINVAL;
        }
        if (!op) {
            if (unknown)
                unknown(ctx, k);
            continue;
        }
        int rc = set_opt(op, v, o, err, errlen);
        if (rc == -ENOMEM)
            snprintf(err, errlen, "out of memory");
        if (rc < 0)
            return rc;
    }
    if (!o->client.url) {
        snprintf(err, errlen, "log-opt loki-url is required");
        return -EINVAL;
    }
    if (o->max_size > 0)
        o->spool_max = (uint64_t)o->max_size * (uint64_t)o->max_file;
    char cerr[512];
    if (bt_client_config_check(&o->client, cerr, sizeof(cerr)) < 0) {
        snprintf(err, errlen, "log-opts: %s", cerr);
        return -EINVAL;
    }
    return 0;
}

void bt_plugin_opts_free(struct bt_plugin_opts *o)
{
    bt_client_config_free(&o->client);
    bt_node_free(o->stages_doc);
    bt_node_free(o->relabel_doc);
    memset(o, 0, sizeof(*o));
}

char *bt_plugin_client_key(const struct bt_client_config *c)
{
    char *k = NULL;
#define S(x) ((x) ? (x) : "")
    if (asprintf(&k,
                 "%s\x1f%s\x1f%s\x1f%s\x1f%lld\x1f%llu\x1f%lld\x1f%lld\x1f%lld\x1f%d\x1f%s\x1f%s"
                 "\x1f%s\x1f%s\x1f%d\x1f%s",
                 S(c->url), S(c->basic_username), S(c->basic_password), S(c->tenant_id),
                 (long long)c->batchwait_ns, (unsigned long long)c->batchsize,
                 (long long)c->timeout_ns, (long long)c->min_backoff_ns,
                 (long long)c->max_backoff_ns, c->max_retries, S(c->tls.ca_file),
                 S(c->tls.cert_file), S(c->tls.key_file), S(c->tls.server_name),
                 c->tls.insecure_skip_verify, S(c->proxy_url)) < 0)
        return NULL;
#undef S
    return k;
}

/* ---- labels ----------------------------------------------------------------------------- */

struct tmpl_data {
    const struct bt_plugin_info *in;
    const char *hostname;
    char id[13], image_id[13];
    struct bt_buf command;
};

/* Docker's log-tag template fields (daemon/logger/loginfo.go). */
static int tmpl_lookup(void *ctx, const char *name, size_t n, const char **val, size_t *vlen)
{
    struct tmpl_data *d = ctx;
    const struct bt_plugin_info *in = d->in;
    const char *v = NULL;
#define IS(s) (n == sizeof(s) - 1 && memcmp(name, s, n) == 0)
    if (IS("ID"))
        v = d->id;
    else if (IS("FullID"))
        v = in->container_id;
    else if (IS("Name"))
        v = in->container_name;
    else if (IS("ImageID"))
        v = d->image_id;
    else if (IS("ImageFullID"))
        v = in->image_id;
    else if (IS("ImageName"))
        v = in->image_name;
    else if (IS("Command"))
        v = bt_buf_str(&d->command);
    else if (IS("DaemonName"))
        v = in->daemon_name;
    else if (IS("Hostname"))
        v = d->hostname;
#undef IS
    if (!v)
        return 0;
    *val = v;
    *vlen = strlen(v);
    return 1;
}

/* Docker's ImageID() drops "sha256:" and keeps 12 characters. */
static void short_id(char out[13], const char *id)
{
    if (!id)
        id = "";
    const char *c = strchr(id, ':');
    snprintf(out, 13, "%s", c ? c + 1 : id);
}

static int external_labels(struct tmpl_data *d, const char *spec, struct bt_labels *out, char *err,
                           size_t errlen)
{
    struct bt_buf val;
    bt_buf_init(&val, MAX_LABEL_VALUE * 4);
    int rc = 0;
    char *copy = strdup(spec), *save = NULL;
    if (!copy)
        return -ENOMEM;
    for (char *pair = strtok_r(copy, ",", &save); pair && rc == 0;
         pair = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(pair, '=');
        if (!eq || strchr(eq + 1, '=')) {
            snprintf(err, errlen,
                     "loki-external-labels: \"%s\" is not name=value (values may not hold , or =)",
                     pair);
            rc = -EINVAL;
            break;
        }
        *eq = '\0';
        char terr[512];
        struct bt_gotmpl *t = bt_gotmpl_new(eq + 1, terr, sizeof(terr));
        if (!t) {
            snprintf(err, errlen, "loki-external-labels: %s: %s", pair, terr);
            rc = -EINVAL;
            break;
        }
        bt_buf_reset(&val);
        rc = bt_gotmpl_exec(t, tmpl_lookup, d, &val, terr, sizeof(terr));
        bt_gotmpl_free(t);
        if (rc < 0) {
            snprintf(err, errlen, "loki-external-labels: %s: %s", pair, terr);
            rc = -EINVAL;
            break;
        }
        rc = bt_labels_set(out, pair, bt_buf_str(&val));
    }
    free(copy);
    bt_buf_free(&val);
    return rc;
}

/* "-" and "." become "_" in attribute names, as Loki's driver passes to ExtraAttributes. */
static int set_attr(struct bt_labels *out, const char *k, size_t kn, const char *v)
{
    char name[256];
    if (kn >= sizeof(name))
        kn = sizeof(name) - 1;
    for (size_t i = 0; i < kn; i++)
        name[i] = k[i] == '-' || k[i] == '.' ? '_' : k[i];
    name[kn] = '\0';
    return bt_labels_set(out, name, v);
}

static bool in_list(const char *list, const char *k, size_t kn)
{
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, ",");
        if (n == kn && memcmp(p, k, n) == 0)
            return true;
        p += n + (p[n] == ',');
    }
    return false;
}

/* Docker's logger.Info.ExtraAttributes: labels, labels-regex, env, env-regex. */
static int attributes(const struct bt_plugin_info *in, struct bt_labels *out, char *err,
                      size_t errlen)
{
    const char *lab = bt_plugin_info_opt(in, "labels");
    const char *labre = bt_plugin_info_opt(in, "labels-regex");
    const char *env = bt_plugin_info_opt(in, "env");
    const char *envre = bt_plugin_info_opt(in, "env-regex");
    struct bt_regex *lre = NULL, *ere = NULL;
    int rc = 0;
    if (labre && *labre && !(lre = bt_regex_new(labre, 0, err, errlen)))
        return -EINVAL;
    if (envre && *envre && !(ere = bt_regex_new(envre, 0, err, errlen))) {
        bt_regex_free(lre);
        return -EINVAL;
    }
    for (size_t i = 0; i < in->n_labels && rc == 0; i++) {
        const char *k = in->labels[i].key;
        if ((lab && in_list(lab, k, strlen(k))) || (lre && bt_regex_match(lre, k, strlen(k), 0)))
            rc = set_attr(out, k, strlen(k), in->labels[i].value);
    }
    for (size_t i = 0; i < in->n_env && rc == 0; i++) {
        const char *e = in->env[i], *eq = strchr(e, '=');
        if (!eq)
            continue;
        size_t kn = (size_t)(eq - e);
        if ((env && in_list(env, e, kn)) || (ere && bt_regex_match(ere, e, kn, 0)))
            rc = set_attr(out, e, kn, eq + 1);
    }
    bt_regex_free(lre);
    bt_regex_free(ere);
    return rc;
}

static const char *container_label(const struct bt_plugin_info *in, const char *k)
{
    for (size_t i = 0; i < in->n_labels; i++)
        if (strcmp(in->labels[i].key, k) == 0)
            return in->labels[i].value;
    return NULL;
}

static bool utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    while (p < e) {
        unsigned c = *p++;
        int more = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
        if (more < 0 || (c >= 0xc0 && c < 0xc2) || c > 0xf4 || e - p < more)
            return false;
        for (int i = 0; i < more; i++)
            if ((*p++ & 0xc0) != 0x80)
                return false;
    }
    return true;
}

static int validate(struct bt_labels *l, char *err, size_t errlen)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct bt_label *x = &l->v[i];
        if (!bt_label_name_valid(x->name, x->name_len)) {
            snprintf(err, errlen, "invalid label name \"%s\"", x->name);
            return -EINVAL;
        }
        if (!utf8_valid(x->value, x->value_len) || x->value_len > MAX_LABEL_VALUE) {
            snprintf(err, errlen, "invalid value for label %s (not UTF-8, or longer than %d bytes)",
                     x->name, MAX_LABEL_VALUE);
            return -EINVAL;
        }
    }
    if (bt_labels_visible(l) == 0) {
        snprintf(err, errlen, "no labels left for the container's streams");
        return -EINVAL;
    }
    return 0;
}

int bt_plugin_labels(const struct bt_plugin_info *in, const struct bt_plugin_opts *o,
                     const char *hostname, struct bt_labels *out, char *err, size_t errlen)
{
    struct tmpl_data d = {.in = in, .hostname = hostname};
    int rc = 0;
    bt_labels_clear(out);
    snprintf(d.id, sizeof(d.id), "%s", in->container_id);
    short_id(d.image_id, in->image_id);
    bt_buf_init(&d.command, 64 * 1024);
    if (in->entrypoint)
        rc = bt_buf_adds(&d.command, in->entrypoint);
    for (size_t i = 0; i < in->n_args && rc == 0; i++)
        rc = bt_buf_addf(&d.command, " %s", in->args[i]);
    char filename[256];
    snprintf(filename, sizeof(filename), "/var/log/docker/%s/json.log", in->container_id);
    /* bpftail's own labels first, so that external labels and attributes may replace them. */
    if (rc == 0)
        rc = bt_labels_set(out, "container_id", in->container_id);
    if (rc == 0 && in->image_name)
        rc = bt_labels_set(out, "image", in->image_name);
    if (rc == 0)
        rc = external_labels(&d, o->external_labels, out, err, errlen);
    if (rc == 0)
        rc = attributes(in, out, err, errlen);
    static const char *const from_labels[][2] = {
        {"com.docker.stack.namespace", "swarm_stack"},
        {"com.docker.swarm.service.name", "swarm_service"},
        {"com.docker.compose.project", "compose_project"},
        {"com.docker.compose.service", "compose_service"},
    };
    for (size_t i = 0; i < 4 && rc == 0; i++) {
        const char *v = container_label(in, from_labels[i][0]);
        if (v)
            rc = bt_labels_set(out, from_labels[i][1], v);
    }
    if (rc == 0 && hostname)
        rc = bt_labels_set(out, "host", hostname);
    if (rc == 0)
        rc = bt_labels_set(out, "filename", filename);
    bt_buf_free(&d.command);
    if (rc == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    if (rc < 0)
        return rc;
    if (o->relabel_doc) {
        char rerr[1024];
        struct bt_relabel *r = bt_relabel_new(o->relabel_doc, rerr, sizeof(rerr));
        if (!r) {
            snprintf(err, errlen, "loki-relabel-config: %s", rerr);
            return -EINVAL;
        }
        rc = bt_relabel_apply(r, out);
        bt_relabel_free(r);
        if (rc == BT_RELABEL_DROP) {
            snprintf(err, errlen, "loki-relabel-config dropped every label of the container");
            return -EINVAL;
        }
        if (rc < 0) {
            snprintf(err, errlen, "out of memory");
            return rc;
        }
        bt_labels_drop_reserved(out);
    }
    return validate(out, err, errlen);
}

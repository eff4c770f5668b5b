/* Writes the effective config back as YAML that bpftail itself accepts; see config.h.
 * Secrets (passwords, bearer tokens, URL passwords, credential-like headers) are written as
 * <secret>. Durations are written exactly (never rounded), so the dump parses to the same
 * values. */
#include "config/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/node.h"
#include "util/buf.h"
#include "util/timeutil.h"

#define SECRET "<secret>"

static bool plain_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    if (s[0] == '-' && (n == 1 || s[1] == ' '))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("_./+-", c);
        if (!ok)
            return false;
    }
    return true;
}

/* A YAML double-quoted scalar. */
static int quoted(struct bt_buf *o, const char *s, size_t n)
{
    int rc = bt_buf_add(o, "\"", 1);
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            rc = bt_buf_addf(o, "\\%c", c);
        else if (c == '\n')
            rc = bt_buf_adds(o, "\\n");
        else if (c == '\t')
            rc = bt_buf_adds(o, "\\t");
        else if (c < 0x20 || c == 0x7f)
            rc = bt_buf_addf(o, "\\x%02x", c);
        else
            rc = bt_buf_add(o, &s[i], 1);
    }
    return rc ? rc : bt_buf_add(o, "\"", 1);
}

static int str(struct bt_buf *o, const char *s)
{
    return quoted(o, s, strlen(s));
}

static int indent(struct bt_buf *o, int n)
{
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        rc = bt_buf_add(o, " ", 1);
    return rc;
}

/* Exact Go-style duration: 1h30m, 10s, 1500ms, 250us, 7ns. */
static int dur(struct bt_buf *o, int64_t ns)
{
    if (ns == 0)
        return bt_buf_adds(o, "0s");
    if (ns % BT_NS_PER_SEC == 0) {
        int64_t s = ns / BT_NS_PER_SEC, h = s / 3600, m = (s / 60) % 60;
        int rc = 0;
        if (h)
            rc = bt_buf_addf(o, "%" PRId64 "h", h);
        if (!rc && m)
            rc = bt_buf_addf(o, "%" PRId64 "m", m);
        if (!rc && s % 60)
            rc = bt_buf_addf(o, "%" PRId64 "s", s % 60);
        return rc;
    }
    if (ns % BT_NS_PER_MS == 0)
        return bt_buf_addf(o, "%" PRId64 "ms", (int64_t)(ns / BT_NS_PER_MS));
    if (ns % 1000 == 0)
        return bt_buf_addf(o, "%" PRId64 "us", ns / 1000);
    return bt_buf_addf(o, "%" PRId64 "ns", ns);
}

static int key(struct bt_buf *o, int ind, const char *k)
{
    int rc = indent(o, ind);
    return rc ? rc : bt_buf_addf(o, "%s:", k);
}

static int kv_str(struct bt_buf *o, int ind, const char *k, const char *v)
{
    if (!v)
        return 0;
    int rc = key(o, ind, k);
    rc = rc ? rc : bt_buf_add(o, " ", 1);
    rc = rc ? rc : str(o, v);
    return rc ? rc : bt_buf_add(o, "\n", 1);
}

static int kv_raw(struct bt_buf *o, int ind, const char *k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int kv_raw(struct bt_buf *o, int ind, const char *k, const char *fmt, ...)
{
    int rc = key(o, ind, k);
    rc = rc ? rc : bt_buf_add(o, " ", 1);
    if (!rc) {
        va_list ap;
        va_start(ap, fmt);
        rc = bt_buf_vaddf(o, fmt, ap);
        va_end(ap);
    }
    return rc ? rc : bt_buf_add(o, "\n", 1);
}

static int kv_bool(struct bt_buf *o, int ind, const char *k, bool v)
{
    return kv_raw(o, ind, k, "%s", v ? "true" : "false");
}

static int kv_dur(struct bt_buf *o, int ind, const char *k, int64_t ns)
{
    int rc = key(o, ind, k);
    rc = rc ? rc : bt_buf_add(o, " ", 1);
    rc = rc ? rc : dur(o, ns);
    return rc ? rc : bt_buf_add(o, "\n", 1);
}

static int kv_secret(struct bt_buf *o, int ind, const char *k, const char *v)
{
    return v ? kv_str(o, ind, k, SECRET) : 0;
}

/* A URL with the password of its user info (if any) masked. */
static int kv_url(struct bt_buf *o, int ind, const char *k, const char *url)
{
    if (!url)
        return 0;
    const char *h = strstr(url, "://");
    h = h ? h + 3 : url;
    size_t hn = strcspn(h, "/?#");
    const char *at = memrchr(h, '@', hn);
    const char *colon = at ? memchr(h, ':', (size_t)(at - h)) : NULL;
    if (!colon)
        return kv_str(o, ind, k, url);
    struct bt_buf m;
    bt_buf_init(&m, 1 << 16);
    int rc = bt_buf_add(&m, url, (size_t)(colon + 1 - url));
    rc = rc ? rc : bt_buf_adds(&m, SECRET);
    rc = rc ? rc : bt_buf_adds(&m, at);
    rc = rc ? rc : kv_str(o, ind, k, bt_buf_str(&m));
    bt_buf_free(&m);
    return rc;
}

static bool secret_header(const char *name)
{
    static const char *const words[] = {"auth", "token", "key", "secret", "cookie", "password"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasestr(name, words[i]))
            return true;
    return false;
}

static int labels(struct bt_buf *o, int ind, const char *k, const struct bt_labels *l)
{
    if (l->n == 0)
        return 0;
    int rc = key(o, ind, k);
    rc = rc ? rc : bt_buf_add(o, "\n", 1);
    for (size_t i = 0; i < l->n && !rc; i++)
        rc = kv_str(o, ind + 2, l->v[i].name, l->v[i].value);
    return rc;
}

/* ---- generic nodes (pipeline_stages, relabel_configs, fim ...) ---- */

static int scalar(struct bt_buf *o, const struct bt_node *n)
{
    if (bt_node_is_null(n))
        return bt_buf_adds(o, "null");
    if (!n->quoted && plain_ok(n->str, n->len))
        return bt_buf_add(o, n->str, n->len);
    return quoted(o, n->str, n->len);
}

static int node_value(struct bt_buf *o, const struct bt_node *n, int ind);

static int node_map(struct bt_buf *o, const struct bt_node *n, int ind, bool first_inline)
{
    int rc = 0;
    for (size_t i = 0; i < n->n && !rc; i++) {
        if (i > 0 || !first_inline)
            rc = indent(o, ind);
        rc = rc ? rc : scalar(o, bt_node_key(n, i));
        rc = rc ? rc : bt_buf_add(o, ":", 1);
        rc = rc ? rc : node_value(o, bt_node_val(n, i), ind + 2);
    }
    return rc;
}

/* Writes the value after "key:" or "-" (which has no trailing space yet). */
static int node_value(struct bt_buf *o, const struct bt_node *n, int ind)
{
    int rc = 0;
    if (!n || n->type == BT_NODE_NULL || n->type == BT_NODE_SCALAR) {
        rc = bt_buf_add(o, " ", 1);
        rc = rc ? rc : scalar(o, n);
        return rc ? rc : bt_buf_add(o, "\n", 1);
    }
    if (n->n == 0)
        return bt_buf_adds(o, n->type == BT_NODE_MAP ? " {}\n" : " []\n");
    if (n->type == BT_NODE_MAP) {
        rc = bt_buf_add(o, "\n", 1);
        return rc ? rc : node_map(o, n, ind, false);
    }
    rc = bt_buf_add(o, "\n", 1);
    for (size_t i = 0; i < n->n && !rc; i++) {
        const struct bt_node *it = n->items[i];
        rc = indent(o, ind);
        rc = rc ? rc : bt_buf_add(o, "-", 1);
        if (!rc && it->type == BT_NODE_MAP && it->n > 0) {
            rc = bt_buf_add(o, " ", 1);
            rc = rc ? rc : node_map(o, it, ind + 2, true);
        } else if (!rc) {
            rc = node_value(o, it, ind + 2);
        }
    }
    return rc;
}

static int kv_node(struct bt_buf *o, int ind, const char *k, const struct bt_node *n)
{
    if (!n)
        return 0;
    int rc = key(o, ind, k);
    return rc ? rc : node_value(o, n, ind + 2);
}

/* ---- blocks ---- */

static int dump_server(struct bt_buf *o, const struct bt_server_config *s)
{
    int rc = bt_buf_adds(o, "server:\n");
    rc = rc ? rc : kv_str(o, 2, "http_listen_address", s->http_listen_address);
    rc = rc ? rc : kv_raw(o, 2, "http_listen_port", "%d", s->http_listen_port);
    rc = rc ? rc : kv_raw(o, 2, "grpc_listen_port", "%d", s->grpc_listen_port);
    rc = rc ? rc : kv_str(o, 2, "external_url", s->external_url);
    if (!rc && s->http_path_prefix && s->http_path_prefix[0])
        rc = kv_str(o, 2, "http_path_prefix", s->http_path_prefix);
    if (!rc && s->http_tls_cert_file) {
        rc = bt_buf_adds(o, "  http_tls_config:\n");
        rc = rc ? rc : kv_str(o, 4, "cert_file", s->http_tls_cert_file);
        rc = rc ? rc : kv_str(o, 4, "key_file", s->http_tls_key_file);
    }
    rc = rc ? rc : kv_str(o, 2, "log_level", s->log_level);
    rc = rc ? rc : kv_str(o, 2, "log_format", s->log_format);
    rc = rc ? rc : kv_bool(o, 2, "register_instrumentation", s->register_instrumentation);
    rc = rc ? rc : kv_bool(o, 2, "disable", s->disable);
    rc = rc ? rc : kv_bool(o, 2, "health_check_target", s->health_check_target);
    rc = rc ? rc : kv_bool(o, 2, "enable_runtime_reload", s->enable_runtime_reload);
    return rc ? rc : kv_dur(o, 2, "graceful_shutdown_timeout", s->graceful_shutdown_timeout_ns);
}

static int dump_tls(struct bt_buf *o, int ind, const struct bt_tls_config *t)
{
    if (!(t->ca_file || t->cert_file || t->key_file || t->server_name || t->insecure_skip_verify ||
          t->ca || t->cert || t->key || t->min_version || t->max_version))
        return 0;
    int rc = key(o, ind, "tls_config");
    rc = rc ? rc : bt_buf_adds(o, "\n");
    rc = rc ? rc : kv_str(o, ind + 2, "ca_file", t->ca_file);
    rc = rc ? rc : kv_str(o, ind + 2, "cert_file", t->cert_file);
    rc = rc ? rc : kv_str(o, ind + 2, "key_file", t->key_file);
    rc = rc ? rc : kv_str(o, ind + 2, "ca", t->ca);
    rc = rc ? rc : kv_str(o, ind + 2, "cert", t->cert);
    rc = rc ? rc : kv_secret(o, ind + 2, "key", t->key);
    rc = rc ? rc : kv_str(o, ind + 2, "server_name", t->server_name);
    rc = rc ? rc : kv_str(o, ind + 2, "min_version", t->min_version);
    rc = rc ? rc : kv_str(o, ind + 2, "max_version", t->max_version);
    return rc ? rc : kv_bool(o, ind + 2, "insecure_skip_verify", t->insecure_skip_verify);
}

static int dump_oauth2(struct bt_buf *o, const struct bt_oauth2_config *a)
{
    if (!a->set)
        return 0;
    int rc = bt_buf_adds(o, "    oauth2:\n");
    rc = rc ? rc : kv_str(o, 6, "client_id", a->client_id);
    rc = rc ? rc : kv_secret(o, 6, "client_secret", a->client_secret);
    rc = rc ? rc : kv_str(o, 6, "client_secret_file", a->client_secret_file);
    if (!rc && a->n_scopes)
        rc = bt_buf_adds(o, "      scopes:\n");
    for (size_t i = 0; i < a->n_scopes && !rc; i++) {
        rc = bt_buf_adds(o, "        - ");
        rc = rc ? rc : str(o, a->scopes[i]);
        rc = rc ? rc : bt_buf_add(o, "\n", 1);
    }
    rc = rc ? rc : kv_url(o, 6, "token_url", a->token_url);
    if (!rc && a->n_params)
        rc = bt_buf_adds(o, "      endpoint_params:\n");
    for (size_t i = 0; i < a->n_params && !rc; i++)
        rc = kv_str(o, 8, a->params[i].name, a->params[i].value);
    rc = rc ? rc : dump_tls(o, 6, &a->tls);
    rc = rc ? rc : kv_url(o, 6, "proxy_url", a->proxy_url);
    rc = rc ? rc : kv_str(o, 6, "no_proxy", a->no_proxy);
    if (!rc && a->proxy_from_environment)
        rc = kv_bool(o, 6, "proxy_from_environment", true);
    return rc;
}

static int dump_client(struct bt_buf *o, const struct bt_client_config *c)
{
    int rc = bt_buf_adds(o, "  -");
    rc = rc ? rc : kv_url(o, 1, "url", c->url);
    rc = rc ? rc : kv_str(o, 4, "name", c->name);
    rc = rc ? rc : kv_dur(o, 4, "batchwait", c->batchwait_ns);
    rc = rc ? rc : kv_raw(o, 4, "batchsize", "%" PRIu64, c->batchsize);
    rc = rc ? rc : bt_buf_adds(o, "    backoff_config:\n");
    rc = rc ? rc : kv_dur(o, 6, "min_period", c->min_backoff_ns);
    rc = rc ? rc : kv_dur(o, 6, "max_period", c->max_backoff_ns);
    rc = rc ? rc : kv_raw(o, 6, "max_retries", "%d", c->max_retries);
    rc = rc ? rc : kv_dur(o, 4, "timeout", c->timeout_ns);
    rc = rc ? rc : kv_str(o, 4, "tenant_id", c->tenant_id);
    rc = rc ? rc : labels(o, 4, "external_labels", &c->external_labels);
    if (!rc && (c->basic_username || c->basic_password || c->basic_password_file)) {
        rc = bt_buf_adds(o, "    basic_auth:\n");
        rc = rc ? rc : kv_str(o, 6, "username", c->basic_username);
        rc = rc ? rc : kv_secret(o, 6, "password", c->basic_password);
        rc = rc ? rc : kv_str(o, 6, "password_file", c->basic_password_file);
    }
    if (!rc && c->basic_username_file)
        rc = kv_str(o, 6, "username_file", c->basic_username_file);
    if (!rc && c->auth_set) {
        rc = bt_buf_adds(o, "    authorization:\n");
        rc = rc ? rc : kv_str(o, 6, "type", c->auth_type);
        rc = rc ? rc : kv_secret(o, 6, "credentials", c->auth_credentials);
        rc = rc ? rc : kv_str(o, 6, "credentials_file", c->auth_credentials_file);
    }
    rc = rc ? rc : dump_oauth2(o, &c->oauth2);
    rc = rc ? rc : kv_secret(o, 4, "bearer_token", c->bearer_token);
    rc = rc ? rc : kv_str(o, 4, "bearer_token_file", c->bearer_token_file);
    rc = rc ? rc : kv_url(o, 4, "proxy_url", c->proxy_url);
    rc = rc ? rc : kv_str(o, 4, "no_proxy", c->no_proxy);
    if (!rc && c->proxy_from_environment)
        rc = kv_bool(o, 4, "proxy_from_environment", true);
    if (!rc && c->n_proxy_connect_headers)
        rc = bt_buf_adds(o, "    proxy_connect_header:\n");
    for (size_t i = 0; i < c->n_proxy_connect_headers && !rc; i++) {
        rc = kv_raw(o, 6, c->proxy_connect_headers[i].name, "[%s]", SECRET);
        while (!rc && i + 1 < c->n_proxy_connect_headers &&
               strcmp(c->proxy_connect_headers[i + 1].name, c->proxy_connect_headers[i].name) == 0)
            i++;
    }
    rc = rc ? rc : kv_bool(o, 4, "follow_redirects", c->follow_redirects);
    rc = rc ? rc : kv_bool(o, 4, "enable_http2", c->enable_http2);
    rc = rc ? rc : dump_tls(o, 4, &c->tls);
    if (!rc && c->n_headers)
        rc = bt_buf_adds(o, "    headers:\n");
    for (size_t i = 0; i < c->n_headers && !rc; i++)
        rc = kv_str(o, 6, c->headers[i].name,
                    secret_header(c->headers[i].name) ? SECRET : c->headers[i].value);
    rc = rc ? rc : kv_bool(o, 4, "drop_rate_limited_batches", c->drop_rate_limited_batches);
    rc = rc ? rc : kv_dur(o, 4, "max_age", c->max_age_ns);
    return rc ? rc : kv_raw(o, 4, "max_in_flight", "%d", c->max_in_flight);
}

static int dump_scrape(struct bt_buf *o, const struct bt_scrape_config *s)
{
    int rc = bt_buf_adds(o, "  -");
    rc = rc ? rc : kv_str(o, 1, "job_name", s->job_name);
    if (!rc && s->n_statics)
        rc = bt_buf_adds(o, "    static_configs:\n");
    for (size_t i = 0; i < s->n_statics && !rc; i++) {
        const struct bt_static_config *st = &s->statics[i];
        rc = bt_buf_adds(o, "      - targets:");
        rc = rc ? rc : bt_buf_adds(o, st->n_targets ? "\n" : " []\n");
        for (size_t j = 0; j < st->n_targets && !rc; j++) {
            rc = bt_buf_adds(o, "          - ");
            rc = rc ? rc : str(o, st->targets[j]);
            rc = rc ? rc : bt_buf_add(o, "\n", 1);
        }
        rc = rc ? rc : labels(o, 8, "labels", &st->labels);
    }
    rc = rc ? rc : kv_node(o, 4, "pipeline_stages", s->pipeline_stages);
    rc = rc ? rc : kv_node(o, 4, "relabel_configs", s->relabel_configs);
    rc = rc ? rc : kv_node(o, 4, "docker_sd_configs", s->docker_sd_configs);
    rc = rc ? rc : kv_node(o, 4, "docker", s->docker);
    rc = rc ? rc : kv_node(o, 4, "journal", s->journal);
    rc = rc ? rc : kv_node(o, 4, "syslog", s->syslog);
    rc = rc ? rc : kv_node(o, 4, "loki_push_api", s->loki_push_api);
    rc = rc ? rc : kv_node(o, 4, "gelf", s->gelf);
    rc = rc ? rc : kv_node(o, 4, "file_sd_configs", s->file_sd_configs);
    rc = rc ? rc : kv_node(o, 4, "kubernetes_sd_configs", s->kubernetes_sd_configs);
    rc = rc ? rc : kv_str(o, 4, "encoding", s->encoding);
    rc =
        rc ? rc : kv_raw(o, 4, "start_at", "%s", s->start_at == BT_START_END ? "end" : "beginning");
    return rc ? rc : kv_dur(o, 4, "ignore_older", s->ignore_older_ns);
}

static int dump_rest(struct bt_buf *o, const struct bt_config *c)
{
    const struct bt_limits_config *l = &c->limits;
    const struct bt_agent_config *a = &c->agent;
    int rc = bt_buf_adds(o, "limits_config:\n");
    rc = rc ? rc : kv_bool(o, 2, "readline_rate_enabled", l->readline_rate_enabled);
    rc = rc ? rc : kv_raw(o, 2, "readline_rate", "%.17g", l->readline_rate);
    rc = rc ? rc : kv_raw(o, 2, "readline_burst", "%d", l->readline_burst);
    rc = rc ? rc : kv_bool(o, 2, "readline_rate_drop", l->readline_rate_drop);
    rc = rc ? rc : kv_raw(o, 2, "max_streams", "%zu", l->max_streams);
    rc = rc ? rc : kv_raw(o, 2, "max_line_size", "%" PRIu64, l->max_line_size);
    rc = rc ? rc : kv_bool(o, 2, "max_line_size_truncate", l->max_line_size_truncate);
    rc = rc ? rc : bt_buf_adds(o, "target_config:\n");
    rc = rc ? rc : kv_dur(o, 2, "sync_period", c->target.sync_period_ns);
    rc = rc ? rc : kv_bool(o, 2, "stdin", c->target.stdin_);
    rc = rc ? rc : bt_buf_adds(o, "bpftail:\n");
    rc = rc ? rc : kv_raw(o, 2, "memory_limit", "%" PRIu64, a->memory_limit);
    rc = rc ? rc : kv_dur(o, 2, "shutdown_timeout", a->shutdown_timeout_ns);
    rc = rc ? rc : kv_str(o, 2, "watcher", a->watcher);
    rc = rc ? rc : kv_dur(o, 2, "line_flush_timeout", a->line_flush_timeout_ns);
    rc = rc ? rc : kv_dur(o, 2, "rotate_grace", a->rotate_grace_ns);
    rc = rc ? rc : kv_dur(o, 2, "idle_close", a->idle_close_ns);
    rc = rc ? rc : kv_raw(o, 2, "read_buffer", "%" PRIu64, a->read_buffer);
    rc = rc ? rc : kv_raw(o, 2, "max_open_files", "%zu", a->max_open_files);
    rc = rc ? rc : kv_bool(o, 2, "fingerprint_check", a->fingerprint_check);
    rc = rc ? rc : kv_str(o, 2, "spool_dir", a->spool_dir);
    rc = rc ? rc : kv_raw(o, 2, "spool_max_bytes", "%" PRIu64, a->spool_max_bytes);
    return rc ? rc : kv_node(o, 0, "fim", c->fim);
}

int bt_config_dump(const struct bt_config *c, struct bt_buf *out)
{
    int rc = dump_server(out, &c->server);
    rc = rc ? rc : bt_buf_adds(out, "positions:\n");
    rc = rc ? rc : kv_str(out, 2, "filename", c->positions.filename);
    rc = rc ? rc : kv_dur(out, 2, "sync_period", c->positions.sync_period_ns);
    rc = rc ? rc : kv_bool(out, 2, "ignore_invalid_yaml", c->positions.ignore_invalid_yaml);
    rc = rc ? rc : bt_buf_adds(out, c->n_clients ? "clients:\n" : "clients: []\n");
    for (size_t i = 0; i < c->n_clients && !rc; i++)
        rc = dump_client(out, &c->clients[i]);
    rc = rc ? rc : bt_buf_adds(out, c->n_scrapes ? "scrape_configs:\n" : "scrape_configs: []\n");
    for (size_t i = 0; i < c->n_scrapes && !rc; i++)
        rc = dump_scrape(out, &c->scrapes[i]);
    return rc ? rc : dump_rest(out, c);
}

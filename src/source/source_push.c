#include "source/source_push.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/node.h"
#include "core/httpd.h"
#include "core/labels.h"
#include "core/metrics.h"
#include "source/relabel.h"
#include "source/relay.h"
#include "util/buf.h"
#include "util/inflate.h"
#include "util/log.h"
#include "util/lokipush.h"
#include "util/timeutil.h"

#define COMP "push"
#define DEFAULT_MAX_REQUEST (8u << 20)
#define DEFAULT_MAX_DECOMPRESSED (64u << 20)
#define DEFAULT_MAX_CONNS 1000
#define DEFAULT_IDLE_S 30
#define REC_FIXED 29u /* a relay record's fixed bytes plus the spool's header */

struct bt_pushrecv {
    struct bt_receiver base; /* first: the agent's view (relay.h) */
    struct bt_receiver_env env;
    char *job, *addr;
    long long port;
    bool incoming_ts;
    uint64_t max_request, max_decompressed;
    unsigned max_conns, idle_s;
    struct bt_labels statics;
    struct bt_relay *relay;
    struct bt_httpd *httpd;
    struct bt_labels *slabels; /* per stream of the request being handled */
    size_t slabels_cap;
    struct bt_kv *meta;
    size_t meta_cap;
    char *scratch;
    size_t scratch_cap;
    struct bt_buf inflated;
    struct bt_series *m_entries, *m_dropped;
    struct bt_series *m_lim_conn, *m_lim_request, *m_lim_inflated, *m_lim_idle;
    struct bt_metrics *metrics;
};

static void count_request(struct bt_pushrecv *p, int status)
{
    char esc[256], lbl[320];
    if (!p->metrics)
        return;
    bt_metrics_escape(esc, sizeof(esc), p->job);
    snprintf(lbl, sizeof(lbl), "job=\"%s\",status=\"%d\"", esc, status);
    bt_counter_inc(bt_metrics_counter(p->metrics, "bpftail_push_target_requests_total",
                                      "Push requests received, by answer.", lbl));
}

static int add_label(void *ctx, const char *name, size_t nl, const char *value, size_t vl)
{
    return bt_labels_setn(ctx, name, nl, value, vl) < 0 ? -ENOMEM : 0;
}

/* Final labels of stream i into p->slabels[i]: pushed ones, statics over them, relabel, "__"
 * dropped, tenant. Returns 1 to keep, 0 to drop, -EINVAL for bad labels, -ENOMEM. */
static int stream_labels(struct bt_pushrecv *p, const struct bt_lokipush *req, size_t i,
                         const char *tenant)
{
    const struct bt_lp_stream *s = &req->streams[i];
    struct bt_labels *l = &p->slabels[i];
    bt_labels_clear(l);
    if (s->labels) {
        if (s->labels_len + 1 > p->scratch_cap) {
            char *n = realloc(p->scratch, s->labels_len + 1);
            if (!n)
                return -ENOMEM;
            p->scratch = n;
            p->scratch_cap = s->labels_len + 1;
        }
        int rc = bt_lokipush_labels(s->labels, s->labels_len, p->scratch, add_label, l);
        if (rc < 0)
            return rc;
    } else {
        for (size_t k = 0; k < s->n_lab; k++) {
            const struct bt_lp_kv *kv = &req->kv[s->lab + k];
            if (!bt_label_name_valid(kv->name, kv->name_len))
                return -EINVAL;
            if (bt_labels_setn(l, kv->name, kv->name_len, kv->value, kv->value_len) < 0)
                return -ENOMEM;
        }
    }
    for (size_t k = 0; k < p->statics.n; k++)
        if (bt_labels_set(l, p->statics.v[k].name, p->statics.v[k].value) < 0)
            return -ENOMEM;
    if (bt_relabel_apply(p->env.relabel, l) != BT_RELABEL_KEEP)
        return 0;
    bt_labels_drop_reserved(l);
    if (!bt_labels_visible(l))
        return 0;
    if (tenant && tenant[0] && bt_labels_set(l, BT_TENANT_LABEL, tenant) < 0)
        return -ENOMEM;
    return 1;
}

static size_t labels_bytes(const struct bt_labels *l)
{
    size_t n = 0;
    for (size_t k = 0; k < l->n; k++)
        n += 6 + l->v[k].name_len + l->v[k].value_len;
    return n;
}

static int reserve_streams(struct bt_pushrecv *p, size_t n)
{
    if (n <= p->slabels_cap)
        return 0;
    struct bt_labels *v = realloc(p->slabels, n * sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = p->slabels_cap; i < n; i++)
        bt_labels_init(&v[i]);
    p->slabels = v;
    p->slabels_cap = n;
    return 0;
}

/* Queues every entry of a decoded request. Returns the HTTP status. */
static int queue_request(struct bt_pushrecv *p, const struct bt_lokipush *req, const char *tenant,
                         struct bt_buf *out)
{
    int64_t now = bt_now_ns();
    if (reserve_streams(p, req->n_streams) < 0)
        return 500;
    /* First the labels and the bytes needed: a request is queued whole or not at all. */
    size_t need = 0;
    for (size_t i = 0; i < req->n_streams; i++) {
        int rc = stream_labels(p, req, i, tenant);
        if (rc == -EINVAL) {
            bt_buf_addf(out, "invalid labels in stream %zu\n", i);
            return 400;
        }
        if (rc < 0)
            return 500;
        if (rc == 0) {
            bt_labels_clear(&p->slabels[i]); /* dropped: marked by no labels at all */
            continue;
        }
        const struct bt_lp_stream *s = &req->streams[i];
        size_t lb = labels_bytes(&p->slabels[i]);
        for (size_t j = 0; j < s->n_entries; j++) {
            const struct bt_lp_entry *e = &req->entries[s->entry + j];
            need += REC_FIXED + lb + e->line_len;
            for (size_t k = 0; k < e->n_meta; k++)
                need += 6 + req->kv[e->meta + k].name_len + req->kv[e->meta + k].value_len;
        }
    }
    if (bt_relay_full(p->base.relay, need)) {
        bt_buf_adds(out, "queue full, retry later\n");
        return 429;
    }
    for (size_t i = 0; i < req->n_streams; i++) {
        const struct bt_lp_stream *s = &req->streams[i];
        if (p->slabels[i].n == 0) {
            bt_counter_add(p->m_dropped, (double)s->n_entries);
            continue;
        }
        for (size_t j = 0; j < s->n_entries; j++) {
            const struct bt_lp_entry *e = &req->entries[s->entry + j];
            if (e->n_meta > p->meta_cap) {
                struct bt_kv *m = realloc(p->meta, e->n_meta * sizeof(*m));
                if (!m)
                    return 500;
                p->meta = m;
                p->meta_cap = e->n_meta;
            }
            for (size_t k = 0; k < e->n_meta; k++) {
                const struct bt_lp_kv *kv = &req->kv[e->meta + k];
                p->meta[k] = (struct bt_kv){kv->name, kv->name_len, kv->value, kv->value_len};
            }
            struct bt_entry be = {.labels = &p->slabels[i],
                                  .ts_ns = p->incoming_ts ? e->ts_ns : now,
                                  .line = e->line,
                                  .line_len = e->line_len,
                                  .meta = p->meta,
                                  .n_meta = e->n_meta};
            int rc = bt_relay_put(p->base.relay, &be);
            if (rc == -ENOSPC) { /* cannot happen after the check above; say so if it does */
                bt_buf_adds(out, "queue full, retry later\n");
                return 429;
            }
            if (rc < 0) {
                bt_counter_inc(p->m_dropped);
                continue;
            }
            bt_counter_inc(p->m_entries);
        }
    }
    if (bt_relay_flush(p->base.relay) < 0) {
        bt_buf_adds(out, "cannot write the queue\n");
        return 500;
    }
    return 204;
}

/* The raw endpoint: one entry per line, static labels, now. */
static int serve_raw(struct bt_pushrecv *p, const char *body, size_t n, const char *tenant,
                     struct bt_buf *out)
{
    /* A one-stream request view built by hand, so the same queueing applies. */
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += body[i] == '\n';
    lines += n && body[n - 1] != '\n';
    struct bt_lokipush req = {0};
    struct bt_lp_stream s = {.labels = "{}", .labels_len = 2, .n_entries = lines};
    req.streams = &s;
    req.n_streams = 1;
    req.entries = calloc(lines ? lines : 1, sizeof(*req.entries));
    if (!req.entries)
        return 500;
    size_t k = 0;
    for (const char *b = body, *end = body + n; b < end && k < lines;) {
        const char *nl = memchr(b, '\n', (size_t)(end - b));
        size_t len = nl ? (size_t)(nl - b) : (size_t)(end - b);
        req.entries[k++] = (struct bt_lp_entry){.line = b, .line_len = len};
        b += len + 1;
    }
    req.n_entries = k;
    s.n_entries = k;
    bool was = p->incoming_ts;
    p->incoming_ts = false;
    int st = queue_request(p, &req, tenant, out);
    p->incoming_ts = was;
    free(req.entries);
    return st;
}

static int serve_push(struct bt_pushrecv *p, const struct bt_http_request *r, struct bt_buf *out)
{
    const char *ctype = bt_http_header(r, "Content-Type");
    const char *cenc = bt_http_header(r, "Content-Encoding");
    const char *tenant = bt_http_header(r, "X-Scope-OrgID");
    const char *body = r->body;
    size_t n = r->body_len;
    if (cenc && cenc[0] && strcasecmp(cenc, "identity") != 0) {
        bool gz = strcasecmp(cenc, "gzip") == 0, zl = strcasecmp(cenc, "deflate") == 0;
        if (!gz && !zl) {
            bt_buf_addf(out, "unsupported Content-Encoding: %.60s\n", cenc);
            return 415;
        }
        bt_buf_reset(&p->inflated);
        int rc = bt_inflate(body, n, gz ? BT_INFLATE_GZIP : BT_INFLATE_ZLIB,
                            (size_t)p->max_decompressed, &p->inflated);
        if (rc == -E2BIG) {
            bt_counter_inc(p->m_lim_inflated);
            bt_buf_adds(out, "decompressed body too large\n");
            return 413;
        }
        if (rc < 0) {
            bt_buf_adds(out, "cannot decompress the body\n");
            return 400;
        }
        body = p->inflated.ptr ? p->inflated.ptr : "";
        n = p->inflated.len;
    }
    if (strcmp(r->url, "/loki/api/v1/raw") == 0)
        return serve_raw(p, body, n, tenant, out);
    bool json = ctype && strncasecmp(ctype, "application/json", 16) == 0;
    struct bt_lokipush req;
    char err[256] = "";
    int rc = bt_lokipush_decode(&req, json ? BT_LOKIPUSH_JSON : BT_LOKIPUSH_PROTO, body, n,
                                (size_t)p->max_decompressed, err, sizeof(err));
    if (rc == -E2BIG) {
        bt_counter_inc(p->m_lim_inflated);
        bt_buf_adds(out, "decompressed body too large\n");
        return 413;
    }
    if (rc < 0) {
        bt_buf_addf(out, "%s\n", err[0] ? err : "cannot decode the request");
        return rc == -ENOMEM ? 500 : 400;
    }
    int st = queue_request(p, &req, tenant, out);
    bt_lokipush_free(&req);
    return st;
}

static int on_http(void *ctx, const struct bt_http_request *r, struct bt_buf *out,
                   const char **ctype)
{
    struct bt_pushrecv *p = ctx;
    int st;
    (void)ctype;
    if (strcmp(r->url, "/ready") == 0) {
        bt_buf_adds(out, "Ready");
        return 200;
    }
    if (strcmp(r->url, "/loki/api/v1/push") != 0 && strcmp(r->url, "/api/prom/push") != 0 &&
        strcmp(r->url, "/loki/api/v1/raw") != 0) {
        bt_buf_adds(out, "404 page not found\n");
        return 404;
    }
    if (strcmp(r->method, "POST") != 0) {
        bt_buf_adds(out, "method not allowed\n");
        return 405;
    }
    st = serve_push(p, r, out);
    if (st >= 500 || st == 413 || st == 400) {
        static struct bt_ratelimit rl = BT_RATELIMIT_INIT(60);
        uint64_t sup;
        if (bt_ratelimit_ok(&rl, &sup))
            BT_WARN(COMP, "push refused", "job=%s status=%d reason=\"%.*s\"", p->job, st,
                    (int)(out->len && out->ptr[out->len - 1] == '\n' ? out->len - 1 : out->len),
                    out->ptr ? out->ptr : "");
    }
    count_request(p, st);
    return st;
}

/* The HTTP server's limits: connections past max_connections, idle connections, bodies past
 * max_request_bytes (answered 413 before the request reaches on_http). */
static void on_limit(void *ctx, enum bt_httpd_limit what)
{
    struct bt_pushrecv *p = ctx;
    switch (what) {
    case BT_HTTPD_LIMIT_CONNECTIONS: bt_counter_inc(p->m_lim_conn); break;
    case BT_HTTPD_LIMIT_IDLE_TIMEOUT: bt_counter_inc(p->m_lim_idle); break;
    case BT_HTTPD_LIMIT_BODY:
        bt_counter_inc(p->m_lim_request);
        count_request(p, 413);
        break;
    }
}

/* ---- config ---- */

static int fail(char *err, size_t errlen, const struct bt_node *n, const char *msg)
{
    char where[256];
    snprintf(err, errlen, "%s: loki_push_api: %s", bt_node_where(n, where, sizeof(where)), msg);
    return -EINVAL;
}

static int parse_server(struct bt_pushrecv *p, const struct bt_node *v, char *err, size_t errlen)
{
    if (v->type != BT_NODE_MAP)
        return fail(err, errlen, v, "server must be a map");
    for (size_t i = 0; i < v->n; i++) {
        const struct bt_node *k = bt_node_key(v, i), *x = bt_node_val(v, i);
        const char *key = k->str ? k->str : "";
        if (bt_node_is_null(x))
            continue;
        if (strcmp(key, "http_listen_address") == 0 && x->type == BT_NODE_SCALAR) {
            free(p->addr);
            if (!(p->addr = strdup(x->str)))
                return -ENOMEM;
        } else if (strcmp(key, "http_listen_port") == 0) {
            if (bt_node_int(x, &p->port) || p->port < 0 || p->port > 65535)
                return fail(err, errlen, x, "http_listen_port must be 0..65535");
        } else if (strcmp(key, "http_server_idle_timeout") == 0) {
            long long ns;
            if (bt_node_duration(x, &ns) || ns <= 0 || ns > 86400 * BT_NS_PER_SEC)
                return fail(err, errlen, x, "http_server_idle_timeout must be 1s..24h");
            p->idle_s = (unsigned)((ns + BT_NS_PER_SEC - 1) / BT_NS_PER_SEC); /* whole seconds */
        }
        /* The other keys of promtail's server block (grpc_*, the read and write timeouts,
         * log_*) are accepted: there is no gRPC here, and libmicrohttpd has one timeout, the
         * idle one above. */
    }
    return 0;
}

static int parse_cfg(struct bt_pushrecv *p, const struct bt_node *cfg, char *err, size_t errlen)
{
    p->max_request = DEFAULT_MAX_REQUEST;
    p->max_decompressed = DEFAULT_MAX_DECOMPRESSED;
    p->max_conns = DEFAULT_MAX_CONNS;
    p->idle_s = DEFAULT_IDLE_S;
    p->port = -1;
    if (bt_node_is_null(cfg) || cfg->type != BT_NODE_MAP)
        return fail(err, errlen, cfg, "expected a map with a server block");
    for (size_t i = 0; i < cfg->n; i++) {
        const struct bt_node *k = bt_node_key(cfg, i), *v = bt_node_val(cfg, i);
        const char *key = k->str ? k->str : "";
        unsigned long long b;
        int rc;
        if (bt_node_is_null(v))
            continue;
        if (strcmp(key, "server") == 0) {
            if ((rc = parse_server(p, v, err, errlen)) < 0)
                return rc;
        } else if (strcmp(key, "use_incoming_timestamp") == 0) {
            if (bt_node_bool(v, &p->incoming_ts))
                return fail(err, errlen, v, "use_incoming_timestamp must be true or false");
        } else if (strcmp(key, "max_request_bytes") == 0) {
            if (bt_node_bytes(v, &b) || b < 1024 || b > (1ull << 30))
                return fail(err, errlen, v, "max_request_bytes must be 1KiB..1GiB");
            p->max_request = b;
        } else if (strcmp(key, "max_decompressed_bytes") == 0) {
            if (bt_node_bytes(v, &b) || b < 1024 || b > (4ull << 30))
                return fail(err, errlen, v, "max_decompressed_bytes must be 1KiB..4GiB");
            p->max_decompressed = b;
        } else if (strcmp(key, "max_connections") == 0) {
            long long ll;
            if (bt_node_int(v, &ll) || ll < 1 || ll > 1000000)
                return fail(err, errlen, v, "max_connections must be 1..1000000");
            p->max_conns = (unsigned)ll;
        } else if (strcmp(key, "labels") == 0 && v->type == BT_NODE_MAP) {
            for (size_t m = 0; m < v->n; m++) {
                const struct bt_node *lk = bt_node_key(v, m), *lv = bt_node_val(v, m);
                if (!lk->str || !bt_label_name_valid(lk->str, lk->len) ||
                    lv->type != BT_NODE_SCALAR)
                    return fail(err, errlen, lk, "invalid label");
                if (bt_labels_set(&p->statics, lk->str, lv->str) < 0)
                    return -ENOMEM;
            }
        } else {
            char msg[300];
            snprintf(msg, sizeof(msg), "unknown key or bad value \"%.200s\"", key);
            return fail(err, errlen, k, msg);
        }
    }
    if (p->port < 0)
        return fail(err, errlen, cfg, "server.http_listen_port is required");
    return 0;
}

static void rx_free(struct bt_receiver *r);

static struct bt_receiver *rx_open(const struct bt_node *cfg, const struct bt_receiver_env *env,
                                   char *err, size_t errlen)
{
    struct bt_pushrecv *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "loki_push_api: out of memory");
        return NULL;
    }
    p->base.ops = &bt_push_receiver;
    p->env = *env;
    p->metrics = env->metrics;
    bt_labels_init(&p->statics);
    p->job = strdup(env->job ? env->job : "");
    int rc = p->job ? parse_cfg(p, cfg, err, errlen) : -ENOMEM;
    if (rc == -ENOMEM)
        snprintf(err, errlen, "loki_push_api: out of memory");
    if (rc < 0)
        goto fail;
    if (!env->loop)
        return &p->base;
    bt_buf_init(&p->inflated, (size_t)p->max_decompressed);
    if (p->metrics) {
        char esc[256], lbl[300];
        bt_metrics_escape(esc, sizeof(esc), p->job);
        snprintf(lbl, sizeof(lbl), "job=\"%s\"", esc);
        p->m_entries = bt_metrics_counter(p->metrics, "bpftail_push_target_entries_total",
                                          "Pushed entries queued.", lbl);
    }
    p->m_dropped = bt_receiver_drop_counter(p->metrics, "push_relabel_or_too_large");
    p->m_lim_conn = bt_receiver_limit_counter(p->metrics, "push", p->job, "connections");
    p->m_lim_request = bt_receiver_limit_counter(p->metrics, "push", p->job, "request_size");
    p->m_lim_inflated = bt_receiver_limit_counter(p->metrics, "push", p->job, "decompressed_size");
    p->m_lim_idle = bt_receiver_limit_counter(p->metrics, "push", p->job, "idle_timeout");
    if (!(p->base.relay = bt_receiver_relay_new(env, NULL, NULL, err, errlen)))
        goto fail;
    struct bt_httpd_handlers h = {.request = on_http,
                                  .max_body = (size_t)p->max_request,
                                  .ctx = p,
                                  .max_connections = p->max_conns,
                                  .idle_timeout_s = p->idle_s,
                                  .limit_hit = on_limit};
    p->httpd = bt_httpd_new(env->loop, p->addr ? p->addr : "", (int)p->port, &h, err, errlen);
    if (!p->httpd)
        goto fail;
    BT_INFO(COMP, "loki_push_api listening", "job=%s port=%d", p->job, bt_httpd_port(p->httpd));
    return &p->base;
fail:
    rx_free(&p->base);
    return NULL;
}

static void rx_free(struct bt_receiver *r)
{
    struct bt_pushrecv *p = (struct bt_pushrecv *)r;
    if (!p)
        return;
    bt_httpd_free(p->httpd);
    bt_relay_free(p->base.relay);
    for (size_t i = 0; i < p->slabels_cap; i++)
        bt_labels_free(&p->slabels[i]);
    free(p->slabels);
    free(p->meta);
    free(p->scratch);
    bt_buf_free(&p->inflated);
    bt_labels_free(&p->statics);
    free(p->addr);
    free(p->job);
    free(p);
}

static int rx_port(const struct bt_receiver *r)
{
    const struct bt_pushrecv *p = (const struct bt_pushrecv *)r;
    return p->httpd ? bt_httpd_port(p->httpd) : -1;
}

const struct bt_receiver_ops bt_push_receiver = {
    .type = "loki_push_api", .kind = "push", .open = rx_open, .free = rx_free, .port = rx_port};

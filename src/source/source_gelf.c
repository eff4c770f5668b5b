#include "source/source_gelf.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/node.h"
#include "core/labels.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "source/relabel.h"
#include "source/relay.h"
#include "util/buf.h"
#include "util/hmap.h"
#include "util/inflate.h"
#include "util/log.h"
#include "util/timeutil.h"

#define COMP "gelf"
#define DGRAM_MAX 65536
#define CHUNK_HDR 12
#define CHUNKS_MAX 128
#define CHUNK_TIMEOUT_NS (5 * BT_NS_PER_SEC)
#define DEFAULT_MAX_MSG (1u << 20)
#define DEFAULT_MAX_PENDING 1000
#define UDP_MAX 256 /* datagrams per wake-up */

/* A chunked message being reassembled. */
struct pending {
    unsigned char id[8];
    unsigned count, got;
    bool dead; /* dropped (counted) already: its late chunks are swallowed until it ends */
    bool seen[CHUNKS_MAX];
    size_t bytes;
    int64_t first_ns;
    char *chunk[CHUNKS_MAX];
    size_t len[CHUNKS_MAX];
    struct pending *older, *newer;
};

struct bt_gelf {
    struct bt_gelf_env env;
    char *job, *addr;
    bool incoming_ts;
    size_t max_msg, max_pending;
    struct bt_labels statics, labels;
    int fd, port;
    unsigned char *dgram;
    struct bt_buf msg, inflated;
    struct bt_hmap pend;
    struct pending *oldest, *newest;
    size_t n_pend;
    uint64_t timer;
    struct bt_relay *relay;
    struct bt_series *m_entries, *m_chunked, *m_errors, *m_incomplete, *m_too_large, *m_full,
        *m_labels;
};

static const char *const levels[] = {"emergency", "alert",  "critical",      "error",
                                     "warning",   "notice", "informational", "debug"};

/* ---- one message ---- */

static int set_json_str(struct bt_labels *l, const char *name, json_t *v)
{
    return json_is_string(v)
               ? bt_labels_setn(l, name, strlen(name), json_string_value(v), json_string_length(v))
               : 0;
}

/* A whole GELF payload (maybe compressed). Counts what it drops. */
static void on_payload(struct bt_gelf *g, const unsigned char *p, size_t n)
{
    const char *js = (const char *)p;
    size_t jn = n;
    if (n >= 2 && ((p[0] == 0x1f && p[1] == 0x8b) || (p[0] == 0x78))) {
        bt_buf_reset(&g->inflated);
        int rc = bt_inflate(p, n, p[0] == 0x1f ? BT_INFLATE_GZIP : BT_INFLATE_ZLIB, g->max_msg,
                            &g->inflated);
        if (rc == -E2BIG) {
            bt_counter_inc(g->m_too_large);
            return;
        }
        if (rc < 0) {
            bt_counter_inc(g->m_errors);
            return;
        }
        js = g->inflated.ptr ? g->inflated.ptr : "";
        jn = g->inflated.len;
    }
    json_error_t je;
    json_t *o = json_loadb(js, jn, 0, &je);
    if (!json_is_object(o) || !json_is_string(json_object_get(o, "short_message"))) {
        bt_counter_inc(g->m_errors);
        static struct bt_ratelimit rl = BT_RATELIMIT_INIT(60);
        uint64_t sup;
        if (bt_ratelimit_ok(&rl, &sup))
            BT_WARN(COMP, "not a GELF message", "job=%s err=\"%s\"", g->job,
                    o ? "no short_message" : je.text);
        json_decref(o);
        return;
    }
    int rc = bt_labels_copy(&g->labels, &g->statics);
    json_t *lv = json_object_get(o, "level");
    long long level = json_is_integer(lv) ? json_integer_value(lv) : 1; /* GELF's default */
    if (rc == 0 && level >= 0 && level < 8)
        rc = bt_labels_set(&g->labels, "__gelf_message_level", levels[level]);
    rc = rc ? rc : set_json_str(&g->labels, "__gelf_message_host", json_object_get(o, "host"));
    rc =
        rc ? rc : set_json_str(&g->labels, "__gelf_message_version", json_object_get(o, "version"));
    rc = rc ? rc
            : set_json_str(&g->labels, "__gelf_message_facility", json_object_get(o, "facility"));
    json_t *ts = json_object_get(o, "timestamp");
    int64_t now = bt_now_ns(), ts_ns = now;
    if (g->incoming_ts && json_is_number(ts) && json_number_value(ts) != 0 &&
        isfinite(json_number_value(ts)) && fabs(json_number_value(ts)) < 9e9)
        ts_ns = (int64_t)(json_number_value(ts) * 1e9);
    json_decref(o);
    if (rc < 0)
        return;
    if (bt_relabel_apply(g->env.relabel, &g->labels) != BT_RELABEL_KEEP) {
        bt_counter_inc(g->m_labels);
        return;
    }
    bt_labels_drop_reserved(&g->labels);
    if (!bt_labels_visible(&g->labels)) {
        bt_counter_inc(g->m_labels);
        return;
    }
    while (jn && (js[jn - 1] == '\n' || js[jn - 1] == '\r' || js[jn - 1] == ' '))
        jn--;
    struct bt_entry e = {.labels = &g->labels, .ts_ns = ts_ns, .line = js, .line_len = jn};
    rc = bt_relay_put(g->relay, &e);
    if (rc < 0) {
        bt_counter_inc(rc == -EFBIG ? g->m_too_large : g->m_full);
        return;
    }
    bt_counter_inc(g->m_entries);
}

/* ---- chunks ---- */

static void pend_drop(struct bt_gelf *g, struct pending *pm)
{
    bt_hmap_del(&g->pend, pm->id, sizeof(pm->id));
    if (pm->older)
        pm->older->newer = pm->newer;
    else
        g->oldest = pm->newer;
    if (pm->newer)
        pm->newer->older = pm->older;
    else
        g->newest = pm->older;
    for (unsigned i = 0; i < pm->count; i++)
        free(pm->chunk[i]);
    free(pm);
    g->n_pend--;
}

static void expire(struct bt_loop *l, uint64_t id, void *arg);

static void on_chunk(struct bt_gelf *g, const unsigned char *p, size_t n)
{
    unsigned seq = p[10], count = p[11];
    if (count == 0 || count > CHUNKS_MAX || seq >= count) {
        bt_counter_inc(g->m_errors);
        return;
    }
    struct pending *pm = bt_hmap_get(&g->pend, p + 2, 8);
    if (!pm) {
        if (g->n_pend >= g->max_pending) {
            if (!g->oldest->dead)
                bt_counter_inc(g->m_incomplete);
            pend_drop(g, g->oldest);
        }
        pm = calloc(1, sizeof(*pm));
        if (!pm || bt_hmap_put(&g->pend, p + 2, 8, pm, NULL) < 0) {
            free(pm);
            return;
        }
        memcpy(pm->id, p + 2, 8);
        pm->count = count;
        pm->first_ns = bt_mono_ns();
        pm->older = g->newest;
        if (g->newest)
            g->newest->newer = pm;
        else
            g->oldest = pm;
        g->newest = pm;
        g->n_pend++;
        if (!g->timer)
            g->timer =
                bt_loop_add_timer(g->env.loop, CHUNK_TIMEOUT_NS + BT_NS_PER_MS, 0, expire, g);
    }
    if (count != pm->count) {
        bt_counter_inc(g->m_errors);
        pend_drop(g, pm);
        return;
    }
    if (pm->seen[seq])
        return; /* a duplicate datagram */
    size_t len = n - CHUNK_HDR;
    if (!pm->dead && pm->bytes + len > g->max_msg) {
        bt_counter_inc(g->m_too_large);
        pm->dead = true;
        for (unsigned i = 0; i < pm->count; i++) {
            free(pm->chunk[i]);
            pm->chunk[i] = NULL;
        }
    }
    if (!pm->dead) {
        if (!(pm->chunk[seq] = malloc(len ? len : 1)))
            return;
        memcpy(pm->chunk[seq], p + CHUNK_HDR, len);
        pm->len[seq] = len;
        pm->bytes += len;
    }
    pm->seen[seq] = true;
    if (++pm->got < pm->count)
        return;
    if (pm->dead) {
        pend_drop(g, pm);
        return;
    }
    bt_buf_reset(&g->msg);
    for (unsigned i = 0; i < pm->count; i++)
        if (bt_buf_add(&g->msg, pm->chunk[i], pm->len[i]) < 0)
            break;
    if (g->msg.len == pm->bytes) {
        bt_counter_inc(g->m_chunked);
        on_payload(g, (const unsigned char *)g->msg.ptr, g->msg.len);
    }
    pend_drop(g, pm);
}

void bt_gelf_datagram(struct bt_gelf *g, const void *data, size_t n)
{
    const unsigned char *p = data;
    if (n >= CHUNK_HDR && p[0] == 0x1e && p[1] == 0x0f)
        on_chunk(g, p, n);
    else if (n > g->max_msg)
        bt_counter_inc(g->m_too_large);
    else
        on_payload(g, p, n);
}

/* One-shot, armed only while messages are pending: an idle receiver never wakes up. */
static void expire(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_gelf *g = arg;
    int64_t now = bt_mono_ns();
    (void)id;
    g->timer = 0;
    while (g->oldest && now - g->oldest->first_ns > CHUNK_TIMEOUT_NS) {
        if (!g->oldest->dead)
            bt_counter_inc(g->m_incomplete);
        pend_drop(g, g->oldest);
    }
    if (g->oldest)
        g->timer = bt_loop_add_timer(l, g->oldest->first_ns + CHUNK_TIMEOUT_NS - now + BT_NS_PER_MS,
                                     0, expire, g);
}

static void udp_io(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct bt_gelf *g = arg;
    (void)l;
    (void)events;
    for (int k = 0; k < UDP_MAX; k++) {
        ssize_t n = recv(fd, g->dgram, DGRAM_MAX, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0)
            break;
        if (n > DGRAM_MAX) {
            bt_counter_inc(g->m_too_large);
            continue;
        }
        bt_gelf_datagram(g, g->dgram, (size_t)n);
    }
    bt_relay_flush(g->relay);
}

/* ---- setup ---- */

static int listen_udp(struct bt_gelf *g, char *err, size_t errlen)
{
    const char *a = g->addr ? g->addr : ":12201";
    const char *colon = strrchr(a, ':');
    char host[256] = "", port[32];
    if (!colon || !colon[1] || (size_t)(colon - a) >= sizeof(host)) {
        snprintf(err, errlen, "gelf: job %s: listen_address \"%s\" is not host:port", g->job, a);
        return -EINVAL;
    }
    const char *h = a, *he = colon;
    if (*h == '[' && he > h && he[-1] == ']')
        h++, he--;
    memcpy(host, h, (size_t)(he - h));
    host[he - h] = '\0';
    snprintf(port, sizeof(port), "%s", colon + 1);
    struct addrinfo hints = {.ai_flags = AI_PASSIVE, .ai_socktype = SOCK_DGRAM}, *res = NULL;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (gai) {
        snprintf(err, errlen, "gelf: job %s: listen_address %s: %s", g->job, a, gai_strerror(gai));
        return -EINVAL;
    }
    int rc = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai && g->fd < 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int rcv = 8 << 20;
        if (fd < 0)
            continue;
        /* A burst of datagrams waits in the socket while the loop is busy: ask for 8 MiB
         * (past net.core.rmem_max only with CAP_NET_ADMIN, which start-up still has). */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            rc = -errno;
            close(fd);
            continue;
        }
        g->fd = fd;
    }
    freeaddrinfo(res);
    if (g->fd < 0) {
        snprintf(err, errlen, "gelf: job %s: cannot listen on %s: %s", g->job, a, strerror(-rc));
        return rc;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(g->fd, (struct sockaddr *)&ss, &sl) == 0)
        g->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    if ((rc = bt_loop_add_fd(g->env.loop, g->fd, EPOLLIN, udp_io, g)) < 0) {
        snprintf(err, errlen, "gelf: event loop: %s", strerror(-rc));
        return rc;
    }
    return 0;
}

static int fail(char *err, size_t errlen, const struct bt_node *n, const char *msg)
{
    char where[256];
    snprintf(err, errlen, "%s: gelf: %s", bt_node_where(n, where, sizeof(where)), msg);
    return -EINVAL;
}

static int parse_cfg(struct bt_gelf *g, const struct bt_node *cfg, char *err, size_t errlen)
{
    g->max_msg = DEFAULT_MAX_MSG;
    g->max_pending = DEFAULT_MAX_PENDING;
    if (!bt_node_is_null(cfg) && cfg->type != BT_NODE_MAP)
        return fail(err, errlen, cfg, "expected a map");
    for (size_t i = 0; !bt_node_is_null(cfg) && i < cfg->n; i++) {
        const struct bt_node *k = bt_node_key(cfg, i), *v = bt_node_val(cfg, i);
        const char *key = k->str ? k->str : "";
        unsigned long long b;
        long long ll;
        if (bt_node_is_null(v))
            continue;
        if (strcmp(key, "listen_address") == 0 && v->type == BT_NODE_SCALAR) {
            free(g->addr);
            if (!(g->addr = strdup(v->str)))
                return -ENOMEM;
        } else if (strcmp(key, "use_incoming_timestamp") == 0) {
            if (bt_node_bool(v, &g->incoming_ts))
                return fail(err, errlen, v, "use_incoming_timestamp must be true or false");
        } else if (strcmp(key, "max_message_bytes") == 0) {
            if (bt_node_bytes(v, &b) || b < 1024 || b > (64u << 20))
                return fail(err, errlen, v, "max_message_bytes must be 1KiB..64MiB");
            g->max_msg = (size_t)b;
        } else if (strcmp(key, "max_pending") == 0) {
            if (bt_node_int(v, &ll) || ll < 1 || ll > 1000000)
                return fail(err, errlen, v, "max_pending must be 1..1000000");
            g->max_pending = (size_t)ll;
        } else if (strcmp(key, "labels") == 0 && v->type == BT_NODE_MAP) {
            for (size_t m = 0; m < v->n; m++) {
                const struct bt_node *lk = bt_node_key(v, m), *lv = bt_node_val(v, m);
                if (!lk->str || !bt_label_name_valid(lk->str, lk->len) ||
                    lv->type != BT_NODE_SCALAR)
                    return fail(err, errlen, lk, "invalid label");
                if (bt_labels_set(&g->statics, lk->str, lv->str) < 0)
                    return -ENOMEM;
            }
        } else {
            char msg[300];
            snprintf(msg, sizeof(msg), "unknown key or bad value \"%.200s\"", key);
            return fail(err, errlen, k, msg);
        }
    }
    return 0;
}

static void init_metrics(struct bt_gelf *g)
{
    struct bt_metrics *m = g->env.metrics;
    char esc[256], lbl[300];
    if (!m)
        return;
    bt_metrics_escape(esc, sizeof(esc), g->job);
    snprintf(lbl, sizeof(lbl), "job=\"%s\"", esc);
    g->m_entries =
        bt_metrics_counter(m, "bpftail_gelf_target_entries_total", "GELF messages queued.", lbl);
    g->m_chunked = bt_metrics_counter(m, "bpftail_gelf_target_chunked_messages_total",
                                      "GELF messages reassembled from chunks.", lbl);
    g->m_errors = bt_metrics_counter(m, "bpftail_gelf_target_parsing_errors_total",
                                     "GELF datagrams that could not be read.", lbl);
#define DROP(f, reason)                                                                            \
    g->f = bt_metrics_counter(m, "bpftail_dropped_entries_total", "Entries dropped, by reason.",   \
                              "host=\"\",reason=\"" reason "\",tenant=\"\"")
    DROP(m_incomplete, "gelf_incomplete");
    DROP(m_too_large, "gelf_too_large");
    DROP(m_full, "relay_full");
    DROP(m_labels, "empty_labels");
#undef DROP
}

struct bt_gelf *bt_gelf_new(const struct bt_node *cfg, const struct bt_gelf_env *env, char *err,
                            size_t errlen)
{
    struct bt_gelf *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, errlen, "gelf: out of memory");
        return NULL;
    }
    g->env = *env;
    g->fd = -1;
    bt_labels_init(&g->statics);
    bt_labels_init(&g->labels);
    bt_hmap_init(&g->pend);
    g->job = strdup(env->job ? env->job : "");
    int rc = g->job ? parse_cfg(g, cfg, err, errlen) : -ENOMEM;
    if (rc == -ENOMEM)
        snprintf(err, errlen, "gelf: out of memory");
    if (rc < 0)
        goto fail;
    if (!env->loop)
        return g;
    bt_buf_init(&g->msg, g->max_msg);
    bt_buf_init(&g->inflated, g->max_msg);
    if (!(g->dgram = malloc(DGRAM_MAX))) {
        snprintf(err, errlen, "gelf: out of memory");
        goto fail;
    }
    init_metrics(g);
    struct bt_relay_config rcfg = {.loop = env->loop,
                                   .metrics = env->metrics,
                                   .job = g->job,
                                   .dir = env->queue_dir,
                                   .max_bytes = env->queue_bytes,
                                   .sink = env->sink,
                                   .ctx = env->ctx};
    if (!(g->relay = bt_relay_new(&rcfg, err, errlen)) || listen_udp(g, err, errlen) < 0)
        goto fail;
    BT_INFO(COMP, "gelf listening", "job=%s port=%d", g->job, g->port);
    return g;
fail:
    bt_gelf_free(g);
    return NULL;
}

void bt_gelf_free(struct bt_gelf *g)
{
    if (!g)
        return;
    while (g->oldest)
        pend_drop(g, g->oldest);
    bt_hmap_free(&g->pend);
    if (g->timer)
        bt_loop_del_timer(g->env.loop, g->timer);
    if (g->fd >= 0) {
        bt_loop_del_fd(g->env.loop, g->fd);
        close(g->fd);
    }
    if (g->relay) {
        bt_relay_flush(g->relay);
        bt_relay_free(g->relay);
    }
    bt_labels_free(&g->statics);
    bt_labels_free(&g->labels);
    bt_buf_free(&g->msg);
    bt_buf_free(&g->inflated);
    free(g->dgram);
    free(g->addr);
    free(g->job);
    free(g);
}

void bt_gelf_pause(struct bt_gelf *g)
{
    if (g && g->relay)
        bt_relay_pause(g->relay);
}

void bt_gelf_resume(struct bt_gelf *g)
{
    if (g && g->relay)
        bt_relay_resume(g->relay);
}

int bt_gelf_port(const struct bt_gelf *g)
{
    return g->port;
}

int bt_gelf_render(const struct bt_gelf *g, struct bt_buf *out)
{
    return g->relay ? bt_relay_render(g->relay, "gelf", g->port, -1, out) : 0;
}

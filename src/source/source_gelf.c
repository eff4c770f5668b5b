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
#define UDP_MAX 256    /* datagrams per wake-up */
#define DGRAM_BATCH 16 /* datagrams per recvmmsg(2) */

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
    struct bt_receiver base; /* first: the agent's view (relay.h) */
    struct bt_receiver_env env;
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
    struct bt_series *m_lim_size, *m_lim_inflated, *m_lim_pending, *m_lim_timeout;
};

/* A message dropped at a limit: counted as a drop and as the limit's hit. */
static void drop_at(struct bt_series *drop, struct bt_series *limit)
{
    bt_counter_inc(drop);
    bt_counter_inc(limit);
}

static const char *const levels[] = {"emergency", "alert",  "critical",      "error",
                                     "warning",   "notice", "informational", "debug"};

/* ---- one message ---- */

/* What bpftail reads of a GELF message: strings point into the payload (fast path) or into
 * jansson's tree (valid until it is freed); NULL when the key is absent or not a string. */
struct fields {
    bool has_short; /* short_message is a string */
    const char *host, *version, *facility;
    size_t host_len, version_len, facility_len;
    bool has_level; /* level is an integer */
    long long level;
    bool has_ts; /* timestamp is a number */
    double ts;   /* read only when want_ts (the fast path) */
    bool want_ts;
};

/* -- the common shape without jansson --
 * A flat JSON object whose values are strings, numbers, true, false or null, in ASCII: what
 * Docker's gelf driver and most GELF libraries send. It costs one pass and no allocation.
 * Anything else (a nested value, a byte past 0x7f, a \u escape, an escape in a value bpftail
 * reads, a number jansson could refuse) returns -1 and jansson decides, so both paths accept
 * and refuse the same payloads. */

static size_t skip_ws(const char *p, size_t i, size_t n)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

/* The string opening at p[i]: 0 with *end past its closing quote and *esc set when it holds
 * an escape, or -1. */
static int scan_string(const char *p, size_t n, size_t i, size_t *end, bool *esc)
{
    *esc = false;
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"') {
            *end = i + 1;
            return 0;
        }
        if (c < 0x20 || c >= 0x80)
            return -1;
        if (c == '\\') {
            *esc = true;
            if (++i >= n || !strchr("\"\\/bfnrt", p[i]) || p[i] == '\0')
                return -1;
        }
    }
    return -1;
}

/* A number at p[i] in JSON's grammar, without an exponent: 0 with *end after it and *is_int,
 * or -1. What could overflow (an exponent, more than 18 integer digits) is left to jansson,
 * which refuses the whole message for it. */
static int scan_number(const char *p, size_t n, size_t i, size_t *end, bool *is_int)
{
    size_t d0;
    *is_int = true;
    if (i < n && p[i] == '-')
        i++;
    d0 = i;
    if (i < n && p[i] == '0')
        i++;
    else
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
    if (i == d0 || i - d0 > 18)
        return -1;
    if (i < n && p[i] == '.') {
        *is_int = false;
        size_t f = ++i;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
        if (i == f)
            return -1;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E'))
        return -1;
    *end = i;
    return 0;
}

static bool key_is(const char *k, size_t kl, const char *name)
{
    return strlen(name) == kl && memcmp(k, name, kl) == 0;
}

/* Stores the value p[vs, ve) of key k (kind: 's' string, 'i' integer, 'r' real, 'o' other). */
static int put_field(struct fields *f, const char *k, size_t kl, char kind, const char *p,
                     size_t vs, size_t ve, bool esc)
{
    const char **sp = NULL;
    size_t *lp = NULL;
    if (key_is(k, kl, "short_message")) {
        f->has_short = kind == 's';
    } else if (key_is(k, kl, "host")) {
        sp = &f->host, lp = &f->host_len;
    } else if (key_is(k, kl, "version")) {
        sp = &f->version, lp = &f->version_len;
    } else if (key_is(k, kl, "facility")) {
        sp = &f->facility, lp = &f->facility_len;
    } else if (key_is(k, kl, "level")) {
        f->has_level = kind == 'i';
        if (f->has_level)
            f->level = strtoll(p + vs, NULL, 10);
    } else if (key_is(k, kl, "timestamp")) {
        f->has_ts = kind == 'i' || kind == 'r';
        f->ts = f->has_ts && f->want_ts ? strtod(p + vs, NULL) : 0; /* no overflow: no exponent */
    }
    if (sp) {
        if (kind == 's' && esc)
            return -1; /* its unescaped bytes are needed: jansson's */
        *sp = kind == 's' ? p + vs + 1 : NULL;
        *lp = kind == 's' ? ve - vs - 2 : 0;
    }
    return 0;
}

static int scan_gelf(const char *p, size_t n, bool want_ts, struct fields *f)
{
    memset(f, 0, sizeof(*f));
    f->want_ts = want_ts;
    size_t i = skip_ws(p, 0, n);
    if (i >= n || p[i] != '{')
        return -1;
    i = skip_ws(p, i + 1, n);
    if (i < n && p[i] == '}')
        return skip_ws(p, i + 1, n) == n ? 0 : -1;
    for (;;) {
        size_t ke, vs, ve;
        bool esc, is_int;
        char kind;
        if (i >= n || p[i] != '"' || scan_string(p, n, i, &ke, &esc) < 0 || esc)
            return -1;
        const char *k = p + i + 1;
        size_t kl = ke - i - 2;
        i = skip_ws(p, ke, n);
        if (i >= n || p[i] != ':')
            return -1;
        vs = i = skip_ws(p, i + 1, n);
        if (i >= n)
            return -1;
        if (p[i] == '"') {
            if (scan_string(p, n, i, &ve, &esc) < 0)
                return -1;
            kind = 's';
        } else if (p[i] == '-' || (p[i] >= '0' && p[i] <= '9')) {
            if (scan_number(p, n, i, &ve, &is_int) < 0)
                return -1;
            kind = is_int ? 'i' : 'r';
        } else if (n - i >= 4 && (memcmp(p + i, "true", 4) == 0 || memcmp(p + i, "null", 4) == 0)) {
            ve = i + 4, kind = 'o';
        } else if (n - i >= 5 && memcmp(p + i, "false", 5) == 0) {
            ve = i + 5, kind = 'o';
        } else {
            return -1;
        }
        /* The value must be followed by , or } inside the payload before it is read: then
         * strtoll and strtod stop inside it too (the payload is not NUL-terminated). */
        i = skip_ws(p, ve, n);
        if (i >= n || (p[i] != ',' && p[i] != '}'))
            return -1;
        if (put_field(f, k, kl, kind, p, vs, ve, esc) < 0)
            return -1;
        if (p[i] == '}')
            return skip_ws(p, i + 1, n) == n ? 0 : -1;
        i = skip_ws(p, i + 1, n);
    }
}

/* -- anything else: jansson -- */

static void json_str(json_t *v, const char **s, size_t *len)
{
    *s = json_is_string(v) ? json_string_value(v) : NULL;
    *len = json_is_string(v) ? json_string_length(v) : 0;
}

static void fields_of(json_t *o, struct fields *f)
{
    json_t *lv = json_object_get(o, "level"), *ts = json_object_get(o, "timestamp");
    memset(f, 0, sizeof(*f));
    f->has_short = json_is_string(json_object_get(o, "short_message"));
    json_str(json_object_get(o, "host"), &f->host, &f->host_len);
    json_str(json_object_get(o, "version"), &f->version, &f->version_len);
    json_str(json_object_get(o, "facility"), &f->facility, &f->facility_len);
    if ((f->has_level = json_is_integer(lv)))
        f->level = json_integer_value(lv);
    if ((f->has_ts = json_is_number(ts)))
        f->ts = json_number_value(ts);
}

/* The labels of a parsed message into g->labels. 0 or -ENOMEM. */
static int set_labels(struct bt_gelf *g, const struct fields *f)
{
    long long level = f->has_level ? f->level : 1; /* GELF's default */
    int rc = bt_labels_copy(&g->labels, &g->statics);
    if (rc == 0 && level >= 0 && level < 8)
        rc = bt_labels_set(&g->labels, "__gelf_message_level", levels[level]);
    if (rc == 0 && f->host)
        rc = bt_labels_setn(&g->labels, "__gelf_message_host", 19, f->host, f->host_len);
    if (rc == 0 && f->version)
        rc = bt_labels_setn(&g->labels, "__gelf_message_version", 22, f->version, f->version_len);
    if (rc == 0 && f->facility)
        rc =
            bt_labels_setn(&g->labels, "__gelf_message_facility", 23, f->facility, f->facility_len);
    return rc < 0 ? -ENOMEM : 0;
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
            drop_at(g->m_too_large, g->m_lim_inflated);
            return;
        }
        if (rc < 0) {
            bt_counter_inc(g->m_errors);
            return;
        }
        js = g->inflated.ptr ? g->inflated.ptr : "";
        jn = g->inflated.len;
    }
    struct fields f;
    json_t *o = NULL;
    if (scan_gelf(js, jn, g->incoming_ts, &f) < 0) {
        json_error_t je;
        o = json_loadb(js, jn, 0, &je);
        if (json_is_object(o))
            fields_of(o, &f);
        if (!json_is_object(o) || !f.has_short) {
            bt_counter_inc(g->m_errors);
            static struct bt_ratelimit rl = BT_RATELIMIT_INIT(60);
            uint64_t sup;
            if (bt_ratelimit_ok(&rl, &sup))
                BT_WARN(COMP, "not a GELF message", "job=%s err=\"%s\"", g->job,
                        o ? "no short_message" : je.text);
            json_decref(o);
            return;
        }
    } else if (!f.has_short) {
        bt_counter_inc(g->m_errors);
        return;
    }
    int rc = set_labels(g, &f);
    int64_t ts_ns = bt_now_ns();
    if (g->incoming_ts && f.has_ts && f.ts != 0 && isfinite(f.ts) && fabs(f.ts) < 9e9)
        ts_ns = (int64_t)(f.ts * 1e9);
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
    rc = bt_relay_put(g->base.relay, &e);
    if (rc < 0) {
        if (rc == -EFBIG)
            drop_at(g->m_too_large, g->m_lim_size);
        else
            bt_counter_inc(g->m_full);
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
            bt_counter_inc(g->m_lim_pending);
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
        drop_at(g->m_too_large, g->m_lim_size);
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

/* One-shot, armed only while messages are pending: an idle receiver never wakes up. */
static void expire(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_gelf *g = arg;
    int64_t now = bt_mono_ns();
    (void)id;
    g->timer = 0;
    while (g->oldest && now - g->oldest->first_ns > CHUNK_TIMEOUT_NS) {
        if (!g->oldest->dead)
            drop_at(g->m_incomplete, g->m_lim_timeout);
        pend_drop(g, g->oldest);
    }
    if (g->oldest)
        g->timer = bt_loop_add_timer(l, g->oldest->first_ns + CHUNK_TIMEOUT_NS - now + BT_NS_PER_MS,
                                     0, expire, g);
}

/* One datagram, whole (n is its real length, maybe past what was read). */
static void on_datagram(struct bt_gelf *g, const unsigned char *d, size_t n)
{
    if (n > DGRAM_MAX)
        drop_at(g->m_too_large, g->m_lim_size);
    else if (n >= CHUNK_HDR && d[0] == 0x1e && d[1] == 0x0f)
        on_chunk(g, d, n);
    else if (n > g->max_msg)
        drop_at(g->m_too_large, g->m_lim_size);
    else
        on_payload(g, d, n);
}

/* Up to UDP_MAX datagrams a wake-up, DGRAM_BATCH a system call, then one relay write. */
static void udp_io(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct bt_gelf *g = arg;
    struct mmsghdr mm[DGRAM_BATCH];
    struct iovec iov[DGRAM_BATCH];
    (void)l;
    (void)events;
    for (int got = 0; got < UDP_MAX;) {
        for (int k = 0; k < DGRAM_BATCH; k++) {
            iov[k] =
                (struct iovec){.iov_base = g->dgram + (size_t)k * DGRAM_MAX, .iov_len = DGRAM_MAX};
            mm[k] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[k], .msg_iovlen = 1}};
        }
        int n = recvmmsg(fd, mm, DGRAM_BATCH, MSG_DONTWAIT | MSG_TRUNC, NULL);
        if (n <= 0)
            break;
        for (int k = 0; k < n; k++)
            on_datagram(g, g->dgram + (size_t)k * DGRAM_MAX, mm[k].msg_len);
        got += n;
        if (n < DGRAM_BATCH)
            break; /* the socket is empty */
    }
    bt_relay_flush(g->base.relay);
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
    g->m_incomplete = bt_receiver_drop_counter(m, "gelf_incomplete");
    g->m_too_large = bt_receiver_drop_counter(m, "gelf_too_large");
    g->m_full = bt_receiver_drop_counter(m, "relay_full");
    g->m_labels = bt_receiver_drop_counter(m, "empty_labels");
    g->m_lim_size = bt_receiver_limit_counter(m, "gelf", g->job, "message_size");
    g->m_lim_inflated = bt_receiver_limit_counter(m, "gelf", g->job, "decompressed_size");
    g->m_lim_pending = bt_receiver_limit_counter(m, "gelf", g->job, "pending");
    g->m_lim_timeout = bt_receiver_limit_counter(m, "gelf", g->job, "reassembly_timeout");
}

static void rx_free(struct bt_receiver *r);

static struct bt_receiver *rx_open(const struct bt_node *cfg, const struct bt_receiver_env *env,
                                   char *err, size_t errlen)
{
    struct bt_gelf *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, errlen, "gelf: out of memory");
        return NULL;
    }
    g->base.ops = &bt_gelf_receiver;
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
        return &g->base;
    bt_buf_init(&g->msg, g->max_msg);
    bt_buf_init(&g->inflated, g->max_msg);
    if (!(g->dgram = malloc((size_t)DGRAM_BATCH * DGRAM_MAX))) {
        snprintf(err, errlen, "gelf: out of memory");
        goto fail;
    }
    init_metrics(g);
    if (!(g->base.relay = bt_receiver_relay_new(env, NULL, NULL, err, errlen)) ||
        listen_udp(g, err, errlen) < 0)
        goto fail;
    BT_INFO(COMP, "gelf listening", "job=%s port=%d", g->job, g->port);
    return &g->base;
fail:
    rx_free(&g->base);
    return NULL;
}

static void rx_free(struct bt_receiver *r)
{
    struct bt_gelf *g = (struct bt_gelf *)r;
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
    bt_relay_free(g->base.relay);
    bt_labels_free(&g->statics);
    bt_labels_free(&g->labels);
    bt_buf_free(&g->msg);
    bt_buf_free(&g->inflated);
    free(g->dgram);
    free(g->addr);
    free(g->job);
    free(g);
}

static int rx_port(const struct bt_receiver *r)
{
    const struct bt_gelf *g = (const struct bt_gelf *)r;
    return g->port;
}

const struct bt_receiver_ops bt_gelf_receiver = {
    .type = "gelf", .kind = "gelf", .open = rx_open, .free = rx_free, .port = rx_port};

#include "source/source_syslog.h"

#include <arpa/inet.h>
#include <errno.h>
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
#include "core/resolve.h"
#include "source/relabel.h"
#include "source/relay.h"
#include "util/buf.h"
#include "util/hmap.h"
#include "util/log.h"
#include "util/syslog.h"
#include "util/timeutil.h"
#include "util/tls.h"

#define COMP "syslog"
#define DEFAULT_IDLE_NS (120 * BT_NS_PER_SEC)
#define DEFAULT_MAX_MSG 8192
#define DEFAULT_MAX_CONNS 1000
#define ACCEPT_MAX 64 /* connections accepted per wake-up */
#define UDP_MAX 256   /* datagrams per wake-up */
#define READ_ROUNDS 16
#define RESOLVE_NS (2 * BT_NS_PER_SEC) /* longest wait for a sender's name */
#define HOLD_DGRAMS 1024               /* UDP datagrams held per sender while it resolves */
#define HOLD_BYTES (1 << 20)           /* ... and their bytes */
#define HOLD_SENDERS 256               /* UDP senders resolving at once */

struct conn {
    struct bt_syslog *s;
    int fd;
    char ip[INET6_ADDRSTRLEN];
    char host[BT_RESOLVE_NAME_MAX];
    struct bt_resolve_wait *wait; /* resolving: the socket is not in the loop */
    char *buf;
    size_t len;
    struct bt_syslog_framer fr; /* octet counting or newline framing (util/syslog.h) */
    bool blocked;               /* queue full: not reading */
    bool eof;
    bool want_write; /* TLS: a handshake message waits for the socket to be writable */
    struct bt_tls *tls;
    int64_t last;
    struct conn *prev, *next;
};

enum { FMT_5424, FMT_3164 };

struct held {
    struct held *next;
    size_t len;
    char data[];
};

/* A UDP sender whose name is being resolved, with its datagrams in arrival order. */
struct sender {
    struct bt_syslog *s;
    char ip[INET6_ADDRSTRLEN];
    struct bt_resolve_wait *wait;
    struct held *head, *tail;
    size_t n, bytes;
};

struct bt_syslog {
    struct bt_receiver base; /* first: the agent's view (relay.h) */
    struct bt_receiver_env env;
    char *job, *addr;
    bool udp, label_sd, incoming_ts, raw_line;
    int format;
    int64_t idle_ns;
    size_t max_msg, max_conns;
    struct bt_labels statics, labels;
    char *sdval; /* unescape scratch, max_msg bytes */
    int lfd, port;
    struct bt_relay *relay;
    char *tls_cert, *tls_key, *tls_ca;
    struct bt_tls_ctx *tls;
    struct conn *conns;
    size_t n_conns;
    uint64_t idle_timer;
    int64_t idle_period;
    char *dgram;
    struct bt_hmap senders; /* ip -> struct sender, UDP senders resolving */
    struct bt_series *m_tls, *m_entries, *m_parse, *m_empty, *m_lim_conn, *m_lim_len, *m_lim_idle;
    struct bt_series *m_drop_full, *m_drop_len, *m_drop_labels, *m_drop_resolve;
};

/* ---- one message ---- */

static int set_str(struct bt_labels *l, const char *name, struct bt_syslog_str v)
{
    return v.p && v.n ? bt_labels_setn(l, name, strlen(name), v.p, v.n) : 0;
}

/* Structured data as __syslog_message_sd_<id>_<name>, "@" of the id as "_". */
static int sd_labels(struct bt_syslog *s, const struct bt_syslog_msg *m)
{
    size_t pos = 0;
    struct bt_syslog_str id = {0}, name, value;
    char key[128];
    while (bt_syslog_sd_next(&m->sd, &pos, &id, &name, &value) == 1) {
        int k = snprintf(key, sizeof(key), "__syslog_message_sd_%.*s_%.*s", (int)id.n, id.p,
                         (int)name.n, name.p);
        if (k <= 0 || (size_t)k >= sizeof(key))
            continue;
        for (char *c = key; *c; c++)
            if (*c == '@')
                *c = '_';
        if (!bt_label_name_valid(key, (size_t)k))
            continue; /* e.g. a '.' in an SD-ID: not a label name; promtail's relabel drops it */
        size_t vn = bt_syslog_sd_unescape(value.p, value.n, s->sdval);
        if (bt_labels_setn(&s->labels, key, (size_t)k, s->sdval, vn) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* Handles one framed message. 0 when it is consumed (queued, or dropped and counted),
 * -ENOSPC when the queue is full (the caller keeps it and stops). */
static int on_message(struct bt_syslog *s, const char *ip, const char *host, const char *p,
                      size_t n)
{
    struct bt_syslog_msg m;
    int64_t now = bt_now_ns();
    int rc = s->format == FMT_3164 ? bt_syslog_parse_rfc3164(p, n, now, &m)
                                   : bt_syslog_parse_rfc5424(p, n, &m);
    if (rc < 0) {
        bt_counter_inc(s->m_parse);
        static struct bt_ratelimit rl = BT_RATELIMIT_INIT(60);
        uint64_t sup;
        if (bt_ratelimit_ok(&rl, &sup))
            BT_WARN(COMP, "cannot parse a syslog message", "job=%s from=%s head=\"%.40s\"", s->job,
                    ip, n ? p : "");
        return 0;
    }
    if (!m.msg.p) {
        bt_counter_inc(s->m_empty);
        return 0;
    }
    rc = bt_labels_copy(&s->labels, &s->statics);
    rc = rc ? rc : bt_labels_set(&s->labels, "__syslog_connection_ip_address", ip);
    rc = rc ? rc : bt_labels_set(&s->labels, "__syslog_connection_hostname", host);
    const char *sev = bt_syslog_severity_name(m.severity);
    const char *fac = bt_syslog_facility_name(m.facility);
    rc = rc ? rc : bt_labels_set(&s->labels, "__syslog_message_severity", sev ? sev : "");
    rc = rc ? rc : bt_labels_set(&s->labels, "__syslog_message_facility", fac ? fac : "");
    rc = rc ? rc : set_str(&s->labels, "__syslog_message_hostname", m.hostname);
    rc = rc ? rc : set_str(&s->labels, "__syslog_message_app_name", m.app_name);
    rc = rc ? rc : set_str(&s->labels, "__syslog_message_proc_id", m.proc_id);
    rc = rc ? rc : set_str(&s->labels, "__syslog_message_msg_id", m.msg_id);
    if (rc == 0 && s->label_sd)
        rc = sd_labels(s, &m);
    if (rc < 0)
        return 0; /* out of memory: nothing better to do than drop it */
    if (bt_relabel_apply(s->env.relabel, &s->labels) != BT_RELABEL_KEEP) {
        bt_counter_inc(s->m_drop_labels);
        return 0;
    }
    bt_labels_drop_reserved(&s->labels);
    if (!bt_labels_visible(&s->labels)) {
        bt_counter_inc(s->m_drop_labels);
        return 0;
    }
    struct bt_entry e = {.labels = &s->labels,
                         .ts_ns = s->incoming_ts && m.has_ts ? m.ts_ns : now,
                         .line = s->raw_line ? p : m.msg.p,
                         .line_len = s->raw_line ? n : m.msg.n};
    rc = bt_relay_put(s->base.relay, &e);
    if (rc == -ENOSPC)
        return rc;
    if (rc < 0) {
        bt_counter_inc(rc == -EFBIG ? s->m_drop_len : s->m_drop_full);
        return 0;
    }
    bt_counter_inc(s->m_entries);
    return 0;
}

/* ---- TCP connections ---- */

static void conn_close(struct conn *c)
{
    struct bt_syslog *s = c->s;
    if (c->wait)
        bt_resolver_cancel(s->env.resolver, c->wait);
    else if (!c->blocked)
        bt_loop_del_fd(s->env.loop, c->fd);
    bt_tls_free(c->tls);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    free(c->buf);
    free(c);
}

/* Frames and handles what is buffered. Returns false when the queue is full (c->blocked). */
static bool conn_process(struct conn *c)
{
    struct bt_syslog *s = c->s;
    size_t off = 0;
    while (off < c->len) {
        const char *msg;
        size_t mlen, used;
        enum bt_syslog_frame_rc k = bt_syslog_frame(&c->fr, c->buf + off, c->len - off, c->eof,
                                                    s->max_msg, &msg, &mlen, &used);
        if (k == BT_SYSLOG_FRAME_MSG && on_message(s, c->ip, c->host, msg, mlen) == -ENOSPC) {
            c->blocked = true; /* the message stays buffered until there is room */
            break;
        }
        if (k == BT_SYSLOG_FRAME_TOO_LONG) {
            bt_counter_inc(s->m_lim_len);
            bt_counter_inc(s->m_drop_len);
        }
        off += used;
        if (k == BT_SYSLOG_FRAME_MORE)
            break;
    }
    if (off) {
        memmove(c->buf, c->buf + off, c->len - off);
        c->len -= off;
    }
    return !c->blocked;
}

static void conn_io(struct bt_loop *l, int fd, uint32_t events, void *arg);

/* Reads and handles until the socket is drained, the queue is full or the peer is gone. */
static void conn_run(struct conn *c)
{
    struct bt_syslog *s = c->s;
    size_t cap = s->max_msg + BT_SYSLOG_FRAME_HDR;
    /* Every round handles what the last one read before it reads again, so nothing read is
     * left in the buffer when the rounds end: the socket (level-triggered) signals only bytes
     * still in the kernel. TLS may hold decrypted bytes the socket no longer signals: those
     * are read out past the round limit. */
    for (int round = 0;; round++) {
        if (!conn_process(c)) {
            /* Out of the loop while blocked: a hung-up socket would be reported (EPOLLHUP)
             * even with no events asked for. */
            bt_loop_del_fd(s->env.loop, c->fd);
            return;
        }
        if (c->eof || c->len >= cap) {
            conn_close(c); /* cannot happen unless framing is broken: never spin on it */
            return;
        }
        if (round >= READ_ROUNDS && !(c->tls && bt_tls_pending(c->tls)))
            return;
        ssize_t n;
        if (c->tls) {
            n = bt_tls_read(c->tls, c->buf + c->len, cap - c->len);
            if (n == -ENOBUFS || (n >= 0 && c->want_write) || n == -EAGAIN) {
                bool ww = n == -ENOBUFS;
                if (ww != c->want_write)
                    bt_loop_mod_fd(s->env.loop, c->fd, ww ? EPOLLIN | EPOLLOUT : EPOLLIN);
                c->want_write = ww;
                if (n < 0)
                    return;
            }
            if (n == -EPROTO) {
                bt_counter_inc(s->m_tls);
                static struct bt_ratelimit rl = BT_RATELIMIT_INIT(60);
                uint64_t sup;
                if (bt_ratelimit_ok(&rl, &sup))
                    BT_WARN(COMP, "TLS connection refused", "job=%s from=%s err=\"%s\"", s->job,
                            c->ip, bt_tls_error(c->tls));
                conn_close(c);
                return;
            }
        } else {
            n = read(c->fd, c->buf + c->len, cap - c->len);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        }
        if (n <= 0) {
            c->eof = true;
            continue;
        }
        c->len += (size_t)n;
        c->last = bt_mono_ns();
    }
}

static void conn_io(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct conn *c = arg;
    struct bt_syslog *s = c->s; /* c may be closed by conn_run */
    (void)l;
    (void)fd;
    (void)events;
    conn_run(c);
    bt_relay_flush(s->base.relay);
}

static void idle_fire(struct bt_loop *l, uint64_t id, void *arg);

/* The connection's name is known (or "" at the deadline): its socket joins the loop. */
static void conn_resolved(void *arg, const char *name)
{
    struct conn *c = arg;
    struct bt_syslog *s = c->s;
    c->wait = NULL;
    snprintf(c->host, sizeof(c->host), "%s", name);
    c->last = bt_mono_ns();
    if (bt_loop_add_fd(s->env.loop, c->fd, EPOLLIN, conn_io, c) < 0) {
        conn_close(c);
        return;
    }
    conn_run(c); /* what came while it waited */
    bt_relay_flush(s->base.relay);
}

static void accept_io(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct bt_syslog *s = arg;
    (void)events;
    for (int k = 0; k < ACCEPT_MAX; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return;
        if (s->n_conns >= s->max_conns) {
            bt_counter_inc(s->m_lim_conn);
            close(cfd);
            continue;
        }
        struct conn *c = calloc(1, sizeof(*c));
        if (c)
            c->buf = malloc(s->max_msg + BT_SYSLOG_FRAME_HDR);
        if (!c || !c->buf || (s->tls && !(c->tls = bt_tls_accept(s->tls, cfd)))) {
            if (c)
                free(c->buf);
            free(c);
            close(cfd);
            continue;
        }
        c->s = s;
        c->fd = cfd;
        c->last = bt_mono_ns();
        if (getnameinfo((struct sockaddr *)&ss, sl, c->ip, sizeof(c->ip), NULL, 0,
                        NI_NUMERICHOST) != 0)
            c->ip[0] = '\0';
        if (strncmp(c->ip, "::ffff:", 7) == 0)
            memmove(c->ip, c->ip + 7, strlen(c->ip + 7) + 1);
        /* Its messages wait for its name: the socket joins the loop when the name is known. */
        if (s->env.resolver)
            bt_resolver_lookup(s->env.resolver, (struct sockaddr *)&ss, sl, RESOLVE_NS,
                               conn_resolved, c, c->host, &c->wait);
        if (!c->wait && bt_loop_add_fd(l, cfd, EPOLLIN, conn_io, c) < 0) {
            bt_tls_free(c->tls);
            close(cfd);
            free(c->buf);
            free(c);
            continue;
        }
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
        if (!s->idle_timer)
            s->idle_timer = bt_loop_add_timer(l, s->idle_period, s->idle_period, idle_fire, s);
    }
}

/* The queue has room again: blocked connections go on where they stopped. */
static void on_space(void *arg)
{
    struct bt_syslog *s = arg;
    struct conn *next;
    for (struct conn *c = s->conns; c; c = next) {
        next = c->next;
        if (!c->blocked)
            continue;
        c->blocked = false;
        c->last = bt_mono_ns();
        if (bt_loop_add_fd(s->env.loop, c->fd, EPOLLIN, conn_io, c) < 0) {
            conn_close(c);
            continue;
        }
        conn_run(c);
    }
    bt_relay_flush(s->base.relay);
}

static void idle_fire(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_syslog *s = arg;
    int64_t now = bt_mono_ns();
    struct conn *next;
    (void)l;
    (void)id;
    for (struct conn *c = s->conns; c; c = next) {
        next = c->next;
        if (!c->blocked && !c->wait && now - c->last > s->idle_ns) {
            bt_counter_inc(s->m_lim_idle);
            conn_close(c);
        }
    }
    if (!s->conns) { /* no connection, no wake-ups */
        bt_loop_del_timer(s->env.loop, s->idle_timer);
        s->idle_timer = 0;
    }
}

/* ---- UDP ---- */

static void sender_free(struct sender *u)
{
    struct held *next;
    for (struct held *h = u->head; h; h = next) {
        next = h->next;
        free(h);
    }
    free(u);
}

/* The sender's name is known (or "" at the deadline): its held datagrams go, in order. */
static void sender_resolved(void *arg, const char *name)
{
    struct sender *u = arg;
    struct bt_syslog *s = u->s;
    bt_hmap_del(&s->senders, u->ip, strlen(u->ip));
    for (struct held *h = u->head; h; h = h->next)
        if (on_message(s, u->ip, name, h->data, h->len) == -ENOSPC)
            bt_counter_inc(s->m_drop_full);
    sender_free(u);
    bt_relay_flush(s->base.relay);
}

/* Keeps a datagram of a sender whose name is not known yet. 1: held (or dropped and counted),
 * 0: the name is in host, go on. */
static int udp_hold(struct bt_syslog *s, const struct sockaddr_storage *ss, socklen_t sl,
                    const char *ip, const char *p, size_t len, char *host)
{
    struct sender *u = bt_hmap_get(&s->senders, ip, strlen(ip));
    if (!u) {
        struct bt_resolve_wait *w = NULL;
        if (s->senders.n >= HOLD_SENDERS) {
            bt_counter_inc(s->m_drop_resolve);
            return 1;
        }
        if (!(u = calloc(1, sizeof(*u))))
            return 0; /* host is "": better without a name than lost */
        int rc = bt_resolver_lookup(s->env.resolver, (const struct sockaddr *)ss, sl, RESOLVE_NS,
                                    sender_resolved, u, host, &w);
        if (rc != 0 || bt_hmap_put(&s->senders, ip, strlen(ip), u, NULL) < 0) {
            bt_resolver_cancel(s->env.resolver, w);
            free(u);
            return 0;
        }
        u->s = s;
        u->wait = w;
        snprintf(u->ip, sizeof(u->ip), "%s", ip);
    }
    struct held *h = NULL;
    if (u->n >= HOLD_DGRAMS || u->bytes + len > HOLD_BYTES || !(h = malloc(sizeof(*h) + len))) {
        bt_counter_inc(s->m_drop_resolve);
        return 1;
    }
    h->next = NULL;
    h->len = len;
    memcpy(h->data, p, len);
    if (u->tail)
        u->tail->next = h;
    else
        u->head = h;
    u->tail = h;
    u->n++;
    u->bytes += len;
    return 1;
}

static void udp_io(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct bt_syslog *s = arg;
    (void)l;
    (void)events;
    for (int k = 0; k < UDP_MAX; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        ssize_t n = recvfrom(fd, s->dgram, s->max_msg + 1, MSG_DONTWAIT | MSG_TRUNC,
                             (struct sockaddr *)&ss, &sl);
        if (n < 0)
            break;
        if ((size_t)n > s->max_msg) {
            bt_counter_inc(s->m_lim_len);
            bt_counter_inc(s->m_drop_len);
            continue;
        }
        size_t len = (size_t)n;
        while (len && (s->dgram[len - 1] == '\n' || s->dgram[len - 1] == '\r' ||
                       s->dgram[len - 1] == '\0'))
            len--;
        char ip[INET6_ADDRSTRLEN];
        if (getnameinfo((struct sockaddr *)&ss, sl, ip, sizeof(ip), NULL, 0, NI_NUMERICHOST))
            ip[0] = '\0';
        const char *ipp = strncmp(ip, "::ffff:", 7) == 0 ? ip + 7 : ip;
        char host[BT_RESOLVE_NAME_MAX] = "";
        if (s->env.resolver && udp_hold(s, &ss, sl, ipp, s->dgram, len, host))
            continue;
        if (on_message(s, ipp, host, s->dgram, len) == -ENOSPC)
            bt_counter_inc(s->m_drop_full);
    }
    bt_relay_flush(s->base.relay);
}

/* ---- listening ---- */

/* "host:port", "[v6]:port", ":port". 0 or -EINVAL. */
static int split_addr(const char *a, char *host, size_t hl, char *port, size_t pl)
{
    const char *colon = strrchr(a, ':');
    if (!colon || !colon[1])
        return -EINVAL;
    const char *h = a, *he = colon;
    if (*h == '[') {
        if (he == h || he[-1] != ']')
            return -EINVAL;
        h++, he--;
    }
    if ((size_t)(he - h) >= hl || strlen(colon + 1) >= pl)
        return -EINVAL;
    memcpy(host, h, (size_t)(he - h));
    host[he - h] = '\0';
    snprintf(port, pl, "%s", colon + 1);
    return 0;
}

static int listen_on(struct bt_syslog *s, char *err, size_t errlen)
{
    char host[256], port[32];
    if (split_addr(s->addr, host, sizeof(host), port, sizeof(port)) < 0) {
        snprintf(err, errlen, "syslog: job %s: listen_address \"%s\" is not host:port", s->job,
                 s->addr);
        return -EINVAL;
    }
    struct addrinfo hints = {.ai_flags = AI_PASSIVE,
                             .ai_socktype = s->udp ? SOCK_DGRAM : SOCK_STREAM},
                    *res = NULL;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (gai) {
        snprintf(err, errlen, "syslog: job %s: listen_address %s: %s", s->job, s->addr,
                 gai_strerror(gai));
        return -EINVAL;
    }
    int rc = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai && s->lfd < 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (s->udp) {
            int rcv = 4 << 20; /* past net.core.rmem_max only with CAP_NET_ADMIN */
            if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || (!s->udp && listen(fd, 128) < 0)) {
            rc = -errno;
            close(fd);
            continue;
        }
        s->lfd = fd;
    }
    freeaddrinfo(res);
    if (s->lfd < 0) {
        snprintf(err, errlen, "syslog: job %s: cannot listen on %s: %s", s->job, s->addr,
                 strerror(-rc));
        return rc;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(s->lfd, (struct sockaddr *)&ss, &sl) == 0)
        s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    rc = bt_loop_add_fd(s->env.loop, s->lfd, EPOLLIN, s->udp ? udp_io : accept_io, s);
    if (rc < 0) {
        snprintf(err, errlen, "syslog: event loop: %s", strerror(-rc));
        return rc;
    }
    return 0;
}

/* ---- config ---- */

static int fail(char *err, size_t errlen, const struct bt_node *n, const char *msg)
{
    char where[256];
    snprintf(err, errlen, "%s: syslog: %s", bt_node_where(n, where, sizeof(where)), msg);
    return -EINVAL;
}

/* promtail's tls_config of a syslog target: cert_file and key_file (the server's), ca_file
 * (client certificates required and checked against it). */
static int parse_tls(struct bt_syslog *s, const struct bt_node *v, char *err, size_t errlen)
{
    if (v->type != BT_NODE_MAP)
        return fail(err, errlen, v, "tls_config must be a map");
    for (size_t i = 0; i < v->n; i++) {
        const struct bt_node *k = bt_node_key(v, i), *x = bt_node_val(v, i);
        const char *key = k->str ? k->str : "";
        char **dst = strcmp(key, "cert_file") == 0  ? &s->tls_cert
                     : strcmp(key, "key_file") == 0 ? &s->tls_key
                     : strcmp(key, "ca_file") == 0  ? &s->tls_ca
                                                    : NULL;
        if (!dst) {
            char msg[300];
            snprintf(msg, sizeof(msg), "tls_config: \"%.200s\" is not supported", key);
            return fail(err, errlen, k, msg);
        }
        if (bt_node_is_null(x))
            continue;
        if (x->type != BT_NODE_SCALAR)
            return fail(err, errlen, x, "tls_config: expected a file name");
        free(*dst);
        if (!(*dst = strdup(x->str)))
            return -ENOMEM;
    }
    if (!s->tls_cert || !s->tls_key)
        return fail(err, errlen, v, "tls_config: cert_file and key_file are required");
    return 0;
}

static int parse_cfg(struct bt_syslog *s, const struct bt_node *cfg, char *err, size_t errlen)
{
    s->idle_ns = DEFAULT_IDLE_NS;
    s->max_msg = DEFAULT_MAX_MSG;
    s->max_conns = DEFAULT_MAX_CONNS;
    if (bt_node_is_null(cfg) || cfg->type != BT_NODE_MAP)
        return fail(err, errlen, cfg, "expected a map with listen_address");
    for (size_t i = 0; i < cfg->n; i++) {
        const struct bt_node *k = bt_node_key(cfg, i), *v = bt_node_val(cfg, i);
        const char *key = k->str ? k->str : "";
        long long ll;
        if (bt_node_is_null(v))
            continue;
        if (strcmp(key, "listen_address") == 0 && v->type == BT_NODE_SCALAR) {
            free(s->addr);
            if (!(s->addr = strdup(v->str)))
                return -ENOMEM;
        } else if (strcmp(key, "listen_protocol") == 0 && v->type == BT_NODE_SCALAR) {
            if (strcmp(v->str, "udp") && strcmp(v->str, "tcp"))
                return fail(err, errlen, v, "listen_protocol must be tcp or udp");
            s->udp = strcmp(v->str, "udp") == 0;
        } else if (strcmp(key, "syslog_format") == 0 && v->type == BT_NODE_SCALAR) {
            if (strcmp(v->str, "rfc5424") && strcmp(v->str, "rfc3164"))
                return fail(err, errlen, v, "syslog_format must be rfc5424 or rfc3164");
            s->format = strcmp(v->str, "rfc3164") == 0 ? FMT_3164 : FMT_5424;
        } else if (strcmp(key, "idle_timeout") == 0) {
            if (bt_node_duration(v, &ll) || ll <= 0)
                return fail(err, errlen, v, "idle_timeout must be a positive duration");
            s->idle_ns = ll;
        } else if (strcmp(key, "max_message_length") == 0) {
            if (bt_node_int(v, &ll) || ll < 0 || ll > (64 << 20))
                return fail(err, errlen, v, "max_message_length must be 0..67108864");
            s->max_msg = ll ? (size_t)ll : DEFAULT_MAX_MSG;
        } else if (strcmp(key, "max_connections") == 0) {
            if (bt_node_int(v, &ll) || ll <= 0 || ll > 1000000)
                return fail(err, errlen, v, "max_connections must be 1..1000000");
            s->max_conns = (size_t)ll;
        } else if (strcmp(key, "label_structured_data") == 0) {
            if (bt_node_bool(v, &s->label_sd))
                return fail(err, errlen, v, "label_structured_data must be true or false");
        } else if (strcmp(key, "use_incoming_timestamp") == 0) {
            if (bt_node_bool(v, &s->incoming_ts))
                return fail(err, errlen, v, "use_incoming_timestamp must be true or false");
        } else if (strcmp(key, "use_rfc5424_message") == 0) {
            if (bt_node_bool(v, &s->raw_line))
                return fail(err, errlen, v, "use_rfc5424_message must be true or false");
        } else if (strcmp(key, "labels") == 0 && v->type == BT_NODE_MAP) {
            for (size_t m = 0; m < v->n; m++) {
                const struct bt_node *lk = bt_node_key(v, m), *lv = bt_node_val(v, m);
                if (!lk->str || !bt_label_name_valid(lk->str, lk->len) ||
                    lv->type != BT_NODE_SCALAR)
                    return fail(err, errlen, lk, "invalid label");
                if (bt_labels_set(&s->statics, lk->str, lv->str) < 0)
                    return -ENOMEM;
            }
        } else if (strcmp(key, "tls_config") == 0) {
            int rc = parse_tls(s, v, err, errlen);
            if (rc < 0)
                return rc;
        } else {
            char msg[300];
            snprintf(msg, sizeof(msg), "unknown key or bad value \"%.200s\"", key);
            return fail(err, errlen, k, msg);
        }
    }
    if (!s->addr || !s->addr[0])
        return fail(err, errlen, cfg, "listen_address is required");
    return 0;
}

static void init_metrics(struct bt_syslog *s)
{
    struct bt_metrics *m = s->env.metrics;
    char esc[256], lbl[400];
    if (!m)
        return;
    bt_metrics_escape(esc, sizeof(esc), s->job);
    snprintf(lbl, sizeof(lbl), "job=\"%s\"", esc);
    s->m_entries = bt_metrics_counter(m, "bpftail_syslog_target_entries_total",
                                      "Syslog messages queued.", lbl);
    s->m_parse = bt_metrics_counter(m, "bpftail_syslog_target_parsing_errors_total",
                                    "Syslog messages that could not be parsed.", lbl);
    s->m_tls = bt_metrics_counter(m, "bpftail_syslog_tls_errors_total",
                                  "TLS connections closed on a failed handshake or record.", lbl);
    s->m_empty = bt_metrics_counter(m, "bpftail_syslog_empty_messages_total",
                                    "Syslog messages without a MSG part (skipped).", lbl);
    s->m_lim_conn = bt_receiver_limit_counter(m, "syslog", s->job, "connections");
    s->m_lim_len = bt_receiver_limit_counter(m, "syslog", s->job, "message_length");
    s->m_lim_idle = bt_receiver_limit_counter(m, "syslog", s->job, "idle_timeout");
    s->m_drop_full = bt_receiver_drop_counter(m, "relay_full");
    s->m_drop_len = bt_receiver_drop_counter(m, "line_too_long");
    s->m_drop_labels = bt_receiver_drop_counter(m, "empty_labels");
    s->m_drop_resolve = bt_receiver_drop_counter(m, "resolve_queue_full");
}

struct bt_syslog *bt_syslog_new(const struct bt_node *cfg, const struct bt_receiver_env *env,
                                char *err, size_t errlen)
{
    struct bt_syslog *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "syslog: out of memory");
        return NULL;
    }
    s->base.ops = &bt_syslog_receiver;
    s->env = *env;
    s->lfd = -1;
    bt_labels_init(&s->statics);
    bt_labels_init(&s->labels);
    bt_hmap_init(&s->senders);
    s->job = strdup(env->job ? env->job : "");
    int rc = s->job ? parse_cfg(s, cfg, err, errlen) : -ENOMEM;
    if (rc == -ENOMEM)
        snprintf(err, errlen, "syslog: out of memory");
    if (rc < 0 || !env->loop)
        goto out;
    s->sdval = malloc(s->max_msg + 1);
    s->dgram = malloc(s->max_msg + 1);
    if (!s->sdval || !s->dgram) {
        snprintf(err, errlen, "syslog: out of memory");
        goto fail;
    }
    init_metrics(s);
    if (s->tls_cert &&
        !(s->tls = bt_tls_server_new(s->tls_cert, s->tls_key, s->tls_ca, err, errlen)))
        goto fail;
    if (s->tls && s->udp) {
        snprintf(err, errlen, "syslog: job %s: tls_config needs listen_protocol tcp", s->job);
        goto fail;
    }
    if (!(s->base.relay = bt_receiver_relay_new(env, on_space, s, err, errlen)) ||
        listen_on(s, err, errlen) < 0)
        goto fail;
    /* The idle sweep runs only while connections are open. */
    s->idle_period = s->idle_ns / 4;
    if (s->idle_period < 100 * BT_NS_PER_MS)
        s->idle_period = 100 * BT_NS_PER_MS;
    if (s->idle_period > 5 * BT_NS_PER_SEC)
        s->idle_period = 5 * BT_NS_PER_SEC;
    BT_INFO(COMP, "syslog listening", "job=%s address=%s protocol=%s port=%d tls=%s", s->job,
            s->addr, s->udp ? "udp" : "tcp", s->port,
            s->tls ? (s->tls_ca ? "client-certificates" : "on") : "off");
    return s;
out:
    if (rc == 0)
        return s;
fail:
    bt_syslog_free(s);
    return NULL;
}

void bt_syslog_free(struct bt_syslog *s)
{
    if (!s)
        return;
    while (s->conns)
        conn_close(s->conns);
    size_t pos = 0;
    struct bt_hmap_slot *hs;
    while ((hs = bt_hmap_next(&s->senders, &pos))) {
        struct sender *u = hs->val;
        bt_resolver_cancel(s->env.resolver, u->wait);
        sender_resolved(u, ""); /* into the queue without a name rather than lost */
    }
    bt_hmap_free(&s->senders);
    if (s->idle_timer)
        bt_loop_del_timer(s->env.loop, s->idle_timer);
    if (s->lfd >= 0) {
        bt_loop_del_fd(s->env.loop, s->lfd);
        close(s->lfd);
    }
    bt_relay_free(s->base.relay);
    bt_labels_free(&s->statics);
    bt_labels_free(&s->labels);
    bt_tls_ctx_free(s->tls);
    free(s->tls_cert);
    free(s->tls_key);
    free(s->tls_ca);
    free(s->sdval);
    free(s->dgram);
    free(s->addr);
    free(s->job);
    free(s);
}

int bt_syslog_port(const struct bt_syslog *s)
{
    return s->port;
}

size_t bt_syslog_connections(const struct bt_syslog *s)
{
    return s->n_conns;
}

static struct bt_receiver *rx_new(const struct bt_node *cfg, const struct bt_receiver_env *env,
                                  char *err, size_t errlen)
{
    struct bt_syslog *s = bt_syslog_new(cfg, env, err, errlen);
    return s ? &s->base : NULL;
}

static void rx_free(struct bt_receiver *r)
{
    bt_syslog_free((struct bt_syslog *)r);
}

static int rx_port(const struct bt_receiver *r)
{
    return bt_syslog_port((const struct bt_syslog *)r);
}

static long rx_connections(const struct bt_receiver *r)
{
    return (long)bt_syslog_connections((const struct bt_syslog *)r);
}

const struct bt_receiver_ops bt_syslog_receiver = {.type = "syslog",
                                                   .kind = "syslog",
                                                   .open = rx_new,
                                                   .free = rx_free,
                                                   .port = rx_port,
                                                   .connections = rx_connections};

#include "source/docker_sd.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "core/ack.h"
#include "core/labels.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "config/node.h"
#include "source/relabel.h"
#include "source/source_docker.h"
#include "util/buf.h"
#include "util/hmap.h"
#include "util/log.h"
#include "util/rfc3339.h"
#include "util/timeutil.h"

#define COMP "docker_sd"
#define LIST_MAX (16u << 20) /* bytes of a /containers/json answer */
#define FRAME_MAX (1u << 20) /* one log frame; Docker's are 16 KiB plus the timestamp */
#define MINQ_MAX (4u << 20)  /* in-flight cursor candidates per container */
#define MAX_CONTAINERS 4096
#define DEFAULT_MAX_LINE (256u * 1024)
#define EVENT_MAX (1u << 20) /* one /events line */
#define EV_BACKOFF_MIN (1 * BT_NS_PER_SEC)
#define EV_BACKOFF_MAX (30 * BT_NS_PER_SEC)
/* {"type":["container"],"event":["start","die","destroy"]}, URL-escaped */
#define EV_FILTERS                                                                                 \
    "%7B%22type%22%3A%5B%22container%22%5D%2C%22event%22%3A%5B%22start%22%2C%22die%22%2C"          \
    "%22destroy%22%5D%7D"

enum { R_LIST, R_LOOKUP, R_LOGS, R_EVENTS };

enum { S_OUT = 0, S_ERR = 1 };
static const char *const stream_names[2] = {"stdout", "stderr"};

struct minq_item {
    uint64_t seg_end;
    int64_t ts;
};

struct join {
    struct bt_buf acc;
    int64_t ts;
    bool pending;
};

struct req;

struct pev { /* an event to act on */
    char id[72];
    bool start; /* else destroy */
};

struct ctr {
    char id[72];
    struct bt_docker_sd *sd;
    struct bt_labels set[2];
    bool keep[2];
    bool seen;
    bool gone;        /* destroyed: forget it once its logs are read */
    bool want_follow; /* started again while the last run's logs were still being read */
    struct req *logs;
    bool draining;    /* logs is the one-shot request after a followed stream ended */
    int64_t allow[2]; /* during a drain: the time of a line held when the stream ended */
    /* during a drain: that held line as the followed stream gave it, shipped if the drain
     * cannot send it again (a --rm container is often removed before the drain is answered) */
    struct bt_buf held[2];
    int64_t held_ts[2];
    bool held_ok[2];
    struct bt_ack_owner *owner;
    uint64_t seg_end;
    int64_t resume_ns; /* entries older than this were delivered before */
    int64_t last_ts;
    /* demultiplexing */
    unsigned char hdr[8];
    size_t hdr_len;
    int mode; /* 0 undecided, 1 multiplexed frames, 2 raw (TTY) */
    int cur;
    uint32_t left;
    struct bt_buf frame;
    struct join j[2];
    /* cursor: smallest timestamp among entries not yet acknowledged (monotonic deque) */
    struct minq_item *q;
    size_t qhead, qlen, qcap;
};

struct req {
    CURL *easy;
    struct bt_docker_sd *sd;
    struct ctr *c; /* R_LOGS only */
    int kind;
    struct req *next; /* pending lookups */
    struct bt_buf body;
    char errbuf[CURL_ERROR_SIZE];
};

struct bt_docker_sd {
    struct bt_docker_sd_env env;
    char *job;
    char *unix_path; /* NULL for TCP */
    char *base;      /* http://host:port */
    char *filters;   /* URL-escaped JSON or NULL */
    json_t *filt;    /* the same filters as an object, or NULL */
    char *host_net_host;
    long port;
    int64_t refresh_ns;
    CURLM *multi;
    uint64_t curl_timer, refresh_timer;
    struct req *list;
    struct req *lookups;
    struct req *events;
    uint64_t ev_timer;
    int64_t ev_since_ns;   /* reopen the event stream from here (the last event's time) */
    int64_t ev_first_open; /* wall clock of the first open */
    int64_t ev_backoff_ns; /* 0 while the stream works */
    int64_t ev_opened;     /* monotonic time the current stream was opened */
    bool ev_warned;
    struct pev *pev;
    size_t pev_len, pev_cap;
    struct bt_hmap ctrs;
    size_t following;
    struct bt_labels scratch;
    struct bt_series *m_entries, *m_errors, *m_ev_breaks;
    bool closing;
};

/* ---- cursor bookkeeping ---- */

static void minq_push(struct ctr *c, uint64_t seg_end, int64_t ts)
{
    while (c->qlen && c->q[(c->qhead + c->qlen - 1) % c->qcap].ts >= ts)
        c->qlen--; /* a later, smaller timestamp makes them irrelevant for the minimum */
    if (c->qlen == c->qcap) {
        size_t ncap = c->qcap ? c->qcap * 2 : 64;
        struct minq_item *nq = ncap <= MINQ_MAX ? malloc(ncap * sizeof(*nq)) : NULL;
        if (!nq) {
            /* Full: widen the newest candidate to cover this entry too. Its timestamp is not
             * larger, so the cursor only stays back longer (duplicates, never a loss). */
            c->q[(c->qhead + c->qlen - 1) % c->qcap].seg_end = seg_end;
            return;
        }
        for (size_t i = 0; i < c->qlen; i++)
            nq[i] = c->q[(c->qhead + i) % c->qcap];
        free(c->q);
        c->q = nq;
        c->qcap = ncap;
        c->qhead = 0;
    }
    c->q[(c->qhead + c->qlen) % c->qcap] = (struct minq_item){seg_end, ts};
    c->qlen++;
}

static void on_commit(void *ctx, uint64_t committed)
{
    struct ctr *c = ctx;
    while (c->qlen && c->q[c->qhead].seg_end <= committed) {
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
    }
    int64_t cursor = c->qlen ? c->q[c->qhead].ts : c->last_ts + 1;
    if (c->sd && c->sd->env.cursor_set && cursor > 0)
        c->sd->env.cursor_set(c->sd->env.pctx, c->id, cursor);
}

/* ---- entries ---- */

static void emit(struct ctr *c, int s, int64_t ts, const char *line, size_t n)
{
    if (n && line[n - 1] == '\n')
        n--;
    if (c->held_ok[s] && ts == c->held_ts[s])
        c->held_ok[s] = false; /* the drain sent the held line again */
    if ((ts < c->resume_ns && ts != c->allow[s]) || !c->keep[s])
        return;
    uint64_t start = c->seg_end;
    uint64_t end = (uint64_t)ts + 1 > start + 1 ? (uint64_t)ts + 1 : start + 1;
    struct bt_segment *seg = c->owner ? bt_segment_new(c->owner, start, end) : NULL;
    c->seg_end = end;
    if (ts > c->last_ts)
        c->last_ts = ts;
    if (seg)
        minq_push(c, end, ts);
    struct bt_entry e = {
        .labels = &c->set[s], .ts_ns = ts, .line = line, .line_len = n, .seg = seg};
    bt_counter_inc(c->sd->m_entries);
    c->sd->env.sink(c->sd->env.ctx, &e);
    bt_segment_unref(seg, 1);
}

/* One log message: "<RFC3339Nano> <text>", text ending in \n unless Docker split it. */
static void message(struct ctr *c, int s, const char *p, size_t n)
{
    struct bt_docker_sd *sd = c->sd;
    const char *sp = memchr(p, ' ', n);
    int64_t ts;
    if (!sp || bt_rfc3339_parse(p, (size_t)(sp - p), &ts) < 0) {
        bt_counter_inc(sd->m_errors);
        ts = bt_now_ns();
    } else {
        n -= (size_t)(sp + 1 - p);
        p = sp + 1;
    }
    struct join *j = &c->j[s];
    bool last = n && p[n - 1] == '\n';
    if (j->pending && j->ts != ts) { /* chunks of one line share its time: this is a new one */
        emit(c, s, j->ts, j->acc.ptr ? j->acc.ptr : "", j->acc.len);
        bt_buf_reset(&j->acc);
        j->pending = false;
    }
    if (!j->pending && last) {
        emit(c, s, ts, p, n);
        return;
    }
    if (!j->pending) {
        j->pending = true;
        j->ts = ts;
    }
    size_t cap = sd->env.max_line ? sd->env.max_line : DEFAULT_MAX_LINE;
    while (n) {
        size_t room = cap - j->acc.len, take = n < room ? n : room;
        if (take && bt_buf_add(&j->acc, p, take) < 0)
            break;
        p += take;
        n -= take;
        if (n) { /* the cap: ship what we have, go on with the rest */
            emit(c, s, j->ts, j->acc.ptr, j->acc.len);
            bt_buf_reset(&j->acc);
        }
    }
    if (last) {
        emit(c, s, j->ts, j->acc.ptr ? j->acc.ptr : "", j->acc.len);
        bt_buf_reset(&j->acc);
        j->pending = false;
    }
}

static void flush_joins(struct ctr *c)
{
    for (int s = 0; s < 2; s++) {
        if (c->j[s].pending && c->j[s].acc.len)
            emit(c, s, c->j[s].ts, c->j[s].acc.ptr, c->j[s].acc.len);
        bt_buf_reset(&c->j[s].acc);
        c->j[s].pending = false;
    }
}

/* Raw (TTY) streams: lines on stdout. */
static int raw_bytes(struct ctr *c, const char *p, size_t n)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) + 1 : n;
        if (c->frame.len + take > FRAME_MAX) {
            message(c, S_OUT, c->frame.ptr, c->frame.len); /* an endless line: ship a piece */
            bt_buf_reset(&c->frame);
        }
        if (bt_buf_add(&c->frame, p, take) < 0)
            return -ENOMEM;
        p += take;
        n -= take;
        if (nl) {
            message(c, S_OUT, c->frame.ptr, c->frame.len);
            bt_buf_reset(&c->frame);
        }
    }
    return 0;
}

/* Docker's stdcopy framing: [stream, 0, 0, 0, size BE32] then size bytes. */
static int demux(struct ctr *c, const char *p, size_t n)
{
    while (n) {
        if (c->mode == 2)
            return raw_bytes(c, p, n);
        if (c->left == 0 && c->hdr_len < 8) {
            size_t take = 8 - c->hdr_len < n ? 8 - c->hdr_len : n;
            memcpy(c->hdr + c->hdr_len, p, take);
            c->hdr_len += take;
            p += take;
            n -= take;
            if (c->hdr_len < 8)
                return 0;
            bool framed = c->hdr[0] <= 2 && !c->hdr[1] && !c->hdr[2] && !c->hdr[3];
            if (c->mode == 0 && !framed) {
                c->mode = 2; /* a TTY container: no headers at all */
                c->hdr_len = 0;
                if (raw_bytes(c, (const char *)c->hdr, 8) < 0)
                    return -ENOMEM;
                continue;
            }
            if (!framed)
                return -EPROTO;
            c->mode = 1;
            c->cur = c->hdr[0] == 2 ? S_ERR : S_OUT;
            c->left = (uint32_t)c->hdr[4] << 24 | (uint32_t)c->hdr[5] << 16 |
                      (uint32_t)c->hdr[6] << 8 | c->hdr[7];
            if (c->left > FRAME_MAX)
                return -E2BIG;
            bt_buf_reset(&c->frame);
            if (c->left == 0) {
                c->hdr_len = 0;
                continue;
            }
        }
        size_t take = c->left < n ? c->left : n;
        if (bt_buf_add(&c->frame, p, take) < 0)
            return -ENOMEM;
        p += take;
        n -= take;
        c->left -= (uint32_t)take;
        if (c->left == 0) {
            c->hdr_len = 0;
            message(c, c->cur, c->frame.ptr, c->frame.len);
        }
    }
    return 0;
}

/* ---- requests ---- */

static void on_event(void *ctx, const struct bt_docker_event *ev);

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    struct req *r = arg;
    size_t n = size * nmemb;
    if (r->kind == R_LOGS) {
        int rc = demux(r->c, p, n);
        if (rc < 0) {
            bt_counter_inc(r->sd->m_errors);
            BT_WARN(COMP, "bad log stream, reconnecting later", "id=%.12s err=\"%s\"", r->c->id,
                    strerror(-rc));
            return 0; /* aborts the transfer */
        }
        return n;
    }
    if (r->kind == R_EVENTS) {
        int rc = bt_docker_events_feed(&r->body, p, n, on_event, r->sd);
        if (rc < 0) {
            bt_counter_inc(r->sd->m_errors);
            return 0; /* an event line past EVENT_MAX: reopen the stream */
        }
        for (int i = 0; i < rc; i++)
            bt_counter_inc(r->sd->m_errors);
        return n;
    }
    return bt_buf_add(&r->body, p, n) < 0 ? 0 : n;
}

static struct req *req_new(struct bt_docker_sd *sd, struct ctr *c, int kind, const char *path)
{
    struct req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->sd = sd;
    r->c = c;
    r->kind = kind;
    bt_buf_init(&r->body, kind == R_EVENTS ? EVENT_MAX : LIST_MAX);
    struct bt_buf url;
    bt_buf_init(&url, 8192);
    r->easy = curl_easy_init();
    if (!r->easy || bt_buf_addf(&url, "%s%s", sd->base, path) < 0) {
        curl_easy_cleanup(r->easy);
        bt_buf_free(&url);
        free(r);
        return NULL;
    }
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, url.ptr);
    if (sd->unix_path)
        curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, sd->unix_path);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_FAILONERROR, 1L);
    if (kind == R_LIST || kind == R_LOOKUP)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
    bt_buf_free(&url);
    if (curl_multi_add_handle(sd->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        free(r);
        return NULL;
    }
    return r;
}

static void req_free(struct req *r)
{
    if (!r)
        return;
    curl_multi_remove_handle(r->sd->multi, r->easy);
    curl_easy_cleanup(r->easy);
    bt_buf_free(&r->body);
    free(r);
}

static void ctr_free(struct ctr *c)
{
    req_free(c->logs);
    for (int s = 0; s < 2; s++) {
        bt_labels_free(&c->set[s]);
        bt_buf_free(&c->j[s].acc);
        bt_buf_free(&c->held[s]);
    }
    bt_buf_free(&c->frame);
    bt_ack_owner_close(c->owner);
    free(c->q);
    free(c);
}

/* Asks for the container's logs from its cursor: following them (follow), or once more without
 * following after a followed stream ended (drain), because dockerd 20.10 closes a followed
 * stream when the container stops before sending the records written at exit (such as output
 * without a final newline). */
static int follow(struct bt_docker_sd *sd, struct ctr *c, bool drain)
{
    if (c->logs || (!c->keep[S_OUT] && !c->keep[S_ERR]))
        return 0;
    int64_t since = c->resume_ns;
    if (sd->env.cursor_get) {
        int64_t cur = sd->env.cursor_get(sd->env.pctx, c->id);
        if (cur > since)
            since = cur;
    }
    if (c->last_ts > 0 && c->last_ts + 1 > since)
        since = c->last_ts + 1; /* a restart: go on after the last line read */
    c->resume_ns = since;
    c->allow[S_OUT] = c->allow[S_ERR] = -1;
    for (int s = 0; drain && s < 2; s++) {
        /* The drain sends a held line's chunks again: forget them, ask from its time, and let
         * that one time through the "already delivered" filter. */
        if (!c->j[s].pending)
            continue;
        c->allow[s] = c->j[s].ts;
        if (c->j[s].ts < since)
            since = c->j[s].ts;
        struct bt_buf t = c->held[s];
        c->held[s] = c->j[s].acc;
        c->j[s].acc = t;
        bt_buf_reset(&c->j[s].acc);
        c->held_ts[s] = c->j[s].ts;
        c->held_ok[s] = true;
        c->j[s].pending = false;
    }
    c->mode = 0;
    c->hdr_len = 0;
    c->left = 0;
    bt_buf_reset(&c->frame);
    char path[256];
    snprintf(path, sizeof(path),
             "/containers/%s/logs?stdout=1&stderr=1&follow=%d&timestamps=1&since=%" PRId64
             ".%09" PRId64,
             c->id, drain ? 0 : 1, since / (int64_t)BT_NS_PER_SEC, since % (int64_t)BT_NS_PER_SEC);
    c->logs = req_new(sd, c, R_LOGS, path);
    if (!c->logs)
        return -ENOMEM;
    c->draining = drain;
    sd->following++;
    if (!drain)
        BT_INFO(COMP, "following container", "id=%.12s since=%" PRId64, c->id,
                since / (int64_t)BT_NS_PER_SEC);
    return 0;
}

/* ---- listing ---- */

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int base_labels(struct bt_docker_sd *sd, const char *id, json_t *it)
{
    struct bt_labels *l = &sd->scratch;
    char name[512], buf[512];
    bt_labels_clear(l);
    int rc = bt_labels_set(l, "__meta_docker_container_id", id);
    json_t *names = json_object_get(it, "Names");
    json_t *n0 = json_is_array(names) ? json_array_get(names, 0) : NULL;
    if (json_is_string(n0))
        rc = rc ? rc : bt_labels_set(l, "__meta_docker_container_name", json_string_value(n0));
    json_t *hc = json_object_get(it, "HostConfig");
    const char *mode = json_is_object(hc) ? jstr(hc, "NetworkMode") : NULL;
    if (mode)
        rc = rc ? rc : bt_labels_set(l, "__meta_docker_container_network_mode", mode);
    const char *k;
    json_t *v;
    json_t *labels = json_object_get(it, "Labels");
    json_object_foreach(labels, k, v)
    {
        if (!json_is_string(v))
            continue;
        bt_docker_label_name(name, sizeof(name), "__meta_docker_container_label_", k);
        rc = rc ? rc : bt_labels_set(l, name, json_string_value(v));
    }
    const char *ip = NULL;
    json_t *ns = json_object_get(it, "NetworkSettings");
    json_t *nets = json_is_object(ns) ? json_object_get(ns, "Networks") : NULL;
    json_object_foreach(nets, k, v)
    {
        ip = jstr(v, "IPAddress");
        rc = rc ? rc : bt_labels_set(l, "__meta_docker_network_name", k);
        rc = rc ? rc : bt_labels_set(l, "__meta_docker_network_id", jstr(v, "NetworkID"));
        rc = rc ? rc : bt_labels_set(l, "__meta_docker_network_ip", ip);
        break;
    }
    json_t *ports = json_object_get(it, "Ports");
    json_t *p0 = json_is_array(ports) ? json_array_get(ports, 0) : NULL;
    long port = sd->port;
    if (json_is_object(p0)) {
        json_t *pp = json_object_get(p0, "PrivatePort"), *pub = json_object_get(p0, "PublicPort");
        if (json_is_integer(pp)) {
            port = (long)json_integer_value(pp);
            snprintf(buf, sizeof(buf), "%ld", port);
            rc = rc ? rc : bt_labels_set(l, "__meta_docker_port_private", buf);
        }
        if (json_is_integer(pub)) {
            snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(pub));
            rc = rc ? rc : bt_labels_set(l, "__meta_docker_port_public", buf);
            rc = rc ? rc : bt_labels_set(l, "__meta_docker_port_public_ip", jstr(p0, "IP"));
        }
    }
    const char *addr_host = mode && strcmp(mode, "host") == 0 ? sd->host_net_host : ip;
    if (addr_host && *addr_host) {
        snprintf(buf, sizeof(buf), strchr(addr_host, ':') ? "[%s]:%ld" : "%s:%ld", addr_host, port);
        rc = rc ? rc : bt_labels_set(l, "__address__", buf);
    }
    return rc;
}

static struct ctr *ctr_new(struct bt_docker_sd *sd, const char *id, json_t *it)
{
    if (base_labels(sd, id, it) < 0)
        return NULL;
    struct ctr *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->sd = sd;
    bt_buf_init(&c->frame, FRAME_MAX);
    size_t cap = sd->env.max_line ? sd->env.max_line : DEFAULT_MAX_LINE;
    for (int s = 0; s < 2; s++) {
        bt_labels_init(&c->set[s]);
        bt_buf_init(&c->j[s].acc, cap);
        bt_buf_init(&c->held[s], cap);
        if (bt_labels_copy(&c->set[s], &sd->scratch) < 0 ||
            bt_labels_set(&c->set[s], "__meta_docker_container_log_stream", stream_names[s]) < 0)
            goto fail;
        int keep = bt_relabel_apply(sd->env.relabel, &c->set[s]);
        if (keep < 0)
            goto fail;
        c->keep[s] = keep == BT_RELABEL_KEEP;
        bt_labels_drop_reserved(&c->set[s]);
    }
    c->owner = bt_ack_owner_new(0, on_commit, c);
    if (!c->owner || bt_hmap_put(&sd->ctrs, c->id, strlen(c->id), c, NULL) < 0)
        goto fail;
    return c;
fail:
    ctr_free(c);
    return NULL;
}

/* A listing (reconcile: every running container, and the ones gone from it are forgotten) or
 * a lookup of one container that an event announced (all=1: it may have exited already). */
static void list_done(struct bt_docker_sd *sd, struct req *r, bool reconcile)
{
    json_error_t jerr;
    json_t *root = json_loadb(r->body.ptr ? r->body.ptr : "", r->body.len, 0, &jerr);
    if (!json_is_array(root)) {
        bt_counter_inc(sd->m_errors);
        BT_WARN(COMP, "bad container list from Docker", "err=\"%s\"", jerr.text);
        json_decref(root);
        return;
    }
    size_t pos = 0;
    struct bt_hmap_slot *s;
    while (reconcile && (s = bt_hmap_next(&sd->ctrs, &pos)))
        ((struct ctr *)s->val)->seen = false;
    size_t i;
    json_t *it;
    json_array_foreach(root, i, it)
    {
        const char *id = jstr(it, "Id");
        if (!id || strlen(id) > 64)
            continue;
        struct ctr *c = bt_hmap_get(&sd->ctrs, id, strlen(id));
        if (!c && sd->ctrs.n < MAX_CONTAINERS)
            c = ctr_new(sd, id, it); /* targets are deduplicated by container id */
        if (!c)
            continue;
        c->seen = true;
        c->gone = false;
        if (follow(sd, c, false) < 0)
            BT_WARN(COMP, "cannot follow container", "id=%.12s", c->id);
    }
    json_decref(root);
    if (!reconcile)
        return;
    /* Gone from the list and not streaming: forget it (its cursor stays with the caller). */
    pos = 0;
    while ((s = bt_hmap_next(&sd->ctrs, &pos))) {
        struct ctr *c = s->val;
        if (!c->seen && !c->logs) {
            bt_hmap_del(&sd->ctrs, c->id, strlen(c->id));
            ctr_free(c);
        }
    }
}

static void forget(struct bt_docker_sd *sd, struct ctr *c)
{
    bt_hmap_del(&sd->ctrs, c->id, strlen(c->id));
    ctr_free(c);
}

static void logs_done(struct bt_docker_sd *sd, struct ctr *c, CURLcode res)
{
    bool drained = c->draining;
    c->logs = NULL;
    c->draining = false;
    sd->following--;
    if (!drained && res == CURLE_OK && follow(sd, c, true) == 0)
        return;
    flush_joins(c); /* the container stopped: nothing more comes for these */
    for (int s = 0; s < 2; s++) {
        if (c->held_ok[s]) /* the drain failed before sending it again */
            emit(c, s, c->held_ts[s], c->held[s].ptr ? c->held[s].ptr : "", c->held[s].len);
        c->held_ok[s] = false;
        bt_buf_reset(&c->held[s]);
    }
    if (c->want_follow) {
        c->want_follow = false;
        if (follow(sd, c, false) < 0)
            BT_WARN(COMP, "cannot follow container", "id=%.12s", c->id);
    } else if (c->gone) {
        forget(sd, c);
    }
}

static void events_open(struct bt_docker_sd *sd);
static void apply_events(struct bt_docker_sd *sd);

static void on_ev_timer(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_docker_sd *sd = arg;
    sd->ev_timer = 0;
    events_open(sd);
    bt_docker_sd_refresh(sd); /* whatever happened while it was down */
}

/* The event stream never ends by itself: count it, say so once, and reopen it with backoff. */
static void events_broken(struct bt_docker_sd *sd, struct req *r, CURLcode res)
{
    bt_counter_inc(sd->m_ev_breaks);
    if (!sd->ev_warned)
        BT_WARN(COMP, "event stream broke, reopening it with backoff (said once until it works)",
                "err=\"%s\"",
                res == CURLE_OK     ? "closed by Docker"
                : r && r->errbuf[0] ? r->errbuf
                                    : curl_easy_strerror(res));
    sd->ev_warned = true;
    if (bt_mono_ns() - sd->ev_opened > EV_BACKOFF_MAX)
        sd->ev_backoff_ns = 0; /* it worked for a while: this is a new failure */
    sd->ev_backoff_ns = sd->ev_backoff_ns ? sd->ev_backoff_ns * 2 : EV_BACKOFF_MIN;
    if (sd->ev_backoff_ns > EV_BACKOFF_MAX)
        sd->ev_backoff_ns = EV_BACKOFF_MAX;
    if (!sd->closing)
        sd->ev_timer = bt_loop_add_timer(sd->env.loop, sd->ev_backoff_ns, 0, on_ev_timer, sd);
}

static void check_done(struct bt_docker_sd *sd)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(sd->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode res = m->data.result;
        long http = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &http);
        if (res != CURLE_OK && r->kind == R_LOGS && r->c->draining && (http == 404 || http == 409))
            BT_INFO(COMP, "container removed before the last read of its logs (as --rm does)",
                    "id=%.12s status=%ld", r->c->id, http);
        else if (res != CURLE_OK && r->kind != R_EVENTS)
            BT_WARN(COMP,
                    r->kind == R_LOGS ? "log stream ended with an error" : "container list failed",
                    "id=%.12s err=\"%s\"", r->c ? r->c->id : "-",
                    r->errbuf[0] ? r->errbuf : curl_easy_strerror(res));
        switch (r->kind) {
        case R_LOGS: logs_done(sd, r->c, res); break;
        case R_LIST:
            sd->list = NULL;
            if (res == CURLE_OK)
                list_done(sd, r, true);
            break;
        case R_LOOKUP:
            for (struct req **pp = &sd->lookups; *pp; pp = &(*pp)->next)
                if (*pp == r) {
                    *pp = r->next;
                    break;
                }
            if (res == CURLE_OK)
                list_done(sd, r, false);
            break;
        case R_EVENTS:
            sd->events = NULL;
            events_broken(sd, r, res);
            break;
        }
        req_free(r);
    }
}

/* ---- the event stream ---- */

static int parse_event(const char *line, size_t len, bt_docker_event_fn fn, void *ctx)
{
    json_t *o = json_loadb(line, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return -1;
    }
    struct bt_docker_event ev = {.type = jstr(o, "Type"), .action = jstr(o, "Action")};
    json_t *actor = json_object_get(o, "Actor");
    ev.id = json_is_object(actor) ? jstr(actor, "ID") : NULL;
    if (!ev.id)
        ev.id = jstr(o, "id");
    if (!ev.action)
        ev.action = jstr(o, "status");
    json_t *tn = json_object_get(o, "timeNano"), *t = json_object_get(o, "time");
    if (json_is_integer(tn))
        ev.time_ns = (int64_t)json_integer_value(tn);
    else if (json_is_integer(t))
        ev.time_ns = (int64_t)json_integer_value(t) * BT_NS_PER_SEC;
    ev.type = ev.type ? ev.type : "";
    ev.action = ev.action ? ev.action : "";
    ev.id = ev.id ? ev.id : "";
    fn(ctx, &ev);
    json_decref(o);
    return 0;
}

int bt_docker_events_feed(struct bt_buf *acc, const char *p, size_t n, bt_docker_event_fn fn,
                          void *ctx)
{
    int bad = 0;
    while (n) {
        const char *nl = memchr(p, '\n', n);
        if (!nl) {
            int rc = bt_buf_add(acc, p, n);
            return rc < 0 ? rc : bad;
        }
        size_t take = (size_t)(nl - p);
        const char *line = p;
        size_t len = take;
        if (acc->len) {
            int rc = bt_buf_add(acc, p, take);
            if (rc < 0)
                return rc;
            line = acc->ptr;
            len = acc->len;
        }
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
            len--;
        if (len && parse_event(line, len, fn, ctx) < 0)
            bad++;
        bt_buf_reset(acc);
        p += take + 1;
        n -= take + 1;
    }
    return bad;
}

/* Looks one container up with the configured filters, so it gets a listing's labels. */
static void lookup(struct bt_docker_sd *sd, const char *id)
{
    json_t *f = sd->filt ? json_deep_copy(sd->filt) : json_object();
    if (f && !json_object_get(f, "id"))
        json_object_set_new(f, "id", json_pack("[s]", id));
    char *text = f ? json_dumps(f, JSON_COMPACT) : NULL;
    char *esc = text ? curl_easy_escape(NULL, text, 0) : NULL;
    struct req *r = NULL;
    if (esc) {
        struct bt_buf path;
        bt_buf_init(&path, 16384);
        if (bt_buf_addf(&path, "/containers/json?all=1&filters=%s", esc) == 0)
            r = req_new(sd, NULL, R_LOOKUP, path.ptr);
        bt_buf_free(&path);
    }
    curl_free(esc);
    free(text);
    json_decref(f);
    if (!r) {
        BT_WARN(COMP, "cannot look a started container up, the next listing will", "id=%.12s", id);
        return;
    }
    r->next = sd->lookups;
    sd->lookups = r;
}

static void on_event(void *ctx, const struct bt_docker_event *ev)
{
    struct bt_docker_sd *sd = ctx;
    if (ev->time_ns > 0)
        sd->ev_since_ns = ev->time_ns; /* Docker's clock, in order */
    if (sd->ev_warned) {
        BT_INFO(COMP, "event stream works again", "since=%" PRId64,
                sd->ev_since_ns / (int64_t)BT_NS_PER_SEC);
        sd->ev_warned = false;
    }
    sd->ev_backoff_ns = 0;
    size_t idlen = strlen(ev->id);
    bool start = strcmp(ev->action, "start") == 0, destroy = strcmp(ev->action, "destroy") == 0;
    if (strcmp(ev->type, "container") != 0 || !idlen || idlen > 64 || !(start || destroy))
        return;
    /* Acted on after libcurl returns: requests cannot be added from inside its callbacks. */
    if (sd->pev_len == sd->pev_cap) {
        size_t ncap = sd->pev_cap ? sd->pev_cap * 2 : 16;
        struct pev *n = realloc(sd->pev, ncap * sizeof(*n));
        if (!n)
            return; /* the next listing finds it */
        sd->pev = n;
        sd->pev_cap = ncap;
    }
    struct pev *pe = &sd->pev[sd->pev_len++];
    snprintf(pe->id, sizeof(pe->id), "%s", ev->id);
    pe->start = start;
}

static void apply_event(struct bt_docker_sd *sd, const char *id, bool start)
{
    struct ctr *c = bt_hmap_get(&sd->ctrs, id, strlen(id));
    if (start) {
        if (!c) {
            lookup(sd, id);
            return;
        }
        c->gone = false;
        if (c->logs && c->draining)
            c->want_follow = true; /* after the last run's drain */
        else if (follow(sd, c, false) < 0)
            BT_WARN(COMP, "cannot follow container", "id=%.12s", c->id);
    } else if (c) { /* destroy */
        c->want_follow = false;
        if (c->logs)
            c->gone = true; /* its log stream ends by itself: read it to the end first */
        else
            forget(sd, c);
    }
    /* die: the container's log stream ends by itself, and is then drained (logs_done) */
}

static void apply_events(struct bt_docker_sd *sd)
{
    for (size_t i = 0; i < sd->pev_len; i++)
        apply_event(sd, sd->pev[i].id, sd->pev[i].start);
    sd->pev_len = 0;
}

static void events_open(struct bt_docker_sd *sd)
{
    if (sd->events || sd->closing)
        return;
    char path[512];
    /* A reopen replays what was missed, from the last event seen (Docker's clock) or, if none
     * came, from when the first stream was opened (ours). The first open takes live events. */
    int64_t since = sd->ev_since_ns > 0 ? sd->ev_since_ns : sd->ev_first_open;
    int n = snprintf(path, sizeof(path), "/events?filters=%s", EV_FILTERS);
    if (since > 0)
        snprintf(path + n, sizeof(path) - (size_t)n, "&since=%" PRId64 ".%09" PRId64,
                 since / (int64_t)BT_NS_PER_SEC, since % (int64_t)BT_NS_PER_SEC);
    if (!sd->ev_first_open)
        sd->ev_first_open = bt_now_ns();
    sd->ev_opened = bt_mono_ns();
    sd->events = req_new(sd, NULL, R_EVENTS, path);
    if (!sd->events)
        events_broken(sd, NULL, CURLE_OUT_OF_MEMORY);
}

/* ---- libcurl on the event loop ---- */

static void on_io(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct bt_docker_sd *sd = arg;
    int flags = (events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                (events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                (events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
    int running;
    curl_multi_socket_action(sd->multi, fd, flags, &running);
    check_done(sd);
    apply_events(sd);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct bt_docker_sd *sd = userp;
    if (what == CURL_POLL_REMOVE) {
        if (socketp) {
            bt_loop_del_fd(sd->env.loop, s);
            curl_multi_assign(sd->multi, s, NULL);
        }
        return 0;
    }
    uint32_t ev = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    if (!socketp) {
        if (bt_loop_add_fd(sd->env.loop, s, ev, on_io, sd) < 0)
            return -1;
        curl_multi_assign(sd->multi, s, sd);
    } else {
        bt_loop_mod_fd(sd->env.loop, s, ev);
    }
    return 0;
}

static void on_curl_timer_fire(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_docker_sd *sd = arg;
    sd->curl_timer = 0;
    int running;
    curl_multi_socket_action(sd->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(sd);
    apply_events(sd);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
    struct bt_docker_sd *sd = userp;
    if (sd->closing)
        return 0;
    if (timeout_ms < 0) {
        if (sd->curl_timer)
            bt_loop_del_timer(sd->env.loop, sd->curl_timer);
        sd->curl_timer = 0;
        return 0;
    }
    int64_t d = (int64_t)timeout_ms * BT_NS_PER_MS;
    if (sd->curl_timer && bt_loop_reset_timer(sd->env.loop, sd->curl_timer, d) == 0)
        return 0;
    sd->curl_timer = bt_loop_add_timer(sd->env.loop, d, 0, on_curl_timer_fire, sd);
    return sd->curl_timer ? 0 : -1;
}

static void on_refresh(struct bt_loop *l, uint64_t id, void *arg)
{
    bt_docker_sd_refresh(arg);
}

/* ---- config ---- */

static int cfg_fail(char *err, size_t errlen, const struct bt_node *n, const char *msg,
                    const char *arg)
{
    char where[256];
    snprintf(err, errlen, "%s: docker_sd_configs: %s%s", bt_node_where(n, where, sizeof(where)),
             msg, arg ? arg : "");
    return -EINVAL;
}

static int parse_host(struct bt_docker_sd *sd, const struct bt_node *v, char *err, size_t errlen)
{
    if (!v || v->type != BT_NODE_SCALAR || !v->len)
        return cfg_fail(err, errlen, v, "host must be a URL such as unix:///var/run/docker.sock",
                        NULL);
    const char *h = v->str;
    struct bt_buf b;
    bt_buf_init(&b, 4096);
    int rc = 0;
    if (strncmp(h, "unix://", 7) == 0) {
        sd->unix_path = strdup(h + 7);
        rc = bt_buf_adds(&b, "http://localhost");
    } else {
        const char *rest = strncmp(h, "tcp://", 6) == 0    ? h + 6
                           : strncmp(h, "http://", 7) == 0 ? h + 7
                                                           : NULL;
        if (!rest || !*rest)
            return cfg_fail(err, errlen, v, "unsupported host (unix://, tcp:// or http://): ", h);
        size_t n = strcspn(rest, "/");
        bool has_port = memchr(rest, ':', n) && rest[0] != '[' ? true : strstr(rest, "]:") != NULL;
        rc = bt_buf_addf(&b, "http://%.*s", (int)n, rest);
        if (rc == 0 && !has_port)
            rc = bt_buf_addf(&b, ":%ld", sd->port);
    }
    if (rc < 0)
        return rc;
    sd->base = bt_buf_take(&b, NULL);
    return sd->base ? 0 : -ENOMEM;
}

/* filters: [{name: status, values: [running]}] -> {"status":["running"]}, URL-escaped. */
static int parse_filters(struct bt_docker_sd *sd, const struct bt_node *v, char *err, size_t errlen)
{
    if (bt_node_is_null(v))
        return 0;
    if (v->type != BT_NODE_SEQ)
        return cfg_fail(err, errlen, v, "filters must be a list of {name, values}", NULL);
    json_t *o = json_object();
    int rc = o ? 0 : -ENOMEM;
    for (size_t i = 0; i < v->n && rc == 0; i++) {
        const struct bt_node *f = v->items[i];
        const struct bt_node *name = bt_node_get(f, "name"), *vals = bt_node_get(f, "values");
        if (f->type != BT_NODE_MAP || !name || name->type != BT_NODE_SCALAR || !vals ||
            vals->type != BT_NODE_SEQ) {
            rc = cfg_fail(err, errlen, f, "each filter needs a name and a list of values", NULL);
            break;
        }
        json_t *arr = json_array();
        for (size_t k = 0; arr && k < vals->n; k++)
            if (vals->items[k]->type == BT_NODE_SCALAR)
                json_array_append_new(arr, json_string(vals->items[k]->str));
        if (!arr || json_object_set_new(o, name->str, arr) < 0)
            rc = -ENOMEM;
    }
    char *text = rc == 0 ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(sd->filt);
    sd->filt = rc == 0 ? o : NULL; /* the lookups add the container id to these */
    if (!sd->filt)
        json_decref(o);
    if (rc == 0 && !text)
        rc = -ENOMEM;
    if (rc == 0) {
        char *esc = curl_easy_escape(NULL, text, 0);
        sd->filters = esc ? strdup(esc) : NULL;
        curl_free(esc);
        rc = sd->filters ? 0 : -ENOMEM;
    }
    free(text);
    return rc;
}

static int parse_cfg(struct bt_docker_sd *sd, const struct bt_node *cfg, char *err, size_t errlen)
{
    if (!cfg || cfg->type != BT_NODE_MAP)
        return cfg_fail(err, errlen, cfg, "each item must be a map with at least host", NULL);
    sd->port = 80;
    sd->refresh_ns = 60 * BT_NS_PER_SEC;
    const struct bt_node *hostn = NULL;
    for (size_t i = 0; i < cfg->n; i++) {
        const struct bt_node *k = bt_node_key(cfg, i), *v = bt_node_val(cfg, i);
        const char *key = k->str ? k->str : "";
        int rc = 0;
        if (strcmp(key, "host") == 0) {
            hostn = v;
        } else if (strcmp(key, "port") == 0) {
            long long p;
            if (bt_node_int(v, &p) || p < 1 || p > 65535)
                rc = cfg_fail(err, errlen, v, "port must be 1-65535", NULL);
            sd->port = (long)p;
        } else if (strcmp(key, "host_networking_host") == 0 && v->type == BT_NODE_SCALAR) {
            free(sd->host_net_host);
            sd->host_net_host = strdup(v->str);
        } else if (strcmp(key, "refresh_interval") == 0) {
            long long ns;
            if (bt_node_duration(v, &ns) || ns <= 0)
                rc = cfg_fail(err, errlen, v, "refresh_interval must be a positive duration", NULL);
            sd->refresh_ns = ns;
        } else if (strcmp(key, "filters") == 0) {
            rc = parse_filters(sd, v, err, errlen);
        } else {
            rc = cfg_fail(err, errlen, k, "unsupported key ", key);
        }
        if (rc)
            return rc;
    }
    if (!sd->host_net_host && !(sd->host_net_host = strdup("localhost")))
        return -ENOMEM;
    if (!hostn)
        return cfg_fail(err, errlen, cfg, "host is required", NULL);
    return parse_host(sd, hostn, err, errlen);
}

/* ---- public ---- */

struct bt_docker_sd *bt_docker_sd_new(const struct bt_node *cfg, const struct bt_docker_sd_env *env,
                                      char *err, size_t errlen)
{
    struct bt_docker_sd *sd = calloc(1, sizeof(*sd));
    if (!sd) {
        snprintf(err, errlen, "docker_sd_configs: out of memory");
        return NULL;
    }
    sd->env = *env;
    bt_hmap_init(&sd->ctrs);
    bt_labels_init(&sd->scratch);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = parse_cfg(sd, cfg, err, errlen);
    if (rc == 0 && !(sd->job = strdup(env->job ? env->job : "")))
        rc = -ENOMEM;
    if (rc == 0 && !(sd->multi = curl_multi_init()))
        rc = -ENOMEM;
    if (rc == -ENOMEM)
        snprintf(err, errlen, "docker_sd_configs: out of memory");
    if (rc)
        goto fail;
    if (env->metrics) {
        char esc[256], lbl[300];
        bt_metrics_escape(esc, sizeof(esc), sd->job);
        snprintf(lbl, sizeof(lbl), "job=\"%s\"", esc);
        sd->m_entries = bt_metrics_counter(env->metrics, "bpftail_docker_target_entries_total",
                                           "Entries read through the Docker API.", lbl);
        sd->m_errors =
            bt_metrics_counter(env->metrics, "bpftail_docker_target_parsing_errors_total",
                               "Docker API answers or log frames that could not be parsed.", lbl);
        sd->m_ev_breaks = bt_metrics_counter(
            env->metrics, "bpftail_docker_sd_event_stream_breaks_total",
            "Times Docker's event stream ended or failed and was reopened.", lbl);
    }
    curl_multi_setopt(sd->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(sd->multi, CURLMOPT_SOCKETDATA, sd);
    curl_multi_setopt(sd->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(sd->multi, CURLMOPT_TIMERDATA, sd);
    sd->refresh_timer =
        bt_loop_add_timer(env->loop, sd->refresh_ns, sd->refresh_ns, on_refresh, sd);
    /* Live events from now on; the listing after it finds the ones already running. */
    events_open(sd);
    if (!sd->refresh_timer || bt_docker_sd_refresh(sd) < 0) {
        snprintf(err, errlen, "docker_sd_configs: cannot start the container listing");
        goto fail;
    }
    return sd;
fail:
    bt_docker_sd_free(sd);
    errno = EINVAL;
    return NULL;
}

void bt_docker_sd_free(struct bt_docker_sd *sd)
{
    if (!sd)
        return;
    sd->closing = true;
    size_t pos = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&sd->ctrs, &pos)))
        ctr_free(s->val);
    bt_hmap_free(&sd->ctrs);
    req_free(sd->list);
    req_free(sd->events);
    while (sd->lookups) {
        struct req *r = sd->lookups;
        sd->lookups = r->next;
        req_free(r);
    }
    if (sd->ev_timer)
        bt_loop_del_timer(sd->env.loop, sd->ev_timer);
    json_decref(sd->filt);
    free(sd->pev);
    if (sd->multi)
        curl_multi_cleanup(sd->multi);
    if (sd->curl_timer)
        bt_loop_del_timer(sd->env.loop, sd->curl_timer);
    if (sd->refresh_timer)
        bt_loop_del_timer(sd->env.loop, sd->refresh_timer);
    bt_labels_free(&sd->scratch);
    free(sd->job);
    free(sd->unix_path);
    free(sd->base);
    free(sd->filters);
    free(sd->host_net_host);
    free(sd);
    curl_global_cleanup();
}

int bt_docker_sd_refresh(struct bt_docker_sd *sd)
{
    if (sd->list)
        return 0;
    char path[8192];
    snprintf(path, sizeof(path), "/containers/json%s%s", sd->filters ? "?filters=" : "",
             sd->filters ? sd->filters : "");
    sd->list = req_new(sd, NULL, R_LIST, path);
    return sd->list ? 0 : -ENOMEM;
}

size_t bt_docker_sd_containers(const struct bt_docker_sd *sd)
{
    return sd->ctrs.n;
}

size_t bt_docker_sd_following(const struct bt_docker_sd *sd)
{
    return sd->following;
}

const char *bt_docker_sd_cursor_key(char *out, size_t outlen, const char *container_id)
{
    snprintf(out, outlen, "cursor-%s", container_id);
    return out;
}

int64_t bt_docker_sd_cursor_decode(uint64_t stored)
{
    if (stored > (uint64_t)INT64_MAX)
        return 0;
    if (stored < 1000000000000ULL)
        return (int64_t)stored * BT_NS_PER_SEC;
    return (int64_t)stored;
}

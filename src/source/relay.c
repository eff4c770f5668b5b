#include "source/relay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ack.h"
#include "core/labels.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/spool.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timeutil.h"

#define COMP "relay"
#define DEFAULT_MAX (256ull << 20)
#define ROUND_MAX 2048
#define REC_VERSION 1
#define REC_MAX (64u << 20) /* one entry: line, labels and metadata */
#define SPOOL_OVERHEAD 8u   /* a record's header in the spool */

struct bt_relay {
    struct bt_relay_config cfg;
    char *job, *dir;
    struct bt_spool *spool;
    struct bt_ack_owner *owner;
    struct bt_buf rec;       /* encoding scratch */
    struct bt_labels labels; /* decoding scratch */
    struct bt_kv *meta;      /* decoding scratch */
    size_t meta_cap;
    uint64_t timer, space_timer, sync_timer;
    bool paused, refused;
    struct bt_series *m_put, *m_full, *m_corrupt, *m_bytes;
};

/* ---- record encoding: [u8 version][i64 ts][u16 nlabels]{[u16 n][name][u32 n][value]}
 * [u16 nmeta]{same}[u32 n][line], little-endian ---- */

static int put_u(struct bt_buf *b, uint64_t v, int bytes)
{
    unsigned char t[8];
    for (int i = 0; i < bytes; i++)
        t[i] = (unsigned char)(v >> (8 * i));
    return bt_buf_add(b, t, (size_t)bytes);
}

static int put_pair(struct bt_buf *b, const char *n, size_t nl, const char *v, size_t vl)
{
    if (nl > UINT16_MAX || vl > UINT32_MAX)
        return -EFBIG;
    int rc = put_u(b, nl, 2);
    rc = rc ? rc : bt_buf_add(b, n, nl);
    rc = rc ? rc : put_u(b, vl, 4);
    return rc ? rc : bt_buf_add(b, v, vl);
}

int bt_relay_encode(struct bt_buf *b, const struct bt_entry *e)
{
    const struct bt_labels *l = e->labels;
    size_t nl = l ? l->n : 0;
    if (nl > UINT16_MAX || e->n_meta > UINT16_MAX || e->line_len > UINT32_MAX)
        return -EFBIG;
    int rc = put_u(b, REC_VERSION, 1);
    rc = rc ? rc : put_u(b, (uint64_t)e->ts_ns, 8);
    rc = rc ? rc : put_u(b, nl, 2);
    for (size_t i = 0; rc == 0 && i < nl; i++)
        rc = put_pair(b, l->v[i].name, l->v[i].name_len, l->v[i].value, l->v[i].value_len);
    rc = rc ? rc : put_u(b, e->n_meta, 2);
    for (size_t i = 0; rc == 0 && i < e->n_meta; i++)
        rc = put_pair(b, e->meta[i].name, e->meta[i].name_len, e->meta[i].value,
                      e->meta[i].value_len);
    rc = rc ? rc : put_u(b, e->line_len, 4);
    return rc ? rc : bt_buf_add(b, e->line ? e->line : "", e->line_len);
}

struct rd {
    const unsigned char *p;
    size_t n, i;
    bool bad;
};

static uint64_t get_u(struct rd *r, int bytes)
{
    uint64_t v = 0;
    if (r->bad || r->n - r->i < (size_t)bytes) {
        r->bad = true;
        return 0;
    }
    for (int k = 0; k < bytes; k++)
        v |= (uint64_t)r->p[r->i + (size_t)k] << (8 * k);
    r->i += (size_t)bytes;
    return v;
}

static const char *get_bytes(struct rd *r, size_t len)
{
    if (r->bad || r->n - r->i < len) {
        r->bad = true;
        return NULL;
    }
    const char *s = (const char *)r->p + r->i;
    r->i += len;
    return s;
}

/* Decodes one record into e (pointing into rec and the relay's scratch). 0 or -EINVAL. */
static int decode(struct bt_relay *rl, const void *rec, size_t len, struct bt_entry *e)
{
    struct rd r = {.p = rec, .n = len};
    if (get_u(&r, 1) != REC_VERSION)
        return -EINVAL;
    e->ts_ns = (int64_t)get_u(&r, 8);
    size_t n = (size_t)get_u(&r, 2);
    bt_labels_clear(&rl->labels);
    for (size_t i = 0; i < n && !r.bad; i++) {
        size_t a = (size_t)get_u(&r, 2);
        const char *name = get_bytes(&r, a);
        size_t b = (size_t)get_u(&r, 4);
        const char *val = get_bytes(&r, b);
        if (!r.bad &&
            (!bt_label_name_valid(name, a) || bt_labels_setn(&rl->labels, name, a, val, b) < 0))
            return -EINVAL;
    }
    size_t nm = (size_t)get_u(&r, 2);
    if (nm > rl->meta_cap) {
        struct bt_kv *m = realloc(rl->meta, nm * sizeof(*m));
        if (!m)
            return -ENOMEM;
        rl->meta = m;
        rl->meta_cap = nm;
    }
    for (size_t i = 0; i < nm && !r.bad; i++) {
        struct bt_kv *kv = &rl->meta[i];
        kv->name_len = (size_t)get_u(&r, 2);
        kv->name = get_bytes(&r, kv->name_len);
        kv->value_len = (size_t)get_u(&r, 4);
        kv->value = get_bytes(&r, kv->value_len);
    }
    e->line_len = (size_t)get_u(&r, 4);
    e->line = get_bytes(&r, e->line_len);
    if (r.bad || r.i != r.n)
        return -EINVAL;
    e->labels = &rl->labels;
    e->meta = rl->meta;
    e->n_meta = nm;
    return 0;
}

/* ---- reading back ---- */

/* Tells the receiver on its own loop round, never from inside a commit (which may run while
 * the spool is being read back). */
static void space_fire(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_relay *r = arg;
    (void)l;
    (void)id;
    r->space_timer = 0;
    r->refused = false;
    if (r->cfg.on_space)
        r->cfg.on_space(r->cfg.space_ctx);
}

/* The spool saves its commit file at most once a second, on a commit: the last commit of a
 * burst is saved by this one-shot timer, so a crash after a quiet second re-sends nothing. */
static void sync_fire(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_relay *r = arg;
    (void)l;
    (void)id;
    r->sync_timer = 0;
    bt_spool_sync(r->spool);
}

static void on_commit(void *ctx, uint64_t committed)
{
    struct bt_relay *r = ctx;
    bt_spool_commit(r->spool, committed);
    if (!r->sync_timer && r->cfg.loop)
        r->sync_timer =
            bt_loop_add_timer(r->cfg.loop, BT_NS_PER_SEC + BT_NS_PER_SEC / 10, 0, sync_fire, r);
    bt_gauge_set(r->m_bytes, (double)bt_spool_bytes(r->spool));
    if (r->refused && !r->space_timer && r->cfg.loop &&
        bt_spool_bytes(r->spool) <= r->cfg.max_bytes / 4 * 3)
        r->space_timer = bt_loop_add_timer(r->cfg.loop, 0, 0, space_fire, r);
}

static void schedule(struct bt_relay *r);

static void round_fire(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_relay *r = arg;
    (void)l;
    (void)id;
    r->timer = 0;
    bt_relay_drain(r, ROUND_MAX);
}

static void schedule(struct bt_relay *r)
{
    if (!r->paused && !r->timer && r->cfg.loop &&
        bt_spool_read_offset(r->spool) < bt_spool_end(r->spool))
        r->timer = bt_loop_add_timer(r->cfg.loop, 0, 0, round_fire, r);
}

int bt_relay_drain(struct bt_relay *r, size_t max)
{
    int n = 0, rc = 0;
    while (!r->paused && (size_t)n < max) {
        const void *rec;
        size_t len;
        uint64_t start, end;
        if ((rc = bt_spool_read(r->spool, &rec, &len, &start, &end)) <= 0)
            break;
        struct bt_segment *seg = bt_segment_new(r->owner, start, end);
        if (!seg) {
            rc = -ENOMEM;
            bt_spool_rewind(r->spool);
            break;
        }
        struct bt_entry e = {.seg = seg};
        if (decode(r, rec, len, &e) < 0) {
            bt_counter_inc(r->m_corrupt);
            BT_WARN(COMP, "undecodable record skipped", "job=%s offset=%llu", r->job,
                    (unsigned long long)start);
        } else {
            r->cfg.sink(r->cfg.ctx, &e);
            n++;
        }
        bt_segment_unref(seg, 1);
    }
    if (rc < 0)
        BT_WARN(COMP, "reading the spool failed", "job=%s err=\"%s\"", r->job, strerror(-rc));
    else
        schedule(r);
    return rc < 0 ? rc : n;
}

void bt_relay_pause(struct bt_relay *r)
{
    r->paused = true;
}

void bt_relay_resume(struct bt_relay *r)
{
    if (!r->paused)
        return;
    r->paused = false;
    schedule(r);
}

/* ---- writing ---- */

bool bt_relay_full(const struct bt_relay *r, size_t len)
{
    return bt_spool_bytes(r->spool) + len + SPOOL_OVERHEAD > r->cfg.max_bytes;
}

int bt_relay_put(struct bt_relay *r, const struct bt_entry *e)
{
    bt_buf_reset(&r->rec);
    int rc = bt_relay_encode(&r->rec, e);
    if (rc < 0)
        return rc == -E2BIG ? -EFBIG : rc;
    if (r->rec.len + SPOOL_OVERHEAD > r->cfg.max_bytes / 4)
        return -EFBIG;
    if (bt_relay_full(r, r->rec.len)) {
        if (!r->refused)
            bt_counter_inc(r->m_full);
        r->refused = true;
        return -ENOSPC;
    }
    if ((rc = bt_spool_append(r->spool, r->rec.ptr, r->rec.len)) < 0)
        return rc;
    bt_counter_inc(r->m_put);
    schedule(r);
    return 0;
}

int bt_relay_flush(struct bt_relay *r)
{
    int rc = bt_spool_flush(r->spool);
    bt_gauge_set(r->m_bytes, (double)bt_spool_bytes(r->spool));
    return rc;
}

uint64_t bt_relay_bytes(const struct bt_relay *r)
{
    return bt_spool_bytes(r->spool);
}

uint64_t bt_relay_committed(const struct bt_relay *r)
{
    return bt_spool_committed(r->spool);
}

int bt_relay_render(const struct bt_relay *r, const char *type, int port, long connections,
                    struct bt_buf *out)
{
    int rc = bt_buf_adds(out, "{\"job\":\"");
    for (const unsigned char *c = (const unsigned char *)r->job; rc == 0 && *c; c++)
        rc = (*c == '"' || *c == '\\') ? bt_buf_addf(out, "\\%c", *c)
             : *c < 0x20               ? bt_buf_addf(out, "\\u%04x", *c)
                                       : bt_buf_add(out, c, 1);
    return rc ? rc
              : bt_buf_addf(
                    out,
                    "\",\"type\":\"%s\",\"port\":%d,\"connections\":%ld,\"queue_bytes\":%llu,"
                    "\"queue_committed\":%llu,\"queue_end\":%llu}",
                    type, port, connections, (unsigned long long)bt_spool_bytes(r->spool),
                    (unsigned long long)bt_spool_committed(r->spool),
                    (unsigned long long)bt_spool_end(r->spool));
}

/* ---- what every receiver shares ---- */

struct bt_relay *bt_receiver_relay_new(const struct bt_receiver_env *env,
                                       void (*on_space)(void *space_ctx), void *space_ctx,
                                       char *err, size_t errlen)
{
    struct bt_relay_config cfg = {.loop = env->loop,
                                  .metrics = env->metrics,
                                  .job = env->job,
                                  .dir = env->queue_dir,
                                  .max_bytes = env->queue_bytes,
                                  .sink = env->sink,
                                  .ctx = env->ctx,
                                  .on_space = on_space,
                                  .space_ctx = space_ctx};
    return bt_relay_new(&cfg, err, errlen);
}

void bt_receiver_free(struct bt_receiver *r)
{
    if (r)
        r->ops->free(r);
}

void bt_receiver_pause(struct bt_receiver *r)
{
    if (r && r->relay)
        bt_relay_pause(r->relay);
}

void bt_receiver_resume(struct bt_receiver *r)
{
    if (r && r->relay)
        bt_relay_resume(r->relay);
}

int bt_receiver_render(const struct bt_receiver *r, struct bt_buf *out)
{
    if (!r->relay)
        return 0;
    return bt_relay_render(r->relay, r->ops->type, r->ops->port(r),
                           r->ops->connections ? r->ops->connections(r) : -1, out);
}

struct bt_series *bt_receiver_limit_counter(struct bt_metrics *m, const char *kind, const char *job,
                                            const char *limit)
{
    char esc[256], name[96], help[128], lbl[400];
    if (!m)
        return NULL;
    bt_metrics_escape(esc, sizeof(esc), job ? job : "");
    snprintf(name, sizeof(name), "bpftail_%s_limit_hits_total", kind);
    snprintf(help, sizeof(help), "Times a %s receiver limit was hit, by limit.", kind);
    snprintf(lbl, sizeof(lbl), "job=\"%s\",limit=\"%s\"", esc, limit);
    return bt_metrics_counter(m, name, help, lbl);
}

struct bt_series *bt_receiver_drop_counter(struct bt_metrics *m, const char *reason)
{
    char lbl[200];
    if (!m)
        return NULL;
    snprintf(lbl, sizeof(lbl), "host=\"\",reason=\"%s\",tenant=\"\"", reason);
    return bt_metrics_counter(m, "bpftail_dropped_entries_total", "Entries dropped, by reason.",
                              lbl);
}

/* ---- lifetime ---- */

static void init_metrics(struct bt_relay *r)
{
    struct bt_metrics *m = r->cfg.metrics;
    char esc[256], lbl[300];
    if (!m)
        return;
    bt_metrics_escape(esc, sizeof(esc), r->job);
    snprintf(lbl, sizeof(lbl), "job=\"%s\"", esc);
    r->m_put = bt_metrics_counter(m, "bpftail_relay_entries_total",
                                  "Entries a receiver put into its durable queue.", lbl);
    r->m_full = bt_metrics_counter(m, "bpftail_relay_full_total",
                                   "Times a receiver's durable queue refused entries: full.", lbl);
    r->m_corrupt = bt_metrics_counter(m, "bpftail_relay_corrupt_records_total",
                                      "Queue records that could not be decoded (skipped).", lbl);
    r->m_bytes = bt_metrics_gauge(m, "bpftail_relay_queue_bytes",
                                  "Bytes in a receiver's durable queue.", lbl);
}

struct bt_relay *bt_relay_new(const struct bt_relay_config *cfg, char *err, size_t errlen)
{
    struct bt_relay *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "relay: out of memory");
        return NULL;
    }
    r->cfg = *cfg;
    if (!r->cfg.max_bytes)
        r->cfg.max_bytes = DEFAULT_MAX;
    r->job = strdup(cfg->job ? cfg->job : "");
    r->dir = strdup(cfg->dir ? cfg->dir : "");
    bt_labels_init(&r->labels);
    bt_buf_init(&r->rec, REC_MAX);
    if (!r->job || !r->dir) {
        snprintf(err, errlen, "relay: out of memory");
        goto fail;
    }
    r->cfg.job = r->job;
    r->cfg.dir = r->dir;
    /* Segments of an eighth of the bound: commits free space in steps smaller than the gap
     * between the bound and the resume mark. */
    struct bt_spool_config sc = {.dir = r->dir, .segment_bytes = r->cfg.max_bytes / 8};
    char serr[256] = "";
    r->spool = bt_spool_open(NULL, &sc, serr, sizeof(serr));
    if (!r->spool) {
        snprintf(err, errlen, "job %s: queue %s: %s", r->job, r->dir, serr);
        goto fail;
    }
    r->owner = bt_ack_owner_new(bt_spool_committed(r->spool), on_commit, r);
    if (!r->owner) {
        snprintf(err, errlen, "relay: out of memory");
        goto fail;
    }
    init_metrics(r);
    bt_gauge_set(r->m_bytes, (double)bt_spool_bytes(r->spool));
    if (!bt_spool_empty(r->spool))
        BT_INFO(COMP, "queue recovered", "job=%s dir=%s bytes=%llu", r->job, r->dir,
                (unsigned long long)bt_spool_bytes(r->spool));
    schedule(r);
    return r;
fail:
    bt_relay_free(r);
    return NULL;
}

void bt_relay_free(struct bt_relay *r)
{
    if (!r)
        return;
    if (r->timer)
        bt_loop_del_timer(r->cfg.loop, r->timer);
    if (r->space_timer)
        bt_loop_del_timer(r->cfg.loop, r->space_timer);
    if (r->sync_timer)
        bt_loop_del_timer(r->cfg.loop, r->sync_timer);
    if (r->owner)
        bt_ack_owner_close(r->owner);
    if (r->spool)
        bt_spool_close(r->spool);
    bt_labels_free(&r->labels);
    bt_buf_free(&r->rec);
    free(r->meta);
    free(r->job);
    free(r->dir);
    free(r);
}

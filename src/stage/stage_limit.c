/* limit: a token bucket (rate per second, burst) for the pipeline, or one per value of the
 * label by_label_name (entries without that label are not limited; at most
 * max_distinct_labels buckets, default 10000, the longest-unused idle one is recycled).
 * Buckets start full.
 *
 * drop: true drops entries over the limit (reason "ratelimit_drop_stage"). Otherwise entries
 * over the limit wait, as in promtail, but without stopping the loop thread: they are held in
 * order (per bucket) and released by bt_pipeline_tick as tokens come back. Holding is bounded
 * (HOLD_MAX entries, HOLD_BYTES line bytes per stage); past that the stage sleeps for the next
 * token, which stalls reading so the files act as the buffer. Held entries keep a reference
 * on their segment until released. */
#include "stage/stage.h"
#include "core/ack.h"
#include "config/node.h"
#include "util/hmap.h"
#include "util/timeutil.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HOLD_MAX 1024
#define HOLD_BYTES (8u << 20)

struct held {
    struct bt_pentry e;
    struct held *next;
};

struct bucket {
    double tokens;
    int64_t last;                /* monotonic ns of the last refill */
    struct held *head, *tail;    /* entries waiting for a token, oldest first */
    struct bucket *next_waiting; /* list of buckets with held entries */
    bool waiting;
};

struct st {
    double rate, burst;
    bool drop;
    char *by_label;
    size_t max_distinct;
    struct bucket global;
    struct bt_hmap per;     /* label value -> struct bucket * */
    struct bucket *waiting; /* buckets with held entries */
    struct held *pool;      /* free held slots (allocated once, reused) */
    size_t n_held, held_bytes;
};

static const char *const keys[] = {"rate", "burst", "drop", "by_label_name", "max_distinct_labels",
                                   NULL};

/* Frees a list of held slots; with unref, their entries were never delivered (no flush), so
 * their segment references go without acknowledging anything. */
static void free_held(struct held *h, bool unref)
{
    while (h) {
        struct held *next = h->next;
        if (unref)
            bt_segment_unref(h->e.seg, 1);
        bt_pentry_free(&h->e);
        free(h);
        h = next;
    }
}

static void limit_free(void *st)
{
    struct st *s = st;
    size_t pos = 0;
    struct bt_hmap_slot *sl;
    free_held(s->global.head, true);
    while ((sl = bt_hmap_next(&s->per, &pos))) {
        free_held(((struct bucket *)sl->val)->head, true);
        free(sl->val);
    }
    free_held(s->pool, false);
    bt_hmap_free(&s->per);
    free(s->by_label);
    free(s);
}

static void *limit_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                        size_t errlen)
{
    int bad;
    if (bt_stage_check_keys(cfg, env, keys, err, errlen) < 0)
        return NULL;
    struct st *s = calloc(1, sizeof(*s));
    if (!s)
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    bt_hmap_init(&s->per);
    s->max_distinct = 10000;
    const struct bt_node *r = bt_node_get(cfg, "rate"), *b = bt_node_get(cfg, "burst");
    const struct bt_node *d = bt_node_get(cfg, "drop"),
                         *m = bt_node_get(cfg, "max_distinct_labels");
    long long v;
    if (!r || bt_node_double(r, &s->rate) < 0 || !(s->rate > 0)) {
        bt_stage_err(err, errlen, env, r ? r : cfg, "rate must be a number above 0");
        goto fail;
    }
    if (!b || bt_node_int(b, &v) < 0 || v < 1) {
        bt_stage_err(err, errlen, env, b ? b : cfg, "burst must be an integer of at least 1");
        goto fail;
    }
    s->burst = (double)v;
    if (d && !bt_node_is_null(d) && bt_node_bool(d, &s->drop) < 0) {
        bt_stage_err(err, errlen, env, d, "drop must be true or false");
        goto fail;
    }
    if (m && !bt_node_is_null(m)) {
        if (bt_node_int(m, &v) < 0 || v < 1) {
            bt_stage_err(err, errlen, env, m, "max_distinct_labels must be at least 1");
            goto fail;
        }
        s->max_distinct = (size_t)v;
    }
    const char *bl = bt_stage_str(cfg, "by_label_name", env, &bad, err, errlen);
    if (bad)
        goto fail;
    if (bl && *bl && !(s->by_label = strdup(bl))) {
        bt_stage_err(err, errlen, env, NULL, "out of memory");
        goto fail;
    }
    s->global.tokens = s->burst;
    s->global.last = bt_mono_ns();
    return s;
fail:
    limit_free(s);
    return NULL;
}

static void refill(const struct st *s, struct bucket *b, int64_t now)
{
    if (now > b->last) {
        b->tokens += (double)(now - b->last) * s->rate / 1e9;
        if (b->tokens > s->burst)
            b->tokens = s->burst;
        b->last = now;
    }
}

static struct bucket *bucket_new(int64_t now, double burst)
{
    struct bucket *b = calloc(1, sizeof(*b));
    if (b) {
        b->tokens = burst;
        b->last = now;
    }
    return b;
}

static struct bucket *bucket_for(struct st *s, const char *v, int64_t now)
{
    size_t n = strlen(v);
    struct bucket *b = bt_hmap_get(&s->per, v, n);
    if (b)
        return b;
    if (s->per.n >= s->max_distinct) { /* recycle the longest-unused idle bucket */
        size_t pos = 0;
        struct bt_hmap_slot *sl, *old = NULL;
        while ((sl = bt_hmap_next(&s->per, &pos))) {
            struct bucket *c = sl->val;
            if (!c->waiting && (!old || c->last < ((struct bucket *)old->val)->last))
                old = sl;
        }
        if (!old)
            return NULL; /* every bucket holds entries: do not limit this one */
        free(bt_hmap_del(&s->per, old->key, old->klen));
    }
    if (!(b = bucket_new(now, s->burst)))
        return NULL;
    if (bt_hmap_put(&s->per, v, n, b, NULL) < 0) {
        free(b);
        return NULL;
    }
    return b;
}

/* Monotonic time at which b has a whole token. */
static int64_t token_time(const struct st *s, const struct bucket *b)
{
    if (b->tokens >= 1)
        return b->last;
    return b->last + (int64_t)((1 - b->tokens) * 1e9 / s->rate) + 1;
}

static void sleep_until(int64_t mono)
{
    int64_t d = mono - bt_mono_ns();
    if (d <= 0)
        return;
    struct timespec ts = {(time_t)(d / BT_NS_PER_SEC), (long)(d % BT_NS_PER_SEC)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Sends b's oldest held entry on and recycles its slot. */
static void release_head(struct st *s, struct bucket *b, struct bt_stage_out *o)
{
    struct held *h = b->head;
    b->head = h->next;
    if (!b->head)
        b->tail = NULL;
    s->n_held--;
    s->held_bytes -= h->e.line_len;
    bt_stage_emit(o, &h->e);
    bt_segment_unref(h->e.seg, 1);
    h->next = s->pool;
    s->pool = h;
}

/* Releases what b's tokens allow (all of it with force). */
static void drain(struct st *s, struct bucket *b, int64_t now, bool force, struct bt_stage_out *o)
{
    refill(s, b, now);
    while (b->head && (force || b->tokens >= 1)) {
        b->tokens = b->tokens >= 1 ? b->tokens - 1 : 0;
        release_head(s, b, o);
    }
}

static int hold(struct st *s, struct bucket *b, struct bt_pentry *e)
{
    struct held *h = s->pool;
    if (h) {
        s->pool = h->next;
    } else {
        if (!(h = calloc(1, sizeof(*h))))
            return -ENOMEM;
        bt_pentry_init(&h->e);
    }
    if (bt_pentry_copy(&h->e, e) < 0) {
        h->next = s->pool;
        s->pool = h;
        return -ENOMEM;
    }
    bt_segment_ref(h->e.seg, 1);
    h->next = NULL;
    if (b->tail)
        b->tail->next = h;
    else
        b->head = h;
    b->tail = h;
    s->n_held++;
    s->held_bytes += e->line_len;
    if (!b->waiting) {
        b->waiting = true;
        b->next_waiting = s->waiting;
        s->waiting = b;
    }
    return 0;
}

static enum bt_stage_result limit_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    int64_t now = bt_mono_ns();
    struct bucket *b = &s->global;
    if (s->by_label) {
        const char *v = e->labels ? bt_labels_get(e->labels, s->by_label) : NULL;
        if (!v || !(b = bucket_for(s, v, now)))
            return BT_STAGE_KEEP;
    }
    if (b->head) /* keep the order: release what is due first */
        drain(s, b, now, false, o);
    else
        refill(s, b, now);
    if (!b->head && b->tokens >= 1) {
        b->tokens -= 1;
        return BT_STAGE_KEEP;
    }
    if (s->drop) {
        e->drop_reason = "ratelimit_drop_stage";
        return BT_STAGE_DROP;
    }
    while (s->n_held >= HOLD_MAX || s->held_bytes + e->line_len > HOLD_BYTES) {
        /* Holding is full: wait (the loop thread stops, reading stops) for this bucket. */
        if (!b->head) {
            sleep_until(token_time(s, b));
            refill(s, b, bt_mono_ns());
            b->tokens = b->tokens >= 1 ? b->tokens - 1 : 0;
            return BT_STAGE_KEEP;
        }
        sleep_until(token_time(s, b));
        drain(s, b, bt_mono_ns(), false, o);
        if (!b->head && b->tokens >= 1) {
            b->tokens -= 1;
            return BT_STAGE_KEEP;
        }
    }
    if (hold(s, b, e) < 0) {
        sleep_until(token_time(s, b)); /* out of memory: fall back to waiting */
        return BT_STAGE_KEEP;
    }
    return BT_STAGE_HELD;
}

static int64_t limit_deadline(const void *st)
{
    const struct st *s = st;
    int64_t d = INT64_MAX;
    for (const struct bucket *b = s->waiting; b; b = b->next_waiting) {
        int64_t t = token_time(s, b);
        if (b->head && t < d)
            d = t;
    }
    return d;
}

static void release(struct st *s, int64_t now, bool force, struct bt_stage_out *o)
{
    struct bucket **pp = &s->waiting;
    while (*pp) {
        struct bucket *b = *pp;
        drain(s, b, now, force, o);
        if (!b->head) {
            b->waiting = false;
            *pp = b->next_waiting;
        } else {
            pp = &b->next_waiting;
        }
    }
}

static void limit_tick(void *st, int64_t now, struct bt_stage_out *o)
{
    release(st, now, false, o);
}

static void limit_flush(void *st, struct bt_stage_out *o)
{
    release(st, bt_mono_ns(), true, o);
}

const struct bt_stage_ops bt_stage_limit_ops = {
    .name = "limit",
    .init = limit_init,
    .process = limit_process,
    .deadline = limit_deadline,
    .tick = limit_tick,
    .flush = limit_flush,
    .free = limit_free,
};

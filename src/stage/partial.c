#include "stage/partial.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ack.h"
#include "core/metrics.h"
#include "config/node.h"
#include "util/timeutil.h"

struct pending {
    uint64_t hash;
    int64_t deadline;
    struct bt_pentry pe;    /* first chunk's entry: labels, metadata, extracted, ts */
    struct bt_buf acc;      /* the line so far */
    struct bt_segment *seg; /* our reference on the earliest chunk's segment */
    bool truncated;
};

struct bt_partial {
    struct bt_partial_cfg cfg;
    struct pending **v; /* oldest first */
    size_t n;
};

struct bt_partial *bt_partial_new(const struct bt_partial_cfg *cfg)
{
    struct bt_partial *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->cfg = *cfg;
    if (!p->cfg.max_size)
        p->cfg.max_size = 256 * 1024;
    if (!p->cfg.max_keys)
        p->cfg.max_keys = 100;
    p->v = calloc(p->cfg.max_keys, sizeof(*p->v));
    if (!p->v) {
        free(p);
        return NULL;
    }
    return p;
}

static void pending_free(struct pending *pd)
{
    bt_segment_unref(pd->seg, 1);
    bt_pentry_free(&pd->pe);
    bt_buf_free(&pd->acc);
    free(pd);
}

void bt_partial_free(struct bt_partial *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        pending_free(p->v[i]);
    free(p->v);
    free(p);
}

size_t bt_partial_pending(const struct bt_partial *p)
{
    return p->n;
}

/* Sends what pd holds on (if anything); pd stays pending with an empty line. */
static void emit_acc(struct pending *pd, struct bt_stage_out *out)
{
    if (pd->acc.len == 0)
        return;
    if (bt_pentry_set_line(&pd->pe, pd->acc.ptr, pd->acc.len) == 0)
        bt_stage_emit(out, &pd->pe);
    bt_buf_reset(&pd->acc);
}

/* Emits and forgets the i-th pending line. */
static void finish(struct bt_partial *p, size_t i, struct bt_stage_out *out)
{
    struct pending *pd = p->v[i];
    memmove(p->v + i, p->v + i + 1, (p->n - i - 1) * sizeof(*p->v));
    p->n--;
    emit_acc(pd, out);
    pending_free(pd); /* our segment reference goes only after the emit */
}

static struct pending *find(struct bt_partial *p, struct bt_labels *l, uint64_t h, size_t *idx)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i]->hash == h && bt_labels_equal(p->v[i]->pe.labels, l)) {
            *idx = i;
            return p->v[i];
        }
    return NULL;
}

static struct pending *start(struct bt_partial *p, struct bt_pentry *e, uint64_t h,
                             struct bt_stage_out *out)
{
    if (p->n == p->cfg.max_keys)
        finish(p, 0, out);
    struct pending *pd = calloc(1, sizeof(*pd));
    if (!pd)
        return NULL;
    bt_pentry_init(&pd->pe);
    bt_buf_init(&pd->acc, p->cfg.max_size);
    if (bt_pentry_copy(&pd->pe, e) < 0) {
        bt_pentry_free(&pd->pe);
        free(pd);
        return NULL;
    }
    pd->hash = h;
    pd->deadline = bt_mono_ns() + p->cfg.wait_ns;
    pd->seg = e->seg;
    bt_segment_ref(pd->seg, 1);
    p->v[p->n++] = pd;
    return pd;
}

/* Appends a chunk, splitting (or truncating) at max_size. */
static void append(struct bt_partial *p, struct pending *pd, const char *s, size_t n,
                   struct bt_stage_out *out)
{
    while (n && !pd->truncated) {
        size_t room = p->cfg.max_size - pd->acc.len;
        size_t take = n < room ? n : room;
        if (take && bt_buf_add(&pd->acc, s, take) < 0)
            return; /* ENOMEM: the buffer was freed and the chunk is lost */
        s += take;
        n -= take;
        if (n == 0)
            break;
        bt_counter_inc(p->cfg.splits); /* the cap is reached with bytes left over */
        if (p->cfg.truncate)
            pd->truncated = true; /* the rest of this line is dropped */
        else
            emit_acc(pd, out);
    }
}

enum bt_stage_result bt_partial_add(struct bt_partial *p, struct bt_pentry *e, bool last,
                                    struct bt_stage_out *out)
{
    if (last && p->n == 0)
        return BT_STAGE_KEEP; /* the common case: a whole line and nothing pending */
    struct bt_labels *l = bt_pentry_labels_mut(e);
    if (!l)
        return BT_STAGE_KEEP;
    uint64_t h = bt_labels_hash(l);
    size_t idx = 0;
    struct pending *pd = find(p, l, h, &idx);
    if (pd && p->cfg.same_ts && pd->pe.ts_ns != e->ts_ns) {
        finish(p, idx, out); /* output that ended without a newline, then something new */
        pd = NULL;
    }
    if (!pd) {
        if (last)
            return BT_STAGE_KEEP;
        pd = start(p, e, h, out);
        if (!pd)
            return BT_STAGE_KEEP; /* no memory to hold it: ship the chunk alone */
        idx = p->n - 1;
    }
    if (p->cfg.latest_ts)
        pd->pe.ts_ns = e->ts_ns;
    append(p, pd, e->line, e->line_len, out);
    if (last)
        finish(p, idx, out);
    return BT_STAGE_HELD;
}

int64_t bt_partial_deadline(const struct bt_partial *p)
{
    int64_t d = INT64_MAX;
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i]->deadline < d)
            d = p->v[i]->deadline;
    return d;
}

void bt_partial_tick(struct bt_partial *p, int64_t now_mono, struct bt_stage_out *out)
{
    for (size_t i = 0; i < p->n;) {
        if (p->v[i]->deadline <= now_mono) {
            bt_counter_inc(p->cfg.timeouts);
            finish(p, i, out);
        } else {
            i++;
        }
    }
}

void bt_partial_flush(struct bt_partial *p, struct bt_stage_out *out)
{
    while (p->n)
        finish(p, 0, out);
}

/* ---- options shared by the docker and cri stages ---- */

static int opt_int(const struct bt_node *cfg, const char *k, const struct bt_stage_env *env,
                   long long lo, long long *out, char *err, size_t errlen)
{
    const struct bt_node *v = bt_node_is_null(cfg) ? NULL : bt_node_get(cfg, k);
    if (!v || bt_node_is_null(v))
        return 0;
    if (bt_node_int(v, out) || *out < lo) {
        bt_stage_err(err, errlen, env, v, "%s must be an integer >= %lld", k, lo);
        return -EINVAL;
    }
    return 0;
}

int bt_partial_parse_opts(const struct bt_node *cfg, const struct bt_stage_env *env,
                          struct bt_partial_opts *o, char *err, size_t errlen)
{
    static const char *const keys[] = {
        "drop_malformed",    "max_partial_line_size", "max_partial_line_size_truncate",
        "max_partial_lines", "max_wait_time",         NULL};
    memset(o, 0, sizeof(*o));
    o->cfg.max_size = BT_PARTIAL_DEFAULT_SIZE;
    o->cfg.max_keys = BT_PARTIAL_DEFAULT_KEYS;
    o->cfg.wait_ns = BT_PARTIAL_DEFAULT_WAIT;
    if (bt_stage_check_keys(cfg, env, keys, err, errlen))
        return -EINVAL;
    if (bt_node_is_null(cfg))
        return 0;
    const struct bt_node *v;
    if ((v = bt_node_get(cfg, "drop_malformed")) && bt_node_bool(v, &o->drop_malformed)) {
        bt_stage_err(err, errlen, env, v, "drop_malformed must be true or false");
        return -EINVAL;
    }
    if ((v = bt_node_get(cfg, "max_partial_line_size_truncate")) &&
        bt_node_bool(v, &o->cfg.truncate)) {
        bt_stage_err(err, errlen, env, v, "max_partial_line_size_truncate must be true or false");
        return -EINVAL;
    }
    if ((v = bt_node_get(cfg, "max_partial_line_size"))) {
        unsigned long long b;
        if (bt_node_bytes(v, &b) || b > BT_PENTRY_LINE_MAX) {
            bt_stage_err(err, errlen, env, v, "max_partial_line_size must be a size up to %u",
                         BT_PENTRY_LINE_MAX);
            return -EINVAL;
        }
        if (b) /* 0 keeps the default cap: a join is never unbounded */
            o->cfg.max_size = (size_t)b;
    }
    long long n = (long long)o->cfg.max_keys;
    if (opt_int(cfg, "max_partial_lines", env, 1, &n, err, errlen))
        return -EINVAL;
    o->cfg.max_keys = (size_t)n;
    if ((v = bt_node_get(cfg, "max_wait_time"))) {
        long long ns;
        if (bt_node_duration(v, &ns) || ns <= 0) {
            bt_stage_err(err, errlen, env, v, "max_wait_time must be a positive duration");
            return -EINVAL;
        }
        o->cfg.wait_ns = ns;
    }
    return 0;
}

void bt_partial_metrics(struct bt_partial_opts *o, const struct bt_stage_env *env,
                        const char *stage)
{
    if (!env->metrics)
        return;
    char esc[256], lbl[384], name[96];
    bt_metrics_escape(esc, sizeof(esc), env->job ? env->job : "");
    snprintf(lbl, sizeof(lbl), "job=\"%s\"", esc);
    snprintf(name, sizeof(name), "bpftail_%s_malformed_records_total", stage);
    o->malformed = bt_metrics_counter(env->metrics, name,
                                      "Records the stage could not parse (shipped raw unless "
                                      "drop_malformed is set).",
                                      lbl);
    snprintf(lbl, sizeof(lbl), "job=\"%s\",stage=\"%s\"", esc, stage);
    o->cfg.splits = bt_metrics_counter(env->metrics, "bpftail_partial_lines_capped_total",
                                       "Joined lines split or truncated at the size cap.", lbl);
    o->cfg.timeouts = bt_metrics_counter(env->metrics, "bpftail_partial_lines_timeout_total",
                                         "Partial lines emitted because no final chunk came in "
                                         "time.",
                                         lbl);
}

/* ---- the docker and cri stages' common part ---- */

struct bt_join_stage *bt_join_stage_new(const struct bt_node *cfg, const struct bt_stage_env *env,
                                        const char *stage, bool latest_ts, bool same_ts, char *err,
                                        size_t errlen)
{
    struct bt_join_stage *st = calloc(1, sizeof(*st));
    if (!st)
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    if (bt_partial_parse_opts(cfg, env, &st->o, err, errlen)) {
        free(st);
        return NULL;
    }
    st->o.cfg.latest_ts = latest_ts;
    st->o.cfg.same_ts = same_ts;
    bt_partial_metrics(&st->o, env, stage);
    bt_stream_cache_init(&st->sc);
    st->p = bt_partial_new(&st->o.cfg);
    if (!st->p) {
        free(st);
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    }
    return st;
}

int64_t bt_join_stage_deadline(const void *arg)
{
    const struct bt_join_stage *st = arg;
    return bt_partial_deadline(st->p);
}

void bt_join_stage_tick(void *arg, int64_t now_mono, struct bt_stage_out *out)
{
    struct bt_join_stage *st = arg;
    bt_partial_tick(st->p, now_mono, out);
}

void bt_join_stage_flush(void *arg, struct bt_stage_out *out)
{
    struct bt_join_stage *st = arg;
    bt_partial_flush(st->p, out);
}

void bt_join_stage_free(void *arg)
{
    struct bt_join_stage *st = arg;
    if (!st)
        return;
    bt_partial_free(st->p);
    bt_stream_cache_free(&st->sc);
    free(st);
}

/* ---- stream label cache ---- */

void bt_stream_cache_init(struct bt_stream_cache *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < BT_STREAM_CACHE_SLOTS; i++) {
        bt_labels_init(&c->slot[i].base);
        bt_labels_init(&c->slot[i].set);
    }
}

void bt_stream_cache_free(struct bt_stream_cache *c)
{
    for (size_t i = 0; i < BT_STREAM_CACHE_SLOTS; i++) {
        bt_labels_free(&c->slot[i].base);
        bt_labels_free(&c->slot[i].set);
    }
}

int bt_stream_cache_apply(struct bt_stream_cache *c, struct bt_pentry *e, const char *stream,
                          size_t n)
{
    int rc = bt_extracted_set_str(&e->x, "stream", 6, stream, n);
    if (rc < 0)
        return rc;
    if (e->labels == &e->own || !e->labels || n >= sizeof(c->slot[0].stream)) {
        struct bt_labels *l = bt_pentry_labels_mut(e);
        return l ? bt_labels_setn(l, "stream", 6, stream, n) : -ENOMEM;
    }
    for (size_t i = 0; i < BT_STREAM_CACHE_SLOTS; i++) {
        if (c->slot[i].used && c->slot[i].stream_len == n &&
            memcmp(c->slot[i].stream, stream, n) == 0 &&
            bt_labels_equal(&c->slot[i].base, e->labels)) {
            e->labels = &c->slot[i].set;
            return 0;
        }
    }
    size_t i = c->next;
    c->next = (c->next + 1) % BT_STREAM_CACHE_SLOTS;
    c->slot[i].used = false;
    rc = bt_labels_copy(&c->slot[i].base, e->labels);
    if (rc == 0)
        rc = bt_labels_copy(&c->slot[i].set, e->labels);
    if (rc == 0)
        rc = bt_labels_setn(&c->slot[i].set, "stream", 6, stream, n);
    if (rc < 0)
        return rc;
    memcpy(c->slot[i].stream, stream, n);
    c->slot[i].stream_len = n;
    c->slot[i].used = true;
    e->labels = &c->slot[i].set;
    return 0;
}

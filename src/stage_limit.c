/* limit: a token bucket (rate per second, burst) for the pipeline, or one per value of the
 * label by_label_name (entries without that label are not limited; at most
 * max_distinct_labels buckets, default 10000, the longest-unused one is recycled).
 * drop: true drops entries over the limit (reason "ratelimit_drop_stage"); otherwise the
 * stage waits for a token, as promtail blocks its pipeline: that stalls the loop thread, so
 * reading slows down and the files act as the buffer. Buckets start full. */
#include "stage.h"
#include "node.h"
#include "util/hmap.h"
#include "util/timeutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bucket {
    double tokens;
    int64_t last; /* monotonic ns of the last refill */
};

struct st {
    double rate, burst;
    bool drop;
    char *by_label;
    size_t max_distinct;
    struct bucket global;
    struct bt_hmap per; /* label value -> struct bucket * */
};

static const char *const keys[] = {"rate", "burst", "drop", "by_label_name", "max_distinct_labels",
                                   NULL};

static void limit_free(void *st)
{
    struct st *s = st;
    size_t pos = 0;
    struct bt_hmap_slot *sl;
    while ((sl = bt_hmap_next(&s->per, &pos)))
        free(sl->val);
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

static struct bucket *bucket_for(struct st *s, const char *v, int64_t now)
{
    size_t n = strlen(v);
    struct bucket *b = bt_hmap_get(&s->per, v, n);
    if (b)
        return b;
    if (s->per.n >= s->max_distinct) { /* recycle the longest-unused bucket */
        size_t pos = 0;
        struct bt_hmap_slot *sl, *old = NULL;
        while ((sl = bt_hmap_next(&s->per, &pos)))
            if (!old || ((struct bucket *)sl->val)->last < ((struct bucket *)old->val)->last)
                old = sl;
        if (old) {
            char *k = old->key;
            size_t kl = old->klen;
            free(bt_hmap_del(&s->per, k, kl));
        }
    }
    b = malloc(sizeof(*b));
    if (!b)
        return NULL;
    b->tokens = s->burst;
    b->last = now;
    if (bt_hmap_put(&s->per, v, n, b, NULL) < 0) {
        free(b);
        return NULL;
    }
    return b;
}

static enum bt_stage_result limit_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    int64_t now = bt_mono_ns();
    struct bucket *b = &s->global;
    if (s->by_label) {
        const char *v = e->labels ? bt_labels_get(e->labels, s->by_label) : NULL;
        if (!v)
            return BT_STAGE_KEEP;
        if (!(b = bucket_for(s, v, now)))
            return BT_STAGE_KEEP;
    }
    refill(s, b, now);
    if (b->tokens >= 1) {
        b->tokens -= 1;
        return BT_STAGE_KEEP;
    }
    if (s->drop) {
        e->drop_reason = "ratelimit_drop_stage";
        return BT_STAGE_DROP;
    }
    /* Wait for the missing fraction of a token. */
    double wait_ns = (1 - b->tokens) * 1e9 / s->rate;
    struct timespec ts = {(time_t)(wait_ns / 1e9), (long)((int64_t)wait_ns % 1000000000LL)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    refill(s, b, bt_mono_ns());
    b->tokens = b->tokens >= 1 ? b->tokens - 1 : 0;
    return BT_STAGE_KEEP;
}

const struct bt_stage_ops bt_stage_limit_ops = {
    .name = "limit",
    .init = limit_init,
    .process = limit_process,
    .free = limit_free,
};

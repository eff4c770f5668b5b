/*
 * timestamp: sets the entry's timestamp from extracted[source], parsed with `format` and then
 * each of `fallback_formats` (Go layouts or promtail's named formats, util/gotime.h) in the
 * optional IANA `location`.
 *
 * When the key is missing or no format parses it, action_on_failure decides: `skip` keeps the
 * current timestamp; `fudge` (the default) uses the last timestamp parsed for the same label
 * set plus 1ns, and keeps the current one if none is known. Last timestamps live in an LRU of
 * 10000 label sets keyed by the canonical label string, like promtail's; memory is allocated
 * only when a new label set appears.
 */
#include "stage/stage.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config/node.h"
#include "util/gotime.h"
#include "util/hmap.h"
#include "util/timeutil.h"

#define LRU_MAX 10000

struct lru_node {
    struct lru_node *prev, *next; /* most recent first */
    char *key;
    size_t klen;
    uint64_t hash;
    int64_t ts;
};

struct st {
    char *source;
    size_t source_len;
    struct bt_tz *loc;
    struct bt_gotime **fmts; /* format, then fallbacks */
    size_t nfmts;
    bool fudge;
    bool uses_now;      /* some format has no year: parsing needs the current time */
    struct bt_hmap map; /* canonical labels -> lru_node */
    struct lru_node *head, *tail;
    size_t nlru;
    /* The node of the set with this stamp (labels.h), at the head: a run of lines of one set
     * updates it without looking its canonical string up. 0: none. */
    uint64_t head_stamp;
};

static const char *const keys[] = {
    "source", "format", "fallback_formats", "location", "action_on_failure", NULL};

static void lru_unlink(struct st *s, struct lru_node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        s->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        s->tail = n->prev;
    n->prev = n->next = NULL;
}

static void lru_push_front(struct st *s, struct lru_node *n)
{
    n->next = s->head;
    n->prev = NULL;
    if (s->head)
        s->head->prev = n;
    s->head = n;
    if (!s->tail)
        s->tail = n;
}

/* Records ts as the last timestamp of the entry's label set. Failure only loses the record. */
static void lru_put(struct st *s, struct bt_labels *l, int64_t ts)
{
    size_t klen;
    const char *key = bt_labels_canon(l, &klen);
    if (!key)
        return;
    if (l->stamp && l->stamp == s->head_stamp && s->head) {
        s->head->ts = ts;
        return;
    }
    uint64_t h = bt_labels_hash(l);
    struct lru_node *n = bt_hmap_get_h(&s->map, key, klen, h);
    s->head_stamp = 0;
    if (n) {
        n->ts = ts;
        lru_unlink(s, n);
        lru_push_front(s, n);
        s->head_stamp = l->stamp;
        return;
    }
    if (s->nlru >= LRU_MAX) { /* evict the least recently used label set, reuse its node */
        n = s->tail;
        lru_unlink(s, n);
        bt_hmap_del(&s->map, n->key, n->klen);
        free(n->key);
        s->nlru--;
    } else {
        n = calloc(1, sizeof(*n));
        if (!n)
            return;
    }
    n->key = malloc(klen + 1);
    if (!n->key) {
        free(n);
        return;
    }
    memcpy(n->key, key, klen + 1);
    n->klen = klen;
    n->hash = h;
    n->ts = ts;
    if (bt_hmap_put_h(&s->map, n->key, klen, h, n, NULL) < 0) {
        free(n->key);
        free(n);
        return;
    }
    lru_push_front(s, n);
    s->nlru++;
    s->head_stamp = l->stamp;
}

static bool lru_get(struct st *s, struct bt_labels *l, int64_t *ts)
{
    size_t klen;
    const char *key = bt_labels_canon(l, &klen);
    if (!key)
        return false;
    struct lru_node *n = bt_hmap_get_h(&s->map, key, klen, bt_labels_hash(l));
    if (!n)
        return false;
    *ts = n->ts;
    return true;
}

static void ts_free(void *st)
{
    struct st *s = st;
    if (!s)
        return;
    for (size_t i = 0; i < s->nfmts; i++)
        bt_gotime_free(s->fmts[i]);
    free(s->fmts);
    bt_tz_free(s->loc);
    struct lru_node *n = s->head;
    while (n) {
        struct lru_node *nx = n->next;
        free(n->key);
        free(n);
        n = nx;
    }
    bt_hmap_free(&s->map);
    free(s->source);
    free(s);
}

static int add_format(struct st *s, const char *f, const struct bt_node *at,
                      const struct bt_stage_env *env, char *err, size_t errlen)
{
    char msg[256];
    struct bt_gotime *g = bt_gotime_new(f, s->loc, msg, sizeof(msg));
    if (!g) {
        bt_stage_err(err, errlen, env, at, "format \"%s\": %s", f, msg);
        return -EINVAL;
    }
    s->fmts[s->nfmts++] = g;
    s->uses_now |= bt_gotime_uses_now(g);
    return 0;
}

static void *ts_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                     size_t errlen)
{
    int bad = 0;
    char msg[256];
    char **fb = NULL;
    size_t nfb = 0;
    struct st *s = NULL;
    if (bt_stage_check_keys(cfg, env, keys, err, errlen) < 0)
        return NULL;
    const char *src = bt_stage_str(cfg, "source", env, &bad, err, errlen);
    const char *fmt = bad ? NULL : bt_stage_str(cfg, "format", env, &bad, err, errlen);
    const char *loc = bad ? NULL : bt_stage_str(cfg, "location", env, &bad, err, errlen);
    const char *act = bad ? NULL : bt_stage_str(cfg, "action_on_failure", env, &bad, err, errlen);
    if (bad)
        return NULL;
    if (!src || !*src)
        return bt_stage_err(err, errlen, env, cfg, "source is required");
    if (!fmt || !*fmt)
        return bt_stage_err(err, errlen, env, cfg, "format is required");
    if (act && *act && strcmp(act, "fudge") != 0 && strcmp(act, "skip") != 0)
        return bt_stage_err(err, errlen, env, bt_node_get(cfg, "action_on_failure"),
                            "invalid action_on_failure \"%s\" (supported: fudge, skip)", act);
    const struct bt_node *fbn = bt_node_get(cfg, "fallback_formats");
    if (fbn && !bt_node_is_null(fbn) &&
        bt_stage_strlist(fbn, env, false, &fb, &nfb, err, errlen) < 0)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (!s || !(s->source = strdup(src)) || !(s->fmts = calloc(nfb + 1, sizeof(*s->fmts)))) {
        bt_stage_err(err, errlen, env, NULL, "out of memory");
        goto fail;
    }
    s->source_len = strlen(src);
    s->fudge = !act || !*act || strcmp(act, "fudge") == 0;
    bt_hmap_init(&s->map);
    if (loc && *loc && !(s->loc = bt_tz_load(loc, msg, sizeof(msg)))) {
        bt_stage_err(err, errlen, env, bt_node_get(cfg, "location"), "invalid location: %s", msg);
        goto fail;
    }
    if (add_format(s, fmt, bt_node_get(cfg, "format"), env, err, errlen) < 0)
        goto fail;
    for (size_t i = 0; i < nfb; i++)
        if (add_format(s, fb[i], fbn->items[i], env, err, errlen) < 0)
            goto fail;
    bt_stage_strlist_free(fb, nfb);
    return s;
fail:
    bt_stage_strlist_free(fb, nfb);
    ts_free(s);
    return NULL;
}

static enum bt_stage_result ts_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    char tmp[400];
    const char *v;
    size_t n;
    if (bt_extracted_get_str(&e->x, s->source, s->source_len, tmp, sizeof(tmp), &v, &n) == 0) {
        int64_t now = s->uses_now ? bt_now_ns() : 0; /* a clock read per line only if needed */
        for (size_t i = 0; i < s->nfmts; i++) {
            int64_t ts;
            if (bt_gotime_parse(s->fmts[i], v, n, now, &ts) == 0) {
                e->ts_ns = ts;
                if (s->fudge)
                    lru_put(s, e->labels, ts);
                return BT_STAGE_KEEP;
            }
        }
    }
    if (s->fudge) {
        int64_t last;
        if (lru_get(s, e->labels, &last)) {
            e->ts_ns = last + 1;
            lru_put(s, e->labels, e->ts_ns);
        }
    }
    return BT_STAGE_KEEP;
}

static bool ts_reads(const void *st, bt_stage_key_fn fn, void *ctx)
{
    const struct st *s = st;
    fn(ctx, s->source, s->source_len);
    return true;
}

const struct bt_stage_ops bt_stage_timestamp_ops = {
    .name = "timestamp",
    .init = ts_init,
    .process = ts_process,
    .free = ts_free,
    .reads = ts_reads,
};

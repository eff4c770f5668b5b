/* multiline: joins lines into blocks per stream (label set). A line matching firstline starts
 * a new block (emitting the previous one); other lines are appended with "\n". A block is
 * emitted at the next first line, at max_lines (128), after max_wait_time (3s) without input
 * for that stream, when its text would pass the line cap, and on flush. The joined entry has
 * the timestamp, labels and extracted values of its first line. Lines of a stream that never
 * had a first line pass through unchanged; after a block was emitted (max_lines, timeout), the
 * stream's next non-first lines start a new block of their own. Up to 4096 streams are
 * tracked; beyond that the longest-idle one is forgotten (its block emitted).
 *
 * Acknowledgement: a block holds one reference on the segment of its FIRST line, the earliest
 * one, which keeps the committed offset of the source from moving past any line of the block
 * until the joined entry is delivered; the later lines' segments need no reference of their
 * own (their source releases them, and the ack owner still waits for the earliest). The
 * reference is dropped right after the joined entry was handed on (the sink took its own). */
#include "stage/stage.h"
#include "core/ack.h"
#include "config/node.h"
#include "util/regex.h"
#include "util/timeutil.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STREAMS 4096

struct block {
    bool used;            /* the slot belongs to a stream (key) */
    bool open;            /* a block is being collected */
    struct bt_labels key; /* the stream's labels (b->e is handed downstream and may change) */
    uint64_t hash;
    struct bt_pentry e; /* copy of the first line's entry */
    struct bt_buf text; /* the joined lines */
    long lines;
    int64_t last_mono; /* time of the last line added */
    struct bt_segment *seg;
};

struct st {
    struct bt_regex *re;
    int64_t max_wait;
    long max_lines;
    struct block **b;
    size_t n, cap;
};

static const char *const keys[] = {"firstline", "max_wait_time", "max_lines", NULL};

static void ml_free(void *st)
{
    struct st *s = st;
    for (size_t i = 0; i < s->n; i++) {
        if (s->b[i]->open) /* not emitted (flush was not called): let go of the offset */
            bt_segment_unref(s->b[i]->seg, 1);
        bt_pentry_free(&s->b[i]->e);
        bt_labels_free(&s->b[i]->key);
        bt_buf_free(&s->b[i]->text);
        free(s->b[i]);
    }
    free(s->b);
    bt_regex_free(s->re);
    free(s);
}

static void *ml_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                     size_t errlen)
{
    int bad;
    char rerr[256];
    if (bt_stage_check_keys(cfg, env, keys, err, errlen) < 0)
        return NULL;
    const char *fl = bt_stage_str(cfg, "firstline", env, &bad, err, errlen);
    if (bad)
        return NULL;
    if (!fl || !*fl)
        return bt_stage_err(err, errlen, env, cfg, "firstline is required");
    struct st *s = calloc(1, sizeof(*s));
    if (!s)
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    s->max_wait = 3 * BT_NS_PER_SEC;
    s->max_lines = 128;
    const struct bt_node *mw = bt_node_get(cfg, "max_wait_time");
    const struct bt_node *mx = bt_node_get(cfg, "max_lines");
    long long v;
    if (mw && !bt_node_is_null(mw)) {
        if (bt_node_duration(mw, &v) < 0 || v <= 0) {
            bt_stage_err(err, errlen, env, mw, "max_wait_time must be a positive duration");
            goto fail;
        }
        s->max_wait = v;
    }
    if (mx && !bt_node_is_null(mx)) {
        if (bt_node_int(mx, &v) < 0 || v <= 0 || v > 1000000) {
            bt_stage_err(err, errlen, env, mx, "max_lines must be between 1 and 1000000");
            goto fail;
        }
        s->max_lines = (long)v;
    }
    if (!(s->re = bt_regex_new(fl, 0, rerr, sizeof(rerr)))) {
        bt_stage_err(err, errlen, env, bt_node_get(cfg, "firstline"), "%s", rerr);
        goto fail;
    }
    return s;
fail:
    ml_free(s);
    return NULL;
}

static void emit_block(struct block *b, struct bt_stage_out *o)
{
    if (!b->open)
        return;
    b->open = false;
    if (bt_pentry_set_line(&b->e, bt_buf_str(&b->text), b->text.len) == 0)
        bt_stage_emit(o, &b->e);
    bt_segment_unref(b->seg, 1);
    b->seg = NULL;
}

/* The slot of the stream with labels l, or NULL. */
static struct block *find(struct st *s, struct bt_labels *l, uint64_t h)
{
    for (size_t i = 0; i < s->n; i++) {
        struct block *b = s->b[i];
        if (b->used && b->hash == h && bt_labels_equal(&b->key, l))
            return b;
    }
    return NULL;
}

/* A slot for a new stream: unused, new, or (at the bound) the longest-idle one. */
static struct block *new_slot(struct st *s, struct bt_stage_out *o)
{
    struct block *lru = NULL;
    for (size_t i = 0; i < s->n; i++) {
        struct block *b = s->b[i];
        if (!b->used)
            return b;
        if (!lru || (!b->open && lru->open) ||
            (b->open == lru->open && b->last_mono < lru->last_mono))
            lru = b;
    }
    if (s->n == s->cap) {
        if (s->cap == MAX_STREAMS) { /* bounded: forget an idle stream, or flush one early */
            emit_block(lru, o);
            return lru;
        }
        size_t nc = s->cap ? s->cap * 2 : 8;
        struct block **nb = realloc(s->b, nc * sizeof(*nb));
        if (!nb)
            return NULL;
        s->b = nb;
        s->cap = nc;
    }
    /* Blocks are allocated one by one: a working entry points into itself (labels = &own),
     * so it must never move. */
    struct block *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    s->b[s->n++] = b;
    bt_pentry_init(&b->e);
    bt_labels_init(&b->key);
    bt_buf_init(&b->text, BT_PENTRY_LINE_MAX);
    return b;
}

static enum bt_stage_result start_block(struct block *b, struct bt_pentry *e, uint64_t h)
{
    bt_buf_reset(&b->text);
    if (bt_pentry_copy(&b->e, e) < 0 || bt_labels_copy(&b->key, e->labels) < 0 ||
        bt_buf_add(&b->text, e->line, e->line_len) < 0) {
        b->used = false;
        return BT_STAGE_KEEP; /* cannot hold it: let it through alone */
    }
    b->used = true;
    b->open = true;
    b->hash = h;
    b->lines = 1;
    b->last_mono = bt_mono_ns();
    b->seg = e->seg;
    bt_segment_ref(b->seg, 1);
    return BT_STAGE_HELD;
}

static enum bt_stage_result ml_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    if (!e->labels && !bt_pentry_labels_mut(e))
        return BT_STAGE_KEEP;
    /* Hashing fills the set's canonical-string cache; that does not change the labels. */
    uint64_t h = bt_labels_hash(e->labels);
    bool first = bt_regex_match(s->re, e->line, e->line_len, 0) > 0;
    struct block *b = find(s, e->labels, h);
    if (b && b->open && !first && b->text.len + 1 + e->line_len <= BT_PENTRY_LINE_MAX) {
        if (bt_buf_add(&b->text, "\n", 1) < 0 || bt_buf_add(&b->text, e->line, e->line_len) < 0) {
            /* the failed add freed the text: the block is lost; do not lose this line too */
            b->open = false;
            bt_segment_unref(b->seg, 1);
            b->seg = NULL;
            return BT_STAGE_KEEP;
        }
        b->last_mono = bt_mono_ns();
        if (++b->lines >= s->max_lines)
            emit_block(b, o);
        return BT_STAGE_HELD;
    }
    if (b) {
        emit_block(b, o); /* a new first line, or the block is full */
    } else {
        if (!first)
            return BT_STAGE_KEEP; /* before this stream's first block */
        if (!(b = new_slot(s, o)))
            return BT_STAGE_KEEP;
    }
    enum bt_stage_result r = start_block(b, e, h);
    if (r == BT_STAGE_HELD && b->lines >= s->max_lines)
        emit_block(b, o);
    return r;
}

static int64_t ml_deadline(const void *st)
{
    const struct st *s = st;
    int64_t d = INT64_MAX;
    for (size_t i = 0; i < s->n; i++)
        if (s->b[i]->open && s->b[i]->last_mono + s->max_wait < d)
            d = s->b[i]->last_mono + s->max_wait;
    return d;
}

static void ml_tick(void *st, int64_t now, struct bt_stage_out *o)
{
    struct st *s = st;
    for (size_t i = 0; i < s->n; i++)
        if (s->b[i]->open && s->b[i]->last_mono + s->max_wait <= now)
            emit_block(s->b[i], o);
}

static void ml_flush(void *st, struct bt_stage_out *o)
{
    struct st *s = st;
    for (size_t i = 0; i < s->n; i++)
        emit_block(s->b[i], o);
}

const struct bt_stage_ops bt_stage_multiline_ops = {
    .name = "multiline",
    .init = ml_init,
    .process = ml_process,
    .deadline = ml_deadline,
    .tick = ml_tick,
    .flush = ml_flush,
    .free = ml_free,
};

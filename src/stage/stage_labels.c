/* labels: sets labels from extracted values ({name: source}; empty source = same name).
 * A value that is absent, not convertible to text (null, object) or not valid UTF-8 is
 * skipped, as promtail does.
 *
 * Lines mostly carry a few distinct values (a level, an app name), so the sets this stage makes
 * repeat. The last LABELS_CACHE_SLOTS of them are kept, each with the set it was made from and
 * the values it took: an entry whose borrowed set and values match one points at it (as the
 * docker stage's stream cache does), so the set is not copied and changed per line, and the
 * batcher finds its stream by the set's stamp instead of building and hashing its canonical
 * string again. */
#include <stdlib.h>
#include <string.h>

#include "stage/stage.h"

#define LABELS_CACHE_SLOTS 16
#define LABELS_CACHE_KEY_MAX 1024 /* values longer in all are set per line, uncached */

struct lcache_slot {
    struct bt_labels base, set;
    struct bt_buf key;
    bool used;
};

struct labels_stage {
    struct bt_stage_labelmap *map;
    struct bt_buf key; /* this entry's values: {u32 map index, u32 length, bytes}... */
    struct lcache_slot slot[LABELS_CACHE_SLOTS];
    size_t next;
};

static void *labels_new(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                        size_t errlen)
{
    struct labels_stage *s = calloc(1, sizeof(*s));
    if (!s)
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    if (!(s->map = bt_stage_labelmap_new(cfg, env, err, errlen))) {
        free(s);
        return NULL;
    }
    bt_buf_init(&s->key, LABELS_CACHE_KEY_MAX);
    for (size_t i = 0; i < LABELS_CACHE_SLOTS; i++) {
        bt_labels_init(&s->slot[i].base);
        bt_labels_init(&s->slot[i].set);
        bt_buf_init(&s->slot[i].key, LABELS_CACHE_KEY_MAX);
    }
    return s;
}

static void labels_free(void *st)
{
    struct labels_stage *s = st;
    if (!s)
        return;
    for (size_t i = 0; i < LABELS_CACHE_SLOTS; i++) {
        bt_labels_free(&s->slot[i].base);
        bt_labels_free(&s->slot[i].set);
        bt_buf_free(&s->slot[i].key);
    }
    bt_buf_free(&s->key);
    bt_stage_labelmap_free(s->map);
    free(s);
}

static bool labels_reads(const void *st, bt_stage_key_fn fn, void *ctx)
{
    return bt_stage_labelmap_reads(((const struct labels_stage *)st)->map, fn, ctx);
}

/* Sets on l the values recorded in key. 0 or -ENOMEM. */
static int apply_key(const struct labels_stage *s, struct bt_labels *l, const struct bt_buf *key)
{
    for (size_t p = 0; p < key->len;) {
        uint32_t hdr[2];
        memcpy(hdr, key->ptr + p, sizeof(hdr));
        p += sizeof(hdr);
        const struct bt_stage_kv *kv = &s->map->kv[hdr[0]];
        int rc = bt_labels_setn(l, kv->name, kv->name_len, key->ptr + p, hdr[1]);
        if (rc < 0)
            return rc;
        p += hdr[1];
    }
    return 0;
}

/* The cached set for e's borrowed labels and the values in s->key, made if new; NULL if it
 * cannot be made (the caller sets the labels on the entry's own set instead). */
static struct bt_labels *cached_set(struct labels_stage *s, const struct bt_labels *from)
{
    for (size_t i = 0; i < LABELS_CACHE_SLOTS; i++) {
        struct lcache_slot *c = &s->slot[i];
        if (c->used && c->key.len == s->key.len &&
            memcmp(c->key.ptr, s->key.ptr, s->key.len) == 0 && bt_labels_equal(&c->base, from))
            return &c->set;
    }
    struct lcache_slot *c = &s->slot[s->next];
    s->next = (s->next + 1) % LABELS_CACHE_SLOTS;
    c->used = false;
    bt_buf_reset(&c->key);
    if (bt_labels_copy(&c->base, from) < 0 || bt_labels_copy(&c->set, from) < 0 ||
        apply_key(s, &c->set, &s->key) < 0 || bt_buf_add(&c->key, s->key.ptr, s->key.len) < 0)
        return NULL;
    c->used = true;
    return &c->set;
}

static enum bt_stage_result labels_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct labels_stage *s = st;
    char tmp[BT_STAGE_LABELMAP_TMP];
    const struct bt_stage_kv *kv;
    const char *v;
    size_t i = 0, n;
    struct bt_labels *l;
    bool cache = e->labels && e->labels != &e->own;
    bt_buf_reset(&s->key);
    while ((kv = bt_stage_labelmap_next(s->map, e, &i, tmp, &v, &n)) != NULL) {
        uint32_t hdr[2] = {(uint32_t)(kv - s->map->kv), (uint32_t)n};
        if (cache) {
            size_t at = s->key.len;
            if (n <= LABELS_CACHE_KEY_MAX && bt_buf_add(&s->key, hdr, sizeof(hdr)) == 0 &&
                bt_buf_add(&s->key, v, n) == 0)
                continue;
            /* Too long to cache: the values so far, then this one, go to the entry's set. */
            s->key.len = at;
            cache = false;
            if ((l = bt_pentry_labels_mut(e)))
                apply_key(s, l, &s->key);
        }
        if ((l = bt_pentry_labels_mut(e)))
            bt_labels_setn(l, kv->name, kv->name_len, v, n);
    }
    if (cache && s->key.len) {
        if ((l = cached_set(s, e->labels))) {
            e->labels = l;
            return BT_STAGE_KEEP;
        }
        /* Out of memory for the cache: the entry's own set, as without it. */
        if ((l = bt_pentry_labels_mut(e)))
            apply_key(s, l, &s->key);
    }
    return BT_STAGE_KEEP;
}

const struct bt_stage_ops bt_stage_labels_ops = {
    .name = "labels",
    .init = labels_new,
    .process = labels_process,
    .free = labels_free,
    .reads = labels_reads,
};

#include "push/batch.h"
#include "core/ack.h"
#include "core/entry.h"
#include "core/labels.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BT_TS_SEC 1000000000LL

/* Open batches: one per tenant and lane. A handful of tenants at most, so a small array. */
struct tenant_slot {
    char *tenant;
    size_t lane;
    struct bt_batch *open;
};

#define TS_CACHE_BITS 4 /* 16 streams remembered by stamp */
#define TS_CACHE (1 << TS_CACHE_BITS)

struct bt_batcher {
    struct bt_batcher_config cfg;
    bt_batch_ready_fn ready;
    bt_batch_drop_fn drop;
    void *ctx;
    struct tenant_slot *slots;
    size_t n_slots, cap_slots;
    size_t bytes;
    /* entry canonical labels -> merged (with external labels) canonical string, so the merge
     * happens once per label set, not per line. */
    struct bt_hmap merged;
    struct bt_labels scratch;
    /* Entry timestamps (batch.h): tenant\0 merged canonical labels -> struct ts_state. */
    struct bt_hmap ts;
    struct bt_buf ts_key;
    int64_t ts_swept; /* monotonic time of the last sweep of idle streams */
    /* The stream of the previous entry, whose key ts_key still holds: lines come in runs from
     * one stream, so most entries skip the key build and the hash lookup. */
    struct ts_state *ts_last;
    /* Streams found by labels stamp (core/labels.h), direct-mapped: entries of a few streams
     * interleaved (apps in one file, stdout and stderr) find theirs without building the key,
     * hashing it or looking up the tenant. Cleared whenever a stream state is freed. */
    struct {
        uint64_t stamp;
        struct ts_state *st;
    } ts_cache[TS_CACHE];
    uint32_t next_lane; /* new streams take lanes in turn, so the lanes stay even */
};

/* What the timestamp rule remembers of a stream: the previous entry's timestamp as it came
 * and as it was sent. */
struct ts_state {
    int64_t last_in, last_out;
    int64_t seen;  /* monotonic time of the stream's last entry */
    uint32_t lane; /* open batch of the stream's tenant it goes to (cfg.lanes) */
    bool fresh;    /* no entry stamped yet */
    size_t slot;   /* index + 1 of its tenant_slot (slots are never removed), 0: not yet */
};

#define TS_IDLE_NS (5 * 60 * BT_TS_SEC)     /* a stream idle this long is forgotten */
#define TS_SWEEP_NS (60 * BT_TS_SEC)        /* how often tick looks for idle streams */
#define TS_CROWDED_IDLE_NS (10 * BT_TS_SEC) /* idle limit once TS_MAX_STREAMS are known */
#define TS_MAX_STREAMS 100000

struct merged_canon {
    char *s;
    size_t len;
    uint64_t hash;
};

/* The memory of the last released batch's arena and largest entry array, kept for the next
 * batch: a batch of 1 MiB is released every few milliseconds at full rate, and memory that
 * went back to the kernel costs a page fault per 4 KiB when touched again. One slot for the
 * process, under a lock taken once per batch (batches are made and released on the loop
 * thread, but tests and the plugin use others). */
static struct {
    pthread_mutex_t mu;
    char *arena;
    size_t arena_cap;
    struct bt_batch_entry *entries;
    size_t entries_cap;
} spare = {.mu = PTHREAD_MUTEX_INITIALIZER};

#define SPARE_MAX ((size_t)32 << 20) /* a larger block goes back to the allocator */

static void spare_keep(struct bt_batch *b)
{
    struct bt_batch_stream *big = NULL;
    for (size_t i = 0; i < b->n_streams; i++)
        if (!big || b->streams[i].cap > big->cap)
            big = &b->streams[i];
    pthread_mutex_lock(&spare.mu);
    if (!spare.arena && b->arena.ptr && b->arena.cap <= SPARE_MAX) {
        spare.arena = b->arena.ptr;
        spare.arena_cap = b->arena.cap;
        b->arena.ptr = NULL;
        b->arena.cap = 0;
    }
    if (!spare.entries && big && big->entries && big->cap * sizeof(*big->entries) <= SPARE_MAX) {
        spare.entries = big->entries;
        spare.entries_cap = big->cap;
        big->entries = NULL;
    }
    pthread_mutex_unlock(&spare.mu);
}

/* Most arena bytes a new batch reserves up front (a larger batchsize grows past it). */
#define ARENA_RESERVE_MAX ((size_t)16 << 20)

struct bt_batch *bt_batch_new(const char *tenant)
{
    struct bt_batch *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->tenant = strdup(tenant ? tenant : "");
    if (!b->tenant) {
        free(b);
        return NULL;
    }
    bt_hmap_init(&b->index);
    bt_buf_init(&b->arena, (size_t)1 << 40);
    pthread_mutex_lock(&spare.mu);
    if (spare.arena) {
        b->arena.ptr = spare.arena;
        b->arena.cap = spare.arena_cap;
        spare.arena = NULL;
    }
    pthread_mutex_unlock(&spare.mu);
    return b;
}

static void batch_free(struct bt_batch *b)
{
    spare_keep(b);
    for (size_t i = 0; i < b->n_streams; i++) {
        free(b->streams[i].labels);
        free(b->streams[i].entries);
    }
    free(b->streams);
    bt_hmap_free(&b->index);
    bt_buf_free(&b->arena);
    free(b->meta);
    free(b->refs);
    free(b->tenant);
    free(b);
}

void bt_batch_release(struct bt_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n_refs; i++) {
        if (b->outcome == BT_PUSH_ABANDONED)
            bt_segment_abandon(b->refs[i].seg, b->refs[i].count);
        else
            bt_segment_unref(b->refs[i].seg, b->refs[i].count);
    }
    batch_free(b);
}

static int add_ref(struct bt_batch *b, struct bt_segment *seg)
{
    if (!seg)
        return 0;
    if (b->n_refs && b->refs[b->n_refs - 1].seg == seg) {
        b->refs[b->n_refs - 1].count++;
        bt_segment_ref(seg, 1);
        return 0;
    }
    if (b->n_refs == b->cap_refs) {
        size_t n = b->cap_refs ? b->cap_refs * 2 : 16;
        struct bt_segref *nr = realloc(b->refs, n * sizeof(*nr));
        if (!nr)
            return -ENOMEM;
        b->refs = nr;
        b->cap_refs = n;
    }
    b->refs[b->n_refs++] = (struct bt_segref){seg, 1};
    bt_segment_ref(seg, 1);
    return 0;
}

static struct bt_batch_stream *get_stream(struct bt_batch *b, const char *canon, size_t len,
                                          uint64_t hash)
{
    uintptr_t idx = (uintptr_t)bt_hmap_get_h(&b->index, canon, len, hash);
    if (idx)
        return &b->streams[idx - 1];
    if (b->n_streams == b->cap_streams) {
        size_t n = b->cap_streams ? b->cap_streams * 2 : 8;
        struct bt_batch_stream *ns = realloc(b->streams, n * sizeof(*ns));
        if (!ns)
            return NULL;
        b->streams = ns;
        b->cap_streams = n;
    }
    struct bt_batch_stream *s = &b->streams[b->n_streams];
    memset(s, 0, sizeof(*s));
    if (b->n_streams == 0) { /* the first stream usually holds most entries */
        pthread_mutex_lock(&spare.mu);
        s->entries = spare.entries;
        s->cap = spare.entries ? spare.entries_cap : 0;
        spare.entries = NULL;
        pthread_mutex_unlock(&spare.mu);
    }
    s->labels = malloc(len + 1);
    if (!s->labels) {
        free(s->entries);
        return NULL;
    }
    memcpy(s->labels, canon, len);
    s->labels[len] = '\0';
    s->labels_len = len;
    s->last_ts = INT64_MIN;
    if (bt_hmap_put_h(&b->index, canon, len, hash, (void *)(uintptr_t)(b->n_streams + 1), NULL)) {
        free(s->labels);
        free(s->entries);
        return NULL;
    }
    b->n_streams++;
    return s;
}

static size_t entry_size(const struct bt_entry *e)
{
    size_t n = e->line_len;
    for (size_t i = 0; i < e->n_meta; i++)
        n += e->meta[i].name_len + e->meta[i].value_len;
    return n;
}

int bt_batch_add(struct bt_batch *b, const char *canon, size_t canon_len, uint64_t hash,
                 const struct bt_entry *e)
{
    return bt_batch_add_stamped(b, canon, canon_len, hash, 0, e);
}

/* stamp: the entry's labels stamp (0: unknown). Entries of one stream mostly come in runs: the
 * same stamp as the last entry's finds its stream without hashing or comparing the string. */
int bt_batch_add_stamped(struct bt_batch *b, const char *canon, size_t canon_len, uint64_t hash,
                         uint64_t stamp, const struct bt_entry *e)
{
    struct bt_batch_stream *s;
    if (stamp && stamp == b->last_stamp) {
        s = &b->streams[b->last_stream];
    } else {
        s = get_stream(b, canon, canon_len, hash);
        if (!s)
            return -ENOMEM;
        b->last_stamp = stamp;
        b->last_stream = (size_t)(s - b->streams);
    }
    if (s->n == s->cap) {
        size_t n = s->cap ? s->cap * 2 : 64;
        struct bt_batch_entry *ne = realloc(s->entries, n * sizeof(*ne));
        if (!ne)
            return -ENOMEM;
        s->entries = ne;
        s->cap = n;
    }
    if (b->n_meta + e->n_meta > b->cap_meta) {
        size_t n = b->cap_meta ? b->cap_meta : 16;
        while (n < b->n_meta + e->n_meta)
            n *= 2;
        struct bt_batch_meta *nm = realloc(b->meta, n * sizeof(*nm));
        if (!nm)
            return -ENOMEM;
        b->meta = nm;
        b->cap_meta = n;
    }
    size_t size = entry_size(e);
    if (bt_buf_reserve(&b->arena, size) < 0)
        return -ENOMEM;
    struct bt_batch_entry *be = &s->entries[s->n];
    be->ts_ns = e->ts_ns;
    be->line_off = b->arena.len;
    be->line_len = (uint32_t)e->line_len;
    be->n_meta = (uint32_t)e->n_meta;
    be->meta_idx = b->n_meta;
    bt_buf_add(&b->arena, e->line, e->line_len); /* reserved above: cannot fail */
    for (size_t i = 0; i < e->n_meta; i++) {
        struct bt_batch_meta *m = &b->meta[b->n_meta++];
        m->name_off = b->arena.len;
        m->name_len = (uint32_t)e->meta[i].name_len;
        bt_buf_add(&b->arena, e->meta[i].name, e->meta[i].name_len);
        m->value_off = b->arena.len;
        m->value_len = (uint32_t)e->meta[i].value_len;
        bt_buf_add(&b->arena, e->meta[i].value, e->meta[i].value_len);
    }
    if (add_ref(b, e->seg) < 0) {
        b->arena.len = be->line_off;
        b->n_meta = be->meta_idx;
        return -ENOMEM;
    }
    if (e->ts_ns < s->last_ts)
        s->unsorted = true;
    else
        s->last_ts = e->ts_ns;
    s->n++;
    b->n_entries++;
    b->bytes += size;
    return 0;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct bt_batch_entry *x = a, *y = b;
    if (x->ts_ns != y->ts_ns)
        return x->ts_ns < y->ts_ns ? -1 : 1;
    /* Stable without relying on qsort (glibc's is not stable from 2.37 on): arena offsets grow
     * in insertion order, but an entry with an empty line and no metadata takes no arena bytes,
     * so the next entry shares its line_off (and meta_idx). Only such zero-size entries can
     * precede another at the same offsets, so ordering ties by line_len, then n_meta, restores
     * insertion order for every pair that differs at all. */
    if (x->line_off != y->line_off)
        return x->line_off < y->line_off ? -1 : 1;
    if (x->meta_idx != y->meta_idx)
        return x->meta_idx < y->meta_idx ? -1 : 1;
    if (x->line_len != y->line_len)
        return x->line_len < y->line_len ? -1 : 1;
    return x->n_meta < y->n_meta ? -1 : x->n_meta > y->n_meta;
}

void bt_batch_seal(struct bt_batch *b)
{
    for (size_t i = 0; i < b->n_streams; i++) {
        struct bt_batch_stream *s = &b->streams[i];
        if (s->unsorted)
            qsort(s->entries, s->n, sizeof(s->entries[0]), cmp_entry);
        s->unsorted = false;
    }
}

struct bt_batcher *bt_batcher_new(const struct bt_batcher_config *cfg, bt_batch_ready_fn ready,
                                  bt_batch_drop_fn drop, void *ctx)
{
    struct bt_batcher *bb = calloc(1, sizeof(*bb));
    if (!bb)
        return NULL;
    bb->cfg = *cfg;
    if (!bb->cfg.batchsize)
        bb->cfg.batchsize = 1048576;
    if (bb->cfg.batchwait_ns <= 0)
        bb->cfg.batchwait_ns = 1000000000LL;
    bb->ready = ready;
    bb->drop = drop;
    bb->ctx = ctx;
    bt_hmap_init(&bb->merged);
    bt_labels_init(&bb->scratch);
    bt_hmap_init(&bb->ts);
    bt_buf_init(&bb->ts_key, (size_t)1 << 30);
    return bb;
}

/* Forgets streams without an entry since before cutoff (monotonic). */
static void ts_forget_idle(struct bt_batcher *bb, int64_t cutoff)
{
    size_t pos = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&bb->ts, &pos))) {
        struct ts_state *st = s->val;
        if (st->seen < cutoff) {
            bt_hmap_del(&bb->ts, s->key, s->klen);
            if (st == bb->ts_last)
                bb->ts_last = NULL;
            memset(bb->ts_cache, 0, sizeof(bb->ts_cache));
            free(st);
        }
    }
}

static inline size_t ts_cache_index(uint64_t stamp)
{
    return (size_t)((stamp * 0x9e3779b97f4a7c15ull) >> (64 - TS_CACHE_BITS));
}

/* The timestamp state of a stream, made (with its lane) if new. NULL on ENOMEM. */
static struct ts_state *ts_state_get(struct bt_batcher *bb, const char *tenant, const char *canon,
                                     size_t clen, int64_t ts, int64_t now_mono)
{
    struct bt_buf *k = &bb->ts_key;
    size_t tlen = strlen(tenant) + 1;
    struct ts_state *st = bb->ts_last;
    if (st && k->len == tlen + clen && memcmp(k->ptr + tlen, canon, clen) == 0 &&
        memcmp(k->ptr, tenant, tlen) == 0)
        return st;
    bb->ts_last = NULL;
    bt_buf_reset(k);
    if (bt_buf_add(k, tenant, tlen) || bt_buf_add(k, canon, clen))
        return NULL;
    st = bt_hmap_get(&bb->ts, k->ptr, k->len);
    if (!st) {
        if (bb->ts.n >= TS_MAX_STREAMS)
            ts_forget_idle(bb, now_mono - TS_CROWDED_IDLE_NS);
        st = malloc(sizeof(*st));
        if (!st || bt_hmap_put(&bb->ts, k->ptr, k->len, st, NULL)) {
            free(st);
            return NULL;
        }
        uint32_t lanes = bb->cfg.lanes > 1 ? (uint32_t)bb->cfg.lanes : 1;
        *st = (struct ts_state){.last_in = ts,
                                .last_out = ts,
                                .seen = now_mono,
                                .lane = bb->next_lane++ % lanes,
                                .fresh = true};
    }
    bb->ts_last = st;
    return st;
}

/* The timestamp an entry with timestamp ts is sent with (rule in batch.h), remembered. */
static int64_t ts_stamp(struct ts_state *st, int64_t ts, int64_t now_mono)
{
    int64_t t = ts;
    if (st->fresh)
        st->fresh = false;
    else if (ts >= st->last_in && ts <= st->last_out && st->last_out < INT64_MAX)
        t = st->last_out + 1;
    st->last_in = ts;
    st->last_out = t;
    st->seen = now_mono;
    return t;
}

void bt_batcher_free(struct bt_batcher *bb)
{
    if (!bb)
        return;
    for (size_t i = 0; i < bb->n_slots; i++) {
        if (bb->slots[i].open) {
            bb->slots[i].open->outcome = BT_PUSH_ABANDONED;
            bt_batch_release(bb->slots[i].open);
        }
        free(bb->slots[i].tenant);
    }
    free(bb->slots);
    size_t pos = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&bb->merged, &pos))) {
        struct merged_canon *mc = s->val;
        free(mc->s);
        free(mc);
    }
    bt_hmap_free(&bb->merged);
    bt_labels_free(&bb->scratch);
    pos = 0;
    while ((s = bt_hmap_next(&bb->ts, &pos)))
        free(s->val);
    bt_hmap_free(&bb->ts);
    bt_buf_free(&bb->ts_key);
    free(bb);
}

static struct tenant_slot *get_slot(struct bt_batcher *bb, const char *tenant, size_t lane)
{
    for (size_t i = 0; i < bb->n_slots; i++)
        if (bb->slots[i].lane == lane && strcmp(bb->slots[i].tenant, tenant) == 0)
            return &bb->slots[i];
    if (bb->n_slots == bb->cap_slots) {
        size_t n = bb->cap_slots ? bb->cap_slots * 2 : 4;
        struct tenant_slot *ns = realloc(bb->slots, n * sizeof(*ns));
        if (!ns)
            return NULL;
        bb->slots = ns;
        bb->cap_slots = n;
    }
    char *t = strdup(tenant);
    if (!t)
        return NULL;
    bb->slots[bb->n_slots] = (struct tenant_slot){t, lane, NULL};
    return &bb->slots[bb->n_slots++];
}

static void seal(struct bt_batcher *bb, struct tenant_slot *slot)
{
    struct bt_batch *b = slot->open;
    if (!b)
        return;
    slot->open = NULL;
    bb->bytes -= b->bytes;
    bt_batch_seal(b);
    bb->ready(bb->ctx, b);
}

/* Canonical labels for e with external labels merged under; cached per entry label set. */
static const struct merged_canon *merged_canon(struct bt_batcher *bb, struct bt_labels *l)
{
    size_t len;
    const char *canon = bt_labels_canon(l, &len);
    if (!canon)
        return NULL;
    uint64_t h = bt_labels_hash(l);
    struct merged_canon *mc = bt_hmap_get_h(&bb->merged, canon, len, h);
    if (mc)
        return mc;
    mc = calloc(1, sizeof(*mc));
    if (!mc)
        return NULL;
    if (bt_labels_copy(&bb->scratch, l) || bt_labels_merge_under(&bb->scratch, bb->cfg.external))
        goto fail;
    size_t mlen;
    const char *m = bt_labels_canon(&bb->scratch, &mlen);
    if (!m || !(mc->s = malloc(mlen + 1)))
        goto fail;
    memcpy(mc->s, m, mlen + 1);
    mc->len = mlen;
    mc->hash = bt_labels_hash(&bb->scratch);
    if (bb->merged.n > 100000) { /* unbounded label churn: start over rather than grow */
        size_t pos = 0;
        struct bt_hmap_slot *s;
        while ((s = bt_hmap_next(&bb->merged, &pos))) {
            struct merged_canon *o = s->val;
            free(o->s);
            free(o);
        }
        bt_hmap_free(&bb->merged);
        bt_hmap_init(&bb->merged);
    }
    if (bt_hmap_put_h(&bb->merged, canon, len, h, mc, NULL))
        goto fail;
    return mc;
fail:
    free(mc->s);
    free(mc);
    return NULL;
}

int bt_batcher_add(struct bt_batcher *bb, const struct bt_entry *e, int64_t now_mono)
{
    const char *canon = NULL;
    size_t clen = 0;
    uint64_t hash = 0, stamp = 0;
    struct ts_state *st = NULL;
    const char *tenant = NULL;
    if (!(bb->cfg.external && bb->cfg.external->n)) {
        canon = bt_labels_canon(e->labels, &clen);
        if (!canon)
            return -ENOMEM;
        hash = e->labels->hash;
        stamp = e->labels->stamp;
        /* A set seen lately: same tenant and stream state, no lookups. The tenant is then
         * read from the stream's slot, never from a set that may be gone. */
        if (stamp && bb->ts_cache[ts_cache_index(stamp)].stamp == stamp)
            st = bb->ts_cache[ts_cache_index(stamp)].st;
    }
    if (st && st->slot) {
        tenant = bb->slots[st->slot - 1].tenant;
    } else {
        tenant = bt_labels_get(e->labels, BT_TENANT_LABEL);
        if (!tenant)
            tenant = bb->cfg.tenant_id ? bb->cfg.tenant_id : "";
    }
    if (bb->cfg.external && bb->cfg.external->n) {
        const struct merged_canon *mc = merged_canon(bb, e->labels);
        if (!mc)
            return -ENOMEM;
        canon = mc->s;
        clen = mc->len;
        hash = mc->hash;
    }
    if (clen <= 2) {
        /* Loki rejects a stream without labels; count it instead of sending a doomed batch. */
        if (bb->drop)
            bb->drop(bb->ctx, e, "empty_labels");
        return 0;
    }
    /* A stream keeps its lane while it is remembered; a stream forgotten and seen again may
     * land in another, which costs only concurrency: the client never has two requests with
     * a stream in common in flight (push/gate.h). */
    if (!st) {
        if (!(st = ts_state_get(bb, tenant, canon, clen, e->ts_ns, now_mono)))
            return -ENOMEM;
        if (stamp) {
            bb->ts_cache[ts_cache_index(stamp)].stamp = stamp;
            bb->ts_cache[ts_cache_index(stamp)].st = st;
        }
    }
    struct tenant_slot *slot;
    if (st->slot) {
        slot = &bb->slots[st->slot - 1];
    } else {
        if (!(slot = get_slot(bb, tenant, st->lane)))
            return -ENOMEM;
        st->slot = (size_t)(slot - bb->slots) + 1;
    }
    size_t size = entry_size(e);
    struct bt_batch *b = slot->open;
    if (b && b->n_entries && b->bytes + size > bb->cfg.batchsize) {
        seal(bb, slot);
        b = NULL;
    }
    if (b && bb->cfg.max_streams && b->n_streams >= bb->cfg.max_streams &&
        !bt_hmap_get_h(&b->index, canon, clen, hash)) {
        if (bb->drop)
            bb->drop(bb->ctx, e, "stream_limited");
        return 0;
    }
    struct bt_entry stamped = *e;
    stamped.ts_ns = ts_stamp(st, e->ts_ns, now_mono);
    if (!b) {
        b = slot->open = bt_batch_new(tenant);
        if (!b)
            return -ENOMEM;
        b->created_ns = now_mono;
        /* The arena reaches batchsize unless batchwait seals it first: take it at once rather
         * than doubling up to it, which copied every line once more. Untouched pages of a
         * batch sealed early cost no memory. Failing here is not an error yet. */
        bt_buf_reserve(&b->arena, bb->cfg.batchsize < ARENA_RESERVE_MAX ? bb->cfg.batchsize
                                                                        : ARENA_RESERVE_MAX);
    }
    size_t before = b->bytes;
    int rc = bt_batch_add_stamped(b, canon, clen, hash, stamp, &stamped);
    if (rc)
        return rc;
    bb->bytes += b->bytes - before;
    if (b->bytes >= bb->cfg.batchsize)
        seal(bb, slot);
    return 0;
}

void bt_batcher_tick(struct bt_batcher *bb, int64_t now_mono)
{
    if (now_mono - bb->ts_swept >= TS_SWEEP_NS) {
        bb->ts_swept = now_mono;
        ts_forget_idle(bb, now_mono - TS_IDLE_NS);
    }
    for (size_t i = 0; i < bb->n_slots; i++) {
        struct bt_batch *b = bb->slots[i].open;
        if (b && now_mono - b->created_ns >= bb->cfg.batchwait_ns)
            seal(bb, &bb->slots[i]);
    }
}

int64_t bt_batcher_deadline(const struct bt_batcher *bb)
{
    int64_t d = INT64_MAX;
    for (size_t i = 0; i < bb->n_slots; i++) {
        struct bt_batch *b = bb->slots[i].open;
        if (b && b->created_ns + bb->cfg.batchwait_ns < d)
            d = b->created_ns + bb->cfg.batchwait_ns;
    }
    return d;
}

void bt_batcher_flush(struct bt_batcher *bb)
{
    for (size_t i = 0; i < bb->n_slots; i++)
        seal(bb, &bb->slots[i]);
}

size_t bt_batcher_bytes(const struct bt_batcher *bb)
{
    return bb->bytes;
}

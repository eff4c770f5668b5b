#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/ack.h"
#include "push/batch.h"
#include "core/entry.h"
#include "core/labels.h"
#include "util/timeutil.h"

/* Collects what the batcher hands out. */
struct sink {
    struct bt_batch *ready[64];
    size_t n_ready;
    const char *drops[64];
    size_t n_drops;
};

static void on_ready(void *ctx, struct bt_batch *b)
{
    struct sink *s = ctx;
    cr_assert_lt(s->n_ready, 64);
    s->ready[s->n_ready++] = b;
}

static void on_drop(void *ctx, const struct bt_entry *e, const char *reason)
{
    struct sink *s = ctx;
    cr_assert_lt(s->n_drops, 64);
    s->drops[s->n_drops++] = reason;
}

static void sink_free(struct sink *s, enum bt_push_outcome how)
{
    for (size_t i = 0; i < s->n_ready; i++) {
        s->ready[i]->outcome = how;
        bt_batch_release(s->ready[i]);
    }
    s->n_ready = 0;
}

static struct bt_entry entry(struct bt_labels *l, int64_t ts, const char *line)
{
    return (struct bt_entry){.labels = l, .ts_ns = ts, .line = line, .line_len = strlen(line)};
}

static const char *line_of(const struct bt_batch *b, const struct bt_batch_entry *e)
{
    static char buf[256];
    memcpy(buf, b->arena.ptr + e->line_off, e->line_len);
    buf[e->line_len] = '\0';
    return buf;
}

Test(batch, seals_before_passing_batchsize_and_keeps_the_entry)
{
    struct sink s = {0};
    struct bt_batcher_config cfg = {.batchsize = 100, .batchwait_ns = BT_NS_PER_SEC};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready, on_drop, &s);
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "a");
    char line[41];
    memset(line, 'x', 40);
    line[40] = '\0';
    struct bt_entry e = entry(&l, 1, line);
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    cr_assert_eq(s.n_ready, 0);
    cr_assert_eq(bt_batcher_bytes(bb), 80);
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0); /* 120 > 100: the first two go out */
    cr_assert_eq(s.n_ready, 1);
    cr_assert_eq(s.ready[0]->n_entries, 2);
    cr_assert_eq(s.ready[0]->bytes, 80);
    cr_assert_eq(bt_batcher_bytes(bb), 40);
    bt_batcher_flush(bb);
    cr_assert_eq(s.n_ready, 2);
    cr_assert_eq(s.ready[1]->n_entries, 1);
    cr_assert_eq(bt_batcher_bytes(bb), 0);
    sink_free(&s, BT_PUSH_OK);
    bt_labels_free(&l);
    bt_batcher_free(bb);
}

Test(batch, entry_larger_than_batchsize_goes_out_alone)
{
    struct sink s = {0};
    struct bt_batcher_config cfg = {.batchsize = 10, .batchwait_ns = BT_NS_PER_SEC};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready, on_drop, &s);
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "a");
    struct bt_entry small = entry(&l, 1, "abc");
    struct bt_entry big = entry(&l, 2, "a line longer than ten bytes");
    cr_assert_eq(bt_batcher_add(bb, &small, 0), 0);
    cr_assert_eq(bt_batcher_add(bb, &big, 0), 0);
    bt_batcher_flush(bb);
    cr_assert_eq(s.n_ready, 2);
    cr_assert_eq(s.ready[0]->n_entries, 1);
    cr_assert_eq(s.ready[1]->n_entries, 1);
    cr_assert_str_eq(line_of(s.ready[1], &s.ready[1]->streams[0].entries[0]),
                     "a line longer than ten bytes");
    sink_free(&s, BT_PUSH_OK);
    bt_labels_free(&l);
    bt_batcher_free(bb);
}

Test(batch, metadata_bytes_count_towards_batchsize)
{
    struct sink s = {0};
    struct bt_batcher_config cfg = {.batchsize = 20, .batchwait_ns = BT_NS_PER_SEC};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready, on_drop, &s);
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "a");
    struct bt_kv kv = {"trace_id", 8, "12345678", 8};
    struct bt_entry e = entry(&l, 1, "abc");
    e.meta = &kv;
    e.n_meta = 1;
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    cr_assert_eq(bt_batcher_bytes(bb), 19);
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    cr_assert_eq(s.n_ready, 1, "19 + 19 > 20 must seal the first batch");
    struct bt_batch *b = s.ready[0];
    const struct bt_batch_meta *m = &b->meta[b->streams[0].entries[0].meta_idx];
    cr_assert_eq(memcmp(b->arena.ptr + m->name_off, "trace_id", 8), 0);
    cr_assert_eq(memcmp(b->arena.ptr + m->value_off, "12345678", 8), 0);
    bt_batcher_flush(bb);
    sink_free(&s, BT_PUSH_OK);
    bt_labels_free(&l);
    bt_batcher_free(bb);
}

Test(batch, tick_seals_only_batches_at_least_batchwait_old)
{
    struct sink s = {0};
    struct bt_batcher_config cfg = {.batchsize = 1 << 20, .batchwait_ns = 1000};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready, on_drop, &s);
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "a");
    struct bt_entry e = entry(&l, 1, "x");
    cr_assert_eq(bt_batcher_deadline(bb), INT64_MAX);
    cr_assert_eq(bt_batcher_add(bb, &e, 5000), 0);
    cr_assert_eq(bt_batcher_deadline(bb), 6000);
    cr_assert_eq(bt_batcher_add(bb, &e, 5900), 0); /* joins; the clock is the batch's creation */
    bt_batcher_tick(bb, 5999);
    cr_assert_eq(s.n_ready, 0);
    bt_batcher_tick(bb, 6000);
    cr_assert_eq(s.n_ready, 1);
    cr_assert_eq(s.ready[0]->n_entries, 2);
    cr_assert_eq(bt_batcher_deadline(bb), INT64_MAX);
    bt_batcher_tick(bb, 100000); /* nothing open: nothing sealed */
    cr_assert_eq(s.n_ready, 1);
    sink_free(&s, BT_PUSH_OK);
    bt_labels_free(&l);
    bt_batcher_free(bb);
}

Test(batch, tenant_label_splits_batches_and_is_not_sent)
{
    struct sink s = {0};
    struct bt_batcher_config cfg = {
        .batchsize = 1 << 20, .batchwait_ns = 1000, .tenant_id = "default"};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready, on_drop, &s);
    struct bt_labels a, b, none;
    bt_labels_init(&a);
    bt_labels_init(&b);
    bt_labels_init(&none);
    bt_labels_set(&a, "job", "x");
    bt_labels_set(&a, BT_TENANT_LABEL, "team-a");
    bt_labels_set(&b, "job", "x");
    bt_labels_set(&b, BT_TENANT_LABEL, "team-b");
    bt_labels_set(&none, "job", "x");
    struct bt_entry ea = entry(&a, 1, "for a"), eb = entry(&b, 2, "for b"),
                    en = entry(&none, 3, "for default");
    cr_assert_eq(bt_batcher_add(bb, &ea, 0), 0);
    cr_assert_eq(bt_batcher_add(bb, &eb, 0), 0);
    cr_assert_eq(bt_batcher_add(bb, &en, 0), 0);
    cr_assert_eq(bt_batcher_add(bb, &ea, 0), 0);
    bt_batcher_flush(bb);
    cr_assert_eq(s.n_ready, 3);
    int seen = 0;
    for (size_t i = 0; i < s.n_ready; i++) {
        struct bt_batch *x = s.ready[i];
        cr_assert_eq(x->n_streams, 1);
        cr_assert_str_eq(x->streams[0].labels, "{job=\"x\"}");
        if (strcmp(x->tenant, "team-a") == 0) {
            cr_assert_eq(x->n_entries, 2);
            seen |= 1;
        } else if (strcmp(x->tenant, "team-b") == 0) {
            cr_assert_eq(x->n_entries, 1);
            seen |= 2;
        } else if (strcmp(x->tenant, "default") == 0) {
            cr_assert_str_eq(line_of(x, &x->streams[0].entries[0]), "for default");
            seen |= 4;
        }
    }
    cr_assert_eq(seen, 7);
    sink_free(&s, BT_PUSH_OK);
    bt_labels_free(&a);
    bt_labels_free(&b);
    bt_labels_free(&none);
    bt_batcher_free(bb);
}

/* The batcher remembers the last label set by its stamp: one set changed in place between
 * entries (a pipeline's scratch set), its tenant changed, a copy, and the set freed and
 * another made at the same address each land where their labels say. */
Test(batch, a_label_set_changed_in_place_or_reused_is_never_taken_for_the_last_one)
{
    struct sink s = {0};
    struct bt_batcher_config cfg = {.batchsize = 1 << 20, .batchwait_ns = 1000};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready, on_drop, &s);
    struct bt_labels l, copy;
    bt_labels_init(&l);
    bt_labels_init(&copy);
    bt_labels_set(&l, "job", "a");
    struct bt_entry e = entry(&l, 1, "a1");
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    e = entry(&l, 2, "a2");
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    bt_labels_set(&l, "job", "b"); /* same address, other stream */
    e = entry(&l, 3, "b1");
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    bt_labels_set(&l, "job", "a");
    uint64_t stamp_a = (bt_labels_canon(&l, NULL), l.stamp);
    e = entry(&l, 4, "a3");
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    cr_assert_eq(bt_labels_copy(&copy, &l), 0);
    cr_assert_eq(copy.stamp, stamp_a, "a clean copy shares the stamp");
    e = entry(&copy, 5, "a4");
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    bt_labels_set(&l, BT_TENANT_LABEL, "t2"); /* same stream labels, other tenant */
    e = entry(&l, 6, "a-t2");
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    cr_assert_neq(l.stamp, stamp_a);
    bt_labels_free(&l);
    bt_labels_init(&l); /* the same address, a new set */
    bt_labels_set(&l, "job", "c");
    e = entry(&l, 7, "c1");
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    bt_batcher_flush(bb);
    cr_assert_eq(s.n_ready, 2);
    for (size_t i = 0; i < s.n_ready; i++) {
        struct bt_batch *x = s.ready[i];
        if (strcmp(x->tenant, "t2") == 0) {
            cr_assert_eq(x->n_streams, 1);
            cr_assert_str_eq(x->streams[0].labels, "{job=\"a\"}");
            cr_assert_eq(x->streams[0].n, 1);
            continue;
        }
        cr_assert_str_eq(x->tenant, "");
        cr_assert_eq(x->n_streams, 3);
        for (size_t k = 0; k < x->n_streams; k++) {
            const struct bt_batch_stream *st = &x->streams[k];
            if (strcmp(st->labels, "{job=\"a\"}") == 0) {
                cr_assert_eq(st->n, 4);
                cr_assert_str_eq(line_of(x, &st->entries[3]), "a4");
            } else if (strcmp(st->labels, "{job=\"b\"}") == 0) {
                cr_assert_eq(st->n, 1);
            } else {
                cr_assert_str_eq(st->labels, "{job=\"c\"}");
                cr_assert_eq(st->n, 1);
            }
        }
    }
    sink_free(&s, BT_PUSH_OK);
    bt_labels_free(&l);
    bt_labels_free(&copy);
    bt_batcher_free(bb);
}

Test(batch, external_labels_merge_under_entry_labels)
{
    struct sink s = {0};
    struct bt_labels ext;
    bt_labels_init(&ext);
    bt_labels_set(&ext, "cluster", "c1");
    bt_labels_set(&ext, "job", "from-external");
    struct bt_batcher_config cfg = {.batchsize = 1 << 20, .batchwait_ns = 1000, .external = &ext};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready, on_drop, &s);
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "varlogs");
    struct bt_entry e = entry(&l, 1, "x");
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0); /* second time from the cache */
    bt_labels_set(&l, "job", "other");
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    bt_batcher_flush(bb);
    cr_assert_eq(s.n_ready, 1);
    struct bt_batch *b = s.ready[0];
    cr_assert_eq(b->n_streams, 2);
    cr_assert_str_eq(b->streams[0].labels, "{cluster=\"c1\", job=\"varlogs\"}");
    cr_assert_eq(b->streams[0].n, 2);
    cr_assert_str_eq(b->streams[1].labels, "{cluster=\"c1\", job=\"other\"}");
    sink_free(&s, BT_PUSH_OK);
    bt_labels_free(&l);
    bt_labels_free(&ext);
    bt_batcher_free(bb);
}

Test(batch, entries_are_sorted_by_timestamp_within_a_stream_stably)
{
    struct sink s = {0};
    struct bt_batcher_config cfg = {.batchsize = 1 << 20, .batchwait_ns = 1000};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready, on_drop, &s);
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "a");
    const int64_t ts[] = {30, 10, 20, 10, 5};
    const char *lines[] = {"c", "a1", "b", "a2", "first"};
    for (int i = 0; i < 5; i++) {
        struct bt_entry e = entry(&l, ts[i], lines[i]);
        cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    }
    bt_batcher_flush(bb);
    struct bt_batch *b = s.ready[0];
    const char *want[] = {"first", "a1", "a2", "b", "c"};
    const int64_t want_ts[] = {5, 10, 10, 20, 30};
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(b->streams[0].entries[i].ts_ns, want_ts[i]);
        cr_assert_str_eq(line_of(b, &b->streams[0].entries[i]), want[i]);
    }
    sink_free(&s, BT_PUSH_OK);
    bt_labels_free(&l);
    bt_batcher_free(bb);
}

Test(batch, empty_line_keeps_its_place_among_equal_timestamps)
{
    /* An empty line takes no arena bytes, so the next line starts at the same offset; the
     * sort must still keep insertion order for equal timestamps. bt_batch_add directly: the
     * batcher would give the equal timestamps distinct values first. */
    struct bt_batch *b = bt_batch_new("");
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "a");
    size_t clen;
    const char *canon = bt_labels_canon(&l, &clen);
    const int64_t ts[] = {9, 7, 7, 7, 1};
    const char *lines[] = {"late", "", "", "after two empty lines", "early"};
    for (int i = 0; i < 5; i++) {
        struct bt_entry e = entry(&l, ts[i], lines[i]);
        cr_assert_eq(bt_batch_add(b, canon, clen, bt_labels_hash(&l), &e), 0);
    }
    bt_batch_seal(b);
    const char *want[] = {"early", "", "", "after two empty lines", "late"};
    for (int i = 0; i < 5; i++)
        cr_assert_str_eq(line_of(b, &b->streams[0].entries[i]), want[i], "entry %d", i);
    b->outcome = BT_PUSH_OK;
    bt_batch_release(b);
    bt_labels_free(&l);
}

/* ---- entry timestamps (batch.h): no (stream, timestamp, line) sent twice ---------------- */

/* Appends the timestamps of stream `labels` in every ready batch, in order, to out. */
static size_t collect_ts(const struct sink *s, const char *labels, int64_t *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_ready; i++)
        for (size_t j = 0; j < s->ready[i]->n_streams; j++) {
            const struct bt_batch_stream *st = &s->ready[i]->streams[j];
            if (strcmp(st->labels, labels) != 0)
                continue;
            for (size_t k = 0; k < st->n && n < max; k++)
                out[n++] = st->entries[k].ts_ns;
        }
    return n;
}

/* Like struct sink, with room for many batches. */
struct big_sink {
    struct sink s;
    struct bt_batch *more[4096];
    size_t n_more;
};

static void on_ready_big(void *ctx, struct bt_batch *b)
{
    struct big_sink *s = ctx;
    if (s->s.n_ready < 64) {
        s->s.ready[s->s.n_ready++] = b;
        return;
    }
    cr_assert_lt(s->n_more, 4096);
    s->more[s->n_more++] = b;
}

Test(batch, identical_lines_of_one_read_get_distinct_increasing_timestamps)
{
    /* 5,000 identical lines stamped with one read time: Loki would keep one. */
    struct sink s = {0};
    struct bt_batcher_config cfg = {.batchsize = 1 << 20, .batchwait_ns = BT_NS_PER_SEC};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready, on_drop, &s);
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "a");
    const int64_t t = 1700000000123456789LL;
    for (int i = 0; i < 5000; i++) {
        struct bt_entry e = entry(&l, t, "GET /healthz 200 0.001");
        cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    }
    /* The next read, a few microseconds later but inside the run: still after it. */
    struct bt_entry next = entry(&l, t + 3000, "GET /healthz 200 0.001");
    cr_assert_eq(bt_batcher_add(bb, &next, 0), 0);
    bt_batcher_flush(bb);
    cr_assert_eq(s.n_ready, 1);
    static int64_t got[6000];
    size_t n = collect_ts(&s, "{job=\"a\"}", got, 6000);
    cr_assert_eq(n, 5001);
    for (size_t i = 0; i < 5000; i++)
        cr_assert_eq(got[i], t + (int64_t)i, "entry %zu: %lld", i, (long long)got[i]);
    cr_assert_eq(got[5000], t + 5000);
    sink_free(&s, BT_PUSH_OK);
    bt_labels_free(&l);
    bt_batcher_free(bb);
}

Test(batch, streams_and_tenants_are_stamped_independently)
{
    struct sink s = {0};
    struct bt_batcher_config cfg = {.batchsize = 1 << 20, .batchwait_ns = BT_NS_PER_SEC};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready, on_drop, &s);
    struct bt_labels a, b, ta;
    bt_labels_init(&a);
    bt_labels_init(&b);
    bt_labels_init(&ta);
    bt_labels_set(&a, "job", "a");
    bt_labels_set(&b, "job", "b");
    bt_labels_set(&ta, "job", "a");
    bt_labels_set(&ta, BT_TENANT_LABEL, "t1"); /* same labels as a, another tenant */
    for (int i = 0; i < 100; i++) {
        struct bt_entry ea = entry(&a, 1000, "x"), eb = entry(&b, 1000, "x"),
                        et = entry(&ta, 1000, "x");
        cr_assert_eq(bt_batcher_add(bb, &ea, 0), 0);
        cr_assert_eq(bt_batcher_add(bb, &eb, 0), 0);
        cr_assert_eq(bt_batcher_add(bb, &et, 0), 0);
    }
    bt_batcher_flush(bb);
    cr_assert_eq(s.n_ready, 2); /* one batch per tenant */
    int64_t ga[200], gb[200];
    for (size_t r = 0; r < 2; r++) {
        struct sink one = {.ready = {s.ready[r]}, .n_ready = 1};
        cr_assert_eq(collect_ts(&one, "{job=\"a\"}", ga, 200), r == 0 ? 100 : 100);
        for (int i = 0; i < 100; i++)
            cr_assert_eq(ga[i], 1000 + i, "tenant batch %zu entry %d", r, i);
    }
    cr_assert_eq(collect_ts(&s, "{job=\"b\"}", gb, 200), 100);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(gb[i], 1000 + i);
    sink_free(&s, BT_PUSH_OK);
    bt_labels_free(&a);
    bt_labels_free(&b);
    bt_labels_free(&ta);
    bt_batcher_free(bb);
}

/* More interleaved streams than the batcher remembers by stamp, so cache slots collide and
 * are taken over: every stream still keeps its own timestamps and tenant. */
Test(batch, many_interleaved_streams_are_stamped_independently)
{
    struct big_sink bs = {0};
    struct bt_batcher_config cfg = {.batchsize = 1 << 20, .batchwait_ns = BT_NS_PER_SEC};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready_big, on_drop, &bs);
    enum { NS = 40, ROUNDS = 50 };
    static struct bt_labels l[NS];
    for (int k = 0; k < NS; k++) {
        char v[16];
        snprintf(v, sizeof(v), "s%02d", k);
        bt_labels_init(&l[k]);
        bt_labels_set(&l[k], "job", v);
        if (k % 2)
            bt_labels_set(&l[k], BT_TENANT_LABEL, "odd");
        bt_labels_canon(&l[k], NULL);
    }
    for (int i = 0; i < ROUNDS; i++)
        for (int k = 0; k < NS; k++) {
            int j = (k * 7 + i) % NS; /* a different order each round */
            struct bt_entry e = entry(&l[j], 5000, "x");
            cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
        }
    bt_batcher_flush(bb);
    cr_assert_eq(bs.s.n_ready, 2);
    for (int k = 0; k < NS; k++) {
        char want[32];
        snprintf(want, sizeof(want), "{job=\"s%02d\"}", k);
        const char *tenant = k % 2 ? "odd" : "";
        for (size_t r = 0; r < bs.s.n_ready; r++) {
            struct sink one = {.ready = {bs.s.ready[r]}, .n_ready = 1};
            int64_t got[ROUNDS + 1];
            size_t n = collect_ts(&one, want, got, ROUNDS + 1);
            if (strcmp(bs.s.ready[r]->tenant, tenant) != 0) {
                cr_assert_eq(n, 0, "%s in tenant %s", want, bs.s.ready[r]->tenant);
                continue;
            }
            cr_assert_eq(n, ROUNDS, "%s: %zu entries", want, n);
            for (int i = 0; i < ROUNDS; i++)
                cr_assert_eq(got[i], 5000 + i, "%s entry %d: %lld", want, i, (long long)got[i]);
        }
    }
    sink_free(&bs.s, BT_PUSH_OK);
    for (int k = 0; k < NS; k++)
        bt_labels_free(&l[k]);
    bt_batcher_free(bb);
}

Test(batch, stamping_continues_across_batches)
{
    struct big_sink bs = {0};
    /* 10-byte lines, 100-byte batches: a new batch every 10 entries. */
    struct bt_batcher_config cfg = {.batchsize = 100, .batchwait_ns = BT_NS_PER_SEC};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready_big, on_drop, &bs);
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "a");
    for (int i = 0; i < 1000; i++) {
        struct bt_entry e = entry(&l, 500, "0123456789");
        cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
        if (i == 500) {
            bt_batcher_flush(bb);               /* sealed by time, not size */
            bt_batcher_tick(bb, BT_NS_PER_SEC); /* a tick soon after forgets nothing */
        }
    }
    bt_batcher_flush(bb);
    cr_assert_gt(bs.s.n_ready + bs.n_more, 90);
    int64_t prev = 499;
    size_t n = 0;
    for (size_t i = 0; i < bs.s.n_ready + bs.n_more; i++) {
        struct bt_batch *b = i < bs.s.n_ready ? bs.s.ready[i] : bs.more[i - bs.s.n_ready];
        for (size_t k = 0; k < b->streams[0].n; k++, n++) {
            cr_assert_eq(b->streams[0].entries[k].ts_ns, prev + 1, "entry %zu", n);
            prev = b->streams[0].entries[k].ts_ns;
        }
        b->outcome = BT_PUSH_OK;
        bt_batch_release(b);
    }
    cr_assert_eq(n, 1000);
    bt_labels_free(&l);
    bt_batcher_free(bb);
}

Test(batch, explicit_equal_timestamps_are_bumped_and_older_ones_kept)
{
    /* Timestamps as a timestamp, docker or cri stage would set them. */
    struct sink s = {0};
    struct bt_batcher_config cfg = {.batchsize = 1 << 20, .batchwait_ns = BT_NS_PER_SEC};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready, on_drop, &s);
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "a");
    const int64_t in[] = {100, 100, 100, 101, 50, 50, 200, 150, 150, 300};
    /* 101 falls inside the run 100..102: after it. 50 is older than its predecessor: kept
     * (Loki accepts it within its window), and its own run starts there. 150 is older than
     * 200: kept. 300 is newer than anything: kept. */
    const int64_t want[] = {100, 101, 102, 103, 50, 51, 200, 150, 151, 300};
    for (int i = 0; i < 10; i++) {
        struct bt_entry e = entry(&l, in[i], "same line");
        cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
        /* what goes out is sorted at seal; check what each entry was given */
        cr_assert_eq(bt_batcher_bytes(bb), (size_t)(i + 1) * 9);
    }
    bt_batcher_flush(bb);
    int64_t got[10];
    cr_assert_eq(collect_ts(&s, "{job=\"a\"}", got, 10), 10);
    int64_t sorted[10];
    memcpy(sorted, want, sizeof(want));
    for (int i = 1; i < 10; i++) /* insertion sort: the batch is sorted when sealed */
        for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            int64_t x = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = x;
        }
    for (int i = 0; i < 10; i++)
        cr_assert_eq(got[i], sorted[i], "entry %d: %lld", i, (long long)got[i]);
    for (int i = 1; i < 10; i++)
        cr_assert_neq(got[i], got[i - 1], "a (stream, ts, line) triple repeats");
    sink_free(&s, BT_PUSH_OK);
    bt_labels_free(&l);
    bt_batcher_free(bb);
}

Test(batch, idle_streams_are_forgotten)
{
    struct sink s = {0};
    struct bt_batcher_config cfg = {.batchsize = 1 << 20, .batchwait_ns = BT_NS_PER_SEC};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready, on_drop, &s);
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "a");
    const int64_t min = 60 * BT_NS_PER_SEC;
    struct bt_entry e = entry(&l, 7, "x");
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);        /* 8 */
    bt_batcher_tick(bb, 4 * min);                      /* idle 4 minutes: remembered */
    cr_assert_eq(bt_batcher_add(bb, &e, 4 * min), 0);  /* 9 */
    bt_batcher_tick(bb, 10 * min);                     /* idle 6 minutes: forgotten */
    cr_assert_eq(bt_batcher_add(bb, &e, 10 * min), 0); /* 7 again */
    bt_batcher_flush(bb);
    int64_t got[8];
    cr_assert_eq(collect_ts(&s, "{job=\"a\"}", got, 8), 4);
    /* Each tick sealed the open batch: one batch per step, in this order. */
    cr_assert_eq(s.n_ready, 3);
    cr_assert_eq(got[0], 7);
    cr_assert_eq(got[1], 8);
    cr_assert_eq(got[2], 9);
    cr_assert_eq(got[3], 7);
    sink_free(&s, BT_PUSH_OK);
    bt_labels_free(&l);
    bt_batcher_free(bb);
}

Test(batch, max_streams_drops_entries_of_new_streams_only)
{
    struct sink s = {0};
    struct bt_batcher_config cfg = {.batchsize = 1 << 20, .batchwait_ns = 1000, .max_streams = 2};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready, on_drop, &s);
    struct bt_labels l;
    bt_labels_init(&l);
    const char *jobs[] = {"a", "b", "c", "a"};
    for (int i = 0; i < 4; i++) {
        bt_labels_set(&l, "job", jobs[i]);
        struct bt_entry e = entry(&l, i, jobs[i]);
        cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    }
    cr_assert_eq(s.n_drops, 1);
    cr_assert_str_eq(s.drops[0], "stream_limited");
    bt_batcher_flush(bb);
    cr_assert_eq(s.n_ready, 1);
    cr_assert_eq(s.ready[0]->n_streams, 2);
    cr_assert_eq(s.ready[0]->n_entries, 3);
    sink_free(&s, BT_PUSH_OK);
    bt_labels_free(&l);
    bt_batcher_free(bb);
}

Test(batch, entry_without_visible_labels_is_dropped)
{
    struct sink s = {0};
    struct bt_batcher_config cfg = {.batchsize = 1 << 20, .batchwait_ns = 1000};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready, on_drop, &s);
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "__path__", "/x");
    struct bt_entry e = entry(&l, 1, "x");
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    cr_assert_eq(s.n_drops, 1);
    cr_assert_str_eq(s.drops[0], "empty_labels");
    bt_batcher_flush(bb);
    cr_assert_eq(s.n_ready, 0);
    bt_labels_free(&l);
    bt_batcher_free(bb);
}

static void on_commit(void *ctx, uint64_t committed)
{
    *(uint64_t *)ctx = committed;
}

/* Two segments of one source: the first in batch 1, the second in batch 2. */
static void two_batches(struct sink *s, struct bt_ack_owner **o, uint64_t *committed)
{
    struct bt_batcher_config cfg = {.batchsize = 1 << 20, .batchwait_ns = 1000};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready, on_drop, s);
    *o = bt_ack_owner_new(0, on_commit, committed);
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "a");
    struct bt_segment *s1 = bt_segment_new(*o, 0, 100);
    struct bt_segment *s2 = bt_segment_new(*o, 100, 250);
    struct bt_entry e = entry(&l, 1, "x");
    e.seg = s1;
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    bt_batcher_flush(bb);
    e.seg = s2;
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    bt_batcher_flush(bb);
    cr_assert_eq(s->n_ready, 2);
    cr_assert_eq(s->ready[0]->n_refs, 1, "references to one segment are coalesced");
    cr_assert_eq(s->ready[0]->refs[0].count, 2);
    /* The source is done emitting: it drops its own references. */
    bt_segment_unref(s1, 1);
    bt_segment_unref(s2, 1);
    cr_assert_eq(bt_ack_committed(*o), 0);
    bt_labels_free(&l);
    bt_batcher_free(bb);
}

Test(batch, releasing_ok_batches_advances_the_ack_owner_in_order)
{
    struct sink s = {0};
    struct bt_ack_owner *o;
    uint64_t committed = 0;
    two_batches(&s, &o, &committed);
    /* The second batch decided first: nothing moves past the first segment. */
    s.ready[1]->outcome = BT_PUSH_OK;
    bt_batch_release(s.ready[1]);
    cr_assert_eq(bt_ack_committed(o), 0);
    s.ready[0]->outcome = BT_PUSH_DROPPED; /* final drops also advance */
    bt_batch_release(s.ready[0]);
    cr_assert_eq(bt_ack_committed(o), 250);
    cr_assert_eq(committed, 250);
    bt_ack_owner_close(o);
}

Test(batch, releasing_abandoned_batch_does_not_advance)
{
    struct sink s = {0};
    struct bt_ack_owner *o;
    uint64_t committed = 0;
    two_batches(&s, &o, &committed);
    s.ready[0]->outcome = BT_PUSH_ABANDONED;
    bt_batch_release(s.ready[0]);
    s.ready[1]->outcome = BT_PUSH_ABANDONED;
    bt_batch_release(s.ready[1]);
    cr_assert_eq(bt_ack_committed(o), 0);
    cr_assert_eq(committed, 0);
    /* The abandoned segments are gone, and the offset stays before them for good. */
    cr_assert_eq(bt_ack_pending(o), 0);
    struct bt_segment *later = bt_segment_new(o, 1000, 1010);
    bt_segment_unref(later, 1);
    cr_assert_eq(bt_ack_committed(o), 0, "lines after abandoned ones must not commit them");
    bt_ack_owner_close(o);
}

Test(batch, freeing_the_batcher_does_not_ack_open_batches)
{
    struct sink s = {0};
    struct bt_batcher_config cfg = {.batchsize = 1 << 20, .batchwait_ns = 1000};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready, on_drop, &s);
    uint64_t committed = 0;
    struct bt_ack_owner *o = bt_ack_owner_new(0, on_commit, &committed);
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "a");
    struct bt_segment *seg = bt_segment_new(o, 0, 10);
    struct bt_entry e = entry(&l, 1, "x");
    e.seg = seg;
    cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
    bt_segment_unref(seg, 1);
    bt_batcher_free(bb);
    cr_assert_eq(bt_ack_committed(o), 0);
    cr_assert_eq(s.n_ready, 0);
    cr_assert_eq(bt_ack_pending(o), 0, "the open batch's reference was abandoned");
    bt_labels_free(&l);
    bt_ack_owner_close(o);
}

Test(batch, lanes_keep_each_stream_in_one_batch_of_its_own_lane)
{
    struct sink s = {0};
    struct bt_batcher_config cfg = {
        .batchsize = 1 << 20, .batchwait_ns = BT_NS_PER_SEC, .lanes = 4};
    struct bt_batcher *bb = bt_batcher_new(&cfg, on_ready, on_drop, &s);
    struct bt_labels l[16];
    char v[16];
    for (int i = 0; i < 16; i++) {
        bt_labels_init(&l[i]);
        snprintf(v, sizeof(v), "s%d", i);
        bt_labels_set(&l[i], "app", v);
    }
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 16; i++) {
            struct bt_entry e = entry(&l[i], round * 100 + i, "x");
            cr_assert_eq(bt_batcher_add(bb, &e, 0), 0);
        }
    bt_batcher_flush(bb);
    cr_assert_eq(s.n_ready, 4, "16 new streams take the 4 lanes in turn");
    size_t streams = 0, entries = 0;
    for (size_t i = 0; i < s.n_ready; i++) {
        streams += s.ready[i]->n_streams;
        entries += s.ready[i]->n_entries;
        cr_assert_eq(s.ready[i]->n_streams, 4);
        for (size_t k = 0; k < s.ready[i]->n_streams; k++)
            cr_assert_eq(s.ready[i]->streams[k].n, 3, "a stream was split across lanes");
    }
    cr_assert_eq(streams, 16, "each stream in exactly one batch");
    cr_assert_eq(entries, 48);
    sink_free(&s, BT_PUSH_OK);
    for (int i = 0; i < 16; i++)
        bt_labels_free(&l[i]);
    bt_batcher_free(bb);
}

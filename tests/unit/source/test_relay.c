#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ack.h"
#include "core/labels.h"
#include "core/loop.h"
#include "source/relay.h"
#include "util/buf.h"

/* What the sink saw: lines, timestamps, the canonical labels of each, and segments held. */
struct seen {
    char lines[4096][64];
    int64_t ts[4096];
    char labels[4096][128];
    char meta[4096][64];
    struct bt_segment *segs[4096];
    size_t n;
    bool hold;
};

static void sink(void *ctx, const struct bt_entry *e)
{
    struct seen *s = ctx;
    cr_assert_lt(s->n, 4096);
    snprintf(s->lines[s->n], sizeof(s->lines[0]), "%.*s", (int)e->line_len, e->line);
    s->ts[s->n] = e->ts_ns;
    size_t cl;
    snprintf(s->labels[s->n], sizeof(s->labels[0]), "%s|%s", bt_labels_canon(e->labels, &cl),
             bt_labels_get(e->labels, "__tenant_id__") ?: "");
    if (e->n_meta)
        snprintf(s->meta[s->n], sizeof(s->meta[0]), "%.*s=%.*s", (int)e->meta[0].name_len,
                 e->meta[0].name, (int)e->meta[0].value_len, e->meta[0].value);
    if (s->hold) {
        bt_segment_ref(e->seg, 1);
        s->segs[s->n] = e->seg;
    }
    s->n++;
}

static int spaces;
static void on_space(void *ctx)
{
    (void)ctx;
    spaces++;
}

static char dir[256];

static void mkdir_tmp(void)
{
    snprintf(dir, sizeof(dir), "/tmp/bt-relay-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void rm_tmp(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(relay, .init = mkdir_tmp, .fini = rm_tmp);

static struct bt_relay *open_relay(struct bt_loop *l, struct seen *s, uint64_t max)
{
    char err[256] = "", qdir[300];
    snprintf(qdir, sizeof(qdir), "%s/q", dir);
    struct bt_relay_config c = {.loop = l,
                                .job = "j",
                                .dir = qdir,
                                .max_bytes = max,
                                .sink = sink,
                                .ctx = s,
                                .on_space = on_space};
    struct bt_relay *r = bt_relay_new(&c, err, sizeof(err));
    cr_assert_not_null(r, "%s", err);
    return r;
}

static void put(struct bt_relay *r, int i, int rc_want)
{
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "x");
    bt_labels_set(&l, "__tenant_id__", "t1");
    char line[64];
    snprintf(line, sizeof(line), "line %d", i);
    struct bt_kv kv = {"trace", 5, "abc", 3};
    struct bt_entry e = {.labels = &l,
                         .ts_ns = 1000 + i,
                         .line = line,
                         .line_len = strlen(line),
                         .meta = &kv,
                         .n_meta = 1};
    cr_assert_eq(bt_relay_put(r, &e), rc_want, "put %d", i);
    bt_labels_free(&l);
}

static void spin(struct bt_loop *l, int rounds)
{
    for (int i = 0; i < rounds; i++)
        bt_loop_run_once(l, 0);
}

Test(relay, entries_come_back_whole_and_in_order)
{
    struct bt_loop *l = bt_loop_new();
    struct seen *s = calloc(1, sizeof(*s));
    struct bt_relay *r = open_relay(l, s, 0);
    for (int i = 0; i < 100; i++)
        put(r, i, 0);
    cr_assert_eq(bt_relay_flush(r), 0);
    spin(l, 5);
    cr_assert_eq(s->n, 100);
    for (int i = 0; i < 100; i++) {
        char want[32];
        snprintf(want, sizeof(want), "line %d", i);
        cr_assert_str_eq(s->lines[i], want);
        cr_assert_eq(s->ts[i], 1000 + i);
        cr_assert_str_eq(s->labels[i], "{job=\"x\"}|t1");
        cr_assert_str_eq(s->meta[i], "trace=abc");
    }
    bt_relay_free(r);
    bt_loop_free(l);
    free(s);
}

Test(relay, unacknowledged_entries_are_read_again_after_reopen)
{
    struct bt_loop *l = bt_loop_new();
    struct seen *s = calloc(1, sizeof(*s));
    s->hold = true; /* a batch holds every entry: nothing acknowledged */
    struct bt_relay *r = open_relay(l, s, 0);
    for (int i = 0; i < 10; i++)
        put(r, i, 0);
    bt_relay_flush(r);
    spin(l, 3);
    cr_assert_eq(s->n, 10);
    for (int i = 0; i < 4; i++) /* the first four are accepted */
        bt_segment_unref(s->segs[i], 1);
    bt_relay_free(r); /* as a crash would: the rest are not committed */
    for (int i = 4; i < 10; i++)
        bt_segment_unref(s->segs[i], 1); /* too late: the relay is gone */
    struct seen *s2 = calloc(1, sizeof(*s2));
    r = open_relay(l, s2, 0);
    spin(l, 3);
    cr_assert_eq(s2->n, 6, "read again: %zu", s2->n);
    cr_assert_str_eq(s2->lines[0], "line 4");
    cr_assert_str_eq(s2->lines[5], "line 9");
    bt_relay_free(r);
    bt_loop_free(l);
    free(s);
    free(s2);
}

Test(relay, full_queue_refuses_then_tells_when_there_is_room)
{
    struct bt_loop *l = bt_loop_new();
    struct seen *s = calloc(1, sizeof(*s));
    s->hold = true;
    spaces = 0;
    struct bt_relay *r = open_relay(l, s, 4096); /* segments of 512 bytes */
    int n = 0;
    while (!bt_relay_full(r, 64)) {
        put(r, n++, 0);
        cr_assert_lt(n, 1000);
    }
    put(r, n, -ENOSPC);
    bt_relay_flush(r);
    spin(l, 3);
    cr_assert_eq(s->n, (size_t)n);
    cr_assert_eq(spaces, 0);
    for (int i = 0; i < n; i++)
        bt_segment_unref(s->segs[i], 1);
    spin(l, 2);
    cr_assert_eq(spaces, 1);
    cr_assert_lt(bt_relay_bytes(r), 4096 / 4 * 3);
    put(r, n, 0);
    /* an entry larger than a quarter of the bound can never be queued */
    char big[2000];
    memset(big, 'b', sizeof(big));
    struct bt_labels lb;
    bt_labels_init(&lb);
    struct bt_entry e = {.labels = &lb, .line = big, .line_len = sizeof(big)};
    cr_assert_eq(bt_relay_put(r, &e), -EFBIG);
    bt_relay_free(r);
    bt_loop_free(l);
    free(s);
}

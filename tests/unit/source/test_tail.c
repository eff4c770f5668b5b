#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ack.h"
#include "core/labels.h"
#include "core/metrics.h"
#include "source/tail.h"
#include "tmpdir.h"

#define MAXL 1024

struct sink {
    char *lines[MAXL];
    size_t n;
    struct bt_segment *held[MAXL];
    size_t nheld;
    bool hold;
    char filename[512];
};

static void collect(void *ctx, const struct bt_entry *e)
{
    struct sink *s = ctx;
    cr_assert_lt(s->n, MAXL);
    s->lines[s->n++] = strndup(e->line, e->line_len);
    const char *fn = bt_labels_get(e->labels, "filename");
    snprintf(s->filename, sizeof(s->filename), "%s", fn ? fn : "");
    cr_assert_null(bt_labels_get(e->labels, "__path__"));
    if (s->hold) {
        bt_segment_ref(e->seg, 1);
        s->held[s->nheld++] = e->seg;
    }
}

static void sink_free(struct sink *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->lines[i]);
    s->n = 0;
}

static char dir[256], path[512];
static struct bt_metrics *metrics;

static void setup(void)
{
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    snprintf(path, sizeof(path), "%s/app.log", dir);
    metrics = bt_metrics_new();
}

static void teardown(void)
{
    bt_metrics_free(metrics);
    bt_tmpdir_remove(dir);
}

TestSuite(tail, .init = setup, .fini = teardown);

static struct bt_tail *open_tail(struct sink *s, uint64_t max_line, bool truncate, size_t rbuf)
{
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "varlogs");
    bt_labels_set(&l, "__path__", "/x/*.log");
    struct bt_tail_config cfg = {.read_buffer = rbuf,
                                 .max_line_size = max_line,
                                 .truncate = truncate,
                                 .fingerprint_check = true,
                                 .metrics = metrics};
    struct bt_tail *t = bt_tail_open(path, &cfg, &l, collect, s);
    bt_labels_free(&l);
    cr_assert_not_null(t);
    return t;
}

static void add(const char *text)
{
    cr_assert_eq(bt_tmpdir_append(dir, "app.log", text, strlen(text)), 0);
}

Test(tail, splits_lines_trims_one_cr_and_labels_with_filename)
{
    add("one\ntwo\r\nthree\r\r\n\nfive\n");
    struct sink s = {0};
    struct bt_tail *t = open_tail(&s, 0, false, 0);
    cr_assert_eq(bt_tail_read(t, 1 << 20), 0);
    cr_assert_eq(s.n, 5);
    cr_assert_str_eq(s.lines[0], "one");
    cr_assert_str_eq(s.lines[1], "two");
    cr_assert_str_eq(s.lines[2], "three\r");
    cr_assert_str_eq(s.lines[3], "");
    cr_assert_str_eq(s.lines[4], "five");
    cr_assert_str_eq(s.filename, path);
    cr_assert_eq(bt_tail_read_offset(t), 23);
    cr_assert_eq(bt_tail_committed(t), 23);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_read_lines_total", ""), 5);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_read_bytes_total", ""), 23);
    bt_tail_close(t);
    sink_free(&s);
}

Test(tail, lines_spanning_many_small_reads_arrive_whole)
{
    char big[20000];
    size_t o = 0;
    for (int i = 0; i < 500; i++)
        o += (size_t)snprintf(big + o, sizeof(big) - o, "line-%03d-%s\n", i, "abcdefghij");
    add(big);
    struct sink s = {0};
    struct bt_tail *t = open_tail(&s, 0, false, 4096);
    cr_assert_eq(bt_tail_read(t, 1 << 20), 0);
    cr_assert_eq(s.n, 500);
    for (size_t i = 0; i < s.n; i++) {
        char want[64];
        snprintf(want, sizeof(want), "line-%03zu-abcdefghij", i);
        cr_assert_str_eq(s.lines[i], want);
    }
    bt_tail_close(t);
    sink_free(&s);
}

Test(tail, partial_line_is_held_until_completed)
{
    add("a\nbeg");
    struct sink s = {0};
    struct bt_tail *t = open_tail(&s, 0, false, 0);
    bt_tail_read(t, 1 << 20);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(bt_tail_partial_len(t), 3);
    cr_assert_eq(bt_tail_committed(t), 2);
    add("inning\n");
    cr_assert(bt_tail_check(t) & BT_TAIL_GREW);
    bt_tail_read(t, 1 << 20);
    cr_assert_eq(s.n, 2);
    cr_assert_str_eq(s.lines[1], "beginning");
    cr_assert_eq(bt_tail_committed(t), 12);
    bt_tail_close(t);
    sink_free(&s);
}

Test(tail, flush_emits_the_held_partial_line)
{
    add("a\nlast words");
    struct sink s = {0};
    struct bt_tail *t = open_tail(&s, 0, false, 0);
    bt_tail_read(t, 1 << 20);
    cr_assert_eq(s.n, 1);
    bt_tail_flush(t);
    cr_assert_eq(s.n, 2);
    cr_assert_str_eq(s.lines[1], "last words");
    cr_assert_eq(bt_tail_committed(t), 12);
    bt_tail_flush(t);
    cr_assert_eq(s.n, 2);
    bt_tail_close(t);
    sink_free(&s);
}

static void write_long(size_t n)
{
    char *b = malloc(n + 1);
    memset(b, 'x', n);
    b[n] = '\n';
    cr_assert_eq(bt_tmpdir_append(dir, "app.log", b, n + 1), 0);
    free(b);
}

Test(tail, over_long_line_is_truncated_and_counted)
{
    add("short\n");
    write_long(50000); /* longer than the 4 KiB read buffer and max_line_size */
    add("after\n");
    struct sink s = {0};
    struct bt_tail *t = open_tail(&s, 100, true, 4096);
    bt_tail_read(t, 1 << 20);
    cr_assert_eq(s.n, 3);
    cr_assert_str_eq(s.lines[0], "short");
    cr_assert_eq(strlen(s.lines[1]), 100);
    cr_assert_str_eq(s.lines[2], "after");
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_truncated_entries_total", "line_too_long"), 1);
    cr_assert_eq(bt_tail_committed(t), 6 + 50001 + 6);
    bt_tail_close(t);
    sink_free(&s);
}

Test(tail, over_long_line_is_dropped_and_counted_when_not_truncating)
{
    write_long(150);
    add("ok\n");
    write_long(50000);
    add("end\n");
    struct sink s = {0};
    struct bt_tail *t = open_tail(&s, 100, false, 4096);
    bt_tail_read(t, 1 << 20);
    cr_assert_eq(s.n, 2);
    cr_assert_str_eq(s.lines[0], "ok");
    cr_assert_str_eq(s.lines[1], "end");
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_dropped_entries_total", "line_too_long"), 2);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_dropped_bytes_total", "line_too_long"),
                 150 + 50000);
    cr_assert_eq(bt_tail_committed(t), 151 + 3 + 50001 + 4);
    bt_tail_close(t);
    sink_free(&s);
}

Test(tail, line_longer_than_buffer_without_limit_is_split_not_lost)
{
    write_long(10000);
    struct sink s = {0};
    struct bt_tail *t = open_tail(&s, 0, false, 4096);
    bt_tail_read(t, 1 << 20);
    size_t total = 0;
    for (size_t i = 0; i < s.n; i++)
        total += strlen(s.lines[i]);
    cr_assert_eq(total, 10000);
    cr_assert_eq(s.n, 3);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_truncated_entries_total", "line_split"), 2);
    bt_tail_close(t);
    sink_free(&s);
}

Test(tail, committed_offset_moves_only_when_segments_are_released)
{
    add("a\nb\n");
    struct sink s = {.hold = true};
    struct bt_tail *t = open_tail(&s, 0, false, 0);
    bt_tail_read(t, 1 << 20);
    add("c\n");
    bt_tail_check(t);
    bt_tail_read(t, 1 << 20);
    cr_assert_eq(s.nheld, 3);
    cr_assert_eq(bt_tail_read_offset(t), 6);
    cr_assert_eq(bt_tail_committed(t), 0);
    /* Release the second chunk first: the first still holds everything back. */
    bt_segment_unref(s.held[2], 1);
    cr_assert_eq(bt_tail_committed(t), 0);
    bt_segment_unref(s.held[0], 1);
    cr_assert_eq(bt_tail_committed(t), 0); /* "b" from the same chunk is still held */
    bt_segment_unref(s.held[1], 1);
    cr_assert_eq(bt_tail_committed(t), 6);
    bt_tail_close(t);
    sink_free(&s);
}

Test(tail, truncation_restarts_at_zero_and_counts_unread_bytes)
{
    add("old-1\nold-2\n");
    struct sink s = {0};
    struct bt_tail *t = open_tail(&s, 0, false, 0);
    bt_tail_read(t, 1 << 20);
    add("old-3\n");
    bt_tail_check(t); /* sees the size grow, does not read it */
    truncate(path, 0);
    add("new\n");
    int f = bt_tail_check(t);
    cr_assert(f & BT_TAIL_TRUNCATED);
    cr_assert_eq(bt_tail_read_offset(t), 0);
    bt_tail_read(t, 1 << 20);
    cr_assert_eq(s.n, 3);
    cr_assert_str_eq(s.lines[2], "new");
    cr_assert_eq(bt_tail_committed(t), 4);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_lost_bytes_total", ""), 6);
    bt_tail_close(t);
    sink_free(&s);
}

Test(tail, truncation_reads_unread_old_bytes_from_a_copy_and_counts_only_the_rest)
{
    add("old-1\nold-2\n");
    struct sink s = {0};
    struct bt_tail *t = open_tail(&s, 0, false, 0);
    bt_tail_read(t, 1 << 20);
    add("old-3\nold-4");
    /* A decoy with the same head but not longer than what was read, and the real copy. */
    cr_assert_eq(bt_tmpdir_append(dir, "app.log.2", "old-1\nold-2\n", 12), 0);
    cr_assert_eq(bt_tmpdir_append(dir, "app.log.1", "old-1\nold-2\nold-3\nold-4", 23), 0);
    add("\nold-5\n"); /* written after the copy was taken: lost */
    bt_tail_check(t);
    truncate(path, 0);
    add("new\n");
    int f = bt_tail_check(t);
    cr_assert(f & BT_TAIL_TRUNCATED);
    cr_assert_eq(bt_tail_read_offset(t), 0);
    bt_tail_read(t, 1 << 20);
    cr_assert_eq(s.n, 5);
    cr_assert_str_eq(s.lines[2], "old-3");
    cr_assert_str_eq(s.lines[3], "old-4"); /* the copy's partial last line, flushed */
    cr_assert_str_eq(s.lines[4], "new");
    cr_assert_eq(bt_tail_committed(t), 4);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_lost_bytes_total", ""), 7);
    bt_tail_close(t);
    sink_free(&s);
}

Test(tail, replaced_content_that_grew_past_the_offset_is_caught_by_fingerprint)
{
    add("aaaa\n");
    struct sink s = {0};
    struct bt_tail *t = open_tail(&s, 0, false, 0);
    bt_tail_read(t, 1 << 20);
    /* Copytruncate followed by more writes than before, between two checks. */
    truncate(path, 0);
    add("bbbb\ncccc\n");
    cr_assert(bt_tail_check(t) & BT_TAIL_TRUNCATED);
    bt_tail_read(t, 1 << 20);
    cr_assert_eq(s.n, 3);
    cr_assert_str_eq(s.lines[1], "bbbb");
    cr_assert_str_eq(s.lines[2], "cccc");
    bt_tail_close(t);
    sink_free(&s);
}

Test(tail, pending_old_segments_do_not_hold_back_the_new_content)
{
    add("old\n");
    struct sink s = {.hold = true};
    struct bt_tail *t = open_tail(&s, 0, false, 0);
    bt_tail_read(t, 1 << 20);
    truncate(path, 0);
    add("n\n");
    cr_assert(bt_tail_check(t) & BT_TAIL_TRUNCATED);
    bt_tail_read(t, 1 << 20);
    cr_assert_eq(bt_tail_committed(t), 0);
    bt_segment_unref(s.held[1], 1);
    cr_assert_eq(bt_tail_committed(t), 2);
    bt_segment_unref(s.held[0], 1); /* old content released late: no effect on the new */
    cr_assert_eq(bt_tail_committed(t), 2);
    bt_tail_close(t);
    sink_free(&s);
}

Test(tail, deleted_file_is_reported_and_still_readable)
{
    add("x\n");
    struct sink s = {0};
    struct bt_tail *t = open_tail(&s, 0, false, 0);
    unlink(path);
    int f = bt_tail_check(t);
    cr_assert(f & BT_TAIL_DELETED);
    cr_assert(f & BT_TAIL_GREW);
    bt_tail_read(t, 1 << 20);
    cr_assert_eq(s.n, 1);
    bt_tail_close(t);
    sink_free(&s);
}

Test(tail, seek_starts_mid_file_and_fingerprint_identifies_content)
{
    add("first\nsecond\n");
    struct sink s = {0};
    struct bt_tail *t = open_tail(&s, 0, false, 0);
    uint32_t len;
    uint64_t h = bt_tail_fingerprint(t, &len);
    cr_assert_eq(len, 13);
    cr_assert(bt_tail_fp_matches(t, h, len));
    cr_assert_not(bt_tail_fp_matches(t, h ^ 1, len));
    cr_assert_not(bt_tail_fp_matches(t, h, len + 1));
    cr_assert_eq(bt_tail_seek(t, 6), 0);
    bt_tail_read(t, 1 << 20);
    cr_assert_eq(s.n, 1);
    cr_assert_str_eq(s.lines[0], "second");
    cr_assert_eq(bt_tail_seek(t, 0), -EBUSY);
    bt_tail_close(t);
    sink_free(&s);
}

Test(tail, invalid_utf8_is_sent_as_is_and_counted)
{
    add("ok \xc3\xa9\nbad \xff\xfe\n");
    struct sink s = {0};
    struct bt_tail *t = open_tail(&s, 0, false, 0);
    bt_tail_read(t, 1 << 20);
    cr_assert_eq(s.n, 2);
    cr_assert_str_eq(s.lines[1], "bad \xff\xfe");
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_invalid_utf8_entries_total", ""), 1);
    bt_tail_close(t);
    sink_free(&s);
}

Test(tail, utf8_check_covers_long_lines_and_every_sequence_length)
{
    add("abcdefgh\xc3\xa9ijklmnop \xe2\x82\xac \xf0\x9f\x98\x80 0123456789\n"); /* valid */
    add("abcdefghijklmnopqrstuvw\xff\n");  /* bad byte after 23 */
    add("abcdefg\xe2\x82\n");              /* cut sequence */
    add("0123456789abcdef\xed\xa0\x80\n"); /* surrogate */
    add("\xc0\xaf overlong\n");            /* overlong '/' */
    struct sink s = {0};
    struct bt_tail *t = open_tail(&s, 0, false, 0);
    bt_tail_read(t, 1 << 20);
    cr_assert_eq(s.n, 5);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_invalid_utf8_entries_total", ""), 4);
    bt_tail_close(t);
    sink_free(&s);
}

Test(tail, read_budget_returns_early_with_more_to_come)
{
    for (int i = 0; i < 100; i++)
        add("0123456789012345678901234567890123456789012345678901234567890123456789\n");
    struct sink s = {0};
    struct bt_tail *t = open_tail(&s, 0, false, 4096);
    cr_assert_eq(bt_tail_read(t, 4096), 1);
    cr_assert_lt(s.n, 100);
    while (bt_tail_read(t, 4096) == 1)
        ;
    cr_assert_eq(s.n, 100);
    bt_tail_close(t);
    sink_free(&s);
}

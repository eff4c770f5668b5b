#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "logentry.pb-c.h"
#include "source/docker_fifo.h"
#include "util/buf.h"

/* What the decoder reported: lines (copied) and dropped bytes by reason. */
#define MAX_LINES 64

struct got_line {
    enum bt_dstream stream;
    int64_t ts;
    char *text;
    size_t len;
    bool unterminated, truncated;
    uint32_t chunks;
};

struct got {
    struct got_line l[MAX_LINES];
    size_t n;
    uint64_t too_large, bad, truncated, too_long;
};

static void on_line(void *ctx, const struct bt_dfifo_line *l)
{
    struct got *g = ctx;
    cr_assert_lt(g->n, MAX_LINES);
    struct got_line *o = &g->l[g->n++];
    o->stream = l->stream;
    o->ts = l->ts_ns;
    o->text = malloc(l->len + 1);
    cr_assert_not_null(o->text);
    memcpy(o->text, l->line, l->len);
    o->text[l->len] = '\0';
    o->len = l->len;
    o->unterminated = l->unterminated;
    o->truncated = l->truncated;
    o->chunks = l->chunks;
}

static void on_drop(void *ctx, const char *reason, uint64_t bytes)
{
    struct got *g = ctx;
    cr_assert_gt(bytes, 0, "a drop of 0 bytes (%s)", reason);
    if (strcmp(reason, "frame_too_large") == 0)
        g->too_large += bytes;
    else if (strcmp(reason, "bad_frame") == 0)
        g->bad += bytes;
    else if (strcmp(reason, "truncated_frame") == 0)
        g->truncated += bytes;
    else if (strcmp(reason, "line_too_long") == 0)
        g->too_long += bytes;
    else
        cr_assert_fail("unknown drop reason %s", reason);
}

static void got_clear(struct got *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->l[i].text);
    memset(g, 0, sizeof(*g));
}

static struct got g;
static struct bt_buf in;

static void setup(void)
{
    memset(&g, 0, sizeof(g));
    bt_buf_init(&in, 64 * 1024 * 1024);
}

static void teardown(void)
{
    got_clear(&g);
    bt_buf_free(&in);
}

TestSuite(docker_fifo, .init = setup, .fini = teardown);

static struct bt_dfifo *dec(size_t max_frame, size_t max_line)
{
    struct bt_dfifo_config c = {.max_frame = max_frame, .max_line = max_line};
    struct bt_dfifo *d = bt_dfifo_new(&c, on_line, on_drop, &g);
    cr_assert_not_null(d);
    return d;
}

static void whole(struct bt_buf *b, enum bt_dstream s, int64_t ts, const char *text)
{
    cr_assert_eq(bt_dfifo_encode(b, s, ts, text, strlen(text), false, NULL, 0, false), 0);
}

static void chunk(struct bt_buf *b, enum bt_dstream s, int64_t ts, const char *text, size_t len,
                  const char *id, int32_t ord, bool last)
{
    cr_assert_eq(bt_dfifo_encode(b, s, ts, text, len, true, id, ord, last), 0);
}

static void raw(struct bt_buf *b, const void *p, size_t n)
{
    cr_assert_eq(bt_buf_add(b, p, n), 0);
}

static void expect(size_t i, enum bt_dstream s, int64_t ts, const char *text, bool unterminated,
                   bool truncated, uint32_t chunks)
{
    cr_assert_lt(i, g.n, "line %zu missing (%zu lines)", i, g.n);
    const struct got_line *l = &g.l[i];
    cr_assert_eq(l->stream, s, "line %zu: stream %d", i, l->stream);
    cr_assert_eq(l->ts, ts, "line %zu: ts %lld", i, (long long)l->ts);
    cr_assert_eq(l->len, strlen(text), "line %zu: len %zu, want %zu", i, l->len, strlen(text));
    cr_assert_eq(memcmp(l->text, text, l->len), 0, "line %zu: %s", i, l->text);
    cr_assert_eq(l->unterminated, unterminated, "line %zu: unterminated", i);
    cr_assert_eq(l->truncated, truncated, "line %zu: truncated", i);
    cr_assert_eq(l->chunks, chunks, "line %zu: chunks %u", i, l->chunks);
}

static void no_drops(void)
{
    cr_assert_eq(g.too_large + g.bad + g.truncated + g.too_long, 0,
                 "drops: large %llu bad %llu truncated %llu long %llu",
                 (unsigned long long)g.too_large, (unsigned long long)g.bad,
                 (unsigned long long)g.truncated, (unsigned long long)g.too_long);
}

Test(docker_fifo, decodes_whole_lines_with_stream_and_time)
{
    struct bt_dfifo *d = dec(0, 0);
    whole(&in, BT_DSTREAM_STDERR, 1795932881409680672, "to-stderr");
    whole(&in, BT_DSTREAM_STDOUT, 1795932881409765949, "hello");
    whole(&in, BT_DSTREAM_STDOUT, 1795932881409768072, "world");
    bt_dfifo_feed(d, in.ptr, in.len);
    cr_assert_eq(g.n, 3);
    expect(0, BT_DSTREAM_STDERR, 1795932881409680672, "to-stderr", false, false, 1);
    expect(1, BT_DSTREAM_STDOUT, 1795932881409765949, "hello", false, false, 1);
    expect(2, BT_DSTREAM_STDOUT, 1795932881409768072, "world", false, false, 1);
    cr_assert_eq(bt_dfifo_frames(d), 3);
    cr_assert_eq(bt_dfifo_buffered(d), 0);
    bt_dfifo_eof(d);
    cr_assert_eq(g.n, 3);
    no_drops();
    bt_dfifo_free(d);
}

Test(docker_fifo, joins_partials_per_stream_when_stdout_and_stderr_interleave)
{
    struct bt_dfifo *d = dec(0, 0);
    chunk(&in, BT_DSTREAM_STDOUT, 10, "out-1|", 6, "aaaa", 1, false);
    whole(&in, BT_DSTREAM_STDERR, 11, "err-whole");
    chunk(&in, BT_DSTREAM_STDERR, 12, "err-1|", 6, "bbbb", 1, false);
    chunk(&in, BT_DSTREAM_STDOUT, 10, "out-2|", 6, "aaaa", 2, false);
    chunk(&in, BT_DSTREAM_STDERR, 12, "err-2", 5, "bbbb", 2, true);
    chunk(&in, BT_DSTREAM_STDOUT, 10, "out-3", 5, "aaaa", 3, true);
    bt_dfifo_feed(d, in.ptr, in.len);
    cr_assert_eq(g.n, 3);
    expect(0, BT_DSTREAM_STDERR, 11, "err-whole", false, false, 1);
    expect(1, BT_DSTREAM_STDERR, 12, "err-1|err-2", false, false, 2);
    expect(2, BT_DSTREAM_STDOUT, 10, "out-1|out-2|out-3", false, false, 3);
    cr_assert_eq(bt_dfifo_buffered(d), 0);
    no_drops();
    bt_dfifo_free(d);
}

Test(docker_fifo, joins_a_40k_line_of_16k_chunks_with_the_first_timestamp)
{
    struct bt_dfifo *d = dec(0, 0);
    size_t n = 40 * 1024;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    whole(&in, BT_DSTREAM_STDOUT, 100, "first");
    chunk(&in, BT_DSTREAM_STDOUT, 201, big, 16384, "a19259c6", 1, false);
    chunk(&in, BT_DSTREAM_STDOUT, 202, big + 16384, 16384, "a19259c6", 2, false);
    chunk(&in, BT_DSTREAM_STDOUT, 203, big + 32768, n - 32768, "a19259c6", 3, true);
    whole(&in, BT_DSTREAM_STDOUT, 300, "after");
    /* fed in pipe-sized reads, which cut frames anywhere */
    for (size_t off = 0; off < in.len; off += 4096)
        bt_dfifo_feed(d, in.ptr + off, in.len - off < 4096 ? in.len - off : 4096);
    cr_assert_eq(g.n, 3);
    expect(0, BT_DSTREAM_STDOUT, 100, "first", false, false, 1);
    expect(1, BT_DSTREAM_STDOUT, 201, big, false, false, 3);
    expect(2, BT_DSTREAM_STDOUT, 300, "after", false, false, 1);
    cr_assert_eq(bt_dfifo_frames(d), 5);
    no_drops();
    free(big);
    bt_dfifo_free(d);
}

Test(docker_fifo, output_without_trailing_newline_waits_and_is_flushed_at_eof)
{
    struct bt_dfifo *d = dec(0, 0);
    whole(&in, BT_DSTREAM_STDOUT, 1, "first");
    chunk(&in, BT_DSTREAM_STDOUT, 2, "no-newline-at-end", 17, "713fda25", 1, false);
    bt_dfifo_feed(d, in.ptr, in.len);
    cr_assert_eq(g.n, 1);
    cr_assert_eq(bt_dfifo_buffered(d), 17);
    bt_dfifo_eof(d);
    cr_assert_eq(g.n, 2);
    expect(1, BT_DSTREAM_STDOUT, 2, "no-newline-at-end", true, false, 1);
    cr_assert_eq(bt_dfifo_buffered(d), 0);
    no_drops();
    bt_dfifo_free(d);
}

Test(docker_fifo, flush_emits_pending_partials_of_every_stream)
{
    struct bt_dfifo *d = dec(0, 0);
    chunk(&in, BT_DSTREAM_STDOUT, 1, "out", 3, "x", 1, false);
    chunk(&in, BT_DSTREAM_STDERR, 2, "err", 3, "y", 1, false);
    bt_dfifo_feed(d, in.ptr, in.len);
    cr_assert_eq(g.n, 0);
    bt_dfifo_flush(d);
    cr_assert_eq(g.n, 2);
    expect(0, BT_DSTREAM_STDOUT, 1, "out", true, false, 1);
    expect(1, BT_DSTREAM_STDERR, 2, "err", true, false, 1);
    bt_dfifo_eof(d);
    cr_assert_eq(g.n, 2);
    bt_dfifo_free(d);
}

Test(docker_fifo, new_partial_id_or_whole_line_ends_the_pending_partial_first)
{
    struct bt_dfifo *d = dec(0, 0);
    chunk(&in, BT_DSTREAM_STDOUT, 1, "A1", 2, "idA", 1, false);
    chunk(&in, BT_DSTREAM_STDOUT, 2, "B1", 2, "idB", 1, false);
    chunk(&in, BT_DSTREAM_STDOUT, 2, "B2", 2, "idB", 2, true);
    chunk(&in, BT_DSTREAM_STDOUT, 3, "C1", 2, "idC", 1, false);
    whole(&in, BT_DSTREAM_STDOUT, 4, "whole");
    bt_dfifo_feed(d, in.ptr, in.len);
    cr_assert_eq(g.n, 4);
    expect(0, BT_DSTREAM_STDOUT, 1, "A1", true, false, 1);
    expect(1, BT_DSTREAM_STDOUT, 2, "B1B2", false, false, 2);
    expect(2, BT_DSTREAM_STDOUT, 3, "C1", true, false, 1);
    expect(3, BT_DSTREAM_STDOUT, 4, "whole", false, false, 1);
    no_drops();
    bt_dfifo_free(d);
}

Test(docker_fifo, empty_lines_and_tty_carriage_returns_are_kept_as_they_are)
{
    struct bt_dfifo *d = dec(0, 0);
    whole(&in, BT_DSTREAM_STDOUT, 1, "");
    whole(&in, BT_DSTREAM_STDOUT, 2, "out\r");
    bt_dfifo_feed(d, in.ptr, in.len);
    cr_assert_eq(g.n, 2);
    expect(0, BT_DSTREAM_STDOUT, 1, "", false, false, 1);
    expect(1, BT_DSTREAM_STDOUT, 2, "out\r", false, false, 1);
    bt_dfifo_free(d);
}

/* A stream with every kind of event; its decoding must not depend on how it is cut. */
static void small_stream(struct bt_buf *b, bool corrupt)
{
    whole(b, BT_DSTREAM_STDOUT, 1, "one");
    chunk(b, BT_DSTREAM_STDOUT, 2, "p1-", 3, "id1", 1, false);
    whole(b, BT_DSTREAM_STDERR, 3, "err");
    if (corrupt)
        raw(b, "\xff\xff\xff\xffjunk!", 9); /* an oversized length and garbage */
    chunk(b, BT_DSTREAM_STDOUT, 2, "p2", 2, "id1", 2, true);
    if (corrupt)
        raw(b, "\x00\x00\x00\x03\xff\xff\xff", 7); /* a sane length, not protobuf */
    whole(b, BT_DSTREAM_OTHER, 4, "");
    chunk(b, BT_DSTREAM_STDERR, 5, "tail", 4, "id2", 1, false);
}

static void expect_small_stream(bool corrupt)
{
    cr_assert_eq(g.n, 5, "%zu lines", g.n);
    expect(0, BT_DSTREAM_STDOUT, 1, "one", false, false, 1);
    expect(1, BT_DSTREAM_STDERR, 3, "err", false, false, 1);
    expect(2, BT_DSTREAM_STDOUT, 2, "p1-p2", false, false, 2);
    expect(3, BT_DSTREAM_OTHER, 4, "", false, false, 1);
    expect(4, BT_DSTREAM_STDERR, 5, "tail", true, false, 1);
    cr_assert_eq(g.too_large, corrupt ? 9 : 0, "too_large %llu", (unsigned long long)g.too_large);
    cr_assert_eq(g.bad, corrupt ? 7 : 0, "bad %llu", (unsigned long long)g.bad);
    cr_assert_eq(g.truncated + g.too_long, 0);
}

static void every_split(bool corrupt)
{
    small_stream(&in, corrupt);
    struct bt_dfifo *d = dec(0, 0);
    for (size_t i = 0; i < in.len; i++)
        bt_dfifo_feed(d, in.ptr + i, 1);
    bt_dfifo_eof(d);
    bt_dfifo_free(d);
    expect_small_stream(corrupt);
    got_clear(&g);

    for (size_t cut = 0; cut <= in.len; cut++) {
        d = dec(0, 0);
        bt_dfifo_feed(d, in.ptr, cut);
        bt_dfifo_feed(d, in.ptr + cut, in.len - cut);
        bt_dfifo_eof(d);
        bt_dfifo_free(d);
        cr_assert_eq(g.n, 5, "cut at %zu: %zu lines", cut, g.n);
        expect_small_stream(corrupt);
        got_clear(&g);
    }
}

Test(docker_fifo, decodes_the_same_whatever_the_read_boundaries)
{
    every_split(false);
}

Test(docker_fifo, recovers_the_same_whatever_the_read_boundaries)
{
    every_split(true);
}

Test(docker_fifo, an_oversized_length_costs_only_the_bytes_up_to_the_next_frame)
{
    struct bt_dfifo *d = dec(1000, 0);
    whole(&in, BT_DSTREAM_STDOUT, 1, "good-1");
    raw(&in, "\x00\x00\x13\x88", 4); /* 5000 > max_frame */
    char junk[100];
    memset(junk, 'U', sizeof(junk));
    raw(&in, junk, sizeof(junk));
    whole(&in, BT_DSTREAM_STDOUT, 2, "good-2");
    whole(&in, BT_DSTREAM_STDERR, 3, "good-3");
    bt_dfifo_feed(d, in.ptr, in.len);
    bt_dfifo_eof(d);
    cr_assert_eq(g.n, 3);
    expect(0, BT_DSTREAM_STDOUT, 1, "good-1", false, false, 1);
    expect(1, BT_DSTREAM_STDOUT, 2, "good-2", false, false, 1);
    expect(2, BT_DSTREAM_STDERR, 3, "good-3", false, false, 1);
    cr_assert_eq(g.too_large, 104);
    cr_assert_eq(g.bad + g.truncated + g.too_long, 0);
    cr_assert_eq(bt_dfifo_frames(d), 3);
    bt_dfifo_free(d);
}

Test(docker_fifo, garbage_between_frames_is_counted_and_skipped)
{
    struct bt_dfifo *d = dec(0, 0);
    whole(&in, BT_DSTREAM_STDOUT, 1, "good-1");
    raw(&in, "garbage bytes\n", 14);
    whole(&in, BT_DSTREAM_STDOUT, 2, "good-2");
    raw(&in, "\x00\x00\x00\x00\x00\x00\x00", 7); /* zeros: a length 0 is no LogEntry */
    whole(&in, BT_DSTREAM_STDOUT, 3, "good-3");
    bt_dfifo_feed(d, in.ptr, in.len);
    bt_dfifo_eof(d);
    cr_assert_eq(g.n, 3);
    expect(0, BT_DSTREAM_STDOUT, 1, "good-1", false, false, 1);
    expect(1, BT_DSTREAM_STDOUT, 2, "good-2", false, false, 1);
    expect(2, BT_DSTREAM_STDOUT, 3, "good-3", false, false, 1);
    cr_assert_eq(g.too_large, 14);
    cr_assert_eq(g.bad, 7);
    cr_assert_eq(g.truncated + g.too_long, 0);
    bt_dfifo_free(d);
}

Test(docker_fifo, a_bad_payload_with_a_sane_length_is_counted_and_skipped)
{
    struct bt_dfifo *d = dec(0, 0);
    whole(&in, BT_DSTREAM_STDOUT, 1, "good-1");
    /* key of field 3 (bytes) with a length past the end */
    raw(&in, "\x00\x00\x00\x05\x1a\x7f\x41\x42\x43", 9);
    whole(&in, BT_DSTREAM_STDOUT, 2, "good-2");
    bt_dfifo_feed(d, in.ptr, in.len);
    bt_dfifo_eof(d);
    cr_assert_eq(g.n, 2);
    expect(0, BT_DSTREAM_STDOUT, 1, "good-1", false, false, 1);
    expect(1, BT_DSTREAM_STDOUT, 2, "good-2", false, false, 1);
    cr_assert_eq(g.bad, 9);
    cr_assert_eq(g.too_large + g.truncated + g.too_long, 0);
    bt_dfifo_free(d);
}

Test(docker_fifo, a_garbage_length_does_not_hide_the_frames_it_covers)
{
    struct bt_dfifo *d = dec(0, 0);
    whole(&in, BT_DSTREAM_STDOUT, 1, "good-1");
    raw(&in, "\x00\x00\x01\x00", 4); /* claims 256 bytes, the frames below are fewer */
    whole(&in, BT_DSTREAM_STDOUT, 2, "good-2");
    whole(&in, BT_DSTREAM_STDERR, 3, "good-3");
    bt_dfifo_feed(d, in.ptr, in.len);
    cr_assert_eq(g.n, 1);
    bt_dfifo_eof(d);
    cr_assert_eq(g.n, 3);
    expect(1, BT_DSTREAM_STDOUT, 2, "good-2", false, false, 1);
    expect(2, BT_DSTREAM_STDERR, 3, "good-3", false, false, 1);
    cr_assert_eq(g.truncated, 4);
    cr_assert_eq(g.too_large + g.bad + g.too_long, 0);
    bt_dfifo_free(d);
}

Test(docker_fifo, a_frame_cut_by_eof_is_counted)
{
    struct bt_dfifo *d = dec(0, 0);
    whole(&in, BT_DSTREAM_STDOUT, 1, "good-1");
    size_t first = in.len;
    whole(&in, BT_DSTREAM_STDOUT, 2, "cut-short-by-eof");
    bt_dfifo_feed(d, in.ptr, first + 10);
    cr_assert_eq(bt_dfifo_buffered(d), 10);
    bt_dfifo_eof(d);
    cr_assert_eq(g.n, 1);
    expect(0, BT_DSTREAM_STDOUT, 1, "good-1", false, false, 1);
    cr_assert_eq(g.truncated, 10);
    cr_assert_eq(g.too_large + g.bad + g.too_long, 0);
    cr_assert_eq(bt_dfifo_buffered(d), 0);
    bt_dfifo_free(d);
}

Test(docker_fifo, lines_past_max_line_are_cut_and_the_rest_counted)
{
    struct bt_dfifo *d = dec(0, 10);
    whole(&in, BT_DSTREAM_STDOUT, 1, "0123456789abcdefghijklmno"); /* 25 */
    chunk(&in, BT_DSTREAM_STDERR, 2, "ABCDEF", 6, "id", 1, false);
    chunk(&in, BT_DSTREAM_STDERR, 2, "GHIJKL", 6, "id", 2, false); /* reaches 10 here */
    chunk(&in, BT_DSTREAM_STDERR, 2, "MNOPQR", 6, "id", 3, true);
    whole(&in, BT_DSTREAM_STDERR, 3, "0123456789"); /* exactly max_line */
    bt_dfifo_feed(d, in.ptr, in.len);
    bt_dfifo_eof(d);
    cr_assert_eq(g.n, 3);
    expect(0, BT_DSTREAM_STDOUT, 1, "0123456789", false, true, 1);
    expect(1, BT_DSTREAM_STDERR, 2, "ABCDEFGHIJ", false, true, 2);
    expect(2, BT_DSTREAM_STDERR, 3, "0123456789", false, false, 1);
    cr_assert_eq(g.too_long, 15 + 2 + 6);
    cr_assert_eq(g.too_large + g.bad + g.truncated, 0);
    bt_dfifo_free(d);
}

Test(docker_fifo, encode_writes_every_field_protobuf_c_reads_back)
{
    const char line[] = "with\0nul";
    cr_assert_eq(
        bt_dfifo_encode(&in, BT_DSTREAM_STDERR, -5, line, sizeof(line) - 1, true, "pid", 7, true),
        0);
    cr_assert_geq(in.len, 4);
    const uint8_t *p = (const uint8_t *)in.ptr;
    uint32_t n = (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
    cr_assert_eq(n, in.len - 4);
    Logdriver__LogEntry *e = logdriver__log_entry__unpack(NULL, n, p + 4);
    cr_assert_not_null(e);
    cr_assert_str_eq(e->source, "stderr");
    cr_assert_eq(e->time_nano, -5);
    cr_assert_eq(e->line.len, sizeof(line) - 1);
    cr_assert_eq(memcmp(e->line.data, line, e->line.len), 0);
    cr_assert(e->partial);
    cr_assert_not_null(e->partial_log_metadata);
    cr_assert(e->partial_log_metadata->last);
    cr_assert_str_eq(e->partial_log_metadata->id, "pid");
    cr_assert_eq(e->partial_log_metadata->ordinal, 7);
    cr_assert_eq(e->n_attrs, 0);
    logdriver__log_entry__free_unpacked(e, NULL);

    /* a whole line: no metadata at all, as Docker writes it */
    bt_buf_reset(&in);
    whole(&in, BT_DSTREAM_STDOUT, 42, "x");
    p = (const uint8_t *)in.ptr;
    const uint8_t want[] = {0,   0,   0,   13,   0x0a, 6,    's', 't', 'd',
                            'o', 'u', 't', 0x10, 42,   0x1a, 1,   'x'};
    cr_assert_eq(in.len, sizeof(want));
    cr_assert_eq(memcmp(p, want, sizeof(want)), 0);
}

Test(docker_fifo, encode_then_decode_round_trips)
{
    struct bt_dfifo *d = dec(0, 0);
    const char line[] = "bin\0ary\xff";
    chunk(&in, BT_DSTREAM_STDERR, 1795932881409680672, line, sizeof(line) - 1, "id", 1, false);
    chunk(&in, BT_DSTREAM_STDERR, 1795932881409680672, "!", 1, "id", 2, true);
    whole(&in, BT_DSTREAM_STDOUT, -1, "negative time");
    bt_dfifo_feed(d, in.ptr, in.len);
    cr_assert_eq(g.n, 2);
    cr_assert_eq(g.l[0].len, sizeof(line));
    cr_assert_eq(memcmp(g.l[0].text, "bin\0ary\xff!", sizeof(line)), 0);
    cr_assert_eq(g.l[0].ts, 1795932881409680672);
    expect(1, BT_DSTREAM_STDOUT, -1, "negative time", false, false, 1);
    no_drops();
    bt_dfifo_free(d);
}

Test(docker_fifo, entries_with_attrs_and_unknown_fields_decode)
{
    struct bt_dfifo *d = dec(0, 0);
    const uint8_t payload[] = {
        0x0a, 6,    's',  't', 'd', 'o',  'u', 't',           /* source */
        0x10, 0x07,                                           /* time_nano 7 */
        0x1a, 2,    'h',  'i',                                /* line */
        0x32, 8,    0x0a, 1,   'k', 0x12, 3,   'v', 'a', 'l', /* attrs {key k, value val} */
        0x38, 0x96, 0x01,                                     /* field 7 varint: unknown */
        0x7a, 3,    'x',  'y', 'z',                           /* field 15 bytes: unknown */
        0x45, 1,    2,    3,   4,                             /* field 8 fixed32: unknown */
    };
    uint8_t hdr[4] = {0, 0, 0, sizeof(payload)};
    raw(&in, hdr, 4);
    raw(&in, payload, sizeof(payload));
    whole(&in, BT_DSTREAM_STDOUT, 8, "next");
    bt_dfifo_feed(d, in.ptr, in.len);
    cr_assert_eq(g.n, 2);
    expect(0, BT_DSTREAM_STDOUT, 7, "hi", false, false, 1);
    expect(1, BT_DSTREAM_STDOUT, 8, "next", false, false, 1);
    no_drops();
    bt_dfifo_free(d);
}

Test(docker_fifo, a_large_frame_after_small_ones_decodes_and_memory_is_reused)
{
    struct bt_dfifo *d = dec(0, 0);
    size_t n = 900 * 1024;
    char *big = malloc(n + 1);
    memset(big, 'z', n);
    big[n] = '\0';
    whole(&in, BT_DSTREAM_STDOUT, 1, "small");
    whole(&in, BT_DSTREAM_STDOUT, 2, big);
    whole(&in, BT_DSTREAM_STDOUT, 3, big);
    bt_dfifo_feed(d, in.ptr, in.len);
    cr_assert_eq(g.n, 3);
    expect(1, BT_DSTREAM_STDOUT, 2, big, false, false, 1);
    expect(2, BT_DSTREAM_STDOUT, 3, big, false, false, 1);
    no_drops();
    free(big);
    bt_dfifo_free(d);
}

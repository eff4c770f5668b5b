#include <criterion/criterion.h>
#include <errno.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "push/batch.h"
#include "push/encode.h"
#include "core/entry.h"
#include "push.pb-c.h"
#include "util/buf.h"
#include "util/hmap.h"

static void add(struct bt_batch *b, const char *canon, int64_t ts, const char *line,
                const struct bt_kv *meta, size_t n_meta)
{
    struct bt_entry e = {
        .ts_ns = ts, .line = line, .line_len = strlen(line), .meta = meta, .n_meta = n_meta};
    cr_assert_eq(bt_batch_add(b, canon, strlen(canon), bt_hash64(canon, strlen(canon)), &e), 0);
}

/* Snappy-uncompresses and unpacks an encoded body; the caller frees with
 * logproto__push_request__free_unpacked. */
static Logproto__PushRequest *decode(const struct bt_buf *body, size_t expect_raw)
{
    size_t n;
    cr_assert_eq(snappy_uncompressed_length(body->ptr, body->len, &n), SNAPPY_OK);
    cr_assert_eq(n, expect_raw);
    char *raw = malloc(n ? n : 1);
    cr_assert_eq(snappy_uncompress(body->ptr, body->len, raw, &n), SNAPPY_OK);
    Logproto__PushRequest *r = logproto__push_request__unpack(NULL, n, (uint8_t *)raw);
    free(raw);
    cr_assert_not_null(r);
    return r;
}

static size_t read_hex(const char *path, uint8_t *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    char line[512];
    size_t n = 0;
    while (fgets(line, sizeof(line), f)) {
        if (line[0] == '#')
            continue;
        char *p = line;
        for (;;) {
            char *end;
            unsigned long v = strtoul(p, &end, 16);
            if (end == p)
                break;
            cr_assert_lt(n, cap);
            out[n++] = (uint8_t)v;
            p = end;
        }
    }
    fclose(f);
    return n;
}

Test(encode, worked_example_matches_golden_bytes)
{
    uint8_t golden[128];
    size_t gn = read_hex(BT_SOURCE_DIR "/tests/data/golden/push_worked_example.hex", golden,
                         sizeof(golden));
    cr_assert_eq(gn, 41);

    struct bt_batch *b = bt_batch_new("");
    add(b, "{job=\"varlogs\"}", 1570818238LL * 1000000000LL + 123, "fizzbuzz", NULL, 0);
    struct bt_buf raw;
    bt_buf_init(&raw, 1 << 20);
    cr_assert_eq(bt_encode_push_raw(b, &raw), 0);
    cr_assert_eq(raw.len, 41);
    cr_assert_arr_eq(raw.ptr, golden, 41);

    /* The compressed form decompresses to the very same bytes. */
    struct bt_buf body;
    bt_buf_init(&body, 1 << 20);
    size_t raw_len = 0;
    cr_assert_eq(bt_encode_push(b, &body, &raw_len), 0);
    cr_assert_eq(raw_len, 41);
    char back[64];
    size_t bn = sizeof(back);
    cr_assert_eq(snappy_uncompress(body.ptr, body.len, back, &bn), SNAPPY_OK);
    cr_assert_eq(bn, 41);
    cr_assert_arr_eq(back, golden, 41);
    bt_buf_free(&raw);
    bt_buf_free(&body);
    b->outcome = BT_PUSH_ABANDONED;
    bt_batch_release(b);
}

Test(encode, zero_timestamp_still_emits_timestamp_field)
{
    struct bt_batch *b = bt_batch_new("");
    add(b, "{a=\"b\"}", 0, "x", NULL, 0);
    struct bt_buf raw;
    bt_buf_init(&raw, 1 << 20);
    cr_assert_eq(bt_encode_push_raw(b, &raw), 0);
    /* stream{labels(9) entries{ts{} line} } : the entry must hold 0a 00 (empty timestamp). */
    const uint8_t want[] = {0x0a, 0x10, 0x0a, 0x07, '{',  'a',  '=',  '"',  'b',
                            '"',  '}',  0x12, 0x05, 0x0a, 0x00, 0x12, 0x01, 'x'};
    cr_assert_eq(raw.len, sizeof(want));
    cr_assert_arr_eq(raw.ptr, want, sizeof(want));
    bt_buf_free(&raw);
    b->outcome = BT_PUSH_ABANDONED;
    bt_batch_release(b);
}

Test(encode, many_streams_with_metadata_round_trip_every_field)
{
    struct bt_batch *b = bt_batch_new("tenant-a");
    char canon[64], line[64], val[32];
    struct bt_kv meta[2] = {{"trace_id", 8, NULL, 0}, {"pod", 3, "p-1", 3}};
    for (int i = 0; i < 300; i++) {
        snprintf(canon, sizeof(canon), "{job=\"j%d\"}", i % 17);
        snprintf(line, sizeof(line), "line number %d", i);
        snprintf(val, sizeof(val), "t%d", i);
        meta[0].value = val;
        meta[0].value_len = strlen(val);
        int64_t ts = 1700000000LL * 1000000000LL + i * 1000LL + 7;
        add(b, canon, ts, line, meta, (size_t)(i % 3)); /* 0, 1 or 2 metadata pairs */
    }
    bt_batch_seal(b);
    struct bt_buf body;
    bt_buf_init(&body, 1 << 24);
    size_t raw_len;
    cr_assert_eq(bt_encode_push(b, &body, &raw_len), 0);
    Logproto__PushRequest *r = decode(&body, raw_len);
    cr_assert_eq(r->n_streams, b->n_streams);
    cr_assert_eq(r->n_streams, 17);
    size_t total = 0;
    for (size_t i = 0; i < r->n_streams; i++) {
        const struct bt_batch_stream *s = &b->streams[i];
        Logproto__StreamAdapter *so = r->streams[i];
        cr_assert_str_eq(so->labels, s->labels);
        cr_assert_eq(so->hash, 0);
        cr_assert_eq(so->n_entries, s->n);
        for (size_t j = 0; j < s->n; j++) {
            const struct bt_batch_entry *be = &s->entries[j];
            Logproto__EntryAdapter *eo = so->entries[j];
            cr_assert_not_null(eo->timestamp);
            cr_assert_eq(eo->timestamp->seconds * 1000000000LL + eo->timestamp->nanos, be->ts_ns);
            cr_assert_eq(strlen(eo->line), be->line_len);
            cr_assert_eq(memcmp(eo->line, b->arena.ptr + be->line_off, be->line_len), 0);
            cr_assert_eq(eo->n_structuredmetadata, be->n_meta);
            int idx;
            cr_assert_eq(sscanf(eo->line, "line number %d", &idx), 1);
            cr_assert_eq(be->n_meta, (uint32_t)(idx % 3));
            if (be->n_meta >= 1) {
                snprintf(val, sizeof(val), "t%d", idx);
                cr_assert_str_eq(eo->structuredmetadata[0]->name, "trace_id");
                cr_assert_str_eq(eo->structuredmetadata[0]->value, val);
            }
            if (be->n_meta == 2) {
                cr_assert_str_eq(eo->structuredmetadata[1]->name, "pod");
                cr_assert_str_eq(eo->structuredmetadata[1]->value, "p-1");
            }
            total++;
        }
    }
    cr_assert_eq(total, 300);
    logproto__push_request__free_unpacked(r, NULL);
    bt_buf_free(&body);
    b->outcome = BT_PUSH_ABANDONED;
    bt_batch_release(b);
}

Test(encode, empty_batch_is_an_empty_request)
{
    struct bt_batch *b = bt_batch_new("");
    struct bt_buf body;
    bt_buf_init(&body, 1 << 20);
    size_t raw_len = 99;
    cr_assert_eq(bt_encode_push(b, &body, &raw_len), 0);
    cr_assert_eq(raw_len, 0);
    Logproto__PushRequest *r = decode(&body, 0);
    cr_assert_eq(r->n_streams, 0);
    logproto__push_request__free_unpacked(r, NULL);
    bt_buf_free(&body);
    b->outcome = BT_PUSH_ABANDONED;
    bt_batch_release(b);
}

Test(encode, large_batch_compresses_and_round_trips)
{
    struct bt_batch *b = bt_batch_new("");
    size_t ll = 4000;
    char *line = malloc(ll + 1);
    for (size_t i = 0; i < ll; i++)
        line[i] = (char)('a' + i % 26);
    line[ll] = '\0';
    for (int i = 0; i < 1000; i++) { /* ~4 MB of lines */
        line[0] = (char)('A' + i % 26);
        add(b, "{job=\"big\"}", i, line, NULL, 0);
    }
    struct bt_buf body;
    bt_buf_init(&body, (size_t)64 << 20);
    size_t raw_len;
    cr_assert_eq(bt_encode_push(b, &body, &raw_len), 0);
    cr_assert_gt(raw_len, 4000000);
    cr_assert_lt(body.len, raw_len / 4, "repetitive lines should compress well");
    Logproto__PushRequest *r = decode(&body, raw_len);
    cr_assert_eq(r->n_streams, 1);
    cr_assert_eq(r->streams[0]->n_entries, 1000);
    for (size_t i = 0; i < 1000; i++) {
        line[0] = (char)('A' + i % 26);
        cr_assert_str_eq(r->streams[0]->entries[i]->line, line);
        cr_assert_eq(r->streams[0]->entries[i]->timestamp->nanos, (int32_t)i);
    }
    logproto__push_request__free_unpacked(r, NULL);
    free(line);
    bt_buf_free(&body);
    b->outcome = BT_PUSH_ABANDONED;
    bt_batch_release(b);
}

Test(encode, negative_timestamp_uses_floor_seconds_and_positive_nanos)
{
    struct bt_batch *b = bt_batch_new("");
    add(b, "{a=\"b\"}", -1, "before epoch", NULL, 0);
    struct bt_buf body;
    bt_buf_init(&body, 1 << 20);
    size_t raw_len;
    cr_assert_eq(bt_encode_push(b, &body, &raw_len), 0);
    Logproto__PushRequest *r = decode(&body, raw_len);
    cr_assert_eq(r->streams[0]->entries[0]->timestamp->seconds, -1);
    cr_assert_eq(r->streams[0]->entries[0]->timestamp->nanos, 999999999);
    logproto__push_request__free_unpacked(r, NULL);
    bt_buf_free(&body);
    b->outcome = BT_PUSH_ABANDONED;
    bt_batch_release(b);
}

Test(encode, nul_byte_inside_line_keeps_line_length)
{
    struct bt_batch *b = bt_batch_new("");
    struct bt_entry e = {.ts_ns = 5, .line = "ab\0cd", .line_len = 5};
    const char *canon = "{a=\"b\"}";
    cr_assert_eq(bt_batch_add(b, canon, strlen(canon), bt_hash64(canon, strlen(canon)), &e), 0);
    struct bt_buf body;
    bt_buf_init(&body, 1 << 20);
    size_t raw_len;
    cr_assert_eq(bt_encode_push(b, &body, &raw_len), 0);
    Logproto__PushRequest *r = decode(&body, raw_len);
    cr_assert_str_eq(r->streams[0]->entries[0]->line, "ab cd");
    logproto__push_request__free_unpacked(r, NULL);
    bt_buf_free(&body);
    b->outcome = BT_PUSH_ABANDONED;
    bt_batch_release(b);
}

Test(encode, output_cap_too_small_is_e2big)
{
    struct bt_batch *b = bt_batch_new("");
    add(b, "{job=\"varlogs\"}", 1, "a line that does not fit in a tiny buffer", NULL, 0);
    struct bt_buf body;
    bt_buf_init(&body, 8);
    cr_assert_eq(bt_encode_push(b, &body, NULL), -E2BIG);
    cr_assert_eq(bt_encode_push_raw(b, &body), -E2BIG);
    bt_buf_free(&body);
    b->outcome = BT_PUSH_ABANDONED;
    bt_batch_release(b);
}

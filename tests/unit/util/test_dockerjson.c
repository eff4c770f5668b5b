#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/dockerjson.h"

static struct bt_buf buf;
static struct bt_dockerjson rec, rec_out_unused;

static void setup(void)
{
    bt_buf_init(&buf, 1 << 20);
}

static void teardown(void)
{
    bt_buf_free(&buf);
}

TestSuite(dockerjson, .init = setup, .fini = teardown);

static int parse(const char *s)
{
    return bt_dockerjson_parse(s, strlen(s), &buf, &rec);
}

static void expect_log(const char *json_log, const char *want, size_t want_len)
{
    char line[512];
    snprintf(line, sizeof(line),
             "{\"log\":\"%s\",\"stream\":\"stdout\",\"time\":\"2019-04-30T02:12:41.8443515Z\"}\n",
             json_log);
    cr_assert_eq(parse(line), 0, "%s", line);
    cr_assert_eq(buf.len, want_len, "%s: got %zu bytes", json_log, buf.len);
    cr_assert_eq(memcmp(buf.ptr, want, want_len), 0, "%s decoded wrong", json_log);
    cr_assert_not(rec.slow, "%s took the slow path", json_log);
}

Test(dockerjson, common_shape_takes_fast_path_with_stream_and_time)
{
    cr_assert_eq(parse("{\"log\":\"hello\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-29T06:15:22."
                       "79211261Z\"}\n"),
                 0);
    cr_assert_str_eq(bt_buf_str(&buf), "hello\n");
    cr_assert_str_eq(rec.stream, "stderr");
    cr_assert(rec.has_time);
    cr_assert_eq(rec.time_ns, 1795932922792112610LL);
    cr_assert_not(rec.slow);
}

Test(dockerjson, decodes_every_simple_escape)
{
    expect_log("a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti", "a\"b\\c/d\be\ff\ng\rh\ti", 17);
    expect_log("\\u0009\\u0001\\u001b", "\t\x01\x1b", 3);
    expect_log("\\u003cb\\u003e \\u0026", "<b> &", 5);
    expect_log("x\\u0000y", "x\0y", 3);
}

Test(dockerjson, decodes_unicode_escapes_and_surrogate_pairs)
{
    expect_log("\\u00e9", "\xc3\xa9", 2);
    expect_log("\\u20AC", "\xe2\x82\xac", 3);
    expect_log("\\ud83d\\ude00", "\xf0\x9f\x98\x80", 4);   /* U+1F600 */
    expect_log("\\uD834\\uDD1E!", "\xf0\x9d\x84\x9e!", 5); /* U+1D11E, upper-case hex */
    expect_log("\\ufffd", "\xef\xbf\xbd", 3);
    expect_log("é raw", "é raw", 6); /* UTF-8 is written raw by Docker */
}

Test(dockerjson, lone_surrogates_become_replacement_characters)
{
    expect_log("a\\ud800b",
               "a\xef\xbf\xbd"
               "b",
               5);
    expect_log("\\udc00", "\xef\xbf\xbd", 3);
    expect_log("\\ud83d\\u0041",
               "\xef\xbf\xbd"
               "A",
               4);                            /* high then non-low */
    expect_log("\\ud83d", "\xef\xbf\xbd", 3); /* high at the end */
}

Test(dockerjson, escaped_quotes_and_backslash_runs_find_the_right_end)
{
    expect_log("\\\\", "\\", 1);
    expect_log("\\\\\\\"", "\\\"", 2);
    expect_log("q\\\"\\\"", "q\"\"", 3);
}

Test(dockerjson, empty_log_and_missing_trailing_newline)
{
    cr_assert_eq(parse("{\"log\":\"\",\"stream\":\"stdout\",\"time\":\"2019-04-30T02:12:41Z\"}"),
                 0);
    cr_assert_eq(buf.len, 0);
    cr_assert_eq(parse("{\"log\":\"no-newline-at-end\",\"stream\":\"stdout\",\"time\":\"2019-04-"
                       "30T02:12:41Z\"}"),
                 0);
    cr_assert_str_eq(bt_buf_str(&buf), "no-newline-at-end");
}

Test(dockerjson, unusual_shapes_fall_back_to_jansson)
{
    cr_assert_eq(parse("{\"log\":\"with "
                       "attrs\\n\",\"attrs\":{\"tag\":\"x\"},\"stream\":\"stdout\",\"time\":\"2019-"
                       "04-30T02:12:41Z\"}"),
                 0);
    cr_assert_str_eq(bt_buf_str(&buf), "with attrs\n");
    cr_assert_str_eq(rec.stream, "stdout");
    cr_assert(rec.has_time);
    cr_assert(rec.slow);

    cr_assert_eq(parse("{\"stream\":\"stderr\",\"time\":\"2019-04-30T02:12:41Z\",\"log\":"
                       "\"reordered \\u00e9\"}"),
                 0);
    cr_assert_str_eq(bt_buf_str(&buf), "reordered é");
    cr_assert_str_eq(rec.stream, "stderr");
    cr_assert(rec.slow);

    cr_assert_eq(parse(" { \"log\" : \"spaced\\ud83d\\ude00\" , \"stream\" : \"stdout\" , \"time\" "
                       ": \"2019-04-30T02:12:41.5Z\" } \n"),
                 0);
    cr_assert_str_eq(bt_buf_str(&buf), "spaced\xf0\x9f\x98\x80");
    cr_assert_eq(rec.time_ns, 1556590361500000000LL);
    cr_assert(rec.slow);

    cr_assert_eq(parse("{\"log\":\"only log\"}"), 0);
    cr_assert_str_eq(bt_buf_str(&buf), "only log");
    cr_assert_str_eq(rec.stream, "");
    cr_assert_not(rec.has_time);
}

Test(dockerjson, bad_time_keeps_log_and_reports_no_time)
{
    cr_assert_eq(parse("{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":\"yesterday\"}"), 0);
    cr_assert_str_eq(bt_buf_str(&buf), "x\n");
    cr_assert_not(rec.has_time);
}

Test(dockerjson, malformed_records_are_einval)
{
    const char *bad[] = {
        "",
        "plain text line",
        "{\"log\":\"unterminated",
        "{\"log\":\"x\",\"stream\":\"stdout\",\"time\":\"2019-04-30T02:12:41Z\"",
        "{\"log\":42,\"stream\":\"stdout\"}",
        "{\"stream\":\"stdout\",\"time\":\"2019-04-30T02:12:41Z\"}",
        "[\"log\",\"x\"]",
        "{\"log\":\"bad escape \\x41\",\"stream\":\"stdout\",\"time\":\"2019-04-30T02:12:41Z\"}",
        "{\"log\":\"short \\u12\",\"stream\":\"stdout\",\"time\":\"2019-04-30T02:12:41Z\"}",
        "{\"log\":\"x\",\"stream\":\"stdout\",\"time\":\"2019-04-30T02:12:41Z\"} trailing",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(parse(bad[i]), -EINVAL, "accepted: %s", bad[i]);
        cr_assert_eq(buf.len, 0);
    }
}

Test(dockerjson, log_larger_than_the_cap_is_e2big)
{
    struct bt_buf small;
    bt_buf_init(&small, 8);
    const char *r =
        "{\"log\":\"0123456789abcdef\",\"stream\":\"stdout\",\"time\":\"2019-04-30T02:12:41Z\"}";
    cr_assert_eq(bt_dockerjson_parse(r, strlen(r), &small, &rec), -E2BIG);
    cr_assert_eq(small.len, 0);
    bt_buf_free(&small);
}

Test(dockerjson, long_record_decodes_byte_identical)
{
    size_t n = 16384;
    char *rec_text = malloc(n + 128);
    int k = snprintf(rec_text, 16, "{\"log\":\"");
    for (size_t i = 0; i < n; i++)
        rec_text[k + i] = (char)('a' + i % 26);
    snprintf(rec_text + k + n, 112,
             "\",\"stream\":\"stdout\",\"time\":\"2019-04-30T02:12:41Z\"}\n");
    cr_assert_eq(parse(rec_text), 0);
    cr_assert_eq(buf.len, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(buf.ptr[i], (char)('a' + i % 26));
    free(rec_text);
}

/* Mutated records (flipped bytes, stray quotes and backslashes, truncation) must give a clean
 * result or -EINVAL, never a crash or a decoded log longer than the record. */
Test(dockerjson, survives_mutated_records)
{
    static const char *seeds[] = {
        "{\"log\":\"hello \\u003cworld\\u003e "
        "\\ud83d\\ude00\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-29T06:15:22.79211261Z\"}\n",
        "{\"log\":\"a\\\\b\\\"c\\t\",\"attrs\":{\"x\":[1,2,{\"y\":null}]},\"stream\":\"stderr\","
        "\"time\":\"2019-04-30T02:12:41Z\"}",
    };
    static const char junk[] = {'"', '\\', 'u', '{', '}', ',', ':', 0, '\n', (char)0xff, 'd', '8'};
    unsigned seed = 12345;
    char rec[512];
    for (int it = 0; it < 20000; it++) {
        const char *s = seeds[it % 2];
        size_t n = strlen(s);
        memcpy(rec, s, n);
        int edits = 1 + (int)(rand_r(&seed) % 4);
        for (int k = 0; k < edits; k++) {
            size_t pos = (size_t)rand_r(&seed) % n;
            switch (rand_r(&seed) % 3) {
            case 0: rec[pos] = junk[rand_r(&seed) % sizeof(junk)]; break;
            case 1: rec[pos] = (char)rand_r(&seed); break;
            default: n = pos ? pos : 1; break;
            }
        }
        int rc = bt_dockerjson_parse(rec, n, &buf, &rec_out_unused);
        cr_assert(rc == 0 || rc == -EINVAL, "rc %d", rc);
        if (rc == 0)
            cr_assert_leq(buf.len, n);
        else
            cr_assert_eq(buf.len, 0);
    }
}

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "test_stage_harness.h"
#include "tmpdir.h"
#include "util/gotime.h"

#define S 1000000000LL
#define READ_TS 1000 /* the harness's read time */

static const char *ts_regex = "- regex: {expression: '^(?P<time>.+?) \\|'}\n";

static void build(struct harness *h, const char *stage_yaml)
{
    char y[1024];
    snprintf(y, sizeof(y), "%s%s", ts_regex, stage_yaml);
    h_new(h, y);
}

Test(stage_timestamp, doc_example_rfc3339nano)
{
    struct harness h;
    build(&h, "- timestamp:\n    source: time\n    format: RFC3339Nano\n");
    h_push(&h, "2019-04-30T02:12:41.8443515Z | hello");
    cr_assert_eq(h.n, 1);
    cr_assert_eq(h.out[0].ts, 1556590361LL * S + 844351500);
    cr_assert_str_eq(h.out[0].line, "2019-04-30T02:12:41.8443515Z | hello");
    h_free(&h);
}

Test(stage_timestamp, doc_unix_formats)
{
    struct harness h;
    build(&h, "- timestamp: {source: time, format: Unix}\n");
    h_push(&h, "1562708916.000000123 | x");
    cr_assert_eq(h.out[0].ts, 1562708916LL * S + 123);
    h_free(&h);
    build(&h, "- timestamp: {source: time, format: UnixMs}\n");
    h_push(&h, "1562708916414 | x");
    cr_assert_eq(h.out[0].ts, 1562708916414LL * 1000000);
    h_free(&h);
}

Test(stage_timestamp, custom_layout_with_offset)
{
    struct harness h;
    build(&h, "- timestamp: {source: time, format: '2006-01-02 15:04:05.000-0700'}\n");
    h_push(&h, "2006-01-02 15:04:05.250-0700 | x");
    cr_assert_eq(h.out[0].ts, 1136239445LL * S + 250000000);
    h_free(&h);
}

Test(stage_timestamp, fallback_formats_are_tried_in_order)
{
    struct harness h;
    build(&h, "- timestamp:\n    source: time\n    format: RFC3339\n"
              "    fallback_formats: [UnixMs, '02/Jan/2006:15:04:05 -0700']\n"
              "    action_on_failure: skip\n");
    h_push(&h, "2019-04-30T02:12:41Z | a");
    h_push(&h, "1562708916414 | b");
    h_push(&h, "25/Jan/2000:14:00:01 -0500 | c");
    h_push(&h, "garbage | d");
    cr_assert_eq(h.n, 4);
    cr_assert_eq(h.out[0].ts, 1556590361LL * S);
    cr_assert_eq(h.out[1].ts, 1562708916414LL * 1000000);
    cr_assert_eq(h.out[2].ts, 948826801LL * S);
    cr_assert_eq(h.out[3].ts, READ_TS);
    h_free(&h);
}

Test(stage_timestamp, fudge_adds_one_ns_per_label_set)
{
    struct harness h;
    build(&h, "- timestamp: {source: time, format: RFC3339}\n");
    bt_labels_set(&h.in, "job", "a");
    h_push(&h, "2019-04-30T02:12:41Z | ok");
    h_push(&h, "bad | fudged");
    h_push(&h, "no separator, no time key");
    bt_labels_set(&h.in, "job", "b");
    h_push(&h, "bad | other stream keeps read time");
    bt_labels_set(&h.in, "job", "a");
    h_push(&h, "bad | back to a");
    cr_assert_eq(h.n, 5);
    cr_assert_eq(h.out[0].ts, 1556590361LL * S);
    cr_assert_eq(h.out[1].ts, 1556590361LL * S + 1);
    cr_assert_eq(h.out[2].ts, 1556590361LL * S + 2, "a missing source key is a failure too");
    cr_assert_eq(h.out[3].ts, READ_TS);
    cr_assert_eq(h.out[4].ts, 1556590361LL * S + 3);
    h_free(&h);
}

Test(stage_timestamp, skip_keeps_read_time)
{
    struct harness h;
    build(&h, "- timestamp: {source: time, format: RFC3339, action_on_failure: skip}\n");
    h_push(&h, "2019-04-30T02:12:41Z | ok");
    h_push(&h, "bad | skipped");
    cr_assert_eq(h.out[0].ts, 1556590361LL * S);
    cr_assert_eq(h.out[1].ts, READ_TS);
    h_free(&h);
}

Test(stage_timestamp, fudge_lru_forgets_the_oldest_of_10000_label_sets)
{
    struct harness h;
    build(&h, "- timestamp: {source: time, format: Unix}\n");
    char v[32];
    for (int i = 0; i <= 10000; i++) {
        snprintf(v, sizeof(v), "s%d", i);
        bt_labels_set(&h.in, "stream", v);
        h_push(&h, "100 | x");
        h_reset_out(&h);
    }
    bt_labels_set(&h.in, "stream", "s0"); /* evicted by the 10001st label set */
    h_push(&h, "bad | x");
    bt_labels_set(&h.in, "stream", "s1");
    h_push(&h, "bad | x");
    cr_assert_eq(h.out[0].ts, READ_TS);
    cr_assert_eq(h.out[1].ts, 100 * S + 1);
    h_free(&h);
}

Test(stage_timestamp, numbers_from_json_are_parsed_as_text)
{
    struct harness h;
    h_new(&h, "- json: {expressions: {ts: ts}}\n- timestamp: {source: ts, format: Unix}\n");
    h_push(&h, "{\"ts\": 1562708916}");
    cr_assert_eq(h.out[0].ts, 1562708916LL * S);
    h_free(&h);
}

Test(stage_timestamp, yearless_layout_gets_the_current_year)
{
    struct harness h;
    build(&h, "- timestamp: {source: time, format: 'Jan _2 15:04:05'}\n");
    h_push(&h, "Jun 15 10:00:00 | syslog style");
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char want[64];
    snprintf(want, sizeof(want), "%04d-06-15T10:00:00Z", tm.tm_year + 1900);
    int64_t w;
    cr_assert_eq(bt_gotime_parse_once("RFC3339", NULL, want, 0, &w), 0);
    cr_assert_eq(h.out[0].ts, w);
    h_free(&h);
}

/* A TZif v2 image without transitions: one zone type and a POSIX footer. */
static size_t make_tzif(unsigned char *out, const char *abbr, int32_t off, const char *footer)
{
    size_t n = 0, alen = strlen(abbr) + 1;
    for (int pass = 0; pass < 2; pass++) {
        memcpy(out + n, "TZif2", 5);
        memset(out + n + 5, 0, 15);
        n += 20;
        uint32_t counts[6] = {0, 0, 0, 0, 1, (uint32_t)alen};
        for (int i = 0; i < 6; i++, n += 4) {
            out[n] = (unsigned char)(counts[i] >> 24);
            out[n + 1] = (unsigned char)(counts[i] >> 16);
            out[n + 2] = (unsigned char)(counts[i] >> 8);
            out[n + 3] = (unsigned char)counts[i];
        }
        uint32_t u = (uint32_t)off;
        out[n++] = (unsigned char)(u >> 24);
        out[n++] = (unsigned char)(u >> 16);
        out[n++] = (unsigned char)(u >> 8);
        out[n++] = (unsigned char)u;
        out[n++] = 0;
        out[n++] = 0;
        memcpy(out + n, abbr, alen);
        n += alen;
    }
    out[n++] = '\n';
    memcpy(out + n, footer, strlen(footer));
    n += strlen(footer);
    out[n++] = '\n';
    return n;
}

Test(stage_timestamp, location_applies_to_layouts_without_zone)
{
    char dir[256], sub[300];
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    snprintf(sub, sizeof(sub), "%s/Europe", dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    unsigned char img[256];
    size_t n = make_tzif(img, "CET", 3600, "CET-1CEST,M3.5.0,M10.5.0/3");
    cr_assert_eq(bt_tmpdir_write(dir, "Europe/Berlin", (const char *)img, n), 0);
    setenv("ZONEINFO", dir, 1);
    struct harness h;
    build(&h, "- timestamp:\n    source: time\n    format: '2006-01-02 15:04:05'\n"
              "    location: Europe/Berlin\n");
    h_push(&h, "2021-07-01 12:00:00 | summer");
    h_push(&h, "2021-01-15 12:00:00 | winter");
    cr_assert_eq(h.out[0].ts, 1625133600LL * S);
    cr_assert_eq(h.out[1].ts, 1610708400LL * S);
    h_free(&h);
    unsetenv("ZONEINFO");
    bt_tmpdir_remove(dir);
}

Test(stage_timestamp, config_errors_name_the_problem)
{
    struct harness h;
    cr_assert_eq(h_try(&h, "- timestamp: {source: t}\n"), -1);
    cr_assert(strstr(h.err, "stage \"timestamp\": format is required"), "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- timestamp: {format: RFC3339}\n"), -1);
    cr_assert(strstr(h.err, "source is required"), "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- timestamp: {source: t, format: RFC3339, action_on_failure: drop}\n"),
                 -1);
    cr_assert(strstr(h.err, "invalid action_on_failure \"drop\""), "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- timestamp: {source: t, format: RFC3339, location: Mars/Base}\n"), -1);
    cr_assert(strstr(h.err, "pipeline.yaml:1:53: stage \"timestamp\": invalid location"), "%s",
              h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- timestamp: {source: t, format: RFC3339, tz: UTC}\n"), 0, "%s",
                 h.err); /* unknown key: a warning, as promtail ignores it */
    h_free(&h);
    cr_assert_eq(h_try(&h, "- timestamp: {source: t, format: RFC3339, fallback_formats: x}\n"), -1);
    cr_assert(strstr(h.err, "expected a list"), "%s", h.err);
    h_free(&h);
}

#include "test_stage_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "stage/stage.h"
#include "util/buf.h"
#include "util/log.h"

static int64_t seen_ts;
static const char *seen_line;
static void raw_sink(void *ctx, const struct bt_entry *e)
{
    seen_line = e->line;
    seen_ts = e->ts_ns;
}

Test(pipeline, no_stages_passes_the_same_entry_to_the_sink)
{
    char err[256];
    struct bt_pipeline *p = bt_pipeline_new(NULL, "job", NULL, raw_sink, NULL, err, sizeof(err));
    cr_assert_not_null(p);
    const char *line = "hello";
    struct bt_entry e = {.line = line, .line_len = 5, .ts_ns = 42};
    bt_pipeline_process(p, &e);
    cr_assert_eq(seen_line, line, "no stages must not copy the line");
    cr_assert_eq(seen_ts, 42);
    cr_assert_eq(bt_pipeline_deadline(p), INT64_MAX);
    bt_pipeline_free(p);
}

Test(pipeline, unknown_stage_is_an_error_with_position)
{
    struct harness h;
    cr_assert_eq(h_try(&h, "- regex:\n    expression: '(?P<a>.)'\n- nosuch: {}\n"), -1);
    cr_assert(strstr(h.err, "pipeline.yaml:3:3: unknown stage \"nosuch\"") != NULL, "%s", h.err);
    h_free(&h);
}

Test(pipeline, stage_must_be_a_one_key_map)
{
    struct harness h;
    cr_assert_eq(h_try(&h, "- regex: {expression: '(?P<a>.)'}\n  output: {source: a}\n"), -1);
    cr_assert(strstr(h.err, "pipeline.yaml:1:3: a pipeline stage must be a map") != NULL, "%s",
              h.err);
    h_free(&h);
}

Test(pipeline, unknown_option_is_a_warning_naming_file_line_and_stage)
{
    /* promtail ignores stage options it does not know and starts: so does bpftail, saying so */
    struct harness h;
    FILE *log = tmpfile();
    cr_assert_not_null(log);
    bt_log_set_fd(fileno(log));
    int rc = h_try(&h, "- regex:\n    expression: '(?P<a>.)'\n    sauce: x\n");
    bt_log_set_fd(2);
    cr_assert_eq(rc, 0, "%s", h.err);
    char buf[1024] = {0};
    rewind(log);
    size_t n = fread(buf, 1, sizeof(buf) - 1, log);
    buf[n] = '\0';
    fclose(log);
    cr_assert(strstr(buf, "level=warn") != NULL, "%s", buf);
    cr_assert(
        strstr(buf, "pipeline.yaml:3:5: stage \\\"regex\\\": unknown key \\\"sauce\\\" ignored") !=
            NULL,
        "%s", buf);
    h_push(&h, "x");
    cr_assert_eq(h.n, 1);
    h_free(&h);
}

Test(pipeline, stage_not_built_in_says_so)
{
    /* geoip is a promtail stage bpftail knows of but does not build. */
    bool unavail = false;
    cr_assert_null(bt_stage_find("geoip", &unavail));
    cr_assert(unavail);
    struct harness h;
    cr_assert_eq(h_try(&h, "- geoip: {}\n"), -1);
    cr_assert_str_eq(
        h.err, "pipeline.yaml:1:3: stage \"geoip\" is not supported by bpftail: it needs a MaxMind "
               "database reader, which bpftail does not link");
    h_free(&h);
}

Test(pipeline, labels_are_copied_into_extracted_before_the_first_stage)
{
    struct harness h;
    h_new(&h, "- output: {source: filename}\n");
    bt_labels_set(&h.in, "filename", "/var/log/app.log");
    h_push(&h, "original");
    cr_assert_eq(h.n, 1);
    cr_assert_str_eq(h.out[0].line, "/var/log/app.log");
    h_free(&h);
}

Test(pipeline, source_labels_are_not_modified_by_stages)
{
    struct harness h;
    h_new(&h, "- static_labels: {env: prod}\n- labeldrop: [job]\n");
    bt_labels_set(&h.in, "job", "varlogs");
    h_push(&h, "x");
    cr_assert_str_eq(h_label(&h, 0, "env"), "prod");
    cr_assert_null(h_label(&h, 0, "job"));
    cr_assert_str_eq(bt_labels_get(&h.in, "job"), "varlogs", "copy-on-write broke the source");
    cr_assert_null(bt_labels_get(&h.in, "env"));
    h_free(&h);
}

Test(pipeline, inspect_prints_what_each_stage_changed)
{
    struct harness h;
    h_new(&h, "- regex:\n    expression: '^(?P<level>\\w+) (?P<msg>.*)$'\n"
              "- labels: {level: ''}\n- output: {source: msg}\n");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    bt_pipeline_set_inspect(h.p, f);
    h_push(&h, "info hello world");
    fclose(f);
    cr_assert(strstr(buf, "[inspect] stage \"regex\" (line 1):\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "  extracted: + level: \"info\"\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "  extracted: + msg: \"hello world\"\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "[inspect] stage \"labels\" (line 3):\n  labels: + level=\"info\"\n") !=
                  NULL,
              "%s", buf);
    cr_assert(strstr(buf, "  line: \"info hello world\" -> \"hello world\"\n") != NULL, "%s", buf);
    free(buf);
    h_free(&h);
}

Test(pipeline, go_float_formatting_matches_strconv)
{
    char b[64];
    struct {
        double v;
        const char *s;
    } c[] = {{1, "1"},
             {0.1, "0.1"},
             {1e21, "1000000000000000000000"},
             {-2.5, "-2.5"},
             {123456789.125, "123456789.125"},
             {1e-7, "0.0000001"},
             {0, "0"}};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        bt_format_go_float(b, sizeof(b), c[i].v);
        cr_assert_str_eq(b, c[i].s);
    }
}

Test(pipeline, utf8_validation_rejects_overlongs_and_surrogates)
{
    cr_assert(bt_utf8_valid("h\xc3\xa9llo \xf0\x9f\x98\x80", 11));
    cr_assert_not(bt_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
    cr_assert_not(bt_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    cr_assert_not(bt_utf8_valid("\xe2\x82", 2));         /* truncated */
    cr_assert_not(bt_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}

Test(pipeline, dry_run_format_matches_promtail)
{
    setenv("TZ", "UTC", 1);
    tzset();
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "varlogs");
    bt_labels_set(&l, "__tenant_id__", "t");
    struct bt_kv kv = {"trace", 5, "a\"b", 3};
    struct bt_entry e = {
        .labels = &l, .ts_ns = 1674668028360098800LL, .line = "hello", .line_len = 5};
    struct bt_buf b;
    bt_buf_init(&b, 4096);
    cr_assert_eq(bt_pipeline_format_entry(&e, &b), 0);
    cr_assert_str_eq(bt_buf_str(&b),
                     "2023-01-25T17:33:48.3600988+0000\t{job=\"varlogs\"}\thello\n");
    bt_buf_reset(&b);
    e.ts_ns = 1674668028000000000LL;
    e.meta = &kv;
    e.n_meta = 1;
    cr_assert_eq(bt_pipeline_format_entry(&e, &b), 0);
    cr_assert_str_eq(bt_buf_str(&b),
                     "2023-01-25T17:33:48+0000\t{job=\"varlogs\"}\t{trace=\"a\\\"b\"}\thello\n");
    bt_buf_free(&b);
    bt_labels_free(&l);
}

Test(pipeline, inspect_keeps_each_entry_apart_when_a_stage_emits)
{
    struct harness h;
    h_new(&h, "- multiline: {firstline: '^S'}\n- static_labels: {x: y}\n");
    h_push(&h, "S1");
    h_push(&h, "c");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    bt_pipeline_set_inspect(h.p, f);
    h_push(&h, "S2"); /* emits "S1\nc" through static_labels, then holds S2 */
    fclose(f);
    cr_assert_str_eq(buf,
                     "[inspect] stage \"static_labels\" (line 2):\n"
                     "  labels: + x=\"y\"\n"
                     "[inspect] stage \"multiline\" (line 1): held\n",
                     "%s", buf);
    free(buf);
    h_free(&h);
}

Test(pipeline, promtail_stages_not_implemented_say_so)
{
    struct harness h;
    cr_assert_eq(h_try(&h, "- geoip: {db: /x.mmdb, source: ip}\n"), -1);
    cr_assert_str_eq(
        h.err, "pipeline.yaml:1:3: stage \"geoip\" is not supported by bpftail: it needs a MaxMind "
               "database reader, which bpftail does not link");
    h_free(&h);
}

Test(pipeline, inspect_shows_timestamps_readably)
{
    struct harness h;
    h_new(&h, "- pack: {labels: [a]}\n");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    bt_pipeline_set_inspect(h.p, f);
    h_push_seg(&h, "x", 1500000000123456789LL, NULL);
    fclose(f);
    cr_assert(strstr(buf, "  timestamp: 2017-07-14T02:40:00.123456789Z -> ") != NULL, "%s", buf);
    cr_assert(strstr(buf, "  line: \"x\" -> \"{\\\"_entry\\\":\\\"x\\\"}\"\n") != NULL, "%s", buf);
    free(buf);
    h_free(&h);
}

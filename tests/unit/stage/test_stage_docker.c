#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ack.h"
#include "core/labels.h"
#include "core/metrics.h"
#include "config/node.h"
#include "stage/pipeline.h"
#include "util/buf.h"
#include "util/timeutil.h"

#define MAXOUT 64

struct got {
    char *line;
    size_t len;
    char labels[512];
    int64_t ts;
    struct bt_segment *seg;
};

static struct got out[MAXOUT];
static size_t n_out;
static struct bt_node *doc;
static struct bt_metrics *metrics;
static struct bt_pipeline *pl;
static struct bt_labels src;

static void sink(void *ctx, const struct bt_entry *e)
{
    cr_assert_lt(n_out, MAXOUT);
    struct got *g = &out[n_out++];
    g->line = malloc(e->line_len + 1);
    memcpy(g->line, e->line, e->line_len);
    g->line[e->line_len] = 0;
    g->len = e->line_len;
    snprintf(g->labels, sizeof(g->labels), "%s", bt_labels_canon(e->labels, NULL));
    g->ts = e->ts_ns;
    g->seg = e->seg;
    bt_segment_ref(e->seg, 1); /* as the batcher does; released by the test */
}

static void build(const char *yaml)
{
    char err[512] = "";
    doc = bt_yaml_parse(yaml, strlen(yaml), "p.yaml", err, sizeof(err));
    cr_assert_not_null(doc, "%s", err);
    metrics = bt_metrics_new();
    pl = bt_pipeline_new(doc, "job1", metrics, sink, NULL, err, sizeof(err));
    cr_assert_not_null(pl, "%s", err);
    bt_labels_init(&src);
    bt_labels_set(&src, "job", "docker");
    bt_labels_set(&src, "filename", "/d/c1/c1-json.log");
}

static void teardown(void)
{
    bt_pipeline_free(pl);
    bt_metrics_free(metrics);
    bt_node_free(doc);
    bt_labels_free(&src);
    for (size_t i = 0; i < n_out; i++)
        free(out[i].line);
    n_out = 0;
    pl = NULL;
}

TestSuite(stage_docker, .fini = teardown);

static void feed_seg(const char *rec, size_t len, struct bt_segment *seg)
{
    struct bt_entry e = {.labels = &src, .ts_ns = 7, .line = rec, .line_len = len, .seg = seg};
    bt_pipeline_process(pl, &e);
}

static void feed(const char *rec)
{
    feed_seg(rec, strlen(rec), NULL);
}

/* A json-file record of `log` (already JSON-escaped) on stream. */
static char *record(const char *log_json, const char *stream)
{
    struct bt_buf b;
    bt_buf_init(&b, 1 << 22);
    bt_buf_addf(&b, "{\"log\":\"%s\",\"stream\":\"%s\",\"time\":\"2019-04-30T02:12:41.8443515Z\"}",
                log_json, stream);
    return bt_buf_take(&b, NULL);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)(c + i % 7);
    s[n] = 0;
    return s;
}

Test(stage_docker, promtail_example_keeps_trailing_newline_sets_stream_and_time)
{
    build("- docker: {}\n");
    feed("{\"log\":\"log "
         "message\\n\",\"stream\":\"stderr\",\"time\":\"2019-04-30T02:12:41.8443515Z\"}");
    cr_assert_eq(n_out, 1);
    cr_assert_str_eq(out[0].line, "log message\n");
    cr_assert_str_eq(out[0].labels,
                     "{filename=\"/d/c1/c1-json.log\", job=\"docker\", stream=\"stderr\"}");
    cr_assert_eq(out[0].ts, 1556590361844351500LL);
}

Test(stage_docker, decodes_escapes_into_the_exact_bytes)
{
    build("- docker:\n");
    feed("{\"log\":\"tab\\u0009 esc\\u001b \\u003ca\\u003e \\\"q\\\" \\\\ \\ud83d\\ude00 "
         "\\ud800\\r\\n\","
         "\"stream\":\"stdout\",\"time\":\"2019-04-30T02:12:41Z\"}");
    cr_assert_eq(n_out, 1);
    cr_assert_str_eq(out[0].line, "tab\t esc\x1b <a> \"q\" \\ \xf0\x9f\x98\x80 \xef\xbf\xbd\r\n");
}

Test(stage_docker, forty_kib_line_from_three_records_is_one_identical_entry)
{
    build("- docker: {}\n");
    char *line = repeat('a', 40000);
    char *r1 = record("", "stdout");
    free(r1);
    char c1[16385], c2[16385], c3[7233 + 2];
    memcpy(c1, line, 16384);
    c1[16384] = 0;
    memcpy(c2, line + 16384, 16384);
    c2[16384] = 0;
    memcpy(c3, line + 32768, 7232);
    memcpy(c3 + 7232, "\\n", 3);
    char *a = record(c1, "stdout"), *b = record(c2, "stdout"), *c = record(c3, "stdout");
    feed(a);
    feed(b);
    cr_assert_eq(n_out, 0, "a partial record must be held");
    feed(c);
    cr_assert_eq(n_out, 1);
    cr_assert_eq(out[0].len, 40001);
    cr_assert_eq(memcmp(out[0].line, line, 40000), 0);
    cr_assert_eq(out[0].line[40000], '\n');
    cr_assert_eq(out[0].ts, 1556590361844351500LL);
    cr_assert(strstr(out[0].labels, "stream=\"stdout\""));
    free(a);
    free(b);
    free(c);
    free(line);
}

Test(stage_docker, partials_join_per_stream_and_per_file)
{
    build("- docker: {}\n");
    char *o1 = record("out-a ", "stdout"), *e1 = record("err-a ", "stderr");
    char *o2 = record("out-b\\n", "stdout"), *e2 = record("err-b\\n", "stderr");
    feed(o1);
    feed(e1);
    bt_labels_set(&src, "filename", "/d/c2/c2-json.log");
    feed(o1); /* another container's partial must not join the first one's */
    bt_labels_set(&src, "filename", "/d/c1/c1-json.log");
    feed(o2);
    feed(e2);
    cr_assert_eq(n_out, 2);
    cr_assert_str_eq(out[0].line, "out-a out-b\n");
    cr_assert(strstr(out[0].labels, "c1-json.log") && strstr(out[0].labels, "stdout"));
    cr_assert_str_eq(out[1].line, "err-a err-b\n");
    cr_assert(strstr(out[1].labels, "stderr"));
    bt_pipeline_flush(pl);
    cr_assert_eq(n_out, 3);
    cr_assert_str_eq(out[2].line, "out-a ");
    cr_assert(strstr(out[2].labels, "c2-json.log"));
    free(o1);
    free(o2);
    free(e1);
    free(e2);
}

Test(stage_docker, output_without_newline_is_flushed_after_the_wait)
{
    build("- docker:\n    max_wait_time: 50ms\n");
    char *r = record("no-newline-at-end", "stdout");
    feed(r);
    cr_assert_eq(n_out, 0);
    int64_t d = bt_pipeline_deadline(pl);
    cr_assert_neq(d, INT64_MAX);
    bt_pipeline_tick(pl, d - 1);
    cr_assert_eq(n_out, 0, "flushed before its deadline");
    bt_pipeline_tick(pl, d);
    cr_assert_eq(n_out, 1);
    cr_assert_str_eq(out[0].line, "no-newline-at-end");
    cr_assert_eq(bt_pipeline_deadline(pl), INT64_MAX);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_partial_lines_timeout_total", ""), 1.0);
    free(r);
}

Test(stage_docker, malformed_records_ship_raw_and_are_counted)
{
    build("- docker: {}\n");
    feed("not json at all");
    feed("{\"stream\":\"stdout\"}");
    cr_assert_eq(n_out, 2);
    cr_assert_str_eq(out[0].line, "not json at all");
    cr_assert_eq(out[0].ts, 7);
    cr_assert_str_eq(out[0].labels, "{filename=\"/d/c1/c1-json.log\", job=\"docker\"}");
    cr_assert_str_eq(out[1].line, "{\"stream\":\"stdout\"}");
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_docker_malformed_records_total", "job1"), 2.0);
}

Test(stage_docker, drop_malformed_drops_with_a_reason)
{
    build("- docker:\n    drop_malformed: true\n");
    feed("not json at all");
    feed("{\"log\":\"ok\\n\",\"stream\":\"stdout\",\"time\":\"2019-04-30T02:12:41Z\"}");
    cr_assert_eq(n_out, 1);
    cr_assert_str_eq(out[0].line, "ok\n");
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_docker_malformed_records_total", ""), 1.0);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_dropped_entries_total", "docker_malformed"), 1.0);
}

Test(stage_docker, bad_time_keeps_read_time)
{
    build("- docker: {}\n");
    feed("{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":\"not a time\"}");
    cr_assert_eq(n_out, 1);
    cr_assert_eq(out[0].ts, 7);
}

Test(stage_docker, join_is_split_at_the_cap_without_losing_bytes)
{
    build("- docker:\n    max_partial_line_size: 20000\n");
    char *line = repeat('a', 40000);
    char c[16385];
    struct bt_buf whole;
    bt_buf_init(&whole, 1 << 20);
    for (size_t off = 0; off < 40000; off += 16384) {
        size_t n = 40000 - off < 16384 ? 40000 - off : 16384;
        memcpy(c, line + off, n);
        c[n] = 0;
        char *tmp = malloc(n + 3);
        memcpy(tmp, c, n + 1);
        if (off + n == 40000)
            memcpy(tmp + n, "\\n", 3);
        char *r = record(tmp, "stdout");
        feed(r);
        free(r);
        free(tmp);
    }
    cr_assert_eq(n_out, 3);
    cr_assert_eq(out[0].len, 20000);
    cr_assert_eq(out[1].len, 20000);
    cr_assert_eq(out[2].len, 1);
    for (size_t i = 0; i < n_out; i++)
        bt_buf_add(&whole, out[i].line, out[i].len);
    cr_assert_eq(whole.len, 40001);
    cr_assert_eq(memcmp(whole.ptr, line, 40000), 0);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_partial_lines_capped_total", ""), 2.0);
    bt_buf_free(&whole);
    free(line);
}

Test(stage_docker, truncate_option_drops_the_rest_of_a_long_line)
{
    build("- docker:\n    max_partial_line_size: 10\n    max_partial_line_size_truncate: true\n");
    char *a = record("0123456", "stdout"), *b = record("789abcdef", "stdout"),
         *c = record("ghi\\n", "stdout"), *d = record("next\\n", "stdout");
    feed(a);
    feed(b);
    feed(c);
    feed(d);
    cr_assert_eq(n_out, 2);
    cr_assert_str_eq(out[0].line, "0123456789");
    cr_assert_str_eq(out[1].line, "next\n");
    free(a);
    free(b);
    free(c);
    free(d);
}

Test(stage_docker, too_many_pending_streams_flush_the_oldest)
{
    build("- docker:\n    max_partial_lines: 2\n");
    char *r = record("part", "stdout");
    const char *files[] = {"/f1", "/f2", "/f3"};
    for (int i = 0; i < 3; i++) {
        bt_labels_set(&src, "filename", files[i]);
        feed(r);
    }
    cr_assert_eq(n_out, 1);
    cr_assert(strstr(out[0].labels, "/f1"));
    free(r);
}

static uint64_t committed;
static void on_commit(void *ctx, uint64_t c)
{
    committed = c;
}

Test(stage_docker, held_chunks_hold_back_the_committed_position)
{
    build("- docker: {}\n");
    struct bt_ack_owner *o = bt_ack_owner_new(0, on_commit, NULL);
    char *a = record("first-half ", "stdout"), *b = record("second-half\\n", "stdout");
    size_t la = strlen(a), lb = strlen(b);
    struct bt_segment *s1 = bt_segment_new(o, 0, la);
    feed_seg(a, la, s1);
    bt_segment_unref(s1, 1); /* the source lets go after the call */
    cr_assert_eq(bt_ack_committed(o), 0, "a held chunk's bytes must not count as delivered");
    struct bt_segment *s2 = bt_segment_new(o, la, la + lb);
    feed_seg(b, lb, s2);
    cr_assert_eq(n_out, 1);
    cr_assert_eq(out[0].seg, s1, "the joined entry carries the first chunk's segment");
    bt_segment_unref(s2, 1);
    cr_assert_eq(bt_ack_committed(o), 0, "nothing is delivered before the joined entry is");
    bt_segment_unref(out[0].seg, 1); /* Loki accepted the batch */
    cr_assert_eq(bt_ack_committed(o), la + lb);
    cr_assert_eq(committed, la + lb);
    bt_ack_owner_close(o);
    free(a);
    free(b);
}

Test(stage_docker, unknown_option_is_ignored_as_promtail_does)
{
    /* a warning naming p.yaml:2:5 is logged (checked in test_pipeline.c) */
    char err[512] = "";
    const char *y = "- docker:\n    colour: red\n";
    struct bt_node *d = bt_yaml_parse(y, strlen(y), "p.yaml", err, sizeof(err));
    struct bt_pipeline *p = bt_pipeline_new(d, "j", NULL, sink, NULL, err, sizeof(err));
    cr_assert_not_null(p, "%s", err);
    bt_pipeline_free(p);
    bt_node_free(d);
}

Test(stage_docker, output_without_newline_is_not_glued_to_a_later_line)
{
    build("- docker: {}\n");
    feed("{\"log\":\"no-newline-at-end\",\"stream\":\"stdout\",\"time\":\"2019-04-30T02:12:41."
         "1Z\"}");
    cr_assert_eq(n_out, 0);
    feed("{\"log\":\"restarted\\n\",\"stream\":\"stdout\",\"time\":\"2019-04-30T02:12:45Z\"}");
    cr_assert_eq(n_out, 2);
    cr_assert_str_eq(out[0].line, "no-newline-at-end");
    cr_assert_eq(out[0].ts, 1556590361100000000LL);
    cr_assert_str_eq(out[1].line, "restarted\n");
    cr_assert_eq(bt_pipeline_deadline(pl), INT64_MAX);
}

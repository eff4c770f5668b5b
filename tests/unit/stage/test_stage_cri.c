#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/labels.h"
#include "core/metrics.h"
#include "config/node.h"
#include "stage/pipeline.h"

#define MAXOUT 32

struct got {
    char *line;
    size_t len;
    char labels[256];
    int64_t ts;
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
}

static void build(const char *yaml)
{
    char err[512] = "";
    doc = bt_yaml_parse(yaml, strlen(yaml), "p.yaml", err, sizeof(err));
    cr_assert_not_null(doc, "%s", err);
    metrics = bt_metrics_new();
    pl = bt_pipeline_new(doc, "k8s", metrics, sink, NULL, err, sizeof(err));
    cr_assert_not_null(pl, "%s", err);
    bt_labels_init(&src);
    bt_labels_set(&src, "filename", "/var/log/pods/a/0.log");
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
}

TestSuite(stage_cri, .fini = teardown);

static void feed(const char *line)
{
    struct bt_entry e = {.labels = &src, .ts_ns = 5, .line = line, .line_len = strlen(line)};
    bt_pipeline_process(pl, &e);
}

Test(stage_cri, promtail_example_sets_line_stream_and_time)
{
    build("- cri: {}\n");
    feed("2019-01-01T01:00:00.000000001Z stderr F some log message");
    cr_assert_eq(n_out, 1);
    cr_assert_str_eq(out[0].line, "some log message");
    cr_assert_str_eq(out[0].labels, "{filename=\"/var/log/pods/a/0.log\", stream=\"stderr\"}");
    cr_assert_eq(out[0].ts, 1546304400000000001LL);
}

Test(stage_cri, partials_join_into_the_full_record_per_stream_with_latest_time)
{
    build("- cri: {}\n");
    feed("2019-01-01T01:00:00.1Z stdout P out-1 ");
    feed("2019-01-01T01:00:00.2Z stderr P err-1 ");
    feed("2019-01-01T01:00:00.3Z stdout P out-2 ");
    cr_assert_eq(n_out, 0);
    feed("2019-01-01T01:00:00.4Z stdout F out-3");
    feed("2019-01-01T01:00:00.5Z stderr F:tag err-2");
    cr_assert_eq(n_out, 2);
    cr_assert_str_eq(out[0].line, "out-1 out-2 out-3");
    cr_assert(strstr(out[0].labels, "stdout"));
    cr_assert_eq(out[0].ts, 1546304400400000000LL);
    cr_assert_str_eq(out[1].line, "err-1 err-2");
    cr_assert(strstr(out[1].labels, "stderr"));
}

Test(stage_cri, only_exact_p_is_partial_and_content_may_be_empty_or_multiline)
{
    build("- cri: {}\n");
    feed("2019-01-01T01:00:00Z stdout PX not partial");
    feed("2019-01-01T01:00:00Z stdout F ");
    feed("2019-01-01T01:00:00Z stdout F a\nb");
    cr_assert_eq(n_out, 3);
    cr_assert_str_eq(out[0].line, "not partial");
    cr_assert_eq(out[1].len, 0);
    cr_assert_str_eq(out[2].line, "a\nb");
}

Test(stage_cri, lines_of_another_shape_pass_unchanged_and_are_counted)
{
    const char *bad[] = {"plain text", "2019-01-01T01:00:00Z stdin F x",
                         "2019-01-01T01:00:00Z stdout F", " stdout F x",
                         "2019-01-01T01:00:00Z  stdout F x"};
    build("- cri: {}\n");
    for (size_t i = 0; i < 5; i++)
        feed(bad[i]);
    cr_assert_eq(n_out, 5);
    for (size_t i = 0; i < 5; i++) {
        cr_assert_str_eq(out[i].line, bad[i]);
        cr_assert_eq(out[i].ts, 5);
        cr_assert_null(strstr(out[i].labels, "stream"));
    }
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_cri_malformed_records_total", "k8s"), 5.0);
}

Test(stage_cri, drop_malformed_drops_them)
{
    build("- cri:\n    drop_malformed: true\n");
    feed("plain text");
    cr_assert_eq(n_out, 0);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_dropped_entries_total", "cri_malformed"), 1.0);
}

Test(stage_cri, bad_time_keeps_read_time)
{
    build("- cri: {}\n");
    feed("yesterday stdout F x");
    cr_assert_eq(n_out, 1);
    cr_assert_str_eq(out[0].line, "x");
    cr_assert_eq(out[0].ts, 5);
}

Test(stage_cri, partial_without_final_is_flushed_after_wait)
{
    build("- cri:\n    max_wait_time: 1s\n");
    feed("2019-01-01T01:00:00Z stdout P dangling");
    int64_t d = bt_pipeline_deadline(pl);
    bt_pipeline_tick(pl, d - 1);
    cr_assert_eq(n_out, 0);
    bt_pipeline_tick(pl, d + 1);
    cr_assert_eq(n_out, 1);
    cr_assert_str_eq(out[0].line, "dangling");
}

Test(stage_cri, cap_splits_long_joins)
{
    build("- cri:\n    max_partial_line_size: 8\n");
    feed("2019-01-01T01:00:00Z stdout P 01234");
    feed("2019-01-01T01:00:00Z stdout P 56789");
    feed("2019-01-01T01:00:00Z stdout F ab");
    cr_assert_eq(n_out, 2);
    cr_assert_str_eq(out[0].line, "01234567");
    cr_assert_str_eq(out[1].line, "89ab");
}

Test(stage_cri, bad_options_are_errors)
{
    char err[512] = "";
    const char *y = "- cri:\n    max_partial_lines: 0\n";
    struct bt_node *d = bt_yaml_parse(y, strlen(y), "p.yaml", err, sizeof(err));
    cr_assert_null(bt_pipeline_new(d, "j", NULL, sink, NULL, err, sizeof(err)));
    cr_assert(strstr(err, "p.yaml:2:24") && strstr(err, "max_partial_lines"), "%s", err);
    bt_node_free(d);
}

Test(stage_cri, survives_random_lines)
{
    build("- cri:\n    max_partial_line_size: 64\n");
    static const char alphabet[] = "PF stdouterr:2019-01-01T01:00:00.1Z\n\t\xff";
    unsigned seed = 7;
    char line[96];
    for (int it = 0; it < 20000; it++) {
        size_t n = (size_t)rand_r(&seed) % sizeof(line);
        for (size_t i = 0; i < n; i++)
            line[i] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
        if (it % 3 == 0 && n > 40)
            memcpy(line, "2019-01-01T01:00:00Z stdout P ", 30);
        struct bt_entry e = {.labels = &src, .ts_ns = 5, .line = line, .line_len = n};
        bt_pipeline_process(pl, &e);
        if (n_out > MAXOUT - 4) {
            for (size_t i = 0; i < n_out; i++)
                free(out[i].line);
            n_out = 0;
        }
    }
    bt_pipeline_flush(pl);
    cr_assert_eq(bt_pipeline_deadline(pl), INT64_MAX);
}

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/metrics.h"
#include "util/buf.h"

/* Renders m into a string the caller frees. */
static char *render(struct bt_metrics *m)
{
    struct bt_buf b;
    bt_buf_init(&b, 1 << 20);
    cr_assert_eq(bt_metrics_render(m, &b), 0);
    return bt_buf_take(&b, NULL);
}

Test(metrics, counter_renders_help_type_and_value_exactly)
{
    struct bt_metrics *m = bt_metrics_new();
    struct bt_series *a = bt_metrics_counter(m, "bt_lines_total", "Lines read.", "path=\"/a\"");
    struct bt_series *plain = bt_metrics_counter(m, "bt_pushes_total", "Pushes.", NULL);
    bt_counter_inc(a);
    bt_counter_add(a, 2);
    bt_counter_add(a, -5); /* counters never go down */
    bt_counter_add(a, NAN);
    bt_counter_inc(plain);
    cr_assert_eq(bt_metrics_counter(m, "bt_lines_total", "Lines read.", "path=\"/a\""), a,
                 "the same labels give the same series");
    char *s = render(m);
    cr_assert_str_eq(s, "# HELP bt_lines_total Lines read.\n"
                        "# TYPE bt_lines_total counter\n"
                        "bt_lines_total{path=\"/a\"} 3\n"
                        "# HELP bt_pushes_total Pushes.\n"
                        "# TYPE bt_pushes_total counter\n"
                        "bt_pushes_total 1\n");
    free(s);
    cr_assert_eq(bt_series_value(a), 3.0);
    bt_metrics_free(m);
}

Test(metrics, gauge_set_add_and_float_formatting)
{
    struct bt_metrics *m = bt_metrics_new();
    struct bt_series *g = bt_metrics_gauge(m, "bt_lag_seconds", "Lag.", "path=\"/a\"");
    struct bt_series *h = bt_metrics_gauge(m, "bt_lag_seconds", "Lag.", "path=\"/b\"");
    bt_gauge_set(g, 10);
    bt_gauge_add(g, -10.9);
    bt_gauge_set(h, 0.1);
    char *s = render(m);
    cr_assert_str_eq(s, "# HELP bt_lag_seconds Lag.\n"
                        "# TYPE bt_lag_seconds gauge\n"
                        "bt_lag_seconds{path=\"/a\"} -0.9000000000000004\n"
                        "bt_lag_seconds{path=\"/b\"} 0.1\n");
    free(s);
    cr_assert_float_eq(bt_metrics_sum(m, "bt_lag_seconds", ""), -0.8, 1e-9);
    cr_assert_float_eq(bt_metrics_sum(m, "bt_lag_seconds", "/b"), 0.1, 1e-12);
    bt_metrics_free(m);
}

Test(metrics, special_values_use_exposition_spelling)
{
    struct bt_metrics *m = bt_metrics_new();
    bt_gauge_set(bt_metrics_gauge(m, "g", "h", "k=\"inf\""), INFINITY);
    bt_gauge_set(bt_metrics_gauge(m, "g", "h", "k=\"ninf\""), -INFINITY);
    bt_gauge_set(bt_metrics_gauge(m, "g", "h", "k=\"nan\""), NAN);
    bt_gauge_set(bt_metrics_gauge(m, "g", "h", "k=\"big\""), 1e20);
    char *s = render(m);
    cr_assert_str_eq(s, "# HELP g h\n# TYPE g gauge\n"
                        "g{k=\"inf\"} +Inf\n"
                        "g{k=\"ninf\"} -Inf\n"
                        "g{k=\"nan\"} NaN\n"
                        "g{k=\"big\"} 1e+20\n");
    free(s);
    bt_metrics_free(m);
}

Test(metrics, histogram_renders_cumulative_buckets_sum_and_count)
{
    struct bt_metrics *m = bt_metrics_new();
    const double b[] = {0.5, 1};
    struct bt_series *h =
        bt_metrics_histogram(m, "bt_push_seconds", "Push time.", "host=\"loki\"", b, 2);
    bt_histogram_observe(h, 0.25);
    bt_histogram_observe(h, 0.5); /* le is inclusive */
    bt_histogram_observe(h, 0.75);
    bt_histogram_observe(h, 4);
    char *s = render(m);
    cr_assert_str_eq(s, "# HELP bt_push_seconds Push time.\n"
                        "# TYPE bt_push_seconds histogram\n"
                        "bt_push_seconds_bucket{host=\"loki\",le=\"0.5\"} 2\n"
                        "bt_push_seconds_bucket{host=\"loki\",le=\"1\"} 3\n"
                        "bt_push_seconds_bucket{host=\"loki\",le=\"+Inf\"} 4\n"
                        "bt_push_seconds_sum{host=\"loki\"} 5.5\n"
                        "bt_push_seconds_count{host=\"loki\"} 4\n");
    free(s);
    bt_metrics_free(m);
}

Test(metrics, histogram_without_labels_and_default_buckets)
{
    struct bt_metrics *m = bt_metrics_new();
    struct bt_series *h = bt_metrics_histogram(m, "d", "D.", NULL, NULL, 0);
    bt_histogram_observe(h, 0.003);
    bt_histogram_observe(h, 100);
    char *s = render(m);
    cr_assert(strstr(s, "d_bucket{le=\"0.005\"} 1\n"), "%s", s);
    cr_assert(strstr(s, "d_bucket{le=\"2.5\"} 1\n"), "%s", s);
    cr_assert(strstr(s, "d_bucket{le=\"10\"} 1\n"), "%s", s);
    cr_assert(strstr(s, "d_bucket{le=\"+Inf\"} 2\n"), "%s", s);
    cr_assert(strstr(s, "d_sum 100.003\nd_count 2\n"), "%s", s);
    size_t buckets = 0;
    for (const char *p = s; (p = strstr(p, "d_bucket{")); p++)
        buckets++;
    cr_assert_eq(buckets, 12, "11 default bounds plus +Inf");
    free(s);
    bt_metrics_free(m);
}

Test(metrics, label_values_are_escaped)
{
    char out[64];
    cr_assert_str_eq(bt_metrics_escape(out, sizeof(out), "a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    cr_assert_str_eq(bt_metrics_escape(out, sizeof(out), "/var/log/syslog"), "/var/log/syslog");
    /* A short buffer truncates but stays terminated and never splits an escape. */
    char small[4];
    bt_metrics_escape(small, sizeof(small), "\"\"\"\"");
    cr_assert_str_eq(small, "\\\"");
    struct bt_metrics *m = bt_metrics_new();
    char labels[128];
    char esc[64];
    snprintf(labels, sizeof(labels), "path=\"%s\"", bt_metrics_escape(esc, sizeof(esc), "x\"y"));
    bt_counter_inc(bt_metrics_counter(m, "c_total", "Help with \\ and\nnewline.", labels));
    char *s = render(m);
    cr_assert_str_eq(s, "# HELP c_total Help with \\\\ and\\nnewline.\n"
                        "# TYPE c_total counter\n"
                        "c_total{path=\"x\\\"y\"} 1\n");
    free(s);
    bt_metrics_free(m);
}

Test(metrics, removed_series_disappear)
{
    struct bt_metrics *m = bt_metrics_new();
    bt_gauge_set(bt_metrics_gauge(m, "bt_pos", "P.", "path=\"/a\""), 1);
    bt_gauge_set(bt_metrics_gauge(m, "bt_pos", "P.", "path=\"/b\""), 2);
    cr_assert_eq(bt_metrics_remove(m, "bt_pos", "path=\"/a\""), 1);
    cr_assert_eq(bt_metrics_remove(m, "bt_pos", "path=\"/a\""), 0);
    cr_assert_eq(bt_metrics_remove(m, "nope", ""), 0);
    char *s = render(m);
    cr_assert_str_eq(s, "# HELP bt_pos P.\n# TYPE bt_pos gauge\nbt_pos{path=\"/b\"} 2\n");
    free(s);
    cr_assert_eq(bt_metrics_remove(m, "bt_pos", "path=\"/b\""), 1);
    s = render(m);
    cr_assert_str_eq(s, "", "a family with no series is not rendered");
    free(s);
    /* Re-creating starts from zero. */
    struct bt_series *g = bt_metrics_gauge(m, "bt_pos", "P.", "path=\"/a\"");
    cr_assert_eq(bt_series_value(g), 0);
    bt_metrics_free(m);
}

Test(metrics, type_clash_returns_null)
{
    struct bt_metrics *m = bt_metrics_new();
    cr_assert_not_null(bt_metrics_counter(m, "x", "X.", ""));
    cr_assert_null(bt_metrics_gauge(m, "x", "X.", ""));
    cr_assert_null(bt_metrics_gauge(m, "x", "X.", "other=\"1\""));
    cr_assert_null(bt_metrics_histogram(m, "x", "X.", "", NULL, 0));
    cr_assert_not_null(bt_metrics_counter(m, "x", "X.", "other=\"1\""));
    /* NULL series are accepted by the updaters. */
    bt_counter_inc(NULL);
    bt_gauge_set(NULL, 1);
    bt_histogram_observe(NULL, 1);
    cr_assert_eq(bt_series_value(NULL), 0);
    cr_assert_null(bt_metrics_counter(NULL, "x", "X.", ""));
    bt_metrics_free(m);
}

#define PER_THREAD 500000

struct worker {
    struct bt_series *c, *g, *h;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        bt_counter_inc(w->c);
        bt_gauge_add(w->g, 2);
        bt_histogram_observe(w->h, (i & 1) ? 0.5 : 2);
    }
    return NULL;
}

Test(metrics, concurrent_updates_from_two_threads_are_exact)
{
    struct bt_metrics *m = bt_metrics_new();
    const double b[] = {1};
    struct worker w = {
        bt_metrics_counter(m, "c_total", "C.", NULL),
        bt_metrics_gauge(m, "g", "G.", NULL),
        bt_metrics_histogram(m, "h", "H.", NULL, b, 1),
    };
    pthread_t t1, t2;
    pthread_create(&t1, NULL, hammer, &w);
    pthread_create(&t2, NULL, hammer, &w);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    cr_assert_eq(bt_series_value(w.c), 2.0 * PER_THREAD);
    cr_assert_eq(bt_series_value(w.g), 4.0 * PER_THREAD);
    cr_assert_eq(bt_series_value(w.h), 2.0 * (PER_THREAD / 2) * 2.5);
    char *s = render(m);
    cr_assert(strstr(s, "c_total 1000000\n"), "%s", s);
    cr_assert(strstr(s, "h_bucket{le=\"1\"} 500000\nh_bucket{le=\"+Inf\"} 1000000\n"), "%s", s);
    cr_assert(strstr(s, "h_count 1000000\n"), "%s", s);
    free(s);
    bt_metrics_free(m);
}

Test(metrics, render_reports_buffer_cap)
{
    struct bt_metrics *m = bt_metrics_new();
    bt_counter_inc(bt_metrics_counter(m, "a_total", "A fairly long help text.", NULL));
    struct bt_buf b;
    bt_buf_init(&b, 16);
    cr_assert_eq(bt_metrics_render(m, &b), -E2BIG);
    cr_assert_eq(b.len, 0);
    bt_buf_free(&b);
    bt_metrics_free(m);
}

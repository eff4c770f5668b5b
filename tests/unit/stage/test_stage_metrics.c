#include "test_stage_harness.h"

#include "util/buf.h"

#include <time.h>

Test(stage_metrics, doc_example_match_all_lines_and_bytes)
{
    struct harness h;
    h_new(&h, "- metrics:\n"
              "    log_lines_total:\n      type: Counter\n"
              "      description: \"total number of log lines\"\n"
              "      prefix: my_promtail_custom_\n      max_idle_duration: 24h\n"
              "      config:\n        match_all: true\n        action: inc\n"
              "    log_bytes_total:\n      type: Counter\n"
              "      description: \"total bytes of log lines\"\n"
              "      prefix: my_promtail_custom_\n      max_idle_duration: 24h\n"
              "      config:\n        match_all: true\n        count_entry_bytes: true\n"
              "        action: add\n");
    bt_labels_set(&h.in, "job", "varlogs");
    bt_labels_set(&h.in, "__tenant_id__", "t");
    h_push(&h, "hello");
    h_push(&h, "abc");
    cr_assert_eq(h.n, 2, "metrics never drops");
    cr_assert_eq(bt_metrics_sum(h.m, "my_promtail_custom_log_lines_total", "job=\"varlogs\""), 2);
    cr_assert_eq(bt_metrics_sum(h.m, "my_promtail_custom_log_bytes_total", ""), 8);
    cr_assert_eq(bt_metrics_sum(h.m, "my_promtail_custom_log_lines_total", "__tenant"), 0,
                 "reserved labels must not become metric labels");
    h_free(&h);
}

Test(stage_metrics, doc_example_counter_from_regex_source)
{
    struct harness h;
    h_new(&h, "- regex:\n    expression: \"^.*(?P<order_success>order successful).*$\"\n"
              "- metrics:\n    successful_orders_total:\n      type: Counter\n"
              "      description: \"log lines with the message `order successful`\"\n"
              "      source: order_success\n      config:\n        action: inc\n");
    h_push(&h, "2024 order successful id=1");
    h_push(&h, "2024 order failed id=2");
    h_push(&h, "order successful");
    cr_assert_eq(bt_metrics_sum(h.m, "promtail_custom_successful_orders_total", ""), 2);
    h_free(&h);
}

Test(stage_metrics, doc_example_gauge_and_histogram)
{
    struct harness h;
    h_new(&h, "- json: {expressions: {retries: '', response_time: ''}}\n"
              "- metrics:\n    retries_total:\n      type: Gauge\n"
              "      description: \"total retries\"\n      source: retries\n"
              "      config:\n        action: add\n"
              "    http_response_time_seconds:\n      type: Histogram\n"
              "      description: \"distribution of log response time\"\n"
              "      source: response_time\n      config:\n"
              "        buckets: [0.001,0.0025,0.005,0.010,0.025,0.050]\n");
    bt_labels_set(&h.in, "app", "shop");
    h_push(&h, "{\"retries\": 2, \"response_time\": 0.004}");
    h_push(&h, "{\"retries\": \"3\", \"response_time\": \"0.02\"}");
    h_push(&h, "{\"retries\": \"many\"}");
    cr_assert_eq(bt_metrics_sum(h.m, "promtail_custom_retries_total", "app=\"shop\""), 5);
    struct bt_buf b;
    bt_buf_init(&b, 1 << 20);
    cr_assert_eq(bt_metrics_render(h.m, &b), 0);
    const char *txt = bt_buf_str(&b);
    cr_assert(strstr(txt, "# TYPE promtail_custom_http_response_time_seconds histogram") != NULL,
              "%s", txt);
    /* (le="0.01" because metrics.c prints other bounds with %.17g, e.g. 0.0050000000000000001) */
    cr_assert(
        strstr(txt,
               "promtail_custom_http_response_time_seconds_bucket{app=\"shop\",le=\"0.01\"} 1") !=
            NULL,
        "%s", txt);
    cr_assert(strstr(txt, "promtail_custom_http_response_time_seconds_count{app=\"shop\"} 2") !=
                  NULL,
              "%s", txt);
    bt_buf_free(&b);
    h_free(&h);
}

Test(stage_metrics, value_filter_and_gauge_actions)
{
    struct harness h;
    h_new(&h, "- logfmt: {mapping: {level: '', n: ''}}\n"
              "- metrics:\n"
              "    errors: {type: counter, source: level, config: {value: error, action: inc}}\n"
              "    level_gauge: {type: gauge, source: n, config: {action: set}}\n"
              "    in_flight: {type: gauge, source: level, config: {action: dec}}\n");
    h_push(&h, "level=error n=7");
    h_push(&h, "level=info n=3");
    h_push(&h, "level=error");
    cr_assert_eq(bt_metrics_sum(h.m, "promtail_custom_errors", ""), 2);
    cr_assert_eq(bt_metrics_sum(h.m, "promtail_custom_level_gauge", ""), 3);
    cr_assert_eq(bt_metrics_sum(h.m, "promtail_custom_in_flight", ""), -3);
    h_free(&h);
}

Test(stage_metrics, series_per_label_set)
{
    struct harness h;
    h_new(&h, "- regex: {expression: '^(?P<lvl>\\w+)'}\n- labels: {lvl: ''}\n"
              "- metrics: {lines: {type: Counter, config: {match_all: true, action: inc}}}\n");
    h_push(&h, "warn a");
    h_push(&h, "warn b");
    h_push(&h, "info \"q\"");
    cr_assert_eq(bt_metrics_sum(h.m, "promtail_custom_lines", "lvl=\"warn\""), 2);
    cr_assert_eq(bt_metrics_sum(h.m, "promtail_custom_lines", "lvl=\"info\""), 1);
    h_free(&h);
}

Test(stage_metrics, config_errors)
{
    struct harness h;
    cr_assert_eq(h_try(&h, "- metrics: {m: {type: Summary}}\n"), -1);
    cr_assert(strstr(h.err, "pipeline.yaml:1:23: stage \"metrics\": m: type must be") == h.err,
              "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- metrics: {m: {type: Counter, config: {action: set}}}\n"), -1);
    cr_assert(strstr(h.err, "m: action must be inc or add") != NULL, "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- metrics: {m: {type: Counter, config: {match_all: true, value: x, "
                           "action: inc}}}\n"),
                 -1);
    cr_assert(strstr(h.err, "match_all cannot be combined with value") != NULL, "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- metrics: {m: {type: Counter, config: {count_entry_bytes: true, "
                           "action: add}}}\n"),
                 -1);
    cr_assert(strstr(h.err, "count_entry_bytes needs match_all") != NULL, "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- metrics: {m-x: {type: Gauge, config: {action: set}}}\n"), -1);
    cr_assert(strstr(h.err, "invalid metric name") != NULL, "%s", h.err);
    h_free(&h);
    /* an unknown key is a warning, as promtail ignores it */
    cr_assert_eq(h_try(&h, "- metrics: {m: {type: Gauge, colour: red, config: {action: inc}}}\n"),
                 0, "%s", h.err);
    h_free(&h);
}

Test(stage_metrics, type_clash_with_an_existing_family_is_an_error)
{
    struct harness h;
    h_new(&h, "- static_labels: {a: b}\n");
    bt_metrics_gauge(h.m, "promtail_custom_clash", "x", "");
    char err[512];
    const char *y = "- metrics: {clash: {type: Counter, config: {action: inc}}}\n";
    struct bt_node *root = bt_yaml_parse(y, strlen(y), "p.yaml", err, sizeof(err));
    cr_assert_not_null(root, "%s", err);
    struct bt_pipeline *p = bt_pipeline_new(root, "j", h.m, h_sink, &h, err, sizeof(err));
    cr_assert_null(p);
    cr_assert(strstr(err, "already registered with another type") != NULL, "%s", err);
    bt_node_free(root);
    h_free(&h);
}

Test(stage_metrics, idle_series_are_removed_after_max_idle_duration)
{
    struct harness h;
    h_new(&h, "- metrics: {lines: {type: Counter, max_idle_duration: 1s, "
              "config: {match_all: true, action: inc}}}\n");
    bt_labels_set(&h.in, "x", "a");
    h_push(&h, "1");
    cr_assert_eq(bt_metrics_sum(h.m, "promtail_custom_lines", "x=\"a\""), 1);
    struct timespec ts = {1, 300000000};
    nanosleep(&ts, NULL);
    bt_labels_set(&h.in, "x", "b");
    h_push(&h, "2");
    cr_assert_eq(bt_metrics_sum(h.m, "promtail_custom_lines", "x=\"a\""), 0, "idle series stays");
    cr_assert_eq(bt_metrics_sum(h.m, "promtail_custom_lines", "x=\"b\""), 1);
    bt_labels_set(&h.in, "x", "a");
    h_push(&h, "3"); /* comes back from zero as a new series */
    cr_assert_eq(bt_metrics_sum(h.m, "promtail_custom_lines", "x=\"a\""), 1);
    h_free(&h);
}

#include "test_stage_harness.h"

#include "stage/logql.h"

static const char *doc_pipeline =
    "- json:\n    expressions:\n      app:\n"
    "- labels:\n    app:\n"
    "- match:\n    selector: '{app=\"loki\"}'\n    stages:\n"
    "    - json:\n        expressions:\n          msg: message\n"
    "- match:\n    pipeline_name: \"app2\"\n    selector: '{app=\"pokey\"}'\n    action: keep\n"
    "    stages:\n    - json:\n        expressions:\n          msg: msg\n"
    "- match:\n    selector: '{app=\"promtail\"} |~ \".*noisy error.*\"'\n    action: drop\n"
    "    drop_counter_reason: promtail_noisy_error\n"
    "- output:\n    source: msg\n";

Test(stage_match, doc_example_nested_stages_and_drop)
{
    struct harness h;
    h_new(&h, doc_pipeline);
    h_push(&h, "{ \"time\":\"2012-11-01T22:08:41+00:00\", \"app\":\"loki\", \"component\": "
               "[\"parser\",\"type\"], \"level\" : \"WARN\", \"message\" : \"app1 log line\" }");
    h_push(&h, "{ \"time\":\"2012-11-01T22:08:41+00:00\", \"app\":\"promtail\", \"component\": "
               "[\"parser\",\"type\"], \"level\" : \"ERROR\", \"message\" : \"foo noisy error\" }");
    h_push(&h, "{\"app\":\"pokey\",\"msg\":\"from pokey\"}");
    cr_assert_eq(h.n, 2);
    cr_assert_str_eq(h.out[0].line, "app1 log line");
    cr_assert_str_eq(h_label(&h, 0, "app"), "loki");
    cr_assert_str_eq(h.out[1].line, "from pokey");
    cr_assert_eq(h_dropped(&h, "promtail_noisy_error"), 1);
    h_free(&h);
}

Test(stage_match, non_matching_entries_pass_unchanged)
{
    struct harness h;
    h_new(&h, "- match:\n    selector: '{job=\"x\"} |= \"err\" != \"ignore\"'\n"
              "    stages:\n    - static_labels: {hit: yes}\n");
    bt_labels_set(&h.in, "job", "x");
    h_push(&h, "an err here");
    h_push(&h, "an err to ignore");
    h_push(&h, "all fine");
    cr_assert_str_eq(h_label(&h, 0, "hit"), "yes");
    cr_assert_null(h_label(&h, 1, "hit"));
    cr_assert_null(h_label(&h, 2, "hit"));
    h_free(&h);
}

Test(stage_match, drop_inside_nested_stages_is_counted_once_with_its_reason)
{
    struct harness h;
    h_new(&h, "- match:\n    selector: '{job=~\"var.*\"}'\n    stages:\n"
              "    - drop: {expression: debug, drop_counter_reason: noisy}\n");
    bt_labels_set(&h.in, "job", "varlogs");
    h_push(&h, "debug x");
    h_push(&h, "info x");
    cr_assert_eq(h.n, 1);
    cr_assert_eq(h_dropped(&h, "noisy"), 1);
    cr_assert_eq(bt_metrics_sum(h.m, "bpftail_dropped_entries_total", ""), 1);
    h_free(&h);
}

Test(stage_match, config_errors)
{
    struct harness h;
    cr_assert_eq(h_try(&h, "- match: {selector: '{a=\"b\"}', action: drop, stages: "
                           "[{labeldrop: [a]}]}\n"),
                 -1);
    cr_assert(strstr(h.err, "action drop cannot have stages") != NULL, "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- match: {selector: '{a=\"b\"}'}\n"), -1);
    cr_assert(strstr(h.err, "action keep needs stages") != NULL, "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- match: {selector: '{a=\"b\"} | json', action: drop}\n"), -1);
    cr_assert(strstr(h.err, "pipeline.yaml:1:21: stage \"match\": invalid selector") == h.err, "%s",
              h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- match:\n    selector: '{a=\"b\"}'\n    stages:\n"
                           "    - regex: {expression: '(unclosed'}\n"),
                 -1);
    cr_assert(strstr(h.err, "pipeline.yaml:4:27: stage \"regex\": invalid regex (unclosed: ") ==
                  h.err,
              "%s", h.err);
    h_free(&h);
}

Test(logql, selectors_and_filters)
{
    char err[256];
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "app", "web");
    bt_labels_set(&l, "env", "prod");
    struct {
        const char *q;
        bool labels, line;
    } c[] = {
        {"{app=\"web\"}", true, true},
        {"{app=\"web\", env!=\"dev\"}", true, true},
        {"{app=~\"w.*\"}", true, true},
        {"{app=~\"e\"}", false, true}, /* regex matchers are anchored */
        {"{app!~\"w.*\"}", false, true},
        {"{missing=\"\"}", true, true},
        {"{app=`web`} |= `GET`", true, true},
        {"{app=\"web\"} |= \"POST\"", true, false},
        {"{app=\"web\"} |~ \"(?i)get\" !~ \"^x\"", true, true},
        {"{app=\"web\"} != \"GET\"", true, false},
        {"{app=\"w\\u00e9b\"}", false, true},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct bt_logql *q = bt_logql_parse(c[i].q, err, sizeof(err));
        cr_assert_not_null(q, "%s: %s", c[i].q, err);
        cr_assert_eq(bt_logql_match_labels(q, &l), c[i].labels, "%s", c[i].q);
        cr_assert_eq(bt_logql_match_line(q, "GET /index", 10), c[i].line, "%s", c[i].q);
        bt_logql_free(q);
    }
    const char *bad[] = {"app=\"x\"",
                         "{}",
                         "{app=\"x\"",
                         "{app==\"x\"}",
                         "{app=~\"(\"}",
                         "{a=\"b\"} |= \"x\" or \"y\"",
                         "{a=\"b\"} | level=\"x\"",
                         "{a=\"b\"} junk"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_null(bt_logql_parse(bad[i], err, sizeof(err)), "%s should fail", bad[i]);
    bt_labels_free(&l);
}

Test(stage_match, entries_held_inside_a_match_continue_after_it)
{
    struct harness h;
    h_new(&h, "- match:\n    selector: '{app=\"java\"}'\n    stages:\n"
              "    - multiline: {firstline: '^\\d', max_wait_time: 1s}\n"
              "    - static_labels: {joined: 'yes'}\n"
              "- static_labels: {after: match}\n");
    bt_labels_set(&h.in, "app", "java");
    h_push(&h, "1 Exception");
    h_push(&h, "\tat x");
    cr_assert_eq(h.n, 0);
    cr_assert_neq(bt_pipeline_deadline(h.p), INT64_MAX, "match forwards the nested deadline");
    bt_pipeline_tick(h.p, bt_pipeline_deadline(h.p));
    cr_assert_eq(h.n, 1);
    cr_assert_str_eq(h.out[0].line, "1 Exception\n\tat x");
    cr_assert_str_eq(h_label(&h, 0, "joined"), "yes");
    cr_assert_str_eq(h_label(&h, 0, "after"), "match");
    h_push(&h, "2 next");
    bt_pipeline_flush(h.p);
    cr_assert_eq(h.n, 2);
    cr_assert_str_eq(h_label(&h, 1, "after"), "match");
    h_free(&h);
}

#include "test_stage_harness.h"

#include "util/timeutil.h"

Test(stage_drop, doc_example_source_and_value)
{
    struct harness h;
    h_new(&h, "- json: {expressions: {level: ''}}\n"
              "- drop:\n    source: level\n    value: debug\n");
    h_push(&h, "{\"level\":\"debug\"}");
    h_push(&h, "{\"level\":\"info\"}");
    h_push(&h, "{\"other\":1}");
    cr_assert_eq(h.n, 2);
    cr_assert_eq(h_dropped(&h, "drop_stage"), 1);
    h_free(&h);
}

Test(stage_drop, source_alone_drops_when_present)
{
    struct harness h;
    h_new(&h, "- regex: {expression: 'secret=(?P<secret>\\S+)'}\n- drop: {source: secret}\n");
    h_push(&h, "user=a secret=b");
    h_push(&h, "user=a");
    cr_assert_eq(h.n, 1);
    cr_assert_str_eq(h.out[0].line, "user=a");
    h_free(&h);
}

Test(stage_drop, doc_example_expression_on_line_and_on_source)
{
    struct harness h;
    h_new(&h, "- drop:\n    expression: \".*debug.*\"\n");
    h_push(&h, "time=x level=debug msg=y");
    h_push(&h, "time=x level=info msg=y");
    cr_assert_eq(h.n, 1);
    h_free(&h);
    h_new(&h, "- logfmt: {mapping: {level: ''}}\n"
              "- drop: {source: level, expression: '^(debug|trace)$'}\n");
    h_push(&h, "level=trace msg=debug");
    h_push(&h, "level=info msg=debug");
    cr_assert_eq(h.n, 1);
    cr_assert_str_eq(h.out[0].line, "level=info msg=debug");
    h_free(&h);
}

Test(stage_drop, doc_example_older_than_with_reason)
{
    struct harness h;
    h_new(&h, "- drop:\n    older_than: 24h\n    drop_counter_reason: \"line_too_old\"\n");
    h_push_seg(&h, "old", bt_now_ns() - 25 * 3600 * BT_NS_PER_SEC, NULL);
    h_push_seg(&h, "new", bt_now_ns() - 3600 * BT_NS_PER_SEC, NULL);
    cr_assert_eq(h.n, 1);
    cr_assert_str_eq(h.out[0].line, "new");
    cr_assert_eq(h_dropped(&h, "line_too_old"), 1);
    cr_assert_eq(bt_metrics_sum(h.m, "bpftail_dropped_bytes_total", "line_too_old"), 3);
    h_free(&h);
}

Test(stage_drop, doc_example_longer_than_and_conditions_are_anded)
{
    struct harness h;
    h_new(&h, "- drop:\n    longer_than: 8\n    expression: x\n"
              "    drop_counter_reason: \"line_too_long\"\n");
    h_push(&h, "xxxxxxxxx");  /* long and matches: dropped */
    h_push(&h, "yyyyyyyyyy"); /* long, no match: kept */
    h_push(&h, "xxxxxxxx");   /* exactly 8: kept */
    cr_assert_eq(h.n, 2);
    cr_assert_eq(h_dropped(&h, "line_too_long"), 1);
    h_free(&h);
    h_new(&h, "- drop: {longer_than: 1KiB}\n");
    char big[1100];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    h_push(&h, big);
    h_push(&h, "short");
    cr_assert_eq(h.n, 1);
    h_free(&h);
}

Test(stage_drop, source_list_joined_with_separator)
{
    struct harness h;
    h_new(&h, "- logfmt: {mapping: {app: '', level: ''}}\n"
              "- drop: {source: [app, level], separator: '#', value: 'web#debug'}\n");
    h_push(&h, "app=web level=debug");
    h_push(&h, "app=web level=info");
    h_push(&h, "level=debug");
    cr_assert_eq(h.n, 2);
    h_free(&h);
}

Test(stage_drop, config_errors)
{
    struct harness h;
    cr_assert_eq(h_try(&h, "- drop: {}\n"), -1);
    cr_assert(strstr(h.err, "stage \"drop\": needs at least one of") != NULL, "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- drop: {source: a, value: b, expression: c}\n"), -1);
    cr_assert(strstr(h.err, "value and expression cannot both be set") != NULL, "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- drop: {older_than: soon}\n"), -1);
    cr_assert(strstr(h.err, "pipeline.yaml:1:22: stage \"drop\": older_than") == h.err, "%s",
              h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- drop: {expression: '[z-a]'}\n"), -1);
    cr_assert(strstr(h.err, "invalid regex [z-a]: ") != NULL, "%s", h.err);
    h_free(&h);
}

Test(stage_drop, source_alone_counts_a_null_value_as_present)
{
    struct harness h;
    h_new(&h, "- json: {expressions: {err: error}}\n- drop: {source: err}\n");
    h_push(&h, "{\"error\": null}"); /* the json stage stores null: the key exists */
    h_push(&h, "{\"msg\": 1}");      /* missing path: also stored as null */
    cr_assert_eq(h.n, 0);
    h_free(&h);
    h_new(&h, "- drop: {source: nothere}\n");
    h_push(&h, "x");
    cr_assert_eq(h.n, 1);
    h_free(&h);
}

#include "test_stage_harness.h"

Test(stage_limit, drop_mode_drops_over_burst_with_reason)
{
    struct harness h;
    /* rate low enough that no token comes back during the test */
    h_new(&h, "- limit:\n    rate: 0.001\n    burst: 2\n    drop: true\n");
    for (int i = 0; i < 5; i++)
        h_push(&h, "x");
    cr_assert_eq(h.n, 2);
    cr_assert_eq(h_dropped(&h, "ratelimit_drop_stage"), 3);
    h_free(&h);
}

Test(stage_limit, by_label_name_keeps_a_bucket_per_value)
{
    struct harness h;
    h_new(&h, "- limit: {rate: 0.001, burst: 1, drop: true, by_label_name: app}\n");
    bt_labels_set(&h.in, "app", "a");
    h_push(&h, "1");
    h_push(&h, "2"); /* dropped: a's bucket is empty */
    bt_labels_set(&h.in, "app", "b");
    h_push(&h, "3");
    bt_labels_set(&h.in, "app", "");
    h_push(&h, "4"); /* no label: not limited */
    h_push(&h, "5");
    cr_assert_eq(h.n, 4);
    cr_assert_str_eq(h.out[1].line, "3");
    h_free(&h);
}

Test(stage_limit, max_distinct_labels_recycles_buckets)
{
    struct harness h;
    h_new(&h, "- limit: {rate: 0.001, burst: 1, drop: true, by_label_name: app, "
              "max_distinct_labels: 1}\n");
    bt_labels_set(&h.in, "app", "a");
    h_push(&h, "1");
    bt_labels_set(&h.in, "app", "b");
    h_push(&h, "2"); /* recycles a's bucket */
    bt_labels_set(&h.in, "app", "a");
    h_push(&h, "3"); /* a starts again with a full bucket */
    cr_assert_eq(h.n, 3);
    h_free(&h);
}

Test(stage_limit, wait_mode_delays_instead_of_dropping)
{
    struct harness h;
    h_new(&h, "- limit: {rate: 2000, burst: 1}\n");
    for (int i = 0; i < 4; i++)
        h_push(&h, "x");
    cr_assert_eq(h.n, 4, "blocking mode never drops");
    cr_assert_eq(bt_metrics_sum(h.m, "bpftail_dropped_entries_total", ""), 0);
    h_free(&h);
}

Test(stage_limit, config_errors)
{
    struct harness h;
    cr_assert_eq(h_try(&h, "- limit: {burst: 1}\n"), -1);
    cr_assert(strstr(h.err, "stage \"limit\": rate must be a number above 0") != NULL, "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- limit: {rate: 1, burst: lots}\n"), -1);
    cr_assert(strstr(h.err, "pipeline.yaml:1:27: stage \"limit\": burst") == h.err, "%s", h.err);
    h_free(&h);
}

Test(stage_sampling, rate_zero_drops_all_and_one_keeps_all)
{
    struct harness h;
    h_new(&h, "- sampling: {rate: 0}\n");
    for (int i = 0; i < 50; i++)
        h_push(&h, "x");
    cr_assert_eq(h.n, 0);
    cr_assert_eq(h_dropped(&h, "sampling_stage"), 50);
    h_free(&h);
    h_new(&h, "- sampling: {rate: 1.0}\n");
    for (int i = 0; i < 50; i++)
        h_push(&h, "x");
    cr_assert_eq(h.n, 50);
    h_free(&h);
}

Test(stage_sampling, keeps_about_the_rate)
{
    struct harness h;
    h_new(&h, "- sampling: {rate: 0.25, drop_counter_reason: sampled_out}\n");
    for (int i = 0; i < 20000; i++) {
        h_push(&h, "x");
        h_reset_out(&h);
    }
    double dropped = h_dropped(&h, "sampled_out");
    /* 15000 expected; the bound is > 20 standard deviations wide */
    cr_assert(dropped > 13700 && dropped < 16300, "dropped %f", dropped);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- sampling: {rate: 1.5}\n"), -1);
    cr_assert(strstr(h.err, "rate must be a number from 0 to 1") != NULL, "%s", h.err);
    h_free(&h);
}

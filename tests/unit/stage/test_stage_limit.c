#include "test_stage_harness.h"

#include "core/ack.h"

static long atoi_safe(const char *s)
{
    return strtol(s, NULL, 10);
}

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

Test(stage_limit, wait_mode_holds_entries_in_order_and_releases_them_on_tick)
{
    struct harness h;
    h_new(&h, "- limit: {rate: 10, burst: 1}\n- static_labels: {after: limit}\n");
    h_push(&h, "1");
    h_push(&h, "2");
    h_push(&h, "3");
    cr_assert_eq(h.n, 1, "the burst goes through, the rest waits");
    int64_t d = bt_pipeline_deadline(h.p);
    cr_assert_neq(d, INT64_MAX);
    bt_pipeline_tick(h.p, d); /* one token later (100 ms at 10/s) */
    cr_assert_eq(h.n, 2);
    cr_assert_str_eq(h.out[1].line, "2");
    cr_assert_str_eq(h_label(&h, 1, "after"), "limit", "held entries run the later stages");
    h_push(&h, "4"); /* queues behind 3 even if a token came back meanwhile */
    bt_pipeline_flush(h.p);
    cr_assert_eq(h.n, 4);
    cr_assert_str_eq(h.out[2].line, "3");
    cr_assert_str_eq(h.out[3].line, "4");
    cr_assert_eq(bt_pipeline_deadline(h.p), INT64_MAX);
    cr_assert_eq(bt_metrics_sum(h.m, "bpftail_dropped_entries_total", ""), 0);
    h_free(&h);
}

static uint64_t committed;
static void on_commit(void *ctx, uint64_t c)
{
    committed = c;
}

Test(stage_limit, held_entries_hold_their_segment)
{
    struct harness h;
    h_new(&h, "- limit: {rate: 1, burst: 1}\n");
    struct bt_ack_owner *o = bt_ack_owner_new(0, on_commit, NULL);
    struct bt_segment *s1 = bt_segment_new(o, 0, 2), *s2 = bt_segment_new(o, 2, 4);
    h_push_seg(&h, "a", 1, s1);
    h_push_seg(&h, "b", 2, s2);
    bt_segment_unref(s1, 1); /* the source is done with both */
    bt_segment_unref(s2, 1);
    cr_assert_eq(committed, 2, "the first line went through; the held one holds its offset");
    bt_pipeline_flush(h.p);
    cr_assert_eq(committed, 4, "released once handed on (the test sink takes no reference)");
    bt_ack_owner_close(o);
    h_free(&h);
}

Test(stage_limit, full_hold_falls_back_to_waiting_and_keeps_order)
{
    struct harness h;
    h_new(&h, "- limit: {rate: 200000, burst: 1}\n");
    char line[16];
    for (int i = 0; i < 1100; i++) {
        snprintf(line, sizeof(line), "%d", i);
        h_push(&h, line);
        if (h.n > 200) { /* keep the harness small; check order as we go */
            for (size_t k = 1; k < h.n; k++)
                cr_assert_lt(atoi_safe(h.out[k - 1].line), atoi_safe(h.out[k].line));
            h_reset_out(&h);
        }
    }
    bt_pipeline_flush(h.p);
    cr_assert_str_eq(h.out[h.n - 1].line, "1099");
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

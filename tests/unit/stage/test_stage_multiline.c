#include "test_stage_harness.h"

#include "core/ack.h"
#include "util/timeutil.h"

static const char *doc_cfg = "- multiline:\n    firstline: '^\\[\\d{4}-\\d{2}-\\d{2} "
                             "\\d{1,2}:\\d{2}:\\d{2}\\]'\n    max_wait_time: 3s\n";

Test(stage_multiline, doc_example_joins_a_stack_trace)
{
    struct harness h;
    h_new(&h, doc_cfg);
    h_push_seg(&h, "[2023-01-18 17:41:21] local.ERROR: Exception: boom", 1, NULL);
    h_push_seg(&h, "Stack trace:", 2, NULL);
    h_push_seg(&h, "#0 /app/index.php(12): fail()", 3, NULL);
    h_push_seg(&h, "#1 {main}", 4, NULL);
    cr_assert_eq(h.n, 0, "nothing leaves before the block ends");
    h_push_seg(&h, "[2023-01-18 17:42:21] local.INFO: next", 5, NULL);
    cr_assert_eq(h.n, 1);
    cr_assert_str_eq(h.out[0].line, "[2023-01-18 17:41:21] local.ERROR: Exception: boom\n"
                                    "Stack trace:\n#0 /app/index.php(12): fail()\n#1 {main}");
    cr_assert_eq(h.out[0].ts, 1, "the first line's timestamp");
    bt_pipeline_flush(h.p);
    cr_assert_eq(h.n, 2);
    cr_assert_str_eq(h.out[1].line, "[2023-01-18 17:42:21] local.INFO: next");
    cr_assert_eq(bt_pipeline_deadline(h.p), INT64_MAX);
    h_free(&h);
}

Test(stage_multiline, lines_before_the_first_block_pass_through)
{
    struct harness h;
    h_new(&h, doc_cfg);
    h_push(&h, "orphan continuation");
    cr_assert_eq(h.n, 1);
    cr_assert_str_eq(h.out[0].line, "orphan continuation");
    h_free(&h);
}

Test(stage_multiline, streams_are_kept_apart_by_labels)
{
    struct harness h;
    h_new(&h, "- multiline: {firstline: '^START'}\n");
    bt_labels_set(&h.in, "filename", "/a");
    h_push(&h, "START a");
    bt_labels_set(&h.in, "filename", "/b");
    h_push(&h, "START b");
    h_push(&h, "b2");
    bt_labels_set(&h.in, "filename", "/a");
    h_push(&h, "a2");
    bt_pipeline_flush(h.p);
    cr_assert_eq(h.n, 2);
    cr_assert_str_eq(h.out[0].line, "START a\na2");
    cr_assert_str_eq(h_label(&h, 0, "filename"), "/a");
    cr_assert_str_eq(h.out[1].line, "START b\nb2");
    h_free(&h);
}

Test(stage_multiline, max_lines_and_max_wait_emit_blocks)
{
    struct harness h;
    h_new(&h, "- multiline: {firstline: '^S', max_lines: 2, max_wait_time: 1s}\n");
    h_push(&h, "S1");
    h_push(&h, "c1");
    cr_assert_eq(h.n, 1, "max_lines reached");
    cr_assert_str_eq(h.out[0].line, "S1\nc1");
    h_push(&h, "c2"); /* continues the stream in a new block */
    int64_t d = bt_pipeline_deadline(h.p);
    cr_assert_neq(d, INT64_MAX);
    bt_pipeline_tick(h.p, d - 1);
    cr_assert_eq(h.n, 1, "not due yet");
    bt_pipeline_tick(h.p, d);
    cr_assert_eq(h.n, 2);
    cr_assert_str_eq(h.out[1].line, "c2");
    h_free(&h);
}

Test(stage_multiline, later_stages_run_on_the_joined_entry)
{
    struct harness h;
    h_new(&h, "- multiline: {firstline: '^\\d'}\n"
              "- regex: {expression: '(?s)^(?P<n>\\d+) (?P<rest>.*)$'}\n"
              "- labels: {n: ''}\n- output: {source: rest}\n");
    h_push(&h, "1 first");
    h_push(&h, "  more");
    h_push(&h, "2 second");
    cr_assert_eq(h.n, 1);
    cr_assert_str_eq(h_label(&h, 0, "n"), "1");
    cr_assert_str_eq(h.out[0].line, "first\n  more");
    h_free(&h);
}

/* A sink that keeps a reference like the batcher, to check offsets. */
static struct bt_segment *held[8];
static size_t n_held;
static void ref_sink(void *ctx, const struct bt_entry *e)
{
    bt_segment_ref(e->seg, 1);
    held[n_held++] = e->seg;
}
static uint64_t committed;
static void on_commit(void *ctx, uint64_t c)
{
    committed = c;
}

Test(stage_multiline, holds_the_earliest_segment_until_delivered)
{
    char err[256];
    struct bt_node *root =
        bt_yaml_parse("- multiline: {firstline: '^S'}\n", 31, "p", err, sizeof(err));
    struct bt_pipeline *p = bt_pipeline_new(root, "j", NULL, ref_sink, NULL, err, sizeof(err));
    cr_assert_not_null(p, "%s", err);
    struct bt_ack_owner *o = bt_ack_owner_new(0, on_commit, NULL);
    struct bt_labels l;
    bt_labels_init(&l);
    const char *lines[] = {"S1", "c1", "c2"};
    struct bt_segment *segs[3];
    for (int i = 0; i < 3; i++) {
        segs[i] = bt_segment_new(o, (uint64_t)i * 3, (uint64_t)i * 3 + 3);
        struct bt_entry e = {.labels = &l, .line = lines[i], .line_len = 2, .seg = segs[i]};
        bt_pipeline_process(p, &e);
        bt_segment_unref(segs[i], 1); /* the source is done with its chunk */
    }
    cr_assert_eq(committed, 0, "the held first line must hold back every later line");
    bt_pipeline_flush(p);
    cr_assert_eq(n_held, 1);
    cr_assert_eq(held[0], segs[0], "joined entry carries the earliest segment");
    cr_assert_eq(committed, 0, "the sink still holds it");
    bt_segment_unref(held[0], 1); /* delivered */
    cr_assert_eq(committed, 9);
    bt_pipeline_free(p);
    bt_ack_owner_close(o);
    bt_labels_free(&l);
    bt_node_free(root);
}

Test(stage_multiline, firstline_is_required_and_checked)
{
    struct harness h;
    cr_assert_eq(h_try(&h, "- multiline: {max_lines: 3}\n"), -1);
    cr_assert(strstr(h.err, "stage \"multiline\": firstline is required") != NULL, "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- multiline: {firstline: x, max_wait_time: -1s}\n"), -1);
    cr_assert(strstr(h.err, "max_wait_time must be a positive duration") != NULL, "%s", h.err);
    h_free(&h);
}

#include "test_stage_harness.h"

#include "util/timeutil.h"

Test(stage_pack, doc_example_packs_labels_and_entry)
{
    struct harness h;
    h_new(&h, "- pack:\n    labels:\n      - pod\n      - container\n"
              "    ingest_timestamp: false\n");
    bt_labels_set(&h.in, "cluster", "us-central1");
    bt_labels_set(&h.in, "job", "kubernetes-pods");
    bt_labels_set(&h.in, "namespace", "some-ns");
    bt_labels_set(&h.in, "pod", "some-name-tgbs");
    bt_labels_set(&h.in, "container", "frontend");
    h_push(&h, "something going on here \"quoted\" <b>");
    cr_assert_str_eq(h.out[0].line, "{\"container\":\"frontend\",\"pod\":\"some-name-tgbs\","
                                    "\"_entry\":\"something going on here \\\"quoted\\\" "
                                    "\\u003cb\\u003e\"}");
    cr_assert_null(h_label(&h, 0, "pod"));
    cr_assert_null(h_label(&h, 0, "container"));
    cr_assert_str_eq(h_label(&h, 0, "namespace"), "some-ns");
    cr_assert_eq(h.out[0].ts, 1000, "ingest_timestamp: false keeps the timestamp");
    h_free(&h);
}

Test(stage_pack, ingest_timestamp_defaults_to_now_and_missing_names_are_skipped)
{
    struct harness h;
    h_new(&h, "- pack: {labels: [nothere]}\n");
    int64_t before = bt_now_ns();
    h_push(&h, "x");
    cr_assert_str_eq(h.out[0].line, "{\"_entry\":\"x\"}");
    cr_assert_geq(h.out[0].ts, before);
    h_free(&h);
}

Test(stage_pack, extracted_values_pack_too)
{
    struct harness h;
    h_new(&h, "- regex: {expression: '^(?P<lvl>\\w+)'}\n- pack: {labels: [lvl]}\n");
    h_push(&h, "warn \xc3\xa9t\xc3\xa9\n");
    cr_assert_str_eq(h.out[0].line, "{\"lvl\":\"warn\",\"_entry\":\"warn \xc3\xa9t\xc3\xa9\\n\"}");
    h_free(&h);
}

Test(stage_pack, labels_list_may_be_empty_but_must_be_a_list)
{
    struct harness h;
    h_new(&h, "- pack: {ingest_timestamp: false}\n");
    h_push(&h, "x");
    cr_assert_str_eq(h.out[0].line, "{\"_entry\":\"x\"}");
    h_free(&h);
    cr_assert_eq(h_try(&h, "- pack: {labels: app}\n"), -1);
    cr_assert(strstr(h.err, "stage \"pack\": labels must be a list of names") != NULL, "%s", h.err);
    h_free(&h);
}

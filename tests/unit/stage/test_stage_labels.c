#include "test_stage_harness.h"

Test(stage_labels, doc_example_labels_from_extracted)
{
    struct harness h;
    h_new(&h, "- regex: {expression: '^(?P<level>\\w+) (?P<app>\\S+)'}\n"
              "- labels:\n    stream:\n    lvl: level\n    app:\n");
    h_push(&h, "warn web-1 hello");
    cr_assert_str_eq(h_label(&h, 0, "lvl"), "warn");
    cr_assert_str_eq(h_label(&h, 0, "app"), "web-1");
    cr_assert_null(h_label(&h, 0, "stream"), "absent source: skipped");
    cr_assert_null(h_label(&h, 0, "level"));
    h_free(&h);
}

/* Sets made from the same labels and values are one cached set: the batcher sees one stamp
 * for them and finds their stream without building its string again. Different values, other
 * source labels and values too long to cache each get the right labels. */
Test(stage_labels, repeated_values_share_one_set_and_its_stamp)
{
    struct harness h;
    h_new(&h, "- regex: {expression: '^(?P<level>\\w+) (?P<app>\\S+)'}\n"
              "- labels: {level: '', app: ''}\n");
    h.stamps = true;
    bt_labels_set(&h.in, "job", "varlogs");
    h_push(&h, "warn web-1 a");
    h_push(&h, "info web-1 b");
    h_push(&h, "warn web-1 c");
    h_push(&h, "warn web-2 d");
    h_push(&h, "info web-1 e");
    cr_assert_eq(h.n, 5);
    cr_assert_neq(h.out[0].stamp, 0);
    cr_assert_eq(h.out[0].stamp, h.out[2].stamp, "same labels and values: one set");
    cr_assert_eq(h.out[1].stamp, h.out[4].stamp);
    cr_assert_neq(h.out[0].stamp, h.out[1].stamp);
    cr_assert_neq(h.out[0].stamp, h.out[3].stamp);
    cr_assert_str_eq(h_label(&h, 3, "app"), "web-2");
    cr_assert_str_eq(h_label(&h, 4, "level"), "info");
    cr_assert_str_eq(h_label(&h, 4, "job"), "varlogs");
    /* Other source labels, same values: another set. */
    bt_labels_set(&h.in, "job", "other");
    h_push(&h, "warn web-1 f");
    cr_assert_neq(h.out[5].stamp, h.out[0].stamp);
    cr_assert_str_eq(h_label(&h, 5, "job"), "other");
    cr_assert_str_eq(h_label(&h, 5, "level"), "warn");
    /* A value too long to cache is set on the entry's own set, with the values before it. */
    char line[3000];
    memset(line, 'x', sizeof(line));
    memcpy(line, "warn ", 5);
    line[sizeof(line) - 1] = '\0';
    h_push(&h, line);
    cr_assert_str_eq(h_label(&h, 6, "level"), "warn");
    cr_assert_eq(strlen(h_label(&h, 6, "app")), sizeof(line) - 6);
    cr_assert_str_eq(h_label(&h, 6, "job"), "other");
    /* More distinct sets than the cache holds: each still right. */
    for (int i = 0; i < 40; i++) {
        char l[64];
        snprintf(l, sizeof(l), "warn app-%d z", i % 20);
        h_push(&h, l);
        char want[32];
        snprintf(want, sizeof(want), "app-%d", i % 20);
        cr_assert_str_eq(h_label(&h, h.n - 1, "app"), want);
    }
    h_free(&h);
}

/* Labels are copied into the extracted map only when a stage reads them: the ones named are
 * there, whichever stage names them; with a stage that does not say what it reads (template),
 * all of them are. */
Test(stage_labels, labels_named_by_a_stage_are_in_the_extracted_map)
{
    struct harness h;
    h_new(&h, "- regex: {expression: '/(?P<base>[a-z]+)\\.log$', source: filename}\n"
              "- labels: {base: '', j: job}\n"
              "- output: {source: host}\n");
    bt_labels_set(&h.in, "job", "varlogs");
    bt_labels_set(&h.in, "filename", "/var/log/syslog.log");
    bt_labels_set(&h.in, "host", "h1");
    h_push(&h, "a line");
    cr_assert_str_eq(h_label(&h, 0, "base"), "syslog");
    cr_assert_str_eq(h_label(&h, 0, "j"), "varlogs");
    cr_assert_str_eq(h.out[0].line, "h1");
    h_free(&h);
    h_new(&h, "- template: {source: t, template: '{{ .job }}-{{ .host }}'}\n"
              "- output: {source: t}\n");
    bt_labels_set(&h.in, "job", "varlogs");
    bt_labels_set(&h.in, "host", "h1");
    h_push(&h, "a line");
    cr_assert_str_eq(h.out[0].line, "varlogs-h1");
    h_free(&h);
}

Test(stage_labels, numbers_and_bools_convert_like_getstring)
{
    struct harness h;
    h_new(&h, "- json: {expressions: {code: '', ok: '', f: '', n: ''}}\n"
              "- labels: {code: '', ok: '', f: '', n: ''}\n");
    h_push(&h, "{\"code\": 404, \"ok\": false, \"f\": 0.25, \"n\": null}");
    cr_assert_str_eq(h_label(&h, 0, "code"), "404");
    cr_assert_str_eq(h_label(&h, 0, "ok"), "false");
    cr_assert_str_eq(h_label(&h, 0, "f"), "0.25");
    cr_assert_null(h_label(&h, 0, "n"));
    h_free(&h);
}

Test(stage_labels, invalid_label_names_are_config_errors)
{
    struct harness h;
    cr_assert_eq(h_try(&h, "- labels:\n    ok:\n    9bad: x\n"), -1);
    cr_assert_str_eq(h.err, "pipeline.yaml:3:5: stage \"labels\": invalid label name \"9bad\"");
    h_free(&h);
    cr_assert_eq(h_try(&h, "- static_labels: {\"a-b\": c}\n"), -1);
    cr_assert(strstr(h.err, "invalid label name \"a-b\"") != NULL, "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- labeldrop: [ok, \"no.dots\"]\n"), -1);
    cr_assert(strstr(h.err, "pipeline.yaml:1:19: stage \"labeldrop\": invalid label name") == h.err,
              "%s", h.err);
    h_free(&h);
}

Test(stage_labels, doc_example_static_labels)
{
    struct harness h;
    h_new(&h, "- static_labels:\n    custom_key: custom_val\n    empty: ''\n");
    bt_labels_set(&h.in, "empty", "kept");
    h_push(&h, "x");
    cr_assert_str_eq(h_label(&h, 0, "custom_key"), "custom_val");
    cr_assert_str_eq(h_label(&h, 0, "empty"), "kept", "empty static values are ignored");
    h_free(&h);
}

Test(stage_labels, doc_example_labeldrop_and_labelallow)
{
    struct harness h;
    h_new(&h, "- labeldrop:\n    - kubernetes_pod_name\n    - kubernetes_container_name\n");
    bt_labels_set(&h.in, "kubernetes_pod_name", "p");
    bt_labels_set(&h.in, "kubernetes_container_name", "c");
    bt_labels_set(&h.in, "app", "a");
    h_push(&h, "x");
    cr_assert_null(h_label(&h, 0, "kubernetes_pod_name"));
    cr_assert_null(h_label(&h, 0, "kubernetes_container_name"));
    cr_assert_str_eq(h_label(&h, 0, "app"), "a");
    h_free(&h);

    h_new(&h, "- labelallow:\n    - kubernetes_pod_name\n    - kubernetes_container_name\n");
    bt_labels_set(&h.in, "kubernetes_pod_name", "p");
    bt_labels_set(&h.in, "app", "a");
    bt_labels_set(&h.in, "filename", "/f");
    bt_labels_set(&h.in, BT_TENANT_LABEL, "t1");
    h_push(&h, "x");
    cr_assert_str_eq(h_label(&h, 0, "kubernetes_pod_name"), "p");
    cr_assert_null(h_label(&h, 0, "app"));
    cr_assert_null(h_label(&h, 0, "filename"));
    cr_assert_str_eq(h_label(&h, 0, BT_TENANT_LABEL), "t1", "the tenant survives labelallow");
    h_free(&h);
}

Test(stage_labels, structured_metadata_moves_values_out_of_the_stream)
{
    struct harness h;
    h_new(&h, "- logfmt: {mapping: {trace_id: '', pod: ''}}\n"
              "- structured_metadata:\n    trace_id:\n    pod:\n");
    bt_labels_set(&h.in, "pod", "web-1");
    bt_labels_set(&h.in, "job", "j");
    h_push(&h, "trace_id=abc pod=web-1 msg=x");
    cr_assert_str_eq(bt_labels_get(&h.out[0].meta, "trace_id"), "abc");
    cr_assert_str_eq(bt_labels_get(&h.out[0].meta, "pod"), "web-1");
    cr_assert_null(h_label(&h, 0, "pod"), "an identical stream label is removed");
    cr_assert_str_eq(h_label(&h, 0, "job"), "j");
    h_free(&h);
    h_new(&h, "- non_indexed_labels: {job: ''}\n");
    bt_labels_set(&h.in, "job", "j");
    h_push(&h, "x");
    cr_assert_str_eq(bt_labels_get(&h.out[0].meta, "job"), "j", "2.9 alias works");
    h_free(&h);
}

Test(stage_labels, incoming_structured_metadata_is_kept)
{
    struct harness h;
    h_new(&h, "- static_labels: {a: b}\n");
    struct bt_kv kv = {"k", 1, "v", 1};
    struct bt_entry e = {.labels = &h.in, .line = "x", .line_len = 1, .meta = &kv, .n_meta = 1};
    bt_pipeline_process(h.p, &e);
    cr_assert_str_eq(bt_labels_get(&h.out[0].meta, "k"), "v");
    h_free(&h);
}

Test(stage_output, doc_example_output_from_json)
{
    struct harness h;
    h_new(&h, "- json:\n    expressions:\n      user: user\n      message: message\n"
              "- labels:\n    user:\n- output:\n    source: message\n");
    h_push(&h, "{\"user\": \"alexis\", \"message\": \"hello, world!\"}");
    cr_assert_str_eq(h.out[0].line, "hello, world!");
    cr_assert_str_eq(h_label(&h, 0, "user"), "alexis");
    h_push(&h, "{\"user\": \"bob\"}");
    cr_assert_str_eq(h.out[1].line, "{\"user\": \"bob\"}", "absent source keeps the line");
    h_free(&h);
    cr_assert_eq(h_try(&h, "- output: {}\n"), -1);
    cr_assert(strstr(h.err, "stage \"output\": source is required") != NULL, "%s", h.err);
    h_free(&h);
}

Test(stage_tenant, doc_examples_source_value_label)
{
    struct harness h;
    h_new(&h, "- json:\n    expressions:\n      customer_id: customer_id\n"
              "- tenant:\n    source: customer_id\n");
    h_push(&h, "{\"customer_id\":\"1\",\"log\":\"x\"}");
    h_push(&h, "{\"log\":\"no customer\"}");
    cr_assert_str_eq(h_label(&h, 0, BT_TENANT_LABEL), "1");
    cr_assert_null(h_label(&h, 1, BT_TENANT_LABEL));
    h_free(&h);

    h_new(&h, "- tenant: {value: team-a}\n");
    h_push(&h, "x");
    cr_assert_str_eq(h_label(&h, 0, BT_TENANT_LABEL), "team-a");
    h_free(&h);

    h_new(&h, "- tenant: {label: namespace}\n");
    bt_labels_set(&h.in, "namespace", "ns1");
    h_push(&h, "x");
    cr_assert_str_eq(h_label(&h, 0, BT_TENANT_LABEL), "ns1");
    h_free(&h);
}

Test(stage_tenant, exactly_one_option)
{
    struct harness h;
    cr_assert_eq(h_try(&h, "- tenant: {value: a, label: b}\n"), -1);
    cr_assert(strstr(h.err, "exactly one of source, value or label") != NULL, "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- tenant:\n"), -1);
    h_free(&h);
}

Test(stage_labels, invalid_utf8_values_are_skipped_valid_ones_kept)
{
    struct harness h;
    h_new(&h, "- logfmt: {mapping: {a: '', b: '', c: ''}}\n- labels: {a: '', b: '', c: ''}\n"
              "- structured_metadata: {c: ''}\n");
    h_push(&h, "a=\xff\xfe b=\xe6\x97\xa5\xe6\x9c\xac c=\xed\xa0\x80");
    cr_assert_null(h_label(&h, 0, "a"), "invalid bytes");
    cr_assert_str_eq(h_label(&h, 0, "b"), "\xe6\x97\xa5\xe6\x9c\xac");
    cr_assert_null(h_label(&h, 0, "c"), "an encoded surrogate is not UTF-8");
    cr_assert_null(bt_labels_get(&h.out[0].meta, "c"));
    h_free(&h);
}

Test(stage_labels, json_decoding_repairs_invalid_utf8_like_go)
{
    struct harness h;
    h_new(&h, "- json: {expressions: {a: ''}}\n- labels: {a: ''}\n");
    h_push(&h, "{\"a\":\"x\xffy\"}");
    cr_assert_str_eq(h_label(&h, 0, "a"), "x\xef\xbf\xbdy", "Go decodes bad bytes as U+FFFD");
    h_free(&h);
}

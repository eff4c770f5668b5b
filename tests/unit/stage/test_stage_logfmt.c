#include "test_stage_harness.h"

#include "util/buf.h"
#include "util/logfmt.h"

Test(stage_logfmt, doc_example_mapping)
{
    struct harness h;
    h_new(&h, "- logfmt:\n    mapping:\n      timestamp: time\n      app:\n      duration:\n"
              "      unknown:\n"
              "- labels: {timestamp: '', app: '', duration: '', unknown: ''}\n");
    h_push(&h, "time=2012-11-01T22:08:41+00:00 app=loki level=WARN duration=125 "
               "message=\"this is a log line\" extra=\"user=foo\"");
    cr_assert_str_eq(h_label(&h, 0, "timestamp"), "2012-11-01T22:08:41+00:00");
    cr_assert_str_eq(h_label(&h, 0, "app"), "loki");
    cr_assert_str_eq(h_label(&h, 0, "duration"), "125");
    cr_assert_null(h_label(&h, 0, "unknown"));
    h_free(&h);
}

Test(stage_logfmt, doc_example_source_from_json)
{
    struct harness h;
    h_new(&h, "- json: {expressions: {extra: ''}}\n"
              "- logfmt:\n    mapping:\n      user:\n    source: extra\n"
              "- labels: {user: ''}\n");
    h_push(&h, "{\"time\":\"2012-11-01T22:08:41+00:00\",\"app\":\"loki\",\"level\":\"WARN\","
               "\"duration\":125,\"message\":\"this is a log line\",\"extra\":\"user=foo\"}");
    cr_assert_str_eq(h_label(&h, 0, "user"), "foo");
    h_free(&h);
}

Test(stage_logfmt, quoted_values_escapes_and_bare_keys)
{
    struct harness h;
    h_new(&h, "- logfmt: {mapping: {msg: '', flag: '', e: ''}}\n- output: {source: msg}\n"
              "- labels: {flag: '', e: ''}\n");
    h_push(&h, "flag msg=\"say \\\"h\\u00e9\\\"\\n\" e=");
    cr_assert_str_eq(h.out[0].line, "say \"h\xc3\xa9\"\n");
    cr_assert_null(h_label(&h, 0, "flag"), "a bare key has an empty value");
    cr_assert_null(h_label(&h, 0, "e"));
    h_free(&h);
}

Test(stage_logfmt, malformed_rest_keeps_what_was_read)
{
    struct harness h;
    h_new(&h, "- logfmt: {mapping: {a: '', b: ''}}\n- labels: {a: '', b: ''}\n");
    h_push(&h, "a=1 b=x\"y c=3");
    cr_assert_str_eq(h_label(&h, 0, "a"), "1");
    cr_assert_null(h_label(&h, 0, "b"));
    h_push(&h, "a=\"unterminated");
    cr_assert_eq(h.n, 2);
    cr_assert_null(h_label(&h, 1, "a"));
    h_free(&h);
}

Test(stage_logfmt, tokenizer_edge_cases)
{
    struct bt_logfmt d;
    struct bt_logfmt_kv kv;
    const char *s = "  k=v\tk2=\"a b\" =x";
    bt_logfmt_init(&d, s, strlen(s));
    cr_assert_eq(bt_logfmt_next(&d, &kv), 1);
    cr_assert_eq(kv.klen, 1);
    cr_assert_eq(bt_logfmt_next(&d, &kv), 1);
    cr_assert(kv.quoted);
    struct bt_buf b;
    bt_buf_init(&b, 64);
    cr_assert_eq(bt_logfmt_value(&kv, &b), 0);
    cr_assert_str_eq(bt_buf_str(&b), "a b");
    bt_buf_free(&b);
    cr_assert_lt(bt_logfmt_next(&d, &kv), 0, "'=' without a key is malformed");
    cr_assert_eq(bt_logfmt_next(&d, &kv), 0);
}

Test(stage_logfmt, mapping_is_required)
{
    struct harness h;
    cr_assert_eq(h_try(&h, "- logfmt: {source: x}\n"), -1);
    cr_assert(strstr(h.err, "pipeline.yaml:1:11: stage \"logfmt\": mapping must be") == h.err, "%s",
              h.err);
    h_free(&h);
}

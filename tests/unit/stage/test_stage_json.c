#include "test_stage_harness.h"

#include "util/buf.h"
#include "util/jmespath.h"

/* Pipelines end with a stage that turns extracted values into labels or the line, which is
 * how the tests see them. */

Test(stage_json, doc_example_docker_fields)
{
    struct harness h;
    h_new(&h, "- json:\n    expressions:\n      output: log\n      stream: stream\n"
              "      timestamp: time\n"
              "- labels: {stream: '', timestamp: ''}\n- output: {source: output}\n");
    h_push(&h, "{\"log\":\"log message\\n\",\"stream\":\"stderr\","
               "\"time\":\"2019-04-30T02:12:41.8443515Z\"}");
    cr_assert_eq(h.n, 1);
    cr_assert_str_eq(h.out[0].line, "log message\n");
    cr_assert_str_eq(h_label(&h, 0, "stream"), "stderr");
    cr_assert_str_eq(h_label(&h, 0, "timestamp"), "2019-04-30T02:12:41.8443515Z");
    h_free(&h);
}

Test(stage_json, doc_example_nested_json_in_a_source)
{
    struct harness h;
    h_new(&h, "- json:\n    expressions:\n      extra:\n"
              "- json:\n    expressions:\n      user:\n    source: extra\n"
              "- labels: {user: ''}\n- output: {source: extra}\n");
    h_push(
        &h,
        "{\"time\":\"2019-04-30T02:12:41.8443515Z\",\"extra\":\"{\\\"user\\\":\\\"marco\\\"}\"}");
    cr_assert_str_eq(h.out[0].line, "{\"user\":\"marco\"}");
    cr_assert_str_eq(h_label(&h, 0, "user"), "marco");
    h_free(&h);
}

Test(stage_json, doc_example_quoted_key_with_a_dot)
{
    struct harness h;
    h_new(&h, "- json:\n    expressions:\n      stream: '\"grpc.stream\"'\n"
              "- labels: {stream: ''}\n");
    h_push(&h, "{\"log\":\"m\",\"grpc.stream\":\"stderr\"}");
    cr_assert_str_eq(h_label(&h, 0, "stream"), "stderr");
    h_free(&h);
}

Test(stage_json, paths_indexes_numbers_bools_and_objects)
{
    struct harness h;
    h_new(&h, "- json:\n    expressions:\n      a: 'req.hdr[1]'\n      last: 'req.hdr[-1]'\n"
              "      code: req.code\n      ok: req.ok\n      obj: req.sub\n      big: req.big\n"
              "      missing: req.nope\n"
              "- labels: {a: '', last: '', code: '', ok: '', obj: '', big: '', missing: ''}\n");
    h_push(&h, "{\"req\":{\"hdr\":[\"x\",\"y\",\"z\"],\"code\":200,\"ok\":true,"
               "\"sub\":{\"b\":2,\"a\":[1,\"s\"]},\"big\":1.5e3}}");
    cr_assert_str_eq(h_label(&h, 0, "a"), "y");
    cr_assert_str_eq(h_label(&h, 0, "last"), "z");
    cr_assert_str_eq(h_label(&h, 0, "code"), "200");
    cr_assert_str_eq(h_label(&h, 0, "ok"), "true");
    cr_assert_str_eq(h_label(&h, 0, "big"), "1500");
    cr_assert_null(h_label(&h, 0, "missing"), "null must not become a label");
    /* objects are stored as JSON text, which labels and output take like promtail */
    cr_assert_str_eq(h_label(&h, 0, "obj"), "{\"a\":[1,\"s\"],\"b\":2}");
    h_free(&h);
}

Test(stage_json, objects_are_remarshalled_compact_with_sorted_keys)
{
    struct harness h;
    h_new(&h, "- json: {expressions: {obj: sub, arr: list}}\n");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    bt_pipeline_set_inspect(h.p, f);
    h_push(&h, "{\"sub\": {\"b\": 2, \"a\": [1, \"s\"]}, \"list\": [ {\"z\":1,\"y\":null} ]}");
    fclose(f);
    cr_assert(strstr(buf, "  extracted: + obj: {\"a\":[1,\"s\"],\"b\":2}\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "  extracted: + arr: [{\"y\":null,\"z\":1}]\n") != NULL, "%s", buf);
    free(buf);
    h_free(&h);
    h_new(&h, "- json: {expressions: {obj: sub}}\n"
              "- json: {expressions: {b: b, a0: 'a[0]'}, source: obj}\n"
              "- labels: {b: '', a0: ''}\n");
    h_push(&h, "{\"sub\": {\"b\": 2, \"a\": [1, \"s\"]}}");
    cr_assert_str_eq(h_label(&h, 0, "b"), "2");
    cr_assert_str_eq(h_label(&h, 0, "a0"), "1");
    h_free(&h);
}

Test(stage_json, malformed_passes_unchanged_or_is_dropped)
{
    struct harness h;
    h_new(&h, "- json: {expressions: {a: a}}\n- labels: {a: ''}\n");
    h_push(&h, "{\"a\": \"x\"");
    h_push(&h, "[\"a\"]");
    h_push(&h, "not json");
    cr_assert_eq(h.n, 3);
    cr_assert_str_eq(h.out[0].line, "{\"a\": \"x\"");
    cr_assert_null(h_label(&h, 0, "a"));
    h_free(&h);

    h_new(&h, "- json: {expressions: {a: a}, drop_malformed: true}\n");
    h_push(&h, "{\"a\": }");
    h_push(&h, "{\"a\": 1}");
    cr_assert_eq(h.n, 1);
    cr_assert_eq(h_dropped(&h, "malformed_json"), 1);
    h_free(&h);
}

Test(stage_json, unicode_escapes_and_raw_utf8)
{
    struct harness h;
    h_new(&h, "- json: {expressions: {m: msg, k: '\"k\\u00e9y\"'}}\n- output: {source: m}\n"
              "- labels: {k: ''}\n");
    h_push(&h, "{\"msg\":\"caf\\u00e9 \\ud83d\\ude00 \\ud800 \xe2\x82\xac\",\"k\\u00e9y\":\"v\"}");
    cr_assert_str_eq(h.out[0].line, "caf\xc3\xa9 \xf0\x9f\x98\x80 \xef\xbf\xbd \xe2\x82\xac");
    cr_assert_str_eq(h_label(&h, 0, "k"), "v", "escaped key must match a quoted expression");
    h_free(&h);
}

Test(stage_json, duplicate_keys_last_wins)
{
    struct harness h;
    h_new(&h, "- json: {expressions: {a: a}}\n- output: {source: a}\n");
    h_push(&h, "{\"a\":\"first\",\"a\":\"second\"}");
    cr_assert_str_eq(h.out[0].line, "second");
    h_free(&h);
}

Test(stage_json, unsupported_jmespath_is_an_error_saying_what)
{
    struct harness h;
    cr_assert_eq(h_try(&h, "- json:\n    expressions:\n      a: 'items[*].name'\n"), -1);
    cr_assert(strstr(h.err, "pipeline.yaml:3:10: stage \"json\": could not compile JMES "
                            "expression: ") == h.err,
              "%s", h.err);
    cr_assert(strstr(h.err, "projections ([*]) are not supported") != NULL, "%s", h.err);
    h_free(&h);
    const char *bad[] = {"a | b", "length(a)", "a[?x]", "a[1:2]", "{a: b}", "`1`", "a.", "a..b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256];
        struct bt_jpath *p = bt_jpath_new(bad[i], err, sizeof(err));
        cr_assert_null(p, "%s should be rejected", bad[i]);
    }
    cr_assert_eq(h_try(&h, "- json: {expressions: {}}\n"), -1);
    cr_assert(strstr(h.err, "expressions must be a non-empty map") != NULL, "%s", h.err);
    h_free(&h);
}

Test(stage_json, validator_and_quoting)
{
    cr_assert(bt_json_valid(" {\"a\":[1,2.5e-3,-0,true,null,{}]} ", 33));
    cr_assert_not(bt_json_valid("{\"a\":01}", 8));
    cr_assert_not(bt_json_valid("{\"a\":\"\x01\"}", 9));
    cr_assert_not(bt_json_valid("{\"a\":1,}", 8));
    struct bt_buf b;
    bt_buf_init(&b, 1024);
    cr_assert_eq(bt_json_quote(&b, "a\"<b>&\n\x01\xff\xe2\x80\xa8", 12), 0);
    cr_assert_str_eq(bt_buf_str(&b), "\"a\\\"\\u003cb\\u003e\\u0026\\n\\u0001\\ufffd\\u2028\"");
    bt_buf_free(&b);
}

Test(stage_json, long_numbers_keep_their_value)
{
    struct harness h;
    h_new(&h, "- json: {expressions: {n: ''}}\n- labels: {n: ''}\n");
    char line[128] = "{\"n\": 1";
    memset(line + 7, '0', 70); /* 1e70 spelled out: longer than the fast path's buffer */
    memcpy(line + 77, "e-69}", 6);
    h_push(&h, line);
    cr_assert_str_eq(h_label(&h, 0, "n"), "10");
    h_free(&h);
}

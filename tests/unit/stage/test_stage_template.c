#include "test_stage_harness.h"

/* Runs `stages` (after a regex that extracts app, level and module from "app level module |")
 * and an output stage showing extracted[show]; returns the line that came out. */
static const char *run1(struct harness *h, const char *stages, const char *show, const char *line)
{
    char y[2048];
    snprintf(y, sizeof(y),
             "- regex: {expression: '^(?P<app>\\S*) (?P<level>\\S*) (?P<module>\\S*) \\|'}\n"
             "%s- output: {source: %s}\n",
             stages, show);
    h_new(h, y);
    h_push(h, line);
    cr_assert_eq(h->n, 1);
    return h->out[0].line;
}

static void check(const char *stages, const char *show, const char *line, const char *want)
{
    struct harness h;
    const char *got = run1(&h, stages, show, line);
    cr_assert_str_eq(got, want, "stages:\n%s\ngot [%s]", stages, got);
    h_free(&h);
}

Test(stage_template, doc_example_new_key_constant)
{
    check("- template: {source: new_key, template: 'hello world!'}\n", "new_key", "a b c | x",
          "hello world!");
}

Test(stage_template, doc_example_suffix_and_lowercase)
{
    check("- template: {source: app, template: '{{ .Value }}_some_suffix'}\n", "app",
          "loki warn test | x", "loki_some_suffix");
    check("- template: {source: app, template: '{{ ToLower .Value }}'}\n", "app",
          "LOKI warn test | x", "loki");
}

Test(stage_template, doc_example_new_key_from_other_keys)
{
    check("- template: {source: output_msg, template: '{{ .level }} for app {{ ToUpper .app }}'}\n",
          "output_msg", "loki warn test | x", "warn for app LOKI");
    check("- template:\n    source: app\n"
          "    template: '{{ .level }} for app {{ ToUpper .Value }} in module {{.module}}'\n",
          "app", "loki warn test | x", "warn for app LOKI in module test");
}

Test(stage_template, doc_example_replace_and_entry)
{
    check("- template: {source: app, template: '{{ Replace .Value \"loki\" \"blokey\" 1 }}'}\n",
          "app", "lokiloki warn test | x", "blokeyloki");
    check("- template: {source: message, template: '{{.app }}: {{ .Entry }}'}\n", "message",
          "loki warn test | the line", "loki: loki warn test | the line");
}

Test(stage_template, doc_example_hash_for_pii)
{
    check("- template: {source: app, template: '{{ Hash .Value \"salt\" }}'}\n", "app",
          "loki warn test | x", "53ddc627682ed26d0e68af30eb180182ca15b5827126282dd0f76f3af49d742b");
    check("- template: {source: app, template: '{{ Sha2Hash .Value \"salt\" }}'}\n", "app",
          "loki warn test | x", "45a238ce9fdf019798e5c5e994198143baee0947d0c9d5c616e0b8f9ddacdc0f");
}

Test(stage_template, result_feeds_a_label)
{
    struct harness h;
    h_new(&h, "- regex: {expression: '^(?P<app>\\S+) '}\n"
              "- template: {source: app, template: '{{ .Value | replace \" \" \"_\" | lower }}'}\n"
              "- labels: {app: ''}\n");
    h_push(&h, "My-App rest");
    cr_assert_str_eq(h_label(&h, 0, "app"), "my-app");
    h_free(&h);
}

Test(stage_template, empty_result_deletes_the_key)
{
    struct harness h;
    /* output changes the line only when the key exists: the line must stay as pushed */
    const char *got = run1(&h, "- template: {source: app, template: '{{ if false }}x{{ end }}'}\n",
                           "app", "loki warn test | x");
    cr_assert_str_eq(got, "loki warn test | x");
    h_free(&h);
}

Test(stage_template, execution_error_leaves_the_value)
{
    check("- template: {source: app, template: '{{ ToUpper .missing }}'}\n", "app",
          "loki warn test | x", "loki");
}

Test(stage_template, missing_key_prints_no_value_like_go)
{
    check("- template: {source: out, template: '[{{ .nothere }}]'}\n", "out", "a b c | x",
          "[<no value>]");
}

Test(stage_template, labels_and_numbers_are_visible)
{
    struct harness h;
    h_new(&h, "- json: {expressions: {n: n, ok: ok}}\n"
              "- template: {source: out, template: '{{ .job }} {{ .n }} {{ .ok }} {{ .Value }}'}\n"
              "- output: {source: out}\n");
    bt_labels_set(&h.in, "job", "varlogs");
    h_push(&h, "{\"n\": 1.5, \"ok\": true}");
    cr_assert_str_eq(h.out[0].line, "varlogs 1.5 true <no value>");
    h_free(&h);
}

Test(stage_template, utf8_values_round_trip)
{
    struct harness h;
    h_new(&h, "- template: {source: app, template: '{{ ToUpper .Value }}-{{ TrimSpace .level }}'}\n"
              "- output: {source: app}\n");
    bt_labels_set(&h.in, "app", "\xc3\xa9t\xc3\xa9");
    bt_labels_set(&h.in, "level", "\xe2\x80\x83x\xc2\xa0");
    h_push(&h, "line");
    cr_assert_str_eq(h.out[0].line, "\xc3\x89T\xc3\x89-x");
    h_free(&h);
}

Test(stage_template, config_errors_name_function_and_position)
{
    struct harness h;
    cr_assert_eq(h_try(&h, "- template:\n    source: a\n    template: '{{ toJson .a }}'\n"), -1);
    cr_assert(strstr(h.err, "pipeline.yaml:3:15: stage \"template\":"), "%s", h.err);
    cr_assert(strstr(h.err, "function \"toJson\" is not supported"), "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- template: {source: a, template: '{{ frobnicate .a }}'}\n"), -1);
    cr_assert(strstr(h.err, "function \"frobnicate\" not defined"), "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- template: {template: x}\n"), -1);
    cr_assert(strstr(h.err, "source is required"), "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- template: {source: a, template: x, extra: 1}\n"), 0, "%s",
                 h.err); /* unknown key: a warning, as promtail ignores it */
    h_free(&h);
    cr_assert_eq(h_try(&h, "- template: {source: a, template: '{{ if .a }}'}\n"), -1);
    cr_assert(strstr(h.err, "missing {{end}}"), "%s", h.err);
    h_free(&h);
}

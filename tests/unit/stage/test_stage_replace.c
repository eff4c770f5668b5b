#include "test_stage_harness.h"

static const char *apache = "11.11.11.11 - frank [25/Jan/2000:14:00:01 -0500] \"GET /1986.js "
                            "HTTP/1.1\" 200 932 \"-\" \"Mozilla/5.0 (Windows; U; Windows NT 5.1; "
                            "de; rv:1.9.1.7) Gecko/20091221 Firefox/3.5.7 GTB6\"";

Test(stage_replace, doc_example_mask_password)
{
    struct harness h;
    h_new(&h, "- replace:\n    expression: \"password (\\\\S+)\"\n    replace: \"****\"\n");
    h_push(&h, "2019-01-01T01:00:00.000000001Z stderr P i'm a log message who has sensitive "
               "information with password xyz!");
    cr_assert_str_eq(h.out[0].line, "2019-01-01T01:00:00.000000001Z stderr P i'm a log message "
                                    "who has sensitive information with password ****");
    h_free(&h);
}

Test(stage_replace, doc_example_mask_ip_in_line)
{
    struct harness h;
    h_new(&h, "- replace:\n    expression: '(\\d{2}.\\d{2}.\\d{2}.\\d{2})'\n"
              "    replace: '*IP*'\n");
    h_push(&h, apache);
    /* the pattern's '.' also matches the ':' of the time, exactly as with Go's regexp */
    cr_assert_str_eq(h.out[0].line, "*IP* - frank [25/Jan/20*IP* -0500] \"GET /1986.js "
                                    "HTTP/1.1\" 200 932 \"-\" \"Mozilla/5.0 (Windows; U; Windows "
                                    "NT 5.1; de; rv:1.9.1.7) Gecko/20091221 Firefox/3.5.7 GTB6\"");
    h_free(&h);
}

Test(stage_replace, doc_example_source_from_regex)
{
    struct harness h;
    h_new(&h, "- regex:\n    expression: '^(?P<ip>\\S+) (?P<identd>\\S+) (?P<user>\\S+) '\n"
              "- replace:\n    expression: '(\\d{2}.\\d{2}.\\d{2}.\\d{2})'\n"
              "    replace: '*IP*'\n    source: ip\n"
              "- labels: {ip: ''}\n");
    h_push(&h, apache);
    cr_assert_str_eq(h_label(&h, 0, "ip"), "*IP*");
    cr_assert_str_eq(h.out[0].line, apache, "with source the line stays");
    h_free(&h);
}

Test(stage_replace, every_match_and_every_group_with_template_fields)
{
    struct harness h;
    h_new(&h, "- regex: {expression: '^(?P<env>\\w+):'}\n"
              "- replace:\n    expression: '(?P<k>\\w+)=(\\w+)'\n"
              "    replace: '{{ .Value | ToUpper }}-{{.env}}'\n"
              "- labels: {k: ''}\n");
    h_push(&h, "prod: a=b c=d");
    cr_assert_str_eq(h.out[0].line, "prod: A-prod=B-prod C-prod=D-prod");
    cr_assert_str_eq(h_label(&h, 0, "k"), "A-prod", "named group gets its replaced value");
    h_free(&h);
}

Test(stage_replace, empty_replace_deletes_groups_and_no_match_keeps_line)
{
    struct harness h;
    h_new(&h, "- replace: {expression: ' (debug|trace)\\b'}\n");
    h_push(&h, "level debug msg trace x");
    h_push(&h, "nothing here");
    cr_assert_str_eq(h.out[0].line, "level  msg  x");
    cr_assert_str_eq(h.out[1].line, "nothing here");
    h_free(&h);
}

Test(stage_replace, empty_matches_advance_over_utf8)
{
    struct harness h;
    h_new(&h, "- replace: {expression: '(x*)', replace: '-'}\n");
    h_push(&h, "\xc3\xa9x\xc3\xa9");
    /* Go: matches "" at 0, "x" at 2, "" at end (the "" after "x" abuts it and is skipped) */
    cr_assert_str_eq(h.out[0].line, "-\xc3\xa9-\xc3\xa9-");
    h_free(&h);
}

Test(stage_replace, unsupported_template_is_an_error)
{
    struct harness h;
    cr_assert_eq(h_try(&h, "- replace:\n    expression: '(a)'\n"
                           "    replace: '{{ range .x }}b{{ end }}'\n"),
                 -1);
    cr_assert(strstr(h.err, "pipeline.yaml:3:14: stage \"replace\": replace template: ") == h.err,
              "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- replace: {expression: 'abc', replace: x}\n"), -1);
    cr_assert(strstr(h.err, "capture groups") != NULL, "%s", h.err);
    h_free(&h);
}

Test(stage_replace, missing_keys_print_no_value_and_break_functions)
{
    struct harness h;
    h_new(&h, "- replace: {expression: '(a)', replace: '[{{ .nope }}]'}\n");
    h_push(&h, "xay");
    cr_assert_str_eq(h.out[0].line, "x[<no value>]y");
    h_free(&h);
    h_new(&h, "- replace: {expression: '(a)', replace: '{{ .nope | ToUpper }}'}\n");
    h_push(&h, "xay");
    cr_assert_str_eq(h.out[0].line, "xay", "an execution error leaves the entry as it was");
    h_free(&h);
}

Test(stage_replace, doc_example_conditional_template)
{
#if !__has_include("util/gotemplate.h")
    cr_skip_test("util/gotemplate.h is not in this tree: replace uses its built-in minimum "
                 "template, which has no if/eq/Replace");
#endif
    struct harness h;
    h_new(&h,
          "- replace:\n"
          "    expression: '^(?P<ip>\\S+) (?P<identd>\\S+) (?P<user>\\S+) "
          "\\[(?P<timestamp>[\\w:/]+\\s[+\\-]\\d{4})\\] \"(?P<action>\\S+)\\s?"
          "(?P<path>\\S+)?\\s?(?P<protocol>\\S+)?\" (?P<status>\\d{3}|-) (?P<size>\\d+|-)"
          "\\s?\"?(?P<referer>[^\"]*)\"?\\s?\"?(?P<useragent>[^\"]*)?\"?$'\n"
          "    replace: '{{ if eq .Value \"200\" }}{{ Replace .Value \"200\" \"HttpStatusOk\" -1 "
          "}}{{ else }}{{ .Value | ToUpper }}{{ end }}'\n"
          "- labels: {status: ''}\n");
    h_push(&h, apache);
    cr_assert_str_eq(h.out[0].line,
                     "11.11.11.11 - FRANK [25/JAN/2000:14:00:01 -0500] \"GET /1986.JS HTTP/1.1\" "
                     "HttpStatusOk 932 \"-\" \"MOZILLA/5.0 (WINDOWS; U; WINDOWS NT 5.1; DE; "
                     "RV:1.9.1.7) GECKO/20091221 FIREFOX/3.5.7 GTB6\"");
    cr_assert_str_eq(h_label(&h, 0, "status"), "HttpStatusOk");
    h_free(&h);
}

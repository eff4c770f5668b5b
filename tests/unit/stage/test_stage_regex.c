#include "test_stage_harness.h"

Test(stage_regex, named_groups_go_to_extracted_doc_example)
{
    /* promtail docs: regex on a log line, then labels from the groups */
    struct harness h;
    h_new(&h, "- regex:\n"
              "    expression: '^(?s)(?P<time>\\S+?) (?P<stream>stdout|stderr) "
              "(?P<flags>\\S+?) (?P<content>.*)$'\n"
              "- labels: {stream: ''}\n"
              "- output: {source: content}\n");
    h_push(&h, "2019-01-01T01:00:00.000000001Z stderr P i'm a log message!");
    cr_assert_eq(h.n, 1);
    cr_assert_str_eq(h_label(&h, 0, "stream"), "stderr");
    cr_assert_str_eq(h.out[0].line, "i'm a log message!");
    h_free(&h);
}

Test(stage_regex, no_match_changes_nothing)
{
    struct harness h;
    h_new(&h, "- regex: {expression: '^(?P<level>[A-Z]+):'}\n- labels: {level: ''}\n");
    h_push(&h, "lowercase: nothing");
    cr_assert_null(h_label(&h, 0, "level"));
    cr_assert_str_eq(h.out[0].line, "lowercase: nothing");
    h_free(&h);
}

Test(stage_regex, empty_and_unmatched_groups_are_written_as_empty)
{
    struct harness h;
    h_new(&h, "- regex: {expression: '^a(?P<x>b?)(?P<y>z)?c'}\n"
              "- output: {source: y}\n");
    h_push(&h, "ac");
    cr_assert_str_eq(h.out[0].line, "", "unmatched group must exist as \"\"");
    h_free(&h);
}

Test(stage_regex, source_reads_an_extracted_value)
{
    struct harness h;
    h_new(&h, "- regex: {expression: '^(?P<user>\\w+)@(?P<domain>.*)$'}\n"
              "- regex: {expression: '^(?P<tld>[a-z]+)$', source: domain}\n"
              "- regex: {expression: '(?P<domain>\\w+)\\.(?P<tld>\\w+)', source: domain}\n"
              "- labels: {tld: '', domain: ''}\n");
    h_push(&h, "bob@example.org");
    cr_assert_str_eq(h_label(&h, 0, "tld"), "org");
    cr_assert_str_eq(h_label(&h, 0, "domain"), "example", "group overwrote its own source");
    h_free(&h);
}

Test(stage_regex, missing_source_is_skipped)
{
    struct harness h;
    h_new(&h, "- regex: {expression: '(?P<a>.+)', source: nope}\n- labels: {a: ''}\n");
    h_push(&h, "line");
    cr_assert_eq(h.n, 1);
    cr_assert_null(h_label(&h, 0, "a"));
    h_free(&h);
}

Test(stage_regex, bad_regex_is_an_error_with_position)
{
    struct harness h;
    cr_assert_eq(h_try(&h, "- regex:\n    expression: '(?P<a>[a-'\n"), -1);
    cr_assert(strstr(h.err, "pipeline.yaml:2:17: stage \"regex\": invalid regex (?P<a>[a-: ") ==
                  h.err,
              "%s", h.err);
    h_free(&h);
}

Test(stage_regex, expression_without_named_groups_is_an_error)
{
    struct harness h;
    cr_assert_eq(h_try(&h, "- regex: {expression: '(a)(b)'}\n"), -1);
    cr_assert(strstr(h.err, "at least one named capture group") != NULL, "%s", h.err);
    h_free(&h);
    cr_assert_eq(h_try(&h, "- regex: {source: x}\n"), -1);
    cr_assert(strstr(h.err, "stage \"regex\": expression is required") != NULL, "%s", h.err);
    h_free(&h);
}

Test(stage_regex, utf8_groups_and_invalid_bytes)
{
    struct harness h;
    h_new(&h, "- regex: {expression: '^(?P<word>\\S+) (?P<rest>.*)$'}\n"
              "- labels: {word: '', rest: ''}\n");
    h_push(&h, "h\xc3\xa9llo w\xc3\xb6rld");
    cr_assert_str_eq(h_label(&h, 0, "word"), "h\xc3\xa9llo");
    /* Invalid UTF-8 never reaches a label: RE2 in UTF-8 mode (util/regex.cc) does not match `.`
     * over the bad bytes at all (Go would read them as U+FFFD and the labels stage would then skip
     * the value); either way the entry passes, unlabelled. */
    h_push(&h, "ok \xff\xfe");
    cr_assert_eq(h.n, 2);
    cr_assert_str_eq(h.out[1].line, "ok \xff\xfe");
    cr_assert_null(h_label(&h, 1, "rest"));
    h_free(&h);
}

/* The bench's pipeline: host and pid are read by no stage, so the regex captures only time, app
 * and msg; what reaches the sink is the same as with every group captured. */
static const char *unread_yaml =
    "- regex:\n"
    "    expression: '^(?P<time>\\S+) (?P<host>\\S+) (?P<app>[^\\[:]+)(?:\\[(?P<pid>\\d+)\\])?: "
    "(?P<msg>.*)$'\n"
    "- labels: {app: ''}\n"
    "- timestamp: {source: time, format: RFC3339Nano}\n"
    "- output: {source: msg}\n";

Test(stage_regex, unread_groups_change_nothing_that_is_seen)
{
    struct harness h;
    h_new(&h, unread_yaml);
    h_push(&h, "2026-01-02T03:04:05.000006+00:00 web01 sshd[42]: Accepted key");
    h_push(&h, "2026-01-02T03:04:05.5Z db01 kernel: oom");
    cr_assert_eq(h.n, 2);
    cr_assert_str_eq(h_label(&h, 0, "app"), "sshd");
    cr_assert_str_eq(h.out[0].line, "Accepted key");
    cr_assert_eq(h.out[0].ts, 1767323045000006000LL);
    cr_assert_str_eq(h_label(&h, 1, "app"), "kernel");
    cr_assert_str_eq(h.out[1].line, "oom");
    cr_assert_eq(h.out[1].ts, 1767323045500000000LL);
    cr_assert_null(h_label(&h, 0, "host"));
    h_free(&h);
}

Test(stage_regex, inspect_still_shows_unread_groups)
{
    struct harness h;
    h_new(&h, unread_yaml);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    bt_pipeline_set_inspect(h.p, f);
    h_push(&h, "2026-01-02T03:04:05Z web01 sshd[42]: hi");
    fclose(f);
    cr_assert(strstr(buf, "  extracted: + host: \"web01\"\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "  extracted: + pid: \"42\"\n") != NULL, "%s", buf);
    cr_assert_str_eq(h.out[0].line, "hi");
    free(buf);
    h_free(&h);
}

Test(stage_regex, a_stage_that_may_read_anything_keeps_every_group)
{
    /* a template reads what its text names: the regex must keep writing every group */
    struct harness h;
    h_new(&h, "- regex: {expression: '^(?P<a>\\w+) (?P<b>\\w+)$'}\n"
              "- template: {source: a, template: '{{ .b }}'}\n"
              "- output: {source: a}\n");
    h_push(&h, "x y");
    cr_assert_str_eq(h.out[0].line, "y");
    h_free(&h);
}

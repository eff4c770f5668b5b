/*
 * The regex, replace and template stages over hostile lines (stage/stage_regex.c,
 * stage_replace.c, stage_template.c with util/gotemplate*), and util/regex over a fuzzed
 * pattern: the input's first line is compiled as a pattern and matched against the rest, with
 * every group's span checked to lie inside the subject.
 */
#include "fuzz_common.h"
#include "util/regex.h"

static struct fz_pipe pipe_;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    fz_pipe_new(&pipe_,
                "- regex:\n"
                "    expression: '^(?P<ip>\\S+) (?P<user>[^ ]*) \\[(?P<ts>[^\\]]*)\\] "
                "\"(?P<method>\\w+) (?P<path>[^ \"]*)[^\"]*\" (?P<status>\\d+)(?P<rest>.*)$'\n"
                "- regex: {source: path, expression: '(?P<first>/[^/?]*)(?P<query>\\?.*)?'}\n"
                "- replace: {expression: '(\\d{3,})', replace: '{{ .Value | ToUpper }}*'}\n"
                "- template:\n"
                "    source: msg\n"
                "    template: '{{ if eq .status \"200\" }}ok {{ .method | ToLower }}{{ else }}"
                "{{ .Value | Replace \"a\" \"b\" -1 | trunc 20 }}{{ end }} {{ .user | default "
                "\"-\" | quote }} {{ regexReplaceAll \"(a+)\" .rest \"${1}x\" }}'\n"
                "- template: {source: h, template: '{{ Hash .Entry \"salt\" }} {{ .path | "
                "Sha2Hash \"s\" }} {{ printf \"%5.2q|%x|%v\" .ip .rest .status }}'}\n"
                "- labels: {method: , status: , first: }\n"
                "- output: {source: msg}\n");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *h, *r;
    size_t hn, rn;
    fz_split(data, size, &h, &hn, &r, &rn);
    char *pat = fz_strdup(h, hn);
    char err[256];
    struct bt_regex *re = bt_regex_new(pat, 0, err, sizeof(err));
    if (re) {
        char *subj = malloc(rn ? rn : 1);
        if (!subj)
            abort();
        memcpy(subj, r, rn);
        if (bt_regex_match(re, subj, rn, 0) > 0) {
            for (int i = 0; i <= bt_regex_ngroups(re); i++) {
                size_t s, e;
                if (bt_regex_group(re, i, &s, &e) && (s > e || e > rn))
                    abort();
                const char *name = bt_regex_group_name(re, i);
                if (name && bt_regex_group_index(re, name) < 0)
                    abort();
            }
        }
        free(subj);
        bt_regex_free(re);
    }
    free(pat);
    fz_pipe_lines(&pipe_, r, rn);
    return 0;
}

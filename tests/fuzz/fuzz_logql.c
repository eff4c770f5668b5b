/*
 * The LogQL selector and line-filter parser of the match stage (stage/logql.c): the input's
 * first line is parsed as a query and, when it parses, matched against a label set and the
 * rest of the input as a line. Then the match stage with a fixed selector over each line.
 */
#include "fuzz_common.h"
#include "stage/logql.h"

static struct fz_pipe pipe_;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    fz_pipe_new(&pipe_, "- match:\n"
                        "    selector: '{job=\"fuzz\", filename=~\".*\\\\.log\"} |= \"err\" !~ "
                        "`(?i)debug` |~ \"[0-9]+\"'\n"
                        "    stages:\n"
                        "    - regex: {expression: '(?P<code>[0-9]+)'}\n"
                        "    - labels: {code: }\n"
                        "- match: {selector: '{code=\"500\"}', action: drop}\n");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *h, *r;
    size_t hn, rn;
    fz_split(data, size, &h, &hn, &r, &rn);
    char *q = fz_strdup(h, hn);
    char err[256];
    struct bt_logql *l = bt_logql_parse(q, err, sizeof(err));
    if (l) {
        char *line = malloc(rn ? rn : 1);
        if (!line)
            abort();
        memcpy(line, r, rn);
        struct bt_labels lab;
        bt_labels_init(&lab);
        bt_labels_set(&lab, "job", "fuzz");
        bt_labels_setn(&lab, "app", 3, line, rn < 16 ? rn : 16);
        (void)bt_logql_match_labels(l, &lab);
        (void)bt_logql_match_line(l, line, rn);
        bt_labels_free(&lab);
        free(line);
        bt_logql_free(l);
    } else if (!err[0]) {
        abort(); /* an error says what is wrong */
    }
    free(q);
    fz_pipe_lines(&pipe_, r, rn);
    return 0;
}

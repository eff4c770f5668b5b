/*
 * util/refast against RE2: the input's first line is a pattern, the rest the subject. The
 * pattern is compiled twice, with the one-pass matcher in front and with RE2 alone; whenever
 * both compile, the two must agree on the match and on every group's span. Seeds are patterns
 * the matcher takes, so mutations stay near its subset's edges.
 */
#include "fuzz_common.h"
#include "util/regex.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *h, *r;
    size_t hn, rn;
    fz_split(data, size, &h, &hn, &r, &rn);
    char *pat = fz_strdup(h, hn);
    char err[256];
    struct bt_regex *a = bt_regex_new(pat, 0, err, sizeof(err));
    struct bt_regex *b = bt_regex_new(pat, BT_RE_NOFAST, err, sizeof(err));
    if (!a != !b)
        abort();
    if (a) {
        /* the subject without its copy in the input buffer, so reads past it are caught */
        char *subj = malloc(rn ? rn : 1);
        if (!subj)
            abort();
        memcpy(subj, r, rn);
        int ma = bt_regex_match_groups(a, subj, rn), mb = bt_regex_match_groups(b, subj, rn);
        if (ma != mb)
            abort();
        for (int i = 0; ma > 0 && i <= bt_regex_ngroups(a); i++) {
            size_t sa = 0, ea = 0, sb = 0, eb = 0;
            bool ga = bt_regex_group(a, i, &sa, &ea), gb = bt_regex_group(b, i, &sb, &eb);
            if (ga != gb || sa != sb || ea != eb)
                abort();
        }
        if (bt_regex_match(a, subj, rn, 0) != bt_regex_match(b, subj, rn, 0))
            abort();
        free(subj);
    }
    bt_regex_free(a);
    bt_regex_free(b);
    free(pat);
    return 0;
}

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "util/regex.h"

static struct bt_regex *compile(const char *p, int flags)
{
    char err[256];
    struct bt_regex *re = bt_regex_new(p, flags, err, sizeof(err));
    cr_assert_not_null(re, "%s", err);
    return re;
}

Test(regex, non_ascii_text_matches_like_re2)
{
    struct bt_regex *re = compile("^(?P<w>\\S*) (?P<rest>.*)$", 0);
    const char *s = "été hiver";
    cr_assert_eq(bt_regex_match(re, s, strlen(s), 0), 3);
    size_t a, b;
    cr_assert(bt_regex_group(re, 1, &a, &b));
    cr_assert_eq(b - a, strlen("été"));
    cr_assert_str_eq(bt_regex_group_name(re, 2), "rest");
    cr_assert_eq(bt_regex_group_index(re, "w"), 1);
    bt_regex_free(re);
}

Test(regex, invalid_utf8_subject_still_matches)
{
    struct bt_regex *re = compile("b(.)d", 0);
    const char s[] = "a\xff"
                     "bcd";
    cr_assert_eq(bt_regex_match(re, s, sizeof(s) - 1, 0), 2);
    size_t a, b;
    cr_assert(bt_regex_group(re, 1, &a, &b));
    cr_assert_eq(s[a], 'c');
    bt_regex_free(re);
}

Test(regex, anchored_is_whole_subject)
{
    struct bt_regex *re = compile("a|b", BT_RE_ANCHORED);
    cr_assert_eq(bt_regex_match(re, "ab", 2, 0), 0);
    cr_assert_eq(bt_regex_match(re, "b", 1, 0), 1);
    bt_regex_free(re);
}

Test(regex, bad_pattern_names_the_problem)
{
    char err[256];
    cr_assert_null(bt_regex_new("a(b", 0, err, sizeof(err)));
    cr_assert_str_eq(err, "invalid regex a(b: missing ): a(b");
}

/* Go regexp syntax, case by case: whether Go accepts the pattern and, if it does, what it
 * matches (group 1 if the pattern has one, else group 0; NULL: no match). */
struct go_case {
    const char *pattern;
    bool ok;
    const char *subject;
    const char *want;
};

static const struct go_case go_cases[] = {
    /* classes: after \d a `-` is a literal (promtail's pipelines doc example) */
    {"ts=(?P<timestamp>[T\\d-:.Z]*)", true, "ts=2019-12-03T20:02:23.125Z x",
     "2019-12-03T20:02:23.125Z"},
    {"[[:alpha:]]+", true, "12ab3", "ab"},
    {"[^\\s]+", true, "  xy z", "xy"},
    {"[]a]+", true, "x]a]", "]a]"},
    {"[z-a]", false, NULL, NULL},
    /* escapes */
    {"\\x41\\x{263a}", true, "A\u263a", "A\u263a"},
    {"\\141", true, "a", "a"},
    {"\\d+", true, "abc123", "123"},
    {"a\\.b", true, "axb a.b", "a.b"},
    {"\\Q.*+\\E", true, "ab .*+", ".*+"},
    {"\\Q.*", true, "x.*", ".*"},
    /* flags */
    {"(?i)abc", true, "xABC", "ABC"},
    {"(?s)a.b", true, "a\nb", "a\nb"},
    {"a.b", true, "a\nb", NULL},
    {"(?m)^b$", true, "a\nb\nc", "b"},
    {"^b$", true, "a\nb\nc", NULL},
    {"(?U)a+", true, "aaa", "a"},
    {"(?U)a+?", true, "aaa", "aaa"},
    {"(?i:A)b", true, "aB ab", "ab"},
    /* named groups, both forms; not inside a class or after an escape */
    {"(?P<x>a)", true, "ba", "a"},
    {"(?<x>a)", true, "ba", "a"},
    {"[(?<x>]+", true, "-(?<x>-", "(?<x>"},
    {"\\(?<x>", true, "<x>", "<x>"},
    {"(?P<x>a)(?P<x>b)", false, NULL, NULL},
    {"(?P=x)", false, NULL, NULL},
    /* Unicode */
    {"\\pN+", true, "ab12", "12"},
    {"\\p{Greek}+", true, "abc \u03b1\u03b2\u03b3", "\u03b1\u03b2\u03b3"},
    {"^.$", true, "\u00e9", "\u00e9"},
    /* anchors: $ is the end of the text, not before a final newline */
    {"\\Aab", true, "ab", "ab"},
    {"\\Aab", true, "xab", NULL},
    {"ab\\z", true, "xab", "ab"},
    {"ab$", true, "ab\n", NULL},
    {"\\bis\\b", true, "this is", "is"},
    {"\\Z", false, NULL, NULL},
    /* non-greedy */
    {"a.*?b", true, "aXbYb", "aXb"},
    {"a.*b", true, "aXbYb", "aXbYb"},
    /* repetition limits */
    {"a{1000}", true, "a", NULL},
    {"a{1001}", false, NULL, NULL},
    {"(a{500}){3}", false, NULL, NULL},
    {"a**", false, NULL, NULL},
    /* what PCRE accepts and Go refuses */
    {"a(?=b)", false, NULL, NULL},
    {"a(?!b)", false, NULL, NULL},
    {"(?<=a)b", false, NULL, NULL},
    {"(?<!a)b", false, NULL, NULL},
    {"(a)\\1", false, NULL, NULL},
    {"a++", false, NULL, NULL},
    {"(?>a)", false, NULL, NULL},
    {"\\C", false, NULL, NULL},
    {"(?R)", false, NULL, NULL},
    {"a|", true, "b", ""},
};

Test(regex, go_syntax_table)
{
    for (size_t i = 0; i < sizeof(go_cases) / sizeof(go_cases[0]); i++) {
        const struct go_case *c = &go_cases[i];
        char err[256];
        struct bt_regex *re = bt_regex_new(c->pattern, 0, err, sizeof(err));
        if (!c->ok) {
            cr_expect_null(re, "%s: Go refuses it, accepted here", c->pattern);
            if (re)
                bt_regex_free(re);
            else
                cr_expect(strncmp(err, "invalid regex ", 14) == 0, "%s", err);
            continue;
        }
        cr_expect_not_null(re, "%s: Go accepts it: %s", c->pattern, err);
        if (!re)
            continue;
        int m = bt_regex_match(re, c->subject, strlen(c->subject), 0);
        if (!c->want) {
            cr_expect_eq(m, 0, "%s on %s: should not match", c->pattern, c->subject);
        } else {
            cr_expect_gt(m, 0, "%s on %s: should match", c->pattern, c->subject);
            size_t a = 0, b = 0;
            int g = bt_regex_ngroups(re) >= 1 ? 1 : 0;
            if (m > 0 && bt_regex_group(re, g, &a, &b))
                cr_expect(b - a == strlen(c->want) && memcmp(c->subject + a, c->want, b - a) == 0,
                          "%s on %s: got %.*s, want %s", c->pattern, c->subject, (int)(b - a),
                          c->subject + a, c->want);
            else if (m > 0)
                cr_expect_fail("%s: group %d did not take part", c->pattern, g);
        }
        bt_regex_free(re);
    }
}

Test(regex, named_groups_both_forms_have_names)
{
    struct bt_regex *re = compile("(?P<a>x)(y)(?<b>z)", 0);
    cr_assert_eq(bt_regex_ngroups(re), 3);
    cr_assert_str_eq(bt_regex_group_name(re, 1), "a");
    cr_assert_null(bt_regex_group_name(re, 2));
    cr_assert_str_eq(bt_regex_group_name(re, 3), "b");
    cr_assert_eq(bt_regex_group_index(re, "b"), 3);
    bt_regex_free(re);
}

Test(regex, flags_and_start_offset)
{
    struct bt_regex *re = compile("A.B", BT_RE_CASELESS | BT_RE_DOTALL);
    cr_assert_gt(bt_regex_match(re, "a\nb", 3, 0), 0);
    bt_regex_free(re);
    /* the text before start is context: ^ does not match there, \b sees the previous byte */
    re = compile("^b", 0);
    cr_assert_eq(bt_regex_match(re, "ab", 2, 1), 0);
    bt_regex_free(re);
    re = compile("\\bb", 0);
    cr_assert_eq(bt_regex_match(re, "ab b", 4, 1), 1);
    size_t a, b;
    cr_assert(bt_regex_group(re, 0, &a, &b));
    cr_assert_eq(a, 3);
    bt_regex_free(re);
}

Test(regex, unmatched_group_is_absent)
{
    struct bt_regex *re = compile("(a)|(b)", 0);
    cr_assert_gt(bt_regex_match(re, "b", 1, 0), 0);
    size_t a, b;
    cr_assert_not(bt_regex_group(re, 1, &a, &b));
    cr_assert(bt_regex_group(re, 2, &a, &b));
    cr_assert_eq(a, 0);
    bt_regex_free(re);
}

Test(regex, too_large_is_refused)
{
    char err[256];
    /* under Go's repetition limits, but a program far beyond the memory budget */
    cr_assert_null(
        bt_regex_new("(?:\\pL{1000}){1}(?:\\pN{1000})(?:\\pL{1000})", 0, err, sizeof(err)));
    cr_assert(strstr(err, "too large") != NULL, "%s", err);
}

/* Patterns that make a backtracking engine take exponential time on a line that fails at its
 * end: a linear engine finishes them. 64 KiB lines; bench/regex_bench.c times the same. */
Test(regex, pathological_patterns_complete, .timeout = 60)
{
    static const char *pats[] = {"(.*a){12}$", "(a|aa)+$", "(a+)+$", "(?:a*)*b\\z", "(\\w+\\s?)+$"};
    size_t n = 64 * 1024;
    char *line = malloc(n);
    cr_assert_not_null(line);
    memset(line, 'a', n - 1);
    line[n - 1] = '!';
    for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
        struct bt_regex *re = compile(pats[i], 0);
        cr_expect_eq(bt_regex_match(re, line, n, 0), 0, "%s", pats[i]);
        size_t a, b;
        cr_expect_not(bt_regex_group(re, 0, &a, &b));
        bt_regex_free(re);
    }
    line[n - 1] = 'a'; /* and when it matches, the groups come out of a linear search too */
    struct bt_regex *re = compile("(.*a){12}$", 0);
    cr_expect_gt(bt_regex_match(re, line, n, 0), 0);
    size_t a, b;
    cr_expect(bt_regex_group(re, 1, &a, &b));
    cr_expect_eq(b, n);
    bt_regex_free(re);
    free(line);
}

static bool keep_b(const void *ctx, const char *name, size_t len)
{
    return len == 1 && name[0] == 'b';
}

Test(regex, keep_leaves_only_the_kept_named_groups_capturing)
{
    /* unnamed groups and unkept names become (?:; parentheses in classes, escapes and \Q..\E
     * are not groups and stay as they are */
    char err[256];
    struct bt_regex *re = bt_regex_new_keep("(?P<a>x)(y)(?<b>z)[(]\\(\\Q(\\E(?:w)(?i)(?P<c>q)", 0,
                                            keep_b, NULL, err, sizeof(err));
    cr_assert_not_null(re, "%s", err);
    cr_assert_eq(bt_regex_ngroups(re), 1);
    cr_assert_str_eq(bt_regex_group_name(re, 1), "b");
    const char *s = "--xyz(((wQ";
    cr_assert_eq(bt_regex_match_groups(re, s, strlen(s)), 2);
    size_t a, b;
    cr_assert(bt_regex_group(re, 1, &a, &b));
    cr_assert_eq(a, 4);
    cr_assert_eq(b, 5);
    cr_assert(bt_regex_group(re, 0, &a, &b));
    cr_assert_eq(a, 2);
    cr_assert_eq(b, 10);
    bt_regex_free(re);
    /* the full pattern's rules still apply: a duplicate name is refused even if not kept */
    cr_assert_null(bt_regex_new_keep("(?P<a>x)(?P<a>y)", 0, keep_b, NULL, err, sizeof(err)));
    cr_assert(strstr(err, "duplicate capture group name: a") != NULL, "%s", err);
}

Test(regex, match_groups_finds_groups_in_one_search)
{
    struct bt_regex *re = compile("^(?P<k>\\w+)=(?P<v>\\d+)?", 0);
    cr_assert_eq(bt_regex_match_groups(re, "ab=12 x", 7), 3);
    size_t a, b;
    cr_assert(bt_regex_group(re, 2, &a, &b));
    cr_assert_eq(a, 3);
    cr_assert_eq(b, 5);
    cr_assert_eq(bt_regex_match_groups(re, "ab=", 3), 3);
    cr_assert_not(bt_regex_group(re, 2, &a, &b), "the group did not take part");
    cr_assert_eq(bt_regex_match_groups(re, "=1", 2), 0);
    cr_assert_not(bt_regex_group(re, 0, &a, &b));
    bt_regex_free(re);
}

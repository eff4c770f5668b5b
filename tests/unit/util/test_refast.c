/*
 * util/refast: which patterns the one-pass matcher takes, and that whatever it decides is what
 * RE2 decides (match or not, and every group's span), over matching lines and their mutations.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/refast.h"
#include "util/regex.h"

static bool taken(const char *p, int ngroups)
{
    struct bt_refast *f = bt_refast_new(p, ngroups);
    bt_refast_free(f);
    return f != NULL;
}

Test(refast, takes_the_usual_log_patterns)
{
    cr_assert(
        taken("^(?P<time>\\S+) (?:\\S+) (?P<app>[^\\[:]+)(?:\\[(?:\\d+)\\])?: (?P<msg>.*)$", 3));
    cr_assert(
        taken("^(?P<ip>\\S+) (?P<identd>\\S+) (?P<user>\\S+) \\[(?P<ts>[\\w:/]+\\s[+\\-]"
              "\\d{4})\\] \"(?P<method>[A-Z]+) (?P<path>[^ \"]*) (?P<proto>[^\"]*)\" "
              "(?P<status>\\d{3}) (?P<size>\\d+)(?: \"(?P<ref>[^\"]*)\" \"(?P<ua>[^\"]*)\")?$",
              11));
    cr_assert(taken("^level=(\\w+)(?: msg=(.*))?", 2));
    /* the README's example (its counter-example is among the declined) */
    cr_assert(taken("^(?P<ts>\\S+) (?P<level>\\w+) (?P<msg>.*)$", 3));
    cr_assert(taken("^\\S+\\s+\\S+", 0));
    cr_assert(taken("^[^\\n]*\\n(.*)$", 1));
    cr_assert(taken("^(a{2,3})(b?)", 2));
    cr_assert(taken("^$", 0));
    cr_assert(taken("^", 0));
    cr_assert(taken("^()(?:)a", 1));
    cr_assert(taken("^[]a-]+;", 0));
}

Test(refast, declines_what_needs_choices_or_other_syntax)
{
    const char *no[] = {
        "^(.*) (.*)$", /* . and ' ' overlap: the split needs backtracking */
        "^(?P<a>.*) (?P<b>.*)",
        "^(a{0}(a{00}))", /* {00} is literal text in RE2 (fuzz_refast found it) */
        "^a{01,2}",
        "^a{1,02}",
        "^(a{0})",
        "(a)",               /* not anchored */
        "^a|b",              /* alternation */
        "^a*?b",             /* lazy */
        "^(?i)a",            /* flags */
        "^(a)+",             /* repeated group */
        "^(?:a*)?b",         /* optional group that can match nothing */
        "^a*a",              /* repeat followed by what it matches */
        "^(?:ab)?a",         /* optional group and what follows start alike */
        "^\\bfoo",           /* word boundary */
        "^[[:alpha:]]+",     /* named class */
        "^é",                /* non-ASCII literal */
        "^\\pL+",            /* Unicode class */
        "^a$b",              /* $ inside */
        "^a{2}{3}",          /* stacked repetition */
        "^\\[\\w+\\]\\s+.+", /* \s+ then . */
        "^(?:x(\\d+))?(\\D.*)?$",
    };
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        cr_expect(!taken(no[i], 2) && !taken(no[i], 1) && !taken(no[i], 0), "took %s", no[i]);
    cr_expect(!taken("^(a)(b)", 1), "group count must agree with RE2's");
}

/* ---- differential: util/regex with the matcher against RE2 alone ---------------------- */

struct pat {
    const char *re;
    const char *lines[4];
};

static const struct pat pats[] = {
    {"^(?P<time>\\S+) (?P<host>\\S+) (?P<app>[^\\[:]+)(?:\\[(?P<pid>\\d+)\\])?: (?P<msg>.*)$",
     {"2026-12-03T10:00:00.000001+00:00 web-1 nginx[123]: GET / 200",
      "2026-12-03T10:00:00Z db kernel: oom-killer invoked", "t h a b c: x", "t h app[]: m"}},
    {"^(?P<ip>\\S+) (?P<identd>\\S+) (?P<user>\\S+) \\[(?P<ts>[\\w:/]+\\s[+\\-]\\d{4})\\] "
     "\"(?P<method>[A-Z]+) (?P<path>[^ \"]*) (?P<proto>[^\"]*)\" (?P<status>\\d{3}) "
     "(?P<size>\\d+)(?: \"(?P<ref>[^\"]*)\" \"(?P<ua>[^\"]*)\")?$",
     {"10.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /a.gif HTTP/1.0\" 200 2326",
      "10.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \"POST /x HTTP/1.1\" 404 0 \"-\" \"curl/8\"",
      "::1 a b [x +1234] \"A  \" 999 1 \"\" \"\"", NULL}},
    {"^level=(\\w+)(?: msg=(.*))?", {"level=info msg=hello", "level=warn", "level= msg=", NULL}},
    {"^(\\S+)\\s+(\\S+)", {"a  b", "été\tdéjà vu", "a\n\nb", NULL}},
    {"^([^\\n]*)\\n(.*)$", {"first\nsecond", "\n", "a\nb\nc", NULL}},
    {"^(a{2,3})(b?)(c*)", {"aab", "aaabccc", "aaaab", NULL}},
    {"^(?:(\\d+)-)?(\\D*)$", {"12-abc", "abc", "-x", "12-"}},
    {"^(?P<k>[a-z]+)(?P<v>\\d{2,4})?;", {"ab12;", "ab;", "ab12345;", NULL}},
    {"^\\[(?P<lvl>[A-Z]{1,5})\\] (?P<msg>.+)", {"[INFO] started", "[] x", "[ERROR] ", NULL}},
    {"^(\\w*)(\\W*)$", {"ab_1!!", "", "é", "a\xe2\x82\xac"}},
    {"^(?:(a)(?:(b)c)?d)?(e*)$", {"abcdee", "ade", "ee", "abde"}},
    /* groups set inside an optional group that then fails take no part in the match */
    {"^x(?:(a)(b)c)?", {"xabc", "xab", "xa", NULL}},
    {"^(.*)", {"anything", "", "x\ny", NULL}},
    {"^$", {"", "x", NULL, NULL}},
};

/* Pieces a mutation inserts: the patterns' own punctuation, space classes, valid UTF-8 of each
 * length, and byte sequences RE2 reads as invalid (a lone continuation, an overlong form, a
 * surrogate, a truncated sequence). */
static const char *pieces[] = {
    " ",        "\t",   "\n",     "\r",   "a", "Z",    "_",        "0",
    "9",        "[",    "]",      ":",    "-", "+",    "\"",       "/",
    "=",        "x",    "é",      "€",    "😀", "\x80", "\xc0\xaf", "\xed\xa0\x80",
    "\xe2\x82", "\xff", "level=", "msg=",
};

static unsigned rnd(unsigned *st)
{
    *st = *st * 1103515245u + 12345u;
    return (*st >> 16) & 0x7fff;
}

static void mutate(char *buf, size_t *len, size_t cap, unsigned *st)
{
    int ops = 1 + (int)(rnd(st) % 3);
    for (int k = 0; k < ops; k++) {
        size_t at = *len ? rnd(st) % (*len + 1) : 0;
        unsigned op = rnd(st) % 3;
        if (op == 0 && at < *len) { /* delete 1-3 bytes */
            size_t d = 1 + rnd(st) % 3;
            if (d > *len - at)
                d = *len - at;
            memmove(buf + at, buf + at + d, *len - at - d);
            *len -= d;
        } else {
            const char *p = pieces[rnd(st) % (sizeof(pieces) / sizeof(pieces[0]))];
            size_t pl = strlen(p);
            if (*len + pl > cap)
                continue;
            if (op == 1 && at < *len) { /* replace one byte */
                memmove(buf + at + pl, buf + at + 1, *len - at - 1);
                *len = *len - 1 + pl;
            } else {
                memmove(buf + at + pl, buf + at, *len - at);
                *len += pl;
            }
            memcpy(buf + at, p, pl);
        }
    }
}

static void compare(struct bt_regex *a, struct bt_regex *b, const char *s, size_t n,
                    const char *pattern, unsigned *fast_matches)
{
    int ma = bt_regex_match_groups(a, s, n), mb = bt_regex_match_groups(b, s, n);
    cr_assert_eq(ma, mb, "pattern %s subject [%.*s]: %d vs RE2 %d", pattern, (int)n, s, ma, mb);
    if (ma > 0)
        (*fast_matches)++;
    for (int i = 0; ma > 0 && i <= bt_regex_ngroups(a); i++) {
        size_t sa = 9, ea = 9, sb = 9, eb = 9;
        bool ga = bt_regex_group(a, i, &sa, &ea), gb = bt_regex_group(b, i, &sb, &eb);
        cr_assert(ga == gb && sa == sb && ea == eb,
                  "pattern %s subject [%.*s] group %d: %d [%zu,%zu) vs RE2 %d [%zu,%zu)", pattern,
                  (int)n, s, i, ga, sa, ea, gb, sb, eb);
    }
    /* bt_regex_match takes the same path for a search from 0 */
    cr_assert_eq(bt_regex_match(a, s, n, 0), bt_regex_match(b, s, n, 0));
}

Test(refast, decides_as_re2_does, .timeout = 120)
{
    unsigned st = 20261203, total_matches = 0;
    for (size_t p = 0; p < sizeof(pats) / sizeof(pats[0]); p++) {
        char err[256];
        struct bt_regex *a = bt_regex_new(pats[p].re, 0, err, sizeof(err));
        struct bt_regex *b = bt_regex_new(pats[p].re, BT_RE_NOFAST, err, sizeof(err));
        cr_assert(a && b, "%s", err);
        cr_assert(taken(pats[p].re, bt_regex_ngroups(a)), "the matcher declined %s", pats[p].re);
        unsigned matches = 0;
        for (int l = 0; l < 4 && pats[p].lines[l]; l++) {
            const char *line = pats[p].lines[l];
            compare(a, b, line, strlen(line), pats[p].re, &matches);
            for (int k = 0; k < 3000; k++) {
                char buf[512];
                size_t n = strlen(line);
                memcpy(buf, line, n);
                mutate(buf, &n, sizeof(buf), &st);
                compare(a, b, buf, n, pats[p].re, &matches);
            }
        }
        cr_expect_gt(matches, 0, "no subject matched %s", pats[p].re);
        total_matches += matches;
        bt_regex_free(a);
        bt_regex_free(b);
    }
    cr_log_info("refast: %u matching subjects compared", total_matches);
}

Test(refast, invalid_utf8_is_left_to_re2)
{
    struct bt_refast *f = bt_refast_new("^(\\S+)", 1);
    cr_assert_not_null(f);
    ssize_t caps[4];
    cr_assert_eq(bt_refast_match(f, "ab\xff", 3, caps), -1);
    cr_assert_eq(bt_refast_match(f, "a\xc3\xa9 b", 5, caps), 1);
    cr_assert_eq(caps[3], 3);
    cr_assert_eq(bt_refast_match(f, " x", 2, caps), 0);
    bt_refast_free(f);
    /* a class without non-ASCII members stops at any high byte, as RE2's does */
    f = bt_refast_new("^([a-z]*)", 1);
    cr_assert_eq(bt_refast_match(f, "ab\xff", 3, caps), 1);
    cr_assert_eq(caps[3], 2);
    bt_refast_free(f);
}

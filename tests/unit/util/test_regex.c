#include <criterion/criterion.h>
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

Test(regex, bad_pattern_names_offset)
{
    char err[256];
    cr_assert_null(bt_regex_new("a(b", 0, err, sizeof(err)));
    cr_assert(strstr(err, "offset") != NULL, "%s", err);
}

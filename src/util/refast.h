/*
 * refast: a one-pass matcher for the deterministic regexes that parse log lines, used by
 * util/regex.cc in front of RE2.
 *
 * A pattern is taken when it is written in RE2 syntax (as util/regex.cc hands it on), starts
 * with ^, and is a sequence of ASCII literals, character classes (., \d \s \w and their
 * negations, [...] of ASCII members) with greedy ?, *, + or {n,m}, and groups (capturing,
 * named or not) that are either plain or made optional with ?; $ may end it. No alternation,
 * no lazy or nested repetition, no flags, no other escapes. And every choice must be decided by
 * the next character: what a repeated class matches and what may come after it share no
 * character, and so do an optional group's first characters and what may follow the group.
 * Then greedy matching never has to give back, and a single pass finds the match RE2 finds
 * (leftmost-first) with the same groups, at a table lookup per byte.
 *
 * Subjects are read as RE2 reads them in UTF-8 mode: a class that accepts non-ASCII characters
 * accepts a well-formed UTF-8 sequence as one character. A byte sequence that is not strict
 * UTF-8 where such a class looks at it leaves the decision to RE2 (-1).
 */
#ifndef BT_UTIL_REFAST_H
#define BT_UTIL_REFAST_H

#include <stddef.h>
#include <sys/types.h>

struct bt_refast;

/* Compiles pattern (RE2 syntax, case-sensitive, `.` not matching newline); NULL when it is not
 * in the subset above or does not have ngroups capturing groups. */
struct bt_refast *bt_refast_new(const char *pattern, int ngroups);
void bt_refast_free(struct bt_refast *f);
/* Matches s[0, len). 1: a match, with caps[2i], caps[2i+1] the span of group i (0 the whole
 * match; -1, -1 for a group that took no part); 0: no match; -1: undecided, ask RE2. caps has
 * 2 * (ngroups + 1) entries. */
int bt_refast_match(const struct bt_refast *f, const char *s, size_t len, ssize_t *caps);

#endif

/*
 * regex: Go regexp syntax and semantics (RE2) for every regex of a promtail config: stages,
 * LogQL filters, relabeling, templates.
 *
 * The engine is RE2 (util/regex.cc): matching takes time linear in the subject, so no line
 * makes a stage backtrack. Syntax is Go's: (?P<name>re) and (?<name>re), (?i) (?s) (?m) (?U),
 * \Q...\E, \pN, repetition counts up to 1000; lookaround, backreferences, possessive and
 * atomic groups are refused, as Go refuses them. `^` and `$` are the subject's ends unless (?m).
 * Subjects are read as UTF-8; an invalid byte is matched by nothing (Go reads it as U+FFFD),
 * so `.` and classes do not match across it. A compiled regex keeps the state of its last match,
 * so one struct bt_regex serves one thread (the loop thread) without allocation per match.
 * A pattern in util/refast's deterministic subset (the usual anchored field-splitting regex) is
 * matched by that one-pass matcher instead, with the same result, several times faster.
 */
#ifndef BT_UTIL_REGEX_H
#define BT_UTIL_REGEX_H

#include <stdbool.h>
#include <stddef.h>

struct bt_regex;

enum {
    BT_RE_ANCHORED = 1 << 0, /* whole-subject match, as Prometheus relabeling: ^(?:re)$ */
    BT_RE_DOTALL = 1 << 1,   /* . matches newline */
    BT_RE_CASELESS = 1 << 2,
    BT_RE_NOFAST = 1 << 3, /* RE2 alone, without util/refast in front (tests compare the two) */
};

/* Compiles pattern. NULL on error, with "invalid regex PATTERN: why" in err (the why names the
 * offending part as RE2 reports it; a pattern over RE2's memory budget is an error too). */
struct bt_regex *bt_regex_new(const char *pattern, int flags, char *err, size_t errlen);
/* Keeps named group name[0, len) as a capturing group (true) or makes it non-capturing. */
typedef bool (*bt_regex_keep_fn)(const void *ctx, const char *name, size_t len);
/* Same as bt_regex_new, but only the named groups keep() accepts stay capturing: the others and
 * every unnamed group become non-capturing, so a match tracks fewer submatches (RE2's fastest
 * submatch engine takes at most 4 groups). Group numbers count the kept groups only. */
struct bt_regex *bt_regex_new_keep(const char *pattern, int flags, bt_regex_keep_fn keep,
                                   const void *ctx, char *err, size_t errlen);
void bt_regex_free(struct bt_regex *re);
/* Searches subject s[start, len) (s[0, start) is context for ^ and \b); returns ngroups + 1 on
 * a match, 0 for no match. Never fails: there is no backtracking limit to hit. s and the call's
 * bounds are remembered for bt_regex_group until the next match. */
int bt_regex_match(struct bt_regex *re, const char *s, size_t len, size_t start);
/* Searches all of s[0, len) and finds the groups in the same search; returns as bt_regex_match,
 * and bt_regex_group then costs nothing. For callers that read the groups of every match. */
int bt_regex_match_groups(struct bt_regex *re, const char *s, size_t len);
/* After a match: start/end offsets of group i; returns false if the group did not take part.
 * The first call after a match finds the submatches (a second search, over s as passed). */
bool bt_regex_group(const struct bt_regex *re, int i, size_t *start, size_t *end);
/* Number of capturing groups. */
int bt_regex_ngroups(const struct bt_regex *re);
/* Name of group i or NULL (borrowed). */
const char *bt_regex_group_name(const struct bt_regex *re, int i);
/* Index of the named group, or -1. */
int bt_regex_group_index(const struct bt_regex *re, const char *name);

#endif

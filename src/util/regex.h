/*
 * regex: a small wrapper over PCRE2 for stages and relabeling.
 *
 * promtail's expressions are RE2 syntax; PCRE2 accepts them for practical purposes (named
 * groups as (?P<name>...) included). A compiled regex is immutable and owns its match data,
 * so one struct bt_regex serves one thread (the loop thread) without allocation per match.
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
};

/* Compiles pattern. NULL on error, with "message at offset N" in err. */
struct bt_regex *bt_regex_new(const char *pattern, int flags, char *err, size_t errlen);
void bt_regex_free(struct bt_regex *re);
/* Matches subject; returns the number of capture pairs set (>= 1) on a match, 0 for no match,
 * or -errno on a match error (e.g. -E2BIG when PCRE2 hits its match limit). */
int bt_regex_match(struct bt_regex *re, const char *s, size_t len, size_t start);
/* After a match: start/end offsets of group i; returns false if the group did not take part. */
bool bt_regex_group(const struct bt_regex *re, int i, size_t *start, size_t *end);
/* Number of capturing groups. */
int bt_regex_ngroups(const struct bt_regex *re);
/* Name of group i or NULL (borrowed). */
const char *bt_regex_group_name(const struct bt_regex *re, int i);
/* Index of the named group, or -1. */
int bt_regex_group_index(const struct bt_regex *re, const char *name);

#endif

/*
 * gotemplate: the subset of Go's text/template that promtail's template and replace stages use.
 *
 * A template is compiled once into a tree (bt_gotmpl_new) and executed many times
 * (bt_gotmpl_exec) against a data map that the caller exposes through a lookup callback: `.key`
 * and `$.key` ask the callback for "key". Values are strings; number, bool and nil literals
 * exist inside templates. Supported syntax: text, {{ pipeline }}, {{- -}} trimming, comments,
 * `|` pipelines, parenthesised pipelines, string/raw/char/number/bool/nil literals, variables
 * ($x := ..., $x = ..., $), if / else if / else, with / else with / else, end. Not supported
 * (an error at compile time): range, define, template, block, break, continue.
 *
 * Functions: Go's and, or, not, len, eq, ne, lt, le, gt, ge, print, printf, println; promtail's
 * ToLower, ToUpper, Replace, Trim, TrimLeft, TrimRight, TrimPrefix, TrimSuffix, TrimSpace,
 * Hash (SHA3-256 hex of salt+input), Sha2Hash (SHA-256 hex), regexReplaceAll,
 * regexReplaceAllLiteral; and the sprig functions default, empty, coalesce, ternary, toString,
 * contains, hasPrefix, hasSuffix, trim, trimAll, trimPrefix, trimSuffix, upper, lower, replace,
 * repeat, substr, trunc, nospace, quote, squote, cat, add, add1, sub, mul, div, mod, atoi, int,
 * int64, regexMatch, regexFind, sha256sum. Any other function name is a compile error naming it.
 * Regular expressions given as string literals are compiled with the template, so a bad one is
 * a compile error too.
 *
 * Missing keys print as "<no value>" and make string-typed function arguments an execution
 * error, as in Go. Case mapping covers ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic;
 * invalid UTF-8 becomes U+FFFD where Go's rune-based functions would do so.
 *
 * Execution writes into a caller-owned output buffer and keeps intermediate strings in a
 * scratch arena owned by the template and reused by every run, so steady-state execution does
 * not allocate. A template is therefore used by one thread at a time.
 */
#ifndef BT_UTIL_GOTEMPLATE_H
#define BT_UTIL_GOTEMPLATE_H

#include <stddef.h>

struct bt_buf;
struct bt_gotmpl;

/* Intermediate strings of one execution may use at most this many bytes. */
#define BT_GOTMPL_SCRATCH_MAX (4u << 20)

/* Looks up key name (nlen bytes, not NUL-terminated). Returns 1 with *val and *vlen set (borrowed
 * until bt_gotmpl_exec returns) or 0 when the key is absent. */
typedef int (*bt_gotmpl_lookup_fn)(void *ctx, const char *name, size_t nlen, const char **val,
                                   size_t *vlen);

/* Compiles text. NULL with a message ("line N: ...") in err on a syntax error or an unknown or
 * unsupported function. */
struct bt_gotmpl *bt_gotmpl_new(const char *text, char *err, size_t errlen);
void bt_gotmpl_free(struct bt_gotmpl *t);
/* Runs the template, appending to out. 0, -EINVAL on an execution error (message in err; out
 * then holds partial output), -E2BIG when out or the scratch arena would pass its cap, -ENOMEM. */
int bt_gotmpl_exec(struct bt_gotmpl *t, bt_gotmpl_lookup_fn lookup, void *ctx, struct bt_buf *out,
                   char *err, size_t errlen);

#endif

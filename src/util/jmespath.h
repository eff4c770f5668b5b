/*
 * jmespath: the subset of JMESPath that promtail's json stage is used with, evaluated straight
 * on JSON text without building a tree (no allocation per document).
 *
 * Supported: identifiers (a.b.c), quoted keys ("a.b"."c-d", with JSON escapes), array indexes
 * including negative ones (a[0], a[-1], [2]), and chains of those (a.b[0].c). Not supported,
 * and rejected when compiled with a message saying so: wildcards (*, [*]), flatten ([]),
 * slices ([1:2]), filters ([?...]), functions (length(...)), pipes (|), multiselect lists and
 * hashes ([a,b], {a:b}), literals (`...`, '...'), @, and the or/and/not operators.
 * A path that does not resolve (missing key, wrong type, index out of range) yields null, as
 * JMESPath does. For duplicate keys the last one wins, as with Go's encoding/json.
 *
 * Also here: a strict JSON validator/skipper, string unescaping (invalid surrogates become
 * U+FFFD like Go), and Go-compatible JSON string quoting.
 */
#ifndef BT_UTIL_JMESPATH_H
#define BT_UTIL_JMESPATH_H

#include <stdbool.h>
#include <stddef.h>

struct bt_buf;
struct bt_jpath;

/* Compiles expr. NULL on error with a message in err (ENOMEM or EINVAL in errno). */
struct bt_jpath *bt_jpath_new(const char *expr, char *err, size_t errlen);
void bt_jpath_free(struct bt_jpath *p);
/* Evaluates p on the JSON text doc (which must be valid, see bt_json_valid). Returns 1 and the
 * raw value's span [*v, *v + *vlen) when found, 0 for null/not found. */
int bt_jpath_eval(const struct bt_jpath *p, const char *doc, size_t n, const char **v,
                  size_t *vlen);

/* Evaluates n paths on doc, which must be a JSON object, in one pass over its members that
 * also validates the whole document. found[i] is set to 1 with the span in v[i]/vlen[i], or 0.
 * 0, or -EINVAL when doc is not one valid JSON object. */
int bt_jpath_eval_object(struct bt_jpath *const *p, size_t n, const char *doc, size_t len,
                         const char **v, size_t *vlen, int *found);

/* True if doc is one valid JSON value (RFC 8259; nesting capped at 512). */
bool bt_json_valid(const char *doc, size_t n);
/* Span of the top-level value with surrounding whitespace removed. */
void bt_json_trim(const char **doc, size_t *n);
/* Appends the decoded content of a JSON string token (quotes included in tok) to out.
 * 0 or -EINVAL/-ENOMEM/-E2BIG. */
int bt_json_unescape(const char *tok, size_t n, struct bt_buf *out);
/* Appends s as a JSON string the way Go's encoding/json writes it (<, >, & and U+2028/9
 * escaped, invalid UTF-8 as \ufffd). 0 or -ENOMEM/-E2BIG. */
int bt_json_quote(struct bt_buf *out, const char *s, size_t n);

#endif

/*
 * logfmt: a tokenizer for logfmt lines (key=value key2="quoted value" flag), following the
 * rules of go-logfmt, which promtail's logfmt stage uses: keys are runs of bytes above space
 * other than '=' and '"'; a key without '=' has an empty value; quoted values use JSON escapes;
 * a '"' inside a key or a '=' or '"' inside a bare value is malformed. Tokens point into the
 * input; nothing is allocated.
 */
#ifndef BT_UTIL_LOGFMT_H
#define BT_UTIL_LOGFMT_H

#include <stdbool.h>
#include <stddef.h>

struct bt_buf;

struct bt_logfmt {
    const char *s;
    size_t n, pos;
};

struct bt_logfmt_kv {
    const char *key;
    size_t klen;
    const char *val; /* raw token: with the quotes when quoted */
    size_t vlen;
    bool quoted;
};

void bt_logfmt_init(struct bt_logfmt *d, const char *s, size_t n);
/* Next pair: 1 with kv filled, 0 at the end, -EINVAL when the rest of the input is malformed. */
int bt_logfmt_next(struct bt_logfmt *d, struct bt_logfmt_kv *kv);
/* Appends the value of kv (unquoted and unescaped when quoted) to out. 0 or -errno. */
int bt_logfmt_value(const struct bt_logfmt_kv *kv, struct bt_buf *out);

#endif

/* Table-driven decoding of config blocks; see config_decode.h. */
#include "config/config_decode.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/labels.h"

int bt_cfg_fail(struct bt_cfg_ctx *c, const struct bt_node *at, const char *fmt, ...)
{
    char pos[300], where[320], msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Problems found in flags rather than in the file have no position. */
    if (at)
        snprintf(where, sizeof(where), "%s: ", bt_node_where(at, pos, sizeof(pos)));
    else
        where[0] = '\0';
    if (c->plen)
        snprintf(c->err, c->errlen, "%s%s: %s", where, c->path, msg);
    else
        snprintf(c->err, c->errlen, "%s%s", where, msg);
    return -EINVAL;
}

int bt_cfg_oom(struct bt_cfg_ctx *c, const struct bt_node *at)
{
    bt_cfg_fail(c, at, "out of memory");
    return -ENOMEM;
}

/* Accounts for n bytes snprintf wanted to append; a path too long for the buffer is cut. */
static void path_grew(struct bt_cfg_ctx *c, int n)
{
    size_t room = sizeof(c->path) - c->plen;
    if (n > 0)
        c->plen = (size_t)n < room ? c->plen + (size_t)n : sizeof(c->path) - 1;
}

size_t bt_cfg_push_key(struct bt_cfg_ctx *c, const char *key)
{
    size_t mark = c->plen;
    path_grew(
        c, snprintf(c->path + c->plen, sizeof(c->path) - c->plen, "%s%s", c->plen ? "." : "", key));
    return mark;
}

size_t bt_cfg_push_idx(struct bt_cfg_ctx *c, size_t i)
{
    size_t mark = c->plen;
    path_grew(c, snprintf(c->path + c->plen, sizeof(c->path) - c->plen, "[%zu]", i));
    return mark;
}

void bt_cfg_pop(struct bt_cfg_ctx *c, size_t mark)
{
    c->plen = mark;
    c->path[mark] = '\0';
}

const char *bt_cfg_kind_name(const struct bt_node *n)
{
    if (bt_node_is_null(n))
        return "null";
    switch (n->type) {
    case BT_NODE_MAP: return "a map";
    case BT_NODE_SEQ: return "a list";
    default: return "a string";
    }
}

int bt_cfg_expect_seq(struct bt_cfg_ctx *c, const struct bt_node *v)
{
    if (bt_node_is_null(v) || v->type == BT_NODE_SEQ)
        return 0;
    return bt_cfg_fail(c, v, "expected a list, got %s", bt_cfg_kind_name(v));
}

static int expect_scalar(struct bt_cfg_ctx *c, const struct bt_node *v, const char *what)
{
    if (v->type == BT_NODE_SCALAR)
        return 0;
    return bt_cfg_fail(c, v, "expected %s, got %s", what, bt_cfg_kind_name(v));
}

int bt_cfg_str(struct bt_cfg_ctx *c, const struct bt_node *v, char **dst)
{
    if (bt_node_is_null(v))
        return 0;
    int rc = expect_scalar(c, v, "a string");
    if (rc)
        return rc;
    char *s = strdup(v->str);
    if (!s)
        return bt_cfg_oom(c, v);
    free(*dst);
    *dst = s;
    return 0;
}

static int get_int(struct bt_cfg_ctx *c, const struct bt_node *v, const struct bt_cfg_field *f,
                   long long *out)
{
    int rc = expect_scalar(c, v, "an integer");
    if (rc)
        return rc;
    if (bt_node_int(v, out))
        return bt_cfg_fail(c, v, "expected an integer, got \"%s\"", v->str);
    if (*out < f->lo || *out > f->hi)
        return bt_cfg_fail(c, v, "%lld is out of range [%lld, %lld]", *out, f->lo, f->hi);
    return 0;
}

static int get_duration(struct bt_cfg_ctx *c, const struct bt_node *v, long long *out)
{
    int rc = expect_scalar(c, v, "a duration");
    if (rc)
        return rc;
    if (bt_node_duration(v, out))
        return bt_cfg_fail(c, v, "invalid duration \"%s\" (use e.g. 500ms, 10s, 5m, 1h)", v->str);
    if (*out < 0)
        return bt_cfg_fail(c, v, "duration \"%s\" must not be negative", v->str);
    return 0;
}

static int decode_scalar(struct bt_cfg_ctx *c, const struct bt_cfg_field *f,
                         const struct bt_node *v, char *at)
{
    long long ll;
    int rc;
    switch (f->kind) {
    case BT_CFG_STR: return bt_cfg_str(c, v, (char **)at);
    case BT_CFG_BOOL:
        if ((rc = expect_scalar(c, v, "true or false")))
            return rc;
        if (bt_node_bool(v, (bool *)at))
            return bt_cfg_fail(c, v, "expected true or false, got \"%s\"", v->str);
        return 0;
    case BT_CFG_INT:
    case BT_CFG_ACCEPT_INT:
        if ((rc = get_int(c, v, f, &ll)))
            return rc;
        if (f->kind == BT_CFG_INT)
            *(int *)at = (int)ll;
        return 0;
    case BT_CFG_SIZE:
        if ((rc = get_int(c, v, f, &ll)))
            return rc;
        *(size_t *)at = (size_t)ll;
        return 0;
    case BT_CFG_DURATION:
    case BT_CFG_ACCEPT_DUR:
        if ((rc = get_duration(c, v, &ll)))
            return rc;
        if (f->kind == BT_CFG_DURATION)
            *(int64_t *)at = ll;
        return 0;
    case BT_CFG_BYTES: {
        unsigned long long u;
        if ((rc = expect_scalar(c, v, "a byte size")))
            return rc;
        if (bt_node_bytes(v, &u))
            return bt_cfg_fail(c, v, "invalid byte size \"%s\" (use e.g. 1048576, 256KB, 1MiB)",
                               v->str);
        *(uint64_t *)at = u;
        return 0;
    }
    case BT_CFG_DOUBLE: {
        double d;
        if ((rc = expect_scalar(c, v, "a number")))
            return rc;
        if (bt_node_double(v, &d) || d < 0)
            return bt_cfg_fail(c, v, "expected a non-negative number, got \"%s\"", v->str);
        *(double *)at = d;
        return 0;
    }
    default: return bt_cfg_fail(c, v, "internal error: bad field kind");
    }
}

static int decode_field(struct bt_cfg_ctx *c, const struct bt_cfg_field *f,
                        const struct bt_node *key, const struct bt_node *v, char *obj)
{
    char *at = obj + f->off;
    switch (f->kind) {
    case BT_CFG_UNSUPPORTED:
        return bt_cfg_fail(c, key, "not supported by bpftail%s%s", f->note ? ": " : "",
                           f->note ? f->note : "");
    case BT_CFG_ACCEPT: return 0;
    case BT_CFG_SEQ_NODE:
    case BT_CFG_MAP_NODE: {
        bool seq = f->kind == BT_CFG_SEQ_NODE;
        if (bt_node_is_null(v)) {
            *(const struct bt_node **)at = NULL;
            return 0;
        }
        if (v->type != (seq ? BT_NODE_SEQ : BT_NODE_MAP))
            return bt_cfg_fail(c, v, "expected %s, got %s", seq ? "a list" : "a map",
                               bt_cfg_kind_name(v));
        *(const struct bt_node **)at = v;
        return 0;
    }
    case BT_CFG_SUB: return bt_cfg_decode(c, v, f->sub, at);
    case BT_CFG_FN: return f->fn(c, v, at);
    default:
        /* A key with no value keeps its default, as an absent key would. */
        if (bt_node_is_null(v))
            return 0;
        return decode_scalar(c, f, v, at);
    }
}

int bt_cfg_decode(struct bt_cfg_ctx *c, const struct bt_node *map, const struct bt_cfg_field *t,
                  void *obj)
{
    if (bt_node_is_null(map))
        return 0;
    if (map->type != BT_NODE_MAP)
        return bt_cfg_fail(c, map, "expected a map, got %s", bt_cfg_kind_name(map));
    for (size_t i = 0; i < map->n; i++) {
        const struct bt_node *k = bt_node_key(map, i), *v = bt_node_val(map, i);
        if (k->type != BT_NODE_SCALAR)
            return bt_cfg_fail(c, k, "keys must be strings, got %s", bt_cfg_kind_name(k));
        const struct bt_cfg_field *f = t;
        while (f->key && strcmp(f->key, k->str) != 0)
            f++;
        if (!f->key) {
            char where[320];
            snprintf(c->err, c->errlen, "%s: unknown key \"%s\" %s%s",
                     bt_node_where(k, where, sizeof(where)), k->str,
                     c->plen ? "in " : "at top level", c->path);
            return -EINVAL;
        }
        size_t mark = bt_cfg_push_key(c, k->str);
        int rc = decode_field(c, f, k, v, obj);
        if (rc)
            return rc;
        bt_cfg_pop(c, mark);
    }
    return 0;
}

int bt_cfg_labels(struct bt_cfg_ctx *c, const struct bt_node *v, struct bt_labels *l)
{
    if (bt_node_is_null(v))
        return 0;
    if (v->type != BT_NODE_MAP)
        return bt_cfg_fail(c, v, "expected a map of label names to values, got %s",
                           bt_cfg_kind_name(v));
    for (size_t i = 0; i < v->n; i++) {
        const struct bt_node *k = bt_node_key(v, i), *val = bt_node_val(v, i);
        if (k->type != BT_NODE_SCALAR || !bt_label_name_valid(k->str, k->len))
            return bt_cfg_fail(c, k, "\"%s\" is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)",
                               k->type == BT_NODE_SCALAR ? k->str : "?");
        if (!bt_node_is_null(val) && val->type != BT_NODE_SCALAR)
            return bt_cfg_fail(c, val, "label %s: expected a string value, got %s", k->str,
                               bt_cfg_kind_name(val));
        const char *s = bt_node_is_null(val) ? "" : val->str;
        size_t len = bt_node_is_null(val) ? 0 : val->len;
        if (memchr(s, '\0', len))
            return bt_cfg_fail(c, val, "label %s: value contains a NUL byte", k->str);
        if (bt_labels_setn(l, k->str, k->len, s, len) < 0)
            return bt_cfg_oom(c, val);
    }
    return 0;
}

#include "config/node.h"
#include "util/timeutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const struct bt_node *bt_node_get(const struct bt_node *map, const char *key)
{
    if (!map || map->type != BT_NODE_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++) {
        const struct bt_node *k = map->items[2 * i];
        if (k->type == BT_NODE_SCALAR && strcmp(k->str, key) == 0)
            return map->items[2 * i + 1];
    }
    return NULL;
}

const struct bt_node *bt_node_key(const struct bt_node *map, size_t i)
{
    return map && map->type == BT_NODE_MAP && i < map->n ? map->items[2 * i] : NULL;
}

const struct bt_node *bt_node_val(const struct bt_node *map, size_t i)
{
    return map && map->type == BT_NODE_MAP && i < map->n ? map->items[2 * i + 1] : NULL;
}

bool bt_node_is_null(const struct bt_node *n)
{
    if (!n || n->type == BT_NODE_NULL)
        return true;
    if (n->type != BT_NODE_SCALAR || n->quoted)
        return false;
    return n->len == 0 || strcmp(n->str, "~") == 0 || strcasecmp(n->str, "null") == 0;
}

const char *bt_node_where(const struct bt_node *n, char *out, size_t outlen)
{
    if (!n)
        snprintf(out, outlen, "<unknown>");
    else
        snprintf(out, outlen, "%s:%d:%d", n->file ? n->file : "<config>", n->line, n->col);
    return out;
}

int bt_node_bool(const struct bt_node *n, bool *out)
{
    if (!n || n->type != BT_NODE_SCALAR)
        return -EINVAL;
    static const char *const t[] = {"true", "yes", "on", "1"};
    static const char *const f[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(n->str, t[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(n->str, f[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

int bt_node_int(const struct bt_node *n, long long *out)
{
    if (!n || n->type != BT_NODE_SCALAR || n->len == 0)
        return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(n->str, &end, 0);
    if (errno || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

int bt_node_double(const struct bt_node *n, double *out)
{
    if (!n || n->type != BT_NODE_SCALAR || n->len == 0)
        return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(n->str, &end);
    if (errno || *end || isnan(v))
        return -EINVAL;
    *out = v;
    return 0;
}

int bt_node_duration(const struct bt_node *n, long long *out_ns)
{
    if (!n || n->type != BT_NODE_SCALAR)
        return -EINVAL;
    int64_t v;
    int rc = bt_parse_duration(n->str, &v);
    if (rc)
        return rc;
    *out_ns = v;
    return 0;
}

int bt_node_bytes(const struct bt_node *n, unsigned long long *out)
{
    if (!n || n->type != BT_NODE_SCALAR)
        return -EINVAL;
    uint64_t v;
    int rc = bt_parse_bytes(n->str, &v);
    if (rc)
        return rc;
    *out = v;
    return 0;
}

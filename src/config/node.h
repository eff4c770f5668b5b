/*
 * node: a parsed YAML document as a small tree, with the position of every node.
 *
 * config.c builds it with libyaml (bt_yaml_parse_*); everything else (stages, relabeling,
 * positions) reads configuration through it without knowing libyaml. Scalars keep their text
 * and whether they were quoted; maps keep key order. Each node remembers file:line:col so that
 * any module can say exactly where a bad value is. The tree owns all its memory.
 */
#ifndef BT_NODE_H
#define BT_NODE_H

#include <stdbool.h>
#include <stddef.h>

enum bt_node_type { BT_NODE_NULL, BT_NODE_SCALAR, BT_NODE_SEQ, BT_NODE_MAP };

struct bt_node {
    enum bt_node_type type;
    int line, col;          /* 1-based */
    const char *file;       /* shared, owned by the root document; may be "<inline>" */
    char *str;              /* SCALAR: text (NUL-terminated) */
    size_t len;             /* SCALAR: length */
    bool quoted;            /* SCALAR: was written with quotes */
    struct bt_node **items; /* SEQ: n items; MAP: 2n items, key then value */
    size_t n;
    void *doc; /* root only: owner of file name storage */
};

/* Parses YAML text into a tree (root of the first document; an empty text gives a NULL node).
 * name is used in positions. On error returns NULL and writes "name:line:col: message" to err. */
struct bt_node *bt_yaml_parse(const char *text, size_t len, const char *name, char *err,
                              size_t errlen);
/* Reads and parses a file. Same error rules; a missing file is an error naming the path. */
struct bt_node *bt_yaml_parse_file(const char *path, char *err, size_t errlen);
/* Frees a tree returned by bt_yaml_parse*(). NULL is ignored. */
void bt_node_free(struct bt_node *root);

/* MAP: the value for key, or NULL. */
const struct bt_node *bt_node_get(const struct bt_node *map, const char *key);
/* MAP: the i-th key and value. */
const struct bt_node *bt_node_key(const struct bt_node *map, size_t i);
const struct bt_node *bt_node_val(const struct bt_node *map, size_t i);
/* True for a scalar that YAML 1.1/1.2 reads as null (~, null, empty and unquoted) or a NULL node.
 */
bool bt_node_is_null(const struct bt_node *n);
/* Formats "file:line:col" of n into out. Returns out. */
const char *bt_node_where(const struct bt_node *n, char *out, size_t outlen);

/* Scalar conversions. Each returns 0 or -EINVAL (wrong type or bad text). */
int bt_node_bool(const struct bt_node *n, bool *out);
int bt_node_int(const struct bt_node *n, long long *out);
int bt_node_double(const struct bt_node *n, double *out);
int bt_node_duration(const struct bt_node *n, long long *out_ns);
int bt_node_bytes(const struct bt_node *n, unsigned long long *out);

#endif

/*
 * config_decode: the private machinery of the config module (config*.c only).
 *
 * A block of the config file is described by a table of fields: key, kind, offset of the
 * struct member it fills. bt_cfg_decode() walks a YAML map against such a table, so that an
 * unknown key, a wrong type or a bad duration is reported in one place, always as
 *   FILE:LINE:COL: path.to.key: what is wrong
 * The context keeps the dotted path ("clients[0].backoff_config") of the block being read.
 * Decoded strings are heap copies owned by the struct they were written into; nodes stored
 * by the NODE kinds are borrowed from the tree that struct bt_config owns.
 */
#ifndef BT_CONFIG_DECODE_H
#define BT_CONFIG_DECODE_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "config/node.h"

struct bt_cfg_ctx {
    char *err;
    size_t errlen;
    char path[256];
    size_t plen;
    /* Overrides from the command line, applied while the clients are finished. */
    const char *url_override;
    const char *tenant_override;
    /* Node of each client in struct bt_config's clients (NULL for one made from flags). */
    const struct bt_node **client_nodes;
    size_t n_client_nodes;
};

enum bt_cfg_kind {
    BT_CFG_STR,        /* char *, scalar copied */
    BT_CFG_BOOL,       /* bool */
    BT_CFG_INT,        /* int within [lo, hi] */
    BT_CFG_SIZE,       /* size_t within [lo, hi] */
    BT_CFG_DURATION,   /* int64_t ns, >= 0 */
    BT_CFG_BYTES,      /* uint64_t, byte size string or integer */
    BT_CFG_DOUBLE,     /* double, >= 0 */
    BT_CFG_SEQ_NODE,   /* const struct bt_node *: a list (NULL when null) */
    BT_CFG_MAP_NODE,   /* const struct bt_node *: a map (NULL when null) */
    BT_CFG_ACCEPT,     /* accepted and ignored: any value */
    BT_CFG_ACCEPT_DUR, /* accepted and ignored: must be a duration */
    BT_CFG_ACCEPT_INT, /* accepted and ignored: must be an integer in [lo, hi] */
    BT_CFG_SUB,        /* nested block at off, decoded with sub */
    BT_CFG_FN,         /* custom: fn(ctx, value, obj + off) */
    BT_CFG_UNSUPPORTED /* promtail has it, bpftail does not: error with note */
};

struct bt_cfg_field {
    const char *key; /* NULL ends a table */
    enum bt_cfg_kind kind;
    size_t off;
    long long lo, hi;
    const struct bt_cfg_field *sub;
    int (*fn)(struct bt_cfg_ctx *c, const struct bt_node *v, void *at);
    const char *note;
};

/* Writes "where: path: message" to the context's err and returns -EINVAL. */
int bt_cfg_fail(struct bt_cfg_ctx *c, const struct bt_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Writes an out-of-memory message and returns -ENOMEM. */
int bt_cfg_oom(struct bt_cfg_ctx *c, const struct bt_node *at);
/* Appends ".key" (or "key" at the top) to the path; returns the mark to restore. */
size_t bt_cfg_push_key(struct bt_cfg_ctx *c, const char *key);
/* Appends "[i]" to the path; returns the mark to restore. */
size_t bt_cfg_push_idx(struct bt_cfg_ctx *c, size_t i);
void bt_cfg_pop(struct bt_cfg_ctx *c, size_t mark);
/* "a map", "a list", "a string", "null": for messages. */
const char *bt_cfg_kind_name(const struct bt_node *n);

/* Decodes map into obj with the table. A null map leaves obj untouched. 0 or -errno. */
int bt_cfg_decode(struct bt_cfg_ctx *c, const struct bt_node *map, const struct bt_cfg_field *t,
                  void *obj);
/* Replaces *dst with a copy of the scalar v (null keeps *dst). 0 or -errno. */
int bt_cfg_str(struct bt_cfg_ctx *c, const struct bt_node *v, char **dst);
/* Reads a map of label name to value into l (names validated). 0 or -errno. */
int bt_cfg_labels(struct bt_cfg_ctx *c, const struct bt_node *v, struct bt_labels *l);
/* Checks a list node (null allowed). 0 or -EINVAL. */
int bt_cfg_expect_seq(struct bt_cfg_ctx *c, const struct bt_node *v);

/* Clients (config_client.c). */
void bt_cfg_client_defaults(struct bt_client_config *cl);
void bt_cfg_client_free(struct bt_client_config *cl);
/* Frees n headers and the array. */
void bt_cfg_headers_free(struct bt_header *h, size_t n);
/* Decodes one client map into cl (defaults already set). */
int bt_cfg_client_decode(struct bt_cfg_ctx *c, const struct bt_node *v,
                         struct bt_client_config *cl);
/* Applies flag overrides, then checks every client (url, names, auth) and fills defaults
 * that depend on other fields (name). */
int bt_cfg_clients_finish(struct bt_cfg_ctx *c, struct bt_config *cfg);

#endif

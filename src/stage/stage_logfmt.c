/* logfmt: parses the line (or extracted[source]) as logfmt and writes the mapped keys
 * (mapping: {extracted_name: logfmt_key}, empty = same name) to extracted as strings. A
 * malformed rest of line stops parsing; what was read so far is kept (as go-logfmt does). */
#include "stage/stage.h"
#include "config/node.h"
#include "util/logfmt.h"

#include <stdlib.h>
#include <string.h>

struct st {
    struct bt_stage_kv *kv; /* name = extracted key, source = logfmt key */
    size_t n;
    char *source;
    size_t source_len;
    struct bt_buf doc, val;
};

static const char *const keys[] = {"mapping", "source", NULL};

static void logfmt_free(void *st)
{
    struct st *s = st;
    bt_stage_kv_free(s->kv, s->n);
    free(s->source);
    bt_buf_free(&s->doc);
    bt_buf_free(&s->val);
    free(s);
}

static void *logfmt_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                         size_t errlen)
{
    int bad;
    if (bt_stage_check_keys(cfg, env, keys, err, errlen) < 0)
        return NULL;
    const struct bt_node *map = bt_node_get(cfg, "mapping");
    if (!map || bt_node_is_null(map) || map->type != BT_NODE_MAP || map->n == 0)
        return bt_stage_err(err, errlen, env, map ? map : cfg,
                            "mapping must be a non-empty map of name: logfmt key");
    const char *src = bt_stage_str(cfg, "source", env, &bad, err, errlen);
    if (bad)
        return NULL;
    struct st *s = calloc(1, sizeof(*s));
    if (!s)
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    bt_buf_init(&s->doc, BT_XVAL_MAX);
    bt_buf_init(&s->val, BT_XVAL_MAX);
    if (bt_stage_kv_parse(map, env, false, &s->kv, &s->n, err, errlen) < 0)
        goto fail;
    if (src && *src) {
        if (!(s->source = strdup(src))) {
            bt_stage_err(err, errlen, env, NULL, "out of memory");
            goto fail;
        }
        s->source_len = strlen(src);
    }
    return s;
fail:
    logfmt_free(s);
    return NULL;
}

static enum bt_stage_result logfmt_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    const char *doc = e->line;
    size_t n = e->line_len;
    if (s->source) {
        char tmp[64];
        if (bt_extracted_get_str(&e->x, s->source, s->source_len, tmp, sizeof(tmp), &doc, &n) < 0)
            return BT_STAGE_KEEP;
        bt_buf_reset(&s->doc);
        if (bt_buf_add(&s->doc, doc, n) < 0)
            return BT_STAGE_KEEP;
        doc = bt_buf_str(&s->doc);
    }
    struct bt_logfmt d;
    struct bt_logfmt_kv kv;
    bt_logfmt_init(&d, doc, n);
    while (bt_logfmt_next(&d, &kv) == 1) {
        for (size_t i = 0; i < s->n; i++) {
            if (s->kv[i].source_len != kv.klen || memcmp(s->kv[i].source, kv.key, kv.klen) != 0)
                continue;
            bt_buf_reset(&s->val);
            if (bt_logfmt_value(&kv, &s->val) < 0)
                continue;
            bt_extracted_set_str(&e->x, s->kv[i].name, s->kv[i].name_len, bt_buf_str(&s->val),
                                 s->val.len);
        }
    }
    return BT_STAGE_KEEP;
}

const struct bt_stage_ops bt_stage_logfmt_ops = {
    .name = "logfmt",
    .init = logfmt_init,
    .process = logfmt_process,
    .free = logfmt_free,
};

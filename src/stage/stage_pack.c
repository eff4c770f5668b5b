/* pack: replaces the line with a JSON object holding the listed labels/extracted values (keys
 * sorted) and the old line as "_entry" (last), then removes the packed names from the labels.
 * With ingest_timestamp (default true) the timestamp becomes the time of packing, so entries of
 * different streams packed into one keep arriving in order. Names whose value is absent or
 * null are neither packed nor removed. */
#include "stage/stage.h"
#include "config/node.h"
#include "util/jmespath.h"
#include "util/timeutil.h"

#include <stdlib.h>
#include <string.h>

struct st {
    char **names; /* sorted, unique */
    size_t n;
    bool ingest_ts;
};

static const char *const keys[] = {"labels", "ingest_timestamp", NULL};

static void pack_free(void *st)
{
    struct st *s = st;
    bt_stage_strlist_free(s->names, s->n);
    free(s);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void *pack_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                       size_t errlen)
{
    if (bt_stage_check_keys(cfg, env, keys, err, errlen) < 0)
        return NULL;
    const struct bt_node *l = bt_node_get(cfg, "labels");
    if (l && !bt_node_is_null(l) && l->type != BT_NODE_SEQ)
        return bt_stage_err(err, errlen, env, l, "labels must be a list of names");
    struct st *s = calloc(1, sizeof(*s));
    if (!s)
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    s->ingest_ts = true;
    const struct bt_node *it = bt_node_get(cfg, "ingest_timestamp");
    if (it && !bt_node_is_null(it) && bt_node_bool(it, &s->ingest_ts) < 0) {
        bt_stage_err(err, errlen, env, it, "ingest_timestamp must be true or false");
        goto fail;
    }
    if (l && !bt_node_is_null(l) && l->n &&
        bt_stage_strlist(l, env, false, &s->names, &s->n, err, errlen) < 0)
        goto fail;
    if (s->n)
        qsort(s->names, s->n, sizeof(*s->names), cmp_str);
    size_t w = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (w && strcmp(s->names[w - 1], s->names[i]) == 0)
            free(s->names[i]);
        else
            s->names[w++] = s->names[i];
    }
    s->n = w;
    return s;
fail:
    pack_free(s);
    return NULL;
}

static enum bt_stage_result pack_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    struct bt_buf *b = bt_pentry_line_begin(e);
    char tmp[64];
    bool any = false;
    int rc = bt_buf_add(b, "{", 1);
    for (size_t i = 0; i < s->n && rc == 0; i++) {
        const char *v;
        size_t n;
        if (bt_extracted_get_str(&e->x, s->names[i], strlen(s->names[i]), tmp, sizeof(tmp), &v,
                                 &n) < 0)
            continue;
        if (any)
            rc = bt_buf_add(b, ",", 1);
        if (rc == 0)
            rc = bt_json_quote(b, s->names[i], strlen(s->names[i]));
        if (rc == 0)
            rc = bt_buf_add(b, ":", 1);
        if (rc == 0)
            rc = bt_json_quote(b, v, n);
        any = true;
    }
    if (rc == 0)
        rc = bt_buf_adds(b, any ? ",\"_entry\":" : "\"_entry\":");
    if (rc == 0)
        rc = bt_json_quote(b, e->line, e->line_len);
    if (rc == 0)
        rc = bt_buf_add(b, "}", 1);
    if (rc < 0)
        return BT_STAGE_KEEP; /* line too long to pack: leave it as it was */
    bt_pentry_line_commit(e);
    for (size_t i = 0; i < s->n && e->labels; i++) {
        const char *v;
        size_t n;
        if (!bt_labels_get(e->labels, s->names[i]) || /* packed names only, as promtail */
            bt_extracted_get_str(&e->x, s->names[i], strlen(s->names[i]), tmp, sizeof(tmp), &v,
                                 &n) < 0)
            continue;
        struct bt_labels *l = bt_pentry_labels_mut(e);
        if (l)
            bt_labels_del(l, s->names[i]);
    }
    if (s->ingest_ts)
        e->ts_ns = bt_now_ns();
    return BT_STAGE_KEEP;
}

const struct bt_stage_ops bt_stage_pack_ops = {
    .name = "pack",
    .init = pack_init,
    .process = pack_process,
    .free = pack_free,
};

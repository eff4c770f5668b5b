/* structured_metadata (alias non_indexed_labels): like labels, but writes the entry's
 * structured metadata; a stream label with the same name and value is removed so the pair is
 * not sent twice. */
#include "stage/stage.h"

#include <stdlib.h>
#include <string.h>

struct st {
    struct bt_stage_kv *kv;
    size_t n;
};

static void *sm_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                     size_t errlen)
{
    struct st *s = calloc(1, sizeof(*s));
    if (!s)
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    if (bt_stage_kv_parse(cfg, env, true, &s->kv, &s->n, err, errlen) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

static enum bt_stage_result sm_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    char tmp[64];
    for (size_t i = 0; i < s->n; i++) {
        const char *v;
        size_t n;
        if (bt_extracted_get_str(&e->x, s->kv[i].source, s->kv[i].source_len, tmp, sizeof(tmp), &v,
                                 &n) < 0)
            continue;
        if (!bt_utf8_valid(v, n))
            continue;
        if (bt_labels_setn(&e->meta, s->kv[i].name, s->kv[i].name_len, v, n) < 0)
            continue;
        const char *lv =
            e->labels ? bt_labels_getn(e->labels, s->kv[i].name, s->kv[i].name_len) : NULL;
        if (lv && strlen(lv) == n && memcmp(lv, v, n) == 0) {
            struct bt_labels *l = bt_pentry_labels_mut(e);
            if (l)
                bt_labels_del(l, s->kv[i].name);
        }
    }
    return BT_STAGE_KEEP;
}

static void sm_free(void *st)
{
    struct st *s = st;
    bt_stage_kv_free(s->kv, s->n);
    free(s);
}

const struct bt_stage_ops bt_stage_structured_metadata_ops = {
    .name = "structured_metadata",
    .init = sm_init,
    .process = sm_process,
    .free = sm_free,
};

/* labels: sets labels from extracted values ({name: source}; empty source = same name).
 * A value that is absent, not convertible to text (null, object) or not valid UTF-8 is
 * skipped, as promtail does. */
#include "stage/stage.h"

#include <stdlib.h>

struct st {
    struct bt_stage_kv *kv;
    size_t n;
};

static void *labels_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
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

static enum bt_stage_result labels_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
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
        struct bt_labels *l = bt_pentry_labels_mut(e);
        if (l)
            bt_labels_setn(l, s->kv[i].name, s->kv[i].name_len, v, n);
    }
    return BT_STAGE_KEEP;
}

static void labels_free(void *st)
{
    struct st *s = st;
    bt_stage_kv_free(s->kv, s->n);
    free(s);
}

const struct bt_stage_ops bt_stage_labels_ops = {
    .name = "labels",
    .init = labels_init,
    .process = labels_process,
    .free = labels_free,
};

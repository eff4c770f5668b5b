/* labeldrop: deletes the listed labels. */
#include "stage/stage.h"

#include <stdlib.h>

struct st {
    char **names;
    size_t n;
};

static void *ld_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                     size_t errlen)
{
    struct st *s = calloc(1, sizeof(*s));
    if (!s)
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    if (bt_stage_strlist(cfg, env, true, &s->names, &s->n, err, errlen) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

static enum bt_stage_result ld_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    for (size_t i = 0; i < s->n && e->labels; i++) {
        if (!bt_labels_get(e->labels, s->names[i]))
            continue; /* stays copy-free when there is nothing to drop */
        struct bt_labels *l = bt_pentry_labels_mut(e);
        if (l)
            bt_labels_del(l, s->names[i]);
    }
    return BT_STAGE_KEEP;
}

static void ld_free(void *st)
{
    struct st *s = st;
    bt_stage_strlist_free(s->names, s->n);
    free(s);
}

const struct bt_stage_ops bt_stage_labeldrop_ops = {
    .name = "labeldrop",
    .init = ld_init,
    .process = ld_process,
    .free = ld_free,
};

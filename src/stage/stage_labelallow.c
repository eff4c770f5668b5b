/* labelallow: keeps only the listed labels. Reserved "__" labels (the tenant) are kept too:
 * they never reach Loki as labels, and dropping them would silently change the tenant. */
#include "stage/stage.h"

#include <stdlib.h>
#include <string.h>

struct st {
    char **names;
    size_t n;
};

static void *la_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
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

static bool allowed(const struct st *s, const char *name)
{
    if (name[0] == '_' && name[1] == '_')
        return true;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return true;
    return false;
}

static enum bt_stage_result la_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    if (!e->labels)
        return BT_STAGE_KEEP;
    size_t i = 0;
    while (i < e->labels->n) {
        if (allowed(s, e->labels->v[i].name)) {
            i++;
            continue;
        }
        struct bt_labels *l = bt_pentry_labels_mut(e);
        if (!l)
            break;
        bt_labels_del(l, l->v[i].name);
    }
    return BT_STAGE_KEEP;
}

static void la_free(void *st)
{
    struct st *s = st;
    bt_stage_strlist_free(s->names, s->n);
    free(s);
}

const struct bt_stage_ops bt_stage_labelallow_ops = {
    .name = "labelallow",
    .init = la_init,
    .process = la_process,
    .free = la_free,
};

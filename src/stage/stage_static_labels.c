/* static_labels: sets constant labels ({name: value}); empty values are ignored. */
#include "stage/stage.h"
#include "config/node.h"

#include <stdlib.h>
#include <string.h>

struct st {
    struct bt_labels set;
};

static void *sl_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                     size_t errlen)
{
    if (bt_node_is_null(cfg) || cfg->type != BT_NODE_MAP)
        return bt_stage_err(err, errlen, env, cfg, "expected a map of name: value");
    struct st *s = calloc(1, sizeof(*s));
    if (!s)
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    bt_labels_init(&s->set);
    for (size_t i = 0; i < cfg->n; i++) {
        const struct bt_node *k = bt_node_key(cfg, i), *v = bt_node_val(cfg, i);
        if (k->type != BT_NODE_SCALAR || !bt_label_name_valid(k->str, k->len)) {
            bt_stage_err(err, errlen, env, k, "invalid label name \"%s\"", k->str ? k->str : "");
            goto fail;
        }
        if (bt_node_is_null(v))
            continue;
        if (v->type != BT_NODE_SCALAR) {
            bt_stage_err(err, errlen, env, v, "value of %s must be a string", k->str);
            goto fail;
        }
        if (!bt_utf8_valid(v->str, v->len)) {
            bt_stage_err(err, errlen, env, v, "value of %s is not valid UTF-8", k->str);
            goto fail;
        }
        if (bt_labels_setn(&s->set, k->str, k->len, v->str, v->len) < 0) {
            bt_stage_err(err, errlen, env, k, "out of memory");
            goto fail;
        }
    }
    return s;
fail:
    bt_labels_free(&s->set);
    free(s);
    return NULL;
}

static enum bt_stage_result sl_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    if (s->set.n == 0)
        return BT_STAGE_KEEP;
    struct bt_labels *l = bt_pentry_labels_mut(e);
    if (!l)
        return BT_STAGE_KEEP;
    for (size_t i = 0; i < s->set.n; i++)
        bt_labels_setn(l, s->set.v[i].name, s->set.v[i].name_len, s->set.v[i].value,
                       s->set.v[i].value_len);
    return BT_STAGE_KEEP;
}

static void sl_free(void *st)
{
    struct st *s = st;
    bt_labels_free(&s->set);
    free(s);
}

const struct bt_stage_ops bt_stage_static_labels_ops = {
    .name = "static_labels",
    .init = sl_init,
    .process = sl_process,
    .free = sl_free,
};

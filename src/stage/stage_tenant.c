/* tenant: sets the reserved label __tenant_id__ (the X-Scope-OrgID of the push) from exactly
 * one of: source (an extracted key), label (a label), value (a constant). An absent or empty
 * source leaves the tenant unchanged. */
#include "stage/stage.h"

#include <stdlib.h>
#include <string.h>

enum from { FROM_SOURCE, FROM_LABEL, FROM_VALUE };

struct st {
    enum from from;
    char *arg;
    size_t arg_len;
};

static const char *const keys[] = {"source", "value", "label", NULL};

static void *tenant_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                         size_t errlen)
{
    int bad = 0, given = 0;
    const char *v[3];
    if (bt_stage_check_keys(cfg, env, keys, err, errlen) < 0)
        return NULL;
    for (int i = 0; i < 3; i++) {
        v[i] = bt_stage_str(cfg, keys[i], env, &bad, err, errlen);
        if (bad)
            return NULL;
        given += v[i] && *v[i];
    }
    if (given != 1)
        return bt_stage_err(err, errlen, env, cfg,
                            "exactly one of source, value or label is required");
    struct st *s = calloc(1, sizeof(*s));
    if (!s)
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    s->from = v[0] && *v[0] ? FROM_SOURCE : v[1] && *v[1] ? FROM_VALUE : FROM_LABEL;
    const char *arg = s->from == FROM_SOURCE ? v[0] : s->from == FROM_VALUE ? v[1] : v[2];
    s->arg = strdup(arg);
    if (!s->arg) {
        free(s);
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    }
    s->arg_len = strlen(arg);
    return s;
}

static enum bt_stage_result tenant_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    char tmp[64];
    const char *v = NULL;
    size_t n = 0;
    switch (s->from) {
    case FROM_VALUE: v = s->arg, n = s->arg_len; break;
    case FROM_LABEL:
        v = e->labels ? bt_labels_get(e->labels, s->arg) : NULL;
        n = v ? strlen(v) : 0;
        break;
    case FROM_SOURCE:
        if (bt_extracted_get_str(&e->x, s->arg, s->arg_len, tmp, sizeof(tmp), &v, &n) < 0)
            v = NULL;
        break;
    }
    if (!v || n == 0)
        return BT_STAGE_KEEP;
    const char *cur = e->labels ? bt_labels_get(e->labels, BT_TENANT_LABEL) : NULL;
    if (cur && strlen(cur) == n && memcmp(cur, v, n) == 0)
        return BT_STAGE_KEEP;
    struct bt_labels *l = bt_pentry_labels_mut(e);
    if (l)
        bt_labels_setn(l, BT_TENANT_LABEL, strlen(BT_TENANT_LABEL), v, n);
    return BT_STAGE_KEEP;
}

static void tenant_free(void *st)
{
    struct st *s = st;
    free(s->arg);
    free(s);
}

const struct bt_stage_ops bt_stage_tenant_ops = {
    .name = "tenant",
    .init = tenant_init,
    .process = tenant_process,
    .free = tenant_free,
};

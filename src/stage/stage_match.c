/* match: runs nested stages on entries whose labels (and line, with line filters) match a
 * LogQL selector (action keep, the default), or drops matching entries (action drop, counted
 * with drop_counter_reason, default "match_stage"). Entries that do not match pass unchanged.
 * Held entries of nested stages continue after the match stage when they are emitted. */
#include "stage/stage.h"
#include "stage/logql.h"
#include "config/node.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct st {
    struct bt_logql *q;
    bool drop;
    char *reason;
    struct bt_stage_list *stages; /* keep only */
};

static const char *const keys[] = {"selector",      "stages", "action", "drop_counter_reason",
                                   "pipeline_name", NULL};

static void match_free(void *st)
{
    struct st *s = st;
    bt_logql_free(s->q);
    free(s->reason);
    bt_stage_list_free(s->stages);
    free(s);
}

static void *match_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                        size_t errlen)
{
    int bad;
    char qerr[512];
    if (bt_stage_check_keys(cfg, env, keys, err, errlen) < 0)
        return NULL;
    const char *sel = bt_stage_str(cfg, "selector", env, &bad, err, errlen);
    if (bad)
        return NULL;
    if (!sel || !*sel)
        return bt_stage_err(err, errlen, env, cfg, "selector is required");
    const char *action = bt_stage_str(cfg, "action", env, &bad, err, errlen);
    if (bad)
        return NULL;
    const char *reason = bt_stage_str(cfg, "drop_counter_reason", env, &bad, err, errlen);
    if (bad)
        return NULL;
    bt_stage_str(cfg, "pipeline_name", env, &bad, err, errlen);
    if (bad)
        return NULL;
    if (action && strcmp(action, "keep") != 0 && strcmp(action, "drop") != 0)
        return bt_stage_err(err, errlen, env, bt_node_get(cfg, "action"),
                            "action must be keep or drop, not \"%s\"", action);
    const struct bt_node *stages = bt_node_get(cfg, "stages");
    bool has_stages =
        stages && !bt_node_is_null(stages) && !(stages->type == BT_NODE_SEQ && stages->n == 0);
    struct st *s = calloc(1, sizeof(*s));
    if (!s)
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    s->drop = action && strcmp(action, "drop") == 0;
    if (s->drop && has_stages) {
        bt_stage_err(err, errlen, env, stages, "action drop cannot have stages");
        goto fail;
    }
    if (!s->drop && !has_stages) {
        bt_stage_err(err, errlen, env, cfg, "action keep needs stages");
        goto fail;
    }
    s->q = bt_logql_parse(sel, qerr, sizeof(qerr));
    if (!s->q) {
        bt_stage_err(err, errlen, env, bt_node_get(cfg, "selector"), "invalid selector %s: %s", sel,
                     qerr);
        goto fail;
    }
    s->reason = strdup(reason && *reason ? reason : "match_stage");
    if (!s->reason) {
        bt_stage_err(err, errlen, env, NULL, "out of memory");
        goto fail;
    }
    if (has_stages) {
        struct bt_stage_env sub = *env;
        sub.depth++;
        s->stages = bt_stage_list_new(stages, &sub, err, errlen);
        if (!s->stages)
            goto fail;
    }
    return s;
fail:
    match_free(s);
    return NULL;
}

static enum bt_stage_result match_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    if (!bt_logql_match_labels(s->q, e->labels) || !bt_logql_match_line(s->q, e->line, e->line_len))
        return BT_STAGE_KEEP;
    if (s->drop) {
        e->drop_reason = s->reason;
        return BT_STAGE_DROP;
    }
    /* A drop inside comes back with the inner stage's reason, counted once by our runner. */
    return bt_stage_list_run(s->stages, e, o);
}

static int64_t match_deadline(const void *st)
{
    const struct st *s = st;
    return s->stages ? bt_stage_list_deadline(s->stages) : INT64_MAX;
}

static void match_tick(void *st, int64_t now, struct bt_stage_out *o)
{
    struct st *s = st;
    if (s->stages)
        bt_stage_list_tick(s->stages, now, o);
}

static void match_flush(void *st, struct bt_stage_out *o)
{
    struct st *s = st;
    if (s->stages)
        bt_stage_list_flush(s->stages, o);
}

const struct bt_stage_ops bt_stage_match_ops = {
    .name = "match",
    .init = match_init,
    .process = match_process,
    .deadline = match_deadline,
    .tick = match_tick,
    .flush = match_flush,
    .free = match_free,
};

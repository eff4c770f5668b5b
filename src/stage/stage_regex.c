/* regex: matches the line (or extracted[source]) and writes every named group to extracted,
 * including groups that matched empty or did not take part (as ""), as promtail does. No match:
 * nothing changes. A source that is absent or not text is skipped. */
#include "stage/stage.h"
#include "config/node.h"
#include "util/regex.h"

#include <stdlib.h>
#include <string.h>

struct st {
    struct bt_regex *re;
    char *source;
    size_t source_len;
    struct bt_buf subj; /* copy of a source value, which writing groups may overwrite */
};

static const char *const keys[] = {"expression", "source", NULL};

static void regex_free(void *st)
{
    struct st *s = st;
    bt_regex_free(s->re);
    free(s->source);
    bt_buf_free(&s->subj);
    free(s);
}

static void *regex_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                        size_t errlen)
{
    int bad;
    char rerr[256];
    if (bt_stage_check_keys(cfg, env, keys, err, errlen) < 0)
        return NULL;
    const char *expr = bt_stage_str(cfg, "expression", env, &bad, err, errlen);
    if (bad)
        return NULL;
    if (!expr || !*expr)
        return bt_stage_err(err, errlen, env, cfg, "expression is required");
    const char *src = bt_stage_str(cfg, "source", env, &bad, err, errlen);
    if (bad)
        return NULL;
    struct st *s = calloc(1, sizeof(*s));
    if (!s)
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    bt_buf_init(&s->subj, BT_XVAL_MAX);
    s->re = bt_regex_new(expr, 0, rerr, sizeof(rerr));
    if (!s->re) {
        bt_stage_err(err, errlen, env, bt_node_get(cfg, "expression"), "%s", rerr);
        goto fail;
    }
    bool named = false;
    for (int i = 1; i <= bt_regex_ngroups(s->re); i++)
        named |= bt_regex_group_name(s->re, i) != NULL;
    if (!named) {
        bt_stage_err(err, errlen, env, bt_node_get(cfg, "expression"),
                     "regex expression requires at least one named capture group");
        goto fail;
    }
    if (src && *src) {
        s->source = strdup(src);
        if (!s->source) {
            bt_stage_err(err, errlen, env, NULL, "out of memory");
            goto fail;
        }
        s->source_len = strlen(src);
    }
    return s;
fail:
    regex_free(s);
    return NULL;
}

static enum bt_stage_result regex_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    const char *subj = e->line;
    size_t n = e->line_len;
    if (s->source) {
        char tmp[64];
        if (bt_extracted_get_str(&e->x, s->source, s->source_len, tmp, sizeof(tmp), &subj, &n) < 0)
            return BT_STAGE_KEEP;
        bt_buf_reset(&s->subj);
        if (bt_buf_add(&s->subj, subj, n) < 0)
            return BT_STAGE_KEEP;
        subj = s->subj.ptr ? s->subj.ptr : "";
    }
    if (bt_regex_match(s->re, subj, n, 0) <= 0)
        return BT_STAGE_KEEP;
    for (int i = 1; i <= bt_regex_ngroups(s->re); i++) {
        const char *name = bt_regex_group_name(s->re, i);
        if (!name)
            continue;
        size_t a = 0, b = 0;
        if (!bt_regex_group(s->re, i, &a, &b))
            a = b = 0;
        bt_extracted_set_str(&e->x, name, strlen(name), subj + a, b - a);
    }
    return BT_STAGE_KEEP;
}

const struct bt_stage_ops bt_stage_regex_ops = {
    .name = "regex",
    .init = regex_init,
    .process = regex_process,
    .free = regex_free,
};

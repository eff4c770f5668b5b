/* regex: matches the line (or extracted[source]) and writes every named group to extracted,
 * including groups that matched empty or did not take part (as ""), as promtail does. No match:
 * nothing changes. A source that is absent or not text is skipped.
 *
 * Groups no stage of the pipeline reads are compiled as non-capturing once the pipeline is
 * built (prune): writing them could not be seen, and RE2's submatch search costs per group
 * (at most 4 groups take its one-pass engine). The pattern is matched once per line with its
 * groups. */
#include "stage/stage.h"
#include "config/node.h"
#include "util/regex.h"

#include <stdlib.h>
#include <string.h>

struct st {
    struct bt_regex *re;
    char *expr; /* as configured, to compile again with fewer groups */
    bool none;  /* no group is read by any stage: matching has no effect */
    char *source;
    size_t source_len;
    struct bt_buf subj; /* copy of a source value, which writing groups may overwrite */
};

static const char *const keys[] = {"expression", "source", NULL};

static void regex_free(void *st)
{
    struct st *s = st;
    bt_regex_free(s->re);
    free(s->expr);
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
    if (!(s->expr = strdup(expr))) {
        bt_stage_err(err, errlen, env, NULL, "out of memory");
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
    if (s->none)
        return BT_STAGE_KEEP;
    if (s->source) {
        char tmp[64];
        if (bt_extracted_get_str(&e->x, s->source, s->source_len, tmp, sizeof(tmp), &subj, &n) < 0)
            return BT_STAGE_KEEP;
        bt_buf_reset(&s->subj);
        if (bt_buf_add(&s->subj, subj, n) < 0)
            return BT_STAGE_KEEP;
        subj = s->subj.ptr ? s->subj.ptr : "";
    }
    if (bt_regex_match_groups(s->re, subj, n) <= 0)
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

static bool regex_reads(const void *st, bt_stage_key_fn fn, void *ctx)
{
    const struct st *s = st;
    if (s->source)
        fn(ctx, s->source, s->source_len);
    return true;
}

/* Compiles the pattern again with only the groups keep() accepts capturing (all with keep
 * NULL). The pattern compiled at init, so a failure here can only be memory: the stage then
 * keeps the regex it has, which writes more groups than needed but the same values. */
static void regex_prune(void *st, bt_stage_keep_fn keep, const void *ctx)
{
    struct st *s = st;
    char rerr[256];
    struct bt_regex *re = bt_regex_new_keep(s->expr, 0, keep, ctx, rerr, sizeof(rerr));
    if (!re)
        return;
    bt_regex_free(s->re);
    s->re = re;
    s->none = bt_regex_ngroups(re) == 0;
}

const struct bt_stage_ops bt_stage_regex_ops = {
    .name = "regex",
    .init = regex_init,
    .process = regex_process,
    .free = regex_free,
    .reads = regex_reads,
    .prune = regex_prune,
};

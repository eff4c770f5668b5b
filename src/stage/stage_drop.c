/* drop: drops entries for which every configured condition holds (AND); counted with
 * drop_counter_reason (default "drop_stage"). Conditions:
 *   longer_than  line longer than this many bytes;
 *   older_than   timestamp older than now minus this duration;
 *   source       extracted key(s) present (even with a null value), and, when value is
 *                given, their text (a list joined with separator, default ";") equal to it
 *                (promtail compares only string values; numbers match their text here);
 *   expression   regex matching the line, or the source value when source is given.
 * Missing source keys mean "do not drop". value and expression exclude each other. */
#include "stage/stage.h"
#include "config/node.h"
#include "util/regex.h"
#include "util/timeutil.h"

#include <stdlib.h>
#include <string.h>

struct st {
    char **sources;
    size_t nsrc;
    char *sep;
    char *value;
    struct bt_regex *re;
    int64_t older_ns;          /* 0 = off */
    unsigned long long longer; /* 0 = off */
    bool has_longer;
    char *reason;
    struct bt_buf joined;
};

static const char *const keys[] = {
    "source",      "separator",           "value", "expression", "older_than",
    "longer_than", "drop_counter_reason", NULL};

static void drop_free(void *st)
{
    struct st *s = st;
    bt_stage_strlist_free(s->sources, s->nsrc);
    free(s->sep);
    free(s->value);
    bt_regex_free(s->re);
    free(s->reason);
    bt_buf_free(&s->joined);
    free(s);
}

static int opt_str(const struct bt_node *cfg, const char *k, const struct bt_stage_env *env,
                   char **out, char *err, size_t errlen)
{
    int bad;
    const char *v = bt_stage_str(cfg, k, env, &bad, err, errlen);
    if (bad)
        return -1;
    if (v && !(*out = strdup(v))) {
        bt_stage_err(err, errlen, env, NULL, "out of memory");
        return -1;
    }
    return 0;
}

static int parse_sources(struct st *s, const struct bt_node *cfg, const struct bt_stage_env *env,
                         char *err, size_t errlen)
{
    const struct bt_node *src = bt_node_get(cfg, "source");
    if (!src || bt_node_is_null(src))
        return 0;
    if (src->type == BT_NODE_SEQ)
        return bt_stage_strlist(src, env, false, &s->sources, &s->nsrc, err, errlen);
    if (src->type != BT_NODE_SCALAR) {
        bt_stage_err(err, errlen, env, src, "source must be a name or a list of names");
        return -1;
    }
    s->sources = calloc(1, sizeof(char *));
    if (!s->sources || !(s->sources[0] = strdup(src->str))) {
        bt_stage_err(err, errlen, env, NULL, "out of memory");
        return -1;
    }
    s->nsrc = 1;
    return 0;
}

static void *drop_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                       size_t errlen)
{
    char *expr = NULL, *reason = NULL;
    char rerr[256];
    if (bt_stage_check_keys(cfg, env, keys, err, errlen) < 0)
        return NULL;
    struct st *s = calloc(1, sizeof(*s));
    if (!s)
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    bt_buf_init(&s->joined, BT_XVAL_MAX);
    if (parse_sources(s, cfg, env, err, errlen) < 0 ||
        opt_str(cfg, "separator", env, &s->sep, err, errlen) < 0 ||
        opt_str(cfg, "value", env, &s->value, err, errlen) < 0 ||
        opt_str(cfg, "expression", env, &expr, err, errlen) < 0 ||
        opt_str(cfg, "drop_counter_reason", env, &reason, err, errlen) < 0)
        goto fail;
    const struct bt_node *ot = bt_node_get(cfg, "older_than");
    const struct bt_node *lt = bt_node_get(cfg, "longer_than");
    if (ot && !bt_node_is_null(ot)) {
        long long ns;
        if (bt_node_duration(ot, &ns) < 0 || ns <= 0) {
            bt_stage_err(err, errlen, env, ot, "older_than must be a positive duration");
            goto fail;
        }
        s->older_ns = ns;
    }
    if (lt && !bt_node_is_null(lt)) {
        if (bt_node_bytes(lt, &s->longer) < 0) {
            bt_stage_err(err, errlen, env, lt, "longer_than must be a byte size");
            goto fail;
        }
        s->has_longer = true;
    }
    if (!s->nsrc && !expr && !s->older_ns && !s->has_longer) {
        bt_stage_err(err, errlen, env, cfg,
                     "needs at least one of source, expression, "
                     "older_than or longer_than");
        goto fail;
    }
    if (s->value && expr) {
        bt_stage_err(err, errlen, env, bt_node_get(cfg, "value"),
                     "value and expression cannot both be set");
        goto fail;
    }
    if (expr && !(s->re = bt_regex_new(expr, 0, rerr, sizeof(rerr)))) {
        bt_stage_err(err, errlen, env, bt_node_get(cfg, "expression"), "%s", rerr);
        goto fail;
    }
    s->reason = reason && *reason ? reason : strdup("drop_stage");
    if (s->reason != reason)
        free(reason);
    reason = NULL;
    if (!s->sep)
        s->sep = strdup(";");
    if (!s->reason || !s->sep) {
        bt_stage_err(err, errlen, env, NULL, "out of memory");
        goto fail;
    }
    free(expr);
    return s;
fail:
    free(expr);
    free(reason);
    drop_free(s);
    return NULL;
}

/* Joins the source values; false if one is missing or not text. */
static bool source_value(struct st *s, const struct bt_pentry *e, const char **v, size_t *n)
{
    char tmp[64];
    if (s->nsrc == 1) { /* the common case: no copy unless the value is a formatted number */
        if (bt_extracted_get_str(&e->x, s->sources[0], strlen(s->sources[0]), tmp, sizeof(tmp), v,
                                 n) < 0)
            return false;
        if (*v != tmp)
            return true;
    }
    bt_buf_reset(&s->joined);
    for (size_t i = 0; i < s->nsrc; i++) {
        const char *p;
        size_t pn;
        if (bt_extracted_get_str(&e->x, s->sources[i], strlen(s->sources[i]), tmp, sizeof(tmp), &p,
                                 &pn) < 0)
            return false;
        if ((i && bt_buf_adds(&s->joined, s->sep) < 0) || bt_buf_add(&s->joined, p, pn) < 0)
            return false;
    }
    *v = bt_buf_str(&s->joined);
    *n = s->joined.len;
    return true;
}

static enum bt_stage_result drop_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    if (s->has_longer && e->line_len <= s->longer)
        return BT_STAGE_KEEP;
    if (s->older_ns && e->ts_ns >= bt_now_ns() - s->older_ns)
        return BT_STAGE_KEEP;
    const char *v = e->line;
    size_t n = e->line_len;
    if (s->nsrc && !s->value && !s->re) { /* presence alone, even of a null value */
        for (size_t i = 0; i < s->nsrc; i++)
            if (!bt_extracted_get(&e->x, s->sources[i], strlen(s->sources[i])))
                return BT_STAGE_KEEP;
    } else if (s->nsrc) {
        if (!source_value(s, e, &v, &n))
            return BT_STAGE_KEEP;
        if (s->value && (strlen(s->value) != n || memcmp(s->value, v, n) != 0))
            return BT_STAGE_KEEP;
    }
    if (s->re && bt_regex_match(s->re, v, n, 0) <= 0)
        return BT_STAGE_KEEP;
    e->drop_reason = s->reason;
    return BT_STAGE_DROP;
}

const struct bt_stage_ops bt_stage_drop_ops = {
    .name = "drop",
    .init = drop_init,
    .process = drop_process,
    .free = drop_free,
};

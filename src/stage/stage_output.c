/* output: replaces the line with extracted[source] when it exists and converts to text. */
#include "stage/stage.h"

#include <stdlib.h>
#include <string.h>

struct st {
    char *source;
    size_t source_len;
};

static const char *const keys[] = {"source", NULL};

static void *output_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                         size_t errlen)
{
    int bad;
    if (bt_stage_check_keys(cfg, env, keys, err, errlen) < 0)
        return NULL;
    const char *src = bt_stage_str(cfg, "source", env, &bad, err, errlen);
    if (bad)
        return NULL;
    if (!src || !*src)
        return bt_stage_err(err, errlen, env, cfg, "source is required");
    struct st *s = calloc(1, sizeof(*s));
    if (!s || !(s->source = strdup(src))) {
        free(s);
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    }
    s->source_len = strlen(src);
    return s;
}

static enum bt_stage_result output_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    char tmp[64];
    const char *v;
    size_t n;
    if (bt_extracted_get_str(&e->x, s->source, s->source_len, tmp, sizeof(tmp), &v, &n) == 0)
        bt_pentry_set_line(e, v, n);
    return BT_STAGE_KEEP;
}

static void output_free(void *st)
{
    struct st *s = st;
    free(s->source);
    free(s);
}

static bool output_reads(const void *st, bt_stage_key_fn fn, void *ctx)
{
    const struct st *s = st;
    fn(ctx, s->source, s->source_len);
    return true;
}

const struct bt_stage_ops bt_stage_output_ops = {
    .name = "output",
    .init = output_init,
    .process = output_process,
    .free = output_free,
    .reads = output_reads,
};
